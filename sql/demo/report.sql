-- Demo report: the latest events.
\pset footer off
SELECT id, occurred_at::timestamp(0) AS at, actor, action, entity, subject_id, changed_fields
  FROM audit.events
 ORDER BY occurred_at DESC, id DESC
 LIMIT 20;

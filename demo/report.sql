-- The Audit Log Report in the terminal: the latest events of each category, read by an
-- audit_admin member through the report views.
\pset footer off
\pset null ''

\echo
\echo '== Contact changes (latest 8) =='
SELECT to_char(occurred_at, 'YYYY-MM-DD HH24:MI:SS') AS "when", summary
  FROM audit.contact_activity
 ORDER BY occurred_at DESC, id DESC
 LIMIT 8;

\echo '== Groups (latest 8) =='
SELECT to_char(occurred_at, 'YYYY-MM-DD HH24:MI:SS') AS "when", summary
  FROM audit.group_activity
 ORDER BY occurred_at DESC, id DESC
 LIMIT 8;

\echo '== User profile changes (latest 8) =='
SELECT to_char(occurred_at, 'YYYY-MM-DD HH24:MI:SS') AS "when", summary
  FROM audit.user_activity
 ORDER BY occurred_at DESC, id DESC
 LIMIT 8;

\echo '== Exports =='
SELECT to_char(occurred_at, 'YYYY-MM-DD HH24:MI:SS') AS "when", summary, details ->> 'group' AS "group"
  FROM audit.export_activity
 ORDER BY occurred_at DESC, id DESC;

\echo '== One contact edit in full: before and after =='
SELECT summary, before ->> 'email' AS email_before, after ->> 'email' AS email_after, db_user
  FROM audit.contact_activity
 WHERE action = 'update' AND 'email' = ANY (changed_fields)
 ORDER BY id
 LIMIT 1;

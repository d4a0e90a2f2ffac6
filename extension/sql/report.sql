-- audit_trail: the report views admins read. Runs after the lifetime's files (maintenance.sql).

-- Every event, with a one-line summary and whole row images. Order by
-- occurred_at DESC, id DESC for newest first.
CREATE VIEW audit.report AS
SELECT e.id,
       e.occurred_at,
       e.actor,
       e.db_user,
       e.source,
       e.client_addr,
       e.application_name,
       e.entity,
       e.action,
       e.table_name,
       e.subject_id,
       e.changed_fields,
       CASE
           -- What audit.revert wrote: the change it put back, by the event's own action.
           WHEN e.source = 'revert' AND e.context ? 'reverts' AND e.action IN ('create', 'update', 'delete')
               THEN pg_catalog.format('%s reverted %s %s''s %s', e.actor, e.entity, e.subject_id,
                                      CASE e.action WHEN 'create' THEN 'deletion'
                                                    WHEN 'delete' THEN 'creation'
                                                    ELSE 'update' END)
           WHEN e.action = 'create' AND m.member IS NOT NULL
               THEN pg_catalog.format('%s added %s to %s %s', e.actor, m.member, e.entity, e.subject_id)
           WHEN e.action = 'create'
               THEN pg_catalog.format('%s created %s %s', e.actor, e.entity, e.subject_id)
           WHEN e.action = 'delete' AND m.member IS NOT NULL
               THEN pg_catalog.format('%s removed %s from %s %s', e.actor, m.member, e.entity, e.subject_id)
           WHEN e.action = 'delete'
               THEN pg_catalog.format('%s deleted %s %s', e.actor, e.entity, e.subject_id)
           WHEN e.action = 'update' AND e.entity = 'user'
                AND e.changed_fields OPERATOR(pg_catalog.&&) '{role,roles,permission,permissions}'::text[]
               THEN pg_catalog.format('%s changed the role of user %s: %s', e.actor, e.subject_id,
                                      pg_catalog.array_to_string(e.changed_fields, ', '))
           WHEN e.action = 'update'
               THEN pg_catalog.format('%s updated %s %s: %s', e.actor, e.entity, e.subject_id,
                                      pg_catalog.array_to_string(e.changed_fields, ', '))
           WHEN e.action = 'truncate'
               THEN pg_catalog.format('%s emptied %s (every %s in it deleted)', e.actor, e.table_name, e.entity)
           WHEN e.action = 'export' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s exported %s audit events', e.actor,
                                      coalesce(e.details ->> 'rows', 'the'))
           WHEN e.action = 'export'
               THEN pg_catalog.format('%s exported %s %ss', e.actor, coalesce(e.details ->> 'rows', 'the'),
                                      pg_catalog.regexp_replace(e.entity, 'y$', 'ie'))
           WHEN e.action = 'purge'
               THEN pg_catalog.format('%s purged %s audit events older than %s', e.actor,
                                      e.details ->> 'rows', e.details ->> 'before')
           WHEN e.action = 'alter' AND e.details ? 'settings'
                AND e.details -> 'settings' @> '[{"table_renamed": []}]'
               THEN pg_catalog.format('%s renamed %s table %s (%s)', e.actor, e.entity, e.table_name,
                                      coalesce(e.details ->> 'command', 'DDL'))
           WHEN e.action = 'alter'
               THEN pg_catalog.format('%s altered %s table %s (%s)', e.actor, e.entity, e.table_name,
                                      coalesce(e.details ->> 'command', 'DDL'))
           WHEN e.action = 'track' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s %s %s as %s', e.actor,
                                      CASE WHEN e.details -> 'previous' = 'null'
                                           THEN 'started tracking' ELSE 're-tracked' END,
                                      e.table_name, e.details ->> 'entity')
           WHEN e.action = 'untrack' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s stopped tracking %s', e.actor,
                                      coalesce(e.table_name, e.details ->> 'table'))
           WHEN e.action = 'sign_in' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s signed in to the dashboard from %s', e.actor,
                                      coalesce(e.details ->> 'from', 'an unknown address'))
           WHEN e.action = 'alert' AND e.entity = 'audit_log'
               THEN pg_catalog.format('alert %s (%s): %s, by %s (%s events)',
                                      e.details ->> 'rule', e.details ->> 'severity',
                                      coalesce(e.details ->> 'description', 'see details'),
                                      e.details ->> 'actor', e.details ->> 'count')
           WHEN e.action = 'verify_failed' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s found the audit log altered: %s', e.actor,
                                      coalesce(e.details -> 'findings' -> 0 ->> 'message', 'see details'))
           WHEN e.action = 'table_dropped' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s dropped tracked table %s', e.actor,
                                      coalesce(e.table_name, e.details ->> 'table'))
           ELSE pg_catalog.format('%s: %s %s%s', e.actor, e.action, e.entity,
                                  coalesce(' ' || e.subject_id, ''))
       END
       || CASE WHEN e.source NOT IN ('manual', 'revert') THEN pg_catalog.format(' (%s)', e.source) ELSE '' END
           AS summary,
       CASE e.action
           WHEN 'update' THEN e.new_data || e.old_data
           WHEN 'delete' THEN e.old_data
       END AS before,
       CASE WHEN e.action IN ('create', 'update') THEN e.new_data END AS after,
       e.old_data,
       e.new_data,
       e.context,
       e.details,
       e.txid,
       e.tenant
  FROM audit.events AS e
  -- Tables tracked under another entity's subject (group_members under its group, a user's
  -- permission rows under the user): their events read "added ... to" and "removed ...
  -- from", naming the rest of the row's primary key. A subquery, not a CTE: a view with a
  -- CTE is never merged into the query that reads it, so "the newest 50 of the report"
  -- would summarize and sort every event first; merged, it walks the events' time index and
  -- costs what the same page of audit.events does.
  LEFT JOIN (
      SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS table_name,
             ARRAY(
                 SELECT a.attname::text
                   FROM pg_catalog.pg_index AS i
                  CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k (attnum, n)
                   JOIN pg_catalog.pg_attribute AS a
                     ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = t.relid
                    AND i.indisprimary
                    AND a.attname::text <> ALL (t.subject_columns)
                  ORDER BY k.n
             ) AS member_columns
        FROM audit.tracked_tables AS t
        JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  ) AS l ON l.table_name = e.table_name
  LEFT JOIN LATERAL (
      SELECT pg_catalog.string_agg(
                 pg_catalog.format('%s %s', col,
                     coalesce(CASE e.action WHEN 'delete' THEN e.old_data ELSE e.new_data END ->> col,
                              'null')),
                 ', ') AS member
        FROM pg_catalog.unnest(l.member_columns) AS col
       WHERE e.action IN ('create', 'delete')
  ) AS m ON true;

COMMENT ON VIEW audit.report IS
    'Every audit event with a readable summary; before/after are whole row images.';

-- The categories of the Audit Log Report, as contract/src/categories.rs defines them (a test
-- compares): they do not overlap, so an export of contacts is in export_activity only.
CREATE VIEW audit.contact_activity AS
SELECT * FROM audit.report WHERE entity = 'contact' AND action <> 'export';
CREATE VIEW audit.group_activity AS
SELECT * FROM audit.report WHERE entity = 'group' AND action <> 'export';
CREATE VIEW audit.user_activity AS
SELECT * FROM audit.report WHERE entity = 'user' AND action <> 'export';
-- Contacts exported, audit log exported: every export, whatever was exported.
CREATE VIEW audit.export_activity AS SELECT * FROM audit.report WHERE action = 'export';

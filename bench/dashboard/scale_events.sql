-- The events of one UTC month of :events audit events over the 13 months before :'now' (one
-- every 395 days / :events; event g, from 1 = newest to :events, at :'now' minus g steps), as
-- a CRM's log would hold them, for bench/scale.sh. It loads the month [:'month_from',
-- :'month_to') straight into :target, the empty partition of audit.events made for it, oldest
-- event first (so ids grow with time), before the partition's indexes and guards exist, as
-- pg_restore fills a partition. Run as a superuser; :'now' is fixed once for every month, so
-- each event falls in exactly one month (the range of g is only the pruning; the WHERE on the
-- event's time is what splits).
--   actors: 1,000 with a long tail (actor number = 1000 * u^3, u spread evenly over [0, 1)):
--           user0 makes 10 % of the events, half the actors under 0.05 % each, user999 a
--           handful;
--   entities: 60 % contact, 25 % group (a third memberships), 12 % user, 3 % contact exports;
--   actions: update 50 %, create 30 %, delete 20 % of the changes, export for exports;
--   sources: manual ~69 %, import ~20 %, api ~10 %, sync 1 %;
--   tables: crm.contacts, crm.groups, crm.group_members, crm.users (none for exports);
--   organizations: 10,000 (org0000 .. org9999), each an even share of the events.
INSERT INTO :target (occurred_at, actor, db_user, source, client_addr, application_name,
                     entity, action, table_name, subject_id, changed_fields, old_data, new_data,
                     details, tenant)
SELECT ts, 'user' || least(999, floor(1000 * u * u * u)::int) || '@example.com', 'crm_app',
       source, '10.0.0.7', 'crm-web', entity, action,
       CASE WHEN action = 'export' THEN NULL
            WHEN entity = 'contact' THEN 'crm.contacts'
            WHEN entity = 'group' AND g % 3 = 0 THEN 'crm.group_members'
            WHEN entity = 'group' THEN 'crm.groups'
            ELSE 'crm.users' END,
       CASE WHEN action = 'export' THEN NULL ELSE (g % 50000)::text END,
       CASE WHEN action = 'update' THEN '{email}'::text[] END,
       CASE action
           WHEN 'update' THEN jsonb_build_object('email', 'o' || g % 50000 || '@example.com')
           WHEN 'delete' THEN jsonb_build_object('id', g % 50000, 'name', 'Contact ' || g % 50000)
       END,
       CASE WHEN action IN ('create', 'update')
            THEN jsonb_build_object('id', g % 50000, 'email', 'c' || g % 50000 || '@example.com')
       END,
       CASE WHEN action = 'export' THEN jsonb_build_object('rows', g % 5000) END,
       'org' || lpad(((g * 7919) % 10000)::text, 4, '0')
  FROM (SELECT g,
               -- (seconds, not g * interval: 10M times 395 days is out of an interval's range)
               :'now'::timestamptz - make_interval(secs => g * (395 * 86400.0 / :events)) AS ts,
               -- A fixed, well-spread fraction per event (golden ratio): reruns are identical.
               (g * 0.6180339887498949) % 1 AS u,
               CASE WHEN g % 100 = 42 THEN 'sync'
                    ELSE (ARRAY['manual','manual','manual','manual','manual','manual','manual',
                                'import','import','api'])[1 + (g / 7) % 10] END AS source,
               CASE WHEN g % 100 < 60 THEN 'contact'
                    WHEN g % 100 < 85 THEN 'group'
                    WHEN g % 100 < 97 THEN 'user'
                    ELSE 'contact' END AS entity,
               CASE WHEN g % 100 >= 97 THEN 'export'
                    ELSE (ARRAY['update','update','update','update','update','create',
                                'create','create','delete','delete'])[1 + g * 13 % 10] END AS action
          -- The g that can fall in the month, oldest (largest) first; one step of slack each
          -- side, which the WHERE below cuts off.
          FROM (SELECT extract(epoch FROM :'now'::timestamptz - :'month_from'::timestamptz)
                           / (395 * 86400.0 / :events) AS g_oldest,
                       extract(epoch FROM :'now'::timestamptz - :'month_to'::timestamptz)
                           / (395 * 86400.0 / :events) AS g_newest) AS b,
               generate_series(least(:events, ceil(b.g_oldest)::bigint + 1),
                               greatest(1, floor(b.g_newest)::bigint - 1), -1) AS g) AS s
 WHERE ts >= :'month_from'::timestamptz AND ts < :'month_to'::timestamptz
UNION ALL
-- One contact (subject 900001) changed :history times, evenly over the same 13 months, for
-- audit.row_as_of and audit.history across every partition: created first, then its phone
-- changed each time (an update's old_data holds the delta, new_data the whole row).
SELECT ts, 'user1@example.com', 'crm_app', 'manual', '10.0.0.7'::inet, 'crm-web', 'contact',
       CASE WHEN h = :history THEN 'create' ELSE 'update' END, 'crm.contacts', '900001',
       CASE WHEN h < :history THEN '{phone}'::text[] END,
       CASE WHEN h < :history THEN jsonb_build_object('phone', '+1-555-' || (h + 1)) END,
       jsonb_build_object('id', 900001, 'name', 'History Subject', 'email', 'h@example.com',
                          'phone', '+1-555-' || h),
       NULL, 'org0001'
  FROM (SELECT h, :'now'::timestamptz - make_interval(secs => (h - 0.5) * (395 * 86400.0 / :history)) AS ts
          FROM generate_series(1, :history) AS h) AS s
 WHERE ts >= :'month_from'::timestamptz AND ts < :'month_to'::timestamptz;

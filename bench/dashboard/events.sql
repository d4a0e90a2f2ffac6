-- 1,000,000 (:events) realistic audit events over the last 90 days, newest now: 60 % contact
-- changes, 25 % group changes (a third of them memberships), 12 % user profile changes, 3 %
-- exports; 40 application actors, sources manual / import / api. Run as a superuser in a
-- database with the audit_trail extension (superusers may INSERT into audit.events).
INSERT INTO audit.events (occurred_at, actor, db_user, source, client_addr, application_name,
                          entity, action, table_name, subject_id, changed_fields, old_data,
                          new_data, context, details)
SELECT ts, actor, 'crm_app', source, '10.0.0.7', 'crm-web', entity, action,
       CASE WHEN action = 'export' THEN NULL
            WHEN entity = 'contact' THEN 'crm.contacts'
            WHEN entity = 'group' AND g % 3 = 0 THEN 'crm.group_members'
            WHEN entity = 'group' THEN 'crm.groups'
            ELSE 'crm.users' END,
       CASE WHEN action = 'export' THEN NULL ELSE (g % 50000)::text END,
       CASE WHEN action = 'update' THEN '{email,phone}'::text[] END,
       CASE action
           WHEN 'update' THEN jsonb_build_object('email', 'old' || g || '@example.com',
                                                 'phone', '+1 555 0100')
           WHEN 'delete' THEN jsonb_build_object('id', g % 50000, 'name', 'Contact ' || g,
                                                 'email', 'c' || g || '@example.com')
       END,
       CASE WHEN action IN ('create', 'update')
            THEN jsonb_build_object('id', g % 50000, 'name', 'Contact ' || g,
                                    'email', 'c' || g || '@example.com',
                                    'phone', '+1 555 0199') END,
       CASE WHEN g % 4 = 0 THEN jsonb_build_object('request_id', md5(g::text)) END,
       CASE WHEN action = 'export' THEN jsonb_build_object('rows', g % 5000, 'group', 'VIP') END
  FROM (SELECT g,
               now() - (g * interval '90 days' / :events) AS ts,
               'user' || (g * 7919 % 40) || '@example.com' AS actor,
               (ARRAY['manual','manual','manual','manual','manual','manual','manual',
                      'import','import','api'])[1 + (g / 3) % 10] AS source,
               CASE WHEN g % 100 < 60 THEN 'contact'
                    WHEN g % 100 < 85 THEN 'group'
                    WHEN g % 100 < 97 THEN 'user'
                    ELSE 'contact' END AS entity,
               CASE WHEN g % 100 >= 97 THEN 'export'
                    ELSE (ARRAY['update','update','update','update','update','create',
                                'create','create','delete','delete'])[1 + g * 13 % 10] END AS action
          FROM generate_series(1::bigint, :events) AS g) AS s;
ANALYZE audit.events;

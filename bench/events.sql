-- Realistic events generated straight into an empty audit.events (psql -v events=N), for
-- the export and integrity benchmarks: 60% updates (a delta in old_data, the whole row in
-- new_data), 30% creates, 10% deletes, by 40 actors over the last ~23 days (at 1,000,000);
-- new_data is about 200 bytes of contact row.
INSERT INTO audit.events (occurred_at, actor, db_user, source, client_addr, application_name,
                          entity, action, table_name, subject_id, changed_fields, old_data,
                          new_data, context)
SELECT ts, actor, 'crm_app', source, '10.0.0.7', 'crm-web', 'contact', action, 'crm.contacts',
       id::text,
       CASE WHEN action = 'update' THEN '{email,score}'::text[] END,
       CASE action
           WHEN 'update' THEN jsonb_build_object('email', 'old.' || email, 'score', score - 1,
                                                 'updated_at', ts - interval '3 days')
           WHEN 'delete' THEN row_data END,
       CASE WHEN action <> 'delete' THEN row_data END,
       CASE WHEN g % 4 = 0 THEN jsonb_build_object('request_id', md5(g::text)) END
  FROM (SELECT g, ts, id, email, score,
               (ARRAY['update','update','update','update','update','update',
                      'create','create','create','delete'])[1 + g % 10] AS action,
               'user' || (g % 40) || '@example.com' AS actor,
               (ARRAY['manual','manual','import','api'])[1 + g % 4] AS source,
               jsonb_build_object(
                   'id', id,
                   'first_name', (ARRAY['Ann','Bob','Carla','Dmitri','Eve','Farid'])[1 + g % 6],
                   'last_name', (ARRAY['Smith','Garcia','Rossi','Nguyen','Okafor'])[1 + g % 5],
                   'email', email, 'phone', '+1-555-' || lpad((g % 10000)::text, 4, '0'),
                   'company', 'Company ' || (g % 1500), 'city', 'Lisbon', 'score', score,
                   'updated_at', ts) AS row_data
          FROM (SELECT g,
                       now() - (:events - g) * interval '2 seconds' AS ts,
                       1 + g % 250000 AS id,
                       'contact' || (g % 250000) || '@example.com' AS email,
                       g % 1000 AS score
                  FROM generate_series(1, :events) AS g) AS s) AS e;
VACUUM (FREEZE, ANALYZE) audit.events;

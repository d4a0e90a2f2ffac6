-- Demo activity: a day in the CRM. Everything runs through the one database login, as an
-- application would; each transaction names the application user acting (audit.actor),
-- where the change came from (audit.source) and the organization it acts for
-- (audit.tenant): acme's day, then a few changes at globex. SET LOCAL lasts until COMMIT, so no transaction
-- inherits the previous one's actor. Deterministic: run it once on a fresh schema.sql.
--
-- The transactions are demo.pause seconds apart (1 unless the session sets demo.pause), so
-- that each happens at a moment of its own and the log, newest first, reads like a day's
-- activity. The pauses come between transactions: occurred_at is always the server's clock.
-- Plain SQL, so that psql and the tests (which set demo.pause = 0) run the same file.

-- Alice, the admin, sets up the team. -------------------------------------------------------
BEGIN;
SET LOCAL audit.actor = 'alice@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.users (name, email, role, password_hash)
VALUES ('Alice Moreau', 'alice@example.com', 'admin', '$2b$12$Q9pXg1nE0v8rGkB3m7sLcOeYVZ3Wq1tH5uJ2kL8mN4oP6rS0tU2vW'),
       ('Bob Lindqvist', 'bob@example.com', 'manager', '$2b$12$Hh3kT7yR2wQ9eF5dS1aZxO0cV4bN8mL6kJ2hG7fD3sA9pO1iU5yT'),
       ('Carol Nguyen', 'carol@example.com', 'agent', '$2b$12$Zx8cV2bN6mL0kJ4hG9fD1sO3aP7oI5uY2tR8eW6qQ4zX0cV9bN1m'),
       ('Dave Okafor', 'dave@example.com', 'agent', '$2b$12$Lk5jH1gF7dS3aP9oI2uY6tR0eW4qZ8xC5vB1nM7lK3jH9gF2dS6a'),
       ('Erin Walsh', 'erin@example.com', 'viewer', '$2b$12$Pp2oI8uY4tR6eW0qZ3xC9vB5nM1lK7jH4gF0dS6aQ2wE8rT5yU3i');
-- Rights beyond each role.
INSERT INTO crm.user_permissions (user_id, permission)
SELECT u.id, p.permission
  FROM (VALUES ('bob@example.com', 'contacts.import'),
               ('bob@example.com', 'contacts.export'),
               ('bob@example.com', 'groups.manage'),
               ('carol@example.com', 'contacts.export'),
               ('carol@example.com', 'queue.agent'),
               ('dave@example.com', 'queue.agent'),
               ('erin@example.com', 'reports.view')) AS p (email, permission)
  JOIN crm.users AS u ON u.email = p.email;
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Contacts typed in by the agents. ----------------------------------------------------------
BEGIN;
SET LOCAL audit.actor = 'carol@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.contacts (first_name, last_name, email, phone, company, city, lifecycle_stage)
VALUES ('Maria', 'Gonzalez', 'maria.gonzalez@acme.example', '+1 415-555-0142', 'Acme Corp', 'San Francisco', 'customer'),
       ('James', 'O''Brien', 'james.obrien@globex.example', '+1 312-555-0178', 'Globex', 'Chicago', 'prospect'),
       ('Aiko', 'Tanaka', 'aiko.tanaka@initech.example', '+1 512-555-0121', 'Initech', 'Austin', 'customer'),
       ('Lars', 'Eriksson', 'lars.eriksson@nordicfreight.example', '+46 8-555-0190', 'Nordic Freight', 'Stockholm', 'customer'),
       ('Priya', 'Raman', 'priya.raman@umbrella.example', '+1 617-555-0165', 'Umbrella Health', 'Boston', 'customer'),
       ('Tomas', 'Silva', 'tomas.silva@atlantico.example', '+351 21-555-0134', 'Atlantico Foods', 'Lisbon', 'customer');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'dave@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.contacts (first_name, last_name, email, phone, company, city, lifecycle_stage)
VALUES ('Fatima', 'Al-Sayed', 'fatima.alsayed@hooli.example', '+1 206-555-0187', 'Hooli', 'Seattle', 'customer'),
       ('Daniel', 'Kim', 'daniel.kim@starkind.example', '+1 212-555-0119', 'Stark Industries', 'New York', 'lead'),
       ('Sophie', 'Martin', 'sophie.martin@wayne.example', '+33 1-555-0156', 'Wayne Enterprises', 'Paris', 'customer');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Dave enters Daniel Kim a second time; he removes the duplicate later.
BEGIN;
SET LOCAL audit.actor = 'dave@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.contacts (first_name, last_name, email, company, city)
VALUES ('Dan', 'Kim', 'daniel.kim@starkind.example', 'Stark Industries', 'New York');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- The nightly import: 500 leads from a trade-show list, one statement, one event per row. ---
-- Imported addresses are all @example.net, which is how later statements find them.
BEGIN;
SET LOCAL audit.actor = 'import-bot@example.com';
SET LOCAL audit.source = 'import';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.contacts (first_name, last_name, email, phone, company, city, lifecycle_stage)
SELECT first_name,
       last_name,
       lower(first_name || '.' || last_name || '.' || i) || '@example.net',
       '+1 202-555-' || lpad(i::text, 4, '0'),
       (ARRAY['Northwind Traders', 'Contoso', 'Fabrikam', 'Tailspin Toys', 'Wide World Importers',
              'Adventure Works', 'Litware', 'Proseware', 'Fourth Coffee', 'Lucerne Publishing',
              'Margie''s Travel', 'Alpine Ski House', 'Blue Yonder Airlines', 'Coho Winery',
              'Graphic Design Institute', 'Humongous Insurance', 'Trey Research', 'Woodgrove Bank',
              'Southridge Video', 'City Power & Light', 'Consolidated Messenger', 'Wingtip Toys',
              'School of Fine Art', 'VanArsdel', 'Relecloud'])[1 + i % 25],
       (ARRAY['London', 'Dublin', 'Berlin', 'Madrid', 'Toronto',
              'Chicago', 'Sydney', 'Amsterdam', 'Denver', 'Singapore'])[1 + i % 10],
       'lead'
  FROM generate_series(1, 500) AS i
 CROSS JOIN LATERAL (
       SELECT (ARRAY['Olivia', 'Liam', 'Emma', 'Noah', 'Ava', 'Elijah', 'Sofia', 'Lucas',
                     'Mia', 'Mateo', 'Isla', 'Arjun', 'Chloe', 'Kenji', 'Amara', 'Felix',
                     'Nora', 'Omar', 'Zoe', 'Hugo'])[1 + i % 20],
              (ARRAY['Smith', 'Johnson', 'Brown', 'Garcia', 'Miller', 'Davis', 'Wilson',
                     'Anderson', 'Thomas', 'Moore', 'Jackson', 'White', 'Harris', 'Clark',
                     'Lewis', 'Walker', 'Young', 'King', 'Wright', 'Scott', 'Green', 'Baker',
                     'Adams', 'Nelson', 'Hill'])[1 + (i / 20) % 25]
       ) AS names (first_name, last_name);
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Edits. Each one sets updated_at as the application does; it is ignored, so the events
-- list only the columns that really changed. --------------------------------------------
BEGIN;
SET LOCAL audit.actor = 'carol@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.contacts
   SET email = 'maria.gonzalez@acmecorp.example', updated_at = now()
 WHERE email = 'maria.gonzalez@acme.example';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Lars moved to the Oslo office.
BEGIN;
SET LOCAL audit.actor = 'dave@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.contacts
   SET phone = '+47 22-555-0148', city = 'Oslo', updated_at = now()
 WHERE email = 'lars.eriksson@nordicfreight.example';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.contacts
   SET city = 'Porto', updated_at = now()
 WHERE email = 'tomas.silva@atlantico.example';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Groups. ---------------------------------------------------------------------------------
BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.groups (name, description)
VALUES ('VIP', 'Key accounts: a named agent answers within the hour'),
       ('Newsletter', 'Opted in to the monthly newsletter'),
       ('Churn risk', 'Customers whose usage or renewals are slipping');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'carol@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.group_members (group_id, contact_id)
SELECT g.id, c.id
  FROM crm.groups AS g, crm.contacts AS c
 WHERE g.name = 'VIP'
   AND c.email IN ('maria.gonzalez@acmecorp.example', 'aiko.tanaka@initech.example',
                   'priya.raman@umbrella.example', 'sophie.martin@wayne.example');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'dave@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.group_members (group_id, contact_id)
SELECT g.id, c.id
  FROM crm.groups AS g, crm.contacts AS c
 WHERE g.name = 'Churn risk'
   AND c.email IN ('lars.eriksson@nordicfreight.example', 'fatima.alsayed@hooli.example',
                   'tomas.silva@atlantico.example');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Two trade-show accounts signed: their 40 imported contacts become customers, one
-- statement, 40 update events.
BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.contacts
   SET lifecycle_stage = 'customer', updated_at = now()
 WHERE email LIKE '%@example.net'
   AND company IN ('Northwind Traders', 'Contoso');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Imported contacts met at the London and Dublin shows opted in to the newsletter (100 rows).
BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
INSERT INTO crm.group_members (group_id, contact_id)
SELECT g.id, c.id
  FROM crm.groups AS g, crm.contacts AS c
 WHERE g.name = 'Newsletter'
   AND c.email LIKE '%@example.net'
   AND c.city IN ('London', 'Dublin');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- A save with no real change: only updated_at moves, and updated_at is ignored, so this
-- records no event.
BEGIN;
SET LOCAL audit.actor = 'dave@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.contacts
   SET updated_at = now()
 WHERE email = 'james.obrien@globex.example';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- A change through the public API: the request's id and the end user's address go into the
-- event's context. audit.set_actor sets all three settings; PERFORM in a DO block runs it
-- without printing a row, and its SET LOCAL still holds until COMMIT.
BEGIN;
DO $$
BEGIN
    PERFORM audit.set_actor('dave@example.com', 'api',
                            '{"request_id": "req-7f3a", "ip": "203.0.113.24"}'::jsonb,
                            tenant => 'acme');
END
$$;
UPDATE crm.contacts
   SET phone = '+1 212-555-0186', lifecycle_stage = 'prospect', updated_at = now()
 WHERE first_name = 'Daniel' AND last_name = 'Kim';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Carol exports the VIP list. The database cannot see an export, so the application logs
-- it (a DO block again, so that psql prints nothing).
BEGIN;
SET LOCAL audit.actor = 'carol@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DO $$
BEGIN
    PERFORM audit.log_event('contact', 'export', NULL,
                            jsonb_build_object('rows', (SELECT count(*)
                                                          FROM crm.group_members AS m
                                                          JOIN crm.groups AS g ON g.id = m.group_id
                                                         WHERE g.name = 'VIP'),
                                               'group', 'VIP',
                                               'format', 'csv'));
END
$$;
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Membership removals. ----------------------------------------------------------------------
BEGIN;
SET LOCAL audit.actor = 'carol@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DELETE FROM crm.group_members AS m
 USING crm.groups AS g, crm.contacts AS c
 WHERE g.id = m.group_id AND c.id = m.contact_id
   AND g.name = 'VIP' AND c.email = 'priya.raman@umbrella.example';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- An unsubscribe.
BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DELETE FROM crm.group_members AS m
 USING crm.groups AS g, crm.contacts AS c
 WHERE g.id = m.group_id AND c.id = m.contact_id
   AND g.name = 'Newsletter' AND c.email = 'liam.johnson.21@example.net';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Contact deletions. ------------------------------------------------------------------------
BEGIN;
SET LOCAL audit.actor = 'dave@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DELETE FROM crm.contacts
 WHERE first_name = 'Dan' AND last_name = 'Kim';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- An erasure request: the event keeps the deleted row, for the audit, not for the CRM.
BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DELETE FROM crm.contacts
 WHERE email = 'kenji.wilson.133@example.net';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.groups
   SET name = 'At risk', description = 'Accounts to call this quarter', updated_at = now()
 WHERE name = 'Churn risk';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- User administration. ----------------------------------------------------------------------
-- Carol is promoted: the role change and her new rights commit together, one transaction.
BEGIN;
SET LOCAL audit.actor = 'alice@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.users
   SET role = 'manager', updated_at = now()
 WHERE email = 'carol@example.com';
INSERT INTO crm.user_permissions (user_id, permission)
SELECT id, p.permission
  FROM crm.users, (VALUES ('contacts.import'), ('groups.manage')) AS p (permission)
 WHERE email = 'carol@example.com';
-- Managers no longer take tickets from the support queue.
DELETE FROM crm.user_permissions
 WHERE permission = 'queue.agent'
   AND user_id = (SELECT id FROM crm.users WHERE email = 'carol@example.com');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Carol updates her own profile.
BEGIN;
SET LOCAL audit.actor = 'carol@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.users
   SET name = 'Carol Nguyen-Park', updated_at = now()
 WHERE email = 'carol@example.com';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Bob changes his password: the event says password_hash changed, and stores
-- "[redacted]" in place of both hashes.
BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.users
   SET password_hash = '$2b$12$Nn4bV8cX2zL6kJ0hG3fD7sA1pO5iU9yT4rE8wQ2mN6bV0cX3zL7k',
       updated_at = now()
 WHERE email = 'bob@example.com';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'bob@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DO $$
BEGIN
    PERFORM audit.log_event('contact', 'export', NULL,
                            jsonb_build_object('rows', (SELECT count(*)
                                                          FROM crm.group_members AS m
                                                          JOIN crm.groups AS g ON g.id = m.group_id
                                                         WHERE g.name = 'Newsletter'),
                                               'group', 'Newsletter',
                                               'format', 'xlsx'));
END
$$;
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- The group goes; its memberships go with it (ON DELETE CASCADE), and each removal is an
-- event of its own under the group.
BEGIN;
SET LOCAL audit.actor = 'alice@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DELETE FROM crm.groups
 WHERE name = 'At risk';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'alice@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
UPDATE crm.users
   SET email = 'dave.okafor@example.com', updated_at = now()
 WHERE email = 'dave@example.com';
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

-- Erin left the company; her permission rows go with her, each recorded under her user.
BEGIN;
SET LOCAL audit.actor = 'alice@example.com';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'acme';
DELETE FROM crm.users
 WHERE email = 'erin@example.com';
COMMIT;

-- Globex, the CRM's second customer organization: its own admin, users and contacts. Its
-- admins see only these events in the application's Audit Log (make demo prints a link).
BEGIN;
SET LOCAL audit.actor = 'gina@globex.example';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'globex';
INSERT INTO crm.users (account_id, name, email, role)
VALUES ('globex', 'Gina Rossi', 'gina@globex.example', 'admin'),
       ('globex', 'Hank Meyer', 'hank@globex.example', 'agent');
INSERT INTO crm.user_permissions (user_id, permission)
SELECT id, 'contacts.export' FROM crm.users WHERE email = 'hank@globex.example';
INSERT INTO crm.contacts (account_id, first_name, last_name, email, company, city, lifecycle_stage)
VALUES ('globex', 'Olga', 'Petrova', 'olga.petrova@vandelay.example', 'Vandelay Industries', 'New York', 'customer'),
       ('globex', 'Kwame', 'Mensah', 'kwame.mensah@soylent.example', 'Soylent', 'Accra', 'lead');
COMMIT;
DO $$ BEGIN PERFORM pg_sleep(coalesce(nullif(current_setting('demo.pause', true), ''), '1')::float8); END $$;

BEGIN;
SET LOCAL audit.actor = 'hank@globex.example';
SET LOCAL audit.source = 'manual';
SET LOCAL audit.tenant = 'globex';
UPDATE crm.contacts
   SET lifecycle_stage = 'prospect', updated_at = now()
 WHERE email = 'kwame.mensah@soylent.example';
INSERT INTO crm.groups (account_id, name, description)
VALUES ('globex', 'Globex key accounts', 'Accounts with a named owner');
INSERT INTO crm.group_members (group_id, contact_id)
SELECT g.id, c.id FROM crm.groups AS g, crm.contacts AS c
 WHERE g.name = 'Globex key accounts' AND c.account_id = 'globex';
DO $$ BEGIN PERFORM audit.log_event('contact', 'export', NULL, '{"rows": 2, "format": "csv"}'); END $$;
COMMIT;

-- The tracked CRM tables of the dashboard benchmark (so audit.report's membership summaries
-- and the Entity filter see real tracked tables). Nothing is written to them: the events come
-- from events.sql.
CREATE SCHEMA crm;
CREATE TABLE crm.contacts (id bigint PRIMARY KEY, name text, email text, phone text);
CREATE TABLE crm.groups (id bigint PRIMARY KEY, name text);
CREATE TABLE crm.group_members (group_id bigint, contact_id bigint,
                                PRIMARY KEY (group_id, contact_id));
CREATE TABLE crm.users (id bigint PRIMARY KEY, name text, email text, role text);
SELECT audit.track('crm.contacts', 'contact');
SELECT audit.track('crm.groups', 'group');
SELECT audit.track('crm.group_members', 'group', subject_column => 'group_id');
SELECT audit.track('crm.users', 'user');

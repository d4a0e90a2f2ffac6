-- Demo activity: application users acting through one database login.
BEGIN;
SELECT audit.set_actor('alice@example.com', 'manual');
INSERT INTO crm.contacts (name, email) VALUES ('Ann Lee', 'ann@example.com');
COMMIT;

BEGIN;
SELECT audit.set_actor('bob@example.com');
UPDATE crm.contacts SET email = 'ann.lee@example.com', updated_at = now() WHERE name = 'Ann Lee';
COMMIT;

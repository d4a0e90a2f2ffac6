-- Demo CRM: users of the application, their contacts and contact groups, tracked by
-- audit_trail. Runs as a superuser in a fresh database; the application's users are not
-- database roles, they are named per transaction with audit.set_actor (see activity.sql).
-- Two customer organizations share the CRM (acme and globex): users, contacts and groups
-- name theirs in account_id, and each transaction names the one it acts for.
CREATE EXTENSION IF NOT EXISTS audit_trail;

CREATE SCHEMA crm;

-- People who sign in to the CRM.
CREATE TABLE crm.users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    text NOT NULL DEFAULT 'acme',
    name          text NOT NULL,
    email         text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('admin', 'manager', 'agent', 'viewer')),
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Extra rights on top of a user's role; they go with the user.
CREATE TABLE crm.user_permissions (
    user_id    bigint NOT NULL REFERENCES crm.users ON DELETE CASCADE,
    permission text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, permission)
);

CREATE TABLE crm.contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      text NOT NULL DEFAULT 'acme',
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    email           text,
    phone           text,
    company         text,
    city            text,
    lifecycle_stage text NOT NULL DEFAULT 'lead'
                    CHECK (lifecycle_stage IN ('lead', 'prospect', 'customer', 'churned')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crm.groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  text NOT NULL DEFAULT 'acme',
    name        text NOT NULL UNIQUE,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Deleting a group or a contact removes its memberships.
CREATE TABLE crm.group_members (
    group_id   bigint NOT NULL REFERENCES crm.groups ON DELETE CASCADE,
    contact_id bigint NOT NULL REFERENCES crm.contacts ON DELETE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, contact_id)
);

-- Tracking. A DO block, because audit.track returns void and psql would print an empty
-- row for each SELECT of it.
DO $$
BEGIN
    -- updated_at is bookkeeping: a save that changes nothing else is not an event.
    -- Each row's organization is recorded with its events (memberships and permissions,
    -- which have none, take the transaction's).
    PERFORM audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}',
                        tenant_column => 'account_id');
    PERFORM audit.track('crm.groups', 'group', ignore_columns => '{updated_at}',
                        tenant_column => 'account_id');
    -- Memberships are filed under their group, so a group's history shows who joined and left.
    PERFORM audit.track('crm.group_members', 'group', subject_column => 'group_id');
    -- A password change is recorded, but never the hash itself.
    PERFORM audit.track('crm.users', 'user',
                        ignore_columns => '{updated_at}',
                        redact_columns => '{password_hash}',
                        tenant_column => 'account_id');
    -- Permission grants and revocations are filed under the user who gains or loses them.
    PERFORM audit.track('crm.user_permissions', 'user', subject_column => 'user_id');
END
$$;

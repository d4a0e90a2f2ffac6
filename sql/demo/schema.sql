-- Demo CRM: contacts, tracked by audit_trail.
CREATE EXTENSION IF NOT EXISTS audit_trail;

CREATE SCHEMA crm;
CREATE TABLE crm.contacts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    email      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}');

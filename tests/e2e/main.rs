//! End-to-end tests: each test gets a fresh database on one shared throwaway cluster.

mod alert;
mod api;
mod api_conformance;
mod archive;
mod attribution;
mod backup;
mod bad_input;
mod bypass;
mod capture;
mod columns;
mod concurrency;
mod conninfo;
mod contract;
mod csv_cells;
mod dashboard;
mod dashboard_summary;
mod dashboard_views;
mod ddl;
mod embed;
mod export;
mod follow;
mod follow_status;
mod hostile_db;
mod integrity;
mod integrity_retention;
mod lifetime;
mod overview;
mod replication;
mod report;
mod search;
mod security;
mod signin_throttle;
mod standby;
mod surface;
mod tenant;
mod tls;
mod trust;
mod undo;
mod upgrade;
mod wal_capture;
mod wal_portable;
mod wal_readers;
mod wal_service;

use audit_trail_tests::TestDb;

/// A database with a tracked `crm.contacts` table: `updated_at` ignored, `password_hash`
/// redacted.
pub fn contacts_db() -> (TestDb, postgres::Client) {
    let db = TestDb::new();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE SCHEMA crm;
             CREATE TABLE crm.contacts (
                 id            bigserial PRIMARY KEY,
                 name          text NOT NULL,
                 email         text,
                 phone         text,
                 password_hash text,
                 updated_at    timestamptz NOT NULL DEFAULT now()
             );
             SELECT audit.track('crm.contacts', 'contact',
                                ignore_columns => '{updated_at}',
                                redact_columns => '{password_hash}');",
        )
        .expect("create crm.contacts");
    (db, client)
}

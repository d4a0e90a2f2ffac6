//! Capture stays correct when a tracked table changes shape or name.

use audit_trail_tests::events;
use serde_json::json;

use crate::contacts_db;

#[test]
fn add_drop_and_rename_columns_after_tracking() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name, phone, password_hash) VALUES (1, 'a', '1', 'pw');
         ALTER TABLE crm.contacts ADD COLUMN city text DEFAULT 'Lyon';
         UPDATE crm.contacts SET city = 'Paris';
         ALTER TABLE crm.contacts DROP COLUMN phone;
         UPDATE crm.contacts SET name = 'b';
         ALTER TABLE crm.contacts RENAME COLUMN password_hash TO secret;
         ALTER TABLE crm.contacts RENAME COLUMN updated_at TO modified_at;
         UPDATE crm.contacts SET secret = 'pw2';
         UPDATE crm.contacts SET modified_at = now() + interval '1 day';",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 4, "{ev:#?}");
    assert_eq!(
        ev[1].changed_fields.as_deref(),
        Some(&["city".to_string()][..])
    );
    assert_eq!(ev[1].old_data, Some(json!({"city": "Lyon"})));
    let after_drop = ev[2].new_data.as_ref().unwrap();
    assert!(after_drop.get("phone").is_none());
    assert_eq!(after_drop["city"], "Paris");
    // the renamed column is still redacted, the renamed ignored column still ignored
    assert_eq!(
        ev[3].changed_fields.as_deref(),
        Some(&["secret".to_string()][..])
    );
    assert_eq!(ev[3].new_data.as_ref().unwrap()["secret"], "[redacted]");
    let settings: (Vec<String>, Vec<String>) = c
        .query_one(
            "SELECT ignore_columns, redact_columns FROM audit.tracked",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(
        settings,
        (vec!["modified_at".to_string()], vec!["secret".to_string()])
    );
}

#[test]
fn dropping_the_subject_column_is_refused_and_ignored_columns_leave_the_settings() {
    let (_db, mut c) = contacts_db();
    let err = c
        .batch_execute("ALTER TABLE crm.contacts DROP COLUMN id")
        .unwrap_err();
    assert!(
        audit_trail_tests::error_text(&err).contains("subject"),
        "{}",
        audit_trail_tests::error_text(&err)
    );
    c.batch_execute("ALTER TABLE crm.contacts DROP COLUMN updated_at")
        .unwrap();
    let ignored: Vec<String> = c
        .query_one("SELECT ignore_columns FROM audit.tracked", &[])
        .unwrap()
        .get(0);
    assert!(ignored.is_empty());
    c.batch_execute("INSERT INTO crm.contacts (name) VALUES ('still captured')")
        .unwrap();
    assert_eq!(events(&mut c).len(), 1);
}

#[test]
fn renamed_table_and_schema_show_in_later_events_and_drop_table_forgets_it() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (name) VALUES ('a');
         ALTER TABLE crm.contacts RENAME TO people;
         INSERT INTO crm.people (name) VALUES ('b');
         ALTER SCHEMA crm RENAME TO sales;
         INSERT INTO sales.people (name) VALUES ('c');",
    )
    .unwrap();
    let names: Vec<_> = events(&mut c)
        .into_iter()
        .map(|e| e.table_name.unwrap())
        .collect();
    assert_eq!(names, ["crm.contacts", "crm.people", "sales.people"]);
    c.batch_execute("DROP TABLE sales.people").unwrap();
    let tracked: i64 = c
        .query_one("SELECT count(*) FROM audit.tracked", &[])
        .unwrap()
        .get(0);
    assert_eq!(tracked, 0);
}

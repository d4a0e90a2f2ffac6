//! Bad input gets one clear error naming the problem, and nothing is left half-installed.

use audit_trail_tests::TestDb;

fn error_of(c: &mut postgres::Client, sql: &str) -> (String, String) {
    let err = c.batch_execute(sql).expect_err(sql);
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a server error: {err}"));
    (db.code().code().to_string(), db.message().to_string())
}

fn nothing_installed(c: &mut postgres::Client) {
    let settings: i64 = c
        .query_one("SELECT count(*) FROM audit.tracked", &[])
        .unwrap()
        .get(0);
    let triggers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_trail_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!((settings, triggers), (0, 0), "track left something behind");
}

fn db_with_tables() -> (TestDb, postgres::Client) {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE contacts (id int PRIMARY KEY, email text);
         CREATE TABLE notes (body text);
         CREATE VIEW contact_emails AS SELECT email FROM contacts;
         CREATE MATERIALIZED VIEW contact_count AS SELECT count(*) FROM contacts;",
    )
    .unwrap();
    (db, c)
}

#[test]
fn track_refuses_what_is_not_a_table() {
    let (_db, mut c) = db_with_tables();
    let (code, msg) = error_of(&mut c, "SELECT audit.track('contact_emails', 'contact')");
    assert_eq!(code, "42809");
    assert_eq!(
        msg,
        "public.contact_emails is a view, not a table: only tables can be tracked"
    );
    let (_, msg) = error_of(&mut c, "SELECT audit.track('contact_count', 'contact')");
    assert!(msg.contains("materialized view"), "{msg}");
    nothing_installed(&mut c);
}

#[test]
fn track_of_a_missing_table_names_it() {
    let (_db, mut c) = db_with_tables();
    let (code, msg) = error_of(&mut c, "SELECT audit.track('no_such_table', 'contact')");
    assert_eq!(code, "42P01");
    assert!(msg.contains("no_such_table"), "{msg}");
}

#[test]
fn track_of_a_table_without_key_asks_for_a_subject_column() {
    let (_db, mut c) = db_with_tables();
    let (code, msg) = error_of(&mut c, "SELECT audit.track('notes', 'note')");
    assert_eq!(code, "42P17");
    assert!(
        msg.contains("no primary key") && msg.contains("subject_column"),
        "{msg}"
    );
    nothing_installed(&mut c);
    c.batch_execute("SELECT audit.track('notes', 'note', subject_column => 'body')")
        .unwrap();
}

#[test]
fn track_names_an_unknown_column() {
    let (_db, mut c) = db_with_tables();
    for (param, sql) in [
        (
            "ignore_columns",
            "SELECT audit.track('contacts', 'contact', ignore_columns => '{updated_at}')",
        ),
        (
            "redact_columns",
            "SELECT audit.track('contacts', 'contact', redact_columns => '{email,pasword}')",
        ),
        (
            "subject_column",
            "SELECT audit.track('contacts', 'contact', subject_column => 'uuid')",
        ),
    ] {
        let (code, msg) = error_of(&mut c, sql);
        assert_eq!(code, "42703", "{sql}");
        assert!(
            msg.contains(param) && msg.contains("public.contacts"),
            "{msg}"
        );
        nothing_installed(&mut c);
    }
    let (_, msg) = error_of(
        &mut c,
        "SELECT audit.track('contacts', 'contact', redact_columns => '{id}')",
    );
    assert!(msg.contains("subject"), "{msg}");
    let (_, msg) = error_of(&mut c, "SELECT audit.track('contacts', '  ')");
    assert_eq!(msg, "entity must not be empty");
    nothing_installed(&mut c);
}

#[test]
fn a_failed_retrack_keeps_the_previous_settings() {
    let (_db, mut c) = db_with_tables();
    c.batch_execute("SELECT audit.track('contacts', 'contact')")
        .unwrap();
    error_of(
        &mut c,
        "SELECT audit.track('contacts', 'person', ignore_columns => '{nope}')",
    );
    let entity: String = c
        .query_one("SELECT entity FROM audit.tracked", &[])
        .unwrap()
        .get(0);
    assert_eq!(entity, "contact");
    c.batch_execute("INSERT INTO contacts VALUES (1, 'a')")
        .unwrap();
}

#[test]
fn a_context_that_is_not_a_json_object_is_refused_with_a_clear_error() {
    let (_db, mut c) = db_with_tables();
    c.batch_execute("SELECT audit.track('contacts', 'contact')")
        .unwrap();
    for bad in ["not json", "[1, 2]", "{\"unterminated\": "] {
        let sql = format!(
            "BEGIN; SET LOCAL audit.context = '{bad}'; INSERT INTO contacts VALUES (1, 'a'); COMMIT;"
        );
        let (code, msg) = error_of(&mut c, &sql);
        assert_eq!(code, "22P02", "{bad}");
        assert!(
            msg.starts_with("audit.context must be a JSON object"),
            "{msg}"
        );
        c.batch_execute("ROLLBACK").unwrap();
    }
    let count: i64 = c
        .query_one("SELECT count(*) FROM contacts", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "the change must not commit without its event");
}

#[test]
fn a_misspelled_audit_setting_is_an_error() {
    let (_db, mut c) = db_with_tables();
    // load the library, which reserves the audit.* prefix
    c.batch_execute("SELECT audit.track('contacts', 'contact')")
        .unwrap();
    let (_, msg) = error_of(&mut c, "SET audit.actr = 'alice'");
    assert!(msg.contains("audit.actr"), "{msg}");
}

#[test]
fn a_typo_in_an_audit_setting_is_reported_in_a_fresh_backend() {
    let (db, _c) = crate::contacts_db();
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = notices.clone();
    let mut config: postgres::Config = db.conninfo("postgres").parse().unwrap();
    config.notice_callback(move |n| seen.lock().unwrap().push(n.message().to_owned()));
    // A new connection: the library is not loaded until the first capture.
    let mut fresh = config.connect(postgres::NoTls).unwrap();
    let outcome = fresh.batch_execute(
        "BEGIN; SET LOCAL audit.actr = 'alice@example.com';
         INSERT INTO crm.contacts (name) VALUES ('Ann'); COMMIT;",
    );
    let notices = notices.lock().unwrap().clone();
    match outcome {
        Err(e) => assert!(
            audit_trail_tests::error_text(&e).contains("audit.actr"),
            "{}",
            audit_trail_tests::error_text(&e)
        ),
        Ok(()) => assert!(
            notices.iter().any(|n| n.contains("audit.actr")),
            "the typo went unreported: {notices:?}"
        ),
    }
}

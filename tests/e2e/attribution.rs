//! "Who" means what it says: an event names the actor its own transaction set, whatever a
//! table owner's trigger, a pooled connection's session settings, a database default or a
//! superuser's SET SESSION AUTHORIZATION would make it say; a renamed role is named as it is
//! called now; and one statement over wide rows keeps a backend's memory flat.

use audit_trail_tests::{error_text, sqlstate, TestDb};

/// A table its owner may track, written by an application role.
struct Shop {
    db: TestDb,
    owner: String,
    app: String,
}

fn shop() -> Shop {
    let db = TestDb::new();
    let owner = db.create_role("owner", "LOGIN");
    let app = db.create_role("app", "LOGIN");
    db.client()
        .batch_execute(&format!(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             ALTER TABLE contacts OWNER TO {owner};
             CREATE SCHEMA owned AUTHORIZATION {owner};
             GRANT ALL ON contacts TO {app};
             SELECT audit.track('contacts', 'contact');
             INSERT INTO contacts SELECT g, 'n' || g FROM generate_series(1, 10) g;"
        ))
        .expect("set-up");
    Shop { db, owner, app }
}

fn last_delete(db: &TestDb) -> (String, String, Option<serde_json::Value>) {
    let row = db
        .client()
        .query_one(
            "SELECT actor, source, context FROM audit.events
              WHERE entity = 'contact' AND action = 'delete' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .expect("a delete event");
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn a_table_owners_trigger_cannot_choose_the_actor_and_its_triggers_are_recorded() {
    let s = shop();
    // The 0.2.0 attack: the owner's trigger rewrites whom the writer's statements name.
    s.db.client_as(&s.owner)
        .batch_execute(
            "CREATE FUNCTION owned.impersonate() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM set_config('audit.actor', 'carol', true);
                 PERFORM set_config('audit.source', 'sync', true);
                 RETURN NULL;
             END $$;
             CREATE TRIGGER impersonate BEFORE DELETE ON contacts
                 FOR EACH STATEMENT EXECUTE FUNCTION owned.impersonate();",
        )
        .expect("the owner's trigger");
    let recorded: serde_json::Value =
        s.db.client()
            .query_one(
                "SELECT details FROM audit.events WHERE entity = 'contact' AND action = 'alter'
              ORDER BY id DESC LIMIT 1",
                &[],
            )
            .expect("adding the trigger is an event")
            .get(0);
    assert_eq!(recorded["trigger"], "impersonate", "{recorded}");
    let mut app = s.db.client_as(&s.app);
    let err = app
        .batch_execute(
            "BEGIN;
             SELECT audit.set_actor('dave', source => 'api', context => '{\"request\": \"r-9\"}');
             DELETE FROM contacts WHERE id = 1;",
        )
        .expect_err("attribution cannot be set inside a trigger");
    assert!(
        error_text(&err).contains("cannot be set inside a trigger"),
        "{}",
        error_text(&err)
    );
    app.batch_execute("ROLLBACK").expect("rollback");
    // Nothing was deleted, nothing names carol; dropped, the trigger is recorded too.
    let carol: i64 =
        s.db.client()
            .query_one(
                "SELECT count(*) FROM audit.events WHERE actor = 'carol'",
                &[],
            )
            .expect("count")
            .get(0);
    assert_eq!(carol, 0);
    s.db.client_as(&s.owner)
        .batch_execute("DROP TRIGGER impersonate ON contacts")
        .expect("drop");
    app.batch_execute(
        "BEGIN; SELECT audit.set_actor('dave', source => 'api');
         DELETE FROM contacts WHERE id = 1; COMMIT;",
    )
    .expect("dave's delete");
    let (actor, source, _) = last_delete(&s.db);
    assert_eq!((actor.as_str(), source.as_str()), ("dave", "api"));
    let dropped: i64 =
        s.db.client()
            .query_one(
                "SELECT count(*) FROM audit.events WHERE action = 'alter'
              AND details ->> 'command' = 'DROP TRIGGER' AND details ->> 'trigger' = 'impersonate'",
                &[],
            )
            .expect("count")
            .get(0);
    assert_eq!(dropped, 1);
    // A rule that would do the same before capture runs is refused outright.
    let err =
        s.db.client_as(&s.owner)
            .batch_execute(
                "CREATE RULE impersonate AS ON DELETE TO contacts
                 DO ALSO SELECT set_config('audit.actor', 'carol', true)",
            )
            .expect_err("no rule on a tracked table");
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));
}

#[test]
fn session_settings_and_defaults_name_no_one() {
    let s = shop();
    // Client A of a pool sets attribution for the session, not the transaction; client B's
    // delete on the same connection, without set_actor, must not carry A's name.
    let mut pooled = s.db.client_as(&s.app);
    pooled
        .batch_execute(
            "SET audit.actor = 'alice'; SET audit.source = 'import';
             SET audit.context = '{\"request\": \"A\"}';",
        )
        .expect("session settings");
    pooled
        .batch_execute("DELETE FROM contacts WHERE id = 2")
        .expect("B's delete");
    let (actor, source, context) = last_delete(&s.db);
    assert_eq!(
        (actor.as_str(), source.as_str()),
        (s.app.as_str(), "manual")
    );
    assert_eq!(context, None);
    // SET LOCAL inside the transaction is what counts.
    pooled
        .batch_execute(
            "BEGIN; SET LOCAL audit.actor = 'bob'; DELETE FROM contacts WHERE id = 3; COMMIT;",
        )
        .expect("SET LOCAL");
    assert_eq!(last_delete(&s.db).0, "bob");
    // Defaults of the database or a role are refused where they are made, in a session that
    // has the library loaded; one that has not cannot check them, and they are then ignored
    // where they would apply (with a warning when the library loads).
    let mut loaded = s.db.client();
    loaded.batch_execute("LOAD 'audit_trail'").expect("load");
    for sql in [
        format!("ALTER DATABASE {} SET audit.actor = 'bob'", s.db.name),
        format!("ALTER ROLE {} SET audit.actor = 'bob'", s.app),
        format!(
            "ALTER ROLE {} IN DATABASE {} SET audit.source = 'api'",
            s.app, s.db.name
        ),
    ] {
        let err = loaded.batch_execute(&sql).expect_err(&sql);
        assert!(
            error_text(&err).contains("never as a default"),
            "{sql}: {}",
            error_text(&err)
        );
    }
    let mut unloaded = s.db.client();
    unloaded
        .batch_execute(&format!(
            "ALTER DATABASE {} SET audit.actor = 'bob';
             ALTER ROLE {} SET audit.source = 'api';",
            s.db.name, s.app
        ))
        .expect("not checked without the library");
    let mut fresh = s.db.client_as(&s.app);
    fresh
        .batch_execute("DELETE FROM contacts WHERE id = 8")
        .expect("a delete under the defaults");
    let (actor, source, _) = last_delete(&s.db);
    assert_eq!(
        (actor.as_str(), source.as_str()),
        (s.app.as_str(), "manual")
    );
    unloaded
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET audit.actor; ALTER ROLE {} RESET audit.source;",
            s.db.name, s.app
        ))
        .expect("reset");
}

#[test]
fn set_session_authorization_records_who_really_connected() {
    let s = shop();
    let clerk = s.db.create_role("clerk", "LOGIN");
    s.db.client()
        .batch_execute(&format!("GRANT ALL ON contacts TO {clerk}"))
        .expect("grant");
    // The 0.2.0 forgery: a superuser's delete filed under another role's name.
    s.db.client()
        .batch_execute(&format!(
            "SET SESSION AUTHORIZATION {clerk};
             BEGIN; SELECT audit.set_actor('x', context => '{{\"request\": \"r-1\"}}');
             DELETE FROM contacts WHERE id = 4; COMMIT;
             RESET SESSION AUTHORIZATION;"
        ))
        .expect("a superuser acting as clerk");
    let row =
        s.db.client()
            .query_one(
                "SELECT db_user, context FROM audit.events
              WHERE entity = 'contact' AND action = 'delete' ORDER BY id DESC LIMIT 1",
                &[],
            )
            .expect("the delete");
    let (db_user, context): (String, serde_json::Value) = (row.get(0), row.get(1));
    assert_eq!(
        db_user, clerk,
        "db_user is session_user, as the contract says"
    );
    assert_eq!(context["authenticated_role"], "postgres", "{context}");
    assert_eq!(
        context["request"], "r-1",
        "the application's context is kept"
    );
    // An application cannot claim that key itself.
    let err = s
        .db
        .client_as(&s.app)
        .batch_execute(
            "BEGIN; SELECT audit.set_actor('x', context => '{\"authenticated_role\": \"ceo\"}');
             DELETE FROM contacts WHERE id = 5;",
        )
        .expect_err("a reserved key");
    assert!(
        error_text(&err).contains("reserved"),
        "{}",
        error_text(&err)
    );
}

#[test]
fn a_role_renamed_while_connected_is_named_as_it_is_called_now() {
    let s = shop();
    let mut open = s.db.client_as(&s.app);
    open.batch_execute("DELETE FROM contacts WHERE id = 6")
        .expect("a first delete");
    let renamed = format!("{}_renamed", s.app);
    s.db.client()
        .batch_execute(&format!("ALTER ROLE {} RENAME TO {renamed}", s.app))
        .expect("rename");
    open.batch_execute("DELETE FROM contacts WHERE id = 7")
        .expect("a delete after the rename, on the same connection");
    let db_user: String =
        s.db.client()
            .query_one(
                "SELECT db_user FROM audit.events WHERE action = 'delete' ORDER BY id DESC LIMIT 1",
                &[],
            )
            .expect("the delete")
            .get(0);
    assert_eq!(db_user, renamed);
    s.db.client()
        .batch_execute(&format!("ALTER ROLE {renamed} RENAME TO {}", s.app))
        .expect("rename back");
}

/// The backend's peak resident memory (VmHWM), in kB.
fn peak_kb(client: &mut postgres::Client) -> u64 {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// An UPDATE of one small column over 300 rows of 4 MB each: 0.2.0 held a thousand row
/// images per batch in memory (each image is the whole row, uncompressed), 1.2 GB here;
/// batches are now bounded by bytes too. The bound asserted is a tenth of that, far above
/// the few tens of MB the backend needs, far below what an unbounded batch takes.
#[test]
fn one_statement_over_wide_rows_keeps_the_backends_memory_flat() {
    let db = TestDb::new();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE TABLE wide (id int PRIMARY KEY, big text, small int);
             SELECT audit.track('wide', 'wide');
             INSERT INTO wide SELECT g, repeat(md5(g::text), 131072), 0
               FROM generate_series(1, 300) AS g;",
        )
        .expect("300 rows of 4 MB");
    let mut writer = db.client();
    let before = peak_kb(&mut writer);
    writer
        .batch_execute("UPDATE wide SET small = 1")
        .expect("the update");
    let after = peak_kb(&mut writer);
    let events: i64 = client
        .query_one(
            "SELECT count(*) FROM audit.events WHERE entity = 'wide' AND action = 'update'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(events, 300);
    assert!(
        after < before + 120 * 1024,
        "the backend's peak grew from {before} kB to {after} kB"
    );
}

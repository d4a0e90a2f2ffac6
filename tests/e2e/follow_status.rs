//! `follow --status` when a transaction holds the stream back: it names the session (pid,
//! role, how long its transaction has been open) or the prepared transaction, and says when
//! the connected role cannot see other roles' transactions.

use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::TestDb;

fn status(conninfo: &str, consumer: &str) -> String {
    let out = run(command().args([
        "follow",
        "--db",
        conninfo,
        "--consumer",
        consumer,
        "--status",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// Rolls a prepared transaction back even if the test fails: left behind, it would hold
/// back every follower on the shared cluster.
struct PreparedGuard<'a> {
    db: &'a TestDb,
    gid: String,
}

impl Drop for PreparedGuard<'_> {
    fn drop(&mut self) {
        let _ = self
            .db
            .client()
            .batch_execute(&format!("ROLLBACK PREPARED '{}'", self.gid));
    }
}

#[test]
fn status_names_the_transactions_that_hold_the_stream_back() {
    let db = TestDb::new();
    let writer = db.create_role("writer", "LOGIN");
    let admin = db.create_role("admin", "LOGIN IN ROLE audit_admin");
    db.client()
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY);
             SELECT audit.track('items', 'item');
             GRANT INSERT ON items TO {writer};"
        ))
        .expect("a tracked table");
    let superuser = db.conninfo("postgres");
    let created = run(command().args([
        "follow",
        "--db",
        &superuser,
        "--consumer",
        "siem",
        "--reset",
    ]));
    assert_eq!(created.code, 0, "{}", created.stderr);

    // A session left idle in a transaction that holds an xid, then an event committed after
    // it: that event is held back.
    let mut open = db.client_as(&writer);
    open.batch_execute(
        "SET application_name = 'forgotten-tx';
         BEGIN; INSERT INTO items VALUES (1);",
    )
    .expect("an open transaction");
    let pid: i32 = open
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .expect("its pid")
        .get(0);
    db.client()
        .batch_execute("INSERT INTO items VALUES (2)")
        .expect("a committed event");

    // A superuser sees the session, its role, its age and state, and the way to bound it.
    let shown = status(&superuser, "siem");
    assert!(shown.contains("held back:"), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.contains(&format!("pid {pid} ")))
        .unwrap_or_else(|| panic!("pid {pid} not named:\n{shown}"));
    assert!(line.contains(&format!("role {writer}")), "{line}");
    assert!(line.contains("\"forgotten-tx\""), "{line}");
    assert!(line.contains("transaction open "), "{line}");
    assert!(!line.contains("unknown time"), "{line}");
    assert!(line.contains("idle in transaction"), "{line}");
    assert!(
        shown.contains("idle_in_transaction_session_timeout"),
        "{shown}"
    );

    // An audit admin without pg_monitor sees the pid, but not when its transaction started
    // or what it does: said so, with the grant that shows it.
    let as_admin = db.conninfo(&admin);
    let shown = status(&as_admin, "siem");
    let line = shown
        .lines()
        .find(|l| l.contains(&format!("pid {pid} ")))
        .unwrap_or_else(|| panic!("pid {pid} not named:\n{shown}"));
    assert!(
        line.contains("transaction open for an unknown time"),
        "{line}"
    );
    assert!(
        shown.contains(&format!(
            "role \"{admin}\" cannot see when other roles' transactions started"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("GRANT pg_monitor TO \"{admin}\"")),
        "{shown}"
    );
    // With pg_monitor, it can.
    db.client()
        .batch_execute(&format!("GRANT pg_monitor TO {admin}"))
        .expect("grant pg_monitor");
    let shown = status(&as_admin, "siem");
    let line = shown
        .lines()
        .find(|l| l.contains(&format!("pid {pid} ")))
        .unwrap_or_else(|| panic!("pid {pid} not named:\n{shown}"));
    assert!(line.contains("idle in transaction"), "{line}");
    assert!(!shown.contains("cannot see"), "{shown}");

    // A prepared transaction has no session: named by its gid.
    open.batch_execute("ROLLBACK")
        .expect("end the open transaction");
    let gid = format!("held_{}", db.name);
    let mut prepared = db.client();
    prepared
        .batch_execute(&format!(
            "BEGIN; INSERT INTO items VALUES (3); PREPARE TRANSACTION '{gid}';"
        ))
        .expect("a prepared transaction");
    let _guard = PreparedGuard {
        db: &db,
        gid: gid.clone(),
    };
    db.client()
        .batch_execute("INSERT INTO items VALUES (4)")
        .expect("a committed event");
    let shown = status(&superuser, "siem");
    assert!(
        shown.contains(&format!("prepared transaction '{gid}'")),
        "{shown}"
    );
}

//! Logical replication of a tracked table to a subscriber that also runs audit_trail: the
//! publisher's log is the record; the subscriber's apply records nothing (no second copy of
//! each change attributed to the subscription's owner).

use std::time::{Duration, Instant};

use audit_trail_tests::{events, TestDb};

const TABLE: &str = "CREATE SCHEMA app;
     CREATE TABLE app.accounts (id int PRIMARY KEY, email text);
     SELECT audit.track('app.accounts', 'user');";

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_subscriber_records_nothing_of_what_replication_applies() {
    let publisher = TestDb::new();
    let subscriber = TestDb::new();
    let mut p = publisher.client();
    let mut s = subscriber.client();
    p.batch_execute(TABLE).unwrap();
    s.batch_execute(TABLE).unwrap();
    // Publisher and subscriber share one cluster: the slot is made first, since CREATE
    // SUBSCRIPTION would wait for itself making one.
    let slot = format!("sub_{}", subscriber.name);
    p.batch_execute("CREATE PUBLICATION accounts FOR TABLE app.accounts")
        .unwrap();
    p.batch_execute(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ))
    .unwrap();
    s.batch_execute(&format!(
        "CREATE SUBSCRIPTION accounts CONNECTION '{}' PUBLICATION accounts
             WITH (create_slot = false, slot_name = '{slot}', copy_data = false);",
        publisher.conninfo("postgres")
    ))
    .unwrap();

    p.batch_execute(
        "BEGIN; SELECT audit.set_actor('alice@example.com');
         INSERT INTO app.accounts VALUES (1, 'a@x'), (2, 'b@x');
         UPDATE app.accounts SET email = 'c@x' WHERE id = 2;
         DELETE FROM app.accounts WHERE id = 1; COMMIT;",
    )
    .unwrap();
    wait_until("the subscriber to apply the changes", || {
        s.query_one("SELECT count(*) FROM app.accounts WHERE email = 'c@x'", &[])
            .map(|r| r.get::<_, i64>(0) == 1)
            .unwrap_or(false)
    });

    let published = events(&mut p);
    assert_eq!(published.len(), 4, "{published:#?}");
    assert!(published.iter().all(|e| e.actor == "alice@example.com"));
    let applied = events(&mut s);
    assert!(
        applied.is_empty(),
        "the subscriber recorded the apply: {applied:#?}"
    );

    // A change made on the subscriber itself is still captured there.
    s.batch_execute("INSERT INTO app.accounts VALUES (9, 'local@x')")
        .unwrap();
    assert_eq!(events(&mut s).len(), 1);

    s.batch_execute(
        "ALTER SUBSCRIPTION accounts DISABLE;
         ALTER SUBSCRIPTION accounts SET (slot_name = NONE);
         DROP SUBSCRIPTION accounts;",
    )
    .unwrap();
    wait_until("the slot to be released", || {
        p.batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
            .is_ok()
    });
}

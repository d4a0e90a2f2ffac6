//! Concurrent writers: every change is recorded exactly once.

use std::collections::HashSet;

use audit_trail_tests::events;

use crate::contacts_db;

#[test]
fn eight_connections_making_two_thousand_changes_each() {
    let (db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name) SELECT g, 'c' || g FROM generate_series(1, 8) g",
    )
    .unwrap();
    let baseline = events(&mut c).len();
    std::thread::scope(|s| {
        for writer in 1..=8i64 {
            let db = &db;
            s.spawn(move || {
                let mut client = db.client();
                for i in 0..2000i64 {
                    // a mix of single-row statements in their own transactions
                    match i % 4 {
                        0 => client
                            .execute(
                                "INSERT INTO crm.contacts (id, name) VALUES ($1, 'w')",
                                &[&(1000 + writer * 10_000 + i)],
                            )
                            .map(|_| ()),
                        1 | 2 => client
                            .execute(
                                "UPDATE crm.contacts SET phone = $2 WHERE id = $1",
                                &[&writer, &format!("{i}")],
                            )
                            .map(|_| ()),
                        _ => client
                            .execute(
                                "DELETE FROM crm.contacts WHERE id = $1",
                                &[&(1000 + writer * 10_000 + i - 3)],
                            )
                            .map(|_| ()),
                    }
                    .unwrap_or_else(|e| panic!("writer {writer} change {i}: {e}"));
                }
            });
        }
    });
    let ev = events(&mut c);
    assert_eq!(ev.len() - baseline, 16_000);
    let ids: HashSet<i64> = ev.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), ev.len(), "duplicate event ids");
    let per_action = |a: &str| ev[baseline..].iter().filter(|e| e.action == a).count();
    assert_eq!(
        (
            per_action("create"),
            per_action("update"),
            per_action("delete")
        ),
        (4000, 8000, 4000)
    );
}

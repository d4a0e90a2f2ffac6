//! The report views: one row per event with a readable summary, and one view per category.

use audit_trail_contract::categories::CATEGORIES;
use audit_trail_tests::TestDb;
use serde_json::json;

/// The demo CRM of `make demo`, with its scripted activity.
fn demo_db() -> (TestDb, postgres::Client) {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(include_str!("../../demo/schema.sql"))
        .expect("demo schema");
    // No pauses between the scenes here.
    c.batch_execute("SET demo.pause = 0").expect("demo.pause");
    c.batch_execute(include_str!("../../demo/activity.sql"))
        .expect("demo activity");
    (db, c)
}

fn rows(c: &mut postgres::Client, sql: &str) -> Vec<postgres::Row> {
    c.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", audit_trail_tests::error_text(&e)))
}

#[test]
fn summaries_read_as_sentences() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE contacts (id int PRIMARY KEY, email text, phone text);
         CREATE TABLE groups (id int PRIMARY KEY, name text);
         CREATE TABLE group_members (group_id int, contact_id int, PRIMARY KEY (group_id, contact_id));
         CREATE TABLE users (id int PRIMARY KEY, name text, email text, role text);
         CREATE TABLE user_permissions (user_id int, permission text, PRIMARY KEY (user_id, permission));
         SELECT audit.track('contacts', 'contact');
         SELECT audit.track('groups', 'group');
         SELECT audit.track('group_members', 'group', subject_column => 'group_id');
         SELECT audit.track('users', 'user');
         SELECT audit.track('user_permissions', 'user', subject_column => 'user_id');
         BEGIN; SET LOCAL audit.actor = 'bob@example.com'; SET LOCAL audit.source = 'import';
         INSERT INTO contacts VALUES (42, 'a@x', '1'); COMMIT;
         BEGIN; SET LOCAL audit.actor = 'bob@example.com';
         UPDATE contacts SET email = 'b@x', phone = '2'; DELETE FROM contacts; COMMIT;
         BEGIN; SET LOCAL audit.actor = 'carol@example.com';
         INSERT INTO groups VALUES (5, 'VIP'); INSERT INTO group_members VALUES (5, 100);
         DELETE FROM group_members; UPDATE groups SET name = 'VIPs'; DELETE FROM groups; COMMIT;
         BEGIN; SET LOCAL audit.actor = 'alice@example.com';
         INSERT INTO users VALUES (7, 'Dee', 'dee@x', 'agent');
         UPDATE users SET role = 'manager';
         INSERT INTO user_permissions VALUES (7, 'export');
         UPDATE users SET email = 'dee@y';
         DELETE FROM users; COMMIT;
         BEGIN; SET LOCAL audit.actor = 'carol@example.com';
         SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 120}'); COMMIT;
         TRUNCATE user_permissions;",
    )
    .unwrap();
    let summaries: Vec<String> = rows(
        &mut c,
        "SELECT summary FROM audit.report WHERE action <> 'track' ORDER BY id",
    )
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(
        summaries,
        [
            "bob@example.com created contact 42 (import)",
            "bob@example.com updated contact 42: email, phone",
            "bob@example.com deleted contact 42",
            "carol@example.com created group 5",
            "carol@example.com added contact_id 100 to group 5",
            "carol@example.com removed contact_id 100 from group 5",
            "carol@example.com updated group 5: name",
            "carol@example.com deleted group 5",
            "alice@example.com created user 7",
            "alice@example.com changed the role of user 7: role",
            "alice@example.com added permission export to user 7",
            "alice@example.com updated user 7: email",
            "alice@example.com deleted user 7",
            "carol@example.com exported 120 contacts",
            "postgres emptied public.user_permissions (every user in it deleted)",
        ]
    );
    // before/after are whole rows, for updates too
    let r = &rows(
        &mut c,
        "SELECT before, after FROM audit.report WHERE action = 'update' AND entity = 'contact'",
    )[0];
    assert_eq!(
        r.get::<_, serde_json::Value>(0),
        json!({"id": 42, "email": "a@x", "phone": "1"})
    );
    assert_eq!(
        r.get::<_, serde_json::Value>(1),
        json!({"id": 42, "email": "b@x", "phone": "2"})
    );
}

/// Each view holds exactly its category as the contract defines it (which the dashboard's tabs
/// and the Overview's chart use too), and the four are disjoint.
#[test]
fn category_views_hold_exactly_their_category() {
    let (_db, mut c) = demo_db();
    let mut seen = std::collections::BTreeSet::new();
    for category in CATEGORIES {
        let view = format!("audit.{}", category.view);
        let from_view: Vec<i64> = rows(&mut c, &format!("SELECT id FROM {view} ORDER BY id"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        let expected: Vec<i64> = rows(
            &mut c,
            &format!(
                "SELECT id FROM audit.events WHERE {} ORDER BY id",
                category.sql()
            ),
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
        assert!(!expected.is_empty(), "the demo has no {view} events");
        assert_eq!(from_view, expected, "{view}");
        for id in from_view {
            assert!(seen.insert(id), "event {id} is in two categories");
        }
    }
    // The demo exports contacts: an export of an entity is in no entity's view.
    let contact_exports: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE entity = 'contact' AND action = 'export'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(contact_exports > 0, "the demo exports no contacts");
}

#[test]
fn the_demo_covers_every_seed_category_with_who_and_when() {
    let (_db, mut c) = demo_db();
    let has = |c: &mut postgres::Client, view: &str, condition: &str| -> i64 {
        c.query_one(
            &format!(
                "SELECT count(*) FROM {view} WHERE {condition}
                   AND actor <> '' AND db_user = 'postgres' AND occurred_at <= now()"
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("{view} {condition}: {}", audit_trail_tests::error_text(&e)))
        .get(0)
    };
    let checks = [
        ("audit.contact_activity", "action = 'create' AND source = 'manual'"),
        ("audit.contact_activity", "action = 'create' AND source = 'import'"),
        ("audit.contact_activity", "action = 'update' AND changed_fields IS NOT NULL AND before IS NOT NULL AND after IS NOT NULL"),
        ("audit.contact_activity", "action = 'delete'"),
        ("audit.export_activity", "entity = 'contact'"),
        ("audit.group_activity", "action = 'update' AND table_name = 'crm.groups'"),
        ("audit.group_activity", "action = 'delete' AND table_name = 'crm.groups'"),
        ("audit.group_activity", "action = 'create' AND table_name = 'crm.group_members'"),
        ("audit.group_activity", "action = 'delete' AND table_name = 'crm.group_members'"),
        ("audit.user_activity", "action = 'update' AND 'name' = ANY (changed_fields)"),
        ("audit.user_activity", "action = 'update' AND 'email' = ANY (changed_fields)"),
        ("audit.user_activity", "action = 'update' AND 'role' = ANY (changed_fields)"),
        ("audit.user_activity", "table_name = 'crm.user_permissions'"),
        ("audit.user_activity", "action = 'delete' AND table_name = 'crm.users'"),
    ];
    for (view, condition) in checks {
        assert!(
            has(&mut c, view, condition) > 0,
            "no event in {view} where {condition}"
        );
    }
    let imported: i64 = c
        .query_one("SELECT count(*) FROM audit.contact_activity WHERE action = 'create' AND source = 'import'", &[])
        .unwrap()
        .get(0);
    assert_eq!(imported, 500);
    // the redacted password hash never appears
    let leaked: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.user_activity
              WHERE coalesce(new_data ->> 'password_hash', '[redacted]') <> '[redacted]'
                 OR coalesce(old_data ->> 'password_hash', '[redacted]') <> '[redacted]'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
}

#[test]
fn report_views_are_for_audit_admin_only() {
    let db = TestDb::new();
    let clerk = db.create_role("clerk", "LOGIN");
    let auditor = db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    for view in [
        "report",
        "contact_activity",
        "group_activity",
        "user_activity",
        "export_activity",
    ] {
        let err = db
            .client_as(&clerk)
            .query(&format!("SELECT * FROM audit.{view}"), &[])
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{view}");
        db.client_as(&auditor)
            .query(&format!("SELECT * FROM audit.{view}"), &[])
            .unwrap();
    }
}

/// The README's first query, the report's newest page, reads the events' time index and
/// stops after 50 rows: no sort of every event (a view with a CTE, never merged into the
/// query, sorted and summarized the whole log first: 0.7 s at 300,000 events).
#[test]
fn the_reports_newest_page_walks_the_time_index() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE contacts (id int PRIMARY KEY, name text);
         SELECT audit.track('contacts', 'contact');
         INSERT INTO contacts SELECT g, 'c' || g FROM generate_series(1, 20000) AS g;
         ANALYZE audit.events;",
    )
    .unwrap();
    let plan: serde_json::Value = c
        .query_one(
            "EXPLAIN (FORMAT JSON) SELECT occurred_at, summary, before, after FROM audit.report
              ORDER BY occurred_at DESC, id DESC LIMIT 50",
            &[],
        )
        .unwrap()
        .get(0);
    // No node sorts by time: the order comes from the index.
    fn sorts_by_time(node: &serde_json::Value) -> bool {
        let sorts = node["Node Type"] == "Sort"
            && node["Sort Key"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k.to_string().contains("occurred_at")));
        sorts
            || node["Plans"]
                .as_array()
                .is_some_and(|children| children.iter().any(sorts_by_time))
    }
    let top = &plan[0]["Plan"];
    assert_eq!(top["Node Type"], "Limit", "{plan}");
    assert!(!sorts_by_time(top), "{plan}");
}

/// The demo's two organizations: every event of its activity names acme or globex, and
/// globex's admins would see only globex's events (users, contacts, groups, memberships
/// and an export, none of acme's).
#[test]
fn the_demos_activity_belongs_to_its_two_organizations() {
    let (_db, mut c) = demo_db();
    let by_tenant: Vec<(Option<String>, i64)> = rows(
        &mut c,
        "SELECT tenant, count(*) FROM audit.events
          WHERE entity <> 'audit_log' GROUP BY tenant ORDER BY tenant",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let tenants: Vec<Option<&str>> = by_tenant.iter().map(|(t, _)| t.as_deref()).collect();
    assert_eq!(tenants, [Some("acme"), Some("globex")], "{by_tenant:?}");
    let globex: Vec<(String, String)> = rows(
        &mut c,
        "SELECT DISTINCT entity, action FROM audit.search(tenant => 'globex', page_size => 100)
          ORDER BY 1, 2",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let pairs: Vec<(&str, &str)> = globex
        .iter()
        .map(|(e, a)| (e.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("contact", "create"),
            ("contact", "export"),
            ("contact", "update"),
            ("group", "create"),
            ("user", "create")
        ]
    );
    let crossed: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE context ? 'acting_tenant'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        crossed, 0,
        "the demo's organizations keep to their own data"
    );
}

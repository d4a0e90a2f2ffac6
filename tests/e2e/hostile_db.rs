//! The sidecar in a database whose owner is hostile. The owner of a database owns `public`
//! and may set the database's `search_path`: a function or operator planted there that
//! PostgreSQL prefers over the built-in one would run with the rights of the audit admin
//! who reads the log (copying the log away, moving cursors, forging the export record).
//! Every sidecar session pins its `search_path` and schema-qualifies what it calls, so none
//! of them may ever run.

use audit_trail_tests::browser::{Dashboard, Http};
use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::TestDb;

const PASSWORD: &str = "correct-horse-7";

/// Functions and an operator a database owner can plant in `public`, each writing a line
/// `HIJACK <database> <name> by <session_user>` to the server log (a WARNING, so it works
/// inside the read-only transaction of an export too) and then doing what the built-in
/// does, as a real attacker's would. With the database's `search_path` put before
/// `pg_catalog`, even exact signatures of built-ins lose to them; on the default path,
/// `to_json(text[])` alone already wins over `pg_catalog.to_json(anyelement)`.
fn plant(db: &TestDb, owner: &str) {
    let marker = format!("HIJACK {}", db.name);
    let trap = |name: &str| format!("RAISE WARNING '{marker} {name} by %', session_user;");
    let sql = format!(
        "CREATE FUNCTION public.to_json(a text[]) RETURNS json LANGUAGE plpgsql AS $f$
         BEGIN {to_json} RETURN pg_catalog.to_json(a); END $f$;
         CREATE FUNCTION public.host(a inet) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN {host} RETURN pg_catalog.host(a); END $f$;
         CREATE FUNCTION public.array_to_string(a text[], s text) RETURNS text
             LANGUAGE plpgsql AS $f$
         BEGIN {array_to_string} RETURN pg_catalog.array_to_string(a, s); END $f$;
         CREATE FUNCTION public.format(f text, a text) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN {format} RETURN pg_catalog.format(f, a); END $f$;
         CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
         BEGIN {now} RETURN pg_catalog.now(); END $f$;
         CREATE FUNCTION public.to_regclass(a text) RETURNS regclass LANGUAGE plpgsql AS $f$
         BEGIN {to_regclass} RETURN pg_catalog.to_regclass(a); END $f$;
         CREATE FUNCTION public.pg_snapshot_xmin(s pg_snapshot) RETURNS xid8
             LANGUAGE plpgsql AS $f$
         BEGIN {pg_snapshot_xmin} RETURN pg_catalog.pg_snapshot_xmin(s); END $f$;
         CREATE FUNCTION public.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN {text_eq} RETURN a OPERATOR(pg_catalog.=) b; END $f$;
         CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq);
         ALTER DATABASE {db} SET search_path = public, pg_catalog;",
        to_json = trap("to_json"),
        host = trap("host"),
        array_to_string = trap("array_to_string"),
        format = trap("format"),
        now = trap("now"),
        to_regclass = trap("to_regclass"),
        pg_snapshot_xmin = trap("pg_snapshot_xmin"),
        text_eq = trap("operator ="),
        db = db.name,
    );
    db.client_as(owner)
        .batch_execute(&sql)
        .expect("the database owner plants functions in public");
}

/// The lines the traps wrote to the server log for `role`.
fn trapped(db: &TestDb, role: &str) -> Vec<String> {
    let log = std::fs::read_to_string(db.cluster.dir.join("server.log")).unwrap_or_default();
    let prefix = format!("HIJACK {} ", db.name);
    let by = format!(" by {role}");
    log.lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .filter(|rest| rest.ends_with(&by))
        .map(str::to_owned)
        .collect()
}

fn ok(what: &str, r: &Run) {
    assert_eq!(r.code, 0, "{what} failed: {}{}", r.stdout, r.stderr);
}

#[test]
fn functions_planted_by_the_database_owner_never_run_in_the_sidecar() {
    let db = TestDb::new();
    let owner = db.create_role("dbowner", "LOGIN");
    let admin = db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE {} OWNER TO {owner};
             CREATE SCHEMA crm;
             CREATE TABLE crm.contacts (id int PRIMARY KEY, name text, email text);
             SELECT audit.track('crm.contacts', 'contact');
             INSERT INTO crm.contacts VALUES (1, 'Ann', 'ann@example.com'),
                                             (2, 'Bob', 'bob@example.com');
             UPDATE crm.contacts SET email = 'ann@example.org' WHERE id = 1;",
            db.name
        ))
        .expect("a tracked table with some activity");
    plant(&db, &owner);

    // The traps are armed: the owner's own session, on the path the owner set, falls in.
    db.client_as(&owner)
        .batch_execute("SELECT to_json('{a}'::text[]), host('10.0.0.1'::inet), 'a' = 'a'")
        .expect("the planted functions run for their owner");
    let armed = trapped(&db, &owner);
    for name in ["to_json", "host", "operator ="] {
        assert!(
            armed.iter().any(|l| l.starts_with(name)),
            "trap {name} did not fire for its owner: {armed:?}"
        );
    }

    let conninfo = db.conninfo(&admin);
    // Export, as CSV and JSON lines, filtered on a text column (the planted `=`).
    let csv = run(command().args([
        "export", "--db", &conninfo, "--entity", "contact", "--actor", "postgres",
    ]));
    ok("export --format csv", &csv);
    assert!(csv.stdout.contains(r#""[""email""]""#), "{}", csv.stdout);
    let jsonl = run(command().args([
        "export", "--db", &conninfo, "--format", "jsonl", "--entity", "contact",
    ]));
    ok("export --format jsonl", &jsonl);
    assert_eq!(jsonl.stdout.lines().count(), 3, "{}", jsonl.stdout);

    // Follow (other tests' transactions on the shared cluster may hold the stream back for
    // a while: wait for them), then its status.
    let follow = run(command().args([
        "follow",
        "--db",
        &conninfo,
        "--consumer",
        "siem",
        "--stdout",
        "--once",
        "--hold-timeout",
        "300",
    ]));
    ok("follow --once", &follow);
    assert!(follow.stdout.lines().count() >= 3, "{}", follow.stdout);
    let status = run(command().args([
        "follow",
        "--db",
        &conninfo,
        "--consumer",
        "siem",
        "--status",
    ]));
    ok("follow --status", &status);
    assert!(
        status.stdout.contains("consumer:  siem"),
        "{}",
        status.stdout
    );
    let reposition = run(command().args([
        "follow",
        "--db",
        &conninfo,
        "--consumer",
        "siem",
        "--from",
        "1d",
    ]));
    ok("follow --from", &reposition);

    // The dashboard: the list (filtered), an event page, and Export.
    let dash = Dashboard::start(&db);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let page = http.get(
        "/reports/audit-log?entity=contact&actor=postgres&range=all",
        Some(&cookie),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let id: i64 = db
        .client()
        .query_one(
            "SELECT pg_catalog.max(id) FROM audit.events \
              WHERE action OPERATOR(pg_catalog.=) 'update'",
            &[],
        )
        .expect("the update event")
        .get(0);
    let event = http.get(&format!("/reports/audit-log/events/{id}"), Some(&cookie));
    assert_eq!(event.status, 200, "{}", event.body);
    assert!(event.body.contains("ann@example.org"), "{}", event.body);
    let token = page.hidden_field("csrf").expect("a CSRF token");
    let export = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[
            ("csrf", &token),
            ("entity", "contact"),
            ("actor", "postgres"),
            ("range", "all"),
        ],
        &[("Origin", &dash.base)],
    );
    assert_eq!(export.status, 200, "{}", export.body);
    assert!(
        export.body.starts_with("id,occurred_at,"),
        "{}",
        export.body
    );
    assert_eq!(export.body.lines().count(), 4, "{}", export.body);
    drop(dash);

    let mut calls = trapped(&db, &admin);
    calls.sort();
    calls.dedup();
    assert!(
        calls.is_empty(),
        "the sidecar ran functions the database owner planted: {calls:?}"
    );
}

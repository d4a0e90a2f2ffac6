//! Partitions, maintenance, retention and legal holds (docs/storage.md).

use audit_trail_tests::{error_text, sqlstate, TestDb};

/// A log whose history spans four past months, seeded while it is empty (the one time SQL
/// may add rows), then spread into monthly partitions by maintenance.
fn history() -> (TestDb, serde_json::Value) {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, entity, action, subject_id)
             SELECT date_trunc('month', now()) - make_interval(months => m) + make_interval(days => d),
                    'actor' || d % 3, 'contact', 'update', (m * 100 + d)::text
               FROM generate_series(1, 4) AS m, generate_series(0, 9) AS d;",
        )
        .expect("seed history");
    let done: serde_json::Value = db
        .client()
        .query_one("SELECT audit.maintain()", &[])
        .expect("maintain")
        .get(0);
    (db, done)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).expect(sql).get(0)
}

/// Runs maintenance until every event of the database is summarized (other tests' open
/// transactions can hold the watermark back for a while; bounded).
fn summarize_all(db: &TestDb) {
    for _ in 0..300 {
        db.client()
            .batch_execute("SELECT audit.maintain()")
            .unwrap();
        let tail = count(
            db,
            "SELECT count(*) FROM audit.events
              WHERE txid >= coalesce((SELECT watermark FROM audit.summary_state), '0')",
        );
        if tail == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("events stayed unsummarized");
}

#[test]
fn maintenance_moves_rows_out_of_the_default_partition_into_months_of_their_own() {
    let (db, done) = history();
    // The four past months, this one and three ahead.
    assert_eq!(done["created"].as_array().map(Vec::len), Some(8), "{done}");
    assert_eq!(done["default_partition_rows"], 0, "{done}");
    assert_eq!(count(&db, "SELECT count(*) FROM audit.events_default"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM audit.events"), 40);
    // Every row is in the partition of its month.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit.events AS e JOIN audit.partitions AS p
                 ON p.partition = e.tableoid::regclass::text
              WHERE e.occurred_at >= p.from_time AND e.occurred_at < p.to_time"
        ),
        40
    );
    // A second run has nothing to do; capture goes to this month's partition.
    let again: serde_json::Value = db
        .client()
        .query_one("SELECT audit.maintain()", &[])
        .unwrap()
        .get(0);
    assert_eq!(again["created"], serde_json::json!([]), "{again}");
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');
             INSERT INTO contacts SELECT g, 'n' FROM generate_series(1, 10) g;",
        )
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM audit.events_default"), 0);
}

#[test]
fn retention_drops_whole_months_but_never_what_a_legal_hold_covers() {
    let (db, _) = history();
    let mut client = db.client();
    client
        .batch_execute(
            "SELECT audit.hold('case-7', 'county court subpoena',
                               date_trunc('month', now()) - interval '3 months' + interval '2 days',
                               date_trunc('month', now()) - interval '3 months' + interval '3 days');
             SELECT audit.set_retention('1 month', archive_first => false);",
        )
        .expect("hold and retention");
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .unwrap()
        .get(0);
    let dropped = done["dropped"].as_array().expect("dropped");
    let kept = done["kept"].as_array().expect("kept");
    // Months 2 and 4 back go (month 1 back is not a whole month past the retention yet... it
    // ended at the start of this month, less than a month ago); month 3 back is held.
    assert_eq!(dropped.len(), 2, "{done}");
    assert!(dropped.iter().all(|d| d["rows"] == 10), "{done}");
    assert_eq!(kept.len(), 1, "{done}");
    assert!(
        kept[0]["reason"].as_str().unwrap_or("").contains("case-7"),
        "{done}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit.events WHERE action = 'update'"
        ),
        20
    );
    // Each drop is recorded, with the partition and its rows.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit.events
              WHERE entity = 'audit_log' AND action = 'purge' AND (details ->> 'rows')::int = 10
                AND details ->> 'partition' LIKE 'audit.events_%'"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit.events
              WHERE entity = 'audit_log' AND action IN ('hold', 'retention')"
        ),
        2
    );

    // audit.purge keeps its meaning, and refuses what the hold covers.
    let err = client
        .batch_execute("SELECT audit.purge(now())")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));
    assert!(error_text(&err).contains("case-7"), "{}", error_text(&err));

    // Released (superusers only), the held month goes at the next run.
    client
        .batch_execute("SELECT audit.release('case-7')")
        .unwrap();
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .unwrap()
        .get(0);
    assert_eq!(done["dropped"].as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM audit.holds WHERE NOT active"),
        1
    );
}

#[test]
fn with_archive_first_an_unarchived_month_is_kept() {
    let (db, _) = history();
    let mut client = db.client();
    client
        .batch_execute("SELECT audit.set_retention('1 month')")
        .unwrap();
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .unwrap()
        .get(0);
    assert_eq!(done["dropped"], serde_json::json!([]), "{done}");
    let kept = done["kept"].as_array().expect("kept");
    assert_eq!(kept.len(), 3, "{done}");
    assert!(
        kept.iter().all(|k| k["reason"] == "not archived yet"),
        "{done}"
    );
    // A kept partition is not left locked for the rest of the run (it was locked to be
    // counted): writes to it go on while maintenance works on. (The legal holds are, until
    // the run ends: a hold placed meanwhile must protect its range.)
    client
        .batch_execute("BEGIN; SELECT audit.maintain();")
        .unwrap();
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND mode = 'ShareLock'
                  AND relation <> 'audit.legal_holds'::regclass AND pid = {}",
                client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .unwrap()
                    .get::<_, i32>(0)
            )
        ),
        0
    );
    client.batch_execute("COMMIT").unwrap();
    // Counting after a lock needs a snapshot taken after it: not in REPEATABLE READ.
    client
        .batch_execute("SELECT audit.set_retention('1 month', archive_first => false)")
        .unwrap();
    let err = client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT audit.maintain();")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "25000", "{}", error_text(&err));
    assert!(
        error_text(&err).contains("only in a READ COMMITTED transaction, not REPEATABLE READ"),
        "{}",
        error_text(&err)
    );
    client.batch_execute("ROLLBACK").unwrap();
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .unwrap()
        .get(0);
    assert_eq!(done["dropped"].as_array().map(Vec::len), Some(3), "{done}");
}

#[test]
fn partitions_cannot_be_dropped_detached_emptied_or_unguarded_by_hand() {
    let (db, _) = history();
    let mut client = db.client();
    let oldest: String = client
        .query_one(
            "SELECT partition FROM audit.partitions WHERE NOT is_default ORDER BY from_time LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    for sql in [
        format!("DROP TABLE {oldest}"),
        format!("ALTER TABLE audit.events DETACH PARTITION {oldest}"),
        format!("DELETE FROM {oldest}"),
        format!("TRUNCATE {oldest}"),
        format!("ALTER TABLE {oldest} DISABLE TRIGGER events_append_only"),
        format!("DROP TRIGGER events_append_only ON {oldest}"),
        format!("INSERT INTO {oldest} (occurred_at, actor, entity, action) SELECT occurred_at, 'x', 'y', 'z' FROM {oldest} LIMIT 1"),
        "CREATE TABLE public.forged (LIKE audit.events INCLUDING DEFAULTS);
         INSERT INTO public.forged (occurred_at, actor, entity, action) VALUES ('2001-01-01', 'x', 'y', 'z');
         ALTER TABLE audit.events ATTACH PARTITION public.forged FOR VALUES FROM ('2001-01-01') TO ('2001-02-01')".to_string(),
        "SELECT audit.create_events_partition('2001-01-01', '2001-02-01')".to_string(),
    ] {
        let err = client.batch_execute(&sql).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {}", error_text(&err));
    }
    assert_eq!(count(&db, "SELECT count(*) FROM audit.events"), 40);
    // Admins may maintain and place holds, not change the policy or release.
    let admin = db.create_role("keeper", "LOGIN IN ROLE audit_admin");
    let mut as_admin = db.client_as(&admin);
    as_admin.batch_execute("SELECT audit.maintain()").unwrap();
    as_admin
        .batch_execute("SELECT audit.hold('h1', 'audit', '2020-01-01', '2021-01-01')")
        .unwrap();
    for sql in [
        "SELECT audit.set_retention('1 day')",
        "SELECT audit.release('h1')",
        "SELECT audit.purge(now())",
    ] {
        let err = as_admin.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {}", error_text(&err));
    }
    // Bad input: one clear error each.
    for (sql, state) in [
        (
            "SELECT audit.hold('bad name', 'r', now(), now() + interval '1 day')",
            "22023",
        ),
        (
            "SELECT audit.hold('h2', '', now(), now() + interval '1 day')",
            "22023",
        ),
        (
            "SELECT audit.hold('h3', 'r', now(), now() - interval '1 day')",
            "22023",
        ),
        (
            "SELECT audit.hold('h1', 'again', now(), now() + interval '1 day')",
            "23505",
        ),
        ("SELECT audit.release('nope')", "P0002"),
        ("SELECT audit.set_retention('1 hour')", "22023"),
        (
            "SELECT audit.set_partition_interval('5 weeks 2 hours')",
            "22023",
        ),
    ] {
        let err = client.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), state, "{sql}: {}", error_text(&err));
    }
}

/// The summary counts, per hour and filter dimension, exactly the events audit.events holds.
fn assert_summary_matches(db: &TestDb, watermark_only: bool) {
    let tail = if watermark_only {
        "WHERE e.txid < (SELECT watermark FROM audit.summary_state)"
    } else {
        ""
    };
    let diff = count(
        db,
        &format!(
            "SELECT count(*) FROM (
                (SELECT date_trunc('hour', e.occurred_at, 'UTC') AS hour, e.actor, e.source,
                        e.entity, e.action, e.table_name, count(*) AS events
                   FROM audit.events AS e {tail} GROUP BY 1, 2, 3, 4, 5, 6
                 EXCEPT
                 SELECT hour, actor, source, entity, action, table_name, events FROM audit.event_summary)
                UNION ALL
                (SELECT hour, actor, source, entity, action, table_name, events FROM audit.event_summary
                 EXCEPT
                 SELECT date_trunc('hour', e.occurred_at, 'UTC'), e.actor, e.source, e.entity,
                        e.action, e.table_name, count(*)
                   FROM audit.events AS e {tail} GROUP BY 1, 2, 3, 4, 5, 6)) AS d"
        ),
    );
    assert_eq!(
        diff, 0,
        "audit.event_summary differs from the events it counts"
    );
    // Its rollups agree with it.
    for (rollup, from_summary) in [
        (
            "SELECT hour, source, entity, action, table_name, events FROM audit.kind_hours",
            "SELECT hour, source, entity, action, table_name, sum(events)::bigint
               FROM audit.event_summary GROUP BY 1, 2, 3, 4, 5",
        ),
        (
            "SELECT day, actor, events FROM audit.actor_days",
            "SELECT date_trunc('day', hour, 'UTC'), actor, sum(events)::bigint
               FROM audit.event_summary GROUP BY 1, 2",
        ),
    ] {
        let diff = count(
            db,
            &format!(
                "SELECT count(*) FROM (({rollup} EXCEPT {from_summary})
                                       UNION ALL ({from_summary} EXCEPT {rollup})) AS d"
            ),
        );
        assert_eq!(diff, 0, "{rollup} differs from the summary");
    }
}

#[test]
fn the_summary_counts_each_committed_event_once_including_late_commits() {
    let (db, done) = history();
    // The 40 seeded events, unless another test's open transaction holds the watermark
    // below them: then they wait in the tail, and a later run counts them.
    let summarized = done["summarized_events"].as_i64().unwrap_or(-1);
    assert!(summarized == 40 || summarized == 0, "{done}");
    summarize_all(&db);
    assert_eq!(
        count(&db, "SELECT sum(events)::bigint FROM audit.event_summary"),
        40
    );
    assert_summary_matches(&db, true);
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');",
        )
        .unwrap();
    // A transaction writes events, stays open while maintenance runs, and commits after.
    let mut late = db.client();
    late.batch_execute(
        "BEGIN; INSERT INTO contacts SELECT g, 'late' FROM generate_series(1, 5) g;",
    )
    .unwrap();
    client
        .batch_execute("INSERT INTO contacts VALUES (100, 'on time')")
        .unwrap();
    client.batch_execute("SELECT audit.maintain()").unwrap();
    late.batch_execute("COMMIT").unwrap();
    // Below the watermark everything is counted; the late events are above it (the tail).
    assert_summary_matches(&db, true);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit.events
              WHERE txid >= (SELECT watermark FROM audit.summary_state) AND subject_id IN ('1', '2', '3', '4', '5')
                AND entity = 'contact' AND action = 'create' AND table_name = 'public.contacts'"
        ),
        5,
        "the late transaction's events wait in the tail"
    );
    client.batch_execute("SELECT audit.maintain()").unwrap();
    // Once nothing is running, the summary holds every event exactly once.
    client.batch_execute("SELECT audit.maintain()").unwrap();
    let total_summary = count(&db, "SELECT sum(events)::bigint FROM audit.event_summary");
    let below = count(
        &db,
        "SELECT count(*) FROM audit.events WHERE txid < (SELECT watermark FROM audit.summary_state)",
    );
    assert_eq!(total_summary, below);
    assert_summary_matches(&db, true);

    // Only maintenance writes it.
    let err = client
        .batch_execute("DELETE FROM audit.event_summary")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));

    // Retention takes a dropped month's hours out of it.
    client
        .batch_execute("SELECT audit.set_retention('1 month', archive_first => false)")
        .unwrap();
    client.batch_execute("SELECT audit.maintain()").unwrap();
    assert_summary_matches(&db, true);
}

#[test]
fn with_the_library_preloaded_a_background_worker_maintains_the_named_database() {
    use audit_trail_tests::cluster::{Cluster, Discard};
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start_with(
        "shared_preload_libraries = 'audit_trail'\n\
         audit.maintenance_databases = 'maintained, not_there'\n\
         audit.maintenance_interval = 1",
    )));
    let _discard = Discard(cluster);
    cluster
        .superuser("postgres")
        .batch_execute("CREATE DATABASE maintained TEMPLATE audit_template")
        .unwrap();
    let mut client = cluster.superuser("maintained");
    // Rows for a past month land in the default partition until maintenance runs.
    client
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, entity, action)
             SELECT date_trunc('month', now()) - interval '40 days' + make_interval(mins => g),
                    'seeded', 'contact', 'update'
               FROM generate_series(1, 25) g",
        )
        .unwrap();
    // The database's owner (no superuser) plants an operator that would make it one if a
    // superuser ran it, and points the database's search_path at it: the worker, which runs
    // as the bootstrap superuser with the database's settings, must not run it.
    client
        .batch_execute(
            "CREATE ROLE owner_of_maintained LOGIN;
             ALTER DATABASE maintained OWNER TO owner_of_maintained;",
        )
        .unwrap();
    let mut owner = postgres::Client::connect(
        &cluster.conninfo("maintained", "owner_of_maintained"),
        postgres::NoTls,
    )
    .unwrap();
    owner
        .batch_execute(
            "CREATE FUNCTION public.name_eq(a name, b name) RETURNS boolean LANGUAGE sql AS
                 $$ ALTER ROLE owner_of_maintained SUPERUSER; SELECT a OPERATOR(pg_catalog.=) b $$;
             CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.name_eq);
             ALTER DATABASE maintained SET search_path = public, pg_catalog;",
        )
        .unwrap();
    drop(owner);
    // The workers start with the server: restart it now that the database exists (the
    // worker of a missing database exits and is retried a minute later).
    drop(client);
    cluster.restart();
    let mut client = cluster.superuser("maintained");
    // The worker runs every second: wait (a bounded wait for liveness, not a timing
    // assertion) until the default partition is empty and the month has its partition.
    let mut moved = false;
    for _ in 0..120 {
        let left: i64 = client
            .query_one("SELECT count(*) FROM audit.events_default", &[])
            .unwrap()
            .get(0);
        let summarized: i64 = client
            .query_one(
                "SELECT coalesce(sum(events), 0)::bigint FROM audit.event_summary WHERE actor = 'seeded'",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 && summarized == 25 {
            moved = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(moved, "the worker moved and summarized the events");
    let escalated: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'owner_of_maintained'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !escalated,
        "the worker ran the database owner's operator as a superuser"
    );
    let partitions: i64 = client
        .query_one(
            "SELECT count(*) FROM audit.partitions WHERE NOT is_default AND closed",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(partitions >= 1);
    // A database named in the setting that does not exist does not stop the others.
    let workers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'audit_trail maintenance'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(workers >= 1, "the worker of the existing database runs");
}

#[test]
fn an_actor_or_source_too_long_to_index_is_refused_at_capture_and_old_ones_do_not_stop_maintenance()
{
    let db = TestDb::new();
    let mut client = db.client();
    // Seeded history (SQL may add rows only to an empty log) with an actor far past what a
    // btree entry holds: maintenance summarizes it anyway.
    client
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, source, entity, action)
             SELECT date_trunc('month', now()) - interval '40 days',
                    (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200) g),
                    'manual', 'contact', 'update'",
        )
        .unwrap();
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .expect("maintenance summarizes a 6,400-byte actor")
        .get(0);
    assert!(done["summarized_events"].as_i64().is_some(), "{done}");
    summarize_all(&db);
    assert_eq!(
        count(&db, "SELECT sum(events)::bigint FROM audit.event_summary"),
        1
    );
    client
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');",
        )
        .unwrap();
    for setting in ["audit.actor", "audit.source"] {
        let err = client
            .batch_execute(&format!(
                "BEGIN;
                 SELECT set_config('{setting}', repeat('x', 3000), true);
                 INSERT INTO contacts VALUES (1, 'a');"
            ))
            .unwrap_err();
        client.batch_execute("ROLLBACK").unwrap();
        assert_eq!(sqlstate(&err), "54000", "{setting}: {}", error_text(&err));
        assert!(
            error_text(&err).contains(setting),
            "{setting}: {}",
            error_text(&err)
        );
    }
    // At the limit, capture and maintenance work.
    client
        .batch_execute(
            "BEGIN;
             SELECT set_config('audit.actor', repeat('y', 2048), true);
             INSERT INTO contacts VALUES (2, 'b');
             COMMIT;",
        )
        .unwrap();
    summarize_all(&db);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit.event_summary WHERE actor = repeat('y', 2048)"
        ),
        1
    );
}

/// A hold placed while retention runs protects its range: maintenance waits for the
/// transaction placing it, then sees it and keeps the month. (0.2.0 read the holds once,
/// and dropped a month a hold committed meanwhile covered.)
#[test]
fn a_hold_placed_while_retention_runs_still_protects_its_range() {
    let (db, _) = history();
    db.client()
        .batch_execute("SELECT audit.set_retention('1 month', archive_first => false)")
        .expect("policy");
    let oldest: String = db
        .client()
        .query_one(
            "SELECT partition FROM audit.partitions WHERE NOT is_default ORDER BY from_time LIMIT 1",
            &[],
        )
        .expect("the oldest month")
        .get(0);
    // The hold is being placed (not committed) when maintenance starts.
    let mut holder = db.client();
    holder
        .batch_execute(&format!(
            "BEGIN;
             SELECT audit.hold('late', 'placed while retention runs',
                               (SELECT from_time FROM audit.partitions WHERE partition = '{oldest}'),
                               (SELECT to_time FROM audit.partitions WHERE partition = '{oldest}'));"
        ))
        .expect("hold, uncommitted");
    let conninfo = db.conninfo("postgres");
    let maintenance = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(
            &format!("{conninfo} application_name=maintenance-under-test"),
            postgres::NoTls,
        )
        .expect("connect");
        c.query_one("SELECT audit.maintain()", &[])
            .map(|r| r.get::<_, serde_json::Value>(0))
    });
    // Maintenance waits for the hold's transaction.
    let mut waited = false;
    for _ in 0..200 {
        let waiting = count(
            &db,
            "SELECT count(*) FROM pg_stat_activity
              WHERE application_name = 'maintenance-under-test' AND wait_event_type = 'Lock'",
        );
        if waiting > 0 {
            waited = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(waited, "maintenance did not wait for the hold being placed");
    holder.batch_execute("COMMIT").expect("commit the hold");
    let done = maintenance
        .join()
        .expect("maintenance thread")
        .expect("maintenance");
    let dropped: Vec<&str> = done["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .filter_map(|d| d["partition"].as_str())
        .collect();
    assert!(!dropped.contains(&oldest.as_str()), "{done}");
    assert_eq!(dropped.len(), 2, "the two other past months: {done}");
    let kept = done["kept"].to_string();
    assert!(kept.contains(&oldest) && kept.contains("late"), "{done}");
}

//! The portable install (docs/wal-capture.md) is the extension's schema: the same tables,
//! views and functions, made from the same source; and what it implements again in SQL (the
//! hash chain) agrees with the sidecar that seals and verifies.

use audit_trail_tests::wal::WalDb;
use audit_trail_tests::TestDb;

/// What a schema is made of, as text lines to compare: tables and views with their columns,
/// functions with their arguments and results, indexes, and who may use each (the install's
/// owner written as OWNER: the extension's is a superuser, the portable one's is not).
fn catalog(c: &mut postgres::Client) -> Vec<String> {
    c.query(
        "WITH owner AS (SELECT c.relowner FROM pg_class c WHERE c.oid = 'audit.events'::regclass)
         SELECT format('%s %s (%s) %s', CASE c.relkind WHEN 'v' THEN 'view' WHEN 'i' THEN 'index'
                                                      WHEN 'S' THEN 'sequence' ELSE 'table' END,
                       c.relname,
                       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                          || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', '
                                          ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                       replace(coalesce(c.relacl::text, ''), c.relowner::regrole::text, 'OWNER'))
           FROM pg_class c, owner
          WHERE c.relnamespace = 'audit'::regnamespace
         UNION ALL
         SELECT format('function %s(%s) %s %s %s', p.proname, pg_get_function_identity_arguments(p.oid),
                       pg_get_function_result(p.oid), CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END,
                       replace(coalesce(p.proacl::text, ''), p.proowner::regrole::text, 'OWNER'))
           FROM pg_proc p WHERE p.pronamespace = 'audit'::regnamespace
          ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn the_portable_install_has_the_extensions_schema() {
    let extension = TestDb::new();
    let wal = WalDb::new();
    let ours = catalog(&mut extension.client());
    // The extension's C functions that act as its owner switch to it inside; PL/pgSQL can
    // only be SECURITY DEFINER for that. The same rights either way.
    let acts_as_owner = [
        "log_event(",
        "record_ddl_event(",
        "set_actor(",
        "take_service_lock(",
        "track(",
        "untrack(",
    ];
    let portable: Vec<String> = catalog(&mut wal.db.client())
        .into_iter()
        .map(|l| match l.strip_prefix("function ") {
            Some(f) if acts_as_owner.iter().any(|n| f.starts_with(n)) => {
                l.replacen(" definer ", " invoker ", 1)
            }
            _ => l,
        })
        .collect();
    // Made only where capture reads the WAL, and the two helpers of the event triggers that
    // only C can define (they take pg_ddl_command).
    let only_portable = [
        "table capture_progress ",
        "index capture_progress_pkey ",
        "table wal_attribution_key ",
        "index wal_attribution_key_pkey ",
        "function wal_record(",
        "function wal_record_group(",
        "function wal_mac(",
        "function wal_sign(",
        "function wal_attribution(",
        "function append_event(",
        "function check_trackable(",
        "function login_role(",
        "function set_replica_identity_full(",
        "function privilege_fields_unwatched(",
        "function canonical_rows(",
        "function event_hash(",
        "table service_lock_seal ",
        "table service_lock_archive ",
        "table service_lock_maintenance ",
    ];
    let only_extension = [
        "function ddl_attached_partition(",
        "function ddl_changes_table(",
    ];
    let missing: Vec<&String> = ours
        .iter()
        .filter(|l| !portable.contains(l) && !only_extension.iter().any(|p| l.starts_with(p)))
        .collect();
    let extra: Vec<&String> = portable
        .iter()
        .filter(|l| !ours.contains(l) && !only_portable.iter().any(|p| l.starts_with(p)))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "only in the extension: {missing:#?}\nonly in the portable install: {extra:#?}"
    );
    assert!(
        ours.len() > 120,
        "the comparison saw the schema: {}",
        ours.len()
    );
}

/// The public key of a key file `audit-trail keygen` wrote, as bytes.
fn public_key(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
    let hex = text.split_whitespace().last().unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_sealer_seals_a_portable_install_whose_sql_recomputes_every_link() {
    use audit_trail_tests::sidecar::{command, run};
    let wal = WalDb::new();
    let db = &wal.db;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("seal.key");
    assert_eq!(
        run(command().args(["keygen", "--output"]).arg(&key)).code,
        0
    );
    // On a managed service there is no superuser: the install's owner registers the key.
    let mut app = wal.owner_client();
    app.execute("SELECT audit.register_seal_key($1)", &[&public_key(&key)])
        .unwrap();
    app.batch_execute(
        "CREATE TABLE contacts (id int PRIMARY KEY, name text, org text);
         SELECT audit.track('contacts', 'contact', tenant_column => 'org');
         BEGIN; SELECT audit.set_actor('ann', 'ui', '{\"r\": 1}', 'acme');
         INSERT INTO contacts SELECT g, 'n' || g, CASE WHEN g % 2 = 0 THEN 'acme' END
           FROM generate_series(1, 40) AS g;
         COMMIT;",
    )
    .unwrap();
    wal.capture();
    let sealer = db.create_role("wal_sealer", "LOGIN IN ROLE audit_service");
    let seal = || {
        run(command()
            .args(["seal", "--once", "--db", &db.conninfo(&sealer), "--key"])
            .arg(&key)
            .arg("--checkpoints")
            .arg(dir.path()))
    };
    let first = seal();
    assert_eq!(first.code, 0, "{}", first.stderr);
    // A second link, over events with and without an organization (both encodings).
    app.batch_execute(
        "BEGIN; SELECT audit.set_actor('bob', NULL, NULL, 'acme');
         UPDATE contacts SET name = 'x' WHERE id <= 5; DELETE FROM contacts WHERE id = 7;
         COMMIT;",
    )
    .unwrap();
    wal.capture();
    let second = seal();
    assert_eq!(second.code, 0, "{}", second.stderr);
    let (seals, sealed, events): (i64, i64, i64) = app
        .query_one(
            "SELECT (SELECT count(*) FROM audit.seals), (SELECT max(total) FROM audit.seals),
                    (SELECT count(*) FROM audit.events)",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(
        (seals, sealed),
        (2, events),
        "every event sealed, in two links"
    );

    // What the SQL refuses: a link that is not the next, a body that is not a checkpoint, a
    // key nobody registered. (Whether a registered key signed it is verify's to check.)
    let stored: (String, String, Vec<u8>, Vec<u8>) = app
        .query_one(
            "SELECT checkpoint, key_id, signature, digests FROM audit.seals WHERE seq = 2",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .unwrap();
    let mut service = db.client_as(&sealer);
    let add = |c: &mut postgres::Client, body: &str, key_id: &str, digests: &[u8]| {
        c.query_one(
            "SELECT audit.add_seal($1, $2, $3, $4)",
            &[&body, &key_id, &stored.2, &digests],
        )
        .map(|_| ())
        .map_err(|e| {
            e.as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_default()
        })
    };
    let again = add(&mut service, &stored.0, &stored.1, &stored.3).unwrap_err();
    assert!(
        again.contains("seal 2 is not the next one: the next is 3"),
        "{again}"
    );
    let junk = add(&mut service, "hello\n", &stored.1, &stored.3).unwrap_err();
    assert!(junk.contains("not a version 1 checkpoint body"), "{junk}");
    let unknown = add(&mut service, &stored.0, "0000000000000000", &stored.3).unwrap_err();
    assert!(unknown.contains("is not registered"), "{unknown}");
    // Nobody else may add a seal.
    let nobody = db.create_role("wal_nobody", "LOGIN IN ROLE audit_admin");
    let err = db
        .client_as(&nobody)
        .query_one(
            "SELECT audit.add_seal($1, $2, $3, $4)",
            &[&stored.0, &stored.1, &stored.2, &stored.3],
        )
        .unwrap_err();
    assert_eq!(audit_trail_tests::sqlstate(&err), "42501");

    // verify holds the install to its release's reference and the events to the seals; an
    // event changed behind the guards' back is found.
    let reader = db.create_role("wal_reader", "LOGIN IN ROLE audit_admin");
    let verify = || {
        run(command()
            .args(["verify", "--db", &db.conninfo(&reader), "--pubkey"])
            .arg(format!("{}.pub", key.display()))
            .arg("--checkpoints")
            .arg(dir.path()))
    };
    let clean = verify();
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    db.client()
        .batch_execute(
            "ALTER TABLE audit.events_default DISABLE TRIGGER USER;
             UPDATE audit.events_default SET actor = 'eve' WHERE subject_id = '3';
             ALTER TABLE audit.events_default ENABLE ALWAYS TRIGGER events_append_only,
                                              ENABLE ALWAYS TRIGGER events_no_sql_insert;",
        )
        .unwrap();
    let tampered = verify();
    assert_eq!(tampered.code, 4, "{}{}", tampered.stdout, tampered.stderr);
    assert!(
        tampered.stderr.contains("was altered since seal 1"),
        "{}",
        tampered.stderr
    );
}

/// The reference `audit-trail verify` holds a WAL capture install to
/// (sidecar/src/integrity/schema/VERSION-wal-pgMAJOR.txt): every object of a fresh install,
/// described by the contract's query and hashed. Written with UPDATE_GOLDEN=1.
#[test]
fn verify_holds_a_portable_install_to_its_reference() {
    let wal = WalDb::new();
    let mut c = wal.db.client();
    let major: i32 = c
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .unwrap()
        .get(0);
    let lines: Vec<String> = c
        .query(audit_trail_contract::schema::MEMBERS, &[])
        .unwrap()
        .iter()
        .map(|r| audit_trail_contract::schema::reference_line(r.get(0), r.get(1)))
        .collect();
    assert!(
        lines.len() > 100,
        "the install's objects are described: {}",
        lines.len()
    );
    let actual = lines.join("\n") + "\n";
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sidecar/src/integrity/schema")
        .join(format!("{}-wal-pg{major}.txt", env!("CARGO_PKG_VERSION")));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    } else {
        assert!(
            actual == std::fs::read_to_string(&path).unwrap_or_default(),
            "the schema of a fresh WAL capture install differs from {} (UPDATE_GOLDEN=1 rewrites it, then rebuild the sidecar)",
            path.display()
        );
    }
    // And a fresh install has nothing to find.
    let found: Vec<String> = c
        .query(audit_trail_contract::schema::FINDINGS, &[])
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

/// The portable install's search planner writes, for every shape of search, the SQL the
/// extension's planner writes for a log not summarized yet (the install has no maintenance).
#[test]
fn the_portable_search_plans_every_shape_as_the_extension_does() {
    let extension = TestDb::new();
    let wal = WalDb::new();
    let query = "SELECT audit.search_plan($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false)";
    let (mut ours, mut portable) = (extension.client(), wal.db.client());
    let actor_lists: [Option<Vec<Option<&str>>>; 4] = [
        None,
        Some(vec![Some("ann")]),
        Some(vec![Some("ann"), Some("ann"), Some("bob")]),
        Some(vec![Some("ann"), None, Some("ann"), None]),
    ];
    let mut compared = 0;
    for bits in 0u32..(1 << 9) {
        let f = |n: u32| bits & (1 << n) != 0;
        for actors in &actor_lists {
            for direction in ["newest", "before", "after"] {
                let args: [&(dyn postgres::types::ToSql + Sync); 11] = [
                    &f(0),
                    &f(1),
                    actors,
                    &f(2),
                    &f(3),
                    &f(4),
                    &f(5),
                    &f(6),
                    &f(7),
                    &f(8),
                    &direction,
                ];
                let a: String = ours.query_one(query, &args).unwrap().get(0);
                let b: String = portable.query_one(query, &args).unwrap().get(0);
                assert_eq!(b, a, "flags {bits:09b}, actors {actors:?}, {direction}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 512 * 4 * 3);
}

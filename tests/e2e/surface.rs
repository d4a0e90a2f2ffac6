//! The SQL surface as a golden file: every object of the extension with its signature,
//! owner-rights and search_path settings, and who may use it. An unintended change of a
//! grant, a function's rights or a view's columns fails here with a diff; an intended one is
//! accepted by running the test with `UPDATE_GOLDEN=1` and committing the file
//! (`tests/expected/sql_surface-pg<major>.txt`, one per PostgreSQL major tested).

use std::path::PathBuf;

use audit_trail_tests::TestDb;

const SURFACE: &str = "
SELECT kind || ' ' || name || coalesce(' ' || extra, '') || ' ' || acl AS line
  FROM (
    SELECT 'function' AS kind,
           p.oid::regprocedure::text AS name,
           concat_ws(' ',
                     CASE WHEN p.prosecdef THEN 'SECURITY DEFINER' END,
                     array_to_string(p.proconfig, ' ')) AS extra,
           coalesce(array_to_string(ARRAY(SELECT a::text FROM unnest(p.proacl) a ORDER BY 1), ','),
                    'default') AS acl
      FROM pg_proc p
     WHERE p.pronamespace = 'audit'::regnamespace
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'S' THEN 'sequence' ELSE 'table' END,
           c.oid::regclass::text,
           '(' || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod),
                                     ', ' ORDER BY a.attnum)
                     FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) || ')',
           coalesce(array_to_string(ARRAY(SELECT a::text FROM unnest(c.relacl) a ORDER BY 1), ','),
                    'default')
      FROM pg_class c
     WHERE c.relnamespace = 'audit'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
       -- Partitions by month are data (audit.partitions lists them); the default one is not.
       AND (NOT c.relispartition OR c.relname = 'events_default')
    UNION ALL
    SELECT 'event trigger', e.evtname::text,
           e.evtevent || ' ' || e.evtenabled::text || coalesce(' ' || array_to_string(e.evttags, ','), ''),
           e.evtfoid::regproc::text
      FROM pg_event_trigger e
    UNION ALL
    SELECT 'trigger', t.tgname::text || ' ON ' || t.tgrelid::regclass::text, t.tgenabled::text,
           t.tgfoid::regproc::text
      FROM pg_trigger t JOIN pg_class tc ON tc.oid = t.tgrelid
     WHERE tc.relnamespace = 'audit'::regnamespace AND NOT t.tgisinternal
       AND (NOT tc.relispartition OR tc.relname = 'events_default')
  ) AS surface
 ORDER BY 1";

/// One golden file per PostgreSQL major, as the same grants read differently by major (from
/// 17, an owner's rights include MAINTAIN, `m`).
fn golden(major: i32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("expected/sql_surface-pg{major}.txt"))
}

#[test]
fn the_sql_surface_is_what_the_golden_file_says() {
    let db = TestDb::new();
    let major: i32 = db
        .client()
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .expect("the server's major")
        .get(0);
    let golden = golden(major);
    let lines: Vec<String> = db
        .client()
        .query(SURFACE, &[])
        .expect("read the SQL surface")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let actual = lines.join("\n") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).expect("write the golden file");
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if actual != expected {
        let out =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/sql_surface.actual.txt");
        let _ = std::fs::write(&out, &actual);
        panic!(
            "the SQL surface changed: diff {} {} (UPDATE_GOLDEN=1 accepts it)",
            golden.display(),
            out.display()
        );
    }
}

#[test]
fn every_function_that_runs_with_more_rights_pins_its_search_path() {
    let db = TestDb::new();
    let unpinned: Vec<String> = db
        .client()
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = 'audit'::regnamespace AND p.prosecdef
                AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(unpinned.is_empty(), "{unpinned:?}");
}

/// The reference `audit-trail verify` holds a database of this version and PostgreSQL
/// major to (sidecar/src/integrity/schema/): the contract's description of every object of
/// a fresh install, hashed line by line. Written, like the golden file, with UPDATE_GOLDEN=1.
fn reference_lines(db: &TestDb) -> (String, String) {
    let mut client = db.client();
    let (version, major): (String, i32) = {
        let row = client
            .query_one(
                "SELECT extversion::text, current_setting('server_version_num')::int / 10000
                   FROM pg_extension WHERE extname = 'audit_trail'",
                &[],
            )
            .expect("version");
        (row.get(0), row.get(1))
    };
    let lines: Vec<String> = client
        .query(audit_trail_contract::schema::MEMBERS, &[])
        .expect("describe the schema")
        .iter()
        .map(|r| audit_trail_contract::schema::reference_line(r.get(0), r.get(1)))
        .collect();
    (format!("{version}-pg{major}.txt"), lines.join("\n") + "\n")
}

fn check_reference(db: &TestDb) {
    let (name, actual) = reference_lines(db);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sidecar/src/integrity/schema")
        .join(&name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("write the reference");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "the schema of a fresh install differs from {} (UPDATE_GOLDEN=1 rewrites it, then rebuild the sidecar)",
        path.display()
    );
}

#[test]
fn verify_holds_databases_to_the_schema_each_release_installs() {
    check_reference(&TestDb::new());
    let old = TestDb::without_extension();
    old.client()
        .batch_execute("CREATE EXTENSION audit_trail VERSION '0.2.0'")
        .expect("a 0.2.0 install");
    check_reference(&old);
}

#[test]
fn the_extensions_schema_findings_are_the_contracts_query() {
    let db = TestDb::new();
    let body: String = db
        .client()
        .query_one(
            "SELECT prosrc FROM pg_proc WHERE oid = 'audit.schema_findings()'::regprocedure",
            &[],
        )
        .expect("audit.schema_findings")
        .get(0);
    assert_eq!(
        body.trim(),
        audit_trail_contract::schema::FINDINGS.trim(),
        "extension/sql/integrity.sql's audit.schema_findings() must be contract/src/schema.rs' FINDINGS"
    );
    // And a fresh install has nothing to find.
    let found: Vec<String> = db
        .client()
        .query(audit_trail_contract::schema::FINDINGS, &[])
        .expect("findings")
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
    assert!(found.is_empty(), "{found:?}");
}

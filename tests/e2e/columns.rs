//! Column types round-trip into the jsonb data exactly as `to_jsonb(row)` renders them.

use audit_trail_tests::{events, TestDb};
use serde_json::Value;

fn to_jsonb_rows(c: &mut postgres::Client, table: &str) -> Vec<Value> {
    c.query(
        &format!("SELECT to_jsonb(t) FROM {table} t ORDER BY id"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn every_column_type_matches_to_jsonb() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        r#"CREATE TYPE mood AS ENUM ('calm', 'busy');
           CREATE DOMAIN positive AS int CHECK (VALUE > 0);
           CREATE TYPE money_pair AS (amount numeric, currency text);
           CREATE TABLE zoo (
               id        int PRIMARY KEY,
               u         uuid,
               n         numeric,
               n2        numeric(10,3),
               small     smallint,
               big       bigint,
               r         real,
               d         double precision,
               ts        timestamp,
               tstz      timestamptz,
               dt        date,
               tm        time,
               iv        interval,
               j         json,
               jb        jsonb,
               ints      int[],
               texts     text[][],
               b         bytea,
               m         mood,
               pos       positive,
               pair      money_pair,
               flag      boolean,
               ch        char(4),
               vc        varchar(10),
               ip        inet,
               cash      money,
               bits      bit varying(8),
               gen       int GENERATED ALWAYS AS (id * 10) STORED,
               nothing   text
           );
           SELECT audit.track('zoo', 'zoo');
           SET TIME ZONE 'Europe/Paris';
           INSERT INTO zoo (id, u, n, n2, small, big, r, d, ts, tstz, dt, tm, iv, j, jb, ints, texts,
                            b, m, pos, pair, flag, ch, vc, ip, cash, bits)
           VALUES
           (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12345678901234567890.000123, 1.5, -32768,
            9223372036854775807, 1.25, 0.1, '2026-01-02 03:04:05.123456',
            '2026-01-02 03:04:05+05', '2026-02-28', '23:59:59', '1 year 2 days 03:00',
            '{"b": 1, "a": [true, null]}', '{"nested": {"x": [1, "two"]}}', '{1,NULL,3}',
            '{{a,b},{"c d","e\"f"}}', '\xdeadbeef', 'busy', 42, '(9.99,EUR)', true, 'ab',
            'héllo', '192.168.0.1/24', 12.34, B'101'),
           (2, NULL, 'NaN', NULL, 0, 0, 'Infinity', '-Infinity', 'infinity', '-infinity', NULL,
            NULL, NULL, 'null', '"just a string"', '{}', NULL, '', 'calm', 1, NULL, false, NULL,
            '', NULL, NULL, NULL),
           (3, NULL, 'Infinity', -0.0, NULL, -1, 'NaN', 1e300, NULL, NULL, '-infinity', NULL,
            NULL, '[1, 2.50, "x"]', '123.4500', NULL, NULL, NULL, NULL, NULL, '(,)', NULL, NULL,
            NULL, '::1', NULL, NULL);"#,
    )
    .unwrap();
    // The README states how wide this test is: keep it true.
    let (columns, types): (i64, i64) = {
        let row = c
            .query_one(
                "SELECT count(*), count(DISTINCT atttypid) FROM pg_attribute
                  WHERE attrelid = 'zoo'::regclass AND attnum > 0 AND NOT attisdropped",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let claim = format!("tested on {columns} columns of {types} types");
    assert!(readme.contains(&claim), "README.md should say \"{claim}\"");
    let expected = to_jsonb_rows(&mut c, "zoo");
    let captured: Vec<Value> = events(&mut c)
        .into_iter()
        .map(|e| e.new_data.unwrap())
        .collect();
    assert_eq!(captured.len(), 3);
    for (got, want) in captured.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    // and byte for byte as PostgreSQL prints them
    let identical: bool = c
        .query_one(
            "SELECT bool_and(e.new_data::text = to_jsonb(z)::text)
               FROM audit.events e JOIN zoo z ON z.id::text = e.subject_id",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(identical);

    // updates detect changes of every type, and the delta holds the exact previous values
    c.batch_execute(
        "UPDATE zoo SET jb = jb || '{\"k\": 1}', ints = ints || 4, tstz = tstz + interval '1s',
                        texts = NULL, m = 'calm', pair = '(1,USD)' WHERE id = 1;",
    )
    .unwrap();
    let ev = events(&mut c);
    let update = ev.last().unwrap();
    let mut fields = update.changed_fields.clone().unwrap();
    fields.sort();
    assert_eq!(fields, ["ints", "jb", "m", "pair", "texts", "tstz"]);
    for field in &fields {
        assert_eq!(
            update.old_data.as_ref().unwrap()[field.as_str()],
            expected[0][field.as_str()]
        );
    }
}

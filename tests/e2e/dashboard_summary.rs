//! Filters read through the hourly summary (`audit.event_summary`): walking every page of a
//! filtered Audit Log, Older to the end and Newer back to the start, over history summarized
//! by `audit.maintain()` and a tail that is not (events committed since, a transaction that
//! began before maintenance and committed after it, one committed while pages are read),
//! gives exactly the rows of the plain SQL, in order, with no duplicate and no gap. The
//! Overview's counts equal counting the events; a stale summary is named on both pages.

use audit_trail_contract::categories::CATEGORIES;
use audit_trail_tests::browser::{Dashboard, Http};
use audit_trail_tests::TestDb;

const PASSWORD: &str = "a summary password";
/// Small pages, so that walks cross many hours, months and the summary's edge.
const PAGE: usize = 10;

/// The ids of a page's rows, top to bottom.
fn ids_of(body: &str) -> Vec<i64> {
    body.split("<tr data-href=\"/reports/audit-log/events/")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("an event id")
        })
        .collect()
}

/// The href of the pager link `rel` ("next" is Older, "prev" is Newer).
fn link(body: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\"");
    let at = body.find(&marker)?;
    let start = body[..at].rfind("href=\"")? + 6;
    let end = body[start..].find('"')? + start;
    Some(body[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

fn newest_first(db: &TestDb, condition: &str) -> Vec<i64> {
    db.client()
        .query(
            &format!(
                "SELECT id FROM audit.events WHERE {condition} ORDER BY occurred_at DESC, id DESC"
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("{condition}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Walks a view Older to its last page, then Newer back to its first: every page must be
/// full but the last, the pages must join into `expected`, and going back must show the same
/// pages.
fn walk(http: &Http, cookie: &str, query: &str, expected: &[i64]) {
    let mut pages: Vec<(String, Vec<i64>)> = Vec::new();
    let mut path = Some(format!("/reports/audit-log?{query}"));
    while let Some(p) = path {
        assert!(
            pages.len() <= expected.len() / PAGE + 1,
            "{query}: more pages than events"
        );
        let reply = http.get(&p, Some(cookie));
        assert_eq!(reply.status, 200, "{p}: {}", reply.body);
        path = link(&reply.body, "next");
        pages.push((p, ids_of(&reply.body)));
    }
    let all: Vec<i64> = pages.iter().flat_map(|(_, ids)| ids.clone()).collect();
    assert_eq!(all, expected, "{query}: the pages are not the SQL's rows");
    for (i, (p, ids)) in pages.iter().enumerate() {
        if i + 1 < pages.len() {
            assert_eq!(ids.len(), PAGE, "{query}: short page {p}");
        }
    }
    // Newer, from the last page back to the first.
    let mut at = pages.len() - 1;
    let mut body = http.get(&pages[at].0, Some(cookie)).body;
    while let Some(newer) = link(&body, "prev") {
        assert!(at > 0, "{query}: a Newer link on the first page");
        at -= 1;
        body = http.get(&newer, Some(cookie)).body;
        assert_eq!(ids_of(&body), pages[at].1, "{query}: Newer to page {at}");
    }
    assert_eq!(at, 0, "{query}: Newer stopped at page {at}");
}

/// `YYYY-MM-DD HH:MM` of an SQL expression, as the custom range reads it (the dashboard runs
/// in UTC), and the same instant for the SQL.
fn minute(db: &TestDb, expression: &str) -> (String, String) {
    let row = db
        .client()
        .query_one(
            &format!(
                "SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                        to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || '+00'
                   FROM (SELECT date_trunc('minute', {expression}) AS t) AS x"
            ),
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// The filters checked: (query string, the same as SQL).
fn grid(db: &TestDb) -> Vec<(String, String)> {
    let (from, from_sql) = minute(db, "now() - interval '23 days 7 hours 29 minutes'");
    let (to, to_sql) = minute(db, "now() - interval '2 days 3 hours 17 minutes'");
    let range = |q: &str, c: &str| {
        (
            format!(
                "range=custom&from={}&to={}&{q}",
                from.replace(' ', "+"),
                to.replace(' ', "+")
            ),
            format!("occurred_at >= '{from_sql}' AND occurred_at < '{to_sql}' AND {c}"),
        )
    };
    let all = |q: &str, c: &str| (format!("range=all&{q}"), c.to_owned());
    vec![
        all("actor=a1", "actor = 'a1'"),
        all("actor=rare", "actor = 'rare'"),
        all("actor=nobody", "actor = 'nobody'"),
        all("actor=a2&actor=rare", "actor IN ('a2', 'rare')"),
        all("entity=user", "entity = 'user'"),
        all("action=delete", "action = 'delete'"),
        all(
            "entity=contact&action=update",
            "entity = 'contact' AND action = 'update'",
        ),
        all("source=import", "source = 'import'"),
        all("source=nowhere", "source = 'nowhere'"),
        all("table=crm.groups", "table_name = 'crm.groups'"),
        all("table=public.contacts", "table_name = 'public.contacts'"),
        all(
            "actor=a3&entity=group&source=api",
            "actor = 'a3' AND entity = 'group' AND source = 'api'",
        ),
        all(
            "entity=contact&entity=user&action=create&action=delete",
            "entity IN ('contact', 'user') AND action IN ('create', 'delete')",
        ),
        range("actor=a1", "actor = 'a1'"),
        range(
            "source=manual&action=update",
            "source = 'manual' AND action = 'update'",
        ),
        range("actor=nobody", "actor = 'nobody'"),
        // Actors with other filters: their hours are also those audit.kind_hours has.
        range(
            "actor=a2&actor=rare&action=delete",
            "actor IN ('a2', 'rare') AND action = 'delete'",
        ),
        all(
            "actor=a1&source=nowhere",
            "actor = 'a1' AND source = 'nowhere'",
        ),
        // Not through the summary: no dimension, or a subject; the same rows as ever.
        all("subject=12", "subject_id = '12'"),
        all(
            "entity=contact&subject=12",
            "entity = 'contact' AND subject_id = '12'",
        ),
        range("", "true"),
        // A category but its exports (the tabs): `<>` over the summary, the probes and the tail.
        all("except_action=export", "action <> 'export'"),
        all(
            "entity=contact&except_action=export",
            "entity = 'contact' AND action <> 'export'",
        ),
        all(
            "except_action=export&except_action=delete",
            "action NOT IN ('export', 'delete')",
        ),
        range(
            "actor=a1&actor=rare&except_action=export",
            "actor IN ('a1', 'rare') AND action <> 'export'",
        ),
    ]
}

/// History over six weeks (two or three monthly partitions) inserted while the log is empty,
/// with a dense hour, events sharing a time, and events of the current hour; summarized by
/// maintenance. Returns the admin role.
fn summarized_history(db: &TestDb) -> String {
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, source, entity, action, table_name,
                                       subject_id)
             SELECT t, actor, source, entity, action,
                    CASE WHEN action = 'export' THEN NULL ELSE 'crm.' || entity || 's' END,
                    (g % 40)::text
               FROM (SELECT g,
                            now() - interval '1 second' * (1 + (g / 3) % 2)
                                  - (g / 3) * interval '3 hours 11 minutes' AS t,
                            CASE WHEN g % 53 = 7 THEN 'rare' ELSE 'a' || g % 4 END AS actor,
                            (ARRAY['manual', 'manual', 'import', 'api', 'manual'])[1 + g % 5]
                                AS source,
                            (ARRAY['contact', 'group', 'user'])[1 + g % 3] AS entity,
                            (ARRAY['create', 'update', 'delete', 'export'])[1 + (g / 3) % 4]
                                AS action
                       FROM generate_series(1, 900) AS g
                     UNION ALL
                     -- One busy hour two days ago: 35 events a minute apart, pages cut in it.
                     -- (One statement: SQL INSERT is allowed only into an empty log.)
                     SELECT 0, date_trunc('hour', now()) - interval '2 days'
                                   + g * interval '1 minute',
                            'a' || g % 2, 'import', 'contact', 'update'
                       FROM generate_series(1, 35) AS g) AS s;",
        )
        .expect("seed history");
    db.client()
        .query_one("SELECT audit.maintain()", &[])
        .expect("maintain");
    // After the seed: the log must be empty for it.
    db.create_role(
        "summary",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    )
}

fn summary_rows(db: &TestDb) -> i64 {
    db.client()
        .query_one("SELECT count(*) FROM audit.summary_state", &[])
        .unwrap()
        .get(0)
}

#[test]
fn every_filter_pages_through_the_summary_and_the_tail_as_the_sql_reads_them() {
    let db = TestDb::new();
    let admin = summarized_history(&db);
    assert_eq!(summary_rows(&db), 1, "maintain wrote no summary state");
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');",
        )
        .unwrap();
    // A transaction that begins before the next maintenance and commits after it: its
    // events fall in an hour already summarized, yet they are in the tail.
    let mut late = db.client();
    late.batch_execute(
        "BEGIN; SELECT audit.set_actor('a1', source => 'import');
         INSERT INTO contacts SELECT g, 'late' FROM generate_series(1000, 1012) g;",
    )
    .unwrap();
    db.client()
        .batch_execute(
            "BEGIN; SELECT audit.set_actor('a2', source => 'api');
             INSERT INTO contacts SELECT g, 'n' FROM generate_series(1, 15) g;
             UPDATE contacts SET name = 'm' WHERE id <= 6; COMMIT;",
        )
        .unwrap();
    let before: String = db
        .client()
        .query_one("SELECT watermark::text FROM audit.summary_state", &[])
        .unwrap()
        .get(0);
    db.client()
        .query_one("SELECT audit.maintain()", &[])
        .expect("maintain");
    let (after, late_in_tail): (String, bool) = {
        let row = db
            .client()
            .query_one(
                "SELECT watermark::text,
                        watermark <= (SELECT min(txid) FROM audit.events WHERE actor = 'a1'
                                         AND table_name = 'public.contacts')
                   FROM audit.summary_state",
                &[],
            )
            .unwrap();
        (row.get(0), row.get::<_, Option<bool>>(1).unwrap_or(true))
    };
    assert_ne!(before, after, "the second maintenance moved no watermark");
    late.batch_execute("COMMIT").unwrap();
    assert!(
        late_in_tail,
        "the late transaction's events were summarized"
    );
    // Uncommitted while the pages are read, committed before the second round.
    let mut open = db.client();
    open.batch_execute(
        "BEGIN; SELECT audit.set_actor('a1');
         INSERT INTO contacts SELECT g, 'open' FROM generate_series(2000, 2011) g;",
    )
    .unwrap();

    let dash = Dashboard::start_with(&db, &["--page-size", &PAGE.to_string(), "--tz", "UTC"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let grid = grid(&db);
    for (query, condition) in &grid {
        walk(&http, &cookie, query, &newest_first(&db, condition));
    }
    // The grid's edge cases are still there: a value matching nothing, a rare one over more
    // than a page, the tail's table over more than a page.
    assert!(newest_first(&db, "actor = 'nobody'").is_empty());
    assert!(newest_first(&db, "actor = 'rare'").len() > PAGE);
    let tail: Vec<String> = db
        .client()
        .query(
            "SELECT DISTINCT table_name FROM audit.events WHERE txid >= (SELECT watermark FROM audit.summary_state)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect();
    assert!(
        newest_first(&db, "table_name = 'public.contacts'").len() > PAGE,
        "{tail:?}"
    );
    open.batch_execute("COMMIT").unwrap();
    for (query, condition) in grid.iter().filter(|(q, _)| q.contains("a1")) {
        walk(&http, &cookie, query, &newest_first(&db, condition));
    }
}

/// An actor with other filters is found one of two ways (`counted_hours` in the sidecar):
/// by probing the few hours `audit.kind_hours` has for the other filters, or, when it has many
/// (here `source = 'api'`: every hour for 50 days, more than the 1,000 rows the probe reads),
/// by the actor's own hours. Both must page as the SQL reads.
#[test]
fn an_actor_with_a_common_or_a_rare_combination_pages_as_the_sql_reads() {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, source, entity, action, table_name,
                                       subject_id)
             SELECT date_trunc('hour', now()) - h * interval '1 hour' + m * interval '1 minute',
                    actor, source, 'contact', 'update', 'crm.contacts', h::text
               FROM generate_series(1, 1200) AS h,
                    LATERAL (VALUES (1, 'other', 'api'),
                                    (2, 'busy', 'manual'),
                                    (3, 'busy', CASE WHEN h % 40 = 3 THEN 'api'
                                                     WHEN h % 90 = 7 THEN 'sync' END),
                                    (3, 'other', CASE WHEN h % 100 = 9 THEN 'sync' END))
                        AS e(m, actor, source)
              WHERE source IS NOT NULL;
             CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');",
        )
        .expect("seed history");
    // Other tests' open transactions can hold the summary's watermark back for a while
    // (transaction ids are cluster-wide): maintain until the seeded history is summarized.
    let mut api_hours: i64 = 0;
    for _ in 0..300 {
        db.client()
            .query_one("SELECT audit.maintain()", &[])
            .expect("maintain");
        api_hours = db
            .client()
            .query_one(
                "SELECT count(*) FROM audit.kind_hours WHERE source = 'api'",
                &[],
            )
            .unwrap()
            .get(0);
        if api_hours > 1000 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(api_hours > 1000, "{api_hours} kind hours for source = api");
    // The tail: events of both combinations since maintenance.
    db.client()
        .batch_execute(
            "BEGIN; SELECT audit.set_actor('busy', source => 'api');
             INSERT INTO contacts SELECT g, 'n' FROM generate_series(1, 12) g; COMMIT;
             BEGIN; SELECT audit.set_actor('busy', source => 'sync');
             UPDATE contacts SET name = 's' WHERE id <= 3; COMMIT;",
        )
        .unwrap();
    let admin = db.create_role(
        "combination",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let dash = Dashboard::start_with(&db, &["--page-size", &PAGE.to_string(), "--tz", "UTC"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let (from, from_sql) = minute(&db, "now() - interval '31 days 5 hours 30 minutes'");
    for (query, condition) in [
        (
            "range=all&actor=busy&source=api",
            "actor = 'busy' AND source = 'api'".to_owned(),
        ),
        (
            "range=all&actor=busy&source=sync",
            "actor = 'busy' AND source = 'sync'".to_owned(),
        ),
        (
            "range=all&actor=busy&actor=other&source=sync",
            "actor IN ('busy', 'other') AND source = 'sync'".to_owned(),
        ),
        (
            "range=all&actor=busy&actor=nobody&source=api",
            "actor IN ('busy', 'nobody') AND source = 'api'".to_owned(),
        ),
        ("range=all&actor=busy&source=nowhere", "false".to_owned()),
        (
            &format!(
                "range=custom&from={}&actor=busy&source=api",
                from.replace(' ', "+")
            ),
            format!("occurred_at >= '{from_sql}' AND actor = 'busy' AND source = 'api'"),
        ),
    ] {
        let expected = newest_first(&db, &condition);
        assert!(
            condition == "false" || expected.len() > PAGE,
            "{query}: {} rows, not more than a page",
            expected.len()
        );
        walk(&http, &cookie, query, &expected);
    }
}

/// What the Overview must show for the last `days` days (UTC), counted from the events
/// themselves: each bar's title ("2026-11-28: 12 contacts"), the legend's totals
/// ("Contacts 123") and the five busiest actors ("a1 45 events").
fn counted(db: &TestDb, days: i32) -> (Vec<String>, Vec<String>, Vec<String>) {
    let since = format!(
        "(date_trunc('day', now() AT TIME ZONE 'UTC') - interval '{} days') AT TIME ZONE 'UTC'",
        days - 1
    );
    // The categories as the contract defines them (and report.sql's views, by a test).
    let categories = CATEGORIES
        .iter()
        .map(|c| format!("count(*) FILTER (WHERE {})", c.sql()))
        .collect::<Vec<_>>()
        .join(", ");
    let labels = CATEGORIES.map(|c| c.label);
    let mut bars = Vec::new();
    for row in db
        .client()
        .query(
            &format!(
                "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), {categories}
                   FROM audit.events WHERE occurred_at >= {since} GROUP BY 1 ORDER BY 1"
            ),
            &[],
        )
        .unwrap()
    {
        let day: String = row.get(0);
        for (i, label) in labels.iter().enumerate() {
            let n: i64 = row.get(i + 1);
            if n > 0 {
                bars.push(format!("{day}: {n} {}", label.to_lowercase()));
            }
        }
    }
    let totals = db
        .client()
        .query_one(
            &format!("SELECT {categories} FROM audit.events WHERE occurred_at >= {since}"),
            &[],
        )
        .unwrap();
    let legend = labels
        .iter()
        .enumerate()
        .map(|(i, label)| format!("{label} {}", totals.get::<_, i64>(i)))
        .collect();
    let actors = db
        .client()
        .query(
            &format!(
                "SELECT actor || ' ' || count(*) || ' events' FROM audit.events
                  WHERE occurred_at >= {since}
                  GROUP BY actor ORDER BY count(*) DESC, actor LIMIT 5"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (bars, legend, actors)
}

/// The texts between `open` and `close` in `body`, tags removed, whitespace squeezed.
fn texts(body: &str, open: &str, close: &str) -> Vec<String> {
    body.split(open)
        .skip(1)
        .map(|rest| {
            let end = rest.find(close).unwrap_or(rest.len());
            let mut text = String::new();
            let mut in_tag = false;
            for c in rest[..end].chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect()
}

/// The part of `body` from `start` to the next `end`.
fn section<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body.find(start).unwrap_or_else(|| panic!("no {start}"));
    let to = body[from..].find(end).map_or(body.len(), |e| from + e);
    &body[from..to]
}

#[test]
fn the_overview_counts_the_summary_and_the_tail_as_counting_the_events_does() {
    let db = TestDb::new();
    let admin = summarized_history(&db);
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');
             BEGIN; SELECT audit.set_actor('a3'); SELECT audit.log_event('contact', 'export', NULL, '{}');
             INSERT INTO contacts SELECT g, 'n' FROM generate_series(1, 40) g; COMMIT;",
        )
        .unwrap();
    let dash = Dashboard::start_with(&db, &["--tz", "UTC"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    for (range, days) in [("7d", 7), ("30d", 30)] {
        let body = http
            .get(&format!("/reports/overview?range={range}"), Some(&cookie))
            .body;
        let (bars, legend, actors) = counted(&db, days);
        let mut shown = texts(
            section(&body, "<svg class=\"chart\"", "</svg>"),
            "<title>",
            "</title>",
        );
        shown.sort();
        let mut bars = bars;
        bars.sort();
        assert_eq!(shown, bars, "{range}: the bars");
        let legend_html = section(&body, "<ul class=\"legend\">", "</ul>");
        assert_eq!(texts(legend_html, "<li>", "</li>"), legend, "{range}");
        let ranked = section(&body, "<ol class=\"ranked\">", "</ol>");
        assert_eq!(texts(ranked, "<li>", "</li>"), actors, "{range}");
    }
}

#[test]
fn a_stale_summary_is_named_on_the_log_and_the_overview() {
    let db = TestDb::new();
    let admin = db.create_role(
        "stale",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let dash = Dashboard::start_with(&db, &["--tz", "UTC"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let notice = |path: &str| -> Option<String> {
        let body = http.get(path, Some(&cookie)).body;
        let start = body.find("<p class=\"notice summary-notice\"")?;
        let end = body[start..].find("</p>")? + start;
        Some(body[start..end].to_owned())
    };
    // Never summarized.
    for path in ["/reports/audit-log", "/reports/overview"] {
        let n = notice(path).unwrap_or_else(|| panic!("{path}: no notice"));
        assert!(
            n.contains("Filters read every event without the summary")
                && n.contains("<code>audit-trail maintain</code> (hourly)"),
            "{n}"
        );
    }
    db.client()
        .query_one("SELECT audit.maintain()", &[])
        .expect("maintain");
    assert_eq!(notice("/reports/audit-log"), None);
    assert_eq!(notice("/reports/overview"), None);
    // Three hours later (as a superuser who lifts the guards would write it): stale again.
    db.client()
        .batch_execute(
            "DO $$ DECLARE t record; BEGIN
               FOR t IN SELECT evtname FROM pg_event_trigger LOOP
                 EXECUTE format('ALTER EVENT TRIGGER %I DISABLE', t.evtname); END LOOP;
             END $$;
             ALTER TABLE audit.summary_state DISABLE TRIGGER USER;
             UPDATE audit.summary_state SET summarized_at = now() - interval '3 hours';
             ALTER TABLE audit.summary_state ENABLE ALWAYS TRIGGER summary_state_maintained;
             DO $$ DECLARE t record; BEGIN
               FOR t IN SELECT evtname FROM pg_event_trigger LOOP
                 EXECUTE format('ALTER EVENT TRIGGER %I ENABLE ALWAYS', t.evtname); END LOOP;
             END $$;",
        )
        .expect("age the summary");
    let at: String = db
        .client()
        .query_one(
            "SELECT to_char(summarized_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
               FROM audit.summary_state",
            &[],
        )
        .unwrap()
        .get(0);
    for path in ["/reports/audit-log?range=all&actor=x", "/reports/overview"] {
        let n = notice(path).unwrap_or_else(|| panic!("{path}: no notice"));
        assert!(
            n.contains(&format!(
                "Filters read events since {at} without the summary"
            )),
            "{n}"
        );
    }
}

/// `serve --query-timeout`: a view that reads longer than allowed (here an actor matching
/// nothing, walked through 200,000 events that were never summarized) is stopped with a page
/// that says so; the session's connection is left usable.
#[test]
fn a_view_that_reads_too_long_is_stopped_and_says_so() {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, source, entity, action, table_name,
                                       subject_id)
             SELECT now() - g * interval '1 second', 'a' || g % 7, 'manual', 'contact',
                    'update', 'crm.contacts', (g % 1000)::text
               FROM generate_series(1, 200000) AS g",
        )
        .expect("seed history");
    let id: i64 = db
        .client()
        .query_one("SELECT max(id) FROM audit.events", &[])
        .unwrap()
        .get(0);
    let admin = db.create_role(
        "patient",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let dash = Dashboard::start_with(&db, &["--query-timeout", "1ms"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let stopped = http.get("/reports/audit-log?range=all&actor=nobody", Some(&cookie));
    assert_eq!(stopped.status, 503, "{}", stopped.body);
    assert!(
        stopped.body.contains("This view took too long")
            && stopped.body.contains("Narrow the time range"),
        "{}",
        stopped.body
    );
    assert!(
        dash.log()
            .contains("was stopped: canceling statement due to statement timeout"),
        "{}",
        dash.log()
    );
    // The same session goes on: the event page reads no list.
    let event = http.get(&format!("/reports/audit-log/events/{id}"), Some(&cookie));
    assert_eq!(event.status, 200, "{}", event.body);
}

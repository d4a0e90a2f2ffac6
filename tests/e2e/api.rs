//! The JSON API under /api/v1: the real `serve` with viewer tokens, against two
//! organizations' events. A viewer never sees another organization's events, whatever they
//! ask: lists, ids, cursors, the CSV.

use serde_json::Value;

use audit_trail_tests::browser::{Dashboard, Http};
use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::viewers::{bad_tokens, claims, token, TwoOrgs, PASSWORD};

/// `GET path` with a bearer token; the status and the body as JSON (Null if not JSON).
fn api(dash: &Dashboard, path: &str, token: &str) -> (u16, Value, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut response = agent
        .get(dash.url(path))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("an API request");
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(100 * 1024 * 1024)
        .read_to_string()
        .expect("the body");
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, json, body)
}

fn ids(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_i64().expect("an id"))
        .collect()
}

/// Every page of `query`, following next_cursor: the ids in order.
fn walk(dash: &Dashboard, query: &str, token: &str) -> Vec<i64> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            None => format!("/api/v1/events?{query}"),
            Some(c) => format!("/api/v1/events?{query}&cursor={c}"),
        };
        let (status, page, body) = api(dash, &path, token);
        assert_eq!(status, 200, "{path}: {body}");
        for e in page["events"].as_array().expect("events") {
            assert_eq!(e["tenant"], "acme", "{e}");
        }
        all.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
    panic!("more than 100 pages");
}

#[test]
fn a_viewer_reads_only_their_organization_through_the_api() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    let acme = token(&claims("acme", "ann", None));
    let acme_ids = orgs.ids(Some("acme"));
    let globex_ids = orgs.ids(Some("globex"));
    assert!(acme_ids.len() > 20 && !globex_ids.is_empty(), "a weak test");

    // Newest first, keyset pages of 7 that add up to exactly the organization's events.
    assert_eq!(walk(&dash, "limit=7", &acme), acme_ids);
    let (status, page, _) = api(&dash, "/api/v1/events", &acme);
    assert_eq!(status, 200);
    assert_eq!(
        ids(&page),
        acme_ids.iter().take(50).copied().collect::<Vec<_>>()
    );
    assert!(page["next_cursor"].is_null());

    // Every field, and the summary audit.report shows.
    let first = &page["events"][0];
    for field in [
        "id",
        "occurred_at",
        "actor",
        "db_user",
        "source",
        "entity",
        "action",
        "subject_id",
        "table_name",
        "changed_fields",
        "old_data",
        "new_data",
        "context",
        "details",
        "tenant",
        "summary",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    let id = first["id"].as_i64().unwrap();
    let row = orgs
        .db
        .client()
        .query_one(
            "SELECT summary, to_char(occurred_at AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
               FROM audit.report WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(first["summary"], row.get::<_, String>(0));
    assert_eq!(first["occurred_at"], row.get::<_, String>(1));

    // Filters narrow within the organization; the organization is never a parameter.
    let updates = walk(&dash, "entity=contact&action=update&limit=3", &acme);
    assert!(!updates.is_empty());
    for id in &updates {
        assert!(acme_ids.contains(id));
    }
    let (status, _, body) = api(&dash, "/api/v1/events?tenant=globex", &acme);
    assert_eq!(status, 400, "{body}");
    let (_, page, _) = api(&dash, "/api/v1/events?actor=gil%40globex.test", &acme);
    assert_eq!(ids(&page), Vec::<i64>::new());

    // One event: its own organization's, else 404 exactly as a missing id.
    let (status, event, _) = api(&dash, &format!("/api/v1/events/{id}"), &acme);
    assert_eq!((status, event["id"].as_i64()), (200, Some(id)));
    let (status, _, missing) = api(&dash, "/api/v1/events/999999999", &acme);
    assert_eq!(status, 404);
    for other in globex_ids.iter().chain(orgs.ids(None).iter()) {
        if acme_ids.contains(other) {
            continue;
        }
        let (status, _, body) = api(&dash, &format!("/api/v1/events/{other}"), &acme);
        assert_eq!(
            (status, body.as_str()),
            (404, missing.as_str()),
            "event {other}"
        );
    }

    // A cursor of another organization's pages, or made up, never widens the scope.
    let globex = token(&claims("globex", "gil", None));
    let (_, gpage, _) = api(&dash, "/api/v1/events?limit=2", &globex);
    let foreign = gpage["next_cursor"]
        .as_str()
        .expect("globex has more than 2 events");
    let (status, page, _) = api(&dash, &format!("/api/v1/events?cursor={foreign}"), &acme);
    assert_eq!(status, 200);
    for id in ids(&page) {
        assert!(acme_ids.contains(&id), "{id}");
    }
    let far_future = format!("v1.{}", hex_of("99999999999999999:9223372036854775807"));
    let (status, page, _) = api(&dash, &format!("/api/v1/events?cursor={far_future}"), &acme);
    assert_eq!(status, 200);
    assert_eq!(
        ids(&page),
        acme_ids.iter().take(50).copied().collect::<Vec<_>>()
    );
    let (status, _, _) = api(&dash, "/api/v1/events?cursor=v1.zz", &acme);
    assert_eq!(status, 400);

    // The globex viewer, symmetrically.
    assert_eq!(walk_tenant(&dash, &globex, "globex"), globex_ids);
}

/// The latest export recorded under `actor` and the end that names it. (Not by id alone: ids
/// come from a sequence whose values each session caches, so the viewer's long-lived
/// connection may hold lower ones than the CLI's.)
pub fn viewer_export(
    orgs: &TwoOrgs,
    actor: &str,
) -> (audit_trail_tests::Event, Option<audit_trail_tests::Event>) {
    let all = audit_trail_tests::all_events(&mut orgs.db.client());
    let start = all
        .iter()
        .filter(|e| e.entity == "audit_log" && e.action == "export" && e.actor == actor)
        .max_by_key(|e| e.txid)
        .cloned()
        .expect("an export event");
    let end = all
        .iter()
        .find(|e| {
            e.action == "export_end"
                && e.details.as_ref().and_then(|d| d["export"].as_i64()) == Some(start.id)
        })
        .cloned();
    (start, end)
}

/// The organization of event `id`.
pub fn tenant_of(orgs: &TwoOrgs, id: i64) -> Option<String> {
    orgs.db
        .client()
        .query_one("SELECT tenant FROM audit.events WHERE id = $1", &[&id])
        .expect("the event")
        .get(0)
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn walk_tenant(dash: &Dashboard, token: &str, tenant: &str) -> Vec<i64> {
    let (status, page, _) = api(dash, "/api/v1/events?limit=1000", token);
    assert_eq!(status, 200);
    for e in page["events"].as_array().unwrap() {
        assert_eq!(e["tenant"], tenant);
    }
    ids(&page)
}

#[test]
fn every_bad_token_is_a_401_that_shows_nothing() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    for (what, bad) in bad_tokens() {
        for path in ["/api/v1/events", "/api/v1/events.csv", "/api/v1/events/1"] {
            let (status, body, text) = api(&dash, path, &bad);
            assert_eq!(status, 401, "{what} {path}: {text}");
            assert!(body["error"].is_string(), "{what}: {text}");
            assert!(
                !text.contains("acme") && !text.contains("globex"),
                "{what}: {text}"
            );
        }
    }
    // No token at all.
    let reply = Http::new(&dash).get("/api/v1/events", None);
    assert_eq!(reply.status, 401);
    // Never logged.
    let log = dash.log();
    for (_, bad) in bad_tokens() {
        assert!(bad.len() < 12 || !log.contains(&bad), "a token in the log");
    }
    assert!(log.contains("viewer token refused"), "{log}");
    // The document needs no token.
    let reply = Http::new(&dash).get("/api/v1/openapi.json", None);
    assert_eq!(reply.status, 200);
    let doc: Value = serde_json::from_str(&reply.body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
}

#[test]
fn the_api_csv_is_the_clis_export_of_the_organization_and_is_recorded_first() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    // Without the export scope: 403, and nothing recorded.
    let (status, _, _) = api(
        &dash,
        "/api/v1/events.csv",
        &token(&claims("acme", "ann", None)),
    );
    assert_eq!(status, 403);
    let exporter = token(&claims(
        "acme",
        "ann",
        Some("audit_log:read audit_log:export"),
    ));
    for query in [
        "",
        "?entity=contact&action=update",
        "?since=2000-01-01&actor=ann%40acme.test",
    ] {
        let cli_filters: Vec<String> = match query {
            "" => vec![],
            "?entity=contact&action=update" => ["--entity", "contact", "--action", "update"]
                .map(String::from)
                .to_vec(),
            _ => ["--since", "2000-01-01", "--actor", "ann@acme.test"]
                .map(String::from)
                .to_vec(),
        };
        // The CLI first: its records are of no organization, so they are in neither CSV.
        let cli = run(command()
            .args([
                "export",
                "--db",
                &orgs.db.conninfo(&orgs.admin),
                "--tenant",
                "acme",
            ])
            .args(&cli_filters));
        assert_eq!(cli.code, 0, "{}", cli.stderr);
        let (status, _, csv) = api(&dash, &format!("/api/v1/events.csv{query}"), &exporter);
        assert_eq!(status, 200, "{csv}");
        assert_eq!(csv, cli.stdout, "{query}");
        assert!(!csv.contains("globex"), "{query}");
        assert!(
            csv.lines().count() > 1,
            "{query}: nothing exported, a weak test"
        );

        // Recorded as the viewer's export: the start (committed before the first row, with
        // the filters and the count), then its end.
        let (start, end) = viewer_export(&orgs, "ann");
        assert_eq!(start.actor, "ann");
        assert_eq!(start.db_user, orgs.reader);
        assert_eq!(start.source, "api");
        let details = start.details.expect("details");
        assert_eq!(details["status"], "started");
        assert_eq!(details["filters"]["tenant"], "acme");
        assert_eq!(tenant_of(&orgs, start.id).as_deref(), Some("acme"));
        assert_eq!(details["rows"], csv.lines().count() - 1);
        let end = end.expect("its end").details.expect("end details");
        assert_eq!(end["complete"], true);
        assert_eq!(end["rows"], csv.lines().count() - 1);
        assert!(end["export"].as_i64() == Some(start.id));
    }
}

#[test]
fn a_role_signed_in_with_its_password_still_sees_every_organization() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    let http = Http::new(&dash);
    let session = http.session(&orgs.admin, PASSWORD);
    let page = http.get("/reports/audit-log?range=all", Some(&session));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ann@acme.test") && page.body.contains("gil@globex.test"));
    assert!(page.body.contains("export-button"));
    for id in orgs
        .ids(Some("globex"))
        .iter()
        .take(2)
        .chain(orgs.ids(Some("acme")).iter().take(2))
    {
        let reply = http.get(&format!("/reports/audit-log/events/{id}"), Some(&session));
        assert_eq!(reply.status, 200, "event {id}");
    }
    let overview = http.get("/reports/overview", Some(&session));
    assert!(overview.body.contains("ann@acme.test") && overview.body.contains("gil@globex.test"));
}

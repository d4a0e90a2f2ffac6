//! Failed dashboard sign-ins slow down guessing without handing anyone a lockout switch:
//! they are throttled per (role, client address) and per client address across role names,
//! with short exponential delays, and the client address comes from `X-Forwarded-For` only
//! when the peer is a `--trusted-proxy`.

use std::time::Duration;

use audit_trail_tests::browser::{Dashboard, Http, Reply};
use audit_trail_tests::TestDb;

const PASSWORD: &str = "correct-horse-7";
/// The longest wait the dashboard imposes (`limiter::MAX_DELAY`).
const MAX_DELAY_SECS: u64 = 60;

/// Failures from one address, at any role names, that cost nothing (`limiter::
/// FREE_ADDRESS_FAILURES`).
const FREE_ADDRESS_FAILURES: usize = 20;

/// A sign-in form's token and cookie, which may be submitted many times.
struct Form {
    token: String,
    cookie: String,
}

fn form(http: &Http) -> Form {
    let page = http.get("/sign-in", None);
    assert_eq!(page.status, 200, "{}", page.body);
    Form {
        token: page.hidden_field("csrf").expect("a CSRF token in the form"),
        cookie: page
            .cookie("audit_trail_sign_in")
            .expect("the sign-in form sets its cookie"),
    }
}

fn submit(http: &Http, form: &Form, client: &str, role: &str, password: &str) -> Reply {
    http.post(
        "/sign-in",
        Some(&format!("audit_trail_sign_in={}", form.cookie)),
        &[
            ("csrf", &form.token),
            ("role", role),
            ("password", password),
        ],
        &[("X-Forwarded-For", client)],
    )
}

/// Signs in as `role`, through a proxy that says the request came from `client` (or
/// without the header).
fn sign_in_from(http: &Http, client: Option<&str>, role: &str, password: &str) -> Reply {
    let form = http.get("/sign-in", None);
    assert_eq!(form.status, 200, "{}", form.body);
    let token = form.hidden_field("csrf").expect("a CSRF token in the form");
    let cookie = form
        .cookie("audit_trail_sign_in")
        .expect("the sign-in form sets its cookie");
    let headers: Vec<(&str, &str)> = client.map(|c| ("X-Forwarded-For", c)).into_iter().collect();
    http.post(
        "/sign-in",
        Some(&format!("audit_trail_sign_in={cookie}")),
        &[("csrf", &token), ("role", role), ("password", password)],
        &headers,
    )
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 without Retry-After: {reply:?}"))
}

/// Wrong passwords for `role` from `client`, waiting out each delay, until the next attempt
/// would have to wait at least `seconds`.
fn fail_until_waiting(http: &Http, client: Option<&str>, role: &str, seconds: u64) {
    for _ in 0..20 {
        let reply = sign_in_from(http, client, role, "wrong-password");
        match reply.status {
            401 => {}
            429 => {
                let wait = retry_after(&reply);
                assert!(wait <= MAX_DELAY_SECS, "waits {wait}s");
                if wait >= seconds {
                    return;
                }
                std::thread::sleep(Duration::from_secs(wait));
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    panic!("20 wrong passwords and still no wait of {seconds}s");
}

fn admin_db() -> (TestDb, String) {
    let db = TestDb::new();
    let admin = db.create_role(
        "auditor",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    (db, admin)
}

#[test]
fn an_attacker_cannot_lock_the_auditor_out() {
    let (db, admin) = admin_db();
    let dash = Dashboard::start_with(&db, &["--trusted-proxy", "127.0.0.1"]);
    let http = Http::new(&dash);
    let attacker = "203.0.113.66";

    // Many wrong passwords for the auditor from one address, as fast as they are answered:
    // a few are checked, then the rest are told to wait (and never reach the database).
    let mut refused = 0;
    for _ in 0..15 {
        let reply = sign_in_from(&http, Some(attacker), &admin, "guess");
        match reply.status {
            401 => {}
            429 => {
                refused += 1;
                assert!(retry_after(&reply) <= MAX_DELAY_SECS);
                assert!(
                    reply.body.contains("Too many failed sign-ins"),
                    "{}",
                    reply.body
                );
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(refused > 0, "fifteen wrong passwords in a row and no wait");

    // The real auditor, elsewhere, gets in at once.
    let reply = sign_in_from(&http, Some("198.51.100.7"), &admin, PASSWORD);
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(reply.cookie("audit_trail_session").is_some());

    // From the attacker's own address too, after a short wait rather than a lockout.
    let reply = sign_in_from(&http, Some(attacker), &admin, PASSWORD);
    if reply.status == 429 {
        let wait = retry_after(&reply);
        assert!(wait <= MAX_DELAY_SECS, "waits {wait}s");
        std::thread::sleep(Duration::from_secs(wait));
        let reply = sign_in_from(&http, Some(attacker), &admin, PASSWORD);
        assert_eq!(reply.status, 303, "{}", reply.body);
    } else {
        assert_eq!(reply.status, 303, "{}", reply.body);
    }

    // The log names the address the proxy forwarded, never a password.
    let log = dash.log();
    assert!(log.contains(attacker), "{log}");
    assert!(log.contains("198.51.100.7"), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains("guess"), "{log}");
}

#[test]
fn failures_for_many_roles_from_one_address_do_not_lock_it() {
    let (db, admin) = admin_db();
    let dash = Dashboard::start_with(&db, &["--trusted-proxy", "127.0.0.0/8"]);
    let http = Http::new(&dash);
    let office = "192.0.2.10";
    // Colleagues behind the same proxy mistype, each once or twice.
    for n in 0..8 {
        for _ in 0..2 {
            let reply = sign_in_from(&http, Some(office), &format!("colleague{n}"), "typo");
            assert_eq!(reply.status, 401, "{}", reply.body);
        }
    }
    let reply = sign_in_from(&http, Some(office), &admin, PASSWORD);
    assert_eq!(reply.status, 303, "{}", reply.body);
}

#[test]
fn forwarded_addresses_from_an_untrusted_peer_are_ignored() {
    let (db, admin) = admin_db();
    // No --trusted-proxy: X-Forwarded-For is the client's own claim and counts for nothing.
    let dash = Dashboard::start(&db);
    let http = Http::new(&dash);
    fail_until_waiting(&http, Some("203.0.113.66"), &admin, 4);
    // Claiming another address does not escape the wait of this (role, peer).
    let reply = sign_in_from(&http, Some("198.51.100.7"), &admin, PASSWORD);
    assert_eq!(reply.status, 429, "{}", reply.body);
    let wait = retry_after(&reply);
    assert!((1..=MAX_DELAY_SECS).contains(&wait), "waits {wait}s");
    // That the right password gets in once the wait has passed is the limiter's unit test
    // (on a clock it moves) and, through the server, the other tests here.
    assert!(!dash.log().contains("203.0.113.66"), "{}", dash.log());
}

#[test]
fn spraying_one_password_at_many_role_names_is_throttled_per_address() {
    let (db, admin) = admin_db();
    // Roles that exist, with the sprayed password: their answer must be no different.
    for n in 0..3 {
        db.create_role(
            &format!("clerk{n}"),
            &format!("LOGIN PASSWORD '{PASSWORD}'"),
        );
    }
    let dash = Dashboard::start_with(&db, &["--trusted-proxy", "127.0.0.1"]);
    let http = Http::new(&dash);
    let form = form(&http);
    let attacker = "203.0.113.66";
    let mut answers = Vec::new();
    for n in 0..50 {
        let role = match n % 10 {
            0..=2 => format!("clerk{}", n % 10),
            _ => format!("user{n}"),
        };
        let reply = submit(&http, &form, attacker, &role, PASSWORD);
        answers.push(reply.status);
        if reply.status == 429 {
            assert!(retry_after(&reply) <= MAX_DELAY_SECS);
        }
    }
    // A few free failures (colleagues behind one proxy mistype), then one let through after
    // them, then every guess waits: none of the right passwords got a different answer.
    let checked = answers.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, FREE_ADDRESS_FAILURES + 1, "{answers:?}");
    assert!(
        answers.iter().all(|s| *s == 401 || *s == 429),
        "{answers:?}"
    );
    assert!(answers[checked..].iter().all(|s| *s == 429), "{answers:?}");

    // The auditor, elsewhere, gets in at once; from the attacker's address, after a wait
    // no longer than the cap. (The last wait imposed may be over by now on a slow machine:
    // the first checked guess costs one second, and 429s add none.)
    let reply = submit(&http, &form, "198.51.100.7", &admin, PASSWORD);
    assert_eq!(reply.status, 303, "{}", reply.body);
    let mut reply = submit(&http, &form, attacker, &admin, PASSWORD);
    if reply.status == 429 {
        assert!(retry_after(&reply) <= MAX_DELAY_SECS);
        std::thread::sleep(Duration::from_secs(retry_after(&reply)));
        reply = submit(&http, &form, attacker, &admin, PASSWORD);
    }
    assert_eq!(reply.status, 303, "{}", reply.body);
}

#[test]
fn made_up_role_names_do_not_erase_guesses_at_a_real_one() {
    let (db, admin) = admin_db();
    let dash = Dashboard::start_with(&db, &["--trusted-proxy", "127.0.0.1"]);
    let http = Http::new(&dash);
    let form = form(&http);
    let attacker = "203.0.113.66";
    fail_until_waiting(&http, Some(attacker), &admin, 2);
    // As many made-up names from the same address as the throttle once held entries: they
    // are slowed by the address's own count, and push nothing out.
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..10_000 {
        let reply = submit(&http, &form, attacker, &format!("junk{n}"), "guess");
        *statuses.entry(reply.status).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&401).copied().unwrap_or(0) <= FREE_ADDRESS_FAILURES + 1,
        "{statuses:?}"
    );
    // The next guess at the auditor still waits.
    let reply = submit(&http, &form, attacker, &admin, "another-guess");
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(retry_after(&reply) <= MAX_DELAY_SECS);
}

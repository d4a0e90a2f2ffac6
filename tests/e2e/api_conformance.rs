//! The JSON API against clients no one here wrote: PyJWT mints the viewer token as an
//! application's backend would, and Schemathesis generates requests from the served
//! OpenAPI description (`/api/v1/openapi.json`), checking every response against it: no
//! server error, no response the description does not allow. Both are pinned in
//! `.venv-tools` (scripts/setup.sh).

use std::path::PathBuf;
use std::process::Command;

use audit_trail_tests::http::Http;
use audit_trail_tests::viewers::TwoOrgs;

fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv-tools/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh (make setup)",
        path.display()
    );
    path
}

/// What the pinned Python prints running `script` with `args` (sys.argv[1:]).
fn python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(tool("python"))
        .args(["-c", script])
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A token for an admin of `tenant`, minted by PyJWT with the secret file's bytes.
fn pyjwt_token(secret_file: &std::path::Path, tenant: &str) -> String {
    python(
        "import jwt, sys, time\n\
             secret = open(sys.argv[1], 'rb').read().rstrip(b'\\n')\n\
             now = int(time.time())\n\
             print(jwt.encode({'sub': 'u-17', 'name': 'auditor@acme.test', 'tenant': sys.argv[2],\n\
                               'iat': now, 'exp': now + 600,\n\
                               'scope': 'audit_log:read audit_log:export'},\n\
                              secret, algorithm='HS256'))",
        &[secret_file.as_os_str(), tenant.as_ref()],
    )
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    let token = pyjwt_token(&orgs.secret_file, "acme");
    // The token PyJWT made is one serve takes.
    let http = Http::new(&dash);
    let reply = http.get_with(
        "/api/v1/events?limit=5",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(5));
    assert!(body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| e["tenant"] == "acme"));

    // What Schemathesis first found: a NUL in a value was a database error (500), and is
    // now the 400 that names it.
    let nul = http.get_with(
        "/api/v1/events?actor=a%00b",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(nul.status, 400, "{}", nul.body);
    assert!(nul.body.contains("NUL"), "{}", nul.body);

    // Its cache of findings in a directory of its own, not the checkout.
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = Command::new(tool("schemathesis"))
        .current_dir(scratch.path())
        .arg("run")
        .arg(dash.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Every check but "schema-valid data is accepted": a description cannot state every
        // rule a value must meet (a time in one of three notations, a cursor this API
        // issued), and such values are refused with the 400 the description lists.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "40", "--workers", "1"])
        .args(["--seed", "20261207", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}\n{}", dash.log());
    // It did test the API's three operations, not an empty description.
    assert!(report.contains("Tested: 3"), "{report}");
    // And the server never failed: no 5xx reached the log either.
    assert!(!dash.log().contains("panicked"), "{}", dash.log());
}

/// EdDSA tokens as a backend mints them with PyJWT and `cryptography`: `serve --viewer-key`
/// takes one signed by the application's Ed25519 key and refuses one signed by any other
/// key, and an HS256 token "signed" with the public key itself (algorithm confusion).
#[test]
fn eddsa_tokens_minted_by_pyjwt_are_taken_with_the_public_key_alone() {
    let orgs = TwoOrgs::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let public = dir.path().join("viewer.pub.pem");
    let stdout = python(
            "import base64, hashlib, hmac, json, jwt, sys, time\n\
             from cryptography.hazmat.primitives import serialization as s\n\
             from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n\
             key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()\n\
             pem = key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)\n\
             open(sys.argv[1], 'wb').write(pem)\n\
             now = int(time.time())\n\
             claims = {'sub': 'u-9', 'name': 'gil@globex.test', 'tenant': 'globex', 'exp': now + 600}\n\
             b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=')\n\
             signing = b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode()) + b'.' + b64(json.dumps(claims).encode())\n\
             confused = (signing + b'.' + b64(hmac.new(pem, signing, hashlib.sha256).digest())).decode()\n\
             print(jwt.encode(claims, key, algorithm='EdDSA'))\n\
             print(jwt.encode(claims, other, algorithm='EdDSA'))\n\
             print(confused)",
        &[public.as_os_str()],
    );
    let tokens: Vec<&str> = stdout.lines().collect();
    let [good, other_key, confused] = tokens[..] else {
        panic!("three tokens: {stdout}")
    };
    let public = public.display().to_string();
    let reader = orgs.db.conninfo(&orgs.reader);
    let dash = audit_trail_tests::browser::Dashboard::start_with(
        &orgs.db,
        &["--viewer-key", &public, "--viewer-db", &reader],
    );
    let http = Http::new(&dash);
    let get = |token: &str| {
        http.get_with(
            "/api/v1/events?limit=500",
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    let reply = get(good);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    let ids: Vec<i64> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids, orgs.ids(Some("globex")));
    for (what, token) in [
        ("another key", other_key),
        ("HS256 with the public key", confused),
    ] {
        let reply = get(token);
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert!(
            !reply.body.contains("globex.test"),
            "{what}: {}",
            reply.body
        );
    }
}

//! Every way a viewer token is refused, and what a good one grants.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-viewer";
const OTHER_SECRET: &[u8] = b"another secret that is long enough, too";
const SEED: [u8; 32] = [7; 32];
const OTHER_SEED: [u8; 32] = [9; 32];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(seed);
    der
}

/// The PEM of the public half of `seed`.
pub fn public_pem(seed: &[u8; 32]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let public = ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes();
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(&public);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

fn now() -> u64 {
    now_secs()
}

fn claims() -> Value {
    json!({"sub": "u-17", "tenant": "acme", "exp": now() + 300, "name": "Ann Admin",
           "iat": now()})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn eddsa(claims: &Value, seed: &[u8; 32]) -> String {
    encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_der(&pkcs8(seed)),
    )
    .unwrap()
}

fn both() -> Verifier {
    Verifier::new(
        Some(Verifier::secret_key(SECRET).unwrap()),
        Some(Verifier::public_key(public_pem(&SEED).as_bytes()).unwrap()),
    )
}

fn secret_only() -> Verifier {
    Verifier::new(Some(Verifier::secret_key(SECRET).unwrap()), None)
}

fn key_only() -> Verifier {
    Verifier::new(
        None,
        Some(Verifier::public_key(public_pem(&SEED).as_bytes()).unwrap()),
    )
}

fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    if let Value::Object(map) = &mut c {
        change(map);
    }
    c
}

#[test]
fn a_good_token_names_the_viewer_and_their_organization() {
    for (verifier, token) in [
        (both(), hs256(&claims(), SECRET)),
        (both(), eddsa(&claims(), &SEED)),
        (secret_only(), hs256(&claims(), SECRET)),
        (key_only(), eddsa(&claims(), &SEED)),
    ] {
        let viewer = verifier.verify(&token, now()).unwrap();
        assert_eq!(
            viewer,
            Viewer {
                subject: "u-17".into(),
                name: "Ann Admin".into(),
                tenant: "acme".into(),
                may_read: true,
                may_export: false,
            }
        );
    }
}

#[test]
fn name_defaults_to_sub_and_scopes_are_read_from_the_scope_claim() {
    let v = both();
    let no_name = hs256(&with(|c| drop(c.remove("name"))), SECRET);
    assert_eq!(v.verify(&no_name, now()).unwrap().name, "u-17");
    for (scope, read, export) in [
        ("audit_log:read", true, false),
        ("audit_log:read audit_log:export", true, true),
        ("openid  audit_log:export", true, true),
        ("audit_log:reader", false, false),
        ("", false, false),
    ] {
        let token = hs256(
            &with(|c| drop(c.insert("scope".into(), json!(scope)))),
            SECRET,
        );
        let viewer = v.verify(&token, now()).unwrap();
        assert_eq!(
            (viewer.may_read, viewer.may_export),
            (read, export),
            "{scope:?}"
        );
    }
}

#[test]
fn an_expired_token_is_refused() {
    let token = hs256(
        &with(|c| drop(c.insert("exp".into(), json!(now() - 600)))),
        SECRET,
    );
    assert_eq!(both().verify(&token, now()), Err(Refusal::Expired));
    // Expired by our clock even if the library's clock were behind.
    let token = hs256(&claims(), SECRET);
    assert_eq!(both().verify(&token, now() + 600), Err(Refusal::Expired));
}

#[test]
fn a_token_that_lives_more_than_an_hour_is_refused() {
    let too_long = now() + MAX_TOKEN_LIFETIME_SECS + CLOCK_SKEW_SECS + 5;
    let token = hs256(
        &with(|c| drop(c.insert("exp".into(), json!(too_long)))),
        SECRET,
    );
    assert_eq!(both().verify(&token, now()), Err(Refusal::LivesTooLong));
    let just = now() + MAX_TOKEN_LIFETIME_SECS;
    let token = hs256(&with(|c| drop(c.insert("exp".into(), json!(just)))), SECRET);
    assert!(both().verify(&token, now()).is_ok());
}

#[test]
fn alg_none_is_refused() {
    let payload = b64(claims().to_string().as_bytes());
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#] {
        let header = b64(header.as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            let refused = both().verify(&token, now());
            assert!(
                matches!(refused, Err(Refusal::Malformed | Refusal::Algorithm(_))),
                "{refused:?}"
            );
        }
    }
}

#[test]
fn an_algorithm_without_its_key_is_refused() {
    // HS256 where only the public key was given, and EdDSA where only the secret was.
    let refused = key_only().verify(&hs256(&claims(), SECRET), now());
    assert!(matches!(refused, Err(Refusal::Algorithm(_))), "{refused:?}");
    let refused = secret_only().verify(&eddsa(&claims(), &SEED), now());
    assert!(matches!(refused, Err(Refusal::Algorithm(_))), "{refused:?}");
    // Other algorithms of the HMAC family, and RS256, are never accepted.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = encode(
            &Header::new(alg),
            &claims(),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        let refused = both().verify(&token, now());
        assert!(matches!(refused, Err(Refusal::Algorithm(_))), "{refused:?}");
    }
    let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
    let token = format!(
        "{header}.{}.{}",
        b64(claims().to_string().as_bytes()),
        b64(b"sig")
    );
    assert!(matches!(
        both().verify(&token, now()),
        Err(Refusal::Algorithm(_))
    ));
}

#[test]
fn the_public_key_used_as_an_hmac_secret_is_refused() {
    // Algorithm confusion: an HS256 token "signed" with the Ed25519 public key's PEM.
    let pem = public_pem(&SEED);
    let forged = hs256(&claims(), pem.as_bytes());
    assert_eq!(both().verify(&forged, now()), Err(Refusal::Signature));
    assert!(matches!(
        key_only().verify(&forged, now()),
        Err(Refusal::Algorithm(_))
    ));
}

#[test]
fn a_wrong_key_is_refused() {
    assert_eq!(
        both().verify(&hs256(&claims(), OTHER_SECRET), now()),
        Err(Refusal::Signature)
    );
    assert_eq!(
        both().verify(&eddsa(&claims(), &OTHER_SEED), now()),
        Err(Refusal::Signature)
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let token = hs256(&claims(), SECRET);
    let parts: Vec<&str> = token.split('.').collect();
    let other = b64(with(|c| drop(c.insert("tenant".into(), json!("globex"))))
        .to_string()
        .as_bytes());
    let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
    assert_eq!(both().verify(&tampered, now()), Err(Refusal::Signature));
}

#[test]
fn missing_claims_are_refused() {
    for claim in ["sub", "tenant", "exp"] {
        let token = hs256(&with(|c| drop(c.remove(claim))), SECRET);
        let refused = both().verify(&token, now());
        assert!(
            matches!(refused, Err(Refusal::Claim(_))),
            "{claim}: {refused:?}"
        );
    }
    // Of the wrong type.
    for (claim, value) in [
        ("tenant", json!(42)),
        ("sub", json!(null)),
        ("exp", json!("soon")),
    ] {
        let token = hs256(
            &with(|c| drop(c.insert(claim.into(), value.clone()))),
            SECRET,
        );
        let refused = both().verify(&token, now());
        assert!(
            matches!(refused, Err(Refusal::Claim(_))),
            "{claim}: {refused:?}"
        );
    }
}

#[test]
fn an_empty_tenant_or_sub_is_refused() {
    for (claim, value) in [("tenant", ""), ("tenant", "   "), ("sub", "")] {
        let token = hs256(
            &with(|c| drop(c.insert(claim.into(), json!(value)))),
            SECRET,
        );
        assert_eq!(
            both().verify(&token, now()),
            Err(Refusal::Empty(claim)),
            "{claim}"
        );
    }
    let long = "x".repeat(MAX_CLAIM_BYTES + 1);
    let token = hs256(
        &with(|c| drop(c.insert("tenant".into(), json!(long)))),
        SECRET,
    );
    assert_eq!(both().verify(&token, now()), Err(Refusal::Unfit("tenant")));
    let token = hs256(
        &with(|c| drop(c.insert("name".into(), json!("a\nb")))),
        SECRET,
    );
    assert_eq!(both().verify(&token, now()), Err(Refusal::Unfit("name")));
}

#[test]
fn a_token_issued_in_the_future_is_refused() {
    let token = hs256(
        &with(|c| drop(c.insert("iat".into(), json!(now() + 600)))),
        SECRET,
    );
    assert_eq!(
        both().verify(&token, now()),
        Err(Refusal::IssuedInTheFuture)
    );
}

#[test]
fn garbage_is_refused() {
    for junk in [
        "",
        "   ",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        &"x".repeat(10_000),
    ] {
        let refused = both().verify(junk, now());
        assert!(
            matches!(refused, Err(Refusal::Missing | Refusal::Malformed)),
            "{junk:?}: {refused:?}"
        );
    }
}

#[test]
fn secrets_are_long_enough_without_their_trailing_newline() {
    assert!(Verifier::secret_key(&[b'k'; 32]).is_ok());
    let mut with_newline = vec![b'k'; 31];
    with_newline.push(b'\n');
    assert!(Verifier::secret_key(&with_newline).is_err());
    assert!(Verifier::secret_key(b"short\n").is_err());
    // Only one newline is taken off: the key is the file's bytes.
    let mut key = vec![b'k'; 32];
    key.extend_from_slice(b"\n");
    let v = Verifier::new(Some(Verifier::secret_key(&key).unwrap()), None);
    assert!(v.verify(&hs256(&claims(), &[b'k'; 32]), now()).is_ok());
}

#[test]
fn public_keys_must_be_ed25519_pem() {
    assert!(Verifier::public_key(public_pem(&SEED).as_bytes()).is_ok());
    assert!(Verifier::public_key(b"not a key").is_err());
    assert!(Verifier::public_key(SECRET).is_err());
    let rsa_like = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAK\n-----END PUBLIC KEY-----\n";
    assert!(Verifier::public_key(rsa_like.as_bytes()).is_err());
}

#[test]
fn key_files_are_read_and_bad_ones_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let short = dir.path().join("short");
    let key = dir.path().join("key.pem");
    std::fs::write(&secret, [SECRET, b"\n"].concat()).unwrap();
    std::fs::write(&short, b"tooshort\n").unwrap();
    std::fs::write(&key, public_pem(&SEED)).unwrap();
    assert!(Verifier::from_files(None, None).unwrap().is_none());
    let v = Verifier::from_files(Some(&secret), Some(&key))
        .unwrap()
        .unwrap();
    assert!(v.verify(&hs256(&claims(), SECRET), now()).is_ok());
    assert!(v.verify(&eddsa(&claims(), &SEED), now()).is_ok());
    for (secret, key) in [
        (Some(short.as_path()), None),
        (Some(dir.path().join("missing").as_path()), None),
        (None, Some(secret.as_path())),
    ] {
        let e = Verifier::from_files(secret, key).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    }
    // The Debug form shows which keys there are, never them.
    let shown = format!("{v:?}");
    assert!(
        shown.contains("hs256: true") && !shown.contains("0123"),
        "{shown}"
    );
}

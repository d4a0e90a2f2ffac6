//! Token viewers in the end-to-end tests: a database with two organizations' events, the
//! `serve` flags that accept their tokens, and tokens minted as the application would.

use std::path::PathBuf;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::browser::Dashboard;
use crate::TestDb;

/// The HS256 secret `serve` is given (`--viewer-secret-file`).
pub const SECRET: &[u8] = b"e2e-viewer-secret-0123456789abcdef";
/// Password of the admin role that signs in to the dashboard with its password.
pub const PASSWORD: &str = "correct-horse-7";

/// A database whose events belong to two organizations (`acme`, `globex`) and to none.
pub struct TwoOrgs {
    pub db: TestDb,
    /// A member of audit_admin with [`PASSWORD`], who signs in as a role.
    pub admin: String,
    /// The `--viewer-db` role: a member of audit_admin (no password: the unix socket trusts).
    pub reader: String,
    _secret_dir: tempfile::TempDir,
    pub secret_file: PathBuf,
}

/// Seconds since 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// A token signed with [`SECRET`].
pub fn token(claims: &Value) -> String {
    token_signed(claims, SECRET)
}

pub fn token_signed(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).expect("an HMAC key"),
    )
    .expect("a token")
}

/// The claims of a viewer of `tenant`, valid for five minutes, with `scope` if given.
pub fn claims(tenant: &str, name: &str, scope: Option<&str>) -> Value {
    let mut c = json!({"sub": format!("id-{name}"), "name": name, "tenant": tenant,
                       "exp": now() + 300, "iat": now()});
    if let Some(scope) = scope {
        c["scope"] = json!(scope);
    }
    c
}

/// Tokens `serve` must refuse, by what is wrong with them.
pub fn bad_tokens() -> Vec<(&'static str, String)> {
    let good = claims("acme", "ann", None);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        token(&c)
    };
    let without = |key: &str| {
        let mut c = good.clone();
        if let Some(map) = c.as_object_mut() {
            map.remove(key);
        }
        token(&c)
    };
    let none = {
        use std::fmt::Write;
        let b64 = |bytes: &[u8]| {
            // base64url without padding, by hand: the tests need no codec crate for one token.
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    let _ = write!(out, "{}", A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(good.to_string().as_bytes())
        )
    };
    vec![
        ("expired", with("exp", json!(now() - 600))),
        ("alg none", none),
        (
            "wrong key",
            token_signed(&good, b"not the secret but long enough 123"),
        ),
        ("no sub", without("sub")),
        ("no tenant", without("tenant")),
        ("no exp", without("exp")),
        ("empty tenant", with("tenant", json!(""))),
        (
            "exp more than an hour ahead",
            with("exp", json!(now() + 7200)),
        ),
        ("garbage", "not-a-token".into()),
    ]
}

impl TwoOrgs {
    /// `acme` and `globex` each create, update and export contacts (a table tracked with
    /// `tenant_column => 'account_id'`, and application events under `set_actor(tenant =>)`);
    /// `acme` has enough events for several API pages; the admin logs one event of no
    /// organization.
    pub fn new() -> TwoOrgs {
        let db = TestDb::new();
        let admin = db.create_role(
            "admin",
            &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
        );
        let reader = db.create_role("viewers", "LOGIN IN ROLE audit_admin");
        let mut c = db.client();
        c.batch_execute(
            "CREATE SCHEMA crm;
             CREATE TABLE crm.contacts (id bigint PRIMARY KEY, account_id text NOT NULL,
                                        name text, email text);
             SELECT audit.track('crm.contacts', 'contact', tenant_column => 'account_id');",
        )
        .expect("CRM schema");
        for (tenant, actor, first) in [
            ("acme", "ann@acme.test", 1),
            ("globex", "gil@globex.test", 1000),
        ] {
            let mut tx = c.transaction().expect("begin");
            tx.execute(
                "SELECT audit.set_actor($1, source => 'api', tenant => $2)",
                &[&actor, &tenant],
            )
            .expect("set_actor");
            tx.execute(
                "INSERT INTO crm.contacts (id, account_id, name, email)
                 SELECT $1::bigint + g, $2, 'Contact ' || g, 'c' || g || '@' || $2 || '.test'
                   FROM generate_series(0, 23) AS g",
                &[&i64::from(first), &tenant],
            )
            .expect("contacts");
            tx.execute(
                "UPDATE crm.contacts SET email = 'new-' || email WHERE account_id = $1 AND id % 3 = 0",
                &[&tenant],
            )
            .expect("updates");
            tx.execute(
                "SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 24}')",
                &[],
            )
            .expect("an application event");
            tx.commit().expect("commit");
        }
        c.batch_execute(
            "SELECT audit.log_event('contact', 'merge', '7', '{\"note\": \"no organization\"}')",
        )
        .expect("an event of no organization");
        let secret_dir = tempfile::tempdir().expect("temp dir");
        let secret_file = secret_dir.path().join("viewer.secret");
        std::fs::write(&secret_file, [SECRET, b"\n"].concat()).expect("secret file");
        TwoOrgs {
            db,
            admin,
            reader,
            _secret_dir: secret_dir,
            secret_file,
        }
    }

    /// `serve` flags accepting viewer tokens, reading through [`TwoOrgs::reader`].
    pub fn viewer_args(&self) -> Vec<String> {
        vec![
            "--viewer-secret-file".into(),
            self.secret_file.display().to_string(),
            "--viewer-db".into(),
            self.db.conninfo(&self.reader),
        ]
    }

    /// The dashboard serving viewers, with `extra` flags.
    pub fn serve(&self, extra: &[&str]) -> Dashboard {
        let mut args = self.viewer_args();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Dashboard::start_with(&self.db, &args)
    }

    /// Ids of `tenant`'s events (all of them with None), newest first.
    pub fn ids(&self, tenant: Option<&str>) -> Vec<i64> {
        self.db
            .client()
            .query(
                "SELECT id FROM audit.events WHERE $1::text IS NULL OR tenant = $1
                  ORDER BY occurred_at DESC, id DESC",
                &[&tenant],
            )
            .expect("ids")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Default for TwoOrgs {
    fn default() -> Self {
        Self::new()
    }
}

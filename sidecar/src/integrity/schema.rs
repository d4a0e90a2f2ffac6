//! What readers read (docs/integrity.md): the audit schema must hold nothing that would
//! let one reader see other rows than another, and exactly the objects its release made.
//! `verify` checks both from the catalogs before it reads an event: the states no release
//! makes ([`FINDINGS`]: row-level security, policies, rules, view options, triggers added or
//! disabled, foreign or non-heap partitions, ownership), and every object of the extension
//! against the reference of its version and PostgreSQL major ([`MEMBERS`], one line per
//! object in `schema/<version>-pg<major>.txt`). A database the reference cannot vouch for
//! (an unknown version or major) is a finding too: verify fails closed.

use std::collections::BTreeMap;

use audit_trail_contract::schema::{reference_line, FINDINGS, MEMBERS};
use tokio_postgres::GenericClient;

use super::verify::FindingKind;
use crate::error::{Error, Result};

/// The references this build knows: (extension version, PostgreSQL major, lines). They differ
/// by major where the catalogs describe the same objects differently (written by the tests,
/// tests/e2e/surface.rs, on each major): from 16, a view's definition no longer qualifies the
/// columns of its only table; from 17, an owner's privileges include MAINTAIN; from 18, each
/// NOT NULL is a constraint of its own (pg_constraint) and the row types of the extension's
/// tables and views are members of the extension.
const REFERENCES: &[(&str, u32, &str)] = &[
    ("0.2.0", 15, include_str!("schema/0.2.0-pg15.txt")),
    ("0.3.0", 15, include_str!("schema/0.3.0-pg15.txt")),
    ("0.2.0", 16, include_str!("schema/0.2.0-pg16.txt")),
    ("0.3.0", 16, include_str!("schema/0.3.0-pg16.txt")),
    ("0.2.0", 17, include_str!("schema/0.2.0-pg17.txt")),
    ("0.3.0", 17, include_str!("schema/0.3.0-pg17.txt")),
    ("0.2.0", 18, include_str!("schema/0.2.0-pg18.txt")),
    ("0.3.0", 18, include_str!("schema/0.3.0-pg18.txt")),
    // The WAL capture install (docs/wal-capture.md), written by tests/e2e/wal_portable.rs.
    ("0.3.0-wal", 15, include_str!("schema/0.3.0-wal-pg15.txt")),
    ("0.3.0-wal", 16, include_str!("schema/0.3.0-wal-pg16.txt")),
    ("0.3.0-wal", 17, include_str!("schema/0.3.0-wal-pg17.txt")),
    ("0.3.0-wal", 18, include_str!("schema/0.3.0-wal-pg18.txt")),
];

/// One state of the schema that breaks what readers rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFinding {
    pub kind: FindingKind,
    pub message: String,
}

/// What the catalog check found; `filtered` when row-level security or a policy could make
/// reads (verify's own among them) see other rows than are there.
#[derive(Debug, Default)]
pub struct SchemaCheck {
    pub findings: Vec<SchemaFinding>,
    pub filtered: bool,
}

fn kind_of(query_kind: &str) -> FindingKind {
    match query_kind {
        "extension_missing" => FindingKind::SchemaExtensionMissing,
        "row_security" => FindingKind::SchemaRowSecurity,
        "policy" => FindingKind::SchemaPolicy,
        "rule" => FindingKind::SchemaRule,
        "view_option" => FindingKind::SchemaViewOption,
        "owner" => FindingKind::SchemaOwner,
        "access_method" => FindingKind::SchemaAccessMethod,
        "foreign_table" => FindingKind::SchemaForeignTable,
        "unexpected_object" => FindingKind::SchemaUnexpectedObject,
        "trigger" => FindingKind::SchemaTrigger,
        "trigger_disabled" => FindingKind::SchemaTriggerDisabled,
        "event_trigger_disabled" => FindingKind::SchemaEventTriggerDisabled,
        "inheritance" => FindingKind::SchemaInheritance,
        "partition" => FindingKind::SchemaPartition,
        "privileges" => FindingKind::SchemaPrivileges,
        "user_cast" => FindingKind::SchemaUserCast,
        "subscription" => FindingKind::SchemaSubscription,
        _ => FindingKind::SchemaOther,
    }
}

/// The reference lines of a version and major, by identity.
fn reference(version: &str, major: u32) -> Option<BTreeMap<&'static str, &'static str>> {
    let (_, _, text) = REFERENCES
        .iter()
        .find(|(v, m, _)| *v == version && *m == major)?;
    Some(text.lines().filter_map(|l| l.split_once('\t')).collect())
}

/// Checks the audit schema from the catalogs, as seen by `client`.
pub async fn check(client: &impl GenericClient) -> Result<SchemaCheck> {
    let db_error = |doing| move |e: tokio_postgres::Error| Error::database(doing, &e);
    let mut out = SchemaCheck::default();
    for row in client
        .query(FINDINGS, &[])
        .await
        .map_err(db_error("reading the audit schema's catalog"))?
    {
        let kind: &str = row.get(0);
        let object: &str = row.get(1);
        let detail: &str = row.get(2);
        out.filtered |= matches!(kind, "row_security" | "policy");
        out.findings.push(SchemaFinding {
            kind: kind_of(kind),
            message: format!("the audit schema was changed: {object}: {detail}"),
        });
    }
    // The extension's version; for a WAL capture install, which is no extension, the version
    // its schema's comment names, with `-wal` (its reference is its own).
    let row = client
        .query_opt(
            "SELECT v.version, pg_catalog.current_setting('server_version_num')::int / 10000
               FROM (SELECT e.extversion::text AS version
                       FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail'
                     UNION ALL
                     SELECT pg_catalog.substring(
                                pg_catalog.obj_description(n.oid, 'pg_namespace'),
                                '^audit_trail ([0-9.]+) WAL capture install$')
                            OPERATOR(pg_catalog.||) '-wal'
                       FROM pg_catalog.pg_namespace AS n
                      WHERE n.nspname OPERATOR(pg_catalog.=) 'audit'
                        AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension AS e
                                         WHERE e.extname = 'audit_trail')
                        AND pg_catalog.to_regclass('audit.capture_progress') IS NOT NULL) AS v
              WHERE v.version IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_error("reading the extension's version"))?;
    let Some(row) = row else {
        return Ok(out);
    };
    let (version, major): (String, i32) = (row.get(0), row.get(1));
    let Some(expected) = u32::try_from(major)
        .ok()
        .and_then(|m| reference(&version, m))
    else {
        out.findings.push(SchemaFinding {
            kind: FindingKind::SchemaUnknownRelease,
            message: format!(
                "the audit schema cannot be vouched for: this audit-trail knows no reference for audit_trail {version} on PostgreSQL {major} (it knows {})",
                REFERENCES
                    .iter()
                    .map(|(v, m, _)| format!("{v} on {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        return Ok(out);
    };
    let mut seen = BTreeMap::new();
    for row in client
        .query(MEMBERS, &[])
        .await
        .map_err(db_error("describing the audit schema"))?
    {
        let identity: String = row.get(0);
        let description: String = row.get(1);
        seen.insert(identity.clone(), reference_line(&identity, &description));
    }
    for (identity, line) in &seen {
        match expected.get(identity.as_str()) {
            None => out.findings.push(SchemaFinding {
                kind: FindingKind::SchemaObjectAdded,
                message: format!(
                    "the audit schema was changed: {identity} is not part of audit_trail {version}"
                ),
            }),
            Some(hash) if line.split_once('\t').map(|(_, h)| h) != Some(*hash) => {
                out.findings.push(SchemaFinding {
                    kind: FindingKind::SchemaObjectRedefined,
                    message: format!(
                        "the audit schema was changed: {identity} differs from audit_trail {version}'s"
                    ),
                })
            }
            Some(_) => {}
        }
    }
    for identity in expected.keys() {
        if !seen.contains_key(*identity) {
            out.findings.push(SchemaFinding {
                kind: FindingKind::SchemaObjectMissing,
                message: format!(
                    "the audit schema was changed: {identity} of audit_trail {version} is missing"
                ),
            });
        }
    }
    Ok(out)
}

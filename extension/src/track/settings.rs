//! What `audit.track` stores for a table: the columns each setting names, checked against the
//! table, the row of `audit.tracked_tables`, and what a re-track changes (the previous
//! settings, and the privilege columns it stops watching).

use pgrx::datum::DatumWithOid;
use pgrx::{pg_sys, spi};

use super::TrackRequest;
use crate::error::{AuditError, Result};

pub(super) fn relid_arg(relid: pg_sys::Oid) -> DatumWithOid<'static> {
    // SAFETY: an oid is a valid regclass datum.
    unsafe { DatumWithOid::new(relid, pg_sys::REGCLASSOID) }
}

fn string_list(
    client: &spi::SpiClient<'_>,
    query: &str,
    relid: pg_sys::Oid,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for row in client.select(query, None, &[relid_arg(relid)])? {
        if let Some(name) = row.get::<String>(1)? {
            out.push(name);
        }
    }
    Ok(out)
}

/// The first column of the first row, if there is a row.
pub(super) fn first<T: pgrx::FromDatum + pgrx::IntoDatum>(
    rows: spi::SpiTupleTable<'_>,
) -> Result<Option<T>> {
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(rows.first().get_one::<T>()?)
}

fn dedupe(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// The settings before this call, for the record of a re-track; None the first time.
pub(super) fn previous_settings(
    client: &spi::SpiClient<'_>,
    relid: pg_sys::Oid,
) -> Result<Option<serde_json::Value>> {
    let text = first::<String>(client.select(
        "SELECT pg_catalog.jsonb_build_object( \
           'entity', entity, 'subject_columns', subject_columns, \
           'ignore_columns', ignore_columns, 'redact_columns', redact_columns, \
           'tenant_column', pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->) 'tenant_column')::text \
         FROM audit.tracked_tables AS t WHERE relid = $1",
        None,
        &[relid_arg(relid)],
    )?)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The columns each setting names, checked against the table.
pub(super) struct Columns {
    /// Every column of the table, in order.
    pub existing: Vec<String>,
    pub subject: Vec<String>,
    pub ignore: Vec<String>,
    pub redact: Vec<String>,
    /// The column naming a row's organization.
    pub tenant: Option<String>,
}

impl Columns {
    pub fn resolve(
        client: &spi::SpiClient<'_>,
        relid: pg_sys::Oid,
        relation: &str,
        request: &TrackRequest,
    ) -> Result<Columns> {
        let existing = string_list(
            client,
            "SELECT attname::text FROM pg_attribute \
              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            relid,
        )?;
        let check = |names: &[String], parameter: &'static str| -> Result<Vec<String>> {
            if let Some(missing) = names.iter().find(|n| !existing.contains(n)) {
                return Err(AuditError::UnknownColumn {
                    relation: relation.to_owned(),
                    parameter,
                    column: missing.clone(),
                });
            }
            Ok(dedupe(names))
        };
        let subject = match &request.subject_column {
            Some(column) => check(std::slice::from_ref(column), "subject_column")?,
            None => string_list(
                client,
                "SELECT a.attname::text \
                   FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n), \
                        pg_attribute a \
                  WHERE i.indrelid = $1 AND i.indisprimary \
                    AND a.attrelid = i.indrelid AND a.attnum = k.attnum \
                  ORDER BY k.n",
                relid,
            )?,
        };
        if subject.is_empty() {
            return Err(AuditError::NoSubject {
                relation: relation.to_owned(),
            });
        }
        let tenant = match &request.tenant_column {
            Some(column) => check(std::slice::from_ref(column), "tenant_column")?
                .into_iter()
                .next(),
            None => None,
        };
        let columns = Columns {
            ignore: check(&request.ignore_columns, "ignore_columns")?,
            redact: check(&request.redact_columns, "redact_columns")?,
            subject,
            tenant,
            existing,
        };
        if let Some(column) = columns
            .tenant
            .as_ref()
            .filter(|c| columns.redact.contains(c))
        {
            return Err(AuditError::RedactedTenant {
                relation: relation.to_owned(),
                column: column.clone(),
            });
        }
        if let Some(column) = columns.subject.iter().find(|c| columns.redact.contains(c)) {
            return Err(AuditError::RedactedSubject {
                relation: relation.to_owned(),
                column: column.clone(),
            });
        }
        Ok(columns)
    }
}

/// Inserts or replaces the table's row of audit.tracked_tables. column_attnums is what the
/// DDL hooks follow renames and drops by (api.sql).
pub(super) fn store_settings(
    client: &mut spi::SpiClient<'_>,
    relid: pg_sys::Oid,
    relation: &str,
    entity: &str,
    columns: &Columns,
    tracked_by: &str,
) -> Result<()> {
    // A 0.1.0 schema (this library, before ALTER EXTENSION audit_trail UPDATE) has neither
    // table_name nor column_attnums, nor the hooks that read them.
    let schema_0_1_0 = client
        .select(
            "SELECT NOT EXISTS (SELECT FROM pg_attribute \
                                 WHERE attrelid = 'audit.tracked_tables'::regclass \
                                   AND attname = 'column_attnums' AND NOT attisdropped)",
            None,
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if schema_0_1_0 {
        client.update(
            "INSERT INTO audit.tracked_tables \
               (relid, entity, subject_columns, ignore_columns, redact_columns, tracked_by) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (relid) DO UPDATE SET \
               entity = excluded.entity, subject_columns = excluded.subject_columns, \
               ignore_columns = excluded.ignore_columns, \
               redact_columns = excluded.redact_columns, \
               tracked_at = excluded.tracked_at, tracked_by = excluded.tracked_by",
            None,
            &[
                relid_arg(relid),
                entity.to_owned().into(),
                columns.subject.clone().into(),
                columns.ignore.clone().into(),
                columns.redact.clone().into(),
                tracked_by.to_owned().into(),
            ],
        )?;
        return Ok(());
    }
    client.update(
        "INSERT INTO audit.tracked_tables \
           (relid, entity, subject_columns, ignore_columns, redact_columns, tracked_by, \
            table_name, column_attnums) \
         SELECT $1, $2, $3, $4, $5, $6, $7, \
                coalesce((SELECT pg_catalog.jsonb_object_agg(attname, attnum) \
                            FROM pg_attribute \
                           WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped \
                             AND attname::text = ANY ($3 || $4 || $5 || $8)), '{}') \
         ON CONFLICT (relid) DO UPDATE SET \
           entity = excluded.entity, subject_columns = excluded.subject_columns, \
           ignore_columns = excluded.ignore_columns, \
           redact_columns = excluded.redact_columns, \
           tracked_at = excluded.tracked_at, tracked_by = excluded.tracked_by, \
           table_name = excluded.table_name, column_attnums = excluded.column_attnums",
        None,
        &[
            relid_arg(relid),
            entity.to_owned().into(),
            columns.subject.clone().into(),
            columns.ignore.clone().into(),
            columns.redact.clone().into(),
            tracked_by.to_owned().into(),
            relation.to_owned().into(),
            columns
                .tenant
                .iter()
                .cloned()
                .collect::<Vec<String>>()
                .into(),
        ],
    )?;
    // A 0.2.0 schema has no tenant column (nor a way to name one: its audit.track has no
    // such argument).
    let has_tenant_column = client
        .select(
            "SELECT EXISTS (SELECT FROM pg_attribute \
                             WHERE attrelid = 'audit.tracked_tables'::regclass \
                               AND attname = 'tenant_column' AND NOT attisdropped)",
            None,
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if has_tenant_column {
        client.update(
            "UPDATE audit.tracked_tables SET tenant_column = $2 WHERE relid = $1",
            None,
            &[relid_arg(relid), columns.tenant.clone().into()],
        )?;
    }
    Ok(())
}

/// The privilege columns this (re-)track stops capturing (ignored, or no longer tracked as a
/// `user`), and those it newly redacts: what the built-in privilege-capture-narrowed alert
/// names.
pub(super) fn privilege_narrowing(
    previous: Option<&serde_json::Value>,
    entity: &str,
    columns: &Columns,
) -> (Vec<String>, Vec<String>) {
    use audit_trail_contract::{privilege_fields_unwatched, Watch};
    let list = |v: Option<&serde_json::Value>, key: &str| -> Vec<String> {
        v.and_then(|v| v.get(key))
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default()
    };
    let previous_entity = previous
        .and_then(|p| p.get("entity"))
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    let (was_ignored, was_redacted) = (
        list(previous, "ignore_columns"),
        list(previous, "redact_columns"),
    );
    let before = |hidden| {
        previous.map(|_| Watch {
            entity: previous_entity,
            hidden,
        })
    };
    let ignored = privilege_fields_unwatched(
        &columns.existing,
        before(&was_ignored),
        Watch {
            entity,
            hidden: &columns.ignore,
        },
    );
    // A redacted column still shows in changed_fields (the rule still fires): only its
    // values are hidden, so a privilege column newly redacted under `user` is named.
    let was_user = previous.is_none() || previous_entity == audit_trail_contract::USER_ENTITY;
    let redacted = if entity == audit_trail_contract::USER_ENTITY {
        columns
            .redact
            .iter()
            .filter(|c| audit_trail_contract::PRIVILEGE_FIELDS.contains(&c.as_str()))
            .filter(|c| !(was_user && was_redacted.contains(c)))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    (ignored, redacted)
}

//! One audit event as read for output, and the query that reads them.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::value::RawValue;

/// The columns read for every output format. JSON columns come as text so they are written
/// out without being parsed and re-serialised. Some output names shadow their columns with a
/// text version (`txid`): ORDER BY must name the table's columns as `events.<column>`.
/// Functions are schema-qualified: see [`crate::db::SEARCH_PATH`] for why.
pub const SELECT_EVENTS: &str = "SELECT id, occurred_at, actor, db_user, source, entity, action, \
     subject_id, table_name, pg_catalog.to_json(changed_fields)::text, old_data::text, new_data::text, \
     pg_catalog.host(client_addr), application_name, context::text, details::text, txid::text \
     FROM audit.events";

#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub db_user: String,
    pub source: String,
    pub entity: String,
    pub action: String,
    pub subject_id: Option<String>,
    pub table_name: Option<String>,
    /// JSON array text.
    pub changed_fields: Option<String>,
    /// JSON object text.
    pub old_data: Option<String>,
    pub new_data: Option<String>,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub context: Option<String>,
    pub details: Option<String>,
    pub txid: String,
}

impl EventRecord {
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(EventRecord {
            id: row.try_get(0)?,
            occurred_at: row.try_get(1)?,
            actor: row.try_get(2)?,
            db_user: row.try_get(3)?,
            source: row.try_get(4)?,
            entity: row.try_get(5)?,
            action: row.try_get(6)?,
            subject_id: row.try_get(7)?,
            table_name: row.try_get(8)?,
            changed_fields: row.try_get(9)?,
            old_data: row.try_get(10)?,
            new_data: row.try_get(11)?,
            client_addr: row.try_get(12)?,
            application_name: row.try_get(13)?,
            context: row.try_get(14)?,
            details: row.try_get(15)?,
            txid: row.try_get(16)?,
        })
    }

    /// One JSON object, for JSON-lines output.
    pub fn to_json_line(&self, times: &TimeFormat) -> serde_json::Result<String> {
        fn raw(v: &Option<String>) -> serde_json::Result<Option<Box<RawValue>>> {
            v.as_ref()
                .map(|s| RawValue::from_string(s.clone()))
                .transpose()
        }
        #[derive(Serialize)]
        struct Line<'a> {
            id: i64,
            occurred_at: String,
            actor: &'a str,
            db_user: &'a str,
            source: &'a str,
            entity: &'a str,
            action: &'a str,
            subject_id: Option<&'a str>,
            table_name: Option<&'a str>,
            changed_fields: Option<Box<RawValue>>,
            old_data: Option<Box<RawValue>>,
            new_data: Option<Box<RawValue>>,
            client_addr: Option<&'a str>,
            application_name: Option<&'a str>,
            context: Option<Box<RawValue>>,
            details: Option<Box<RawValue>>,
            txid: &'a str,
        }
        serde_json::to_string(&Line {
            id: self.id,
            occurred_at: times.format(self.occurred_at),
            actor: &self.actor,
            db_user: &self.db_user,
            source: &self.source,
            entity: &self.entity,
            action: &self.action,
            subject_id: self.subject_id.as_deref(),
            table_name: self.table_name.as_deref(),
            changed_fields: raw(&self.changed_fields)?,
            old_data: raw(&self.old_data)?,
            new_data: raw(&self.new_data)?,
            client_addr: self.client_addr.as_deref(),
            application_name: self.application_name.as_deref(),
            context: raw(&self.context)?,
            details: raw(&self.details)?,
            txid: &self.txid,
        })
    }
}

/// How times are written: RFC 3339 in UTC (`Z`), or in a chosen zone with its offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeFormat {
    pub zone: Option<Tz>,
}

impl TimeFormat {
    pub fn format(&self, t: DateTime<Utc>) -> String {
        match self.zone {
            None => t.to_rfc3339_opts(SecondsFormat::Micros, true),
            Some(zone) => t
                .with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::Micros, false),
        }
    }
}

//! One audit event as the sidecar reads it, its columns, and the query that reads them.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_postgres::types::FromSql;

/// The columns of an event as every reader of whole events reads them, in the export's order
/// (`audit_trail_contract::CSV_HEADER`), as the SQL of a select list: the one list
/// [`EventRow::from_row`] reads by position. JSON columns come as text so they are written out
/// without being parsed and re-serialised; `txid` as text (the client has no `xid8` type);
/// `client_addr` as its host, without the mask. `$changed_fields` is how `changed_fields` is
/// read, which decides the row's `C` (see [`OutputEvent`] and [`ArrayEvent`]).
///
/// Not the hash chain's canonical columns (`chain::SELECT_CANONICAL`): those are in table
/// order and read by output functions only, because what they hash must be what PostgreSQL
/// stores whatever casts a superuser defines.
macro_rules! event_columns {
    ($changed_fields:literal) => {
        concat!(
            "id, occurred_at, actor, db_user, source, entity, action, subject_id, table_name, ",
            $changed_fields,
            ", old_data::text, new_data::text, pg_catalog.host(client_addr), application_name, \
             context::text, details::text, txid::text, tenant"
        )
    };
}

/// [`OutputEvent`]'s select list: `changed_fields` as a JSON array's text.
pub const EVENT_COLUMNS_SQL: &str = event_columns!("pg_catalog.to_json(changed_fields)::text");

/// [`ArrayEvent`]'s select list: `changed_fields` as the `text[]` it is.
pub const ARRAY_EVENT_COLUMNS_SQL: &str = event_columns!("changed_fields");

/// [`EVENT_COLUMNS_SQL`] from `audit.events`, for output. Some output names shadow their
/// columns with a text version (`txid`): ORDER BY must name the table's columns as
/// `events.<column>`. Functions are schema-qualified: see [`crate::db::SEARCH_PATH`] for why.
pub const SELECT_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!("pg_catalog.to_json(changed_fields)::text"),
    " FROM audit.events"
);

/// One event as read by a select list of [`event_columns!`], whichever form its
/// `changed_fields` takes (`C`). Adding a column to the event is a field here, a line in
/// [`EventRow::from_row`] and a name in `event_columns!`.
#[derive(Debug, Clone)]
pub struct EventRow<C> {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub db_user: String,
    pub source: String,
    pub entity: String,
    pub action: String,
    pub subject_id: Option<String>,
    pub table_name: Option<String>,
    pub changed_fields: Option<C>,
    /// JSON object text.
    pub old_data: Option<String>,
    pub new_data: Option<String>,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub context: Option<String>,
    pub details: Option<String>,
    /// The `xid8` as PostgreSQL writes it (`db::parse_txid` reads it).
    pub txid: String,
    /// The organization the event belongs to.
    pub tenant: Option<String>,
}

/// An event for output (export, follow, alert): `changed_fields` as a JSON array's text,
/// read with [`EVENT_COLUMNS_SQL`].
pub type OutputEvent = EventRow<String>;

/// An event with `changed_fields` as its items (the archive's list column), read with
/// [`ARRAY_EVENT_COLUMNS_SQL`].
pub type ArrayEvent = EventRow<Vec<Option<String>>>;

impl<C: for<'a> FromSql<'a>> EventRow<C> {
    /// How many columns [`from_row`](Self::from_row) reads: a query may select more after
    /// them (the dashboard's `summary`, say) and read those from this index on.
    pub const COLUMNS: usize = 18;

    /// Reads the first [`Self::COLUMNS`] columns of a row selected by the select list that
    /// goes with `C`; a column of another type is an error, never a panic.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(EventRow {
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
            tenant: row.try_get(17)?,
        })
    }
}

impl OutputEvent {
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
            tenant: Option<&'a str>,
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
            tenant: self.tenant.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The column a select-list expression reads: `pg_catalog.host(client_addr)` reads
    /// `client_addr`, `details::text` reads `details`.
    fn column(expression: &str) -> &str {
        let e = expression.trim();
        let e = e.strip_suffix("::text").unwrap_or(e);
        match (e.rfind('('), e.find(')')) {
            (Some(open), Some(close)) => &e[open + 1..close],
            _ => e,
        }
    }

    #[test]
    fn the_select_lists_read_every_column_in_the_export_order() {
        for list in [EVENT_COLUMNS_SQL, ARRAY_EVENT_COLUMNS_SQL] {
            let columns: Vec<&str> = list.split(',').map(column).collect();
            assert_eq!(columns, audit_trail_contract::CSV_HEADER, "{list}");
            assert_eq!(columns.len(), OutputEvent::COLUMNS);
        }
        assert_eq!(
            SELECT_EVENTS,
            format!("SELECT {EVENT_COLUMNS_SQL} FROM audit.events")
        );
    }
}

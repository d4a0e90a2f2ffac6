//! Which events to read: the filters shared by `export` and the dashboard (`follow` streams
//! every committed event, unfiltered), and the SQL they become. Values are always bound as
//! parameters, never written into the SQL text.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::ToSql;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// No events of these actions (a report category but its exports).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub except_actions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// One organization's events only (`audit.events.tenant`): a token viewer's scope, or
    /// `--tenant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

pub type Param = Box<dyn ToSql + Sync + Send>;

/// The parameters of one statement, and the placeholders that name them: each value pushed
/// gets the next `$n`, so a statement built in pieces never counts its parameters by hand.
#[derive(Debug, Default)]
pub struct Params(Vec<Param>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Binds `value` and returns its placeholder, `$1` for the first.
    pub fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    /// The values, in placeholder order (`$1` first).
    pub fn values(&self) -> &[Param] {
        &self.0
    }
}

/// A WHERE clause (empty, or starting with " WHERE ") and its parameters, numbered from 1.
pub struct Condition {
    pub sql: String,
    pub params: Params,
}

impl Condition {
    /// The condition and `events.id <> <id>`: an export leaves out its own record.
    pub fn except_id(mut self, id: i64) -> Condition {
        let clause = format!("events.id <> {}", self.params.push(id));
        self.sql = if self.sql.is_empty() {
            format!(" WHERE {clause}")
        } else {
            format!("{} AND {clause}", self.sql)
        };
        self
    }

    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.refs()
    }
}

impl Filters {
    pub fn validate(&self) -> Result<()> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since >= until {
                return Err(Error::Usage(format!(
                    "--since ({}) must be before --until ({})",
                    since.to_rfc3339(),
                    until.to_rfc3339()
                )));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// The WHERE clauses of these filters, each with its values bound in `params`. (Pages
    /// of the log go through `audit.search`, whose plan knows which of them the summary
    /// serves: `contract::search`.)
    pub fn clauses(&self, params: &mut Params) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(since) = self.since {
            out.push(format!("occurred_at >= {}", params.push(since)));
        }
        if let Some(until) = self.until {
            out.push(format!("occurred_at < {}", params.push(until)));
        }
        for (column, values) in [
            ("actor", &self.actors),
            ("entity", &self.entities),
            ("action", &self.actions),
        ] {
            match values.as_slice() {
                [] => {}
                [one] => out.push(format!("{column} = {}", params.push(one.clone()))),
                many => out.push(format!("{column} = ANY ({})", params.push(many.to_vec()))),
            }
        }
        match self.except_actions.as_slice() {
            [] => {}
            [one] => out.push(format!("action <> {}", params.push(one.clone()))),
            many => out.push(format!("action <> ALL ({})", params.push(many.to_vec()))),
        }
        for (column, value) in [
            ("table_name", &self.table),
            ("source", &self.source),
            ("subject_id", &self.subject),
            ("tenant", &self.tenant),
        ] {
            if let Some(value) = value {
                out.push(format!("{column} = {}", params.push(value.clone())));
            }
        }
        out
    }

    pub fn condition(&self) -> Condition {
        let mut params = Params::new();
        let all = self.clauses(&mut params);
        Condition {
            sql: if all.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", all.join(" AND "))
            },
            params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn each_value_pushed_gets_the_next_placeholder() {
        let mut params = Params::new();
        assert!(params.is_empty());
        assert_eq!(params.push(7_i64), "$1");
        assert_eq!(params.push("x".to_owned()), "$2");
        assert_eq!((params.len(), params.refs().len()), (2, 2));
        let c = Filters {
            source: Some("api".into()),
            ..Default::default()
        }
        .condition()
        .except_id(9);
        assert_eq!(c.sql, " WHERE source = $1 AND events.id <> $2");
        assert_eq!(c.param_refs().len(), 2);
    }

    #[test]
    fn no_filters_no_where_clause() {
        let c = Filters::default().condition();
        assert_eq!(c.sql, "");
        assert!(c.params.is_empty());
    }

    #[test]
    fn every_filter_becomes_a_numbered_parameter() {
        let f = Filters {
            since: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            until: Some(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()),
            actors: vec!["alice".into(), "bob".into()],
            entities: vec!["contact".into()],
            actions: vec![],
            except_actions: vec!["export".into()],
            table: Some("crm.contacts".into()),
            subject: Some("42'; DROP TABLE x; --".into()),
            source: Some("import".into()),
            tenant: Some("acme".into()),
        };
        let c = f.condition();
        assert_eq!(
            c.sql,
            " WHERE occurred_at >= $1 AND occurred_at < $2 AND actor = ANY ($3) AND entity = $4 \
             AND action <> $5 AND table_name = $6 AND source = $7 AND subject_id = $8 \
             AND tenant = $9"
        );
        assert_eq!(c.params.len(), 9);
        assert!(!c.sql.contains("DROP"));
    }

    #[test]
    fn since_must_precede_until() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let f = Filters {
            since: Some(t),
            until: Some(t),
            ..Default::default()
        };
        assert!(matches!(f.validate(), Err(Error::Usage(m)) if m.contains("must be before")));
    }
}

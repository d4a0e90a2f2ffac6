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

    /// Whether a filter on a column the hourly summary (`audit.event_summary`, and
    /// `audit.kind_hours` without the actor) counts by is set: actor, entity, action, table or source (not the time range, not the subject).
    pub fn has_dimensions(&self) -> bool {
        !(self.actors.is_empty()
            && self.entities.is_empty()
            && self.actions.is_empty()
            && self.except_actions.is_empty()
            && self.table.is_none()
            && self.source.is_none())
    }

    /// The clauses of these filters, each with its values bound in `params`, split by what
    /// they filter: the summary answers for `actors` and `dimensions` only. The column names
    /// are those of both `audit.events` and the summary tables, unqualified, so one text
    /// serves each table.
    pub fn clauses(&self, params: &mut Params) -> Clauses {
        let mut out = Clauses::default();
        if let Some(since) = self.since {
            out.time
                .push(format!("occurred_at >= {}", params.push(since)));
        }
        if let Some(until) = self.until {
            out.time
                .push(format!("occurred_at < {}", params.push(until)));
        }
        for (column, values) in [
            ("actor", &self.actors),
            ("entity", &self.entities),
            ("action", &self.actions),
        ] {
            let clause = match values.as_slice() {
                [] => continue,
                [one] => format!("{column} = {}", params.push(one.clone())),
                many => {
                    let array = params.push(many.to_vec());
                    if column == "actor" {
                        out.actors_array = Some(array.clone());
                    }
                    format!("{column} = ANY ({array})")
                }
            };
            if column == "actor" {
                out.actors = Some(clause);
            } else {
                out.dimensions.push(clause);
            }
        }
        match self.except_actions.as_slice() {
            [] => {}
            [one] => out
                .dimensions
                .push(format!("action <> {}", params.push(one.clone()))),
            many => out
                .dimensions
                .push(format!("action <> ALL ({})", params.push(many.to_vec()))),
        }
        if let Some(table) = &self.table {
            out.dimensions
                .push(format!("table_name = {}", params.push(table.clone())));
        }
        if let Some(source) = &self.source {
            out.dimensions
                .push(format!("source = {}", params.push(source.clone())));
        }
        if let Some(subject) = &self.subject {
            out.subject = Some(format!("subject_id = {}", params.push(subject.clone())));
        }
        if let Some(tenant) = &self.tenant {
            out.tenant = Some(format!("tenant = {}", params.push(tenant.clone())));
        }
        out
    }

    pub fn condition(&self) -> Condition {
        let mut params = Params::new();
        let clauses = self.clauses(&mut params);
        let all: Vec<String> = clauses.all().collect();
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

/// The clauses of [`Filters`], by kind (see [`Filters::clauses`]): the actor apart from the
/// other dimensions, which `audit.kind_hours` counts without it.
#[derive(Debug, Default, PartialEq)]
pub struct Clauses {
    pub time: Vec<String>,
    pub actors: Option<String>,
    /// With several actors, the parameter (`$n`) that holds them as an array.
    pub actors_array: Option<String>,
    pub dimensions: Vec<String>,
    pub subject: Option<String>,
    /// The organization: not a dimension of the summary, which does not count by it.
    pub tenant: Option<String>,
}

impl Clauses {
    pub fn all(&self) -> impl Iterator<Item = String> + '_ {
        self.time
            .iter()
            .chain(&self.actors)
            .chain(&self.dimensions)
            .chain(&self.subject)
            .chain(&self.tenant)
            .cloned()
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
        let mut params = Params::new();
        assert_eq!(f.clauses(&mut params).actors_array.as_deref(), Some("$3"));
        assert!(!c.sql.contains("DROP"));
        assert!(f.has_dimensions());
    }

    #[test]
    fn the_time_range_and_the_subject_are_not_dimensions_of_the_summary() {
        let f = Filters {
            since: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            subject: Some("7".into()),
            ..Default::default()
        };
        assert!(!f.has_dimensions());
        let mut params = Params::new();
        let c = Filters {
            source: Some("api".into()),
            ..f
        }
        .clauses(&mut params);
        assert_eq!(c.time, ["occurred_at >= $1"]);
        assert_eq!((c.actors, c.actors_array), (None, None));
        assert_eq!(c.dimensions, ["source = $2"]);
        assert_eq!(c.subject.as_deref(), Some("subject_id = $3"));
        assert_eq!(params.len(), 3);
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

    /// The summary answers for these clauses only because it counts by their columns: each
    /// names one of the contract's summary dimensions (which the installed tables are held
    /// to by the end-to-end tests).
    #[test]
    fn the_summary_clauses_name_the_contract_dimensions() {
        use audit_trail_contract::summary::{EVENT_SUMMARY_DIMENSIONS, KIND_HOURS_DIMENSIONS};
        let f = Filters {
            actors: vec!["a".into(), "b".into()],
            entities: vec!["contact".into()],
            actions: vec!["update".into(), "delete".into()],
            except_actions: vec!["export".into()],
            table: Some("crm.contacts".into()),
            source: Some("api".into()),
            ..Default::default()
        };
        let column = |clause: &str| clause.split_whitespace().next().unwrap_or("").to_owned();
        let clauses = f.clauses(&mut Params::new());
        let actor = column(clauses.actors.as_deref().unwrap_or(""));
        assert!(
            EVENT_SUMMARY_DIMENSIONS.contains(&actor.as_str()),
            "{actor}"
        );
        assert!(!KIND_HOURS_DIMENSIONS.contains(&actor.as_str()));
        let named: Vec<String> = clauses.dimensions.iter().map(|c| column(c)).collect();
        assert_eq!(named.len(), 5, "{named:?}");
        for c in &named {
            assert!(KIND_HOURS_DIMENSIONS.contains(&c.as_str()), "{c}");
        }
    }
}

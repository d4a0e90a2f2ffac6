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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause (empty, or starting with " WHERE ") and its parameters, numbered from 1.
pub struct Condition {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Condition {
    /// Adds `column <op> $n` for a value.
    fn push(&mut self, template: &str, value: Param) {
        self.params.push(value);
        let clause = template.replace("$?", &format!("${}", self.params.len()));
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(&clause);
    }

    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
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

    pub fn condition(&self) -> Condition {
        let mut c = Condition {
            sql: String::new(),
            params: Vec::new(),
        };
        if let Some(since) = self.since {
            c.push("occurred_at >= $?", Box::new(since));
        }
        if let Some(until) = self.until {
            c.push("occurred_at < $?", Box::new(until));
        }
        for (column, values) in [
            ("actor", &self.actors),
            ("entity", &self.entities),
            ("action", &self.actions),
        ] {
            match values.as_slice() {
                [] => {}
                [one] => c.push(&format!("{column} = $?"), Box::new(one.clone())),
                many => c.push(&format!("{column} = ANY ($?)"), Box::new(many.to_vec())),
            }
        }
        if let Some(table) = &self.table {
            c.push("table_name = $?", Box::new(table.clone()));
        }
        if let Some(subject) = &self.subject {
            c.push("subject_id = $?", Box::new(subject.clone()));
        }
        if let Some(source) = &self.source {
            c.push("source = $?", Box::new(source.clone()));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
            table: Some("crm.contacts".into()),
            subject: Some("42'; DROP TABLE x; --".into()),
            source: Some("import".into()),
        };
        let c = f.condition();
        assert_eq!(
            c.sql,
            " WHERE occurred_at >= $1 AND occurred_at < $2 AND actor = ANY ($3) AND entity = $4 \
             AND table_name = $5 AND subject_id = $6 AND source = $7"
        );
        assert_eq!(c.params.len(), 7);
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

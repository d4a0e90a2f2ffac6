//! Pages of events through `audit.search` (extension/sql/search.sql): the one fast filtered
//! search that the dashboard, the API and SQL users share. Its plan (the summary, an
//! organization's index or the time index) is made in the database from which filters are
//! given; this module only binds the filters to its named arguments.

use chrono::{DateTime, Utc};

use crate::filters::{Filters, Params};

/// Which page: the newest, the one older than a row, or the one newer than a row (each row
/// named by its `(occurred_at, id)`). Every page comes newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Newest,
    Before(DateTime<Utc>, i64),
    After(DateTime<Utc>, i64),
}

/// `SELECT <columns> FROM audit.search(...)` for `filters` at `position`, `size` rows, and
/// its parameters. `columns` are `audit.report`'s (`summary`, `tenant`, ...).
pub fn query(columns: &str, filters: &Filters, position: Position, size: i64) -> (String, Params) {
    let mut params = Params::new();
    let mut args = Vec::new();
    let mut arg = |name: &str, placeholder: String| args.push(format!("{name} => {placeholder}"));
    if let Some(since) = filters.since {
        arg("since", params.push(since));
    }
    if let Some(until) = filters.until {
        arg("until", params.push(until));
    }
    for (name, values) in [
        ("actors", &filters.actors),
        ("entities", &filters.entities),
        ("actions", &filters.actions),
        ("except_actions", &filters.except_actions),
    ] {
        if !values.is_empty() {
            arg(name, format!("{}::text[]", params.push(values.clone())));
        }
    }
    if let Some(source) = &filters.source {
        arg(
            "sources",
            format!("{}::text[]", params.push(vec![source.clone()])),
        );
    }
    for (name, value) in [
        ("subject", &filters.subject),
        ("table_name", &filters.table),
        ("tenant", &filters.tenant),
    ] {
        if let Some(value) = value {
            arg(name, format!("{}::text", params.push(value.clone())));
        }
    }
    let size = i32::try_from(size).unwrap_or(i32::MAX);
    arg("page_size", params.push(size));
    match position {
        Position::Newest => {}
        Position::Before(at, id) => {
            arg("before_at", params.push(at));
            arg("before_id", params.push(id));
        }
        Position::After(at, id) => {
            arg("after_at", params.push(at));
            arg("after_id", params.push(id));
        }
    }
    (
        format!("SELECT {columns} FROM audit.search({})", args.join(", ")),
        params,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_filters_are_passed_and_every_value_is_a_parameter() {
        let filters = Filters {
            actors: vec!["ann'; DROP TABLE x; --".into()],
            source: Some("api".into()),
            tenant: Some("acme".into()),
            ..Filters::default()
        };
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let (sql, params) = query("id", &filters, Position::Before(at, 7), 51);
        assert_eq!(
            sql,
            "SELECT id FROM audit.search(actors => $1::text[], sources => $2::text[], \
             tenant => $3::text, page_size => $4, before_at => $5, before_id => $6)"
        );
        assert_eq!(params.len(), 6);
        let (sql, _) = query("id", &Filters::default(), Position::Newest, 50);
        assert_eq!(sql, "SELECT id FROM audit.search(page_size => $1)");
    }
}

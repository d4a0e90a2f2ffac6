//! One event's page: who, when, where, and the field | before | after table of the change.

use chrono_tz::Tz;
use serde_json::Value;

use super::{action_class, format_time, iso};
use crate::web::queries::event::{EventDetail, VersionRow};

/// One value in the field | before | after table.
pub struct Cell {
    pub text: String,
    pub class: &'static str,
}

impl Cell {
    fn of(value: Option<&Value>) -> Cell {
        let (text, class) = match value {
            None => ("\u{2014}".to_owned(), "v-missing"),
            Some(Value::Null) => ("null".to_owned(), "v-null"),
            Some(Value::String(s)) if s == "[redacted]" => ("redacted".to_owned(), "v-redacted"),
            Some(Value::String(s)) if s.is_empty() => ("(empty)".to_owned(), "v-null"),
            Some(Value::String(s)) => (s.clone(), "v-text"),
            Some(other) => (other.to_string(), "v-json"),
        };
        Cell { text, class }
    }
}

pub struct DiffRow {
    pub field: String,
    pub before: Cell,
    pub after: Cell,
    pub changed: bool,
}

pub struct JsonBlock {
    pub title: &'static str,
    pub text: String,
}

pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

pub struct EventView {
    pub id: i64,
    pub time: String,
    pub time_iso: String,
    pub summary: String,
    pub action: String,
    pub action_class: &'static str,
    pub entity: String,
    pub facts: Vec<Fact>,
    /// "Changed fields", "Values at creation", ... None for events without row data.
    pub diff_title: Option<&'static str>,
    pub diff: Vec<DiffRow>,
    pub json: Vec<JsonBlock>,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A JSON column as read (text), parsed for showing.
fn parse(text: &Option<String>) -> serde_json::Result<Option<Value>> {
    text.as_deref().map(serde_json::from_str).transpose()
}

/// The keys of a JSON object, `id` first then alphabetical.
fn keys(v: Option<&Value>) -> Vec<String> {
    let mut keys: Vec<String> = v
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort_by(|a, b| (a != "id", a).cmp(&(b != "id", b)));
    keys
}

impl EventView {
    /// An error when a JSON column does not parse (PostgreSQL wrote it, so a server fault).
    pub fn new(detail: &EventDetail, zone: Tz) -> serde_json::Result<EventView> {
        let e = &detail.event;
        let old_data = parse(&e.old_data)?;
        let new_data = parse(&e.new_data)?;
        let old = old_data.as_ref();
        let new = new_data.as_ref();
        let field = |o: Option<&Value>, k: &str| o.and_then(|o| o.get(k)).cloned();
        let (diff_title, diff) = match e.action.as_str() {
            "update" => {
                // An update stores the whole row after and the previous values of the columns
                // that changed, ignored ones included (which `changed_fields` leaves out), so
                // the row before is `new_data || old_data`, as in `audit.report.before`.
                let before_of = |k: &str| field(old, k).or_else(|| field(new, k));
                // A NULL item names no column: there is no row of the table to show for it.
                let changed: Vec<String> = e
                    .changed_fields
                    .iter()
                    .flatten()
                    .flatten()
                    .cloned()
                    .collect();
                let mut rows: Vec<DiffRow> = changed
                    .iter()
                    .map(|k| DiffRow {
                        field: k.clone(),
                        before: Cell::of(before_of(k).as_ref()),
                        after: Cell::of(field(new, k).as_ref()),
                        changed: true,
                    })
                    .collect();
                // The rest of the row, for context; an ignored column that changed with the
                // others is marked as changed, since its value did change.
                for k in keys(new) {
                    if !changed.contains(&k) {
                        let (before, after) = (before_of(&k), field(new, &k));
                        rows.push(DiffRow {
                            changed: before != after,
                            before: Cell::of(before.as_ref()),
                            after: Cell::of(after.as_ref()),
                            field: k,
                        });
                    }
                }
                (Some("Changes"), rows)
            }
            "create" if new.is_some() => (
                Some("Values at creation"),
                keys(new)
                    .into_iter()
                    .map(|k| DiffRow {
                        before: Cell::of(None),
                        after: Cell::of(field(new, &k).as_ref()),
                        field: k,
                        changed: true,
                    })
                    .collect(),
            ),
            "delete" if old.is_some() => (
                Some("Values at deletion"),
                keys(old)
                    .into_iter()
                    .map(|k| DiffRow {
                        before: Cell::of(field(old, &k).as_ref()),
                        after: Cell::of(None),
                        field: k,
                        changed: true,
                    })
                    .collect(),
            ),
            _ => (None, Vec::new()),
        };
        let mut json = Vec::new();
        for (title, value) in [
            ("old_data", old_data),
            ("new_data", new_data),
            ("context", parse(&e.context)?),
            ("details", parse(&e.details)?),
        ] {
            if let Some(v) = value {
                json.push(JsonBlock {
                    title,
                    text: pretty(&v),
                });
            }
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "\u{2014}".into());
        let facts = vec![
            Fact {
                label: "Actor",
                value: e.actor.clone(),
            },
            Fact {
                label: "Database role",
                value: e.db_user.clone(),
            },
            Fact {
                label: "Source",
                value: e.source.clone(),
            },
            Fact {
                label: "Entity",
                value: e.entity.replace('_', " "),
            },
            Fact {
                label: "Subject",
                value: opt(&e.subject_id),
            },
            Fact {
                label: "Table",
                value: opt(&e.table_name),
            },
            Fact {
                label: "Client address",
                value: opt(&e.client_addr),
            },
            Fact {
                label: "Application",
                value: opt(&e.application_name).trim().to_owned(),
            },
            Fact {
                label: "Organization",
                value: opt(&e.tenant),
            },
            Fact {
                label: "Transaction",
                value: e.txid.clone(),
            },
        ];
        Ok(EventView {
            id: e.id,
            time: format_time(e.occurred_at, zone),
            time_iso: iso(e.occurred_at),
            summary: detail.summary.clone(),
            action_class: action_class(&e.action),
            action: e.action.clone(),
            entity: e.entity.replace('_', " "),
            facts,
            diff_title,
            diff,
            json,
        })
    }
}

/// One version of a row on its event page.
pub struct Version {
    pub href: String,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub action_class: &'static str,
    /// The columns the event changed, or what became of the row.
    pub what: String,
    /// The whole row after the event, pretty JSON; None once deleted.
    pub row: Option<String>,
    /// The event this page shows.
    pub current: bool,
}

impl Version {
    pub fn new(v: &VersionRow, shown: i64, zone: Tz) -> Version {
        Version {
            href: format!("/reports/audit-log/events/{}", v.id),
            time: format_time(v.occurred_at, zone),
            actor: v.actor.clone(),
            action: v.action.clone(),
            action_class: action_class(&v.action),
            what: match v.action.as_str() {
                "update" => v.changed_fields.as_deref().unwrap_or_default().join(", "),
                "create" => "created".to_owned(),
                "delete" => "deleted".to_owned(),
                _ => "emptied with its table".to_owned(),
            },
            row: v.after.as_ref().map(pretty),
            current: v.id == shown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_row::ArrayEvent;
    use chrono::DateTime;
    use serde_json::json;

    fn detail(
        action: &str,
        old: Option<Value>,
        new: Option<Value>,
        changed: &[&str],
    ) -> EventDetail {
        EventDetail {
            event: ArrayEvent {
                id: 7,
                occurred_at: DateTime::from_timestamp(1_764_072_000, 0).unwrap(),
                actor: "alice".into(),
                db_user: "app".into(),
                source: "manual".into(),
                entity: "contact".into(),
                action: action.into(),
                subject_id: Some("42".into()),
                table_name: Some("crm.contacts".into()),
                changed_fields: (!changed.is_empty())
                    .then(|| changed.iter().map(|s| Some((*s).to_owned())).collect()),
                old_data: old.map(|v| v.to_string()),
                new_data: new.map(|v| v.to_string()),
                client_addr: None,
                application_name: None,
                context: None,
                details: None,
                txid: "1".into(),
                tenant: None,
            },
            summary: "s".into(),
        }
    }

    #[test]
    fn an_update_lists_changed_fields_first_with_both_values() {
        let e = detail(
            "update",
            Some(json!({"email": "a@x", "password_hash": "[redacted]"})),
            Some(
                json!({"id": 42, "email": "b@x", "name": "Ann", "password_hash": "[redacted]", "phone": null}),
            ),
            &["email", "password_hash"],
        );
        let v = EventView::new(&e, Tz::UTC).unwrap();
        let rows: Vec<(&str, &str, &str, bool)> = v
            .diff
            .iter()
            .map(|r| {
                (
                    r.field.as_str(),
                    r.before.text.as_str(),
                    r.after.text.as_str(),
                    r.changed,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("email", "a@x", "b@x", true),
                ("password_hash", "redacted", "redacted", true),
                ("id", "42", "42", false),
                ("name", "Ann", "Ann", false),
                ("phone", "null", "null", false),
            ]
        );
        assert_eq!(v.time, "2025-11-25 12:00:00 UTC");
    }

    #[test]
    fn an_ignored_column_that_changed_shows_its_previous_value() {
        let e = detail(
            "update",
            Some(json!({"email": "a@x", "updated_at": "2026-01-01"})),
            Some(json!({"id": 42, "email": "b@x", "updated_at": "2026-02-02"})),
            &["email"],
        );
        let v = EventView::new(&e, Tz::UTC).unwrap();
        let row = v
            .diff
            .iter()
            .find(|r| r.field == "updated_at")
            .expect("updated_at listed");
        assert_eq!(
            (
                row.before.text.as_str(),
                row.after.text.as_str(),
                row.changed
            ),
            ("2026-01-01", "2026-02-02", true)
        );
        let id = v.diff.iter().find(|r| r.field == "id").expect("id listed");
        assert!(!id.changed);
    }

    #[test]
    fn creates_and_deletes_show_one_side() {
        let v = EventView::new(
            &detail("create", None, Some(json!({"id": 1})), &[]),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(v.diff[0].before.class, "v-missing");
        assert_eq!(v.diff[0].after.text, "1");
        let v = EventView::new(
            &detail("delete", Some(json!({"id": 1})), None, &[]),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(v.diff[0].before.text, "1");
        assert_eq!(v.diff[0].after.class, "v-missing");
        let v = EventView::new(&detail("export", None, None, &[]), Tz::UTC).unwrap();
        assert!(v.diff_title.is_none());
    }

    #[test]
    fn json_blocks_show_the_columns_pretty_printed() {
        let mut e = detail("export", None, None, &[]);
        e.event.context = Some(r#"{"n": [1, 2], "request_id": "r-1"}"#.into());
        let v = EventView::new(&e, Tz::UTC).unwrap();
        let blocks: Vec<(&str, &str)> = v.json.iter().map(|b| (b.title, b.text.as_str())).collect();
        assert_eq!(
            blocks,
            [(
                "context",
                "{\n  \"n\": [\n    1,\n    2\n  ],\n  \"request_id\": \"r-1\"\n}"
            )]
        );
    }

    #[test]
    fn a_json_column_that_does_not_parse_is_an_error_not_a_panic() {
        let mut e = detail("update", None, Some(json!({"id": 1})), &["id"]);
        e.event.old_data = Some("{not json".into());
        assert!(EventView::new(&e, Tz::UTC).is_err());
        let mut e = detail("export", None, None, &[]);
        e.event.details = Some("".into());
        assert!(EventView::new(&e, Tz::UTC).is_err());
    }

    #[test]
    fn a_null_item_of_changed_fields_names_no_row() {
        let mut e = detail(
            "update",
            Some(json!({"email": "a@x"})),
            Some(json!({"id": 1, "email": "b@x"})),
            &["email"],
        );
        e.event.changed_fields = Some(vec![None, Some("email".into())]);
        let v = EventView::new(&e, Tz::UTC).unwrap();
        let fields: Vec<(&str, bool)> = v
            .diff
            .iter()
            .map(|r| (r.field.as_str(), r.changed))
            .collect();
        assert_eq!(fields, [("email", true), ("id", false)]);
    }
}

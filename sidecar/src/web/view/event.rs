//! One event's page: who, when, where, and the field | before | after table of the change.

use chrono_tz::Tz;
use serde_json::Value;

use super::{action_class, format_time, iso};
use crate::web::queries::event::EventDetail;

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
    pub fn new(e: &EventDetail, zone: Tz) -> EventView {
        let old = e.old_data.as_ref();
        let new = e.new_data.as_ref();
        let field = |o: Option<&Value>, k: &str| o.and_then(|o| o.get(k)).cloned();
        let (diff_title, diff) = match e.action.as_str() {
            "update" => {
                // An update stores the whole row after and the previous values of the columns
                // that changed, ignored ones included (which `changed_fields` leaves out), so
                // the row before is `new_data || old_data`, as in `audit.report.before`.
                let before_of = |k: &str| field(old, k).or_else(|| field(new, k));
                let changed = e.changed_fields.clone().unwrap_or_default();
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
            ("old_data", &e.old_data),
            ("new_data", &e.new_data),
            ("context", &e.context),
            ("details", &e.details),
        ] {
            if let Some(v) = value {
                json.push(JsonBlock {
                    title,
                    text: pretty(v),
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
                label: "Transaction",
                value: e.txid.clone(),
            },
        ];
        EventView {
            id: e.id,
            time: format_time(e.occurred_at, zone),
            time_iso: iso(e.occurred_at),
            summary: e.summary.clone(),
            action_class: action_class(&e.action),
            action: e.action.clone(),
            entity: e.entity.replace('_', " "),
            facts,
            diff_title,
            diff,
            json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    fn detail(
        action: &str,
        old: Option<Value>,
        new: Option<Value>,
        changed: &[&str],
    ) -> EventDetail {
        EventDetail {
            id: 7,
            occurred_at: DateTime::from_timestamp(1_764_072_000, 0).unwrap(),
            actor: "alice".into(),
            db_user: "app".into(),
            source: "manual".into(),
            client_addr: None,
            application_name: None,
            entity: "contact".into(),
            action: action.into(),
            table_name: Some("crm.contacts".into()),
            subject_id: Some("42".into()),
            changed_fields: (!changed.is_empty())
                .then(|| changed.iter().map(|s| (*s).to_owned()).collect()),
            summary: "s".into(),
            old_data: old,
            new_data: new,
            context: None,
            details: None,
            txid: "1".into(),
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
        let v = EventView::new(&e, Tz::UTC);
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
        let v = EventView::new(&e, Tz::UTC);
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
        );
        assert_eq!(v.diff[0].before.class, "v-missing");
        assert_eq!(v.diff[0].after.text, "1");
        let v = EventView::new(
            &detail("delete", Some(json!({"id": 1})), None, &[]),
            Tz::UTC,
        );
        assert_eq!(v.diff[0].before.text, "1");
        assert_eq!(v.diff[0].after.class, "v-missing");
        let v = EventView::new(&detail("export", None, None, &[]), Tz::UTC);
        assert!(v.diff_title.is_none());
    }
}

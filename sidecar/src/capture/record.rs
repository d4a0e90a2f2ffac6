//! A committed transaction as the arguments of `audit.wal_record`: its changes in groups (one
//! table, one action, one attribution, in commit order), cut into parts small enough for one
//! call each. All parts of a transaction are written in the same database transaction; only
//! the last records the slot's position.

use serde_json::{json, Value};

use super::transactions::{Action, Change, Transaction};

/// How many rows one call of `audit.wal_record` takes at most, and about how many bytes of
/// values: a million-row statement is written in parts, never as one JSON document that
/// could exceed what PostgreSQL takes (1 GB).
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    pub rows: usize,
    pub bytes: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits {
            rows: 5_000,
            bytes: 16 << 20,
        }
    }
}

/// One call of `audit.wal_record`: its `changes` argument, and whether it is the
/// transaction's last.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub changes: Value,
    pub rows: usize,
    pub last: bool,
}

fn values_bytes(row: &Option<Vec<Option<String>>>) -> usize {
    row.iter()
        .flatten()
        .map(|v| v.as_ref().map_or(4, String::len) + 4)
        .sum()
}

fn same_group(a: &Change, b: &Change) -> bool {
    a.action == b.action
        && std::sync::Arc::ptr_eq(&a.relation, &b.relation)
        && a.attribution == b.attribution
}

/// A new group for `change`, without rows yet.
fn group(change: &Change) -> Value {
    let mut g = json!({
        "table": change.relation.oid,
        "action": change.action.as_str(),
        "message": change.attribution,
    });
    if change.action != Action::Truncate {
        g["columns"] = change
            .relation
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        g["rows"] = json!([]);
    }
    g
}

/// The parts of `tx`, at least one (an empty one for a transaction without changes, which
/// still moves the slot's recorded position).
pub fn parts(tx: &Transaction, limits: PartLimits) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut groups: Vec<Value> = Vec::new();
    let (mut rows, mut bytes) = (0usize, 0usize);
    let mut previous: Option<&Change> = None;
    for change in &tx.changes {
        let size = values_bytes(&change.old) + values_bytes(&change.new);
        if rows > 0 && (rows + 1 > limits.rows || bytes + size > limits.bytes) {
            parts.push(Part {
                changes: Value::Array(std::mem::take(&mut groups)),
                rows,
                last: false,
            });
            (rows, bytes, previous) = (0, 0, None);
        }
        if !previous.is_some_and(|p| same_group(p, change)) {
            groups.push(group(change));
        }
        if change.action != Action::Truncate {
            if let Some(Value::Array(r)) = groups.last_mut().and_then(|g| g.get_mut("rows")) {
                r.push(json!([change.old, change.new]));
            }
        }
        rows += 1;
        bytes += size;
        previous = Some(change);
    }
    parts.push(Part {
        changes: Value::Array(groups),
        rows,
        last: true,
    });
    parts
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::capture::pgoutput::{Column, Lsn, Relation};

    fn relation(oid: u32) -> Arc<Relation> {
        Arc::new(Relation {
            oid,
            namespace: "public".into(),
            name: format!("t{oid}"),
            replica_identity: b'f',
            columns: vec![
                Column {
                    key: true,
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1,
                },
                Column {
                    key: false,
                    name: "name".into(),
                    type_oid: 25,
                    type_modifier: -1,
                },
            ],
        })
    }

    fn change(rel: &Arc<Relation>, action: Action, id: &str, who: Option<&str>) -> Change {
        let row = Some(vec![Some(id.to_owned()), None]);
        Change {
            action,
            relation: Arc::clone(rel),
            old: (action != Action::Create && action != Action::Truncate)
                .then(|| row.clone())
                .flatten(),
            new: (action == Action::Create || action == Action::Update)
                .then_some(row)
                .flatten(),
            attribution: who.map(str::to_owned),
        }
    }

    fn tx(changes: Vec<Change>) -> Transaction {
        Transaction {
            xid: 7,
            commit_lsn: Lsn(1),
            end_lsn: Lsn(2),
            commit_time: Utc::now(),
            changes,
        }
    }

    #[test]
    fn consecutive_changes_of_one_table_action_and_attribution_share_a_group() {
        let (a, b) = (relation(1), relation(2));
        let t = tx(vec![
            change(&a, Action::Create, "1", Some("ann")),
            change(&a, Action::Create, "2", Some("ann")),
            change(&a, Action::Create, "3", Some("bob")),
            change(&b, Action::Delete, "4", Some("bob")),
            change(&a, Action::Truncate, "", Some("bob")),
            change(&a, Action::Update, "5", Some("bob")),
        ]);
        let parts = parts(&t, PartLimits::default());
        assert_eq!(parts.len(), 1);
        assert!(parts[0].last);
        assert_eq!(parts[0].rows, 6);
        let groups = parts[0].changes.as_array().unwrap();
        let summary: Vec<(u64, &str, Option<&str>, usize)> = groups
            .iter()
            .map(|g| {
                (
                    g["table"].as_u64().unwrap(),
                    g["action"].as_str().unwrap(),
                    g["message"].as_str(),
                    g.get("rows").and_then(Value::as_array).map_or(0, Vec::len),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, "create", Some("ann"), 2),
                (1, "create", Some("bob"), 1),
                (2, "delete", Some("bob"), 1),
                (1, "truncate", Some("bob"), 0),
                (1, "update", Some("bob"), 1),
            ]
        );
        assert_eq!(groups[0]["columns"], json!(["id", "name"]));
        assert_eq!(groups[0]["rows"][1], json!([null, ["2", null]]));
        assert_eq!(groups[2]["rows"][0], json!([["4", null], null]));
        assert!(groups[3].get("columns").is_none());
    }

    #[test]
    fn a_large_transaction_is_cut_into_parts_only_the_last_marked() {
        let a = relation(1);
        let t = tx((0..7)
            .map(|i| change(&a, Action::Create, &i.to_string(), None))
            .collect());
        let parts = parts(
            &t,
            PartLimits {
                rows: 3,
                bytes: usize::MAX,
            },
        );
        assert_eq!(
            parts.iter().map(|p| (p.rows, p.last)).collect::<Vec<_>>(),
            vec![(3, false), (3, false), (1, true)]
        );
        // Each part starts a group of its own.
        assert_eq!(parts[1].changes[0]["rows"][0], json!([null, ["3", null]]));
        let by_bytes = super::parts(
            &t,
            PartLimits {
                rows: 100,
                bytes: 20,
            },
        );
        assert!(by_bytes.len() > 1, "a part holds about `bytes` of values");
    }

    #[test]
    fn a_transaction_without_changes_is_one_empty_last_part() {
        let parts = parts(&tx(Vec::new()), PartLimits::default());
        assert_eq!(
            parts,
            vec![Part {
                changes: json!([]),
                rows: 0,
                last: true
            }]
        );
    }
}

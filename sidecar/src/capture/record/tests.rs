use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};

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

fn change(rel: &Arc<Relation>, action: Action, id: &str, who: Option<&Arc<str>>) -> Change {
    let row = Some(vec![Some(id.to_owned()), None]);
    Change {
        action,
        relation: Arc::clone(rel),
        old: matches!(action, Action::Update | Action::Delete)
            .then(|| row.clone())
            .flatten(),
        new: matches!(action, Action::Create | Action::Update)
            .then_some(row)
            .flatten(),
        attribution: who.cloned(),
    }
}

fn tx(xid: u32, changes: Vec<Change>) -> Transaction {
    Transaction {
        xid,
        commit_lsn: Lsn(u64::from(xid) * 10),
        end_lsn: Lsn(u64::from(xid) * 10 + 1),
        commit_time: Utc::now(),
        changes,
    }
}

fn all(limits: PartLimits, txs: &[Transaction]) -> Vec<Part> {
    let mut b = Batcher::new(limits);
    let mut parts: Vec<Part> = txs.iter().flat_map(|t| b.push(t)).collect();
    parts.extend(b.finish());
    parts
}

#[test]
fn single_row_transactions_share_one_group_with_their_own_transaction_and_attribution() {
    let a = relation(1);
    let txs: Vec<Transaction> = (1..=3)
        .map(|x| {
            let who: Arc<str> = Arc::from(format!("m{x}"));
            tx(
                x,
                vec![change(&a, Action::Create, &x.to_string(), Some(&who))],
            )
        })
        .collect();
    let parts = all(PartLimits::default(), &txs);
    assert_eq!(parts.len(), 1);
    let b = &parts[0].batch;
    assert_eq!(b["groups"].as_array().unwrap().len(), 1, "{b:#}");
    assert_eq!(b["groups"][0]["meta"], json!([[0, 0], [1, 1], [2, 2]]));
    assert_eq!(b["groups"][0]["rows"][2], json!([null, ["3", null]]));
    assert_eq!(b["messages"][1], json!({"transaction": 1, "content": "m2"}));
    assert_eq!(b["transactions"][2]["xid"], json!(3));
    assert_eq!(b["transactions"][2]["end_lsn"], json!("0/1F"));
    assert_eq!(
        b["progress"],
        json!(2),
        "the part completes the third transaction"
    );
}

#[test]
fn a_change_of_table_or_action_starts_a_group_and_a_message_is_listed_once() {
    let (a, b) = (relation(1), relation(2));
    let (ann, bob): (Arc<str>, Arc<str>) = (Arc::from("ann"), Arc::from("bob"));
    let t = tx(
        5,
        vec![
            change(&a, Action::Create, "1", Some(&ann)),
            change(&a, Action::Create, "2", Some(&ann)),
            change(&a, Action::Update, "1", Some(&ann)),
            change(&b, Action::Delete, "4", Some(&bob)),
            change(&a, Action::Truncate, "", Some(&bob)),
            change(&a, Action::Truncate, "", None),
        ],
    );
    let parts = all(PartLimits::default(), &[t]);
    let batch = &parts[0].batch;
    let groups: Vec<(u64, &str, Value)> = batch["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["table"].as_u64().unwrap(),
                g["action"].as_str().unwrap(),
                g["meta"].clone(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (1, "create", json!([[0, 0], [0, 0]])),
            (1, "update", json!([[0, 0]])),
            (2, "delete", json!([[0, 1]])),
            (1, "truncate", json!([[0, 1]])),
            (1, "truncate", json!([[0, null]])),
        ]
    );
    assert_eq!(batch["messages"].as_array().unwrap().len(), 2);
    assert!(batch["groups"][3].get("rows").is_none());
}

#[test]
fn a_large_transaction_is_cut_into_parts_and_only_the_last_completes_it() {
    let a = relation(1);
    let imp: Arc<str> = Arc::from("imp");
    let big = tx(
        9,
        (0..7)
            .map(|i| change(&a, Action::Create, &i.to_string(), Some(&imp)))
            .collect(),
    );
    let parts = all(
        PartLimits {
            rows: 3,
            bytes: usize::MAX,
        },
        std::slice::from_ref(&big),
    );
    assert_eq!(
        parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    for (k, p) in parts.iter().enumerate() {
        // Each part lists the transaction and its message again.
        assert_eq!(p.batch["transactions"][0]["xid"], json!(9));
        assert_eq!(p.batch["messages"][0]["content"], json!("imp"));
        let expected = if k == 2 { json!(0) } else { Value::Null };
        assert_eq!(p.batch["progress"], expected, "part {k}");
    }
    assert_eq!(
        parts[1].batch["groups"][0]["rows"][0],
        json!([null, ["3", null]])
    );
    let by_bytes = all(
        PartLimits {
            rows: 100,
            bytes: 20,
        },
        &[big],
    );
    assert!(by_bytes.len() > 1, "a part holds about `bytes` of values");
}

#[test]
fn a_transaction_without_changes_still_moves_the_position() {
    let parts = all(PartLimits::default(), &[tx(4, Vec::new())]);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].rows, 0);
    assert_eq!(parts[0].batch["groups"], json!([]));
    assert_eq!(parts[0].batch["progress"], json!(0));
    let mut b = Batcher::new(PartLimits::default());
    assert!(b.finish().is_none(), "nothing pushed, no part");
}

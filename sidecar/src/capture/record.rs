//! Committed transactions as the argument of `audit.wal_record`: a batch of transactions,
//! their attribution messages, and their changes in groups (one table, one action, in commit
//! order, across transactions: a thousand single-row transactions are one group), cut into
//! parts small enough for one call each. The parts of one round are written in one database
//! transaction; each part records how far the transactions it completes reach.

use std::sync::Arc;

use serde_json::{json, Value};

use super::pgoutput::Relation;
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

/// One call of `audit.wal_record`: its `batch` argument, and how many rows it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub batch: Value,
    pub rows: usize,
}

fn values_bytes(row: &Option<Vec<Option<String>>>) -> usize {
    row.iter()
        .flatten()
        .map(|v| v.as_ref().map_or(4, String::len) + 4)
        .sum()
}

/// The part being filled.
#[derive(Default)]
struct Open {
    transactions: Vec<Value>,
    messages: Vec<Value>,
    groups: Vec<Value>,
    rows: usize,
    bytes: usize,
    /// The last transaction this part completes: where the slot's recorded position goes.
    progress: Option<Value>,
    /// The group rows are added to: its relation (by identity) and action.
    group: Option<(Arc<Relation>, Action)>,
    /// The current transaction's index in `transactions`, and its last message's index.
    transaction: Option<usize>,
    message: Option<(Arc<str>, usize)>,
}

/// Cuts transactions into parts as they come.
pub struct Batcher {
    limits: PartLimits,
    open: Open,
}

impl Batcher {
    pub fn new(limits: PartLimits) -> Batcher {
        Batcher {
            limits,
            open: Open::default(),
        }
    }

    /// Adds a committed transaction; returns the parts it filled, to be written now.
    pub fn push(&mut self, tx: &Transaction) -> Vec<Part> {
        let full = tx
            .changes
            .iter()
            .filter_map(|c| self.add_change(tx, c))
            .collect();
        self.complete(tx);
        full
    }

    /// Adds one change of `tx`; returns the part it filled, if it did, to be written before
    /// the next change is added (a million-row transaction is never all JSON at once).
    pub fn add_change(&mut self, tx: &Transaction, change: &Change) -> Option<Part> {
        let size = values_bytes(&change.old) + values_bytes(&change.new);
        let full = (self.open.rows > 0
            && (self.open.rows + 1 > self.limits.rows
                || self.open.bytes + size > self.limits.bytes))
            .then(|| self.cut());
        self.add(tx, change, size);
        full
    }

    /// `tx`'s changes are all added: it completes in the open part, listed (even without
    /// changes) as the part's recorded position.
    pub fn complete(&mut self, tx: &Transaction) {
        let t = self.transaction_index(tx);
        self.open.progress = Some(json!(t));
        self.open.transaction = None;
        self.open.message = None;
    }

    /// The last part, if anything is in it.
    pub fn finish(&mut self) -> Option<Part> {
        (!self.open.transactions.is_empty()).then(|| self.cut())
    }

    fn cut(&mut self) -> Part {
        let open = std::mem::take(&mut self.open);
        let part = Part {
            batch: json!({
                "transactions": open.transactions,
                "messages": open.messages,
                "groups": open.groups,
                "progress": open.progress,
            }),
            rows: open.rows,
        };
        // A transaction cut in two goes on in the next part, listed again there (the open
        // part is a new one: no transaction, message or group yet).
        part
    }

    fn transaction_index(&mut self, tx: &Transaction) -> usize {
        if let Some(t) = self.open.transaction {
            return t;
        }
        self.open.transactions.push(json!({
            "xid": tx.xid,
            "end_lsn": tx.end_lsn.to_string(),
            "commit_time": tx.commit_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }));
        let t = self.open.transactions.len() - 1;
        self.open.transaction = Some(t);
        t
    }

    fn message_index(&mut self, t: usize, content: Option<&Arc<str>>) -> Option<usize> {
        let content = content?;
        if let Some((last, m)) = &self.open.message {
            // The same message (shared, not compared by content: it may be large).
            if Arc::ptr_eq(last, content) {
                return Some(*m);
            }
        }
        self.open
            .messages
            .push(json!({ "transaction": t, "content": &**content }));
        let m = self.open.messages.len() - 1;
        self.open.message = Some((Arc::clone(content), m));
        Some(m)
    }

    fn add(&mut self, tx: &Transaction, change: &Change, size: usize) {
        let t = self.transaction_index(tx);
        let m = self.message_index(t, change.attribution.as_ref());
        let same = self.open.group.as_ref().is_some_and(|(relation, action)| {
            Arc::ptr_eq(relation, &change.relation) && *action == change.action
        });
        // A truncate is a group of its own each time (it has no rows to share).
        if !same || change.action == Action::Truncate {
            let mut g = json!({
                "table": change.relation.oid,
                "action": change.action.as_str(),
                "meta": [],
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
            self.open.groups.push(g);
            self.open.group = Some((Arc::clone(&change.relation), change.action));
        }
        if let Some(g) = self.open.groups.last_mut() {
            if let Some(Value::Array(meta)) = g.get_mut("meta") {
                meta.push(json!([t, m]));
            }
            if let Some(Value::Array(rows)) = g.get_mut("rows") {
                rows.push(json!([change.old, change.new]));
            }
        }
        self.open.rows += 1;
        self.open.bytes += size;
    }
}

#[cfg(test)]
mod tests;

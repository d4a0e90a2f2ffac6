//! Committed transactions out of a stream of `pgoutput` messages: each change with its
//! table's description and the attribution `audit.set_actor` had emitted before it in the
//! same transaction, and the commit's time and position. What cannot be turned into an
//! event exactly as the triggers would write it (a change without its old row, a value the
//! server did not send) is an error naming the table, never a guess.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::pgoutput::{Lsn, Message, Relation, Value};

/// The prefix of the logical messages `audit.set_actor` emits in WAL capture mode.
pub const MESSAGE_PREFIX: &str = "audit_trail";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    #[error("the WAL stream is out of order: {0}")]
    OutOfOrder(&'static str),
    #[error("a change of relation {0} came before the server described the relation")]
    UnknownRelation(u32),
    #[error(
        "{table}: an {action} without the whole old row (its replica identity is not FULL, so \
         the event's old values are not in the WAL)"
    )]
    NoOldRow { table: String, action: &'static str },
    #[error("{table}: {reason}")]
    Row { table: String, reason: String },
    #[error("the attribution message is not UTF-8")]
    Attribution,
    #[error("a commit time no timestamp holds: {0} µs from 2000-01-01")]
    CommitTime(i64),
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Truncate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Truncate => "truncate",
        }
    }
}

/// One row changed (or one table emptied), with every column's text value: the old row
/// for updates and deletes, the new one for creates and updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    /// The table as the server last described it before this change (shared by the
    /// changes that follow one description: a million-row statement holds it once).
    pub relation: Arc<Relation>,
    pub old: Option<Vec<Option<String>>>,
    pub new: Option<Vec<Option<String>>>,
    /// The content of the last `audit_trail` message of the transaction before this change,
    /// shared by the changes it attributes (a large message and a million-row statement
    /// hold it once).
    pub attribution: Option<Arc<str>>,
}

/// A committed transaction's changes, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub xid: u32,
    pub commit_lsn: Lsn,
    /// Where the slot may be advanced to once the transaction's events are stored.
    pub end_lsn: Lsn,
    pub commit_time: DateTime<Utc>,
    pub changes: Vec<Change>,
}

/// Turns messages into transactions; keeps the relations the server described, which
/// later messages refer to by oid.
#[derive(Default)]
pub struct Assembler {
    relations: HashMap<u32, Arc<Relation>>,
    open: Option<Transaction>,
    attribution: Option<Arc<str>>,
}

/// PostgreSQL's timestamps count microseconds from 2000-01-01 00:00 UTC.
pub fn postgres_time(micros: i64) -> Result<DateTime<Utc>, StreamError> {
    const UNIX_TO_POSTGRES_EPOCH: i64 = 946_684_800;
    DateTime::<Utc>::from_timestamp(UNIX_TO_POSTGRES_EPOCH, 0)
        .and_then(|epoch| epoch.checked_add_signed(TimeDelta::microseconds(micros)))
        .ok_or(StreamError::CommitTime(micros))
}

impl Assembler {
    /// Takes the next message; returns the transaction it completes, if it is a commit.
    pub fn push(&mut self, message: Message) -> Result<Option<Transaction>, StreamError> {
        match message {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                if self.open.is_some() {
                    return Err(StreamError::OutOfOrder("a begin inside a transaction"));
                }
                self.attribution = None;
                self.open = Some(Transaction {
                    xid,
                    commit_lsn: final_lsn,
                    end_lsn: final_lsn,
                    commit_time: postgres_time(commit_time)?,
                    changes: Vec::new(),
                });
            }
            Message::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
            } => {
                let mut tx = self
                    .open
                    .take()
                    .ok_or(StreamError::OutOfOrder("a commit outside a transaction"))?;
                if tx.commit_lsn != commit_lsn {
                    return Err(StreamError::OutOfOrder(
                        "a commit of another transaction than the one begun",
                    ));
                }
                tx.end_lsn = end_lsn;
                tx.commit_time = postgres_time(commit_time)?;
                self.attribution = None;
                return Ok(Some(tx));
            }
            Message::Relation(relation) => {
                self.relations.insert(relation.oid, Arc::new(relation));
            }
            Message::Origin { .. } | Message::Type { .. } => {}
            Message::Message {
                transactional: true,
                prefix,
                content,
                ..
            } if prefix == MESSAGE_PREFIX => {
                self.open_transaction()?;
                self.attribution = Some(Arc::from(
                    String::from_utf8(content).map_err(|_| StreamError::Attribution)?,
                ));
            }
            // Another tool's messages, and messages outside transactions, are not ours.
            Message::Message { .. } => {}
            Message::Insert { relation, new } => {
                let relation = self.relation(relation)?;
                let new = whole(&relation, new, None)?;
                self.add(Action::Create, relation, None, Some(new))?;
            }
            Message::Update { relation, old, new } => {
                let relation = self.relation(relation)?;
                let old = full_old_row(&relation, old, "update")?;
                let new = whole(&relation, new, Some(&old))?;
                self.add(Action::Update, relation, Some(old), Some(new))?;
            }
            Message::Delete { relation, old } => {
                let relation = self.relation(relation)?;
                let old = full_old_row(&relation, Some(old), "delete")?;
                self.add(Action::Delete, relation, Some(old), None)?;
            }
            Message::Truncate { relations, .. } => {
                for oid in relations {
                    let relation = self.relation(oid)?;
                    self.add(Action::Truncate, relation, None, None)?;
                }
            }
        }
        Ok(None)
    }

    fn open_transaction(&mut self) -> Result<&mut Transaction, StreamError> {
        self.open
            .as_mut()
            .ok_or(StreamError::OutOfOrder("a change outside a transaction"))
    }

    fn relation(&self, oid: u32) -> Result<Arc<Relation>, StreamError> {
        self.relations
            .get(&oid)
            .map(Arc::clone)
            .ok_or(StreamError::UnknownRelation(oid))
    }

    fn add(
        &mut self,
        action: Action,
        relation: Arc<Relation>,
        old: Option<Vec<Option<String>>>,
        new: Option<Vec<Option<String>>>,
    ) -> Result<(), StreamError> {
        let attribution = self.attribution.clone();
        self.open_transaction()?.changes.push(Change {
            action,
            relation,
            old,
            new,
            attribution,
        });
        Ok(())
    }
}

fn table(relation: &Relation) -> String {
    format!("{}.{}", relation.namespace, relation.name)
}

/// An update's or delete's old row: the whole of it, which only REPLICA IDENTITY FULL puts
/// in the WAL (a key-only or absent old row would make up the event's old values).
fn full_old_row(
    relation: &Relation,
    old: Option<Vec<Value>>,
    action: &'static str,
) -> Result<Vec<Option<String>>, StreamError> {
    match old {
        Some(values) if relation.replica_identity == b'f' => whole(relation, values, None),
        _ => Err(StreamError::NoOldRow {
            table: table(relation),
            action,
        }),
    }
}

/// Every column's value: a TOASTed value the server did not send again (an update that left
/// it alone) is the old row's.
fn whole(
    relation: &Relation,
    values: Vec<Value>,
    old: Option<&[Option<String>]>,
) -> Result<Vec<Option<String>>, StreamError> {
    if values.len() != relation.columns.len() {
        return Err(StreamError::Row {
            table: table(relation),
            reason: format!(
                "{} values for {} columns",
                values.len(),
                relation.columns.len()
            ),
        });
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| match value {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text)),
            Value::Unchanged => match old.and_then(|row| row.get(i)) {
                Some(kept) => Ok(kept.clone()),
                None => Err(StreamError::Row {
                    table: table(relation),
                    reason: format!(
                        "column {} was not sent and no old row holds it",
                        relation.columns[i].name
                    ),
                }),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pgoutput::{decode, Column};

    fn session() -> Vec<Transaction> {
        let mut assembler = Assembler::default();
        include_str!("fixtures/session-pg15.hex")
            .lines()
            .filter_map(|line| {
                let message = decode(&hex::decode(line).expect("hex")).expect("decodes");
                assembler.push(message).expect("assembles")
            })
            .collect()
    }

    #[test]
    fn what_postgresql_wrote_becomes_four_transactions() {
        let txs = session();
        assert_eq!(txs.len(), 4);
        let actions: Vec<Vec<&str>> = txs
            .iter()
            .map(|t| t.changes.iter().map(|c| c.action.as_str()).collect())
            .collect();
        assert_eq!(
            actions,
            [
                vec!["create", "create"],
                vec!["update"],
                vec!["delete"],
                vec!["truncate"]
            ]
        );
        assert!(txs.windows(2).all(|w| w[0].end_lsn < w[1].commit_lsn));
        assert!(txs.windows(2).all(|w| w[0].xid < w[1].xid));
        // The set_actor message attributes the changes after it, in its transaction only.
        assert_eq!(
            txs[0].changes[0].attribution.as_deref(),
            Some(r#"{"actor":"ann@example.com"}"#)
        );
        assert_eq!(txs[1].changes[0].attribution, None);
        // The fixture's session ran on 2026-12-07.
        assert_eq!(
            txs[0].commit_time.format("%Y-%m-%d").to_string(),
            "2026-12-07"
        );
        // The update's new row has the TOASTed notes the server did not send again.
        let update = &txs[1].changes[0];
        let (old, new) = (update.old.as_ref().unwrap(), update.new.as_ref().unwrap());
        assert_eq!(new[1].as_deref(), Some("Anne"));
        assert_eq!(new[4], old[4]);
        assert_eq!(new[4].as_ref().map(String::len), Some(3200));
        assert_eq!(
            txs[2].changes[0].old.as_ref().unwrap()[1].as_deref(),
            Some("Zoë ✓")
        );
    }

    fn relation(identity: u8) -> Relation {
        Relation {
            oid: 7,
            namespace: "crm".into(),
            name: "contacts".into(),
            replica_identity: identity,
            columns: vec![Column {
                name: "id".into(),
                type_oid: 20,
                type_modifier: -1,
                key: true,
            }],
        }
    }

    #[test]
    fn what_would_make_up_an_event_is_refused() {
        let begin = Message::Begin {
            final_lsn: Lsn(1),
            commit_time: 0,
            xid: 9,
        };
        // A change before its relation was described.
        let mut a = Assembler::default();
        a.push(begin.clone()).unwrap();
        let insert = Message::Insert {
            relation: 7,
            new: vec![Value::Text("1".into())],
        };
        assert_eq!(a.push(insert), Err(StreamError::UnknownRelation(7)));
        // A delete of a table whose replica identity is the key only.
        let mut a = Assembler::default();
        a.push(Message::Relation(relation(b'd'))).unwrap();
        a.push(begin.clone()).unwrap();
        let delete = Message::Delete {
            relation: 7,
            old: vec![Value::Text("1".into())],
        };
        assert!(matches!(a.push(delete), Err(StreamError::NoOldRow { .. })));
        // An update without an old row, under FULL (cannot happen; refused all the same).
        let mut a = Assembler::default();
        a.push(Message::Relation(relation(b'f'))).unwrap();
        a.push(begin.clone()).unwrap();
        let update = Message::Update {
            relation: 7,
            old: None,
            new: vec![Value::Unchanged],
        };
        assert!(matches!(a.push(update), Err(StreamError::NoOldRow { .. })));
        // A row with another number of columns than its relation.
        let mut a = Assembler::default();
        a.push(Message::Relation(relation(b'f'))).unwrap();
        a.push(begin.clone()).unwrap();
        let wide = Message::Insert {
            relation: 7,
            new: vec![Value::Null, Value::Null],
        };
        assert!(matches!(a.push(wide), Err(StreamError::Row { .. })));
        // A commit without a begin, a begin inside a transaction.
        let mut a = Assembler::default();
        let commit = Message::Commit {
            commit_lsn: Lsn(1),
            end_lsn: Lsn(2),
            commit_time: 0,
        };
        assert!(matches!(a.push(commit), Err(StreamError::OutOfOrder(_))));
        a.push(begin.clone()).unwrap();
        assert!(matches!(a.push(begin), Err(StreamError::OutOfOrder(_))));
        // A commit time past any timestamp.
        let mut a = Assembler::default();
        let far = Message::Begin {
            final_lsn: Lsn(1),
            commit_time: i64::MAX,
            xid: 9,
        };
        assert_eq!(a.push(far), Err(StreamError::CommitTime(i64::MAX)));
    }
}

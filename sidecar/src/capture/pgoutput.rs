//! The messages of PostgreSQL's built-in logical decoding plugin `pgoutput`, protocol
//! version 1 (PostgreSQL 10 and later; "Logical Replication Message Formats" in the
//! PostgreSQL manual), as the slot functions return them: one message per row. Only what
//! WAL capture reads is decoded; a message it does not know is an error, never skipped, so
//! that nothing a newer server sends is silently lost. Column values stay in the text form
//! the server wrote them in: the database turns them into JSON, as the triggers do.

use std::fmt;

/// A position in the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl std::str::FromStr for Lsn {
    type Err = DecodeError;

    /// `16/B374D848`, as pg_lsn prints it.
    fn from_str(text: &str) -> Result<Lsn, DecodeError> {
        let bad = || DecodeError::Malformed(format!("{text:?} is not an LSN"));
        let (high, low) = text.split_once('/').ok_or_else(bad)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("a pgoutput message ends early (reading {0})")]
    Truncated(&'static str),
    #[error("pgoutput message type {0:?} is not one WAL capture reads")]
    UnknownMessage(char),
    #[error("malformed pgoutput message: {0}")]
    Malformed(String),
}

/// One column's value in a row image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// A TOASTed value the update did not change: the server did not send it again.
    Unchanged,
    /// The value's text output, as the server wrote it.
    Text(String),
}

/// A column of a relation, as the server described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    /// Part of the replica identity (the key, or every column under FULL).
    pub key: bool,
}

/// A table as the server described it before its first change in a session, and again
/// after its definition changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01 UTC, PostgreSQL's epoch.
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    Origin {
        lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<Value>,
    },
    Update {
        relation: u32,
        /// The old row: whole under REPLICA IDENTITY FULL ('O'), only the key when the key
        /// changed ('K'), absent otherwise.
        old: Option<Vec<Value>>,
        new: Vec<Value>,
    },
    Delete {
        relation: u32,
        old: Vec<Value>,
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    /// `pg_logical_emit_message`: `transactional` ones come inside their transaction.
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
    },
}

/// Reads big-endian fields off the front of a message.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4, what)?);
        Ok(i32::from_be_bytes(b))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(self.i32(what)? as u32)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_be_bytes(b))
    }

    fn lsn(&mut self, what: &'static str) -> Result<Lsn, DecodeError> {
        Ok(Lsn(self.i64(what)? as u64))
    }

    /// A NUL-terminated string.
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated(what))?;
        let text = std::str::from_utf8(&self.bytes[..end])
            .map_err(|_| DecodeError::Malformed(format!("{what} is not UTF-8")))?
            .to_owned();
        self.bytes = &self.bytes[end + 1..];
        Ok(text)
    }

    fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        usize::try_from(self.i16(what)?)
            .map_err(|_| DecodeError::Malformed(format!("a negative {what}")))
    }

    fn tuple(&mut self) -> Result<Vec<Value>, DecodeError> {
        let n = self.count("a row's column count")?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(match self.u8("a column's kind")? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = usize::try_from(self.i32("a value's length")?)
                        .map_err(|_| DecodeError::Malformed("a negative value length".into()))?;
                    let text = std::str::from_utf8(self.take(len, "a value")?)
                        .map_err(|_| DecodeError::Malformed("a value is not UTF-8".into()))?;
                    Value::Text(text.to_owned())
                }
                other => {
                    return Err(DecodeError::Malformed(format!(
                        "column kind {:?} (binary values are not asked for)",
                        char::from(other)
                    )))
                }
            });
        }
        Ok(values)
    }

    fn end(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(format!(
                "{} bytes after the end of {what}",
                self.bytes.len()
            )))
        }
    }
}

/// Decodes one message, as one row of `pg_logical_slot_peek_binary_changes` holds it.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { bytes };
    let kind = r.u8("the message type")?;
    let message = match kind {
        b'B' => Message::Begin {
            final_lsn: r.lsn("begin's LSN")?,
            commit_time: r.i64("begin's commit time")?,
            xid: r.u32("begin's xid")?,
        },
        b'C' => {
            r.u8("commit's flags")?;
            Message::Commit {
                commit_lsn: r.lsn("commit's LSN")?,
                end_lsn: r.lsn("commit's end LSN")?,
                commit_time: r.i64("commit's time")?,
            }
        }
        b'O' => Message::Origin {
            lsn: r.lsn("origin's LSN")?,
            name: r.string("origin's name")?,
        },
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type {
            oid: r.u32("type's oid")?,
            namespace: r.string("type's schema")?,
            name: r.string("type's name")?,
        },
        b'I' => {
            let relation = r.u32("insert's relation")?;
            expect(&mut r, b'N', "insert's new row")?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32("update's relation")?;
            let (old, new) = match r.u8("update's row kind")? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    expect(&mut r, b'N', "update's new row")?;
                    (Some(old), r.tuple()?)
                }
                b'N' => (None, r.tuple()?),
                other => return Err(unexpected(other, "update's row kind")),
            };
            Message::Update { relation, old, new }
        }
        b'D' => {
            let relation = r.u32("delete's relation")?;
            match r.u8("delete's row kind")? {
                b'K' | b'O' => {}
                other => return Err(unexpected(other, "delete's row kind")),
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = usize::try_from(r.i32("truncate's relation count")?)
                .map_err(|_| DecodeError::Malformed("a negative relation count".into()))?;
            let options = r.u8("truncate's options")?;
            let relations = (0..n)
                .map(|_| r.u32("a truncated relation"))
                .collect::<Result<_, _>>()?;
            Message::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        b'M' => {
            let transactional = r.u8("message's flags")? & 1 != 0;
            let lsn = r.lsn("message's LSN")?;
            let prefix = r.string("message's prefix")?;
            let len = usize::try_from(r.i32("message's length")?)
                .map_err(|_| DecodeError::Malformed("a negative message length".into()))?;
            Message::Message {
                transactional,
                lsn,
                prefix,
                content: r.take(len, "message's content")?.to_vec(),
            }
        }
        other => return Err(DecodeError::UnknownMessage(char::from(other))),
    };
    r.end("the message")?;
    Ok(message)
}

fn relation(r: &mut Reader<'_>) -> Result<Relation, DecodeError> {
    let oid = r.u32("relation's oid")?;
    let namespace = r.string("relation's schema")?;
    let name = r.string("relation's name")?;
    let replica_identity = r.u8("relation's replica identity")?;
    let n = r.count("relation's column count")?;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.u8("column's flags")? & 1 != 0;
        columns.push(Column {
            name: r.string("column's name")?,
            type_oid: r.u32("column's type")?,
            type_modifier: r.i32("column's type modifier")?,
            key,
        });
    }
    Ok(Relation {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn expect(r: &mut Reader<'_>, tag: u8, what: &'static str) -> Result<(), DecodeError> {
    match r.u8(what)? {
        t if t == tag => Ok(()),
        other => Err(unexpected(other, what)),
    }
}

fn unexpected(tag: u8, what: &'static str) -> DecodeError {
    DecodeError::Malformed(format!("{what}: unexpected tag {:?}", char::from(tag)))
}

#[cfg(test)]
mod tests;

//! The decoder against messages built by hand and against what PostgreSQL wrote.
use super::*;

/// Builds messages the way the server lays them out.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn string(mut self, v: &str) -> Self {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    fn text(self, v: &str) -> Self {
        let mut b = self.u8(b't').i32(v.len() as i32);
        b.0.extend_from_slice(v.as_bytes());
        b
    }
}

#[test]
fn begin_commit_and_lsns() {
    let begin = Bytes::default()
        .u8(b'B')
        .i64(0x16_B374_D848)
        .i64(123)
        .i32(777);
    assert_eq!(
        decode(&begin.0),
        Ok(Message::Begin {
            final_lsn: Lsn(0x16_B374_D848),
            commit_time: 123,
            xid: 777
        })
    );
    assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
    assert_eq!("16/B374D848".parse(), Ok(Lsn(0x16_B374_D848)));
    assert!("16-B3".parse::<Lsn>().is_err());
    let commit = Bytes::default().u8(b'C').u8(0).i64(10).i64(20).i64(30);
    assert_eq!(
        decode(&commit.0),
        Ok(Message::Commit {
            commit_lsn: Lsn(10),
            end_lsn: Lsn(20),
            commit_time: 30
        })
    );
}

#[test]
fn relations_and_rows() {
    let relation = Bytes::default()
        .u8(b'R')
        .i32(16384)
        .string("crm")
        .string("contacts")
        .u8(b'f')
        .i16(2)
        .u8(1)
        .string("id")
        .i32(20)
        .i32(-1)
        .u8(0)
        .string("name")
        .i32(25)
        .i32(-1);
    let Ok(Message::Relation(r)) = decode(&relation.0) else {
        panic!("a relation");
    };
    assert_eq!((r.namespace.as_str(), r.name.as_str()), ("crm", "contacts"));
    assert_eq!(r.replica_identity, b'f');
    assert!(r.columns[0].key && !r.columns[1].key);
    assert_eq!(r.columns[1].type_oid, 25);

    let update = Bytes::default()
        .u8(b'U')
        .i32(16384)
        .u8(b'O')
        .i16(3)
        .text("1")
        .u8(b'n')
        .text("é ✓")
        .u8(b'N')
        .i16(3)
        .text("1")
        .text("Ann")
        .u8(b'u');
    assert_eq!(
        decode(&update.0),
        Ok(Message::Update {
            relation: 16384,
            old: Some(vec![
                Value::Text("1".into()),
                Value::Null,
                Value::Text("é ✓".into())
            ]),
            new: vec![
                Value::Text("1".into()),
                Value::Text("Ann".into()),
                Value::Unchanged
            ],
        })
    );
    let delete = Bytes::default().u8(b'D').i32(7).u8(b'K').i16(1).text("1");
    assert!(matches!(
        decode(&delete.0),
        Ok(Message::Delete { relation: 7, .. })
    ));
}

#[test]
fn truncates_and_logical_messages() {
    let truncate = Bytes::default().u8(b'T').i32(2).u8(3).i32(5).i32(6);
    assert_eq!(
        decode(&truncate.0),
        Ok(Message::Truncate {
            relations: vec![5, 6],
            cascade: true,
            restart_identity: true
        })
    );
    let mut message = Bytes::default()
        .u8(b'M')
        .u8(1)
        .i64(99)
        .string("audit_trail")
        .i32(2);
    message.0.extend_from_slice(b"{}");
    assert_eq!(
        decode(&message.0),
        Ok(Message::Message {
            transactional: true,
            lsn: Lsn(99),
            prefix: "audit_trail".into(),
            content: b"{}".to_vec()
        })
    );
}

/// The messages PostgreSQL 15 wrote for fixtures/session.sql, decoded.
#[test]
fn what_postgresql_wrote_decodes_to_the_session_it_came_from() {
    let messages: Vec<Message> = include_str!("../fixtures/session-pg15.hex")
        .lines()
        .map(|line| decode(&hex::decode(line).expect("hex")).expect("decodes"))
        .collect();
    let kinds: String = messages
        .iter()
        .map(|m| match m {
            Message::Begin { .. } => 'B',
            Message::Commit { .. } => 'C',
            Message::Message { .. } => 'M',
            Message::Relation(_) => 'R',
            Message::Insert { .. } => 'I',
            Message::Update { .. } => 'U',
            Message::Delete { .. } => 'D',
            Message::Truncate { .. } => 'T',
            _ => '?',
        })
        .collect();
    // The first transaction (the message, two inserts), the update, the delete, the
    // truncate: each between its begin and commit; the relation described before its
    // first change, and again before the truncate, whose invalidation of the table made
    // pgoutput forget it had sent it.
    assert_eq!(kinds, "BMRIICBUCBDCBRTC");
    let Message::Begin { final_lsn, xid, .. } = &messages[0] else {
        unreachable!()
    };
    let Message::Commit { commit_lsn, .. } = &messages[5] else {
        unreachable!()
    };
    assert_eq!(final_lsn, commit_lsn);
    assert!(*xid > 0);
    let Message::Message {
        transactional,
        prefix,
        content,
        ..
    } = &messages[1]
    else {
        unreachable!()
    };
    assert!(transactional);
    assert_eq!(prefix, "audit_trail");
    assert_eq!(content, br#"{"actor":"ann@example.com"}"#);
    let Message::Relation(r) = &messages[2] else {
        unreachable!()
    };
    assert_eq!(
        (r.namespace.as_str(), r.name.as_str()),
        ("public", "contacts")
    );
    assert_eq!(r.replica_identity, b'f');
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "tags", "data", "notes", "seen"]);
    assert_eq!(r.columns[0].type_oid, 20);
    assert_eq!(r.columns[2].type_oid, 1009);
    let Message::Insert { new, .. } = &messages[3] else {
        unreachable!()
    };
    assert_eq!(new[2], Value::Text(r#"{a,"b c"}"#.into()));
    assert_eq!(new[3], Value::Text(r#"{"k": [1, 2.5]}"#.into()));
    assert!(matches!(&new[4], Value::Text(t) if t.len() == 3200));
    let Message::Insert { new, .. } = &messages[4] else {
        unreachable!()
    };
    assert_eq!(new[1], Value::Text("Zoë ✓".into()));
    assert_eq!(new[2], Value::Null);
    // REPLICA IDENTITY FULL: the whole old row; the unchanged TOASTed value not sent again.
    let Message::Update { old, new, .. } = &messages[7] else {
        unreachable!()
    };
    let old = old.as_ref().expect("the old row");
    assert_eq!(old[1], Value::Text("Ann".into()));
    assert!(matches!(&old[4], Value::Text(t) if t.len() == 3200));
    assert_eq!(new[1], Value::Text("Anne".into()));
    assert_eq!(new[4], Value::Unchanged);
    let Message::Delete { old, .. } = &messages[10] else {
        unreachable!()
    };
    assert_eq!(old[0], Value::Text("2".into()));
    let Message::Truncate { relations, .. } = &messages[14] else {
        unreachable!()
    };
    assert_eq!(relations, &[r.oid]);
}

#[test]
fn anything_unexpected_is_an_error_not_a_skip() {
    assert_eq!(decode(&[]), Err(DecodeError::Truncated("the message type")));
    assert_eq!(decode(b"S"), Err(DecodeError::UnknownMessage('S')));
    // A value longer than the message.
    let short = Bytes::default()
        .u8(b'I')
        .i32(1)
        .u8(b'N')
        .i16(1)
        .u8(b't')
        .i32(10)
        .u8(b'x');
    assert_eq!(decode(&short.0), Err(DecodeError::Truncated("a value")));
    // Binary values were not asked for.
    let binary = Bytes::default().u8(b'I').i32(1).u8(b'N').i16(1).u8(b'b');
    assert!(matches!(decode(&binary.0), Err(DecodeError::Malformed(_))));
    // Trailing bytes mean the layout is not the one decoded.
    let trailing = Bytes::default().u8(b'C').u8(0).i64(1).i64(2).i64(3).u8(0);
    assert!(matches!(
        decode(&trailing.0),
        Err(DecodeError::Malformed(_))
    ));
    let negative = Bytes::default().u8(b'I').i32(1).u8(b'N').i16(-1);
    assert!(matches!(
        decode(&negative.0),
        Err(DecodeError::Malformed(_))
    ));
}

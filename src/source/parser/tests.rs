use super::*;

/// Builds pgoutput messages for tests.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn tag(t: u8) -> Self {
        W(vec![t])
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn s(mut self, v: &str) -> Self {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    fn text(mut self, v: &[u8]) -> Self {
        self.0.push(b't');
        self.0.extend_from_slice(&(v.len() as i32).to_be_bytes());
        self.0.extend_from_slice(v);
        self
    }
    fn b(self) -> Bytes {
        Bytes::from(self.0)
    }
}

fn parse(b: Bytes) -> Result<CdcMessage> {
    PgOutputParser::new().parse(&b)
}

#[test]
fn insert_views_point_into_the_frame() {
    let b = W::tag(b'I')
        .u32(16384)
        .u8(b'N')
        .i16(4)
        .text(b"42")
        .u8(b'n')
        .text("h\u{e9}llo \u{1F600}".as_bytes())
        .text(b"")
        .b();
    let msg = parse(b.clone()).expect("valid");
    let CdcMessage::Insert { xid, rel_id, new } = msg else {
        panic!("not an insert: {msg:?}")
    };
    assert_eq!(xid, None);
    assert_eq!(rel_id, 16384);
    assert_eq!(new.len(), 4);
    assert_eq!(new.text(0), Some("42"));
    assert_eq!(new.kind(1), Some(ColumnKind::Null));
    assert_eq!(new.text(2), Some("h\u{e9}llo \u{1F600}"));
    assert_eq!(new.text(3), Some(""));
    let v = new.bytes(0).expect("value");
    // Zero copy: the value's bytes live inside the frame's allocation.
    let frame_range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
    assert!(frame_range.contains(&(v.as_ptr() as usize)));
}

#[test]
fn update_with_old_key_and_unchanged_toast() {
    let b = W::tag(b'U')
        .u32(7)
        .u8(b'K')
        .i16(2)
        .text(b"1")
        .u8(b'n')
        .u8(b'N')
        .i16(2)
        .text(b"2")
        .u8(b'u')
        .b();
    let CdcMessage::Update {
        old_key, old, new, ..
    } = parse(b).expect("valid")
    else {
        panic!("not an update")
    };
    assert!(old.is_none());
    assert_eq!(old_key.expect("key").text(0), Some("1"));
    assert_eq!(new.kind(1), Some(ColumnKind::UnchangedToast));
}

#[test]
fn update_with_old_row_and_delete() {
    let b = W::tag(b'U')
        .u32(7)
        .u8(b'O')
        .i16(1)
        .text(b"a")
        .u8(b'N')
        .i16(1)
        .text(b"b")
        .b();
    let CdcMessage::Update { old, old_key, .. } = parse(b).expect("valid") else {
        panic!("not an update")
    };
    assert!(old_key.is_none());
    assert_eq!(old.expect("old").text(0), Some("a"));
    let d = W::tag(b'D').u32(7).u8(b'O').i16(1).text(b"a").b();
    assert!(matches!(
        parse(d),
        Ok(CdcMessage::Delete { old: Some(_), .. })
    ));
    let d = W::tag(b'D').u32(7).u8(b'N').i16(1).text(b"a").b();
    assert!(matches!(
        parse(d),
        Err(ParseError {
            kind: ParseErrorKind::UnexpectedByte { .. },
            offset: 5,
            ..
        })
    ));
}

#[test]
fn relation_with_empty_namespace_is_pg_catalog() {
    let b = W::tag(b'R')
        .u32(99)
        .s("")
        .s("t")
        .u8(b'f')
        .i16(2)
        .u8(1)
        .s("id")
        .u32(23)
        .i32(-1)
        .u8(0)
        .s("name")
        .u32(1043)
        .i32(24)
        .b();
    let CdcMessage::Relation(rel) = parse(b).expect("valid") else {
        panic!("not a relation")
    };
    assert_eq!(rel.namespace, "pg_catalog");
    assert_eq!(rel.replica_identity, ReplicaIdentity::Full);
    assert_eq!(rel.columns.len(), 2);
    assert!(rel.columns[0].is_key());
    assert_eq!(rel.columns[1].type_modifier, 24);
}

#[test]
fn stream_blocks_add_xids() {
    let mut p = PgOutputParser::new();
    let s = W::tag(b'S').u32(900).u8(1).b();
    assert_eq!(
        p.parse(&s),
        Ok(CdcMessage::StreamStart {
            xid: Xid(900),
            first_segment: true
        })
    );
    let i = W::tag(b'I').u32(901).u32(5).u8(b'N').i16(1).text(b"x").b();
    assert!(matches!(
        p.parse(&i),
        Ok(CdcMessage::Insert {
            xid: Some(Xid(901)),
            rel_id: 5,
            ..
        })
    ));
    // A second Stream Start before Stream Stop is a protocol violation.
    assert!(p.parse(&s).is_err());
    assert_eq!(p.parse(&W::tag(b'E').b()), Ok(CdcMessage::StreamStop));
    assert!(p.parse(&W::tag(b'E').b()).is_err());
    // Outside the block the same insert has trailing bytes: no xid expected.
    assert!(p.parse(&i).is_err());
}

#[test]
fn stream_abort_with_and_without_parallel_fields() {
    let a = W::tag(b'A').u32(1).u32(2).b();
    assert!(matches!(
        parse(a),
        Ok(CdcMessage::StreamAbort {
            abort_lsn: None,
            ..
        })
    ));
    let a = W::tag(b'A').u32(1).u32(1).u64(0x100).u64(5).b();
    assert!(matches!(
        parse(a),
        Ok(CdcMessage::StreamAbort {
            abort_lsn: Some(Lsn(0x100)),
            abort_time: Some(5),
            ..
        })
    ));
    let a = W::tag(b'A').u32(1).u32(1).u64(0x100).b();
    assert!(parse(a).is_err());
}

#[test]
fn two_phase_messages() {
    let b = W::tag(b'b').u64(1).u64(2).u64(3).u32(4).s("g1").b();
    assert!(
        matches!(parse(b), Ok(CdcMessage::BeginPrepare(PrepareInfo { ref gid, .. })) if gid == "g1")
    );
    let p = W::tag(b'P').u8(0).u64(1).u64(2).u64(3).u32(4).s("g1").b();
    assert!(matches!(parse(p), Ok(CdcMessage::Prepare(_))));
    let k = W::tag(b'K').u8(0).u64(1).u64(2).u64(3).u32(4).s("g1").b();
    assert!(matches!(
        parse(k),
        Ok(CdcMessage::CommitPrepared {
            end_lsn: Lsn(2),
            ..
        })
    ));
    let r = W::tag(b'r')
        .u8(0)
        .u64(1)
        .u64(2)
        .u64(3)
        .u64(4)
        .u32(5)
        .s("g1")
        .b();
    assert!(matches!(
        parse(r),
        Ok(CdcMessage::RollbackPrepared { xid: Xid(5), .. })
    ));
}

#[test]
fn truncate_and_message() {
    let t = W::tag(b'T').i32(2).u8(3).u32(10).u32(11).b();
    assert_eq!(
        parse(t),
        Ok(CdcMessage::Truncate {
            xid: None,
            options: 3,
            rel_ids: vec![10, 11]
        })
    );
    // A huge count must fail before allocating anything.
    let t = W::tag(b'T').i32(i32::MAX).u8(0).u32(10).b();
    assert!(matches!(
        parse(t),
        Err(ParseError {
            kind: ParseErrorKind::Truncated { .. },
            ..
        })
    ));
    let m = W::tag(b'M')
        .u8(1)
        .u64(7)
        .s("pfx")
        .i32(3)
        .u8(1)
        .u8(2)
        .u8(3)
        .b();
    let CdcMessage::Message {
        content, prefix, ..
    } = parse(m).expect("valid")
    else {
        panic!("not a message")
    };
    assert_eq!(prefix, "pfx");
    assert_eq!(&content[..], &[1, 2, 3]);
}

#[test]
fn malformed_input_is_a_typed_error() {
    assert_eq!(
        parse(Bytes::new()).map_err(|e| e.kind),
        Err(ParseErrorKind::Empty)
    );
    assert_eq!(
        parse(W::tag(b'Z').b()).map_err(|e| e.kind),
        Err(ParseErrorKind::UnknownTag)
    );
    // Column length beyond the frame.
    let b = W::tag(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(100).b();
    let e = parse(b).expect_err("truncated");
    assert_eq!(e.tag, Tag(b'I'));
    assert_eq!(e.offset, 13);
    assert!(e.to_string().contains("'I'"), "{e}");
    // Negative column length.
    let b = W::tag(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(-5).b();
    assert!(matches!(
        parse(b).map_err(|e| e.kind),
        Err(ParseErrorKind::Negative { value: -5, .. })
    ));
    // Invalid UTF-8 in a text column.
    let b = W::tag(b'I').u32(1).u8(b'N').i16(1).text(&[0xff, 0xfe]).b();
    assert!(matches!(
        parse(b).map_err(|e| e.kind),
        Err(ParseErrorKind::InvalidUtf8 { .. })
    ));
    // Trailing bytes.
    let b = W::tag(b'B').u64(1).u64(2).u32(3).u8(0).b();
    assert_eq!(
        parse(b).map_err(|e| e.kind),
        Err(ParseErrorKind::TrailingBytes(1))
    );
    // Unterminated string.
    let b = W::tag(b'O').u64(1).u8(b'x').b();
    assert!(matches!(
        parse(b).map_err(|e| e.kind),
        Err(ParseErrorKind::Unterminated { .. })
    ));
    // Column count larger than the bytes left.
    let b = W::tag(b'I').u32(1).u8(b'N').i16(i16::MAX).b();
    assert!(matches!(
        parse(b).map_err(|e| e.kind),
        Err(ParseErrorKind::Truncated { .. })
    ));
}

#[test]
fn every_prefix_of_valid_messages_fails_cleanly() {
    let msgs = [
        W::tag(b'B').u64(1).u64(2).u32(3).b(),
        W::tag(b'C').u8(0).u64(1).u64(2).u64(3).b(),
        W::tag(b'I')
            .u32(1)
            .u8(b'N')
            .i16(2)
            .text(b"abc")
            .u8(b'u')
            .b(),
        W::tag(b'R')
            .u32(1)
            .s("public")
            .s("t")
            .u8(b'd')
            .i16(1)
            .u8(1)
            .s("id")
            .u32(23)
            .i32(-1)
            .b(),
        W::tag(b'K').u8(0).u64(1).u64(2).u64(3).u32(4).s("g").b(),
    ];
    for m in msgs {
        assert!(parse(m.clone()).is_ok());
        for n in 0..m.len() {
            assert!(parse(m.slice(..n)).is_err(), "prefix {n} of {m:?}");
        }
    }
}

//! pgoutput decoding against a real PostgreSQL, checked against PostgreSQL's own
//! `to_json` of the same rows (an oracle independent of dbmazz's decoder).

use std::collections::HashMap;

use crate::fixture::{messages, read_until, until_commits, Fixture};
use dbmazz::source::message::{ColumnKind, Relation, ReplicaIdentity};
use dbmazz::source::values::{ColumnCodec, JsonTarget, PgType, TypeRegistry};
use dbmazz::source::{CdcMessage, SourceEvent, SourceStream, Streaming};
use dbmazz_testkit::PgConfig;

const TYPES_SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('sad', 'happy', 'very happy');
CREATE DOMAIN price AS numeric(12,2);
CREATE TABLE typed (
  id int PRIMARY KEY,
  b bool, i2 int2, i4 int4, i8 int8, o oid,
  f4 float4, f8 float8, n numeric, m money,
  t text, vc varchar(20), bp char(5), nm name, ch \"char\",
  by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
  iv interval, u uuid, j json, jb jsonb,
  ai int[], at text[], an numeric[], ab bytea[], ats timestamp[], aj jsonb[],
  e mood, ae mood[], dp price
);
";

const TYPES_ROWS: &str = "
INSERT INTO typed VALUES
 (1, true, -32768, 2147483647, -9223372036854775808, 4294967295,
  1.5, -2.2250738585072014e-308, 123456789012345678901234567890.123456789012345678901234567890,
  1234.56,
  'héllo wörld 😀 \"quoted\" back\\slash', '', 'ab', 'pg_name', 'x',
  '\\xdeadbeef00', '2024-02-29', '23:59:59.999999', '12:00:00+05:30',
  '2024-01-31 12:34:56.5', '2024-01-01 03:00:00+05:30',
  '1 year 2 mons 3 days 04:05:06.7', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{\"k\": [1, 2.50, null], \"s\": \"v\"}', '{\"b\": true, \"a\": {\"n\": 1e3}}',
  '{{1,2},{3,NULL}}', '{\"a b\",\"c\\\"d\",NULL,\"NULL\",\"\",\"é\"}', '{1.10,-0.000001,NULL}',
  '{\"\\\\x0102\",NULL}', '{\"2020-01-01 00:00:00\",\"1999-12-31 23:59:59.000001\"}',
  ARRAY['{\"x\": 1}'::jsonb, NULL],
  'very happy', '{sad,happy}', 19.99),
 (2, false, 0, 0, 0, 0, 'NaN', '-Infinity', 0, 0, 'line1\nline2\ttab', 'x', '', '', ' ',
  '\\x', '0001-01-01', '00:00:00', '00:00:00-03:30', '9999-12-31 23:59:59', '1970-01-01 00:00:00+00',
  '-1 days', '00000000-0000-0000-0000-000000000000', '[]', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
  'sad', '{}', -0.01),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL);
";

/// The oracle: PostgreSQL's `to_json` of every column, as text, one map per row.
fn oracle(fx: &Fixture, cols: &[String]) -> HashMap<String, Vec<Option<String>>> {
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            // Compare in UTC without an offset, which is what dbmazz writes.
            "tstz" => "to_json(tstz AT TIME ZONE 'UTC')::text".to_string(),
            _ => format!("to_json({c})::text"),
        })
        .collect();
    let sql = format!(
        "SELECT id::text || E'\\x1f' || concat_ws(E'\\x1f', {}) FROM (SELECT id, {} FROM typed) s ORDER BY id",
        exprs
            .iter()
            .enumerate()
            .map(|(i, _)| format!("coalesce(c{i}, '<NULL>')"))
            .collect::<Vec<_>>()
            .join(", "),
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = fx.sql(&sql);
    let mut rows = HashMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.split('\u{1f}');
        let id = parts.next().expect("id").to_string();
        let vals = parts
            .map(|v| (v != "<NULL>").then(|| v.to_string()))
            .collect::<Vec<_>>();
        rows.insert(id, vals);
    }
    rows
}

/// Brings PostgreSQL's `to_json` text into dbmazz's documented conventions.
fn normalize_oracle(col: &str, v: &str) -> String {
    match col {
        // numeric: dbmazz writes exact strings.
        "n" | "dp" => format!("\"{v}\""),
        "an" => v.to_string(),
        // oid: to_json quotes it, dbmazz writes a number.
        "o" => v.trim_matches('"').to_string(),
        // bytea: dbmazz writes plain hex without the \x prefix.
        "by" | "ab" => v.replace("\\\\x", ""),
        // timestamps: dbmazz writes a space, to_json an ISO 'T'.
        "ts" | "tstz" | "ats" => v.replace('T', " "),
        _ => v.to_string(),
    }
}

fn normalize_ours(col: &str, v: &str) -> String {
    match col {
        // numeric array elements are strings in dbmazz output, numbers in to_json.
        "an" => v.replace('"', ""),
        _ => v.to_string(),
    }
}

#[tokio::test]
async fn every_type_matches_the_to_json_oracle() {
    let fx = Fixture::new(PgConfig::default(), TYPES_SCHEMA, false);
    let mut stream = SourceStream::start(fx.config()).await.expect("start");
    fx.sql(TYPES_ROWS);
    let events = read_until(&mut stream, 30, until_commits(1)).await;
    let mut registry = TypeRegistry::new();
    let mut relation: Option<Relation> = None;
    let mut rows = Vec::new();
    for m in messages(&events) {
        match m {
            CdcMessage::Type(t) => registry.register(t),
            CdcMessage::Relation(r) => relation = Some(r.clone()),
            CdcMessage::Insert { new, .. } => rows.push(new.clone()),
            _ => {}
        }
    }
    // The enum OIDs come from the catalog, as the pipeline's schema cache does it.
    for oid in fx
        .sql("SELECT oid FROM pg_type WHERE typtype = 'e'")
        .lines()
        .filter(|l| !l.is_empty())
    {
        registry.mark_enum(oid.trim().parse().expect("oid"));
    }
    let rel = relation.expect("relation message");
    assert_eq!(rel.replica_identity, ReplicaIdentity::Default);
    let names: Vec<String> = rel.columns.iter().map(|c| c.name.clone()).collect();
    let codecs: Vec<ColumnCodec> = rel
        .columns
        .iter()
        .map(|c| {
            let ty = PgType::resolve(c.type_oid, c.type_modifier, &registry);
            assert!(
                !matches!(ty, PgType::Unknown { .. }),
                "column {} resolved to {ty:?}",
                c.name
            );
            ColumnCodec::new("public.typed", &c.name, ty)
        })
        .collect();
    assert_eq!(
        codecs[names.iter().position(|n| n == "dp").expect("dp")].ty(),
        &PgType::Numeric
    );
    let expected = oracle(&fx, &names[1..]);
    assert_eq!(rows.len(), 3);
    let mut compared = 0;
    for row in &rows {
        let id = row.text(0).expect("id").to_string();
        let want = &expected[&id];
        for (i, codec) in codecs.iter().enumerate().skip(1) {
            let col = &names[i];
            let oracle_v = want[i - 1].as_deref();
            match row.kind(i).expect("column") {
                ColumnKind::Null => assert_eq!(oracle_v, None, "row {id} column {col}"),
                ColumnKind::Text => {
                    let target = if matches!(col.as_str(), "j" | "jb" | "aj") {
                        JsonTarget::Json
                    } else {
                        JsonTarget::Native
                    };
                    let text = row.text(i).expect("text");
                    let mut out = Vec::new();
                    match codec.encode(text, target, &mut out) {
                        Ok(()) => {
                            let ours =
                                normalize_ours(col, std::str::from_utf8(&out).expect("utf8"));
                            let theirs = normalize_oracle(col, oracle_v.expect("oracle value"));
                            assert_eq!(ours, theirs, "row {id} column {col}");
                            compared += 1;
                        }
                        Err(e) => {
                            // The documented refusals: float NaN stays a string (ok),
                            // numeric NaN would be an error; none in these rows.
                            panic!("row {id} column {col}: {e}");
                        }
                    }
                }
                other => panic!("row {id} column {col}: unexpected {other:?}"),
            }
        }
    }
    assert_eq!(compared, 2 * (names.len() - 1));
    stream.shutdown().await;
}

const DML_SCHEMA: &str = "
CREATE TABLE t_default (id int PRIMARY KEY, v text, big text);
ALTER TABLE t_default ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE t_full (id int PRIMARY KEY, v text);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_index (a int NOT NULL, b int NOT NULL, v text);
CREATE UNIQUE INDEX t_index_ab ON t_index (a, b);
ALTER TABLE t_index REPLICA IDENTITY USING INDEX t_index_ab;
CREATE TABLE t_parent (id int PRIMARY KEY);
CREATE TABLE t_child (id serial PRIMARY KEY, parent int REFERENCES t_parent);
";

fn rel_by_name<'a>(msgs: &[&'a CdcMessage], name: &str) -> &'a Relation {
    msgs.iter()
        .find_map(|m| match m {
            CdcMessage::Relation(r) if r.name == name => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no relation {name}"))
}

#[tokio::test]
async fn every_dml_kind_and_replica_identity() {
    let fx = Fixture::new(PgConfig::default(), DML_SCHEMA, false);
    let mut cfg = fx.config();
    cfg.messages = true;
    let mut stream = SourceStream::start(cfg).await.expect("start");
    fx.sql(
        "BEGIN;
         INSERT INTO t_default VALUES (1, 'one', repeat(md5('x'), 1000)), (2, 'two', NULL);
         INSERT INTO t_full VALUES (1, 'one');
         INSERT INTO t_index VALUES (1, 1, 'one');
         INSERT INTO t_parent VALUES (1);
         INSERT INTO t_child (parent) VALUES (1);
         COMMIT;",
    );
    fx.sql("UPDATE t_default SET v = 'uno' WHERE id = 1"); // big stays TOASTed: 'u'
    fx.sql("UPDATE t_default SET id = 10 WHERE id = 2"); // key change: old key 'K'
    fx.sql("UPDATE t_full SET v = 'uno' WHERE id = 1"); // FULL: old row 'O'
    fx.sql("UPDATE t_index SET b = 2 WHERE a = 1"); // index key change
    fx.sql("DELETE FROM t_default WHERE id = 10");
    fx.sql("DELETE FROM t_full WHERE id = 1");
    fx.sql("DELETE FROM t_index WHERE a = 1");
    fx.sql("SELECT pg_logical_emit_message(true, 'dbmazz-test', 'in a transaction')");
    fx.sql("SELECT pg_logical_emit_message(false, 'dbmazz-test', 'not transactional')");
    fx.sql("TRUNCATE t_parent, t_child RESTART IDENTITY CASCADE");
    let events = read_until(&mut stream, 30, |e| {
        messages(e)
            .iter()
            .any(|m| matches!(m, CdcMessage::Truncate { .. }))
    })
    .await;
    let msgs = messages(&events);
    let d = rel_by_name(&msgs, "t_default");
    let f = rel_by_name(&msgs, "t_full");
    let ix = rel_by_name(&msgs, "t_index");
    assert_eq!(d.replica_identity, ReplicaIdentity::Default);
    assert_eq!(f.replica_identity, ReplicaIdentity::Full);
    assert_eq!(ix.replica_identity, ReplicaIdentity::Index);
    assert_eq!(
        ix.columns.iter().map(|c| c.is_key()).collect::<Vec<_>>(),
        vec![true, true, false]
    );
    let updates: Vec<&CdcMessage> = msgs
        .iter()
        .copied()
        .filter(|m| matches!(m, CdcMessage::Update { .. }))
        .collect();
    assert_eq!(updates.len(), 4);
    // 1. Non-key update with an unchanged TOAST column.
    let CdcMessage::Update {
        rel_id,
        old_key,
        old,
        new,
        ..
    } = updates[0]
    else {
        unreachable!()
    };
    assert_eq!(*rel_id, d.id);
    assert!(old_key.is_none() && old.is_none());
    assert_eq!(new.text(1), Some("uno"));
    assert_eq!(new.kind(2), Some(ColumnKind::UnchangedToast));
    // 2. PK-changing update: old key with only key columns set.
    let CdcMessage::Update { old_key, new, .. } = updates[1] else {
        unreachable!()
    };
    let k = old_key.as_ref().expect("old key");
    assert_eq!(k.text(0), Some("2"));
    assert_eq!(k.kind(1), Some(ColumnKind::Null));
    assert_eq!(new.text(0), Some("10"));
    // 3. FULL: the whole old row.
    let CdcMessage::Update { old, new, .. } = updates[2] else {
        unreachable!()
    };
    let o = old.as_ref().expect("old row");
    assert_eq!((o.text(0), o.text(1)), (Some("1"), Some("one")));
    assert_eq!(new.text(1), Some("uno"));
    // 4. USING INDEX with a key change.
    let CdcMessage::Update {
        rel_id, old_key, ..
    } = updates[3]
    else {
        unreachable!()
    };
    assert_eq!(*rel_id, ix.id);
    let k = old_key.as_ref().expect("old key");
    assert_eq!(
        (k.text(0), k.text(1), k.kind(2)),
        (Some("1"), Some("1"), Some(ColumnKind::Null))
    );

    let deletes: Vec<&CdcMessage> = msgs
        .iter()
        .copied()
        .filter(|m| matches!(m, CdcMessage::Delete { .. }))
        .collect();
    assert_eq!(deletes.len(), 3);
    assert!(
        matches!(deletes[0], CdcMessage::Delete { old_key: Some(k), old: None, .. } if k.text(0) == Some("10"))
    );
    assert!(
        matches!(deletes[1], CdcMessage::Delete { old_key: None, old: Some(o), .. } if o.text(1) == Some("uno"))
    );
    assert!(
        matches!(deletes[2], CdcMessage::Delete { old_key: Some(k), .. } if k.text(1) == Some("2"))
    );

    let logical: Vec<(bool, &[u8])> = msgs
        .iter()
        .filter_map(|m| match m {
            CdcMessage::Message {
                transactional,
                prefix,
                content,
                ..
            } if prefix == "dbmazz-test" => Some((*transactional, &content[..])),
            _ => None,
        })
        .collect();
    assert_eq!(
        logical,
        vec![
            (true, &b"in a transaction"[..]),
            (false, &b"not transactional"[..])
        ]
    );

    let parent = rel_by_name(&msgs, "t_parent").id;
    let child = rel_by_name(&msgs, "t_child").id;
    let Some(CdcMessage::Truncate {
        options, rel_ids, ..
    }) = msgs.last()
    else {
        panic!("last is not a truncate")
    };
    assert_eq!(*options, 3, "CASCADE | RESTART IDENTITY");
    let mut got = rel_ids.clone();
    got.sort_unstable();
    let mut want = vec![parent, child];
    want.sort_unstable();
    assert_eq!(got, want);
    // The relation ids are the tables' OIDs.
    assert_eq!(
        fx.sql("SELECT 't_full'::regclass::oid").trim(),
        f.id.to_string()
    );
    stream.shutdown().await;
}

fn count_inserts(msgs: &[&CdcMessage]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, CdcMessage::Insert { .. }))
        .count()
}

/// True once a whole streamed chunk (`StreamStart` … `StreamStop`) of `xid` arrived.
fn until_a_chunk_of(xid: u32) -> impl FnMut(&[SourceEvent]) -> bool {
    let mut inside = false;
    move |events| {
        match events.last() {
            Some(SourceEvent::Message {
                msg: CdcMessage::StreamStart { xid: x, .. },
                ..
            }) => inside = x.0 == xid,
            Some(SourceEvent::Message {
                msg: CdcMessage::StreamStop,
                ..
            }) if inside => return true,
            _ => {}
        }
        false
    }
}

#[tokio::test]
async fn large_transactions_arrive_in_streamed_chunks() {
    let fx = Fixture::new(
        PgConfig::default().setting("logical_decoding_work_mem", "64kB"),
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        false,
    );
    let mut cfg = fx.config();
    cfg.streaming = Streaming::On;
    let mut stream = SourceStream::start(cfg).await.expect("start");
    fx.sql("INSERT INTO big SELECT g, repeat('p', 100) FROM generate_series(1, 5000) g");
    // The large transaction that aborts is rolled back only once PostgreSQL has begun
    // streaming it: from 18 on, a transaction already aborted when decoding reaches it
    // is skipped rather than streamed and then aborted.
    let session = fx.pg.client("postgres").await.expect("connect");
    session
        .batch_execute(
            "BEGIN; INSERT INTO big SELECT g, repeat('q', 100) FROM generate_series(10001, 15000) g",
        )
        .await
        .expect("open the large transaction");
    let txid: i64 = session
        .query_one("SELECT txid_current()", &[])
        .await
        .expect("txid")
        .get(0);
    // txid_current() carries the epoch in its high 32 bits; pgoutput sends the xid.
    let aborted_xid = (txid & 0xFFFF_FFFF) as u32;
    let mut events = read_until(&mut stream, 60, until_a_chunk_of(aborted_xid)).await;
    session
        .batch_execute("ROLLBACK")
        .await
        .expect("roll back the large transaction");
    fx.sql("INSERT INTO big VALUES (0, 'small')");
    events.extend(read_until(&mut stream, 60, until_commits(1)).await);
    let msgs = messages(&events);
    let starts = msgs
        .iter()
        .filter(|m| matches!(m, CdcMessage::StreamStart { .. }))
        .count();
    let stops = msgs
        .iter()
        .filter(|m| matches!(m, CdcMessage::StreamStop))
        .count();
    assert!(starts >= 2, "expected several chunks, got {starts}");
    assert_eq!(starts, stops);
    let commit_xid = msgs.iter().find_map(|m| match m {
        CdcMessage::StreamCommit { xid, .. } => Some(*xid),
        _ => None,
    });
    let abort = msgs.iter().find_map(|m| match m {
        CdcMessage::StreamAbort { xid, subxid, .. } => Some((*xid, *subxid)),
        _ => None,
    });
    let commit_xid = commit_xid.expect("stream commit");
    let (abort_xid, abort_sub) = abort.expect("stream abort");
    assert_eq!(abort_xid.0, aborted_xid, "the rolled-back transaction");
    assert_eq!(abort_xid, abort_sub, "whole transaction aborted");
    assert_ne!(commit_xid, abort_xid);
    // Every change inside a block carries its xid; count per transaction.
    let mut per_xid: HashMap<u32, usize> = HashMap::new();
    for m in &msgs {
        if let CdcMessage::Insert { xid: Some(x), .. } = m {
            *per_xid.entry(x.0).or_default() += 1;
        }
    }
    assert_eq!(per_xid.get(&commit_xid.0), Some(&5000));
    assert!(per_xid.get(&abort_xid.0).copied().unwrap_or(0) > 0);
    // The small transaction is an ordinary B..C without xids.
    let last_insert = msgs
        .iter()
        .rev()
        .find(|m| matches!(m, CdcMessage::Insert { .. }));
    assert!(matches!(
        last_insert,
        Some(CdcMessage::Insert { xid: None, .. })
    ));
    assert_eq!(count_inserts(&msgs), 5000 + per_xid[&abort_xid.0] + 1);
    stream.shutdown().await;
}

#[tokio::test]
async fn two_phase_transactions() {
    let fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE t (id int PRIMARY KEY)",
        true,
    );
    let mut cfg = fx.config();
    cfg.two_phase = true;
    let mut stream = SourceStream::start(cfg).await.expect("start");
    if stream.server_info().proto_version < 3 {
        return; // PostgreSQL 14 or older: no two-phase decoding.
    }
    fx.sql("BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'g1'");
    fx.sql("BEGIN; INSERT INTO t VALUES (2); PREPARE TRANSACTION 'g2'");
    fx.sql("COMMIT PREPARED 'g1'");
    fx.sql("ROLLBACK PREPARED 'g2'");
    let events = read_until(&mut stream, 30, |e| {
        messages(e)
            .iter()
            .any(|m| matches!(m, CdcMessage::RollbackPrepared { .. }))
    })
    .await;
    let kinds: Vec<String> = messages(&events)
        .iter()
        .filter_map(|m| match m {
            CdcMessage::BeginPrepare(p) => Some(format!("b:{}", p.gid)),
            CdcMessage::Insert { .. } => Some("I".into()),
            CdcMessage::Prepare(p) => Some(format!("P:{}", p.gid)),
            CdcMessage::CommitPrepared { gid, .. } => Some(format!("K:{gid}")),
            CdcMessage::RollbackPrepared { gid, .. } => Some(format!("r:{gid}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        ["b:g1", "I", "P:g1", "b:g2", "I", "P:g2", "K:g1", "r:g2"]
    );
    let _ = events
        .iter()
        .filter(|e| matches!(e, SourceEvent::Keepalive { .. }))
        .count();
    stream.shutdown().await;
}

#[tokio::test]
async fn replication_origin_is_reported_after_begin() {
    let fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE t (id int PRIMARY KEY)",
        false,
    );
    let mut stream = SourceStream::start(fx.config()).await.expect("start");
    fx.sql(
        "SELECT pg_replication_origin_create('upstream');
         SELECT pg_replication_origin_session_setup('upstream');
         BEGIN;
         SELECT pg_replication_origin_xact_setup('0/1234', now());
         INSERT INTO t VALUES (1);
         COMMIT;",
    );
    let events = read_until(&mut stream, 20, until_commits(1)).await;
    let msgs = messages(&events);
    assert!(matches!(msgs[0], CdcMessage::Begin { .. }));
    assert!(
        matches!(msgs[1], CdcMessage::Origin { name, commit_lsn } if name == "upstream" && commit_lsn.to_string() == "0/1234"),
        "{:?}",
        msgs[1]
    );
    // A Begin followed by Origin is sent with XLogData position 0/0.
    let begin_pos = events.iter().find_map(|e| match e {
        SourceEvent::Message {
            wal_start,
            msg: CdcMessage::Begin { .. },
        } => Some(*wal_start),
        _ => None,
    });
    assert_eq!(begin_pos.map(|l| l.0), Some(0));
    stream.shutdown().await;
}

#[tokio::test]
async fn a_large_prepared_transaction_is_streamed_and_ends_with_stream_prepare() {
    let fx = Fixture::new(
        PgConfig::default().setting("logical_decoding_work_mem", "64kB"),
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        true,
    );
    let mut cfg = fx.config();
    cfg.two_phase = true;
    cfg.streaming = Streaming::On;
    let mut stream = SourceStream::start(cfg).await.expect("start");
    if stream.server_info().proto_version < 3 {
        return;
    }
    fx.sql("BEGIN; INSERT INTO big SELECT g, repeat('p', 100) FROM generate_series(1, 3000) g; PREPARE TRANSACTION 'big1'");
    fx.sql("COMMIT PREPARED 'big1'");
    let events = read_until(&mut stream, 30, |e| {
        matches!(
            e.last(),
            Some(SourceEvent::Message {
                msg: CdcMessage::CommitPrepared { .. },
                ..
            })
        )
    })
    .await;
    let msgs = messages(&events);
    let prepare = msgs.iter().find_map(|m| match m {
        CdcMessage::StreamPrepare(p) => Some(p),
        _ => None,
    });
    let prepare = prepare.expect("stream prepare");
    assert_eq!(prepare.gid, "big1");
    assert!(msgs
        .iter()
        .any(|m| matches!(m, CdcMessage::StreamStart { .. })));
    assert_eq!(count_inserts(&msgs), 3000);
    let Some(CdcMessage::CommitPrepared { gid, xid, .. }) = msgs.last() else {
        unreachable!()
    };
    assert_eq!((gid.as_str(), *xid), ("big1", prepare.xid));
    stream.shutdown().await;
}

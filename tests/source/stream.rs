//! The replication stream against a real PostgreSQL: connection, confirmation,
//! keepalives, backpressure, reconnection and definite errors.

use std::time::Duration;

use crate::fixture::{messages, read_until, until_commits, Fixture};
use dbmazz::lsn::Lsn;
use dbmazz::source::{CdcMessage, SourceError, SourceEvent, SourceStream};
use dbmazz_testkit::{PgConfig, StopMode};

#[tokio::test]
async fn streams_a_transaction_and_confirms_only_checkpointed_lsns() {
    let fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        false,
    );
    let store = fx.store().await;
    let mut stream = SourceStream::start(fx.config()).await.expect("start");
    assert!(stream.server_info().proto_version >= 1);
    fx.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    let events = read_until(&mut stream, 20, until_commits(1)).await;
    let msgs = messages(&events);
    let end_lsn = match msgs.last() {
        Some(CdcMessage::Commit { end_lsn, .. }) => *end_lsn,
        other => panic!("last message is not a commit: {other:?}"),
    };
    assert!(matches!(msgs[0], CdcMessage::Begin { .. }));
    assert!(matches!(msgs[1], CdcMessage::Relation(r) if r.name == "t"));
    assert_eq!(
        msgs.iter()
            .filter(|m| matches!(m, CdcMessage::Insert { .. }))
            .count(),
        2
    );
    // Nothing confirmed yet: the slot stays where it was created.
    let slot_lsn = || {
        fx.sql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'slot1'")
            .trim()
            .to_owned()
    };
    let before = slot_lsn();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(slot_lsn(), before, "slot moved without a confirm");

    let handle = stream.confirm_handle();
    let proof = store
        .commit("job1", "slot1", end_lsn, 1)
        .await
        .expect("checkpoint");
    handle.confirm(proof);
    assert_eq!(handle.durable(), end_lsn);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if slot_lsn() == end_lsn.to_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot never reached {end_lsn}: {}",
            slot_lsn()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stream.shutdown().await;
}

#[tokio::test]
async fn keepalives_are_answered_while_idle() {
    let fx = Fixture::new(
        PgConfig::default().setting("wal_sender_timeout", "2s"),
        "CREATE TABLE t (id int PRIMARY KEY)",
        false,
    );
    let mut cfg = fx.config();
    cfg.status_interval = Duration::from_secs(30); // only keepalive replies keep it alive
    let mut stream = SourceStream::start(cfg).await.expect("start");
    // Idle for several wal_sender_timeouts: the server asks for replies and we answer.
    let events = read_until(&mut stream, 20, |e| {
        e.iter()
            .filter(|e| matches!(e, SourceEvent::Keepalive { .. }))
            .count()
            >= 6
    })
    .await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SourceEvent::Reconnected { .. })),
        "the connection was dropped: {events:?}"
    );
    fx.sql("INSERT INTO t VALUES (1)");
    read_until(&mut stream, 20, until_commits(1)).await;
    stream.shutdown().await;
}

fn inserted_ids(events: &[SourceEvent]) -> Vec<String> {
    messages(events)
        .iter()
        .filter_map(|m| match m {
            CdcMessage::Insert { new, .. } => new.text(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn last_commit_end(events: &[SourceEvent]) -> dbmazz::lsn::Lsn {
    messages(events)
        .iter()
        .rev()
        .find_map(|m| match m {
            CdcMessage::Commit { end_lsn, .. } => Some(*end_lsn),
            _ => None,
        })
        .expect("a commit")
}

async fn restart_mid_stream(mode: StopMode) {
    let mut fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE t (id int PRIMARY KEY)",
        false,
    );
    let store = fx.store().await;
    let mut stream = SourceStream::start(fx.config()).await.expect("start");
    let handle = stream.confirm_handle();
    fx.sql("INSERT INTO t VALUES (1)");
    let first = read_until(&mut stream, 20, until_commits(1)).await;
    let durable = last_commit_end(&first);
    handle.confirm(
        store
            .commit("job", "slot1", durable, 1)
            .await
            .expect("checkpoint"),
    );
    // Received but never made durable: must come again after the restart.
    fx.sql("INSERT INTO t VALUES (2)");
    read_until(&mut stream, 20, until_commits(1)).await;
    drop(store); // its connection dies with the server anyway

    tokio::task::block_in_place(|| fx.pg.restart(mode)).expect("restart");
    fx.sql("INSERT INTO t VALUES (3)");
    let after = read_until(&mut stream, 60, |e| {
        let ids = inserted_ids(e);
        ids.contains(&"3".to_string())
    })
    .await;
    let reconnected: Vec<_> = after
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Reconnected { resumed_from } => Some(*resumed_from),
            _ => None,
        })
        .collect();
    assert_eq!(
        reconnected,
        vec![durable],
        "one reconnect from the durable LSN"
    );
    let pos = after
        .iter()
        .position(|e| matches!(e, SourceEvent::Reconnected { .. }))
        .expect("reconnected");
    let ids = inserted_ids(&after[pos..]);
    assert_eq!(
        ids,
        vec!["2", "3"],
        "nothing skipped, nothing before the durable LSN"
    );
    assert_eq!(stream.confirm_handle().durable(), durable);
    stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_stream_resumes_from_the_durable_lsn() {
    restart_mid_stream(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_crash_mid_stream_resumes_from_the_durable_lsn() {
    restart_mid_stream(StopMode::Immediate).await;
}

#[tokio::test]
async fn terminated_walsender_is_a_transient_error() {
    let fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE t (id int PRIMARY KEY)",
        false,
    );
    let mut stream = SourceStream::start(fx.config()).await.expect("start");
    fx.sql("INSERT INTO t VALUES (1)");
    read_until(&mut stream, 20, until_commits(1)).await;
    fx.sql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'slot1'");
    fx.sql("INSERT INTO t VALUES (2)");
    let ev = read_until(&mut stream, 30, |e| {
        inserted_ids(e).contains(&"2".to_string())
    })
    .await;
    assert!(ev.iter().any(
        |e| matches!(e, SourceEvent::Reconnected { resumed_from } if *resumed_from == Lsn::ZERO)
    ));
    // Never confirmed: the re-sent transaction 1 comes again before 2.
    assert_eq!(inserted_ids(&ev), vec!["1", "2"]);
    stream.shutdown().await;
}

#[tokio::test]
async fn a_slow_consumer_holds_back_reading_without_losing_the_connection() {
    let fx = Fixture::new(
        PgConfig::default().setting("wal_sender_timeout", "2s"),
        "CREATE TABLE t (id int PRIMARY KEY, pad text)",
        false,
    );
    let mut cfg = fx.config();
    cfg.channel_capacity = 1;
    cfg.status_interval = Duration::from_millis(300);
    let mut stream = SourceStream::start(cfg).await.expect("start");
    // ~10 MB: far more than the socket buffers and the one-chunk channel hold.
    fx.sql("INSERT INTO t SELECT g, repeat('x', 2000) FROM generate_series(1, 5000) g");
    let wal_end: Lsn = fx
        .sql("SELECT pg_current_wal_lsn()")
        .trim()
        .parse()
        .expect("lsn");
    // Consume nothing for three wal_sender_timeouts.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // The reader stopped reading: not everything has been received yet.
    let received = stream.confirm_handle().received();
    assert!(
        received < wal_end,
        "received {received} of {wal_end}: no backpressure"
    );
    let ev = read_until(&mut stream, 60, until_commits(1)).await;
    assert!(!ev
        .iter()
        .any(|e| matches!(e, SourceEvent::Reconnected { .. })));
    assert_eq!(inserted_ids(&ev).len(), 5000);
    stream.shutdown().await;
}

#[tokio::test]
async fn definite_errors_name_the_fix() {
    let fx = Fixture::new(PgConfig::default(), "CREATE TABLE t (id int)", false);
    let mut cfg = fx.config();
    cfg.slot = "no_such_slot".into();
    let e = SourceStream::start(cfg).await.expect_err("missing slot");
    assert!(matches!(e, SourceError::SlotMissing { .. }), "{e}");
    assert!(!e.is_transient());
    assert!(
        e.to_string().contains("pg_create_logical_replication_slot"),
        "{e}"
    );

    let mut cfg = fx.config();
    cfg.publication = "no_such_pub".into();
    let e = SourceStream::start(cfg)
        .await
        .expect_err("missing publication");
    assert!(matches!(e, SourceError::PublicationMissing { .. }), "{e}");
    assert!(e.to_string().contains("CREATE PUBLICATION"), "{e}");

    fx.sql("CREATE ROLE plain LOGIN");
    let mut cfg = fx.config();
    cfg.url = format!("postgres://plain@127.0.0.1:{}/postgres", fx.pg.port()).into();
    let e = SourceStream::start(cfg)
        .await
        .expect_err("no replication attribute");
    assert!(matches!(e, SourceError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("REPLICATION"), "{e}");

    fx.sql("SELECT pg_create_physical_replication_slot('phys')");
    let mut cfg = fx.config();
    cfg.slot = "phys".into();
    let e = SourceStream::start(cfg).await.expect_err("physical slot");
    assert!(matches!(e, SourceError::SlotUnusable { .. }), "{e}");

    let mut cfg = fx.config();
    cfg.url = format!("postgres://postgres@127.0.0.1:{}/nodb", fx.pg.port()).into();
    let e = SourceStream::start(cfg).await.expect_err("no database");
    assert!(!e.is_transient(), "{e}");
}

#[tokio::test]
async fn wal_level_replica_is_refused() {
    let pg = crate::fixture::start(PgConfig::default().setting("wal_level", "replica"));
    let cfg = dbmazz::source::SourceConfig::new(pg.url("postgres"), "s", "p");
    let e = SourceStream::start(cfg).await.expect_err("wal_level");
    assert!(matches!(e, SourceError::WalLevel { .. }), "{e}");
    assert!(e.to_string().contains("wal_level = logical"));
}

#[tokio::test]
async fn invalidated_slot_is_a_definite_error() {
    let fx = Fixture::new(
        PgConfig::default()
            .setting("max_slot_wal_keep_size", "1MB")
            .setting("max_wal_size", "32MB")
            .setting("min_wal_size", "32MB"),
        "CREATE TABLE t (id int, pad text)",
        false,
    );
    for _ in 0..4 {
        fx.sql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g; SELECT pg_switch_wal();");
    }
    fx.sql("CHECKPOINT");
    let status = fx.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'slot1'");
    assert_eq!(
        status.trim(),
        "lost",
        "the test setup did not invalidate the slot"
    );
    let e = SourceStream::start(fx.config())
        .await
        .expect_err("invalidated");
    assert!(matches!(e, SourceError::SlotInvalidated { .. }), "{e}");
    assert!(e.to_string().contains("re-snapshot"), "{e}");
}

#[tokio::test]
async fn a_new_stream_resumes_from_the_checkpoint_and_shutdown_releases_the_slot() {
    let fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE t (id int PRIMARY KEY)",
        false,
    );
    let store = fx.store().await;
    let mut stream = SourceStream::start(fx.config()).await.expect("start");
    fx.sql("INSERT INTO t VALUES (1)");
    let first = read_until(&mut stream, 20, until_commits(1)).await;
    let durable = last_commit_end(&first);
    stream.confirm_handle().confirm(
        store
            .commit("job", "slot1", durable, 1)
            .await
            .expect("checkpoint"),
    );
    fx.sql("INSERT INTO t VALUES (2)");
    read_until(&mut stream, 20, until_commits(1)).await;
    stream.shutdown().await;
    // The walsender is gone once shutdown returns (no lingering connection).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !fx
        .sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'slot1'")
        .trim()
        .eq("f")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "slot still active after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fx.sql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'slot1'")
            .trim(),
        durable.to_string()
    );

    // A new worker: loads the checkpoint and starts from it.
    let checkpoint = store.load("job").await.expect("load").expect("checkpoint");
    let mut cfg = fx.config();
    cfg.start_lsn = Some(store.resume_point(&checkpoint));
    let mut stream = SourceStream::start(cfg).await.expect("restart");
    assert_eq!(stream.confirm_handle().durable(), durable);
    let ev = read_until(&mut stream, 20, until_commits(1)).await;
    assert_eq!(inserted_ids(&ev), vec!["2"]);
    stream.shutdown().await;
}

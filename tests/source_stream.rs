//! The replication stream against a real PostgreSQL: connection, confirmation,
//! keepalives, backpressure, reconnection and definite errors.

mod source_util;

use std::time::Duration;

use dbmazz::source::{CdcMessage, SourceEvent, SourceStream};
use dbmazz_testkit::PgConfig;
use source_util::{commits, messages, read_until, Fixture};

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
    let events = read_until(&mut stream, 20, |e| commits(e) == 1).await;
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
    read_until(&mut stream, 20, |e| commits(e) == 1).await;
    stream.shutdown().await;
}

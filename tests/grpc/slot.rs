//! Slot `wal_status` and retained WAL in Status and `/metrics`, asked of a real
//! PostgreSQL through `PgSlotInspector`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::{http_get, settings, Server};
use dbmazz::engine::status::Stage;
use dbmazz::engine::Pipelines;
use dbmazz::grpc::pb;
use dbmazz::grpc::pb::status_service_client::StatusServiceClient;
use dbmazz::grpc::prometheus as prom;
use dbmazz::grpc::{PgSlotInspector, SlotInspector};
use dbmazz_testkit::{PgCluster, StopMode};

async fn status(srv: &Server, job: &str) -> pb::PipelineStatus {
    StatusServiceClient::new(srv.channel().await)
        .get_status(pb::GetStatusRequest { job_id: job.into() })
        .await
        .expect("GetStatus")
        .into_inner()
}

#[tokio::test]
async fn status_and_metrics_show_the_slot_as_postgres_sees_it() {
    let mut pg = PgCluster::start().expect("start PostgreSQL");
    pg.psql(
        "postgres",
        "SELECT pg_create_logical_replication_slot('slot_orders', 'pgoutput')",
    )
    .expect("slot");
    // Produce WAL the slot has to keep.
    pg.psql(
        "postgres",
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
    )
    .expect("write WAL");

    let inspector = Arc::new(PgSlotInspector::new());
    let url = pg.url("postgres");
    inspector.set_source("orders", &url);
    inspector.set_source("ghost", &url);
    let srv = Server::start_with(
        settings(),
        Pipelines::new(),
        Some(inspector.clone() as Arc<dyn SlotInspector>),
    )
    .await;
    srv.add("orders", Stage::Cdc);
    srv.add("ghost", Stage::Cdc); // slot "slot_ghost" does not exist
    srv.add("nosource", Stage::Cdc); // no source registered

    let p = status(&srv, "orders").await;
    let slot = p.slot_status.expect("slot status");
    assert!(slot.known, "{slot:?}");
    assert!(!slot.missing);
    assert_eq!(slot.wal_status, "reserved");
    assert!(!slot.active, "nothing streams from the slot");
    assert!(
        slot.retained_wal_bytes > 1_000_000,
        "20000 rows of WAL retained: {}",
        slot.retained_wal_bytes
    );
    let restart = slot.restart_lsn.expect("restart_lsn");
    let server_lsn: String = pg
        .psql("postgres", "SELECT pg_current_wal_lsn()")
        .expect("lsn")
        .trim()
        .to_owned();
    let server_lsn: dbmazz::lsn::Lsn = server_lsn.parse().expect("parse lsn");
    assert!(restart.value < server_lsn.0);
    assert!(slot.retained_wal_bytes <= server_lsn.0 - restart.value);
    assert!(slot.checked_unix_ms > 0);

    let ghost = status(&srv, "ghost")
        .await
        .slot_status
        .expect("slot status");
    assert!(ghost.known && ghost.missing, "{ghost:?}");
    let none = status(&srv, "nosource")
        .await
        .slot_status
        .expect("slot status");
    assert!(!none.known);
    assert!(
        none.error.contains("no source database registered"),
        "{}",
        none.error
    );

    // The scrape agrees with Status (same cached inspection).
    let metrics = srv.metrics.expect("metrics");
    let (code, _, body) = http_get(metrics, "GET", "/metrics", None).await;
    assert_eq!(code, 200);
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parse");
    let get = |name: &str, job: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("job") == Some(job))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                ref other => panic!("{name}: {other:?}"),
            })
    };
    assert_eq!(
        get(prom::SLOT_RETAINED_WAL_BYTES, "orders"),
        Some(slot.retained_wal_bytes as f64)
    );
    assert_eq!(get(prom::SLOT_WAL_STATUS, "orders"), Some(1.0));
    assert_eq!(get(prom::SLOT_ACTIVE, "orders"), Some(0.0));
    assert_eq!(get(prom::SLOT_INSPECTION_OK, "orders"), Some(1.0));
    assert_eq!(get(prom::SLOT_WAL_STATUS, "ghost"), Some(5.0));
    assert_eq!(get(prom::SLOT_INSPECTION_OK, "nosource"), Some(0.0));
    assert_eq!(get(prom::SLOT_RETAINED_WAL_BYTES, "nosource"), None);

    // A source that went away is reported as unknown, quickly, and the URL (which
    // may hold a password) never shows.
    pg.stop(StopMode::Fast);
    srv.add("late", Stage::Cdc);
    inspector.set_source("late", &url);
    let started = Instant::now();
    let late = status(&srv, "late").await.slot_status.expect("slot status");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!late.known);
    assert!(late.error.contains("cannot connect"), "{}", late.error);
    assert!(!late.error.contains(&url), "{}", late.error);
}

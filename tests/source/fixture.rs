//! Helpers shared by the source integration tests.
use std::time::Duration;

use dbmazz::source::{CdcMessage, SourceConfig, SourceEvent, SourceStream};
use dbmazz::state_store::StateStore;
use dbmazz_testkit::{PgCluster, PgConfig};
use futures_util::StreamExt;

/// A cluster with a slot and a publication ready to stream.
pub struct Fixture {
    pub pg: PgCluster,
    pub slot: String,
    pub publication: String,
}

pub fn start(config: PgConfig) -> PgCluster {
    PgCluster::start_with(config).expect("start PostgreSQL")
}

impl Fixture {
    /// Starts a cluster, runs `schema`, creates publication `pub1` FOR ALL TABLES and
    /// slot `slot1` (two_phase as asked).
    pub fn new(config: PgConfig, schema: &str, two_phase: bool) -> Self {
        let pg = start(config);
        if !schema.is_empty() {
            pg.psql("postgres", schema).expect("schema");
        }
        pg.psql("postgres", "CREATE PUBLICATION pub1 FOR ALL TABLES")
            .expect("publication");
        pg.psql(
            "postgres",
            &format!(
                "SELECT pg_create_logical_replication_slot('slot1', 'pgoutput', false, {two_phase})"
            ),
        )
        .expect("slot");
        Fixture {
            pg,
            slot: "slot1".into(),
            publication: "pub1".into(),
        }
    }

    pub fn config(&self) -> SourceConfig {
        let mut c = SourceConfig::new(self.pg.url("postgres"), &self.slot, &self.publication);
        c.status_interval = Duration::from_millis(500);
        c.connect_timeout = Duration::from_secs(10);
        c
    }

    pub fn sql(&self, sql: &str) -> String {
        self.pg.psql("postgres", sql).expect("sql")
    }

    /// A checkpoint store in its own database, so its writes stay out of the
    /// publication (FOR ALL TABLES) of the streamed database.
    pub async fn store(&self) -> StateStore {
        if self
            .sql("SELECT 1 FROM pg_database WHERE datname = 'dbmazz_state'")
            .trim()
            .is_empty()
        {
            self.pg
                .create_database("dbmazz_state")
                .expect("state database");
        }
        StateStore::connect(&self.pg.url("dbmazz_state").into(), "dbmazz")
            .await
            .expect("state store")
    }
}

/// Reads events until `done` says so (checked after each event), or panics after `secs`.
pub async fn read_until(
    stream: &mut SourceStream,
    secs: u64,
    mut done: impl FnMut(&[SourceEvent]) -> bool,
) -> Vec<SourceEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        match next {
            Ok(Some(Ok(ev))) => {
                events.push(ev);
                if done(&events) {
                    return events;
                }
            }
            Ok(Some(Err(e))) => panic!("stream error: {e}; events so far: {}", events.len()),
            Ok(None) => panic!("stream ended; events so far: {events:?}"),
            Err(_) => panic!(
                "timed out after {secs}s; events so far: {:#?}",
                events.iter().map(short).collect::<Vec<_>>()
            ),
        }
    }
}

/// Messages only.
pub fn messages(events: &[SourceEvent]) -> Vec<&CdcMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Message { msg, .. } => Some(msg),
            _ => None,
        })
        .collect()
}

pub fn short(e: &SourceEvent) -> String {
    match e {
        SourceEvent::Message { msg, .. } => {
            let s = format!("{msg:?}");
            s.chars().take(120).collect()
        }
        other => format!("{other:?}"),
    }
}

/// A `read_until` predicate that is true once `n` Commit messages arrived
/// (counted incrementally: large streams stay linear).
pub fn until_commits(n: usize) -> impl FnMut(&[SourceEvent]) -> bool {
    let mut seen = 0;
    move |events| {
        if let Some(SourceEvent::Message {
            msg: CdcMessage::Commit { .. },
            ..
        }) = events.last()
        {
            seen += 1;
        }
        seen >= n
    }
}

//! The StarRocks sink: one Stream Load per (table, segment, row shape).
//!
//! - [`table`]: what a sink table is (columns, audit columns, quoting);
//! - [`catalog`]: the MySQL-protocol side (metadata, DDL, TRUNCATE); [`setup`]: the
//!   checks and fixes run before anything is loaded;
//! - [`encode`] and [`fit`]: rows → JSON load bodies, values checked against columns;
//! - [`labels`], [`loader`], [`http`], [`response`]: deterministic labels, one Stream
//!   Load driven until durable over libcurl, and what its replies mean;
//! - [`error`]: the sink's errors and their kinds.
//!
//! ```text
//! Batch ─┬─ table A: [Rows ─▶ loads by shape] ─▶ [TRUNCATE] ─▶ [Rows ─▶ loads]   (sequential)
//!        └─ table B: [Rows ─▶ loads by shape]                                     (in parallel)
//! ```
//!
//! Correctness (design rules 4, 5, 7):
//! - Loads to one table run strictly one after another, in stream order; tables run
//!   in parallel. The batch is acknowledged only when every load succeeded.
//! - Every load carries `merge_condition=dbmazz_cdc_version`, so a replay or a late
//!   load never moves a row to an older version (deletes ignore the condition, which
//!   is why soft delete is the default and loads are sequential).
//! - Labels are deterministic ([`labels`]). A retry always re-uses the label:
//!   "Label Already Exists" with a FINISHED job is success, a RUNNING one is waited
//!   for through `get_load_state`, anything unknown is re-sent with the same label.
//!   After a TRUNCATE in the same batch the labels get a per-attempt nonce, because
//!   a replayed TRUNCATE empties the table again and the loads after it must really
//!   run again.
//! - Values are checked against their sink column before a load ([`fit`]);
//!   `strict_mode=true` makes a value StarRocks cannot convert fail the load instead
//!   of becoming NULL.
//! - `max_filter_ratio=0`: a filtered row fails the load; the error carries the first
//!   lines of the ErrorURL log.

pub mod catalog;
pub mod encode;
pub mod error;
pub mod fit;
pub mod http;
pub mod labels;
pub mod loader;
pub mod response;
pub mod setup;
pub mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::metrics::{SinkMetrics, TableCounters};
use super::{Sink, SinkAck, SinkConnector, SinkError};
use crate::clock::{format_utc_micros, unix_micros};
use crate::config::{DeleteMode, Secret, TruncateMode};
use crate::pipeline::batch::{Batch, Segment};
use crate::pipeline::schema_cache::{SourceTable, TableSchema};
use catalog::{starrocks_type, Catalog, CatalogSettings};
use encode::{encode_segment, AuditValues, TableCodec};
use error::StarRocksError;
use labels::LabelParts;
use loader::StreamLoader;
use setup::SinkSetupError;
use table::SinkTable;

/// Settings of the StarRocks sink.
#[derive(Clone, Debug)]
pub struct StarRocksSettings {
    /// FE HTTP base URL, e.g. `http://fe:8030`.
    pub fe_url: String,
    /// Target database.
    pub database: String,
    /// User for Stream Load (Basic auth).
    pub user: String,
    /// Password.
    pub password: Secret,
    /// Label prefix.
    pub label_prefix: String,
    /// Job id (part of every label).
    pub job_id: String,
    /// Delete handling.
    pub delete_mode: DeleteMode,
    /// TRUNCATE handling.
    pub truncate: TruncateMode,
    /// Stream Load `timeout` (seconds) and the HTTP request timeout.
    pub load_timeout: Duration,
    /// MySQL-protocol connection.
    pub catalog: CatalogSettings,
}

impl StarRocksSettings {
    /// `host:port` of the MySQL-protocol side, for messages.
    fn endpoint(&self) -> String {
        format!("{}:{}", self.catalog.host, self.catalog.port)
    }
}

impl SinkConnector for StarRocksSettings {
    type Sink = StarRocksSink;

    async fn connect(
        &self,
        metrics: Arc<SinkMetrics>,
        cancel: CancellationToken,
    ) -> Result<StarRocksSink, SinkError> {
        StarRocksSink::connect(self.clone(), metrics, cancel)
            .await
            .map_err(|e| {
                StarRocksError::from(SinkSetupError::SrConnect {
                    endpoint: self.endpoint(),
                    detail: e.to_string(),
                })
                .into()
            })
    }

    fn truncate_mode(&self) -> TruncateMode {
        self.truncate
    }
}

struct TableState {
    sink: SinkTable,
    codec: Option<Arc<TableCodec>>,
}

/// The sink.
pub struct StarRocksSink {
    settings: StarRocksSettings,
    loader: StreamLoader,
    catalog: Catalog,
    tables: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<TableState>>>>,
    metrics: Arc<SinkMetrics>,
    nonce: AtomicU64,
}

impl StarRocksSink {
    /// Connects the MySQL side; HTTP connections are opened per load.
    pub async fn connect(
        settings: StarRocksSettings,
        metrics: Arc<SinkMetrics>,
        cancel: CancellationToken,
    ) -> Result<Self, catalog::CatalogError> {
        let catalog = Catalog::connect(&settings.catalog).await?;
        Ok(StarRocksSink {
            loader: StreamLoader::new(&settings, metrics.clone(), cancel),
            settings,
            catalog,
            tables: std::sync::Mutex::new(HashMap::new()),
            metrics,
            nonce: AtomicU64::new(u64::try_from(unix_micros()).unwrap_or(1)),
        })
    }

    /// Registers a sink table as setup found it.
    fn register_table(&self, name: &str, table: SinkTable) {
        if let Ok(mut t) = self.tables.lock() {
            t.insert(
                name.to_owned(),
                Arc::new(tokio::sync::Mutex::new(TableState {
                    sink: table,
                    codec: None,
                })),
            );
        }
    }

    fn table_state(
        &self,
        name: &str,
    ) -> Result<Arc<tokio::sync::Mutex<TableState>>, StarRocksError> {
        self.tables
            .lock()
            .ok()
            .and_then(|t| t.get(name).cloned())
            .ok_or_else(|| StarRocksError::NotPrepared(name.to_owned()))
    }

    /// Adds missing columns for `schema` and returns its codec.
    async fn codec(
        &self,
        st: &mut TableState,
        schema: &Arc<TableSchema>,
    ) -> Result<Arc<TableCodec>, StarRocksError> {
        if let Some(c) = &st.codec {
            if Arc::ptr_eq(c.schema(), schema) {
                return Ok(c.clone());
            }
        }
        let table = &schema.spec.sink_table;
        let missing: Vec<(String, String)> = schema
            .columns
            .iter()
            .filter(|c| st.sink.column(&c.name).is_none())
            .map(|c| (c.name.clone(), starrocks_type(c)))
            .collect();
        if !missing.is_empty() {
            self.catalog.add_columns(table, &missing).await?;
            st.sink = self
                .catalog
                .table(table)
                .await?
                .ok_or_else(|| StarRocksError::Disappeared(table.clone()))?;
        }
        let codec = Arc::new(TableCodec::new(schema.clone(), &st.sink));
        st.codec = Some(codec.clone());
        Ok(codec)
    }

    async fn load_table(
        &self,
        batch: Arc<Batch>,
        ti: usize,
        audit: AuditValues,
    ) -> Result<SinkAck, SinkError> {
        let tb = &batch.tables[ti];
        let st_arc = self.table_state(&tb.sink_table)?;
        let mut st = st_arc.lock().await;
        let mut ack = SinkAck::default();
        let mut nonce = None;
        for (si, seg) in tb.segments.iter().enumerate() {
            match seg {
                Segment::Rows(rs) => {
                    let codec = self.codec(&mut st, &rs.schema).await?;
                    let mode = self.settings.delete_mode;
                    let b = batch.clone();
                    let audit = audit.clone();
                    let loads = tokio::task::spawn_blocking(move || {
                        let Segment::Rows(rs) = &b.tables[ti].segments[si] else {
                            return Ok(Vec::new());
                        };
                        encode_segment(&codec, rs, mode, &audit)
                    })
                    .await
                    .map_err(|e| StarRocksError::Task(e.to_string()))?
                    .map_err(StarRocksError::Encode)?;
                    for (pi, load) in loads.into_iter().enumerate() {
                        let label = labels::make(&LabelParts {
                            prefix: &self.settings.label_prefix,
                            job: &self.settings.job_id,
                            table: &tb.sink_table,
                            first: batch.first_commit,
                            last: batch.last_commit,
                            segment: si,
                            part: pi,
                            nonce,
                        });
                        ack.rows += load.rows as u64;
                        ack.retries += self.loader.load(&tb.sink_table, &label, load).await?;
                        ack.loads += 1;
                        fail::fail_point!("sink::between_loads", |a| Err(
                            StarRocksError::FaultInjected(crate::failpoint::hit(
                                "sink::between_loads",
                                a
                            ))
                            .into()
                        ));
                    }
                }
                Segment::Truncate { version, .. } => {
                    let v = i64::try_from(version.0).unwrap_or(i64::MAX);
                    match self.settings.truncate {
                        TruncateMode::Apply => self.catalog.truncate(&tb.sink_table).await,
                        TruncateMode::Soft => {
                            self.catalog
                                .soft_truncate(&tb.sink_table, v, &audit.synced_at)
                                .await
                        }
                        TruncateMode::Fail => {
                            return Err(StarRocksError::TruncateRejected(tb.table.clone()).into())
                        }
                    }
                    .map_err(StarRocksError::from)?;
                    tracing::info!(table = %tb.table, mode = ?self.settings.truncate, "TRUNCATE applied");
                    nonce = Some(self.nonce.fetch_add(1, Ordering::Relaxed));
                }
            }
        }
        self.metrics
            .add_table_counts(&tb.table, &TableCounters::from(&tb.counts));
        Ok(ack)
    }
}

impl Sink for StarRocksSink {
    async fn prepare(&self, tables: &[SourceTable]) -> Result<(), SinkError> {
        let prepared = setup::setup(&self.catalog, &self.settings.endpoint(), tables)
            .await
            .map_err(StarRocksError::from)?;
        for (name, t) in prepared {
            self.register_table(&name, t);
        }
        Ok(())
    }

    async fn push_batch(&self, batch: Arc<Batch>) -> Result<SinkAck, SinkError> {
        let audit = AuditValues {
            synced_at: format_utc_micros(unix_micros()),
        };
        let futs =
            (0..batch.tables.len()).map(|ti| self.load_table(batch.clone(), ti, audit.clone()));
        let results = futures_util::future::join_all(futs).await;
        let mut ack = SinkAck::default();
        let mut transient = None;
        for r in results {
            match r {
                Ok(a) => {
                    ack.loads += a.loads;
                    ack.rows += a.rows;
                    ack.retries += a.retries;
                }
                Err(e) if e.kind() == Some(crate::error::ErrorKind::Definite) => return Err(e),
                Err(e) => transient = Some(e),
            }
        }
        match transient {
            Some(e) => Err(e),
            None => Ok(ack),
        }
    }

    async fn apply_schema(&self, schema: &Arc<TableSchema>) -> Result<(), SinkError> {
        let st_arc = self.table_state(&schema.spec.sink_table)?;
        let mut st = st_arc.lock().await;
        self.codec(&mut st, schema).await?;
        Ok(())
    }
}

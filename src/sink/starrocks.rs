//! The StarRocks sink: one Stream Load per (table, segment, row shape).
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
//! - Labels are deterministic ([`super::label`]). A retry always re-uses the label:
//!   "Label Already Exists" with a FINISHED job is success, a RUNNING one is waited
//!   for through `get_load_state`, anything unknown is re-sent with the same label.
//!   After a TRUNCATE in the same batch the labels get a per-attempt nonce, because
//!   a replayed TRUNCATE empties the table again and the loads after it must really
//!   run again.
//! - Values are checked against their sink column before a load ([`super::fit`]);
//!   `strict_mode=true` makes a value StarRocks cannot convert fail the load instead
//!   of becoming NULL.
//! - `max_filter_ratio=0`: a filtered row fails the load; the error carries the first
//!   lines of the ErrorURL log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::catalog::{starrocks_type, Catalog, CatalogError, CatalogSettings, SinkTable};
use super::curl_loader::{HttpClient, HttpError, HttpSettings};
use super::encode::{
    encode_segment, format_utc_micros, AuditValues, DeleteMode, EncodedLoad, TableCodec,
    CDC_VERSION,
};
use super::label::{self, LabelParts};
use super::response::{self, classify_failure, FailureKind, LoadStatus};
use super::{Sink, SinkAck, SinkError};
use crate::grpc::state::{unix_micros, SharedState, TableCounters};
use crate::pipeline::batch::{Batch, Segment};
use crate::pipeline::schema_cache::TableSchema;
use crate::pipeline::TruncatePolicy;

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
    pub password: String,
    /// Label prefix.
    pub label_prefix: String,
    /// Job id (part of every label).
    pub job_id: String,
    /// Delete handling.
    pub delete_mode: DeleteMode,
    /// TRUNCATE handling.
    pub truncate: TruncatePolicy,
    /// Stream Load `timeout` (seconds) and the HTTP request timeout.
    pub load_timeout: Duration,
    /// MySQL-protocol connection.
    pub catalog: CatalogSettings,
}

struct TableState {
    sink: SinkTable,
    codec: Option<Arc<TableCodec>>,
}

/// The sink.
pub struct StarRocksSink {
    settings: StarRocksSettings,
    http: Arc<HttpClient>,
    catalog: Catalog,
    tables: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<TableState>>>>,
    state: Arc<SharedState>,
    cancel: CancellationToken,
    nonce: AtomicU64,
}

enum Attempt {
    Done,
    Retry(String),
    Definite(String),
}

/// Give up on a load after this many consecutive failures dbmazz cannot classify.
const MAX_UNKNOWN_FAILURES: u32 = 10;

impl StarRocksSink {
    /// Connects the MySQL side; HTTP connections are opened per load.
    pub async fn connect(
        settings: StarRocksSettings,
        state: Arc<SharedState>,
        cancel: CancellationToken,
    ) -> Result<Self, CatalogError> {
        let catalog = Catalog::connect(&settings.catalog).await?;
        let http = Arc::new(HttpClient::new(HttpSettings {
            user: settings.user.clone(),
            password: settings.password.clone(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: settings.load_timeout + Duration::from_secs(30),
            expect_timeout: Duration::from_secs(10),
            reuse_connections: true,
        }));
        Ok(StarRocksSink {
            settings,
            http,
            catalog,
            tables: std::sync::Mutex::new(HashMap::new()),
            state,
            cancel,
            nonce: AtomicU64::new(u64::try_from(unix_micros()).unwrap_or(1)),
        })
    }

    /// The catalog connection (setup uses it).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Registers a sink table as setup found it.
    pub fn register_table(&self, name: &str, table: SinkTable) {
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

    fn table_state(&self, name: &str) -> Result<Arc<tokio::sync::Mutex<TableState>>, SinkError> {
        self.tables
            .lock()
            .ok()
            .and_then(|t| t.get(name).cloned())
            .ok_or_else(|| {
                SinkError::Definite(format!("sink table '{name}' was not prepared by setup"))
            })
    }

    fn catalog_error(e: CatalogError) -> SinkError {
        if e.is_transient() {
            SinkError::Transient(e.to_string())
        } else {
            SinkError::Definite(e.to_string())
        }
    }

    /// Adds missing columns for `schema` and returns its codec.
    async fn codec(
        &self,
        st: &mut TableState,
        schema: &Arc<TableSchema>,
    ) -> Result<Arc<TableCodec>, SinkError> {
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
            self.catalog
                .add_columns(table, &missing)
                .await
                .map_err(Self::catalog_error)?;
            st.sink = self
                .catalog
                .table(table)
                .await
                .map_err(Self::catalog_error)?
                .ok_or_else(|| SinkError::Definite(format!("sink table '{table}' disappeared")))?;
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
                    .map_err(|e| SinkError::Definite(format!("encoder task failed: {e}")))?
                    .map_err(|e| SinkError::Definite(e.to_string()))?;
                    for (pi, load) in loads.into_iter().enumerate() {
                        let label = label::make(&LabelParts {
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
                        ack.retries += self.load(&tb.sink_table, &label, load).await?;
                        ack.loads += 1;
                        fail::fail_point!("sink::between_loads", |a| Err(SinkError::Definite(
                            crate::failpoint::hit("sink::between_loads", a)
                        )));
                    }
                }
                Segment::Truncate { version, .. } => {
                    let v = i64::try_from(version.0).unwrap_or(i64::MAX);
                    match self.settings.truncate {
                        TruncatePolicy::Apply => self.catalog.truncate(&tb.sink_table).await,
                        TruncatePolicy::Soft => {
                            self.catalog
                                .soft_truncate(&tb.sink_table, v, &audit.synced_at)
                                .await
                        }
                        TruncatePolicy::Fail => {
                            return Err(SinkError::Definite(format!(
                                "TRUNCATE of {} reached the sink with DBMAZZ_TRUNCATE_MODE=fail",
                                tb.table
                            )))
                        }
                    }
                    .map_err(Self::catalog_error)?;
                    tracing::info!(table = %tb.table, mode = ?self.settings.truncate, "TRUNCATE applied");
                    nonce = Some(self.nonce.fetch_add(1, Ordering::Relaxed));
                }
            }
        }
        self.state.add_table_counts(
            &tb.table,
            &TableCounters {
                inserts: tb.counts.inserts,
                updates: tb.counts.updates,
                deletes: tb.counts.deletes,
                truncates: tb.counts.truncates,
            },
        );
        Ok(ack)
    }

    fn fe_url(&self, segments: &[&str]) -> String {
        let mut u = match url::Url::parse(&self.settings.fe_url) {
            Ok(u) => u,
            // The configuration validated SINK_URL; keep a readable fallback anyway.
            Err(_) => return format!("{}/{}", self.settings.fe_url, segments.join("/")),
        };
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u.to_string()
    }

    fn load_url(&self, table: &str) -> String {
        self.fe_url(&["api", &self.settings.database, table, "_stream_load"])
    }

    /// Runs one load until it is durable; returns the number of retries.
    async fn load(&self, table: &str, label: &str, load: EncodedLoad) -> Result<u64, SinkError> {
        let url = self.load_url(table);
        let mut headers = vec![
            ("label".to_owned(), label.to_owned()),
            ("format".to_owned(), "json".to_owned()),
            ("strip_outer_array".to_owned(), "true".to_owned()),
            ("ignore_json_size".to_owned(), "true".to_owned()),
            ("columns".to_owned(), load.columns.clone()),
            ("max_filter_ratio".to_owned(), "0".to_owned()),
            // A value the column cannot hold fails the load instead of becoming NULL.
            ("strict_mode".to_owned(), "true".to_owned()),
            ("merge_condition".to_owned(), CDC_VERSION.to_owned()),
            (
                "timeout".to_owned(),
                self.settings.load_timeout.as_secs().max(1).to_string(),
            ),
        ];
        if load.partial {
            headers.push(("partial_update".to_owned(), "true".to_owned()));
            headers.push(("partial_update_mode".to_owned(), "row".to_owned()));
        }
        let body = Arc::new(load.body);
        let mut retries = 0u64;
        let mut unknown = 0u32;
        let mut attempt = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                return Err(SinkError::Cancelled);
            }
            attempt += 1;
            match self
                .attempt(&url, &headers, &body, label, &mut unknown)
                .await
            {
                Attempt::Done => {
                    self.state.loads_ok.fetch_add(1, Ordering::Relaxed);
                    self.state
                        .rows_loaded
                        .fetch_add(load.rows as u64, Ordering::Relaxed);
                    return Ok(retries);
                }
                Attempt::Definite(msg) => {
                    self.state.loads_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(SinkError::Definite(format!(
                        "Stream Load into {}.{table} (label {label}) failed: {msg}",
                        self.settings.database
                    )));
                }
                Attempt::Retry(msg) => {
                    retries += 1;
                    self.state.loads_retried.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(attempt);
                    tracing::warn!(table, label, attempt, wait_ms = wait.as_millis() as u64, error = %msg, "Stream Load will be retried with the same label");
                    self.state
                        .record_error(format!("Stream Load into {table} retrying: {msg}"));
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Err(SinkError::Cancelled),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&HttpClient) -> Result<T, HttpError> + Send + 'static,
    ) -> Result<T, String> {
        let http = self.http.clone();
        match tokio::task::spawn_blocking(move || f(&http)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("HTTP task failed: {e}")),
        }
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Arc<Vec<u8>>,
        label: &str,
        unknown: &mut u32,
    ) -> Attempt {
        let (u, h, b) = (url.to_owned(), headers.to_vec(), body.clone());
        let reply = match self.blocking(move |http| http.put(&u, &h, b)).await {
            Ok(r) => r,
            Err(e) => {
                return self
                    .unknown_outcome(label, format!("{e} (outcome unknown)"))
                    .await
            }
        };
        match reply.status {
            200 => {}
            401 | 403 => {
                return Attempt::Definite(format!(
                    "HTTP {} from {}: authentication failed for user '{}'; check SINK_USER and SINK_PASSWORD",
                    reply.status, reply.url, self.settings.user
                ))
            }
            404 => {
                return Attempt::Definite(format!(
                    "HTTP 404 from {}: no Stream Load endpoint there; check SINK_URL points at the StarRocks FE HTTP port (8030)",
                    reply.url
                ))
            }
            s => return Attempt::Retry(format!("HTTP {s} from {}", reply.url)),
        }
        let parsed = match response::parse(&reply.body) {
            Ok(p) => p,
            Err(e) => return Attempt::Retry(format!("{e} (outcome unknown)")),
        };
        match parsed.status {
            LoadStatus::Success => {
                if parsed.filtered_rows > 0 {
                    let log = self.error_log(parsed.error_url.as_deref()).await;
                    return Attempt::Definite(format!(
                        "{} of {} rows were filtered (rejected by StarRocks){log}",
                        parsed.filtered_rows, parsed.total_rows
                    ));
                }
                *unknown = 0;
                Attempt::Done
            }
            LoadStatus::PublishTimeout => self.confirm_label(label, "Publish Timeout").await,
            LoadStatus::LabelExists { existing } => {
                if existing.eq_ignore_ascii_case("FINISHED") {
                    tracing::info!(label, "label already loaded: batch was applied before");
                    Attempt::Done
                } else {
                    self.confirm_label(label, &format!("label exists ({existing})"))
                        .await
                }
            }
            LoadStatus::Fail => {
                let kind = classify_failure(&parsed.message);
                match kind {
                    FailureKind::Data => {
                        let log = self.error_log(parsed.error_url.as_deref()).await;
                        Attempt::Definite(format!("{}{log}", parsed.message))
                    }
                    FailureKind::Config => Attempt::Definite(parsed.message),
                    FailureKind::Transient => Attempt::Retry(parsed.message),
                    FailureKind::Unknown => {
                        *unknown += 1;
                        if *unknown >= MAX_UNKNOWN_FAILURES {
                            Attempt::Definite(format!(
                                "{} (failed {MAX_UNKNOWN_FAILURES} times in a row)",
                                parsed.message
                            ))
                        } else {
                            Attempt::Retry(parsed.message)
                        }
                    }
                }
            }
            LoadStatus::Other(s) => {
                *unknown += 1;
                if *unknown >= MAX_UNKNOWN_FAILURES {
                    Attempt::Definite(format!("unknown Status {s:?}: {}", parsed.message))
                } else {
                    Attempt::Retry(format!("unknown Status {s:?}: {}", parsed.message))
                }
            }
        }
    }

    /// The request failed without a usable answer (connection reset, broken pipe
    /// while the server had already answered, timeout): the load may or may not have
    /// been applied. The label state decides, not a guess: committed → done, running
    /// → wait for it, unknown or aborted → re-send with the same label. Without this,
    /// a server that answers `Label Already Exists` early and closes the connection
    /// while the body is still being sent would be retried forever.
    async fn unknown_outcome(&self, label: &str, why: String) -> Attempt {
        let url = format!(
            "{}?label={}",
            self.fe_url(&["api", &self.settings.database, "get_load_state"]),
            url_query(label)
        );
        let state = match self.blocking(move |http| http.get(&url)).await {
            Ok(r) if r.status == 200 => response::parse_label_state(&r.body).ok(),
            _ => None,
        };
        match state.as_deref() {
            Some("VISIBLE" | "COMMITTED" | "FINISHED") => {
                tracing::info!(label, error = %why, "the answer was lost but the label is committed: the load was applied");
                Attempt::Done
            }
            Some("RUNNING" | "PREPARE" | "PREPARED" | "PREPARING") => {
                self.confirm_label(label, &why).await
            }
            _ => Attempt::Retry(why),
        }
    }

    /// Polls the label until its transaction is final: committed → done, aborted or
    /// unknown → re-send with the same label.
    async fn confirm_label(&self, label: &str, why: &str) -> Attempt {
        let url = format!(
            "{}?label={}",
            self.fe_url(&["api", &self.settings.database, "get_load_state"]),
            url_query(label)
        );
        for i in 0..60u32 {
            if self.cancel.is_cancelled() {
                return Attempt::Retry("cancelled while checking the label".into());
            }
            let u = url.clone();
            match self.blocking(move |http| http.get(&u)).await {
                Ok(r) if r.status == 200 => match response::parse_label_state(&r.body) {
                    Ok(state) => match state.as_str() {
                        "VISIBLE" | "COMMITTED" | "FINISHED" => {
                            tracing::info!(label, %state, why, "label state: the load was applied once");
                            return Attempt::Done;
                        }
                        "ABORTED" | "UNKNOWN" | "CANCELLED" => {
                            return Attempt::Retry(format!(
                                "{why}; label state {state}: re-sending"
                            ))
                        }
                        _ => {}
                    },
                    Err(e) => tracing::warn!(label, error = %e, "label state unreadable"),
                },
                Ok(r) => tracing::warn!(label, status = r.status, "label state query failed"),
                Err(e) => tracing::warn!(label, error = %e, "label state query failed"),
            }
            tokio::time::sleep(backoff(i + 1).min(Duration::from_secs(2))).await;
        }
        Attempt::Retry(format!("{why}; label still not final"))
    }

    async fn error_log(&self, url: Option<&str>) -> String {
        let Some(url) = url else { return String::new() };
        let u = url.to_owned();
        match self.blocking(move |http| http.get(&u)).await {
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body[..r.body.len().min(1024)]).into_owned();
                format!("; rejected rows ({url}): {text}")
            }
            Err(e) => format!("; error log at {url} unreadable: {e}"),
        }
    }
}

/// Form-encodes a query value.
fn url_query(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Exponential back-off with jitter: 200 ms doubling to 30 s, each wait 50–100 %.
pub fn backoff(attempt: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(8))
        .min(30_000);
    let jitter = rand::random_range(0.5..=1.0);
    Duration::from_millis((base as f64 * jitter) as u64)
}

impl Sink for StarRocksSink {
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
                Err(e @ SinkError::Definite(_)) => return Err(e),
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
        self.codec(&mut st, schema).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(1) >= Duration::from_millis(100));
        assert!(backoff(30) <= Duration::from_secs(30));
        assert!(backoff(30) >= Duration::from_secs(15));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url_query("a b&c"), "a+b%26c");
    }
}

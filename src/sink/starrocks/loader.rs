//! One Stream Load, driven until it is durable: the request, the reply, and what a
//! lost or ambiguous reply means.
//!
//! ```text
//! PUT /api/{db}/{table}/_stream_load (label, merge_condition, strict_mode, …)
//!   ├─ Success ─────────────────────────────────────▶ done (filtered rows: error)
//!   ├─ Label Already Exists: FINISHED ──────────────▶ done (applied before)
//!   ├─ Publish Timeout / label RUNNING ─▶ poll get_load_state until final
//!   ├─ no usable answer ─▶ get_load_state: committed → done, running → poll, else re-send
//!   └─ Fail ─▶ classify the message: data/config → definite, transient → re-send
//! ```
//!
//! A retry always re-uses the label (design rule 5), so StarRocks applies a load at
//! most once whatever happened to the replies.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::encode::EncodedLoad;
use super::error::StarRocksError;
use super::http::{HttpClient, HttpError, HttpSettings};
use super::response::{self, classify_failure, FailureKind, LoadStatus};
use super::table::CDC_VERSION;
use super::StarRocksSettings;
use crate::error::backoff;
use crate::sink::metrics::SinkMetrics;
use crate::sink::SinkError;

enum Attempt {
    Done,
    Retry(String),
    Definite(String),
}

/// Give up on a load after this many consecutive failures dbmazz cannot classify.
const MAX_UNKNOWN_FAILURES: u32 = 10;

/// Sends Stream Loads for one sink.
pub(super) struct StreamLoader {
    http: Arc<HttpClient>,
    fe_url: String,
    database: String,
    user: String,
    load_timeout: Duration,
    metrics: Arc<SinkMetrics>,
    cancel: CancellationToken,
}

impl StreamLoader {
    /// A loader for `settings`; HTTP connections are opened per load and reused
    /// where the server allows.
    pub(super) fn new(
        settings: &StarRocksSettings,
        metrics: Arc<SinkMetrics>,
        cancel: CancellationToken,
    ) -> Self {
        StreamLoader {
            http: Arc::new(HttpClient::new(HttpSettings {
                user: settings.user.clone(),
                password: settings.password.clone(),
                connect_timeout: Duration::from_secs(10),
                request_timeout: settings.load_timeout + Duration::from_secs(30),
                expect_timeout: Duration::from_secs(10),
                reuse_connections: true,
            })),
            fe_url: settings.fe_url.clone(),
            database: settings.database.clone(),
            user: settings.user.clone(),
            load_timeout: settings.load_timeout,
            metrics,
            cancel,
        }
    }

    fn fe_path(&self, segments: &[&str]) -> String {
        let mut u = match url::Url::parse(&self.fe_url) {
            Ok(u) => u,
            // The configuration validated SINK_URL; keep a readable fallback anyway.
            Err(_) => return format!("{}/{}", self.fe_url, segments.join("/")),
        };
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u.to_string()
    }

    fn load_url(&self, table: &str) -> String {
        self.fe_path(&["api", &self.database, table, "_stream_load"])
    }

    /// Runs one load until it is durable; returns the number of retries.
    pub(super) async fn load(
        &self,
        table: &str,
        label: &str,
        load: EncodedLoad,
    ) -> Result<u64, SinkError> {
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
                self.load_timeout.as_secs().max(1).to_string(),
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
                    self.metrics.loads_ok.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .rows_loaded
                        .fetch_add(load.rows as u64, Ordering::Relaxed);
                    return Ok(retries);
                }
                Attempt::Definite(detail) => {
                    self.metrics.loads_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(StarRocksError::Load {
                        database: self.database.clone(),
                        table: table.to_owned(),
                        label: label.to_owned(),
                        detail,
                    }
                    .into());
                }
                Attempt::Retry(msg) => {
                    retries += 1;
                    self.metrics.loads_retried.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(attempt);
                    tracing::warn!(table, label, attempt, wait_ms = wait.as_millis() as u64, error = %msg, "Stream Load will be retried with the same label");
                    self.metrics
                        .last_retry
                        .record(format!("Stream Load into {table} retrying: {msg}"));
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
                    reply.status, reply.url, self.user
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
            self.fe_path(&["api", &self.database, "get_load_state"]),
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
            self.fe_path(&["api", &self.database, "get_load_state"]),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url_query("a b&c"), "a+b%26c");
    }
}

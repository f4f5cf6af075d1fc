//! The BE HTTP port: runs Stream Loads and transaction operations, serves error logs.
//!
//! A Stream Load goes through the steps of the StarRocks BE, in order, and every
//! rejection before step 6 is sent without reading the body (no `100 Continue`):
//!
//! 1. `Authorization` must be present ("no valid Basic authorization", HTTP 200);
//! 2. header checks (merge commit, body size, format, JSON size, timeout);
//! 3. begin the transaction on the "FE": credentials, database/table, label
//!    (`Label Already Exists`), running-transaction limit;
//! 4. plan: the remaining headers against the table (errors abort the transaction);
//! 5. read the body (this sends `100 Continue`), with the load timeout;
//! 6. scan and convert rows; check `max_filter_ratio`;
//! 7. apply all rows and mark the label VISIBLE in one MariaDB transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::apply::{apply, decode_batch, encode_batch};
use crate::faults::{DelayPhase, FaultKind, OpKind, Outcome, Site, Target};
use crate::params::{self, BodyLimits, Headers, LoadPlan};
use crate::response::{LoadResult, LoadStatus, TxnOp, TxnResp};
use crate::rows::{scan_with, Batch};
use crate::schema::{SchemaError, TableSchema};
use crate::server::{
    basic_auth, headers_of, json_ok, not_found, query_param, read_body, respond, segments,
    BodyError, DropConnection, HandlerResult, Shared,
};
use crate::stats::Rows;
use crate::store::{now_ms, rc, BeginError, Txn, TxnKind, TxnState};

/// Handles one BE request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HandlerResult {
    let seg = segments(&req);
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["api", "_load_error_log"] => Ok(error_log(&shared, &req).await),
        ["api", "transaction", op] => {
            let op = op.to_ascii_lowercase();
            txn(shared, req, &op).await
        }
        ["api", db, table, "_stream_load"] => {
            let (db, table) = ((*db).to_owned(), (*table).to_owned());
            if req.method() != Method::PUT {
                return Ok(respond(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain",
                    "Unsupported method",
                ));
            }
            stream_load(shared, req, &db, &table).await
        }
        _ => Ok(not_found()),
    }
}

async fn error_log(
    shared: &Shared,
    req: &Request<Incoming>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let Some(file) = query_param(req, "file") else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "missing file parameter",
        );
    };
    match shared.store.error_log(&file).await {
        Ok(Some(c)) => respond(StatusCode::OK, "text/plain; charset=utf-8", c),
        Ok(None) => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("error log {file} not found"),
        ),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

fn limits(shared: &Shared) -> BodyLimits {
    BodyLimits {
        max_body: shared.cfg.max_body_mb.saturating_mul(1024 * 1024),
        max_json: shared.cfg.max_json_mb.saturating_mul(1024 * 1024),
    }
}

fn content_length(h: &Headers) -> Option<u64> {
    h.get("content-length").and_then(|v| v.trim().parse().ok())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A generated label (when the request has none), like the BE's UUID.
fn generated_label() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (h >> 96) as u32,
        (h >> 80) as u16,
        (h >> 64) as u16,
        (h >> 48) as u16,
        (h as u64) & 0xFFFF_FFFF_FFFF
    )
}

fn ratio_exceeded(total: u64, filtered: u64, max_ratio: f64) -> bool {
    total > 0 && (filtered as f64 / total as f64) > max_ratio
}

/// Outcome of applying a batch.
enum ApplyOutcome {
    Applied { filtered: u64, errors: Vec<String> },
    TooManyFiltered { filtered: u64, errors: Vec<String> },
    Aborted(String),
}

/// Applies a batch in one MariaDB transaction together with the label's state change
/// (retrying on deadlocks). `txn` is None in discard mode.
#[allow(clippy::too_many_arguments)]
async fn apply_load(
    shared: &Shared,
    schema: &TableSchema,
    plan: &LoadPlan,
    batch: &Batch<'_>,
    txn: &Txn,
    from: TxnState,
    visible_at: Option<i64>,
    counts: (u64, u64, u64),
    error_log: &str,
) -> Result<ApplyOutcome, String> {
    let lock = shared.table_lock(&schema.db, &schema.table);
    let _guard = lock.lock().await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = apply_once(
            shared, schema, plan, batch, txn, from, visible_at, counts, error_log,
        )
        .await;
        match r {
            Err(mysql_async::Error::Server(e))
                if (e.code == 1213 || e.code == 1205) && attempt < 5 =>
            {
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => return Err(format!("applying the rows in MariaDB failed: {e}")),
            Ok(o) => return Ok(o),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_once(
    shared: &Shared,
    schema: &TableSchema,
    plan: &LoadPlan,
    batch: &Batch<'_>,
    txn: &Txn,
    from: TxnState,
    visible_at: Option<i64>,
    counts: (u64, u64, u64),
    error_log: &str,
) -> Result<ApplyOutcome, mysql_async::Error> {
    let mut conn = shared.store.pool().get_conn().await?;
    let mut tx = conn.start_transaction(rc()).await?;
    let (total, filtered, bytes) = counts;
    let mut extra = 0;
    let r = apply(&mut tx, schema, plan, batch, |e| {
        extra = e;
        !ratio_exceeded(total, filtered + e, plan.max_filter_ratio)
    })
    .await?;
    let Some(applied) = r else {
        tx.rollback().await?;
        return Ok(ApplyOutcome::TooManyFiltered {
            filtered: filtered + extra,
            errors: Vec::new(),
        });
    };
    let has_errors = filtered + applied.filtered > 0;
    let log = has_errors.then_some(error_log);
    let ok = shared
        .store
        .finish_in(
            &mut tx,
            txn.txn_id,
            from,
            visible_at,
            (total, filtered + applied.filtered, bytes),
            log,
        )
        .await
        .map_err(|e| mysql_async::Error::Other(e.to_string().into()))?;
    if !ok {
        tx.rollback().await?;
        let reason = match shared.store.get(&txn.db, &txn.label).await {
            Ok(Some(t)) => t
                .reason
                .unwrap_or_else(|| format!("transaction is {}", t.state.name())),
            _ => "transaction not found".to_owned(),
        };
        return Ok(ApplyOutcome::Aborted(reason));
    }
    tx.commit().await?;
    Ok(ApplyOutcome::Applied {
        filtered: applied.filtered,
        errors: applied.errors,
    })
}

fn error_log_name(txn_id: i64) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("error_log_{txn_id:016x}_{n:08x}")
}

async fn save_errors(shared: &Shared, name: &str, lines: &[String]) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let mut content = lines.join("\n");
    content.push('\n');
    match shared.store.save_error_log(name, &content).await {
        Ok(()) => Some(format!(
            "{}/api/_load_error_log?file={name}",
            shared.be_base()
        )),
        Err(e) => {
            tracing::warn!(error = %e, "saving an error log failed");
            None
        }
    }
}

fn schema_message(e: &SchemaError) -> String {
    e.to_string()
}

/// Runs one Stream Load.
async fn stream_load(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    db: &str,
    table: &str,
) -> HandlerResult {
    let started = Instant::now();
    let h = headers_of(&req);
    let label = h
        .get("label")
        .filter(|l| !l.is_empty())
        .cloned()
        .unwrap_or_else(generated_label);
    let fault = shared.fault(Target {
        site: Site::Be,
        op: OpKind::StreamLoad,
        db,
        table,
        label: &label,
    });
    let fail = |msg: String| Ok(json_ok(LoadResult::fail(&label, msg).to_json()));
    let record_fail = |shared: &Shared| {
        shared.with_stats(|s| {
            s.record(
                &format!("{db}.{table}"),
                &label,
                false,
                Rows {
                    total: 0,
                    loaded: 0,
                    filtered: 0,
                    bytes: 0,
                },
                started.elapsed(),
            )
        })
    };

    // 1. Authorization present.
    let auth = if matches!(fault, Some(FaultKind::BeIgnoresAuth)) {
        None
    } else {
        basic_auth(&h)
    };
    let Some((user, password)) = auth else {
        record_fail(&shared);
        return fail("no valid Basic authorization".into());
    };
    // Injected answers that need nothing else.
    match &fault {
        Some(FaultKind::HttpStatus { status, body, .. }) => {
            record_fail(&shared);
            return Ok(respond(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "text/plain",
                body.clone(),
            ));
        }
        Some(FaultKind::Fail { message }) => {
            record_fail(&shared);
            return fail(message.clone());
        }
        Some(FaultKind::LabelAlreadyExists {
            existing_job_status,
        }) => {
            record_fail(&shared);
            return Ok(json_ok(
                LoadResult::new(
                    &label,
                    LoadStatus::LabelAlreadyExists(existing_job_status.clone()),
                    format!("Label [{label}] has already been used."),
                )
                .to_json(),
            ));
        }
        _ => {}
    }
    // 2. Header checks.
    let early = match params::early(&h, content_length(&h), limits(&shared)) {
        Ok(e) => e,
        Err(m) => {
            record_fail(&shared);
            return fail(m);
        }
    };
    // 3. Begin the transaction.
    if !shared.valid_user(&user, &password) {
        record_fail(&shared);
        return fail(format!(
            "Access denied for user '{user}'. Please check the username and password."
        ));
    }
    if let Err(m) = params::check_label(&label) {
        record_fail(&shared);
        return fail(m);
    }
    let schema = match shared.schema(db, table).await {
        Ok(s) => s,
        Err(e) => {
            record_fail(&shared);
            return fail(schema_message(&e));
        }
    };
    let timeout_s = early
        .timeout_s
        .map_or(shared.cfg.default_timeout_s, u64::from);
    if !(1..=259_200).contains(&timeout_s) {
        record_fail(&shared);
        return fail(format!(
            "Invalid timeout: '{timeout_s}'. Expected values should be between 1 and 259200 seconds"
        ));
    }
    let begin_at = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
    let txn = if shared.cfg.discard {
        None
    } else {
        match shared
            .store
            .begin(
                db,
                &label,
                table,
                TxnKind::Stream,
                i64::try_from(timeout_s * 1000).unwrap_or(i64::MAX),
                None,
                shared.cfg.max_running_txn_per_db,
            )
            .await
        {
            Ok(t) => Some(t),
            Err(BeginError::LabelExists(_, status)) => {
                record_fail(&shared);
                return Ok(json_ok(
                    LoadResult::new(
                        &label,
                        LoadStatus::LabelAlreadyExists(status.to_owned()),
                        format!("Label [{label}] has already been used."),
                    )
                    .to_json(),
                ));
            }
            Err(BeginError::TooMany(m)) => {
                record_fail(&shared);
                return fail(m);
            }
            Err(BeginError::Store(e)) => {
                record_fail(&shared);
                return fail(e.to_string());
            }
        }
    };
    let begin_ms = ms(begin_at.elapsed());
    let txn_id = txn.as_ref().map_or(-1, |t| t.txn_id);
    let abort_id = txn.as_ref().map(|t| t.txn_id);
    let abort = |reason: &str| {
        let shared = shared.clone();
        let reason = reason.to_owned();
        async move {
            if let Some(id) = abort_id {
                if let Err(e) = shared
                    .store
                    .set_state(id, TxnState::Prepare, TxnState::Aborted, &reason)
                    .await
                {
                    tracing::warn!(error = %e, "aborting a transaction failed");
                }
            }
        }
    };
    let mut res = LoadResult::new(&label, LoadStatus::Fail, "");
    res.txn_id = txn_id;
    res.begin_ms = begin_ms;
    // 4. Plan.
    let plan_at = Instant::now();
    let plan = match params::plan(&h, early.format, &schema) {
        Ok(p) => p,
        Err(m) => {
            abort(&m).await;
            record_fail(&shared);
            res.message = m;
            return Ok(json_ok(res.to_json()));
        }
    };
    res.plan_ms = ms(plan_at.elapsed());
    // 5. Body (a slow `100 Continue` is injected here, after the transaction began).
    if let Some(FaultKind::Delay {
        ms,
        phase: DelayPhase::BeforeContinue,
        ..
    }) = &fault
    {
        tokio::time::sleep(Duration::from_millis(*ms)).await;
    }
    let read_at = Instant::now();
    let limit = if early.format == params::Format::Json
        && !h
            .get("ignore_json_size")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        limits(&shared).max_json
    } else {
        limits(&shared).max_body
    };
    let drop_after = match &fault {
        Some(FaultKind::DropMidBody { after_bytes }) => Some(*after_bytes),
        _ => None,
    };
    let body = match read_body(req.into_body(), limit, deadline, drop_after).await {
        Ok(b) => b,
        Err(BodyError::Dropped) => {
            abort("the load connection was closed mid-body (fault injection)").await;
            record_fail(&shared);
            return Err(DropConnection);
        }
        Err(e) => {
            let m = match e {
                BodyError::TooLarge(n) => format!(
                    "body size {n} exceed limit: {limit}. You can increase the limit by setting streaming_load_max_mb in be.conf."
                ),
                BodyError::Timeout => format!("Stream Load timed out after {timeout_s} seconds while reading the body"),
                BodyError::Io(e) => format!("reading the body failed: {e}"),
                BodyError::Dropped => String::new(),
            };
            abort(&m).await;
            record_fail(&shared);
            res.message = m;
            return Ok(json_ok(res.to_json()));
        }
    };
    res.read_ms = ms(read_at.elapsed());
    res.load_bytes = body.len() as u64;
    // 6. Scan.
    let write_at = Instant::now();
    let batch = match scan_with(&body, &plan, &schema, !shared.cfg.discard) {
        Ok(b) => b,
        Err(e) => {
            let m = e.to_string();
            abort(&m).await;
            record_fail(&shared);
            res.message = m;
            return Ok(json_ok(res.to_json()));
        }
    };
    res.total = batch.total;
    res.filtered = batch.filtered;
    let log_name = error_log_name(txn_id);
    let bytes = res.load_bytes;
    let key = format!("{db}.{table}");

    let Some(txn) = txn else {
        // Discard mode: validated and counted, nothing stored.
        let ok = !ratio_exceeded(batch.total, batch.filtered, plan.max_filter_ratio);
        res.error_url = save_errors(&shared, &log_name, &batch.errors).await;
        if ok {
            res.status = LoadStatus::Success;
            res.loaded = batch.total - batch.filtered;
        } else {
            res.message = "too many filtered rows".into();
        }
        res.write_ms = ms(write_at.elapsed());
        res.load_ms = ms(started.elapsed());
        shared.with_stats(|s| {
            s.record(
                &key,
                &label,
                ok,
                Rows {
                    total: batch.total,
                    loaded: res.loaded,
                    filtered: batch.filtered,
                    bytes,
                },
                started.elapsed(),
            )
        });
        return Ok(json_ok(res.to_json()));
    };

    if let Some(FaultKind::RunningLabel {
        finish_after_ms,
        finish_as,
    }) = &fault
    {
        let owned = batch.into_owned();
        let shared2 = shared.clone();
        let (schema2, plan2, txn2) = (schema.clone(), plan.clone(), txn.clone());
        let (after, outcome) = (*finish_after_ms, *finish_as);
        let h = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            match outcome {
                Outcome::Aborted => {
                    let _ = shared2
                        .store
                        .set_state(
                            txn2.txn_id,
                            TxnState::Prepare,
                            TxnState::Aborted,
                            "load failed (fault injection)",
                        )
                        .await;
                }
                Outcome::Visible => {
                    let counts = (owned.total, owned.filtered, bytes);
                    let name = error_log_name(txn2.txn_id);
                    let _ = save_errors(&shared2, &name, &owned.errors).await;
                    if let Err(e) = apply_load(
                        &shared2,
                        &schema2,
                        &plan2,
                        &owned,
                        &txn2,
                        TxnState::Prepare,
                        None,
                        counts,
                        &name,
                    )
                    .await
                    {
                        tracing::warn!(error = %e, "finishing a RUNNING label failed");
                    }
                }
            }
        });
        shared.track(h);
        shared.with_stats(|s| {
            s.record(
                &key,
                &label,
                false,
                Rows {
                    bytes,
                    ..Rows::default()
                },
                started.elapsed(),
            )
        });
        return Ok(json_ok(
            LoadResult::new(
                &label,
                LoadStatus::LabelAlreadyExists("RUNNING".into()),
                format!("Label [{label}] has already been used."),
            )
            .to_json(),
        ));
    }

    // 7. Filter ratio, apply, publish.
    let publish = match &fault {
        Some(FaultKind::PublishTimeout { visible_after_ms }) => {
            Some(now_ms() + i64::try_from(*visible_after_ms).unwrap_or(i64::MAX))
        }
        _ => None,
    };
    let mut errors = batch.errors.clone();
    let outcome = if ratio_exceeded(batch.total, batch.filtered, plan.max_filter_ratio) {
        Ok(ApplyOutcome::TooManyFiltered {
            filtered: batch.filtered,
            errors: Vec::new(),
        })
    } else {
        apply_load(
            &shared,
            &schema,
            &plan,
            &batch,
            &txn,
            TxnState::Prepare,
            publish,
            (batch.total, batch.filtered, bytes),
            &log_name,
        )
        .await
    };
    let ok = match outcome {
        Ok(ApplyOutcome::Applied {
            filtered,
            errors: e,
        }) => {
            errors.extend(e);
            res.filtered += filtered;
            res.loaded = res.total - res.filtered;
            res.status = if publish.is_some() {
                res.message = "Publish timeout. The data will be visible after a while".into();
                LoadStatus::PublishTimeout
            } else {
                LoadStatus::Success
            };
            true
        }
        Ok(ApplyOutcome::TooManyFiltered {
            filtered,
            errors: e,
        }) => {
            errors.extend(e);
            res.filtered = filtered;
            res.message = "too many filtered rows".into();
            abort("too many filtered rows").await;
            false
        }
        Ok(ApplyOutcome::Aborted(reason)) => {
            res.message = format!("transaction {} has been aborted: {reason}", txn.txn_id);
            false
        }
        Err(m) => {
            abort(&m).await;
            res.message = m;
            false
        }
    };
    res.error_url = save_errors(&shared, &log_name, &errors).await;
    res.write_ms = ms(write_at.elapsed());
    res.load_ms = ms(started.elapsed());
    shared.with_stats(|s| {
        s.record(
            &key,
            &label,
            ok,
            Rows {
                total: res.total,
                loaded: res.loaded,
                filtered: res.filtered,
                bytes,
            },
            started.elapsed(),
        )
    });
    match fault {
        Some(FaultKind::LostResponse) => return Err(DropConnection),
        Some(FaultKind::Delay {
            ms,
            phase: DelayPhase::BeforeResponse,
            ..
        }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    Ok(json_ok(res.to_json()))
}

fn txn_json(op: TxnOp, r: TxnResp) -> HandlerResult {
    Ok(json_ok(r.to_json(op)))
}

/// Handles a transaction operation on the BE.
async fn txn(shared: Arc<Shared>, req: Request<Incoming>, op: &str) -> HandlerResult {
    let h = headers_of(&req);
    let label = h.get("label").cloned().unwrap_or_default();
    let db = h.get("db").cloned().unwrap_or_default();
    let table = h.get("table").cloned().unwrap_or_default();
    let (kind, rop) = match op {
        "begin" => (OpKind::TxnBegin, TxnOp::Begin),
        "load" => (OpKind::TxnLoad, TxnOp::Load),
        "prepare" => (OpKind::TxnPrepare, TxnOp::Commit),
        "commit" => (OpKind::TxnCommit, TxnOp::Commit),
        "rollback" => (OpKind::TxnRollback, TxnOp::Rollback),
        other => {
            return txn_json(
                TxnOp::Load,
                TxnResp::new(
                    "INVALID_ARGUMENT",
                    &label,
                    format!("unsupport transaction operation {other}"),
                ),
            )
        }
    };
    let fault = shared.fault(Target {
        site: Site::Be,
        op: kind,
        db: &db,
        table: &table,
        label: &label,
    });
    match &fault {
        Some(FaultKind::HttpStatus { status, body, .. }) => {
            return Ok(respond(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "text/plain",
                body.clone(),
            ))
        }
        Some(FaultKind::Fail { message }) => {
            return txn_json(rop, TxnResp::new("INTERNAL_ERROR", &label, message.clone()))
        }
        Some(FaultKind::LabelAlreadyExists {
            existing_job_status,
        }) => {
            let mut r = TxnResp::new(
                "LABEL_ALREADY_EXISTS",
                &label,
                format!("Label [{label}] has already been used."),
            );
            r.existing = Some(existing_job_status.clone());
            return txn_json(rop, r);
        }
        Some(FaultKind::Delay {
            ms,
            phase: DelayPhase::BeforeContinue,
            ..
        }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        _ => {}
    }
    if label.is_empty() {
        return txn_json(
            rop,
            TxnResp::new("INVALID_ARGUMENT", &label, "Invalid label "),
        );
    }
    let r = match kind {
        OpKind::TxnBegin => txn_begin(&shared, &h, &db, &table, &label, &fault).await,
        OpKind::TxnLoad => return txn_load(shared, req, h, &db, &table, &label, fault).await,
        OpKind::TxnRollback => txn_rollback(&shared, &db, &label).await,
        _ => txn_finish(&shared, &h, &db, &label, kind == OpKind::TxnPrepare).await,
    };
    match fault {
        Some(FaultKind::LostResponse) => Err(DropConnection),
        Some(FaultKind::Delay {
            ms,
            phase: DelayPhase::BeforeResponse,
            ..
        }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            txn_json(rop, r)
        }
        _ => txn_json(rop, r),
    }
}

fn parse_secs(h: &Headers, name: &str) -> Result<Option<u64>, String> {
    match h.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map(|n| Some(u64::from(n)))
            .map_err(|_| "Invalid timeout format".to_owned()),
    }
}

async fn txn_begin(
    shared: &Shared,
    h: &Headers,
    db: &str,
    table: &str,
    label: &str,
    fault: &Option<FaultKind>,
) -> TxnResp {
    let invalid = |m: String| TxnResp::new("INVALID_ARGUMENT", label, m);
    let timeout = match parse_secs(h, "timeout") {
        Ok(t) => t.unwrap_or(shared.cfg.default_timeout_s),
        Err(m) => return invalid(m),
    };
    let idle = match parse_secs(h, "idle_transaction_timeout") {
        Ok(t) => t,
        Err(m) => return invalid(m),
    };
    let auth = if matches!(fault, Some(FaultKind::BeIgnoresAuth)) {
        None
    } else {
        basic_auth(h)
    };
    let Some((user, pw)) = auth else {
        return TxnResp::new("INTERNAL_ERROR", label, "no valid Basic authorization");
    };
    if !shared.valid_user(&user, &pw) {
        return TxnResp::new(
            "INTERNAL_ERROR",
            label,
            format!("Access denied for user '{user}'. Please check the username and password."),
        );
    }
    if let Err(m) = params::check_label(label) {
        return TxnResp::new("INTERNAL_ERROR", label, m);
    }
    if let Err(e) = shared.schema(db, table).await {
        return TxnResp::new("INTERNAL_ERROR", label, schema_message(&e));
    }
    let to_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    match shared
        .store
        .begin(
            db,
            label,
            table,
            TxnKind::Txn,
            to_ms(timeout),
            idle.map(to_ms),
            shared.cfg.max_running_txn_per_db,
        )
        .await
    {
        Ok(t) => {
            let mut r = TxnResp::new("OK", label, "");
            r.txn_id = t.txn_id;
            r
        }
        Err(BeginError::LabelExists(_, status)) => {
            let mut r = TxnResp::new(
                "LABEL_ALREADY_EXISTS",
                label,
                format!("Label [{label}] has already been used."),
            );
            r.existing = Some(status.to_owned());
            r
        }
        Err(BeginError::TooMany(m)) => TxnResp::new("INTERNAL_ERROR", label, m),
        Err(BeginError::Store(e)) => TxnResp::new("INTERNAL_ERROR", label, e.to_string()),
    }
}

/// The transaction that a BE-side request refers to: it must be in PREPARE (the BE
/// forgets a transaction once it is prepared, committed or aborted).
async fn active_txn(shared: &Shared, db: &str, label: &str, capital: bool) -> Result<Txn, TxnResp> {
    let not_exists = || {
        TxnResp::new(
            "TXN_NOT_EXISTS",
            label,
            format!(
                "{}ransaction with label {label} not exists",
                if capital { "T" } else { "t" }
            ),
        )
    };
    match shared.store.get(db, label).await {
        Ok(Some(t)) if t.state == TxnState::Prepare && t.kind == TxnKind::Txn => {
            if t.db != db {
                return Err(TxnResp::new(
                    "INVALID_ARGUMENT",
                    label,
                    format!("request db {db} transaction db {} not match", t.db),
                ));
            }
            Ok(t)
        }
        Ok(_) => Err(not_exists()),
        Err(e) => Err(TxnResp::new("INTERNAL_ERROR", label, e.to_string())),
    }
}

async fn txn_load(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    h: Headers,
    db: &str,
    table: &str,
    label: &str,
    fault: Option<FaultKind>,
) -> HandlerResult {
    let started = Instant::now();
    let t = match active_txn(&shared, db, label, true).await {
        Ok(t) => t,
        Err(r) => return txn_json(TxnOp::Load, r),
    };
    if t.table != table {
        return txn_json(
            TxnOp::Load,
            TxnResp::new(
                "INVALID_ARGUMENT",
                label,
                format!(
                    "Request table {table} not equal transaction table {}",
                    t.table
                ),
            ),
        );
    }
    if !shared.try_busy(t.txn_id) {
        return txn_json(
            TxnOp::Load,
            TxnResp::new(
                "TXN_IN_PROCESSING",
                label,
                "Transaction in processing, please retry later",
            ),
        );
    }
    let r = txn_load_locked(&shared, req, &h, &t, &fault, started).await;
    shared.not_busy(t.txn_id);
    let r = r?;
    match fault {
        Some(FaultKind::LostResponse) => Err(DropConnection),
        Some(FaultKind::Delay {
            ms,
            phase: DelayPhase::BeforeResponse,
            ..
        }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            txn_json(TxnOp::Load, r)
        }
        _ => txn_json(TxnOp::Load, r),
    }
}

async fn txn_load_locked(
    shared: &Shared,
    req: Request<Incoming>,
    h: &Headers,
    t: &Txn,
    fault: &Option<FaultKind>,
    started: Instant,
) -> Result<TxnResp, DropConnection> {
    let label = t.label.as_str();
    let abort = |reason: String| async move {
        let _ = shared
            .store
            .set_state(t.txn_id, TxnState::Prepare, TxnState::Aborted, &reason)
            .await;
        TxnResp::new("INTERNAL_ERROR", label, reason)
    };
    let early = match params::early(h, content_length(h), limits(shared)) {
        Ok(e) => e,
        Err(m) => return Ok(abort(m).await),
    };
    let schema = match shared.schema(&t.db, &t.table).await {
        Ok(s) => s,
        Err(e) => return Ok(abort(schema_message(&e)).await),
    };
    let plan = match params::plan(h, early.format, &schema) {
        Ok(p) => p,
        Err(m) => return Ok(abort(m).await),
    };
    if t.loads > 0 && t.params.as_deref() != Some(plan.fingerprint.as_str()) {
        return Ok(abort("load request not equal last.".into()).await);
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from((t.deadline_ms - now_ms()).max(1)).unwrap_or(1));
    let drop_after = match fault {
        Some(FaultKind::DropMidBody { after_bytes }) => Some(*after_bytes),
        _ => None,
    };
    let body = match read_body(
        req.into_body(),
        limits(shared).max_body,
        deadline,
        drop_after,
    )
    .await
    {
        Ok(b) => b,
        Err(BodyError::Dropped) => {
            abort("the load connection was closed mid-body (fault injection)".into()).await;
            return Err(DropConnection);
        }
        Err(BodyError::TooLarge(n)) => {
            return Ok(abort(format!("body size {n} exceed limit")).await)
        }
        Err(BodyError::Timeout) => return Ok(abort("transaction load timed out".into()).await),
        Err(BodyError::Io(e)) => return Ok(abort(format!("reading the body failed: {e}")).await),
    };
    let batch = match scan_with(&body, &plan, &schema, !shared.cfg.discard) {
        Ok(b) => b,
        Err(e) => return Ok(abort(e.to_string()).await),
    };
    let bytes = body.len() as u64;
    let log_name = format!("error_log_{:016x}_txn", t.txn_id);
    let log = save_errors(shared, &log_name, &batch.errors).await;
    let payloads = if shared.cfg.discard {
        Vec::new()
    } else {
        encode_batch(&batch)
    };
    let staged = shared
        .store
        .stage(
            t.txn_id,
            t.loads,
            payloads,
            &plan.fingerprint,
            plan.max_filter_ratio,
            (batch.total, batch.filtered, bytes),
            log.as_ref().map(|_| log_name.as_str()),
        )
        .await;
    shared.with_stats(|s| {
        s.record(
            &format!("{}.{}", t.db, t.table),
            label,
            true,
            Rows {
                total: batch.total,
                loaded: batch.total - batch.filtered,
                filtered: batch.filtered,
                bytes,
            },
            started.elapsed(),
        )
    });
    Ok(match staged {
        Ok(true) => {
            let mut r = TxnResp::new("OK", label, "");
            r.txn_id = t.txn_id;
            r.load_bytes = bytes;
            r
        }
        Ok(false) => TxnResp::new(
            "TXN_NOT_EXISTS",
            label,
            format!("Transaction with label {label} not exists"),
        ),
        Err(e) => TxnResp::new("INTERNAL_ERROR", label, e.to_string()),
    })
}

async fn txn_rollback(shared: &Shared, db: &str, label: &str) -> TxnResp {
    let t = match active_txn(shared, db, label, false).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match shared
        .store
        .set_state(
            t.txn_id,
            TxnState::Prepare,
            TxnState::Aborted,
            "transaction is aborted by user.",
        )
        .await
    {
        Ok(true) => TxnResp::new("OK", label, ""),
        Ok(false) => TxnResp::new(
            "TXN_NOT_EXISTS",
            label,
            format!("transaction with label {label} not exists"),
        ),
        Err(e) => TxnResp::new("INTERNAL_ERROR", label, e.to_string()),
    }
}

/// Prepare, or commit straight from PREPARE, on the BE.
async fn txn_finish(shared: &Shared, h: &Headers, db: &str, label: &str, prepare: bool) -> TxnResp {
    let started = Instant::now();
    let t = match active_txn(shared, db, label, false).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let prepared_timeout = match h.get("prepared_timeout").filter(|v| !v.is_empty()) {
        Some(v) if prepare => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => u64::from(n),
            _ => {
                return TxnResp::new(
                    "INVALID_ARGUMENT",
                    label,
                    format!("Invalid prepared_timeout: {v}"),
                )
            }
        },
        _ => shared.cfg.prepared_timeout_s,
    };
    if !shared.try_busy(t.txn_id) {
        return TxnResp::new(
            "TXN_IN_PROCESSING",
            label,
            "Transaction in processing, please retry later",
        );
    }
    let r = async {
        let abort = |m: String| async move {
            let _ = shared
                .store
                .set_state(t.txn_id, TxnState::Prepare, TxnState::Aborted, &m)
                .await;
            TxnResp::new("INTERNAL_ERROR", label, m)
        };
        if t.loads == 0 {
            return abort(format!("transaction {} hasn't send any data yet", t.txn_id)).await;
        }
        if ratio_exceeded(t.total, t.filtered, t.max_filter_ratio) {
            let mut r = abort("too many filtered rows".into()).await;
            r.error_url = t
                .error_log
                .as_ref()
                .map(|n| format!("{}/api/_load_error_log?file={n}", shared.be_base()));
            return r;
        }
        let outcome = if prepare {
            let deadline = now_ms() + i64::try_from(prepared_timeout * 1000).unwrap_or(i64::MAX);
            match shared.store.prepare(t.txn_id, deadline).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("transaction with label {label} not exists")),
                Err(e) => Err(e.to_string()),
            }
        } else {
            commit_from(shared, &t, TxnState::Prepare).await
        };
        match outcome {
            Ok(()) => {
                let mut r = TxnResp::new("OK", label, "");
                r.txn_id = t.txn_id;
                r.total = t.total;
                r.filtered = t.filtered;
                r.loaded = t.total - t.filtered;
                r.load_bytes = t.bytes;
                r.load_ms = ms(started.elapsed());
                r.error_url = t
                    .error_log
                    .as_ref()
                    .map(|n| format!("{}/api/_load_error_log?file={n}", shared.be_base()));
                r
            }
            Err(m) => abort(m).await,
        }
    }
    .await;
    shared.not_busy(t.txn_id);
    r
}

/// Commits a PREPARED transaction (the FE's `commitPreparedTransaction`).
pub async fn commit_txn(shared: &Shared, t: &Txn) -> Result<(), String> {
    commit_from(shared, t, TxnState::Prepared).await
}

async fn commit_from(shared: &Shared, t: &Txn, from: TxnState) -> Result<(), String> {
    let schema = shared
        .schema(&t.db, &t.table)
        .await
        .map_err(|e| schema_message(&e))?;
    let params_text = t.params.clone().unwrap_or_default();
    let headers: Headers = params_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let format = params::early(&headers, None, limits(shared))
        .map_err(|e| format!("the transaction's load parameters no longer apply: {e}"))?
        .format;
    let plan = params::plan(&headers, format, &schema)
        .map_err(|e| format!("the transaction's load parameters no longer apply: {e}"))?;
    let mut batch: Batch<'static> = Batch {
        width: plan.dest.len(),
        total: t.total,
        filtered: t.filtered,
        keep_cells: true,
        ..Batch::default()
    };
    if !shared.cfg.discard {
        let mut conn = shared
            .store
            .pool()
            .get_conn()
            .await
            .map_err(|e| e.to_string())?;
        let mut tx = conn
            .start_transaction(rc())
            .await
            .map_err(|e| e.to_string())?;
        let payloads = shared
            .store
            .staged_in(&mut tx, t.txn_id)
            .await
            .map_err(|e| e.to_string())?;
        drop(tx);
        for p in payloads {
            decode_batch(&p, &mut batch)?;
        }
    }
    let log = t
        .error_log
        .clone()
        .unwrap_or_else(|| error_log_name(t.txn_id));
    match apply_load(
        shared,
        &schema,
        &plan,
        &batch,
        t,
        from,
        None,
        (t.total, t.filtered, t.bytes),
        &log,
    )
    .await?
    {
        ApplyOutcome::Applied { errors, .. } => {
            let _ = save_errors(shared, &log, &errors).await;
            Ok(())
        }
        ApplyOutcome::TooManyFiltered { .. } => Err("too many filtered rows".into()),
        ApplyOutcome::Aborted(reason) => {
            // A concurrent commit of the same transaction won: that is success.
            match shared.store.get(&t.db, &t.label).await {
                Ok(Some(now))
                    if now.txn_id == t.txn_id
                        && matches!(now.state, TxnState::Committed | TxnState::Visible) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "transaction {} has been aborted: {reason}",
                    t.txn_id
                )),
            }
        }
    }
}

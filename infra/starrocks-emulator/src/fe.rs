//! The FE HTTP port: authenticates, redirects loads to the BE with `307`, answers
//! `get_load_state`, `_cancel`, and commits/rolls back PREPARED transactions itself
//! (as `TransactionLoadAction` does).
//!
//! Every Stream Load response from the FE closes the connection, like StarRocks'
//! `setForceCloseConnection(true)`. The FE never reads a load body: it answers before
//! sending `100 Continue`.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, Version};
use mysql_async::prelude::Queryable;

use crate::faults::{FaultKind, FeShape, OpKind, Site, Target};
use crate::response::{fe_txn_result, load_state, rest_error, rest_ok, Entry};
use crate::server::{
    basic_auth, close, headers_of, json_ok, not_found, query_param, respond, segments,
    HandlerResult, Resp, Shared,
};
use crate::store::TxnState;

const JAVA_EXC: &str = "class com.starrocks.common.StarRocksException: ";

/// Handles one FE request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HandlerResult {
    let seg = segments(&req);
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["api", "transaction", op] => {
            let op = (*op).to_owned();
            txn(shared, req, &op).await
        }
        ["api", db, table, "_stream_load"] => {
            let (db, table) = ((*db).to_owned(), (*table).to_owned());
            stream_load(shared, req, &db, &table).await
        }
        ["api", db, "get_load_state"] => {
            let db = (*db).to_owned();
            get_load_state(shared, req, &db).await
        }
        ["api", db, label, "_cancel"] => {
            let (db, label) = ((*db).to_owned(), (*label).to_owned());
            cancel(shared, req, &db, &label).await
        }
        _ => Ok(not_found()),
    }
}

/// FE authentication: 401 with `WWW-Authenticate` on missing or bad credentials.
fn authenticate(shared: &Shared, req: &Request<Incoming>) -> Result<(), Box<Resp>> {
    let h = headers_of(req);
    let msg = match basic_auth(&h) {
        None => "Need auth information.".to_owned(),
        Some((u, p)) if shared.valid_user(&u, &p) => return Ok(()),
        Some((u, _)) => {
            format!("Access denied for user '{u}'. Please check the username and password.")
        }
    };
    let mut r = respond(
        StatusCode::UNAUTHORIZED,
        "application/json",
        rest_error(&msg),
    );
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"\""),
    );
    Err(Box::new(r))
}

fn expects_continue(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Applies an FE-site fault; `Some` is the final answer.
async fn fe_fault(shared: &Shared, t: Target<'_>) -> Option<Resp> {
    match shared.fault(t)? {
        FaultKind::HttpStatus { status, body, .. } => Some(respond(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "text/plain",
            body,
        )),
        FaultKind::Delay { ms, .. } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        FaultKind::FeError {
            message,
            shape,
            status,
        } => {
            let body = match shape {
                FeShape::Rest => rest_error(&message),
                FeShape::Transaction => fe_txn_result("FAILED", &message, &[]),
            };
            Some(respond(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                "application/json",
                body,
            ))
        }
        // The caller turns this into a redirect of its own path to a dead port.
        FaultKind::RedirectDeadBe => {
            Some(respond(StatusCode::TEMPORARY_REDIRECT, "text/plain", ""))
        }
        // Other kinds act on the BE and were not queued for the FE.
        _ => None,
    }
}

/// A loopback port where nothing listens (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1)
}

fn redirect(shared: &Shared, req: &Request<Incoming>, port: u16) -> Resp {
    let pq = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let mut r = respond(StatusCode::TEMPORARY_REDIRECT, "text/plain", "");
    if let Ok(v) =
        hyper::header::HeaderValue::from_str(&format!("http://{}:{port}{pq}", shared.host))
    {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

/// Turns a queued redirect-to-dead-BE into a proper redirect of this request.
fn fix_dead_redirect(shared: &Shared, req: &Request<Incoming>, r: Resp) -> Resp {
    if r.status() == StatusCode::TEMPORARY_REDIRECT {
        return redirect(shared, req, dead_port());
    }
    r
}

async fn stream_load(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    db: &str,
    table: &str,
) -> HandlerResult {
    if req.method() != Method::PUT {
        return Ok(close(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "Unsupported method",
        )));
    }
    if let Err(r) = authenticate(&shared, &req) {
        return Ok(close(*r));
    }
    if req.version() >= Version::HTTP_11 && !expects_continue(&req) {
        return Ok(close(json_ok(rest_error(
            "There is no 100-continue header",
        ))));
    }
    let label = headers_of(&req).get("label").cloned().unwrap_or_default();
    let t = Target {
        site: Site::Fe,
        op: OpKind::StreamLoad,
        db,
        table,
        label: &label,
    };
    if let Some(r) = fe_fault(&shared, t).await {
        return Ok(close(fix_dead_redirect(&shared, &req, r)));
    }
    if db.is_empty() {
        return Ok(close(json_ok(rest_error("No database selected."))));
    }
    if table.is_empty() {
        return Ok(close(json_ok(rest_error("No table selected."))));
    }
    Ok(close(redirect(&shared, &req, shared.be_port)))
}

async fn db_exists(shared: &Shared, db: &str) -> Result<bool, String> {
    let mut c = shared
        .store
        .pool()
        .get_conn()
        .await
        .map_err(|e| e.to_string())?;
    let r: Option<String> = c
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.is_some())
}

async fn get_load_state(shared: Arc<Shared>, req: Request<Incoming>, db: &str) -> HandlerResult {
    if req.method() != Method::GET {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "Unsupported method",
        ));
    }
    if let Err(r) = authenticate(&shared, &req) {
        return Ok(*r);
    }
    let label = query_param(&req, "label").unwrap_or_default();
    let t = Target {
        site: Site::Fe,
        op: OpKind::GetLoadState,
        db,
        table: "",
        label: &label,
    };
    if let Some(r) = fe_fault(&shared, t).await {
        return Ok(r);
    }
    if label.is_empty() {
        return Ok(json_ok(rest_error("No label selected.")));
    }
    match db_exists(&shared, db).await {
        Ok(true) => {}
        Ok(false) => {
            return Ok(json_ok(rest_error(&format!(
                "unknown database, database={db}"
            ))))
        }
        Err(e) => return Ok(json_ok(rest_error(&e))),
    }
    Ok(json_ok(match shared.store.get(db, &label).await {
        Ok(None) => load_state("UNKNOWN", None),
        Ok(Some(t)) => load_state(t.state.name(), t.reason.as_deref()),
        Err(e) => rest_error(&e.to_string()),
    }))
}

async fn cancel(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    db: &str,
    path_label: &str,
) -> HandlerResult {
    if req.method() != Method::POST {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "Unsupported method",
        ));
    }
    if let Err(r) = authenticate(&shared, &req) {
        return Ok(*r);
    }
    // `?label=` wins over the path segment (the SDK sends /api/{db}/{table}/_cancel?label=).
    let label = query_param(&req, "label").unwrap_or_else(|| path_label.to_owned());
    let t = Target {
        site: Site::Fe,
        op: OpKind::Cancel,
        db,
        table: "",
        label: &label,
    };
    if let Some(r) = fe_fault(&shared, t).await {
        return Ok(r);
    }
    match db_exists(&shared, db).await {
        Ok(true) => {}
        Ok(false) => {
            return Ok(json_ok(rest_error(&format!(
                "unknown database, database={db}"
            ))))
        }
        Err(e) => return Ok(json_ok(rest_error(&e))),
    }
    let txn = match shared.store.get(db, &label).await {
        Ok(t) => t,
        Err(e) => return Ok(json_ok(rest_error(&e.to_string()))),
    };
    let Some(txn) = txn else {
        return Ok(json_ok(rest_error(&format!(
            "transaction not found, label={label}"
        ))));
    };
    match txn.state {
        TxnState::Prepare | TxnState::Prepared => {
            match shared
                .store
                .set_state(txn.txn_id, txn.state, TxnState::Aborted, "user cancel")
                .await
            {
                Ok(true) => Ok(json_ok(rest_ok())),
                Ok(false) => Ok(json_ok(rest_error(
                    "transaction state changed while cancelling, retry",
                ))),
                Err(e) => Ok(json_ok(rest_error(&e.to_string()))),
            }
        }
        s => Ok(json_ok(rest_error(&format!(
            "transaction {} is already {}, could not abort",
            txn.txn_id,
            s.name()
        )))),
    }
}

fn txn_failed(msg: &str) -> Resp {
    json_ok(fe_txn_result("FAILED", &format!("{JAVA_EXC}{msg}"), &[]))
}

async fn txn(shared: Arc<Shared>, req: Request<Incoming>, op: &str) -> HandlerResult {
    if req.method() != Method::POST && req.method() != Method::PUT {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "Unsupported method",
        ));
    }
    if let Err(r) = authenticate(&shared, &req) {
        return Ok(*r);
    }
    let kind = match op.to_ascii_lowercase().as_str() {
        "begin" => OpKind::TxnBegin,
        "load" => OpKind::TxnLoad,
        "prepare" => OpKind::TxnPrepare,
        "commit" => OpKind::TxnCommit,
        "rollback" => OpKind::TxnRollback,
        _ => return Ok(txn_failed(&format!("Unknown transaction operation: {op}"))),
    };
    let h = headers_of(&req);
    let db = h.get("db").cloned().unwrap_or_default();
    let table = h.get("table").cloned().unwrap_or_default();
    let label = h.get("label").cloned().unwrap_or_default();
    let t = Target {
        site: Site::Fe,
        op: kind,
        db: &db,
        table: &table,
        label: &label,
    };
    if let Some(r) = fe_fault(&shared, t).await {
        return Ok(fix_dead_redirect(&shared, &req, r));
    }
    if db.is_empty() {
        return Ok(txn_failed("No database selected."));
    }
    if label.is_empty() {
        return Ok(txn_failed("No label specified."));
    }
    match db_exists(&shared, &db).await {
        Ok(true) => {}
        Ok(false) => return Ok(txn_failed(&format!("Database[{db}] does not exist."))),
        Err(e) => return Ok(txn_failed(&e)),
    }
    if matches!(kind, OpKind::TxnCommit | OpKind::TxnRollback) {
        let existing = match shared.store.get(&db, &label).await {
            Ok(t) => t,
            Err(e) => return Ok(txn_failed(&e.to_string())),
        };
        let Some(t) = existing else {
            return Ok(txn_failed(&format!(
                "No transaction found by label {label}"
            )));
        };
        let id = t.txn_id;
        let ok = |msg: String| {
            json_ok(fe_txn_result(
                "OK",
                &msg,
                &[("TxnId", Entry::Int(id)), ("Label", Entry::Str(&label))],
            ))
        };
        match (kind, t.state) {
            (_, TxnState::Prepare) => {}
            (OpKind::TxnCommit, TxnState::Prepared) => {
                return Ok(match crate::be::commit_txn(&shared, &t).await {
                    Ok(()) => ok(String::new()),
                    Err(e) => txn_failed(&e),
                });
            }
            (OpKind::TxnCommit, TxnState::Committed | TxnState::Visible) => {
                return Ok(ok(format!(
                    "Transaction {id} has already committed, label is {label}"
                )));
            }
            (OpKind::TxnCommit, s) => {
                return Ok(txn_failed(&format!(
                    "Can not commit {} transaction {id}, label is {label}",
                    s.name()
                )));
            }
            (_, TxnState::Prepared) => {
                return Ok(
                    match shared
                        .store
                        .set_state(id, TxnState::Prepared, TxnState::Aborted, "User Aborted")
                        .await
                    {
                        Ok(true) => ok(String::new()),
                        Ok(false) => txn_failed("transaction state changed, retry"),
                        Err(e) => txn_failed(&e.to_string()),
                    },
                );
            }
            (_, TxnState::Aborted) => {
                return Ok(ok(format!(
                    "Transaction {id} has already aborted, label is {label}"
                )));
            }
            (_, s) => {
                return Ok(txn_failed(&format!(
                    "Can not abort {} transaction {id}, label is {label}",
                    s.name()
                )));
            }
        }
    }
    Ok(redirect(&shared, &req, shared.be_port))
}

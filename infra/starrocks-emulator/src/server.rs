//! Listeners, shared state and HTTP plumbing common to the FE, BE and admin ports.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::config::EmulatorConfig;
use crate::faults::{FaultKind, Faults, Target};
use crate::params::Headers;
use crate::schema::{load_schema, SchemaError, TableSchema};
use crate::stats::Stats;
use crate::store::Store;

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// Returned by a handler to close the connection without answering.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (fault injection)")
    }
}

impl std::error::Error for DropConnection {}

/// A handler's outcome.
pub type HandlerResult = Result<Resp, DropConnection>;

type TableKey = (String, String);
type SchemaCache = HashMap<TableKey, (Instant, Arc<TableSchema>)>;
type TableLocks = HashMap<TableKey, Arc<tokio::sync::Mutex<()>>>;

/// State shared by every listener.
#[derive(Debug)]
pub struct Shared {
    /// Configuration.
    pub cfg: EmulatorConfig,
    /// Bookkeeping and data access.
    pub store: Store,
    /// Host for redirects and ErrorURLs.
    pub host: String,
    /// FE port.
    pub fe_port: u16,
    /// BE port.
    pub be_port: u16,
    /// Fault queue.
    pub faults: Mutex<Faults>,
    /// Statistics.
    pub stats: Mutex<Stats>,
    schemas: Mutex<SchemaCache>,
    table_locks: Mutex<TableLocks>,
    /// Transactions with a request in progress (`TXN_IN_PROCESSING`).
    pub busy_txns: Mutex<HashSet<i64>>,
    /// Background work (RUNNING labels) to stop at shutdown.
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        cfg: EmulatorConfig,
        store: Store,
        host: String,
        fe_port: u16,
        be_port: u16,
    ) -> Self {
        Shared {
            cfg,
            store,
            host,
            fe_port,
            be_port,
            faults: Mutex::new(Faults::default()),
            stats: Mutex::new(Stats::default()),
            schemas: Mutex::new(HashMap::new()),
            table_locks: Mutex::new(HashMap::new()),
            busy_txns: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Takes the first matching fault.
    pub fn fault(&self, t: Target<'_>) -> Option<FaultKind> {
        lock(&self.faults).take(t)
    }

    /// Runs `f` on the fault queue.
    pub fn with_faults<R>(&self, f: impl FnOnce(&mut Faults) -> R) -> R {
        f(&mut lock(&self.faults))
    }

    /// Runs `f` on the statistics.
    pub fn with_stats<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        f(&mut lock(&self.stats))
    }

    /// The schema of `db.table`, read from MariaDB (or the cache in discard mode).
    pub async fn schema(&self, db: &str, table: &str) -> Result<Arc<TableSchema>, SchemaError> {
        let ttl = Duration::from_millis(self.cfg.schema_cache_ms.unwrap_or(if self.cfg.discard {
            1000
        } else {
            0
        }));
        let key = (db.to_owned(), table.to_owned());
        if !ttl.is_zero() {
            if let Some((at, s)) = lock(&self.schemas).get(&key) {
                if at.elapsed() < ttl {
                    return Ok(s.clone());
                }
            }
        }
        let mut conn = self.store.pool().get_conn().await?;
        let s = Arc::new(load_schema(&mut conn, db, table).await?);
        if !ttl.is_zero() {
            lock(&self.schemas).insert(key, (Instant::now(), s.clone()));
        }
        Ok(s)
    }

    /// The apply lock of a table: loads into one table apply one at a time, in the
    /// order they finish reading, as StarRocks publishes them in commit order.
    pub fn table_lock(&self, db: &str, table: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.table_locks)
            .entry((db.to_owned(), table.to_owned()))
            .or_default()
            .clone()
    }

    /// Marks a transaction busy; false if it already was.
    pub fn try_busy(&self, txn_id: i64) -> bool {
        lock(&self.busy_txns).insert(txn_id)
    }

    /// Clears the busy mark.
    pub fn not_busy(&self, txn_id: i64) {
        lock(&self.busy_txns).remove(&txn_id);
    }

    /// Keeps a background task to abort at shutdown.
    pub fn track(&self, h: tokio::task::JoinHandle<()>) {
        let mut t = lock(&self.tasks);
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    /// Aborts background tasks.
    pub fn abort_tasks(&self) {
        for h in lock(&self.tasks).drain(..) {
            h.abort();
        }
    }

    /// Checks HTTP Basic credentials.
    pub fn valid_user(&self, user: &str, password: &str) -> bool {
        if self.cfg.users.is_empty() {
            return user == "root" && password.is_empty();
        }
        self.cfg
            .users
            .iter()
            .any(|(u, p)| u == user && p == password)
    }

    /// `http://host:be_port`
    pub fn be_base(&self) -> String {
        format!("http://{}:{}", self.host, self.be_port)
    }
}

/// A response with a body and content type.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response with HTTP 200.
pub fn json_ok(body: String) -> Resp {
    respond(StatusCode::OK, "application/json", body)
}

/// Adds `Connection: close`.
pub fn close(mut r: Resp) -> Resp {
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// Lower-cased header names with their first value.
pub fn headers_of(req: &Request<Incoming>) -> Headers {
    let mut h = Headers::new();
    for (k, v) in req.headers() {
        h.entry(k.as_str().to_ascii_lowercase())
            .or_insert_with(|| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    }
    h
}

/// HTTP Basic credentials, if the header is present and well-formed.
pub fn basic_auth(h: &Headers) -> Option<(String, String)> {
    use base64::Engine;
    let v = h.get("authorization")?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Percent-decodes a path segment or query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b.get(i), b.get(i + 1), b.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                let hex = [*h, *l];
                let v = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|x| u8::from_str_radix(x, 16).ok())
                    .unwrap_or(b'?');
                out.push(v);
                i += 3;
            }
            (Some(b'+'), ..) => {
                out.push(b' ');
                i += 1;
            }
            (Some(c), ..) => {
                out.push(*c);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query parameter.
pub fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Path segments, percent-decoded.
pub fn segments(req: &Request<Incoming>) -> Vec<String> {
    req.uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the size limit.
    TooLarge(u64),
    /// The load timed out while reading.
    Timeout,
    /// The client went away or sent garbage.
    Io(String),
    /// A drop-mid-body fault fired.
    Dropped,
}

/// Reads the whole body (this sends `100 Continue` if the client asked for it).
pub async fn read_body(
    body: Incoming,
    limit: u64,
    deadline: tokio::time::Instant,
    drop_after: Option<u64>,
) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut buf = BytesMut::new();
    loop {
        if let Some(n) = drop_after {
            if buf.len() as u64 >= n {
                return Err(BodyError::Dropped);
            }
        }
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Io(e.to_string())),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() as u64 > limit {
                return Err(BodyError::TooLarge(buf.len() as u64));
            }
        }
    }
    if drop_after.is_some() {
        return Err(BodyError::Dropped);
    }
    Ok(buf.freeze())
}

/// Binds a listener with SO_REUSEADDR (so a restarted emulator gets its ports back).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

/// Which port a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// FE HTTP.
    Fe,
    /// BE HTTP.
    Be,
    /// Admin.
    Admin,
}

async fn dispatch(shared: Arc<Shared>, role: Role, req: Request<Incoming>) -> HandlerResult {
    match role {
        Role::Fe => crate::fe::handle(shared, req).await,
        Role::Be => crate::be::handle(shared, req).await,
        Role::Admin => Ok(crate::admin::handle(shared, req).await),
    }
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    role: Role,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, ?role, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| dispatch(shared.clone(), role, req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, ?role, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// A service for paths nobody serves.
pub fn not_found() -> Resp {
    respond(StatusCode::NOT_FOUND, "text/plain", "Not Found")
}

//! The replication connection: a PostgreSQL v3 protocol client in logical
//! walsender mode (`replication=database`), written on a tokio socket.
//!
//! ```text
//! connect ─▶ [SSLRequest ─▶ rustls handshake] ─▶ StartupMessage(replication=database, …)
//!         ─▶ trust | cleartext | md5 | SCRAM-SHA-256 ─▶ ReadyForQuery
//!         ─▶ IDENTIFY_SYSTEM, SHOW server_version_num / wal_level, slot + publication checks
//!         ─▶ START_REPLICATION SLOT … LOGICAL <durable LSN> (proto_version, …) ─▶ CopyBoth
//! ```
//!
//! Why our own client: the released `tokio-postgres` cannot open a replication
//! connection, and dbmazz must decide alone which LSN is confirmed and when
//! (design rule 1). Framing of frontend messages and the SCRAM/md5 arithmetic
//! come from `postgres-protocol`; backend messages are framed here so CopyData
//! payloads become zero-copy `Bytes` slices of the read buffer.
//!
//! Session settings sent in the startup packet pin the text output that
//! [`crate::source::values`] decodes, whatever the server's defaults are:
//! `DateStyle=ISO`, `IntervalStyle=postgres`, `TimeZone=UTC`,
//! `extra_float_digits=3`, `bytea_output=hex`, `client_encoding=UTF8`. (PostgreSQL's
//! own subscriber pins the same output settings.) The database encoding must be
//! UTF8, because pgoutput sends text in the database encoding.
//!
//! TLS follows libpq's `sslmode`: `disable`; `prefer` (TLS when offered, no
//! certificate check); `require` (TLS, no certificate check unless `sslrootcert`
//! is given, then like `verify-ca`); `verify-ca` (chain checked against
//! `sslrootcert`); `verify-full` (chain and host name). Without `sslrootcert`,
//! `~/.postgresql/root.crt` is used when it exists; `sslrootcert=system` trusts the
//! operating system's roots. `sslcert` + `sslkey` present a client certificate (for
//! `cert` authentication or `clientcert=verify-*` in `pg_hba.conf`). SCRAM channel
//! binding is not used (the client announces it does not support it, which servers
//! accept).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::error::{ServerError, SourceError};
use super::message::Lsn;
use crate::state_store::Checkpointed;

/// `sslmode`, with libpq's meanings.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without certificate checks.
    #[default]
    Prefer,
    /// TLS or fail; certificate checked only when a root certificate is given.
    Require,
    /// TLS with the chain checked against the root certificate.
    VerifyCa,
    /// TLS with the chain and the host name checked.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, SourceError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(SourceError::Config(format!(
                    "sslmode '{other}' is not valid; use disable, prefer, require, verify-ca or \
                     verify-full"
                )))
            }
        })
    }
}

/// Connection parameters parsed from a libpq URL or key/value string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// Host name, IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password (never printed).
    pub password: Option<String>,
    /// Database.
    pub dbname: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA certificate file (PEM), or `system` for the operating system's roots.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate (chain) file (PEM) for certificate authentication.
    pub sslcert: Option<PathBuf>,
    /// Private key of `sslcert` (PEM).
    pub sslkey: Option<PathBuf>,
    /// `application_name` reported to the server.
    pub application_name: Option<String>,
    /// Connect timeout from the URL, if given.
    pub connect_timeout: Option<Duration>,
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .finish()
    }
}

impl ConnParams {
    /// Parses `postgres://user:pw@host:port/db?sslmode=…` or
    /// `host=… port=… user=… password='…' dbname=… sslmode=…`.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let mut p = ConnParams {
            host: "localhost".into(),
            port: 5432,
            user: std::env::var("USER").unwrap_or_else(|_| "postgres".into()),
            password: None,
            dbname: String::new(),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            application_name: None,
            connect_timeout: None,
        };
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = url::Url::parse(s).map_err(|e| {
                SourceError::Config(format!("the source URL is not a valid URL: {e}"))
            })?;
            if let Some(h) = url.host_str() {
                // IPv6 literals come bracketed: [::1].
                let h = h
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .unwrap_or(h);
                if !h.is_empty() {
                    p.set("host", &pct(h)?)?;
                }
            }
            if let Some(port) = url.port() {
                p.port = port;
            }
            if !url.username().is_empty() {
                p.user = pct(url.username())?;
            }
            if let Some(pw) = url.password() {
                p.password = Some(pct(pw)?);
            }
            let path = url.path().trim_start_matches('/');
            if !path.is_empty() {
                p.dbname = pct(path)?;
            }
            for (k, v) in url.query_pairs() {
                p.set(&k, &v)?;
            }
        } else {
            for (k, v) in parse_kv(s)? {
                p.set(&k, &v)?;
            }
        }
        if p.dbname.is_empty() {
            p.dbname = p.user.clone();
        }
        if p.host.contains(',') {
            return Err(SourceError::Config(
                "several hosts in the source URL are not supported; give one host".into(),
            ));
        }
        Ok(p)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), SourceError> {
        match key {
            "host" | "hostaddr" => self.host = value.to_owned(),
            "port" => {
                self.port = value.parse().map_err(|_| {
                    SourceError::Config(format!("port '{value}' is not a valid port number"))
                })?
            }
            "user" => self.user = value.to_owned(),
            "password" => self.password = Some(value.to_owned()),
            "dbname" => self.dbname = value.to_owned(),
            "sslmode" => self.sslmode = value.parse()?,
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "sslcert" => self.sslcert = Some(PathBuf::from(value)),
            "sslkey" => self.sslkey = Some(PathBuf::from(value)),
            "application_name" => self.application_name = Some(value.to_owned()),
            "connect_timeout" => {
                let secs: u64 = value.parse().map_err(|_| {
                    SourceError::Config(format!(
                        "connect_timeout '{value}' is not a whole number of seconds"
                    ))
                })?;
                self.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            other => {
                return Err(SourceError::Config(format!(
                    "connection option '{other}' is not supported; supported: host, hostaddr, \
                     port, user, password, dbname, sslmode, sslrootcert, sslcert, sslkey, \
                     application_name, connect_timeout"
                )))
            }
        }
        Ok(())
    }
}

fn pct(s: &str) -> Result<String, SourceError> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| SourceError::Config(format!("cannot decode '{s}' in the source URL")))
}

/// libpq key/value syntax: `key = value`, values optionally single-quoted with
/// `\'` and `\\` escapes.
fn parse_kv(s: &str) -> Result<Vec<(String, String)>, SourceError> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            it.next();
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.next() != Some('=') {
            return Err(SourceError::Config(format!(
                "connection string: missing '=' after '{key}'"
            )));
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let mut value = String::new();
        if it.peek() == Some(&'\'') {
            it.next();
            loop {
                match it.next() {
                    Some('\\') => match it.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(SourceError::Config(format!(
                            "connection string: unterminated quoted value for '{key}'"
                        )))
                    }
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    it.next();
                    if let Some(n) = it.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                it.next();
            }
        }
        out.push((key, value));
    }
}

/// `streaming` option of START_REPLICATION.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Streaming {
    /// Large transactions arrive whole at commit.
    #[default]
    Off,
    /// Large in-progress transactions arrive in Stream Start/Stop chunks (PostgreSQL 14+).
    On,
}

/// How to reconnect after transient errors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// First wait.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Give up (and return the last error) when an outage lasts longer.
    pub give_up_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// Everything the replication source needs.
#[derive(Clone)]
pub struct SourceConfig {
    /// libpq URL or key/value string (contains the password; never logged).
    pub url: String,
    /// Logical replication slot (pgoutput).
    pub slot: String,
    /// Publication to stream.
    pub publication: String,
    /// Where to start: the last checkpoint (its LSN is also the flush LSN reported
    /// until the first confirm), or `None` for a fresh slot (0/0: from the slot's
    /// `confirmed_flush_lsn`).
    pub start_lsn: Option<Checkpointed>,
    /// Streaming of large in-progress transactions.
    pub streaming: Streaming,
    /// Ask for `pg_logical_emit_message` messages (PostgreSQL 14+).
    pub messages: bool,
    /// Decode prepared transactions at PREPARE time (PostgreSQL 15+).
    pub two_phase: bool,
    /// Interval of standby status updates; keep it well below `wal_sender_timeout`.
    pub status_interval: Duration,
    /// Bounded channel capacity, in chunks (one chunk = the messages of one socket read).
    pub channel_capacity: usize,
    /// Timeout for connecting, authenticating and starting replication.
    pub connect_timeout: Duration,
    /// Reconnection after transient errors.
    pub reconnect: ReconnectPolicy,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &"<redacted>")
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("start_lsn", &self.start_lsn)
            .field("streaming", &self.streaming)
            .field("messages", &self.messages)
            .field("two_phase", &self.two_phase)
            .field("status_interval", &self.status_interval)
            .field("channel_capacity", &self.channel_capacity)
            .finish()
    }
}

impl SourceConfig {
    /// A config with the defaults: streaming off, no messages, no two-phase, status
    /// every 5 s, 64 chunks of buffer, 30 s connect timeout.
    pub fn new(
        url: impl Into<String>,
        slot: impl Into<String>,
        publication: impl Into<String>,
    ) -> Self {
        SourceConfig {
            url: url.into(),
            slot: slot.into(),
            publication: publication.into(),
            start_lsn: None,
            streaming: Streaming::Off,
            messages: false,
            two_phase: false,
            status_interval: Duration::from_secs(5),
            channel_capacity: 64,
            connect_timeout: Duration::from_secs(30),
            reconnect: ReconnectPolicy::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SourceError> {
        let slot_ok = !self.slot.is_empty()
            && self.slot.len() <= 63
            && self
                .slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !slot_ok {
            return Err(SourceError::Config(format!(
                "slot name '{}' is not valid: use 1-63 lower-case letters, digits and underscores",
                self.slot
            )));
        }
        if self.publication.is_empty() || self.publication.contains('\0') {
            return Err(SourceError::Config("publication name is empty".into()));
        }
        if self.status_interval.is_zero() || self.channel_capacity == 0 {
            return Err(SourceError::Config(
                "status interval and channel capacity must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

/// What the server told us while connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// `IDENTIFY_SYSTEM` systemid: changes when the cluster is a different one.
    pub system_id: String,
    /// Timeline.
    pub timeline: u32,
    /// WAL flush position when connecting.
    pub xlogpos: Lsn,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// pgoutput protocol version chosen.
    pub proto_version: u32,
    /// Database connected to.
    pub database: String,
}

/// The highest pgoutput protocol the server supports.
pub fn proto_version_for(server_version_num: u32) -> u32 {
    match server_version_num {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Largest backend message accepted (PostgreSQL's own limit is 1 GiB per value).
const MAX_MESSAGE: usize = 1 << 31;
/// Minimum read size: large reads keep the per-message cost low.
const READ_CHUNK: usize = 256 * 1024;
/// Below this much free space the read buffer is replaced before reading.
const MIN_READ: usize = 16 * 1024;

/// One connection in replication mode.
pub struct ReplicationConnection {
    io: Box<dyn Io>,
    rbuf: BytesMut,
    want: usize,
    params: ConnParams,
    slot: String,
    publication: String,
    server_encoding: Option<String>,
}

impl fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationConnection")
            .field("params", &self.params)
            .field("slot", &self.slot)
            .finish()
    }
}

impl ReplicationConnection {
    /// Connects, authenticates and waits for ReadyForQuery.
    pub async fn connect(
        params: &ConnParams,
        slot: &str,
        publication: &str,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let timeout = params.connect_timeout.unwrap_or(timeout);
        match tokio::time::timeout(timeout, Self::connect_inner(params, slot, publication)).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout {
                what: "connecting to PostgreSQL",
                secs: timeout.as_secs(),
            }),
        }
    }

    async fn connect_inner(
        params: &ConnParams,
        slot: &str,
        publication: &str,
    ) -> Result<Self, SourceError> {
        let io: Box<dyn Io> = if params.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", params.host, params.port);
            let s = UnixStream::connect(&path)
                .await
                .map_err(|source| SourceError::Connect {
                    addr: path.clone(),
                    source,
                })?;
            Box::new(s)
        } else {
            let addr = format!("{}:{}", params.host, params.port);
            let tcp = TcpStream::connect((params.host.as_str(), params.port))
                .await
                .map_err(|source| SourceError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            tcp.set_nodelay(true)?;
            if params.sslmode == SslMode::Disable {
                Box::new(tcp)
            } else {
                negotiate_tls(tcp, params).await?
            }
        };
        let mut conn = ReplicationConnection {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            want: 0,
            params: params.clone(),
            slot: slot.to_owned(),
            publication: publication.to_owned(),
            server_encoding: None,
        };
        conn.startup().await?;
        Ok(conn)
    }

    fn server_err(&self, e: ServerError) -> SourceError {
        SourceError::from_server(
            e,
            &self.params.user,
            &self.params.dbname,
            &self.slot,
            &self.publication,
        )
    }

    /// The typed error for an `ErrorResponse` body.
    pub(crate) fn server_error(&self, body: &[u8]) -> SourceError {
        self.server_err(ServerError::parse(body))
    }

    async fn write(&mut self, buf: &[u8]) -> Result<(), SourceError> {
        self.io.write_all(buf).await?;
        self.io.flush().await?;
        Ok(())
    }

    async fn startup(&mut self) -> Result<(), SourceError> {
        let app = self
            .params
            .application_name
            .clone()
            .unwrap_or_else(|| "dbmazz".to_owned());
        let mut buf = BytesMut::new();
        frontend::startup_message(
            [
                ("user", self.params.user.as_str()),
                ("database", self.params.dbname.as_str()),
                ("replication", "database"),
                ("application_name", app.as_str()),
                ("client_encoding", "UTF8"),
                ("DateStyle", "ISO"),
                ("IntervalStyle", "postgres"),
                ("TimeZone", "UTC"),
                ("extra_float_digits", "3"),
                ("bytea_output", "hex"),
            ],
            &mut buf,
        )
        .map_err(|e| SourceError::Config(format!("invalid startup parameter: {e}")))?;
        self.write(&buf).await?;

        let user = self.params.user.clone();
        let auth_err = |detail: String| SourceError::Auth {
            user: user.clone(),
            detail,
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'R' => {
                    let mut b = body;
                    if b.len() < 4 {
                        return Err(SourceError::Protocol("short authentication request".into()));
                    }
                    let code = b.get_i32();
                    let password = || {
                        self.params.password.clone().ok_or_else(|| {
                            auth_err(
                                "the server asks for a password and the source URL has none".into(),
                            )
                        })
                    };
                    let mut out = BytesMut::new();
                    match code {
                        0 => {}
                        3 => {
                            frontend::password_message(password()?.as_bytes(), &mut out)?;
                        }
                        5 => {
                            if b.len() < 4 {
                                return Err(SourceError::Protocol("short md5 salt".into()));
                            }
                            let salt = [b[0], b[1], b[2], b[3]];
                            let hash = md5_hash(user.as_bytes(), password()?.as_bytes(), salt);
                            frontend::password_message(hash.as_bytes(), &mut out)?;
                        }
                        10 => {
                            let mechanisms: Vec<&[u8]> =
                                b.split(|c| *c == 0).filter(|m| !m.is_empty()).collect();
                            if !mechanisms.contains(&SCRAM_SHA_256.as_bytes()) {
                                return Err(auth_err(format!(
                                    "the server offers only {:?}; dbmazz supports SCRAM-SHA-256",
                                    mechanisms
                                        .iter()
                                        .map(|m| String::from_utf8_lossy(m).into_owned())
                                        .collect::<Vec<_>>()
                                )));
                            }
                            let s = ScramSha256::new(
                                password()?.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                SourceError::Protocol("SASL continue without SASL start".into())
                            })?;
                            s.update(&b)
                                .map_err(|e| auth_err(format!("SCRAM exchange failed: {e}")))?;
                            frontend::sasl_response(s.message(), &mut out)?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                SourceError::Protocol("SASL final without SASL start".into())
                            })?;
                            s.finish(&b).map_err(|e| {
                                auth_err(format!("the server's SCRAM signature is wrong: {e}"))
                            })?;
                        }
                        other => {
                            return Err(auth_err(format!(
                                "authentication method {other} is not supported (use \
                                 scram-sha-256, md5, password or trust in pg_hba.conf)"
                            )))
                        }
                    }
                    if !out.is_empty() {
                        self.write(&out).await?;
                    }
                }
                b'S' => self.parameter_status(&body),
                b'K' | b'N' => {}
                b'E' => return Err(self.server_err(ServerError::parse(&body))),
                b'Z' => break,
                other => {
                    return Err(SourceError::Protocol(format!(
                        "unexpected message '{}' during startup",
                        other as char
                    )))
                }
            }
        }
        match self.server_encoding.as_deref() {
            Some("UTF8") | None => Ok(()),
            Some(other) => Err(SourceError::Config(format!(
                "database '{}' uses encoding {other}; dbmazz needs a UTF8 database because \
                 pgoutput sends text in the database encoding",
                self.params.dbname
            ))),
        }
    }

    fn parameter_status(&mut self, body: &[u8]) {
        let mut parts = body.split(|c| *c == 0);
        let name = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default();
        if name == b"server_encoding" {
            self.server_encoding = Some(String::from_utf8_lossy(value).into_owned());
        }
    }

    /// Runs one simple-protocol query and returns its rows as text.
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, SourceError> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.write(&buf).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'D' => rows.push(data_row(&body)?),
                b'T' | b'C' | b'I' | b'N' => {}
                b'S' => self.parameter_status(&body),
                b'E' => error = Some(ServerError::parse(&body)),
                b'Z' => break,
                other => {
                    return Err(SourceError::Protocol(format!(
                        "unexpected message '{}' in reply to a query",
                        other as char
                    )))
                }
            }
        }
        match error {
            Some(e) => Err(self.server_err(e)),
            None => Ok(rows),
        }
    }

    async fn show(&mut self, name: &str) -> Result<String, SourceError> {
        let rows = self.simple_query(&format!("SHOW {name}")).await?;
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .ok_or_else(|| SourceError::Protocol(format!("SHOW {name} returned no value")))
    }

    /// Checks the server, slot and publication, then starts streaming from `start`.
    pub async fn start_replication(
        &mut self,
        config: &SourceConfig,
        start: Lsn,
    ) -> Result<ServerInfo, SourceError> {
        let ident = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = ident
            .into_iter()
            .next()
            .ok_or_else(|| SourceError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let system_id = col(0);
        let timeline = col(1).parse().unwrap_or(0);
        let xlogpos = col(2).parse().unwrap_or(Lsn::ZERO);
        let version: u32 = self
            .show("server_version_num")
            .await?
            .parse()
            .map_err(|_| SourceError::Protocol("server_version_num is not a number".into()))?;
        if version < 130000 {
            return Err(SourceError::Unsupported {
                version,
                detail: "dbmazz needs PostgreSQL 13 or newer".into(),
            });
        }
        let wal_level = self.show("wal_level").await?;
        if wal_level != "logical" {
            return Err(SourceError::WalLevel { found: wal_level });
        }
        let proto = proto_version_for(version);
        if config.streaming == Streaming::On && proto < 2 {
            return Err(SourceError::Unsupported {
                version,
                detail: "streaming of in-progress transactions needs PostgreSQL 14; set streaming \
                         off"
                .into(),
            });
        }
        if config.messages && version < 140000 {
            return Err(SourceError::Unsupported {
                version,
                detail: "logical decoding messages need PostgreSQL 14; turn messages off".into(),
            });
        }
        if config.two_phase && proto < 3 {
            return Err(SourceError::Unsupported {
                version,
                detail: "two-phase decoding needs PostgreSQL 15; turn two_phase off".into(),
            });
        }
        self.check_slot().await?;
        self.check_publication().await?;

        let mut opts = vec![
            format!("proto_version '{proto}'"),
            format!(
                "publication_names {}",
                quote_literal(&quote_ident(&config.publication))
            ),
        ];
        if version >= 140000 {
            opts.push(format!("messages '{}'", on_off(config.messages)));
        }
        if proto >= 2 {
            opts.push(format!(
                "streaming '{}'",
                on_off(config.streaming == Streaming::On)
            ));
        }
        if proto >= 3 {
            opts.push(format!("two_phase '{}'", on_off(config.two_phase)));
        }
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} ({})",
            quote_ident(&config.slot),
            start,
            opts.join(", ")
        );
        let mut buf = BytesMut::new();
        frontend::query(&sql, &mut buf)?;
        self.write(&buf).await?;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'W' => break,
                b'N' | b'S' => {}
                b'E' => return Err(self.server_err(ServerError::parse(&body))),
                other => {
                    return Err(SourceError::Protocol(format!(
                        "unexpected message '{}' in reply to START_REPLICATION",
                        other as char
                    )))
                }
            }
        }
        Ok(ServerInfo {
            system_id,
            timeline,
            xlogpos,
            server_version_num: version,
            proto_version: proto,
            database: self.params.dbname.clone(),
        })
    }

    async fn check_slot(&mut self) -> Result<(), SourceError> {
        let rows = self
            .simple_query(&format!(
                "SELECT slot_type, plugin, database, wal_status FROM pg_catalog.pg_replication_slots \
                 WHERE slot_name = {}",
                quote_literal(&self.slot)
            ))
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Err(SourceError::SlotMissing {
                slot: self.slot.clone(),
                database: self.params.dbname.clone(),
            });
        };
        let col = |i: usize| row.get(i).cloned().flatten();
        let unusable = |detail: String| SourceError::SlotUnusable {
            slot: self.slot.clone(),
            detail,
        };
        if col(0).as_deref() != Some("logical") {
            return Err(unusable(
                "it is a physical slot; create a logical slot with the pgoutput plugin".into(),
            ));
        }
        if col(1).as_deref() != Some("pgoutput") {
            return Err(unusable(format!(
                "it uses output plugin '{}'; dbmazz needs a slot created with 'pgoutput'",
                col(1).unwrap_or_default()
            )));
        }
        if col(2).as_deref() != Some(self.params.dbname.as_str()) {
            return Err(unusable(format!(
                "it belongs to database '{}', not '{}'; connect to that database or create a \
                 slot in this one",
                col(2).unwrap_or_default(),
                self.params.dbname
            )));
        }
        if col(3).as_deref() == Some("lost") {
            return Err(SourceError::SlotInvalidated {
                slot: self.slot.clone(),
                detail: "pg_replication_slots.wal_status is 'lost'".into(),
            });
        }
        Ok(())
    }

    async fn check_publication(&mut self) -> Result<(), SourceError> {
        let rows = self
            .simple_query(&format!(
                "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = {}",
                quote_literal(&self.publication)
            ))
            .await?;
        if rows.is_empty() {
            return Err(SourceError::PublicationMissing {
                publication: self.publication.clone(),
                database: self.params.dbname.clone(),
            });
        }
        Ok(())
    }

    /// Reads one whole backend message.
    async fn read_message(&mut self) -> Result<(u8, Bytes), SourceError> {
        loop {
            if let Some(m) = self.try_frame()? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    /// Takes one complete backend message out of the read buffer, if there is one.
    /// The body is a zero-copy slice of the buffer.
    pub fn try_frame(&mut self) -> Result<Option<(u8, Bytes)>, SourceError> {
        let Some(header) = self.rbuf.first_chunk::<5>() else {
            return Ok(None);
        };
        let tag = header[0];
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len)
            .ok()
            .filter(|l| (4..=MAX_MESSAGE).contains(l))
            .ok_or_else(|| {
                SourceError::Protocol(format!(
                    "backend message '{}' has invalid length {len}",
                    tag as char
                ))
            })?;
        let total = len + 1;
        if self.rbuf.len() < total {
            self.want = total;
            return Ok(None);
        }
        self.want = 0;
        let mut frame = self.rbuf.split_to(total);
        frame.advance(5);
        Ok(Some((tag, frame.freeze())))
    }

    /// True when the read buffer already holds a complete message.
    pub fn has_frame(&self) -> bool {
        match self.rbuf.first_chunk::<5>() {
            Some(h) => {
                let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
                // An invalid length counts as "ready": try_frame reports it.
                usize::try_from(len).map_or(true, |l| self.rbuf.len() > l)
            }
            None => false,
        }
    }

    /// Reads more bytes from the socket (cancel-safe).
    ///
    /// Frames handed out are slices of the read buffer and keep its allocation
    /// alive, so a fresh buffer is only taken when the current one is nearly full
    /// (or the pending frame does not fit): reserving a whole chunk before every
    /// read would, with the small reads of a caught-up stream, pin a 256 KiB
    /// allocation per read for as long as any of its few frames is buffered.
    pub async fn fill(&mut self) -> Result<(), SourceError> {
        let need = self.want.saturating_sub(self.rbuf.len());
        let spare = self.rbuf.capacity() - self.rbuf.len();
        if spare < need.max(MIN_READ) {
            self.rbuf.reserve(need.max(READ_CHUNK));
        }
        let n = self.io.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err(SourceError::Closed("end of stream"));
        }
        Ok(())
    }

    /// Sends a complete, already framed protocol message.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), SourceError> {
        self.write(msg).await
    }

    /// Ends streaming politely: CopyDone and Terminate, without waiting long.
    pub async fn close(mut self) {
        let mut buf = BytesMut::new();
        frontend::copy_done(&mut buf);
        frontend::terminate(&mut buf);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.write(&buf).await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }

    /// The parsed connection parameters.
    pub fn params(&self) -> &ConnParams {
        &self.params
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Quotes an identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal (safe whatever `standard_conforming_strings` is).
pub fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, SourceError> {
    let bad = || SourceError::Protocol("malformed DataRow".into());
    let mut b = body;
    if b.len() < 2 {
        return Err(bad());
    }
    let n = b.get_i16();
    let n = usize::try_from(n).map_err(|_| bad())?;
    let mut row = Vec::with_capacity(n.min(b.len() / 4));
    for _ in 0..n {
        if b.len() < 4 {
            return Err(bad());
        }
        let len = b.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if b.len() < len {
            return Err(bad());
        }
        row.push(Some(String::from_utf8_lossy(&b[..len]).into_owned()));
        b.advance(len);
    }
    Ok(row)
}

async fn negotiate_tls(
    mut tcp: TcpStream,
    params: &ConnParams,
) -> Result<Box<dyn Io>, SourceError> {
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    tcp.write_all(&buf).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {
            let connector = tls::connector(params)?;
            let name =
                rustls_pki_types::ServerName::try_from(params.host.clone()).map_err(|e| {
                    SourceError::Tls(format!(
                        "host '{}' is not a valid TLS name: {e}",
                        params.host
                    ))
                })?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| SourceError::Tls(format!("handshake failed: {e}")))?;
            Ok(Box::new(stream))
        }
        b'N' if params.sslmode == SslMode::Prefer => Ok(Box::new(tcp)),
        b'N' => Err(SourceError::Tls(format!(
            "the server does not accept TLS connections but sslmode={:?} requires TLS; enable \
             ssl on the server or lower sslmode",
            params.sslmode
        ))),
        other => Err(SourceError::Protocol(format!(
            "unexpected answer 0x{other:02X} to SSLRequest"
        ))),
    }
}

pub(crate) mod tls {
    //! rustls client configuration for each `sslmode`.

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::{
        CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    };
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use tokio_rustls::TlsConnector;

    use super::{ConnParams, SslMode};
    use crate::source::error::SourceError;

    /// Accepts any certificate (sslmode prefer/require without a root certificate) but
    /// still checks that the server owns the key it presents.
    #[derive(Debug)]
    struct NoCertCheck(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoCertCheck {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// verify-ca: the chain must lead to the root certificate; the name is not checked.
    #[derive(Debug)]
    struct ChainOnly(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    fn load_roots(params: &ConnParams) -> Result<Option<RootCertStore>, SourceError> {
        let path = match &params.sslrootcert {
            Some(p) => p.clone(),
            None => {
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                match home.map(|h| h.join(".postgresql/root.crt")) {
                    Some(p) if p.is_file() => p,
                    _ => return Ok(None),
                }
            }
        };
        let bad = |e: String| {
            SourceError::Tls(format!(
                "cannot read sslrootcert {}: {e}; give a PEM file with the CA certificate",
                path.display()
            ))
        };
        let mut roots = RootCertStore::empty();
        if path.as_os_str() == "system" {
            // libpq's `sslrootcert=system`: the operating system's trusted roots.
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // Unparsable system certificates are skipped, as libpq/OpenSSL do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(SourceError::Tls(format!(
                    "sslrootcert=system but no trusted root certificate was found on this \
                     machine ({} errors); install ca-certificates or give a PEM file",
                    found.errors.len()
                )));
            }
            return Ok(Some(roots));
        }
        for cert in CertificateDer::pem_file_iter(&path).map_err(|e| bad(e.to_string()))? {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        Ok(Some(roots))
    }

    pub(super) fn connector(params: &ConnParams) -> Result<TlsConnector, SourceError> {
        Ok(TlsConnector::from(Arc::new(client_config(params)?)))
    }

    /// The rustls configuration for `params.sslmode` (also used for ordinary SQL
    /// connections, see [`crate::source::sql`]).
    pub(crate) fn client_config(params: &ConnParams) -> Result<ClientConfig, SourceError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SourceError::Tls(e.to_string()))?;
        let roots = load_roots(params)?;
        let verifier: Arc<dyn ServerCertVerifier> = match (params.sslmode, roots) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(SourceError::Tls(format!(
                    "sslmode={} needs the CA certificate: set sslrootcert=/path/to/ca.pem in the \
                     source URL",
                    if params.sslmode == SslMode::VerifyCa {
                        "verify-ca"
                    } else {
                        "verify-full"
                    }
                )))
            }
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
                Arc::new(NoCertCheck(provider))
            }
            (mode, Some(roots)) => {
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| SourceError::Tls(e.to_string()))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match (&params.sslcert, &params.sslkey) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let (chain, der) = load_client_identity(cert, key)?;
                builder.with_client_auth_cert(chain, der).map_err(|e| {
                    SourceError::Tls(format!(
                        "client certificate {} and key {} do not form a usable identity: {e}",
                        cert.display(),
                        key.display()
                    ))
                })
            }
            (Some(_), None) => Err(SourceError::Tls(
                "sslcert is set without sslkey: give both in the source URL".into(),
            )),
            (None, Some(_)) => Err(SourceError::Tls(
                "sslkey is set without sslcert: give both in the source URL".into(),
            )),
        }
    }

    /// Reads the client certificate chain and its private key (PEM).
    fn load_client_identity(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SourceError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                SourceError::Tls(format!(
                    "cannot read sslcert {}: {e}; give a PEM file with the client certificate",
                    cert.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(SourceError::Tls(format!(
                "sslcert {} holds no certificate; give a PEM file with the client certificate",
                cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            SourceError::Tls(format!(
                "cannot read sslkey {}: {e}; give a PEM file with the client's private key \
                 (PKCS#8, PKCS#1 or SEC1)",
                key.display()
            ))
        })?;
        Ok((chain, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let p = ConnParams::parse(
            "postgres://al%40ice:p%2Fw%20x@db.example:6543/my%20db?sslmode=verify-full&sslrootcert=/tmp/ca.pem",
        )
        .expect("valid");
        assert_eq!(p.user, "al@ice");
        assert_eq!(p.password.as_deref(), Some("p/w x"));
        assert_eq!(p.host, "db.example");
        assert_eq!(p.port, 6543);
        assert_eq!(p.dbname, "my db");
        assert_eq!(p.sslmode, SslMode::VerifyFull);
        assert_eq!(p.sslrootcert, Some(PathBuf::from("/tmp/ca.pem")));
        assert!(!format!("{p:?}").contains("p/w"));
        let p = ConnParams::parse("postgresql://u@[::1]:5433/d").expect("valid");
        assert_eq!((p.host.as_str(), p.port), ("::1", 5433));
        let p = ConnParams::parse("postgresql://u@%2Fvar%2Frun%2Fpostgresql/d").expect("valid");
        assert_eq!(p.host, "/var/run/postgresql");
        let p = ConnParams::parse("postgresql://u@h/d").expect("valid");
        assert_eq!((p.port, p.sslmode), (5432, SslMode::Prefer));
        assert!(ConnParams::parse("postgres://u@h/d?sslmode=bogus").is_err());
        assert!(ConnParams::parse("postgres://u@h/d?frobnicate=1").is_err());
        assert!(ConnParams::parse("postgres://u@h1,h2/d").is_err());
    }

    #[test]
    fn parses_key_value_strings() {
        let p = ConnParams::parse(
            "host=127.0.0.1 port = 5433 user=postgres password='it\\'s secret' dbname=app sslmode=disable",
        )
        .expect("valid");
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.port, 5433);
        assert_eq!(p.password.as_deref(), Some("it's secret"));
        assert_eq!(p.dbname, "app");
        assert_eq!(p.sslmode, SslMode::Disable);
        assert!(ConnParams::parse("host").is_err());
        assert!(ConnParams::parse("password='open").is_err());
        assert!(ConnParams::parse("port=x").is_err());
        let p = ConnParams::parse("user=bob").expect("valid");
        assert_eq!(p.dbname, "bob");
    }

    #[test]
    fn proto_versions() {
        assert_eq!(proto_version_for(130012), 1);
        assert_eq!(proto_version_for(140000), 2);
        assert_eq!(proto_version_for(150010), 3);
        assert_eq!(proto_version_for(160000), 4);
        assert_eq!(proto_version_for(180001), 4);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
        assert_eq!(
            quote_literal(&quote_ident("my pub")),
            "'\"my pub\"'".to_string()
        );
    }

    #[test]
    fn slot_names_are_checked() {
        let mut c = SourceConfig::new("host=x", "good_slot_1", "p");
        assert!(c.validate().is_ok());
        c.slot = "Bad-Slot".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn data_rows_are_bounds_checked() {
        let mut b = BytesMut::new();
        bytes::BufMut::put_i16(&mut b, 2);
        bytes::BufMut::put_i32(&mut b, 2);
        b.extend_from_slice(b"ok");
        bytes::BufMut::put_i32(&mut b, -1);
        assert_eq!(
            data_row(&b).expect("valid"),
            vec![Some("ok".to_string()), None]
        );
        assert!(data_row(&b[..7]).is_err());
        let mut b = BytesMut::new();
        bytes::BufMut::put_i16(&mut b, 1);
        bytes::BufMut::put_i32(&mut b, 1000);
        assert!(data_row(&b).is_err());
    }
}

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
//! TLS follows libpq's `sslmode` ([`crate::postgres::tls`]): `disable`; `prefer` (TLS when offered, no
//! certificate check); `require` (TLS, no certificate check unless `sslrootcert`
//! is given, then like `verify-ca`); `verify-ca` (chain checked against
//! `sslrootcert`); `verify-full` (chain and host name). Without `sslrootcert`,
//! `~/.postgresql/root.crt` is used when it exists; `sslrootcert=system` trusts the
//! operating system's roots. `sslcert` + `sslkey` present a client certificate (for
//! `cert` authentication or `clientcert=verify-*` in `pg_hba.conf`). SCRAM channel
//! binding is not used (the client announces it does not support it, which servers
//! accept).
//!
//! Starting the stream (server checks, slot and publication, START_REPLICATION) is
//! in [`super::start`].

use std::fmt;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::error::{ServerError, SourceError};
use crate::postgres::{tls, ConnParams, SslMode};

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
    pub(super) params: ConnParams,
    pub(super) slot: String,
    pub(super) publication: String,
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

    pub(super) fn server_err(&self, e: ServerError) -> SourceError {
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

    pub(super) async fn write(&mut self, buf: &[u8]) -> Result<(), SourceError> {
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
                        self.params
                            .password
                            .as_ref()
                            .map(|p| p.expose().to_owned())
                            .ok_or_else(|| {
                                auth_err(
                                    "the server asks for a password and the source URL has none"
                                        .into(),
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

    pub(super) async fn show(&mut self, name: &str) -> Result<String, SourceError> {
        let rows = self.simple_query(&format!("SHOW {name}")).await?;
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .ok_or_else(|| SourceError::Protocol(format!("SHOW {name} returned no value")))
    }

    /// Reads one whole backend message.
    pub(super) async fn read_message(&mut self) -> Result<(u8, Bytes), SourceError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

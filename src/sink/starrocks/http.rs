//! HTTP for Stream Load over libcurl: blocking calls, run on the blocking pool.
//!
//! - `Expect: 100-continue` on every load: the FE requires it, and a request the
//!   server rejects (bad auth, unknown table, redirect) costs no body transfer.
//! - Redirects are followed by hand (up to [`MAX_HOPS`]): the FE answers `307` with a
//!   `Location` on a BE (or the leader FE) that carries no credentials, and generic
//!   redirect handling either drops `Authorization` on a host change or refuses to
//!   replay a PUT body. The same handle re-sends the same headers, credentials and
//!   the full body.
//! - Handles are pooled, so libcurl keeps BE connections alive between loads (the FE
//!   closes its connection after every reply; BE connections can be reused).

use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use curl::easy::{Easy2, Handler, List, ReadError, WriteError};

use crate::config::Secret;

/// Most redirects followed for one request (non-leader FE → leader FE → BE).
pub const MAX_HOPS: usize = 3;

/// Transport-level failures (no usable HTTP reply).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// libcurl failed (connect, reset, timeout, TLS…). The outcome of a load that
    /// got this far is unknown.
    #[error("HTTP {method} {url}: {message}")]
    Transport {
        /// Method.
        method: &'static str,
        /// URL (no credentials).
        url: String,
        /// curl's description.
        message: String,
    },
    /// A redirect without a usable `Location`, or too many of them.
    #[error("HTTP {method} {url}: {message}")]
    Redirect {
        /// Method.
        method: &'static str,
        /// URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// A final (non-redirect) HTTP reply.
#[derive(Clone, Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u32,
    /// Body.
    pub body: Vec<u8>,
    /// URL that produced the reply.
    pub url: String,
    /// Redirects followed.
    pub hops: usize,
    /// New connections libcurl opened for this request, over every hop (0 when
    /// every hop reused a cached connection).
    pub connects: u64,
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Basic auth user.
    pub user: String,
    /// Basic auth password.
    pub password: Secret,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// How long to wait for `100 Continue` before sending the body anyway.
    pub expect_timeout: Duration,
    /// Keep connections open between requests where the server allows it. The FE
    /// closes its connection after every load, a BE keeps it: with reuse a load opens
    /// one connection (the FE) instead of two. Off only to measure the difference.
    pub reuse_connections: bool,
}

/// libcurl callbacks: feeds the request body, collects the reply.
#[derive(Default)]
struct Exchange {
    body: Arc<Vec<u8>>,
    sent: usize,
    reply: Vec<u8>,
    location: Option<String>,
}

/// Replies are small JSON documents; refuse absurd ones.
const MAX_REPLY: usize = 16 << 20;

impl Handler for Exchange {
    fn read(&mut self, data: &mut [u8]) -> Result<usize, ReadError> {
        let rest = self.body.get(self.sent..).unwrap_or_default();
        let n = data.len().min(rest.len());
        data[..n].copy_from_slice(&rest[..n]);
        self.sent += n;
        Ok(n)
    }

    fn seek(&mut self, whence: std::io::SeekFrom) -> curl::easy::SeekResult {
        // libcurl rewinds the body when it must send it again on the same handle.
        match whence {
            std::io::SeekFrom::Start(0) => {
                self.sent = 0;
                curl::easy::SeekResult::Ok
            }
            _ => curl::easy::SeekResult::CantSeek,
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if self.reply.len() + data.len() > MAX_REPLY {
            return Ok(0);
        }
        self.reply.extend_from_slice(data);
        Ok(data.len())
    }

    fn header(&mut self, data: &[u8]) -> bool {
        if let Ok(line) = std::str::from_utf8(data) {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("location") {
                    self.location = Some(v.trim().to_owned());
                }
            }
        }
        true
    }
}

/// A pool of libcurl handles sharing one set of settings.
pub struct HttpClient {
    settings: HttpSettings,
    pool: Mutex<Vec<Easy2<Exchange>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("settings", &self.settings)
            .finish()
    }
}

enum Method {
    Put(Arc<Vec<u8>>),
    Post,
    Get,
}

impl Method {
    fn name(&self) -> &'static str {
        match self {
            Method::Put(_) => "PUT",
            Method::Post => "POST",
            Method::Get => "GET",
        }
    }
}

fn transport<'a>(method: &'static str, url: &'a str) -> impl Fn(curl::Error) -> HttpError + 'a {
    move |e| HttpError::Transport {
        method,
        url: url.to_owned(),
        message: e.to_string(),
    }
}

impl HttpClient {
    /// A client with `settings`.
    pub fn new(settings: HttpSettings) -> Self {
        curl::init();
        HttpClient {
            settings,
            pool: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Easy2<Exchange> {
        self.pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Easy2::new(Exchange::default()))
    }

    fn give(&self, easy: Easy2<Exchange>) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 16 {
                p.push(easy);
            }
        }
    }

    /// `PUT` with `Expect: 100-continue`, following redirects by hand.
    pub fn put(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Arc<Vec<u8>>,
    ) -> Result<HttpReply, HttpError> {
        self.request(url, headers, Method::Put(body))
    }

    /// `POST` without a body (transaction API), following redirects by hand.
    pub fn post(&self, url: &str, headers: &[(String, String)]) -> Result<HttpReply, HttpError> {
        self.request(url, headers, Method::Post)
    }

    /// `GET`, following redirects by hand.
    pub fn get(&self, url: &str) -> Result<HttpReply, HttpError> {
        self.request(url, &[], Method::Get)
    }

    fn request(
        &self,
        url: &str,
        headers: &[(String, String)],
        method: Method,
    ) -> Result<HttpReply, HttpError> {
        let mut easy = self.take();
        let mut current = url.to_owned();
        let mut hops = 0;
        let mut connects = 0;
        let result = loop {
            let (status, body, location) = match self.once(&mut easy, &current, headers, &method) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            connects += easy.num_connects().unwrap_or(0);
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                break Ok(HttpReply {
                    status,
                    body,
                    url: current,
                    hops,
                    connects,
                });
            }
            hops += 1;
            if hops > MAX_HOPS {
                break Err(HttpError::Redirect {
                    method: method.name(),
                    url: current,
                    message: format!("more than {MAX_HOPS} redirects"),
                });
            }
            let Some(next) = location else {
                break Err(HttpError::Redirect {
                    method: method.name(),
                    url: current,
                    message: format!("redirect {status} without a Location header"),
                });
            };
            match resolve(&current, &next) {
                Ok(u) => current = u,
                Err(message) => {
                    break Err(HttpError::Redirect {
                        method: method.name(),
                        url: current,
                        message,
                    })
                }
            }
        };
        // A handle that failed mid-transfer may hold a broken connection; libcurl
        // detects dead cached connections itself, so the handle can be reused.
        self.give(easy);
        result
    }

    fn once(
        &self,
        easy: &mut Easy2<Exchange>,
        url: &str,
        headers: &[(String, String)],
        method: &Method,
    ) -> Result<(u32, Vec<u8>, Option<String>), HttpError> {
        let m = method.name();
        let err = transport(m, url);
        easy.reset();
        *easy.get_mut() = Exchange::default();
        easy.url(url).map_err(&err)?;
        easy.follow_location(false).map_err(&err)?;
        easy.connect_timeout(self.settings.connect_timeout)
            .map_err(&err)?;
        easy.timeout(self.settings.request_timeout).map_err(&err)?;
        easy.expect_100_timeout(self.settings.expect_timeout)
            .map_err(&err)?;
        easy.tcp_nodelay(true).map_err(&err)?;
        easy.forbid_reuse(!self.settings.reuse_connections)
            .map_err(&err)?;
        easy.username(&self.settings.user).map_err(&err)?;
        easy.password(self.settings.password.expose())
            .map_err(&err)?;
        let mut auth = curl::easy::Auth::new();
        auth.basic(true);
        easy.http_auth(&auth).map_err(&err)?;
        let mut list = List::new();
        for (k, v) in headers {
            list.append(&format!("{k}: {v}")).map_err(&err)?;
        }
        match method {
            Method::Put(b) => {
                easy.upload(true).map_err(&err)?;
                easy.in_filesize(b.len() as u64).map_err(&err)?;
                list.append("Expect: 100-continue").map_err(&err)?;
                easy.get_mut().body = b.clone();
            }
            Method::Post => {
                easy.post(true).map_err(&err)?;
                easy.post_field_size(0).map_err(&err)?;
            }
            Method::Get => {
                easy.get(true).map_err(&err)?;
            }
        }
        easy.http_headers(list).map_err(&err)?;
        easy.perform().map_err(&err)?;
        let status = easy.response_code().map_err(&err)?;
        let ex = std::mem::take(easy.get_mut());
        Ok((status, ex.reply, ex.location))
    }
}

/// Resolves a `Location` against the URL that returned it; only http(s) targets.
fn resolve(base: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(base).map_err(|e| format!("bad request URL: {e}"))?;
    let next = base
        .join(location)
        .map_err(|e| format!("bad Location {location:?}: {e}"))?;
    match next.scheme() {
        "http" | "https" => Ok(next.to_string()),
        s => Err(format!("redirect to unsupported scheme {s:?} ({location})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_locations_resolve() {
        assert_eq!(
            resolve(
                "http://fe:8030/api/db/t/_stream_load",
                "http://be:8040/api/db/t/_stream_load?x=1"
            )
            .expect("ok"),
            "http://be:8040/api/db/t/_stream_load?x=1"
        );
        assert_eq!(
            resolve("http://fe:8030/api/db/t/_stream_load", "/other").expect("ok"),
            "http://fe:8030/other"
        );
        assert!(resolve("http://fe:8030/", "ftp://x/").is_err());
    }
}

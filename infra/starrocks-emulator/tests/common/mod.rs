//! Test helpers: a private MariaDB, an emulator on random ports, and a small raw
//! HTTP/1.1 client that lets a test see exactly what goes over the socket (whether
//! `100 Continue` came, whether the body was sent, whether the server closed).

#![allow(dead_code)]

use std::time::Duration;

use dbmazz_testkit::MariaDb;
use mysql_async::prelude::Queryable;
use sonic_rs::JsonValueTrait;
use starrocks_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A MariaDB and an emulator in front of it.
pub struct Env {
    pub db: MariaDb,
    pub emu: Option<EmulatorHandle>,
    pub pool: mysql_async::Pool,
    pub cfg: EmulatorConfig,
}

pub fn mariadb_url(db: &MariaDb) -> String {
    format!("mysql://root@127.0.0.1:{}/", db.port())
}

impl Env {
    /// Starts MariaDB with database `sink` and an emulator (users root:"" and bob:secret).
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut EmulatorConfig)) -> Env {
        let db = tokio::task::spawn_blocking(|| MariaDb::start().expect("start mariadb"))
            .await
            .expect("join");
        db.create_database("sink").expect("create db");
        let mut cfg = EmulatorConfig::new(mariadb_url(&db));
        cfg.users = vec![
            ("root".into(), String::new()),
            ("bob".into(), "secret".into()),
        ];
        f(&mut cfg);
        let emu = Emulator::start(cfg.clone()).await.expect("start emulator");
        let pool = mysql_async::Pool::new(db.url("sink").as_str());
        Env {
            db,
            emu: Some(emu),
            pool,
            cfg,
        }
    }

    pub fn emu(&self) -> &EmulatorHandle {
        self.emu.as_ref().expect("emulator running")
    }

    /// Stops the emulator and starts it again on the same ports and MariaDB.
    pub async fn restart(&mut self) {
        let old = self.emu.take().expect("running");
        let (fe, be, admin) = (old.fe_port(), old.be_port(), old.admin_port());
        old.shutdown().await;
        let mut cfg = self.cfg.clone();
        cfg.fe_addr.set_port(fe);
        cfg.be_addr.set_port(be);
        cfg.admin_addr.set_port(admin);
        let mut last = None;
        for _ in 0..50 {
            match Emulator::start(cfg.clone()).await {
                Ok(e) => {
                    self.emu = Some(e);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("restart failed: {last:?}");
    }

    pub async fn sql(&self, q: &str) {
        let mut c = self.pool.get_conn().await.expect("conn");
        c.query_drop(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    }

    /// Rows as strings (NULL as "NULL"), tab-separated columns.
    pub async fn rows(&self, q: &str) -> Vec<String> {
        let mut c = self.pool.get_conn().await.expect("conn");
        let rows: Vec<mysql_async::Row> = c.query(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        rows.into_iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| match r.as_ref(i) {
                        Some(mysql_async::Value::NULL) | None => "NULL".to_owned(),
                        Some(mysql_async::Value::Bytes(b)) => {
                            String::from_utf8_lossy(b).into_owned()
                        }
                        Some(v) => v.as_sql(true).trim_matches('\'').to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect()
    }

    /// A Stream Load through the FE, following the 307 and re-sending credentials.
    pub async fn load(&self, table: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        load_via(
            &self.emu().fe_url(),
            "sink",
            table,
            ("root", ""),
            headers,
            body.as_bytes(),
        )
        .await
    }

    pub async fn admin_post(&self, path: &str, json: &str) -> Resp {
        let url = format!("{}{path}", self.emu().admin_url());
        send(&Req::new("POST", &url).body(json.as_bytes()))
            .await
            .expect("admin")
    }

    pub async fn admin_get(&self, path: &str) -> Resp {
        let url = format!("{}{path}", self.emu().admin_url());
        send(&Req::new("GET", &url)).await.expect("admin")
    }

    pub async fn fault(&self, json: &str) {
        let r = self.admin_post("/faults", json).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// `get_load_state` for a label.
    pub async fn label_state(&self, label: &str) -> String {
        let url = format!(
            "{}/api/sink/get_load_state?label={label}",
            self.emu().fe_url()
        );
        let r = send(&Req::new("GET", &url).auth("root", ""))
            .await
            .expect("state");
        r.json()["state"].as_str().unwrap_or("?").to_owned()
    }

    /// A transaction operation through the FE (following redirects).
    pub async fn txn(
        &self,
        op: &str,
        label: &str,
        table: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let url = format!("{}/api/transaction/{op}", self.emu().fe_url());
        let method = if op == "load" { "PUT" } else { "POST" };
        let mut req = Req::new(method, &url)
            .auth("root", "")
            .header("label", label)
            .header("db", "sink");
        if !table.is_empty() {
            req = req.header("table", table);
        }
        for (k, v) in extra {
            req = req.header(k, v);
        }
        if op == "load" {
            req = req.body(body.as_bytes()).expect_continue();
        }
        follow(req).await
    }
}

/// A load through `fe_url` that follows the redirect by hand (as dbmazz does).
pub async fn load_via(
    fe_url: &str,
    db: &str,
    table: &str,
    user: (&str, &str),
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let url = format!("{fe_url}/api/{db}/{table}/_stream_load");
    let mut req = Req::new("PUT", &url)
        .auth(user.0, user.1)
        .body(body)
        .expect_continue();
    for (k, v) in headers {
        req = req.header(k, v);
    }
    follow(req).await
}

/// Sends `req`, and on 307 sends it again to `Location` (up to 2 hops).
pub async fn follow(req: Req) -> Resp {
    let mut req = req;
    for _ in 0..3 {
        let r = send(&req).await.expect("request");
        if r.status != 307 {
            return r;
        }
        req.url = r.header("location").expect("Location").to_owned();
    }
    panic!("too many redirects");
}

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub chunked: bool,
    pub expect: bool,
    pub http10: bool,
}

impl Req {
    pub fn new(method: &str, url: &str) -> Req {
        Req {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            chunked: false,
            expect: false,
            http10: false,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn auth(self, user: &str, pw: &str) -> Req {
        use base64::Engine;
        let t = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        self.header("Authorization", &format!("Basic {t}"))
    }
    pub fn body(mut self, b: &[u8]) -> Req {
        self.body = Some(b.to_vec());
        self
    }
    pub fn chunked(mut self) -> Req {
        self.chunked = true;
        self
    }
    pub fn expect_continue(mut self) -> Req {
        self.expect = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The server sent `100 Continue`.
    pub got_continue: bool,
    /// The request body went out.
    pub body_sent: bool,
    /// The server closed the connection after the response.
    pub closed_after: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json_like::Value {
        serde_json_like::parse(&self.body)
    }
    pub fn status_field(&self) -> String {
        let v = self.json();
        v["Status"]
            .as_str()
            .or(v["status"].as_str())
            .unwrap_or("")
            .to_owned()
    }
}

/// JSON access for tests (sonic-rs values with index sugar).
pub mod serde_json_like {
    pub use sonic_rs::{JsonValueTrait, Value};
    pub fn parse(s: &str) -> Value {
        sonic_rs::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (
        host.to_owned(),
        if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
    )
}

/// Sends one request on a fresh connection.
pub async fn send(req: &Req) -> std::io::Result<Resp> {
    let (host, path) = split_url(&req.url);
    let mut s = TcpStream::connect(&host).await?;
    let mut head = format!(
        "{} {path} {}\r\nHost: {host}\r\n",
        req.method,
        if req.http10 { "HTTP/1.0" } else { "HTTP/1.1" }
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = &req.body {
        if req.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
    } else if req.method == "POST" || req.method == "PUT" {
        head.push_str("Content-Length: 0\r\n");
    }
    if req.expect {
        head.push_str("Expect: 100-continue\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut got_continue = false;
    let mut body_sent = false;
    if req.body.is_some() && !req.expect {
        // Ignore write errors: the server may answer and close before reading.
        let _ = write_body(&mut s, req).await;
        body_sent = true;
    }
    loop {
        let (status, headers, head_len) = match read_head(&mut s, &mut buf).await? {
            Some(h) => h,
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed without a response",
                ))
            }
        };
        buf.drain(..head_len);
        if status == 100 {
            got_continue = true;
            if req.body.is_some() && !body_sent {
                write_body(&mut s, req).await?;
                body_sent = true;
            }
            continue;
        }
        let hv = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v): &(String, String)| v.clone())
        };
        let body = if let Some(len) = hv("content-length") {
            let len: usize = len.trim().parse().unwrap_or(0);
            while buf.len() < len {
                let mut tmp = [0u8; 8192];
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            buf.drain(..len.min(buf.len())).collect::<Vec<u8>>()
        } else if hv("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut s, &mut buf).await?
        } else {
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await?;
            buf.extend_from_slice(&rest);
            std::mem::take(&mut buf)
        };
        let closed_after = {
            let mut tmp = [0u8; 1];
            matches!(
                tokio::time::timeout(Duration::from_millis(300), s.read(&mut tmp)).await,
                Ok(Ok(0)) | Ok(Err(_))
            )
        };
        return Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            got_continue,
            body_sent,
            closed_after,
        });
    }
}

async fn write_body(s: &mut TcpStream, req: &Req) -> std::io::Result<()> {
    let body = req.body.clone().unwrap_or_default();
    if req.chunked {
        for c in body.chunks(7) {
            s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await?;
            s.write_all(c).await?;
            s.write_all(b"\r\n").await?;
        }
        s.write_all(b"0\r\n\r\n").await?;
    } else {
        s.write_all(&body).await?;
    }
    Ok(())
}

type Head = (u16, Vec<(String, String)>, usize);

async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Head>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status: u16 = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            return Ok(Some((status, headers, end + 4)));
        }
        let mut tmp = [0u8; 8192];
        let n = match tokio::time::timeout(Duration::from_secs(30), s.read(&mut tmp)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no response",
                ))
            }
        };
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let mut tmp = [0u8; 8192];
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Ok(out);
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let pos = buf.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&buf[..pos]).trim(), 16).unwrap_or(0);
        buf.drain(..pos + 2);
        while buf.len() < size + 2 {
            let mut tmp = [0u8; 8192];
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        if size == 0 {
            return Ok(out);
        }
        out.extend(buf.drain(..size.min(buf.len())));
        buf.drain(..2.min(buf.len()));
    }
}

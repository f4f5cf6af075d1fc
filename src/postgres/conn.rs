//! Connection strings (libpq URL or key/value form).
//!
//! One parser serves every PostgreSQL connection dbmazz opens: the replication
//! connection of the source, and the SQL connections ([`super::sql::connect`]) of
//! setup, checkpoints, leases, takeover and slot inspection.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Secret;

/// A connection string that cannot be used, or TLS settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The connection string is malformed or names an unsupported option.
    #[error("source configuration: {0}")]
    Config(String),
    /// TLS could not be set up (certificate files, modes).
    #[error("TLS with PostgreSQL: {0}")]
    Tls(String),
}

/// Why an SQL connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or its TLS settings are unusable.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The server could not be reached or refused the login.
    #[error("{0}")]
    Connect(String),
}

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
    type Err = ParamsError;
    fn from_str(s: &str) -> Result<Self, ParamsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ParamsError::Config(format!(
                    "sslmode '{other}' is not valid; use disable, prefer, require, verify-ca or \
                     verify-full"
                )))
            }
        })
    }
}

/// Connection parameters parsed from a libpq URL or key/value string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnParams {
    /// Host name, IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: Option<Secret>,
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

impl ConnParams {
    /// Parses `postgres://user:pw@host:port/db?sslmode=…` or
    /// `host=… port=… user=… password='…' dbname=… sslmode=…`.
    pub fn parse(s: &str) -> Result<Self, ParamsError> {
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
                ParamsError::Config(format!("the source URL is not a valid URL: {e}"))
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
                p.password = Some(Secret::new(pct(pw)?));
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
            return Err(ParamsError::Config(
                "several hosts in the source URL are not supported; give one host".into(),
            ));
        }
        Ok(p)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ParamsError> {
        match key {
            "host" | "hostaddr" => self.host = value.to_owned(),
            "port" => {
                self.port = value.parse().map_err(|_| {
                    ParamsError::Config(format!("port '{value}' is not a valid port number"))
                })?
            }
            "user" => self.user = value.to_owned(),
            "password" => self.password = Some(Secret::new(value)),
            "dbname" => self.dbname = value.to_owned(),
            "sslmode" => self.sslmode = value.parse()?,
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "sslcert" => self.sslcert = Some(PathBuf::from(value)),
            "sslkey" => self.sslkey = Some(PathBuf::from(value)),
            "application_name" => self.application_name = Some(value.to_owned()),
            "connect_timeout" => {
                let secs: u64 = value.parse().map_err(|_| {
                    ParamsError::Config(format!(
                        "connect_timeout '{value}' is not a whole number of seconds"
                    ))
                })?;
                self.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            other => {
                return Err(ParamsError::Config(format!(
                    "connection option '{other}' is not supported; supported: host, hostaddr, \
                     port, user, password, dbname, sslmode, sslrootcert, sslcert, sslkey, \
                     application_name, connect_timeout"
                )))
            }
        }
        Ok(())
    }
}

fn pct(s: &str) -> Result<String, ParamsError> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ParamsError::Config(format!("cannot decode '{s}' in the source URL")))
}

/// libpq key/value syntax: `key = value`, values optionally single-quoted with
/// `\'` and `\\` escapes.
fn parse_kv(s: &str) -> Result<Vec<(String, String)>, ParamsError> {
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
            return Err(ParamsError::Config(format!(
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
                        return Err(ParamsError::Config(format!(
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
        assert_eq!(p.password.as_ref().map(Secret::expose), Some("p/w x"));
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
        assert_eq!(p.password.as_ref().map(Secret::expose), Some("it's secret"));
        assert_eq!(p.dbname, "app");
        assert_eq!(p.sslmode, SslMode::Disable);
        assert!(ConnParams::parse("host").is_err());
        assert!(ConnParams::parse("password='open").is_err());
        assert!(ConnParams::parse("port=x").is_err());
        let p = ConnParams::parse("user=bob").expect("valid");
        assert_eq!(p.dbname, "bob");
    }
}

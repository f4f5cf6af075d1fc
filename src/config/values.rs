//! Parsers for single configuration values. Each returns the parsed value or a short
//! reason saying what is wrong with the text; the loader adds the variable name, the
//! (redacted) value and the accepted values from the registry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use url::Url;

use super::SpillTarget;

/// A whole number within `min..=max`.
pub fn int_in(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a whole number".to_owned());
    }
    let n: u64 = t.parse().map_err(|_| format!("{t} is too large"))?;
    if n < min {
        return Err(format!("{n} is below the minimum {min}"));
    }
    if n > max {
        return Err(format!("{n} is above the maximum {max}"));
    }
    Ok(n)
}

/// `true`/`false` and the usual spellings.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("not a boolean".to_owned()),
    }
}

/// One of `words` (exact match after trimming).
pub fn choice(text: &str, words: &'static [&'static str]) -> Result<&'static str, String> {
    let t = text.trim();
    words
        .iter()
        .copied()
        .find(|w| *w == t)
        .ok_or_else(|| "not one of the accepted words".to_owned())
}

/// `IP:port` (IPv6 as `[::1]:port`).
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    t.parse::<SocketAddr>().map_err(|_| {
        if t.contains(':') && !t.starts_with(|c: char| c.is_ascii_digit() || c == '[') {
            "a host name is not accepted here: use an IP address such as 0.0.0.0 or 127.0.0.1"
                .to_owned()
        } else {
            "not an IP:port address".to_owned()
        }
    })
}

/// Characters allowed in a name, and its length bounds.
fn name_chars(
    text: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    what_allowed: &str,
) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".to_owned());
    }
    let len = text.chars().count();
    if len > max {
        return Err(format!("is {len} characters long, the maximum is {max}"));
    }
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        return Err(format!("contains {c:?}; only {what_allowed} are allowed"));
    }
    Ok(())
}

/// A replication slot name: `[a-z0-9_]{1,63}` (PostgreSQL's rule).
pub fn slot_name(text: &str) -> Result<String, String> {
    name_chars(
        text,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "lower-case letters, digits and `_`",
    )?;
    Ok(text.to_owned())
}

/// A lower-case SQL identifier that needs no quoting: `[a-z_][a-z0-9_]{0,62}`.
pub fn lower_ident(text: &str) -> Result<String, String> {
    name_chars(
        text,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "lower-case letters, digits and `_`",
    )?;
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("starts with a digit".to_owned());
    }
    Ok(text.to_owned())
}

/// `[A-Za-z0-9_]{1,max}`: the characters StarRocks allows in Stream Load labels.
fn label_word(text: &str, max: usize) -> Result<String, String> {
    name_chars(
        text,
        max,
        |c| c.is_ascii_alphanumeric() || c == '_',
        "letters, digits and `_`",
    )?;
    Ok(text.to_owned())
}

/// A job id: `[A-Za-z0-9_]{1,63}`; it appears in Stream Load labels, whose characters
/// StarRocks restricts to these.
pub fn job_id(text: &str) -> Result<String, String> {
    label_word(text, 63)
}

/// A Stream Load label prefix: `[A-Za-z0-9_]{1,32}`.
pub fn label_prefix(text: &str) -> Result<String, String> {
    label_word(text, 32)
}

/// A worker id: `[A-Za-z0-9._-]{1,128}`.
pub fn worker_id(text: &str) -> Result<String, String> {
    name_chars(
        text,
        128,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        "letters, digits, `.`, `_` and `-`",
    )?;
    Ok(text.to_owned())
}

/// The default worker id: `<hostname>-<pid>`, with the host name reduced to the
/// allowed characters.
pub fn default_worker_id() -> String {
    let host = gethostname::gethostname();
    let mut host: String = host
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    if host.is_empty() {
        host.push_str("dbmazz");
    }
    format!("{host}-{}", std::process::id())
}

/// A StarRocks user name: 1–128 characters, no `:` (HTTP basic auth) or control chars.
pub fn sink_user(text: &str) -> Result<String, String> {
    name_chars(
        text,
        128,
        |c| c != ':' && !c.is_control(),
        "characters other than `:` and control characters",
    )?;
    Ok(text.to_owned())
}

/// A bearer token: 16–4096 printable ASCII characters without spaces (valid in an
/// HTTP/2 header).
pub fn token(text: &str) -> Result<String, String> {
    let len = text.chars().count();
    if len < 16 {
        return Err(format!("is {len} characters long, the minimum is 16"));
    }
    if len > 4096 {
        return Err(format!("is {len} characters long, the maximum is 4096"));
    }
    if text.chars().any(|c| !c.is_ascii_graphic()) {
        return Err("contains spaces, control or non-ASCII characters".to_owned());
    }
    Ok(text.to_owned())
}

/// A host name or IP address (no scheme, no port).
pub fn host(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty".to_owned());
    }
    if t.contains("://") || t.contains('/') {
        return Err("is a URL; give only the host name".to_owned());
    }
    if t.parse::<std::net::IpAddr>().is_ok() {
        return Ok(t.to_owned());
    }
    if t.contains(':') {
        return Err("contains `:`; give the port in SINK_MYSQL_PORT".to_owned());
    }
    url::Host::parse(t).map_err(|e| format!("not a valid host name ({e})"))?;
    Ok(t.to_owned())
}

/// Parses a URL, saying what is wrong without echoing it (it may hold a password).
fn url(text: &str) -> Result<Url, String> {
    Url::parse(text.trim()).map_err(|e| format!("not a valid URL ({e})"))
}

const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

const PG_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "host",
    "port",
    "user",
    "password",
    "dbname",
];

/// A PostgreSQL connection URL, checked as libpq would read it. Every problem is
/// returned, joined by "; ".
pub fn postgres_url(text: &str) -> Result<Url, String> {
    let u = url(text)?;
    let mut problems = Vec::new();
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "scheme `{}` is not `postgres` or `postgresql`",
            u.scheme()
        ));
    }
    let mut has_host = u.host_str().is_some_and(|h| !h.is_empty());
    let mut has_user = !u.username().is_empty();
    let mut cert = None;
    let mut key = None;
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                if !SSLMODES.contains(&v.as_ref()) {
                    problems.push(format!(
                        "sslmode `{v}` is not one of {}",
                        SSLMODES.join(", ")
                    ));
                }
            }
            "sslrootcert" => {
                if v != "system" && !Path::new(v.as_ref()).is_file() {
                    problems.push(format!(
                        "sslrootcert `{v}` is not an existing file (or `system`)"
                    ));
                }
            }
            "sslcert" => cert = Some(v.into_owned()),
            "sslkey" => key = Some(v.into_owned()),
            "connect_timeout" => {
                if int_in(&v, 0, 3600).is_err() {
                    problems.push(format!(
                        "connect_timeout `{v}` is not a number of seconds from 0 to 3600"
                    ));
                }
            }
            "host" => has_host |= !v.is_empty(),
            "user" => has_user |= !v.is_empty(),
            "port" => {
                if int_in(&v, 1, 65535).is_err() {
                    problems.push(format!("port `{v}` is not a port number"));
                }
            }
            "application_name" | "password" | "dbname" => {}
            other => problems.push(format!(
                "query parameter `{other}` is not supported (supported: {})",
                PG_PARAMS.join(", ")
            )),
        }
    }
    match (&cert, &key) {
        (Some(c), Some(k)) => {
            for (what, p) in [("sslcert", c), ("sslkey", k)] {
                if !Path::new(p).is_file() {
                    problems.push(format!("{what} `{p}` is not an existing file"));
                }
            }
        }
        (Some(_), None) => problems.push("sslcert is set without sslkey".to_owned()),
        (None, Some(_)) => problems.push("sslkey is set without sslcert".to_owned()),
        (None, None) => {}
    }
    if !has_host {
        problems.push("no host (write postgres://user@host:5432/database)".to_owned());
    }
    if !has_user {
        problems.push("no user (write postgres://user@host:5432/database)".to_owned());
    }
    if u.fragment().is_some() {
        problems.push("a `#fragment` is not allowed".to_owned());
    }
    if problems.is_empty() {
        Ok(u)
    } else {
        Err(problems.join("; "))
    }
}

/// A Redis URL: `redis://` or `rediss://` with a host.
pub fn redis_url(text: &str) -> Result<Url, String> {
    let u = url(text)?;
    if u.scheme() == "rediss" {
        return Err(
            "TLS to Redis (`rediss://`) is not supported yet; use `redis://` on a private \
             network or through a TLS tunnel, or DBMAZZ_LEASE_BACKEND=postgres"
                .to_owned(),
        );
    }
    if u.scheme() != "redis" {
        return Err(format!("scheme `{}` is not `redis`", u.scheme()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("no host (write redis://host:6379/0)".to_owned());
    }
    Ok(u)
}

/// The StarRocks FE HTTP URL: `http(s)://host[:port]` with no credentials, path, query
/// or fragment.
pub fn sink_url(text: &str) -> Result<Url, String> {
    let u = url(text)?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not `http` or `https`", u.scheme()));
    }
    let mut problems = Vec::new();
    if u.host_str().is_none_or(str::is_empty) {
        problems.push("no host".to_owned());
    }
    if !u.username().is_empty() || u.password().is_some() {
        problems.push("contains credentials; use SINK_USER and SINK_PASSWORD".to_owned());
    }
    if u.path() != "/" && !u.path().is_empty() {
        problems.push(format!(
            "has the path `{}`; give only the FE address (dbmazz adds the Stream Load path)",
            u.path()
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        problems.push("has a query or fragment".to_owned());
    }
    if problems.is_empty() {
        Ok(u)
    } else {
        Err(problems.join("; "))
    }
}

/// An S3 bucket name per AWS's rules (3–63 characters, `[a-z0-9.-]`, starting and
/// ending with a letter or digit, no `..`, not shaped like an IP address).
fn bucket(name: &str) -> Result<(), String> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Err(format!("bucket `{name}` must be 3 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(format!(
            "bucket `{name}` may only contain lower-case letters, digits, `.` and `-`"
        ));
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return Err(format!(
            "bucket `{name}` must start and end with a letter or digit"
        ));
    }
    if name.contains("..") {
        return Err(format!("bucket `{name}` contains `..`"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("bucket `{name}` is shaped like an IP address"));
    }
    Ok(())
}

/// `s3://bucket/prefix` or `file:///absolute/dir`.
pub fn spill_url(text: &str) -> Result<SpillTarget, String> {
    let u = url(text)?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err("a query or fragment is not allowed".to_owned());
    }
    match u.scheme() {
        "s3" => {
            if !u.username().is_empty() || u.password().is_some() || u.port().is_some() {
                return Err(
                    "credentials and ports do not belong in an s3:// URL (use the AWS_* \
                     variables)"
                        .to_owned(),
                );
            }
            let b = u.host_str().unwrap_or("");
            if b.is_empty() {
                return Err("no bucket (write s3://bucket/prefix)".to_owned());
            }
            bucket(b)?;
            let prefix = u.path().trim_matches('/');
            if prefix.split('/').any(|seg| seg == "." || seg == "..") {
                return Err("the prefix contains `.` or `..` segments".to_owned());
            }
            if prefix.contains("//") {
                return Err("the prefix contains an empty segment (`//`)".to_owned());
            }
            Ok(SpillTarget::S3 {
                bucket: b.to_owned(),
                prefix: prefix.to_owned(),
            })
        }
        "file" => {
            if u.host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(
                    "file URLs need an absolute path: file:///dir (three slashes)".to_owned(),
                );
            }
            let path: PathBuf = u
                .to_file_path()
                .map_err(|()| "not an absolute local path".to_owned())?;
            if path.exists() && !path.is_dir() {
                return Err(format!("{} exists and is not a directory", path.display()));
            }
            Ok(SpillTarget::Local(path))
        }
        other => Err(format!("scheme `{other}` is not `s3` or `file`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_whole_and_bounded() {
        assert_eq!(int_in("10", 1, 100), Ok(10));
        assert_eq!(int_in(" 10 ", 1, 100), Ok(10));
        assert!(int_in("abc", 1, 100).is_err());
        assert!(int_in("-1", 1, 100).is_err());
        assert!(int_in("1.5", 1, 100).is_err());
        assert!(int_in("1e3", 1, 10000).is_err());
        assert!(int_in("0", 1, 100).expect_err("min").contains("minimum"));
        assert!(int_in("101", 1, 100).expect_err("max").contains("maximum"));
        assert!(int_in("99999999999999999999999", 1, 100)
            .expect_err("overflow")
            .contains("too large"));
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "1", "yes", "on"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for t in ["false", "0", "No", "off"] {
            assert_eq!(boolean(t), Ok(false), "{t}");
        }
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn choices_are_exact() {
        assert_eq!(choice("json", &["human", "json"]), Ok("json"));
        assert!(choice("JSON", &["human", "json"]).is_err());
    }

    #[test]
    fn socket_addrs_need_an_ip() {
        assert!(socket_addr("0.0.0.0:50051").is_ok());
        assert!(socket_addr("[::1]:9187").is_ok());
        assert!(socket_addr("localhost:50051")
            .expect_err("name")
            .contains("host name"));
        assert!(socket_addr("50051").is_err());
    }

    #[test]
    fn slot_names_follow_postgres_rules() {
        assert!(slot_name("dbmazz_slot_1").is_ok());
        assert!(slot_name("Upper").expect_err("upper").contains("'U'"));
        assert!(slot_name("a-b").is_err());
        assert!(slot_name(&"a".repeat(63)).is_ok());
        assert!(slot_name(&"a".repeat(64)).is_err());
        assert!(slot_name("").is_err());
    }

    #[test]
    fn lower_idents_do_not_start_with_digits() {
        assert!(lower_ident("dbmazz").is_ok());
        assert!(lower_ident("1x").is_err());
    }

    #[test]
    fn job_ids_and_label_prefixes() {
        assert!(job_id("orders_eu").is_ok());
        assert!(job_id("orders-eu").is_err());
        assert!(label_prefix("dbmazz").is_ok());
        assert!(label_prefix(&"a".repeat(33)).is_err());
        assert!(label_prefix("a b").is_err());
    }

    #[test]
    fn worker_ids() {
        assert!(worker_id("ip-10-0-0-1.ec2-123").is_ok());
        assert!(worker_id("a/b").is_err());
        let d = default_worker_id();
        assert!(worker_id(&d).is_ok(), "{d}");
        assert!(d.ends_with(&format!("-{}", std::process::id())));
    }

    #[test]
    fn tokens() {
        assert!(token("0123456789abcdef").is_ok());
        assert!(token("short").expect_err("short").contains("minimum is 16"));
        assert!(token("0123456789abcdef with space").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(host("fe.internal"), Ok("fe.internal".to_owned()));
        assert!(host("10.0.0.1").is_ok());
        assert!(host("::1").is_ok());
        assert!(host("http://fe").is_err());
        assert!(host("fe:9030")
            .expect_err("port")
            .contains("SINK_MYSQL_PORT"));
    }

    #[test]
    fn postgres_urls() {
        assert!(postgres_url("postgres://app@db:5432/shop").is_ok());
        assert!(postgres_url("postgresql://app:pw@db/shop?sslmode=verify-full").is_ok());
        assert!(postgres_url("postgres:///shop?host=/var/run/postgresql&user=app").is_ok());
        assert!(postgres_url("mysql://app@db/shop")
            .expect_err("scheme")
            .contains("scheme"));
        let e = postgres_url("postgres://db/shop?sslmode=bogus&sslmdoe=x").expect_err("bad");
        assert!(e.contains("sslmode `bogus`"), "{e}");
        assert!(e.contains("`sslmdoe` is not supported"), "{e}");
        assert!(e.contains("no user"), "{e}");
        let e = postgres_url("postgres://app@db/shop?sslrootcert=/nonexistent/ca.pem")
            .expect_err("rootcert");
        assert!(e.contains("sslrootcert"), "{e}");
        assert!(postgres_url("postgres://app@db/shop?sslrootcert=system").is_ok());
        assert!(postgres_url("postgres://app@db/shop?sslcert=/x")
            .expect_err("cert alone")
            .contains("without sslkey"));
        assert!(postgres_url("postgres://app@db/shop?connect_timeout=abc").is_err());
        assert!(postgres_url("not a url").is_err());
    }

    #[test]
    fn postgres_url_errors_do_not_echo_the_password() {
        let e = postgres_url("postgres://app:hunter2@db/shop?sslmode=nope").expect_err("bad");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn redis_urls() {
        assert!(redis_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(redis_url("redis://:pw@cache:6380").is_ok());
        assert!(redis_url("rediss://:pw@cache:6380")
            .expect_err("tls")
            .contains("not supported"));
        assert!(redis_url("http://cache").is_err());
    }

    #[test]
    fn sink_urls() {
        assert!(sink_url("http://fe:8030").is_ok());
        assert!(sink_url("https://fe.example/").is_ok());
        assert!(sink_url("ftp://x").expect_err("ftp").contains("`ftp`"));
        assert!(sink_url("http://u:p@fe:8030")
            .expect_err("creds")
            .contains("SINK_USER"));
        assert!(sink_url("http://fe:8030/api/db/t/_stream_load")
            .expect_err("path")
            .contains("path"));
    }

    #[test]
    fn spill_urls() {
        assert_eq!(
            spill_url("s3://my-bucket/dbmazz/spill/"),
            Ok(SpillTarget::S3 {
                bucket: "my-bucket".into(),
                prefix: "dbmazz/spill".into()
            })
        );
        assert_eq!(
            spill_url("s3://my-bucket"),
            Ok(SpillTarget::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            })
        );
        assert!(spill_url("s3://My_Bucket/x").is_err());
        assert!(spill_url("s3://ab/x").is_err());
        assert!(spill_url("s3://192.168.1.1/x").is_err());
        assert!(spill_url("s3://b-1/a//b").is_err());
        assert_eq!(
            spill_url("file:///var/lib/dbmazz/spill"),
            Ok(SpillTarget::Local(PathBuf::from("/var/lib/dbmazz/spill")))
        );
        assert!(spill_url("file://relative/dir").is_err());
        assert!(spill_url("/tmp/x").is_err());
        assert!(spill_url("gs://bucket/x").is_err());
        // An existing file is not a directory.
        assert!(spill_url("file:///etc/hostname").is_err() || !Path::new("/etc/hostname").exists());
    }
}

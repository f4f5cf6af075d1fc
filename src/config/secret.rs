//! Values that must never reach a log line, a status reply, a span or an error message.
//!
//! [`Secret`] holds a password or token; [`SecretUrl`] holds a connection URL that may
//! carry a password (in the user-info part or in a `password=` query parameter). Their
//! `Debug` and `Display` print a redacted form; the clear value is only reachable
//! through an explicit `expose*` call, which makes every place that sends a secret over
//! the wire easy to find with grep.

use std::fmt;

use url::Url;

/// What a redacted password looks like wherever dbmazz prints one.
pub const REDACTED: &str = "***";

/// Query parameters whose value is a secret in a connection URL.
const SECRET_QUERY_KEYS: &[&str] = &["password", "sslpassword", "token", "secret", "auth"];

/// A password or token. `Debug`/`Display` print `***` (or `<empty>` when it is empty,
/// which is not secret and helps to spot a missing value).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a clear value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear value, for sending to the service it authenticates against. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    /// Wraps the text as it is (command-line arguments).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Secret(value.clone())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl From<&SecretUrl> for Secret {
    /// The URL's clear text, still wrapped.
    fn from(url: &SecretUrl) -> Self {
        Secret(url.expose_str().to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("<empty>")
        } else {
            f.write_str(REDACTED)
        }
    }
}

/// A URL that may contain credentials. `Debug`/`Display` print it with the password
/// (user-info and secret query parameters) replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// Wraps a parsed URL.
    pub fn new(url: Url) -> Self {
        SecretUrl(url)
    }

    /// The clear URL, for connecting. Never log it.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// The clear URL as text, for connecting. Never log it.
    pub fn expose_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with every secret replaced by `***`; safe to print.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// Scheme (`postgres`, `redis`, ...).
    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    /// True when the URL carries a password (user-info or query parameter).
    pub fn has_password(&self) -> bool {
        self.0.password().is_some()
            || self
                .0
                .query_pairs()
                .any(|(k, _)| is_secret_query_key(k.as_ref()))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn is_secret_query_key(key: &str) -> bool {
    SECRET_QUERY_KEYS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(key))
}

/// `url` with the user-info password and secret query parameters replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        // Setting a password only fails for URLs that cannot carry one, and this one does.
        let _ = u.set_password(Some(REDACTED));
    }
    if u.query_pairs()
        .any(|(k, _)| is_secret_query_key(k.as_ref()))
    {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_query_key(k.as_ref()) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `set_password` percent-encodes nothing in `***`, so the text shows it as is.
    u.to_string()
}

/// A printable stand-in for a secret value that could not even be parsed: shows its
/// length and nothing of its content.
pub fn hidden(value: &str) -> String {
    format!("<hidden secret, {} characters>", value.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn empty_secret_says_so() {
        assert_eq!(Secret::new("").to_string(), "<empty>");
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn url_password_is_redacted() {
        let u = SecretUrl::new(
            Url::parse("postgres://app:s3cr%40t@db.example:5432/shop?sslmode=require")
                .expect("url"),
        );
        let shown = u.to_string();
        assert_eq!(
            shown,
            "postgres://app:***@db.example:5432/shop?sslmode=require"
        );
        assert!(!format!("{u:?}").contains("s3cr"));
        assert!(u.has_password());
        assert_eq!(u.expose().password(), Some("s3cr%40t"));
    }

    #[test]
    fn url_query_password_is_redacted() {
        let u = SecretUrl::new(
            Url::parse("postgres://db/shop?user=app&password=topsecret&sslmode=disable")
                .expect("url"),
        );
        let shown = u.redacted();
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        assert!(shown.contains("sslmode=disable"), "{shown}");
    }

    #[test]
    fn url_without_secret_is_unchanged() {
        let u = SecretUrl::new(Url::parse("redis://127.0.0.1:6379/0").expect("url"));
        assert_eq!(u.to_string(), "redis://127.0.0.1:6379/0");
        assert!(!u.has_password());
    }

    #[test]
    fn hidden_shows_only_length() {
        assert_eq!(hidden("abc"), "<hidden secret, 3 characters>");
    }
}

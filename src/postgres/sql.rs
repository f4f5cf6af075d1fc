//! Ordinary SQL connections and the helpers every PostgreSQL user in dbmazz shares:
//! quoting (through `postgres_protocol::escape`, libpq's rules), readable server
//! messages, and creating dbmazz's own tables when several workers start at once.
//!
//! tokio-postgres does the protocol; TLS goes through tokio-postgres-rustls with the
//! rustls configuration [`super::tls`] builds for the URL's `sslmode`
//! (`verify-ca`/`verify-full` checks included, which tokio-postgres' own parser does
//! not offer).

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use super::conn::{ConnParams, ConnectError, SslMode};
use super::tls;
use crate::config::Secret;

/// Connects to `url` for ordinary SQL; the connection task runs on the current
/// runtime and ends when the client is dropped.
pub async fn connect(url: &Secret) -> Result<Client, ConnectError> {
    let p = ConnParams::parse(url.expose())?;
    let mut cfg = Config::new();
    cfg.host(&p.host)
        .port(p.port)
        .user(&p.user)
        .dbname(&p.dbname);
    if let Some(pw) = &p.password {
        cfg.password(pw.expose());
    }
    cfg.application_name(p.application_name.as_deref().unwrap_or("dbmazz"));
    if let Some(t) = p.connect_timeout {
        cfg.connect_timeout(t);
    }
    cfg.ssl_mode(match p.sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls::client_config(&p)?);
    let (client, conn) = cfg
        .connect(tls)
        .await
        .map_err(|e| ConnectError::Connect(db_message(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "SQL connection closed");
        }
    });
    Ok(client)
}

/// Quotes an identifier: `a"b` → `"a""b"`.
pub fn quote_ident(s: &str) -> String {
    escape_identifier(s)
}

/// Quotes a string literal, safe whatever `standard_conforming_strings` is (a value
/// with backslashes becomes ` E'…'`).
pub fn quote_literal(s: &str) -> String {
    escape_literal(s)
}

/// `schema.name`, both quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The server's message (with its hint) for an error, or the driver's description
/// (`tokio_postgres::Error`'s own Display says only "db error").
pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(h) => format!("{} ({h})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

/// Runs `CREATE … IF NOT EXISTS` statements. Two workers creating the same schema or
/// table at the same moment make the loser see a unique violation on the catalog;
/// running the statements once more then finds the objects.
pub async fn create_if_absent(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    let mut attempt = 0;
    loop {
        match client.batch_execute(sql).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), " E'a\\\\b'''");
        assert_eq!(
            quote_literal(&quote_ident("my pub")),
            "'\"my pub\"'".to_string()
        );
        assert_eq!(qualified("s", "T"), "\"s\".\"T\"");
    }
}

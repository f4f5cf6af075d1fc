//! Ordinary SQL connections (setup, checkpoints) with the same connection string
//! and TLS rules as the replication connection.
//!
//! tokio-postgres does the protocol; TLS goes through tokio-postgres-rustls with
//! the rustls configuration [`super::postgres`] builds for the URL's `sslmode`
//! (`verify-ca`/`verify-full` checks included, which tokio-postgres' own parser
//! does not offer).

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, Config};

use super::error::SourceError;
use super::postgres::{tls, ConnParams, SslMode};

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

/// Why an SQL connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqlConnectError {
    /// The URL or its TLS settings are unusable.
    #[error(transparent)]
    Params(#[from] SourceError),
    /// The server could not be reached or refused the login.
    #[error("{0}")]
    Connect(String),
}

/// Connects to `url` for ordinary SQL; the connection task runs on the current
/// runtime and ends when the client is dropped.
pub async fn connect_sql(url: &str) -> Result<Client, SqlConnectError> {
    let p = ConnParams::parse(url)?;
    let mut cfg = Config::new();
    cfg.host(&p.host)
        .port(p.port)
        .user(&p.user)
        .dbname(&p.dbname);
    if let Some(pw) = &p.password {
        cfg.password(pw);
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
        .map_err(|e| SqlConnectError::Connect(db_message(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "SQL connection closed");
        }
    });
    Ok(client)
}

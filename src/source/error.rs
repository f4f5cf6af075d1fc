//! Errors of the replication source, split into transient (reconnect and resume
//! from the durable LSN) and definite (stop the pipeline; the message names the
//! fix). dbmazz never drops, recreates or advances a slot to get past an error.

use std::fmt;

use super::parser::ParseError;
use super::wal::FrameError;
use crate::error::ErrorKind;
use crate::lsn::Lsn;
use crate::postgres::ParamsError;

/// An `ErrorResponse` from the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL`, `PANIC`.
    pub severity: String,
    /// SQLSTATE.
    pub code: String,
    /// Primary message.
    pub message: String,
    /// Optional detail.
    pub detail: Option<String>,
    /// Optional hint.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " (detail: {d})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl ServerError {
    /// Parses the fields of an `ErrorResponse`/`NoticeResponse` body.
    pub fn parse(body: &[u8]) -> Self {
        let mut e = ServerError::default();
        let mut rest = body;
        while let Some((&field, tail)) = rest.split_first() {
            if field == 0 {
                break;
            }
            let end = memchr::memchr(0, tail).unwrap_or(tail.len());
            let value = String::from_utf8_lossy(&tail[..end]).into_owned();
            match field {
                b'V' => e.severity = value,
                b'S' if e.severity.is_empty() => e.severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
            rest = tail.get(end + 1..).unwrap_or_default();
        }
        e
    }

    /// True for SQLSTATE classes that a later attempt can get past: connection
    /// exceptions, insufficient resources, operator intervention (shutdown, restart,
    /// starting up), system errors, transaction rollbacks, and a slot still held by
    /// a walsender that has not exited yet.
    pub fn is_transient(&self) -> bool {
        let class = self.code.get(..2).unwrap_or("");
        matches!(class, "08" | "53" | "57" | "58" | "40") || self.code == "55006"
    }
}

/// Everything that can stop or interrupt the replication source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The configuration cannot work; the message says what to change.
    #[error("source configuration: {0}")]
    Config(String),
    /// TCP/Unix connect failed.
    #[error("cannot connect to PostgreSQL at {addr}: {source}")]
    Connect {
        /// Address tried.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting took longer than the configured timeout.
    #[error("timed out after {secs}s {what}")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// Seconds waited.
        secs: u64,
    },
    /// The connection broke.
    #[error("connection to PostgreSQL lost: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection or ended the replication stream.
    #[error(
        "PostgreSQL closed the replication connection ({0}); will resume from the durable LSN"
    )]
    Closed(&'static str),
    /// TLS could not be set up or the server's certificate was rejected.
    #[error("TLS with PostgreSQL: {0}")]
    Tls(String),
    /// Authentication failed or cannot be performed.
    #[error(
        "authentication failed for user '{user}': {detail}; check the user and password in the \
         source URL and the server's pg_hba.conf"
    )]
    Auth {
        /// User name.
        user: String,
        /// What the server or the client said.
        detail: String,
    },
    /// The role may not replicate.
    #[error(
        "permission denied for user '{user}': {detail}; grant it with ALTER ROLE \"{user}\" \
         REPLICATION (or use a superuser) and allow replication connections in pg_hba.conf"
    )]
    PermissionDenied {
        /// User name.
        user: String,
        /// The server's message.
        detail: String,
    },
    /// `wal_level` is not `logical`.
    #[error(
        "wal_level is '{found}' but logical replication needs 'logical': set wal_level = logical \
         in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
    )]
    WalLevel {
        /// The server's setting.
        found: String,
    },
    /// The slot does not exist.
    #[error(
        "replication slot \"{slot}\" does not exist in database \"{database}\": create it with \
         SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput') (dbmazz setup does this \
         on first start). If the pipeline already has a checkpoint, the changes since then are \
         gone: re-snapshot the tables after recreating the slot"
    )]
    SlotMissing {
        /// Slot name.
        slot: String,
        /// Database connected to.
        database: String,
    },
    /// The slot exists but is not a pgoutput logical slot of this database.
    #[error("replication slot \"{slot}\" cannot be used: {detail}")]
    SlotUnusable {
        /// Slot name.
        slot: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The slot was invalidated (WAL removed, or conflict on a standby).
    #[error(
        "replication slot \"{slot}\" is invalidated and can no longer stream changes ({detail}); \
         the WAL it needed is gone. Drop and recreate the slot and re-snapshot the tables; raise \
         max_slot_wal_keep_size so it does not happen again. dbmazz never does this by itself"
    )]
    SlotInvalidated {
        /// Slot name.
        slot: String,
        /// The server's explanation.
        detail: String,
    },
    /// The publication does not exist.
    #[error(
        "publication \"{publication}\" does not exist in database \"{database}\": create it with \
         CREATE PUBLICATION \"{publication}\" FOR TABLE ... (dbmazz setup does this on first start)"
    )]
    PublicationMissing {
        /// Publication name.
        publication: String,
        /// Database connected to.
        database: String,
    },
    /// The server is too old for what was asked.
    #[error("PostgreSQL {version} is not supported for this: {detail}")]
    Unsupported {
        /// `server_version_num`.
        version: u32,
        /// What needs a newer server.
        detail: String,
    },
    /// Any other error the server reported.
    #[error("PostgreSQL error: {0}")]
    Server(ServerError),
    /// The server sent something the replication protocol does not allow here.
    #[error("replication protocol violation: {0}")]
    Protocol(String),
    /// A CopyData envelope could not be decoded.
    #[error("replication stream: {0}")]
    Frame(#[from] FrameError),
    /// A pgoutput message could not be decoded. Nothing is skipped: the pipeline stops.
    #[error("{error} (XLogData at {wal_start})")]
    Parse {
        /// The parser's error.
        #[source]
        error: ParseError,
        /// Where the message sat in the WAL.
        wal_start: Lsn,
    },
}

impl From<ParamsError> for SourceError {
    fn from(e: ParamsError) -> Self {
        match e {
            ParamsError::Config(m) => SourceError::Config(m),
            ParamsError::Tls(m) => SourceError::Tls(m),
        }
    }
}

impl SourceError {
    /// Transient when reconnecting and resuming from the durable LSN can get past the
    /// error (the stream does that itself first), definite otherwise: the message
    /// names the fix.
    pub fn kind(&self) -> ErrorKind {
        let transient = match self {
            SourceError::Connect { .. }
            | SourceError::Timeout { .. }
            | SourceError::Io(_)
            | SourceError::Closed(_) => true,
            SourceError::Server(e) => e.is_transient(),
            _ => false,
        };
        if transient {
            ErrorKind::Transient
        } else {
            ErrorKind::Definite
        }
    }

    /// True when the error is [`ErrorKind::Transient`].
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// Turns a server error into the typed error that names the fix, where one is known.
    pub(crate) fn from_server(
        e: ServerError,
        user: &str,
        database: &str,
        slot: &str,
        publication: &str,
    ) -> Self {
        let msg = e.message.as_str();
        match e.code.as_str() {
            "28P01" | "28000" => SourceError::Auth {
                user: user.to_owned(),
                detail: e.to_string(),
            },
            "42501" => SourceError::PermissionDenied {
                user: user.to_owned(),
                detail: e.to_string(),
            },
            "42704" if msg.contains("replication slot") => SourceError::SlotMissing {
                slot: slot.to_owned(),
                database: database.to_owned(),
            },
            "42704" if msg.contains("publication") => SourceError::PublicationMissing {
                publication: publication.to_owned(),
                database: database.to_owned(),
            },
            "55000"
                if msg.contains("can no longer get changes")
                    || msg.contains("invalidated")
                    || msg.contains("can no longer be used") =>
            {
                SourceError::SlotInvalidated {
                    slot: slot.to_owned(),
                    detail: e.to_string(),
                }
            }
            "55000" if msg.contains("wal_level") => SourceError::WalLevel {
                found: "not logical".to_owned(),
            },
            "3D000" => SourceError::Config(format!(
                "database \"{database}\" does not exist ({e}); fix dbname in the source URL"
            )),
            _ => SourceError::Server(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_fields_and_classifies() {
        let body =
            b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0";
        let e = ServerError::parse(body);
        assert_eq!(e.severity, "FATAL");
        assert_eq!(e.code, "57P01");
        assert!(e.is_transient());
        assert!(SourceError::Server(e).is_transient());
        let e = ServerError::parse(b"SERROR\0C42704\0Mreplication slot \"s\" does not exist\0\0");
        assert!(!e.is_transient());
        let typed = SourceError::from_server(e, "u", "db", "s", "p");
        assert!(matches!(typed, SourceError::SlotMissing { .. }));
        assert!(typed
            .to_string()
            .contains("pg_create_logical_replication_slot"));
        assert!(!typed.is_transient());
        // Truncated bodies do not panic.
        let e = ServerError::parse(b"SERR");
        assert_eq!(e.severity, "ERR");
    }
}

//! The shared PostgreSQL bottom layer: connection strings, TLS, SQL connections and
//! helpers, and replication slot queries.
//!
//! ```text
//! source (replication) ─┐
//! state_store ──────────┤
//! lease/postgres ───────┼─▶ conn (URL → ConnParams) ◀── tls (sslmode → rustls)
//! engine setup ─────────┤   sql (SQL client, quoting, server messages, CREATE IF NOT EXISTS)
//! runner takeover ──────┤   slot (pg_replication_slots, create, terminate)
//! grpc slot inspector ──┘
//! ```
//!
//! It depends on nothing above it (only on [`crate::lsn`] and [`crate::config`]'s
//! secret types), so every user of PostgreSQL shares one set of connection rules
//! instead of reaching into the replication client.

pub mod conn;
pub mod slot;
pub mod sql;
pub mod tls;

pub use conn::{ConnParams, ConnectError, ParamsError, SslMode};
pub use sql::{connect, db_message};

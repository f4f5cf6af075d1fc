//! The replication source against real PostgreSQL clusters: pgoutput decoding
//! checked against PostgreSQL's own `to_json`, the replication stream (confirmation,
//! keepalives, backpressure, reconnection, definite errors), TLS and password
//! authentication, property tests of the parser over captured frames, and the
//! (ignored) capture of those frames.

mod capture;
mod fixture;
mod pgoutput;
mod props;
mod stream;
mod tls_auth;

//! Emulator configuration.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// How to run an emulator. Port 0 picks a free port.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// MariaDB URL (`mysql://user:pass@host:port/`), the FE's MySQL-protocol side.
    pub mariadb_url: String,
    /// FE HTTP listen address (StarRocks default port 8030).
    pub fe_addr: SocketAddr,
    /// BE HTTP listen address (StarRocks default port 8040).
    pub be_addr: SocketAddr,
    /// Admin (fault injection, stats) listen address.
    pub admin_addr: SocketAddr,
    /// Host put in redirects and ErrorURLs (default: the BE's IP, or 127.0.0.1).
    pub advertise_host: Option<String>,
    /// Accepted users and passwords (HTTP Basic). Empty: `root` with no password.
    pub users: Vec<(String, String)>,
    /// Parse and validate rows, count them, store nothing.
    pub discard: bool,
    /// Bookkeeping database (labels, transactions, staged rows, error logs).
    pub meta_database: String,
    /// `stream_load_default_timeout_second`.
    pub default_timeout_s: u64,
    /// `prepared_transaction_default_timeout_second`.
    pub prepared_timeout_s: u64,
    /// `label_keep_max_second`.
    pub label_keep_s: u64,
    /// `max_running_txn_num_per_db`.
    pub max_running_txn_per_db: u64,
    /// `streaming_load_max_mb`.
    pub max_body_mb: u64,
    /// `streaming_load_max_batch_size_mb` (JSON bodies).
    pub max_json_mb: u64,
    /// How long a table schema read from MariaDB is reused (None: 0 when storing,
    /// 1000 ms in discard mode).
    pub schema_cache_ms: Option<u64>,
}

impl EmulatorConfig {
    /// Defaults on random loopback ports.
    pub fn new(mariadb_url: impl Into<String>) -> Self {
        let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        EmulatorConfig {
            mariadb_url: mariadb_url.into(),
            fe_addr: any,
            be_addr: any,
            admin_addr: any,
            advertise_host: None,
            users: Vec::new(),
            discard: false,
            meta_database: "__emulator".into(),
            default_timeout_s: 600,
            prepared_timeout_s: 86_400,
            label_keep_s: 259_200,
            max_running_txn_per_db: 1000,
            max_body_mb: 102_400,
            max_json_mb: 100,
            schema_cache_ms: None,
        }
    }
}

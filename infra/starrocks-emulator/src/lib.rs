//! StarRocks Stream Load emulator backed by MariaDB: test equipment for dbmazz.
//!
//! It speaks the StarRocks Stream Load HTTP protocol (FE port with `307` redirects,
//! BE port that runs loads, the transaction interface, label state and cancel) and
//! stores rows in MariaDB with Primary Key table semantics. MariaDB also plays the
//! FE's MySQL-protocol side (port 9030): tests create tables and check results there.
//! An admin port injects faults and serves statistics. See the crate README for the
//! conformance table, the type mapping and the admin API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), starrocks_emulator::StartError> {
//! use starrocks_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::new("mysql://root@127.0.0.1:3306/")).await?;
//! println!("load into {}/api/db/table/_stream_load", emu.fe_url());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod apply;
pub mod audit;
pub mod be;
pub mod config;
pub mod convert;
pub mod csv;
pub mod faults;
pub mod fe;
pub mod json;
pub mod params;
pub mod response;
pub mod rows;
pub mod schema;
pub mod server;
pub mod stats;
pub mod store;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use audit::{install_version_audit, version_regressions, AuditError, Regression};
pub use config::EmulatorConfig;
pub use faults::{FaultKind, FaultSpec};

use server::{bind, serve, Role, Shared};
use store::Store;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The MariaDB URL is malformed.
    #[error("invalid MariaDB URL (expected mysql://user:password@host:port/): {0}")]
    Url(String),
    /// MariaDB is unreachable or refused the bookkeeping setup.
    #[error("cannot prepare the emulator's bookkeeping in MariaDB: {0}")]
    Store(#[from] store::StoreError),
    /// A port could not be bound.
    #[error("cannot listen on {addr} for the {what} port: {source}")]
    Bind {
        /// FE, BE or admin.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Starts emulators.
#[derive(Debug)]
pub struct Emulator;

/// A running emulator. Dropping it stops the listeners; [`EmulatorHandle::shutdown`]
/// also waits for them.
#[derive(Debug)]
pub struct EmulatorHandle {
    fe: SocketAddr,
    be: SocketAddr,
    admin: SocketAddr,
    host: String,
    mariadb_url: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// A MariaDB pool set up the way the emulator uses it (strict SQL mode, UTC).
pub fn mariadb_pool(url: &str) -> Result<mysql_async::Pool, StartError> {
    let opts = mysql_async::Opts::from_url(url).map_err(|e| StartError::Url(e.to_string()))?;
    let builder = mysql_async::OptsBuilder::from_opts(opts)
        .init(vec![
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            "SET SESSION time_zone = '+00:00'",
        ])
        .stmt_cache_size(256)
        .pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(mysql_async::PoolConstraints::new(1, 64).unwrap_or_default()),
        );
    Ok(mysql_async::Pool::new(builder))
}

impl Emulator {
    /// Prepares the bookkeeping database, binds the FE, BE and admin ports and serves.
    /// Starting again with the same MariaDB is an emulator restart: labels and
    /// PREPARED transactions survive; loads that were running are aborted.
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, StartError> {
        let pool = mariadb_pool(&config.mariadb_url)?;
        let keep_ms = i64::try_from(config.label_keep_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let store = Store::open(pool, &config.meta_database, keep_ms).await?;
        let bind_one = |what: &'static str, addr: SocketAddr| {
            bind(addr).map_err(|source| StartError::Bind { what, addr, source })
        };
        let fe_l = bind_one("FE", config.fe_addr)?;
        let be_l = bind_one("BE", config.be_addr)?;
        let admin_l = bind_one("admin", config.admin_addr)?;
        let local = |l: &tokio::net::TcpListener, what: &'static str, addr: SocketAddr| {
            l.local_addr()
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let fe = local(&fe_l, "FE", config.fe_addr)?;
        let be = local(&be_l, "BE", config.be_addr)?;
        let admin = local(&admin_l, "admin", config.admin_addr)?;
        let host = config.advertise_host.clone().unwrap_or_else(|| {
            let ip = be.ip();
            if ip.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST).to_string()
            } else {
                ip.to_string()
            }
        });
        let mariadb_url = config.mariadb_url.clone();
        let shared = Arc::new(Shared::new(
            config,
            store,
            host.clone(),
            fe.port(),
            be.port(),
        ));
        let (tx, rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(serve(fe_l, shared.clone(), Role::Fe, rx.clone())),
            tokio::spawn(serve(be_l, shared.clone(), Role::Be, rx.clone())),
            tokio::spawn(serve(admin_l, shared.clone(), Role::Admin, rx.clone())),
        ];
        let sweeper_shared = shared.clone();
        let mut stop = rx;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if let Err(e) = sweeper_shared.store.sweep().await {
                            tracing::warn!(error = %e, "bookkeeping sweep failed");
                        }
                    }
                }
            }
        }));
        tracing::info!(%fe, %be, %admin, "StarRocks emulator listening");
        Ok(EmulatorHandle {
            fe,
            be,
            admin,
            host,
            mariadb_url,
            shutdown: tx,
            tasks,
            shared,
        })
    }
}

impl EmulatorHandle {
    /// `http://host:fe_port` (the Stream Load URL prefix).
    pub fn fe_url(&self) -> String {
        format!("http://{}:{}", self.host, self.fe.port())
    }

    /// `http://host:be_port`.
    pub fn be_url(&self) -> String {
        format!("http://{}:{}", self.host, self.be.port())
    }

    /// `http://host:admin_port`.
    pub fn admin_url(&self) -> String {
        format!("http://{}:{}", self.host, self.admin.port())
    }

    /// FE HTTP port.
    pub fn fe_port(&self) -> u16 {
        self.fe.port()
    }

    /// BE HTTP port.
    pub fn be_port(&self) -> u16 {
        self.be.port()
    }

    /// Admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin.port()
    }

    /// The MariaDB URL (the "port 9030" side).
    pub fn mariadb_url(&self) -> &str {
        &self.mariadb_url
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), closes the pool.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.shared.abort_tasks();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Give connection tasks a moment to notice and close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pool = self.shared.store.pool().clone();
        let _ = pool.disconnect().await;
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.shared.abort_tasks();
        for t in &self.tasks {
            t.abort();
        }
    }
}

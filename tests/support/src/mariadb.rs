//! Throw-away MariaDB servers (the MySQL-protocol side of the StarRocks emulator).
//!
//! `mariadb-install-db` runs once per machine into a cached template; each server
//! copies it. The server listens on a random loopback port and a private socket;
//! `root` may connect over TCP from 127.0.0.1 without a password.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{
    cached_dir, default_template_root, find_program, free_port, is_root, log_tail, port_open, run,
    temp_dir, wait_until, ChildGuard, ServiceError,
};

/// A running throw-away MariaDB server.
#[derive(Debug)]
pub struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<ChildGuard>,
    mariadbd: PathBuf,
}

fn sbin_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]
}

/// The installed template datadir, built once (see [`cached_dir`]: safe when many
/// tests start servers at once).
fn template() -> Result<PathBuf, ServiceError> {
    let install = find_program("mariadb-install-db", "MARIADB_BIN", &sbin_dirs())?;
    cached_dir(&default_template_root(), "mariadb-template", |staging| {
        let mut cmd = Command::new(install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", staging.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve");
        if is_root() {
            cmd.arg("--user=root");
        }
        run(&mut cmd, "mariadb-install-db").map(|_| ())
    })
}

impl MariaDb {
    /// Starts a server with an empty datadir copied from the template.
    pub fn start() -> Result<Self, ServiceError> {
        let mariadbd = find_program("mariadbd", "MARIADB_BIN", &sbin_dirs())?;
        let tpl = template()?;
        let dir = temp_dir("dbmazz-mariadb-")?;
        run(
            Command::new("cp")
                .arg("-a")
                .arg(&tpl)
                .arg(dir.path().join("data")),
            "copying the MariaDB template",
        )?;
        let mut db = MariaDb {
            dir,
            port: 0,
            server: None,
            mariadbd,
        };
        let mut last = None;
        for _ in 0..5 {
            db.port = free_port();
            match db.spawn() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        db.sql(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
                GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
        )?;
        Ok(db)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadb.err")
    }

    fn spawn(&mut self) -> Result<(), ServiceError> {
        let mut cmd = Command::new(&self.mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!(
                "--datadir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-name-resolve")
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadb.pid").display()
            ))
            .arg("--innodb-buffer-pool-size=64M")
            .arg("--innodb-log-file-size=48M")
            // MariaDB 10.11.19 has died of SIGSEGV under the emulator's load without
            // printing a backtrace (see Drop). A larger thread stack rules out deep
            // recursion on long key predicates; synchronous I/O rules out the AIO
            // path. Neither matters for a throw-away test server.
            .arg("--thread-stack=2M")
            .arg("--innodb-use-native-aio=0")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--skip-log-bin")
            .arg("--max-connections=200")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_bin")
            .arg("--default-time-zone=+00:00")
            .arg("--sql-mode=STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION");
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(ServiceError::io("starting mariadbd"))?;
        let mut guard = ChildGuard::new(child, format!("mariadbd:{}", self.port), libc::SIGTERM);
        let port = self.port;
        let sock = self.socket();
        let ready = wait_until(Duration::from_secs(60), || {
            guard.has_exited() || (port_open(port) && sock.exists() && self.answers())
        });
        if !ready || guard.has_exited() {
            return Err(ServiceError::Timeout {
                what: format!("mariadbd on port {port}"),
                secs: 60,
                log: log_tail(&self.log_path(), 4000),
            });
        }
        self.server = Some(guard);
        Ok(())
    }

    /// True when the server answers a query on its socket (it creates the socket
    /// file a moment before it accepts connections).
    fn answers(&self) -> bool {
        Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-e", "SELECT 1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs SQL with the `mariadb` client over the private socket as root.
    pub fn sql(&self, sql: &str) -> Result<String, ServiceError> {
        run(
            Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-u", "root", "--batch", "--skip-column-names", "-e", sql]),
            "mariadb",
        )
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Private Unix socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket()
    }

    /// `mysql://root@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) -> Result<(), ServiceError> {
        self.sql(&format!("CREATE DATABASE IF NOT EXISTS `{name}`"))
            .map(|_| ())
    }

    /// A mysql_async pool for `db`.
    pub fn pool(&self, db: &str) -> mysql_async::Pool {
        mysql_async::Pool::new(self.url(db).as_str())
    }

    /// Stops the server gracefully; [`MariaDb::start_again`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop();
        }
    }

    /// Kills the server (crash); InnoDB recovers on the next start.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop_with(libc::SIGKILL);
        }
    }

    /// Starts a stopped server on the same port and datadir.
    pub fn start_again(&mut self) -> Result<(), ServiceError> {
        if self.server.is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| ServiceError::Failed {
            what: "restarting mariadbd".into(),
            detail: "no attempt made".into(),
        }))
    }

    /// Data directory root (for debugging).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server error log so far.
    pub fn log(&self) -> String {
        log_tail(&self.log_path(), 16_000)
    }
}

impl Drop for MariaDb {
    /// A server that crashed (MariaDB 10.11 has been seen to die of SIGSEGV under the
    /// emulator's load) leaves its error log outside the deleted data directory, so
    /// the failure it caused can be traced to it.
    fn drop(&mut self) {
        let log = self.log();
        if log.contains("got signal") {
            let keep = std::env::temp_dir().join(format!("dbmazz-mariadb-crash-{}.err", self.port));
            match std::fs::write(&keep, &log) {
                Ok(()) => eprintln!(
                    "testkit: MariaDB on port {} crashed; its log: {}",
                    self.port,
                    keep.display()
                ),
                Err(e) => eprintln!(
                    "testkit: MariaDB on port {} crashed; saving its log failed: {e}",
                    self.port
                ),
            }
        }
    }
}

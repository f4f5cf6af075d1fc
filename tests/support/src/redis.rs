//! Throw-away `redis-server` instances without persistence.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{
    find_program, free_port, log_tail, port_open, temp_dir, wait_until, ChildGuard, ServiceError,
};

/// A running Redis server on a random loopback port.
#[derive(Debug)]
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    server: Option<ChildGuard>,
}

impl RedisServer {
    /// Starts a server (no RDB, no AOF: a restart loses every key, as in production
    /// without persistence).
    pub fn start() -> Result<Self, ServiceError> {
        let bin = find_program("redis-server", "REDIS_BIN", &[PathBuf::from("/usr/bin")])?;
        let dir = temp_dir("dbmazz-redis-")?;
        let mut r = RedisServer {
            dir,
            port: 0,
            bin,
            server: None,
        };
        let mut last = None;
        for _ in 0..5 {
            r.port = free_port();
            match r.spawn() {
                Ok(()) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ServiceError::Failed {
            what: "starting redis".into(),
            detail: "no attempt made".into(),
        }))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), ServiceError> {
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(ServiceError::io("starting redis-server"))?;
        let mut guard = ChildGuard::new(child, format!("redis:{}", self.port), libc::SIGTERM);
        let port = self.port;
        let ready = wait_until(Duration::from_secs(20), || {
            guard.has_exited() || port_open(port)
        });
        if !ready || guard.has_exited() {
            return Err(ServiceError::Timeout {
                what: format!("redis on port {port}"),
                secs: 20,
                log: log_tail(&self.log_path(), 4000),
            });
        }
        self.server = Some(guard);
        Ok(())
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (all keys are lost).
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop();
        }
    }

    /// Starts a stopped server again on the same port (empty).
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
            what: "restarting redis".into(),
            detail: "no attempt made".into(),
        }))
    }

    /// Stops and starts again (a coordinator restart).
    pub fn restart(&mut self) -> Result<(), ServiceError> {
        self.stop();
        self.start_again()
    }

    /// A client for this server.
    pub fn client(&self) -> Result<redis::Client, redis::RedisError> {
        redis::Client::open(self.url())
    }
}

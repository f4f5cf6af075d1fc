//! A real `dbmazz` process under test: spawned with an explicit environment, its
//! output captured to a file, and driven the way an orchestrator or a crash would
//! (SIGTERM, SIGKILL, SIGSTOP/SIGCONT).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::process::{log_tail, signal, temp_dir, ServiceError};

/// A running dbmazz process (killed on drop).
#[derive(Debug)]
pub struct DbmazzProcess {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl DbmazzProcess {
    /// Spawns `bin args…` with exactly `env` (plus PATH and HOME).
    pub fn spawn(
        bin: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<Self, ServiceError> {
        let dir = temp_dir("dbmazz-proc-")?;
        let log = dir.path().join("dbmazz.log");
        let out =
            std::fs::File::create(&log).map_err(ServiceError::io("creating the dbmazz log"))?;
        let err = out
            .try_clone()
            .map_err(ServiceError::io("creating the dbmazz log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(args).env_clear();
        for k in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("DBMAZZ_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(ServiceError::io(format!("starting {}", bin.display())))?;
        Ok(DbmazzProcess {
            child,
            log,
            _dir: dir,
            status: None,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful drain).
    pub fn sigterm(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// SIGKILL and reap (a crash).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    /// SIGSTOP (the process freezes, sockets stay open).
    pub fn pause(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    /// SIGCONT.
    pub fn resume(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// Exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.try_status()
    }

    /// The output so far (last 64 KiB).
    pub fn log(&self) -> String {
        log_tail(&self.log, 64 * 1024)
    }
}

impl Drop for DbmazzProcess {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            // A stopped process must be continued to die from SIGKILL promptly.
            signal(self.pid(), libc::SIGCONT);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

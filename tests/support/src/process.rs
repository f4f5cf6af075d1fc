//! Child processes, ports and directories shared by the service launchers.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a service could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A required program is not installed.
    #[error("{program} not found ({hint}); run infra/install-deps.sh")]
    Missing {
        /// Program name.
        program: String,
        /// Where it was looked for.
        hint: String,
    },
    /// A command failed.
    #[error("{what} failed: {detail}")]
    Failed {
        /// What was run.
        what: String,
        /// Exit status and output.
        detail: String,
    },
    /// The service did not become ready in time.
    #[error("{what} did not become ready within {secs}s; log:\n{log}")]
    Timeout {
        /// The service.
        what: String,
        /// Seconds waited.
        secs: u64,
        /// Tail of its log.
        log: String,
    },
    /// I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ServiceError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| ServiceError::Io { context, source }
    }
}

/// A port on 127.0.0.1 that was free a moment ago. Launchers retry with a new one
/// when the service then fails to bind (another test may have taken it).
pub fn free_port() -> u16 {
    // Binding port 0 cannot fail on a working loopback interface; if it does, the
    // machine cannot run any of these tests and a panic says so clearly.
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot read a loopback port: {e}"))
}

/// True while something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Polls `ready` every 50 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ready()
}

/// Runs a command to completion, returning stdout or an error with its output.
pub fn run(cmd: &mut Command, what: &str) -> Result<String, ServiceError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(ServiceError::io(format!("running {what}")))?;
    if !out.status.success() {
        return Err(ServiceError::Failed {
            what: what.to_owned(),
            detail: format!(
                "{}\nstdout: {}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `max` bytes of a log file, for error messages.
pub fn log_tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => {
            let start = b.len().saturating_sub(max);
            String::from_utf8_lossy(&b[start..]).into_owned()
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// True while a process with this pid exists (and is not a zombie we reaped).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A child process that is stopped when dropped: first `stop_signal`, then SIGKILL
/// after `grace`.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    stop_signal: libc::c_int,
    grace: Duration,
    name: String,
}

impl ChildGuard {
    /// Wraps a spawned child.
    pub fn new(child: Child, name: impl Into<String>, stop_signal: libc::c_int) -> Self {
        ChildGuard {
            child: Some(child),
            stop_signal,
            grace: Duration::from_secs(10),
            name: name.into(),
        }
    }

    /// Process id, if still owned.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True if the process has exited (reaps it).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Stops the child with `sig`, waiting up to the grace period before SIGKILL.
    pub fn stop_with(&mut self, sig: libc::c_int) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal(child.id(), sig);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not stop within {:?}; killing",
            self.name, self.grace
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends each `(signal, grace)` in turn until the child exits, SIGKILL last.
    /// Returns the index of the signal that ended it (`steps.len()` for SIGKILL).
    pub fn stop_chain(&mut self, steps: &[(libc::c_int, Duration)]) -> usize {
        let Some(mut child) = self.child.take() else {
            return 0;
        };
        for (i, (sig, grace)) in steps.iter().enumerate() {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return i;
            }
            signal(child.id(), *sig);
            let deadline = Instant::now() + *grace;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return i;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        eprintln!("{} did not stop; killing", self.name);
        let _ = child.kill();
        let _ = child.wait();
        steps.len()
    }

    /// Stops the child with its configured signal.
    pub fn stop(&mut self) {
        self.stop_with(self.stop_signal);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The uid/gid of a system user, via `id`.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let uid = Command::new("id").args(["-u", user]).output().ok()?;
    let gid = Command::new("id").args(["-g", user]).output().ok()?;
    if !uid.status.success() || !gid.status.success() {
        return None;
    }
    let uid = String::from_utf8_lossy(&uid.stdout).trim().parse().ok()?;
    let gid = String::from_utf8_lossy(&gid.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// True when the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Recursively hands `path` to `uid:gid`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), ServiceError> {
    run(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(path),
        "chown",
    )
    .map(|_| ())
}

/// A scratch directory for the test, removed on drop.
pub fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, ServiceError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(ServiceError::io("creating a temporary directory"))
}

/// Finds an executable: `$env_var/<name>` first, then each candidate directory, then `$PATH`.
pub fn find_program(name: &str, env_var: &str, dirs: &[PathBuf]) -> Result<PathBuf, ServiceError> {
    if let Ok(dir) = std::env::var(env_var) {
        let p = Path::new(&dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for d in path.split(':') {
            let p = Path::new(d).join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(ServiceError::Missing {
        program: name.to_owned(),
        hint: format!("looked in ${env_var}, {dirs:?} and $PATH"),
    })
}

/// Where the cached templates (initdb'd PostgreSQL, installed MariaDB) live unless a
/// launcher is told otherwise: `$TMPDIR/dbmazz-testkit`.
pub fn default_template_root() -> PathBuf {
    std::env::temp_dir().join("dbmazz-testkit")
}

/// A directory built once and shared by every test after: `root/name`.
///
/// The first caller builds it with `build` in a private staging directory under an
/// exclusive lock on `root/name.lock`, then renames the finished tree into place
/// (atomic on one file system). Concurrent callers, whether threads of one test
/// process or separate processes, wait on the lock and then find the finished
/// directory; nobody ever sees a half-built one, and two builders never share a
/// staging directory. A builder that crashes leaves only its staging directory,
/// which the next builder removes (it holds the lock, so no build is in progress).
pub fn cached_dir(
    root: &Path,
    name: &str,
    build: impl FnOnce(&Path) -> Result<(), ServiceError>,
) -> Result<PathBuf, ServiceError> {
    let dir = root.join(name);
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(root).map_err(ServiceError::io(format!(
        "creating the template root {}",
        root.display()
    )))?;
    let lock_path = root.join(format!("{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(ServiceError::io(format!("opening {}", lock_path.display())))?;
    // Released when `lock` is dropped, also when this process dies.
    lock.lock()
        .map_err(ServiceError::io(format!("locking {}", lock_path.display())))?;
    if dir.is_dir() {
        return Ok(dir);
    }
    let staging_prefix = format!("{name}.staging-");
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(&staging_prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    // Removed on drop unless renamed into place first.
    let staging = tempfile::Builder::new()
        .prefix(&staging_prefix)
        .tempdir_in(root)
        .map_err(ServiceError::io("creating a template staging directory"))?;
    build(staging.path())?;
    std::fs::rename(staging.path(), &dir).map_err(ServiceError::io(format!(
        "moving the finished template to {}",
        dir.display()
    )))?;
    Ok(dir)
}

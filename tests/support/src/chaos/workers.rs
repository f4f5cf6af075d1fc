//! Any number of `dbmazz` processes, started by a caller-supplied function (one
//! worker for the single-pipeline engine; several workers sharing leases later), and
//! the process-level faults: SIGKILL, SIGTERM restart, SIGSTOP/SIGCONT. Peak RSS of
//! every process is sampled from `/proc`.

use std::time::Duration;

use crate::DbmazzProcess;

/// Builds worker `i` (a fresh process each time it is called).
pub type SpawnFn = Box<dyn Fn(usize) -> DbmazzProcess + Send + Sync>;

/// The dbmazz processes of a run.
pub struct Workers {
    spawn: SpawnFn,
    procs: Vec<Option<DbmazzProcess>>,
    /// Highest `VmHWM` seen over every process (KiB).
    pub peak_rss_kib: u64,
    /// Processes that ended on their own (index, status, log tail): each one is a
    /// finding, since nothing in a chaos run should make dbmazz give up.
    pub unexpected_exits: Vec<String>,
    /// Processes started in total.
    pub starts: u64,
}

/// The last `max` bytes of `s` (on a character boundary).
pub fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// `VmHWM` (peak resident set) of `pid` in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Current `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

impl Workers {
    /// `n` workers built by `spawn` (not started yet).
    pub fn new(n: usize, spawn: SpawnFn) -> Self {
        Workers {
            spawn,
            procs: (0..n).map(|_| None).collect(),
            peak_rss_kib: 0,
            unexpected_exits: Vec::new(),
            starts: 0,
        }
    }

    /// Number of worker slots.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when there are no worker slots.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Worker `i`'s process, if running.
    pub fn get(&self, i: usize) -> Option<&DbmazzProcess> {
        self.procs.get(i).and_then(Option::as_ref)
    }

    /// Starts every worker that is not running.
    pub fn start_all(&mut self) {
        for i in 0..self.procs.len() {
            self.start(i);
        }
    }

    /// Starts worker `i` if it is not running.
    pub fn start(&mut self, i: usize) {
        if self.procs.get(i).is_some_and(Option::is_none) {
            let p = (self.spawn)(i);
            self.starts += 1;
            self.procs[i] = Some(p);
        }
    }

    /// Samples peak RSS and records workers that exited on their own.
    pub fn check(&mut self) {
        for (i, slot) in self.procs.iter_mut().enumerate() {
            let Some(p) = slot else { continue };
            if let Some(kib) = peak_rss_kib(p.pid()) {
                self.peak_rss_kib = self.peak_rss_kib.max(kib);
            }
            if let Some(status) = p.try_status() {
                let log = p.log();
                let tail = tail(&log, 4000);
                self.unexpected_exits
                    .push(format!("worker {i} exited with {status}:\n{tail}"));
                *slot = None;
            }
        }
    }

    /// SIGKILL worker `i` (it stays down until [`Workers::start`]).
    pub fn kill9(&mut self, i: usize) {
        self.check();
        if let Some(mut p) = self.procs.get_mut(i).and_then(Option::take) {
            p.resume();
            p.kill9();
        }
    }

    /// SIGTERM worker `i`, wait for its drain, start it again. A non-zero exit or a
    /// drain longer than `timeout` is recorded as unexpected.
    pub fn restart(&mut self, i: usize, timeout: Duration) {
        self.check();
        if let Some(mut p) = self.procs.get_mut(i).and_then(Option::take) {
            p.sigterm();
            match p.wait_exit(timeout) {
                Some(s) if s.success() => {}
                other => {
                    let log = p.log();
                    let tail = tail(&log, 4000);
                    self.unexpected_exits.push(format!(
                        "worker {i} after SIGTERM: {other:?} (expected exit 0 within {timeout:?}):\n{tail}"
                    ));
                }
            }
        }
        self.start(i);
    }

    /// SIGSTOP worker `i` for `d`, then SIGCONT.
    pub async fn pause(&mut self, i: usize, d: Duration) {
        self.check();
        if let Some(p) = self.get(i) {
            p.pause();
            tokio::time::sleep(d).await;
            if let Some(p) = self.get(i) {
                p.resume();
            }
        }
    }

    /// Logs of every running worker (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.procs.iter().enumerate() {
            if let Some(p) = p {
                let log = p.log();
                out.push_str(&format!(
                    "--- worker {i} (pid {}) ---\n{}\n",
                    p.pid(),
                    tail(&log, 8000)
                ));
            }
        }
        out
    }

    /// Stops every worker with SIGTERM (drain), waiting up to `timeout` each;
    /// returns the exit statuses.
    pub fn stop_all(&mut self, timeout: Duration) -> Vec<Option<std::process::ExitStatus>> {
        self.check();
        let mut out = Vec::new();
        for p in self.procs.iter_mut().filter_map(Option::take) {
            p.sigterm();
            let mut p = p;
            out.push(p.wait_exit(timeout));
        }
        out
    }
}

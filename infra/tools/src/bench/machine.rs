//! What the benchmark ran on: cores, CPU model, memory, load, versions.

use std::process::Command;

/// A description of the machine and the software measured.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// CPU model name.
    pub cpu: String,
    /// Memory, bytes.
    pub memory: u64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the run started.
    pub load_before: String,
    /// The same when it ended.
    pub load_after: String,
    /// PostgreSQL server version.
    pub postgres: String,
    /// `git describe` of the source tree, when available.
    pub commit: String,
    /// UTC date and time of the start.
    pub started: String,
}

fn first_line(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
    })
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn command(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Machine {
    /// Reads what can be read now (the PostgreSQL version is filled in later).
    pub fn describe() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: first_line("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
            memory: first_line("/proc/meminfo", "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            load_before: load_average(),
            load_after: String::new(),
            postgres: String::new(),
            commit: command("git", &["describe", "--always", "--dirty", "--abbrev=12"])
                .unwrap_or_else(|| "unknown".into()),
            started: command("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

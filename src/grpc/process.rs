//! Resource use of this process, read from `/proc/self` (Linux).
//!
//! Resident memory comes from `VmRSS` in `/proc/self/status` (already in bytes ×
//! 1024, no page size needed), CPU time from `utime + stime` in `/proc/self/stat`
//! (clock ticks of every thread, divided by `sysconf(_SC_CLK_TCK)`). Elsewhere the
//! figures are reported as unavailable rather than as zeros that look real.

use std::sync::OnceLock;

/// One reading of the process's resource use.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// False when `/proc/self` could not be read; the other fields are 0 then.
    pub available: bool,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Number of threads.
    pub threads: u64,
}

/// Reads the current figures.
pub fn sample() -> ProcessSample {
    let status = std::fs::read_to_string("/proc/self/status");
    let stat = std::fs::read_to_string("/proc/self/stat");
    match (status, stat) {
        (Ok(status), Ok(stat)) => {
            let (rss_bytes, threads) = parse_status(&status);
            match (rss_bytes, parse_stat_ticks(&stat)) {
                (Some(rss_bytes), Some(ticks)) => ProcessSample {
                    available: true,
                    rss_bytes,
                    cpu_seconds: ticks as f64 / clock_ticks_per_second(),
                    threads: threads.unwrap_or(0),
                },
                _ => ProcessSample::default(),
            }
        }
        _ => ProcessSample::default(),
    }
}

/// CPU use between two samples in percent of one core.
pub fn cpu_percent(before: &ProcessSample, after: &ProcessSample, seconds: f64) -> f64 {
    if !before.available || !after.available || seconds <= 0.0 {
        return 0.0;
    }
    ((after.cpu_seconds - before.cpu_seconds).max(0.0) / seconds) * 100.0
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf only reads a system constant; it has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // USER_HZ is 100 on every Linux architecture dbmazz targets.
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    })
}

/// `(VmRSS bytes, Threads)` from `/proc/self/status`.
fn parse_status(text: &str) -> (Option<u64>, Option<u64>) {
    let mut rss = None;
    let mut threads = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            // "   12345 kB"
            let mut it = v.split_whitespace();
            rss = match (it.next().and_then(|n| n.parse::<u64>().ok()), it.next()) {
                (Some(n), Some("kB")) => n.checked_mul(1024),
                _ => None,
            };
        } else if let Some(v) = line.strip_prefix("Threads:") {
            threads = v.trim().parse().ok();
        }
    }
    (rss, threads)
}

/// `utime + stime` (fields 14 and 15) from `/proc/self/stat`. The command name
/// (field 2) may contain spaces and parentheses, so counting starts after the last
/// `)`.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ')': field 3 (state) is the first token, so utime (14) is token 11.
    let mut it = rest.split_whitespace().skip(11);
    let utime: u64 = it.next()?.parse().ok()?;
    let stime: u64 = it.next()?.parse().ok()?;
    utime.checked_add(stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tdbmazz\nVmPeak:\t  2000 kB\nVmRSS:\t    1536 kB\nThreads:\t7\n";
        assert_eq!(parse_status(text), (Some(1536 * 1024), Some(7)));
        assert_eq!(parse_status("VmRSS: lots\n"), (None, None));
        assert_eq!(parse_status(""), (None, None));
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text = "4242 (db ma) (zz) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 7 0 \
                    1234 100000 300 18446744073709551615";
        assert_eq!(parse_stat_ticks(text), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = sample();
        if cfg!(target_os = "linux") {
            assert!(s.available);
            assert!(s.rss_bytes > 1024 * 1024, "{s:?}");
            assert!(s.threads >= 1);
        }
    }

    #[test]
    fn cpu_percent_of_one_core() {
        let a = ProcessSample {
            available: true,
            cpu_seconds: 1.0,
            ..Default::default()
        };
        let b = ProcessSample {
            cpu_seconds: 1.5,
            ..a
        };
        assert!((cpu_percent(&a, &b, 1.0) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&a, &b, 0.0), 0.0);
        assert_eq!(cpu_percent(&ProcessSample::default(), &b, 1.0), 0.0);
    }
}

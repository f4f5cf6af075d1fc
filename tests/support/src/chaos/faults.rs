//! The fault menu and the seeded random source of a chaos run.

use std::time::Duration;

/// SplitMix64: small, fast, and the same sequence for the same seed on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A seed from the clock (printed by the summary so the run can be replayed).
    pub fn clock_seed() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p` (0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A duration uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// A fault the emulator injects into loads (its admin API's `POST /faults`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EmuFault {
    /// BE answers HTTP 500 (nothing applied).
    Be500,
    /// BE answers HTTP 503 (nothing applied).
    Be503,
    /// FE answers HTTP 503 (nothing applied).
    Fe503,
    /// The sink reports a load timeout (`Status: Fail`, nothing applied).
    LoadTimeout,
    /// A slow answer (the load is applied after a few seconds).
    Slow,
    /// The connection is closed mid-body (nothing applied).
    ResetMidBody,
    /// Applied, then `Publish Timeout`; the label becomes VISIBLE later.
    PublishTimeout,
    /// Applied, then the connection is closed without an answer: the retry meets
    /// `Label Already Exists` with `ExistingJobStatus` FINISHED.
    LostResponse,
    /// `Label Already Exists` / RUNNING for a label that then turns out unknown
    /// (nothing applied): the label state decides, not the answer.
    LabelExistsRunning,
    /// Accepted and kept RUNNING, then VISIBLE (applied).
    RunningThenVisible,
    /// Accepted and kept RUNNING, then ABORTED (not applied).
    RunningThenAborted,
    /// The FE redirects to a port where no BE listens.
    RedirectDeadBe,
    /// The FE answers its own error JSON (a transient message).
    FeError,
    /// `Status: Fail` with a transient message (nothing applied).
    TransientFail,
}

impl EmuFault {
    /// Every kind.
    pub const ALL: [EmuFault; 14] = [
        EmuFault::Be500,
        EmuFault::Be503,
        EmuFault::Fe503,
        EmuFault::LoadTimeout,
        EmuFault::Slow,
        EmuFault::ResetMidBody,
        EmuFault::PublishTimeout,
        EmuFault::LostResponse,
        EmuFault::LabelExistsRunning,
        EmuFault::RunningThenVisible,
        EmuFault::RunningThenAborted,
        EmuFault::RedirectDeadBe,
        EmuFault::FeError,
        EmuFault::TransientFail,
    ];

    /// Short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            EmuFault::Be500 => "emu_be_http_500",
            EmuFault::Be503 => "emu_be_http_503",
            EmuFault::Fe503 => "emu_fe_http_503",
            EmuFault::LoadTimeout => "emu_load_timeout",
            EmuFault::Slow => "emu_slow_response",
            EmuFault::ResetMidBody => "emu_reset_mid_body",
            EmuFault::PublishTimeout => "emu_publish_timeout",
            EmuFault::LostResponse => "emu_lost_response_then_label_finished",
            EmuFault::LabelExistsRunning => "emu_label_exists_running",
            EmuFault::RunningThenVisible => "emu_running_label_visible",
            EmuFault::RunningThenAborted => "emu_running_label_aborted",
            EmuFault::RedirectDeadBe => "emu_fe_redirect_dead_be",
            EmuFault::FeError => "emu_fe_error",
            EmuFault::TransientFail => "emu_transient_fail",
        }
    }

    /// The admin API object for this fault, affecting `count` loads into `db`.
    pub fn spec(self, db: &str, count: u32, rng: &mut Rng) -> String {
        let kind = match self {
            EmuFault::Be500 => {
                r#""kind":"http_status","status":500,"body":"internal error""#.to_owned()
            }
            EmuFault::Be503 => {
                r#""kind":"http_status","status":503,"body":"unavailable""#.to_owned()
            }
            EmuFault::Fe503 => r#""kind":"http_status","status":503,"at":"fe""#.to_owned(),
            EmuFault::LoadTimeout => {
                r#""kind":"fail","message":"[E1008]Reached timeout=30000ms @127.0.0.1""#.to_owned()
            }
            EmuFault::Slow => format!(
                r#""kind":"delay","ms":{},"phase":"before_response""#,
                rng.range(500, 3000)
            ),
            EmuFault::ResetMidBody => format!(
                r#""kind":"drop_mid_body","after_bytes":{}"#,
                rng.range(0, 64)
            ),
            EmuFault::PublishTimeout => format!(
                r#""kind":"publish_timeout","visible_after_ms":{}"#,
                rng.range(0, 3000)
            ),
            EmuFault::LostResponse => r#""kind":"lost_response""#.to_owned(),
            EmuFault::LabelExistsRunning => {
                r#""kind":"label_already_exists","existing_job_status":"RUNNING""#.to_owned()
            }
            EmuFault::RunningThenVisible => format!(
                r#""kind":"running_label","finish_after_ms":{},"finish_as":"visible""#,
                rng.range(100, 3000)
            ),
            EmuFault::RunningThenAborted => format!(
                r#""kind":"running_label","finish_after_ms":{},"finish_as":"aborted""#,
                rng.range(100, 3000)
            ),
            EmuFault::RedirectDeadBe => r#""kind":"redirect_dead_be""#.to_owned(),
            EmuFault::FeError => {
                r#""kind":"fe_error","message":"no backend alive, try again later""#.to_owned()
            }
            EmuFault::TransientFail => {
                r#""kind":"fail","message":"too many versions, please retry later""#.to_owned()
            }
        };
        format!(r#"{{{kind},"count":{count},"db":"{db}","ops":["stream_load"]}}"#)
    }
}

/// One fault of a chaos iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// SIGKILL a dbmazz process, start it again.
    Kill9,
    /// SIGTERM (drain, exit 0 expected), start again.
    Restart,
    /// SIGSTOP a dbmazz process for a while, then SIGCONT.
    Pause,
    /// PostgreSQL fast shutdown and start.
    PgRestartFast,
    /// PostgreSQL immediate shutdown (crash recovery) and start.
    PgRestartImmediate,
    /// Emulator stop and start on the same ports.
    EmulatorRestart,
    /// The sink is unreachable (connection refused) for a while.
    SinkDown,
    /// An emulator fault on the next loads.
    Emu(EmuFault),
}

impl Fault {
    /// Short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::Restart => "sigterm_restart",
            Fault::Pause => "sigstop_sigcont",
            Fault::PgRestartFast => "pg_restart_fast",
            Fault::PgRestartImmediate => "pg_restart_immediate",
            Fault::EmulatorRestart => "emulator_restart",
            Fault::SinkDown => "sink_down",
            Fault::Emu(e) => e.name(),
        }
    }
}

/// Faults with weights.
#[derive(Clone, Debug)]
pub struct FaultMenu {
    /// `(fault, weight)`.
    pub entries: Vec<(Fault, u32)>,
    /// How long a pause lasts (ms, inclusive range).
    pub pause_ms: (u64, u64),
    /// How long the sink stays down (ms, inclusive range).
    pub sink_down_ms: (u64, u64),
}

impl FaultMenu {
    /// Every fault kind; process and service faults weigh more than each single
    /// emulator fault so both halves get about the same share.
    pub fn all() -> Self {
        let mut entries = vec![
            (Fault::Kill9, 6),
            (Fault::Restart, 3),
            (Fault::Pause, 3),
            (Fault::PgRestartFast, 2),
            (Fault::PgRestartImmediate, 3),
            (Fault::EmulatorRestart, 2),
            (Fault::SinkDown, 2),
        ];
        entries.extend(EmuFault::ALL.iter().map(|e| (Fault::Emu(*e), 1)));
        FaultMenu {
            entries,
            pause_ms: (200, 3000),
            sink_down_ms: (1000, 5000),
        }
    }

    /// Every fault as often as its weight, shuffled: drawing a whole deck before
    /// the next one guarantees that a long run meets every kind.
    pub fn deck(&self, rng: &mut Rng) -> Vec<Fault> {
        let mut d: Vec<Fault> = self
            .entries
            .iter()
            .flat_map(|(f, w)| std::iter::repeat_n(*f, *w as usize))
            .collect();
        for i in (1..d.len()).rev() {
            let j = rng.range(0, i as u64) as usize;
            d.swap(i, j);
        }
        d
    }

    /// Picks one fault.
    pub fn pick(&self, rng: &mut Rng) -> Fault {
        let total: u64 = self.entries.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut r = rng.range(0, total.saturating_sub(1));
        for (f, w) in &self.entries {
            let w = u64::from(*w);
            if r < w {
                return *f;
            }
            r -= w;
        }
        self.entries.first().map_or(Fault::Kill9, |(f, _)| *f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_every_fault_reachable() {
        let menu = FaultMenu::all();
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            let f = menu.pick(&mut a);
            assert_eq!(f, menu.pick(&mut b));
            seen.insert(f);
        }
        assert_eq!(seen.len(), menu.entries.len());
    }

    #[test]
    fn a_deck_holds_every_fault_by_weight() {
        let menu = FaultMenu::all();
        let deck = menu.deck(&mut Rng::new(3));
        let total: u32 = menu.entries.iter().map(|(_, w)| w).sum();
        assert_eq!(deck.len(), total as usize);
        for (f, w) in &menu.entries {
            assert_eq!(deck.iter().filter(|d| *d == f).count(), *w as usize);
        }
        assert_ne!(deck, menu.deck(&mut Rng::new(4)), "shuffled by the seed");
    }

    #[test]
    fn specs_are_json_objects_for_the_admin_api() {
        let mut rng = Rng::new(1);
        for f in EmuFault::ALL {
            let s = f.spec("sink", 2, &mut rng);
            let v: sonic_rs::Value = sonic_rs::from_str(&s).expect("json");
            use sonic_rs::JsonValueTrait;
            assert!(v.get("kind").is_some(), "{s}");
        }
    }
}

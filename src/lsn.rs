//! Positions in the PostgreSQL write-ahead log.
//!
//! [`Lsn`] is shared by every layer that speaks of WAL positions (the replication
//! source, the checkpoint store, the status board, labels, slot inspection), so it
//! lives at the bottom of the crate and depends on nothing of dbmazz.
//! [`AtomicLsn`] is the lock-free counter the status figures are kept in.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A position in the PostgreSQL write-ahead log, printed as `X/Y` like the server does.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`: "no position" on the wire (Relation/Type frames carry it).
    pub const ZERO: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text was not an LSN of the form `X/Y` (hexadecimal halves).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hexadecimal halves separated by '/', e.g. 16/B374D848")]
pub struct ParseLsnError(pub String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError(s.to_owned());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return Err(err());
        }
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// An LSN counter that only moves forward, readable from any thread without a lock.
///
/// Relaxed ordering: these are monitoring figures, not synchronisation.
#[derive(Debug, Default)]
pub struct AtomicLsn(AtomicU64);

impl AtomicLsn {
    /// A counter at `0/0`.
    pub const fn new() -> Self {
        AtomicLsn(AtomicU64::new(0))
    }

    /// The current value.
    pub fn get(&self) -> Lsn {
        Lsn(self.0.load(Ordering::Relaxed))
    }

    /// Raises the counter to `lsn` (never lowers it).
    pub fn raise(&self, lsn: Lsn) {
        self.0.fetch_max(lsn.0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_through_text() {
        for s in ["0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            let lsn: Lsn = s.parse().expect("valid");
            assert_eq!(lsn.to_string(), s);
        }
        assert_eq!("1/0".parse::<Lsn>().expect("valid"), Lsn(1 << 32));
    }

    #[test]
    fn lsn_rejects_garbage() {
        for s in ["", "/", "1/", "/1", "x/1", "1/2/3", "123456789/0", "-1/0"] {
            assert!(s.parse::<Lsn>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn atomic_lsn_only_goes_up() {
        let a = AtomicLsn::new();
        a.raise(Lsn(10));
        a.raise(Lsn(5));
        assert_eq!(a.get(), Lsn(10));
    }
}

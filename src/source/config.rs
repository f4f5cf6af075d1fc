//! What the replication source is asked to do: slot, publication, options of
//! START_REPLICATION, status interval, buffering and reconnection, and what the
//! server reported when streaming started.

use std::time::Duration;

use super::error::SourceError;
use crate::config::Secret;
use crate::lsn::Lsn;
use crate::state_store::Checkpointed;

/// `streaming` option of START_REPLICATION.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Streaming {
    /// Large transactions arrive whole at commit.
    #[default]
    Off,
    /// Large in-progress transactions arrive in Stream Start/Stop chunks (PostgreSQL 14+).
    On,
}

/// How to reconnect after transient errors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// First wait.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Give up (and return the last error) when an outage lasts longer.
    pub give_up_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// Everything the replication source needs.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// libpq URL or key/value string.
    pub url: Secret,
    /// Logical replication slot (pgoutput).
    pub slot: String,
    /// Publication to stream.
    pub publication: String,
    /// Where to start: the last checkpoint (its LSN is also the flush LSN reported
    /// until the first confirm), or `None` for a fresh slot (0/0: from the slot's
    /// `confirmed_flush_lsn`).
    pub start_lsn: Option<Checkpointed>,
    /// Streaming of large in-progress transactions.
    pub streaming: Streaming,
    /// Ask for `pg_logical_emit_message` messages (PostgreSQL 14+).
    pub messages: bool,
    /// Decode prepared transactions at PREPARE time (PostgreSQL 15+).
    pub two_phase: bool,
    /// Interval of standby status updates; keep it well below `wal_sender_timeout`.
    pub status_interval: Duration,
    /// Bounded channel capacity, in chunks (one chunk = the messages of one socket read).
    pub channel_capacity: usize,
    /// Timeout for connecting, authenticating and starting replication.
    pub connect_timeout: Duration,
    /// Reconnection after transient errors.
    pub reconnect: ReconnectPolicy,
}

impl SourceConfig {
    /// A config with the defaults: streaming off, no messages, no two-phase, status
    /// every 5 s, 64 chunks of buffer, 30 s connect timeout.
    pub fn new(
        url: impl Into<Secret>,
        slot: impl Into<String>,
        publication: impl Into<String>,
    ) -> Self {
        SourceConfig {
            url: url.into(),
            slot: slot.into(),
            publication: publication.into(),
            start_lsn: None,
            streaming: Streaming::Off,
            messages: false,
            two_phase: false,
            status_interval: Duration::from_secs(5),
            channel_capacity: 64,
            connect_timeout: Duration::from_secs(30),
            reconnect: ReconnectPolicy::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SourceError> {
        let slot_ok = !self.slot.is_empty()
            && self.slot.len() <= 63
            && self
                .slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !slot_ok {
            return Err(SourceError::Config(format!(
                "slot name '{}' is not valid: use 1-63 lower-case letters, digits and underscores",
                self.slot
            )));
        }
        if self.publication.is_empty() || self.publication.contains('\0') {
            return Err(SourceError::Config("publication name is empty".into()));
        }
        if self.status_interval.is_zero() || self.channel_capacity == 0 {
            return Err(SourceError::Config(
                "status interval and channel capacity must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

/// What the server told us while connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// `IDENTIFY_SYSTEM` systemid: changes when the cluster is a different one.
    pub system_id: String,
    /// Timeline.
    pub timeline: u32,
    /// WAL flush position when connecting.
    pub xlogpos: Lsn,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// pgoutput protocol version chosen.
    pub proto_version: u32,
    /// Database connected to.
    pub database: String,
}

/// The highest pgoutput protocol the server supports.
pub fn proto_version_for(server_version_num: u32) -> u32 {
    match server_version_num {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_versions() {
        assert_eq!(proto_version_for(130012), 1);
        assert_eq!(proto_version_for(140000), 2);
        assert_eq!(proto_version_for(150010), 3);
        assert_eq!(proto_version_for(160000), 4);
        assert_eq!(proto_version_for(180001), 4);
    }

    #[test]
    fn slot_names_are_checked() {
        let mut c = SourceConfig::new("host=x", "good_slot_1", "p");
        assert!(c.validate().is_ok());
        c.slot = "Bad-Slot".into();
        assert!(c.validate().is_err());
    }
}

//! Replication slots as PostgreSQL reports them: the one `pg_replication_slots`
//! query of dbmazz, and the two slot operations it performs (create a slot at first
//! start, terminate the walsender of a previous holder at takeover).
//!
//! Every column is read as text, so the same row parser serves the replication
//! connection (simple query protocol, no parameters) and ordinary SQL connections.
//! dbmazz never drops, recreates or advances a slot (design rule 2).

use tokio_postgres::Client;

use super::sql::{db_message, quote_literal};
use crate::lsn::Lsn;

/// One row of `pg_replication_slots`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotRow {
    /// `logical` or `physical`.
    pub slot_type: Option<String>,
    /// Output plugin (`pgoutput`); `None` for a physical slot.
    pub plugin: Option<String>,
    /// Database of a logical slot.
    pub database: Option<String>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// Whether a walsender is attached.
    pub active: bool,
    /// The attached walsender's pid.
    pub active_pid: Option<i32>,
    /// Oldest WAL the slot still needs.
    pub restart_lsn: Option<Lsn>,
    /// What the consumer confirmed.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// Current WAL position minus `restart_lsn`: WAL kept on disk for the slot.
    pub retained_wal_bytes: Option<u64>,
}

/// Why a slot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The query failed (the server's message).
    #[error("{0}")]
    Query(String),
    /// The row holds something PostgreSQL does not write there.
    #[error("unexpected pg_replication_slots row: {0}")]
    Row(String),
}

/// The query, with `slot` as the SQL expression for the slot name (`$1` or a
/// quoted literal).
fn query(slot: &str) -> String {
    format!(
        "SELECT s.slot_type::text, s.plugin::text, s.database::text, s.wal_status::text, \
                s.active::text, s.active_pid::text, s.restart_lsn::text, \
                s.confirmed_flush_lsn::text, \
                pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                                     ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint::text \
           FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = {slot}"
    )
}

/// The query for the simple query protocol (the replication connection), with the
/// slot name as a literal.
pub fn query_for(slot: &str) -> String {
    query(&quote_literal(slot))
}

impl SlotRow {
    /// Parses a row of [`query_for`] given as text columns.
    pub fn from_text(cols: &[Option<String>]) -> Result<SlotRow, SlotError> {
        let col = |i: usize| cols.get(i).cloned().flatten();
        let lsn = |i: usize| {
            col(i)
                .map(|t| t.parse::<Lsn>().map_err(|e| SlotError::Row(e.to_string())))
                .transpose()
        };
        let number = |i: usize, what: &str| {
            col(i)
                .map(|t| {
                    t.parse::<i64>()
                        .map_err(|_| SlotError::Row(format!("{what} '{t}' is not a number")))
                })
                .transpose()
        };
        let active_pid = number(5, "active_pid")?
            .map(|p| i32::try_from(p).map_err(|_| SlotError::Row(format!("active_pid {p}"))))
            .transpose()?;
        Ok(SlotRow {
            slot_type: col(0),
            plugin: col(1),
            database: col(2),
            wal_status: col(3),
            active: matches!(col(4).as_deref(), Some("true" | "t")),
            active_pid,
            restart_lsn: lsn(6)?,
            confirmed_flush_lsn: lsn(7)?,
            retained_wal_bytes: number(8, "retained WAL")?.map(|b| u64::try_from(b).unwrap_or(0)),
        })
    }
}

/// Reads `slot` over an SQL connection; `None` when no slot of that name exists.
pub async fn read(client: &Client, slot: &str) -> Result<Option<SlotRow>, SlotError> {
    let rows = client
        .query(&query("$1"), &[&slot])
        .await
        .map_err(|e| SlotError::Query(db_message(&e)))?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let cols = (0..row.len())
        .map(|i| row.try_get::<_, Option<String>>(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SlotError::Row(e.to_string()))?;
    SlotRow::from_text(&cols).map(Some)
}

/// Creates logical slot `slot` with the pgoutput plugin; returns its consistent point.
pub async fn create_logical(client: &Client, slot: &str) -> Result<Lsn, SlotError> {
    let lsn: String = client
        .query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .map_err(|e| SlotError::Query(db_message(&e)))?
        .try_get(0)
        .map_err(|e| SlotError::Row(e.to_string()))?;
    lsn.parse()
        .map_err(|e: crate::lsn::ParseLsnError| SlotError::Row(e.to_string()))
}

/// Terminates the walsender `pid` (the previous holder of a slot); true when the
/// server signalled it.
pub async fn terminate_walsender(client: &Client, pid: i32) -> Result<bool, SlotError> {
    let done: Option<bool> = client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .map_err(|e| SlotError::Query(db_message(&e)))?
        .try_get(0)
        .map_err(|e| SlotError::Row(e.to_string()))?;
    Ok(done.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|c| c.map(str::to_owned)).collect()
    }

    #[test]
    fn parses_a_logical_slot() {
        let row = SlotRow::from_text(&text(&[
            Some("logical"),
            Some("pgoutput"),
            Some("app"),
            Some("reserved"),
            Some("true"),
            Some("4242"),
            Some("0/16B3740"),
            Some("0/16B3778"),
            Some("56"),
        ]))
        .expect("valid row");
        assert_eq!(row.plugin.as_deref(), Some("pgoutput"));
        assert!(row.active);
        assert_eq!(row.active_pid, Some(4242));
        assert_eq!(row.confirmed_flush_lsn, Some(Lsn(0x16B3778)));
        assert_eq!(row.retained_wal_bytes, Some(56));
    }

    #[test]
    fn nulls_and_garbage() {
        let row = SlotRow::from_text(&text(&[Some("physical"), None, None, None, Some("false")]))
            .expect("short rows are nulls");
        assert_eq!(row.plugin, None);
        assert!(!row.active);
        assert_eq!(row.restart_lsn, None);
        let bad = text(&[None, None, None, None, None, None, Some("zz"), None, None]);
        assert!(matches!(SlotRow::from_text(&bad), Err(SlotError::Row(_))));
        let bad = text(&[None, None, None, None, None, Some("x")]);
        assert!(matches!(SlotRow::from_text(&bad), Err(SlotError::Row(_))));
    }

    #[test]
    fn literal_query_quotes_the_name() {
        let q = query_for("it's");
        assert!(q.ends_with("s.slot_name = 'it''s'"), "{q}");
        assert!(q.contains("pg_replication_slots"));
    }
}

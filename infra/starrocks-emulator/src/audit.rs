//! Version audit for crash tests: MariaDB triggers that record every time a row's
//! version column would go backwards, independent of the emulator's apply code.
//!
//! [`install_version_audit`] installs three triggers on a table:
//! * `AFTER UPDATE`: records `NEW.v < OLD.v`;
//! * `AFTER DELETE`: keeps a tombstone with the highest version ever deleted per key;
//! * `AFTER INSERT`: records an insert whose version is lower than the key's tombstone
//!   (a stale re-insert after a delete).
//!
//! Records go to `version_audit` (tombstones to `version_tombstones`) in the
//! emulator's bookkeeping database. Because the checks run inside the storage engine,
//! a test that reads [`version_regressions`] cannot agree with a bug in the emulator.
//! NULL versions are never reported (comparisons with NULL are unknown). The version
//! column must be an integer or DECIMAL column.

use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use crate::store::ident;

/// Audit failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The table does not exist or has no primary key.
    #[error("{0}")]
    Table(String),
    /// The version column is missing or not numeric.
    #[error("{0}")]
    VersionColumn(String),
    /// MariaDB failed.
    #[error("MariaDB failed while installing or reading the version audit: {0}")]
    Sql(#[from] mysql_async::Error),
}

/// One recorded regression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regression {
    /// The key, as a JSON array of the primary key values.
    pub key: String,
    /// The version the row had (or the tombstone's).
    pub old_version: String,
    /// The lower version written.
    pub new_version: String,
    /// `update` or `reinsert_after_delete`.
    pub kind: String,
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn trigger_name(table: &str, suffix: &str) -> String {
    let base: String = table
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(48)
        .collect();
    ident(&format!("va_{base}_{suffix}"))
}

async fn ensure_tables(c: &mut mysql_async::Conn, meta: &str) -> Result<(), AuditError> {
    let m = ident(meta);
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {m}"))
        .await?;
    c.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {m}.version_audit (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            db VARCHAR(255) NOT NULL, tbl VARCHAR(255) NOT NULL, pk TEXT NOT NULL,
            old_version DECIMAL(65,30) NULL, new_version DECIMAL(65,30) NULL,
            kind VARCHAR(32) NOT NULL, recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            KEY db_tbl (db, tbl)
        ) ENGINE=InnoDB"
    ))
    .await?;
    c.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {m}.version_tombstones (
            db VARCHAR(255) NOT NULL, tbl VARCHAR(255) NOT NULL, pk_hash BINARY(32) NOT NULL,
            pk TEXT NOT NULL, version DECIMAL(65,30) NOT NULL,
            PRIMARY KEY (db, tbl, pk_hash)
        ) ENGINE=InnoDB"
    ))
    .await?;
    Ok(())
}

/// Installs (or re-installs) the audit triggers on `db.table` for `version_column`.
/// `meta_db` is the emulator's bookkeeping database (default `__emulator`).
pub async fn install_version_audit(
    pool: &Pool,
    meta_db: &str,
    db: &str,
    table: &str,
    version_column: &str,
) -> Result<(), AuditError> {
    let mut c = pool.get_conn().await?;
    let cols: Vec<(String, String, String)> = c
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    if cols.is_empty() {
        return Err(AuditError::Table(format!(
            "table {db}.{table} does not exist"
        )));
    }
    let keys: Vec<String> = c
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await?;
    if keys.is_empty() {
        return Err(AuditError::Table(format!(
            "table {db}.{table} has no primary key; the version audit tracks rows by key"
        )));
    }
    let Some((vname, vtype, _)) = cols
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(version_column))
    else {
        return Err(AuditError::VersionColumn(format!(
            "table {db}.{table} has no column {version_column}"
        )));
    };
    let numeric = [
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "integer",
        "bigint",
        "decimal",
        "numeric",
    ];
    if !numeric.contains(&vtype.to_ascii_lowercase().as_str()) {
        return Err(AuditError::VersionColumn(format!(
            "version column {version_column} of {db}.{table} is {vtype}; it must be an integer or DECIMAL"
        )));
    }
    ensure_tables(&mut c, meta_db).await?;
    let m = ident(meta_db);
    let t = format!("{}.{}", ident(db), ident(table));
    let v = ident(vname);
    let key_of = |row: &str| {
        format!(
            "JSON_ARRAY({})",
            keys.iter()
                .map(|k| format!("{row}.{}", ident(k)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let (dbs, tbs) = (sql_str(db), sql_str(table));
    let (au, ad, ai) = (
        trigger_name(table, "au"),
        trigger_name(table, "ad"),
        trigger_name(table, "ai"),
    );
    for name in [&au, &ad, &ai] {
        c.query_drop(format!("DROP TRIGGER IF EXISTS {}.{name}", ident(db)))
            .await?;
    }
    c.query_drop(format!(
        "CREATE TRIGGER {}.{au} AFTER UPDATE ON {t} FOR EACH ROW BEGIN \
           IF NEW.{v} < OLD.{v} THEN \
             INSERT INTO {m}.version_audit (db, tbl, pk, old_version, new_version, kind) \
             VALUES ({dbs}, {tbs}, {}, OLD.{v}, NEW.{v}, 'update'); \
           END IF; \
         END",
        ident(db),
        key_of("NEW")
    ))
    .await?;
    c.query_drop(format!(
        "CREATE TRIGGER {}.{ad} AFTER DELETE ON {t} FOR EACH ROW BEGIN \
           IF OLD.{v} IS NOT NULL THEN \
             INSERT INTO {m}.version_tombstones (db, tbl, pk_hash, pk, version) \
             VALUES ({dbs}, {tbs}, UNHEX(SHA2({k}, 256)), {k}, OLD.{v}) \
             ON DUPLICATE KEY UPDATE version = IF(VALUES(version) > version, VALUES(version), version); \
           END IF; \
         END",
        ident(db),
        k = key_of("OLD")
    ))
    .await?;
    c.query_drop(format!(
        "CREATE TRIGGER {}.{ai} AFTER INSERT ON {t} FOR EACH ROW BEGIN \
           DECLARE tv DECIMAL(65,30); \
           SET tv = (SELECT version FROM {m}.version_tombstones \
                     WHERE db = {dbs} AND tbl = {tbs} AND pk_hash = UNHEX(SHA2({k}, 256)) LIMIT 1); \
           IF tv IS NOT NULL AND NEW.{v} < tv THEN \
             INSERT INTO {m}.version_audit (db, tbl, pk, old_version, new_version, kind) \
             VALUES ({dbs}, {tbs}, {k}, tv, NEW.{v}, 'reinsert_after_delete'); \
           END IF; \
         END",
        ident(db),
        k = key_of("NEW")
    ))
    .await?;
    Ok(())
}

fn trim_decimal(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// The regressions recorded for `db.table`, oldest first.
pub async fn version_regressions(
    pool: &Pool,
    meta_db: &str,
    db: &str,
    table: &str,
) -> Result<Vec<Regression>, AuditError> {
    let mut c = pool.get_conn().await?;
    ensure_tables(&mut c, meta_db).await?;
    let m = ident(meta_db);
    let rows: Vec<(String, Option<String>, Option<String>, String)> = c
        .exec(
            format!(
                "SELECT pk, CAST(old_version AS CHAR), CAST(new_version AS CHAR), kind \
                 FROM {m}.version_audit WHERE db = ? AND tbl = ? ORDER BY id"
            ),
            (db, table),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, o, n, kind)| Regression {
            key,
            old_version: trim_decimal(o.unwrap_or_default()),
            new_version: trim_decimal(n.unwrap_or_default()),
            kind,
        })
        .collect())
}

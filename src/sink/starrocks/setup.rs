//! StarRocks side of setup (run on every start through [`crate::sink::Sink::prepare`]):
//! the database and tables exist, keys match the source, columns the source has are
//! present (added when missing), audit columns added.

use super::catalog::{starrocks_type, Catalog, CatalogError};
use super::table::{backquote, SinkTable, AUDIT_COLUMNS};
use crate::error::ErrorKind;
use crate::pipeline::schema_cache::SourceTable;

/// Why the StarRocks side of setup failed: one variant per thing that can be wrong,
/// each message naming the object and the fix (shown as `error_detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkSetupError {
    /// StarRocks' MySQL port is unreachable or refused the login.
    #[error("Cannot connect to StarRocks (MySQL protocol) at {endpoint}: {detail}. Check SINK_URL's host, SINK_MYSQL_PORT (default 9030), SINK_USER and SINK_PASSWORD.")]
    SrConnect {
        /// host:port.
        endpoint: String,
        /// Driver message.
        detail: String,
    },
    /// The sink database does not exist.
    #[error("Database '{database}' not found in StarRocks. Create it (CREATE DATABASE `{database}`;) or fix SINK_DATABASE.")]
    SrDatabaseNotFound {
        /// Database.
        database: String,
    },
    /// A sink table does not exist.
    #[error("Table '{database}.{table}' not found in StarRocks (target of PostgreSQL table '{pg_table}'). Create it as a Primary Key table, e.g.: {ddl}")]
    SrTableNotFound {
        /// Database.
        database: String,
        /// Table.
        table: String,
        /// PostgreSQL table.
        pg_table: String,
        /// Suggested DDL.
        ddl: String,
    },
    /// A sink table is not a Primary Key table.
    #[error("StarRocks table '{database}.{table}' is not a Primary Key table (no PRIMARY KEY columns reported). dbmazz applies updates and deletes by key: recreate it with PRIMARY KEY ({key}).")]
    SrNotPrimaryKey {
        /// Database.
        database: String,
        /// Table.
        table: String,
        /// Expected key.
        key: String,
    },
    /// The sink key differs from the source key.
    #[error("StarRocks table '{database}.{table}' has PRIMARY KEY ({sink_key}) but PostgreSQL table '{pg_table}' has ({source_key}). They must be the same columns, or updates and deletes land on the wrong rows.")]
    SrKeyMismatch {
        /// Database.
        database: String,
        /// Table.
        table: String,
        /// PostgreSQL table.
        pg_table: String,
        /// Sink key.
        sink_key: String,
        /// Source key.
        source_key: String,
    },
    /// DDL on the sink failed.
    #[error("Cannot alter StarRocks table '{database}.{table}': {detail}. The user in SINK_USER needs ALTER on the table.")]
    SrAlter {
        /// Database.
        database: String,
        /// Table.
        table: String,
        /// Message.
        detail: String,
    },
}

impl SinkSetupError {
    /// An unreachable server may come back by itself; everything else needs an
    /// operator.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkSetupError::SrConnect { .. } => ErrorKind::Transient,
            _ => ErrorKind::Setup,
        }
    }
}

fn alter_err(database: &str, table: &str) -> impl FnOnce(CatalogError) -> SinkSetupError {
    let (database, table) = (database.to_owned(), table.to_owned());
    move |e| SinkSetupError::SrAlter {
        database,
        table,
        detail: e.to_string(),
    }
}

fn connect_err(endpoint: &str, e: CatalogError) -> SinkSetupError {
    SinkSetupError::SrConnect {
        endpoint: endpoint.to_owned(),
        detail: e.to_string(),
    }
}

/// A CREATE TABLE statement that would fit `t` (shown in SrTableNotFound).
pub fn suggested_ddl(database: &str, t: &SourceTable) -> String {
    let mut cols: Vec<String> = Vec::new();
    // Key columns first, as StarRocks requires for Primary Key tables.
    let ordered = t
        .spec
        .key_columns
        .iter()
        .filter_map(|k| t.columns.iter().find(|c| &c.name == k))
        .chain(
            t.columns
                .iter()
                .filter(|c| !t.spec.key_columns.contains(&c.name)),
        );
    for c in ordered {
        let null = if t.spec.key_columns.contains(&c.name) {
            " NOT NULL"
        } else {
            ""
        };
        cols.push(format!(
            "{} {}{null}",
            backquote(&c.name),
            starrocks_type(c)
        ));
    }
    cols.push("`dbmazz_op_type` TINYINT".into());
    cols.push("`dbmazz_is_deleted` BOOLEAN".into());
    cols.push("`dbmazz_synced_at` DATETIME".into());
    cols.push("`dbmazz_cdc_version` BIGINT".into());
    let key: Vec<String> = t.spec.key_columns.iter().map(|k| backquote(k)).collect();
    format!(
        "CREATE TABLE {}.{} ({}) PRIMARY KEY ({}) DISTRIBUTED BY HASH ({});",
        backquote(database),
        backquote(&t.spec.sink_table),
        cols.join(", "),
        key.join(", "),
        key.join(", ")
    )
}

/// Verifies and prepares every sink table; returns them as they are afterwards.
pub async fn setup(
    catalog: &Catalog,
    endpoint: &str,
    tables: &[SourceTable],
) -> Result<Vec<(String, SinkTable)>, SinkSetupError> {
    let database = catalog.database().to_owned();
    if !catalog
        .database_exists()
        .await
        .map_err(|e| connect_err(endpoint, e))?
    {
        return Err(SinkSetupError::SrDatabaseNotFound { database });
    }
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let name = &t.spec.sink_table;
        let Some(sink) = catalog
            .table(name)
            .await
            .map_err(|e| connect_err(endpoint, e))?
        else {
            return Err(SinkSetupError::SrTableNotFound {
                database: database.clone(),
                table: name.clone(),
                pg_table: t.spec.qualified(),
                ddl: suggested_ddl(&database, t),
            });
        };
        let sink_key = sink.key_columns();
        if sink_key.is_empty() {
            return Err(SinkSetupError::SrNotPrimaryKey {
                database: database.clone(),
                table: name.clone(),
                key: t.spec.key_columns.join(", "),
            });
        }
        let same = sink_key.len() == t.spec.key_columns.len()
            && t.spec
                .key_columns
                .iter()
                .all(|k| sink_key.iter().any(|s| s.eq_ignore_ascii_case(k)));
        if !same {
            return Err(SinkSetupError::SrKeyMismatch {
                database: database.clone(),
                table: name.clone(),
                pg_table: t.spec.qualified(),
                sink_key: sink_key.join(", "),
                source_key: t.spec.key_columns.join(", "),
            });
        }
        let missing: Vec<(String, String)> = t
            .columns
            .iter()
            .filter(|c| sink.column(&c.name).is_none())
            .map(|c| (c.name.clone(), starrocks_type(c)))
            .collect();
        catalog
            .add_columns(name, &missing)
            .await
            .map_err(alter_err(&database, name))?;
        let sink = if missing.is_empty() {
            sink
        } else {
            catalog
                .table(name)
                .await
                .map_err(|e| connect_err(endpoint, e))?
                .unwrap_or_default()
        };
        let added = catalog
            .ensure_audit_columns(name, &sink)
            .await
            .map_err(alter_err(&database, name))?;
        let sink = if added.is_empty() {
            sink
        } else {
            tracing::info!(table = %name, columns = ?added, "audit columns added");
            catalog
                .table(name)
                .await
                .map_err(|e| connect_err(endpoint, e))?
                .unwrap_or_default()
        };
        debug_assert!(AUDIT_COLUMNS.iter().all(|a| sink.column(a).is_some()));
        out.push((name.clone(), sink));
    }
    Ok(out)
}

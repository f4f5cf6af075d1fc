//! StarRocks side of setup: the database and tables exist, keys match the source,
//! columns the source has are present (added when missing), audit columns added.

use super::error::SetupError;
use super::postgres::PgTable;
use crate::sink::catalog::{starrocks_type, Catalog, CatalogError, SinkTable};
use crate::sink::encode::{backquote, AUDIT_COLUMNS};

fn alter_err(database: &str, table: &str) -> impl FnOnce(CatalogError) -> SetupError {
    let (database, table) = (database.to_owned(), table.to_owned());
    move |e| SetupError::SrAlter {
        database,
        table,
        detail: e.to_string(),
    }
}

fn connect_err(endpoint: &str, e: CatalogError) -> SetupError {
    SetupError::SrConnect {
        endpoint: endpoint.to_owned(),
        detail: e.to_string(),
    }
}

/// A CREATE TABLE statement that would fit `t` (shown in SrTableNotFound).
pub fn suggested_ddl(database: &str, t: &PgTable) -> String {
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
    tables: &[PgTable],
) -> Result<Vec<(String, SinkTable)>, SetupError> {
    let database = catalog.database().to_owned();
    if !catalog
        .database_exists()
        .await
        .map_err(|e| connect_err(endpoint, e))?
    {
        return Err(SetupError::SrDatabaseNotFound { database });
    }
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let name = &t.spec.sink_table;
        let Some(sink) = catalog
            .table(name)
            .await
            .map_err(|e| connect_err(endpoint, e))?
        else {
            return Err(SetupError::SrTableNotFound {
                database: database.clone(),
                table: name.clone(),
                pg_table: t.spec.qualified(),
                ddl: suggested_ddl(&database, t),
            });
        };
        let sink_key = sink.key_columns();
        if sink_key.is_empty() {
            return Err(SetupError::SrNotPrimaryKey {
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
            return Err(SetupError::SrKeyMismatch {
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

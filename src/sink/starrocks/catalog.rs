//! The sink's MySQL-protocol side (StarRocks FE, port 9030): table metadata and DDL.
//!
//! Used by setup (tables exist, key columns, audit columns) and by the sink itself
//! for schema evolution (`ALTER TABLE … ADD COLUMN`, then wait until the change is
//! finished, design rule 6) and TRUNCATE.
//!
//! Dialects: StarRocks is the target. A server that identifies as MariaDB (the
//! StarRocks emulator used in tests stores its tables in MariaDB) gets the same
//! statements with MariaDB type names (`STRING` → `LONGTEXT`, `DATETIME` →
//! `DATETIME(6)`, `ARRAY<…>` → `JSON`), and its checked-LONGTEXT JSON columns are
//! recognised as JSON.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, Row};

use super::table::{backquote, SinkColumn, SinkTable, CDC_VERSION, IS_DELETED, OP_TYPE, SYNCED_AT};
use crate::config::Secret;
use crate::error::ErrorKind;
use crate::pipeline::schema_cache::ColumnSchema;

/// Errors of the catalog connection.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The server could not be reached or rejected a statement.
    #[error("StarRocks (MySQL protocol, {endpoint}): {context}: {source}")]
    MySql {
        /// host:port.
        endpoint: String,
        /// What was being done.
        context: String,
        /// Driver error.
        #[source]
        source: mysql_async::Error,
    },
    /// A schema change did not finish.
    #[error("StarRocks schema change on {table} {state}: {detail}")]
    Alter {
        /// Table.
        table: String,
        /// Final state (CANCELLED, timeout).
        state: String,
        /// Message.
        detail: String,
    },
}

impl CatalogError {
    /// Connection-level failures are transient (retry later); a statement the
    /// server refused or a schema change that did not finish is definite.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::MySql {
                source: mysql_async::Error::Io(_) | mysql_async::Error::Driver(_),
                ..
            } => ErrorKind::Transient,
            CatalogError::MySql { .. } | CatalogError::Alter { .. } => ErrorKind::Definite,
        }
    }
}

/// Which server answers on the MySQL port.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// StarRocks FE.
    StarRocks,
    /// MariaDB (the emulator's storage).
    MariaDb,
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct CatalogSettings {
    /// Host.
    pub host: String,
    /// Port (9030 on StarRocks).
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// Database.
    pub database: String,
}

/// The catalog client.
#[derive(Debug)]
pub struct Catalog {
    pool: Pool,
    database: String,
    endpoint: String,
    dialect: Dialect,
}

/// The StarRocks type dbmazz creates for a PostgreSQL column.
pub fn starrocks_type(c: &ColumnSchema) -> String {
    let typmod = c.type_modifier;
    match c.type_oid {
        16 => "BOOLEAN".into(),
        21 => "SMALLINT".into(),
        23 => "INT".into(),
        20 | 26 => "BIGINT".into(),
        700 => "FLOAT".into(),
        701 => "DOUBLE".into(),
        1700 if typmod >= 4 => {
            let p = ((typmod - 4) >> 16) & 0xFFFF;
            let s = (typmod - 4) & 0xFFFF;
            if (1..=38).contains(&p) {
                format!("DECIMAL({p},{s})")
            } else {
                "STRING".into()
            }
        }
        1700 => "STRING".into(),
        1043 | 1042 if typmod > 4 => {
            let chars = i64::from(typmod - 4);
            format!("VARCHAR({})", (chars * 4).min(1_048_576))
        }
        1082 => "DATE".into(),
        1114 | 1184 => "DATETIME".into(),
        1083 | 1266 | 1186 => "VARCHAR(64)".into(),
        2950 => "VARCHAR(36)".into(),
        114 | 3802 => "JSON".into(),
        _ => "STRING".into(),
    }
}

impl Dialect {
    /// Translates a StarRocks type name into this dialect.
    pub fn type_name(self, starrocks: &str) -> String {
        match self {
            Dialect::StarRocks => starrocks.to_owned(),
            Dialect::MariaDb => {
                let upper = starrocks.to_ascii_uppercase();
                if upper == "STRING" {
                    "LONGTEXT".into()
                } else if upper == "DATETIME" {
                    "DATETIME(6)".into()
                } else if upper.starts_with("ARRAY<") {
                    "JSON".into()
                } else if upper == "LARGEINT" {
                    "DECIMAL(39,0)".into()
                } else if let Some(n) = upper
                    .strip_prefix("VARCHAR(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    if n > 16_383 {
                        "LONGTEXT".into()
                    } else {
                        upper
                    }
                } else {
                    upper
                }
            }
        }
    }
}

impl Catalog {
    /// Connects and detects the dialect.
    pub async fn connect(s: &CatalogSettings) -> Result<Self, CatalogError> {
        let endpoint = format!("{}:{}", s.host, s.port);
        let opts: Opts = OptsBuilder::default()
            .ip_or_hostname(s.host.clone())
            .tcp_port(s.port)
            .user(Some(s.user.clone()))
            .pass(Some(s.password.expose().to_owned()))
            .prefer_socket(false)
            .into();
        let pool = Pool::new(opts);
        let mut cat = Catalog {
            pool,
            database: s.database.clone(),
            endpoint,
            dialect: Dialect::StarRocks,
        };
        let version: Option<String> = cat
            .query_first("SELECT VERSION()", "reading the server version")
            .await?;
        if version.is_some_and(|v| v.to_ascii_lowercase().contains("mariadb")) {
            cat.dialect = Dialect::MariaDb;
        }
        Ok(cat)
    }

    /// The detected dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The database.
    pub fn database(&self) -> &str {
        &self.database
    }

    fn err(&self, context: &str) -> impl FnOnce(mysql_async::Error) -> CatalogError + '_ {
        let context = context.to_owned();
        move |source| CatalogError::MySql {
            endpoint: self.endpoint.clone(),
            context,
            source,
        }
    }

    async fn conn(&self) -> Result<mysql_async::Conn, CatalogError> {
        self.pool.get_conn().await.map_err(self.err("connecting"))
    }

    async fn query_first<T: mysql_async::prelude::FromRow + Send + 'static>(
        &self,
        sql: &str,
        context: &str,
    ) -> Result<Option<T>, CatalogError> {
        let mut c = self.conn().await?;
        c.query_first(sql).await.map_err(self.err(context))
    }

    async fn exec(&self, sql: String, context: &str) -> Result<(), CatalogError> {
        let mut c = self.conn().await?;
        c.query_drop(sql).await.map_err(self.err(context))
    }

    /// True when the database exists.
    pub async fn database_exists(&self) -> Result<bool, CatalogError> {
        let mut c = self.conn().await?;
        let n: Option<String> = c
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (self.database.clone(),),
            )
            .await
            .map_err(self.err("looking up the database"))?;
        Ok(n.is_some())
    }

    /// The table's columns, or `None` when it does not exist.
    pub async fn table(&self, table: &str) -> Result<Option<SinkTable>, CatalogError> {
        let mut c = self.conn().await?;
        let rows: Vec<Row> = c
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLUMN_KEY, IS_NULLABLE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (self.database.clone(), table.to_owned()),
            )
            .await
            .map_err(self.err("reading table columns"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut json_cols: Vec<String> = Vec::new();
        if self.dialect == Dialect::MariaDb {
            json_cols = c
                .exec(
                    "SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS \
                     WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? \
                       AND CHECK_CLAUSE LIKE 'json_valid(%'",
                    (self.database.clone(), table.to_owned()),
                )
                .await
                .map_err(self.err("reading JSON column constraints"))?;
        }
        let text = |r: &Row, i: usize| -> String {
            r.get_opt::<Option<String>, usize>(i)
                .and_then(Result::ok)
                .flatten()
                .unwrap_or_default()
        };
        let columns = rows
            .iter()
            .map(|r| {
                let name = text(r, 0);
                let data_type = text(r, 1).to_ascii_lowercase();
                let is_json = data_type == "json" || json_cols.iter().any(|j| j == &name);
                SinkColumn {
                    column_type: text(r, 2).to_ascii_lowercase(),
                    is_key: text(r, 3).eq_ignore_ascii_case("PRI"),
                    nullable: text(r, 4).eq_ignore_ascii_case("YES"),
                    is_json,
                    data_type,
                    name,
                }
            })
            .collect();
        Ok(Some(SinkTable { columns }))
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", backquote(&self.database), backquote(table))
    }

    /// Adds columns (`(name, StarRocks type)`, all nullable) and waits until the
    /// change is finished and visible.
    pub async fn add_columns(
        &self,
        table: &str,
        cols: &[(String, String)],
    ) -> Result<(), CatalogError> {
        if cols.is_empty() {
            return Ok(());
        }
        let defs: Vec<String> = cols
            .iter()
            .map(|(n, t)| format!("{} {} NULL", backquote(n), self.dialect.type_name(t)))
            .collect();
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN ({})",
            self.qualified(table),
            defs.join(", ")
        );
        tracing::info!(table, columns = ?cols.iter().map(|c| &c.0).collect::<Vec<_>>(), "adding sink columns");
        self.exec(sql, "adding columns").await?;
        self.wait_for_alter(table).await?;
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let t = self.table(table).await?.unwrap_or_default();
            if names.iter().all(|n| t.column(n).is_some()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CatalogError::Alter {
                    table: table.to_owned(),
                    state: "timed out".into(),
                    detail: format!("columns {names:?} not visible after 600 s"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the newest column schema change of `table` (StarRocks runs them
    /// asynchronously; MariaDB's ALTER is synchronous).
    async fn wait_for_alter(&self, table: &str) -> Result<(), CatalogError> {
        if self.dialect != Dialect::StarRocks {
            return Ok(());
        }
        let sql = format!(
            "SHOW ALTER TABLE COLUMN FROM {} WHERE TableName = '{}' ORDER BY JobId DESC LIMIT 1",
            backquote(&self.database),
            table.replace('\'', "''")
        );
        let deadline = Instant::now() + Duration::from_secs(86_400);
        let mut errors = 0;
        loop {
            let mut c = self.conn().await?;
            let row: Result<Option<Row>, _> = c.query_first(sql.clone()).await;
            match row {
                Ok(Some(r)) => {
                    let state: String = r
                        .get_opt::<Option<String>, &str>("State")
                        .and_then(Result::ok)
                        .flatten()
                        .unwrap_or_default();
                    match state.as_str() {
                        "FINISHED" => return Ok(()),
                        "CANCELLED" => {
                            let msg: String = r
                                .get_opt::<Option<String>, &str>("Msg")
                                .and_then(Result::ok)
                                .flatten()
                                .unwrap_or_default();
                            return Err(CatalogError::Alter {
                                table: table.to_owned(),
                                state,
                                detail: msg,
                            });
                        }
                        _ => {}
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    errors += 1;
                    if errors > 3 {
                        return Err(self.err("waiting for the schema change")(e));
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(CatalogError::Alter {
                    table: table.to_owned(),
                    state: "timed out".into(),
                    detail: "still running after alter_table_timeout_second".into(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Adds whichever audit columns the table lacks.
    pub async fn ensure_audit_columns(
        &self,
        table: &str,
        have: &SinkTable,
    ) -> Result<Vec<String>, CatalogError> {
        let wanted = [
            (OP_TYPE, "TINYINT"),
            (IS_DELETED, "BOOLEAN"),
            (SYNCED_AT, "DATETIME"),
            (CDC_VERSION, "BIGINT"),
        ];
        let missing: Vec<(String, String)> = wanted
            .iter()
            .filter(|(n, _)| have.column(n).is_none())
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        self.add_columns(table, &missing).await?;
        Ok(missing.into_iter().map(|(n, _)| n).collect())
    }

    /// `TRUNCATE TABLE`.
    pub async fn truncate(&self, table: &str) -> Result<(), CatalogError> {
        self.exec(
            format!("TRUNCATE TABLE {}", self.qualified(table)),
            "truncating",
        )
        .await
    }

    /// Marks every row not newer than `version` deleted (soft TRUNCATE). Rows with
    /// a newer version were written after the TRUNCATE and stay, so a replay of the
    /// TRUNCATE cannot touch them.
    pub async fn soft_truncate(
        &self,
        table: &str,
        version: i64,
        synced_at: &str,
    ) -> Result<(), CatalogError> {
        let sql = format!(
            "UPDATE {} SET {} = TRUE, {} = 2, {} = '{}', {} = {} WHERE {} <= {}",
            self.qualified(table),
            backquote(IS_DELETED),
            backquote(OP_TYPE),
            backquote(SYNCED_AT),
            synced_at,
            backquote(CDC_VERSION),
            version,
            backquote(CDC_VERSION),
            version
        );
        self.exec(sql, "marking rows deleted (soft TRUNCATE)").await
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(oid: u32, typmod: i32) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            type_oid: oid,
            type_modifier: typmod,
            pg_type: crate::source::values::PgType::Text,
            identity: false,
        }
    }

    #[test]
    fn type_mapping() {
        assert_eq!(starrocks_type(&col(20, -1)), "BIGINT");
        assert_eq!(
            starrocks_type(&col(1700, ((12 << 16) | 2) + 4)),
            "DECIMAL(12,2)"
        );
        assert_eq!(starrocks_type(&col(1700, ((60 << 16) | 2) + 4)), "STRING");
        assert_eq!(starrocks_type(&col(1700, -1)), "STRING");
        assert_eq!(starrocks_type(&col(1043, 14)), "VARCHAR(40)");
        assert_eq!(starrocks_type(&col(3802, -1)), "JSON");
    }

    #[test]
    fn mariadb_translation() {
        let d = Dialect::MariaDb;
        assert_eq!(d.type_name("STRING"), "LONGTEXT");
        assert_eq!(d.type_name("DATETIME"), "DATETIME(6)");
        assert_eq!(d.type_name("VARCHAR(40)"), "VARCHAR(40)");
        assert_eq!(d.type_name("VARCHAR(100000)"), "LONGTEXT");
        assert_eq!(d.type_name("ARRAY<INT>"), "JSON");
        assert_eq!(Dialect::StarRocks.type_name("STRING"), "STRING");
    }
}

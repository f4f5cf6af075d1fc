//! Table schemas: which StarRocks type each MariaDB column stands for.
//!
//! A StarRocks database is the MariaDB database of the same name; a StarRocks Primary
//! Key table is a MariaDB table with a PRIMARY KEY (a table without one behaves as a
//! Duplicate Key table: rows are appended). The mapping (also in the README):
//!
//! | MariaDB column                         | StarRocks semantics                          |
//! |----------------------------------------|----------------------------------------------|
//! | `TINYINT(1)` / `BOOLEAN`               | BOOLEAN                                      |
//! | `TINYINT` `SMALLINT` `INT` `BIGINT`    | same name, same range                        |
//! | `MEDIUMINT`                            | INT, range-checked to MEDIUMINT              |
//! | `... UNSIGNED`                         | next wider signed type, range-checked to the MariaDB column |
//! | `DECIMAL(p,s)`                         | DECIMAL(p,s) (p capped at 38)                |
//! | `FLOAT` / `DOUBLE`                     | FLOAT / DOUBLE                               |
//! | `VARCHAR(n)` / `CHAR(n)`               | VARCHAR(n) / CHAR(n): **n bytes**, as in StarRocks |
//! | `TINYTEXT`                             | VARCHAR(255)                                 |
//! | `TEXT`                                 | STRING (65533 bytes)                         |
//! | `MEDIUMTEXT` / `LONGTEXT`              | VARCHAR(1048576), the longest StarRocks string |
//! | `LONGTEXT` + `CHECK (json_valid(col))` (= MariaDB `JSON`) | JSON              |
//! | `VARBINARY(n)` / `BINARY(n)` / `*BLOB` | VARBINARY(n) (BLOB: 65535, MEDIUM/LONGBLOB: 1048576) |
//! | `DATE`                                 | DATE                                         |
//! | `DATETIME(p)` / `TIMESTAMP(p)`         | DATETIME (microseconds; MariaDB keeps p digits) |
//!
//! Any other MariaDB type makes loads into the table fail with a message naming it.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;

/// The StarRocks type a column stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum SrType {
    /// BOOLEAN
    Boolean,
    /// An integer type with its accepted range.
    Int {
        /// Smallest accepted value.
        min: i128,
        /// Largest accepted value.
        max: i128,
        /// StarRocks type name (for messages).
        name: &'static str,
    },
    /// FLOAT
    Float,
    /// DOUBLE
    Double,
    /// DECIMAL(p,s)
    Decimal {
        /// Total digits.
        precision: u32,
        /// Fraction digits.
        scale: u32,
    },
    /// VARCHAR/CHAR/STRING: text limited to `max_bytes` UTF-8 bytes.
    Text {
        /// Limit in bytes.
        max_bytes: usize,
    },
    /// VARBINARY: bytes limited to `max_bytes`.
    Binary {
        /// Limit in bytes.
        max_bytes: usize,
    },
    /// DATE
    Date,
    /// DATETIME
    DateTime,
    /// JSON
    Json,
}

/// One loadable column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name as MariaDB reports it.
    pub name: String,
    /// StarRocks semantics.
    pub ty: SrType,
    /// NULL allowed.
    pub nullable: bool,
    /// Has a default (explicit, nullable, or auto-increment).
    pub has_default: bool,
    /// Part of the primary key.
    pub is_key: bool,
    /// String key column whose MariaDB collation ignores trailing spaces.
    pub pad_space: bool,
}

/// A table as loads see it.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Loadable columns in table order (generated columns excluded).
    pub columns: Vec<Column>,
    /// Indexes of the key columns (empty: Duplicate Key table).
    pub key: Vec<usize>,
    by_name: HashMap<String, usize>,
}

impl TableSchema {
    /// Builds a schema from columns (used by [`load_schema`] and tests).
    pub fn new(db: &str, table: &str, columns: Vec<Column>) -> Self {
        let key = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_key)
            .map(|(i, _)| i)
            .collect();
        let mut by_name = HashMap::new();
        for (i, c) in columns.iter().enumerate() {
            by_name.insert(c.name.to_ascii_lowercase(), i);
        }
        TableSchema {
            db: db.to_owned(),
            table: table.to_owned(),
            columns,
            key,
            by_name,
        }
    }

    /// Column index by name (case-insensitive, like StarRocks and MariaDB).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// True for a Primary Key table.
    pub fn is_primary_key(&self) -> bool {
        !self.key.is_empty()
    }
}

/// Why a schema could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database does not exist.
    #[error("unknown database, database={0}")]
    UnknownDatabase(String),
    /// The table does not exist.
    #[error("unknown table, table={0}")]
    UnknownTable(String),
    /// A column type has no StarRocks counterpart.
    #[error("column '{column}' of {db}.{table} has MariaDB type '{mariadb_type}', which stands for no StarRocks type the emulator knows; use one of the types listed in the emulator README")]
    UnsupportedType {
        /// Database.
        db: String,
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Its MariaDB type.
        mariadb_type: String,
    },
    /// A string key column compares case- or accent-insensitively.
    #[error("key column '{column}' of {db}.{table} uses collation {collation}; StarRocks compares keys byte by byte, so use a binary (_bin) collation")]
    KeyCollation {
        /// Database.
        db: String,
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Collation found.
        collation: String,
    },
    /// MariaDB failed.
    #[error("reading the schema from MariaDB failed: {0}")]
    Sql(#[from] mysql_async::Error),
}

type ColumnRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    String,
);

/// Reads the schema of `db.table` from `information_schema`.
pub async fn load_schema(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<TableSchema, SchemaError> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY, \
             CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, COLLATION_NAME, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    if rows.is_empty() {
        let exists: Option<String> = conn
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (db,),
            )
            .await?;
        return Err(if exists.is_none() {
            SchemaError::UnknownDatabase(db.to_owned())
        } else {
            SchemaError::UnknownTable(table.to_owned())
        });
    }
    let json_cols = if rows.iter().any(|r| r.1.eq_ignore_ascii_case("longtext")) {
        let checks: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (db, table),
            )
            .await?;
        checks
            .iter()
            .filter_map(|c| json_valid_column(c))
            .collect::<Vec<_>>()
    } else {
        Vec::new()
    };
    let mut columns = Vec::with_capacity(rows.len());
    for (
        name,
        data_type,
        column_type,
        nullable,
        default,
        key,
        char_len,
        prec,
        scale,
        collation,
        extra,
    ) in rows
    {
        let extra_l = extra.to_ascii_lowercase();
        if extra_l.contains("generated") {
            continue;
        }
        let is_json = json_cols.iter().any(|j| j.eq_ignore_ascii_case(&name));
        let ty = map_type(&data_type, &column_type, char_len, prec, scale, is_json).ok_or_else(
            || SchemaError::UnsupportedType {
                db: db.to_owned(),
                table: table.to_owned(),
                column: name.clone(),
                mariadb_type: column_type.clone(),
            },
        )?;
        let is_key = key == "PRI";
        let nullable = nullable == "YES";
        let collation = collation.unwrap_or_default();
        if is_key
            && matches!(ty, SrType::Text { .. })
            && !collation.is_empty()
            && !collation.ends_with("_bin")
        {
            return Err(SchemaError::KeyCollation {
                db: db.to_owned(),
                table: table.to_owned(),
                column: name,
                collation,
            });
        }
        let pad_space = matches!(ty, SrType::Text { .. }) && !collation.contains("nopad");
        columns.push(Column {
            name,
            ty,
            nullable,
            has_default: default.is_some() || nullable || extra_l.contains("auto_increment"),
            is_key,
            pad_space,
        });
    }
    Ok(TableSchema::new(db, table, columns))
}

/// The column named in a `json_valid(`col`)` check clause.
fn json_valid_column(clause: &str) -> Option<String> {
    let lower = clause.to_ascii_lowercase();
    let at = lower.find("json_valid(")?;
    let rest = clause.get(at + "json_valid(".len()..)?;
    let end = rest.find(')')?;
    let inner = rest.get(..end)?.trim();
    Some(inner.trim_matches('`').to_owned())
}

/// Maps one MariaDB column type to the StarRocks type it stands for.
pub fn map_type(
    data_type: &str,
    column_type: &str,
    char_len: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
    is_json: bool,
) -> Option<SrType> {
    let dt = data_type.to_ascii_lowercase();
    let ct = column_type.to_ascii_lowercase();
    let unsigned = ct.contains("unsigned");
    let int = |min: i128, max: i128, umax: i128, name: &'static str| {
        Some(if unsigned {
            SrType::Int {
                min: 0,
                max: umax,
                name,
            }
        } else {
            SrType::Int { min, max, name }
        })
    };
    let len = |default: u64| usize::try_from(char_len.unwrap_or(default)).unwrap_or(usize::MAX);
    match dt.as_str() {
        "tinyint" if ct.starts_with("tinyint(1)") && !unsigned => Some(SrType::Boolean),
        "boolean" | "bool" => Some(SrType::Boolean),
        "tinyint" => int(
            -128,
            127,
            255,
            if unsigned { "SMALLINT" } else { "TINYINT" },
        ),
        "smallint" => int(
            -32768,
            32767,
            65535,
            if unsigned { "INT" } else { "SMALLINT" },
        ),
        "mediumint" => int(-8_388_608, 8_388_607, 16_777_215, "INT"),
        "int" | "integer" => int(
            i128::from(i32::MIN),
            i128::from(i32::MAX),
            i128::from(u32::MAX),
            if unsigned { "BIGINT" } else { "INT" },
        ),
        "bigint" => int(
            i128::from(i64::MIN),
            i128::from(i64::MAX),
            i128::from(u64::MAX),
            if unsigned { "LARGEINT" } else { "BIGINT" },
        ),
        "float" => Some(SrType::Float),
        "double" | "real" => Some(SrType::Double),
        "decimal" | "numeric" => Some(SrType::Decimal {
            precision: u32::try_from(precision.unwrap_or(10))
                .unwrap_or(38)
                .clamp(1, 38),
            scale: u32::try_from(scale.unwrap_or(0)).unwrap_or(0).min(38),
        }),
        "varchar" | "char" => Some(SrType::Text { max_bytes: len(1) }),
        "tinytext" => Some(SrType::Text { max_bytes: 255 }),
        "text" => Some(SrType::Text { max_bytes: 65533 }),
        "mediumtext" | "longtext" if is_json => Some(SrType::Json),
        "mediumtext" | "longtext" => Some(SrType::Text {
            max_bytes: 1_048_576,
        }),
        "json" => Some(SrType::Json),
        "varbinary" | "binary" => Some(SrType::Binary { max_bytes: len(1) }),
        "tinyblob" => Some(SrType::Binary { max_bytes: 255 }),
        "blob" => Some(SrType::Binary { max_bytes: 65535 }),
        "mediumblob" | "longblob" => Some(SrType::Binary {
            max_bytes: 1_048_576,
        }),
        "date" => Some(SrType::Date),
        "datetime" | "timestamp" => Some(SrType::DateTime),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_mariadb_types() {
        assert_eq!(
            map_type("tinyint", "tinyint(1)", None, Some(3), Some(0), false),
            Some(SrType::Boolean)
        );
        assert!(matches!(
            map_type("tinyint", "tinyint(4)", None, None, None, false),
            Some(SrType::Int {
                min: -128,
                max: 127,
                ..
            })
        ));
        assert!(matches!(
            map_type("bigint", "bigint(20) unsigned", None, None, None, false),
            Some(SrType::Int { min: 0, .. })
        ));
        assert_eq!(
            map_type("decimal", "decimal(10,2)", None, Some(10), Some(2), false),
            Some(SrType::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(
            map_type("varchar", "varchar(8)", Some(8), None, None, false),
            Some(SrType::Text { max_bytes: 8 })
        );
        assert_eq!(
            map_type("longtext", "longtext", None, None, None, true),
            Some(SrType::Json)
        );
        assert_eq!(map_type("time", "time", None, None, None, false), None);
        assert_eq!(
            json_valid_column("json_valid(`doc`)").as_deref(),
            Some("doc")
        );
    }
}

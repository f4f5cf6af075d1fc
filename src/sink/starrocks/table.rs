//! What dbmazz knows of a StarRocks table: its columns as the catalog reports them,
//! the audit columns every loaded row carries, and identifier quoting. Shared by the
//! catalog (DDL), the encoder (load bodies) and the fit checks, which depend on this
//! file and not on each other.

/// Audit column: operation (0 insert, 1 update, 2 delete).
pub const OP_TYPE: &str = "dbmazz_op_type";
/// Audit column: soft-delete flag.
pub const IS_DELETED: &str = "dbmazz_is_deleted";
/// Audit column: when dbmazz loaded the row (UTC).
pub const SYNCED_AT: &str = "dbmazz_synced_at";
/// Audit column: commit LSN of the change; the `merge_condition` column.
pub const CDC_VERSION: &str = "dbmazz_cdc_version";
/// The audit columns in the order they are written.
pub const AUDIT_COLUMNS: [&str; 4] = [OP_TYPE, IS_DELETED, SYNCED_AT, CDC_VERSION];

/// Backquotes an identifier for the `columns` header / SQL.
pub fn backquote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// One column of a sink table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkColumn {
    /// Name.
    pub name: String,
    /// `DATA_TYPE`, lower case.
    pub data_type: String,
    /// `COLUMN_TYPE` when the server reports it.
    pub column_type: String,
    /// Part of the primary key.
    pub is_key: bool,
    /// Nullable.
    pub nullable: bool,
    /// A JSON column.
    pub is_json: bool,
}

/// The columns of a sink table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkTable {
    /// Columns in ordinal order.
    pub columns: Vec<SinkColumn>,
}

impl SinkTable {
    /// The column called `name` (case-insensitive, as StarRocks treats names).
    pub fn column(&self, name: &str) -> Option<&SinkColumn> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Primary key column names.
    pub fn key_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.is_key)
            .map(|c| c.name.clone())
            .collect()
    }
}

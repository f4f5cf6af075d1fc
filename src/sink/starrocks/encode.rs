//! Row → Stream Load JSON, written straight into the request body.
//!
//! Rows of one segment are grouped by *shape* (which columns carry a value, see
//! [`crate::pipeline::batch::ColumnValue::Absent`]); each shape becomes one load
//! whose `columns` header lists exactly those columns plus the audit columns
//! (design rule 7). A complete row is a full-row upsert; a row with absent columns is
//! a partial update (`partial_update=true`) that leaves the absent columns as stored.
//! Because a segment holds one entry per key, loads of different shapes touch
//! different keys and their order does not matter.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::fit::Fit;
use super::table::{backquote, SinkColumn, SinkTable, AUDIT_COLUMNS};
use crate::config::DeleteMode;
use crate::pipeline::batch::{ColumnValue, Row, RowOp, RowsSegment};
use crate::pipeline::schema_cache::TableSchema;
use crate::source::values::{self, ColumnCodec as ValueCodec, JsonTarget, PgType};

/// How one column is written.
#[derive(Clone, Debug)]
struct ColumnCodec {
    /// `"name":` with the name JSON-escaped.
    json_key: Vec<u8>,
    /// Backquoted name for the `columns` header.
    header: String,
    value: Arc<ValueCodec>,
    target: JsonTarget,
    /// What the sink column can hold.
    fit: Fit,
}

/// Per-schema encoding plan (built once per schema generation).
#[derive(Clone, Debug)]
pub struct TableCodec {
    schema: Arc<TableSchema>,
    cols: Vec<ColumnCodec>,
}

/// How many characters of a rejected value an error shows (enough to find the row,
/// too few to leak a document).
pub const VALUE_PREFIX_CHARS: usize = 16;

/// A value could not be written for the sink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "table '{table}', column '{column}' ({pg_type}), row with key {key}: {reason} (value starts \
     with {prefix:?})"
)]
pub struct EncodeError {
    /// Table.
    pub table: String,
    /// Column.
    pub column: String,
    /// PostgreSQL type.
    pub pg_type: String,
    /// Key of the row (key values are identifiers, not payload).
    pub key: String,
    /// Why.
    pub reason: String,
    /// First characters of the value.
    pub prefix: String,
}

fn json_key(name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 3);
    write_json_str(&mut v, name);
    v.push(b':');
    v
}

/// Writes `s` as a JSON string.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    values::write_json_string(s, out);
}

impl TableCodec {
    /// Plans the encoding of `schema`'s columns into the sink table `sink` (JSON
    /// columns get embedded documents; every value is checked against the limit of
    /// its sink column, see [`super::fit`]).
    pub fn new(schema: Arc<TableSchema>, sink: &SinkTable) -> Self {
        let cols = schema
            .columns
            .iter()
            .map(|c| {
                let sc = sink.column(&c.name);
                (c, target_for(&c.pg_type, sc), sc.map_or(Fit::Any, Fit::of))
            })
            .map(|(c, target, fit)| ColumnCodec {
                json_key: json_key(&c.name),
                header: backquote(&c.name),
                value: Arc::new(ValueCodec::new(
                    schema.spec.qualified(),
                    c.name.clone(),
                    c.pg_type.clone(),
                )),
                target,
                fit,
            })
            .collect();
        TableCodec { schema, cols }
    }

    /// The schema this codec encodes.
    pub fn schema(&self) -> &Arc<TableSchema> {
        &self.schema
    }
}

/// How a column is written, from the sink column it goes to:
/// - a JSON column gets json/jsonb documents embedded;
/// - a string column (`VARCHAR`, `CHAR`, `STRING`) gets numbers, dates and
///   timestamps as PostgreSQL printed them, so values no typed column can hold
///   (numeric `NaN`, `infinity` timestamps, 5-digit years) arrive unchanged — the
///   documented escape hatch of `docs/type-mapping.md`;
/// - everything else is converted for the typed column.
fn target_for(pg: &PgType, sink: Option<&SinkColumn>) -> JsonTarget {
    let Some(sink) = sink else {
        return JsonTarget::Native;
    };
    if sink.is_json {
        return JsonTarget::Json;
    }
    let string_column = matches!(
        sink.data_type.as_str(),
        "varchar" | "char" | "string" | "text" | "tinytext" | "mediumtext" | "longtext"
    );
    let printed_is_better = matches!(
        pg,
        PgType::Numeric | PgType::Float | PgType::Date | PgType::Timestamp | PgType::TimestampTz
    );
    if string_column && printed_is_better {
        JsonTarget::Text
    } else {
        JsonTarget::Native
    }
}

/// Which columns of a row carry a value (bit per column).
pub type Shape = SmallVec<[u64; 2]>;

fn shape_of(schema: &TableSchema, row: &Row, mode: DeleteMode) -> Shape {
    let n = schema.columns.len();
    let mut s: Shape = SmallVec::from_elem(0, n.div_ceil(64).max(1));
    for i in 0..n {
        let present = match (mode, row.op) {
            // A hard delete only needs the key.
            (DeleteMode::Hard, RowOp::Delete) => schema.key.contains(&i),
            _ => row.value(schema, i) != ColumnValue::Absent,
        };
        if present {
            s[i / 64] |= 1 << (i % 64);
        }
    }
    s
}

fn has(shape: &Shape, i: usize) -> bool {
    shape.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// One load's worth of rows.
#[derive(Debug)]
pub struct EncodedLoad {
    /// `columns` header value.
    pub columns: String,
    /// True when some table columns are not listed (partial update).
    pub partial: bool,
    /// JSON array body.
    pub body: Vec<u8>,
    /// Rows in the body.
    pub rows: usize,
}

/// Values shared by every row of a batch.
#[derive(Clone, Debug)]
pub struct AuditValues {
    /// `dbmazz_synced_at` text (UTC).
    pub synced_at: String,
}

/// Encodes one segment into loads, one per shape, in first-seen order.
pub fn encode_segment(
    codec: &TableCodec,
    seg: &RowsSegment,
    mode: DeleteMode,
    audit: &AuditValues,
) -> Result<Vec<EncodedLoad>, Box<EncodeError>> {
    let schema = &*codec.schema;
    let mut groups: Vec<(Shape, Vec<usize>)> = Vec::new();
    let mut by_shape: FxHashMap<Shape, usize> = FxHashMap::default();
    for (ri, row) in seg.rows.iter().enumerate() {
        let shape = shape_of(schema, row, mode);
        match by_shape.get(&shape) {
            Some(&g) => groups[g].1.push(ri),
            None => {
                by_shape.insert(shape.clone(), groups.len());
                groups.push((shape, vec![ri]));
            }
        }
    }
    let ncols = schema.columns.len();
    let mut loads = Vec::with_capacity(groups.len());
    for (shape, rows) in groups {
        let present: Vec<usize> = (0..ncols).filter(|&i| has(&shape, i)).collect();
        let mut columns: Vec<String> = present
            .iter()
            .map(|&i| codec.cols[i].header.clone())
            .collect();
        columns.extend(AUDIT_COLUMNS.iter().map(|c| backquote(c)));
        if mode == DeleteMode::Hard {
            columns.push("`__op`".into());
        }
        // Keys + audit columns + values; an estimate that rarely needs a second grow.
        let per_row: usize = present
            .iter()
            .map(|&i| codec.cols[i].json_key.len() + 2)
            .sum::<usize>()
            + 140;
        let values: usize = rows.iter().map(|&ri| seg.rows[ri].retained_bytes()).sum();
        let mut body = Vec::with_capacity(rows.len() * per_row + values);
        body.push(b'[');
        for (n, &ri) in rows.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            encode_row(codec, &seg.rows[ri], &present, mode, audit, &mut body)?;
        }
        body.push(b']');
        loads.push(EncodedLoad {
            columns: columns.join(","),
            partial: present.len() < ncols,
            body,
            rows: rows.len(),
        });
    }
    Ok(loads)
}

fn encode_row(
    codec: &TableCodec,
    row: &Row,
    present: &[usize],
    mode: DeleteMode,
    audit: &AuditValues,
    out: &mut Vec<u8>,
) -> Result<(), Box<EncodeError>> {
    let schema = &*codec.schema;
    out.push(b'{');
    for &i in present {
        let c = &codec.cols[i];
        out.extend_from_slice(&c.json_key);
        match row.value(schema, i) {
            ColumnValue::Null | ColumnValue::Absent => out.extend_from_slice(b"null"),
            ColumnValue::Text(t) => {
                let err = |reason: String| {
                    Box::new(EncodeError {
                        table: schema.spec.qualified(),
                        column: schema.columns[i].name.clone(),
                        pg_type: c.value.ty().name(),
                        key: key_text(schema, row),
                        reason,
                        prefix: t.chars().take(VALUE_PREFIX_CHARS).collect(),
                    })
                };
                c.fit.check(c.value.ty(), t).map_err(err)?;
                c.value
                    .encode(t, c.target, out)
                    .map_err(|e| err(e.reason))?
            }
            ColumnValue::Binary(_) => {
                return Err(Box::new(EncodeError {
                    table: schema.spec.qualified(),
                    column: schema.columns[i].name.clone(),
                    pg_type: c.value.ty().name(),
                    key: key_text(schema, row),
                    reason: "binary column values are not supported (dbmazz requests text output)"
                        .into(),
                    prefix: String::new(),
                }))
            }
        }
        out.push(b',');
    }
    let (op_type, deleted) = match row.op {
        RowOp::Insert => (b'0', false),
        RowOp::Update => (b'1', false),
        RowOp::Delete => (b'2', true),
    };
    out.extend_from_slice(b"\"dbmazz_op_type\":");
    out.push(op_type);
    out.extend_from_slice(b",\"dbmazz_is_deleted\":");
    out.extend_from_slice(if deleted { b"true" } else { b"false" });
    out.extend_from_slice(b",\"dbmazz_synced_at\":\"");
    out.extend_from_slice(audit.synced_at.as_bytes());
    out.extend_from_slice(b"\",\"dbmazz_cdc_version\":");
    let mut buf = itoa::Buffer::new();
    // LSNs stay far below 2^63 in practice; clamp rather than wrap if one does not.
    let version = i64::try_from(row.version.0).unwrap_or(i64::MAX);
    out.extend_from_slice(buf.format(version).as_bytes());
    if mode == DeleteMode::Hard {
        out.extend_from_slice(if row.op == RowOp::Delete {
            b",\"__op\":1"
        } else {
            b",\"__op\":0"
        });
    }
    out.push(b'}');
    Ok(())
}

/// The key of a row as `col=value, …` (for error messages).
pub fn key_text(schema: &TableSchema, row: &Row) -> String {
    schema
        .key
        .iter()
        .map(|&i| {
            let v = match row.value(schema, i) {
                ColumnValue::Text(t) => t.chars().take(64).collect::<String>(),
                ColumnValue::Null => "NULL".into(),
                ColumnValue::Binary(_) => "<binary>".into(),
                ColumnValue::Absent => "<absent>".into(),
            };
            format!("{}={}", schema.columns[i].name, v)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lsn::Lsn;
    use crate::pipeline::batch::{Batch, Change, Segment, Transaction};

    use crate::pipeline::batch::fixtures::{schema, tuple};

    const U: Option<&str> = Some("\u{1}u");

    fn sink(cols: &[(&str, &str)]) -> SinkTable {
        SinkTable {
            columns: cols
                .iter()
                .map(|(n, t)| SinkColumn {
                    name: (*n).into(),
                    data_type: t.split('(').next().unwrap_or(t).into(),
                    column_type: (*t).into(),
                    is_key: *n == "id",
                    nullable: true,
                    is_json: false,
                })
                .collect(),
        }
    }

    fn loads(rows: Vec<(RowOp, Vec<Option<&str>>)>, mode: DeleteMode) -> Vec<EncodedLoad> {
        let s = schema();
        let mut b = Batch::new(0);
        b.add_transaction(Transaction {
            commit_lsn: Lsn(7),
            end_lsn: Lsn(8),
            commit_time: 0,
            changes: rows
                .into_iter()
                .map(|(op, v)| Change::Row {
                    schema: s.clone(),
                    row: Row::new(op, Lsn(7), tuple(&v), false),
                })
                .collect(),
            bytes: 0,
        })
        .expect("fold");
        let Segment::Rows(seg) = &b.tables[0].segments[0] else {
            panic!("rows expected")
        };
        let codec = TableCodec::new(
            s.clone(),
            &sink(&[
                ("id", "varchar(10)"),
                ("a", "longtext"),
                ("big", "longtext"),
            ]),
        );
        let audit = AuditValues {
            synced_at: "2024-01-01 00:00:00.000000".into(),
        };
        encode_segment(&codec, seg, mode, &audit).expect("encode")
    }

    #[test]
    fn rows_of_different_shapes_go_in_different_loads_listing_exactly_their_columns() {
        let l = loads(
            vec![
                (RowOp::Insert, vec![Some("1"), Some("a"), Some("big")]),
                (RowOp::Update, vec![Some("2"), Some("b"), U]),
                (RowOp::Update, vec![Some("3"), None, U]),
                (RowOp::Insert, vec![Some("4"), Some("d"), None]),
            ],
            DeleteMode::Soft,
        );
        assert_eq!(l.len(), 2);
        let audit = "`dbmazz_op_type`,`dbmazz_is_deleted`,`dbmazz_synced_at`,`dbmazz_cdc_version`";
        assert_eq!(l[0].columns, format!("`id`,`a`,`big`,{audit}"));
        assert!(!l[0].partial);
        assert_eq!(l[0].rows, 2);
        assert_eq!(l[1].columns, format!("`id`,`a`,{audit}"));
        assert!(
            l[1].partial,
            "a row without its TOAST value is a partial update"
        );
        let body = String::from_utf8(l[1].body.clone()).expect("utf8");
        assert!(body.contains("\"id\":\"2\",\"a\":\"b\""), "{body}");
        assert!(
            body.contains("\"id\":\"3\",\"a\":null"),
            "NULL stays NULL: {body}"
        );
        assert!(
            !body.contains("big"),
            "the absent column is not sent: {body}"
        );
    }

    #[test]
    fn hard_deletes_send_the_key_and_op() {
        let l = loads(
            vec![(RowOp::Delete, vec![Some("1"), Some("a"), U])],
            DeleteMode::Hard,
        );
        assert_eq!(l.len(), 1);
        assert!(l[0].columns.starts_with("`id`,`dbmazz_op_type`"));
        assert!(l[0].columns.ends_with("`__op`"));
        let body = String::from_utf8(l[0].body.clone()).expect("utf8");
        assert!(body.contains("\"__op\":1") && body.contains("\"dbmazz_is_deleted\":true"));
    }

    #[test]
    fn a_value_the_sink_column_cannot_hold_names_table_column_key_and_prefix() {
        let s = schema();
        let mut b = Batch::new(0);
        b.add_transaction(Transaction {
            commit_lsn: Lsn(7),
            end_lsn: Lsn(8),
            commit_time: 0,
            changes: vec![Change::Row {
                schema: s.clone(),
                row: Row::new(
                    RowOp::Insert,
                    Lsn(7),
                    tuple(&[Some("k1"), Some("a value far too long for it"), None]),
                    false,
                ),
            }],
            bytes: 0,
        })
        .expect("fold");
        let Segment::Rows(seg) = &b.tables[0].segments[0] else {
            panic!("rows expected")
        };
        let codec = TableCodec::new(
            s,
            &sink(&[
                ("id", "varchar(10)"),
                ("a", "varchar(5)"),
                ("big", "longtext"),
            ]),
        );
        let audit = AuditValues {
            synced_at: String::new(),
        };
        let e = encode_segment(&codec, seg, DeleteMode::Soft, &audit).expect_err("too long");
        let msg = e.to_string();
        assert!(msg.contains("public.t") && msg.contains("'a'") && msg.contains("id=k1"));
        assert!(msg.contains("\"a value far too \"") && !msg.contains("long for it"));
        assert!(msg.contains("VARCHAR(5)"));
    }

    #[test]
    fn numbers_and_dates_for_string_columns_are_written_as_printed() {
        let col = |t: &str| SinkColumn {
            name: "c".into(),
            data_type: t.into(),
            column_type: t.into(),
            is_key: false,
            nullable: true,
            is_json: false,
        };
        assert_eq!(
            target_for(&PgType::Numeric, Some(&col("longtext"))),
            JsonTarget::Text
        );
        assert_eq!(
            target_for(&PgType::TimestampTz, Some(&col("varchar"))),
            JsonTarget::Text
        );
        assert_eq!(
            target_for(&PgType::Numeric, Some(&col("decimal"))),
            JsonTarget::Native
        );
        assert_eq!(
            target_for(&PgType::Bytea, Some(&col("longtext"))),
            JsonTarget::Native
        );
        let mut json = col("json");
        json.is_json = true;
        assert_eq!(target_for(&PgType::Json, Some(&json)), JsonTarget::Json);
    }

    #[test]
    fn backquote_escapes() {
        assert_eq!(backquote("a`b"), "`a``b`");
    }
}

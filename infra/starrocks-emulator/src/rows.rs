//! Turning a body into converted rows: the scan half of a load.
//!
//! Rows that cannot be converted are *filtered*: counted, logged for the ErrorURL,
//! and left out. A body that is not well-formed (broken JSON, not UTF-8) fails the
//! whole load, as the StarRocks readers do, since no row boundary can be trusted
//! after the error.

use std::borrow::Cow;

use crate::convert::{convert_json, convert_text, Cell, ConvError};
use crate::json::{follow_path, JsonError, Reader, RowStart, Rows, Scalar};
use crate::params::{Format, LoadPlan, Op, OpSource};
use crate::schema::{SrType, TableSchema};

/// At most this many rejected rows are kept for the error log.
pub const MAX_ERROR_LINES: usize = 10_000;
/// Rows longer than this are cut in the error log.
const MAX_ROW_SHOWN: usize = 1024;

/// Converted rows of one body (or one transaction load).
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// `width` cells per kept row, in `LoadPlan::dest` order.
    pub cells: Vec<Cell<'a>>,
    /// Operation of each kept row.
    pub ops: Vec<Op>,
    /// Cells per row.
    pub width: usize,
    /// Rows read.
    pub total: u64,
    /// Rows filtered.
    pub filtered: u64,
    /// Error-log lines for filtered rows (capped at [`MAX_ERROR_LINES`]).
    pub errors: Vec<String>,
    /// False in discard mode: rows are validated and counted, their cells dropped.
    pub keep_cells: bool,
}

impl Batch<'_> {
    /// Rows kept.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no row was kept.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The cells of kept row `i`.
    pub fn row(&self, i: usize) -> &[Cell<'_>] {
        self.cells
            .get(i * self.width..(i + 1) * self.width)
            .unwrap_or_default()
    }

    /// Records a filtered row.
    pub fn reject(&mut self, why: &str, row: &str) {
        self.filtered += 1;
        if self.errors.len() < MAX_ERROR_LINES {
            let shown = if row.len() > MAX_ROW_SHOWN {
                let mut end = MAX_ROW_SHOWN;
                while !row.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}...", row.get(..end).unwrap_or_default())
            } else {
                row.to_owned()
            };
            self.errors.push(format!("Error: {why}. Row: {shown}"));
        }
    }

    /// Detaches the rows from the body.
    pub fn into_owned(self) -> Batch<'static> {
        Batch {
            cells: self.cells.into_iter().map(Cell::into_owned).collect(),
            ops: self.ops,
            width: self.width,
            total: self.total,
            filtered: self.filtered,
            errors: self.errors,
            keep_cells: self.keep_cells,
        }
    }
}

/// A whole-load failure while reading the body.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Malformed JSON.
    #[error("Failed to parse the JSON body ({0}); the whole load is rejected")]
    Json(#[from] JsonError),
    /// A CSV body that is not UTF-8.
    #[error("the CSV body is not valid UTF-8 (byte {0}); the emulator reads CSV as UTF-8 text")]
    CsvUtf8(usize),
}

/// Reads and converts every row of `body`.
pub fn scan<'a>(
    body: &'a [u8],
    plan: &LoadPlan,
    schema: &TableSchema,
) -> Result<Batch<'a>, ScanError> {
    scan_with(body, plan, schema, true)
}

/// Like [`scan`]; with `keep_cells` false (discard mode) the converted cells are
/// dropped as soon as each row is validated.
pub fn scan_with<'a>(
    body: &'a [u8],
    plan: &LoadPlan,
    schema: &TableSchema,
    keep_cells: bool,
) -> Result<Batch<'a>, ScanError> {
    let mut batch = Batch {
        width: plan.dest.len(),
        keep_cells,
        ..Batch::default()
    };
    match plan.format {
        Format::Json => scan_json(body, plan, schema, &mut batch)?,
        Format::Csv => scan_csv(body, plan, schema, &mut batch)?,
    }
    Ok(batch)
}

fn scan_json<'a>(
    body: &'a [u8],
    plan: &LoadPlan,
    schema: &TableSchema,
    batch: &mut Batch<'a>,
) -> Result<(), ScanError> {
    let reader = Reader::new(body)?;
    match &plan.json_root {
        None => scan_documents(reader, plan, schema, batch),
        Some(root) => {
            let mut r = reader;
            while !r.at_end() {
                let at = r.offset();
                let doc = r.raw_value()?;
                match follow_path(doc, at, root)? {
                    Some(Scalar::Compound(inner)) => {
                        // `follow_path` does not report the inner offset; errors inside
                        // are reported relative to the document start.
                        scan_documents(Reader::over(inner, at), plan, schema, batch)?;
                    }
                    _ => {
                        batch.total += 1;
                        batch.reject("The json_root does not point to an object or array", doc);
                    }
                }
            }
            Ok(())
        }
    }
}

fn scan_documents<'a>(
    reader: Reader<'a>,
    plan: &LoadPlan,
    schema: &TableSchema,
    batch: &mut Batch<'a>,
) -> Result<(), ScanError> {
    let mut rows = Rows::new(reader, plan.strip_outer_array);
    let nsrc = plan.sources.len();
    let mut vals: Vec<Option<Scalar<'a>>> = vec![None; nsrc];
    while let Some(start) = rows.next_row()? {
        batch.total += 1;
        let rd = rows.reader();
        for v in vals.iter_mut() {
            *v = None;
        }
        match (&plan.jsonpaths, start) {
            (None, RowStart::Object) => {
                let begin = rd.offset();
                rd.begin_object()?;
                let mut first = true;
                let mut guess = 0usize;
                while let Some((key, v)) = rd.member(first)? {
                    first = false;
                    let idx = match plan.sources.get(guess) {
                        Some(s) if s.as_str() == key => Some(guess),
                        _ => plan.lookup(&key),
                    };
                    if let Some(i) = idx {
                        if let Some(slot) = vals.get_mut(i) {
                            if slot.is_none() {
                                *slot = Some(v);
                            }
                        }
                        guess = i + 1;
                    }
                }
                let end = rd.offset();
                let raw = rd.text_between(begin, end).unwrap_or("");
                convert_row(plan, schema, &vals, batch, raw, false);
            }
            (Some(paths), RowStart::Object | RowStart::NotObject) => {
                let at = rd.offset();
                let raw = rd.raw_value()?;
                for (i, p) in paths.iter().enumerate() {
                    if let Some(slot) = vals.get_mut(i) {
                        *slot = follow_path(raw, at, p)?;
                    }
                }
                convert_row(plan, schema, &vals, batch, raw, false);
            }
            (_, kind) => {
                let raw = rd.raw_value()?;
                let why = match kind {
                    RowStart::ArrayNotStripped => {
                        "JSON data is an array, strip_outer_array must be set true"
                    }
                    RowStart::NotArrayStripped => {
                        "JSON data is not an array, strip_outer_array must be set false"
                    }
                    _ => "JSON data is not an object",
                };
                batch.reject(why, raw);
            }
        }
    }
    Ok(())
}

fn convert_row<'a>(
    plan: &LoadPlan,
    schema: &TableSchema,
    vals: &[Option<Scalar<'a>>],
    batch: &mut Batch<'a>,
    raw: &str,
    csv: bool,
) {
    let start = batch.cells.len();
    let op = match plan.op {
        OpSource::Upsert => Op::Upsert,
        OpSource::Const(op) => op,
        OpSource::Field(i) => match vals.get(i).and_then(Option::as_ref) {
            None | Some(Scalar::Null) => Op::Upsert,
            Some(v) => match op_value(v) {
                Some(op) => op,
                None => {
                    batch.reject(
                        "Invalid value of __op; 0 (upsert) or 1 (delete) expected",
                        raw,
                    );
                    return;
                }
            },
        },
    };
    for d in &plan.dest {
        let Some(col) = schema.columns.get(d.col) else {
            continue;
        };
        let v = vals.get(d.src).and_then(Option::as_ref);
        let cell = match v {
            None => Ok(Cell::Null),
            Some(s) if csv && col.ty == SrType::Json => match s {
                Scalar::Str { text, .. } => convert_text_cow(text, col),
                other => convert_json(other, col),
            },
            Some(s) => convert_json(s, col),
        };
        let cell = match cell {
            Ok(c) => c,
            Err(ConvError::Cast(why)) if plan.strict => {
                batch.cells.truncate(start);
                batch.reject(&why, raw);
                return;
            }
            Err(ConvError::Cast(_)) => Cell::Null,
            Err(ConvError::Reject(why)) => {
                batch.cells.truncate(start);
                batch.reject(&why, raw);
                return;
            }
        };
        if cell.is_null() && !col.nullable {
            batch.cells.truncate(start);
            batch.reject(
                &format!("NULL value in non-nullable column '{}'", col.name),
                raw,
            );
            return;
        }
        batch.cells.push(cell);
    }
    if !batch.keep_cells {
        batch.cells.truncate(start);
    }
    batch.ops.push(op);
}

fn convert_text_cow<'a>(
    text: &Cow<'a, str>,
    col: &crate::schema::Column,
) -> Result<Cell<'a>, ConvError> {
    match text {
        Cow::Borrowed(s) => convert_text(s, col),
        Cow::Owned(s) => convert_text(s, col).map(Cell::into_owned),
    }
}

fn op_value(v: &Scalar<'_>) -> Option<Op> {
    let t: &str = match v {
        Scalar::Number(n) => n,
        Scalar::Str { text, .. } => text.trim(),
        Scalar::Bool(false) => "0",
        Scalar::Bool(true) => "1",
        _ => return None,
    };
    match t {
        "0" => Some(Op::Upsert),
        "1" => Some(Op::Delete),
        t if t.eq_ignore_ascii_case("upsert") => Some(Op::Upsert),
        t if t.eq_ignore_ascii_case("delete") => Some(Op::Delete),
        _ => None,
    }
}

fn scan_csv<'a>(
    body: &'a [u8],
    plan: &LoadPlan,
    schema: &TableSchema,
    batch: &mut Batch<'a>,
) -> Result<(), ScanError> {
    let text = simdutf8::basic::from_utf8(body).map_err(|_| {
        ScanError::CsvUtf8(std::str::from_utf8(body).map_or_else(|e| e.valid_up_to(), |_| 0))
    })?;
    let records = crate::csv::records(text, &plan.csv);
    let nsrc = plan.sources.len();
    let mut vals: Vec<Option<Scalar<'a>>> = vec![None; nsrc];
    for (raw, fields) in records
        .into_iter()
        .skip(usize::try_from(plan.csv.skip_header).unwrap_or(usize::MAX))
    {
        batch.total += 1;
        if fields.len() != nsrc {
            batch.reject(
                &format!(
                    "Value count does not match column count. Expect {nsrc}, but got {}",
                    fields.len()
                ),
                raw,
            );
            continue;
        }
        for (slot, f) in vals.iter_mut().zip(fields) {
            *slot = Some(if f == "\\N" {
                Scalar::Null
            } else {
                Scalar::Str { raw: "", text: f }
            });
        }
        convert_row(plan, schema, &vals, batch, raw, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{plan, Headers};
    use crate::schema::Column;

    fn schema() -> TableSchema {
        let c = |name: &str, ty: SrType, key: bool, nullable: bool| Column {
            name: name.into(),
            ty,
            nullable,
            has_default: nullable,
            is_key: key,
            pad_space: false,
        };
        TableSchema::new(
            "db",
            "t",
            vec![
                c(
                    "id",
                    SrType::Int {
                        min: -100,
                        max: 100,
                        name: "TINYINT",
                    },
                    true,
                    false,
                ),
                c("name", SrType::Text { max_bytes: 5 }, false, true),
                c(
                    "n",
                    SrType::Int {
                        min: -100,
                        max: 100,
                        name: "TINYINT",
                    },
                    false,
                    false,
                ),
            ],
        )
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn json_rows_convert_and_filter() {
        let s = schema();
        let p = plan(&h(&[("strip_outer_array", "true")]), Format::Json, &s).expect("plan");
        let body = br#"[{"id":1,"name":"a","n":5,"__op":0},
                        {"n":7,"id":2,"name":"toolong"},
                        {"id":3,"name":null},
                        {"id":4,"name":"b","n":"x"},
                        {"id":5,"n":1,"__op":"1"},
                        {"id":6,"n":1,"__op":7},
                        [1,2]]"#;
        let b = scan(body, &p, &s).expect("scan");
        assert_eq!(b.total, 7);
        assert_eq!(b.len(), 2, "{:?}", b.errors);
        assert_eq!(b.filtered, 5);
        assert_eq!(
            b.row(0),
            &[Cell::Int(1), Cell::Str("a".into()), Cell::Int(5)]
        );
        // Non-strict: "x" becomes NULL, and NULL in the NOT NULL column n filters row 4;
        // row 5 is a delete.
        assert_eq!(b.ops, vec![Op::Upsert, Op::Delete]);
        assert!(
            b.errors.iter().any(|e| e.contains("too long")),
            "{:?}",
            b.errors
        );
        assert!(
            b.errors
                .iter()
                .any(|e| e.contains("non-nullable column 'n'")),
            "{:?}",
            b.errors
        );
    }

    #[test]
    fn strict_mode_filters_cast_failures() {
        let s = schema();
        let body = br#"{"id":1,"name":5,"n":1}{"id":2,"name":"x","n":1}"#;
        let p = plan(
            &h(&[("columns", "id,name,n"), ("strict_mode", "true")]),
            Format::Json,
            &s,
        )
        .expect("plan");
        let b = scan(body, &p, &s).expect("scan");
        assert_eq!(b.len(), 2);
        let body = br#"{"id":1,"name":"a","n":1000}"#;
        let b = scan(body, &p, &s).expect("scan");
        assert_eq!(b.filtered, 1);
        assert!(b.errors[0].contains("overflow"), "{:?}", b.errors);
    }

    #[test]
    fn malformed_json_fails_the_load() {
        let s = schema();
        let p = plan(&h(&[("strip_outer_array", "true")]), Format::Json, &s).expect("plan");
        assert!(scan(b"[{\"id\":1},{\"id\":", &p, &s).is_err());
    }

    #[test]
    fn csv_rows() {
        let s = schema();
        let p = plan(
            &h(&[("column_separator", ","), ("columns", "id,name,n,__op")]),
            Format::Csv,
            &s,
        )
        .expect("plan");
        let b = scan(b"1,a,2,0\n2,\\N,3,1\n3,x\n", &p, &s).expect("scan");
        assert_eq!(b.total, 3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.row(1)[1], Cell::Null);
        assert_eq!(b.ops[1], Op::Delete);
    }

    #[test]
    fn jsonpaths_and_root() {
        let s = schema();
        let p = plan(
            &h(&[
                ("jsonpaths", r#"["$.k","$.info.nm","$.info.n"]"#),
                ("columns", "id,name,n"),
                ("json_root", "$.data"),
                ("strip_outer_array", "true"),
            ]),
            Format::Json,
            &s,
        )
        .expect("plan");
        let b = scan(br#"{"data":[{"k":1,"info":{"nm":"z","n":2}}]}"#, &p, &s).expect("scan");
        assert_eq!(b.len(), 1, "{:?}", b.errors);
        assert_eq!(b.row(0)[1], Cell::Str("z".into()));
    }
}

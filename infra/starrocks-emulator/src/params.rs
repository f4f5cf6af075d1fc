//! Load headers: parsed and validated in the order and with the messages StarRocks
//! uses (BE `_on_header`/`_process_put`, then the FE plan), and turned into a
//! [`LoadPlan`] against a table schema.

use std::collections::HashMap;

use crate::json::{parse_path, PathStep};
use crate::schema::TableSchema;

/// Request headers with lower-case names (the first value of each).
pub type Headers = HashMap<String, String>;

/// Body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `format: csv` (default)
    Csv,
    /// `format: json`
    Json,
}

/// What the BE checks before it begins the transaction.
#[derive(Debug, Clone)]
pub struct EarlyParams {
    /// Body format.
    pub format: Format,
    /// `timeout` in seconds, when given.
    pub timeout_s: Option<u32>,
}

/// Limits the BE applies at header time.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `streaming_load_max_mb` in bytes.
    pub max_body: u64,
    /// `streaming_load_max_batch_size_mb` in bytes (JSON only).
    pub max_json: u64,
}

fn get<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Header checks that happen before the transaction begins.
pub fn early(
    h: &Headers,
    content_length: Option<u64>,
    limits: BodyLimits,
) -> Result<EarlyParams, String> {
    if let Some(v) = get(h, "enable_merge_commit") {
        match parse_bool(v) {
            Some(false) => {}
            Some(true) => {
                return Err(
                    "enable_merge_commit=true (Merge Commit) is not supported by the emulator"
                        .into(),
                )
            }
            None => {
                return Err(format!(
                    "Invalid parameter enable_merge_commit. The value must be bool type, but is {v}"
                ))
            }
        }
    }
    if let Some(len) = content_length {
        if len > limits.max_body {
            return Err(format!(
                "body size {len} exceed limit: {}. You can increase the limit by setting streaming_load_max_mb in be.conf.",
                limits.max_body
            ));
        }
    }
    let format = match get(h, "format") {
        None => Format::Csv,
        Some(f) if f.eq_ignore_ascii_case("csv") => Format::Csv,
        Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
        Some(f)
            if ["gzip", "bzip2", "lz4", "deflate", "zstd"]
                .iter()
                .any(|c| f.eq_ignore_ascii_case(c)) =>
        {
            return Err(format!(
                "compressed CSV (format={f}) is not supported by the emulator"
            ))
        }
        Some(f) => return Err(format!("unknown data format, format={f}")),
    };
    if format == Format::Json {
        let ignore = get(h, "ignore_json_size").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(len) = content_length {
            if !ignore && len > limits.max_json {
                return Err(format!(
                    "The size of this batch exceed the max size [{}]  of json type data  data [ {len} ]. Set ignore_json_size to skip the check, although it may lead huge memory consuming.",
                    limits.max_json
                ));
            }
        }
    }
    let timeout_s = match get(h, "timeout") {
        None => None,
        Some(t) => Some(
            t.trim()
                .parse::<u32>()
                .map_err(|_| "Invalid timeout format".to_owned())?,
        ),
    };
    Ok(EarlyParams { format, timeout_s })
}

/// StarRocks' boolean parser (`true`/`false`/`1`/`0`, any case).
pub fn parse_bool(v: &str) -> Option<bool> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Some(false)
    } else {
        None
    }
}

/// Checks a label the way the FE does (`^[-_A-Za-z0-9:]{1,128}$`).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty()
        || label.len() > 128
        || !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
    {
        return Err(format!(
            "Label format error. regex: ^[-_A-Za-z0-9:]{{1,128}}$, label: {label}"
        ));
    }
    Ok(())
}

/// What `__op` is for each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpSource {
    /// Every row is an upsert.
    Upsert,
    /// A constant for all rows.
    Const(Op),
    /// Read from this source field.
    Field(usize),
}

/// Row operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `__op = 0`
    Upsert,
    /// `__op = 1`
    Delete,
}

/// CSV layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// `column_separator`
    pub column_separator: Vec<u8>,
    /// `row_delimiter`
    pub row_delimiter: Vec<u8>,
    /// `skip_header`
    pub skip_header: u64,
    /// `trim_space`
    pub trim_space: bool,
    /// `enclose`
    pub enclose: Option<u8>,
    /// `escape`
    pub escape: Option<u8>,
}

/// A table column loaded from a source field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// Index into the schema's columns.
    pub col: usize,
    /// Index into [`LoadPlan::sources`].
    pub src: usize,
}

/// Everything a load needs to turn a body into rows and apply them.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Body format.
    pub format: Format,
    /// `strip_outer_array`
    pub strip_outer_array: bool,
    /// `json_root`
    pub json_root: Option<Vec<PathStep>>,
    /// `jsonpaths` (matched mode)
    pub jsonpaths: Option<Vec<Vec<PathStep>>>,
    /// Source field names, in source order.
    pub sources: Vec<String>,
    /// Source index by name (exact, then lower-case).
    pub source_index: HashMap<String, usize>,
    /// Loaded columns.
    pub dest: Vec<Dest>,
    /// Schema columns not loaded (they get their default).
    pub unlisted: Vec<usize>,
    /// Positions in `dest` of the key columns, in schema key order.
    pub key_pos: Vec<usize>,
    /// `__op`
    pub op: OpSource,
    /// `strict_mode`
    pub strict: bool,
    /// `partial_update`
    pub partial: bool,
    /// Position in `dest` of the `merge_condition` column.
    pub merge_pos: Option<usize>,
    /// `max_filter_ratio`
    pub max_filter_ratio: f64,
    /// CSV layout.
    pub csv: CsvOptions,
    /// The load-parameter headers, canonicalised (transaction loads must repeat them).
    pub fingerprint: String,
}

impl LoadPlan {
    /// Source index of a JSON key or column name.
    #[inline]
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.source_index
            .get(name)
            .or_else(|| self.source_index.get(&name.to_ascii_lowercase()))
            .copied()
    }
}

/// Headers whose values must be identical across the loads of one transaction.
const PLAN_HEADERS: &[&str] = &[
    "format",
    "columns",
    "where",
    "column_separator",
    "row_delimiter",
    "skip_header",
    "trim_space",
    "enclose",
    "escape",
    "partitions",
    "temporary_partitions",
    "strict_mode",
    "timezone",
    "load_mem_limit",
    "jsonpaths",
    "json_root",
    "strip_outer_array",
    "partial_update",
    "partial_update_mode",
    "merge_condition",
    "compression",
    "content-encoding",
    "max_filter_ratio",
];

/// Parses `\t`, `\x0D0A`-style and plain separators.
pub fn parse_separator(v: &str) -> Result<Vec<u8>, String> {
    let lower = v.to_ascii_lowercase();
    let hex = lower
        .strip_prefix("\\x")
        .or_else(|| lower.strip_prefix("\\\\x"));
    if let Some(h) = hex {
        if h.is_empty() || h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("invalid hex separator: {v}"));
        }
        return (0..h.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(h.get(i..i + 2).unwrap_or("zz"), 16)
                    .map_err(|_| format!("invalid hex separator: {v}"))
            })
            .collect();
    }
    let s = match v {
        "\\t" => "\t",
        "\\n" => "\n",
        other => other,
    };
    if s.is_empty() || s.len() > 50 {
        return Err(format!("separator must be 1 to 50 bytes: {v}"));
    }
    Ok(s.as_bytes().to_vec())
}

/// Splits the `columns` header at top-level commas.
fn split_columns(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for ch in v.chars() {
        match quote {
            Some(q) => {
                cur.push(ch);
                if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '\'' | '"' | '`' => {
                    quote = Some(ch);
                    cur.push(ch);
                }
                '(' => {
                    depth += 1;
                    cur.push(ch);
                }
                ')' => {
                    depth -= 1;
                    cur.push(ch);
                }
                ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
                _ => cur.push(ch),
            },
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_owned()).collect()
}

fn unquote_ident(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix('`')
        .and_then(|x| x.strip_suffix('`'))
        .unwrap_or(t)
        .to_owned()
}

fn is_ident(s: &str) -> bool {
    let t = s.trim();
    let inner = t
        .strip_prefix('`')
        .and_then(|x| x.strip_suffix('`'))
        .unwrap_or(t);
    !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// Builds the plan for a load into `schema` (FE planning; errors abort the load).
pub fn plan(h: &Headers, format: Format, schema: &TableSchema) -> Result<LoadPlan, String> {
    for unsupported in [
        "where",
        "partitions",
        "temporary_partitions",
        "compression",
        "content-encoding",
    ] {
        if get(h, unsupported).is_some() {
            return Err(format!(
                "the '{unsupported}' header is not supported by the emulator (see its README)"
            ));
        }
    }
    if get(h, "envelope").is_some() {
        return Err(
            "the 'envelope' header is not supported by the emulator (see its README)".into(),
        );
    }
    let skip_header = match get(h, "skip_header") {
        None => 0,
        Some(v) => {
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| "Invalid csv load skip_header format".to_owned())?;
            u64::try_from(n)
                .map_err(|_| "skip_header must be equal or greater than 0".to_owned())?
        }
    };
    let trim_space = match get(h, "trim_space") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err("Invalid trim space format. Must be bool type".into()),
    };
    let strict = match get(h, "strict_mode") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err("Invalid strict mode format. Must be bool type".into()),
    };
    if let Some(v) = get(h, "load_mem_limit") {
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| "Invalid load mem limit format".to_owned())?;
        if n < 0 {
            return Err("load_mem_limit must be equal or greater than 0".into());
        }
    }
    if let Some(v) = get(h, "log_rejected_record_num") {
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| "Invalid log_rejected_record_num format".to_owned())?;
        if n < -1 {
            return Err("log_rejected_record_num must be equal or greater than -1".into());
        }
    }
    let strip_outer_array =
        get(h, "strip_outer_array").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let partial = match get(h, "partial_update") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err("Invalid partial update flag format. Must be bool type".into()),
    };
    // `max_filter_ratio` is read with strtod: a malformed value counts as 0.
    let max_filter_ratio = get(h, "max_filter_ratio").map_or(0.0, strtod);
    let csv = CsvOptions {
        column_separator: match get(h, "column_separator") {
            Some(v) => parse_separator(v)?,
            None => b"\t".to_vec(),
        },
        row_delimiter: match get(h, "row_delimiter") {
            Some(v) => parse_separator(v)?,
            None => b"\n".to_vec(),
        },
        skip_header,
        trim_space,
        enclose: get(h, "enclose").and_then(|v| v.bytes().next()),
        escape: get(h, "escape").and_then(|v| v.bytes().next()),
    };
    let json_root = match get(h, "json_root") {
        Some(p) if format == Format::Json => Some(parse_path(p)?),
        _ => None,
    };
    let jsonpaths = match get(h, "jsonpaths") {
        Some(p) if format == Format::Json => {
            let list: Vec<String> = sonic_rs::from_str(p).map_err(|_| {
                format!("Invalid jsonpaths: {p}. It must be a JSON array of strings")
            })?;
            Some(
                list.iter()
                    .map(|s| parse_path(s))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        _ => None,
    };

    let pk = schema.is_primary_key();
    let mut sources: Vec<String> = Vec::new();
    let mut dest: Vec<Dest> = Vec::new();
    let mut op = OpSource::Upsert;
    let set_dest = |dest: &mut Vec<Dest>, col: usize, src: usize| {
        if let Some(d) = dest.iter_mut().find(|d| d.col == col) {
            d.src = src;
        } else {
            dest.push(Dest { col, src });
        }
    };
    match get(h, "columns") {
        None => {
            for (i, c) in schema.columns.iter().enumerate() {
                sources.push(c.name.clone());
                dest.push(Dest { col: i, src: i });
            }
            if pk && format == Format::Json && jsonpaths.is_none() {
                sources.push("__op".into());
                op = OpSource::Field(sources.len() - 1);
            }
        }
        Some(spec) => {
            let items = split_columns(spec);
            let mut exprs = Vec::new();
            for item in &items {
                if item.is_empty() {
                    return Err(format!("empty item in the columns header: {spec}"));
                }
                match item.split_once('=') {
                    None => {
                        if !is_ident(item) {
                            return Err(format!(
                                "invalid column name in the columns header: {item}"
                            ));
                        }
                        let name = unquote_ident(item);
                        sources.push(name.clone());
                        let src = sources.len() - 1;
                        if name.eq_ignore_ascii_case("__op") {
                            op = OpSource::Field(src);
                        } else if let Some(col) = schema.index(&name) {
                            set_dest(&mut dest, col, src);
                        }
                    }
                    Some((lhs, rhs)) => exprs.push((unquote_ident(lhs), rhs.trim().to_owned())),
                }
            }
            for (target, expr) in exprs {
                let from_source = if is_ident(&expr) {
                    let n = unquote_ident(&expr);
                    sources.iter().position(|s| s.eq_ignore_ascii_case(&n))
                } else {
                    None
                };
                if target.eq_ignore_ascii_case("__op") {
                    op = match (from_source, expr.trim_matches(['\'', '"']).to_ascii_lowercase().as_str()) {
                        (Some(src), _) => OpSource::Field(src),
                        (None, "delete" | "1") => OpSource::Const(Op::Delete),
                        (None, "upsert" | "0") => OpSource::Const(Op::Upsert),
                        _ => {
                            return Err(format!(
                                "the emulator does not evaluate the column expression '__op={expr}'; use a field name, 'upsert', 'delete', 0 or 1"
                            ))
                        }
                    };
                    continue;
                }
                let col = schema
                    .index(&target)
                    .ok_or_else(|| format!("Unknown column '{target}' in '{}'", schema.table))?;
                match from_source {
                    Some(src) => set_dest(&mut dest, col, src),
                    None => {
                        return Err(format!(
                            "the emulator does not evaluate column expressions ({target}={expr}); map fields by name only"
                        ))
                    }
                }
            }
        }
    }
    if !pk && op != OpSource::Upsert {
        return Err(format!(
            "__op can only be loaded into a Primary Key table; {}.{} has no primary key",
            schema.db, schema.table
        ));
    }
    if let Some(paths) = &jsonpaths {
        if paths.len() > sources.len() {
            return Err(format!(
                "jsonpaths has {} paths but only {} columns are declared",
                paths.len(),
                sources.len()
            ));
        }
    }
    let loaded = |col: usize| dest.iter().position(|d| d.col == col);
    let mut key_pos = Vec::new();
    for &k in &schema.key {
        match loaded(k) {
            Some(p) => key_pos.push(p),
            None => {
                let name = schema.columns.get(k).map_or("?", |c| c.name.as_str());
                return Err(if partial {
                    format!("partial update must load all primary key columns; missing: {name}")
                } else {
                    format!("Column has no default value. column: {name}")
                });
            }
        }
    }
    if partial && !pk {
        return Err("partial update is only supported by Primary Key tables".into());
    }
    let unlisted: Vec<usize> = (0..schema.columns.len())
        .filter(|c| loaded(*c).is_none())
        .collect();
    if !partial {
        for &c in &unlisted {
            let col = &schema.columns[c];
            if !col.has_default {
                return Err(format!("Column has no default value. column: {}", col.name));
            }
        }
    }
    let merge_pos = match get(h, "merge_condition") {
        None => None,
        Some(m) => {
            if !pk {
                return Err("merge_condition is only supported by Primary Key tables".into());
            }
            let col = schema
                .index(m.trim())
                .ok_or_else(|| format!("Merge condition column {m} does not exist"))?;
            if schema.columns[col].is_key {
                return Err(format!(
                    "Merge condition column {m} should not be a primary key column"
                ));
            }
            Some(loaded(col).ok_or_else(|| {
                format!("Merge condition column {m} is not loaded; the emulator requires it in the columns header")
            })?)
        }
    };
    if let Some(mode) = get(h, "partial_update_mode") {
        if !["row", "column", "auto"].contains(&mode) {
            return Err(format!(
                "Invalid partial_update_mode: {mode}. Valid values: row, column, auto"
            ));
        }
    }
    let mut source_index = HashMap::new();
    for (i, s) in sources.iter().enumerate().rev() {
        source_index.insert(s.clone(), i);
        source_index.entry(s.to_ascii_lowercase()).or_insert(i);
    }
    let mut fingerprint = String::new();
    for name in PLAN_HEADERS {
        if let Some(v) = get(h, name) {
            fingerprint.push_str(name);
            fingerprint.push('=');
            fingerprint.push_str(v);
            fingerprint.push('\n');
        }
    }
    Ok(LoadPlan {
        format,
        strip_outer_array,
        json_root,
        jsonpaths,
        sources,
        source_index,
        dest,
        unlisted,
        key_pos,
        op,
        strict,
        partial,
        merge_pos,
        max_filter_ratio,
        csv,
        fingerprint,
    })
}

/// C `strtod` on a header: the longest numeric prefix, 0 when there is none.
fn strtod(v: &str) -> f64 {
    let t = v.trim_start();
    let mut end = 0;
    for i in (1..=t.len()).rev() {
        if t.is_char_boundary(i) && t.get(..i).and_then(|p| p.parse::<f64>().ok()).is_some() {
            end = i;
            break;
        }
    }
    t.get(..end).and_then(|p| p.parse().ok()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, SrType};

    fn schema() -> TableSchema {
        let col = |name: &str, key: bool, nullable: bool, has_default: bool| Column {
            name: name.into(),
            ty: SrType::Int {
                min: 0,
                max: 10,
                name: "INT",
            },
            nullable,
            has_default,
            is_key: key,
            pad_space: false,
        };
        TableSchema::new(
            "db",
            "t",
            vec![
                col("id", true, false, false),
                col("v", false, true, true),
                col("w", false, false, false),
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
    fn simple_json_declares_all_columns_and_op() {
        let p = plan(&h(&[]), Format::Json, &schema()).expect("plan");
        assert_eq!(p.dest.len(), 3);
        assert_eq!(p.op, OpSource::Field(3));
        assert!(p.unlisted.is_empty());
    }

    #[test]
    fn columns_header_rules() {
        let s = schema();
        let p = plan(&h(&[("columns", "id, `w`, tmp, __op")]), Format::Json, &s).expect("plan");
        assert_eq!(p.unlisted, vec![1]);
        assert_eq!(p.op, OpSource::Field(3));
        let e = plan(&h(&[("columns", "id,v")]), Format::Json, &s).expect_err("w has no default");
        assert!(e.contains("Column has no default value. column: w"), "{e}");
        let p = plan(
            &h(&[("columns", "id,v"), ("partial_update", "true")]),
            Format::Json,
            &s,
        )
        .expect("partial");
        assert!(p.partial);
        let e = plan(
            &h(&[("columns", "v"), ("partial_update", "true")]),
            Format::Json,
            &s,
        )
        .expect_err("key");
        assert!(e.contains("primary key"), "{e}");
        let p =
            plan(&h(&[("columns", "id,v,w,__op='delete'")]), Format::Csv, &s).expect("const op");
        assert_eq!(p.op, OpSource::Const(Op::Delete));
        let e = plan(&h(&[("columns", "id,v,w=v*2")]), Format::Csv, &s).expect_err("expr");
        assert!(e.contains("expressions"), "{e}");
        let e = plan(&h(&[("merge_condition", "id")]), Format::Json, &s).expect_err("key mc");
        assert!(e.contains("primary key"), "{e}");
        assert!(plan(&h(&[("merge_condition", "v")]), Format::Json, &s).is_ok());
        assert!(plan(&h(&[("strict_mode", "yes")]), Format::Json, &s).is_err());
        assert!(plan(&h(&[("where", "v > 1")]), Format::Json, &s).is_err());
    }

    #[test]
    fn early_checks() {
        let lim = BodyLimits {
            max_body: 100,
            max_json: 10,
        };
        assert!(early(&h(&[("format", "JSON")]), Some(11), lim).is_err());
        assert!(early(
            &h(&[("format", "json"), ("ignore_json_size", "true")]),
            Some(11),
            lim
        )
        .is_ok());
        assert!(early(&h(&[("format", "parquet")]), None, lim).is_err());
        assert_eq!(
            early(&h(&[("timeout", "x")]), None, lim).expect_err("timeout"),
            "Invalid timeout format"
        );
        assert!(early(&h(&[]), Some(101), lim).is_err());
    }

    #[test]
    fn small_parsers() {
        assert_eq!(strtod("0.25abc"), 0.25);
        assert_eq!(strtod("abc"), 0.0);
        assert_eq!(parse_separator("\\x0D0A").expect("hex"), b"\r\n".to_vec());
        assert_eq!(parse_separator("|").expect("pipe"), b"|".to_vec());
        assert!(check_label("ok_label-1:2").is_ok());
        assert!(check_label("bad label").is_err());
        assert!(check_label(&"x".repeat(129)).is_err());
    }
}

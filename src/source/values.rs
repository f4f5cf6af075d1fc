//! Column values: PostgreSQL text output → the JSON value StarRocks loads.
//!
//! The sink calls this for every column of every row, so it writes straight into
//! the JSON output buffer (`&mut Vec<u8>`) with no intermediate value tree and no
//! allocation on the common paths (arrays with quoted elements use one scratch
//! string).
//!
//! The replication connection pins the session settings that shape the text
//! output (`DateStyle=ISO`, `IntervalStyle=postgres`, `TimeZone=UTC`,
//! `extra_float_digits=3`, `bytea_output=hex`), so the formats below are the only
//! ones that occur; anything else is a [`ValueError`].
//!
//! | PostgreSQL | JSON written | notes |
//! |---|---|---|
//! | bool | `true` / `false` | |
//! | int2, int4, int8, oid | number | |
//! | float4, float8 | number; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings | JSON has no NaN |
//! | numeric | string, exact digits | NaN / ±Infinity are an error (no DECIMAL can hold them) |
//! | money | string as printed | |
//! | text, varchar, bpchar, name, "char", citext, enums, xml, inet, … | string | |
//! | bytea | string of lower-case hex digits, without PostgreSQL's `\x` prefix | `unhex()` in StarRocks gives the bytes |
//! | date | `"YYYY-MM-DD"` | BC dates, years > 9999 and ±infinity are an error |
//! | timestamp | `"YYYY-MM-DD HH:MM:SS[.ffffff]"` | same limits |
//! | timestamptz | same format, converted to UTC | offsets like `+05:30` or `-03:30:15` are applied |
//! | time, timetz, interval, uuid | string as printed | |
//! | json, jsonb | embedded as JSON for a JSON target column, else a string | |
//! | arrays of any of these | JSON array (nested for multi-dimensional), `null` elements | |
//! | other types | string as printed, with a warning once per column | |
//!
//! [`JsonTarget::Text`] is the escape hatch for values a typed StarRocks column
//! cannot hold (e.g. `infinity` timestamps): every type is then written as the JSON
//! string of PostgreSQL's text output, unchanged.
//!
//! Errors never contain the value itself (row values stay out of logs); they name
//! table, column and type, and say what kind of value was rejected.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::message::TypeInfo;
use datetime::{parse_date, parse_timestamp, write_timestamp};

mod datetime;

/// How a column is written, decided by the type of the sink column.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum JsonTarget {
    /// The sink column is typed (numbers, dates, strings, arrays): convert.
    Native,
    /// The sink column is JSON: json/jsonb values are embedded, not quoted.
    Json,
    /// Write PostgreSQL's text output as a JSON string, whatever the type.
    Text,
}

/// A column type, resolved from its OID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgType {
    /// bool
    Bool,
    /// int2, int4, int8, oid, xid and other integers.
    Integer,
    /// float4, float8.
    Float,
    /// numeric.
    Numeric,
    /// Text-like and everything written as its printed form.
    Text,
    /// bytea.
    Bytea,
    /// date.
    Date,
    /// timestamp without time zone.
    Timestamp,
    /// timestamp with time zone.
    TimestampTz,
    /// json, jsonb.
    Json,
    /// An array of the element type (any number of dimensions).
    Array(Box<PgType>),
    /// A type dbmazz does not know: passed through as text, with a warning.
    Unknown {
        /// Type OID.
        oid: u32,
        /// Name from a Type message, if one was seen.
        name: Option<String>,
    },
}

/// User-defined types named by Type messages (and enums, when the caller knows
/// them from the catalog).
#[derive(Clone, Debug, Default)]
pub struct TypeRegistry {
    types: HashMap<u32, (String, String)>,
    enums: HashMap<u32, ()>,
}

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a Type message (replaces an earlier one for the same OID).
    pub fn register(&mut self, t: &TypeInfo) {
        self.types
            .insert(t.oid, (t.namespace.clone(), t.name.clone()));
    }

    /// Marks `oid` as an enum type (written as text without a warning).
    pub fn mark_enum(&mut self, oid: u32) {
        self.enums.insert(oid, ());
    }
}

fn builtin_by_oid(oid: u32) -> Option<PgType> {
    use PgType::*;
    let arr = |t: PgType| Some(Array(Box::new(t)));
    match oid {
        16 => Some(Bool),
        20 | 21 | 23 | 26 | 28 | 5069 => Some(Integer),
        700 | 701 => Some(Float),
        1700 => Some(Numeric),
        17 => Some(Bytea),
        1082 => Some(Date),
        1114 => Some(Timestamp),
        1184 => Some(TimestampTz),
        114 | 3802 => Some(Json),
        // Text-like and printed-form types.
        18 | 19 | 25 | 1042 | 1043 | 790 | 142 | 650 | 869 | 829 | 774 | 1560 | 1562 | 1083
        | 1266 | 1186 | 2950 | 3220 | 3614 | 3615 | 600 | 601 | 602 | 603 | 604 | 628 | 718
        | 2205 | 2206 | 4089 | 4096 | 3904 | 3906 | 3908 | 3910 | 3912 | 3926 => Some(Text),
        1000 => arr(Bool),
        1005 | 1007 | 1016 | 1028 | 1011 => arr(Integer),
        1021 | 1022 => arr(Float),
        1231 => arr(Numeric),
        1001 => arr(Bytea),
        1182 => arr(Date),
        1115 => arr(Timestamp),
        1185 => arr(TimestampTz),
        199 | 3807 => arr(Json),
        1002 | 1003 | 1009 | 1014 | 1015 | 791 | 143 | 651 | 1041 | 1040 | 775 | 1561 | 1563
        | 1183 | 1270 | 1187 | 2951 | 3221 | 3643 | 3645 => arr(Text),
        _ => None,
    }
}

fn builtin_by_name(name: &str) -> Option<PgType> {
    use PgType::*;
    if let Some(elem) = name.strip_prefix('_') {
        return builtin_by_name(elem).map(|t| Array(Box::new(t)));
    }
    Some(match name {
        "bool" => Bool,
        "int2" | "int4" | "int8" | "oid" | "xid" | "xid8" => Integer,
        "float4" | "float8" => Float,
        "numeric" => Numeric,
        "bytea" => Bytea,
        "date" => Date,
        "timestamp" => Timestamp,
        "timestamptz" => TimestampTz,
        "json" | "jsonb" => Json,
        "text" | "varchar" | "bpchar" | "name" | "char" | "money" | "xml" | "inet" | "cidr"
        | "macaddr" | "macaddr8" | "bit" | "varbit" | "time" | "timetz" | "interval" | "uuid"
        | "pg_lsn" | "tsvector" | "tsquery" | "citext" => Text,
        _ => return None,
    })
}

impl PgType {
    /// Resolves a column type. Builtins by OID; user types through the Type message
    /// registry: a domain arrives named as its base type, an enum (marked by the
    /// caller) is text, `_name` is an array of `name`, `citext` is text. Anything
    /// else is [`PgType::Unknown`].
    pub fn resolve(type_oid: u32, _type_modifier: i32, registry: &TypeRegistry) -> PgType {
        if let Some(t) = builtin_by_oid(type_oid) {
            return t;
        }
        if registry.enums.contains_key(&type_oid) {
            return PgType::Text;
        }
        match registry.types.get(&type_oid) {
            Some((ns, name)) => {
                if let Some(t) =
                    builtin_by_name(name).filter(|_| ns == "pg_catalog" || name.ends_with("citext"))
                {
                    return t;
                }
                if let Some(elem) = name.strip_prefix('_') {
                    // Array of a user type: its elements follow the element's rules.
                    let elem_oid = registry
                        .types
                        .iter()
                        .find(|(_, (n2, e))| n2 == ns && e == elem)
                        .map(|(o, _)| *o);
                    let inner = match elem_oid {
                        Some(o) => PgType::resolve(o, -1, registry),
                        None => PgType::Unknown {
                            oid: type_oid,
                            name: Some(format!("{ns}.{elem}")),
                        },
                    };
                    return PgType::Array(Box::new(inner));
                }
                PgType::Unknown {
                    oid: type_oid,
                    name: Some(format!("{ns}.{name}")),
                }
            }
            None => PgType::Unknown {
                oid: type_oid,
                name: None,
            },
        }
    }

    /// A short name for messages.
    pub fn name(&self) -> String {
        match self {
            PgType::Bool => "boolean".into(),
            PgType::Integer => "integer".into(),
            PgType::Float => "float".into(),
            PgType::Numeric => "numeric".into(),
            PgType::Text => "text".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Date => "date".into(),
            PgType::Timestamp => "timestamp".into(),
            PgType::TimestampTz => "timestamptz".into(),
            PgType::Json => "json".into(),
            PgType::Array(e) => format!("{}[]", e.name()),
            PgType::Unknown { oid, name } => match name {
                Some(n) => format!("{n} (oid {oid})"),
                None => format!("unknown type oid {oid}"),
            },
        }
    }

    fn has_unknown(&self) -> bool {
        match self {
            PgType::Unknown { .. } => true,
            PgType::Array(e) => e.has_unknown(),
            _ => false,
        }
    }
}

/// Why a value could not be converted (without the value itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvError(pub &'static str);

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A value of a column could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert a value of column {table}.{column} (type {type_name}): {reason}")]
pub struct ValueError {
    /// Qualified table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Column type.
    pub type_name: String,
    /// What was wrong.
    pub reason: String,
}

/// Converts one column's values; remembers whether it has warned already.
#[derive(Debug)]
pub struct ColumnCodec {
    table: String,
    column: String,
    ty: PgType,
    unknown: bool,
    warned: AtomicBool,
}

impl ColumnCodec {
    /// A codec for `table.column` of type `ty`.
    pub fn new(table: impl Into<String>, column: impl Into<String>, ty: PgType) -> Self {
        ColumnCodec {
            table: table.into(),
            column: column.into(),
            unknown: ty.has_unknown(),
            ty,
            warned: AtomicBool::new(false),
        }
    }

    /// The column type.
    pub fn ty(&self) -> &PgType {
        &self.ty
    }

    /// Appends the JSON value for `text` to `out`. On error `out` is unchanged.
    pub fn encode(
        &self,
        text: &str,
        target: JsonTarget,
        out: &mut Vec<u8>,
    ) -> Result<(), ValueError> {
        if self.unknown && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                table = %self.table,
                column = %self.column,
                r#type = %self.ty.name(),
                "unknown column type: passing its text form through as a JSON string"
            );
        }
        encode_json(&self.ty, text, target, out).map_err(|e| ValueError {
            table: self.table.clone(),
            column: self.column.clone(),
            type_name: self.ty.name(),
            reason: e.0.to_owned(),
        })
    }
}

/// Appends the JSON value of `text` (PostgreSQL text output of type `ty`) to
/// `out`. On error `out` is left as it was.
pub fn encode_json(
    ty: &PgType,
    text: &str,
    target: JsonTarget,
    out: &mut Vec<u8>,
) -> Result<(), ConvError> {
    let mark = out.len();
    let r = encode_inner(ty, text, target, out);
    if r.is_err() {
        out.truncate(mark);
    }
    r
}

fn encode_inner(
    ty: &PgType,
    text: &str,
    target: JsonTarget,
    out: &mut Vec<u8>,
) -> Result<(), ConvError> {
    if target == JsonTarget::Text {
        write_json_string(text, out);
        return Ok(());
    }
    match ty {
        PgType::Bool => match text {
            "t" | "true" => out.extend_from_slice(b"true"),
            "f" | "false" => out.extend_from_slice(b"false"),
            _ => return Err(ConvError("boolean is neither t nor f")),
        },
        PgType::Integer => {
            if !is_integer(text.as_bytes()) {
                return Err(ConvError("not an integer"));
            }
            out.extend_from_slice(text.as_bytes());
        }
        PgType::Float => match text {
            "NaN" | "Infinity" | "-Infinity" => write_json_string(text, out),
            _ if is_json_number(text.as_bytes()) => out.extend_from_slice(text.as_bytes()),
            _ => return Err(ConvError("not a floating-point number")),
        },
        PgType::Numeric => match text {
            "NaN" => return Err(ConvError(
                "numeric NaN has no DECIMAL representation; map the column with the text target or \
                 clean the value at the source",
            )),
            "Infinity" | "-Infinity" => return Err(ConvError(
                "numeric Infinity has no DECIMAL representation; map the column with the text \
                 target or clean the value at the source",
            )),
            _ if is_decimal(text.as_bytes()) => {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            }
            _ => return Err(ConvError("not a numeric value")),
        },
        PgType::Text | PgType::Unknown { .. } => write_json_string(text, out),
        PgType::Bytea => {
            let hex = text
                .strip_prefix("\\x")
                .ok_or(ConvError("bytea is not in hex output format"))?;
            if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConvError("bytea hex output has invalid digits"));
            }
            out.push(b'"');
            out.extend(hex.bytes().map(|b| b.to_ascii_lowercase()));
            out.push(b'"');
        }
        PgType::Date => {
            if text.len() != 10 || parse_date(text.as_bytes()).is_none() {
                return Err(ConvError(
                    "date outside 0001-01-01..9999-12-31 (BC, infinity or a 5-digit year) or \
                     malformed",
                ));
            }
            out.push(b'"');
            out.extend_from_slice(&text.as_bytes()[..10]);
            out.push(b'"');
        }
        PgType::Timestamp => {
            let ts = parse_timestamp(text.as_bytes(), false).ok_or(ConvError(
                "timestamp outside 0001..9999 (BC, infinity or a 5-digit year) or malformed",
            ))?;
            out.push(b'"');
            write_timestamp(&ts, out);
            out.push(b'"');
        }
        PgType::TimestampTz => {
            let ts = parse_timestamp(text.as_bytes(), true).ok_or(ConvError(
                "timestamptz outside 0001..9999 (BC, infinity or a 5-digit year) or malformed",
            ))?;
            let ts = ts.to_utc().ok_or(ConvError("timestamptz outside 0001..9999 after conversion to UTC"))?;
            out.push(b'"');
            write_timestamp(&ts, out);
            out.push(b'"');
        }
        PgType::Json => {
            if sonic_rs::from_str::<serde::de::IgnoredAny>(text).is_err() {
                return Err(ConvError("json value is not valid JSON"));
            }
            if target == JsonTarget::Json {
                out.extend_from_slice(text.as_bytes());
            } else {
                write_json_string(text, out);
            }
        }
        PgType::Array(elem) => encode_array(elem, text, target, out)?,
    }
    Ok(())
}

/// `-?(0|[1-9][0-9]*)`: what PostgreSQL prints, and a valid JSON number (no
/// leading zeros).
fn is_integer(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    !digits.is_empty()
        && digits.len() <= 20
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
}

/// `-?[0-9]+(\.[0-9]+)?`
fn is_decimal(b: &[u8]) -> bool {
    let b = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
}

/// JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(b: &[u8]) -> bool {
    // The number of ASCII digits at the start of `b`.
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut rest = b.strip_prefix(b"-").unwrap_or(b);
    let int = digits(rest);
    if int == 0 || (rest[0] == b'0' && int > 1) {
        return false;
    }
    rest = &rest[int..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}

const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t
};

/// Appends `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let e = ESCAPE[c as usize];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        if e == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Array text output: `{a,b}`, nested `{{1,2},{3,4}}`, quoted elements with
/// backslash escapes, unquoted `NULL`, optional `[lo:hi]=` dimension decoration.
fn encode_array(
    elem: &PgType,
    text: &str,
    target: JsonTarget,
    out: &mut Vec<u8>,
) -> Result<(), ConvError> {
    let b = text.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'[') {
        let eq = memchr::memchr(b'=', b).ok_or(ConvError("malformed array dimensions"))?;
        i = eq + 1;
    }
    let mut scratch = String::new();
    let mut depth = 0usize;
    // After '{' or ',' an element or '{' is expected.
    let mut expect_elem = true;
    let mut first_in_level = true;
    // box arrays use ';' as delimiter; every type dbmazz decodes uses ','.
    let delim = b',';
    while i < b.len() {
        let c = b[i];
        match c {
            b'{' => {
                if !expect_elem {
                    return Err(ConvError("malformed array"));
                }
                out.push(b'[');
                depth += 1;
                first_in_level = true;
                expect_elem = true;
                i += 1;
            }
            b'}' => {
                if depth == 0 || (expect_elem && !first_in_level) {
                    return Err(ConvError("malformed array"));
                }
                out.push(b']');
                depth -= 1;
                expect_elem = false;
                first_in_level = false;
                i += 1;
                if depth == 0 {
                    if i != b.len() {
                        return Err(ConvError("trailing characters after array"));
                    }
                    return Ok(());
                }
            }
            _ if c == delim => {
                if expect_elem || depth == 0 {
                    return Err(ConvError("malformed array"));
                }
                out.push(b',');
                expect_elem = true;
                first_in_level = false;
                i += 1;
            }
            b'"' => {
                if !expect_elem || depth == 0 {
                    return Err(ConvError("malformed array"));
                }
                scratch.clear();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    let start = i;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                        i += 1;
                    }
                    scratch.push_str(text.get(start..i).ok_or(ConvError("malformed array"))?);
                    match b.get(i) {
                        Some(b'"') => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        Some(b'\\') => {
                            let ch = text
                                .get(i + 1..)
                                .and_then(|r| r.chars().next())
                                .ok_or(ConvError("malformed array escape"))?;
                            scratch.push(ch);
                            i += 1 + ch.len_utf8();
                        }
                        _ => break,
                    }
                }
                if !closed {
                    return Err(ConvError("unterminated quoted array element"));
                }
                encode_inner(elem, &scratch, target, out)?;
                expect_elem = false;
                first_in_level = false;
            }
            _ => {
                if !expect_elem || depth == 0 {
                    return Err(ConvError("malformed array"));
                }
                let start = i;
                while i < b.len() && b[i] != delim && b[i] != b'}' {
                    if b[i] == b'"' || b[i] == b'{' || b[i] == b'\\' {
                        return Err(ConvError("malformed array element"));
                    }
                    i += 1;
                }
                let raw = text.get(start..i).ok_or(ConvError("malformed array"))?;
                if raw.eq_ignore_ascii_case("NULL") {
                    out.extend_from_slice(b"null");
                } else {
                    encode_inner(elem, raw, target, out)?;
                }
                expect_elem = false;
                first_in_level = false;
            }
        }
    }
    Err(ConvError("unterminated array"))
}

#[cfg(test)]
mod tests;

//! Converting JSON values and CSV fields to column values the way StarRocks does.
//!
//! Rules (from the StarRocks JSON readers and the strict-mode documentation):
//! * integers: a JSON integer must fit the type ("Value is overflow"); a JSON float
//!   is truncated toward zero; a string is parsed as an integer, then as a float
//!   (truncated); booleans, objects and arrays are rejected;
//! * BOOLEAN: booleans, numbers (non-zero = true) and strings holding an integer or
//!   `true`/`false`;
//! * FLOAT/DOUBLE: numbers and numeric strings; FLOAT range-checked;
//! * DECIMAL(p,s): numbers and numeric strings, rounded half away from zero to `s`
//!   digits; more than `p-s` integer digits is an overflow;
//! * strings: strings as is, numbers as written, booleans as `1`/`0`, objects and
//!   arrays as minified JSON; longer than the limit (in bytes) always filters the row;
//! * DATE/DATETIME: `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYYMMDD`, optionally followed by
//!   ` ` or `T` and `HH:MM[:SS[.ffffff]]`, or `YYYYMMDDHHMMSS`; impossible dates fail;
//! * JSON: any JSON value, stored as its (minified) JSON text; a JSON string stays a
//!   JSON string.
//!
//! A value that cannot be converted is a *cast failure*: with `strict_mode=true` the
//! row is filtered, otherwise the value becomes NULL. NULL in a NOT NULL column and
//! over-long strings filter the row in both modes.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::json::{Reader, Scalar};
use crate::schema::{Column, SrType};

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year 0..=9999.
    pub y: u16,
    /// Month 1..=12.
    pub m: u8,
    /// Day 1..=31.
    pub d: u8,
}

/// A date and time with microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// Hour 0..=23.
    pub h: u8,
    /// Minute.
    pub mi: u8,
    /// Second.
    pub s: u8,
    /// Microseconds.
    pub us: u32,
}

/// A converted column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// NULL
    Null,
    /// BOOLEAN
    Bool(bool),
    /// Any integer type.
    Int(i128),
    /// FLOAT/DOUBLE
    Float(f64),
    /// DECIMAL, unscaled (the scale is the column's).
    Decimal(i128),
    /// Text types.
    Str(Cow<'a, str>),
    /// VARBINARY
    Bytes(Cow<'a, [u8]>),
    /// DATE
    Date(Date),
    /// DATETIME
    DateTime(DateTime),
    /// JSON text.
    Json(Cow<'a, str>),
}

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvError {
    /// A cast failure: NULL in non-strict mode, filtered in strict mode.
    Cast(String),
    /// Always filters the row (e.g. a string over the column's length).
    Reject(String),
}

impl Cell<'_> {
    /// Detaches the value from the body it borrows from.
    pub fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Null => Cell::Null,
            Cell::Bool(b) => Cell::Bool(b),
            Cell::Int(i) => Cell::Int(i),
            Cell::Float(f) => Cell::Float(f),
            Cell::Decimal(d) => Cell::Decimal(d),
            Cell::Str(s) => Cell::Str(Cow::Owned(s.into_owned())),
            Cell::Bytes(b) => Cell::Bytes(Cow::Owned(b.into_owned())),
            Cell::Date(d) => Cell::Date(d),
            Cell::DateTime(d) => Cell::DateTime(d),
            Cell::Json(s) => Cell::Json(Cow::Owned(s.into_owned())),
        }
    }

    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }
}

/// Orders two values of one column (NULL first), as a merge condition compares them.
pub fn compare(a: &Cell<'_>, b: &Cell<'_>) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        (Cell::Bool(x), Cell::Bool(y)) => x.cmp(y),
        (Cell::Int(x), Cell::Int(y)) | (Cell::Decimal(x), Cell::Decimal(y)) => x.cmp(y),
        (Cell::Float(x), Cell::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Cell::Str(x), Cell::Str(y)) | (Cell::Json(x), Cell::Json(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Cell::Bytes(x), Cell::Bytes(y)) => x.as_ref().cmp(y.as_ref()),
        (Cell::Date(x), Cell::Date(y)) => x.cmp(y),
        (Cell::DateTime(x), Cell::DateTime(y)) => x.cmp(y),
        // Different variants never meet within one column; order them stably anyway.
        _ => tag(a).cmp(&tag(b)),
    }
}

fn tag(c: &Cell<'_>) -> u8 {
    match c {
        Cell::Null => 0,
        Cell::Bool(_) => 1,
        Cell::Int(_) => 2,
        Cell::Float(_) => 3,
        Cell::Decimal(_) => 4,
        Cell::Str(_) => 5,
        Cell::Bytes(_) => 6,
        Cell::Date(_) => 7,
        Cell::DateTime(_) => 8,
        Cell::Json(_) => 9,
    }
}

/// Appends a self-describing binary encoding of `c` (used for staged rows and keys).
pub fn encode(c: &Cell<'_>, out: &mut Vec<u8>) {
    out.push(tag(c));
    match c {
        Cell::Null => {}
        Cell::Bool(b) => out.push(u8::from(*b)),
        Cell::Int(i) | Cell::Decimal(i) => out.extend_from_slice(&i.to_le_bytes()),
        Cell::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
        Cell::Str(s) | Cell::Json(s) => put_bytes(s.as_bytes(), out),
        Cell::Bytes(b) => put_bytes(b, out),
        Cell::Date(d) => put_date(d, out),
        Cell::DateTime(dt) => {
            put_date(&dt.date, out);
            out.extend_from_slice(&[dt.h, dt.mi, dt.s]);
            out.extend_from_slice(&dt.us.to_le_bytes());
        }
    }
}

/// The canonical key encoding of `c` for column `col` (trailing spaces are ignored
/// where the MariaDB collation ignores them, so the emulator agrees with the storage).
pub fn encode_key(c: &Cell<'_>, col: &Column, out: &mut Vec<u8>) {
    match c {
        Cell::Str(s) if col.pad_space => {
            encode(&Cell::Str(Cow::Borrowed(s.trim_end_matches(' '))), out);
        }
        _ => encode(c, out),
    }
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b.get(..len as usize).unwrap_or(b));
}

fn put_date(d: &Date, out: &mut Vec<u8>) {
    out.extend_from_slice(&d.y.to_le_bytes());
    out.extend_from_slice(&[d.m, d.d]);
}

/// Decodes one value written by [`encode`] at `*pos`.
pub fn decode(buf: &[u8], pos: &mut usize) -> Result<Cell<'static>, String> {
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = buf
            .get(*pos..*pos + n)
            .ok_or_else(|| format!("staged row truncated at byte {}", *pos))?;
        *pos += n;
        Ok(s)
    };
    let t = *take(1)?.first().unwrap_or(&255);
    let arr16 = |s: &[u8]| -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(s);
        a
    };
    Ok(match t {
        0 => Cell::Null,
        1 => Cell::Bool(take(1)?.first() == Some(&1)),
        2 => Cell::Int(i128::from_le_bytes(arr16(take(16)?))),
        4 => Cell::Decimal(i128::from_le_bytes(arr16(take(16)?))),
        3 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(take(8)?);
            Cell::Float(f64::from_le_bytes(a))
        }
        5 | 6 | 9 => {
            let mut l = [0u8; 4];
            l.copy_from_slice(take(4)?);
            let bytes = take(u32::from_le_bytes(l) as usize)?.to_vec();
            if t == 6 {
                Cell::Bytes(Cow::Owned(bytes))
            } else {
                let s =
                    String::from_utf8(bytes).map_err(|_| "staged text is not UTF-8".to_owned())?;
                if t == 5 {
                    Cell::Str(Cow::Owned(s))
                } else {
                    Cell::Json(Cow::Owned(s))
                }
            }
        }
        7 | 8 => {
            let d = take(4)?;
            let date = Date {
                y: u16::from_le_bytes([d[0], d[1]]),
                m: d[2],
                d: d[3],
            };
            if t == 7 {
                Cell::Date(date)
            } else {
                let hms = take(3)?.to_vec();
                let mut us = [0u8; 4];
                us.copy_from_slice(take(4)?);
                Cell::DateTime(DateTime {
                    date,
                    h: hms[0],
                    mi: hms[1],
                    s: hms[2],
                    us: u32::from_le_bytes(us),
                })
            }
        }
        other => return Err(format!("unknown staged value tag {other}")),
    })
}

/// Converts a present JSON value for `col`. NULL handling (NOT NULL) is the caller's.
pub fn convert_json<'a>(v: &Scalar<'a>, col: &Column) -> Result<Cell<'a>, ConvError> {
    let name = &col.name;
    match (&col.ty, v) {
        (_, Scalar::Null) => Ok(Cell::Null),
        (SrType::Int { .. }, Scalar::Number(n)) => int_from_number(n, col),
        (SrType::Int { .. }, Scalar::Str { text, .. }) => int_from_text(text, col),
        (SrType::Int { .. }, _) => Err(ConvError::Cast(format!(
            "Unsupported value type. Numeric type is required. column={name}"
        ))),
        (SrType::Boolean, Scalar::Bool(b)) => Ok(Cell::Bool(*b)),
        (SrType::Boolean, Scalar::Number(n)) => match n.parse::<i128>() {
            Ok(i) => Ok(Cell::Bool(i != 0)),
            Err(_) => n.parse::<f64>().map(|f| Cell::Bool(f != 0.0)).map_err(|_| {
                ConvError::Cast(format!("Value is overflow. column={name}, value={n}"))
            }),
        },
        (SrType::Boolean, Scalar::Str { text, .. }) => bool_from_text(text, col),
        (SrType::Boolean, _) => Err(ConvError::Cast(format!(
            "Unsupported value type to boolean. column={name}, type={}",
            v.type_name()
        ))),
        (SrType::Float | SrType::Double, Scalar::Number(n)) => float_from_text(n, col),
        (SrType::Float | SrType::Double, Scalar::Str { text, .. }) => float_from_text(text, col),
        (SrType::Float | SrType::Double, _) => Err(ConvError::Cast(format!(
            "Unsupported value type. Numeric type is required. column={name}"
        ))),
        (SrType::Json, _) => Ok(Cell::Json(v.json_text())),
        _ => convert_text_value(text_of(v), col, false),
    }
}

/// The string a JSON value turns into when loaded into a string-typed slot.
fn text_of<'a>(v: &Scalar<'a>) -> Cow<'a, str> {
    match v {
        Scalar::Null => Cow::Borrowed(""),
        Scalar::Bool(true) => Cow::Borrowed("1"),
        Scalar::Bool(false) => Cow::Borrowed("0"),
        Scalar::Number(n) => Cow::Borrowed(n),
        Scalar::Str { text, .. } => text.clone(),
        Scalar::Compound(raw) => crate::json::minify(raw),
    }
}

/// Converts a CSV field (already known not to be `\N`) for `col`.
pub fn convert_text<'a>(text: &'a str, col: &Column) -> Result<Cell<'a>, ConvError> {
    convert_text_value(Cow::Borrowed(text), col, true)
}

fn convert_text_value<'a>(
    text: Cow<'a, str>,
    col: &Column,
    from_csv: bool,
) -> Result<Cell<'a>, ConvError> {
    let name = &col.name;
    match &col.ty {
        SrType::Int { .. } => int_from_text(&text, col),
        SrType::Boolean => bool_from_text(&text, col),
        SrType::Float | SrType::Double => float_from_text(&text, col),
        SrType::Decimal { precision, scale } => parse_decimal(&text, *precision, *scale)
            .map(Cell::Decimal)
            .map_err(|why| ConvError::Cast(format!("{why}. column={name}, value={text}"))),
        SrType::Text { max_bytes } => {
            if text.len() > *max_bytes {
                return Err(ConvError::Reject(format!(
                    "String (length={}) is too long. The max length of '{name}' is {max_bytes}",
                    text.len()
                )));
            }
            Ok(Cell::Str(text))
        }
        SrType::Binary { max_bytes } => {
            if text.len() > *max_bytes {
                return Err(ConvError::Reject(format!(
                    "Binary (length={}) is too long. The max length of '{name}' is {max_bytes}",
                    text.len()
                )));
            }
            Ok(Cell::Bytes(match text {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }))
        }
        SrType::Date => parse_datetime(&text)
            .map(|dt| Cell::Date(dt.date))
            .ok_or_else(|| {
                ConvError::Cast(format!("Invalid date value. column={name}, value={text}"))
            }),
        SrType::DateTime => parse_datetime(&text).map(Cell::DateTime).ok_or_else(|| {
            ConvError::Cast(format!(
                "Invalid datetime value. column={name}, value={text}"
            ))
        }),
        SrType::Json => {
            if from_csv {
                let ok = Reader::new(text.as_bytes())
                    .and_then(|mut r| r.value().map(|_| r.at_end()))
                    .unwrap_or(false);
                if !ok {
                    return Err(ConvError::Cast(format!(
                        "Failed to parse json. column={name}"
                    )));
                }
            }
            Ok(Cell::Json(text))
        }
    }
}

fn range_check(v: i128, col: &Column, shown: &str) -> Result<Cell<'static>, ConvError> {
    match col.ty {
        SrType::Int { min, max, .. } if v < min || v > max => Err(ConvError::Cast(format!(
            "Value is overflow. column={}, value={shown}",
            col.name
        ))),
        _ => Ok(Cell::Int(v)),
    }
}

fn int_from_number<'a>(n: &str, col: &Column) -> Result<Cell<'a>, ConvError> {
    if n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        // Fast path: fits an i64 by length alone.
        if let Ok(i) = n.parse::<i64>() {
            return range_check(i128::from(i), col, n);
        }
    }
    if !n.contains(['.', 'e', 'E']) {
        return match n.parse::<i128>() {
            Ok(i) => range_check(i, col, n),
            Err(_) => Err(ConvError::Cast(format!(
                "Value is overflow. column={}, value={n}",
                col.name
            ))),
        };
    }
    float_to_int(n, col)
}

fn float_to_int<'a>(n: &str, col: &Column) -> Result<Cell<'a>, ConvError> {
    match n.parse::<f64>() {
        Ok(f) if f.is_finite() && f.abs() < 1.7e38 => range_check(f.trunc() as i128, col, n),
        _ => Err(ConvError::Cast(format!(
            "Value is overflow. column={}, value={n}",
            col.name
        ))),
    }
}

fn int_from_text<'a>(text: &str, col: &Column) -> Result<Cell<'a>, ConvError> {
    let t = text.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if let Ok(i) = digits.parse::<i128>() {
        return range_check(i, col, t);
    }
    if is_decimal_text(t) {
        return float_to_int(t, col);
    }
    Err(ConvError::Cast(format!(
        "Unable to cast string value to BIGINT. value={text}, column={}",
        col.name
    )))
}

/// Plain decimal/scientific notation (no `inf`, `nan`, hex).
fn is_decimal_text(t: &str) -> bool {
    let s = t.strip_prefix(['+', '-']).unwrap_or(t);
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

fn bool_from_text<'a>(text: &str, col: &Column) -> Result<Cell<'a>, ConvError> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Cell::Bool(i != 0));
    }
    if t.eq_ignore_ascii_case("true") {
        return Ok(Cell::Bool(true));
    }
    if t.eq_ignore_ascii_case("false") {
        return Ok(Cell::Bool(false));
    }
    Err(ConvError::Cast(format!(
        "Failed to parse string value as boolean. column={}, value={text}",
        col.name
    )))
}

fn float_from_text<'a>(text: &str, col: &Column) -> Result<Cell<'a>, ConvError> {
    let t = text.trim();
    let parsed = if is_decimal_text(t) {
        t.parse::<f64>().ok()
    } else {
        None
    };
    match parsed {
        Some(f) if f.is_finite() => {
            if col.ty == SrType::Float && f.abs() > f64::from(f32::MAX) {
                return Err(ConvError::Cast(format!(
                    "Value is overflow. column={}, value={t}",
                    col.name
                )));
            }
            Ok(Cell::Float(f))
        }
        Some(_) => Err(ConvError::Cast(format!(
            "Value is overflow. column={}, value={t}",
            col.name
        ))),
        None => Err(ConvError::Cast(format!(
            "Unable to cast string value to DOUBLE. value={text}, column={}",
            col.name
        ))),
    }
}

/// Parses decimal text to an unscaled integer with `scale` fraction digits, rounding
/// half away from zero; fails when more than `precision` digits would be needed.
pub fn parse_decimal(text: &str, precision: u32, scale: u32) -> Result<i128, &'static str> {
    let t = text.trim();
    let (neg, s) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or_default()),
        Some(b'+') => (false, t.get(1..).unwrap_or_default()),
        _ => (false, t),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => {
            let e: i64 = s
                .get(i + 1..)
                .and_then(|e| e.parse().ok())
                .ok_or("Invalid decimal value")?;
            (s.get(..i).unwrap_or_default(), e)
        }
        None => (s, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (
            mantissa.get(..i).unwrap_or_default(),
            mantissa.get(i + 1..).unwrap_or_default(),
        ),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("Invalid decimal value");
    }
    // value = digits * 10^(exp - frac_len); unscaled = value * 10^scale. No allocation:
    // walk the digits (leading zeros skipped) and keep as many as the scale allows.
    let lead = int_part
        .bytes()
        .chain(frac_part.bytes())
        .take_while(|b| *b == b'0')
        .count();
    let n = int_part.len() + frac_part.len() - lead;
    let shift = exp - frac_part.len() as i64 + i64::from(scale);
    let (keep, extra_zeros) = if shift >= 0 {
        (n, usize::try_from(shift).unwrap_or(usize::MAX))
    } else {
        let drop = usize::try_from(-shift).unwrap_or(usize::MAX);
        (n.saturating_sub(drop), 0)
    };
    if keep.saturating_add(extra_zeros) > 38 {
        return Err("Decimal overflow");
    }
    let mut v: i128 = 0;
    let mut round_up = false;
    for (i, d) in int_part
        .bytes()
        .chain(frac_part.bytes())
        .skip(lead)
        .enumerate()
    {
        if i < keep {
            v = v * 10 + i128::from(d - b'0');
        } else {
            round_up = d >= b'5';
            break;
        }
    }
    for _ in 0..extra_zeros {
        v *= 10;
    }
    if round_up {
        v += 1;
    }
    if v >= 10i128.pow(precision) {
        return Err("Decimal overflow");
    }
    Ok(if neg { -v } else { v })
}

/// Formats an unscaled decimal.
pub fn format_decimal(v: i128, scale: u32) -> String {
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let s = if scale == 0 {
        digits
    } else if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        format!("{i}.{f}")
    } else {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

fn num<T: std::str::FromStr>(s: &str, min_len: usize, max_len: usize) -> Option<T> {
    if s.len() < min_len || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the date and datetime forms StarRocks accepts (see the module docs).
pub fn parse_datetime(text: &str) -> Option<DateTime> {
    let t = text.trim();
    let (date_s, time_s) = match t.find([' ', 'T']) {
        Some(i) => (t.get(..i)?, Some(t.get(i + 1..)?.trim_start())),
        None => (t, None),
    };
    let (date, compact_time) = if date_s.bytes().all(|b| b.is_ascii_digit()) {
        match date_s.len() {
            8 => (
                (
                    num(&date_s[..4], 4, 4)?,
                    num(&date_s[4..6], 2, 2)?,
                    num(&date_s[6..8], 2, 2)?,
                ),
                None,
            ),
            14 => (
                (
                    num(&date_s[..4], 4, 4)?,
                    num(&date_s[4..6], 2, 2)?,
                    num(&date_s[6..8], 2, 2)?,
                ),
                Some((
                    num(&date_s[8..10], 2, 2)?,
                    num(&date_s[10..12], 2, 2)?,
                    num(&date_s[12..14], 2, 2)?,
                )),
            ),
            _ => return None,
        }
    } else {
        let sep = if date_s.contains('-') { '-' } else { '/' };
        let mut parts = date_s.split(sep);
        let y = num(parts.next()?, 4, 4)?;
        let m = num(parts.next()?, 1, 2)?;
        let d = num(parts.next()?, 1, 2)?;
        if parts.next().is_some() {
            return None;
        }
        ((y, m, d), None)
    };
    let (y, m, d): (u16, u8, u8) = date;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let date = Date { y, m, d };
    let (h, mi, s, us) = if let Some((h, mi, s)) = compact_time {
        if time_s.is_some() {
            return None;
        }
        (h, mi, s, 0)
    } else if let Some(ts) = time_s {
        let (hms, frac) = match ts.find('.') {
            Some(i) => (ts.get(..i)?, Some(ts.get(i + 1..)?)),
            None => (ts, None),
        };
        let mut parts = hms.split(':');
        let h: u8 = num(parts.next()?, 1, 2)?;
        let mi: u8 = num(parts.next()?, 1, 2)?;
        let s: u8 = match parts.next() {
            Some(p) => num(p, 1, 2)?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        let us = match frac {
            None => 0,
            Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                // Microseconds: the first six digits, right-padded with zeros.
                let mut us = 0u32;
                for i in 0..6 {
                    us = us * 10 + f.as_bytes().get(i).map_or(0, |d| u32::from(d - b'0'));
                }
                us
            }
            Some(_) => return None,
        };
        (h, mi, s, us)
    } else {
        (0, 0, 0, 0)
    };
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(DateTime { date, h, mi, s, us })
}

/// The MariaDB parameter for a value of column type `ty`.
pub fn to_mysql(c: &Cell<'_>, ty: &SrType) -> mysql_async::Value {
    use mysql_async::Value;
    match c {
        Cell::Null => Value::NULL,
        Cell::Bool(b) => Value::Int(i64::from(*b)),
        Cell::Int(i) => match i64::try_from(*i) {
            Ok(v) => Value::Int(v),
            Err(_) => Value::UInt(u64::try_from(*i).unwrap_or(u64::MAX)),
        },
        Cell::Float(f) => Value::Double(*f),
        Cell::Decimal(d) => {
            let scale = match ty {
                SrType::Decimal { scale, .. } => *scale,
                _ => 0,
            };
            Value::Bytes(format_decimal(*d, scale).into_bytes())
        }
        Cell::Str(s) | Cell::Json(s) => Value::Bytes(s.as_bytes().to_vec()),
        Cell::Bytes(b) => Value::Bytes(b.to_vec()),
        Cell::Date(d) => Value::Date(d.y, d.m, d.d, 0, 0, 0, 0),
        Cell::DateTime(dt) => {
            Value::Date(dt.date.y, dt.date.m, dt.date.d, dt.h, dt.mi, dt.s, dt.us)
        }
    }
}

/// Reads a value MariaDB returned for a column of type `ty`.
pub fn from_mysql(v: &mysql_async::Value, ty: &SrType) -> Result<Cell<'static>, String> {
    use mysql_async::Value;
    let bad = || format!("MariaDB returned {v:?} for a {ty:?} column");
    Ok(match (v, ty) {
        (Value::NULL, _) => Cell::Null,
        (Value::Int(i), SrType::Boolean) => Cell::Bool(*i != 0),
        (Value::UInt(u), SrType::Boolean) => Cell::Bool(*u != 0),
        (Value::Int(i), _) => Cell::Int(i128::from(*i)),
        (Value::UInt(u), _) => Cell::Int(i128::from(*u)),
        (Value::Float(f), _) => Cell::Float(f64::from(*f)),
        (Value::Double(f), _) => Cell::Float(*f),
        (Value::Date(y, m, d, h, mi, s, us), SrType::DateTime) => Cell::DateTime(DateTime {
            date: Date {
                y: *y,
                m: *m,
                d: *d,
            },
            h: *h,
            mi: *mi,
            s: *s,
            us: *us,
        }),
        (Value::Date(y, m, d, ..), _) => Cell::Date(Date {
            y: *y,
            m: *m,
            d: *d,
        }),
        (Value::Bytes(b), ty) => {
            let text = std::str::from_utf8(b).map_err(|_| bad());
            match ty {
                SrType::Binary { .. } => Cell::Bytes(Cow::Owned(b.clone())),
                SrType::Text { .. } => Cell::Str(Cow::Owned(text?.to_owned())),
                SrType::Json => Cell::Json(Cow::Owned(text?.to_owned())),
                SrType::Decimal { precision, scale } => {
                    Cell::Decimal(parse_decimal(text?, *precision, *scale).map_err(|_| bad())?)
                }
                SrType::Int { .. } => Cell::Int(text?.trim().parse().map_err(|_| bad())?),
                SrType::Boolean => Cell::Bool(text?.trim() != "0"),
                SrType::Float | SrType::Double => {
                    Cell::Float(text?.trim().parse().map_err(|_| bad())?)
                }
                SrType::Date => Cell::Date(parse_datetime(text?).ok_or_else(bad)?.date),
                SrType::DateTime => Cell::DateTime(parse_datetime(text?).ok_or_else(bad)?),
            }
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: SrType) -> Column {
        Column {
            name: "c".into(),
            ty,
            nullable: true,
            has_default: true,
            is_key: false,
            pad_space: true,
        }
    }

    fn int(name: &'static str, min: i128, max: i128) -> Column {
        col(SrType::Int { min, max, name })
    }

    fn s(text: &str) -> Scalar<'_> {
        Scalar::Str {
            raw: "",
            text: Cow::Borrowed(text),
        }
    }

    #[test]
    fn integers_follow_the_json_reader_rules() {
        let c = int("TINYINT", -128, 127);
        assert_eq!(convert_json(&Scalar::Number("127"), &c), Ok(Cell::Int(127)));
        assert!(matches!(
            convert_json(&Scalar::Number("2000"), &c),
            Err(ConvError::Cast(_))
        ));
        assert_eq!(convert_json(&Scalar::Number("-1.9"), &c), Ok(Cell::Int(-1)));
        assert_eq!(convert_json(&s(" 12 "), &c), Ok(Cell::Int(12)));
        assert_eq!(convert_json(&s("1.5e1"), &c), Ok(Cell::Int(15)));
        assert!(matches!(
            convert_json(&s("abc"), &c),
            Err(ConvError::Cast(_))
        ));
        assert!(matches!(
            convert_json(&s("nan"), &c),
            Err(ConvError::Cast(_))
        ));
        assert!(matches!(
            convert_json(&Scalar::Bool(true), &c),
            Err(ConvError::Cast(_))
        ));
        let big = int("BIGINT", i128::from(i64::MIN), i128::from(i64::MAX));
        assert!(matches!(
            convert_json(&Scalar::Number("9223372036854775808"), &big),
            Err(ConvError::Cast(_))
        ));
    }

    #[test]
    fn strings_are_limited_in_bytes() {
        let c = col(SrType::Text { max_bytes: 4 });
        assert_eq!(convert_json(&s("abcd"), &c), Ok(Cell::Str("abcd".into())));
        // "éé" is 4 bytes, "ééé" is 6.
        assert!(convert_json(&s("éé"), &c).is_ok());
        assert!(matches!(
            convert_json(&s("ééé"), &c),
            Err(ConvError::Reject(_))
        ));
        assert_eq!(
            convert_json(&Scalar::Bool(true), &c),
            Ok(Cell::Str("1".into()))
        );
        assert_eq!(
            convert_json(&Scalar::Number("1.50"), &c),
            Ok(Cell::Str("1.50".into()))
        );
        let wide = col(SrType::Text { max_bytes: 100 });
        assert_eq!(
            convert_json(&Scalar::Compound("{ \"a\" : 1 }"), &wide),
            Ok(Cell::Str("{\"a\":1}".into()))
        );
    }

    #[test]
    fn decimals_round_and_overflow() {
        assert_eq!(parse_decimal("12.345", 10, 2), Ok(1235));
        assert_eq!(parse_decimal("-12.344", 10, 2), Ok(-1234));
        assert_eq!(parse_decimal("1e2", 10, 2), Ok(10000));
        assert_eq!(parse_decimal("0.005", 3, 2), Ok(1));
        assert!(parse_decimal("1000", 5, 2).is_err());
        assert!(parse_decimal("1e400", 38, 0).is_err());
        assert!(parse_decimal("abc", 10, 2).is_err());
        assert!(parse_decimal(".", 10, 2).is_err());
        assert_eq!(format_decimal(-1235, 2), "-12.35");
        assert_eq!(format_decimal(5, 3), "0.005");
    }

    #[test]
    fn dates_accept_starrocks_forms() {
        let dt = parse_datetime("2024-02-29 23:59:58.5").expect("leap");
        assert_eq!((dt.date.m, dt.date.d, dt.s, dt.us), (2, 29, 58, 500_000));
        assert!(parse_datetime("2023-02-29").is_none());
        assert!(parse_datetime("2024-13-01").is_none());
        assert!(parse_datetime("20240102").is_some());
        assert!(parse_datetime("20240102030405").is_some());
        assert!(parse_datetime("2024/1/2T3:04").is_some());
        assert!(parse_datetime("2024-01-02 24:00:00").is_none());
        assert!(parse_datetime("2024-01-02T10:00:00Z").is_none());
        let c = col(SrType::Date);
        assert!(matches!(
            convert_json(&s("bad"), &c),
            Err(ConvError::Cast(_))
        ));
    }

    #[test]
    fn booleans_and_json() {
        let b = col(SrType::Boolean);
        assert_eq!(convert_json(&Scalar::Number("2"), &b), Ok(Cell::Bool(true)));
        assert_eq!(convert_json(&s("FALSE"), &b), Ok(Cell::Bool(false)));
        assert!(convert_json(&s("maybe"), &b).is_err());
        let j = col(SrType::Json);
        assert_eq!(
            convert_json(
                &Scalar::Str {
                    raw: "\"x\"",
                    text: "x".into()
                },
                &j
            ),
            Ok(Cell::Json("\"x\"".into()))
        );
        assert!(convert_text("{bad", &j).is_err());
    }

    #[test]
    fn encoding_round_trips() {
        let cells = vec![
            Cell::Null,
            Cell::Bool(true),
            Cell::Int(-5),
            Cell::Float(1.5),
            Cell::Decimal(12345),
            Cell::Str("héllo".into()),
            Cell::Bytes(Cow::Owned(vec![0, 255])),
            Cell::Date(Date {
                y: 2024,
                m: 1,
                d: 2,
            }),
            Cell::DateTime(DateTime {
                date: Date { y: 1, m: 2, d: 3 },
                h: 4,
                mi: 5,
                s: 6,
                us: 7,
            }),
            Cell::Json("{}".into()),
        ];
        let mut buf = Vec::new();
        for c in &cells {
            encode(c, &mut buf);
        }
        let mut pos = 0;
        for c in &cells {
            assert_eq!(&decode(&buf, &mut pos).expect("decode"), c);
        }
        assert!(decode(&buf[..3], &mut 0).is_ok());
        assert!(decode(&[2, 1], &mut 0).is_err());
        assert!(decode(&[77], &mut 0).is_err());
    }
}

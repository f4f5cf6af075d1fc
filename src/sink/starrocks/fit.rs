//! Does a value fit the sink column? Checked before a row is sent.
//!
//! StarRocks does not fail a load for a value its column cannot hold: it filters the
//! row (over-long strings, integer and DECIMAL overflow) or, outside strict mode,
//! stores NULL. dbmazz loads with `max_filter_ratio=0` and `strict_mode=true`, so such
//! a load fails as a whole, but the error StarRocks reports names neither the key nor
//! the column reliably. This check runs while the load body is written and stops the
//! pipeline *before* the load with an error that names table, column, key and the
//! first characters of the value, and the sink column type that rejected it — so the
//! operator knows exactly which column to widen. Nothing is sent, nothing after the
//! previous checkpoint is confirmed.
//!
//! What is checked (everything else is left to StarRocks' own conversion):
//!
//! | sink column | rejected |
//! |---|---|
//! | `VARCHAR(n)`, `CHAR(n)` | values longer than `n` bytes (StarRocks counts bytes) |
//! | `TINYINT` … `BIGINT`, `LARGEINT` | integers outside the type's range, non-integers |
//! | `DECIMAL(p,s)` | more than `p - s` digits before the point, more than `s` significant digits after it (StarRocks would round) |
//! | `FLOAT`, `DOUBLE` | `NaN`, `Infinity`, `-Infinity` (not loadable from JSON) |

use super::table::SinkColumn;
use crate::source::values::PgType;

/// The limit a sink column puts on values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// No check (strings without limit, JSON, dates, booleans, …).
    Any,
    /// At most this many bytes.
    MaxBytes(usize),
    /// An integer in this range.
    Int {
        /// Smallest value.
        min: i128,
        /// Largest value.
        max: i128,
        /// Type name for messages.
        name: &'static str,
    },
    /// A DECIMAL(p,s): at most `p - s` integer digits.
    Decimal {
        /// Precision.
        p: u32,
        /// Scale.
        s: u32,
    },
    /// FLOAT / DOUBLE.
    Float,
}

/// The numbers inside the first parentheses of `varchar(10)` / `decimal(12,2)`.
fn params(column_type: &str) -> Vec<u32> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = &column_type[open + 1..];
    let inner = inner.split(')').next().unwrap_or("");
    inner
        .split(',')
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .collect()
}

impl Fit {
    /// The limit of a sink column as the catalog describes it.
    pub fn of(col: &SinkColumn) -> Fit {
        let ty = col.column_type.to_ascii_lowercase();
        let base = col.data_type.to_ascii_lowercase();
        let int = |min: i128, max: i128, name| Fit::Int { min, max, name };
        match base.as_str() {
            "varchar" | "char" => match params(&ty).first() {
                Some(&n) => Fit::MaxBytes(n as usize),
                None => Fit::Any,
            },
            // MariaDB spells BOOLEAN as tinyint(1); booleans are not integers here.
            "tinyint" if ty.starts_with("tinyint(1)") => Fit::Any,
            "tinyint" => int(i8::MIN.into(), i8::MAX.into(), "TINYINT"),
            "smallint" => int(i16::MIN.into(), i16::MAX.into(), "SMALLINT"),
            "int" | "integer" => int(i32::MIN.into(), i32::MAX.into(), "INT"),
            "bigint" => int(i64::MIN.into(), i64::MAX.into(), "BIGINT"),
            "largeint" => int(i128::MIN, i128::MAX, "LARGEINT"),
            b if b.starts_with("decimal") => match params(&ty)[..] {
                [p, s] if s <= p => Fit::Decimal { p, s },
                [p] => Fit::Decimal { p, s: 0 },
                _ => Fit::Any,
            },
            "float" | "double" => Fit::Float,
            _ => Fit::Any,
        }
    }

    /// Checks the PostgreSQL text `text` of a column of type `pg` against the limit;
    /// the error says why the value does not fit (without the value).
    pub fn check(&self, pg: &PgType, text: &str) -> Result<(), String> {
        match *self {
            Fit::Any => Ok(()),
            Fit::MaxBytes(n) => {
                let len = match pg {
                    PgType::Bytea => text.len().saturating_sub(2),
                    _ => text.len(),
                };
                if len > n {
                    Err(format!(
                        "the value is {len} bytes long and the sink column is VARCHAR({n}); widen \
                         the StarRocks column (ALTER TABLE … MODIFY COLUMN … VARCHAR(m)) and restart"
                    ))
                } else {
                    Ok(())
                }
            }
            Fit::Int { min, max, name } => {
                if matches!(pg, PgType::Bool | PgType::Array(_) | PgType::Json) {
                    return Ok(());
                }
                match parse_integer_part(text) {
                    Some(v) if (min..=max).contains(&v) => Ok(()),
                    Some(_) => Err(format!(
                        "the value is outside the range of the sink column type {name}; widen the \
                         StarRocks column (e.g. to BIGINT or LARGEINT) and restart"
                    )),
                    None => Err(format!(
                        "the value is not a number and the sink column is {name}; change the \
                         StarRocks column to a string type and restart"
                    )),
                }
            }
            Fit::Decimal { p, s } => {
                if !matches!(pg, PgType::Numeric | PgType::Integer | PgType::Text) {
                    return Ok(());
                }
                let digits = integer_digits(text).ok_or_else(|| {
                    format!(
                        "the value is not a number and the sink column is DECIMAL({p},{s}); change \
                         the StarRocks column to a string type and restart"
                    )
                })?;
                if digits > p.saturating_sub(s) as usize {
                    return Err(format!(
                        "the value has {digits} digits before the decimal point and the sink column \
                         DECIMAL({p},{s}) holds {}; widen the StarRocks column and restart",
                        p.saturating_sub(s)
                    ));
                }
                let frac = fraction_digits(text);
                if frac > s as usize {
                    return Err(format!(
                        "the value has {frac} significant digits after the decimal point and the \
                         sink column DECIMAL({p},{s}) would round it; widen the StarRocks column's \
                         scale and restart"
                    ));
                }
                Ok(())
            }
            Fit::Float => match text {
                "NaN" | "Infinity" | "-Infinity" if matches!(pg, PgType::Float) => Err(
                    "NaN and infinities cannot be loaded into a FLOAT/DOUBLE column; make the \
                     StarRocks column a VARCHAR to keep them as text, or clean the value at the \
                     source"
                        .into(),
                ),
                _ => Ok(()),
            },
        }
    }
}

/// The integer part of a decimal number (`-12.5` → -12); `None` when `text` is not
/// a plain decimal number.
fn parse_integer_part(text: &str) -> Option<i128> {
    let int = match text.split_once('.') {
        Some((i, f)) if f.bytes().all(|b| b.is_ascii_digit()) => i,
        Some(_) => return None,
        None => text,
    };
    let digits = int.strip_prefix('-').unwrap_or(int);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    int.parse::<i128>().ok().or_else(|| {
        // More digits than i128 holds: certainly out of every range.
        Some(if int.starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        })
    })
}

/// Significant digits after the decimal point (trailing zeros do not count).
fn fraction_digits(text: &str) -> usize {
    text.split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('0').len())
}

/// Significant digits before the decimal point of a decimal number.
fn integer_digits(text: &str) -> Option<usize> {
    let t = text.strip_prefix('-').unwrap_or(text);
    let int = t.split_once('.').map_or(t, |(i, _)| i);
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(int.trim_start_matches('0').len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(data_type: &str, column_type: &str) -> SinkColumn {
        SinkColumn {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            is_key: false,
            nullable: true,
            is_json: false,
        }
    }

    #[test]
    fn limits_come_from_the_column_type() {
        assert_eq!(Fit::of(&col("varchar", "varchar(5)")), Fit::MaxBytes(5));
        assert_eq!(Fit::of(&col("longtext", "longtext")), Fit::Any);
        assert_eq!(Fit::of(&col("varchar", "varchar")), Fit::Any);
        assert_eq!(
            Fit::of(&col("decimal", "decimal(12,2)")),
            Fit::Decimal { p: 12, s: 2 }
        );
        assert_eq!(
            Fit::of(&col("decimal64", "decimal64(10, 4)")),
            Fit::Decimal { p: 10, s: 4 }
        );
        assert_eq!(Fit::of(&col("tinyint", "tinyint(1)")), Fit::Any);
        assert!(matches!(
            Fit::of(&col("int", "int(11)")),
            Fit::Int { name: "INT", .. }
        ));
        assert_eq!(Fit::of(&col("double", "double")), Fit::Float);
    }

    #[test]
    fn strings_are_measured_in_bytes() {
        let f = Fit::MaxBytes(4);
        assert!(f.check(&PgType::Text, "abcd").is_ok());
        assert!(f.check(&PgType::Text, "abcde").is_err());
        // Two characters, six bytes.
        assert!(f.check(&PgType::Text, "€€").is_err());
        // bytea: hex digits without the \x prefix.
        assert!(f.check(&PgType::Bytea, "\\xdeadbeef").is_err());
        assert!(f.check(&PgType::Bytea, "\\xdead").is_ok());
        let e = f.check(&PgType::Text, "abcdef").expect_err("too long");
        assert!(e.contains("VARCHAR(4)") && e.contains("6 bytes"));
    }

    #[test]
    fn integers_must_fit_the_range() {
        let f = Fit::of(&col("int", "int(11)"));
        assert!(f.check(&PgType::Integer, "2147483647").is_ok());
        assert!(f.check(&PgType::Integer, "-2147483648").is_ok());
        assert!(f.check(&PgType::Integer, "2147483648").is_err());
        assert!(f.check(&PgType::Integer, "-9223372036854775808").is_err());
        assert!(f
            .check(
                &PgType::Numeric,
                "99999999999999999999999999999999999999999"
            )
            .is_err());
        assert!(f.check(&PgType::Numeric, "12.75").is_ok());
        assert!(f.check(&PgType::Text, "abc").is_err());
        assert!(f.check(&PgType::Bool, "t").is_ok());
    }

    #[test]
    fn decimals_must_fit_the_precision() {
        let f = Fit::Decimal { p: 5, s: 2 };
        assert!(f.check(&PgType::Numeric, "999.99").is_ok());
        assert!(f.check(&PgType::Numeric, "-999.990").is_ok());
        assert!(f.check(&PgType::Numeric, "0001.5").is_ok());
        let e = f.check(&PgType::Numeric, "1000.00").expect_err("overflow");
        assert!(e.contains("DECIMAL(5,2)") && e.contains("4 digits"));
        assert!(f.check(&PgType::Date, "2024-01-01").is_ok());
        // Trailing zeros are not precision; a third significant digit would be rounded.
        assert!(f.check(&PgType::Numeric, "1.5000").is_ok());
        let e = f.check(&PgType::Numeric, "1.125").expect_err("rounding");
        assert!(e.contains("round"));
    }

    #[test]
    fn float_columns_reject_nan_and_infinity() {
        assert!(Fit::Float.check(&PgType::Float, "NaN").is_err());
        assert!(Fit::Float.check(&PgType::Float, "-Infinity").is_err());
        assert!(Fit::Float.check(&PgType::Float, "1.5e300").is_ok());
    }
}

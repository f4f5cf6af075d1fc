//! The oracle: a PostgreSQL table and its sink copy in MariaDB, compared row by row
//! after normalising each value by its PostgreSQL type (text output on both sides;
//! numbers, timestamps and JSON compared by value, not by spelling).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;

/// One row: column name → normalised value (`None` = NULL).
pub type NormRow = BTreeMap<String, Option<String>>;

/// Column names and `information_schema` data types of a source table.
pub async fn source_columns(
    pg: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    Ok(pg
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

fn quote_pg(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_my(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Rows of a source table, normalised, in `order_by` order.
pub async fn source_rows(
    pg: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    cols: &[(String, String)],
    order_by: &[&str],
) -> Result<Vec<NormRow>, tokio_postgres::Error> {
    let select: Vec<String> = cols
        .iter()
        .map(|(n, ty)| {
            if ty == "ARRAY" {
                format!("to_jsonb({})::text", quote_pg(n))
            } else {
                format!("{}::text", quote_pg(n))
            }
        })
        .collect();
    // Qualified, so ORDER BY sorts by the column and not by its text rendering.
    let order: Vec<String> = order_by
        .iter()
        .map(|c| format!("t.{}", quote_pg(c)))
        .collect();
    let sql = format!(
        "SET TIME ZONE 'UTC'; SELECT {} FROM {}.{} AS t ORDER BY {}",
        select.join(", "),
        quote_pg(schema),
        quote_pg(table),
        order.join(", ")
    );
    let mut out = Vec::new();
    for msg in pg.simple_query(&sql).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
            let mut m = BTreeMap::new();
            for (i, (name, ty)) in cols.iter().enumerate() {
                m.insert(name.clone(), r.get(i).map(|v| normalize_pg(ty, v)));
            }
            out.push(m);
        }
    }
    Ok(out)
}

/// Rows of a sink table for the source columns `cols`, normalised, ordered;
/// `filter` is an SQL condition (e.g. excluding soft-deleted rows) or empty.
pub async fn sink_rows(
    sink: &mysql_async::Pool,
    table: &str,
    cols: &[(String, String)],
    order_by: &[&str],
    filter: &str,
) -> Result<Vec<NormRow>, mysql_async::Error> {
    let mut c = sink.get_conn().await?;
    let select: Vec<String> = cols
        .iter()
        .map(|(n, _)| format!("CAST({} AS CHAR)", quote_my(n)))
        .collect();
    let order: Vec<String> = order_by.iter().map(|c| quote_my(c)).collect();
    let filter = if filter.is_empty() {
        String::new()
    } else {
        format!("WHERE {filter}")
    };
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY {}",
        select.join(", "),
        quote_my(table),
        order.join(", ")
    );
    let rows: Vec<mysql_async::Row> = c.query(sql).await?;
    Ok(rows
        .iter()
        .map(|r| {
            cols.iter()
                .enumerate()
                .map(|(i, (n, ty))| {
                    let v: Option<String> = r.get(i).flatten();
                    (n.clone(), v.map(|v| normalize_sink(ty, &v)))
                })
                .collect()
        })
        .collect())
}

/// The condition that keeps the live (not soft-deleted) rows of a sink table.
pub const LIVE: &str = "NOT COALESCE(dbmazz_is_deleted, FALSE)";

/// `public.<table>` at the source and the live rows of its sink copy, normalised and
/// both in `order_by` order: `(source, sink)`.
pub async fn live_rows(
    pg: &tokio_postgres::Client,
    sink: &mysql_async::Pool,
    table: &str,
    order_by: &[&str],
) -> Result<(Vec<NormRow>, Vec<NormRow>), String> {
    let cols = source_columns(pg, "public", table)
        .await
        .map_err(|e| format!("columns of {table}: {e}"))?;
    let src = source_rows(pg, "public", table, &cols, order_by)
        .await
        .map_err(|e| format!("source rows of {table}: {e}"))?;
    let dst = sink_rows(sink, table, &cols, order_by, LIVE)
        .await
        .map_err(|e| format!("sink rows of {table}: {e}"))?;
    Ok((src, dst))
}

/// [`describe_diff`] of [`live_rows`]: `None` when the live sink rows equal the
/// source rows value by value.
pub async fn live_diff(
    pg: &tokio_postgres::Client,
    sink: &mysql_async::Pool,
    table: &str,
    order_by: &[&str],
) -> Result<Option<String>, String> {
    let (src, dst) = live_rows(pg, sink, table, order_by).await?;
    Ok(describe_diff(table, &src, &dst))
}

/// A readable description of the first differences, or `None` when equal.
pub fn describe_diff(table: &str, src: &[NormRow], sink: &[NormRow]) -> Option<String> {
    if src == sink {
        return None;
    }
    let mut lines = vec![format!(
        "{table}: source has {} rows, sink has {}",
        src.len(),
        sink.len()
    )];
    for i in 0..src.len().max(sink.len()) {
        let (a, b) = (src.get(i), sink.get(i));
        if a != b {
            lines.push(format!("  row {i}:\n    source {a:?}\n    sink   {b:?}"));
            if lines.len() > 6 {
                lines.push("  …".into());
                break;
            }
        }
    }
    Some(lines.join("\n"))
}

/// Normalises PostgreSQL text output (session time zone UTC).
pub fn normalize_pg(ty: &str, v: &str) -> String {
    match ty {
        "boolean" => if v == "t" || v == "true" { "1" } else { "0" }.into(),
        "numeric" => normalize_decimal(v),
        "timestamp without time zone" | "timestamp with time zone" => normalize_ts(v),
        "bytea" => v.trim_start_matches("\\x").to_owned(),
        "json" | "jsonb" | "ARRAY" => canonical_json(v),
        _ => v.to_owned(),
    }
}

/// Normalises a sink value (MariaDB text) for comparison with source type `ty`.
pub fn normalize_sink(ty: &str, v: &str) -> String {
    match ty {
        "numeric" => normalize_decimal(v),
        "timestamp without time zone" | "timestamp with time zone" => normalize_ts(v),
        "json" | "jsonb" | "ARRAY" => canonical_json(v),
        _ => v.to_owned(),
    }
}

fn trim_fraction(int: &str, frac: &str) -> String {
    let f = frac.trim_end_matches('0');
    if f.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{f}")
    }
}

fn normalize_decimal(v: &str) -> String {
    match v.split_once('.') {
        Some((i, f)) => trim_fraction(i, f),
        None => v.to_owned(),
    }
}

fn normalize_ts(v: &str) -> String {
    let v = v.trim_end_matches("+00");
    match v.split_once('.') {
        Some((a, f)) => trim_fraction(a, f),
        None => v.to_owned(),
    }
}

/// JSON text with object keys sorted and numbers spelled canonically (exactly, see
/// [`exact_number`]); text that is not JSON is kept as it is.
fn canonical_json(v: &str) -> String {
    let mut de = sonic_rs::Deserializer::from_str(v).use_rawnumber();
    match de.deserialize::<sonic_rs::Value>() {
        Ok(val) if de.end().is_ok() => canon(&val),
        _ => v.to_owned(),
    }
}

fn canon(v: &sonic_rs::Value) -> String {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    if let Some(o) = v.as_object() {
        let mut kv: Vec<(String, String)> =
            o.iter().map(|(k, v)| (k.to_owned(), canon(v))).collect();
        kv.sort();
        let inner: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        format!("{{{}}}", inner.join(","))
    } else if let Some(a) = v.as_array() {
        let inner: Vec<String> = a.iter().map(canon).collect();
        format!("[{}]", inner.join(","))
    } else if let Some(n) = v.as_raw_number() {
        exact_number(n.as_str()).unwrap_or_else(|| n.as_str().to_owned())
    } else {
        v.to_string()
    }
}

/// The value of a JSON number, spelled one way, without going through floating
/// point: `1`, `1.0`, `1e0` and `10E-1` give the same text, `0.1` and
/// `0.10000000000000001` (one `f64`) do not, nor do 2^63 and 2^63 + 1. Plain decimal
/// for exponents of reasonable size, `0.<digits>e<exponent>` beyond. `None` when `raw`
/// is not a JSON number.
pub fn exact_number(raw: &str) -> Option<String> {
    const PLAIN: i64 = 64;
    let (neg, rest) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digit(int) || !digit(frac) {
        return None;
    }
    // value = 0.<digits> × 10^point
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".into());
    }
    let leading = i64::try_from(all.len() - digits.len()).ok()?;
    let point = i64::try_from(int.len())
        .ok()?
        .checked_sub(leading)?
        .checked_add(exp)?;
    let digits = digits.trim_end_matches('0');
    let sign = if neg { "-" } else { "" };
    let n = i64::try_from(digits.len()).ok()?;
    Some(if (0..=PLAIN).contains(&point) {
        let p = usize::try_from(point).ok()?;
        if n <= point {
            format!("{sign}{digits}{}", "0".repeat(p - digits.len()))
        } else if p == 0 {
            format!("{sign}0.{digits}")
        } else {
            format!("{sign}{}.{}", &digits[..p], &digits[p..])
        }
    } else if (-PLAIN..0).contains(&point) {
        let zeros = usize::try_from(-point).ok()?;
        format!("{sign}0.{}{digits}", "0".repeat(zeros))
    } else {
        format!("{sign}0.{digits}e{point}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_compares_values_not_spelling() {
        assert_eq!(
            normalize_pg("numeric", "12.50"),
            normalize_sink("numeric", "12.5")
        );
        assert_eq!(
            normalize_pg("numeric", "3.000"),
            normalize_sink("numeric", "3")
        );
        assert_eq!(
            normalize_pg("timestamp with time zone", "2024-01-01 10:00:00+00"),
            normalize_sink("timestamp with time zone", "2024-01-01 10:00:00.000000")
        );
        assert_eq!(normalize_pg("boolean", "t"), normalize_sink("boolean", "1"));
        assert_eq!(
            normalize_pg("boolean", "true"),
            normalize_sink("boolean", "1")
        );
        assert_eq!(
            normalize_pg("boolean", "false"),
            normalize_sink("boolean", "0")
        );
        assert_eq!(
            normalize_pg("jsonb", r#"{"b": 1, "a": [1.0, "x"]}"#),
            normalize_sink("jsonb", r#"{"a":[1,"x"],"b":1}"#)
        );
        assert_ne!(normalize_pg("text", "a"), normalize_sink("text", "b"));
    }

    #[test]
    fn json_numbers_compare_exactly_not_through_floating_point() {
        let same = |a: &str, b: &str| normalize_pg("jsonb", a) == normalize_sink("jsonb", b);
        // One value, several spellings.
        assert!(same(
            "[1, 1.0, 100, 0.5, -0.0]",
            "[1.000, 1e0, 1E+2, 5e-1, 0]"
        ));
        assert!(same(r#"{"x": 12.5}"#, r#"{"x":125e-1}"#));
        // Distinct values that are one f64.
        assert!(!same("[9223372036854775808]", "[9223372036854775809]"));
        assert!(!same("[0.1]", "[0.10000000000000001]"));
        assert!(!same(
            "[123456789012345678901234567890]",
            "[123456789012345678901234567891]"
        ));
        assert!(!same("[-1]", "[1]"));
    }

    #[test]
    fn exact_number_spellings() {
        for (raw, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("0.000", "0"),
            ("12", "12"),
            ("-12.50", "-12.5"),
            ("0.05", "0.05"),
            ("1.5e3", "1500"),
            ("15e-4", "0.0015"),
            ("007", "7"),
            ("1e100", "0.1e101"),
            ("-2.5E-80", "-0.25e-79"),
        ] {
            assert_eq!(exact_number(raw).as_deref(), Some(want), "{raw}");
        }
        for bad in [
            "",
            "-",
            "1.2.3",
            "1e",
            "e5",
            "0x10",
            "1e99999999999999999999",
        ] {
            assert_eq!(exact_number(bad), None, "{bad}");
        }
    }
}

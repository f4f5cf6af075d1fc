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

fn canonical_json(v: &str) -> String {
    match sonic_rs::from_str::<sonic_rs::Value>(v) {
        Ok(val) => canon(&val),
        Err(_) => v.to_owned(),
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
    } else if let Some(f) = v.as_f64().filter(|_| v.is_number()) {
        // 1.0 and 1 are the same number.
        format!("{f}")
    } else {
        v.to_string()
    }
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
}

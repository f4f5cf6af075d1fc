//! Applying converted rows to MariaDB with Primary Key table semantics.
//!
//! All rows of a load are applied in one MariaDB transaction (the caller's):
//!
//! 1. When the outcome depends on what is stored (`merge_condition`, partial updates),
//!    the touched keys are read with `SELECT ... FOR UPDATE`.
//! 2. The rows are folded per key **in file order**: an upsert replaces the row (or,
//!    partially, the listed columns; a new key gets the defaults of the other
//!    columns, and a NOT NULL column without default filters the row); a delete
//!    removes it; with `merge_condition` an upsert applies only if its value is
//!    greater than or equal to the current one (NULL is smallest), deletes ignore it.
//! 3. The net result is written with multi-row prepared statements in key order:
//!    `DELETE` for removed keys (and before re-inserting a key deleted earlier in the
//!    load, so unlisted columns restart from their defaults), then
//!    `INSERT ... ON DUPLICATE KEY UPDATE`.
//!
//! Deletes use only the key; the other columns of a delete row are converted and
//! validated like an upsert's (a row StarRocks would reject is rejected), then ignored.
//! Tables without a primary key (Duplicate Key semantics) get plain INSERTs in order.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Transaction, Value};

use crate::convert::{compare, encode_key, from_mysql, to_mysql, Cell};
use crate::params::{LoadPlan, Op};
use crate::rows::Batch;
use crate::schema::TableSchema;
use crate::store::ident;

/// Result of folding a batch against the stored rows.
#[derive(Debug, Default)]
pub struct Applied {
    /// Rows filtered while folding (partial inserts of keys without defaults).
    pub filtered: u64,
    /// Their error-log lines.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Untouched,
    Deleted,
    Row { row: usize, fresh: bool },
}

struct KeyState {
    stored: bool,
    exists: bool,
    mc: Cell<'static>,
    fin: Final,
    first_row: usize,
}

/// A statement's values stay well under MariaDB's default `max_allowed_packet` (16 MiB).
const MAX_STMT_BYTES: usize = 4 << 20;

/// Splits `rows` into statements of at most `per_stmt` rows and about
/// [`MAX_STMT_BYTES`] of values (a single larger row gets a statement of its own).
fn byte_chunks<'r>(batch: &Batch<'_>, rows: &'r [usize], per_stmt: usize) -> Vec<&'r [usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (n, &i) in rows.iter().enumerate() {
        let size: usize = batch
            .row(i)
            .iter()
            .map(|c| match c {
                Cell::Str(s) | Cell::Json(s) => s.len() + 8,
                Cell::Bytes(b) => b.len() + 8,
                _ => 16,
            })
            .sum();
        if n > start && (n - start >= per_stmt || bytes + size > MAX_STMT_BYTES) {
            out.push(rows.get(start..n).unwrap_or_default());
            start = n;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        out.push(rows.get(start..).unwrap_or_default());
    }
    out
}

/// Placeholders per statement stay well under MariaDB's 65535.
const MAX_PARAMS: usize = 30_000;
const MAX_ROWS_PER_STMT: usize = 1000;

fn key_of(schema: &TableSchema, plan: &LoadPlan, row: &[Cell<'_>], out: &mut Vec<u8>) {
    out.clear();
    for (&pos, &kc) in plan.key_pos.iter().zip(&schema.key) {
        if let (Some(cell), Some(col)) = (row.get(pos), schema.columns.get(kc)) {
            encode_key(cell, col, out);
        }
    }
}

fn show_key(schema: &TableSchema, plan: &LoadPlan, row: &[Cell<'_>]) -> String {
    let parts: Vec<String> = plan
        .key_pos
        .iter()
        .zip(&schema.key)
        .map(|(&p, &k)| {
            let name = schema.columns.get(k).map_or("?", |c| c.name.as_str());
            format!("{name}={:?}", row.get(p).unwrap_or(&Cell::Null))
        })
        .collect();
    parts.join(", ")
}

/// Applies `batch` inside `tx`. `proceed(extra_filtered)` is asked after folding
/// whether the load may still go ahead (the `max_filter_ratio` check); when it says
/// no, nothing is written and `Ok(None)` is returned.
pub async fn apply(
    tx: &mut Transaction<'_>,
    schema: &TableSchema,
    plan: &LoadPlan,
    batch: &Batch<'_>,
    proceed: impl FnOnce(u64) -> bool,
) -> Result<Option<Applied>, mysql_async::Error> {
    let table = format!("{}.{}", ident(&schema.db), ident(&schema.table));
    if !schema.is_primary_key() {
        if !proceed(0) {
            return Ok(None);
        }
        let rows: Vec<usize> = (0..batch.len()).collect();
        insert_rows(tx, schema, plan, batch, &table, &rows).await?;
        return Ok(Some(Applied::default()));
    }

    let needs_read = plan.merge_pos.is_some() || plan.partial;
    let mut keys: HashMap<Vec<u8>, KeyState> = HashMap::with_capacity(batch.len());
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut kb = Vec::new();
    for i in 0..batch.len() {
        key_of(schema, plan, batch.row(i), &mut kb);
        if !keys.contains_key(&kb) {
            keys.insert(
                kb.clone(),
                KeyState {
                    stored: false,
                    exists: false,
                    mc: Cell::Null,
                    fin: Final::Untouched,
                    first_row: i,
                },
            );
            order.push(kb.clone());
        }
    }
    if needs_read {
        read_stored(tx, schema, plan, batch, &table, &order, &mut keys).await?;
    }

    // Fold in file order.
    let mut applied = Applied::default();
    let missing_required: Vec<&str> = if plan.partial {
        plan.unlisted
            .iter()
            .filter_map(|&c| schema.columns.get(c))
            .filter(|c| !c.has_default)
            .map(|c| c.name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    for i in 0..batch.len() {
        let row = batch.row(i);
        key_of(schema, plan, row, &mut kb);
        let Some(st) = keys.get_mut(&kb) else {
            continue;
        };
        let op = batch.ops.get(i).copied().unwrap_or(Op::Upsert);
        if op == Op::Delete {
            st.exists = false;
            st.fin = Final::Deleted;
            continue;
        }
        let incoming_mc = plan.merge_pos.and_then(|p| row.get(p));
        if let Some(inc) = incoming_mc {
            if st.exists && compare(inc, &st.mc).is_lt() {
                continue;
            }
        }
        if plan.partial {
            if st.exists {
                let fresh = matches!(st.fin, Final::Row { fresh: true, .. });
                st.fin = Final::Row { row: i, fresh };
            } else {
                if let Some(col) = missing_required.first() {
                    applied.filtered += 1;
                    applied.errors.push(format!(
                        "Error: partial update of a new key needs a value for NOT NULL column '{col}', which has no default. Row: {}",
                        show_key(schema, plan, row)
                    ));
                    continue;
                }
                st.fin = Final::Row {
                    row: i,
                    fresh: true,
                };
            }
        } else {
            st.fin = Final::Row {
                row: i,
                fresh: true,
            };
        }
        st.exists = true;
        if let Some(inc) = incoming_mc {
            st.mc = inc.clone().into_owned();
        }
    }
    if !proceed(applied.filtered) {
        return Ok(None);
    }

    // Write in key order (deterministic, and a stable lock order).
    order.sort();
    let mut deletes: Vec<usize> = Vec::new();
    let mut upserts: Vec<usize> = Vec::new();
    for k in &order {
        let Some(st) = keys.get(k) else { continue };
        match st.fin {
            Final::Untouched => {}
            Final::Deleted => {
                if st.stored || !needs_read {
                    deletes.push(st.first_row);
                }
            }
            Final::Row { row, fresh } => {
                // A partial row for a key that was deleted earlier in this load must not
                // inherit the old row's other columns.
                if plan.partial && fresh && st.stored {
                    deletes.push(st.first_row);
                }
                upserts.push(row);
            }
        }
    }
    delete_rows(tx, schema, plan, batch, &table, &deletes).await?;
    insert_rows(tx, schema, plan, batch, &table, &upserts).await?;
    Ok(Some(applied))
}

async fn read_stored(
    tx: &mut Transaction<'_>,
    schema: &TableSchema,
    plan: &LoadPlan,
    batch: &Batch<'_>,
    table: &str,
    order: &[Vec<u8>],
    keys: &mut HashMap<Vec<u8>, KeyState>,
) -> Result<(), mysql_async::Error> {
    let key_cols: Vec<String> = schema
        .key
        .iter()
        .filter_map(|&k| schema.columns.get(k))
        .map(|c| ident(&c.name))
        .collect();
    let mc_col = plan
        .merge_pos
        .and_then(|p| plan.dest.get(p))
        .and_then(|d| schema.columns.get(d.col));
    let mut select = key_cols.join(", ");
    if let Some(c) = mc_col {
        select.push_str(", ");
        select.push_str(&ident(&c.name));
    }
    let nk = key_cols.len();
    let per_stmt = (MAX_PARAMS / nk.max(1)).clamp(1, MAX_ROWS_PER_STMT);
    let mut kb = Vec::new();
    for chunk in order.chunks(per_stmt) {
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * nk);
        for k in chunk {
            let Some(st) = keys.get(k) else { continue };
            let row = batch.row(st.first_row);
            for (&p, &kc) in plan.key_pos.iter().zip(&schema.key) {
                if let (Some(cell), Some(col)) = (row.get(p), schema.columns.get(kc)) {
                    params.push(to_mysql(cell, &col.ty));
                }
            }
        }
        let sql = format!(
            "SELECT {select} FROM {table} WHERE {} FOR UPDATE",
            key_predicate(&key_cols, chunk.len())
        );
        let rows: Vec<mysql_async::Row> = tx.exec(sql, params).await?;
        for r in rows {
            let mut cells = Vec::with_capacity(nk + 1);
            for (i, &kc) in schema.key.iter().enumerate() {
                let Some(col) = schema.columns.get(kc) else {
                    continue;
                };
                let v = r.as_ref(i).cloned().unwrap_or(Value::NULL);
                cells.push(from_mysql(&v, &col.ty).map_err(stored_err)?);
            }
            kb.clear();
            for (cell, &kc) in cells.iter().zip(&schema.key) {
                if let Some(col) = schema.columns.get(kc) {
                    encode_key(cell, col, &mut kb);
                }
            }
            if let Some(st) = keys.get_mut(&kb) {
                st.stored = true;
                st.exists = true;
                if let Some(c) = mc_col {
                    let v = r.as_ref(nk).cloned().unwrap_or(Value::NULL);
                    st.mc = from_mysql(&v, &c.ty).map_err(stored_err)?;
                }
            }
        }
    }
    Ok(())
}

fn stored_err(why: String) -> mysql_async::Error {
    mysql_async::Error::Other(why.into())
}

fn key_predicate(key_cols: &[String], n: usize) -> String {
    if let [only] = key_cols {
        let marks = vec!["?"; n].join(",");
        return format!("{only} IN ({marks})");
    }
    let one = format!(
        "({})",
        key_cols
            .iter()
            .map(|c| format!("{c} = ?"))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    vec![one; n].join(" OR ")
}

async fn delete_rows(
    tx: &mut Transaction<'_>,
    schema: &TableSchema,
    plan: &LoadPlan,
    batch: &Batch<'_>,
    table: &str,
    rows: &[usize],
) -> Result<(), mysql_async::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let key_cols: Vec<String> = schema
        .key
        .iter()
        .filter_map(|&k| schema.columns.get(k))
        .map(|c| ident(&c.name))
        .collect();
    let nk = key_cols.len().max(1);
    let per_stmt = (MAX_PARAMS / nk).clamp(1, MAX_ROWS_PER_STMT);
    for chunk in rows.chunks(per_stmt) {
        let mut params = Vec::with_capacity(chunk.len() * nk);
        for &i in chunk {
            let row = batch.row(i);
            for (&p, &kc) in plan.key_pos.iter().zip(&schema.key) {
                if let (Some(cell), Some(col)) = (row.get(p), schema.columns.get(kc)) {
                    params.push(to_mysql(cell, &col.ty));
                }
            }
        }
        let sql = format!(
            "DELETE FROM {table} WHERE {}",
            key_predicate(&key_cols, chunk.len())
        );
        tx.exec_drop(sql, params).await?;
    }
    Ok(())
}

async fn insert_rows(
    tx: &mut Transaction<'_>,
    schema: &TableSchema,
    plan: &LoadPlan,
    batch: &Batch<'_>,
    table: &str,
    rows: &[usize],
) -> Result<(), mysql_async::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols: Vec<&crate::schema::Column> = plan
        .dest
        .iter()
        .filter_map(|d| schema.columns.get(d.col))
        .collect();
    let names: Vec<String> = cols.iter().map(|c| ident(&c.name)).collect();
    let mut updates: Vec<String> = cols
        .iter()
        .zip(&names)
        .filter(|(c, _)| !c.is_key)
        .map(|(_, n)| format!("{n} = VALUES({n})"))
        .collect();
    if !plan.partial {
        for &u in &plan.unlisted {
            if let Some(c) = schema.columns.get(u) {
                let n = ident(&c.name);
                updates.push(format!("{n} = DEFAULT({n})"));
            }
        }
    }
    if updates.is_empty() {
        // A table made of key columns only: nothing to update on a duplicate.
        if let Some(n) = names.first() {
            updates.push(format!("{n} = {n}"));
        }
    }
    let odku = if schema.is_primary_key() {
        format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
    } else {
        String::new()
    };
    // A partial update on a table with NOT NULL columns that have no default: MariaDB
    // (strict) rejects `INSERT (listed) ... ON DUPLICATE KEY UPDATE` before it finds the
    // duplicate. Every row reaching this point updates an existing key (new keys
    // without those columns were filtered while folding) and every value was already
    // validated, so relaxing the mode for these statements changes nothing stored.
    let relax = plan.partial
        && plan
            .unlisted
            .iter()
            .filter_map(|&c| schema.columns.get(c))
            .any(|c| !c.has_default);
    if relax {
        tx.query_drop("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
            .await?;
    }
    let width = cols.len().max(1);
    let per_stmt = (MAX_PARAMS / width).clamp(1, MAX_ROWS_PER_STMT);
    let tuple = format!("({})", vec!["?"; cols.len()].join(","));
    for chunk in byte_chunks(batch, rows, per_stmt) {
        let mut params = Vec::with_capacity(chunk.len() * width);
        for &i in chunk {
            for (cell, col) in batch.row(i).iter().zip(&cols) {
                params.push(to_mysql(cell, &col.ty));
            }
        }
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}{odku}",
            names.join(", "),
            vec![tuple.as_str(); chunk.len()].join(",")
        );
        tx.exec_drop(sql, params).await?;
    }
    if relax {
        tx.query_drop("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
            .await?;
    }
    Ok(())
}

/// Serialises a batch's rows for staging (transaction loads), in payloads of about
/// [`MAX_STMT_BYTES`] each so no single row of the staging table outgrows MariaDB's
/// packet limit.
pub fn encode_batch(batch: &Batch<'_>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut rows = 0u32;
    let flush = |body: &mut Vec<u8>, rows: &mut u32, out: &mut Vec<Vec<u8>>| {
        if *rows > 0 {
            let mut p = Vec::with_capacity(body.len() + 8);
            p.extend_from_slice(&(batch.width as u32).to_le_bytes());
            p.extend_from_slice(&rows.to_le_bytes());
            p.append(body);
            out.push(p);
            *rows = 0;
        }
    };
    for (i, op) in batch.ops.iter().enumerate() {
        body.push(u8::from(*op == Op::Delete));
        for c in batch.row(i) {
            crate::convert::encode(c, &mut body);
        }
        rows += 1;
        if body.len() >= MAX_STMT_BYTES {
            flush(&mut body, &mut rows, &mut out);
        }
    }
    flush(&mut body, &mut rows, &mut out);
    out
}

/// Appends the rows of a staged payload to `into`.
pub fn decode_batch(buf: &[u8], into: &mut Batch<'static>) -> Result<(), String> {
    let u32_at = |at: usize| -> Result<u32, String> {
        let s = buf.get(at..at + 4).ok_or("staged payload truncated")?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let width = u32_at(0)? as usize;
    let n = u32_at(4)? as usize;
    if width != into.width {
        return Err(format!(
            "staged rows have {width} columns but the transaction loads {}",
            into.width
        ));
    }
    let mut pos = 8;
    for _ in 0..n {
        let op = *buf.get(pos).ok_or("staged payload truncated")?;
        pos += 1;
        into.ops.push(if op == 1 { Op::Delete } else { Op::Upsert });
        for _ in 0..width {
            into.cells.push(crate::convert::decode(buf, &mut pos)?);
        }
    }
    Ok(())
}

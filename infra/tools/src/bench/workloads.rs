//! The end-to-end workloads: what is written to PostgreSQL, and the tables on both
//! sides.
//!
//! A [`Workload`] is data, not code paths: DDL for the source and for the sink
//! (the emulator's MariaDB dialect), statements that prepare the tables *before* the
//! replication slots exist (not measured, not decoded), and statements whose WAL
//! every consumer then reads (measured). The harness does the rest: slots,
//! interleaved runs of dbmazz and of the `pg_recvlogical` references, medians, the
//! report and the plots.
//!
//! # Adding a workload
//!
//! 1. Write a function `fn my_case(size: Size) -> Workload` below; keep `id` short
//!    (`[a-z0-9_]`, it becomes part of slot names and file names) and give its tables
//!    names no other workload uses.
//! 2. Add it to [`all`]. `make bench` measures it, `--only my_case` runs it alone, and
//!    the quick suite (`make test`) runs it at its `Size::Quick` size.
//!
//! Variants of the *same* WAL read differently (tracing on/off, memory budgets) are a
//! workload with different `dbmazz_env`; a curve over sizes (peak RSS of a 0.1 M / 1 M /
//! 5 M-row transaction) is the same function called with several sizes, each with its
//! own `id` (see [`big_txn`]); the report plots every workload with a `curve` entry
//! against its x value.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sizes: the full benchmark, or a tiny one for the test suite.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Size {
    /// `make bench`.
    Full,
    /// `make test`: every code path, seconds of work.
    Quick,
}

impl Size {
    fn pick(self, full: u64, quick: u64) -> u64 {
        match self {
            Size::Full => full,
            Size::Quick => quick,
        }
    }
}

/// Replica identity of the workload's tables, set by the harness before the
/// measured WAL is written (dbmazz then runs with `DBMAZZ_REPLICA_IDENTITY=keep`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// `REPLICA IDENTITY FULL`: what `DBMAZZ_REPLICA_IDENTITY=full` (the default) sets.
    Full,
    /// `REPLICA IDENTITY DEFAULT` (the primary key).
    Default,
}

impl Identity {
    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Identity::Full => "FULL",
            Identity::Default => "DEFAULT (primary key)",
        }
    }
}

/// A point of a curve: workloads sharing `name` are plotted together against `x`.
#[derive(Clone, Debug)]
pub struct CurvePoint {
    /// Curve name (also the plot's file name).
    pub name: &'static str,
    /// Label of the x axis.
    pub x_label: &'static str,
    /// This workload's x value.
    pub x: f64,
}

/// Statements yielded lazily (a 500,000-update workload is not built in memory).
pub type Statements = Box<dyn Iterator<Item = String> + Send>;

/// One end-to-end workload.
pub struct Workload {
    /// Short id, `[a-z0-9_]`.
    pub id: &'static str,
    /// What it is, for people.
    pub title: String,
    /// Source tables, `schema.table`.
    pub tables: Vec<String>,
    /// Source DDL (tables), run first.
    pub source_ddl: String,
    /// Sink DDL in the emulator's MariaDB dialect (audit columns included), one
    /// statement per table.
    pub sink_ddl: Vec<String>,
    /// Replica identity set on every table before the measured statements.
    pub identity: Identity,
    /// Statements run before the slots exist: their WAL is not measured.
    pub prepare: Statements,
    /// The measured statements (each may hold several transactions).
    pub statements: Statements,
    /// Row changes (inserts + updates + deletes) the statements make.
    pub row_changes: u64,
    /// Rows the sink must receive, when the workload never changes a key twice
    /// within a few thousand changes (dbmazz folds changes to one key within a batch).
    pub sink_rows: Option<u64>,
    /// Extra environment for dbmazz.
    pub dbmazz_env: Vec<(String, String)>,
    /// Part of a curve.
    pub curve: Option<CurvePoint>,
}

/// Every workload of the benchmark, in run order.
pub fn all(size: Size) -> Vec<Workload> {
    vec![
        small_txns(size),
        big_txn("big_txn", size.pick(1_000_000, 10_000)),
        toast_updates(size, Identity::Full),
        toast_updates(size, Identity::Default),
        mixed(size),
    ]
}

/// Workload ids of [`all`] (for `--only` and its error message).
pub fn ids() -> Vec<&'static str> {
    all_ids(&all(Size::Quick))
}

fn all_ids(w: &[Workload]) -> Vec<&'static str> {
    w.iter().map(|w| w.id).collect()
}

/// The four audit columns dbmazz adds to every sink table.
const AUDIT: &str = "dbmazz_op_type TINYINT, dbmazz_is_deleted BOOLEAN, \
                     dbmazz_synced_at DATETIME(6), dbmazz_cdc_version BIGINT";

/// A sink table with `columns` and the audit columns.
pub fn sink_table(name: &str, columns: &str) -> String {
    format!("CREATE TABLE {name} ({columns}, {AUDIT})")
}

/// Statements of `count` transactions, `per_call` per round trip, each built by `txn(i)`.
fn grouped(count: u64, per_call: u64, txn: impl Fn(u64) -> String + Send + 'static) -> Statements {
    let per_call = per_call.max(1);
    Box::new((0..count.div_ceil(per_call)).map(move |c| {
        let mut s = String::new();
        for i in c * per_call..((c + 1) * per_call).min(count) {
            s.push_str("BEGIN;");
            s.push_str(&txn(i));
            s.push_str("COMMIT;");
        }
        s
    }))
}

/// Rows of the small-transaction and latency tables.
pub const SMALL_COLUMNS_PG: &str = "id bigint PRIMARY KEY, k integer NOT NULL, v text, \
                                    n numeric(12,2), ts timestamptz NOT NULL DEFAULT now()";
/// The same table in the sink.
pub const SMALL_COLUMNS_SINK: &str = "id BIGINT PRIMARY KEY, k INT NOT NULL, v LONGTEXT, \
                                      n DECIMAL(12,2), ts DATETIME(6) NOT NULL";

/// One INSERT of rows `first..=last` into a table with [`SMALL_COLUMNS_PG`].
pub fn small_insert(table: &str, first: u64, last: u64) -> String {
    format!(
        "INSERT INTO {table} (id, k, v, n) SELECT g, g % 1000, 'value ' || g, g / 100.0 \
         FROM generate_series({first}, {last}) g;"
    )
}

/// (a) Many small transactions: 100,000 × 10 inserted rows.
pub fn small_txns(size: Size) -> Workload {
    const ROWS_PER_TXN: u64 = 10;
    let txns = size.pick(100_000, 500);
    Workload {
        id: "small_txns",
        title: format!("{} txns × {ROWS_PER_TXN} rows (INSERT)", thousands(txns)),
        tables: vec!["public.w_small".into()],
        source_ddl: format!("CREATE TABLE w_small ({SMALL_COLUMNS_PG});"),
        sink_ddl: vec![sink_table("w_small", SMALL_COLUMNS_SINK)],
        identity: Identity::Full,
        prepare: Box::new(std::iter::empty()),
        statements: grouped(txns, 100, |i| {
            small_insert("w_small", i * ROWS_PER_TXN + 1, (i + 1) * ROWS_PER_TXN)
        }),
        row_changes: txns * ROWS_PER_TXN,
        sink_rows: Some(txns * ROWS_PER_TXN),
        dbmazz_env: Vec::new(),
        curve: None,
    }
}

/// (b) One transaction of `rows` inserted rows. Called with several sizes (and ids)
/// it gives the peak-RSS-versus-transaction-size curve (`curve` = `big_txn`), e.g.
/// `big_txn("big_txn_5m", 5_000_000)`.
pub fn big_txn(id: &'static str, rows: u64) -> Workload {
    Workload {
        id,
        title: format!("1 txn × {} rows (INSERT)", thousands(rows)),
        tables: vec![format!("public.w_{id}")],
        source_ddl: format!("CREATE TABLE w_{id} ({SMALL_COLUMNS_PG});"),
        sink_ddl: vec![sink_table(&format!("w_{id}"), SMALL_COLUMNS_SINK)],
        identity: Identity::Full,
        prepare: Box::new(std::iter::empty()),
        statements: Box::new(std::iter::once(format!(
            "BEGIN;{}COMMIT;",
            small_insert(&format!("w_{id}"), 1, rows)
        ))),
        row_changes: rows,
        sink_rows: Some(rows),
        dbmazz_env: Vec::new(),
        curve: Some(CurvePoint {
            name: "big_txn",
            x_label: "rows in the transaction",
            x: rows as f64,
        }),
    }
}

/// Bytes of the TOASTed column of the UPDATE workload.
pub const TOAST_BYTES: u64 = 4000;

/// (c) Single-row UPDATEs of a wide row whose TOASTed column does not change.
///
/// The table holds `keys` rows with a 4,000-byte `doc` stored out of line
/// (`STORAGE EXTERNAL`: no compression, so the value really is TOASTed); the
/// measured statements sweep the keys `passes` times, one UPDATE per transaction
/// touching `counter` and `updated_at` only. A key comes back only after `keys`
/// other updates, far more than one batch holds, so nothing is folded and every
/// UPDATE reaches the sink.
pub fn toast_updates(size: Size, identity: Identity) -> Workload {
    let keys = size.pick(50_000, 300);
    let passes = size.pick(10, 4);
    let (id, table) = match identity {
        Identity::Full => ("toast_updates", "w_toast_full"),
        Identity::Default => ("toast_updates_pk", "w_toast_pk"),
    };
    let updates = keys * passes;
    let prepare_table = table.to_owned();
    let prepare = Box::new((0..keys.div_ceil(2_000)).map(move |c| {
        let (first, last) = (c * 2_000 + 1, ((c + 1) * 2_000).min(keys));
        format!(
            "INSERT INTO {prepare_table} (id, counter, status, amount, updated_at, doc) \
             SELECT g, 0, 'new', g / 7.0, now(), \
             (SELECT string_agg(md5(g::text || '/' || i::text), '') \
              FROM generate_series(1, {chunks}) i) \
             FROM generate_series({first}, {last}) g;",
            chunks = TOAST_BYTES / 32
        )
    }));
    let upd_table = table.to_owned();
    Workload {
        id,
        title: format!(
            "{} single-row UPDATEs, unchanged {} B TOAST, identity {}",
            thousands(updates),
            thousands(TOAST_BYTES),
            match identity {
                Identity::Full => "FULL",
                Identity::Default => "DEFAULT",
            }
        ),
        tables: vec![format!("public.{table}")],
        source_ddl: format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, counter integer NOT NULL, \
             status text NOT NULL, amount numeric(14,2), updated_at timestamptz NOT NULL, \
             doc text NOT NULL); \
             ALTER TABLE {table} ALTER COLUMN doc SET STORAGE EXTERNAL;"
        ),
        sink_ddl: vec![sink_table(
            table,
            "id BIGINT PRIMARY KEY, counter INT NOT NULL, status LONGTEXT NOT NULL, \
             amount DECIMAL(14,2), updated_at DATETIME(6) NOT NULL, doc LONGTEXT NOT NULL",
        )],
        identity,
        prepare,
        statements: grouped(updates, 200, move |i| {
            format!(
                "UPDATE {upd_table} SET counter = counter + 1, updated_at = now() \
                 WHERE id = {};",
                i % keys + 1
            )
        }),
        row_changes: updates,
        sink_rows: (size == Size::Full).then_some(updates),
        dbmazz_env: Vec::new(),
        curve: None,
    }
}

/// (d) Mixed inserts, updates and deletes on three tables, in transactions of 1 to 9
/// changes: new orders with their items, status changes, customer edits, new
/// customers, and deletes of whole orders. Generated from a fixed seed, with every
/// key tracked, so the number of row changes is exact.
pub fn mixed(size: Size) -> Workload {
    let txns = size.pick(60_000, 600);
    let customers = size.pick(20_000, 200);
    let prepare = Box::new(std::iter::once(format!(
        "INSERT INTO w_mx_customers (id, name, email, country, vip) \
         SELECT g, 'Customer ' || g, 'c' || g || '@example.com', \
         (ARRAY['DE','FR','US','BR','JP'])[1 + g % 5], g % 7 = 0 \
         FROM generate_series(1, {customers}) g;"
    )));
    let (statements, row_changes) = mixed_statements(txns, customers);
    Workload {
        id: "mixed",
        title: format!(
            "{} mixed txns on 3 tables (INSERT/UPDATE/DELETE)",
            thousands(txns)
        ),
        tables: vec![
            "public.w_mx_customers".into(),
            "public.w_mx_orders".into(),
            "public.w_mx_items".into(),
        ],
        source_ddl: "CREATE TABLE w_mx_customers (id bigint PRIMARY KEY, name text NOT NULL, \
             email text NOT NULL, country char(2), vip boolean NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE w_mx_orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, \
             status text NOT NULL, total numeric(14,2) NOT NULL, note text, \
             placed_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE w_mx_items (order_id bigint NOT NULL, line integer NOT NULL, \
             product integer NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL, \
             PRIMARY KEY (order_id, line));"
            .into(),
        sink_ddl: vec![
            sink_table(
                "w_mx_customers",
                "id BIGINT PRIMARY KEY, name LONGTEXT NOT NULL, email LONGTEXT NOT NULL, \
                 country VARCHAR(8), vip BOOLEAN NOT NULL, created_at DATETIME(6) NOT NULL",
            ),
            sink_table(
                "w_mx_orders",
                "id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, status VARCHAR(64) NOT NULL, \
                 total DECIMAL(14,2) NOT NULL, note LONGTEXT, placed_at DATETIME(6) NOT NULL",
            ),
            sink_table(
                "w_mx_items",
                "order_id BIGINT NOT NULL, line INT NOT NULL, product INT NOT NULL, \
                 qty INT NOT NULL, price DECIMAL(12,2) NOT NULL, PRIMARY KEY (order_id, line)",
            ),
        ],
        identity: Identity::Full,
        prepare,
        statements: Box::new(statements.into_iter()),
        row_changes,
        sink_rows: None,
        dbmazz_env: Vec::new(),
        curve: None,
    }
}

/// The mixed workload's statements (100 transactions per string) and its row changes.
fn mixed_statements(txns: u64, customers: u64) -> (Vec<String>, u64) {
    let mut rng = StdRng::seed_from_u64(0x5eed_d8a2);
    let mut live: Vec<(u64, u64)> = Vec::new(); // (order id, items)
    let (mut next_order, mut next_customer) = (1u64, customers + 1);
    let mut changes = 0u64;
    let mut out = Vec::new();
    let mut s = String::new();
    for t in 0..txns {
        s.push_str("BEGIN;");
        let dice = rng.random_range(0..100);
        if dice < 40 || live.is_empty() {
            let (id, items) = (next_order, rng.random_range(1..=4u64));
            next_order += 1;
            let customer = rng.random_range(1..next_customer);
            let _ = write!(
                s,
                "INSERT INTO w_mx_orders (id, customer_id, status, total, note) \
                 VALUES ({id}, {customer}, 'new', 0, NULL);"
            );
            let mut total = 0u64;
            for line in 1..=items {
                let (product, qty) = (rng.random_range(1..=500u64), rng.random_range(1..=5u64));
                let cents = 99 + product * 13;
                total += qty * cents;
                let _ = write!(
                    s,
                    "INSERT INTO w_mx_items VALUES ({id}, {line}, {product}, {qty}, {}.{:02});",
                    cents / 100,
                    cents % 100
                );
            }
            let _ = write!(
                s,
                "UPDATE w_mx_orders SET total = {}.{:02} WHERE id = {id};",
                total / 100,
                total % 100
            );
            live.push((id, items));
            changes += 2 + items;
        } else if dice < 65 {
            let (id, _) = live[rng.random_range(0..live.len())];
            let status = ["paid", "shipped", "delivered", "returned"][rng.random_range(0..4)];
            let _ = write!(
                s,
                "UPDATE w_mx_orders SET status = '{status}', note = 'changed in txn {t}' \
                 WHERE id = {id};"
            );
            changes += 1;
        } else if dice < 80 {
            let c = rng.random_range(1..next_customer);
            let _ = write!(
                s,
                "UPDATE w_mx_customers SET vip = NOT vip, email = 'c{c}.{t}@example.com' \
                 WHERE id = {c};"
            );
            changes += 1;
        } else if dice < 90 {
            let c = next_customer;
            next_customer += 1;
            let _ = write!(
                s,
                "INSERT INTO w_mx_customers (id, name, email, country, vip) \
                 VALUES ({c}, 'Customer {c}', 'c{c}@example.com', 'DE', false);"
            );
            changes += 1;
        } else {
            let (id, items) = live.swap_remove(rng.random_range(0..live.len()));
            let _ = write!(
                s,
                "DELETE FROM w_mx_items WHERE order_id = {id};\
                 DELETE FROM w_mx_orders WHERE id = {id};"
            );
            changes += 1 + items;
        }
        s.push_str("COMMIT;");
        if t % 100 == 99 {
            out.push(std::mem::take(&mut s));
        }
    }
    if !s.is_empty() {
        out.push(s);
    }
    (out, changes)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_usable_in_slot_names() {
        let ids = ids();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "{ids:?}");
        for id in ids {
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{id}"
            );
        }
    }

    #[test]
    fn grouped_statements_hold_every_transaction_once() {
        let all: String = grouped(7, 3, |i| format!("X{i};")).collect();
        assert_eq!(all.matches("BEGIN;").count(), 7);
        assert_eq!(
            all,
            "BEGIN;X0;COMMIT;BEGIN;X1;COMMIT;BEGIN;X2;COMMIT;BEGIN;X3;COMMIT;\
             BEGIN;X4;COMMIT;BEGIN;X5;COMMIT;BEGIN;X6;COMMIT;"
        );
    }

    #[test]
    fn the_mixed_workload_counts_its_changes_and_is_deterministic() {
        let (a, n) = mixed_statements(500, 50);
        let (b, m) = mixed_statements(500, 50);
        assert_eq!((a.clone(), n), (b, m));
        let text = a.concat();
        assert_eq!(text.matches("BEGIN;").count(), 500);
        // Every transaction makes at least one change; new orders make 3 to 6.
        assert!((500..=500 * 6).contains(&n), "{n}");
        assert!(text.contains("DELETE FROM w_mx_orders"));
        assert!(text.contains("UPDATE w_mx_customers"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}

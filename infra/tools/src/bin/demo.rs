//! `make demo`: dbmazz end to end on a throw-away setup.
//!
//! Starts a private PostgreSQL (wal_level=logical), MariaDB and the StarRocks Stream
//! Load emulator, creates a small shop schema on both sides, runs `dbmazz run`,
//! writes a mixed insert/update/delete workload for `DEMO_SECONDS` (default 60)
//! while printing live progress, drains dbmazz with SIGTERM, and compares every
//! table row by row. Everything is removed afterwards, also on Ctrl-C.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbmazz_testkit::{compare, PgConfig};
use dbmazz_tools::{human_bytes, spawn_dbmazz, Error, Stack};
use mysql_async::prelude::Queryable;
use rand::Rng;

const SLOT: &str = "dbmazz_demo";
const TABLES: [(&str, &[&str]); 4] = [
    ("customers", &["id"]),
    ("products", &["id"]),
    ("orders", &["id"]),
    ("order_items", &["order_id", "line"]),
];

const SOURCE_DDL: &str = "
CREATE TABLE customers (
    id bigserial PRIMARY KEY, name text NOT NULL, email text NOT NULL,
    country char(2), vip boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(), profile jsonb);
CREATE TABLE products (
    id integer PRIMARY KEY, sku varchar(32) NOT NULL, title text NOT NULL,
    price numeric(12,2) NOT NULL, tags text[], updated_at timestamp NOT NULL DEFAULT now());
CREATE TABLE orders (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL,
    total numeric(14,2) NOT NULL DEFAULT 0, placed_at timestamptz NOT NULL DEFAULT now(),
    note text);
CREATE TABLE order_items (
    order_id bigint NOT NULL, line integer NOT NULL, product_id integer NOT NULL,
    qty integer NOT NULL, unit_price numeric(12,2) NOT NULL, PRIMARY KEY (order_id, line));
INSERT INTO products
SELECT g, 'SKU-' || g, 'Product ' || g, (g % 97) + 0.99, ARRAY['tag' || (g % 5), 'demo']
FROM generate_series(1, 200) g;";

// StarRocks Primary Key tables, written in the emulator's (MariaDB's) dialect.
const SINK_DDL: &str = "
CREATE TABLE customers (id BIGINT PRIMARY KEY, name LONGTEXT NOT NULL, email LONGTEXT NOT NULL,
    country VARCHAR(8), vip BOOLEAN NOT NULL, created_at DATETIME(6) NOT NULL, profile JSON);
CREATE TABLE products (id INT PRIMARY KEY, sku VARCHAR(128) NOT NULL, title LONGTEXT NOT NULL,
    price DECIMAL(12,2) NOT NULL, tags JSON, updated_at DATETIME(6) NOT NULL);
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, status VARCHAR(64) NOT NULL,
    total DECIMAL(14,2) NOT NULL, placed_at DATETIME(6) NOT NULL, note LONGTEXT);
CREATE TABLE order_items (order_id BIGINT NOT NULL, line INT NOT NULL, product_id INT NOT NULL,
    qty INT NOT NULL, unit_price DECIMAL(12,2) NOT NULL, PRIMARY KEY (order_id, line));";

/// One random transaction of the shop workload; returns the number of row changes.
async fn shop_txn(
    c: &tokio_postgres::Client,
    rng: &mut rand::rngs::StdRng,
) -> Result<u64, tokio_postgres::Error> {
    let dice = rng.random_range(0..100);
    let sql = if dice < 45 {
        let items = rng.random_range(1..=4);
        let mut s = String::from("BEGIN;");
        if rng.random_bool(0.3) {
            let n = rng.random_range(0..1_000_000);
            s.push_str(&format!(
                "INSERT INTO customers (name, email, country, vip, profile) VALUES \
                 ('Customer {n}', 'c{n}@example.com', '{}', {}, '{{\"tier\": {}, \"tags\": [\"a\", \"b\"]}}');",
                ["DE", "FR", "US", "BR", "JP"][n % 5],
                n % 7 == 0,
                n % 3
            ));
        }
        s.push_str(
            "INSERT INTO orders (customer_id, status, note) \
             SELECT coalesce(max(id), 0), 'new', NULL FROM customers;",
        );
        for line in 1..=items {
            let p = rng.random_range(1..=200);
            let q = rng.random_range(1..=5);
            s.push_str(&format!(
                "INSERT INTO order_items SELECT currval('orders_id_seq'), {line}, id, {q}, price \
                 FROM products WHERE id = {p};"
            ));
        }
        s.push_str(
            "UPDATE orders SET total = (SELECT coalesce(sum(qty * unit_price), 0) FROM order_items \
             WHERE order_id = currval('orders_id_seq')) WHERE id = currval('orders_id_seq');COMMIT;",
        );
        (s, 3 + 2 * items as u64)
    } else if dice < 75 {
        let status = ["paid", "shipped", "delivered", "returned"][rng.random_range(0..4)];
        (
            format!(
                "UPDATE orders SET status = '{status}', note = 'updated ' || now()::text \
                 WHERE id = (SELECT id FROM orders WHERE id >= (SELECT (random() * max(id))::bigint \
                 FROM orders) ORDER BY id LIMIT 1)"
            ),
            1,
        )
    } else if dice < 85 {
        let p = rng.random_range(1..=200);
        (
            format!("UPDATE products SET price = price + 1, updated_at = now() WHERE id = {p}"),
            1,
        )
    } else if dice < 93 {
        (
            "UPDATE customers SET vip = NOT vip, profile = jsonb_set(coalesce(profile, '{}'), '{visits}', \
             to_jsonb(coalesce((profile->>'visits')::int, 0) + 1)) \
             WHERE id = (SELECT id FROM customers WHERE id >= (SELECT (random() * max(id))::bigint \
             FROM customers) ORDER BY id LIMIT 1)"
                .to_owned(),
            1,
        )
    } else {
        (
            "WITH o AS (SELECT id FROM orders ORDER BY id LIMIT 1), \
             d AS (DELETE FROM order_items WHERE order_id IN (SELECT id FROM o)) \
             DELETE FROM orders WHERE id IN (SELECT id FROM o)"
                .to_owned(),
            3,
        )
    };
    c.batch_execute(&sql.0).await?;
    Ok(sql.1)
}

async fn sink_rows(pool: &mysql_async::Pool) -> u64 {
    let Ok(mut c) = pool.get_conn().await else {
        return 0;
    };
    let mut n = 0;
    for (t, _) in TABLES {
        let q = format!("SELECT COUNT(*) FROM `{t}`");
        n += c.query_first::<u64, _>(q).await.ok().flatten().unwrap_or(0);
    }
    n
}

async fn demo(interrupted: Arc<AtomicBool>) -> Result<bool, Error> {
    let seconds: u64 = std::env::var("DEMO_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("dbmazz demo: PostgreSQL → dbmazz → StarRocks Stream Load (emulator on MariaDB)\n");
    print!("starting a throw-away PostgreSQL, MariaDB and the StarRocks emulator… ");
    std::io::stdout().flush()?;
    // An idle walsender reports its position in keepalives every wal_sender_timeout/2;
    // a shorter timeout lets the final catch-up check see the slot confirmed sooner.
    let stack = Stack::start(
        PgConfig::default().setting("wal_sender_timeout", "10s"),
        false,
    )
    .await?;
    println!("ok");
    let pg = stack.pg().await?;
    pg.batch_execute(SOURCE_DDL).await?;
    let sink = stack.sink();
    sink.get_conn().await?.query_drop(SINK_DDL).await?;
    println!("schema: customers, products, orders, order_items (on both sides)");

    let tables = TABLES.map(|(t, _)| format!("public.{t}")).join(",");
    let env = stack.dbmazz_env(
        &tables,
        SLOT,
        &[
            ("FLUSH_INTERVAL_MS", "200".into()),
            ("DBMAZZ_LOG_FORMAT", "human".into()),
        ],
    );
    let mut dbmazz = spawn_dbmazz(&env)?;
    println!("dbmazz run started (pid {})", dbmazz.pid());
    // Wait for setup: the slot appears, the sink gets its audit columns.
    let start = Instant::now();
    while stack.slot_lag(&pg, SLOT).await?.is_none() {
        if let Some(s) = dbmazz.try_status() {
            return Err(format!("dbmazz exited during setup ({s}):\n{}", dbmazz.log()).into());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("dbmazz did not finish setup:\n{}", dbmazz.log()).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The initial products were written before the slot existed; touch them so
    // they are part of the stream too.
    pg.batch_execute("UPDATE products SET updated_at = now()")
        .await?;

    println!("writing a mixed workload for {seconds} s (Ctrl-C stops early)…\n");
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let client = stack.pg().await?;
        let (written, stop) = (written.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(42 + w);
            while !stop.load(Ordering::Relaxed) {
                match shop_txn(&client, &mut rng).await {
                    Ok(n) => {
                        written.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
    }
    let began = Instant::now();
    let mut last = (Instant::now(), 0u64);
    while began.elapsed() < Duration::from_secs(seconds) && !interrupted.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let w = written.load(Ordering::Relaxed);
        let rate = (w - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), w);
        let lag = stack.slot_lag(&pg, SLOT).await?.unwrap_or(0);
        let rows = sink_rows(&sink).await;
        print!(
            "\r  {:>3} s  changes written {:>8} ({:>6.0}/s)   sink rows {:>7}   slot lag {:>9}   ",
            began.elapsed().as_secs(),
            w,
            rate,
            rows,
            human_bytes(u64::try_from(lag).unwrap_or(0))
        );
        std::io::stdout().flush()?;
        if let Some(s) = dbmazz.try_status() {
            return Err(format!("\ndbmazz exited unexpectedly ({s}):\n{}", dbmazz.log()).into());
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await??;
    }
    let total = written.load(Ordering::Relaxed);
    println!("\n\nworkload done: {total} row changes. Waiting for dbmazz to catch up…");
    // Everything written so far lies below this position; once dbmazz has confirmed
    // it, every transaction of the workload is loaded and checkpointed (the slot is
    // only ever confirmed up to a checkpoint). A drain before that would stop reading
    // and leave the rest for the next start.
    let target: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let catch_up = Instant::now();
    loop {
        if dbmazz_tools::confirmed_lsn(&pg, SLOT).await? >= dbmazz_tools::parse_lsn(&target)
            || interrupted.load(Ordering::Relaxed)
        {
            break;
        }
        if catch_up.elapsed() > Duration::from_secs(180) {
            return Err(format!(
                "dbmazz did not confirm {target} within 3 minutes:\n{}",
                dbmazz.log()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "caught up in {:.1} s; stopping dbmazz with SIGTERM (drain)…",
        catch_up.elapsed().as_secs_f64()
    );
    dbmazz.sigterm();
    match dbmazz.wait_exit(Duration::from_secs(60)) {
        Some(s) if s.success() => println!("dbmazz drained and exited 0"),
        other => {
            return Err(
                format!("dbmazz did not exit cleanly ({other:?}):\n{}", dbmazz.log()).into(),
            )
        }
    }

    println!("\ncomparing source and sink row by row:");
    let mut ok = true;
    for (t, key) in TABLES {
        let cols = compare::source_columns(&pg, "public", t).await?;
        let src = compare::source_rows(&pg, "public", t, &cols, key).await?;
        let dst = compare::sink_rows(
            &sink,
            t,
            &cols,
            key,
            "NOT COALESCE(dbmazz_is_deleted, FALSE)",
        )
        .await?;
        match compare::describe_diff(t, &src, &dst) {
            None => println!("  {t:<12} {:>7} rows  identical", src.len()),
            Some(d) => {
                ok = false;
                println!("{d}");
            }
        }
    }
    let _ = sink.disconnect().await;
    if !ok {
        // Keep what dbmazz said for whoever investigates the difference.
        let path = std::env::temp_dir().join(format!("dbmazz-demo-{}.log", std::process::id()));
        match std::fs::write(&path, dbmazz.log()) {
            Ok(()) => println!("\ndbmazz's log (last 64 KiB): {}", path.display()),
            Err(e) => println!("\ncannot save dbmazz's log to {}: {e}", path.display()),
        }
    }
    Ok(ok)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: cleaning up…");
            flag.store(true, Ordering::Relaxed);
        }
    });
    match demo(interrupted.clone()).await {
        Ok(true) if !interrupted.load(Ordering::Relaxed) => {
            println!("\nsource and sink match.");
            std::process::ExitCode::SUCCESS
        }
        Ok(true) => {
            println!("\nstopped early; what was written matches.");
            std::process::ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nsource and sink DIFFER (see above).");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

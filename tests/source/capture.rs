//! Captures real pgoutput streams from a throw-away cluster into the corpus files
//! used by the parser benchmark (`benches/data/insert_heavy.pgout`) and the fuzz
//! seed corpus (`fuzz/corpus/pgoutput/`). Ignored in the normal suite; regenerate
//! with `cargo test -p dbmazz --test source capture:: -- --ignored --nocapture`.
//!
//! File format of a capture: for each XLogData payload, a 4-byte big-endian length
//! and the payload, in stream order (the parser's stream-block state depends on it).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::fixture::Fixture;
use dbmazz::lsn::Lsn;
use dbmazz::postgres::ConnParams;
use dbmazz::source::connection::ReplicationConnection;
use dbmazz::source::{SourceConfig, Streaming};
use dbmazz_testkit::PgConfig;

/// Streams from `start` until `target` XLogData payloads arrived or the stream is
/// idle for two seconds.
async fn capture(cfg: &SourceConfig, target: usize) -> Vec<Vec<u8>> {
    let params = ConnParams::parse(cfg.url.expose()).expect("url");
    let mut conn = ReplicationConnection::connect(
        &params,
        &cfg.slot,
        &cfg.publication,
        Duration::from_secs(10),
    )
    .await
    .expect("connect");
    conn.start_replication(cfg, Lsn::ZERO).await.expect("start");
    let mut out = Vec::new();
    loop {
        while let Some((tag, body)) = conn.try_frame().expect("frame") {
            if tag == b'd' && body.first() == Some(&b'w') {
                out.push(body[25..].to_vec());
            }
        }
        if out.len() >= target {
            return out;
        }
        match tokio::time::timeout(Duration::from_secs(2), conn.fill()).await {
            Ok(r) => r.expect("read"),
            Err(_) => return out,
        }
    }
}

fn write_capture(path: &Path, frames: &[Vec<u8>]) {
    let mut buf = Vec::new();
    for f in frames {
        buf.extend_from_slice(&(f.len() as u32).to_be_bytes());
        buf.extend_from_slice(f);
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, buf).expect("write capture");
}

#[tokio::test]
#[ignore = "regenerates the checked-in corpora"]
async fn capture_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    // 1. Insert-heavy stream for the benchmark: an orders-like table, 1000-row
    //    transactions, the mix of types a typical OLTP table has.
    let fx = Fixture::new(
        PgConfig::default(),
        "CREATE TABLE orders (
            id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
            amount numeric(12,2) NOT NULL, currency char(3) NOT NULL, paid bool NOT NULL,
            created_at timestamptz NOT NULL, note varchar(200), attrs jsonb)",
        false,
    );
    for batch in 0..24 {
        fx.sql(&format!(
            "INSERT INTO orders SELECT g, (g * 7919) % 100000, (ARRAY['new','paid','shipped','cancelled'])[g % 4 + 1],
                    round((random() * 10000)::numeric, 2), 'EUR', g % 3 = 0,
                    now() - (g || ' seconds')::interval,
                    CASE WHEN g % 5 = 0 THEN NULL ELSE 'note for order ' || g || ' ünïcode' END,
                    jsonb_build_object('src', 'web', 'items', g % 9)
             FROM generate_series({} * 1000 + 1, {} * 1000 + 1000) g",
            batch, batch
        ));
    }
    let frames = capture(&fx.config(), 24 * 1002).await;
    assert!(frames.len() >= 24 * 1002, "captured {}", frames.len());
    write_capture(&root.join("benches/data/insert_heavy.pgout"), &frames);
    println!("insert-heavy: {} messages", frames.len());

    // 2. Every message kind for the fuzz seeds.
    let fx = Fixture::new(
        PgConfig::default().setting("logical_decoding_work_mem", "64kB"),
        "CREATE TYPE mood AS ENUM ('a', 'b');
         CREATE TABLE k (id int PRIMARY KEY, v text, big text, m mood, arr int[], j jsonb);
         ALTER TABLE k ALTER COLUMN big SET STORAGE EXTERNAL;
         CREATE TABLE f (id int PRIMARY KEY, v text); ALTER TABLE f REPLICA IDENTITY FULL;",
        true,
    );
    let mut cfg = fx.config();
    cfg.streaming = Streaming::On;
    cfg.messages = true;
    cfg.two_phase = true;
    fx.sql("INSERT INTO k VALUES (1, 'x', repeat(md5('y'), 500), 'a', '{1,NULL}', '{\"a\":1}'), (2, NULL, NULL, NULL, NULL, NULL)");
    fx.sql("INSERT INTO f VALUES (1, 'one')");
    fx.sql("UPDATE k SET v = 'y' WHERE id = 1");
    fx.sql("UPDATE k SET id = 3 WHERE id = 2");
    fx.sql("UPDATE f SET v = 'uno'");
    fx.sql("DELETE FROM k WHERE id = 3");
    fx.sql("DELETE FROM f");
    fx.sql("TRUNCATE k, f RESTART IDENTITY");
    fx.sql("SELECT pg_logical_emit_message(true, 'p', 'tx'), pg_logical_emit_message(false, 'p', 'nontx')");
    fx.sql("INSERT INTO f SELECT g, repeat('s', 100) FROM generate_series(1, 1500) g");
    fx.sql("BEGIN; INSERT INTO f SELECT g, repeat('a', 100) FROM generate_series(2001, 3500) g; ROLLBACK;");
    fx.sql("BEGIN; INSERT INTO k VALUES (10, 'p'); PREPARE TRANSACTION 'g1'");
    fx.sql("COMMIT PREPARED 'g1'");
    fx.sql("BEGIN; INSERT INTO k VALUES (11, 'p'); PREPARE TRANSACTION 'g2'");
    fx.sql("ROLLBACK PREPARED 'g2'");
    // A large prepared transaction: streamed, ended by Stream Prepare.
    fx.sql("BEGIN; INSERT INTO f SELECT g, repeat('b', 100) FROM generate_series(5001, 6500) g; PREPARE TRANSACTION 'g3'");
    fx.sql("COMMIT PREPARED 'g3'");
    // A transaction with a replication origin: Origin after Begin.
    fx.sql(
        "SELECT pg_replication_origin_create('upstream');
         SELECT pg_replication_origin_session_setup('upstream');
         BEGIN;
         SELECT pg_replication_origin_xact_setup('0/1234', now());
         INSERT INTO k VALUES (20, 'from upstream');
         COMMIT;",
    );
    let frames = capture(&cfg, usize::MAX).await;
    write_capture(&root.join("benches/data/all_kinds.pgout"), &frames);

    // Seeds: every distinct message kind (a few of each), each as a one-frame
    // capture, plus short sequences around stream blocks.
    let dir = root.join("fuzz/corpus/pgoutput");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut per_tag: HashMap<u8, usize> = HashMap::new();
    let mut n = 0;
    for (i, f) in frames.iter().enumerate() {
        let count = per_tag.entry(f[0]).or_default();
        if *count >= 4 {
            continue;
        }
        *count += 1;
        // Give streamed changes their Stream Start so the state matches.
        let start = frames[..i].iter().rposition(|p| p[0] == b'S');
        let stop = frames[..i].iter().rposition(|p| p[0] == b'E');
        let seq: Vec<Vec<u8>> = match (start, stop) {
            (Some(s), st) if st.is_none_or(|e| e < s) => vec![frames[s].clone(), f.clone()],
            _ => vec![f.clone()],
        };
        write_capture(&dir.join(format!("seed-{:03}-{}", n, f[0] as char)), &seq);
        n += 1;
    }
    for (i, w) in frames.chunks(40).enumerate().take(12) {
        write_capture(&dir.join(format!("seq-{i:03}")), w);
    }
    println!(
        "kinds: {:?}",
        per_tag.keys().map(|t| *t as char).collect::<String>()
    );
}

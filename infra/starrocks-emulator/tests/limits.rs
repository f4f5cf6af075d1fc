//! Limits and concurrency: body sizes, running transactions, concurrent loads,
//! Duplicate Key tables.

mod common;

use common::serde_json_like::JsonValueTrait;
use common::{send, Env, Req};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_size_limit_and_running_transactions() {
    let env = Env::start_with(|c| {
        c.max_json_mb = 1;
        c.max_running_txn_per_db = 2;
    })
    .await;
    env.sql("CREATE TABLE sink.t (id INT NOT NULL PRIMARY KEY, v LONGTEXT NULL)")
        .await;
    let big = format!(r#"{{"id":1,"v":"{}"}}"#, "x".repeat(1_048_570));
    let url = format!("{}/api/sink/t/_stream_load", env.emu().be_url());
    let r = send(
        &Req::new("PUT", &url)
            .auth("root", "")
            .header("format", "json")
            .body(big.as_bytes())
            .expect_continue(),
    )
    .await
    .expect("be");
    assert_eq!(r.status_field(), "Fail");
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap_or("")
            .contains("ignore_json_size"),
        "{}",
        r.body
    );
    assert!(!r.body_sent, "refused at header time");
    let r = env
        .load(
            "t",
            &[("format", "json"), ("ignore_json_size", "true")],
            &big,
        )
        .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    // max_running_txn_num_per_db
    assert_eq!(
        env.txn("begin", "r1", "t", &[], "").await.status_field(),
        "OK"
    );
    assert_eq!(
        env.txn("begin", "r2", "t", &[], "").await.status_field(),
        "OK"
    );
    let r = env.txn("begin", "r3", "t", &[], "").await;
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap_or("")
            .contains("larger than limit 2"),
        "{}",
        r.body
    );
    let r = env.load("t", &[("format", "json")], r#"{"id":2}"#).await;
    assert_eq!(r.status_field(), "Fail", "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads() {
    let env = Env::start().await;
    env.sql("CREATE TABLE sink.t (id INT NOT NULL PRIMARY KEY, v INT NOT NULL)")
        .await;
    // Distinct labels: all applied.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let fe = env.emu().fe_url();
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"[{{"id":{i},"v":{i}}},{{"id":100,"v":{i}}}]"#);
            let label = format!("par{i}");
            common::load_via(
                &fe,
                "sink",
                "t",
                ("root", ""),
                &[
                    ("format", "json"),
                    ("strip_outer_array", "true"),
                    ("label", &label),
                ],
                body.as_bytes(),
            )
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").status_field(), "Success");
    }
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["9"]);
    // One label, many clients: exactly one applies, the others see the label taken.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let fe = env.emu().fe_url();
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"{{"id":{},"v":1}}"#, 200 + i);
            common::load_via(
                &fe,
                "sink",
                "t",
                ("root", ""),
                &[("format", "json"), ("label", "same")],
                body.as_bytes(),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.expect("join");
        match r.status_field().as_str() {
            "Success" => ok += 1,
            "Label Already Exists" => {}
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        env.rows("SELECT COUNT(*) FROM sink.t WHERE id >= 200")
            .await,
        vec!["1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_key_tables_append() {
    let env = Env::start().await;
    env.sql("CREATE TABLE sink.logs (id INT NOT NULL, msg VARCHAR(10) NULL)")
        .await;
    for label in ["d1", "d2"] {
        let r = env
            .load(
                "logs",
                &[("format", "json"), ("label", label)],
                r#"{"id":1,"msg":"m"}"#,
            )
            .await;
        assert_eq!(r.status_field(), "Success", "{}", r.body);
    }
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.logs").await, vec!["2"]);
    let r = env
        .load(
            "logs",
            &[("format", "json"), ("columns", "id,msg,__op")],
            r#"{"id":1,"__op":1}"#,
        )
        .await;
    assert_eq!(r.status_field(), "Fail");
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap_or("")
            .contains("Primary Key"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_are_split_across_statements() {
    let env = Env::start().await;
    env.sql("CREATE TABLE sink.blobs (id INT NOT NULL PRIMARY KEY, v LONGTEXT NULL)")
        .await;
    // 40 rows of 600 KB: 24 MB of values, more than MariaDB's 16 MB packet limit.
    let value = "y".repeat(600_000);
    let rows: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"id":{i},"v":"{value}"}}"#))
        .collect();
    let body = format!("[{}]", rows.join(","));
    let r = env
        .load(
            "blobs",
            &[("format", "json"), ("strip_outer_array", "true")],
            &body,
        )
        .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT COUNT(*), SUM(LENGTH(v)) FROM sink.blobs")
            .await,
        vec!["40\t24000000"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transaction_loads_are_staged_in_parts() {
    let env = Env::start().await;
    env.sql("CREATE TABLE sink.blobs (id INT NOT NULL PRIMARY KEY, v LONGTEXT NULL)")
        .await;
    let value = "z".repeat(500_000);
    let jh = [("format", "json"), ("strip_outer_array", "true")];
    assert_eq!(
        env.txn("begin", "bigtx", "blobs", &[], "")
            .await
            .status_field(),
        "OK"
    );
    for part in 0..2 {
        let rows: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"id":{},"v":"{value}"}}"#, part * 100 + i))
            .collect();
        let r = env
            .txn(
                "load",
                "bigtx",
                "blobs",
                &jh,
                &format!("[{}]", rows.join(",")),
            )
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.body);
    }
    assert_eq!(
        env.txn("prepare", "bigtx", "blobs", &[], "")
            .await
            .status_field(),
        "OK"
    );
    let r = env.txn("commit", "bigtx", "blobs", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(
        env.rows("SELECT COUNT(*), SUM(LENGTH(v)) FROM sink.blobs")
            .await,
        vec!["80\t40000000"]
    );
}

//! The version audit, the CLI binary, and discard mode.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};

use common::serde_json_like::JsonValueTrait;
use common::{load_via, mariadb_url, Env};
use sonic_rs::JsonContainerTrait;
use starrocks_emulator::{install_version_audit, version_regressions};

const T: &str = "CREATE TABLE sink.v (id INT NOT NULL, k VARCHAR(8) NOT NULL, val VARCHAR(20) NULL,
    dbmazz_cdc_version BIGINT NOT NULL, PRIMARY KEY (id, k))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_audit_catches_regressions_in_storage() {
    let env = Env::start().await;
    env.sql(T).await;
    install_version_audit(&env.pool, "__emulator", "sink", "v", "dbmazz_cdc_version")
        .await
        .expect("install");
    let h = [("format", "json"), ("strip_outer_array", "true")];
    let load = |label: &'static str, body: &'static str| {
        let mut hh = h.to_vec();
        hh.push(("label", label));
        let env = &env;
        async move { env.load("v", &hh, body).await }
    };
    let r = load("a1", r#"[{"id":1,"k":"a","val":"x","dbmazz_cdc_version":10},{"id":2,"k":"b","val":"y","dbmazz_cdc_version":10}]"#).await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    // Forward moves are fine; merge_condition stops a stale upsert.
    let mut mc = h.to_vec();
    mc.push(("merge_condition", "dbmazz_cdc_version"));
    mc.push(("label", "a2"));
    env.load("v", &mc, r#"[{"id":1,"k":"a","val":"old","dbmazz_cdc_version":5},{"id":2,"k":"b","val":"new","dbmazz_cdc_version":11}]"#).await;
    assert!(version_regressions(&env.pool, "__emulator", "sink", "v")
        .await
        .expect("read")
        .is_empty());
    // Without merge_condition a stale upsert moves the version back: recorded.
    load(
        "a3",
        r#"[{"id":2,"k":"b","val":"stale","dbmazz_cdc_version":3}]"#,
    )
    .await;
    // Delete, then a re-insert with a lower version than the deleted row had: recorded.
    // (The row had version 10 when it was deleted.)
    load(
        "a4",
        r#"[{"id":1,"k":"a","dbmazz_cdc_version":12,"__op":1}]"#,
    )
    .await;
    load(
        "a5",
        r#"[{"id":1,"k":"a","val":"zombie","dbmazz_cdc_version":9}]"#,
    )
    .await;
    // The audit sits in the storage: plain SQL is caught too.
    env.sql("UPDATE sink.v SET dbmazz_cdc_version = 1 WHERE id = 1")
        .await;
    let regs = version_regressions(&env.pool, "__emulator", "sink", "v")
        .await
        .expect("read");
    let got: Vec<(String, String, String, String)> = regs
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.old_version.clone(),
                r.new_version.clone(),
                r.kind.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                r#"[2, "b"]"#.into(),
                "11".into(),
                "3".into(),
                "update".into()
            ),
            // The tombstone keeps the version the deleted row had in storage (10); a
            // delete row's own version is never stored.
            (
                r#"[1, "a"]"#.into(),
                "10".into(),
                "9".into(),
                "reinsert_after_delete".into()
            ),
            (
                r#"[1, "a"]"#.into(),
                "9".into(),
                "1".into(),
                "update".into()
            ),
        ]
    );
    // Non-numeric version columns are refused with a clear error.
    let e = install_version_audit(&env.pool, "__emulator", "sink", "v", "val")
        .await
        .expect_err("text");
    assert!(e.to_string().contains("integer or DECIMAL"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_binary_prints_ports_and_serves() {
    let env = Env::start().await;
    env.sql("CREATE TABLE sink.c (id INT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)")
        .await;
    let url = mariadb_url(&env.db);
    let mut child = Command::new(env!("CARGO_BIN_EXE_starrocks-emulator"))
        .args([
            "--mariadb-url",
            &url,
            "--user",
            "alice:pw",
            "--meta-database",
            "__emu_cli",
        ])
        .args(["--audit", "sink.c:n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        std::io::BufReader::new(stdout).read_line(&mut l).map(|_| l)
    })
    .await
    .expect("join")
    .expect("ready line");
    let ready = common::serde_json_like::parse(line.trim());
    assert_eq!(ready["ready"].as_bool(), Some(true), "{line}");
    let fe_port = ready["fe_port"].as_u64().expect("fe_port");
    assert!(ready["be_port"].as_u64().is_some() && ready["admin_port"].as_u64().is_some());
    let fe = format!("http://127.0.0.1:{fe_port}");
    let r = load_via(
        &fe,
        "sink",
        "c",
        ("alice", "pw"),
        &[("format", "json")],
        br#"{"id":1,"n":5}"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    let r = load_via(
        &fe,
        "sink",
        "c",
        ("root", ""),
        &[("format", "json")],
        br#"{"id":1,"n":5}"#,
    )
    .await;
    assert_eq!(r.status, 401, "only the configured users");
    env.sql("UPDATE sink.c SET n = 1").await;
    let regs = version_regressions(&env.pool, "__emu_cli", "sink", "c")
        .await
        .expect("audit");
    assert_eq!(regs.len(), 1, "the --audit flag installed the triggers");
    // SIGTERM stops it.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_mode_validates_counts_and_stores_nothing() {
    let env = Env::start_with(|c| c.discard = true).await;
    env.sql("CREATE TABLE sink.d (id INT NOT NULL PRIMARY KEY, s VARCHAR(3) NULL)")
        .await;
    let h = [
        ("format", "json"),
        ("strip_outer_array", "true"),
        ("label", "same"),
    ];
    let r = env
        .load("d", &h, r#"[{"id":1,"s":"ok"},{"id":2,"s":"abc"}]"#)
        .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(r.json()["NumberLoadedRows"].as_u64(), Some(2));
    // Conversion still runs: an over-long value is filtered and fails the load.
    let r = env.load("d", &h, r#"[{"id":3,"s":"toolong"}]"#).await;
    assert_eq!(r.status_field(), "Fail");
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.d").await, vec!["0"]);
    let stats = env.admin_get("/stats").await.json();
    assert_eq!(stats["discard"].as_bool(), Some(true));
    assert_eq!(stats["rows_total"].as_u64(), Some(3));
    assert_eq!(stats["rows_loaded"].as_u64(), Some(2));
    assert!(stats["rows_per_sec_busy"].as_f64().unwrap_or(0.0) > 0.0);
    // The load log has both loads, oldest first, with their labels and times.
    let log = env.admin_get("/loads").await.json();
    assert_eq!(log["dropped"].as_u64(), Some(0));
    let loads = log["loads"].as_array().expect("loads");
    assert_eq!(loads.len(), 2, "{log:?}");
    for (entry, (ok, rows)) in loads.iter().zip([(true, 2), (false, 0)]) {
        assert_eq!(entry["table"].as_str(), Some("sink.d"));
        assert_eq!(entry["label"].as_str(), Some("same"));
        assert_eq!(entry["ok"].as_bool(), Some(ok));
        assert_eq!(entry["rows"].as_u64(), Some(rows));
        let (rx, ans) = (
            entry["received_unix_us"].as_i64().expect("received"),
            entry["answered_unix_us"].as_i64().expect("answered"),
        );
        assert!(rx > 1_600_000_000_000_000 && rx <= ans, "{entry:?}");
    }
    assert_eq!(env.admin_post("/stats/reset", "").await.status, 200);
    let log = env.admin_get("/loads").await.json();
    assert_eq!(log["loads"].as_array().map(|a| a.len()), Some(0));
}

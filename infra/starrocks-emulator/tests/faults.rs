//! Every fault kind, scripted through the admin port.

mod common;

use std::time::{Duration, Instant};

use common::serde_json_like::JsonValueTrait;
use common::{send, Env, Req};

const T: &str = "CREATE TABLE sink.t (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL)";

async fn load(env: &Env, label: &str, id: u32) -> common::Resp {
    env.load(
        "t",
        &[("format", "json"), ("label", label)],
        &format!(r#"{{"id":{id},"v":"x"}}"#),
    )
    .await
}

/// A load through the FE that may end without a response: `Err` when the connection
/// closed without an answer.
async fn try_load(env: &Env, label: &str, id: u32) -> std::io::Result<common::Resp> {
    let url = format!("{}/api/sink/t/_stream_load", env.emu().fe_url());
    let body = format!(r#"{{"id":{id},"v":"x"}}"#);
    let mut req = Req::new("PUT", &url)
        .auth("root", "")
        .header("format", "json")
        .header("label", label)
        .body(body.as_bytes())
        .expect_continue();
    let r = send(&req).await?;
    if r.status != 307 {
        return Ok(r);
    }
    req.url = r.header("location").unwrap_or_default().to_owned();
    send(&req).await
}

async fn count(env: &Env) -> String {
    env.rows("SELECT COUNT(*) FROM sink.t").await.join("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_and_fail_and_label_exists() {
    let env = Env::start().await;
    env.sql(T).await;
    env.fault(
        r#"[{"kind":"http_status","status":503,"body":"busy","count":2,"table":"t"},
            {"kind":"fail","message":"injected failure"},
            {"kind":"label_already_exists","existing_job_status":"RUNNING"},
            {"kind":"label_already_exists","existing_job_status":"FINISHED"},
            {"kind":"http_status","status":500,"at":"fe"}]"#,
    )
    .await;
    let listed = env.admin_get("/faults").await;
    assert!(listed.body.contains("\"count\":2"), "{}", listed.body);
    for _ in 0..2 {
        let r = load(&env, "a", 1).await;
        assert_eq!((r.status, r.body.as_str()), (503, "busy"));
    }
    let r = load(&env, "a", 1).await;
    assert_eq!(r.status_field(), "Fail");
    assert_eq!(r.json()["Message"].as_str(), Some("injected failure"));
    for status in ["RUNNING", "FINISHED"] {
        let r = load(&env, "a", 1).await;
        assert_eq!(r.status_field(), "Label Already Exists");
        assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some(status));
    }
    let url = format!("{}/api/sink/t/_stream_load", env.emu().fe_url());
    let r = send(
        &Req::new("PUT", &url)
            .auth("root", "")
            .body(b"{}")
            .expect_continue(),
    )
    .await
    .expect("fe");
    assert_eq!(r.status, 500);
    assert_eq!(count(&env).await, "0");
    // The queue is empty: the same label now loads (nothing was recorded for it).
    assert_eq!(load(&env, "a", 1).await.status_field(), "Success");
    assert_eq!(count(&env).await, "1");
    let stats = env.admin_get("/stats").await.json();
    assert_eq!(stats["loads_ok"].as_u64(), Some(1));
    assert_eq!(stats["loads_failed"].as_u64(), Some(5));
    assert_eq!(stats["tables"]["sink.t"]["rows_loaded"].as_u64(), Some(1));
    assert_eq!(env.admin_post("/stats/reset", "").await.status, 200);
    assert_eq!(
        env.admin_get("/stats").await.json()["loads_ok"].as_u64(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_timeout_then_visible() {
    let env = Env::start().await;
    env.sql(T).await;
    env.fault(r#"{"kind":"publish_timeout","visible_after_ms":1500}"#)
        .await;
    let r = load(&env, "pt", 1).await;
    assert_eq!(r.status_field(), "Publish Timeout", "{}", r.body);
    assert_eq!(env.label_state("pt").await, "COMMITTED");
    assert_eq!(count(&env).await, "1", "the load was applied (durable)");
    let r = load(&env, "pt", 1).await;
    assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some("FINISHED"));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(env.label_state("pt").await, "VISIBLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays() {
    let env = Env::start().await;
    env.sql(T).await;
    env.fault(
        r#"[{"kind":"delay","ms":600,"phase":"before_continue"},
            {"kind":"delay","ms":600},
            {"kind":"delay","ms":600,"at":"fe"}]"#,
    )
    .await;
    for i in 0..3 {
        let t = Instant::now();
        let r = load(&env, &format!("d{i}"), i).await;
        assert_eq!(r.status_field(), "Success", "{}", r.body);
        assert!(
            t.elapsed() >= Duration::from_millis(600),
            "delay {i} applied"
        );
    }
    // A delay longer than the load timeout makes the load fail.
    env.fault(r#"{"kind":"delay","ms":1500,"phase":"before_continue"}"#)
        .await;
    let r = env
        .load(
            "t",
            &[("format", "json"), ("label", "slow"), ("timeout", "1")],
            r#"{"id":9}"#,
        )
        .await;
    assert_eq!(r.status_field(), "Fail", "{}", r.body);
    assert_eq!(env.label_state("slow").await, "ABORTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections() {
    let env = Env::start().await;
    env.sql(T).await;
    // Mid-body: the connection closes, nothing is applied, the label is aborted.
    env.fault(r#"{"kind":"drop_mid_body","after_bytes":3}"#)
        .await;
    let r = try_load(&env, "drop1", 1).await;
    assert!(r.is_err(), "no response expected: {r:?}");
    assert_eq!(count(&env).await, "0");
    assert_eq!(env.label_state("drop1").await, "ABORTED");
    assert_eq!(
        load(&env, "drop1", 1).await.status_field(),
        "Success",
        "retry with the same label"
    );
    // Lost response: applied, but no answer; the retry finds the label FINISHED.
    env.fault(r#"{"kind":"lost_response"}"#).await;
    let r = try_load(&env, "lost1", 2).await;
    assert!(r.is_err(), "no response expected: {r:?}");
    assert_eq!(count(&env).await, "2");
    assert_eq!(env.label_state("lost1").await, "VISIBLE");
    let r = load(&env, "lost1", 2).await;
    assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some("FINISHED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_failures() {
    let env = Env::start().await;
    env.sql(T).await;
    env.fault(
        r#"[{"kind":"redirect_dead_be"},
            {"kind":"be_ignores_auth"},
            {"kind":"fe_error","message":"No backend alive."},
            {"kind":"fe_error","message":"boom","shape":"transaction","status":500}]"#,
    )
    .await;
    let r = try_load(&env, "r1", 1).await;
    assert!(r.is_err(), "the redirect points at a dead port: {r:?}");
    let r = load(&env, "r2", 1).await;
    assert_eq!(r.status_field(), "Fail");
    assert_eq!(
        r.json()["Message"].as_str(),
        Some("no valid Basic authorization")
    );
    let r = load(&env, "r3", 1).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"].as_str(), Some("FAILED"));
    assert_eq!(r.json()["msg"].as_str(), Some("No backend alive."));
    let r = load(&env, "r4", 1).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["Status"].as_str(), Some("FAILED"));
    assert_eq!(count(&env).await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_label_finishes_later() {
    let env = Env::start().await;
    env.sql(T).await;
    env.fault(
        r#"[{"kind":"running_label","finish_after_ms":3000,"finish_as":"visible"},
            {"kind":"running_label","finish_after_ms":3000,"finish_as":"aborted"}]"#,
    )
    .await;
    let r = load(&env, "run1", 1).await;
    assert_eq!(
        r.json()["ExistingJobStatus"].as_str(),
        Some("RUNNING"),
        "{}",
        r.body
    );
    let r = load(&env, "run2", 2).await;
    assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some("RUNNING"));
    assert_eq!(env.label_state("run1").await, "PREPARE");
    let r = load(&env, "run1", 1).await;
    assert_eq!(
        r.json()["ExistingJobStatus"].as_str(),
        Some("RUNNING"),
        "still running"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.label_state("run1").await != "VISIBLE" || env.label_state("run2").await != "ABORTED" {
        assert!(Instant::now() < deadline, "labels did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.rows("SELECT id FROM sink.t").await, vec!["1"]);
    assert_eq!(
        load(&env, "run2", 2).await.status_field(),
        "Success",
        "aborted label reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_faults_and_admin_validation() {
    let env = Env::start().await;
    env.sql(T).await;
    env.fault(r#"[{"kind":"lost_response","ops":["txn_commit"]},{"kind":"http_status","status":502,"at":"fe","ops":["txn_prepare"]}]"#)
        .await;
    env.txn("begin", "tf", "t", &[], "").await;
    env.txn("load", "tf", "t", &[("format", "json")], r#"{"id":3}"#)
        .await;
    assert_eq!(env.txn("prepare", "tf", "t", &[], "").await.status, 502);
    assert_eq!(
        env.txn("prepare", "tf", "t", &[], "").await.status_field(),
        "OK"
    );
    let url = format!("{}/api/transaction/commit", env.emu().be_url());
    // The commit of a PREPARED transaction is handled by the FE; the fault is at the
    // BE, so it stays queued; a one-phase commit on the BE consumes it.
    let r = env.txn("commit", "tf", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK");
    env.txn("begin", "tg", "t", &[], "").await;
    env.txn("load", "tg", "t", &[("format", "json")], r#"{"id":4}"#)
        .await;
    let r = send(
        &Req::new("POST", &url)
            .auth("root", "")
            .header("label", "tg")
            .header("db", "sink"),
    )
    .await;
    assert!(r.is_err(), "commit applied, response lost: {r:?}");
    assert_eq!(env.label_state("tg").await, "VISIBLE");
    assert_eq!(count(&env).await, "2");
    // The admin port rejects impossible faults.
    let r = env
        .admin_post(
            "/faults",
            r#"{"kind":"publish_timeout","ops":["txn_commit"]}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = env.admin_post("/faults", r#"{"kind":"nonsense"}"#).await;
    assert_eq!(r.status, 400);
    env.fault(r#"{"kind":"lost_response"}"#).await;
    assert_eq!(env.admin_post("/reset", "").await.status, 200);
    assert_eq!(env.admin_get("/faults").await.body, "[]");
}

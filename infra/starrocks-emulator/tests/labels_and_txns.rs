//! Labels (before and after an emulator restart) and the transaction interface.

mod common;

use common::serde_json_like::JsonValueTrait;
use common::Env;

const T: &str = "CREATE TABLE sink.t (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL)";

async fn json_load(env: &Env, label: &str, body: &str) -> common::Resp {
    env.load(
        "t",
        &[
            ("format", "json"),
            ("strip_outer_array", "true"),
            ("label", label),
        ],
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_remembered_across_restarts() {
    let mut env = Env::start().await;
    env.sql(T).await;
    let r = json_load(&env, "L1", r#"[{"id":1,"v":"first"}]"#).await;
    assert_eq!(r.status_field(), "Success");
    // Same label again: not applied, FINISHED.
    let r = json_load(&env, "L1", r#"[{"id":1,"v":"second"}]"#).await;
    assert_eq!(r.status_field(), "Label Already Exists");
    assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some("FINISHED"));
    assert_eq!(
        r.json()["Message"].as_str(),
        Some("Label [L1] has already been used.")
    );
    assert_eq!(env.rows("SELECT v FROM sink.t").await, vec!["first"]);
    // A failed load leaves its label ABORTED and reusable.
    let r = json_load(&env, "L2", r#"[{"id":2,"v":"this value is far too long"}]"#).await;
    assert_eq!(r.status_field(), "Fail");

    env.restart().await;
    let r = json_load(&env, "L1", r#"[{"id":1,"v":"third"}]"#).await;
    assert_eq!(r.status_field(), "Label Already Exists", "{}", r.body);
    assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some("FINISHED"));
    assert_eq!(env.label_state("L1").await, "VISIBLE");
    assert_eq!(env.label_state("L2").await, "ABORTED");
    let r = json_load(&env, "L2", r#"[{"id":2,"v":"ok now"}]"#).await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT id, v FROM sink.t ORDER BY id").await,
        vec!["1\tfirst", "2\tok now"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_lifecycle() {
    let env = Env::start().await;
    env.sql(T).await;
    let jh = [("format", "json"), ("strip_outer_array", "true")];
    let r = env.txn("begin", "tx1", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    let txn_id = r.json()["TxnId"].as_i64().expect("TxnId");
    assert_eq!(env.label_state("tx1").await, "PREPARE");
    // Beginning the same label again: LABEL_ALREADY_EXISTS.
    let r2 = env.txn("begin", "tx_other", "t", &[], "").await;
    assert_eq!(r2.status_field(), "OK");
    let r = env
        .txn(
            "load",
            "tx1",
            "t",
            &jh,
            r#"[{"id":1,"v":"a"},{"id":2,"v":"b"}]"#,
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(r.json()["TxnId"].as_i64(), Some(txn_id));
    let r = env
        .txn(
            "load",
            "tx1",
            "t",
            &jh,
            r#"[{"id":2,"v":"b2"},{"id":3,"v":"c","__op":0}]"#,
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    // Different load parameters are refused.
    let r = env.txn("load", "tx_other", "t", &jh, r#"[{"id":9}]"#).await;
    assert_eq!(r.status_field(), "OK");
    let r = env
        .txn(
            "load",
            "tx_other",
            "t",
            &[("format", "json")],
            r#"{"id":9}"#,
        )
        .await;
    assert_eq!(
        r.json()["Message"].as_str(),
        Some("load request not equal last."),
        "{}",
        r.body
    );
    assert_eq!(env.label_state("tx_other").await, "ABORTED");
    // Nothing visible before commit.
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["0"]);
    let r = env.txn("prepare", "tx1", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(r.json()["NumberLoadedRows"].as_u64(), Some(4));
    assert_eq!(env.label_state("tx1").await, "PREPARED");
    // Load after prepare is rejected.
    let r = env.txn("load", "tx1", "t", &jh, r#"[{"id":4}]"#).await;
    assert_eq!(r.status_field(), "TXN_NOT_EXISTS", "{}", r.body);
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["0"]);
    // Stream Load with the label of a PREPARED transaction: RUNNING.
    let r = json_load(&env, "tx1", r#"[{"id":5}]"#).await;
    assert_eq!(r.json()["ExistingJobStatus"].as_str(), Some("RUNNING"));
    let r = env.txn("commit", "tx1", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(env.label_state("tx1").await, "VISIBLE");
    assert_eq!(
        env.rows("SELECT id, v FROM sink.t ORDER BY id").await,
        vec!["1\ta", "2\tb2", "3\tc"]
    );
    // Idempotent commit.
    let r = env.txn("commit", "tx1", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK");
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap_or("")
            .contains("already committed"),
        "{}",
        r.body
    );
    // Rollback of a committed transaction fails; of an unknown label too.
    assert_eq!(
        env.txn("rollback", "tx1", "t", &[], "")
            .await
            .status_field(),
        "FAILED"
    );
    assert_eq!(
        env.txn("commit", "nope", "t", &[], "").await.status_field(),
        "FAILED"
    );
    // Commit straight from PREPARE (one-phase) works too.
    env.txn("begin", "tx2", "t", &[], "").await;
    env.txn("load", "tx2", "t", &jh, r#"[{"id":10,"v":"one-phase"}]"#)
        .await;
    let r = env.txn("commit", "tx2", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(
        env.rows("SELECT v FROM sink.t WHERE id = 10").await,
        vec!["one-phase"]
    );
    // Prepare without data fails and aborts.
    env.txn("begin", "tx3", "t", &[], "").await;
    let r = env.txn("prepare", "tx3", "t", &[], "").await;
    assert_eq!(r.status_field(), "INTERNAL_ERROR", "{}", r.body);
    assert_eq!(env.label_state("tx3").await, "ABORTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_prepared_survives_restart() {
    let mut env = Env::start().await;
    env.sql(T).await;
    let jh = [("format", "json"), ("strip_outer_array", "true")];
    // Rollback in PREPARE (BE) and in PREPARED (FE).
    env.txn("begin", "rb1", "t", &[], "").await;
    env.txn("load", "rb1", "t", &jh, r#"[{"id":1}]"#).await;
    let r = env.txn("rollback", "rb1", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(env.label_state("rb1").await, "ABORTED");
    env.txn("begin", "rb2", "t", &[], "").await;
    env.txn("load", "rb2", "t", &jh, r#"[{"id":2}]"#).await;
    env.txn("prepare", "rb2", "t", &[], "").await;
    let r = env.txn("rollback", "rb2", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    let r = env.txn("rollback", "rb2", "t", &[], "").await;
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap_or("")
            .contains("already aborted"),
        "{}",
        r.body
    );
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["0"]);
    // An aborted label can begin again.
    assert_eq!(
        env.txn("begin", "rb1", "t", &[], "").await.status_field(),
        "OK"
    );

    // PREPARED survives a restart; a PREPARE one is aborted by it.
    env.txn("begin", "keep", "t", &[], "").await;
    env.txn("load", "keep", "t", &jh, r#"[{"id":7,"v":"kept"}]"#)
        .await;
    assert_eq!(
        env.txn("prepare", "keep", "t", &[], "")
            .await
            .status_field(),
        "OK"
    );
    env.txn("begin", "lost", "t", &[], "").await;
    env.txn("load", "lost", "t", &jh, r#"[{"id":8,"v":"lost"}]"#)
        .await;
    env.restart().await;
    assert_eq!(env.label_state("keep").await, "PREPARED");
    assert_eq!(env.label_state("lost").await, "ABORTED");
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["0"]);
    let r = env.txn("commit", "keep", "t", &[], "").await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    assert_eq!(env.rows("SELECT id, v FROM sink.t").await, vec!["7\tkept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_timeouts() {
    let env = Env::start().await;
    env.sql(T).await;
    let jh = [("format", "json")];
    env.txn("begin", "to1", "t", &[("timeout", "1")], "").await;
    env.txn(
        "begin",
        "idle1",
        "t",
        &[("idle_transaction_timeout", "1")],
        "",
    )
    .await;
    env.txn("begin", "pt1", "t", &[], "").await;
    env.txn("load", "pt1", "t", &jh, r#"{"id":1}"#).await;
    let r = env
        .txn("prepare", "pt1", "t", &[("prepared_timeout", "1")], "")
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(env.label_state("to1").await, "ABORTED");
    assert_eq!(env.label_state("idle1").await, "ABORTED");
    assert_eq!(env.label_state("pt1").await, "ABORTED");
    let r = env.txn("load", "to1", "t", &jh, r#"{"id":2}"#).await;
    assert_eq!(r.status_field(), "TXN_NOT_EXISTS");
    let r = env.txn("commit", "pt1", "t", &[], "").await;
    assert_eq!(r.status_field(), "FAILED");
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap_or("")
            .contains("Can not commit ABORTED"),
        "{}",
        r.body
    );
    assert_eq!(env.rows("SELECT COUNT(*) FROM sink.t").await, vec!["0"]);
}

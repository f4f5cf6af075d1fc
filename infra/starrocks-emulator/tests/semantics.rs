//! Primary Key table semantics and value conversion, checked in MariaDB by SQL.

mod common;

use common::serde_json_like::JsonValueTrait;
use common::{send, Env, Req};

const ORDERS: &str = "CREATE TABLE sink.orders (
    id BIGINT NOT NULL PRIMARY KEY,
    status VARCHAR(10) NOT NULL DEFAULT 'new',
    amount DECIMAL(10,2) NULL,
    note VARCHAR(20) NULL,
    ver BIGINT NOT NULL DEFAULT 0
)";

fn json(label: &str) -> Vec<(&'static str, String)> {
    vec![
        ("format", "json".into()),
        ("strip_outer_array", "true".into()),
        ("label", label.to_owned()),
    ]
}

async fn load(
    env: &Env,
    table: &str,
    label: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> common::Resp {
    let mut h: Vec<(&str, String)> = json(label);
    for (k, v) in extra {
        h.push((k, (*v).to_owned()));
    }
    let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.load(table, &hr, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_delete_and_file_order() {
    let env = Env::start().await;
    env.sql(ORDERS).await;
    let r = load(
        &env,
        "orders",
        "u1",
        &[],
        r#"[{"id":1,"status":"paid","amount":"10.5","note":"a","ver":1},
            {"id":2,"status":"new","amount":3,"note":null,"ver":1},
            {"id":3,"status":"new","amount":1,"ver":1}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    // Same key several times in one load: file order; delete uses only the key.
    let r = load(
        &env,
        "orders",
        "u2",
        &[],
        r#"[{"id":1,"status":"shipped","amount":10.5,"note":"b","ver":2,"__op":0},
            {"id":1,"status":"x","amount":0,"note":"c","ver":3,"__op":1},
            {"id":1,"status":"back","amount":1,"note":"d","ver":4,"__op":0},
            {"id":2,"status":"gone","amount":0,"ver":9,"__op":1},
            {"id":3,"status":"a","amount":1,"ver":2},
            {"id":3,"status":"b","amount":2,"ver":3}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(r.json()["NumberLoadedRows"].as_u64(), Some(6));
    assert_eq!(
        env.rows("SELECT id, status, amount, note, ver FROM sink.orders ORDER BY id")
            .await,
        vec!["1\tback\t1.00\td\t4", "3\tb\t2.00\tNULL\t3"]
    );
    // A whole-row upsert without `note` (columns header): note goes back to its default.
    let r = load(
        &env,
        "orders",
        "u3",
        &[("columns", "id,status,amount,ver")],
        r#"[{"id":1,"status":"s","amount":5,"ver":5}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT note FROM sink.orders WHERE id = 1").await,
        vec!["NULL"]
    );
    // __op as a constant in the columns header deletes every row.
    let r = load(
        &env,
        "orders",
        "u4",
        &[("columns", "id,status,amount,note,ver,__op='delete'")],
        r#"[{"id":1,"status":"s","ver":1}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT id FROM sink.orders ORDER BY id").await,
        vec!["3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_updates() {
    let env = Env::start().await;
    env.sql(ORDERS).await;
    env.sql("INSERT INTO sink.orders VALUES (1, 'paid', 9.99, 'keep', 1)")
        .await;
    let partial = [
        ("partial_update", "true"),
        ("partial_update_mode", "row"),
        ("columns", "id,note,ver"),
    ];
    let r = load(
        &env,
        "orders",
        "p1",
        &partial,
        r#"[{"id":1,"note":"changed","ver":2},{"id":5,"note":"new row","ver":1}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT id, status, amount, note, ver FROM sink.orders ORDER BY id")
            .await,
        vec!["1\tpaid\t9.99\tchanged\t2", "5\tnew\tNULL\tnew row\t1"],
        "only the listed columns change; a new key gets the defaults"
    );
    // Delete then partial re-insert of the same key inside one load: defaults again.
    let r = load(
        &env,
        "orders",
        "p2",
        &[("partial_update", "true"), ("columns", "id,note,ver,__op")],
        r#"[{"id":1,"note":"x","ver":3,"__op":1},{"id":1,"note":"again","ver":4,"__op":0}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT status, amount, note, ver FROM sink.orders WHERE id = 1")
            .await,
        vec!["new\tNULL\tagain\t4"]
    );
    // A NOT NULL column without default makes a partial insert of a new key filtered.
    env.sql("CREATE TABLE sink.strict_t (id INT NOT NULL PRIMARY KEY, must VARCHAR(5) NOT NULL, v INT NULL)").await;
    env.sql("INSERT INTO sink.strict_t VALUES (1, 'm', 0)")
        .await;
    let r = load(
        &env,
        "strict_t",
        "p3",
        &[
            ("partial_update", "true"),
            ("columns", "id,v"),
            ("max_filter_ratio", "0.5"),
        ],
        r#"[{"id":1,"v":10},{"id":2,"v":20}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(r.json()["NumberFilteredRows"].as_u64(), Some(1));
    assert_eq!(
        env.rows("SELECT id, must, v FROM sink.strict_t ORDER BY id")
            .await,
        vec!["1\tm\t10"]
    );
    let r = load(
        &env,
        "strict_t",
        "p4",
        &[("partial_update", "true"), ("columns", "id,v")],
        r#"[{"id":3,"v":1}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Fail");
    assert_eq!(r.json()["Message"].as_str(), Some("too many filtered rows"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_condition() {
    let env = Env::start().await;
    env.sql(ORDERS).await;
    env.sql("INSERT INTO sink.orders VALUES (1, 'v5', 1, NULL, 5), (2, 'v5', 1, NULL, 5)")
        .await;
    let mc = [("merge_condition", "ver")];
    let r = load(
        &env,
        "orders",
        "m1",
        &mc,
        r#"[{"id":1,"status":"older","ver":4},
            {"id":2,"status":"equal","ver":5},
            {"id":3,"status":"fresh","ver":1},
            {"id":3,"status":"stale","ver":0}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT id, status, ver FROM sink.orders ORDER BY id")
            .await,
        vec!["1\tv5\t5", "2\tequal\t5", "3\tfresh\t1"],
        "lower loses, equal wins, order inside the load respected"
    );
    // Deletes ignore the merge condition.
    let r = load(
        &env,
        "orders",
        "m2",
        &mc,
        r#"[{"id":1,"status":"d","ver":0,"__op":1}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT COUNT(*) FROM sink.orders WHERE id = 1")
            .await,
        vec!["0"]
    );
    // Partial update with a merge condition.
    let r = load(
        &env,
        "orders",
        "m3",
        &[
            ("merge_condition", "ver"),
            ("partial_update", "true"),
            ("columns", "id,note,ver"),
        ],
        r#"[{"id":2,"note":"old","ver":1},{"id":3,"note":"newer","ver":7}]"#,
    )
    .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT id, status, note, ver FROM sink.orders ORDER BY id")
            .await,
        vec!["2\tequal\tNULL\t5", "3\tfresh\tnewer\t7"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_strict_mode_and_filtering() {
    let env = Env::start().await;
    env.sql(
        "CREATE TABLE sink.types (
            id INT NOT NULL PRIMARY KEY, t TINYINT NULL, b BOOLEAN NULL, d DECIMAL(6,2) NULL,
            f DOUBLE NULL, s VARCHAR(4) NULL, dt DATE NULL, ts DATETIME(6) NULL,
            j LONGTEXT NULL CHECK (json_valid(j)), nn INT NOT NULL DEFAULT 0
        )",
    )
    .await;
    let body = r#"[{"id":1,"t":"12","b":true,"d":"12.345","f":1.5,"s":"éé","dt":"2024-02-29","ts":"2024-01-02 03:04:05.123456","j":{"a":[1, 2]},"nn":0},
                   {"id":2,"t":2000,"b":"false","d":1,"f":"2","s":"abc","dt":"2023-02-29","ts":"20240102030405","j":"text","nn":0},
                   {"id":3,"t":1,"s":"toolong"},
                   {"id":4,"nn":null}]"#;
    // Non-strict: failed casts become NULL; over-long strings and NULL in NOT NULL filter.
    let r = load(&env, "types", "c1", &[("max_filter_ratio", "0.5")], body).await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    let v = r.json();
    assert_eq!(
        (
            v["NumberTotalRows"].as_u64(),
            v["NumberFilteredRows"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(
        env.rows("SELECT id, t, b, d, f, s, dt, ts, j FROM sink.types ORDER BY id")
            .await,
        vec![
            "1\t12\t1\t12.35\t1.5\téé\t2024-02-29\t2024-01-02 03:04:05.123456\t{\"a\":[1,2]}",
            "2\tNULL\t0\t1.00\t2\tabc\tNULL\t2024-01-02 03:04:05.000000\t\"text\"",
        ]
    );
    // The ErrorURL serves the rejected rows.
    let url = v["ErrorURL"].as_str().expect("ErrorURL").to_owned();
    let log = send(&Req::new("GET", &url)).await.expect("error log");
    assert_eq!(log.status, 200);
    assert!(
        log.body.contains("too long") && log.body.contains("\"toolong\""),
        "{}",
        log.body
    );
    assert!(
        log.body.contains("NULL value in non-nullable column 'nn'"),
        "{}",
        log.body
    );
    // Strict mode: the cast failures filter their rows too.
    env.sql("DELETE FROM sink.types").await;
    let r = load(
        &env,
        "types",
        "c2",
        &[("max_filter_ratio", "1"), ("strict_mode", "true")],
        body,
    )
    .await;
    assert_eq!(
        r.json()["NumberFilteredRows"].as_u64(),
        Some(3),
        "{}",
        r.body
    );
    assert_eq!(env.rows("SELECT id FROM sink.types").await, vec!["1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_ratio_and_atomicity() {
    let env = Env::start().await;
    env.sql(ORDERS).await;
    env.sql("INSERT INTO sink.orders (id, status) VALUES (9, 'before')")
        .await;
    // (Every NOT NULL column is sent: in JSON simple mode a missing key loads NULL.)
    let body = r#"[{"id":1,"status":"ok","ver":1},{"id":2,"status":"waytoolongstatus","ver":1},{"id":9,"__op":1,"status":"x","ver":1}]"#;
    // Default max_filter_ratio 0: one bad row fails the whole load, nothing applied.
    let r = load(&env, "orders", "f1", &[], body).await;
    assert_eq!(r.status_field(), "Fail");
    let v = r.json();
    assert_eq!(v["Message"].as_str(), Some("too many filtered rows"));
    assert_eq!(
        (
            v["NumberTotalRows"].as_u64(),
            v["NumberFilteredRows"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert!(v["ErrorURL"].as_str().is_some());
    assert_eq!(
        env.rows("SELECT id, status FROM sink.orders").await,
        vec!["9\tbefore"]
    );
    assert_eq!(env.label_state("f1").await, "ABORTED");
    // Ratio 1/3 <= 0.34: applied.
    let r = load(&env, "orders", "f1", &[("max_filter_ratio", "0.34")], body).await;
    assert_eq!(
        r.status_field(),
        "Success",
        "an aborted label can be used again: {}",
        r.body
    );
    assert_eq!(r.json()["NumberLoadedRows"].as_u64(), Some(2));
    assert_eq!(
        env.rows("SELECT id, status FROM sink.orders").await,
        vec!["1\tok"]
    );
    // Malformed JSON fails the whole load.
    let r = load(
        &env,
        "orders",
        "f2",
        &[],
        r#"[{"id":5,"status":"a","ver":1},{"id":"#,
    )
    .await;
    // A missing NOT NULL key loads NULL and filters the row (not the column default).
    let r2 = load(&env, "orders", "f3", &[], r#"[{"id":6,"status":"a"}]"#).await;
    assert_eq!(r2.status_field(), "Fail", "{}", r2.body);
    assert_eq!(r.status_field(), "Fail");
    assert!(
        r.json()["Message"].as_str().unwrap_or("").contains("JSON"),
        "{}",
        r.body
    );
    assert_eq!(
        env.rows("SELECT COUNT(*) FROM sink.orders").await,
        vec!["1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_jsonpaths_and_big_loads() {
    let env = Env::start().await;
    env.sql(ORDERS).await;
    let r = env
        .load(
            "orders",
            &[
                ("label", "csv1"),
                ("column_separator", ","),
                ("columns", "id,status,amount,note,ver,__op"),
            ],
            "1,a,1.5,\\N,1,0\n2,b,2,x,1,0\n2,b,2,x,1,1\n",
        )
        .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT id, status, note FROM sink.orders").await,
        vec!["1\ta\tNULL"]
    );
    let r = env
        .load(
            "orders",
            &[
                ("label", "jp1"),
                ("format", "json"),
                ("jsonpaths", r#"["$.k","$.s.v","$.n"]"#),
                ("columns", "id,status,ver"),
            ],
            r#"{"k":4,"s":{"v":"deep"},"n":3}"#,
        )
        .await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT status, ver FROM sink.orders WHERE id = 4")
            .await,
        vec!["deep\t3"]
    );
    // Tens of thousands of rows in one load (multi-row statements).
    let mut body = String::from("[");
    for i in 0..30_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"id":{},"status":"s{}","amount":{}.25,"ver":{i}}}"#,
            1000 + i,
            i % 7,
            i % 100
        ));
    }
    body.push(']');
    let r = load(&env, "orders", "big1", &[], &body).await;
    assert_eq!(r.status_field(), "Success", "{}", r.body);
    assert_eq!(
        env.rows("SELECT COUNT(*), SUM(ver) FROM sink.orders WHERE id >= 1000")
            .await,
        vec!["30000\t449985000"]
    );
}

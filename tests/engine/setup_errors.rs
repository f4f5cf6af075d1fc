//! Every setup error, produced by a real misconfiguration of a real PostgreSQL or
//! sink, reported by the engine with its message (stage FAILED for the ones an
//! operator must fix; recorded while retrying for the transient ones).

use std::time::{Duration, Instant};

use dbmazz::engine::status::Stage;
use dbmazz::engine::EngineSettings;
use dbmazz::sink::starrocks::StarRocksSettings;
use dbmazz_testkit::engine::Running;
use dbmazz_testkit::stack::{PUBLICATION, SLOT, SOURCE_DB};
use dbmazz_testkit::{PgConfig, Stack, StackConfig};

const T: Duration = Duration::from_secs(60);

/// Runs the engine until it records an error; returns (stage, message).
async fn first_error(settings: EngineSettings<StarRocksSettings>) -> (Stage, String) {
    let run = Running::start(settings);
    let start = Instant::now();
    loop {
        if let Some(e) = run.state().last_error() {
            let stage = run.state().stage();
            run.abort().await;
            return (stage, e.message);
        }
        assert!(
            run.state().stage() != Stage::Cdc,
            "setup succeeded but an error was expected"
        );
        assert!(start.elapsed() < T, "no error recorded within {T:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn expect_blocked(settings: EngineSettings<StarRocksSettings>, fragments: &[&str]) {
    let (stage, msg) = first_error(settings).await;
    assert_eq!(stage, Stage::Failed, "{msg}");
    for f in fragments {
        assert!(msg.contains(f), "{f:?} not in: {msg}");
    }
}

async fn expect_retrying(settings: EngineSettings<StarRocksSettings>, fragments: &[&str]) {
    let (stage, msg) = first_error(settings).await;
    assert_ne!(
        stage,
        Stage::Failed,
        "a transient problem must be retried: {msg}"
    );
    for f in fragments {
        assert!(msg.contains(f), "{f:?} not in: {msg}");
    }
}

fn url_for_role(stack: &Stack, role: &str) -> String {
    format!(
        "postgres://{role}@127.0.0.1:{}/{SOURCE_DB}",
        stack.pg.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_connect_names_the_endpoint_and_is_retried() {
    let stack = Stack::start().await.expect("start the stack");
    let mut s = stack.engine_settings(&["t"]);
    let closed = dbmazz_testkit::free_port();
    s.source_url = format!("postgres://postgres@127.0.0.1:{closed}/{SOURCE_DB}").into();
    expect_retrying(
        s,
        &[
            "Cannot connect to PostgreSQL",
            &format!("127.0.0.1:{closed}"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_wal_level_says_what_to_change() {
    let stack = Stack::start_with(
        StackConfig::default().pg(PgConfig::default().setting("wal_level", "replica")),
    )
    .await
    .expect("start the stack");
    stack.create_kv_table("t").await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["wal_level is 'replica'", "wal_level = logical"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_role_without_replication_is_named() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql("CREATE ROLE app LOGIN; GRANT ALL ON t TO app")
        .await;
    let mut s = stack.engine_settings(&["t"]);
    s.source_url = url_for_role(&stack, "app").into();
    expect_blocked(s, &["Role 'app'", "WITH REPLICATION"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_table_not_found_names_the_table() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    expect_blocked(
        stack.engine_settings(&["t", "orders"]),
        &[
            "Table 'public.orders' not found in PostgreSQL",
            "schema.table",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_table_without_primary_key() {
    let stack = Stack::start().await.expect("start the stack");
    stack
        .source_sql("CREATE TABLE nokey (id int, v text)")
        .await;
    expect_blocked(
        stack.engine_settings(&["nokey"]),
        &["'public.nokey' has no primary key", "ADD PRIMARY KEY"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_replica_identity_nothing_is_refused_when_kept() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql("ALTER TABLE t REPLICA IDENTITY NOTHING")
        .await;
    let mut s = stack.engine_settings(&["t"]);
    s.replica_identity_full = false;
    expect_blocked(s, &["REPLICA IDENTITY NOTHING", "REPLICA IDENTITY FULL"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_replica_identity_cannot_be_altered_by_a_non_owner() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql("CREATE ROLE repl LOGIN REPLICATION; GRANT ALL ON t TO repl; GRANT CREATE ON DATABASE app TO repl")
        .await;
    let mut s = stack.engine_settings(&["t"]);
    s.source_url = url_for_role(&stack, "repl").into();
    expect_blocked(
        s,
        &[
            "Cannot set REPLICA IDENTITY FULL on 'public.t'",
            "DBMAZZ_REPLICA_IDENTITY=keep",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_publication_cannot_be_created_by_a_non_owner() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql(
            "ALTER TABLE t REPLICA IDENTITY FULL;
             CREATE ROLE repl LOGIN REPLICATION; GRANT ALL ON t TO repl; GRANT CREATE ON DATABASE app TO repl",
        )
        .await;
    let mut s = stack.engine_settings(&["t"]);
    s.source_url = url_for_role(&stack, "repl").into();
    expect_blocked(
        s,
        &[
            &format!("Cannot create or extend publication '{PUBLICATION}'"),
            "CREATE PUBLICATION",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_publication_without_truncate_is_refused() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql(
            &format!("CREATE PUBLICATION {PUBLICATION} FOR TABLE t WITH (publish = 'insert, update, delete')"),
        )
        .await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["does not publish truncate", "ALTER PUBLICATION"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_slot_with_another_plugin() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql(&format!(
            "SELECT pg_create_logical_replication_slot('{SLOT}', 'test_decoding')"
        ))
        .await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["uses output plugin 'test_decoding'", "never drops slots"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_slot_of_another_database() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .pg
        .psql(
            "postgres",
            &format!("SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"),
        )
        .expect("slot in another database");
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["belongs to database 'postgres'", "connects to 'app'"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_invalidated_slot_is_never_recreated() {
    let stack = Stack::start_with(
        StackConfig::default().pg(PgConfig::default()
            .setting("max_slot_wal_keep_size", "1MB")
            .setting("max_wal_size", "32MB")
            .setting("min_wal_size", "32MB")),
    )
    .await
    .expect("start the stack");
    stack.create_kv_table("t").await;
    let run = Running::start(stack.engine_settings(&["t"]));
    run.wait_stage(Stage::Cdc, T).await;
    run.abort().await;
    for _ in 0..4 {
        stack
            .source_sql("INSERT INTO t SELECT g + (SELECT coalesce(max(id), 0) FROM t), repeat('x', 200) FROM generate_series(1, 2000) g; SELECT pg_switch_wal();")
            .await;
    }
    stack.source_sql("CHECKPOINT").await;
    let status = stack
        .pg
        .psql(
            SOURCE_DB,
            &format!("SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{SLOT}'"),
        )
        .expect("slot status");
    assert_eq!(
        status.trim(),
        "lost",
        "the test did not invalidate the slot"
    );
    expect_blocked(
        stack.engine_settings(&["t"]),
        &[
            "is invalidated (wal_status = lost)",
            "will not drop or recreate",
        ],
    )
    .await;
    // Still there, still lost: nothing was recreated behind the operator's back.
    let status = stack
        .pg
        .psql(
            SOURCE_DB,
            &format!("SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{SLOT}'"),
        )
        .expect("slot status");
    assert_eq!(status.trim(), "lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_missing_slot_with_a_checkpoint_is_not_recreated() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let run = Running::start(stack.engine_settings(&["t"]));
    run.wait_stage(Stage::Cdc, T).await;
    run.drain().await.expect("drain");
    // The walsender of the drained stream may need a moment to go away.
    let start = Instant::now();
    while let Err(e) = stack.pg.psql(
        SOURCE_DB,
        &format!("SELECT pg_drop_replication_slot('{SLOT}')"),
    ) {
        assert!(start.elapsed() < T, "cannot drop the slot: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["does not exist, but job 'job1' has a checkpoint", "Re-sync"],
    )
    .await;
    assert!(stack.confirmed(SLOT).await.is_none(), "no slot was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_slot_advanced_behind_dbmazz_is_detected() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let run = Running::start(stack.engine_settings(&["t"]));
    run.wait_stage(Stage::Cdc, T).await;
    run.drain().await.expect("drain");
    stack
        .source_sql(&format!(
            "INSERT INTO t VALUES (1, 'lost if skipped');
             SELECT pg_replication_slot_advance('{SLOT}', pg_current_wal_lsn())"
        ))
        .await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["beyond job 'job1''s checkpoint", "another consumer"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_slot_in_use_by_another_process_is_retried() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql(&format!(
            "SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput'); CREATE PUBLICATION {PUBLICATION} FOR TABLE t"
        ))
        .await;
    let bin = dbmazz_testkit::postgres::pg_bin_dir()
        .expect("pg bin")
        .join("pg_recvlogical");
    let mut holder = std::process::Command::new(bin)
        .args([
            "-d",
            &stack.source_conn(),
            "--slot",
            SLOT,
            "--start",
            "-f",
            "/dev/null",
        ])
        .args([
            "-o",
            "proto_version=1",
            "-o",
            &format!("publication_names={PUBLICATION}"),
        ])
        .spawn()
        .expect("pg_recvlogical");
    let start = Instant::now();
    while stack
        .pg
        .psql(SOURCE_DB, &format!("SELECT active_pid IS NOT NULL FROM pg_replication_slots WHERE slot_name = '{SLOT}'"))
        .map(|s| s.trim() != "t")
        .unwrap_or(true)
    {
        assert!(start.elapsed() < T, "pg_recvlogical did not attach");
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_retrying(
        stack.engine_settings(&["t"]),
        &["is in use by another process", "Stop the other consumer"],
    )
    .await;
    let _ = holder.kill();
    let _ = holder.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_of_another_slot_is_refused() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let run = Running::start(stack.engine_settings(&["t"]));
    run.wait_stage(Stage::Cdc, T).await;
    run.drain().await.expect("drain");
    let mut s = stack.engine_settings(&["t"]);
    s.slot = "other_slot".into();
    expect_blocked(
        s,
        &[&format!(
            "has a checkpoint for slot '{SLOT}' but SOURCE_SLOT_NAME is 'other_slot'"
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_connect_names_the_port_and_is_retried() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let mut s = stack.engine_settings(&["t"]);
    let closed = dbmazz_testkit::free_port();
    s.sink.catalog.port = closed;
    expect_retrying(
        s,
        &[
            "Cannot connect to StarRocks",
            &format!(":{closed}"),
            "SINK_MYSQL_PORT",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_database_not_found() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let mut s = stack.engine_settings(&["t"]);
    s.sink.catalog.database = "nowhere".into();
    s.sink.database = "nowhere".into();
    expect_blocked(
        s,
        &["Database 'nowhere' not found in StarRocks", "SINK_DATABASE"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_table_not_found_suggests_the_ddl() {
    let stack = Stack::start().await.expect("start the stack");
    stack
        .source_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &[
            "Table 'sink.t' not found in StarRocks",
            "CREATE TABLE `sink`.`t`",
            "PRIMARY KEY (`id`)",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_table_that_is_not_a_primary_key_table() {
    let stack = Stack::start().await.expect("start the stack");
    stack
        .source_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    stack.sink_sql("CREATE TABLE t (id INT, v LONGTEXT)").await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["is not a Primary Key table", "PRIMARY KEY (id)"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_key_different_from_the_source_key() {
    let stack = Stack::start().await.expect("start the stack");
    stack
        .source_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    stack
        .sink_sql("CREATE TABLE t (id INT, v VARCHAR(10) PRIMARY KEY)")
        .await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &["has PRIMARY KEY (v)", "has (id)"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_user_without_alter_privilege() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .maria
        .sql(
            "CREATE USER 'loader'@'127.0.0.1' IDENTIFIED BY 'pw';
             GRANT SELECT, INSERT, UPDATE, DELETE ON sink.* TO 'loader'@'127.0.0.1';",
        )
        .expect("sink user");
    let mut s = stack.engine_settings(&["t"]);
    s.sink.catalog.user = "loader".into();
    s.sink.catalog.password = "pw".into();
    expect_blocked(s, &["Cannot alter StarRocks table 'sink.t'", "needs ALTER"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_query_failure_names_the_step_and_the_server_hint() {
    // max_replication_slots exhausted: slot creation fails on the server.
    let stack = Stack::start_with(
        StackConfig::default().pg(PgConfig::default().setting("max_replication_slots", "1")),
    )
    .await
    .expect("start the stack");
    stack.create_kv_table("t").await;
    stack
        .source_sql("SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')")
        .await;
    expect_blocked(
        stack.engine_settings(&["t"]),
        &[
            "setup step 'creating the replication slot' failed",
            "max_replication_slots",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_store_without_create_privilege() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    stack.source_sql("CREATE ROLE nocreate LOGIN").await;
    let mut s = stack.engine_settings(&["t"]);
    s.checkpoint_url = url_for_role(&stack, "nocreate").into();
    expect_blocked(
        s,
        &[
            "Checkpoint store failed",
            "permission denied",
            "DBMAZZ_CHECKPOINT_URL",
        ],
    )
    .await;
}

//! Each service really serves: these tests talk to it over real sockets.

use dbmazz_testkit::{MariaDb, PgCluster, RedisServer, StopMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_logical_slot_returns_changes() {
    let pg = PgCluster::start().expect("start postgres");
    let client = pg.client("postgres").await.expect("connect");
    // Separate statements: a slot cannot be created in a transaction that wrote.
    for sql in [
        "CREATE TABLE t (id int primary key, v text)",
        "SELECT pg_create_logical_replication_slot('s1', 'test_decoding')",
        "INSERT INTO t VALUES (1, 'one')",
    ] {
        client.batch_execute(sql).await.expect(sql);
    }
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_changes('s1', NULL, NULL)",
            &[],
        )
        .await
        .expect("peek");
    let data: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(
        data.iter()
            .any(|d| d.contains("INSERT") && d.contains("'one'")),
        "{data:?}"
    );
    let level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(level, "logical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_immediate_restart() {
    let mut pg = PgCluster::start().expect("start postgres");
    pg.psql(
        "postgres",
        "CREATE TABLE k (id int); INSERT INTO k VALUES (7)",
    )
    .expect("write");
    pg.restart(StopMode::Immediate).expect("restart");
    let out = pg.psql("postgres", "SELECT id FROM k").expect("read");
    assert_eq!(out.trim(), "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_answers_queries_over_tcp() {
    use mysql_async::prelude::Queryable;
    let db = MariaDb::start().expect("start mariadb");
    db.create_database("sink").expect("create db");
    let pool = db.pool("sink");
    let mut conn = pool.get_conn().await.expect("connect");
    conn.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        .await
        .expect("create");
    conn.query_drop("INSERT INTO t VALUES (1, 'x')")
        .await
        .expect("insert");
    let v: Option<String> = conn
        .query_first("SELECT v FROM t WHERE id = 1")
        .await
        .expect("select");
    assert_eq!(v.as_deref(), Some("x"));
    drop(conn);
    pool.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_ping_set_get() {
    let mut r = RedisServer::start().expect("start redis");
    let client = r.client().expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .expect("set");
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .expect("get");
    assert_eq!(v, "v");
    r.restart().expect("restart");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reconnect");
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .expect("get after restart");
    assert_eq!(v, None, "no persistence: a restart loses keys");
}

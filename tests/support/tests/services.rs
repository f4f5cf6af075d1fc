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

fn s3_client(s3: &dbmazz_testkit::S3Server) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(dbmazz_testkit::s3::REGION))
        .credentials_provider(Credentials::new(
            dbmazz_testkit::s3::ACCESS_KEY,
            dbmazz_testkit::s3::SECRET_KEY,
            None,
            None,
            "testkit",
        ))
        .endpoint_url(s3.endpoint())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_put_then_get_returns_the_same_bytes() {
    use aws_sdk_s3::primitives::ByteStream;
    let s3 = dbmazz_testkit::S3Server::start().expect("start s3");
    let client = s3_client(&s3);
    // Every byte value, and more than one read buffer's worth.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    client
        .put_object()
        .bucket(s3.bucket())
        .key("spill/job/1/part-0001")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let got = client
        .get_object()
        .bucket(s3.bucket())
        .key("spill/job/1/part-0001")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("read body")
        .into_bytes();
    assert_eq!(got.as_ref(), body.as_slice());
    assert_eq!(
        s3.object_keys(s3.bucket()).expect("keys"),
        vec!["spill/job/1/part-0001".to_owned()]
    );
    assert_eq!(
        s3.object(s3.bucket(), "spill/job/1/part-0001")
            .expect("object"),
        body
    );
    let listed = client
        .list_objects_v2()
        .bucket(s3.bucket())
        .prefix("spill/")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(1));
    client
        .delete_object()
        .bucket(s3.bucket())
        .key("spill/job/1/part-0001")
        .send()
        .await
        .expect("delete");
    assert!(s3.object_keys(s3.bucket()).expect("keys").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_rejects_wrong_credentials() {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let s3 = dbmazz_testkit::S3Server::start().expect("start s3");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            dbmazz_testkit::s3::ACCESS_KEY,
            "not-the-secret",
            None,
            None,
            "testkit",
        ))
        .endpoint_url(s3.endpoint())
        .force_path_style(true)
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    let r = client
        .put_object()
        .bucket(s3.bucket())
        .key("k")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await;
    assert!(r.is_err(), "a bad signature must be refused");
    assert!(s3.object_keys(s3.bucket()).expect("keys").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_and_recovery_keep_the_objects() {
    use aws_sdk_s3::primitives::ByteStream;
    let mut s3 = dbmazz_testkit::S3Server::start().expect("start s3");
    s3.create_bucket("second").expect("bucket");
    let client = s3_client(&s3);
    client
        .put_object()
        .bucket("second")
        .key("a")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .expect("put");
    s3.stop();
    let down = client.get_object().bucket("second").key("a").send().await;
    assert!(down.is_err(), "the server is stopped");
    s3.start_again().expect("restart");
    let client = s3_client(&s3);
    let got = client
        .get_object()
        .bucket("second")
        .key("a")
        .send()
        .await
        .expect("get after restart")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(got.as_ref(), b"kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_collector_records_spans_and_metrics() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::time::Duration;

    let collector = dbmazz_testkit::OtlpCollector::start().expect("start collector");
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let resource = Some(Resource {
        attributes: vec![kv("service.name", "testkit")],
        ..Default::default()
    });
    let mut traces = TraceServiceClient::connect(collector.endpoint())
        .await
        .expect("connect");
    traces
        .export(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource.clone(),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "load_batch".into(),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        attributes: vec![kv("table", "orders")],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .expect("export spans");
    let span = collector
        .wait_for_span("load_batch", Duration::from_secs(5))
        .expect("span recorded");
    assert_eq!(span.trace_id, "01".repeat(16));
    assert_eq!(
        span.attributes.get("table").map(String::as_str),
        Some("orders")
    );
    assert_eq!(span.service_name(), Some("testkit"));

    let mut metrics = MetricsServiceClient::connect(collector.endpoint())
        .await
        .expect("connect");
    metrics
        .export(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource,
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "rows_loaded".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("table", "orders")],
                                value: Some(number_data_point::Value::AsInt(42)),
                                ..Default::default()
                            }],
                            is_monotonic: true,
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .expect("export metrics");
    let m = collector
        .wait_for_metric("rows_loaded", Duration::from_secs(5))
        .expect("metric recorded");
    assert_eq!(m.kind, "sum");
    assert_eq!(m.points[0].value, 42.0);
    assert_eq!(collector.request_counts(), (1, 1));
}

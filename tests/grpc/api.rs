//! The control plane over real sockets with tonic clients: every RPC, the
//! standard health service per service name, reflection, token checks, and a
//! server that stays up whatever the pipelines do.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::server::{eventually, react_like_engine, settings, with_token, Server, VERSION};
use dbmazz::engine::setup::SetupError;
use dbmazz::engine::status::Stage;
use dbmazz::grpc::pb;
use dbmazz::grpc::pb::control_service_client::ControlServiceClient;
use dbmazz::grpc::pb::health_service_client::HealthServiceClient;
use dbmazz::grpc::pb::metrics_service_client::MetricsServiceClient;
use dbmazz::grpc::pb::status_service_client::StatusServiceClient;
use dbmazz::grpc::{GrpcError, GrpcServer, GrpcSettings};
use dbmazz::lsn::Lsn;
use dbmazz::sink::metrics::TableCounters;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus as Std;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest as StdReq;

fn control_request(job: &str, wait_ms: u32) -> pb::ControlRequest {
    pb::ControlRequest {
        job_id: job.into(),
        wait_ms,
    }
}

#[tokio::test]
async fn status_rpcs_report_what_shared_state_holds() {
    let srv = Server::start(settings()).await;
    let orders = srv.add("orders", Stage::Cdc);
    let s = &orders.state;
    s.pipeline.received_lsn.raise(Lsn(0x1_0000_0100));
    s.flushed_lsn.raise(Lsn(0x1_0000_00F0));
    s.checkpoint_lsn.raise(Lsn(0x1_0000_00F0));
    s.confirmed_lsn.raise(Lsn(0x1_0000_00E0));
    s.pipeline.server_wal_lsn.raise(Lsn(0x1_0000_0200));
    s.pipeline.events.store(1234, Ordering::Relaxed);
    s.bytes.store(98_765, Ordering::Relaxed);
    s.pipeline.transactions.store(40, Ordering::Relaxed);
    s.batches.store(7, Ordering::Relaxed);
    s.sink.rows_loaded.store(900, Ordering::Relaxed);
    s.sink.loads_ok.store(12, Ordering::Relaxed);
    s.sink.loads_retried.store(2, Ordering::Relaxed);
    s.sink.loads_failed.store(1, Ordering::Relaxed);
    s.lease_epoch.store(5, Ordering::Relaxed);
    s.set_holder(Some("worker-a".into()));
    let commit_us = dbmazz::clock::unix_micros() - 1_500_000;
    s.last_commit_unix_us.store(commit_us, Ordering::Relaxed);
    s.sink.add_table_counts(
        "public.orders",
        &TableCounters {
            inserts: 600,
            updates: 250,
            deletes: 50,
            truncates: 1,
        },
    );
    s.record_error("StarRocks answered 503; retrying");
    let billing = srv.add("billing", Stage::Failed);
    billing
        .state
        .record_error("Table 'public.billing' has no primary key.");

    let mut status = StatusServiceClient::new(srv.channel().await);
    let list = status
        .list_pipelines(pb::ListPipelinesRequest {})
        .await
        .expect("ListPipelines")
        .into_inner();
    assert_eq!(list.version, VERSION);
    let jobs: Vec<&str> = list.pipelines.iter().map(|p| p.job_id.as_str()).collect();
    assert_eq!(jobs, ["billing", "orders"]);

    let p = status
        .get_status(pb::GetStatusRequest {
            job_id: "orders".into(),
        })
        .await
        .expect("GetStatus")
        .into_inner();
    assert_eq!(p.stage, pb::Stage::Cdc as i32);
    assert_eq!(p.slot, "slot_orders");
    assert_eq!(p.publication, "pub_orders");
    let lsn = |l: &Option<pb::Lsn>| l.clone().expect("lsn present");
    assert_eq!(lsn(&p.received_lsn).value, 0x1_0000_0100);
    assert_eq!(lsn(&p.received_lsn).text, "1/100");
    assert_eq!(lsn(&p.flushed_lsn).value, 0x1_0000_00F0);
    assert_eq!(lsn(&p.checkpoint_lsn).value, 0x1_0000_00F0);
    assert_eq!(lsn(&p.confirmed_lsn).text, "1/E0");
    assert_eq!(lsn(&p.server_wal_lsn).value, 0x1_0000_0200);
    assert_eq!(p.lag_bytes, 0x200 - 0xE0);
    assert!(p.lag_ms >= 1500 && p.lag_ms < 60_000, "lag_ms {}", p.lag_ms);
    assert_eq!(p.last_commit_unix_ms, commit_us / 1000);
    assert_eq!(
        (p.events, p.bytes, p.transactions, p.batches, p.rows_loaded),
        (1234, 98_765, 40, 7, 900)
    );
    assert_eq!((p.loads_ok, p.loads_retried, p.loads_failed), (12, 2, 1));
    assert_eq!(p.tables.len(), 1);
    let t = &p.tables[0];
    assert_eq!(
        (
            t.table.as_str(),
            t.inserts,
            t.updates,
            t.deletes,
            t.truncates
        ),
        ("public.orders", 600, 250, 50, 1)
    );
    let err = p.last_error.expect("last error");
    assert_eq!(err.message, "StarRocks answered 503; retrying");
    assert!(err.unix_ms > 0);
    assert_eq!(p.version, VERSION);
    assert_eq!((p.lease_holder.as_str(), p.lease_epoch), ("worker-a", 5));
    assert!(!p.paused);
    let slot = p.slot_status.expect("slot status");
    assert!(!slot.known);
    assert!(slot.error.contains("not configured"), "{}", slot.error);

    // An empty job id is ambiguous with two pipelines, a typo is named.
    let e = status
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect_err("ambiguous");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("billing, orders"), "{}", e.message());
    let e = status
        .get_status(pb::GetStatusRequest {
            job_id: "ordres".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("ordres"), "{}", e.message());

    // With one pipeline an empty job id selects it.
    srv.pipelines.remove("billing");
    let p = status
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("single pipeline")
        .into_inner();
    assert_eq!(p.job_id, "orders");
}

#[tokio::test]
async fn health_shows_a_setup_error_while_the_server_stays_up_then_serving_after_the_fix() {
    let srv = Server::start(settings()).await;
    let h = srv.add("orders", Stage::Setup);
    let ch = srv.channel().await;
    let mut health = HealthServiceClient::new(ch.clone());
    let mut std_health = HealthClient::new(ch.clone());
    let mut watch = std_health
        .watch(StdReq {
            service: String::new(),
        })
        .await
        .expect("Watch")
        .into_inner();
    let first = watch.next().await.expect("first").expect("ok");
    assert_eq!(first.status, Std::NotServing as i32);

    // Setup found a problem an operator must fix: FAILED with the SetupError text.
    let setup_error = SetupError::PgTableNotFound {
        table: "public.orders".into(),
    }
    .to_string();
    h.state.record_error(setup_error.clone());
    h.state.set_stage(Stage::Failed);
    let r = health
        .check(pb::HealthCheckRequest::default())
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(r.status, pb::ServingStatus::NotServing as i32);
    assert_eq!(r.stage, pb::Stage::Failed as i32);
    assert_eq!(r.error_detail, setup_error);
    assert_eq!(r.pipelines.len(), 1);
    assert_eq!(r.pipelines[0].error_detail, setup_error);
    for name in ["", "dbmazz.v1.HealthService", "dbmazz.job.orders"] {
        let r = std_health
            .check(StdReq {
                service: name.into(),
            })
            .await
            .expect("std Check")
            .into_inner();
        assert_eq!(r.status, Std::NotServing as i32, "service '{name}'");
    }
    // Everything else still answers.
    let mut status = StatusServiceClient::new(ch.clone());
    let p = status
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status while failed")
        .into_inner();
    assert_eq!(p.stage, pb::Stage::Failed as i32);

    // The operator fixes the table; the engine's retry sets up again and streams.
    h.state.set_stage(Stage::Setup);
    let r = health
        .check(pb::HealthCheckRequest::default())
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(r.status, pb::ServingStatus::NotServing as i32);
    assert_eq!(
        r.error_detail, setup_error,
        "the error stays until setup succeeds"
    );
    h.state.clear_error();
    h.state.set_stage(Stage::Cdc);
    let r = health
        .check(pb::HealthCheckRequest {
            job_id: "orders".into(),
        })
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(r.status, pb::ServingStatus::Serving as i32);
    assert_eq!(r.stage, pb::Stage::Cdc as i32);
    assert!(r.error_detail.is_empty());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("watch reports the change")
        .expect("item")
        .expect("ok");
    assert_eq!(next.status, Std::Serving as i32);

    // Paused on purpose still counts as serving.
    h.state.set_stage(Stage::Paused);
    let r = std_health
        .check(StdReq {
            service: String::new(),
        })
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(r.status, Std::Serving as i32);
}

#[tokio::test]
async fn standard_health_answers_per_service_name() {
    let srv = Server::start(settings()).await;
    srv.add("a", Stage::Cdc);
    let b = srv.add("b", Stage::Failed);
    b.state.record_error("boom");
    let mut std_health = HealthClient::new(srv.channel().await);
    let check = |name: &str| StdReq {
        service: name.into(),
    };
    let expect = [
        ("", Std::NotServing),
        ("dbmazz.v1.HealthService", Std::NotServing),
        ("dbmazz.job.a", Std::Serving),
        ("dbmazz.job.b", Std::NotServing),
        ("dbmazz.v1.StatusService", Std::Serving),
        ("dbmazz.v1.ControlService", Std::Serving),
        ("dbmazz.v1.MetricsService", Std::Serving),
        ("grpc.health.v1.Health", Std::Serving),
        ("grpc.reflection.v1.ServerReflection", Std::Serving),
        ("grpc.reflection.v1alpha.ServerReflection", Std::Serving),
    ];
    for (name, want) in expect {
        let r = std_health
            .check(check(name))
            .await
            .unwrap_or_else(|e| panic!("Check '{name}': {e}"))
            .into_inner();
        assert_eq!(r.status, want as i32, "service '{name}'");
    }
    for name in ["dbmazz.job.c", "no.such.Service"] {
        let e = std_health.check(check(name)).await.expect_err("unknown");
        assert_eq!(e.code(), Code::NotFound, "service '{name}'");
    }
    // Watch on an unknown name says SERVICE_UNKNOWN, then follows when it appears.
    let mut w = std_health
        .watch(check("dbmazz.job.c"))
        .await
        .expect("Watch")
        .into_inner();
    let first = w.next().await.expect("item").expect("ok");
    assert_eq!(first.status, Std::ServiceUnknown as i32);
    srv.add("c", Stage::Cdc);
    let next = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("update")
        .expect("item")
        .expect("ok");
    assert_eq!(next.status, Std::Serving as i32);
    b.state.set_stage(Stage::Cdc);
    let r = std_health
        .check(check(""))
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(r.status, Std::Serving as i32);
}

#[tokio::test]
async fn control_requires_the_configured_token() {
    let srv = Server::start(GrpcSettings {
        control_token: Some("tok-123".into()),
        ..settings()
    })
    .await;
    let h = srv.add("orders", Stage::Cdc);
    let mut control = ControlServiceClient::new(srv.channel().await);

    let e = control
        .pause(control_request("orders", 0))
        .await
        .expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.message().contains("authorization: Bearer"),
        "{}",
        e.message()
    );
    let e = control
        .pause(with_token(control_request("orders", 0), "tok-124"))
        .await
        .expect_err("wrong token");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        !e.message().contains("tok-12"),
        "never echo tokens: {}",
        e.message()
    );
    let e = control
        .drain_and_stop(with_token(control_request("", 0), "tok-12"))
        .await
        .expect_err("prefix of the token");
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut basic = tonic::Request::new(control_request("", 0));
    basic
        .metadata_mut()
        .insert("authorization", "Basic tok-123".parse().expect("ascii"));
    let e = control.stop(basic).await.expect_err("wrong scheme");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(!h.is_paused());
    assert!(!h.drain.is_cancelled() && !h.abort.is_cancelled());

    let r = control
        .pause(with_token(control_request("orders", 0), "tok-123"))
        .await
        .expect("right token")
        .into_inner();
    assert_eq!(r.pipelines.len(), 1);
    assert!(h.is_paused());

    // Read-only services stay open by default.
    let mut status = StatusServiceClient::new(srv.channel().await);
    let p = status
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("open status")
        .into_inner();
    assert!(p.paused);
}

#[tokio::test]
async fn control_without_a_configured_token_is_refused_unless_insecure() {
    let srv = Server::start(settings()).await;
    let h = srv.add("orders", Stage::Cdc);
    let mut control = ControlServiceClient::new(srv.channel().await);
    for token in [None, Some("anything")] {
        let req = match token {
            Some(t) => with_token(control_request("", 0), t),
            None => tonic::Request::new(control_request("", 0)),
        };
        let e = control.stop(req).await.expect_err("refused");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(
            e.message().contains("DBMAZZ_CONTROL_INSECURE"),
            "{}",
            e.message()
        );
    }
    assert!(!h.abort.is_cancelled());

    let srv = Server::start(GrpcSettings {
        control_insecure: true,
        ..settings()
    })
    .await;
    let h = srv.add("orders", Stage::Cdc);
    let mut control = ControlServiceClient::new(srv.channel().await);
    control
        .stop(control_request("", 0))
        .await
        .expect("insecure mode lets it through");
    assert!(h.abort.is_cancelled());
}

#[tokio::test]
async fn read_only_calls_can_require_the_token() {
    let srv = Server::start(GrpcSettings {
        control_token: Some("t0k".into()),
        status_requires_token: true,
        ..settings()
    })
    .await;
    srv.add("orders", Stage::Cdc);
    let ch = srv.channel().await;
    let e = StatusServiceClient::new(ch.clone())
        .list_pipelines(pb::ListPipelinesRequest {})
        .await
        .expect_err("needs the token");
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = MetricsServiceClient::new(ch.clone())
        .stream_metrics(pb::StreamMetricsRequest::default())
        .await
        .expect_err("needs the token");
    assert_eq!(e.code(), Code::Unauthenticated);
    StatusServiceClient::new(ch.clone())
        .list_pipelines(with_token(pb::ListPipelinesRequest {}, "t0k"))
        .await
        .expect("with the token");
    // Probes keep working without credentials.
    let r = HealthServiceClient::new(ch.clone())
        .check(pb::HealthCheckRequest::default())
        .await
        .expect("dbmazz health stays open")
        .into_inner();
    assert_eq!(r.status, pb::ServingStatus::Serving as i32);
    let r = HealthClient::new(ch.clone())
        .check(StdReq {
            service: String::new(),
        })
        .await
        .expect("standard health stays open")
        .into_inner();
    assert_eq!(r.status, Std::Serving as i32);
    let metrics = srv.metrics.expect("metrics addr");
    let (code, head, _) = crate::server::http_get(metrics, "GET", "/metrics", None).await;
    assert_eq!(code, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    let (code, _, _) =
        crate::server::http_get(metrics, "GET", "/metrics", Some("Bearer nope")).await;
    assert_eq!(code, 401);
    let (code, _, body) =
        crate::server::http_get(metrics, "GET", "/metrics", Some("Bearer t0k")).await;
    assert_eq!(code, 200);
    assert!(
        body.contains("dbmazz_events_total{job=\"orders\"} 0"),
        "{body}"
    );
}

#[tokio::test]
async fn control_rpcs_steer_pipelines_and_wait_for_the_result() {
    let srv = Server::start(GrpcSettings {
        control_token: Some("tok".into()),
        ..settings()
    })
    .await;
    let a = srv.add("a", Stage::Setup);
    let b = srv.add("b", Stage::Setup);
    a.state.pipeline.received_lsn.raise(Lsn(0x5000));
    a.state.checkpoint_lsn.raise(Lsn(0x4000));
    a.state.confirmed_lsn.raise(Lsn(0x4000));
    let ta = react_like_engine(a.clone());
    let tb = react_like_engine(b.clone());
    assert!(
        eventually(5, || a.state.stage() == Stage::Cdc
            && b.state.stage() == Stage::Cdc)
        .await
    );
    let mut control = ControlServiceClient::new(srv.channel().await);
    let call = |job: &str, wait| with_token(control_request(job, wait), "tok");

    let r = control
        .pause(call("a", 5000))
        .await
        .expect("Pause")
        .into_inner();
    assert_eq!(r.pipelines.len(), 1);
    let res = &r.pipelines[0];
    assert_eq!(res.job_id, "a");
    assert_eq!(res.stage_before, pb::Stage::Cdc as i32);
    assert_eq!(res.stage, pb::Stage::Paused as i32);
    assert!(res.reached);
    assert_eq!(b.state.stage(), Stage::Cdc, "only the named job pauses");

    let r = control
        .resume(call("a", 5000))
        .await
        .expect("Resume")
        .into_inner();
    assert!(r.pipelines[0].reached);
    assert_eq!(a.state.stage(), Stage::Cdc);

    // Empty job id: every pipeline.
    let r = control
        .pause(call("", 5000))
        .await
        .expect("Pause all")
        .into_inner();
    assert_eq!(r.pipelines.len(), 2);
    assert!(r
        .pipelines
        .iter()
        .all(|p| p.reached && p.stage == pb::Stage::Paused as i32));
    let r = control
        .resume(call("", 5000))
        .await
        .expect("Resume all")
        .into_inner();
    assert!(r.pipelines.iter().all(|p| p.stage == pb::Stage::Cdc as i32));

    // Without a wait the call returns at once with the request recorded.
    let r = control
        .pause(call("b", 0))
        .await
        .expect("Pause b")
        .into_inner();
    assert_eq!(r.pipelines[0].stage_before, pb::Stage::Cdc as i32);
    assert!(b.is_paused());
    assert!(eventually(5, || b.state.stage() == Stage::Paused).await);
    control.resume(call("b", 5000)).await.expect("Resume b");

    let r = control
        .drain_and_stop(call("a", 5000))
        .await
        .expect("DrainAndStop")
        .into_inner();
    let res = &r.pipelines[0];
    assert!(res.reached);
    assert_eq!(res.stage, pb::Stage::Stopped as i32);
    assert_eq!(res.checkpoint_lsn.as_ref().map(|l| l.value), Some(0x5000));
    assert_eq!(
        res.confirmed_lsn.as_ref().map(|l| l.text.as_str()),
        Some("0/5000")
    );
    ta.await.expect("a finished");

    let r = control
        .stop(call("b", 5000))
        .await
        .expect("Stop")
        .into_inner();
    assert!(r.pipelines[0].reached);
    assert!(b.abort.is_cancelled() && !b.drain.is_cancelled());
    tb.await.expect("b finished");

    // A wait that runs out says so instead of pretending.
    let c = srv.add("c", Stage::Setup);
    let r = control
        .pause(call("c", 200))
        .await
        .expect("Pause c")
        .into_inner();
    assert!(!r.pipelines[0].reached);
    assert_eq!(r.pipelines[0].stage, pb::Stage::Setup as i32);
    assert!(
        c.is_paused(),
        "the request stands; the engine pauses once streaming"
    );

    let e = control
        .pause(call("nope", 0))
        .await
        .expect_err("unknown job");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("a, b, c"), "{}", e.message());
    let e = control
        .pause(call("a", 10_000_000))
        .await
        .expect_err("wait too long");
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn control_on_a_worker_without_pipelines_is_an_empty_success() {
    let srv = Server::start(GrpcSettings {
        control_insecure: true,
        ..settings()
    })
    .await;
    let r = ControlServiceClient::new(srv.channel().await)
        .drain_and_stop(control_request("", 1000))
        .await
        .expect("nothing to drain")
        .into_inner();
    assert!(r.pipelines.is_empty());
    let r = HealthServiceClient::new(srv.channel().await)
        .check(pb::HealthCheckRequest::default())
        .await
        .expect("Check")
        .into_inner();
    assert_eq!(
        r.status,
        pb::ServingStatus::Serving as i32,
        "a standby worker is healthy"
    );
}

async fn reflected_services_v1(ch: tonic::transport::Channel) -> (BTreeSet<String>, Vec<u8>) {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut client = ServerReflectionClient::new(ch);
    let reqs = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "dbmazz.v1.ControlService".into(),
            )),
        },
    ];
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .expect("reflection v1")
        .into_inner();
    let mut names = BTreeSet::new();
    let mut file = Vec::new();
    while let Some(msg) = stream.next().await {
        match msg.expect("reflection response").message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                names.extend(l.service.into_iter().map(|s| s.name));
            }
            Some(MessageResponse::FileDescriptorResponse(f)) => {
                file = f.file_descriptor_proto.concat();
            }
            other => panic!("unexpected reflection answer: {other:?}"),
        }
    }
    (names, file)
}

#[tokio::test]
async fn reflection_lists_every_service_in_v1_and_v1alpha() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

    let srv = Server::start(settings()).await;
    let (names, file) = reflected_services_v1(srv.channel().await).await;
    let want: BTreeSet<String> = [
        "dbmazz.v1.ControlService",
        "dbmazz.v1.HealthService",
        "dbmazz.v1.MetricsService",
        "dbmazz.v1.StatusService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(names.is_superset(&want), "listed: {names:?}");
    // The descriptor of the file defining ControlService, decodable with its methods.
    use prost::Message;
    let fd = prost_types::FileDescriptorProto::decode(file.as_slice()).expect("descriptor");
    assert_eq!(fd.package.as_deref(), Some("dbmazz.v1"));
    let control = fd
        .service
        .iter()
        .find(|s| s.name.as_deref() == Some("ControlService"))
        .expect("ControlService in the file");
    let methods: Vec<_> = control
        .method
        .iter()
        .filter_map(|m| m.name.as_deref())
        .collect();
    assert_eq!(methods, ["Pause", "Resume", "DrainAndStop", "Stop"]);

    // grpcurl 1.8 only speaks v1alpha.
    let mut client = ServerReflectionClient::new(srv.channel().await);
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let mut alpha = BTreeSet::new();
    while let Some(msg) = stream.next().await {
        if let Some(MessageResponse::ListServicesResponse(l)) =
            msg.expect("response").message_response
        {
            alpha.extend(l.service.into_iter().map(|s| s.name));
        }
    }
    assert_eq!(alpha, names);
}

#[tokio::test]
async fn the_server_outlives_its_pipelines_and_stops_only_on_shutdown() {
    let srv = Server::start(GrpcSettings {
        control_insecure: true,
        ..settings()
    })
    .await;
    let h = srv.add("orders", Stage::Cdc);
    let ch = srv.channel().await;
    let mut metrics = MetricsServiceClient::new(ch.clone())
        .stream_metrics(pb::StreamMetricsRequest {
            interval_ms: 100,
            job_id: String::new(),
        })
        .await
        .expect("StreamMetrics")
        .into_inner();
    let mut watch = HealthClient::new(ch.clone())
        .watch(StdReq {
            service: String::new(),
        })
        .await
        .expect("Watch")
        .into_inner();
    metrics.next().await.expect("snapshot").expect("ok");
    watch.next().await.expect("status").expect("ok");

    // The pipeline fails and goes away; the control plane keeps answering.
    h.state
        .record_error("replication slot \"slot_orders\" was invalidated (wal_status = lost)");
    h.state.set_stage(Stage::Failed);
    srv.pipelines.remove("orders");
    let r = HealthServiceClient::new(ch.clone())
        .check(pb::HealthCheckRequest::default())
        .await
        .expect("still up")
        .into_inner();
    assert_eq!(r.pipelines.len(), 0);
    let snap = metrics.next().await.expect("still streaming").expect("ok");
    assert!(snap.pipelines.is_empty());

    // Shutdown ends open streams so the graceful stop completes.
    srv.shutdown().await.expect("clean stop");
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = metrics.next().await {}
        while let Some(Ok(_)) = watch.next().await {}
    })
    .await;
    assert!(end.is_ok(), "streams end at shutdown");
}

#[tokio::test]
async fn unusable_settings_fail_with_a_clear_message() {
    let bind = |s: GrpcSettings| async move {
        GrpcServer::bind(s, dbmazz::engine::Pipelines::new(), VERSION, None).await
    };
    let e = bind(GrpcSettings {
        control_token: Some(String::new().into()),
        ..settings()
    })
    .await
    .expect_err("empty token");
    assert!(matches!(e, GrpcError::Settings(_)), "{e}");
    assert!(e.to_string().contains("DBMAZZ_CONTROL_TOKEN"), "{e}");
    let e = bind(GrpcSettings {
        control_token: Some("has space".into()),
        ..settings()
    })
    .await
    .expect_err("token with a space");
    assert!(e.to_string().contains("visible ASCII"), "{e}");
    assert!(
        !e.to_string().contains("has space"),
        "never show the token: {e}"
    );
    let e = bind(GrpcSettings {
        status_requires_token: true,
        ..settings()
    })
    .await
    .expect_err("read token without a token");
    assert!(e.to_string().contains("DBMAZZ_CONTROL_TOKEN"), "{e}");

    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let e = bind(GrpcSettings { addr, ..settings() })
        .await
        .expect_err("address in use");
    let msg = e.to_string();
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("DBMAZZ_GRPC_ADDR"),
        "{msg}"
    );
    let e = bind(GrpcSettings {
        metrics_addr: Some(addr),
        ..settings()
    })
    .await
    .expect_err("metrics address in use");
    assert!(e.to_string().contains("DBMAZZ_METRICS_ADDR"), "{e}");

    // Debug output of the settings never shows the token.
    let s = GrpcSettings {
        control_token: Some("sekrit".into()),
        ..settings()
    };
    assert!(!format!("{s:?}").contains("sekrit"));
}

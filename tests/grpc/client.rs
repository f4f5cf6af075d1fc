//! The CLI's client functions (`status`, `pause|resume|drain|stop`,
//! `healthcheck`) against a real server, and TLS on the gRPC port.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::server::{react_like_engine, settings, Server, VERSION};
use dbmazz::cli::control::{run_control, run_healthcheck, run_status};
use dbmazz::config::TlsFiles;
use dbmazz::engine::status::Stage;
use dbmazz::grpc::client::{Client, ClientError, ClientOptions, ControlAction};
use dbmazz::grpc::GrpcSettings;
use dbmazz::lsn::Lsn;
use dbmazz::sink::metrics::TableCounters;
use tonic::Code;

#[tokio::test]
async fn status_control_and_healthcheck_commands() {
    let srv = Server::start(GrpcSettings {
        control_token: Some("cli-token".into()),
        ..settings()
    })
    .await;
    let h = srv.add("orders", Stage::Setup);
    h.state.pipeline.received_lsn.raise(Lsn(0x3_0000_0040));
    h.state.sink.rows_loaded.store(77, Ordering::Relaxed);
    h.state.sink.add_table_counts(
        "public.orders",
        &TableCounters {
            inserts: 70,
            updates: 7,
            ..TableCounters::default()
        },
    );
    let engine = react_like_engine(h.clone());
    let opts = ClientOptions::new(srv.grpc.to_string());

    let text = run_status(&opts, false).await.expect("status");
    assert!(text.contains(&format!("dbmazz {VERSION}")), "{text}");
    assert!(text.contains("orders") && text.contains("CDC"), "{text}");
    assert!(text.contains("3/40"), "{text}");
    assert!(text.contains("public.orders"), "{text}");
    let json = run_status(&opts, true).await.expect("status --json");
    let v: sonic_rs::Value = sonic_rs::from_str(&json).expect("valid JSON");
    use sonic_rs::JsonValueTrait;
    assert_eq!(v["pipelines"][0]["job_id"].as_str(), Some("orders"));
    assert_eq!(v["pipelines"][0]["rows_loaded"].as_u64(), Some(77));
    assert_eq!(
        v["pipelines"][0]["received_lsn"]["text"].as_str(),
        Some("3/40")
    );

    let hc = run_healthcheck(&opts, None).await;
    assert!(hc.serving, "{}", hc.text);
    assert_eq!(hc.text, "SERVING (CDC)");

    // Control without the token: an error that says how to pass it.
    let e = run_control(&opts, ControlAction::Pause, None, Duration::ZERO)
        .await
        .expect_err("no token");
    match &e {
        ClientError::Rpc { code, .. } => assert_eq!(*code, Code::Unauthenticated),
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("--token"), "{e}");
    assert!(!h.is_paused());

    let authed = ClientOptions {
        token: Some("cli-token".into()),
        ..opts.clone()
    };
    let out = run_control(
        &authed,
        ControlAction::Pause,
        Some("orders"),
        Duration::from_secs(5),
    )
    .await
    .expect("pause");
    assert!(out.ok, "{}", out.text);
    assert!(
        out.text.contains("pause orders: CDC → PAUSED"),
        "{}",
        out.text
    );
    let hc = run_healthcheck(&opts, None).await;
    assert!(hc.serving, "paused on purpose is healthy: {}", hc.text);
    let out = run_control(&authed, ControlAction::Resume, None, Duration::from_secs(5))
        .await
        .expect("resume");
    assert!(out.ok && out.text.contains("PAUSED → CDC"), "{}", out.text);
    let out = run_control(
        &authed,
        ControlAction::Drain,
        Some("orders"),
        Duration::from_secs(5),
    )
    .await
    .expect("drain");
    assert!(out.ok, "{}", out.text);
    assert!(out.text.contains("CDC → STOPPED"), "{}", out.text);
    assert!(
        out.text.contains("checkpoint 3/40, confirmed 3/40"),
        "{}",
        out.text
    );
    engine.await.expect("engine stand-in finished");
    let e = run_control(&authed, ControlAction::Stop, Some("nope"), Duration::ZERO)
        .await
        .expect_err("unknown job");
    assert!(e.to_string().contains("no pipeline 'nope'"), "{e}");

    // A stopped pipeline is not serving; healthcheck says why.
    h.state.record_error("stopped by an operator");
    let hc = run_healthcheck(&opts, None).await;
    assert!(!hc.serving);
    assert!(hc.text.starts_with("NOT_SERVING (STOPPED)"), "{}", hc.text);
    assert!(hc.text.contains("stopped by an operator"), "{}", hc.text);
    let hc = run_healthcheck(&opts, Some("nope")).await;
    assert!(!hc.serving);

    // Nobody listening: not serving, with the address in the message.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let down = ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::new(free.to_string())
    };
    let hc = run_healthcheck(&down, None).await;
    assert!(!hc.serving);
    assert!(hc.text.starts_with("UNREACHABLE"), "{}", hc.text);
    assert!(hc.text.contains(&free.to_string()), "{}", hc.text);
}

#[tokio::test]
async fn wildcard_bind_address_is_dialed_on_loopback() {
    let srv = Server::start(settings()).await;
    srv.add("a", Stage::Cdc);
    let opts = ClientOptions::new(format!("0.0.0.0:{}", srv.grpc.port()));
    let hc = run_healthcheck(&opts, Some("a")).await;
    assert!(hc.serving, "{}", hc.text);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=dbmazz test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test]
async fn tls_on_the_grpc_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let srv = Server::start(GrpcSettings {
        tls: Some(TlsFiles {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
        }),
        ..settings()
    })
    .await;
    srv.add("orders", Stage::Cdc);
    let opts = ClientOptions {
        tls_ca: Some(dir.path().join("ca.pem")),
        tls_domain: Some("localhost".into()),
        ..ClientOptions::new(srv.grpc.to_string())
    };
    let text = run_status(&opts, false).await.expect("status over TLS");
    assert!(text.contains("orders"), "{text}");
    let hc = run_healthcheck(&opts, None).await;
    assert!(hc.serving, "{}", hc.text);

    // Plain text against the TLS port fails instead of hanging.
    let plain = ClientOptions {
        timeout: Duration::from_secs(3),
        ..ClientOptions::new(srv.grpc.to_string())
    };
    let r = match Client::connect(&plain).await {
        Ok(c) => c.list_pipelines().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.is_err(), "plain text must not work against TLS");

    // A CA that did not sign the server certificate is rejected.
    let other = tempfile::tempdir().expect("tempdir");
    make_certs(other.path());
    let wrong_ca = ClientOptions {
        tls_ca: Some(other.path().join("ca.pem")),
        timeout: Duration::from_secs(3),
        ..opts.clone()
    };
    assert!(Client::connect(&wrong_ca).await.is_err());

    // A missing certificate file is a clear start-up error.
    let e = dbmazz::grpc::GrpcServer::bind(
        GrpcSettings {
            tls: Some(TlsFiles {
                cert: dir.path().join("absent.pem"),
                key: dir.path().join("server.key"),
            }),
            ..settings()
        },
        dbmazz::engine::Pipelines::new(),
        VERSION,
        None,
    )
    .await
    .expect_err("missing certificate");
    assert!(e.to_string().contains("absent.pem"), "{e}");
    std::fs::write(dir.path().join("garbage.pem"), "not a certificate").expect("write");
    let e = dbmazz::grpc::GrpcServer::bind(
        GrpcSettings {
            tls: Some(TlsFiles {
                cert: dir.path().join("garbage.pem"),
                key: dir.path().join("server.key"),
            }),
            ..settings()
        },
        dbmazz::engine::Pipelines::new(),
        VERSION,
        None,
    )
    .await
    .expect_err("garbage certificate");
    assert!(matches!(e, dbmazz::grpc::GrpcError::Tls(_)), "{e}");
}

#[tokio::test]
async fn commands_print_and_exit_as_documented() {
    use dbmazz::cli::control::{
        self as commands, ConnectArgs, ControlArgs, HealthcheckArgs, StatusArgs,
    };
    let srv = Server::start(GrpcSettings {
        control_token: Some("cmd-token".into()),
        ..settings()
    })
    .await;
    let h = srv.add("orders", Stage::Cdc);
    let connect = |token: Option<&str>| ConnectArgs {
        addr: srv.grpc.to_string(),
        token: token.map(Into::into),
        tls_ca: None,
        tls_domain: None,
        timeout_ms: 3000,
    };
    let out = commands::status(&StatusArgs {
        connect: connect(None),
        json: false,
    })
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("orders") && out.stderr.is_empty(),
        "{out:?}"
    );
    let out = commands::healthcheck(&HealthcheckArgs {
        connect: connect(None),
        job: None,
    })
    .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "SERVING (CDC)\n"));

    let control = |token: Option<&str>, wait_ms| ControlArgs {
        connect: connect(token),
        job: Some("orders".into()),
        wait_ms,
    };
    let out = commands::control(ControlAction::Pause, &control(None, 0)).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: Pause failed"), "{out:?}");
    // Accepted, but nothing reacts to the pause here: not reached within the wait.
    let out = commands::control(ControlAction::Pause, &control(Some("cmd-token"), 200)).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("NOT PAUSED within the wait"), "{out:?}");
    assert!(h.is_paused());
    let out = commands::control(ControlAction::Resume, &control(Some("cmd-token"), 0)).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!h.is_paused());

    h.state.set_stage(Stage::Failed);
    h.state
        .record_error("Replication slot 'slot_orders' is missing");
    let out = commands::healthcheck(&HealthcheckArgs {
        connect: connect(None),
        job: Some("orders".into()),
    })
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("slot_orders"), "{out:?}");
}

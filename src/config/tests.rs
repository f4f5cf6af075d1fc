//! Unit tests of the loader: one test per rule, no process environment involved.

use std::io::Write as _;

use super::*;

const SOURCE: &str = "postgres://app:hunter2@db.internal:5432/shop";

fn base() -> Vec<(String, String)> {
    [
        ("SOURCE_URL", SOURCE),
        ("TABLES", "public.orders, sales.items"),
        ("SINK_URL", "http://fe.internal:8030"),
        ("SINK_DATABASE", "analytics"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = base();
    for (k, v) in extra {
        vars.retain(|(n, _)| n != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    vars
}

fn without(names: &[&str]) -> Vec<(String, String)> {
    base()
        .into_iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .collect()
}

fn ok(vars: Vec<(String, String)>) -> Config {
    match Config::from_vars(vars) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

fn err(vars: Vec<(String, String)>) -> ConfigError {
    match Config::from_vars(vars) {
        Ok(c) => panic!("expected an invalid configuration, got {c:?}"),
        Err(e) => e,
    }
}

/// The one problem about `var` (fails if there is not exactly one).
fn problem_of<'a>(e: &'a ConfigError, var: &str) -> &'a ConfigProblem {
    let found: Vec<&ConfigProblem> = e.problems.iter().filter(|p| p.variable == var).collect();
    assert_eq!(found.len(), 1, "problems about {var}: {e}");
    found[0]
}

fn job(c: &Config) -> &JobConfig {
    &c.jobs[0]
}

#[test]
fn minimal_environment_gets_the_documented_defaults() {
    let c = ok(base());
    let w = &c.worker;
    assert!(w.worker_id.ends_with(&format!("-{}", std::process::id())));
    assert_eq!(w.log_format, LogFormat::Human);
    assert_eq!(w.grpc_addr, "127.0.0.1:50051".parse().expect("addr"));
    assert_eq!(
        w.metrics_addr,
        Some("127.0.0.1:9187".parse().expect("addr"))
    );
    assert_eq!(w.control_token, None);
    assert!(!w.control_insecure);
    assert!(!w.status_requires_token);
    assert_eq!(w.grpc_tls, None);
    assert_eq!(w.lease.backend, LeaseBackend::None);
    assert_eq!(w.lease.url, None);
    assert_eq!(w.lease.ttl, Duration::from_millis(10_000));
    assert_eq!(w.max_jobs_per_worker, None);
    assert_eq!(w.shutdown_timeout, Duration::from_millis(25_000));
    assert_eq!(w.jobs_file, None);

    assert_eq!(c.jobs.len(), 1);
    let j = job(&c);
    assert_eq!(j.id, "dbmazz_slot");
    assert_eq!(j.source_url.expose().as_str(), SOURCE);
    assert_eq!(
        j.tables,
        vec![
            TableName::new("public", "orders"),
            TableName::new("sales", "items")
        ]
    );
    assert_eq!(j.slot_name, "dbmazz_slot");
    assert_eq!(j.publication_name, "dbmazz_pub");
    assert_eq!(j.replica_identity, ReplicaIdentityMode::Full);
    assert_eq!(j.sink.url.as_str(), "http://fe.internal:8030/");
    assert_eq!(j.sink.mysql_host, "fe.internal");
    assert_eq!(j.sink.mysql_port, 9030);
    assert_eq!(j.sink.database, "analytics");
    assert_eq!(j.sink.user, "root");
    assert!(j.sink.password.is_empty());
    assert!(j.sink.table_map.is_empty());
    assert_eq!(j.flush_size, 10_000);
    assert_eq!(j.flush_interval, Duration::from_millis(500));
    assert_eq!(j.memory_budget_bytes, 256 * 1024 * 1024);
    assert_eq!(j.checkpoint_url, None);
    assert_eq!(j.effective_checkpoint_url(), &j.source_url);
    assert_eq!(j.checkpoint_schema, "dbmazz");
    assert_eq!(j.spill_url, None);
    assert_eq!(j.delete_mode, DeleteMode::Soft);
    assert_eq!(j.truncate_mode, TruncateMode::Apply);
    assert_eq!(j.label_prefix, "dbmazz");
    assert_eq!(j.load_timeout, Duration::from_secs(600));
}

#[test]
fn every_value_can_be_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "x").expect("cert");
    std::fs::write(&key, "x").expect("key");
    let c = ok(with(&[
        ("DBMAZZ_WORKER_ID", "worker-1"),
        ("DBMAZZ_LOG_FORMAT", "json"),
        ("DBMAZZ_GRPC_ADDR", "0.0.0.0:6000"),
        ("DBMAZZ_METRICS_ADDR", "off"),
        ("DBMAZZ_CONTROL_TOKEN", "0123456789abcdef0123"),
        ("DBMAZZ_STATUS_REQUIRE_TOKEN", "yes"),
        ("DBMAZZ_GRPC_TLS_CERT", cert.to_str().expect("utf8")),
        ("DBMAZZ_GRPC_TLS_KEY", key.to_str().expect("utf8")),
        ("DBMAZZ_LEASE_BACKEND", "redis"),
        ("DBMAZZ_LEASE_URL", "redis://:pw@cache:6379/2"),
        ("DBMAZZ_LEASE_TTL_MS", "3000"),
        ("DBMAZZ_MAX_JOBS_PER_WORKER", "4"),
        ("DBMAZZ_SHUTDOWN_TIMEOUT_MS", "20000"),
        ("DBMAZZ_JOB_ID", "orders"),
        ("SOURCE_SLOT_NAME", "orders_slot"),
        ("SOURCE_PUBLICATION_NAME", "orders_pub"),
        ("DBMAZZ_REPLICA_IDENTITY", "keep"),
        ("SINK_MYSQL_HOST", "10.0.0.5"),
        ("SINK_MYSQL_PORT", "19030"),
        ("SINK_USER", "loader"),
        ("SINK_PASSWORD", "pw"),
        ("SINK_TABLE_MAP", "sales.items=items_rt"),
        ("FLUSH_SIZE", "5000"),
        ("FLUSH_INTERVAL_MS", "250"),
        ("DBMAZZ_MEMORY_BUDGET_MB", "64"),
        ("DBMAZZ_CHECKPOINT_URL", "postgres://ck@ckdb/state"),
        ("DBMAZZ_CHECKPOINT_SCHEMA", "cdc_state"),
        ("DBMAZZ_SPILL_URL", "s3://spill-bucket/dbmazz"),
        ("DBMAZZ_DELETE_MODE", "hard"),
        ("DBMAZZ_TRUNCATE_MODE", "fail"),
        ("DBMAZZ_LABEL_PREFIX", "cdc"),
        ("DBMAZZ_LOAD_TIMEOUT_S", "60"),
    ]));
    let w = &c.worker;
    assert_eq!(w.worker_id, "worker-1");
    assert_eq!(w.log_format, LogFormat::Json);
    assert_eq!(w.grpc_addr.port(), 6000);
    assert_eq!(w.metrics_addr, None);
    assert_eq!(
        w.control_token.as_ref().map(Secret::expose),
        Some("0123456789abcdef0123")
    );
    assert!(w.status_requires_token);
    assert_eq!(
        w.grpc_tls,
        Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone()
        })
    );
    assert_eq!(w.lease.backend, LeaseBackend::Redis);
    assert_eq!(
        w.lease.url.as_ref().map(|u| u.expose().as_str()),
        Some("redis://:pw@cache:6379/2")
    );
    assert_eq!(w.lease.ttl, Duration::from_secs(3));
    assert_eq!(w.max_jobs_per_worker, NonZeroUsize::new(4));
    assert_eq!(w.shutdown_timeout, Duration::from_secs(20));
    let j = job(&c);
    assert_eq!(j.id, "orders");
    assert_eq!(j.slot_name, "orders_slot");
    assert_eq!(j.publication_name, "orders_pub");
    assert_eq!(j.replica_identity, ReplicaIdentityMode::Keep);
    assert_eq!(j.sink.mysql_host, "10.0.0.5");
    assert_eq!(j.sink.mysql_port, 19030);
    assert_eq!(j.sink.user, "loader");
    assert_eq!(j.sink.password.expose(), "pw");
    assert_eq!(
        j.sink.target_table(&TableName::new("sales", "items")),
        "items_rt"
    );
    assert_eq!(
        j.sink.target_table(&TableName::new("public", "orders")),
        "orders"
    );
    assert_eq!(j.flush_size, 5000);
    assert_eq!(j.flush_interval, Duration::from_millis(250));
    assert_eq!(j.memory_budget_bytes, 64 * 1024 * 1024);
    assert_eq!(
        j.effective_checkpoint_url().expose().as_str(),
        "postgres://ck@ckdb/state"
    );
    assert_eq!(j.checkpoint_schema, "cdc_state");
    assert_eq!(
        j.spill_url,
        Some(SpillTarget::S3 {
            bucket: "spill-bucket".into(),
            prefix: "dbmazz".into()
        })
    );
    assert_eq!(j.delete_mode, DeleteMode::Hard);
    assert_eq!(j.truncate_mode, TruncateMode::Fail);
    assert_eq!(j.label_prefix, "cdc");
    assert_eq!(j.load_timeout, Duration::from_secs(60));
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut vars = without(&["TABLES"]);
    vars.retain(|(k, _)| k != "SINK_URL");
    vars.push(("SINK_URL".into(), "ftp://x".into()));
    vars.push(("FLUSH_SIZE".into(), "abc".into()));
    vars.push(("DBMAZZ_LOG_FORMAT".into(), "xml".into()));
    let e = err(vars);
    assert_eq!(e.problems.len(), 4, "{e}");
    let p = problem_of(&e, "FLUSH_SIZE");
    assert_eq!(p.value.as_deref(), Some("abc"));
    assert!(p.reason.contains("not a whole number"), "{p}");
    let accepted = p.accepted.as_deref().expect("accepted");
    assert!(accepted.contains("from 1 to 10000000"), "{accepted}");
    assert!(accepted.contains("default `10000`"), "{accepted}");
    assert!(problem_of(&e, "TABLES").reason.contains("required"));
    assert!(problem_of(&e, "SINK_URL").reason.contains("`ftp`"));
    assert!(problem_of(&e, "DBMAZZ_LOG_FORMAT")
        .accepted
        .as_deref()
        .is_some_and(|a| a.contains("`human`, `json`")));
    let text = e.to_string();
    assert!(
        text.starts_with("invalid configuration (4 problems):"),
        "{text}"
    );
    assert!(
        text.contains("FLUSH_SIZE=\"abc\": not a whole number. Accepted:"),
        "{text}"
    );
}

#[test]
fn required_variables_are_named_when_missing() {
    let e = err(Vec::<(String, String)>::new());
    for v in ["SOURCE_URL", "TABLES", "SINK_URL", "SINK_DATABASE"] {
        assert!(problem_of(&e, v).reason.contains("required"), "{v}");
    }
    assert_eq!(e.problems.len(), 4, "{e}");
}

#[test]
fn empty_values_are_errors_except_where_meaningful() {
    let e = err(with(&[("FLUSH_SIZE", ""), ("DBMAZZ_GRPC_ADDR", "")]));
    let p = problem_of(&e, "FLUSH_SIZE");
    assert!(p.reason.contains("set but empty"), "{p}");
    assert!(p.reason.contains("`10000`"), "{p}");
    problem_of(&e, "DBMAZZ_GRPC_ADDR");
    let c = ok(with(&[("SINK_PASSWORD", "")]));
    assert!(job(&c).sink.password.is_empty());
}

#[test]
fn database_url_is_an_alias_of_source_url() {
    let mut vars = without(&["SOURCE_URL"]);
    vars.push(("DATABASE_URL".into(), SOURCE.into()));
    assert_eq!(job(&ok(vars)).source_url.expose().as_str(), SOURCE);
    let e = err(with(&[("DATABASE_URL", "postgres://other@db/x")]));
    assert!(problem_of(&e, "SOURCE_URL").reason.contains("both"));
    // The same value under both names is fine.
    ok(with(&[("DATABASE_URL", SOURCE)]));
}

#[test]
fn problems_with_the_alias_name_it() {
    let mut vars = without(&["SOURCE_URL"]);
    vars.push(("DATABASE_URL".into(), "mysql://x@db/y".into()));
    let e = err(vars);
    problem_of(&e, "DATABASE_URL");
}

#[test]
fn secrets_never_appear_in_problems() {
    let e = err(with(&[
        (
            "SOURCE_URL",
            "postgres://app:hunter2@db/shop?sslmode=sometimes",
        ),
        ("DBMAZZ_CONTROL_TOKEN", "hunter2"),
        ("DBMAZZ_CHECKPOINT_URL", "::hunter2::"),
    ]));
    let text = e.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    let p = problem_of(&e, "SOURCE_URL");
    assert_eq!(
        p.value.as_deref(),
        Some("postgres://app:***@db/shop?sslmode=sometimes")
    );
    assert!(p.reason.contains("sslmode `sometimes`"), "{p}");
    assert_eq!(
        problem_of(&e, "DBMAZZ_CONTROL_TOKEN").value.as_deref(),
        Some("<hidden secret, 7 characters>")
    );
    assert_eq!(
        problem_of(&e, "DBMAZZ_CHECKPOINT_URL").value.as_deref(),
        Some("<hidden secret, 11 characters>")
    );
}

#[test]
fn secrets_never_appear_in_debug_or_reports() {
    let loaded = load(with(&[
        ("SINK_PASSWORD", "sinkpw-secret"),
        ("DBMAZZ_CONTROL_TOKEN", "token-token-token-secret"),
        ("DBMAZZ_LEASE_BACKEND", "postgres"),
    ]))
    .expect("valid");
    let debug = format!("{:?}", loaded.config);
    let report = loaded.render();
    for text in [&debug, &report] {
        for secret in ["hunter2", "sinkpw-secret", "token-token-token-secret"] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
    }
    assert!(
        report.contains("postgres://app:***@db.internal:5432/shop"),
        "{report}"
    );
    assert!(report.contains("SINK_PASSWORD"), "{report}");
}

#[test]
fn integers_are_bounded_by_the_registry() {
    for (var, bad) in [
        ("FLUSH_SIZE", "0"),
        ("FLUSH_SIZE", "-5"),
        ("FLUSH_INTERVAL_MS", "1"),
        ("DBMAZZ_MEMORY_BUDGET_MB", "8"),
        ("SINK_MYSQL_PORT", "70000"),
        ("DBMAZZ_LEASE_TTL_MS", "100"),
        ("DBMAZZ_LEASE_TTL_MS", "9999999"),
        ("DBMAZZ_SHUTDOWN_TIMEOUT_MS", "10"),
        ("DBMAZZ_LOAD_TIMEOUT_S", "0"),
        ("DBMAZZ_MAX_JOBS_PER_WORKER", "0"),
    ] {
        let e = err(with(&[(var, bad)]));
        let p = problem_of(&e, var);
        assert_eq!(p.value.as_deref(), Some(bad), "{p}");
    }
}

#[test]
fn choices_are_checked() {
    for var in [
        "DBMAZZ_LOG_FORMAT",
        "DBMAZZ_LEASE_BACKEND",
        "DBMAZZ_REPLICA_IDENTITY",
        "DBMAZZ_DELETE_MODE",
        "DBMAZZ_TRUNCATE_MODE",
        "DBMAZZ_CONTROL_INSECURE",
    ] {
        let e = err(with(&[(var, "bogus")]));
        problem_of(&e, var);
    }
    let c = ok(with(&[("DBMAZZ_TRUNCATE_MODE", "soft")]));
    assert_eq!(job(&c).truncate_mode, TruncateMode::Soft);
}

#[test]
fn names_are_validated() {
    for (var, bad) in [
        ("SOURCE_SLOT_NAME", "My-Slot"),
        ("SOURCE_PUBLICATION_NAME", "9pub"),
        ("DBMAZZ_JOB_ID", "orders-eu"),
        ("DBMAZZ_CHECKPOINT_SCHEMA", "Bad Schema"),
        ("DBMAZZ_LABEL_PREFIX", "a.b"),
        ("DBMAZZ_WORKER_ID", "has space"),
        ("SINK_DATABASE", "ana-lytics"),
        ("SINK_USER", "a:b"),
        ("SINK_MYSQL_HOST", "fe:9030"),
    ] {
        let e = err(with(&[(var, bad)]));
        problem_of(&e, var);
    }
}

#[test]
fn job_id_defaults_to_the_slot_name() {
    let c = ok(with(&[("SOURCE_SLOT_NAME", "orders_slot")]));
    assert_eq!(job(&c).id, "orders_slot");
}

#[test]
fn sink_mysql_host_defaults_to_the_sink_url_host() {
    let c = ok(with(&[("SINK_URL", "https://[::1]:8443")]));
    assert_eq!(job(&c).sink.mysql_host, "::1");
}

#[test]
fn tables_problems_are_each_reported() {
    let e = err(with(&[("TABLES", "a,,a.b.c")]));
    let n = e.problems.iter().filter(|p| p.variable == "TABLES").count();
    assert_eq!(n, 2, "{e}");
    let e = err(with(&[("TABLES", "orders, public.orders")]));
    assert!(problem_of(&e, "TABLES").reason.contains("listed twice"));
}

#[test]
fn quoted_tables_need_a_map_when_not_valid_in_starrocks() {
    let e = err(with(&[("TABLES", r#""Order Items""#)]));
    let p = problem_of(&e, "SINK_TABLE_MAP");
    assert!(p.reason.contains("needs an entry"), "{p}");
    let c = ok(with(&[
        ("TABLES", r#""Order Items""#),
        ("SINK_TABLE_MAP", r#""Order Items"=order_items"#),
    ]));
    let t = &job(&c).tables[0];
    assert_eq!(t.name, "Order Items");
    assert_eq!(job(&c).sink.target_table(t), "order_items");
}

#[test]
fn same_name_in_two_schemas_needs_a_map() {
    let e = err(with(&[("TABLES", "a.t, b.t")]));
    assert!(problem_of(&e, "SINK_TABLE_MAP")
        .reason
        .contains("would both load into StarRocks table `t`"));
    ok(with(&[
        ("TABLES", "a.t, b.t"),
        ("SINK_TABLE_MAP", "b.t=t_b"),
    ]));
}

#[test]
fn table_map_rules() {
    let e = err(with(&[("SINK_TABLE_MAP", "public.nope=x")]));
    assert!(problem_of(&e, "SINK_TABLE_MAP")
        .reason
        .contains("not in TABLES"));
    let e = err(with(&[("SINK_TABLE_MAP", "public.orders=bad-name")]));
    assert!(problem_of(&e, "SINK_TABLE_MAP").reason.contains("bad-name"));
    let e = err(with(&[("SINK_TABLE_MAP", "public.orders=items")]));
    assert!(problem_of(&e, "SINK_TABLE_MAP")
        .reason
        .contains("both load"));
}

#[test]
fn metrics_can_be_turned_off_or_moved() {
    let c = ok(with(&[("DBMAZZ_METRICS_ADDR", "127.0.0.1:0")]));
    assert_eq!(c.worker.metrics_addr.map(|a| a.port()), Some(0));
    problem_of(
        &err(with(&[("DBMAZZ_METRICS_ADDR", "no")])),
        "DBMAZZ_METRICS_ADDR",
    );
}

#[test]
fn control_token_rules() {
    let e = err(with(&[("DBMAZZ_CONTROL_TOKEN", "short")]));
    assert!(problem_of(&e, "DBMAZZ_CONTROL_TOKEN")
        .reason
        .contains("minimum is 16"));
    let e = err(with(&[
        ("DBMAZZ_CONTROL_TOKEN", "0123456789abcdef"),
        ("DBMAZZ_CONTROL_INSECURE", "true"),
    ]));
    assert!(problem_of(&e, "DBMAZZ_CONTROL_INSECURE")
        .reason
        .contains("choose one"));
    let e = err(with(&[("DBMAZZ_STATUS_REQUIRE_TOKEN", "true")]));
    assert!(problem_of(&e, "DBMAZZ_STATUS_REQUIRE_TOKEN")
        .reason
        .contains("DBMAZZ_CONTROL_TOKEN"));
    let c = ok(with(&[("DBMAZZ_CONTROL_INSECURE", "true")]));
    assert!(c.worker.control_insecure);
}

#[test]
fn tls_needs_both_existing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "x").expect("cert");
    let cert = cert.to_str().expect("utf8");
    let e = err(with(&[("DBMAZZ_GRPC_TLS_CERT", cert)]));
    assert!(problem_of(&e, "DBMAZZ_GRPC_TLS_KEY")
        .reason
        .contains("set both or neither"));
    let e = err(with(&[
        ("DBMAZZ_GRPC_TLS_CERT", cert),
        ("DBMAZZ_GRPC_TLS_KEY", "/nonexistent/key.pem"),
    ]));
    assert!(problem_of(&e, "DBMAZZ_GRPC_TLS_KEY")
        .reason
        .contains("no such file"));
    let dir_path = dir.path().to_str().expect("utf8");
    let e = err(with(&[
        ("DBMAZZ_GRPC_TLS_CERT", dir_path),
        ("DBMAZZ_GRPC_TLS_KEY", cert),
    ]));
    assert!(problem_of(&e, "DBMAZZ_GRPC_TLS_CERT")
        .reason
        .contains("not a regular file"));
}

#[test]
fn lease_rules() {
    // postgres without a URL uses the (shared) checkpoint database.
    let c = ok(with(&[("DBMAZZ_LEASE_BACKEND", "postgres")]));
    assert_eq!(c.worker.lease.url.as_ref(), Some(&job(&c).source_url));
    let c = ok(with(&[
        ("DBMAZZ_LEASE_BACKEND", "postgres"),
        ("DBMAZZ_CHECKPOINT_URL", "postgres://ck@ckdb/state"),
    ]));
    assert_eq!(
        c.worker.lease.url.as_ref().map(|u| u.expose().as_str()),
        Some("postgres://ck@ckdb/state")
    );
    let e = err(with(&[("DBMAZZ_LEASE_BACKEND", "redis")]));
    assert!(problem_of(&e, "DBMAZZ_LEASE_URL")
        .reason
        .contains("required"));
    let e = err(with(&[
        ("DBMAZZ_LEASE_BACKEND", "redis"),
        ("DBMAZZ_LEASE_URL", "postgres://x@db/y"),
    ]));
    assert!(problem_of(&e, "DBMAZZ_LEASE_URL").reason.contains("redis"));
    let e = err(with(&[
        ("DBMAZZ_LEASE_BACKEND", "postgres"),
        ("DBMAZZ_LEASE_URL", "redis://cache"),
    ]));
    problem_of(&e, "DBMAZZ_LEASE_URL");
    let e = err(with(&[("DBMAZZ_LEASE_URL", "redis://cache")]));
    assert!(problem_of(&e, "DBMAZZ_LEASE_URL").reason.contains("`none`"));
}

#[test]
fn spill_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().display());
    let c = ok(with(&[("DBMAZZ_SPILL_URL", &url)]));
    assert_eq!(
        job(&c).spill_url,
        Some(SpillTarget::Local(dir.path().to_path_buf()))
    );
    problem_of(
        &err(with(&[("DBMAZZ_SPILL_URL", "/tmp/spill")])),
        "DBMAZZ_SPILL_URL",
    );
}

#[test]
fn source_url_rules() {
    for bad in [
        "mysql://app@db/shop",
        "postgres://db/shop",
        "postgres://app@db/shop?sslmode=strict",
        "postgres://app@db/shop?ssl=true",
        "not a url",
    ] {
        problem_of(&err(with(&[("SOURCE_URL", bad)])), "SOURCE_URL");
    }
    ok(with(&[(
        "SOURCE_URL",
        "postgresql://app@db/shop?sslmode=verify-full&sslrootcert=system&application_name=x",
    )]));
}

#[test]
fn unknown_variables_are_warnings_with_suggestions() {
    let loaded = load(with(&[
        ("DBMAZZ_FLUSH_SIZE", "10"),
        ("SINK_PASWORD", "x"),
        ("HOME", "/root"),
    ]))
    .expect("valid");
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("DBMAZZ_FLUSH_SIZE is not a dbmazz variable"),
        "{w}"
    );
    assert!(w.contains("did you mean SINK_PASSWORD?"), "{w}");
    assert!(!w.contains("HOME"), "{w}");
}

#[test]
fn risky_control_settings_are_warned_about() {
    let loaded = load(with(&[
        ("DBMAZZ_GRPC_ADDR", "0.0.0.0:50051"),
        ("DBMAZZ_CONTROL_INSECURE", "true"),
    ]))
    .expect("valid");
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("anyone who reaches")));
}

#[test]
fn report_names_origins() {
    let loaded = load(with(&[("FLUSH_SIZE", "42")])).expect("valid");
    let r = loaded.render();
    assert!(r.starts_with("Configuration is valid: 1 job."), "{r}");
    assert!(r.contains("FLUSH_SIZE"), "{r}");
    assert!(
        r.lines().any(|l| l.contains("FLUSH_SIZE")
            && l.contains("42")
            && l.contains("(env FLUSH_SIZE)")),
        "{r}"
    );
    assert!(
        r.lines()
            .any(|l| l.contains("FLUSH_INTERVAL_MS") && l.contains("(default)")),
        "{r}"
    );
}

mod jobs_file;

//! `dbmazz check` run as a real process with a controlled environment.

use std::io::Write as _;
use std::process::{Command, Output};

fn dbmazz(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbmazz"));
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dbmazz")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const GOOD: &[(&str, &str)] = &[
    (
        "SOURCE_URL",
        "postgres://app:src-pw-123@db.internal:5432/shop?sslmode=require",
    ),
    ("TABLES", "public.orders,public.customers"),
    ("SINK_URL", "http://fe.internal:8030"),
    ("SINK_DATABASE", "analytics"),
    ("SINK_PASSWORD", "sink-pw-456"),
    ("DBMAZZ_CONTROL_TOKEN", "ctl-token-0123456789"),
    ("FLUSH_SIZE", "2500"),
];

#[test]
fn broken_environment_lists_every_problem_and_exits_2() {
    let out = dbmazz(
        &["check"],
        &[
            ("SOURCE_URL", "postgres://app:src-pw-123@db/shop"),
            ("FLUSH_SIZE", "abc"),
            ("SINK_URL", "ftp://x"),
            ("SINK_DATABASE", "analytics"),
            ("DBMAZZ_LEASE_TTL_MS", "5"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("invalid configuration (4 problems)"), "{err}");
    assert!(
        err.contains("FLUSH_SIZE=\"abc\": not a whole number"),
        "{err}"
    );
    assert!(err.contains("TABLES: is required but not set"), "{err}");
    assert!(
        err.contains("SINK_URL=\"ftp://x\": scheme `ftp` is not `http` or `https`"),
        "{err}"
    );
    assert!(err.contains("DBMAZZ_LEASE_TTL_MS=\"5\""), "{err}");
    assert!(err.contains("Accepted:"), "{err}");
    assert!(!err.contains("src-pw-123"), "{err}");
    assert!(text(&out.stdout).is_empty(), "nothing on stdout");
}

#[test]
fn empty_environment_names_the_required_variables() {
    let out = dbmazz(&["check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for v in ["SOURCE_URL", "TABLES", "SINK_URL", "SINK_DATABASE"] {
        assert!(
            err.contains(&format!("{v}: is required but not set")),
            "{v}: {err}"
        );
    }
}

#[test]
fn good_environment_prints_the_effective_configuration_without_secrets() {
    let out = dbmazz(&["check"], GOOD);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.starts_with("Configuration is valid: 1 job."),
        "{report}"
    );
    for secret in ["src-pw-123", "sink-pw-456", "ctl-token-0123456789"] {
        assert!(!report.contains(secret), "{secret} leaked:\n{report}");
    }
    assert!(
        report.contains("postgres://app:***@db.internal:5432/shop?sslmode=require"),
        "{report}"
    );
    assert!(
        report.lines().any(|l| l.contains("FLUSH_SIZE")
            && l.contains("2500")
            && l.contains("(env FLUSH_SIZE)")),
        "{report}"
    );
    assert!(
        report.lines().any(|l| l.contains("SINK_MYSQL_PORT")
            && l.contains("9030")
            && l.contains("(default)")),
        "{report}"
    );
    assert!(
        report.contains("public.orders, public.customers"),
        "{report}"
    );
    assert!(report.contains("Job dbmazz_slot"), "{report}");
}

#[test]
fn unknown_variables_are_reported_as_warnings() {
    let mut env = GOOD.to_vec();
    env.push(("DBMAZZ_FLUSH_SIZE", "10"));
    let out = dbmazz(&["check"], &env);
    assert_eq!(out.status.code(), Some(0));
    let report = text(&out.stdout);
    assert!(
        report.contains(
            "DBMAZZ_FLUSH_SIZE is not a dbmazz variable and is ignored (did you mean FLUSH_SIZE?)"
        ),
        "{report}"
    );
}

#[test]
fn jobs_file_is_checked_too() {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("tempfile");
    f.write_all(
        br#"
[defaults]
source_url = "postgres://app@db/shop"
sink_url = "http://fe:8030"
sink_database = "analytics"

[[jobs]]
slot_name = "orders"
publication_name = "orders_pub"
tables = ["public.orders"]

[[jobs]]
slot_name = "customers"
publication_name = "customers_pub"
tables = ["crm.customers"]
flush_size = "lots"
"#,
    )
    .expect("write");
    let path = f.path().to_str().expect("utf8").to_owned();
    let out = dbmazz(&["check"], &[("DBMAZZ_JOBS_FILE", &path)]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{path}: jobs[2].flush_size=\"lots\"")),
        "{err}"
    );

    let fixed = std::fs::read_to_string(f.path())
        .expect("read")
        .replace("flush_size = \"lots\"", "flush_size = 50");
    std::fs::write(f.path(), fixed).expect("rewrite");
    let out = dbmazz(&["check"], &[("DBMAZZ_JOBS_FILE", &path)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.starts_with("Configuration is valid: 2 jobs."),
        "{report}"
    );
    assert!(report.contains("Job orders"), "{report}");
    assert!(report.contains("Job customers"), "{report}");
}

#[test]
fn help_explains_the_commands() {
    let out = dbmazz(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("Change data capture from PostgreSQL into StarRocks"),
        "{help}"
    );
    assert!(help.contains("check"), "{help}");
    assert!(help.contains("SOURCE_URL"), "{help}");
    let out = dbmazz(&["check", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("every invalid or missing value"));
}

#[test]
fn usage_errors_exit_2() {
    let out = dbmazz(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage"), "{}", text(&out.stderr));
    let out = dbmazz(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_is_printed() {
    let out = dbmazz(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("dbmazz "),
        "{}",
        text(&out.stdout)
    );
}

/// `dbmazz demo` without the demo binary beside it says how to get it and exits 2.
#[test]
fn demo_without_its_binary_explains_how_to_build_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lone = dir.path().join("dbmazz");
    std::fs::copy(env!("CARGO_BIN_EXE_dbmazz"), &lone).expect("copy the binary");
    let out = Command::new(&lone)
        .args(["demo", "--seconds", "1"])
        .output()
        .expect("run dbmazz demo");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("dbmazz-demo") && err.contains("make demo"),
        "{err}"
    );
}

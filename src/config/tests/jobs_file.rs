//! Configuration from a jobs file (`DBMAZZ_JOBS_FILE`): several jobs, defaults,
//! the same rules as the environment, and the checks across jobs.

use super::*;

fn jobs_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("tempfile");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn file_env(f: &tempfile::NamedTempFile, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![(
        "DBMAZZ_JOBS_FILE".to_owned(),
        f.path().to_str().expect("utf8").to_owned(),
    )];
    for (k, val) in extra {
        v.push(((*k).to_owned(), (*val).to_owned()));
    }
    v
}

const TWO_JOBS: &str = r#"
[defaults]
source_url = "postgres://app@db/shop"
sink_url = "http://fe:8030"
sink_database = "analytics"
flush_size = 2000

[[jobs]]
slot_name = "orders"
publication_name = "orders_pub"
tables = ["public.orders", "public.order_items"]

[[jobs]]
id = "customers"
slot_name = "customers"
publication_name = "customers_pub"
tables = "crm.customers"
flush_size = 100
sink_table_map = { "crm.customers" = "customers_rt" }
"#;

#[test]
fn jobs_file_describes_several_jobs_with_defaults() {
    let f = jobs_file(TWO_JOBS);
    let loaded = load(file_env(
        &f,
        &[("SINK_PASSWORD", "from-env"), ("FLUSH_INTERVAL_MS", "900")],
    ))
    .expect("valid");
    let c = &loaded.config;
    assert_eq!(c.worker.jobs_file.as_deref(), Some(f.path()));
    assert_eq!(c.jobs.len(), 2);
    let (a, b) = (&c.jobs[0], &c.jobs[1]);
    assert_eq!(a.id, "orders");
    assert_eq!(a.tables.len(), 2);
    assert_eq!(a.flush_size, 2000, "from [defaults]");
    assert_eq!(b.id, "customers");
    assert_eq!(b.flush_size, 100, "the job's own value wins");
    assert_eq!(
        b.sink.target_table(&TableName::new("crm", "customers")),
        "customers_rt"
    );
    for j in [a, b] {
        assert_eq!(
            j.sink.password.expose(),
            "from-env",
            "secrets may stay in env"
        );
        assert_eq!(
            j.flush_interval,
            Duration::from_millis(900),
            "env below file"
        );
        assert_eq!(j.sink.database, "analytics");
    }
    let origins = &loaded.job_origins[1];
    assert!(matches!(origins.get("FLUSH_SIZE"), Some(Origin::File(_, s)) if s == "jobs[2]"));
    assert!(
        matches!(&loaded.job_origins[0].get("FLUSH_SIZE"), Some(Origin::File(_, s)) if s == "[defaults]")
    );
    assert_eq!(
        origins.get("SINK_PASSWORD"),
        Some(&Origin::Env("SINK_PASSWORD".into()))
    );
}

#[test]
fn jobs_file_values_follow_the_same_rules() {
    let f = jobs_file(
        r#"
[defaults]
source_url = "postgres://app@db/shop"
sink_url = "http://fe:8030"
sink_database = "analytics"

[[jobs]]
slot_name = "Bad-Slot"
tables = ["a", "a"]
flush_size = 0

[[jobs]]
slot_name = "ok_slot"
tables = "b"
delete_mode = "sometimes"
"#,
    );
    let e = err(file_env(&f, &[]));
    let shown = f.path().display().to_string();
    let vars: Vec<&str> = e.problems.iter().map(|p| p.variable.as_str()).collect();
    assert!(
        vars.contains(&format!("{shown}: jobs[1].slot_name").as_str()),
        "{e}"
    );
    assert!(
        vars.contains(&format!("{shown}: jobs[1].tables").as_str()),
        "{e}"
    );
    assert!(
        vars.contains(&format!("{shown}: jobs[1].flush_size").as_str()),
        "{e}"
    );
    assert!(
        vars.contains(&format!("{shown}: jobs[2].delete_mode").as_str()),
        "{e}"
    );
    assert_eq!(e.problems.len(), 4, "{e}");
}

#[test]
fn jobs_file_rejects_per_job_variables_in_the_environment() {
    let f = jobs_file(TWO_JOBS);
    let e = err(file_env(&f, &[("TABLES", "x")]));
    let p = problem_of(&e, "TABLES");
    assert!(p.reason.contains("each [[jobs]] entry"), "{p}");
}

#[test]
fn jobs_must_not_share_ids_slots_or_publications() {
    let f = jobs_file(
        r#"
[defaults]
source_url = "postgres://app@db/shop"
sink_url = "http://fe:8030"
sink_database = "analytics"

[[jobs]]
tables = "a"

[[jobs]]
tables = "b"
"#,
    );
    let e = err(file_env(&f, &[]));
    problem_of(&e, "DBMAZZ_JOB_ID");
    problem_of(&e, "SOURCE_SLOT_NAME");
    problem_of(&e, "SOURCE_PUBLICATION_NAME");
}

#[test]
fn jobs_file_shape_problems_are_reported() {
    let f = jobs_file("[[jobs]]\ntabels = \"a\"\n");
    let e = err(file_env(&f, &[]));
    assert!(
        e.problems
            .iter()
            .any(|p| p.variable.contains("jobs[1].tabels")
                && p.reason.contains("did you mean `tables`")),
        "{e}"
    );
    let e = err(vec![(
        "DBMAZZ_JOBS_FILE".to_owned(),
        "/nonexistent/jobs.toml".to_owned(),
    )]);
    assert!(e.to_string().contains("cannot be read"), "{e}");
}

#[test]
fn postgres_lease_needs_a_url_when_checkpoints_differ() {
    let f = jobs_file(
        r#"
[defaults]
sink_url = "http://fe:8030"
sink_database = "analytics"

[[jobs]]
source_url = "postgres://app@db1/shop"
slot_name = "a"
tables = "a"

[[jobs]]
source_url = "postgres://app@db2/shop"
slot_name = "b"
tables = "b"
"#,
    );
    let e = err(file_env(&f, &[("DBMAZZ_LEASE_BACKEND", "postgres")]));
    assert!(problem_of(&e, "DBMAZZ_LEASE_URL")
        .reason
        .contains("do not share"));
    // Same slot names on different databases are fine.
    let f2 = jobs_file(
        &std::fs::read_to_string(f.path())
            .expect("read")
            .replace("slot_name = \"b\"", "id = \"b\"\nslot_name = \"a\""),
    );
    let c = ok(file_env(&f2, &[]));
    assert_eq!(c.jobs.len(), 2);
}

#[test]
fn single_worker_must_fit_all_jobs() {
    let f = jobs_file(TWO_JOBS);
    let e = err(file_env(&f, &[("DBMAZZ_MAX_JOBS_PER_WORKER", "1")]));
    problem_of(&e, "DBMAZZ_MAX_JOBS_PER_WORKER");
    ok(file_env(
        &f,
        &[
            ("DBMAZZ_MAX_JOBS_PER_WORKER", "1"),
            ("DBMAZZ_LEASE_BACKEND", "postgres"),
        ],
    ));
}

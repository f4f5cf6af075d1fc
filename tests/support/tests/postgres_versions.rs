//! The PostgreSQL version matrix of the testkit: the version chosen is the one that
//! runs, it has what the suites need, and many clusters can start at once on a
//! template location nobody has used yet.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use dbmazz_testkit::postgres::{default_major, DEFAULT_MAJOR};
use dbmazz_testkit::{PgCluster, PgConfig};

/// `server_version_num` of a running cluster, divided down to its major version.
fn running_major(pg: &PgCluster) -> u32 {
    let num: u32 = pg
        .psql("postgres", "SHOW server_version_num")
        .expect("server_version_num")
        .trim()
        .parse()
        .expect("a number");
    num / 10_000
}

#[test]
fn the_chosen_version_runs_and_has_what_the_suites_need() {
    let major = default_major().expect("DBMAZZ_TEST_PG");
    let pg = PgCluster::start().expect("start postgres");
    eprintln!(
        "PostgreSQL {} from {}",
        pg.version(),
        pg.bin_dir().display()
    );
    assert_eq!(pg.major_version(), major);
    assert_eq!(running_major(&pg), major);
    // Programs the tests and benchmarks run beside the server.
    for program in ["psql", "pg_recvlogical", "pg_ctl", "initdb"] {
        assert!(
            pg.bin_dir().join(program).is_file(),
            "PostgreSQL {major} has no {program} in {}",
            pg.bin_dir().display()
        );
    }
    // pgoutput (a loadable module in every build) decodes a change. One psql call
    // per step: a slot cannot be created in a transaction that wrote.
    for sql in [
        "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t",
        "SELECT 1 FROM pg_create_logical_replication_slot('s', 'pgoutput')",
        "INSERT INTO t VALUES (1)",
    ] {
        pg.psql("postgres", sql).expect(sql);
    }
    // Begin, Relation, Insert, Commit.
    let out = pg
        .psql(
            "postgres",
            "SELECT string_agg(chr(get_byte(data, 0)), '') FROM
               pg_logical_slot_peek_binary_changes('s', NULL, NULL,
                 'proto_version', '1', 'publication_names', 'p')",
        )
        .expect("pgoutput");
    assert_eq!(out.trim(), "BRIC");
    // The TLS tests need a server built with OpenSSL.
    let ssl = pg
        .psql("postgres", "SHOW ssl_library")
        .expect("ssl_library");
    assert_eq!(
        ssl.trim(),
        "OpenSSL",
        "PostgreSQL {major} was built without OpenSSL: the TLS tests cannot run on it"
    );
}

#[test]
fn a_version_asked_for_in_the_config_wins_over_the_environment() {
    let pg = PgCluster::start_with(PgConfig::default().major(DEFAULT_MAJOR)).expect("start");
    assert_eq!(pg.major_version(), DEFAULT_MAJOR);
    assert_eq!(running_major(&pg), DEFAULT_MAJOR);
}

#[test]
fn a_missing_version_is_an_error_naming_where_it_was_looked_for() {
    let err = PgCluster::start_with(PgConfig::default().major(9)).expect_err("no PostgreSQL 9");
    let msg = err.to_string();
    assert!(
        msg.contains("PostgreSQL 9") && msg.contains("/usr/lib/postgresql/9/bin"),
        "{msg}"
    );
}

#[test]
fn many_clusters_start_at_once_on_a_fresh_template_location() {
    const CLUSTERS: usize = 6;
    let scratch = tempfile::tempdir().expect("scratch dir");
    // The server runs as the 'postgres' user when the tests run as root: it must be
    // able to reach the template being built inside.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let root = scratch.path().join("templates");
    let start = Arc::new(Barrier::new(CLUSTERS));
    let threads: Vec<_> = (0..CLUSTERS)
        .map(|i| {
            let (root, start) = (root.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let pg = PgCluster::start_with(PgConfig::default().template_root(root))
                    .unwrap_or_else(|e| panic!("cluster {i}: {e}"));
                pg.psql("postgres", &format!("SELECT {i}"))
                    .unwrap_or_else(|e| panic!("cluster {i}: {e}"))
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let out = t.join().expect("thread");
        assert_eq!(out.trim(), i.to_string());
    }
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .expect("template root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // One finished template and its lock file; no staging directory left behind.
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left[0].starts_with("pg-") && left[0].ends_with("-template"),
        "{left:?}"
    );
    assert_eq!(left[1], format!("{}.lock", left[0]));
}

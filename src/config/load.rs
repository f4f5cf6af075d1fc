//! The loader: reads each variable through the layers (jobs-file job, `[defaults]`,
//! environment, built-in default), validates it with the registry's rules, and records
//! every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::jobs_file::{self, JobsFile};
use super::reader::{Env, Field, Layer, RawMap, Reader};
use super::registry;
use super::{
    tables, values, Config, ConfigError, ConfigProblem, DeleteMode, JobConfig, LeaseBackend,
    LeaseConfig, Loaded, LogFormat, ReplicaIdentityMode, Secret, SecretUrl, SinkConfig, TableName,
    TlsFiles, TruncateMode, WorkerConfig,
};

fn read_worker(r: &mut Reader<'_>) -> Option<WorkerConfig> {
    use registry as v;
    let worker_id = match r.parsed(&v::WORKER_ID, values::worker_id) {
        Field::Ok(id) => Some(id),
        Field::Missing => Some(values::default_worker_id()),
        Field::Invalid => None,
    };
    let log_format = r.word(&v::LOG_FORMAT).map(|w| match w {
        "json" => LogFormat::Json,
        _ => LogFormat::Human,
    });
    let grpc_addr = r.required(&v::GRPC_ADDR, values::socket_addr);
    let metrics_addr = r.required(&v::METRICS_ADDR, |t| {
        if t.trim() == "off" {
            Ok(None)
        } else {
            values::socket_addr(t).map(Some)
        }
    });
    let control_token = match r.parsed(&v::CONTROL_TOKEN, values::token) {
        Field::Ok(t) => Some(Some(Secret::new(t))),
        Field::Missing => Some(None),
        Field::Invalid => None,
    };
    let control_insecure = r.boolean(&v::CONTROL_INSECURE);
    let status_requires_token = r.boolean(&v::STATUS_REQUIRE_TOKEN);
    let file = |t: &str| {
        let p = PathBuf::from(t);
        if p.is_file() {
            Ok(p)
        } else if p.exists() {
            Err("is not a regular file".to_owned())
        } else {
            Err("no such file".to_owned())
        }
    };
    let cert = r.parsed(&v::GRPC_TLS_CERT, file);
    let key = r.parsed(&v::GRPC_TLS_KEY, file);
    let grpc_tls = match (cert, key) {
        (Field::Ok(cert), Field::Ok(key)) => Some(Some(TlsFiles { cert, key })),
        (Field::Missing, Field::Missing) => Some(None),
        (Field::Ok(_), Field::Missing) => {
            r.problem(
                v::GRPC_TLS_KEY.name,
                &v::GRPC_TLS_KEY,
                None,
                "is required when DBMAZZ_GRPC_TLS_CERT is set (set both or neither)",
            );
            None
        }
        (Field::Missing, Field::Ok(_)) => {
            r.problem(
                v::GRPC_TLS_CERT.name,
                &v::GRPC_TLS_CERT,
                None,
                "is required when DBMAZZ_GRPC_TLS_KEY is set (set both or neither)",
            );
            None
        }
        _ => None,
    };
    let backend = r.word(&v::LEASE_BACKEND).map(|w| match w {
        "postgres" => LeaseBackend::Postgres,
        "redis" => LeaseBackend::Redis,
        _ => LeaseBackend::None,
    });
    // The URL is checked against the backend once both are known.
    let lease_url = r.parsed(&v::LEASE_URL, |t| {
        Url::parse(t.trim()).map_err(|e| format!("not a valid URL ({e})"))
    });
    let ttl = r.int(&v::LEASE_TTL_MS).map(Duration::from_millis);
    let max_jobs = r.required(&v::MAX_JOBS_PER_WORKER, |t| {
        if t.trim() == "unlimited" {
            Ok(None)
        } else {
            values::int_in(t, 1, 10_000)
                .map(|n| NonZeroUsize::new(usize::try_from(n).unwrap_or(usize::MAX)))
        }
    });
    let shutdown_timeout = r.int(&v::SHUTDOWN_TIMEOUT_MS).map(Duration::from_millis);
    let jobs_file = match r.parsed(&v::JOBS_FILE, |t| Ok(PathBuf::from(t))) {
        Field::Ok(p) => Some(Some(p)),
        Field::Missing => Some(None),
        Field::Invalid => None,
    };

    let (control_token, control_insecure, status_requires_token) =
        (control_token?, control_insecure?, status_requires_token?);
    if control_insecure && control_token.is_some() {
        r.problem(
            v::CONTROL_INSECURE.name,
            &v::CONTROL_INSECURE,
            Some("true"),
            "disables the token check while DBMAZZ_CONTROL_TOKEN is set; choose one",
        );
        return None;
    }
    if status_requires_token && control_token.is_none() {
        r.problem(
            v::STATUS_REQUIRE_TOKEN.name,
            &v::STATUS_REQUIRE_TOKEN,
            Some("true"),
            "needs DBMAZZ_CONTROL_TOKEN to be set",
        );
        return None;
    }
    let lease_url = match (backend?, lease_url) {
        (_, Field::Invalid) => return None,
        (LeaseBackend::None, Field::Ok(_)) => {
            r.problem(
                v::LEASE_URL.name,
                &v::LEASE_URL,
                None,
                "is set but DBMAZZ_LEASE_BACKEND is `none`; set the backend or unset the URL",
            );
            return None;
        }
        (LeaseBackend::Postgres, Field::Ok(u)) => match values::postgres_url(u.as_str()) {
            Ok(u) => Some(SecretUrl::new(u)),
            Err(reason) => {
                r.problem(v::LEASE_URL.name, &v::LEASE_URL, Some(u.as_str()), &reason);
                return None;
            }
        },
        (LeaseBackend::Redis, Field::Ok(u)) => match values::redis_url(u.as_str()) {
            Ok(u) => Some(SecretUrl::new(u)),
            Err(reason) => {
                r.problem(v::LEASE_URL.name, &v::LEASE_URL, Some(u.as_str()), &reason);
                return None;
            }
        },
        (LeaseBackend::Redis, Field::Missing) => {
            r.problem(
                v::LEASE_URL.name,
                &v::LEASE_URL,
                None,
                "is required when DBMAZZ_LEASE_BACKEND is `redis`",
            );
            return None;
        }
        // Postgres without URL: filled in from the checkpoint databases later.
        (_, Field::Missing) => None,
    };
    Some(WorkerConfig {
        worker_id: worker_id?,
        log_format: log_format?,
        grpc_addr: grpc_addr?,
        metrics_addr: metrics_addr?,
        control_token,
        control_insecure,
        status_requires_token,
        grpc_tls: grpc_tls?,
        lease: LeaseConfig {
            backend: backend?,
            url: lease_url,
            ttl: ttl?,
        },
        max_jobs_per_worker: max_jobs?,
        shutdown_timeout: shutdown_timeout?,
        jobs_file: jobs_file?,
    })
}

fn read_job(r: &mut Reader<'_>) -> Option<JobConfig> {
    use registry as v;
    let source_url = r
        .parsed(&v::SOURCE_URL, values::postgres_url)
        .ok()
        .map(SecretUrl::new);
    let tables = r.tables();
    let slot_name = r.required(&v::SLOT_NAME, values::slot_name);
    let id = match r.parsed(&v::JOB_ID, values::job_id) {
        Field::Ok(id) => Some(id),
        // A slot name is always a valid job id.
        Field::Missing => slot_name.clone(),
        Field::Invalid => None,
    };
    let publication_name = r.required(&v::PUBLICATION_NAME, values::lower_ident);
    let replica_identity = r.word(&v::REPLICA_IDENTITY).map(|w| match w {
        "keep" => ReplicaIdentityMode::Keep,
        _ => ReplicaIdentityMode::Full,
    });
    let sink_url = r.parsed(&v::SINK_URL, values::sink_url).ok();
    let mysql_host = match r.parsed(&v::SINK_MYSQL_HOST, values::host) {
        Field::Ok(h) => Some(h),
        Field::Missing => sink_url
            .as_ref()
            .and_then(|u| u.host_str())
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned()),
        Field::Invalid => None,
    };
    let mysql_port = r
        .int(&v::SINK_MYSQL_PORT)
        .and_then(|p| u16::try_from(p).ok());
    let database = r
        .parsed(&v::SINK_DATABASE, |t| {
            tables::check_starrocks_name(t, 256).map(|()| t.to_owned())
        })
        .ok();
    let user = r.required(&v::SINK_USER, values::sink_user);
    let password = r.required(&v::SINK_PASSWORD, |t| Ok(Secret::new(t)));
    let raw_map = r.table_map();
    let flush_size = r.int(&v::FLUSH_SIZE).and_then(|n| usize::try_from(n).ok());
    let flush_interval = r.int(&v::FLUSH_INTERVAL_MS).map(Duration::from_millis);
    let memory_budget_bytes = r
        .int(&v::MEMORY_BUDGET_MB)
        .map(|mb| mb.saturating_mul(1024 * 1024));
    let checkpoint_url = match r.parsed(&v::CHECKPOINT_URL, values::postgres_url) {
        Field::Ok(u) => Some(Some(SecretUrl::new(u))),
        Field::Missing => Some(None),
        Field::Invalid => None,
    };
    let checkpoint_schema = r.required(&v::CHECKPOINT_SCHEMA, values::lower_ident);
    let spill_url = match r.parsed(&v::SPILL_URL, values::spill_url) {
        Field::Ok(s) => Some(Some(s)),
        Field::Missing => Some(None),
        Field::Invalid => None,
    };
    let delete_mode = r.word(&v::DELETE_MODE).map(|w| match w {
        "hard" => DeleteMode::Hard,
        _ => DeleteMode::Soft,
    });
    let truncate_mode = r.word(&v::TRUNCATE_MODE).map(|w| match w {
        "soft" => TruncateMode::Soft,
        "fail" => TruncateMode::Fail,
        _ => TruncateMode::Apply,
    });
    let label_prefix = r.required(&v::LABEL_PREFIX, values::label_prefix);
    let load_timeout = r.int(&v::LOAD_TIMEOUT_S).map(Duration::from_secs);

    let tables = tables?;
    let table_map = check_table_map(r, &tables, raw_map.ok()?)?;
    Some(JobConfig {
        id: id?,
        source_url: source_url?,
        tables,
        slot_name: slot_name?,
        publication_name: publication_name?,
        replica_identity: replica_identity?,
        sink: SinkConfig {
            url: sink_url?,
            mysql_host: mysql_host?,
            mysql_port: mysql_port?,
            database: database?,
            user: user?,
            password: password?,
            table_map,
        },
        flush_size: flush_size?,
        flush_interval: flush_interval?,
        memory_budget_bytes: memory_budget_bytes?,
        checkpoint_url: checkpoint_url?,
        checkpoint_schema: checkpoint_schema?,
        spill_url: spill_url?,
        delete_mode: delete_mode?,
        truncate_mode: truncate_mode?,
        label_prefix: label_prefix?,
        load_timeout: load_timeout?,
    })
}

/// Validates the map against the tables: sources listed, targets valid and distinct,
/// every unmapped table's own name valid in StarRocks.
fn check_table_map(
    r: &mut Reader<'_>,
    tables: &[TableName],
    raw: Option<RawMap>,
) -> Option<BTreeMap<TableName, String>> {
    let spec = &registry::SINK_TABLE_MAP;
    let (pairs, variable) = raw.unwrap_or_else(|| (Vec::new(), spec.name.to_owned()));
    let mut ok = true;
    let mut map = BTreeMap::new();
    for (source, target) in pairs {
        if !tables.contains(&source) {
            r.problem(
                &variable,
                spec,
                None,
                &format!("maps {source}, which is not in TABLES"),
            );
            ok = false;
        }
        if let Err(e) = tables::check_starrocks_table(&target) {
            r.problem(
                &variable,
                spec,
                None,
                &format!("target {target:?} of {source} {e}"),
            );
            ok = false;
        }
        if map.insert(source.clone(), target).is_some() {
            r.problem(&variable, spec, None, &format!("maps {source} twice"));
            ok = false;
        }
    }
    let mut targets: BTreeMap<&str, &TableName> = BTreeMap::new();
    for t in tables {
        let target = map.get(t).map(String::as_str).unwrap_or(&t.name);
        if !map.contains_key(t) {
            if let Err(e) = tables::check_starrocks_table(target) {
                r.problem(
                    &variable,
                    spec,
                    None,
                    &format!(
                        "{t} needs an entry: its name {e}, so it cannot be a StarRocks table name"
                    ),
                );
                ok = false;
                continue;
            }
        }
        if let Some(other) = targets.insert(target, t) {
            r.problem(
                &variable,
                spec,
                None,
                &format!(
                    "{other} and {t} would both load into StarRocks table `{target}`; map one of \
                     them to another table"
                ),
            );
            ok = false;
        }
    }
    ok.then_some(map)
}

/// (host, port, database) of a PostgreSQL URL, to tell whether two jobs share a
/// database.
fn pg_identity(u: &Url) -> (String, u16, String) {
    let q = |k: &str| {
        u.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .or_else(|| q("host"))
        .unwrap_or_default();
    let port = u
        .port()
        .or_else(|| q("port").and_then(|p| p.parse().ok()))
        .unwrap_or(5432);
    let db = q("dbname").unwrap_or_else(|| u.path().trim_start_matches('/').to_owned());
    (host, port, db)
}

pub(super) fn load_from(env: &Env) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let mut r = Reader {
        env,
        layers: vec![Layer::Env { file_mode: false }],
        problems: &mut problems,
        origins: BTreeMap::new(),
    };
    let worker = read_worker(&mut r);
    let worker_origins = std::mem::take(&mut r.origins);
    // The jobs file path is needed even when another worker setting is wrong.
    let jobs_path = env
        .vars
        .get(registry::JOBS_FILE.name)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);

    let mut all_jobs_ok = true;
    let file: Option<JobsFile> = match &jobs_path {
        None => None,
        Some(path) => {
            for spec in registry::VARS.iter().filter(|s| s.per_job) {
                for name in std::iter::once(spec.name).chain(spec.alias) {
                    if env.vars.contains_key(name) {
                        problems.push(ConfigProblem {
                            variable: name.to_owned(),
                            value: None,
                            reason: format!(
                                "is set in the environment, but DBMAZZ_JOBS_FILE defines the \
                                 jobs: set `{}` in each [[jobs]] entry and unset {name}",
                                spec.file_key.unwrap_or(spec.name)
                            ),
                            accepted: None,
                        });
                    }
                }
            }
            match jobs_file::read(path) {
                Err(shape) => {
                    all_jobs_ok = false;
                    for (variable, reason) in shape {
                        problems.push(ConfigProblem {
                            variable: format!("{} ({variable})", registry::JOBS_FILE.name),
                            value: None,
                            reason,
                            accepted: None,
                        });
                    }
                    None
                }
                Ok(file) => Some(file),
            }
        }
    };
    // Where each job's values come from: the environment alone, or the job's own
    // section, then `[defaults]`, then the environment.
    let job_layers: Vec<Vec<Layer<'_>>> = match (&jobs_path, &file) {
        (None, _) => vec![vec![Layer::Env { file_mode: false }]],
        (Some(_), Some(file)) => file
            .jobs
            .iter()
            .map(|section| {
                vec![
                    Layer::File(section, &file.display),
                    Layer::File(&file.defaults, &file.display),
                    Layer::Env { file_mode: true },
                ]
            })
            .collect(),
        (Some(_), None) => Vec::new(),
    };
    let mut jobs = Vec::new();
    let mut job_origins = Vec::new();
    for layers in job_layers {
        let mut r = Reader {
            env,
            layers,
            problems: &mut problems,
            origins: BTreeMap::new(),
        };
        match read_job(&mut r) {
            Some(j) => {
                jobs.push(j);
                job_origins.push(r.origins);
            }
            None => all_jobs_ok = false,
        }
    }

    // Rules across jobs.
    let mut seen_ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen_slots: BTreeMap<((String, u16, String), &str), &str> = BTreeMap::new();
    let mut seen_pubs: BTreeMap<((String, u16, String), &str), &str> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if seen_ids.insert(&j.id, i).is_some() {
            problems.push(ConfigProblem {
                variable: registry::JOB_ID.name.to_owned(),
                value: Some(j.id.clone()),
                reason: "is used by two jobs; job ids must be unique (the id defaults to the \
                         slot name)"
                    .to_owned(),
                accepted: None,
            });
        }
        let db = pg_identity(j.source_url.expose());
        if let Some(other) = seen_slots.insert((db.clone(), &j.slot_name), &j.id) {
            problems.push(ConfigProblem {
                variable: registry::SLOT_NAME.name.to_owned(),
                value: Some(j.slot_name.clone()),
                reason: format!(
                    "jobs '{other}' and '{}' use the same slot of the same database; each job \
                     needs its own slot",
                    j.id
                ),
                accepted: None,
            });
        }
        if let Some(other) = seen_pubs.insert((db, &j.publication_name), &j.id) {
            problems.push(ConfigProblem {
                variable: registry::PUBLICATION_NAME.name.to_owned(),
                value: Some(j.publication_name.clone()),
                reason: format!(
                    "jobs '{other}' and '{}' use the same publication of the same database; each \
                     job needs its own publication",
                    j.id
                ),
                accepted: None,
            });
        }
    }

    let mut worker = worker;
    if let Some(w) = worker.as_mut() {
        if w.lease.backend == LeaseBackend::Postgres && w.lease.url.is_none() && all_jobs_ok {
            let mut urls: Vec<&SecretUrl> = jobs
                .iter()
                .map(JobConfig::effective_checkpoint_url)
                .collect();
            urls.dedup();
            match urls.as_slice() {
                [one] => w.lease.url = Some((*one).clone()),
                _ => problems.push(ConfigProblem {
                    variable: registry::LEASE_URL.name.to_owned(),
                    value: None,
                    reason: "is required with DBMAZZ_LEASE_BACKEND=postgres when the jobs do not \
                             share one checkpoint database"
                        .to_owned(),
                    accepted: Some(registry::LEASE_URL.accepted.describe()),
                }),
            }
        }
        if w.lease.backend == LeaseBackend::None {
            if let Some(max) = w.max_jobs_per_worker {
                if jobs.len() > max.get() {
                    problems.push(ConfigProblem {
                        variable: registry::MAX_JOBS_PER_WORKER.name.to_owned(),
                        value: Some(max.to_string()),
                        reason: format!(
                            "is below the {} jobs configured, and with DBMAZZ_LEASE_BACKEND=none \
                             this worker must run them all; raise it or use a lease backend",
                            jobs.len()
                        ),
                        accepted: None,
                    });
                }
            }
        }
    }

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let Some(worker) = worker else {
        // Unreachable: a missing worker config always recorded a problem.
        return Err(ConfigError {
            problems: vec![ConfigProblem {
                variable: "configuration".into(),
                value: None,
                reason: "worker settings are incomplete".into(),
                accepted: None,
            }],
        });
    };
    let warnings = warnings(env, &worker);
    Ok(Loaded {
        config: Config { worker, jobs },
        worker_origins,
        job_origins,
        warnings,
    })
}

fn warnings(env: &Env, w: &WorkerConfig) -> Vec<String> {
    let mut out = Vec::new();
    for name in env.vars.keys() {
        let ours = ["DBMAZZ_", "SOURCE_", "SINK_", "FLUSH_"]
            .iter()
            .any(|p| name.starts_with(p));
        if ours && registry::lookup(name).is_none() {
            let best = registry::VARS
                .iter()
                .flat_map(|v| std::iter::once(v.name).chain(v.alias))
                .map(|n| {
                    // `DBMAZZ_FLUSH_SIZE` is most likely `FLUSH_SIZE`: compare without
                    // the prefix too.
                    let bare = |s: &'static str| s.strip_prefix("DBMAZZ_").unwrap_or(s);
                    let plain = name.strip_prefix("DBMAZZ_").unwrap_or(name);
                    let d = jobs_file::edit_distance(name, n)
                        .min(jobs_file::edit_distance(plain, bare(n)));
                    (d, n)
                })
                .min_by_key(|(d, _)| *d)
                .filter(|(d, _)| *d <= 3);
            match best {
                Some((_, n)) => out.push(format!(
                    "{name} is not a dbmazz variable and is ignored (did you mean {n}?)"
                )),
                None => out.push(format!("{name} is not a dbmazz variable and is ignored")),
            }
        }
    }
    let public = !w.grpc_addr.ip().is_loopback();
    if w.control_insecure && public {
        out.push(format!(
            "DBMAZZ_CONTROL_INSECURE=true with gRPC on {}: anyone who reaches this address can \
             pause or stop the pipelines",
            w.grpc_addr
        ));
    }
    if w.control_token.is_some() && w.grpc_tls.is_none() && public {
        out.push(format!(
            "DBMAZZ_CONTROL_TOKEN is sent in clear text: gRPC on {} has no TLS \
             (DBMAZZ_GRPC_TLS_CERT/_KEY)",
            w.grpc_addr
        ));
    }
    if w.control_token.is_none() && !w.control_insecure {
        out.push(
            "no DBMAZZ_CONTROL_TOKEN: control calls (pause, resume, drain, stop) will be refused"
                .to_owned(),
        );
    }
    out
}

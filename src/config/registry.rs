//! The one list of every configuration variable dbmazz reads.
//!
//! Each [`VarSpec`] carries the variable's name, default, accepted values and
//! description. The loader takes defaults and bounds from here (so the documented
//! default is the applied default), validation messages quote the accepted values
//! from here, `dbmazz check` prints from here, and the configuration reference in
//! README.md and docs/configuration.md is generated from here
//! ([`super::reference::reference_markdown`]); a test fails when those files drift.

/// Whether a variable configures the worker process or one pipeline (job).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One value per worker process; environment only.
    Worker,
    /// One value per job; environment, or the jobs file.
    Job,
}

/// What values a variable accepts. Integer bounds are enforced from here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A whole number within `min..=max`, in `unit`.
    Int {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
        /// Unit shown to the user ("rows", "ms", ...).
        unit: &'static str,
    },
    /// One of these words (exact, lower case).
    OneOf(&'static [&'static str]),
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// Free-form description of what is accepted; checked by the loader.
    Text(&'static str),
}

impl Accepted {
    /// Human description, e.g. "a whole number of rows from 1 to 10000000".
    pub fn describe(&self) -> String {
        match self {
            Accepted::Int { min, max, unit } => {
                format!("a whole number of {unit} from {min} to {max}")
            }
            Accepted::OneOf(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("one of {}", quoted.join(", "))
            }
            Accepted::Bool => "`true` or `false` (also 1/0, yes/no, on/off)".to_owned(),
            Accepted::Text(t) => (*t).to_owned(),
        }
    }
}

/// The default of a variable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// This literal value, parsed like a user value.
    Value(&'static str),
    /// Computed from something else (described here).
    Derived(&'static str),
    /// Unset means the feature is off (described here).
    Off(&'static str),
    /// The variable must be set.
    Required,
}

impl DefaultValue {
    /// Text for messages and the reference.
    pub fn describe(&self) -> String {
        match self {
            DefaultValue::Value("") => "empty".to_owned(),
            DefaultValue::Value(v) => format!("`{v}`"),
            DefaultValue::Derived(d) | DefaultValue::Off(d) => (*d).to_owned(),
            DefaultValue::Required => "required".to_owned(),
        }
    }
}

/// One configuration variable.
#[derive(Debug)]
pub struct VarSpec {
    /// Environment variable name.
    pub name: &'static str,
    /// Other accepted environment name (read when `name` is unset).
    pub alias: Option<&'static str>,
    /// Key in the jobs file (job-scoped variables only).
    pub file_key: Option<&'static str>,
    /// Worker or job.
    pub scope: Scope,
    /// Must be set per job in the jobs file; never inherited from the environment
    /// (job identity: a value shared by two jobs would make them collide).
    pub per_job: bool,
    /// Default.
    pub default: DefaultValue,
    /// Accepted values.
    pub accepted: Accepted,
    /// The value is a secret: never printed.
    pub secret: bool,
    /// The empty string is a meaningful value (otherwise a set-but-empty variable is an
    /// error, so a half-filled template cannot silently fall back to a default).
    pub allow_empty: bool,
    /// What the variable does.
    pub description: &'static str,
}

macro_rules! var {
    ($ident:ident, $name:literal, $scope:ident, $default:expr, $accepted:expr, $desc:literal
     $(, alias = $alias:literal)? $(, key = $key:literal)? $(, per_job = $per_job:literal)?
     $(, secret = $secret:literal)? $(, allow_empty = $allow_empty:literal)?) => {
        #[doc = $desc]
        pub static $ident: VarSpec = VarSpec {
            name: $name,
            alias: var!(@opt $($alias)?),
            file_key: var!(@opt $($key)?),
            scope: Scope::$scope,
            per_job: var!(@bool $($per_job)?),
            default: $default,
            accepted: $accepted,
            secret: var!(@bool $($secret)?),
            allow_empty: var!(@bool $($allow_empty)?),
            description: $desc,
        };
    };
    (@opt) => { None };
    (@opt $v:literal) => { Some($v) };
    (@bool) => { false };
    (@bool $v:literal) => { $v };
}

const POSTGRES_URL: &str = "a `postgres://` or `postgresql://` URL with a user; query parameters \
    `sslmode` (disable, allow, prefer, require, verify-ca, verify-full), `sslrootcert` (a file, or \
    `system`), `sslcert` and `sslkey` (files, together), `connect_timeout` (seconds), \
    `application_name`, `host`, `port`, `user`, `password`, `dbname`";

// ---- worker -------------------------------------------------------------------------

var!(
    WORKER_ID,
    "DBMAZZ_WORKER_ID",
    Worker,
    DefaultValue::Derived("`<hostname>-<pid>`"),
    Accepted::Text("1 to 128 characters: letters, digits, `.`, `_`, `-`"),
    "Name of this worker in leases, status replies and logs."
);
var!(
    LOG_FORMAT,
    "DBMAZZ_LOG_FORMAT",
    Worker,
    DefaultValue::Value("human"),
    Accepted::OneOf(&["human", "json"]),
    "Format of the log lines on stderr: `human` for people, `json` (one object per line) for \
     log pipelines. Levels come from `RUST_LOG` (default `info`)."
);
var!(
    GRPC_ADDR,
    "DBMAZZ_GRPC_ADDR",
    Worker,
    DefaultValue::Value("127.0.0.1:50051"),
    Accepted::Text(
        "`IP:port` (`0.0.0.0:PORT` listens on every interface; port 0 picks a free port)"
    ),
    "Address of the gRPC control plane: health, control, status and metrics."
);
var!(
    METRICS_ADDR,
    "DBMAZZ_METRICS_ADDR",
    Worker,
    DefaultValue::Value("127.0.0.1:9187"),
    Accepted::Text("`IP:port`, or `off`"),
    "Address of the Prometheus text endpoint (`GET /metrics`); `off` disables it."
);
var!(
    CONTROL_TOKEN,
    "DBMAZZ_CONTROL_TOKEN",
    Worker,
    DefaultValue::Off("unset: control calls are refused unless `DBMAZZ_CONTROL_INSECURE=true`"),
    Accepted::Text("16 to 4096 printable ASCII characters, no spaces"),
    "Bearer token that control calls (pause, resume, drain, stop) must present.",
    secret = true
);
var!(
    CONTROL_INSECURE,
    "DBMAZZ_CONTROL_INSECURE",
    Worker,
    DefaultValue::Value("false"),
    Accepted::Bool,
    "Accept control calls without a token. Only for a trusted network; cannot be combined \
     with `DBMAZZ_CONTROL_TOKEN`."
);
var!(
    STATUS_REQUIRE_TOKEN,
    "DBMAZZ_STATUS_REQUIRE_TOKEN",
    Worker,
    DefaultValue::Value("false"),
    Accepted::Bool,
    "Require the control token for read-only calls (status, metrics) too. Health checks stay \
     open for probes. Needs `DBMAZZ_CONTROL_TOKEN`."
);
var!(
    GRPC_TLS_CERT,
    "DBMAZZ_GRPC_TLS_CERT",
    Worker,
    DefaultValue::Off("unset: plain-text gRPC"),
    Accepted::Text("path of an existing PEM certificate (chain) file"),
    "Serve gRPC over TLS with this certificate; set together with `DBMAZZ_GRPC_TLS_KEY`."
);
var!(
    GRPC_TLS_KEY,
    "DBMAZZ_GRPC_TLS_KEY",
    Worker,
    DefaultValue::Off("unset: plain-text gRPC"),
    Accepted::Text("path of an existing PEM private key file"),
    "Private key of `DBMAZZ_GRPC_TLS_CERT`; set together with it."
);
var!(
    LEASE_BACKEND,
    "DBMAZZ_LEASE_BACKEND",
    Worker,
    DefaultValue::Value("none"),
    Accepted::OneOf(&["none", "postgres", "redis"]),
    "Where per-job leases live. `none`: this worker runs every job without coordination (run a \
     single worker). `postgres` or `redis`: workers of a fleet share the jobs, and a dead \
     worker's jobs are taken over."
);
var!(
    LEASE_URL,
    "DBMAZZ_LEASE_URL",
    Worker,
    DefaultValue::Derived("for `postgres`: the jobs' checkpoint database when they all share one"),
    Accepted::Text(
        "a `postgres://`/`postgresql://` URL for `postgres`, a `redis://` URL for `redis`"
    ),
    "Database holding the leases.",
    secret = true
);
var!(
    LEASE_TTL_MS,
    "DBMAZZ_LEASE_TTL_MS",
    Worker,
    DefaultValue::Value("10000"),
    Accepted::Int {
        min: 1000,
        max: 300_000,
        unit: "milliseconds"
    },
    "Lease time-to-live, renewed every third of it. A worker that cannot renew in time stops \
     its pipelines before another worker may take them over."
);
var!(
    MAX_JOBS_PER_WORKER,
    "DBMAZZ_MAX_JOBS_PER_WORKER",
    Worker,
    DefaultValue::Value("unlimited"),
    Accepted::Text("a whole number from 1 to 10000, or `unlimited`"),
    "Most jobs one worker runs at once; spreads a fleet's jobs over its workers."
);
var!(
    SHUTDOWN_TIMEOUT_MS,
    "DBMAZZ_SHUTDOWN_TIMEOUT_MS",
    Worker,
    DefaultValue::Value("25000"),
    Accepted::Int {
        min: 1000,
        max: 600_000,
        unit: "milliseconds"
    },
    "Time allowed after SIGTERM to finish in-flight loads, checkpoint and confirm before \
     exiting. Keep it below the orchestrator's kill delay (ECS waits 30 s)."
);
var!(
    JOBS_FILE,
    "DBMAZZ_JOBS_FILE",
    Worker,
    DefaultValue::Off("unset: one job, configured by the environment"),
    Accepted::Text("path of an existing TOML file"),
    "File describing several jobs with shared defaults (format: docs/configuration.md)."
);

// ---- job ----------------------------------------------------------------------------

var!(
    JOB_ID,
    "DBMAZZ_JOB_ID",
    Job,
    DefaultValue::Derived("the slot name"),
    Accepted::Text("1 to 63 characters: letters, digits, `_`"),
    "Name of the job in leases, checkpoints, Stream Load labels and status.",
    key = "id",
    per_job = true
);
var!(
    SOURCE_URL,
    "SOURCE_URL",
    Job,
    DefaultValue::Required,
    Accepted::Text(POSTGRES_URL),
    "PostgreSQL database to replicate from (the server needs `wal_level=logical`).",
    alias = "DATABASE_URL",
    key = "source_url",
    secret = true
);
var!(
    TABLES,
    "TABLES",
    Job,
    DefaultValue::Required,
    Accepted::Text(
        "comma-separated `schema.table` or `table` (schema `public`); unquoted names \
     fold to lower case; double-quote names with capitals, dots, commas or spaces: \
     `\"Sales\".\"Order Items\"`"
    ),
    "Tables to replicate.",
    key = "tables",
    per_job = true
);
var!(
    SLOT_NAME,
    "SOURCE_SLOT_NAME",
    Job,
    DefaultValue::Value("dbmazz_slot"),
    Accepted::Text("1 to 63 characters: lower-case letters, digits, `_`"),
    "Logical replication slot of the job (created at setup when missing).",
    key = "slot_name",
    per_job = true
);
var!(
    PUBLICATION_NAME,
    "SOURCE_PUBLICATION_NAME",
    Job,
    DefaultValue::Value("dbmazz_pub"),
    Accepted::Text(
        "1 to 63 characters: lower-case letters, digits, `_`, not starting with a digit"
    ),
    "Publication of the job's tables (created at setup when missing).",
    key = "publication_name",
    per_job = true
);
var!(
    REPLICA_IDENTITY,
    "DBMAZZ_REPLICA_IDENTITY",
    Job,
    DefaultValue::Value("full"),
    Accepted::OneOf(&["full", "keep"]),
    "`full`: set `REPLICA IDENTITY FULL` on each table at setup, so updates and deletes carry \
     the old row. `keep`: leave the tables' replica identity alone (each needs a primary key).",
    key = "replica_identity"
);
var!(
    SINK_URL,
    "SINK_URL",
    Job,
    DefaultValue::Required,
    Accepted::Text(
        "an `http://` or `https://` URL of the StarRocks FE HTTP port, without \
     credentials, path or query (e.g. `http://starrocks-fe:8030`)"
    ),
    "StarRocks frontend receiving Stream Loads.",
    key = "sink_url"
);
var!(
    SINK_MYSQL_HOST,
    "SINK_MYSQL_HOST",
    Job,
    DefaultValue::Derived("the host of `SINK_URL`"),
    Accepted::Text("a host name or IP address"),
    "Host of the StarRocks FE's MySQL-protocol port (schema changes, checks).",
    key = "sink_mysql_host"
);
var!(
    SINK_MYSQL_PORT,
    "SINK_MYSQL_PORT",
    Job,
    DefaultValue::Value("9030"),
    Accepted::Int {
        min: 1,
        max: 65535,
        unit: "port number"
    },
    "Port of the StarRocks FE's MySQL protocol.",
    key = "sink_mysql_port"
);
var!(
    SINK_DATABASE,
    "SINK_DATABASE",
    Job,
    DefaultValue::Required,
    Accepted::Text("letters, digits, `_`, not starting with a digit, at most 256 characters"),
    "StarRocks database holding the target tables.",
    key = "sink_database"
);
var!(
    SINK_USER,
    "SINK_USER",
    Job,
    DefaultValue::Value("root"),
    Accepted::Text("1 to 128 characters, without `:` or control characters"),
    "StarRocks user for Stream Load and the MySQL protocol.",
    key = "sink_user"
);
var!(
    SINK_PASSWORD,
    "SINK_PASSWORD",
    Job,
    DefaultValue::Value(""),
    Accepted::Text("any text, may be empty"),
    "Password of `SINK_USER`.",
    key = "sink_password",
    secret = true,
    allow_empty = true
);
var!(
    SINK_TABLE_MAP,
    "SINK_TABLE_MAP",
    Job,
    DefaultValue::Derived("each table loads into the StarRocks table of the same name"),
    Accepted::Text(
        "comma-separated `source_table=starrocks_table` pairs, e.g. \
     `public.orders=orders_rt`; sources must be in `TABLES`, targets distinct"
    ),
    "StarRocks table of a source table, where the names differ. Needed when two schemas \
     have a table of the same name, or a name is not valid in StarRocks.",
    key = "sink_table_map",
    per_job = true
);
var!(
    FLUSH_SIZE,
    "FLUSH_SIZE",
    Job,
    DefaultValue::Value("10000"),
    Accepted::Int {
        min: 1,
        max: 10_000_000,
        unit: "rows"
    },
    "A batch is loaded once it holds this many rows (at the next commit boundary).",
    key = "flush_size"
);
var!(
    FLUSH_INTERVAL_MS,
    "FLUSH_INTERVAL_MS",
    Job,
    DefaultValue::Value("500"),
    Accepted::Int {
        min: 10,
        max: 600_000,
        unit: "milliseconds"
    },
    "A non-empty batch is loaded at the latest this long after its first change.",
    key = "flush_interval_ms"
);
var!(
    MEMORY_BUDGET_MB,
    "DBMAZZ_MEMORY_BUDGET_MB",
    Job,
    DefaultValue::Value("256"),
    Accepted::Int {
        min: 16,
        max: 1_048_576,
        unit: "MiB"
    },
    "Memory the job's buffered changes may use; a larger transaction spills to \
     `DBMAZZ_SPILL_URL`.",
    key = "memory_budget_mb"
);
var!(
    CHECKPOINT_URL,
    "DBMAZZ_CHECKPOINT_URL",
    Job,
    DefaultValue::Derived("`SOURCE_URL`"),
    Accepted::Text("a `postgres://` or `postgresql://` URL (same rules as `SOURCE_URL`)"),
    "PostgreSQL database holding the job's checkpoint.",
    key = "checkpoint_url",
    secret = true
);
var!(
    CHECKPOINT_SCHEMA,
    "DBMAZZ_CHECKPOINT_SCHEMA",
    Job,
    DefaultValue::Value("dbmazz"),
    Accepted::Text(
        "1 to 63 characters: lower-case letters, digits, `_`, not starting with a digit"
    ),
    "Schema of the `dbmazz_checkpoints` table (created at setup).",
    key = "checkpoint_schema"
);
var!(
    SPILL_URL,
    "DBMAZZ_SPILL_URL",
    Job,
    DefaultValue::Off(
        "unset: no spill; a transaction larger than the memory budget stops the job \
     with an error asking for this variable"
    ),
    Accepted::Text(
        "`s3://bucket/prefix` (any S3-compatible store; credentials and endpoint from \
     the standard `AWS_*` variables) or `file:///absolute/dir`"
    ),
    "Where transactions larger than the memory budget are staged until they commit.",
    key = "spill_url"
);
var!(
    DELETE_MODE,
    "DBMAZZ_DELETE_MODE",
    Job,
    DefaultValue::Value("soft"),
    Accepted::OneOf(&["soft", "hard"]),
    "`soft`: a deleted row stays in StarRocks, marked deleted (an upsert, safe under replay). \
     `hard`: the row is deleted, through the Stream Load transaction API with a lease check.",
    key = "delete_mode"
);
var!(
    TRUNCATE_MODE,
    "DBMAZZ_TRUNCATE_MODE",
    Job,
    DefaultValue::Value("apply"),
    Accepted::OneOf(&["apply", "soft", "fail"]),
    "`apply`: TRUNCATE the StarRocks table too. `soft`: mark its rows deleted. `fail`: stop the \
     job with an error.",
    key = "truncate_mode"
);
var!(
    LABEL_PREFIX,
    "DBMAZZ_LABEL_PREFIX",
    Job,
    DefaultValue::Value("dbmazz"),
    Accepted::Text("1 to 32 characters: letters, digits, `_` (StarRocks' label rules)"),
    "First part of every Stream Load label (`<prefix>_<job>_<table>_<startLSN>_<endLSN>`).",
    key = "label_prefix"
);
var!(
    LOAD_TIMEOUT_S,
    "DBMAZZ_LOAD_TIMEOUT_S",
    Job,
    DefaultValue::Value("600"),
    Accepted::Int {
        min: 1,
        max: 259_200,
        unit: "seconds"
    },
    "Stream Load timeout sent to StarRocks; a load not finished by then is retried.",
    key = "load_timeout_s"
);

/// Every variable, in the order of the reference.
pub static VARS: &[&VarSpec] = &[
    &WORKER_ID,
    &LOG_FORMAT,
    &GRPC_ADDR,
    &METRICS_ADDR,
    &CONTROL_TOKEN,
    &CONTROL_INSECURE,
    &STATUS_REQUIRE_TOKEN,
    &GRPC_TLS_CERT,
    &GRPC_TLS_KEY,
    &LEASE_BACKEND,
    &LEASE_URL,
    &LEASE_TTL_MS,
    &MAX_JOBS_PER_WORKER,
    &SHUTDOWN_TIMEOUT_MS,
    &JOBS_FILE,
    &JOB_ID,
    &SOURCE_URL,
    &TABLES,
    &SLOT_NAME,
    &PUBLICATION_NAME,
    &REPLICA_IDENTITY,
    &SINK_URL,
    &SINK_MYSQL_HOST,
    &SINK_MYSQL_PORT,
    &SINK_DATABASE,
    &SINK_USER,
    &SINK_PASSWORD,
    &SINK_TABLE_MAP,
    &FLUSH_SIZE,
    &FLUSH_INTERVAL_MS,
    &MEMORY_BUDGET_MB,
    &CHECKPOINT_URL,
    &CHECKPOINT_SCHEMA,
    &SPILL_URL,
    &DELETE_MODE,
    &TRUNCATE_MODE,
    &LABEL_PREFIX,
    &LOAD_TIMEOUT_S,
];

/// The registry entry for an environment variable name (or alias).
pub fn lookup(name: &str) -> Option<&'static VarSpec> {
    VARS.iter()
        .copied()
        .find(|v| v.name == name || v.alias == Some(name))
}

/// The registry entry for a jobs-file key.
pub fn lookup_file_key(key: &str) -> Option<&'static VarSpec> {
    VARS.iter().copied().find(|v| v.file_key == Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_unique() {
        let mut names: Vec<&str> = VARS
            .iter()
            .flat_map(|v| std::iter::once(v.name).chain(v.alias))
            .collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate variable name");
        let mut keys: Vec<&str> = VARS.iter().filter_map(|v| v.file_key).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "duplicate jobs-file key");
    }

    #[test]
    fn job_variables_have_file_keys_and_worker_variables_do_not() {
        for v in VARS {
            match v.scope {
                Scope::Job => assert!(v.file_key.is_some(), "{} has no key", v.name),
                Scope::Worker => assert!(v.file_key.is_none(), "{} has a key", v.name),
            }
        }
    }

    #[test]
    fn int_defaults_are_within_their_bounds() {
        for v in VARS {
            if let (Accepted::Int { min, max, .. }, DefaultValue::Value(d)) =
                (v.accepted, v.default)
            {
                let d: u64 = d.parse().expect("numeric default");
                assert!((min..=max).contains(&d), "{}", v.name);
            }
            if let (Accepted::OneOf(words), DefaultValue::Value(d)) = (v.accepted, v.default) {
                assert!(words.contains(&d), "{}", v.name);
            }
        }
    }

    #[test]
    fn lookup_finds_aliases() {
        assert_eq!(lookup("DATABASE_URL").map(|v| v.name), Some("SOURCE_URL"));
        assert_eq!(
            lookup_file_key("flush_size").map(|v| v.name),
            Some("FLUSH_SIZE")
        );
        assert!(lookup("NOPE").is_none());
    }
}

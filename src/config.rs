//! Configuration: environment variables first (12-factor), plus an optional jobs file
//! describing several pipelines for one fleet.
//!
//! ```text
//! environment ──┐
//!               ├─▶ load() ──▶ Config { worker, jobs } ──▶ engine / runner
//! jobs file ────┘      │
//!                      └─▶ ConfigError: every problem at once, each naming the variable,
//!                          the (redacted) value and what is accepted
//! ```
//!
//! Every variable is declared once in [`registry`]: its default, accepted values and
//! description drive the loader, the messages, `dbmazz check` and the reference in
//! README.md ([`mod@reference`]). Rules:
//!
//! - Start-up stops on any invalid value; all problems are reported together.
//! - A variable set to the empty string is an error unless the empty string means
//!   something for it (`SINK_PASSWORD`): a half-filled template must not silently fall
//!   back to a default.
//! - Secrets are [`Secret`]/[`SecretUrl`]: their `Debug`/`Display` never show the clear
//!   value, and neither do the error messages.
//! - Without `DBMAZZ_JOBS_FILE` the environment describes one job. With it, the file
//!   lists the jobs; a job's value comes from its own table, then `[defaults]`, then the
//!   environment, then the built-in default (see [`jobs_file`] for the format).
//! - Unknown `DBMAZZ_*`, `SOURCE_*`, `SINK_*` and `FLUSH_*` variables are reported as
//!   warnings with the closest known name (a typo must not go unnoticed, but a variable
//!   from a newer version must not stop an older worker).

pub mod jobs_file;
mod load;
mod reader;
pub mod reference;
pub mod registry;
mod report;
mod secret;
pub mod tables;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use secret::{hidden, redact_url, Secret, SecretUrl, REDACTED};
pub use tables::TableName;

/// Everything a worker needs to run: its own settings and the jobs it may run.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Process-wide settings.
    pub worker: WorkerConfig,
    /// The pipelines (at least one).
    pub jobs: Vec<JobConfig>,
}

/// Log line format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Certificate and key for serving gRPC over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Where leases live.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeaseBackend {
    /// No coordination: this worker runs every job (a single worker).
    None,
    /// `dbmazz_leases` table in PostgreSQL.
    Postgres,
    /// Redis keys.
    Redis,
}

/// Lease settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Backend.
    pub backend: LeaseBackend,
    /// Database of the backend; `Some` for `Postgres` and `Redis` (for `Postgres`
    /// defaulted to the jobs' shared checkpoint database), `None` for `None`.
    pub url: Option<SecretUrl>,
    /// Time-to-live; renew every third of it.
    pub ttl: Duration,
}

/// Process-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Name of this worker (`DBMAZZ_WORKER_ID`).
    pub worker_id: String,
    /// Log format (`DBMAZZ_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// gRPC listen address (`DBMAZZ_GRPC_ADDR`).
    pub grpc_addr: SocketAddr,
    /// Prometheus endpoint address; `None` when disabled (`DBMAZZ_METRICS_ADDR=off`).
    pub metrics_addr: Option<SocketAddr>,
    /// Bearer token for control calls (`DBMAZZ_CONTROL_TOKEN`).
    pub control_token: Option<Secret>,
    /// Accept control calls without a token (`DBMAZZ_CONTROL_INSECURE`).
    pub control_insecure: bool,
    /// Read-only calls need the token too (`DBMAZZ_STATUS_REQUIRE_TOKEN`).
    pub status_requires_token: bool,
    /// TLS for gRPC (`DBMAZZ_GRPC_TLS_CERT`/`_KEY`).
    pub grpc_tls: Option<TlsFiles>,
    /// Leases.
    pub lease: LeaseConfig,
    /// Most jobs run at once; `None` = unlimited (`DBMAZZ_MAX_JOBS_PER_WORKER`).
    pub max_jobs_per_worker: Option<NonZeroUsize>,
    /// Grace period after SIGTERM (`DBMAZZ_SHUTDOWN_TIMEOUT_MS`).
    pub shutdown_timeout: Duration,
    /// The jobs file the jobs came from, if any (`DBMAZZ_JOBS_FILE`).
    pub jobs_file: Option<PathBuf>,
}

/// How the replica identity of source tables is handled at setup.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplicaIdentityMode {
    /// `ALTER TABLE … REPLICA IDENTITY FULL`.
    Full,
    /// Leave it as it is.
    Keep,
}

/// How deletes reach StarRocks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// Mark the row deleted (an upsert).
    Soft,
    /// Delete the row (transaction API, fenced).
    Hard,
}

/// What a source TRUNCATE does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TruncateMode {
    /// Truncate the StarRocks table.
    Apply,
    /// Mark all its rows deleted.
    Soft,
    /// Stop the job with an error.
    Fail,
}

/// Where oversized transactions are staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpillTarget {
    /// An S3(-compatible) bucket; objects go under `prefix` (no leading/trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, possibly empty.
        prefix: String,
    },
    /// A local directory (absolute).
    Local(PathBuf),
}

impl fmt::Display for SpillTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpillTarget::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            SpillTarget::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            SpillTarget::Local(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// The StarRocks side of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    /// FE HTTP base URL (no credentials, no path) (`SINK_URL`).
    pub url: Url,
    /// FE MySQL-protocol host (`SINK_MYSQL_HOST`).
    pub mysql_host: String,
    /// FE MySQL-protocol port (`SINK_MYSQL_PORT`).
    pub mysql_port: u16,
    /// Target database (`SINK_DATABASE`).
    pub database: String,
    /// User (`SINK_USER`).
    pub user: String,
    /// Password, possibly empty (`SINK_PASSWORD`).
    pub password: Secret,
    /// Source table → StarRocks table where they differ (`SINK_TABLE_MAP`); other
    /// tables load into the table of the same name.
    pub table_map: BTreeMap<TableName, String>,
}

impl SinkConfig {
    /// The StarRocks table receiving `table`'s rows.
    pub fn target_table<'a>(&'a self, table: &'a TableName) -> &'a str {
        self.table_map
            .get(table)
            .map(String::as_str)
            .unwrap_or(&table.name)
    }
}

/// One pipeline: a slot's tables into a StarRocks database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobConfig {
    /// Job id (`DBMAZZ_JOB_ID`, default the slot name).
    pub id: String,
    /// Source database (`SOURCE_URL`/`DATABASE_URL`).
    pub source_url: SecretUrl,
    /// Replicated tables, in the configured order (`TABLES`).
    pub tables: Vec<TableName>,
    /// Replication slot (`SOURCE_SLOT_NAME`).
    pub slot_name: String,
    /// Publication (`SOURCE_PUBLICATION_NAME`).
    pub publication_name: String,
    /// Replica identity handling (`DBMAZZ_REPLICA_IDENTITY`).
    pub replica_identity: ReplicaIdentityMode,
    /// StarRocks.
    pub sink: SinkConfig,
    /// Rows per batch (`FLUSH_SIZE`).
    pub flush_size: usize,
    /// Longest a change waits in a batch (`FLUSH_INTERVAL_MS`).
    pub flush_interval: Duration,
    /// Memory budget of buffered changes (`DBMAZZ_MEMORY_BUDGET_MB`).
    pub memory_budget_bytes: u64,
    /// Checkpoint database; `None` = the source database (`DBMAZZ_CHECKPOINT_URL`).
    pub checkpoint_url: Option<SecretUrl>,
    /// Schema of the checkpoint table (`DBMAZZ_CHECKPOINT_SCHEMA`).
    pub checkpoint_schema: String,
    /// Spill store; `None` = no spill (`DBMAZZ_SPILL_URL`).
    pub spill_url: Option<SpillTarget>,
    /// Deletes (`DBMAZZ_DELETE_MODE`).
    pub delete_mode: DeleteMode,
    /// Truncates (`DBMAZZ_TRUNCATE_MODE`).
    pub truncate_mode: TruncateMode,
    /// Stream Load label prefix (`DBMAZZ_LABEL_PREFIX`).
    pub label_prefix: String,
    /// Stream Load timeout (`DBMAZZ_LOAD_TIMEOUT_S`).
    pub load_timeout: Duration,
}

impl JobConfig {
    /// The checkpoint database: `checkpoint_url`, else the source.
    pub fn effective_checkpoint_url(&self) -> &SecretUrl {
        self.checkpoint_url.as_ref().unwrap_or(&self.source_url)
    }
}

/// One invalid setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable (or `file: jobs[2].key`) that is wrong.
    pub variable: String,
    /// The value as it may be shown (redacted when secret); `None` when unset.
    pub value: Option<String>,
    /// What is wrong.
    pub reason: String,
    /// What is accepted (and the default), when that helps.
    pub accepted: Option<String>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={:?}: {}", self.variable, v, self.reason)?,
            None => write!(f, "{}: {}", self.variable, self.reason)?,
        }
        if let Some(a) = &self.accepted {
            write!(f, ". Accepted: {a}")?;
        }
        Ok(())
    }
}

/// The configuration is invalid; every problem found is listed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// All problems, in registry order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Where an effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default (or a value derived from other settings).
    Default,
    /// This environment variable.
    Env(String),
    /// The jobs file: file name and section (`[defaults]`, `jobs[2]`).
    File(String, String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::File(file, section) => write!(f, "{file} {section}"),
        }
    }
}

/// A loaded configuration with what `dbmazz check` shows besides it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Where each worker variable's value came from.
    pub worker_origins: BTreeMap<&'static str, Origin>,
    /// Per job (same order as `config.jobs`): where each variable's value came from.
    pub job_origins: Vec<BTreeMap<&'static str, Origin>>,
    /// Advice that does not stop start-up (unknown variables, risky combinations).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads the process environment (and the jobs file it names).
    pub fn from_env() -> Result<Config, ConfigError> {
        load_env().map(|l| l.config)
    }

    /// Reads the given variables instead of the process environment (tests, tools).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        load(vars).map(|l| l.config)
    }
}

/// [`load`] on the process environment. Variables whose name or value is not UTF-8
/// are reported as problems when dbmazz reads them.
pub fn load_env() -> Result<Loaded, ConfigError> {
    let mut vars = Vec::new();
    let mut bad = Vec::new();
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => vars.push((k, v)),
            (Ok(k), Err(_)) => bad.push(k),
            (Err(_), _) => {}
        }
    }
    let env = reader::Env::new(vars, bad);
    load::load_from(&env)
}

/// Loads and validates a configuration from `vars` (name → value).
pub fn load<I, K, V>(vars: I) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let env = reader::Env::new(
        vars.into_iter().map(|(k, v)| (k.into(), v.into())),
        Vec::new(),
    );
    load::load_from(&env)
}

#[cfg(test)]
mod tests;

//! The jobs file (`DBMAZZ_JOBS_FILE`): several pipelines for one fleet, in TOML.
//!
//! ```toml
//! [defaults]                  # optional: applies to every job unless the job sets it
//! source_url = "postgres://dbmazz@db:5432/shop"
//! sink_url = "http://starrocks-fe:8030"
//! sink_database = "analytics"
//!
//! [[jobs]]
//! slot_name = "orders"        # id defaults to the slot name
//! publication_name = "orders_pub"
//! tables = ["public.orders", "public.order_items"]
//!
//! [[jobs]]
//! id = "customers"
//! slot_name = "customers"
//! publication_name = "customers_pub"
//! tables = "crm.customers"
//! sink_table_map = { "crm.customers" = "customers" }
//! ```
//!
//! Keys are the "jobs file key" column of the configuration reference. A job's value
//! comes from the job's table, else `[defaults]`, else the environment variable (so
//! secrets such as `SINK_PASSWORD` can stay in the environment), else the built-in
//! default. Job identity keys (`id`, `tables`, `slot_name`, `publication_name`,
//! `sink_table_map`) are per job only. Unknown keys are errors (typos must not be
//! ignored). Worker settings stay in the environment.
//!
//! This module only reads the file's shape; values are validated by the loader with
//! the same rules as environment variables.

use std::collections::BTreeMap;
use std::path::Path;

use super::registry::{self, Scope};

/// One value as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileValue {
    /// A string, number or boolean, as text.
    Text(String),
    /// An array of strings.
    List(Vec<String>),
    /// An inline table of strings.
    Map(Vec<(String, String)>),
}

/// One table of keys: `[defaults]` or one `[[jobs]]` entry.
#[derive(Clone, Debug, Default)]
pub struct Section {
    /// Where it is, for messages: `[defaults]` or `jobs[2]`.
    pub label: String,
    /// Key → value.
    pub entries: BTreeMap<String, FileValue>,
}

/// The parsed file.
#[derive(Clone, Debug)]
pub struct JobsFile {
    /// File name for messages.
    pub display: String,
    /// `[defaults]` (possibly empty).
    pub defaults: Section,
    /// The `[[jobs]]` entries, in order.
    pub jobs: Vec<Section>,
}

/// A problem found in the file's structure: (`where`, `what`).
pub type ShapeProblem = (String, String);

/// Reads and parses `path`. All structural problems are returned together.
pub fn read(path: &Path) -> Result<JobsFile, Vec<ShapeProblem>> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![(display.clone(), format!("cannot be read: {e}"))])?;
    parse(&text, &display)
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses file contents (`display` names the file in messages).
pub fn parse(text: &str, display: &str) -> Result<JobsFile, Vec<ShapeProblem>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        // The message alone: toml's full rendering quotes the offending line, which
        // may hold a password.
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(text, s.start);
                format!(" at line {l}, column {c}")
            })
            .unwrap_or_default();
        vec![(
            display.to_owned(),
            format!("is not valid TOML{at}: {}", e.message().trim()),
        )]
    })?;
    let mut problems = Vec::new();
    let mut defaults = Section {
        label: "[defaults]".to_owned(),
        ..Section::default()
    };
    let mut jobs = Vec::new();
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("defaults", toml::Value::Table(t)) => {
                defaults.entries = section(t, &defaults.label, true, display, &mut problems);
            }
            ("defaults", _) => problems.push((
                format!("{display}: defaults"),
                "must be a table: [defaults]".to_owned(),
            )),
            ("jobs", toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let label = format!("jobs[{}]", i + 1);
                    match item {
                        toml::Value::Table(t) => {
                            let entries = section(t, &label, false, display, &mut problems);
                            jobs.push(Section { label, entries });
                        }
                        _ => problems.push((
                            format!("{display}: {label}"),
                            "must be a table: [[jobs]]".to_owned(),
                        )),
                    }
                }
            }
            ("jobs", _) => problems.push((
                format!("{display}: jobs"),
                "must be an array of tables: [[jobs]]".to_owned(),
            )),
            (other, _) => problems.push((
                format!("{display}: {other}"),
                "unknown top-level key; the file has `[defaults]` and `[[jobs]]` only (worker \
                 settings come from the environment)"
                    .to_owned(),
            )),
        }
    }
    if jobs.is_empty() && problems.is_empty() {
        problems.push((
            display.to_owned(),
            "defines no job; add at least one [[jobs]] table".to_owned(),
        ));
    }
    if problems.is_empty() {
        Ok(JobsFile {
            display: display.to_owned(),
            defaults,
            jobs,
        })
    } else {
        Err(problems)
    }
}

fn section(
    t: &toml::Table,
    label: &str,
    is_defaults: bool,
    display: &str,
    problems: &mut Vec<ShapeProblem>,
) -> BTreeMap<String, FileValue> {
    let mut out = BTreeMap::new();
    for (key, value) in t {
        let at = format!("{display}: {label}.{key}");
        let Some(spec) = registry::lookup_file_key(key) else {
            let worker = registry::lookup(&format!("DBMAZZ_{}", key.to_ascii_uppercase()))
                .filter(|s| s.scope == Scope::Worker);
            let hint = if let Some(w) = worker {
                format!(
                    " ({} is a worker setting: set it in the environment)",
                    w.name
                )
            } else {
                registry::lookup(key)
                    .and_then(|s| s.file_key)
                    .map(|k| format!(" (the key for {key} is `{k}`)"))
                    .or_else(|| suggest(key).map(|k| format!(" (did you mean `{k}`?)")))
                    .unwrap_or_default()
            };
            problems.push((at, format!("unknown key{hint}")));
            continue;
        };
        if is_defaults && spec.per_job {
            problems.push((
                at,
                "identifies one job and cannot be a default; set it in each [[jobs]] entry"
                    .to_owned(),
            ));
            continue;
        }
        match to_file_value(value) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(e) => problems.push((at, e)),
        }
    }
    out
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn to_file_value(v: &toml::Value) -> Result<FileValue, String> {
    if let Some(s) = scalar(v) {
        return Ok(FileValue::Text(s));
    }
    match v {
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                _ => Err("list items must be strings".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(FileValue::List),
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("value of `{k}` must be a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(FileValue::Map),
        _ => Err("dates are not accepted here".to_owned()),
    }
}

/// The closest known jobs-file key, when it is close enough to be a typo.
fn suggest(key: &str) -> Option<&'static str> {
    registry::VARS
        .iter()
        .filter_map(|v| v.file_key)
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (small strings only).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_defaults_and_jobs() {
        let f = parse(
            r#"
            [defaults]
            sink_url = "http://fe:8030"
            flush_size = 500
            [[jobs]]
            slot_name = "a"
            tables = ["x", "y"]
            sink_table_map = { "x" = "x_rt" }
            [[jobs]]
            slot_name = "b"
            tables = "z"
            "#,
            "jobs.toml",
        )
        .expect("valid");
        assert_eq!(
            f.defaults.entries.get("flush_size"),
            Some(&FileValue::Text("500".into()))
        );
        assert_eq!(f.jobs.len(), 2);
        assert_eq!(f.jobs[0].label, "jobs[1]");
        assert_eq!(
            f.jobs[0].entries.get("tables"),
            Some(&FileValue::List(vec!["x".into(), "y".into()]))
        );
        assert_eq!(
            f.jobs[0].entries.get("sink_table_map"),
            Some(&FileValue::Map(vec![("x".into(), "x_rt".into())]))
        );
    }

    #[test]
    fn every_structural_problem_is_reported() {
        let err = parse(
            r#"
            worker_id = "w"
            [defaults]
            tables = "x"
            flush_sise = 3
            grpc_addr = "x"
            [[jobs]]
            FLUSH_SIZE = 1
            when = 1979-05-27
            "#,
            "jobs.toml",
        )
        .expect_err("invalid");
        let text = format!("{err:?}");
        assert!(text.contains("jobs.toml: worker_id"), "{text}");
        assert!(text.contains("cannot be a default"), "{text}");
        assert!(text.contains("did you mean `flush_size`"), "{text}");
        assert!(
            text.contains("the key for FLUSH_SIZE is `flush_size`"),
            "{text}"
        );
        assert!(text.contains("jobs.toml: jobs[1].when"), "{text}");
        assert!(
            text.contains("DBMAZZ_GRPC_ADDR is a worker setting"),
            "{text}"
        );
        assert_eq!(err.len(), 6, "{text}");
    }

    #[test]
    fn syntax_errors_give_a_position_but_not_the_line() {
        let err = parse(
            "[defaults]\nsink_password = \"hunter2\nflush_size = 1\n",
            "jobs.toml",
        )
        .expect_err("invalid");
        assert_eq!(err.len(), 1);
        assert!(err[0].1.contains("line 2"), "{err:?}");
        assert!(!err[0].1.contains("hunter2"), "{err:?}");
    }

    #[test]
    fn a_file_without_jobs_is_rejected() {
        let err = parse("[defaults]\nflush_size = 1\n", "j.toml").expect_err("no jobs");
        assert!(err[0].1.contains("defines no job"), "{err:?}");
    }

    #[test]
    fn missing_file_is_reported() {
        let err = read(Path::new("/nonexistent/jobs.toml")).expect_err("missing");
        assert!(err[0].1.contains("cannot be read"), "{err:?}");
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("flush_sise", "flush_size"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}

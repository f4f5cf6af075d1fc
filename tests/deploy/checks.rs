//! The checks `tests/deploy` applies to the deployment files. Each check returns the problems it found (empty: fine) instead of panicking, so
//! the tests can also feed it broken input and show that it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use dbmazz::config::registry;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, as text.
pub fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Environment variable names dbmazz reads: every variable of the configuration
/// registry (and its alias), and the standard variables the registry lists as honoured
/// through its libraries (OTEL_*, AWS_*, RUST_LOG).
pub fn accepted_env_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = registry::VARS
        .iter()
        .flat_map(|v| std::iter::once(v.name).chain(v.alias))
        .map(str::to_owned)
        .collect();
    for e in dbmazz::config::reference::EXTERNAL_VARS {
        names.extend(e.name.split(" / ").map(|n| n.trim().to_owned()));
    }
    names
}

/// Names of the variables the registry marks secret (passwords, tokens, URLs that may
/// carry a password).
pub fn secret_env_names() -> BTreeSet<String> {
    registry::VARS
        .iter()
        .filter(|v| v.secret)
        .flat_map(|v| std::iter::once(v.name).chain(v.alias))
        .map(str::to_owned)
        .collect()
}

/// Problems with the environment variable names a deployment file sets (`what` names
/// the file and place): none set at all, or a name dbmazz does not read.
pub fn check_env_names<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let accepted = accepted_env_names();
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return vec![format!("{what}: sets no environment variable at all")];
    }
    names
        .into_iter()
        .filter(|n| !accepted.contains(*n))
        .map(|n| {
            format!(
                "{what}: sets {n}, which dbmazz does not read (not in the configuration \
                 registry, src/config/registry.rs)"
            )
        })
        .collect()
}

/// Problems when secrets are set as plain environment values (`what` names the place).
pub fn check_no_plain_secrets<'a>(
    what: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let secrets = secret_env_names();
    names
        .into_iter()
        .filter(|n| secrets.contains(*n))
        .map(|n| {
            format!("{what}: sets the secret {n} as a plain value; inject it from the secret store")
        })
        .collect()
}

/// Problems with names meant to come from a secret store that are not secrets (a plain
/// setting routed through the secret store hides it from review).
pub fn check_all_secret<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let secrets = secret_env_names();
    names
        .into_iter()
        .filter(|n| !secrets.contains(*n))
        .map(|n| format!("{what}: {n} comes from the secret store but is not a secret"))
        .collect()
}

/// Problems with names set as plain values: each must be read by dbmazz and none may be
/// a secret.
pub fn check_plain_env(what: &str, names: &[&str]) -> Vec<String> {
    let mut p = check_env_names(what, names.iter().copied());
    p.extend(check_no_plain_secrets(what, names.iter().copied()));
    p
}

/// Problems with names injected from a secret store: each must be read by dbmazz and be
/// a secret.
pub fn check_secret_env(what: &str, names: &[&str]) -> Vec<String> {
    let mut p = check_env_names(what, names.iter().copied());
    p.extend(check_all_secret(what, names.iter().copied()));
    p
}

/// Runs the dbmazz binary under test with `args` and only the environment `env`;
/// a problem when it does not exit 0, with what it wrote on stderr.
pub fn check_dbmazz_runs(what: &str, args: &[String], env: &[(String, String)]) -> Vec<String> {
    let out = match Command::new(env!("CARGO_BIN_EXE_dbmazz"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
    {
        Ok(o) => o,
        Err(e) => return vec![format!("{what}: cannot run dbmazz: {e}")],
    };
    if out.status.success() {
        Vec::new()
    } else {
        vec![format!(
            "{what}: `dbmazz {}` exits {:?}: {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )]
    }
}

/// Runs `dbmazz ARGS --help`: a subcommand the CLI does not have fails (exit 2).
pub fn check_cli_command(what: &str, args: &[String]) -> Vec<String> {
    let mut with_help = args.to_vec();
    with_help.push("--help".to_owned());
    check_dbmazz_runs(what, &with_help, &[])
}

/// Panics unless one of `problems` contains `needle` (the checks' own tests).
pub fn assert_reported(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "no problem mentions {needle:?}; found {problems:#?}"
    );
}

/// Where the image installs the binary; every command that names it must use this path.
pub const IMAGE_BINARY: &str = "/usr/local/bin/dbmazz";

/// The dbmazz arguments of a container health-check command (`["CMD", binary, args…]`),
/// or a problem.
pub fn health_check_args(what: &str, command: &[String]) -> Result<Vec<String>, String> {
    match command {
        [cmd, bin, args @ ..] if cmd == "CMD" && bin == IMAGE_BINARY => Ok(args.to_vec()),
        _ => Err(format!(
            "{what}: health check {command:?} is not [\"CMD\", \"{IMAGE_BINARY}\", …] (exec \
             form, the image's binary)"
        )),
    }
}

/// Seconds of a duration as Nomad and Compose write them (`40s`, `1m30s`, `2m`, `500ms`).
pub fn duration_secs(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        total += value
            * match unit.as_str() {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

/// A problem when the orchestrator's kill delay does not exceed the drain deadline.
pub fn check_kill_delay(what: &str, kill_delay_secs: f64, shutdown_timeout_ms: f64) -> Vec<String> {
    if kill_delay_secs * 1000.0 > shutdown_timeout_ms {
        Vec::new()
    } else {
        vec![format!(
            "{what}: the kill delay ({kill_delay_secs} s) does not exceed the drain deadline \
             DBMAZZ_SHUTDOWN_TIMEOUT_MS ({shutdown_timeout_ms} ms): workers would be killed \
             in the middle of their drain"
        )]
    }
}

/// The registry's default of DBMAZZ_SHUTDOWN_TIMEOUT_MS.
pub fn default_shutdown_timeout_ms() -> f64 {
    match registry::SHUTDOWN_TIMEOUT_MS.default {
        registry::DefaultValue::Value(v) => v.parse().expect("numeric default"),
        other => panic!("DBMAZZ_SHUTDOWN_TIMEOUT_MS has no numeric default: {other:?}"),
    }
}

/// Panics listing every problem.
pub fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Every `.tf` file directly in `dir` (relative to the repository).
pub fn tf_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} has no .tf file");
    files
}

/// `path` relative to the repository, for messages.
pub fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

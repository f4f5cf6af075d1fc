//! HCL files (Terraform, Nomad) parsed by HashiCorp's HCL parser through
//! `infra/lint/hcl2json.js`, and the checks on their variables and module calls.
//!
//! The parser's JSON keeps literals as JSON values and every other expression as a
//! `"${…}"` string: blocks become `{"type": {"label": [body, …]}}`, `locals` a list of
//! bodies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

use crate::checks::{rel, repo};

/// Where parse results are kept by content (`make deploy-lint` fills it first).
pub fn cache_dir() -> PathBuf {
    repo().join("target/deploy-lint/hcl-cache")
}

/// Parses `files` with the HCL parser; the error carries the parser's messages.
pub fn parse(files: &[PathBuf]) -> Result<BTreeMap<PathBuf, Value>, String> {
    let out = Command::new("node")
        .arg(repo().join("infra/lint/hcl2json.js"))
        .arg("--cache")
        .arg(cache_dir())
        .args(files)
        .output()
        .map_err(|e| format!("cannot run node ({e}); run infra/install-deps.sh"))?;
    if !out.status.success() {
        return Err(format!(
            "the HCL parser failed (exit {:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let all: Map<String, Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the HCL parser's output is not a JSON object: {e}"))?;
    Ok(all
        .into_iter()
        .map(|(k, v)| (PathBuf::from(k), v))
        .collect())
}

/// Parses one file, panicking with the parser's messages.
pub fn parse_file(path: &Path) -> Value {
    let mut all = parse(&[path.to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    all.remove(path)
        .unwrap_or_else(|| panic!("no parse result for {}", rel(path)))
}

/// Parses HCL text (written to a temporary file); for tests of the checks themselves.
pub fn parse_text(text: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("input.tf");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let mut all = parse(std::slice::from_ref(&path))?;
    all.remove(&path)
        .ok_or_else(|| "no parse result".to_owned())
}

/// The bodies of the blocks `kind "label" { … }` of one parsed file, by label.
pub fn labelled<'a>(file: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    let mut out = Vec::new();
    if let Some(Value::Object(by_label)) = file.get(kind) {
        for (label, bodies) in by_label {
            for body in bodies.as_array().into_iter().flatten() {
                out.push((label.as_str(), body));
            }
        }
    }
    out
}

/// The bodies of `resource "type" "name"` blocks (also `data`), as ("type.name", body).
pub fn resources<'a>(file: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    if let Some(Value::Object(by_type)) = file.get(kind) {
        for (ty, by_name) in by_type {
            for (name, bodies) in by_name.as_object().into_iter().flatten() {
                for body in bodies.as_array().into_iter().flatten() {
                    out.push((format!("{ty}.{name}"), body));
                }
            }
        }
    }
    out
}

/// Every local value of one parsed file (all `locals` blocks merged).
pub fn locals(file: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for body in file
        .get("locals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Value::Object(m) = body {
            out.extend(m.clone());
        }
    }
    out
}

/// The declared variables of a set of parsed files (a module, an example, a jobspec).
pub fn variables(files: &BTreeMap<PathBuf, Value>) -> BTreeMap<String, (PathBuf, Value)> {
    let mut out = BTreeMap::new();
    for (path, file) in files {
        for (name, body) in labelled(file, "variable") {
            out.insert(name.to_owned(), (path.clone(), body.clone()));
        }
    }
    out
}

/// Names `NAME` referenced as `var.NAME` anywhere in `v`'s strings.
pub fn var_refs(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_strings(v, &mut |s| {
        let mut rest = s;
        while let Some(i) = rest.find("var.") {
            let before_ok = i == 0
                || !rest[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let after = &rest[i + 4..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if before_ok && !name.is_empty() {
                out.insert(name.clone());
            }
            rest = &after[name.len()..];
        }
    });
    out
}

fn collect_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, f)),
        Value::Object(m) => {
            for (k, v) in m {
                f(k);
                collect_strings(v, f);
            }
        }
        _ => {}
    }
}

/// Problems with the variables of a unit (module, example or jobspec): each needs a
/// non-empty description and must be used outside the variable blocks themselves.
pub fn check_variables(unit: &str, files: &BTreeMap<PathBuf, Value>) -> Vec<String> {
    let vars = variables(files);
    let mut used = BTreeSet::new();
    for file in files.values() {
        if let Value::Object(m) = file {
            for (k, v) in m {
                if k != "variable" {
                    used.extend(var_refs(v));
                }
            }
        }
    }
    let mut problems = Vec::new();
    if vars.is_empty() {
        problems.push(format!("{unit}: declares no variable"));
    }
    for (name, (path, body)) in &vars {
        let described = body
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty());
        if !described {
            problems.push(format!(
                "{unit}: variable {name:?} ({}) has no description",
                rel(path)
            ));
        }
        if !used.contains(name) {
            problems.push(format!(
                "{unit}: variable {name:?} ({}) is declared but never used",
                rel(path)
            ));
        }
    }
    for name in used.difference(&vars.keys().cloned().collect()) {
        problems.push(format!("{unit}: var.{name} is used but not declared"));
    }
    problems
}

/// Arguments of a `module` block that are not module inputs.
const META_ARGUMENTS: &[&str] = &[
    "source",
    "version",
    "providers",
    "count",
    "for_each",
    "depends_on",
];

/// Problems with a `module` call against the module's variables: an argument the module
/// does not declare, or a required variable (no default) left out.
pub fn check_module_call(
    call: &str,
    body: &Value,
    module_vars: &BTreeMap<String, (PathBuf, Value)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(args) = body.as_object() else {
        return vec![format!("{call}: the module block has no body")];
    };
    for name in args.keys() {
        if !META_ARGUMENTS.contains(&name.as_str()) && !module_vars.contains_key(name) {
            problems.push(format!(
                "{call}: passes {name:?}, which the module does not declare"
            ));
        }
    }
    for (name, (_, var)) in module_vars {
        if var.get("default").is_none() && !args.contains_key(name) {
            problems.push(format!("{call}: leaves out the required variable {name:?}"));
        }
    }
    problems
}

/// The default of a declared variable.
pub fn default_of<'a>(vars: &'a BTreeMap<String, (PathBuf, Value)>, name: &str) -> &'a Value {
    vars.get(name)
        .and_then(|(_, v)| v.get("default"))
        .unwrap_or_else(|| panic!("variable {name:?} has no default"))
}

/// The numeric default of a declared variable.
pub fn default_number(vars: &BTreeMap<String, (PathBuf, Value)>, name: &str) -> f64 {
    default_of(vars, name)
        .as_f64()
        .unwrap_or_else(|| panic!("variable {name:?} has no numeric default"))
}

/// The value a module call gives `name`: the literal argument, else the module's default.
pub fn effective_number(
    call: &Value,
    vars: &BTreeMap<String, (PathBuf, Value)>,
    name: &str,
) -> f64 {
    call.get(name)
        .and_then(Value::as_f64)
        .or_else(|| default_of(vars, name).as_f64())
        .unwrap_or_else(|| panic!("{name} is neither a literal argument nor a numeric default"))
}

/// Environment variable names a Nomad `template` with `env = true` defines: the
/// `NAME=` at the start of a line once the template actions (`{{ … }}`) are removed.
pub fn template_env_names(data: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in data.lines() {
        let mut text = String::new();
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            text.push_str(&rest[..start]);
            text.push('\n');
            rest = rest[start..]
                .find("}}")
                .map_or("", |end| &rest[start + end + 2..]);
        }
        text.push_str(rest);
        for piece in text.lines() {
            if let Some((name, _)) = piece.trim().split_once('=') {
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names
}

/// A string value, or a problem naming where it was expected.
pub fn str_at<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// A list of literal strings, or a panic naming where it was expected.
pub fn strings_at(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not a literal list: {v}"))
        .iter()
        .map(|s| str_at(s, what).to_owned())
        .collect()
}

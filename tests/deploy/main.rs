//! The deployment files against the code they deploy.
//!
//! No Terraform, Nomad or Docker binary can be installed where the tests run, so
//! `terraform validate`, `nomad job validate` and `docker compose config` cannot; this
//! test checks what must agree with dbmazz instead, reading the files with HashiCorp's own
//! HCL parser (`infra/lint/hcl2json.js`, installed by `infra/install-deps.sh`) and a YAML
//! parser:
//!
//! - every environment variable the ECS task definition, the Nomad jobspec, the Compose
//!   workers and the Dockerfile set is one dbmazz reads (its configuration registry, plus
//!   the standard OTEL_*/AWS_*/RUST_LOG variables the registry lists), secrets only from
//!   the secret store (ECS `secrets`, Nomad `template`), and each Compose worker's
//!   environment passes `dbmazz check`;
//! - every command the images, probes and schedulers run (`run`, `healthcheck`) is a
//!   subcommand of the built binary (`dbmazz <cmd> --help` exits 0);
//! - the orchestrators' kill delays exceed the drain deadline;
//! - every module variable is documented and used, every module call matches the
//!   module's variables, and the Nomad module submits `infra/nomad/dbmazz.nomad.hcl`
//!   unchanged with exactly its variables.
//!
//! The last tests feed the checks broken input (real files with one mistake) to show that
//! each of them fails.

mod checks;
mod compose;
mod dockerfile;
mod hcl;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use checks::{
    assert_no_problems, assert_reported, check_cli_command, check_dbmazz_runs, check_env_names,
    check_kill_delay, check_plain_env, check_secret_env, default_shutdown_timeout_ms,
    duration_secs, health_check_args, read, rel, repo, tf_files, IMAGE_BINARY,
};
use dockerfile::{exec_form, Dockerfile};

const ECS_MODULE: &str = "terraform/modules/ecs";
const NOMAD_MODULE: &str = "terraform/modules/nomad";
const ECS_EXAMPLE: &str = "terraform/examples/ecs";
const NOMAD_EXAMPLE: &str = "terraform/examples/nomad";
const JOBSPEC: &str = "infra/nomad/dbmazz.nomad.hcl";
const MODULE_JOBSPEC: &str = "terraform/modules/nomad/dbmazz.nomad.hcl";
const COMPOSE: &str = "infra/compose/compose.yaml";

fn parse_dir(dir: &str) -> BTreeMap<PathBuf, Value> {
    hcl::parse(&tf_files(dir)).unwrap_or_else(|e| panic!("{e}"))
}

fn merged_locals(files: &BTreeMap<PathBuf, Value>) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for f in files.values() {
        out.extend(hcl::locals(f));
    }
    out
}

fn object_keys<'a>(v: &'a Value, what: &str) -> Vec<&'a str> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is not a literal object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The bodies of the `resource "<ty>" "…"` blocks of a unit.
fn resources_of_type(files: &BTreeMap<PathBuf, Value>, ty: &str) -> Vec<Value> {
    let prefix = format!("{ty}.");
    files
        .values()
        .flat_map(|f| hcl::resources(f, "resource"))
        .filter(|(n, _)| n.starts_with(&prefix))
        .map(|(_, b)| b.clone())
        .collect()
}

/// The only `module` block of an example.
fn module_call(files: &BTreeMap<PathBuf, Value>, dir: &str) -> Value {
    let calls: Vec<Value> = files
        .values()
        .flat_map(|f| hcl::labelled(f, "module"))
        .map(|(_, body)| body.clone())
        .collect();
    let [call] = calls.as_slice() else {
        panic!("{dir}: expected one module block, found {}", calls.len());
    };
    call.clone()
}

// ---- Dockerfile ----------------------------------------------------------------------

fn dockerfile_problems(text: &str) -> Vec<String> {
    let d = Dockerfile::parse(text);
    let mut p = Vec::new();
    let last = d.final_stage();
    if last == 0 {
        p.push("Dockerfile: not multi-stage (build and runtime in one image)".to_owned());
    }

    // The builder uses the toolchain rust-toolchain.toml pins and CI's release build.
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_owned())
        .expect("rust-toolchain.toml has a channel");
    let builder_from = d
        .instructions
        .iter()
        .find(|i| i.keyword == "FROM")
        .map(|i| i.args.clone())
        .unwrap_or_default();
    if !builder_from.starts_with(&format!("rust:{channel}-")) {
        p.push(format!(
            "Dockerfile: the build stage is `{builder_from}`, not the rust:{channel} toolchain rust-toolchain.toml pins"
        ));
    }
    let builds = d.instructions.iter().any(|i| {
        i.stage < last && i.keyword == "RUN" && i.args.contains("cargo build --release --locked")
    });
    if !builds {
        p.push("Dockerfile: no build stage runs `cargo build --release --locked`".to_owned());
    }

    // The runtime stage.
    match d.final_stage_last("USER") {
        Some(u) if !["root", "0", "0:0", "root:root"].contains(&u.trim()) => {}
        other => p.push(format!(
            "Dockerfile: the image runs as {other:?}, not a non-root user"
        )),
    }
    let version = env!("CARGO_PKG_VERSION");
    if d.arg_default("VERSION").as_deref() != Some(version) {
        p.push(format!(
            "Dockerfile: ARG VERSION defaults to {:?}, Cargo.toml's version is {version}",
            d.arg_default("VERSION")
        ));
    }
    let labels: BTreeMap<String, String> = d.labels().into_iter().collect();
    if labels
        .get("org.opencontainers.image.version")
        .map(String::as_str)
        != Some("${VERSION}")
    {
        p.push("Dockerfile: no org.opencontainers.image.version=\"${VERSION}\" label".to_owned());
    }
    if d.final_stage_last("STOPSIGNAL") != Some("SIGTERM") {
        p.push("Dockerfile: STOPSIGNAL is not SIGTERM (dbmazz drains on SIGTERM)".to_owned());
    }
    let copies_binary = d
        .final_stage_all("COPY")
        .iter()
        .any(|i| i.args.starts_with("--from=") && i.args.ends_with(&format!(" {IMAGE_BINARY}")));
    if !copies_binary {
        p.push(format!(
            "Dockerfile: the runtime stage does not copy the binary to {IMAGE_BINARY}"
        ));
    }
    let entrypoint = d
        .final_stage_last("ENTRYPOINT")
        .map(|a| exec_form("Dockerfile ENTRYPOINT", a));
    let cmd = d
        .final_stage_last("CMD")
        .map(|a| exec_form("Dockerfile CMD", a));
    match (entrypoint, cmd) {
        (Some(Ok(e)), Some(Ok(c))) if e == [IMAGE_BINARY] => {
            p.extend(check_cli_command("Dockerfile CMD", &c));
        }
        (e, c) => p.push(format!(
            "Dockerfile: ENTRYPOINT must be [\"{IMAGE_BINARY}\"] with the subcommand in CMD \
             (found {e:?}, {c:?})"
        )),
    }
    match d.final_stage_last("HEALTHCHECK") {
        Some(h) => match h.split_once("CMD ") {
            Some((_, json)) => match exec_form("Dockerfile HEALTHCHECK", json).and_then(|c| {
                health_check_args("Dockerfile HEALTHCHECK", &{
                    let mut full = vec!["CMD".to_owned()];
                    full.extend(c);
                    full
                })
            }) {
                Ok(args) => p.extend(check_cli_command("Dockerfile HEALTHCHECK", &args)),
                Err(e) => p.push(e),
            },
            None => p.push("Dockerfile: HEALTHCHECK runs no command".to_owned()),
        },
        None => p.push("Dockerfile: no HEALTHCHECK".to_owned()),
    }
    let env = d.env_names();
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    p.extend(check_plain_env("Dockerfile ENV", &env));
    p
}

#[test]
fn dockerfile_builds_what_ci_builds_and_runs_the_cli() {
    assert_no_problems(&dockerfile_problems(&read("Dockerfile")));
}

// ---- Compose -------------------------------------------------------------------------

fn compose_problems(text: &str) -> Vec<String> {
    let services = match compose::services(text) {
        Ok(s) => s,
        Err(e) => return vec![format!("{COMPOSE}: {e}")],
    };
    let mut p = Vec::new();
    let by_name: BTreeMap<&str, &compose::Service> =
        services.iter().map(|s| (s.name.as_str(), s)).collect();

    // The stack the issue asks for.
    let postgres_logical = by_name.get("postgres").is_some_and(|s| {
        s.strings(&["command"])
            .is_some_and(|c| c.iter().any(|a| a == "wal_level=logical"))
    });
    if !postgres_logical {
        p.push(format!(
            "{COMPOSE}: no postgres service with wal_level=logical"
        ));
    }
    for (service, image) in [
        ("starrocks", "starrocks/allin1-"),
        ("redis", "redis:"),
        ("minio", "quay.io/minio/minio:"),
        ("jaeger", "jaegertracing/"),
    ] {
        if !by_name
            .get(service)
            .and_then(|s| s.image())
            .is_some_and(|i| i.starts_with(image))
        {
            p.push(format!("{COMPOSE}: no {service} service running {image}…"));
        }
    }

    let workers = compose::workers(&services);
    if workers.len() < 2 {
        p.push(format!(
            "{COMPOSE}: {} dbmazz worker(s), a fleet needs two",
            workers.len()
        ));
    }
    let compose_dir = repo().join("infra/compose");
    let mut backends = BTreeSet::new();
    let mut grpc_addrs = BTreeSet::new();
    for w in &workers {
        let what = format!("{COMPOSE}: {}", w.name);
        let env = match w.environment() {
            Ok(e) => e,
            Err(e) => {
                p.push(e);
                continue;
            }
        };
        p.extend(check_env_names(&what, env.keys().map(String::as_str)));
        backends.insert(env.get("DBMAZZ_LEASE_BACKEND").cloned().unwrap_or_default());
        grpc_addrs.insert(env.get("DBMAZZ_GRPC_ADDR").cloned().unwrap_or_default());

        match w.strings(&["command"]) {
            Some(c) => p.extend(check_cli_command(&format!("{what} command"), &c)),
            None => p.push(format!("{what}: no command list")),
        }
        match w.strings(&["healthcheck", "test"]) {
            Some(t) => match health_check_args(&what, &t) {
                Ok(args) => p.extend(check_cli_command(&format!("{what} healthcheck"), &args)),
                Err(e) => p.push(e),
            },
            None => p.push(format!("{what}: no healthcheck test list")),
        }
        let shutdown = env
            .get("DBMAZZ_SHUTDOWN_TIMEOUT_MS")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(default_shutdown_timeout_ms);
        match w
            .text(&["stop_grace_period"])
            .as_deref()
            .and_then(duration_secs)
        {
            Some(grace) => p.extend(check_kill_delay(&what, grace, shutdown)),
            None => p.push(format!(
                "{what}: no stop_grace_period (Compose's default of 10 s cuts the drain short)"
            )),
        }
        p.extend(dbmazz_check(&what, &env, w, &compose_dir));
    }
    if backends.len() != 1 || backends.contains("none") || backends.contains("") {
        p.push(format!(
            "{COMPOSE}: the workers must share one lease backend, found {backends:?}"
        ));
    }
    if grpc_addrs.len() != workers.len() {
        p.push(format!(
            "{COMPOSE}: the workers share a network namespace and need distinct DBMAZZ_GRPC_ADDR, found {grpc_addrs:?}"
        ));
    }
    p
}

/// Runs `dbmazz check` with a worker's environment; container paths of the worker's bind
/// mounts are mapped to the repository's files.
fn dbmazz_check(
    what: &str,
    env: &BTreeMap<String, String>,
    worker: &compose::Service,
    compose_dir: &std::path::Path,
) -> Vec<String> {
    let mounts: Vec<(String, PathBuf)> = worker
        .strings(&["volumes"])
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let mut parts = v.split(':');
            let host = parts.next()?;
            let container = parts.next()?;
            Some((container.to_owned(), compose_dir.join(host)))
        })
        .collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = mounts
                .iter()
                .find(|(c, _)| c == v)
                .map_or_else(|| v.clone(), |(_, h)| h.display().to_string());
            (k.clone(), v)
        })
        .collect();
    check_dbmazz_runs(what, &["check".to_owned()], &env)
}

#[test]
fn compose_stack_is_a_fleet_the_configuration_accepts() {
    assert_no_problems(&compose_problems(&read(COMPOSE)));
}

// ---- ECS -----------------------------------------------------------------------------

fn ecs_module_problems(files: &BTreeMap<PathBuf, Value>) -> Vec<String> {
    let mut p = hcl::check_variables(ECS_MODULE, files);
    let locals = merged_locals(files);
    let what = format!("{ECS_MODULE} locals");
    let get = |name: &str| {
        locals
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no local {name:?}"))
    };

    let environment = object_keys(get("environment"), "local.environment");
    let secrets = object_keys(get("secrets"), "local.secrets");
    p.extend(check_plain_env(
        &format!("{what}.environment"),
        &environment,
    ));
    p.extend(check_secret_env(&format!("{what}.secrets"), &secrets));

    // The container definition is built from those locals (so the names above are the
    // names the task definition sets).
    let container = get("container");
    for (field, expected) in [
        ("command", "${local.container_command}"),
        ("environment", "${local.container_environment}"),
        ("secrets", "${local.container_secrets}"),
    ] {
        if container.get(field).and_then(Value::as_str) != Some(expected) {
            p.push(format!("{what}.container.{field} is not {expected}"));
        }
    }
    if container["healthCheck"]["command"].as_str() != Some("${local.health_check_command}") {
        p.push(format!(
            "{what}.container.healthCheck.command is not local.health_check_command"
        ));
    }
    let env_wiring = get("container_environment").as_str().unwrap_or_default();
    if !env_wiring.contains("local.environment") || !env_wiring.contains("var.extra_environment") {
        p.push(format!("{what}.container_environment is not built from local.environment and var.extra_environment"));
    }
    if !get("container_secrets")
        .as_str()
        .unwrap_or_default()
        .contains("local.secrets")
    {
        p.push(format!(
            "{what}.container_secrets is not built from local.secrets"
        ));
    }
    match resources_of_type(files, "aws_ecs_task_definition").as_slice() {
        [td] if td["container_definitions"]
            .as_str()
            .is_some_and(|s| s.contains("local.container")) => {}
        _ => p.push(format!(
            "{ECS_MODULE}: expected one aws_ecs_task_definition whose container_definitions encode local.container"
        )),
    }

    let command = hcl::strings_at(get("container_command"), "local.container_command");
    p.extend(check_cli_command(
        &format!("{what}.container_command"),
        &command,
    ));
    let health = hcl::strings_at(get("health_check_command"), "local.health_check_command");
    match health_check_args(&format!("{what}.health_check_command"), &health) {
        Ok(args) => p.extend(check_cli_command(
            &format!("{what}.health_check_command"),
            &args,
        )),
        Err(e) => p.push(e),
    }

    let vars = hcl::variables(files);
    let stop = hcl::default_number(&vars, "stop_timeout_seconds");
    let shutdown = hcl::default_number(&vars, "shutdown_timeout_ms");
    p.extend(check_kill_delay(
        &format!("{ECS_MODULE} defaults"),
        stop,
        shutdown,
    ));
    if stop > 120.0 {
        p.push(format!(
            "{ECS_MODULE}: stop_timeout_seconds defaults to {stop}, above Fargate's 120 s"
        ));
    }
    p
}

#[test]
fn ecs_module_sets_only_what_dbmazz_reads() {
    assert_no_problems(&ecs_module_problems(&parse_dir(ECS_MODULE)));
}

/// Problems of an example: its own variables, its call of the module (arguments, kill
/// delay named `kill_var`), and the environment it adds (`extra_environment`).
fn example_problems(module_dir: &str, example_dir: &str, kill_var: &str) -> Vec<String> {
    let vars = hcl::variables(&parse_dir(module_dir));
    let example = parse_dir(example_dir);
    let call = module_call(&example, example_dir);
    let what = format!("{example_dir} module");
    let mut p = hcl::check_variables(example_dir, &example);
    p.extend(hcl::check_module_call(&what, &call, &vars));
    if let Some(extra) = call.get("extra_environment") {
        let names = object_keys(extra, "extra_environment");
        p.extend(check_plain_env(&what, &names));
    }
    p.extend(check_kill_delay(
        &what,
        hcl::effective_number(&call, &vars, kill_var),
        hcl::effective_number(&call, &vars, "shutdown_timeout_ms"),
    ));
    p
}

#[test]
fn ecs_example_calls_the_module_as_declared() {
    assert_no_problems(&example_problems(
        ECS_MODULE,
        ECS_EXAMPLE,
        "stop_timeout_seconds",
    ));
}

// ---- Nomad ---------------------------------------------------------------------------

fn nomad_jobspec_problems(jobspec: &Value) -> Vec<String> {
    let files = BTreeMap::from([(PathBuf::from(JOBSPEC), jobspec.clone())]);
    let mut p = hcl::check_variables(JOBSPEC, &files);
    let job = &jobspec["job"]["dbmazz"][0];
    let group = &job["group"]["workers"][0];
    let task = &group["task"]["dbmazz"][0];
    if task.is_null() {
        return vec![format!(
            "{JOBSPEC}: no job \"dbmazz\" > group \"workers\" > task \"dbmazz\""
        )];
    }

    let env = &task["env"][0];
    let env_names = object_keys(env, "task env");
    p.extend(check_plain_env(&format!("{JOBSPEC} env"), &env_names));
    let templates = task["template"].as_array().cloned().unwrap_or_default();
    let env_templates: Vec<&Value> = templates
        .iter()
        .filter(|t| t["env"].as_bool() == Some(true))
        .collect();
    if env_templates.is_empty() {
        p.push(format!(
            "{JOBSPEC}: no template with env = true (the secrets)"
        ));
    }
    for t in env_templates {
        let names = hcl::template_env_names(t["data"].as_str().unwrap_or_default());
        let what = format!("{JOBSPEC} template {}", t["destination"]);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        p.extend(check_secret_env(&what, &names));
        if !t["destination"]
            .as_str()
            .unwrap_or_default()
            .starts_with("secrets/")
        {
            p.push(format!(
                "{what}: secrets belong in the task's secrets/ directory"
            ));
        }
    }

    let args = hcl::strings_at(&task["config"][0]["args"], "task config args");
    p.extend(check_cli_command(&format!("{JOBSPEC} config.args"), &args));

    // The grpc check probes the port dbmazz serves on.
    let grpc_to = group["network"][0]["port"]["grpc"][0]["to"].as_i64();
    let grpc_addr = env["DBMAZZ_GRPC_ADDR"].as_str().unwrap_or_default();
    if grpc_to.is_none_or(|port| !grpc_addr.ends_with(&format!(":{port}"))) {
        p.push(format!(
            "{JOBSPEC}: port \"grpc\" maps to {grpc_to:?} but DBMAZZ_GRPC_ADDR is {grpc_addr:?}"
        ));
    }
    let grpc_checks = group["service"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["check"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["type"].as_str() == Some("grpc") && c["port"].as_str() == Some("grpc"))
        .count();
    if grpc_checks == 0 {
        p.push(format!("{JOBSPEC}: no grpc health check on the grpc port"));
    }

    let vars = hcl::variables(&files);
    let kill = duration_secs(
        hcl::default_of(&vars, "kill_timeout")
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or(0.0);
    let shutdown = hcl::default_number(&vars, "shutdown_timeout_ms");
    p.extend(check_kill_delay(
        &format!("{JOBSPEC} defaults"),
        kill,
        shutdown,
    ));
    if task["kill_timeout"].as_str() != Some("${var.kill_timeout}") {
        p.push(format!(
            "{JOBSPEC}: the task's kill_timeout is not var.kill_timeout"
        ));
    }
    if env["DBMAZZ_SHUTDOWN_TIMEOUT_MS"].as_str() != Some("${var.shutdown_timeout_ms}") {
        p.push(format!(
            "{JOBSPEC}: DBMAZZ_SHUTDOWN_TIMEOUT_MS is not var.shutdown_timeout_ms"
        ));
    }
    p
}

#[test]
fn nomad_jobspec_sets_only_what_dbmazz_reads() {
    let jobspec = hcl::parse_file(&repo().join(JOBSPEC));
    assert_no_problems(&nomad_jobspec_problems(&jobspec));
}

#[test]
fn nomad_module_submits_the_jobspec_with_its_variables() {
    let mut p = Vec::new();
    if read(JOBSPEC) != read(MODULE_JOBSPEC) {
        p.push(format!(
            "{MODULE_JOBSPEC} differs from {JOBSPEC}; copy it (the module submits its own copy)"
        ));
    }
    let jobspec = hcl::parse_file(&repo().join(MODULE_JOBSPEC));
    let job_vars = hcl::variables(&BTreeMap::from([(PathBuf::from(MODULE_JOBSPEC), jobspec)]));

    let module = parse_dir(NOMAD_MODULE);
    p.extend(hcl::check_variables(NOMAD_MODULE, &module));
    let jobs = resources_of_type(&module, "nomad_job");
    let [job] = jobs.as_slice() else {
        panic!("{NOMAD_MODULE}: expected one nomad_job resource");
    };
    if job["jobspec"].as_str() != Some("${file(\"${path.module}/dbmazz.nomad.hcl\")}") {
        p.push(format!(
            "{NOMAD_MODULE}: nomad_job does not submit file(\"${{path.module}}/dbmazz.nomad.hcl\")"
        ));
    }
    let locals = merged_locals(&module);
    if job["hcl2"][0]["vars"].as_str() != Some("${local.jobspec_vars}") {
        p.push(format!(
            "{NOMAD_MODULE}: nomad_job's hcl2.vars is not local.jobspec_vars"
        ));
    }
    let passed: BTreeSet<&str> = locals
        .get("jobspec_vars")
        .map(|v| object_keys(v, "local.jobspec_vars"))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let declared: BTreeSet<&str> = job_vars.keys().map(String::as_str).collect();
    for missing in declared.difference(&passed) {
        p.push(format!(
            "{NOMAD_MODULE}: does not pass the jobspec variable {missing:?}"
        ));
    }
    for extra in passed.difference(&declared) {
        p.push(format!(
            "{NOMAD_MODULE}: passes {extra:?}, which the jobspec does not declare"
        ));
    }
    // Where both declare a default, the module's is the jobspec's (the same deployment
    // whether submitted with the nomad CLI or with Terraform).
    let module_vars = hcl::variables(&module);
    for (name, (_, jv)) in &job_vars {
        if let (Some(jd), Some((_, mv))) = (jv.get("default"), module_vars.get(name)) {
            if mv.get("default") != Some(jd) {
                p.push(format!(
                    "{NOMAD_MODULE}: variable {name:?} defaults to {:?}, the jobspec's to {jd}",
                    mv.get("default")
                ));
            }
        }
    }
    let kill = hcl::default_number(&module_vars, "kill_timeout_seconds");
    let shutdown = hcl::default_number(&module_vars, "shutdown_timeout_ms");
    p.extend(check_kill_delay(
        &format!("{NOMAD_MODULE} defaults"),
        kill,
        shutdown,
    ));
    assert_no_problems(&p);
}

#[test]
fn nomad_example_calls_the_module_as_declared() {
    assert_no_problems(&example_problems(
        NOMAD_MODULE,
        NOMAD_EXAMPLE,
        "kill_timeout_seconds",
    ));
}

// ---- every HCL file ------------------------------------------------------------------

#[test]
fn every_hcl_file_parses() {
    let mut files = Vec::new();
    let mut dirs = vec![repo()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !["target", ".git", ".terraform"].contains(&name) {
                    dirs.push(path);
                }
            } else if name.ends_with(".tf") || name.ends_with(".hcl") {
                files.push(path);
            }
        }
    }
    files.sort();
    let names: Vec<String> = files.iter().map(|f| rel(f)).collect();
    for expected in [JOBSPEC, MODULE_JOBSPEC, "terraform/modules/ecs/main.tf"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found among {names:?}"
        );
    }
    let parsed = hcl::parse(&files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.len(), files.len());
}

// ---- the checks fail on broken input -------------------------------------------------

#[test]
fn a_misspelt_variable_in_the_compose_file_fails() {
    let text = read(COMPOSE).replace("DBMAZZ_LEASE_TTL_MS:", "DBMAZZ_LEASE_TTL:");
    let p = compose_problems(&text);
    assert_reported(&p, "sets DBMAZZ_LEASE_TTL, which dbmazz does not read");
}

#[test]
fn a_compose_worker_the_configuration_rejects_fails() {
    let text = read(COMPOSE).replace("DBMAZZ_LEASE_BACKEND: redis", "DBMAZZ_LEASE_BACKEND: etcd");
    let p = compose_problems(&text);
    assert_reported(&p, "`dbmazz check` exits Some(2)");
    assert_reported(&p, "DBMAZZ_LEASE_BACKEND");
}

#[test]
fn a_short_stop_grace_period_fails() {
    let text = read(COMPOSE).replace("stop_grace_period: 40s", "stop_grace_period: 20s");
    assert_reported(
        &compose_problems(&text),
        "does not exceed the drain deadline",
    );
}

#[test]
fn a_health_check_the_cli_lacks_fails() {
    let text = read("Dockerfile").replace(
        "CMD [\"/usr/local/bin/dbmazz\", \"healthcheck\"]",
        "CMD [\"/usr/local/bin/dbmazz\", \"health\"]",
    );
    assert_reported(
        &dockerfile_problems(&text),
        "`dbmazz health --help` exits Some(2)",
    );
    assert!(check_cli_command("t", &["healthcheck".to_owned()]).is_empty());
}

#[test]
fn a_root_image_or_a_stale_version_label_fails() {
    let text = read("Dockerfile")
        .replace("USER 10001:10001", "USER root")
        .replace("ARG VERSION=", "ARG VERSION=9.9.9-");
    let p = dockerfile_problems(&text);
    assert_reported(&p, "not a non-root user");
    assert_reported(&p, "ARG VERSION defaults to");
}

#[test]
fn a_secret_in_the_task_environment_or_an_unknown_name_fails() {
    let mut files = parse_dir(ECS_MODULE);
    let main = files
        .iter_mut()
        .find(|(k, _)| k.ends_with("main.tf"))
        .map(|(_, v)| v)
        .expect("main.tf");
    let env = main["locals"][0]["environment"]
        .as_object_mut()
        .expect("local.environment");
    env.insert(
        "SINK_PASSWORD".into(),
        Value::String("${var.password}".into()),
    );
    env.insert("DBMAZZ_FLUSH_SIZE".into(), Value::String("100".into()));
    let p = ecs_module_problems(&files);
    assert_reported(&p, "sets the secret SINK_PASSWORD as a plain value");
    assert_reported(&p, "sets DBMAZZ_FLUSH_SIZE, which dbmazz does not read");
    assert_reported(&p, "var.password is used but not declared");
}

#[test]
fn an_unlisted_template_variable_or_kill_timeout_below_the_drain_fails() {
    let text = read(JOBSPEC)
        .replace("SINK_PASSWORD={{", "SINK_PASS={{")
        .replace("default     = \"30s\"", "default     = \"15s\"");
    let jobspec = hcl::parse_text(&text).unwrap_or_else(|e| panic!("{e}"));
    let p = nomad_jobspec_problems(&jobspec);
    assert_reported(&p, "sets SINK_PASS, which dbmazz does not read");
    assert_reported(&p, "kill delay (15 s)");
}

#[test]
fn undocumented_unused_and_undeclared_variables_fail() {
    let file = hcl::parse_text(
        r#"
        variable "documented" {
          type        = string
          description = "Used below."
        }
        variable "undocumented" {
          type = string
        }
        variable "unused" {
          type        = string
          description = "Never referenced."
          validation {
            condition     = length(var.unused) > 0
            error_message = "A validation does not count as a use."
          }
        }
        locals {
          x = "${var.documented}-${var.undocumented}-${var.undeclared}"
        }
        "#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = hcl::check_variables("t", &BTreeMap::from([(PathBuf::from("t.tf"), file)]));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p[0].contains("\"undocumented\"") && p[0].contains("no description"),
        "{p:#?}"
    );
    assert!(
        p[1].contains("\"unused\"") && p[1].contains("never used"),
        "{p:#?}"
    );
    assert!(
        p[2].contains("var.undeclared is used but not declared"),
        "{p:#?}"
    );
}

#[test]
fn a_module_call_with_an_unknown_or_a_missing_argument_fails() {
    let module = parse_dir(NOMAD_MODULE);
    let vars = hcl::variables(&module);
    let mut call = module_call(&parse_dir(NOMAD_EXAMPLE), NOMAD_EXAMPLE);
    let args = call.as_object_mut().expect("module body");
    args.remove("tables");
    args.insert("table".into(), Value::String("public.t".into()));
    let p = hcl::check_module_call("t", &call, &vars);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_reported(&p, "passes \"table\", which the module does not declare");
    assert_reported(&p, "leaves out the required variable \"tables\"");
}

#[test]
fn a_file_that_does_not_parse_fails() {
    let e = hcl::parse_text("locals {\n  a = \n}\n").expect_err("invalid HCL");
    assert!(e.contains("Invalid expression"), "{e}");
}

#[test]
fn readers_of_durations_templates_and_merge_keys() {
    assert_eq!(duration_secs("40s"), Some(40.0));
    assert_eq!(duration_secs("1m30s"), Some(90.0));
    assert_eq!(duration_secs("500ms"), Some(0.5));
    assert_eq!(duration_secs("30"), None);
    assert_eq!(duration_secs("3d"), None);
    assert_eq!(
        hcl::template_env_names(
            "{{- with nomadVar \"p\" }}\nA_B={{ .a }}\n{{ if x }}C={{ .c }}{{ end }}\nlower=1\n{{- end }}"
        ),
        ["A_B", "C"]
    );
    let services = compose::services(
        "x: &base\n  environment: &env\n    A: \"1\"\n    B: \"2\"\nservices:\n  w:\n    <<: *base\n    \
         image: dbmazz:t\n    environment:\n      <<: *env\n      B: \"3\"\n",
    )
    .expect("valid");
    let env = services[0].environment().expect("env");
    assert_eq!(env.get("A").map(String::as_str), Some("1"));
    assert_eq!(env.get("B").map(String::as_str), Some("3"));
    assert_eq!(compose::workers(&services).len(), 1);
}

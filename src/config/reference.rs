//! The configuration reference (Markdown tables of every variable, generated from
//! the [`registry`](super::registry)) and its place between markers in README.md and
//! docs/configuration.md (`dbmazz check --reference`, `make docs`).

use std::fmt::Write as _;

use super::registry::{Scope, VARS};

/// A standard variable read by a library dbmazz uses (not validated by dbmazz).
#[derive(Debug)]
pub struct ExternalVar {
    /// Name.
    pub name: &'static str,
    /// What it does for dbmazz.
    pub description: &'static str,
}

/// Standard variables honoured through the libraries (OpenTelemetry, AWS, tracing).
pub static EXTERNAL_VARS: &[ExternalVar] = &[
    ExternalVar {
        name: "RUST_LOG",
        description: "Log filter, e.g. `info`, `dbmazz=debug,info` (default `info`).",
    },
    ExternalVar {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        description: "OTLP/gRPC collector (e.g. `http://otel-collector:4317`); when set, \
                      traces and metrics are exported there.",
    },
    ExternalVar {
        name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        description: "Collector for traces only (overrides the endpoint above for traces; \
                      setting only this exports traces only).",
    },
    ExternalVar {
        name: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        description: "Collector for metrics only (overrides the endpoint above for metrics; \
                      setting only this exports metrics only).",
    },
    ExternalVar {
        name: "OTEL_EXPORTER_OTLP_HEADERS",
        description: "Extra gRPC metadata for the collector, `key=value,...` (e.g. an API key).",
    },
    ExternalVar {
        name: "OTEL_EXPORTER_OTLP_TIMEOUT",
        description: "Export timeout in milliseconds (default 10000).",
    },
    ExternalVar {
        name: "OTEL_SERVICE_NAME",
        description: "`service.name` of the exported telemetry (default `dbmazz`).",
    },
    ExternalVar {
        name: "OTEL_RESOURCE_ATTRIBUTES",
        description: "Extra resource attributes, `key=value,...`.",
    },
    ExternalVar {
        name: "OTEL_METRIC_EXPORT_INTERVAL",
        description: "Milliseconds between metric exports (default 60000).",
    },
    ExternalVar {
        name: "AWS_REGION",
        description: "Region of the S3 spill bucket.",
    },
    ExternalVar {
        name: "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN",
        description: "Static S3 credentials; without them the standard AWS chain is used \
                      (ECS task role, instance profile, `AWS_PROFILE`).",
    },
    ExternalVar {
        name: "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL",
        description: "Endpoint of an S3-compatible store (MinIO, Ceph, ...) for the spill.",
    },
];

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The configuration reference as Markdown tables (the text between the reference
/// markers of README.md and docs/configuration.md).
pub fn reference_markdown() -> String {
    let mut out = String::new();
    for (scope, title, intro) in [
        (
            Scope::Worker,
            "Worker",
            "One value per worker process, from the environment.",
        ),
        (
            Scope::Job,
            "Job",
            "One value per pipeline: from the environment for a single job, or per job (or \
             under `[defaults]`) in the jobs file, where the key is the second column.",
        ),
    ] {
        let _ = writeln!(out, "#### {title} variables\n\n{intro}\n");
        let keyed = scope == Scope::Job;
        if keyed {
            out.push_str("| Variable | Jobs file key | Default | Accepted | Description |\n");
            out.push_str("|---|---|---|---|---|\n");
        } else {
            out.push_str("| Variable | Default | Accepted | Description |\n");
            out.push_str("|---|---|---|---|\n");
        }
        for v in VARS.iter().filter(|v| v.scope == scope) {
            let mut name = format!("`{}`", v.name);
            if let Some(a) = v.alias {
                let _ = write!(name, " (or `{a}`)");
            }
            let mut desc = v.description.to_owned();
            if v.secret {
                desc.push_str(" **Secret**: never printed.");
            }
            if v.per_job {
                desc.push_str(" Per job only.");
            }
            if keyed {
                let key = v.file_key.map(|k| format!("`{k}`")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    cell(&name),
                    cell(&key),
                    cell(&v.default.describe()),
                    cell(&v.accepted.describe()),
                    cell(&desc)
                );
            } else {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&name),
                    cell(&v.default.describe()),
                    cell(&v.accepted.describe()),
                    cell(&desc)
                );
            }
        }
        out.push('\n');
    }
    out.push_str("#### Standard variables\n\nRead by the libraries dbmazz uses; listed for completeness.\n\n");
    out.push_str("| Variable | Use |\n|---|---|\n");
    for e in EXTERNAL_VARS {
        let names: Vec<String> = e.name.split(" / ").map(|n| format!("`{n}`")).collect();
        let _ = writeln!(out, "| {} | {} |", names.join(", "), cell(e.description));
    }
    out
}

/// Marker opening the generated reference in a Markdown file.
pub const REFERENCE_BEGIN: &str =
    "<!-- BEGIN CONFIG REFERENCE (generated by `dbmazz check --reference`; do not edit) -->";
/// Marker closing the generated reference.
pub const REFERENCE_END: &str = "<!-- END CONFIG REFERENCE -->";

/// Replaces the text between the reference markers of `doc` with the current
/// reference. `None` when the markers are missing.
pub fn splice_reference(doc: &str) -> Option<String> {
    let start = doc.find(REFERENCE_BEGIN)? + REFERENCE_BEGIN.len();
    let end = doc.get(start..)?.find(REFERENCE_END)? + start;
    let mut out = String::with_capacity(doc.len());
    out.push_str(doc.get(..start)?);
    out.push('\n');
    out.push_str(&reference_markdown());
    out.push_str(doc.get(end..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_every_variable() {
        let md = reference_markdown();
        for v in VARS {
            assert!(md.contains(&format!("`{}`", v.name)), "{}", v.name);
        }
        assert!(md.contains("`DATABASE_URL`"));
        assert!(md.contains("`OTEL_EXPORTER_OTLP_ENDPOINT`"));
    }

    #[test]
    fn splice_replaces_only_between_markers() {
        let doc = format!("intro\n{REFERENCE_BEGIN}\nold\n{REFERENCE_END}\noutro\n");
        let new = splice_reference(&doc).expect("markers");
        assert!(new.starts_with("intro\n"));
        assert!(new.ends_with(&format!("{REFERENCE_END}\noutro\n")));
        assert!(!new.contains("\nold\n"));
        assert!(new.contains("FLUSH_SIZE"));
        assert_eq!(splice_reference(&new).expect("again"), new, "idempotent");
        assert!(splice_reference("no markers").is_none());
    }
}

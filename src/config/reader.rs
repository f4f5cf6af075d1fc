//! Reading one variable through the layers of a configuration (jobs-file job,
//! `[defaults]`, environment, built-in default) and checking it against the
//! registry's rules; every problem is recorded, none stops the reading.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use url::Url;

use super::jobs_file::{FileValue, Section};
use super::registry::{self, Accepted, DefaultValue, VarSpec};
use super::secret::{hidden, redact_url};
use super::{tables, values, ConfigProblem, Origin, TableName};

pub(super) struct Env {
    pub(super) vars: BTreeMap<String, String>,
    pub(super) not_utf8: Vec<String>,
}

impl Env {
    pub(super) fn new(
        vars: impl IntoIterator<Item = (String, String)>,
        not_utf8: Vec<String>,
    ) -> Self {
        Env {
            vars: vars.into_iter().collect(),
            not_utf8,
        }
    }
}

/// A raw value found for a variable.
pub(super) struct Raw {
    value: FileValue,
    /// How to name it in a problem: `FLUSH_SIZE` or `jobs.toml: jobs[2].flush_size`.
    variable: String,
    origin: Origin,
}

/// Parsed `SINK_TABLE_MAP` pairs and the name to report problems under.
pub(super) type RawMap = (Vec<(TableName, String)>, String);

pub(super) enum Field<T> {
    Missing,
    Invalid,
    Ok(T),
}

impl<T> Field<T> {
    pub(super) fn ok(self) -> Option<T> {
        match self {
            Field::Ok(v) => Some(v),
            _ => None,
        }
    }
}

pub(super) enum Layer<'a> {
    File(&'a Section, &'a str),
    Env { file_mode: bool },
}

pub(super) struct Reader<'a> {
    pub(super) env: &'a Env,
    pub(super) layers: Vec<Layer<'a>>,
    pub(super) problems: &'a mut Vec<ConfigProblem>,
    pub(super) origins: BTreeMap<&'static str, Origin>,
}

/// The value as it may be printed in a message.
pub(super) fn shown(spec: &VarSpec, text: &str) -> String {
    if spec.secret {
        match Url::parse(text.trim()) {
            Ok(u) if u.has_host() || u.password().is_some() => redact_url(&u),
            _ => hidden(text),
        }
    } else if text.chars().count() > 200 {
        let mut s: String = text.chars().take(200).collect();
        s.push('…');
        s
    } else {
        text.to_owned()
    }
}

pub(super) fn accepted_text(spec: &VarSpec) -> String {
    let mut a = spec.accepted.describe();
    if let DefaultValue::Value(d) = spec.default {
        if d.is_empty() {
            a.push_str(" (default: empty)");
        } else {
            let _ = write!(a, " (default `{d}`)");
        }
    }
    a
}

impl<'a> Reader<'a> {
    pub(super) fn problem(
        &mut self,
        variable: &str,
        spec: &VarSpec,
        value: Option<&str>,
        reason: &str,
    ) {
        self.problems.push(ConfigProblem {
            variable: variable.to_owned(),
            value: value.map(|v| shown(spec, v)),
            reason: reason.to_owned(),
            accepted: Some(accepted_text(spec)),
        });
    }

    /// The raw value of `spec` from the first layer that has one. `Err(())` when a
    /// problem was already recorded (e.g. conflicting alias).
    pub(super) fn find(&mut self, spec: &'static VarSpec) -> Result<Option<Raw>, ()> {
        for i in 0..self.layers.len() {
            match self.layers.get(i) {
                Some(Layer::File(section, file)) => {
                    let (section, file) = (*section, *file);
                    if let Some(v) = spec.file_key.and_then(|k| section.entries.get(k)) {
                        return Ok(Some(Raw {
                            value: v.clone(),
                            variable: format!(
                                "{file}: {}.{}",
                                section.label,
                                spec.file_key.unwrap_or(spec.name)
                            ),
                            origin: Origin::File(file.to_owned(), section.label.clone()),
                        }));
                    }
                }
                Some(Layer::Env { file_mode }) => {
                    if *file_mode && spec.per_job {
                        // Reported once by the loader; never inherited.
                        return Ok(None);
                    }
                    return self.env_value(spec);
                }
                None => {}
            }
        }
        Ok(None)
    }

    pub(super) fn env_value(&mut self, spec: &'static VarSpec) -> Result<Option<Raw>, ()> {
        for name in std::iter::once(spec.name).chain(spec.alias) {
            if self.env.not_utf8.iter().any(|n| n == name) {
                self.problem(name, spec, None, "is not valid UTF-8");
                return Err(());
            }
        }
        let primary = self.env.vars.get(spec.name);
        let alias = spec
            .alias
            .and_then(|a| self.env.vars.get(a).map(|v| (a, v)));
        match (primary, alias) {
            (Some(p), Some((a, av))) => {
                if p != av {
                    let reason = format!(
                        "both {} and {a} are set, to different values; set only one",
                        spec.name
                    );
                    self.problem(spec.name, spec, None, &reason);
                    return Err(());
                }
                Ok(Some(self.env_raw(spec.name, p)))
            }
            (Some(p), None) => Ok(Some(self.env_raw(spec.name, p))),
            (None, Some((a, av))) => Ok(Some(self.env_raw(a, av))),
            (None, None) => Ok(None),
        }
    }

    pub(super) fn env_raw(&self, name: &str, value: &str) -> Raw {
        Raw {
            value: FileValue::Text(value.to_owned()),
            variable: name.to_owned(),
            origin: Origin::Env(name.to_owned()),
        }
    }

    /// The single text value of `spec` (default applied), or why there is none.
    pub(super) fn text(&mut self, spec: &'static VarSpec) -> Field<(String, String)> {
        let Ok(found) = self.find(spec) else {
            return Field::Invalid;
        };
        let Some(raw) = found else {
            return match spec.default {
                DefaultValue::Value(d) => {
                    self.origins.insert(spec.name, Origin::Default);
                    Field::Ok((d.to_owned(), spec.name.to_owned()))
                }
                DefaultValue::Required => {
                    self.problem(spec.name, spec, None, "is required but not set");
                    Field::Invalid
                }
                DefaultValue::Derived(_) | DefaultValue::Off(_) => {
                    self.origins.insert(spec.name, Origin::Default);
                    Field::Missing
                }
            };
        };
        let text = match raw.value {
            FileValue::Text(t) => t,
            FileValue::List(_) | FileValue::Map(_) => {
                self.problem(
                    &raw.variable,
                    spec,
                    None,
                    "must be a single value, not a list or table",
                );
                return Field::Invalid;
            }
        };
        if text.is_empty() && !spec.allow_empty {
            let reason = match spec.default {
                DefaultValue::Required => "is set but empty".to_owned(),
                _ => format!(
                    "is set but empty; unset it to get the default ({})",
                    spec.default.describe()
                ),
            };
            self.problem(&raw.variable, spec, None, &reason);
            return Field::Invalid;
        }
        self.origins.insert(spec.name, raw.origin);
        Field::Ok((text, raw.variable))
    }

    /// The parsed value of `spec`.
    pub(super) fn parsed<T>(
        &mut self,
        spec: &'static VarSpec,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Field<T> {
        match self.text(spec) {
            Field::Ok((text, variable)) => match parse(&text) {
                Ok(v) => Field::Ok(v),
                Err(reason) => {
                    self.problem(&variable, spec, Some(&text), &reason);
                    Field::Invalid
                }
            },
            Field::Missing => Field::Missing,
            Field::Invalid => Field::Invalid,
        }
    }

    /// A value with a literal default: never `Missing`.
    pub(super) fn required<T>(
        &mut self,
        spec: &'static VarSpec,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.parsed(spec, parse).ok()
    }

    pub(super) fn int(&mut self, spec: &'static VarSpec) -> Option<u64> {
        let Accepted::Int { min, max, .. } = spec.accepted else {
            self.problem(
                spec.name,
                spec,
                None,
                "internal error: not an integer setting",
            );
            return None;
        };
        self.required(spec, |t| values::int_in(t, min, max))
    }

    pub(super) fn word(&mut self, spec: &'static VarSpec) -> Option<&'static str> {
        let Accepted::OneOf(words) = spec.accepted else {
            self.problem(
                spec.name,
                spec,
                None,
                "internal error: not a choice setting",
            );
            return None;
        };
        self.required(spec, |t| values::choice(t, words))
    }

    pub(super) fn boolean(&mut self, spec: &'static VarSpec) -> Option<bool> {
        self.required(spec, values::boolean)
    }

    /// `TABLES`: a comma-separated string or (in the jobs file) a list.
    pub(super) fn tables(&mut self) -> Option<Vec<TableName>> {
        let spec = &registry::TABLES;
        let Some(raw) = self.find(spec).ok()? else {
            self.problem(spec.name, spec, None, "is required but not set");
            return None;
        };
        self.origins.insert(spec.name, raw.origin.clone());
        let result = match &raw.value {
            FileValue::Text(t) if t.is_empty() => Err(vec!["is set but empty".to_owned()]),
            FileValue::Text(t) => tables::parse_table_list(t),
            FileValue::List(items) if items.is_empty() => Err(vec!["the list is empty".into()]),
            FileValue::List(items) => {
                let mut out: Vec<TableName> = Vec::new();
                let mut errs = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match tables::parse_one_table(item) {
                        Ok(t) if out.contains(&t) => errs.push(format!("{t} is listed twice")),
                        Ok(t) => out.push(t),
                        Err(e) => errs.push(format!("item {}: {e}", i + 1)),
                    }
                }
                if errs.is_empty() {
                    Ok(out)
                } else {
                    Err(errs)
                }
            }
            FileValue::Map(_) => Err(vec!["must be a string or a list of strings".into()]),
        };
        match result {
            Ok(t) => Some(t),
            Err(errs) => {
                let value = match &raw.value {
                    FileValue::Text(t) => Some(t.clone()),
                    FileValue::List(items) => Some(items.join(", ")),
                    FileValue::Map(_) => None,
                };
                for e in errs {
                    self.problem(&raw.variable, spec, value.as_deref(), &e);
                }
                None
            }
        }
    }

    /// `SINK_TABLE_MAP` raw pairs: `Ok(None)` when unset.
    pub(super) fn table_map(&mut self) -> Result<Option<RawMap>, ()> {
        let spec = &registry::SINK_TABLE_MAP;
        let Some(raw) = self.find(spec)? else {
            self.origins.insert(spec.name, Origin::Default);
            return Ok(None);
        };
        self.origins.insert(spec.name, raw.origin.clone());
        let (parsed, value) = match &raw.value {
            FileValue::Text(t) if t.is_empty() => (
                Err(vec![
                    "is set but empty; unset it to keep the source names".to_owned()
                ]),
                None,
            ),
            FileValue::Text(t) => (tables::parse_map_pairs(t), Some(t.clone())),
            FileValue::Map(pairs) => {
                let mut out = Vec::new();
                let mut errs = Vec::new();
                for (k, v) in pairs {
                    match tables::parse_one_table(k) {
                        Ok(t) => out.push((t, v.clone())),
                        Err(e) => errs.push(format!("key {k:?}: {e}")),
                    }
                }
                (if errs.is_empty() { Ok(out) } else { Err(errs) }, None)
            }
            FileValue::List(_) => (
                Err(vec![
                    "must be a table { \"schema.table\" = \"target\" } or a string".into(),
                ]),
                None,
            ),
        };
        match parsed {
            Ok(p) => Ok(Some((p, raw.variable))),
            Err(errs) => {
                for e in errs {
                    self.problem(&raw.variable, spec, value.as_deref(), &e);
                }
                Err(())
            }
        }
    }
}

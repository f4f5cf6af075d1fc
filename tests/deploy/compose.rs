//! The Compose file: services with merge keys (`<<: *anchor`) resolved, and the dbmazz
//! workers among them.

use std::collections::BTreeMap;

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

/// One service.
#[derive(Clone, Debug)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// The service's mapping, merge keys resolved.
    pub body: Yaml,
}

impl Service {
    /// `image:`.
    pub fn image(&self) -> Option<&str> {
        self.body["image"].as_str()
    }

    /// The environment, from the map form or the `KEY=value` list form.
    pub fn environment(&self) -> Result<BTreeMap<String, String>, String> {
        match &self.body["environment"] {
            Yaml::Hash(h) => h
                .iter()
                .map(|(k, v)| {
                    let key = k
                        .as_str()
                        .ok_or_else(|| format!("{}: environment key {k:?}", self.name))?;
                    Ok((key.to_owned(), scalar(v).unwrap_or_default()))
                })
                .collect(),
            Yaml::Array(items) => items
                .iter()
                .map(|i| {
                    let s = i
                        .as_str()
                        .ok_or_else(|| format!("{}: environment item {i:?}", self.name))?;
                    let (k, v) = s.split_once('=').unwrap_or((s, ""));
                    Ok((k.to_owned(), v.to_owned()))
                })
                .collect(),
            Yaml::BadValue => Ok(BTreeMap::new()),
            other => Err(format!("{}: environment is {other:?}", self.name)),
        }
    }

    /// A list of strings under `key` (`command:`, `healthcheck: test:`), if it is one.
    pub fn strings(&self, path: &[&str]) -> Option<Vec<String>> {
        let mut node = &self.body;
        for p in path {
            node = &node[*p];
        }
        node.as_vec()?
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect()
    }

    /// A scalar under `key` as text.
    pub fn text(&self, path: &[&str]) -> Option<String> {
        let mut node = &self.body;
        for p in path {
            node = &node[*p];
        }
        scalar(node)
    }
}

/// A scalar's text (strings, numbers, booleans as YAML wrote them).
fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

/// Resolves merge keys: a mapping's `<<` (a mapping or a list of them) provides the keys
/// the mapping does not set itself.
pub fn resolve_merges(v: Yaml) -> Yaml {
    match v {
        Yaml::Hash(h) => {
            let mut own = Hash::new();
            let mut merged: Vec<Yaml> = Vec::new();
            for (k, v) in h {
                if k.as_str() == Some("<<") {
                    match resolve_merges(v) {
                        Yaml::Array(items) => merged.extend(items),
                        one => merged.push(one),
                    }
                } else {
                    own.insert(k, resolve_merges(v));
                }
            }
            for m in merged {
                if let Yaml::Hash(mh) = m {
                    for (k, v) in mh {
                        own.entry(k).or_insert(v);
                    }
                }
            }
            Yaml::Hash(own)
        }
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

/// Parses a Compose file and returns its services.
pub fn services(text: &str) -> Result<Vec<Service>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let [doc] = docs.as_slice() else {
        return Err(format!("expected one YAML document, found {}", docs.len()));
    };
    let doc = resolve_merges(doc.clone());
    let Yaml::Hash(services) = &doc["services"] else {
        return Err("no `services:` mapping".to_owned());
    };
    services
        .iter()
        .map(|(k, v)| {
            Ok(Service {
                name: k
                    .as_str()
                    .ok_or_else(|| format!("service name {k:?}"))?
                    .to_owned(),
                body: v.clone(),
            })
        })
        .collect()
}

/// The services running the dbmazz image (built from the repository's Dockerfile).
pub fn workers(services: &[Service]) -> Vec<&Service> {
    services
        .iter()
        .filter(|s| {
            s.image().is_some_and(|i| i.starts_with("dbmazz"))
                || s.text(&["build", "dockerfile"]).as_deref() == Some("Dockerfile")
        })
        .collect()
}

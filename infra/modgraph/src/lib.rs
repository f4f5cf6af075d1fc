//! The module graph of the dbmazz crate (`src/`) and the layering rules it must
//! keep (docs/architecture.md), checked by a test on every `make test` (and by
//! `make layers` alone).
//!
//! ```text
//! cli ─▶ runner ─▶ engine ─▶ {source, pipeline, sink, spill, snapshot, state_store, lease}
//!                                              ─▶ {postgres, lsn, error, clock, config, failpoint, alloc}
//! grpc, telemetry: beside the corridor; they read the engine (and below), and only
//! cli imports them.
//! ```
//!
//! How it reads the code: every `.rs` file under `src/` is a module (`a.rs` and
//! `a/mod.rs` are `a`, `a/b.rs` is `a::b`, inline `mod x { … }` blocks count too).
//! Comments, string and character literals are blanked out, then every path that
//! starts with `crate::` or `super::` (including grouped `use crate::{a, b::{c}}`)
//! is resolved to the longest module it names. That gives one edge per reference,
//! with the file and line as evidence.
//!
//! Rules:
//! 1. **No circle at any level.** For each folder, an edge between two of its
//!    children (a file or sub-folder) counts as an edge between those children;
//!    edges to or from the folder's own `mod.rs` are the usual parent/child links
//!    and are left out. No set of siblings may import each other in a circle, so
//!    `source ↔ state_store` is caught at the top and `catalog → encode → fit →
//!    catalog` inside `sink/starrocks/`.
//! 2. **No upward import** between top-level modules: each has a layer
//!    ([`LAYERS`]); a module may import modules of its own layer (rule 1 keeps those
//!    acyclic) or of a lower one. `grpc` and `telemetry` sit beside the corridor:
//!    they may import the engine and everything below it, and only `cli` may import
//!    them, so nothing on the data path depends on the control plane.
//! 3. **Every top-level module has a layer**: a new one must be placed in
//!    [`LAYERS`] deliberately.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Where a top-level module sits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// Shared foundations: depend on nothing of dbmazz above them.
    Bottom,
    /// The data path's stages and their stores.
    DataPath,
    /// One pipeline's lifecycle.
    Engine,
    /// The worker loop: leases, takeover, engines.
    Runner,
    /// The command line: the top.
    Cli,
    /// Beside the corridor (control plane, telemetry): reads engine and below.
    Side,
}

/// The layer of every top-level module of `src/`.
pub const LAYERS: &[(&str, Layer)] = &[
    ("alloc", Layer::Bottom),
    ("clock", Layer::Bottom),
    ("config", Layer::Bottom),
    ("error", Layer::Bottom),
    ("failpoint", Layer::Bottom),
    ("lsn", Layer::Bottom),
    ("postgres", Layer::Bottom),
    ("lease", Layer::DataPath),
    ("pipeline", Layer::DataPath),
    ("sink", Layer::DataPath),
    ("snapshot", Layer::DataPath),
    ("source", Layer::DataPath),
    ("spill", Layer::DataPath),
    ("state_store", Layer::DataPath),
    ("engine", Layer::Engine),
    ("runner", Layer::Runner),
    ("cli", Layer::Cli),
    ("grpc", Layer::Side),
    ("telemetry", Layer::Side),
];

/// A module path below the crate root (`["sink", "starrocks", "catalog"]`).
pub type ModPath = Vec<String>;

/// One source file: its path relative to `src/` (with `/`) and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// `sink/starrocks/catalog.rs`.
    pub path: String,
    /// The file's contents.
    pub text: String,
}

/// One reference from a module to another.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The referring module (inline modules included).
    pub from: ModPath,
    /// The module the path resolves to.
    pub to: ModPath,
    /// `file:line` of the reference.
    pub at: String,
}

/// The modules and references of a crate.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Every module found (files and inline modules); the root is the empty path.
    pub modules: BTreeSet<ModPath>,
    /// Every reference between two different modules.
    pub edges: Vec<Edge>,
}

/// A broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Siblings importing each other in a circle.
    Circle {
        /// The folder (`crate` at the top).
        parent: String,
        /// The siblings in the circle.
        members: Vec<String>,
        /// The references that make it.
        evidence: Vec<String>,
    },
    /// A top-level module imports one it must not.
    Upward {
        /// Importing module.
        from: String,
        /// Imported module.
        to: String,
        /// Where.
        at: String,
    },
    /// A top-level module without a layer.
    Unplaced {
        /// The module.
        module: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Circle {
                parent,
                members,
                evidence,
            } => write!(
                f,
                "import circle among the children of {parent}: {} ({})",
                members.join(" ↔ "),
                evidence.join("; ")
            ),
            Violation::Upward { from, to, at } => write!(
                f,
                "{from} must not import {to} (layering: cli → runner → engine → data path → \
                 bottom; grpc/telemetry only from cli) at {at}"
            ),
            Violation::Unplaced { module } => write!(
                f,
                "top-level module '{module}' has no layer: add it to LAYERS in \
                 infra/modgraph/src/lib.rs"
            ),
        }
    }
}

/// The module path of a file, or `None` for files that are not modules of the
/// library (`main.rs`, non-Rust files).
pub fn module_of(path: &str) -> Option<ModPath> {
    let stem = path.strip_suffix(".rs")?;
    if stem == "main" || stem.starts_with("bin/") {
        return None;
    }
    if stem == "lib" {
        return Some(Vec::new());
    }
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// Blanks comments, string and character literals (keeping line breaks), so that
/// only code is left to scan.
pub fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
                out.push(' ');
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_start(&c, i) {
            // r"…", r#"…"#, br#"…"#: ends at a quote followed by as many '#'.
            let hashes = len.saturating_sub(if c[i] == 'b' { 3 } else { 2 });
            for _ in 0..len {
                out.push(' ');
            }
            i += len;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if ch == '"' || (ch == '\'' && is_char_literal(&c, i)) {
            i = blank_quoted(&c, i, &mut out);
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

/// Blanks the string or character literal opening at `i` (escapes included, line
/// breaks kept); returns the index after its closing quote.
fn blank_quoted(c: &[char], mut i: usize, out: &mut String) -> usize {
    let quote = c[i];
    out.push(' ');
    i += 1;
    while i < c.len() && c[i] != quote {
        if c[i] == '\\' {
            out.push(' ');
            i += 1;
        }
        if let Some(&ch) = c.get(i) {
            out.push(if ch == '\n' { '\n' } else { ' ' });
            i += 1;
        }
    }
    out.push(' ');
    i + 1
}

/// Length of a raw string opener (`r"`, `r#"`, `br##"` …) at `i`, if one starts there.
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    while c.get(j) == Some(&'#') {
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some(j + 1 - i)
}

/// True when the `'` at `i` opens a character literal (not a lifetime or label).
fn is_char_literal(c: &[char], i: usize) -> bool {
    match c.get(i + 1) {
        Some('\\') => true,
        Some(_) => c.get(i + 2) == Some(&'\''),
        None => false,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other(char),
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut it = code.chars().peekable();
    while let Some(ch) = it.next() {
        match ch {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(&n) = it.peek() {
                    if n.is_alphanumeric() || n == '_' {
                        s.push(n);
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push((Tok::Ident(s), line));
            }
            ':' if it.peek() == Some(&':') => {
                it.next();
                out.push((Tok::PathSep, line));
            }
            '{' => out.push((Tok::Open, line)),
            '}' => out.push((Tok::Close, line)),
            ',' => out.push((Tok::Comma, line)),
            c => out.push((Tok::Other(c), line)),
        }
    }
    out
}

/// Parses the use-tree after a `::` at `i`; returns the paths (relative to the
/// prefix) and the index after the tree.
fn use_tree(toks: &[(Tok, usize)], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        match toks.get(i) {
            Some((Tok::Ident(s), _)) => {
                prefix.push(s.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                return (vec![prefix], i);
            }
            Some((Tok::Open, _)) => {
                i += 1;
                let mut all = Vec::new();
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Close) => {
                            i += 1;
                            break;
                        }
                        Some(Tok::Comma) => i += 1,
                        None => break,
                        Some(_) => {
                            let (paths, next) = use_tree(toks, i);
                            for p in paths {
                                let mut full = prefix.clone();
                                full.extend(p);
                                all.push(full);
                            }
                            // Skip whatever the sub-tree did not consume (`*`, `as x`).
                            i = next.max(i + 1);
                            while let Some(t) = toks.get(i).map(|t| &t.0) {
                                if matches!(t, Tok::Comma | Tok::Close) {
                                    break;
                                }
                                i += 1;
                            }
                        }
                    }
                }
                return (all, i);
            }
            _ => return (vec![prefix], i),
        }
    }
}

/// Reads the modules and references of the given files.
pub fn build(files: &[SourceFile]) -> Graph {
    let mut graph = Graph::default();
    let mut refs: Vec<(ModPath, Vec<String>, String)> = Vec::new();
    for f in files {
        let Some(module) = module_of(&f.path) else {
            continue;
        };
        graph.modules.insert(module.clone());
        let toks = tokens(&strip(&f.text));
        // Inline modules: (path, brace depth at which their body opened).
        let mut stack: Vec<(ModPath, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let current = stack.last().map_or(&module, |s| &s.0).clone();
            match &toks[i].0 {
                Tok::Open => depth += 1,
                Tok::Close => {
                    if stack.last().is_some_and(|s| s.1 == depth) {
                        stack.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                Tok::Ident(k) if k == "mod" => {
                    if let (Some((Tok::Ident(name), _)), Some((Tok::Open, _))) =
                        (toks.get(i + 1), toks.get(i + 2))
                    {
                        let mut p = current.clone();
                        p.push(name.clone());
                        graph.modules.insert(p.clone());
                        depth += 1;
                        stack.push((p, depth));
                        i += 3;
                        continue;
                    }
                }
                Tok::Ident(k)
                    if (k == "crate" || k == "super")
                        && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                        && !(i > 0 && toks[i - 1].0 == Tok::Other('$')) =>
                {
                    let line = toks[i].1;
                    let mut base: ModPath = if k == "crate" {
                        Vec::new()
                    } else {
                        current.clone()
                    };
                    let mut j = i;
                    if k == "super" {
                        // super::super::… climbs one level each.
                        while matches!(&toks.get(j).map(|t| &t.0), Some(Tok::Ident(s)) if s == "super")
                            && toks.get(j + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                        {
                            base.pop();
                            j += 2;
                        }
                    } else {
                        j += 2;
                    }
                    let (paths, next) = use_tree(&toks, j);
                    for p in paths {
                        let mut full = base.clone();
                        full.extend(p);
                        refs.push((current.clone(), full, format!("{}:{line}", f.path)));
                    }
                    i = next.max(i + 1);
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
    for (from, full, at) in refs {
        let to = (0..=full.len())
            .rev()
            .map(|n| full[..n].to_vec())
            .find(|p| graph.modules.contains(p))
            .unwrap_or_default();
        if to != from {
            graph.edges.push(Edge { from, to, at });
        }
    }
    graph.edges.sort();
    graph.edges.dedup();
    graph
}

fn layer_of(module: &str) -> Option<Layer> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// True when top-level module `from` may import top-level module `to`.
fn allowed(from: Layer, to: Layer) -> bool {
    match (from, to) {
        (Layer::Cli, _) => true,
        (Layer::Side, Layer::Side) => true,
        (Layer::Side, other) => other <= Layer::Engine,
        (_, Layer::Side) => false,
        (from, to) => to <= from,
    }
}

/// Checks the rules of the module docs; an empty list means the graph is clean.
pub fn check(graph: &Graph) -> Vec<Violation> {
    let mut out = Vec::new();
    let tops: BTreeSet<&String> = graph.modules.iter().filter_map(|m| m.first()).collect();
    for t in tops {
        if layer_of(t).is_none() {
            out.push(Violation::Unplaced { module: t.clone() });
        }
    }
    // Sibling edges per folder.
    let mut levels: BTreeMap<ModPath, BTreeMap<(String, String), Vec<String>>> = BTreeMap::new();
    for e in &graph.edges {
        let common = e.from.iter().zip(&e.to).take_while(|(a, b)| a == b).count();
        if common == e.from.len() || common == e.to.len() {
            continue; // parent/child
        }
        let (a, b) = (e.from[common].clone(), e.to[common].clone());
        if common == 0 {
            if let (Some(la), Some(lb)) = (layer_of(&a), layer_of(&b)) {
                if !allowed(la, lb) {
                    out.push(Violation::Upward {
                        from: a.clone(),
                        to: b.clone(),
                        at: e.at.clone(),
                    });
                }
            }
        }
        levels
            .entry(e.from[..common].to_vec())
            .or_default()
            .entry((a, b))
            .or_default()
            .push(e.at.clone());
    }
    for (parent, edges) in levels {
        for scc in circles(&edges) {
            let evidence = edges
                .iter()
                .filter(|((a, b), _)| scc.contains(a) && scc.contains(b))
                .map(|((a, b), at)| format!("{a} → {b} at {}", at[0]))
                .collect();
            out.push(Violation::Circle {
                parent: if parent.is_empty() {
                    "crate".to_owned()
                } else {
                    parent.join("::")
                },
                members: scc.into_iter().collect(),
                evidence,
            });
        }
    }
    out
}

/// Strongly connected components with more than one node (Tarjan).
fn circles(edges: &BTreeMap<(String, String), Vec<String>>) -> Vec<BTreeSet<String>> {
    let mut adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        adj.entry(a).or_default().push(b);
        adj.entry(b).or_default();
    }
    struct St<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(v: &'a str, adj: &BTreeMap<&'a str, Vec<&'a str>>, st: &mut St<'a>) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on.insert(v);
        for &w in adj.get(v).map(Vec::as_slice).unwrap_or_default() {
            if !st.index.contains_key(w) {
                visit(w, adj, st);
                let lw = st.low[w];
                if lw < st.low[v] {
                    st.low.insert(v, lw);
                }
            } else if st.on.contains(w) {
                let iw = st.index[w];
                if iw < st.low[v] {
                    st.low.insert(v, iw);
                }
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = st.stack.pop() {
                st.on.remove(w);
                comp.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                st.out.push(comp);
            }
        }
    }
    let mut st = St {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for &v in adj.keys() {
        if !st.index.contains_key(v) {
            visit(v, &adj, &mut st);
        }
    }
    st.out
}

/// Reads every `.rs` file below `src` (paths relative to it).
pub fn read_tree(src: &Path) -> std::io::Result<Vec<SourceFile>> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<SourceFile>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .map_err(std::io::Error::other)?
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(SourceFile {
                    path: rel,
                    text: std::fs::read_to_string(&p)?,
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(src, src, &mut out)?;
    Ok(out)
}

/// The top-level edges as `from → to` lines (for docs and `make layers`).
pub fn top_level(graph: &Graph) -> Vec<String> {
    let set: BTreeSet<(String, String)> = graph
        .edges
        .iter()
        .filter_map(|e| Some((e.from.first()?.clone(), e.to.first()?.clone())))
        .filter(|(a, b)| a != b)
        .collect();
    set.into_iter().map(|(a, b)| format!("{a} → {b}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.to_owned(),
            text: text.to_owned(),
        }
    }

    fn clean_crate() -> Vec<SourceFile> {
        vec![
            file("lib.rs", "pub mod lsn;\npub mod source;\npub mod engine;\n"),
            file("lsn.rs", "pub struct Lsn;"),
            file(
                "source/mod.rs",
                "pub mod wal;\nuse crate::lsn::Lsn;\nuse wal::X;",
            ),
            file("source/wal.rs", "use super::Thing;\nuse crate::{lsn::Lsn};"),
            file(
                "engine/mod.rs",
                "use crate::{source::{self, wal::X}, lsn::*};",
            ),
            file("grpc/mod.rs", "use crate::engine::Pipelines;"),
            file("cli/mod.rs", "use crate::grpc;\nuse crate::engine;"),
        ]
    }

    #[test]
    fn a_clean_crate_passes() {
        let g = build(&clean_crate());
        assert_eq!(check(&g), vec![], "{:#?}", g.edges);
        assert!(top_level(&g).contains(&"engine → source".to_owned()));
        assert!(top_level(&g).contains(&"grpc → engine".to_owned()));
    }

    #[test]
    fn a_circle_between_two_modules_is_found() {
        let mut files = clean_crate();
        files.push(file("state_store.rs", "use crate::source::Lsn;"));
        files.push(file(
            "source/feedback.rs",
            "use crate::state_store::Checkpointed;",
        ));
        let v = check(&build(&files));
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::Circle { parent, members, .. }
                if parent == "crate" && members.contains(&"source".to_owned())
                    && members.contains(&"state_store".to_owned()))),
            "{v:?}"
        );
        let text = v
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("source/feedback.rs:1"), "{text}");
    }

    #[test]
    fn a_three_file_circle_inside_a_folder_is_found() {
        let mut files = clean_crate();
        files.extend([
            file("sink/mod.rs", "pub mod starrocks;"),
            file("sink/starrocks/mod.rs", "mod catalog; mod encode; mod fit;"),
            file("sink/starrocks/catalog.rs", "use super::encode::backquote;"),
            file("sink/starrocks/encode.rs", "use super::fit::Fit;"),
            file(
                "sink/starrocks/fit.rs",
                "use crate::sink::starrocks::catalog::SinkColumn;",
            ),
        ]);
        let v = check(&build(&files));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            matches!(&v[0], Violation::Circle { parent, members, .. }
                if parent == "sink::starrocks" && members.len() == 3),
            "{v:?}"
        );
    }

    #[test]
    fn upward_imports_and_control_plane_imports_are_refused() {
        let mut files = clean_crate();
        files.push(file("sink/mod.rs", "use crate::engine::status::Board;"));
        files.push(file(
            "pipeline/mod.rs",
            "use crate::grpc::state::SharedState;",
        ));
        files.push(file("runner/mod.rs", "fn f() { crate::grpc::serve(); }"));
        let v = check(&build(&files));
        let ups: Vec<(String, String)> = v
            .iter()
            .filter_map(|v| match v {
                Violation::Upward { from, to, .. } => Some((from.clone(), to.clone())),
                _ => None,
            })
            .collect();
        for pair in [("sink", "engine"), ("pipeline", "grpc"), ("runner", "grpc")] {
            assert!(
                ups.contains(&(pair.0.to_owned(), pair.1.to_owned())),
                "{pair:?} not refused: {v:?}"
            );
        }
    }

    #[test]
    fn a_module_without_a_layer_is_reported() {
        let mut files = clean_crate();
        files.push(file("gadget.rs", ""));
        assert_eq!(
            check(&build(&files)),
            vec![Violation::Unplaced {
                module: "gadget".into()
            }]
        );
    }

    #[test]
    fn comments_strings_and_visibility_are_not_imports() {
        let files = vec![
            file("lib.rs", ""),
            file("lsn.rs", ""),
            file(
                "source/mod.rs",
                "//! See [`crate::engine`].\n\
                 /* crate::cli::x */\n\
                 pub(crate) fn f<'a>(x: &'a str) -> char { let _ = \"crate::grpc::y\"; \
                 let _ = r#\"crate::cli\"#; '\"' }\n\
                 pub(in crate::source) struct S;\n",
            ),
            file("engine.rs", ""),
            file("grpc.rs", ""),
            file("cli.rs", ""),
        ];
        let g = build(&files);
        assert!(g.edges.is_empty(), "{:?}", g.edges);
    }

    #[test]
    fn super_in_an_inline_module_means_the_file() {
        let files = vec![
            file("lib.rs", ""),
            file("sink/mod.rs", ""),
            file("sink/encode.rs", "mod tests { use super::fit::X; }"),
            file("sink/fit.rs", "use super::encode::Y;"),
        ];
        let g = build(&files);
        // `super` inside `encode::tests` is `encode`, so `super::fit` is `encode::fit`
        // (no such module: it resolves to `encode`) and there is no circle.
        assert!(check(&g).is_empty(), "{:?}", g.edges);
    }

    #[test]
    fn the_dbmazz_crate_keeps_its_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src");
        let files = read_tree(&src).expect("read src/");
        assert!(files.len() > 20, "src/ not found at {}", src.display());
        let graph = build(&files);
        let violations = check(&graph);
        assert!(
            violations.is_empty(),
            "module graph of src/ breaks the layering:\n{}",
            violations
                .iter()
                .map(|v| format!("  - {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

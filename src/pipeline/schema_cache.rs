//! Relation id → table schema, in O(1), replaced on every Relation message.
//!
//! pgoutput sends a Relation message before the first change of a table in every
//! walsender session and again after any schema change, so the cache is always
//! rebuilt from the stream itself; setup only contributes what the stream does not
//! carry (which columns form the primary key, the sink table name).

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::source::message::{Relation, ReplicaIdentity, TypeInfo};
use crate::source::values::{PgType, TypeRegistry};

/// A configured table as setup found it in PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Schema name in PostgreSQL.
    pub schema: String,
    /// Table name in PostgreSQL.
    pub name: String,
    /// Table name in the sink database.
    pub sink_table: String,
    /// Primary key column names, in key order.
    pub key_columns: Vec<String>,
}

impl TableSpec {
    /// `schema.name` as written in TABLES.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A configured table as setup found it in the PostgreSQL catalog: what the sink
/// prepares its table for. The stream's Relation messages are authoritative once
/// streaming.
#[derive(Clone, Debug)]
pub struct SourceTable {
    /// Names and key.
    pub spec: TableSpec,
    /// Current columns.
    pub columns: Vec<ColumnSchema>,
}

/// One column of a table schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// `atttypmod`.
    pub type_modifier: i32,
    /// The type as value decoding understands it (user types resolved through
    /// Type messages).
    pub pg_type: PgType,
    /// Part of the replica identity key sent in old-key tuples.
    pub identity: bool,
}

/// The schema of one table as the stream describes it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// Relation OID.
    pub rel_id: u32,
    /// The configured table.
    pub spec: Arc<TableSpec>,
    /// Columns in tuple order.
    pub columns: Vec<ColumnSchema>,
    /// Positions of the primary key columns in `columns`, in key order.
    pub key: Vec<usize>,
    /// Replica identity of the table.
    pub replica_identity: ReplicaIdentity,
    /// Increments on every schema change of this table within the process.
    pub generation: u32,
}

impl TableSchema {
    /// Position of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// What changed between two schemas of one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Columns that are new (by name).
    pub added: Vec<ColumnSchema>,
    /// Column names that disappeared.
    pub dropped: Vec<String>,
    /// Columns whose type changed: (old, new).
    pub retyped: Vec<(ColumnSchema, ColumnSchema)>,
    /// Columns that look renamed: (old name, new name). A rename keeps the column's
    /// position and type, so a column that disappeared and a new one of the same type
    /// in the same place, with every other column in place, is taken for a rename.
    /// Renamed columns are also listed in `added` and `dropped` (the sink handles a
    /// rename as add + drop, see `docs/change-semantics.md`).
    pub renamed: Vec<(String, String)>,
}

impl SchemaDiff {
    /// Compares the columns of `old` and `new`.
    pub fn between(old: &TableSchema, new: &TableSchema) -> Self {
        let mut d = SchemaDiff::default();
        for c in &new.columns {
            match old.columns.iter().find(|o| o.name == c.name) {
                None => d.added.push(c.clone()),
                Some(o) if o.type_oid != c.type_oid || o.type_modifier != c.type_modifier => {
                    d.retyped.push((o.clone(), c.clone()))
                }
                Some(_) => {}
            }
        }
        for o in &old.columns {
            if !new.columns.iter().any(|c| c.name == o.name) {
                d.dropped.push(o.name.clone());
            }
        }
        if old.columns.len() == new.columns.len() {
            for (o, n) in old.columns.iter().zip(&new.columns) {
                if o.name != n.name
                    && d.dropped.contains(&o.name)
                    && d.added.iter().any(|a| a.name == n.name)
                    && o.type_oid == n.type_oid
                    && o.type_modifier == n.type_modifier
                {
                    d.renamed.push((o.name.clone(), n.name.clone()));
                }
            }
        }
        d
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.dropped.is_empty()
            && self.retyped.is_empty()
            && self.renamed.is_empty()
    }
}

/// Errors while applying a Relation message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A primary key column is not among the published columns.
    #[error(
        "table '{table}': primary key column '{column}' is not in the replicated column list; \
         publish all key columns (remove the publication column list or add '{column}' to it)"
    )]
    KeyColumnMissing {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
}

/// What [`SchemaCache::apply_relation`] found.
#[derive(Clone, Debug)]
pub enum RelationUpdate {
    /// The relation is not one of the configured tables.
    NotConfigured,
    /// First sight of the table in this session (or an identical re-send).
    Unchanged(Arc<TableSchema>),
    /// The schema changed.
    Changed {
        /// Previous schema.
        old: Arc<TableSchema>,
        /// New schema.
        new: Arc<TableSchema>,
        /// The difference.
        diff: SchemaDiff,
    },
}

/// The cache.
#[derive(Debug, Default)]
pub struct SchemaCache {
    specs: HashMap<(String, String), Arc<TableSpec>>,
    by_id: FxHashMap<u32, Arc<TableSchema>>,
    types: TypeRegistry,
    last_by_name: HashMap<(String, String), Arc<TableSchema>>,
}

impl SchemaCache {
    /// A cache for the configured tables.
    pub fn new(specs: impl IntoIterator<Item = TableSpec>) -> Self {
        SchemaCache {
            specs: specs
                .into_iter()
                .map(|s| ((s.schema.clone(), s.name.clone()), Arc::new(s)))
                .collect(),
            ..Default::default()
        }
    }

    /// Schema of a relation id, if it is a configured table seen in this session.
    #[inline]
    pub fn get(&self, rel_id: u32) -> Option<&Arc<TableSchema>> {
        self.by_id.get(&rel_id)
    }

    /// Marks a type as an enum (known from the catalog), so it is written as text.
    pub fn mark_enum(&mut self, oid: u32) {
        self.types.mark_enum(oid);
    }

    /// Records a Type message.
    pub fn apply_type(&mut self, t: &TypeInfo) {
        self.types.register(t);
    }

    /// Applies a Relation message.
    pub fn apply_relation(&mut self, r: &Relation) -> Result<RelationUpdate, SchemaError> {
        let key = (r.namespace.clone(), r.name.clone());
        let Some(spec) = self.specs.get(&key).cloned() else {
            self.by_id.remove(&r.id);
            return Ok(RelationUpdate::NotConfigured);
        };
        let columns: Vec<ColumnSchema> = r
            .columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                pg_type: PgType::resolve(c.type_oid, c.type_modifier, &self.types),
                identity: c.is_key(),
            })
            .collect();
        let mut keypos = Vec::with_capacity(spec.key_columns.len());
        for k in &spec.key_columns {
            let pos = columns.iter().position(|c| &c.name == k).ok_or_else(|| {
                SchemaError::KeyColumnMissing {
                    table: spec.qualified(),
                    column: k.clone(),
                }
            })?;
            keypos.push(pos);
        }
        let previous = self.last_by_name.get(&key).cloned();
        let generation = previous.as_ref().map(|p| p.generation + 1).unwrap_or(0);
        let schema = TableSchema {
            rel_id: r.id,
            spec,
            columns,
            key: keypos,
            replica_identity: r.replica_identity,
            generation,
        };
        let update = match previous {
            Some(old)
                if old.columns == schema.columns
                    && old.rel_id == schema.rel_id
                    && old.replica_identity == schema.replica_identity =>
            {
                self.by_id.insert(r.id, old.clone());
                return Ok(RelationUpdate::Unchanged(old));
            }
            Some(old) => {
                let new = Arc::new(schema);
                let diff = SchemaDiff::between(&old, &new);
                RelationUpdate::Changed { old, new, diff }
            }
            None => RelationUpdate::Unchanged(Arc::new(schema)),
        };
        let new = match &update {
            RelationUpdate::Changed { new, .. } | RelationUpdate::Unchanged(new) => new.clone(),
            RelationUpdate::NotConfigured => return Ok(update),
        };
        // A table that was dropped and re-created has a new OID: forget the old one.
        if let Some(old) = self.last_by_name.get(&key) {
            if old.rel_id != new.rel_id {
                self.by_id.remove(&old.rel_id);
            }
        }
        self.by_id.insert(r.id, new.clone());
        self.last_by_name.insert(key, new);
        Ok(update)
    }

    /// Forgets the per-session state (after a reconnect the server re-sends every
    /// Relation); the last known schema per table is kept to detect changes made
    /// while disconnected.
    pub fn reset_session(&mut self) {
        self.by_id.clear();
    }

    /// The last known schema of every configured table.
    pub fn known(&self) -> impl Iterator<Item = &Arc<TableSchema>> {
        self.last_by_name.values()
    }

    /// Seeds the last known schema of a table (from setup), so the first Relation
    /// of a session can be compared with what the sink was set up for.
    pub fn seed(&mut self, schema: TableSchema) {
        let key = (schema.spec.schema.clone(), schema.spec.name.clone());
        self.last_by_name.insert(key, Arc::new(schema));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::message::RelationColumn;

    fn spec() -> TableSpec {
        TableSpec {
            schema: "public".into(),
            name: "t".into(),
            sink_table: "t".into(),
            key_columns: vec!["id".into()],
        }
    }

    fn rel(id: u32, cols: &[(&str, u32)]) -> Relation {
        Relation {
            xid: None,
            id,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Full,
            columns: cols
                .iter()
                .map(|(n, oid)| RelationColumn {
                    flags: 1,
                    name: (*n).into(),
                    type_oid: *oid,
                    type_modifier: -1,
                })
                .collect(),
        }
    }

    #[test]
    fn first_relation_is_unchanged_and_resend_is_noop() {
        let mut c = SchemaCache::new([spec()]);
        let u = c
            .apply_relation(&rel(10, &[("id", 23), ("v", 25)]))
            .expect("ok");
        assert!(matches!(u, RelationUpdate::Unchanged(_)));
        let s = c.get(10).expect("cached");
        assert_eq!(s.key, vec![0]);
        let u = c
            .apply_relation(&rel(10, &[("id", 23), ("v", 25)]))
            .expect("ok");
        assert!(matches!(u, RelationUpdate::Unchanged(_)));
    }

    #[test]
    fn added_dropped_and_retyped_columns_are_reported() {
        let mut c = SchemaCache::new([spec()]);
        c.apply_relation(&rel(10, &[("id", 23), ("a", 25), ("b", 23)]))
            .expect("ok");
        let u = c
            .apply_relation(&rel(10, &[("id", 23), ("b", 20), ("c", 25)]))
            .expect("ok");
        let RelationUpdate::Changed { diff, new, .. } = u else {
            panic!("expected a change")
        };
        assert_eq!(diff.added.len(), 1);
        assert_eq!(diff.added[0].name, "c");
        assert_eq!(diff.dropped, vec!["a".to_string()]);
        assert_eq!(diff.retyped.len(), 1);
        assert!(
            diff.renamed.is_empty(),
            "a drop plus an add elsewhere is no rename"
        );
        assert_eq!(new.generation, 1);
    }

    #[test]
    fn a_column_replaced_in_place_by_one_of_the_same_type_is_a_rename() {
        let mut c = SchemaCache::new([spec()]);
        c.apply_relation(&rel(10, &[("id", 23), ("a", 25), ("b", 23)]))
            .expect("ok");
        let u = c
            .apply_relation(&rel(10, &[("id", 23), ("a2", 25), ("b", 23)]))
            .expect("ok");
        let RelationUpdate::Changed { diff, .. } = u else {
            panic!("expected a change")
        };
        assert_eq!(diff.renamed, vec![("a".to_string(), "a2".to_string())]);
        assert_eq!(diff.dropped, vec!["a".to_string()]);
        assert_eq!(diff.added.len(), 1);
        // A different type in the same place is a drop and an add.
        let u = c
            .apply_relation(&rel(10, &[("id", 23), ("a3", 20), ("b", 23)]))
            .expect("ok");
        let RelationUpdate::Changed { diff, .. } = u else {
            panic!("expected a change")
        };
        assert!(diff.renamed.is_empty());
    }

    #[test]
    fn unconfigured_tables_are_ignored() {
        let mut c = SchemaCache::new([spec()]);
        let mut r = rel(11, &[("id", 23)]);
        r.name = "other".into();
        assert!(matches!(
            c.apply_relation(&r).expect("ok"),
            RelationUpdate::NotConfigured
        ));
        assert!(c.get(11).is_none());
    }

    #[test]
    fn missing_key_column_is_an_error() {
        let mut c = SchemaCache::new([spec()]);
        let err = c
            .apply_relation(&rel(10, &[("v", 25)]))
            .expect_err("no key");
        assert!(err.to_string().contains("'id'"));
    }
}

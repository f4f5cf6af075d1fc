//! Fixtures shared by the unit tests of the pipeline and the sink: a text table
//! `public.t (id key, a, big)` and tuples built from literals.

use super::*;
use crate::pipeline::schema_cache::{ColumnSchema, TableSpec};
use crate::source::message::{ColumnRef, ReplicaIdentity};
use bytes::Bytes;

/// The table `public.t (id text key, a text, big text)`.
pub(crate) fn schema() -> Arc<TableSchema> {
    let col = |n: &str, identity| ColumnSchema {
        name: n.into(),
        type_oid: 25,
        type_modifier: -1,
        pg_type: crate::source::values::PgType::Text,
        identity,
    };
    Arc::new(TableSchema {
        rel_id: 1,
        spec: Arc::new(TableSpec {
            schema: "public".into(),
            name: "t".into(),
            sink_table: "t".into(),
            key_columns: vec!["id".into()],
        }),
        columns: vec![col("id", true), col("a", false), col("big", false)],
        key: vec![0],
        replica_identity: ReplicaIdentity::Default,
        generation: 0,
    })
}

/// Builds a tuple from `Some(text)` / `None` (NULL) / `Some("\u{1}u")` (unchanged TOAST).
pub(crate) fn tuple(vals: &[Option<&str>]) -> TupleData {
    let mut buf = Vec::new();
    let mut cols = SmallVec::new();
    for v in vals {
        match v {
            None => cols.push(ColumnRef::empty(ColumnKind::Null)),
            Some("\u{1}u") => cols.push(ColumnRef::empty(ColumnKind::UnchangedToast)),
            Some(s) => {
                let start = buf.len() as u32;
                buf.extend_from_slice(s.as_bytes());
                cols.push(ColumnRef::value(ColumnKind::Text, start, s.len() as u32));
            }
        }
    }
    let mut t = TupleData::empty(Bytes::from(buf));
    *t.columns_mut() = cols;
    t
}

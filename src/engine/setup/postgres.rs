//! PostgreSQL side of setup, idempotent and re-run on every start:
//! server settings and privileges, the configured tables (primary key, replica
//! identity), the publication, and the replication slot (created when absent,
//! verified when present, never dropped or recreated — design rule 2).

use tokio_postgres::Client;

use super::error::SetupError;
use crate::lsn::Lsn;
use crate::pipeline::schema_cache::{ColumnSchema, SourceTable, TableSpec};
use crate::postgres::slot::{self, SlotError};
use crate::postgres::sql::{db_message, qualified, quote_ident};
use crate::source::values::{PgType, TypeRegistry};
use crate::state_store::Checkpoint;

/// What PostgreSQL setup established.
#[derive(Clone, Debug)]
pub struct PgSetup {
    /// Tables in configuration order.
    pub tables: Vec<SourceTable>,
    /// Database the source connects to.
    pub database: String,
    /// Slot's `confirmed_flush_lsn` (or the consistent point of a new slot).
    pub slot_confirmed: Lsn,
    /// True when setup created the slot in this run.
    pub slot_created: bool,
}

/// Inputs of PostgreSQL setup.
#[derive(Clone, Debug)]
pub struct PgSetupRequest<'a> {
    /// Configured tables `(schema, name, sink table)`.
    pub tables: &'a [(String, String, String)],
    /// Slot name.
    pub slot: &'a str,
    /// Publication name.
    pub publication: &'a str,
    /// Set REPLICA IDENTITY FULL where it is not.
    pub replica_identity_full: bool,
    /// Job id (for messages).
    pub job: &'a str,
    /// The job's checkpoint, if any.
    pub checkpoint: Option<&'a Checkpoint>,
}

fn q(step: &str) -> impl FnOnce(tokio_postgres::Error) -> SetupError + '_ {
    move |e| SetupError::PgQuery {
        step: step.to_owned(),
        detail: db_message(&e),
    }
}

/// Runs PostgreSQL setup on an open connection.
pub async fn setup(client: &Client, req: &PgSetupRequest<'_>) -> Result<PgSetup, SetupError> {
    let row = client
        .query_one(
            "SELECT current_user::text, current_database()::text, current_setting('wal_level'), \
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(q("reading server settings"))?;
    let role: String = row.get(0);
    let database: String = row.get(1);
    let wal_level: String = row.get(2);
    let can_replicate: Option<bool> = row.get(3);
    if wal_level != "logical" {
        return Err(SetupError::PgWalLevel { actual: wal_level });
    }
    if can_replicate != Some(true) {
        return Err(SetupError::PgNoReplicationPrivilege { role });
    }

    let mut tables = Vec::with_capacity(req.tables.len());
    for (schema, name, sink_table) in req.tables {
        tables.push(table(client, schema, name, sink_table, req.replica_identity_full).await?);
    }
    publication(client, req.publication, &tables).await?;
    let (slot_confirmed, slot_created) = slot(client, req, &database).await?;
    Ok(PgSetup {
        tables,
        database,
        slot_confirmed,
        slot_created,
    })
}

async fn table(
    client: &Client,
    schema: &str,
    name: &str,
    sink_table: &str,
    set_full: bool,
) -> Result<SourceTable, SetupError> {
    let shown = format!("{schema}.{name}");
    let row = client
        .query_opt(
            "SELECT c.oid, c.relreplident::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&schema, &name],
        )
        .await
        .map_err(q("looking up tables"))?;
    let Some(row) = row else {
        return Err(SetupError::PgTableNotFound { table: shown });
    };
    let oid: u32 = row.get(0);
    let identity: String = row.get(1);
    let key: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            &[&oid],
        )
        .await
        .map_err(q("reading primary keys"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if key.is_empty() {
        return Err(SetupError::PgNoPrimaryKey { table: shown });
    }
    let columns: Vec<ColumnSchema> = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod \
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 \
               AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(q("reading columns"))?
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            ColumnSchema {
                identity: key.contains(&name),
                name,
                type_oid: r.get(1),
                type_modifier: r.get(2),
                pg_type: PgType::resolve(r.get(1), r.get(2), &TypeRegistry::new()),
            }
        })
        .collect();
    match identity.as_str() {
        "f" => {}
        _ if set_full => {
            let sql = format!(
                "ALTER TABLE {} REPLICA IDENTITY FULL",
                qualified(schema, name)
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| SetupError::PgAlterReplicaIdentity {
                    table: shown.clone(),
                    detail: db_message(&e),
                })?;
            tracing::info!(table = %shown, "REPLICA IDENTITY set to FULL");
        }
        "d" => {}
        "i" => {
            let idx: Vec<String> = client
                .query(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1 AND i.indisreplident",
                    &[&oid],
                )
                .await
                .map_err(q("reading the replica identity index"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !key.iter().all(|k| idx.contains(k)) {
                return Err(SetupError::PgReplicaIdentity {
                    table: shown,
                    identity: format!("USING INDEX ({})", idx.join(", ")),
                    key: key.join(", "),
                });
            }
        }
        other => {
            return Err(SetupError::PgReplicaIdentity {
                table: shown,
                identity: if other == "n" {
                    "NOTHING".into()
                } else {
                    other.to_owned()
                },
                key: key.join(", "),
            })
        }
    }
    Ok(SourceTable {
        spec: TableSpec {
            schema: schema.to_owned(),
            name: name.to_owned(),
            sink_table: sink_table.to_owned(),
            key_columns: key,
        },
        columns,
    })
}

async fn publication(
    client: &Client,
    publication: &str,
    tables: &[SourceTable],
) -> Result<(), SetupError> {
    let all: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.spec.schema, &t.spec.name))
        .collect();
    let err = |e: tokio_postgres::Error| SetupError::PgPublication {
        publication: publication.to_owned(),
        tables: all.join(", "),
        detail: db_message(&e),
    };
    let row = client
        .query_opt(
            "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate \
             FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(q("looking up the publication"))?;
    let Some(row) = row else {
        let sql = format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote_ident(publication),
            all.join(", ")
        );
        client.batch_execute(&sql).await.map_err(err)?;
        tracing::info!(publication, "publication created");
        return Ok(());
    };
    let ops = ["insert", "update", "delete", "truncate"];
    let missing: Vec<&str> = (1..=4)
        .filter(|&i| !row.get::<_, bool>(i))
        .map(|i| ops[i - 1])
        .collect();
    if !missing.is_empty() {
        return Err(SetupError::PgPublicationOperations {
            publication: publication.to_owned(),
            missing: missing.join(", "),
        });
    }
    if row.get::<_, bool>(0) {
        return Ok(());
    }
    let members: Vec<(String, String)> = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(q("reading publication members"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let absent: Vec<String> = tables
        .iter()
        .filter(|t| {
            !members
                .iter()
                .any(|(s, n)| *s == t.spec.schema && *n == t.spec.name)
        })
        .map(|t| qualified(&t.spec.schema, &t.spec.name))
        .collect();
    if !absent.is_empty() {
        let sql = format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            quote_ident(publication),
            absent.join(", ")
        );
        client.batch_execute(&sql).await.map_err(err)?;
        tracing::info!(publication, tables = %absent.join(", "), "tables added to the publication");
    }
    Ok(())
}

async fn slot(
    client: &Client,
    req: &PgSetupRequest<'_>,
    database: &str,
) -> Result<(Lsn, bool), SetupError> {
    let row = slot::read(client, req.slot)
        .await
        .map_err(slot_err("looking up the replication slot"))?;
    let Some(row) = row else {
        if let Some(cp) = req.checkpoint {
            return Err(SetupError::PgSlotMissing {
                slot: req.slot.to_owned(),
                job: req.job.to_owned(),
                checkpoint: cp.lsn.to_string(),
            });
        }
        let lsn = slot::create_logical(client, req.slot)
            .await
            .map_err(slot_err("creating the replication slot"))?;
        tracing::info!(slot = req.slot, %lsn, "replication slot created");
        return Ok((lsn, true));
    };
    if row.plugin.as_deref() != Some("pgoutput") {
        return Err(SetupError::PgSlotWrongPlugin {
            slot: req.slot.to_owned(),
            plugin: row.plugin.unwrap_or_else(|| "(physical slot)".into()),
        });
    }
    if row.database.as_deref() != Some(database) {
        return Err(SetupError::PgSlotWrongDatabase {
            slot: req.slot.to_owned(),
            slot_db: row.database.unwrap_or_default(),
            db: database.to_owned(),
        });
    }
    if row.wal_status.as_deref() == Some("lost") {
        return Err(SetupError::PgSlotInvalidated {
            slot: req.slot.to_owned(),
            status: "lost".into(),
            job: req.job.to_owned(),
        });
    }
    if let Some(pid) = row.active_pid {
        return Err(SetupError::PgSlotInUse {
            slot: req.slot.to_owned(),
            pid,
        });
    }
    let confirmed = row.confirmed_flush_lsn.unwrap_or(Lsn::ZERO);
    if let Some(cp) = req.checkpoint {
        if confirmed > cp.lsn {
            return Err(SetupError::PgSlotAhead {
                slot: req.slot.to_owned(),
                job: req.job.to_owned(),
                confirmed: confirmed.to_string(),
                checkpoint: cp.lsn.to_string(),
            });
        }
    }
    Ok((confirmed, false))
}

fn slot_err(step: &str) -> impl FnOnce(SlotError) -> SetupError + '_ {
    move |e| {
        let (step, detail) = match e {
            SlotError::Query(m) => (step.to_owned(), m),
            SlotError::Row(m) => ("reading an LSN".to_owned(), m),
        };
        SetupError::PgQuery { step, detail }
    }
}

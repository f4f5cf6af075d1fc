//! Setup failures: one variant per thing that can be wrong, each message naming the
//! object and the fix. The control plane shows the message as `error_detail`.

use crate::error::ErrorKind;
use crate::sink::SinkError;

/// Why setup could not prepare the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// PostgreSQL is unreachable or refused the login.
    #[error("Cannot connect to PostgreSQL at {endpoint}: {detail}. Check SOURCE_URL (host, port, user, password, sslmode) and that the server accepts connections from this worker (pg_hba.conf).")]
    PgConnect {
        /// host:port/db (no password).
        endpoint: String,
        /// Driver message.
        detail: String,
    },
    /// `wal_level` is not `logical`.
    #[error("PostgreSQL wal_level is '{actual}', logical replication needs 'logical'. Run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (on managed services set the logical replication parameter, e.g. rds.logical_replication = 1).")]
    PgWalLevel {
        /// Current value.
        actual: String,
    },
    /// The role may not replicate.
    #[error("Role '{role}' has neither the REPLICATION attribute nor superuser. Run ALTER ROLE \"{role}\" WITH REPLICATION; (on managed services grant the provider's replication role, e.g. rds_replication).")]
    PgNoReplicationPrivilege {
        /// Role name.
        role: String,
    },
    /// A table in TABLES does not exist.
    #[error("Table '{table}' not found in PostgreSQL. Verify the table exists and TABLES is spelled as schema.table.")]
    PgTableNotFound {
        /// schema.table.
        table: String,
    },
    /// A table has no primary key (StarRocks Primary Key tables need one).
    #[error("Table '{table}' has no primary key. dbmazz loads into StarRocks Primary Key tables and needs the key to apply updates and deletes: add one with ALTER TABLE {table} ADD PRIMARY KEY (...).")]
    PgNoPrimaryKey {
        /// schema.table.
        table: String,
    },
    /// Replica identity cannot identify rows by the key.
    #[error("Table '{table}' has REPLICA IDENTITY {identity}, which does not carry the primary key columns ({key}) in UPDATE/DELETE. Run ALTER TABLE {table} REPLICA IDENTITY FULL; (or DEFAULT).")]
    PgReplicaIdentity {
        /// schema.table.
        table: String,
        /// Current setting.
        identity: String,
        /// Key columns.
        key: String,
    },
    /// dbmazz may not change replica identity.
    #[error("Cannot set REPLICA IDENTITY FULL on '{table}': {detail}. Run ALTER TABLE {table} REPLICA IDENTITY FULL; as the table owner, or set DBMAZZ_REPLICA_IDENTITY=keep.")]
    PgAlterReplicaIdentity {
        /// schema.table.
        table: String,
        /// Server message.
        detail: String,
    },
    /// The publication cannot be created or extended.
    #[error("Cannot create or extend publication '{publication}': {detail}. Create it as a table owner or superuser: CREATE PUBLICATION \"{publication}\" FOR TABLE {tables};")]
    PgPublication {
        /// Publication.
        publication: String,
        /// Tables it needs.
        tables: String,
        /// Server message.
        detail: String,
    },
    /// The publication does not publish every operation.
    #[error("Publication '{publication}' does not publish {missing}; those changes would never reach StarRocks. Run ALTER PUBLICATION \"{publication}\" SET (publish = 'insert, update, delete, truncate');")]
    PgPublicationOperations {
        /// Publication.
        publication: String,
        /// Missing operations.
        missing: String,
    },
    /// The slot exists but uses another plugin.
    #[error("Replication slot '{slot}' uses output plugin '{plugin}', dbmazz needs 'pgoutput'. Choose another SOURCE_SLOT_NAME; dbmazz never drops slots.")]
    PgSlotWrongPlugin {
        /// Slot.
        slot: String,
        /// Its plugin.
        plugin: String,
    },
    /// The slot belongs to another database.
    #[error("Replication slot '{slot}' belongs to database '{slot_db}', but SOURCE_URL connects to '{db}'. Point SOURCE_URL at '{slot_db}' or choose another SOURCE_SLOT_NAME.")]
    PgSlotWrongDatabase {
        /// Slot.
        slot: String,
        /// Slot's database.
        slot_db: String,
        /// Our database.
        db: String,
    },
    /// The slot lost WAL it needed.
    #[error("Replication slot '{slot}' is invalidated (wal_status = {status}): PostgreSQL removed WAL it still needed, so changes after the last checkpoint are gone. dbmazz will not drop or recreate it. Re-sync the tables (drop the slot yourself, clear job '{job}' in dbmazz.dbmazz_checkpoints and reload the StarRocks tables) and consider raising max_slot_wal_keep_size.")]
    PgSlotInvalidated {
        /// Slot.
        slot: String,
        /// wal_status.
        status: String,
        /// Job id.
        job: String,
    },
    /// The slot vanished although dbmazz has progress for it.
    #[error("Replication slot '{slot}' does not exist, but job '{job}' has a checkpoint at {checkpoint}: the changes since then cannot be recovered from this server. dbmazz will not create a new slot silently. Re-sync the tables and delete the job's row from dbmazz.dbmazz_checkpoints, then restart.")]
    PgSlotMissing {
        /// Slot.
        slot: String,
        /// Job id.
        job: String,
        /// Checkpoint LSN.
        checkpoint: String,
    },
    /// The slot was advanced past dbmazz's checkpoint by someone else.
    #[error("Replication slot '{slot}' is confirmed up to {confirmed}, beyond job '{job}''s checkpoint {checkpoint}: another consumer or pg_replication_slot_advance moved it, and the changes in between were never loaded. Re-sync the tables and reset the checkpoint, or use a slot only dbmazz consumes.")]
    PgSlotAhead {
        /// Slot.
        slot: String,
        /// Job id.
        job: String,
        /// Slot's confirmed_flush_lsn.
        confirmed: String,
        /// Our checkpoint.
        checkpoint: String,
    },
    /// Another process streams from the slot.
    #[error("Replication slot '{slot}' is in use by another process (pid {pid}). Stop the other consumer; dbmazz retries.")]
    PgSlotInUse {
        /// Slot.
        slot: String,
        /// Active pid.
        pid: i32,
    },
    /// Any other PostgreSQL error during setup.
    #[error("PostgreSQL setup step '{step}' failed: {detail}")]
    PgQuery {
        /// Step.
        step: String,
        /// Server message.
        detail: String,
    },
    /// The checkpoint table cannot be used.
    #[error("Checkpoint store failed: {detail}. Check DBMAZZ_CHECKPOINT_URL (default: SOURCE_URL); the role needs CREATE on the database for the 'dbmazz' schema.")]
    Checkpoint {
        /// Message.
        detail: String,
    },
    /// The checkpoint database cannot be reached (yet).
    #[error("Checkpoint store failed: {detail}. Check DBMAZZ_CHECKPOINT_URL (default: SOURCE_URL); the role needs CREATE on the database for the 'dbmazz' schema.")]
    CheckpointUnreachable {
        /// Message.
        detail: String,
    },
    /// The sink is unreachable or not ready (its own error names the fix).
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl SetupError {
    /// Unreachable servers and a slot still in use may clear up without anyone
    /// acting (transient); the sink says for its own errors; everything else needs an
    /// operator (setup).
    pub fn kind(&self) -> ErrorKind {
        match self {
            SetupError::PgConnect { .. } | SetupError::PgSlotInUse { .. } => ErrorKind::Transient,
            SetupError::CheckpointUnreachable { .. } => ErrorKind::Transient,
            SetupError::Sink(e) => e.kind().unwrap_or(ErrorKind::Transient),
            _ => ErrorKind::Setup,
        }
    }
}

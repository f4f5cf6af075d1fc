//! Checkpoints in PostgreSQL: the only source of truth for "how far is durable".
//!
//! ```text
//! sink ack (every table of a batch) ─▶ StateStore::commit(job, lsn, epoch) ─▶ Checkpointed
//!                                                                               │
//!                      replication confirm (standby status flush LSN) ◀─────────┘
//! ```
//!
//! [`Checkpointed`] can only be produced here, after the row in `dbmazz_checkpoints`
//! was written, and the replication stream only accepts a `Checkpointed` as the LSN
//! it may confirm. So the slot can never be confirmed past what is both loaded and
//! recorded (design rule 1).
//!
//! Writes are fenced by the lease epoch: `commit` succeeds only while no newer epoch
//! has written the row, so a worker that lost its lease can neither move the
//! checkpoint nor, through it, confirm the slot (rule 8).

use std::fmt;

use tokio_postgres::Client;

use crate::config::Secret;
use crate::error::ErrorKind;
use crate::lsn::Lsn;
use crate::postgres::sql::{create_if_absent, db_message, quote_ident};

/// Errors of the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum StateStoreError {
    /// The checkpoint database could not be reached.
    #[error("checkpoint store: cannot connect: {0}")]
    Connect(String),
    /// The checkpoint database could not be reached or answered with an error.
    #[error("checkpoint store: {context}: {detail}")]
    Postgres {
        /// What was being done.
        context: String,
        /// The server's message.
        detail: String,
    },
    /// A newer lease epoch has written this job's checkpoint: this worker is stale.
    #[error(
        "checkpoint for job '{job}' is owned by lease epoch {current_epoch}, this worker holds \
         epoch {our_epoch}: another worker took over; stopping without writing"
    )]
    Fenced {
        /// Job id.
        job: String,
        /// Epoch found in the row.
        current_epoch: i64,
        /// Epoch this worker wrote with.
        our_epoch: i64,
    },
    /// The stored LSN is larger than the one being written: progress would go backwards.
    #[error("checkpoint for job '{job}' is at {stored}, refusing to move it back to {attempted}")]
    Regression {
        /// Job id.
        job: String,
        /// LSN in the row.
        stored: Lsn,
        /// LSN that was offered.
        attempted: Lsn,
    },
    /// A stored value is not what dbmazz writes (manual edit or corruption).
    #[error("checkpoint row for job '{job}' is invalid: {detail}")]
    Corrupt {
        /// Job id.
        job: String,
        /// What is wrong.
        detail: String,
    },
}

impl StateStoreError {
    fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |e| StateStoreError::Postgres {
            context,
            detail: db_message(&e),
        }
    }

    /// Transient for connection problems and failed statements (retrying later can
    /// help), fenced when a newer lease epoch owns the row, definite for invalid rows
    /// and a checkpoint that would move backwards.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StateStoreError::Postgres { .. } | StateStoreError::Connect(_) => ErrorKind::Transient,
            StateStoreError::Fenced { .. } => ErrorKind::Fenced,
            StateStoreError::Regression { .. } | StateStoreError::Corrupt { .. } => {
                ErrorKind::Definite
            }
        }
    }
}

/// A checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Job id.
    pub job_id: String,
    /// Replication slot of the job.
    pub slot_name: String,
    /// Everything that commits before this LSN is loaded into the sink.
    pub lsn: Lsn,
    /// Lease epoch of the last writer.
    pub epoch: i64,
}

/// Proof that `lsn` is recorded in `dbmazz_checkpoints`. Only [`StateStore`] creates
/// it; the replication stream confirms nothing else.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Checkpointed {
    lsn: Lsn,
}

impl Checkpointed {
    /// The durable LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }
}

impl fmt::Debug for Checkpointed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checkpointed({})", self.lsn)
    }
}

/// Checkpoint table access for one database.
pub struct StateStore {
    client: Client,
    table: String,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("table", &self.table)
            .finish()
    }
}

impl StateStore {
    /// Connects to `url` (a libpq-style URL or key/value string) and makes sure the
    /// schema and table exist.
    pub async fn connect(url: &Secret, schema: &str) -> Result<Self, StateStoreError> {
        let client = crate::postgres::connect(url)
            .await
            .map_err(|e| StateStoreError::Connect(e.to_string()))?;
        let store = StateStore {
            client,
            table: format!("{}.dbmazz_checkpoints", quote_ident(schema)),
        };
        store.ensure_schema(schema).await?;
        Ok(store)
    }

    async fn ensure_schema(&self, schema: &str) -> Result<(), StateStoreError> {
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {table} (
                 job_id     text PRIMARY KEY,
                 slot_name  text NOT NULL,
                 lsn        pg_lsn NOT NULL,
                 epoch      bigint NOT NULL DEFAULT 0,
                 updated_at timestamptz NOT NULL DEFAULT now()
             );",
            schema = quote_ident(schema),
            table = self.table
        );
        create_if_absent(&self.client, &sql)
            .await
            .map_err(StateStoreError::pg("creating the dbmazz_checkpoints table"))
    }

    /// Loads the checkpoint of `job`, if any.
    pub async fn load(&self, job: &str) -> Result<Option<Checkpoint>, StateStoreError> {
        let sql = format!(
            "SELECT job_id, slot_name, lsn::text, epoch FROM {} WHERE job_id = $1",
            self.table
        );
        let row = self
            .client
            .query_opt(&sql, &[&job])
            .await
            .map_err(StateStoreError::pg("reading the checkpoint"))?;
        let Some(row) = row else { return Ok(None) };
        let lsn_text: String = row.get(2);
        let lsn = lsn_text.parse().map_err(|e| StateStoreError::Corrupt {
            job: job.to_owned(),
            detail: format!("{e}"),
        })?;
        Ok(Some(Checkpoint {
            job_id: row.get(0),
            slot_name: row.get(1),
            lsn,
            epoch: row.get(3),
        }))
    }

    /// Records that everything before `lsn` is loaded, as lease epoch `epoch`.
    ///
    /// Fails with [`StateStoreError::Fenced`] when a newer epoch wrote the row and with
    /// [`StateStoreError::Regression`] when the row is already past `lsn`; the row is
    /// unchanged in both cases.
    pub async fn commit(
        &self,
        job: &str,
        slot: &str,
        lsn: Lsn,
        epoch: i64,
    ) -> Result<Checkpointed, StateStoreError> {
        let sql = format!(
            "WITH up AS (
                 INSERT INTO {t} AS c (job_id, slot_name, lsn, epoch, updated_at)
                 VALUES ($1, $2, $3::text::pg_lsn, $4, now())
                 ON CONFLICT (job_id) DO UPDATE
                    SET lsn = EXCLUDED.lsn, epoch = EXCLUDED.epoch,
                        slot_name = EXCLUDED.slot_name, updated_at = now()
                  WHERE c.epoch <= EXCLUDED.epoch AND c.lsn <= EXCLUDED.lsn
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM up) AS written,
                    (SELECT epoch FROM {t} WHERE job_id = $1) AS epoch,
                    (SELECT lsn::text FROM {t} WHERE job_id = $1) AS lsn",
            t = self.table
        );
        let lsn_text = lsn.to_string();
        let row = self
            .client
            .query_one(&sql, &[&job, &slot, &lsn_text, &epoch])
            .await
            .map_err(StateStoreError::pg("writing the checkpoint"))?;
        let written: i64 = row.get(0);
        if written == 1 {
            return Ok(Checkpointed { lsn });
        }
        // The CTE's snapshot does not see its own write, so these are the values that
        // blocked it.
        let current_epoch: Option<i64> = row.get(1);
        let stored: Option<String> = row.get(2);
        let current_epoch = current_epoch.unwrap_or(epoch);
        if current_epoch > epoch {
            return Err(StateStoreError::Fenced {
                job: job.to_owned(),
                current_epoch,
                our_epoch: epoch,
            });
        }
        let stored =
            stored
                .as_deref()
                .unwrap_or("0/0")
                .parse()
                .map_err(|e| StateStoreError::Corrupt {
                    job: job.to_owned(),
                    detail: format!("{e}"),
                })?;
        Err(StateStoreError::Regression {
            job: job.to_owned(),
            stored,
            attempted: lsn,
        })
    }

    /// Takes the checkpoint row of `job` over for lease epoch `epoch` before a new
    /// holder starts: from then on every write of an older epoch (a worker that lost
    /// the lease but does not know it yet) fails with [`StateStoreError::Fenced`].
    ///
    /// Returns the epoch the row had (`None` when the job has no checkpoint yet); fails
    /// with `Fenced` when the row already belongs to a newer epoch, i.e. `epoch` is
    /// stale and the lease must be given up.
    pub async fn claim(&self, job: &str, epoch: i64) -> Result<Option<i64>, StateStoreError> {
        let update = format!(
            "UPDATE {t} AS c SET epoch = $2, updated_at = now()
              WHERE job_id = $1 AND epoch <= $2
             RETURNING (SELECT epoch FROM {t} WHERE job_id = $1)",
            t = self.table
        );
        // The sub-select sees the statement's snapshot: the epoch before this update.
        if let Some(row) = self
            .client
            .query_opt(&update, &[&job, &epoch])
            .await
            .map_err(StateStoreError::pg("claiming the checkpoint"))?
        {
            return Ok(row.get(0));
        }
        match self.load(job).await? {
            None => Ok(None),
            Some(cp) => Err(StateStoreError::Fenced {
                job: job.to_owned(),
                current_epoch: cp.epoch,
                our_epoch: epoch,
            }),
        }
    }

    /// The proof for a checkpoint that was just loaded from this store (resume point).
    pub fn resume_point(&self, checkpoint: &Checkpoint) -> Checkpointed {
        Checkpointed {
            lsn: checkpoint.lsn,
        }
    }
}

/// A checkpoint table in memory with the same fencing and ordering rules as
/// [`StateStore::commit`], for unit tests of the engine.
#[cfg(test)]
pub(crate) mod memory {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::{Checkpointed, StateStoreError};
    use crate::lsn::Lsn;

    #[derive(Debug, Default)]
    struct Rows {
        rows: HashMap<String, (Lsn, i64)>,
        commits: u64,
        unreachable: u32,
    }

    /// Checkpoints by job: `(lsn, epoch)`.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct MemoryCheckpoints(Arc<Mutex<Rows>>);

    impl MemoryCheckpoints {
        fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// The stored checkpoint of `job`.
        pub(crate) fn get(&self, job: &str) -> Option<(Lsn, i64)> {
            self.lock().rows.get(job).copied()
        }

        /// Writes a row as another worker would.
        pub(crate) fn set(&self, job: &str, lsn: Lsn, epoch: i64) {
            self.lock().rows.insert(job.to_owned(), (lsn, epoch));
        }

        /// Commit attempts so far.
        pub(crate) fn commits(&self) -> u64 {
            self.lock().commits
        }

        /// The next `n` commits fail as if the database were unreachable.
        pub(crate) fn fail_next(&self, n: u32) {
            self.lock().unreachable = n;
        }

        /// [`super::StateStore::commit`]'s rules on the in-memory row.
        pub(crate) fn commit(
            &self,
            job: &str,
            lsn: Lsn,
            epoch: i64,
        ) -> Result<Checkpointed, StateStoreError> {
            let mut r = self.lock();
            r.commits += 1;
            if r.unreachable > 0 {
                r.unreachable -= 1;
                return Err(StateStoreError::Connect("connection refused".into()));
            }
            match r.rows.get(job).copied() {
                Some((_, current)) if current > epoch => Err(StateStoreError::Fenced {
                    job: job.to_owned(),
                    current_epoch: current,
                    our_epoch: epoch,
                }),
                Some((stored, _)) if stored > lsn => Err(StateStoreError::Regression {
                    job: job.to_owned(),
                    stored,
                    attempted: lsn,
                }),
                _ => {
                    r.rows.insert(job.to_owned(), (lsn, epoch));
                    Ok(Checkpointed { lsn })
                }
            }
        }
    }
}

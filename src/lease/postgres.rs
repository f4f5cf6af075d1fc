//! Leases in a PostgreSQL table, decided by the database clock.
//!
//! ```text
//! dbmazz_leases(job_id pk, holder, token, epoch, expires_at, acquired_at)
//! dbmazz_workers(worker_id pk, expires_at)
//! ```
//!
//! - acquire: one `INSERT … ON CONFLICT DO UPDATE … WHERE expires_at < now()`; the
//!   conflicting row is locked and the condition re-checked on its newest version,
//!   so of many concurrent acquirers exactly one gets the row. The epoch is
//!   `max(epoch, floor) + 1`.
//! - renew: `UPDATE … WHERE token = $ AND expires_at > now()`: an expired lease is
//!   never revived, even when nobody took it.
//! - release: the row stays (the epoch must keep growing); it only expires now.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::{FleetView, Lease, LeaseError, LeaseGuard};
use crate::config::Secret;
use crate::postgres::sql::{create_if_absent, db_message, quote_ident};

const BACKEND: &str = "postgres";

/// Lease backend on a PostgreSQL database.
pub struct PgLease {
    url: Secret,
    schema: String,
    ttl: Duration,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("schema", &self.schema)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn unavailable(context: &str) -> impl FnOnce(tokio_postgres::Error) -> LeaseError + '_ {
    move |e| LeaseError::Unavailable {
        backend: BACKEND,
        detail: format!("{context}: {}", db_message(&e)),
    }
}

impl PgLease {
    /// A backend on `url` (libpq URL) keeping its tables in `schema`. Connects lazily
    /// and again after a lost connection.
    pub fn new(url: &Secret, schema: &str, ttl: Duration) -> Self {
        PgLease {
            url: url.clone(),
            schema: schema.to_owned(),
            ttl,
            client: Mutex::new(None),
        }
    }

    fn leases(&self) -> String {
        format!("{}.dbmazz_leases", quote_ident(&self.schema))
    }

    fn workers(&self) -> String {
        format!("{}.dbmazz_workers", quote_ident(&self.schema))
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs `f` with a connected client; drops the connection after an error so the
    /// next call reconnects. Every call is bounded by a third of the TTL.
    async fn with_client<T, F>(&self, what: &str, f: F) -> Result<T, LeaseError>
    where
        F: for<'c> FnOnce(
            &'c Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, LeaseError>> + Send + 'c>,
        >,
    {
        let limit = (self.ttl / 3).max(Duration::from_millis(200));
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        if slot.is_none() {
            let c = tokio::time::timeout(limit, crate::postgres::connect(&self.url))
                .await
                .map_err(|_| LeaseError::Unavailable {
                    backend: BACKEND,
                    detail: format!("{what}: connecting timed out after {limit:?}"),
                })?
                .map_err(|e| LeaseError::Unavailable {
                    backend: BACKEND,
                    detail: format!("{what}: {e}"),
                })?;
            ensure_schema(&c, &self.schema, &self.leases(), &self.workers()).await?;
            *slot = Some(c);
        }
        let Some(client) = slot.as_ref() else {
            return Err(LeaseError::Unavailable {
                backend: BACKEND,
                detail: format!("{what}: no connection"),
            });
        };
        let r = match tokio::time::timeout(limit, f(client)).await {
            Ok(r) => r,
            Err(_) => Err(LeaseError::Unavailable {
                backend: BACKEND,
                detail: format!("{what}: no answer within {limit:?}"),
            }),
        };
        if matches!(r, Err(LeaseError::Unavailable { .. })) {
            *slot = None;
        }
        r
    }
}

async fn ensure_schema(
    c: &Client,
    schema: &str,
    leases: &str,
    workers: &str,
) -> Result<(), LeaseError> {
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {leases} (
             job_id      text PRIMARY KEY,
             holder      text NOT NULL,
             token       text NOT NULL,
             epoch       bigint NOT NULL,
             expires_at  timestamptz NOT NULL,
             acquired_at timestamptz NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {workers} (
             worker_id  text PRIMARY KEY,
             expires_at timestamptz NOT NULL
         );",
        schema = quote_ident(schema)
    );
    create_if_absent(c, &sql)
        .await
        .map_err(unavailable("creating dbmazz_leases"))
}

impl Lease for PgLease {
    async fn try_acquire(
        &self,
        job: &str,
        holder: &str,
        floor: i64,
    ) -> Result<Option<LeaseGuard>, LeaseError> {
        let sql = format!(
            "INSERT INTO {t} AS l (job_id, holder, token, epoch, expires_at, acquired_at)
             VALUES ($1, $2, $3, GREATEST($4::bigint, 0) + 1,
                     now() + $5::bigint * interval '1 millisecond', now())
             ON CONFLICT (job_id) DO UPDATE
                SET holder = EXCLUDED.holder, token = EXCLUDED.token,
                    epoch = GREATEST(l.epoch, $4::bigint) + 1,
                    expires_at = EXCLUDED.expires_at, acquired_at = now()
              WHERE l.expires_at < now()
             RETURNING epoch, (extract(epoch FROM expires_at) * 1000)::bigint",
            t = self.leases()
        );
        let token = super::new_token();
        let ttl = self.ttl_ms();
        let (job_s, holder_s, token_s) = (job.to_owned(), holder.to_owned(), token.clone());
        let row = self
            .with_client("acquiring a lease", move |c| {
                Box::pin(async move {
                    c.query_opt(&sql, &[&job_s, &holder_s, &token_s, &floor, &ttl])
                        .await
                        .map_err(unavailable("acquiring a lease"))
                })
            })
            .await?;
        Ok(row.map(|r| LeaseGuard {
            job: job.to_owned(),
            holder: holder.to_owned(),
            token,
            epoch: r.get(0),
            expires_unix_ms: r.get(1),
        }))
    }

    async fn renew(&self, guard: &LeaseGuard) -> Result<LeaseGuard, LeaseError> {
        let sql = format!(
            "UPDATE {t} SET expires_at = now() + $3::bigint * interval '1 millisecond'
              WHERE job_id = $1 AND token = $2 AND expires_at > now()
             RETURNING (extract(epoch FROM expires_at) * 1000)::bigint",
            t = self.leases()
        );
        let ttl = self.ttl_ms();
        let (job, token) = (guard.job.clone(), guard.token.clone());
        let row = self
            .with_client("renewing a lease", move |c| {
                Box::pin(async move {
                    c.query_opt(&sql, &[&job, &token, &ttl])
                        .await
                        .map_err(unavailable("renewing a lease"))
                })
            })
            .await?;
        match row {
            Some(r) => Ok(LeaseGuard {
                expires_unix_ms: r.get(0),
                ..guard.clone()
            }),
            None => Err(LeaseError::Lost {
                job: guard.job.clone(),
                epoch: guard.epoch,
                reason: "expired or taken by another worker".into(),
            }),
        }
    }

    async fn release(&self, guard: &LeaseGuard) -> Result<(), LeaseError> {
        let sql = format!(
            "UPDATE {t} SET expires_at = '-infinity' WHERE job_id = $1 AND token = $2",
            t = self.leases()
        );
        let (job, token) = (guard.job.clone(), guard.token.clone());
        self.with_client("releasing a lease", move |c| {
            Box::pin(async move {
                c.execute(&sql, &[&job, &token])
                    .await
                    .map(|_| ())
                    .map_err(unavailable("releasing a lease"))
            })
        })
        .await
    }

    async fn heartbeat(&self, worker: &str) -> Result<(), LeaseError> {
        let sql = format!(
            "INSERT INTO {t} (worker_id, expires_at)
             VALUES ($1, now() + $2::bigint * interval '1 millisecond')
             ON CONFLICT (worker_id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            t = self.workers()
        );
        let ttl = self.ttl_ms();
        let worker = worker.to_owned();
        self.with_client("announcing the worker", move |c| {
            Box::pin(async move {
                c.execute(&sql, &[&worker, &ttl])
                    .await
                    .map(|_| ())
                    .map_err(unavailable("announcing the worker"))
            })
        })
        .await
    }

    async fn leave(&self, worker: &str) -> Result<(), LeaseError> {
        let sql = format!("DELETE FROM {t} WHERE worker_id = $1", t = self.workers());
        let worker = worker.to_owned();
        self.with_client("removing the worker", move |c| {
            Box::pin(async move {
                c.execute(&sql, &[&worker])
                    .await
                    .map(|_| ())
                    .map_err(unavailable("removing the worker"))
            })
        })
        .await
    }

    async fn view(&self, jobs: &[String]) -> Result<FleetView, LeaseError> {
        let workers_sql = format!(
            "SELECT worker_id FROM {t} WHERE expires_at > now() ORDER BY worker_id",
            t = self.workers()
        );
        let leases_sql = format!(
            "SELECT job_id, holder FROM {t} WHERE expires_at > now() AND job_id = ANY($1)
             ORDER BY job_id",
            t = self.leases()
        );
        let jobs = jobs.to_vec();
        self.with_client("reading the leases", move |c| {
            Box::pin(async move {
                let w = c
                    .query(&workers_sql, &[])
                    .await
                    .map_err(unavailable("reading the workers"))?;
                let l = c
                    .query(&leases_sql, &[&jobs])
                    .await
                    .map_err(unavailable("reading the leases"))?;
                Ok(FleetView {
                    live_workers: w.iter().map(|r| r.get(0)).collect(),
                    holders: l.iter().map(|r| (r.get(0), r.get(1))).collect(),
                })
            })
        })
        .await
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}

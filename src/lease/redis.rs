//! Leases in Redis: one key per job, written only by Lua scripts that read the
//! server's own clock (`TIME`), so each step is atomic and worker clocks do not
//! matter.
//!
//! ```text
//! dbmazz:lease:<job>   "<epoch>:<token>:<holder>"  PX ttl   (SET NX PX to acquire)
//! dbmazz:epoch:<job>   counter (INCR)                       — epochs only grow
//! dbmazz:boot          server time when this Redis first ran a dbmazz script
//! dbmazz:workers       sorted set worker → presence expiry (ms)
//! ```
//!
//! Redis without persistence loses every key on a restart. Two rules keep that
//! harmless:
//! - **Epochs**: the acquirer passes a floor (the epoch in the job's checkpoint row,
//!   which survives in PostgreSQL); the epoch is `max(INCR, floor + 1)`.
//! - **Warm-up**: a missing `dbmazz:boot` means the data is new (first use or a
//!   restart). For one TTL after that, nobody acquires a lease, and a holder whose
//!   key vanished may re-claim it with its own value on renewal. A holder that was
//!   alive before the restart therefore keeps its job, and a dead one's job is free
//!   one TTL later — never two holders at once.
//!
//! The scripts touch several keys, so the keys must live on one node (plain Redis
//! or Sentinel; not Redis Cluster).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Script;
use tokio::sync::Mutex;

use super::{FleetView, Lease, LeaseError, LeaseGuard};
use crate::config::Secret;

const BACKEND: &str = "redis";

const NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function booted(key, ttl)
  local boot = tonumber(redis.call('GET', key) or '')
  if not boot then
    redis.call('SET', key, now)
    boot = now
  end
  return now - boot >= ttl
end
";

/// KEYS: lease, epoch counter, boot. ARGV: token, holder, ttl ms, floor.
/// Returns {epoch, expiry ms}, {0, 0} when held, {-1, ms left} during warm-up.
const ACQUIRE: &str = "
local ttl = tonumber(ARGV[3])
if not booted(KEYS[3], ttl) then
  return {-1, tonumber(redis.call('GET', KEYS[3])) + ttl - now}
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
if e <= floor then
  e = floor + 1
  redis.call('SET', KEYS[2], e)
end
if not redis.call('SET', KEYS[1], e .. ':' .. ARGV[1] .. ':' .. ARGV[2], 'NX', 'PX', ttl) then
  return {0, 0}
end
return {e, now + ttl}
";

/// KEYS: lease, epoch counter, boot. ARGV: value, ttl ms, epoch.
/// Returns the new expiry (ms), -1 when another value holds the key, -2 when it
/// expired.
const RENEW: &str = "
local ttl = tonumber(ARGV[2])
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return now + ttl
end
if v then return -1 end
if booted(KEYS[3], ttl) then return -2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
local c = tonumber(redis.call('GET', KEYS[2]) or '') or 0
if c < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
return now + ttl
";

/// KEYS: lease. ARGV: value. Returns 1 when released.
const RELEASE: &str = "
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// KEYS: workers. ARGV: worker, ttl ms.
const HEARTBEAT: &str = "
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
";

/// KEYS: workers, lease keys… Returns {n, worker × n, value-or-'' per lease key}.
const VIEW: &str = "
local w = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local out = {tostring(#w)}
for _, x in ipairs(w) do table.insert(out, x) end
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  table.insert(out, v or '')
end
return out
";

/// Lease backend on a Redis server.
pub struct RedisLease {
    client: redis::Client,
    ttl: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
    acquire: Script,
    renew: Script,
    release: Script,
    heartbeat: Script,
    view: Script,
}

impl std::fmt::Debug for RedisLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLease")
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> LeaseError {
    LeaseError::Unavailable {
        backend: BACKEND,
        detail: format!("{context}: {e}"),
    }
}

fn lease_key(job: &str) -> String {
    format!("dbmazz:lease:{job}")
}

fn epoch_key(job: &str) -> String {
    format!("dbmazz:epoch:{job}")
}

const BOOT_KEY: &str = "dbmazz:boot";
const WORKERS_KEY: &str = "dbmazz:workers";

fn value_of(g: &LeaseGuard) -> String {
    format!("{}:{}:{}", g.epoch, g.token, g.holder)
}

/// `(epoch, token, holder)` of a stored lease value.
fn parse_value(v: &str) -> Option<(i64, &str, &str)> {
    let mut it = v.splitn(3, ':');
    let epoch = it.next()?.parse().ok()?;
    Some((epoch, it.next()?, it.next()?))
}

impl RedisLease {
    /// A backend on `url` (`redis://host:port/db`). Connects lazily and again after a
    /// lost connection.
    pub fn new(url: &Secret, ttl: Duration) -> Result<Self, LeaseError> {
        let url = url.expose();
        if url.starts_with("rediss://") {
            return Err(LeaseError::Unavailable {
                backend: BACKEND,
                detail: "TLS (`rediss://`) is not supported by this build; use `redis://` on a \
                         private network or a TLS tunnel"
                    .into(),
            });
        }
        let client = redis::Client::open(url).map_err(|e| unavailable("DBMAZZ_LEASE_URL", e))?;
        let script = |body: &str| Script::new(&format!("{NOW}{body}"));
        Ok(RedisLease {
            client,
            ttl,
            conn: Mutex::new(None),
            acquire: script(ACQUIRE),
            renew: script(RENEW),
            release: script(RELEASE),
            heartbeat: script(HEARTBEAT),
            view: script(VIEW),
        })
    }

    fn limit(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(200))
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    async fn conn(&self, what: &str) -> Result<MultiplexedConnection, LeaseError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.limit(), self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| unavailable(what, "connecting timed out"))?
            .map_err(|e| unavailable(what, e))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs a script invocation with a time limit; forgets the connection after an
    /// error so the next call reconnects.
    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, LeaseError> {
        let mut c = self.conn(what).await?;
        let r = match tokio::time::timeout(self.limit(), inv.invoke_async::<T>(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(what, e)),
            Err(_) => Err(unavailable(what, "no answer in time")),
        };
        if r.is_err() {
            *self.conn.lock().await = None;
        }
        r
    }
}

impl Lease for RedisLease {
    async fn try_acquire(
        &self,
        job: &str,
        holder: &str,
        floor: i64,
    ) -> Result<Option<LeaseGuard>, LeaseError> {
        let token = super::new_token();
        let mut inv = self.acquire.prepare_invoke();
        inv.key(lease_key(job))
            .key(epoch_key(job))
            .key(BOOT_KEY)
            .arg(&token)
            .arg(holder)
            .arg(self.ttl_ms())
            .arg(floor.max(0));
        let r: Vec<i64> = self.run("acquiring a lease", inv).await?;
        match r.as_slice() {
            [epoch, expires] if *epoch > 0 => Ok(Some(LeaseGuard {
                job: job.to_owned(),
                holder: holder.to_owned(),
                token,
                epoch: *epoch,
                expires_unix_ms: *expires,
            })),
            [_, _] => Ok(None),
            other => Err(LeaseError::Corrupt {
                backend: BACKEND,
                job: job.to_owned(),
                detail: format!("acquire script answered {other:?}"),
            }),
        }
    }

    async fn renew(&self, guard: &LeaseGuard) -> Result<LeaseGuard, LeaseError> {
        let mut inv = self.renew.prepare_invoke();
        inv.key(lease_key(&guard.job))
            .key(epoch_key(&guard.job))
            .key(BOOT_KEY)
            .arg(value_of(guard))
            .arg(self.ttl_ms())
            .arg(guard.epoch);
        let r: i64 = self.run("renewing a lease", inv).await?;
        let reason = match r {
            -1 => "taken by another worker",
            -2 => "expired",
            ms => {
                return Ok(LeaseGuard {
                    expires_unix_ms: ms,
                    ..guard.clone()
                })
            }
        };
        Err(LeaseError::Lost {
            job: guard.job.clone(),
            epoch: guard.epoch,
            reason: reason.into(),
        })
    }

    async fn release(&self, guard: &LeaseGuard) -> Result<(), LeaseError> {
        let mut inv = self.release.prepare_invoke();
        inv.key(lease_key(&guard.job)).arg(value_of(guard));
        let _: i64 = self.run("releasing a lease", inv).await?;
        Ok(())
    }

    async fn heartbeat(&self, worker: &str) -> Result<(), LeaseError> {
        let mut inv = self.heartbeat.prepare_invoke();
        inv.key(WORKERS_KEY).arg(worker).arg(self.ttl_ms());
        let _: i64 = self.run("announcing the worker", inv).await?;
        Ok(())
    }

    async fn leave(&self, worker: &str) -> Result<(), LeaseError> {
        let mut c = self.conn("removing the worker").await?;
        let r = tokio::time::timeout(
            self.limit(),
            redis::cmd("ZREM")
                .arg(WORKERS_KEY)
                .arg(worker)
                .query_async::<i64>(&mut c),
        )
        .await;
        match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable("removing the worker", e)),
            Err(_) => Err(unavailable("removing the worker", "no answer in time")),
        }
    }

    async fn view(&self, jobs: &[String]) -> Result<FleetView, LeaseError> {
        let mut inv = self.view.prepare_invoke();
        inv.key(WORKERS_KEY);
        for j in jobs {
            inv.key(lease_key(j));
        }
        let out: Vec<String> = self.run("reading the leases", inv).await?;
        let corrupt = |detail: String| LeaseError::Corrupt {
            backend: BACKEND,
            job: String::new(),
            detail,
        };
        let n: usize = out
            .first()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(format!("view script answered {out:?}")))?;
        let workers = out
            .get(1..1 + n)
            .ok_or_else(|| corrupt(format!("view script answered {out:?}")))?;
        let values = out.get(1 + n..).unwrap_or_default();
        let mut holders = Vec::new();
        for (job, v) in jobs.iter().zip(values) {
            if v.is_empty() {
                continue;
            }
            let (_, _, holder) = parse_value(v).ok_or_else(|| LeaseError::Corrupt {
                backend: BACKEND,
                job: job.clone(),
                detail: format!("lease value {v:?} is not `epoch:token:holder`"),
            })?;
            holders.push((job.clone(), holder.to_owned()));
        }
        Ok(FleetView {
            live_workers: workers.to_vec(),
            holders,
        })
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let g = LeaseGuard {
            job: "j".into(),
            holder: "w-1.a_b".into(),
            token: "00ff".into(),
            epoch: 42,
            expires_unix_ms: 0,
        };
        let v = value_of(&g);
        assert_eq!(parse_value(&v), Some((42, "00ff", "w-1.a_b")));
        assert_eq!(parse_value("x:y:z"), None);
        assert_eq!(parse_value("7:only"), None);
    }
}

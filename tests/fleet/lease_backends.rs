//! Both lease backends against real servers: mutual exclusion among many racing
//! acquirers, renewal, expiry, release, the fleet view, and (Redis) epochs that keep
//! growing and holders that keep their jobs across a restart that loses every key.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use dbmazz::lease::{Lease, LeaseError, LeaseGuard, PgLease, RedisLease};
use dbmazz_testkit::{PgCluster, RedisServer};

const TTL: Duration = Duration::from_millis(1000);

async fn acquire<L: Lease>(l: &L, job: &str, who: &str) -> Option<LeaseGuard> {
    l.try_acquire(job, who, 0).await.expect("backend answers")
}

/// Waits out the Redis warm-up (one TTL after first use); a no-op for PostgreSQL.
async fn until_acquired<L: Lease>(l: &L, job: &str, who: &str) -> LeaseGuard {
    for _ in 0..100 {
        if let Some(g) = acquire(l, job, who).await {
            return g;
        }
        tokio::time::sleep(TTL / 10).await;
    }
    panic!("{who} never acquired {job}");
}

/// Many tasks race for one job, round after round: exactly one wins each round, and
/// the winners' epochs strictly increase.
async fn racing_acquirers<L: Lease>(lease: Arc<L>) {
    let first = until_acquired(&*lease, "race", "warmup").await;
    lease.release(&first).await.expect("release");
    let mut last_epoch = first.epoch;
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let l = lease.clone();
            tasks.push(tokio::spawn(async move {
                l.try_acquire("race", &format!("w{i}"), 0)
                    .await
                    .expect("backend answers")
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(g) = t.await.expect("task") {
                winners.push(g);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let g = winners.remove(0);
        assert!(g.epoch > last_epoch, "epoch {} after {last_epoch}", g.epoch);
        last_epoch = g.epoch;
        let view = lease.view(&["race".to_owned()]).await.expect("view");
        assert_eq!(view.holder_of("race"), Some(g.holder.as_str()));
        lease.release(&g).await.expect("release");
        let view = lease.view(&["race".to_owned()]).await.expect("view");
        assert_eq!(view.holder_of("race"), None, "released");
    }
}

/// Renewal keeps the lease past its first TTL; without renewal it expires, the next
/// holder gets a larger epoch, and the old guard can neither renew nor release it.
async fn renew_expire_release<L: Lease>(lease: Arc<L>) {
    let a = until_acquired(&*lease, "job", "a").await;
    assert!(acquire(&*lease, "job", "b").await.is_none(), "held by a");
    // Renew across more than two TTLs: b never gets it.
    let mut g = a.clone();
    for _ in 0..8 {
        tokio::time::sleep(TTL / 3).await;
        g = lease.renew(&g).await.expect("renew");
        assert!(
            acquire(&*lease, "job", "b").await.is_none(),
            "renewed lease taken"
        );
    }
    assert!(g.expires_unix_ms >= a.expires_unix_ms);
    // Stop renewing: it expires and b takes it with a larger epoch.
    tokio::time::sleep(TTL + TTL / 2).await;
    let b = acquire(&*lease, "job", "b")
        .await
        .expect("expired lease is free");
    assert!(b.epoch > a.epoch);
    match lease.renew(&g).await {
        Err(LeaseError::Lost { .. }) => {}
        other => panic!("renewal of an expired lease: {other:?}"),
    }
    // The old guard's release does not touch b's lease.
    lease.release(&g).await.expect("release");
    let view = lease.view(&["job".to_owned()]).await.expect("view");
    assert_eq!(view.holder_of("job"), Some("b"));
    // b releases: free at once (no TTL wait), and the epoch keeps growing.
    lease.release(&b).await.expect("release");
    let c = acquire(&*lease, "job", "c")
        .await
        .expect("released lease is free");
    assert!(c.epoch > b.epoch);
    // A floor above the current epoch lifts the next one.
    lease.release(&c).await.expect("release");
    let d = lease
        .try_acquire("job", "d", c.epoch + 100)
        .await
        .expect("backend")
        .expect("free");
    assert_eq!(d.epoch, c.epoch + 101);
}

/// Heartbeats make workers visible for one TTL; leaving removes them at once.
async fn presence<L: Lease>(lease: Arc<L>) {
    lease.heartbeat("w1").await.expect("heartbeat");
    lease.heartbeat("w2").await.expect("heartbeat");
    let v = lease.view(&[]).await.expect("view");
    let live: BTreeSet<_> = v.live_workers.iter().cloned().collect();
    assert!(live.contains("w1") && live.contains("w2"), "{v:?}");
    lease.leave("w1").await.expect("leave");
    let v = lease.view(&[]).await.expect("view");
    assert!(!v.live_workers.contains(&"w1".to_owned()), "{v:?}");
    tokio::time::sleep(TTL + TTL / 2).await;
    let v = lease.view(&[]).await.expect("view");
    assert!(!v.live_workers.contains(&"w2".to_owned()), "expired: {v:?}");
}

fn pg_lease(pg: &PgCluster) -> Arc<PgLease> {
    Arc::new(PgLease::new(&pg.url("postgres").into(), "dbmazz", TTL))
}

fn redis_lease(r: &RedisServer) -> Arc<RedisLease> {
    Arc::new(RedisLease::new(&r.url().into(), TTL).expect("redis lease"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_racing_acquirers_get_one_lease_with_growing_epochs() {
    let pg = PgCluster::start().expect("postgres");
    racing_acquirers(pg_lease(&pg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_racing_acquirers_get_one_lease_with_growing_epochs() {
    let r = RedisServer::start().expect("redis");
    racing_acquirers(redis_lease(&r)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_renews_expires_and_releases() {
    let pg = PgCluster::start().expect("postgres");
    renew_expire_release(pg_lease(&pg)).await;
    presence(pg_lease(&pg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lease_renews_expires_and_releases() {
    let r = RedisServer::start().expect("redis");
    renew_expire_release(redis_lease(&r)).await;
    presence(redis_lease(&r)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_survives_a_database_restart() {
    let mut pg = PgCluster::start().expect("postgres");
    let lease = pg_lease(&pg);
    let a = until_acquired(&*lease, "job", "a").await;
    pg.restart(dbmazz_testkit::StopMode::Fast)
        .expect("restart postgres");
    // The connection was lost; the backend reconnects and the row is durable.
    let mut renewed = None;
    for _ in 0..20 {
        match lease.renew(&a).await {
            Ok(g) => {
                renewed = Some(g);
                break;
            }
            Err(LeaseError::Unavailable { .. }) => tokio::time::sleep(TTL / 20).await,
            Err(e) => panic!("renewal after restart: {e}"),
        }
    }
    let g = renewed.expect("renewed after the restart");
    assert_eq!(g.epoch, a.epoch);
    assert!(acquire(&*lease, "job", "b").await.is_none());
}

/// A restart of a Redis without persistence loses every key. The holder that was
/// alive re-claims its lease with its next renewal, nobody else acquires during the
/// warm-up, and the epoch counter, though lost, never goes back: acquirers pass the
/// epoch of the checkpoint row as a floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_keeps_the_holder_and_epochs_only_grow() {
    let mut r = RedisServer::start().expect("redis");
    let lease = redis_lease(&r);
    let a = until_acquired(&*lease, "job", "a").await;
    lease.release(&a).await.expect("release");
    let a = acquire(&*lease, "job", "a").await.expect("free");
    assert!(a.epoch >= 2);
    r.restart().expect("restart redis");

    // Right after the restart: b cannot take the (lost) lease; a re-claims it.
    let mut b_got = None;
    for _ in 0..5 {
        match lease.try_acquire("job", "b", 0).await {
            Ok(g) => {
                b_got = g;
                break;
            }
            Err(LeaseError::Unavailable { .. }) => tokio::time::sleep(TTL / 20).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(b_got.is_none(), "acquired during the warm-up: {b_got:?}");
    let a2 = lease.renew(&a).await.expect("holder re-claims its lease");
    assert_eq!(a2.epoch, a.epoch);
    // After the warm-up the lease is still a's, renewed as usual.
    tokio::time::sleep(TTL / 2).await;
    let a3 = lease.renew(&a2).await.expect("renew");
    tokio::time::sleep(TTL / 2).await;
    let a4 = lease.renew(&a3).await.expect("renew");
    assert!(acquire(&*lease, "job", "b").await.is_none(), "still a's");
    lease.release(&a4).await.expect("release");
    // The re-claim restored the counter: the next epoch is above a's even without a
    // floor.
    let b = acquire(&*lease, "job", "b")
        .await
        .expect("free after release");
    assert!(b.epoch > a.epoch, "epoch {} after {}", b.epoch, a.epoch);

    // A holder that died before the restart: its lease is simply gone, the counter
    // too; the floor (the checkpoint row's epoch) keeps the epoch growing.
    r.restart().expect("restart redis");
    let lease = redis_lease(&r);
    let mut c = None;
    for _ in 0..100 {
        match lease.try_acquire("job", "c", b.epoch).await {
            Ok(Some(g)) => {
                c = Some(g);
                break;
            }
            Ok(None) | Err(LeaseError::Unavailable { .. }) => tokio::time::sleep(TTL / 10).await,
            Err(e) => panic!("{e}"),
        }
    }
    let c = c.expect("free one TTL after the restart");
    assert!(c.epoch > b.epoch, "epoch {} after {}", c.epoch, b.epoch);
    match lease.renew(&b).await {
        Err(LeaseError::Lost { .. }) => {}
        other => panic!("dead holder's renewal: {other:?}"),
    }
}

/// The checkpoint row is the fencing point: once a new holder claims it with its
/// epoch, writes of older epochs fail and the row is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_claim_fences_older_epochs() {
    use dbmazz::lsn::Lsn;
    use dbmazz::state_store::{StateStore, StateStoreError};
    let pg = PgCluster::start().expect("postgres");
    let store = StateStore::connect(&pg.url("postgres").into(), "dbmazz")
        .await
        .expect("store");
    assert_eq!(store.claim("j", 1).await.expect("no row yet"), None);
    store.commit("j", "s", Lsn(100), 1).await.expect("epoch 1");
    assert_eq!(store.claim("j", 3).await.expect("claim"), Some(1));
    match store.commit("j", "s", Lsn(200), 1).await {
        Err(StateStoreError::Fenced {
            current_epoch: 3,
            our_epoch: 1,
            ..
        }) => {}
        other => panic!("stale write: {other:?}"),
    }
    let cp = store.load("j").await.expect("load").expect("row");
    assert_eq!(
        (cp.lsn, cp.epoch),
        (Lsn(100), 3),
        "unchanged by the stale write"
    );
    match store.claim("j", 2).await {
        Err(StateStoreError::Fenced {
            current_epoch: 3, ..
        }) => {}
        other => panic!("stale claim: {other:?}"),
    }
    let proof = store.commit("j", "s", Lsn(300), 3).await.expect("holder");
    assert_eq!(proof.lsn(), Lsn(300));
    assert_eq!(store.claim("j", 3).await.expect("same epoch"), Some(3));
}

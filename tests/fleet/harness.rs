//! A fleet of real `dbmazz run` processes sharing a jobs file and a lease backend
//! (PostgreSQL or Redis), under a continuous write load, with the observations the
//! failover and soak tests assert on:
//!
//! - a holder watch polls every worker's gRPC status and the checkpoint rows and
//!   records any moment two workers acted as holders of one job (a worker reporting
//!   an epoch older than one already seen active in an earlier poll round, or two
//!   workers with one epoch), any checkpoint epoch or LSN going backwards, and any
//!   slot confirmed beyond its checkpoint;
//! - takeover times: from a fault to another worker streaming the job (stage CDC,
//!   holding its lease);
//! - the oracle: after the load stops, every source table equals its sink table
//!   row by row, the emulator's audit saw no version regression, and the chaos
//!   harness's history (every sink write, per key) never saw `seq` or
//!   `dbmazz_cdc_version` go back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbmazz::grpc::pb;
use dbmazz::grpc::pb::status_service_client::StatusServiceClient;
use dbmazz_testkit::chaos::History;
use dbmazz_testkit::{dbmazz_bin, set_var, DbmazzProcess, PgCluster, RedisServer, Stack};
use tokio_util::sync::CancellationToken;

/// Lease TTL used by the fleet tests.
pub const TTL_MS: u64 = 2000;

/// Which lease backend coordinates the fleet.
pub enum Coordinator {
    /// A PostgreSQL cluster of its own (not the source), holding `dbmazz_leases`.
    Postgres(PgCluster),
    /// A Redis server without persistence.
    Redis(RedisServer),
}

impl Coordinator {
    /// Starts a coordinator of the named kind.
    pub fn start(redis: bool) -> Coordinator {
        if redis {
            Coordinator::Redis(RedisServer::start().expect("redis"))
        } else {
            Coordinator::Postgres(PgCluster::start().expect("lease postgres"))
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Coordinator::Postgres(pg) => vec![
                ("DBMAZZ_LEASE_BACKEND".into(), "postgres".into()),
                ("DBMAZZ_LEASE_URL".into(), pg.url("postgres")),
            ],
            Coordinator::Redis(r) => vec![
                ("DBMAZZ_LEASE_BACKEND".into(), "redis".into()),
                ("DBMAZZ_LEASE_URL".into(), r.url()),
            ],
        }
    }

    /// Stops and starts the coordinator (a Redis restart loses every key).
    pub fn restart(&mut self) {
        match self {
            Coordinator::Postgres(pg) => pg
                .restart(dbmazz_testkit::StopMode::Fast)
                .expect("restart lease postgres"),
            Coordinator::Redis(r) => r.restart().expect("restart redis"),
        }
    }
}

/// One worker process.
pub struct Worker {
    pub id: String,
    pub proc: DbmazzProcess,
    pub status: StatusServiceClient<tonic::transport::Channel>,
}

/// What one worker reported for one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub worker: String,
    pub job: String,
    pub stage: i32,
    pub holder: String,
    pub epoch: i64,
    pub expires_unix_ms: i64,
}

/// The fleet under test.
pub struct Fleet {
    pub stack: Stack,
    pub coord: Coordinator,
    pub jobs: Vec<String>,
    pub workers: Vec<Worker>,
    next_worker: usize,
    jobs_file: tempfile::NamedTempFile,
    pub watch: HolderWatch,
    writer: Option<Writer>,
}

fn table(job: &str) -> String {
    format!("{job}_t")
}

impl Fleet {
    /// Source, sink, emulator, coordinator, `jobs` jobs (one table each), and
    /// `workers` worker processes; waits until every job streams.
    pub async fn start(redis: bool, jobs: usize, workers: usize) -> Fleet {
        let stack = Stack::start().await.expect("start the stack");
        let coord = Coordinator::start(redis);
        let ids: Vec<String> = (1..=jobs).map(|i| format!("job{i}")).collect();
        let mut toml = String::new();
        for j in &ids {
            let t = table(j);
            stack
                .source_sql(&format!(
                    "CREATE TABLE {t} (id int PRIMARY KEY, seq bigint NOT NULL, v text)"
                ))
                .await;
            stack
                .sink_sql(&format!(
                    "CREATE TABLE {t} (id INT PRIMARY KEY, seq BIGINT NOT NULL, v LONGTEXT)"
                ))
                .await;
            toml.push_str(&format!(
                "[[jobs]]\nid = \"{j}\"\nslot_name = \"{j}_slot\"\npublication_name = \"{j}_pub\"\ntables = [\"public.{t}\"]\n\n"
            ));
        }
        let jobs_file = tempfile::NamedTempFile::new().expect("jobs file");
        std::fs::write(jobs_file.path(), toml).expect("write jobs file");
        let watch = HolderWatch::new(stack.source_conn(), ids.clone());
        let mut fleet = Fleet {
            stack,
            coord,
            jobs: ids,
            workers: Vec::new(),
            next_worker: 0,
            jobs_file,
            watch,
            writer: None,
        };
        for _ in 0..workers {
            fleet.spawn_worker();
        }
        let jobs = fleet.jobs.clone();
        for j in &jobs {
            fleet
                .wait_streaming(j, None, Duration::from_secs(120))
                .await;
        }
        for j in &jobs {
            fleet.stack.audit(&table(j)).await;
        }
        let keyed: Vec<(String, Vec<&str>)> = jobs.iter().map(|j| (table(j), vec!["id"])).collect();
        History::install(&fleet.stack.sink, fleet.stack.sink_db(), &keyed)
            .await
            .expect("install the chaos history");
        fleet.watch.start(&fleet.workers);
        fleet
    }

    /// The environment of one worker.
    fn env(&self, id: &str, port: u16) -> Vec<(String, String)> {
        let mut env = self.stack.worker_env();
        set_var(&mut env, "DBMAZZ_GRPC_ADDR", &format!("127.0.0.1:{port}"));
        set_var(&mut env, "DBMAZZ_WORKER_ID", id);
        set_var(&mut env, "DBMAZZ_LEASE_TTL_MS", &TTL_MS.to_string());
        set_var(
            &mut env,
            "DBMAZZ_JOBS_FILE",
            &self.jobs_file.path().display().to_string(),
        );
        env.extend(self.coord.env());
        env
    }

    /// Starts one more worker process.
    pub fn spawn_worker(&mut self) -> usize {
        self.next_worker += 1;
        let id = format!("w{}", self.next_worker);
        let port = dbmazz_testkit::free_port();
        let proc = DbmazzProcess::spawn(dbmazz_bin!(), &["run"], &self.env(&id, port))
            .expect("spawn dbmazz");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_millis(500))
            .connect_lazy();
        self.workers.push(Worker {
            id,
            proc,
            status: StatusServiceClient::new(channel),
        });
        self.watch.set_workers(&self.workers);
        self.workers.len() - 1
    }

    /// The worker index that streams `job` as its lease holder, if any.
    pub async fn holder_of(&self, job: &str) -> Option<(usize, i64)> {
        for (i, w) in self.workers.iter().enumerate() {
            for r in poll_worker(w.id.clone(), w.status.clone()).await {
                if r.worker == w.id
                    && r.holder == w.id
                    && r.stage == pb::Stage::Cdc as i32
                    && r.job == job
                {
                    // Status shows the lease's expiry by the backend's clock.
                    assert!(r.expires_unix_ms > 0, "{r:?}");
                    return Some((i, r.epoch));
                }
            }
        }
        None
    }

    /// Waits until some worker other than `not` streams `job`; returns it, its
    /// epoch and the time waited.
    pub async fn wait_streaming(
        &self,
        job: &str,
        not: Option<usize>,
        timeout: Duration,
    ) -> (usize, i64, Duration) {
        let start = Instant::now();
        loop {
            if let Some((i, e)) = self.holder_of(job).await {
                if Some(i) != not {
                    return (i, e, start.elapsed());
                }
            }
            if start.elapsed() > timeout {
                let logs: String = self
                    .workers
                    .iter()
                    .map(|w| format!("--- {} ---\n{}\n", w.id, w.proc.log()))
                    .collect();
                let maria_up = dbmazz_testkit::process::port_open(self.stack.maria.port());
                panic!(
                    "nobody streams {job} after {timeout:?} (sink MariaDB reachable: {maria_up})\n{logs}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A job held by some live worker and that worker's index.
    pub async fn some_holder(&self) -> (String, usize, i64) {
        for j in &self.jobs {
            if let Some((i, e)) = self.holder_of(j).await {
                return (j.clone(), i, e);
            }
        }
        panic!("no job is held");
    }

    /// The jobs worker `i` streams.
    pub async fn jobs_of(&self, i: usize) -> Vec<String> {
        let w = &self.workers[i];
        poll_worker(w.id.clone(), w.status.clone())
            .await
            .into_iter()
            .filter(|r| r.holder == w.id && r.stage == pb::Stage::Cdc as i32)
            .map(|r| r.job)
            .collect()
    }

    /// Starts the continuous writer on every job's table.
    pub fn start_load(&mut self) {
        self.writer = Some(Writer::start(
            self.stack.source_conn(),
            self.jobs.iter().map(|j| table(j)).collect(),
        ));
    }

    /// Stops the writer; returns the number of transactions written.
    pub async fn stop_load(&mut self) -> u64 {
        match self.writer.take() {
            Some(w) => w.stop().await,
            None => 0,
        }
    }

    /// Source == sink for every table (waits for catch-up), no version regressions,
    /// no violation seen by the holder watch. Returns the rows compared.
    pub async fn verify(&mut self) -> usize {
        let mut rows = 0;
        for j in self.jobs.clone() {
            let t = table(&j);
            self.stack
                .wait_equal(&t, &["id"], Duration::from_secs(120))
                .await;
            assert_eq!(
                self.stack.regressions(&t).await,
                0,
                "version regressions in {t}"
            );
            let c = self.stack.pg().await;
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await
                .expect("count")
                .get(0);
            rows += usize::try_from(n).unwrap_or(0);
        }
        let history = History::check(&self.stack.sink).await.expect("history");
        assert!(
            history.regressions.is_empty(),
            "seq/version went back: {:#?}",
            history.regressions
        );
        assert!(history.writes > 0, "the history recorded nothing");
        let v = self.watch.violations();
        assert!(v.is_empty(), "holder/checkpoint violations: {v:#?}");
        rows
    }
}

/// Polls one worker's `ListPipelines` (empty when it does not answer).
async fn poll_worker(
    worker: String,
    mut client: StatusServiceClient<tonic::transport::Channel>,
) -> Vec<Report> {
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        client.list_pipelines(pb::ListPipelinesRequest {}),
    )
    .await;
    let Ok(Ok(resp)) = r else { return Vec::new() };
    resp.into_inner()
        .pipelines
        .into_iter()
        .map(|p| Report {
            worker: worker.clone(),
            stage: p.stage,
            holder: p.lease_holder,
            epoch: p.lease_epoch,
            expires_unix_ms: p.lease_expires_unix_ms,
            job: p.job_id,
        })
        .collect()
}

/// Continuous writes: inserts, updates (each bumps `seq`) and deletes of random
/// keys, in small transactions, on every table.
struct Writer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl Writer {
    fn start(conn: String, tables: Vec<String>) -> Writer {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut txns = 0u64;
            let mut seq = 0i64;
            let mut client = None;
            while !s.is_cancelled() {
                if client.is_none() {
                    match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
                        Ok((c, conn)) => {
                            tokio::spawn(conn);
                            client = Some(c);
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = client.as_ref() else { continue };
                let mut sql = String::from("BEGIN;");
                for _ in 0..rand::random_range(1..6) {
                    let t = &tables[rand::random_range(0..tables.len())];
                    let id = rand::random_range(1..400);
                    if rand::random_range(0..10) == 0 {
                        sql.push_str(&format!("DELETE FROM {t} WHERE id = {id};"));
                    } else {
                        // `seq` grows with every write of the single writer, so
                        // per key it grows in commit order, also across a delete
                        // and re-insert (the chaos history checks it never goes
                        // back in the sink).
                        seq += 1;
                        sql.push_str(&format!(
                            "INSERT INTO {t} VALUES ({id}, {seq}, 'v{txns}') ON CONFLICT (id) DO UPDATE \
                             SET seq = EXCLUDED.seq, v = EXCLUDED.v;"
                        ));
                    }
                }
                sql.push_str("COMMIT;");
                match c.batch_execute(&sql).await {
                    Ok(()) => txns += 1,
                    Err(_) => client = None,
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            txns
        });
        Writer { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

type StatusClient = StatusServiceClient<tonic::transport::Channel>;

/// Watches holders and checkpoints in the background (see the module docs).
pub struct HolderWatch {
    conn: String,
    jobs: Vec<String>,
    workers: Arc<Mutex<Vec<(String, StatusClient)>>>,
    violations: Arc<Mutex<Vec<String>>>,
    rounds: Arc<AtomicU64>,
    stop: CancellationToken,
    started: AtomicBool,
}

impl HolderWatch {
    fn new(conn: String, jobs: Vec<String>) -> Self {
        HolderWatch {
            conn,
            jobs,
            workers: Arc::new(Mutex::new(Vec::new())),
            violations: Arc::new(Mutex::new(Vec::new())),
            rounds: Arc::new(AtomicU64::new(0)),
            stop: CancellationToken::new(),
            started: AtomicBool::new(false),
        }
    }

    fn set_workers(&self, workers: &[Worker]) {
        let mut w = self.workers.lock().expect("lock");
        *w = workers
            .iter()
            .map(|w| (w.id.clone(), w.status.clone()))
            .collect();
    }

    fn start(&self, workers: &[Worker]) {
        self.set_workers(workers);
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (conn, jobs) = (self.conn.clone(), self.jobs.clone());
        let (workers, violations, rounds, stop) = (
            self.workers.clone(),
            self.violations.clone(),
            self.rounds.clone(),
            self.stop.clone(),
        );
        tokio::spawn(async move {
            let mut max_active: HashMap<String, i64> = HashMap::new();
            let mut last_cp: HashMap<String, (i64, u64)> = HashMap::new();
            let mut client = None;
            while !stop.is_cancelled() {
                let list = workers.lock().expect("lock").clone();
                let polls = list
                    .into_iter()
                    .map(|(id, c)| tokio::spawn(poll_worker(id, c)));
                let mut round: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
                for p in polls {
                    for r in p.await.unwrap_or_default() {
                        if r.holder == r.worker && r.stage == pb::Stage::Cdc as i32 {
                            round
                                .entry(r.job.clone())
                                .or_default()
                                .push((r.worker.clone(), r.epoch));
                        }
                    }
                }
                let mut v = Vec::new();
                for (job, active) in &round {
                    for (i, (w, e)) in active.iter().enumerate() {
                        if let Some(m) = max_active.get(job) {
                            if e < m {
                                v.push(format!(
                                    "{job}: {w} still streams with epoch {e} after epoch {m} was seen streaming"
                                ));
                            }
                        }
                        if active[..i].iter().any(|(_, e2)| e2 == e) {
                            v.push(format!("{job}: two workers stream with epoch {e}"));
                        }
                    }
                }
                for (job, active) in round {
                    if let Some(e) = active.iter().map(|(_, e)| *e).max() {
                        let m = max_active.entry(job).or_insert(e);
                        *m = (*m).max(e);
                    }
                }
                if client.is_none() {
                    if let Ok((c, conn)) =
                        tokio_postgres::connect(&conn, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        client = Some(c);
                    }
                }
                if let Some(c) = client.as_ref() {
                    match checkpoint_rows(c, &jobs).await {
                        Ok(rows) => {
                            for (job, epoch, lsn, confirmed) in rows {
                                if let Some((e0, l0)) = last_cp.get(&job) {
                                    if epoch < *e0 || lsn < *l0 {
                                        v.push(format!(
                                            "{job}: checkpoint went back from epoch {e0} lsn {l0:X} to epoch {epoch} lsn {lsn:X}"
                                        ));
                                    }
                                }
                                if confirmed > lsn {
                                    v.push(format!(
                                        "{job}: slot confirmed {confirmed:X} beyond checkpoint {lsn:X}"
                                    ));
                                }
                                last_cp.insert(job, (epoch, lsn));
                            }
                        }
                        Err(_) => client = None,
                    }
                }
                if !v.is_empty() {
                    violations.lock().expect("lock").extend(v);
                }
                rounds.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
    }

    /// Violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("lock").clone()
    }

    /// Poll rounds done so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }
}

impl Drop for HolderWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `(job, epoch, checkpoint lsn, slot confirmed lsn)`; the slot is read first, so a
/// confirmed LSN must already be recorded when it is visible.
async fn checkpoint_rows(
    c: &tokio_postgres::Client,
    jobs: &[String],
) -> Result<Vec<(String, i64, u64, u64)>, tokio_postgres::Error> {
    let slots: Vec<String> = jobs.iter().map(|j| format!("{j}_slot")).collect();
    let confirmed: HashMap<String, u64> = c
        .query(
            "SELECT slot_name::text, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = ANY($1)",
            &[&slots],
        )
        .await?
        .into_iter()
        .filter_map(|r| {
            let s: String = r.get(0);
            let l: Option<tokio_postgres::types::PgLsn> = r.get(1);
            l.map(|l| (s, u64::from(l)))
        })
        .collect();
    let rows = c
        .query(
            "SELECT job_id, epoch, lsn FROM dbmazz.dbmazz_checkpoints WHERE job_id = ANY($1)",
            &[&jobs],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let job: String = r.get(0);
            let lsn: tokio_postgres::types::PgLsn = r.get(2);
            let conf = confirmed.get(&format!("{job}_slot")).copied().unwrap_or(0);
            (job, r.get(1), u64::from(lsn), conf)
        })
        .collect())
}

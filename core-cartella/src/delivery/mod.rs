//! The delivery engine: runs every registered outbound adapter over core's outbox.
//!
//! For each adapter a loop plans jobs from the outbox, claims due jobs with a lease (see
//! `store::delivery` for how several workers share the work and keep order per subject),
//! processes each claimed job through the adapter (load, map, deliver) with bounded
//! concurrency, and records how it ended: delivered; due again after exponential backoff
//! with jitter (or the time the peer asked for, which also pauses the adapter's claims);
//! or a dead letter once a failure is permanent or attempts run out. The loop wakes on a
//! write in this process or every `poll` for writes of other processes, and stops on the
//! shutdown signal after the jobs in flight end (their leases bring back any that do not).
//! A second task checks each adapter's health, publishes queue gauges and purges old jobs.
pub mod metrics;
pub mod source;

use std::{future::Future, sync::Arc, time::Duration};

use adapter_contract::{Outcome, Runner};
use tokio::{sync::watch, task::JoinSet};

pub use metrics::{EngineMetrics, Phase};
pub use source::StoreSource;

use crate::{
    error::Result,
    store::{
        Store,
        delivery::{Finish, Job, now_ms},
    },
};

/// How the engine runs. Every field has a documented default ([`EngineConfig::default`]).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Outbox changes read per planning step.
    pub plan_batch: u32,
    /// Jobs claimed at once per adapter.
    pub claim_batch: u32,
    /// Jobs in flight at once per adapter (per worker).
    pub concurrency: usize,
    /// How long a claim holds a job; a worker that dies loses its jobs after this. Must
    /// exceed the longest delivery (adapters' own timeouts are shorter).
    pub lease: Duration,
    /// Wait between looks at the outbox when nothing was signalled in this process.
    pub poll: Duration,
    /// First retry delay; doubled per attempt up to `backoff_cap`, with jitter.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Attempts before a retried failure becomes a dead letter.
    pub max_attempts: u32,
    /// Between health checks, queue gauges and purges.
    pub housekeeping: Duration,
    /// Delivered and discarded jobs are deleted after this.
    pub retention: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            plan_batch: 500,
            claim_batch: 64,
            concurrency: 32,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
            max_attempts: 12,
            housekeeping: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Delay before attempt `attempts + 1` after `attempts` failed ones: base·2^(attempts−1)
/// capped, of which a random half is added to the other half ("equal jitter"), so
/// retries never come sooner than half the backoff and replicas do not retry in step.
pub fn backoff(cfg: &EngineConfig, attempts: u32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = cfg.backoff_base.saturating_mul(1u32 << exp).min(cfg.backoff_cap);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// What a job's outcome means for its row.
pub fn finish_of(cfg: &EngineConfig, job: &Job, keys: Vec<String>, outcome: &Outcome, jitter: f64, at_ms: i64) -> Finish {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match outcome {
        Outcome::Delivered => Finish::Delivered { keys },
        Outcome::Permanent(r) => Finish::Dead { code: r.code.clone(), message: r.message.clone(), keys },
        Outcome::Retry { reason, .. } if job.attempts >= i64::from(cfg.max_attempts) => Finish::Dead {
            code: reason.code.clone(),
            message: format!("gave up after {} attempts: {}", job.attempts, reason.message),
            keys,
        },
        Outcome::Retry { after, reason } => {
            let wait = after.unwrap_or_else(|| backoff(cfg, u32::try_from(job.attempts).unwrap_or(u32::MAX), jitter));
            Finish::Retry { due_at: at_ms.saturating_add(ms(wait)), code: reason.code.clone(), message: reason.message.clone(), keys }
        }
    }
}

/// The engine: a store, the registered adapters, and how to run them.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    adapters: Vec<Arc<dyn Runner>>,
    cfg: EngineConfig,
    metrics: Option<EngineMetrics>,
    /// This worker's claim token: unique per process start.
    claim: String,
    /// Jobs planned since the queue's statistics were last refreshed.
    planned: Arc<std::sync::atomic::AtomicUsize>,
}

/// Jobs planned after which the engine refreshes the queue table's planner statistics. The
/// queue grows from nothing to a backlog far faster than autovacuum analyzes it, and with
/// the statistics of an empty table PostgreSQL checks "no older open job of this subject" by
/// walking every open job instead of the subject's own: measured at 150 ms per claim on a
/// 17,000-job backlog, against 0.2 ms with fresh statistics.
const ANALYZE_EVERY: usize = 2000;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("adapters", &self.adapters.iter().map(|a| a.id()).collect::<Vec<_>>())
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// A job's result, back from its task.
#[derive(Clone)]
struct Done {
    job: Job,
    finish: Finish,
    outcome: &'static str,
    latency: Option<Duration>,
    pause: Option<Duration>,
}

impl Engine {
    pub fn new(store: Store, adapters: Vec<Arc<dyn Runner>>, cfg: EngineConfig, metrics: Option<EngineMetrics>) -> Self {
        Self { store, adapters, cfg, metrics, claim: format!("worker-{}", uuid::Uuid::new_v4()), planned: Arc::default() }
    }

    pub fn adapter_ids(&self) -> Vec<&'static str> {
        self.adapters.iter().map(|a| a.id()).collect()
    }

    /// Runs every adapter until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for a in &self.adapters {
            if let Err(e) = self.store.delivery_ensure(a.id()).await {
                tracing::error!(adapter = a.id(), error = %e, "delivery: cannot register the adapter's cursor");
            }
        }
        for a in self.adapters.clone() {
            let engine = self.clone();
            let mut rx = rx.clone();
            tasks.spawn(async move { engine.run_adapter(a, async move { while rx.changed().await.is_ok() && !*rx.borrow() {} }).await });
        }
        {
            let engine = self.clone();
            let mut rx = rx.clone();
            tasks.spawn(async move { engine.housekeeping(async move { while rx.changed().await.is_ok() && !*rx.borrow() {} }).await });
        }
        tracing::info!(adapters = ?self.adapter_ids(), "delivery engine running");
        stop.await;
        let _ = tx.send(true);
        while tasks.join_next().await.is_some() {}
        tracing::info!("delivery engine stopped");
    }

    /// Spawns [`Engine::run`] (what `sigess up` does).
    pub fn spawn(self, stop: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    /// Plans, claims and delivers until no adapter has work left that is due, waiting up to
    /// `max_wait` for changes committed but not yet visible and for jobs in backoff. For
    /// tests and one-shot runs.
    pub async fn drain(&self, max_wait: Duration) -> Result<()> {
        let started = std::time::Instant::now();
        for a in &self.adapters {
            self.store.delivery_ensure(a.id()).await?;
        }
        loop {
            let mut worked = false;
            for a in &self.adapters {
                worked |= self.round(a).await? > 0;
            }
            if worked {
                continue;
            }
            let mut busy = false;
            for a in &self.adapters {
                busy |= self.store.delivery_busy(a.id()).await?;
            }
            if !busy || started.elapsed() > max_wait {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One round for one adapter in [`Engine::drain`]: plan, claim, wait for every claimed
    /// job and record them. Returns how many changes were planned plus jobs claimed.
    async fn round(&self, a: &Arc<dyn Runner>) -> Result<usize> {
        let mut inflight = JoinSet::new();
        let mut paused = None;
        let planned = self.plan(a).await?;
        let claimed = self.claim(a, &mut inflight, &mut paused).await?;
        let mut done = Vec::new();
        while let Some(d) = inflight.join_next().await {
            match d {
                Ok(d) => done.push(d),
                Err(e) => tracing::error!(adapter = a.id(), error = %e, "delivery task failed"),
            }
        }
        self.finish(a.id(), done, &mut paused).await?;
        Ok(planned + claimed)
    }

    /// Turns outbox changes after the adapter's cursor into jobs; how many it planned.
    async fn plan(&self, a: &Arc<dyn Runner>) -> Result<usize> {
        let runner = Arc::clone(a);
        let keys = move |c: &adapter_contract::Change| (runner.subject(c), runner.coalesce(c).unwrap_or_default());
        let t = std::time::Instant::now();
        let planned = self.store.delivery_plan(a.id(), a.follows(), &keys, self.cfg.plan_batch).await?.unwrap_or(0);
        self.timed(a.id(), Phase::Plan, t);
        if planned > 0 {
            let since = self.planned.fetch_add(planned, std::sync::atomic::Ordering::Relaxed) + planned;
            if since >= ANALYZE_EVERY {
                self.planned.store(0, std::sync::atomic::Ordering::Relaxed);
                // In the background: the statistics need not be fresh before the next claim.
                let store = self.store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.delivery_analyze().await {
                        tracing::warn!(error = %e, "refreshing the delivery queue's statistics failed");
                    }
                });
            }
        }
        Ok(planned)
    }

    /// Claims due jobs into the free slots of `inflight` (unless the peer asked for a pause
    /// that has not ended) and starts them; how many it claimed.
    async fn claim(&self, a: &Arc<dyn Runner>, inflight: &mut JoinSet<Done>, paused: &mut Option<i64>) -> Result<usize> {
        if paused.is_some_and(|until| until > now_ms()) {
            return Ok(0);
        }
        *paused = None;
        let slots = self.cfg.concurrency.saturating_sub(inflight.len());
        // Claim in bunches: a claim is a round trip, so refilling one slot at a time would
        // cap the engine at one delivery per round trip.
        if slots == 0 || (!inflight.is_empty() && slots < (self.cfg.concurrency / 4).max(1)) {
            return Ok(0);
        }
        let n = u32::try_from(slots).unwrap_or(u32::MAX).min(self.cfg.claim_batch);
        let lease = i64::try_from(self.cfg.lease.as_millis()).unwrap_or(i64::MAX);
        let t = std::time::Instant::now();
        let jobs = self.store.delivery_claim(a.id(), &self.claim, n, lease).await?;
        self.timed(a.id(), Phase::Claim, t);
        let claimed = jobs.len();
        for job in jobs {
            inflight.spawn(process(self.store.clone(), Arc::clone(a), self.cfg.clone(), job, self.metrics.clone()));
        }
        Ok(claimed)
    }

    /// Plans the adapter's jobs from the outbox as changes arrive: at once after a write in
    /// this process, else every `poll`; `planned` is told when there are new jobs.
    async fn planner(&self, a: Arc<dyn Runner>, planned: Arc<tokio::sync::Notify>, mut stop: watch::Receiver<bool>) {
        let mut changed = self.store.subscribe();
        let mut failures: u32 = 0;
        loop {
            let wait = match self.plan(&a).await {
                Ok(n) => {
                    failures = 0;
                    if n > 0 {
                        planned.notify_one();
                    }
                    // A full batch: there is more to plan at once.
                    if n >= self.cfg.plan_batch as usize {
                        continue;
                    }
                    self.cfg.poll
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(adapter = a.id(), error = %e, "planning deliveries failed; the store will be tried again");
                    backoff(&self.cfg, failures, rand::random::<f64>()).min(Duration::from_secs(30))
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Records how `done` ended (one transaction), then counts and logs them. `paused`
    /// becomes the latest time a peer asked to be left alone until.
    async fn finish(&self, adapter: &str, done: Vec<Done>, paused: &mut Option<i64>) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let results: Vec<(i64, Finish)> = done.iter().map(|d| (d.job.id, d.finish.clone())).collect();
        let t = std::time::Instant::now();
        self.store.delivery_finish(&self.claim, &results).await?;
        self.timed(adapter, Phase::Finish, t);
        for d in &done {
            if let Some(m) = &self.metrics {
                m.attempt(adapter, d.outcome);
                if let Some(l) = d.latency {
                    m.latency(adapter, l);
                }
            }
            if let Some(p) = d.pause {
                let until = now_ms().saturating_add(i64::try_from(p.as_millis()).unwrap_or(i64::MAX));
                *paused = Some(paused.map_or(until, |u| u.max(until)));
            }
            match &d.finish {
                Finish::Dead { code, .. } => {
                    tracing::warn!(adapter, job = d.job.id, kind = %d.job.change.kind, code = %code, "delivery parked as a dead letter")
                }
                Finish::Retry { code, .. } => {
                    tracing::info!(adapter, job = d.job.id, attempts = d.job.attempts, code = %code, "delivery to retry")
                }
                Finish::Delivered { .. } => {}
            }
        }
        Ok(())
    }

    fn timed(&self, adapter: &str, phase: Phase, since: std::time::Instant) {
        if let Some(m) = &self.metrics {
            m.phase(adapter, phase, since.elapsed());
        }
    }

    /// One adapter's loop. Claiming and finishing run apart: a finisher task records ended
    /// jobs in batches (one transaction per batch) while this loop plans and claims, so a
    /// commit never holds up the next claim. A job's slot is free once the adapter is done
    /// with it; its subject stays held (open) until the finisher has recorded it.
    async fn run_adapter(&self, a: Arc<dyn Runner>, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let mut changed = self.store.subscribe();
        let mut inflight: JoinSet<Done> = JoinSet::new();
        // Milliseconds since the epoch until which the peer asked for a pause (0: none).
        let paused = Arc::new(std::sync::atomic::AtomicI64::new(0));
        // Told when there may be jobs to claim: new ones planned, or recorded ones whose
        // subjects' next jobs are now free.
        let planned = Arc::new(tokio::sync::Notify::new());
        let (to_finish, finished) = tokio::sync::mpsc::channel::<Done>(self.cfg.concurrency.max(1) * 4);
        let finisher = {
            let engine = self.clone();
            let paused = Arc::clone(&paused);
            let wake = Arc::clone(&planned);
            let id = a.id();
            tokio::spawn(async move { engine.finisher(id, finished, paused, wake).await })
        };
        let (stop_planner, planner_stop) = watch::channel(false);
        let planner = {
            let engine = self.clone();
            let a = Arc::clone(&a);
            let planned = Arc::clone(&planned);
            tokio::spawn(async move { engine.planner(a, planned, planner_stop).await })
        };
        let mut failures: u32 = 0;
        loop {
            // Hand every job that has ended to the finisher.
            while let Some(r) = inflight.try_join_next() {
                match r {
                    Ok(d) => {
                        let _ = to_finish.send(d).await;
                    }
                    Err(e) => tracing::error!(adapter = a.id(), error = %e, "delivery task failed"),
                }
            }
            let mut pause = match paused.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                until => Some(until),
            };
            let worked = match self.claim(&a, &mut inflight, &mut pause).await {
                Ok(n) => {
                    failures = 0;
                    n > 0
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(adapter = a.id(), error = %e, "delivery round failed; the store will be tried again");
                    let wait = backoff(&self.cfg, failures, rand::random::<f64>()).min(Duration::from_secs(30));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut stop => break,
                    }
                    continue;
                }
            };
            if pause.is_none() {
                // The pause ended: clear it unless the finisher set a newer one meanwhile.
                let seen = paused.load(std::sync::atomic::Ordering::Relaxed);
                if seen != 0 && seen <= now_ms() {
                    let _ = paused.compare_exchange(seen, 0, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed);
                }
            }
            if worked && inflight.len() < self.cfg.concurrency {
                continue;
            }
            let wait = match pause {
                Some(until) => Duration::from_millis(u64::try_from(until - now_ms()).unwrap_or(0))
                    .min(self.cfg.poll.max(Duration::from_millis(1)) * 50),
                None => self.cfg.poll,
            };
            tokio::select! {
                _ = planned.notified() => {}
                _ = changed.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(r) = inflight.join_next(), if !inflight.is_empty() => match r {
                    Ok(d) => {
                        let _ = to_finish.send(d).await;
                    }
                    Err(e) => tracing::error!(adapter = a.id(), error = %e, "delivery task failed"),
                },
                _ = &mut stop => break,
            }
        }
        // Let jobs in flight end, and have them recorded; those that do not end in time come
        // back to a worker when their lease ends.
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = inflight.join_next() => match r {
                    Some(Ok(d)) => {
                        let _ = to_finish.send(d).await;
                    }
                    Some(Err(_)) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        let _ = stop_planner.send(true);
        let _ = planner.await;
        drop(to_finish);
        let _ = finisher.await;
    }

    /// Records ended jobs: waits for one, takes every other one already waiting, and records
    /// them in one transaction. A failed recording is tried again a few times; after that
    /// the jobs' leases bring them back to a worker.
    async fn finisher(
        &self,
        adapter: &'static str,
        mut rx: tokio::sync::mpsc::Receiver<Done>,
        paused: Arc<std::sync::atomic::AtomicI64>,
        wake: Arc<tokio::sync::Notify>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut done = vec![first];
            while let Ok(d) = rx.try_recv() {
                done.push(d);
            }
            let mut pause = None;
            for attempt in 1..=3u32 {
                match self.finish(adapter, done.clone(), &mut pause).await {
                    Ok(()) => {
                        wake.notify_one();
                        break;
                    }
                    Err(e) if attempt < 3 => {
                        tracing::warn!(adapter, error = %e, "recording deliveries failed; trying again");
                        tokio::time::sleep(backoff(&self.cfg, attempt, rand::random::<f64>()).min(Duration::from_secs(2))).await;
                    }
                    Err(e) => tracing::warn!(adapter, error = %e, "recording deliveries failed; their leases will bring them back"),
                }
            }
            if let Some(until) = pause {
                paused.fetch_max(until, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    async fn housekeeping(&self, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        loop {
            for a in &self.adapters {
                let (healthy, detail) = match a.health().await {
                    adapter_contract::Health::Up => (true, String::new()),
                    adapter_contract::Health::Down(why) => (false, why),
                };
                if let Some(m) = &self.metrics {
                    m.health(a.id(), healthy);
                }
                if let Err(e) = self.store.delivery_set_health(a.id(), healthy, &detail).await {
                    tracing::warn!(adapter = a.id(), error = %e, "recording adapter health failed");
                }
            }
            if let Some(m) = &self.metrics {
                match self.store.delivery_stats().await {
                    Ok(stats) => m.queues(&stats),
                    Err(e) => tracing::warn!(error = %e, "reading delivery queues failed"),
                }
            }
            let keep = i64::try_from(self.cfg.retention.as_millis()).unwrap_or(i64::MAX);
            match self.store.delivery_purge(now_ms().saturating_sub(keep)).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "delivery: old finished jobs deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging delivered jobs failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.housekeeping) => {}
                _ = &mut stop => break,
            }
        }
    }
}

/// Adapters whose oldest pending or in-flight change is older than `max_age`, with that age:
/// what readiness reports.
pub async fn stale_adapters(store: &Store, max_age: Duration) -> Result<Vec<(String, Duration)>> {
    Ok(store
        .delivery_stats()
        .await?
        .iter()
        .filter_map(|s| metrics::oldest_age(s).filter(|age| *age > max_age).map(|age| (s.adapter.clone(), age)))
        .collect())
}

/// Milliseconds from a change's RFC 3339 instant to now.
fn since(occurred_at: &str) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(occurred_at, &time::format_description::well_known::Rfc3339).ok()?;
    (time::OffsetDateTime::now_utc() - t).try_into().ok()
}

/// Processes one claimed job through its adapter.
async fn process(store: Store, a: Arc<dyn Runner>, cfg: EngineConfig, job: Job, metrics: Option<EngineMetrics>) -> Done {
    let source = StoreSource::new(store, a.id(), &job.change.ente);
    let t = std::time::Instant::now();
    let processed = a.process(&job.change, &source, &job.delivered_keys).await;
    if let Some(m) = &metrics {
        m.phase(a.id(), Phase::Process, t.elapsed());
    }
    let mut keys = job.delivered_keys.clone();
    keys.extend(processed.delivered);
    let pause = match &processed.outcome {
        Outcome::Retry { after: Some(d), .. } => Some(*d),
        _ => None,
    };
    let latency = matches!(processed.outcome, Outcome::Delivered).then(|| since(&job.change.occurred_at)).flatten();
    let finish = finish_of(&cfg, &job, keys, &processed.outcome, rand::random::<f64>(), now_ms());
    Done { outcome: processed.outcome.label(), job, finish, latency, pause }
}

#[cfg(test)]
mod tests {
    use adapter_contract::Reason;

    use super::*;

    fn cfg() -> EngineConfig {
        EngineConfig {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            max_attempts: 5,
            ..EngineConfig::default()
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let c = cfg();
        assert_eq!(backoff(&c, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&c, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&c, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(&c, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(&c, 40, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&c, 40, 0.0), Duration::from_secs(30));
        // Never zero: no busy loop against a peer that is down.
        assert!(backoff(&c, 0, 0.0) >= Duration::from_millis(500));
    }

    fn job(attempts: i64) -> Job {
        Job {
            id: 1,
            adapter: "x".into(),
            generation: 0,
            subject: "s".into(),
            change: adapter_contract::Change::default(),
            state: crate::store::delivery::JobState::Inflight,
            attempts,
            due_at: 0,
            lease_until: None,
            delivered_keys: vec![],
            last_error_code: String::new(),
            last_error: String::new(),
            created_at: 0,
            finished_at: None,
            discard_reason: String::new(),
            ckey: String::new(),
            cover_upto: None,
            covered_by: None,
        }
    }

    #[test]
    fn outcomes_become_finishes() {
        let c = cfg();
        assert_eq!(finish_of(&c, &job(1), vec!["k".into()], &Outcome::Delivered, 0.5, 1000), Finish::Delivered { keys: vec!["k".into()] });
        let retry = Outcome::Retry { after: Some(Duration::from_secs(7)), reason: Reason::new("HTTP_429", "peer busy") };
        match finish_of(&c, &job(1), vec![], &retry, 0.5, 1000) {
            Finish::Retry { due_at, code, .. } => {
                assert_eq!(due_at, 8000, "Retry-After is honoured exactly");
                assert_eq!(code, "HTTP_429");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        match finish_of(&c, &job(2), vec![], &Outcome::retry("HTTP_500", "peer error"), 0.0, 1000) {
            Finish::Retry { due_at, .. } => assert_eq!(due_at, 2000),
            other => panic!("expected a retry, got {other:?}"),
        }
        match finish_of(&c, &job(5), vec![], &Outcome::retry("HTTP_500", "peer error"), 0.0, 1000) {
            Finish::Dead { code, message, .. } => {
                assert_eq!(code, "HTTP_500");
                assert!(message.contains("5 attempts"), "{message}");
            }
            other => panic!("expected a dead letter after the last attempt, got {other:?}"),
        }
        match finish_of(&c, &job(1), vec![], &Outcome::permanent("HTTP_422", "campo nome"), 0.0, 1000) {
            Finish::Dead { code, .. } => assert_eq!(code, "HTTP_422"),
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }
}

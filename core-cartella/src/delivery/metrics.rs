//! Prometheus metrics of the delivery engine, registered in the registry the binary serves
//! at `/metrics`. Labels are adapter ids, job states and outcome names: never a record id.
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::store::delivery::AdapterStats;

#[derive(Clone, Debug)]
pub struct EngineMetrics {
    attempts: IntCounterVec,
    latency: HistogramVec,
    queue: IntGaugeVec,
    oldest: IntGaugeVec,
    healthy: IntGaugeVec,
    phase: HistogramVec,
}

/// The steps of the engine's loop timed by `delivery_phase_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Outbox changes turned into jobs (one transaction).
    Plan,
    /// Due jobs claimed (one statement).
    Claim,
    /// One job through its adapter: load, map, deliver.
    Process,
    /// Ended jobs recorded (one transaction).
    Finish,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Claim => "claim",
            Self::Process => "process",
            Self::Finish => "finish",
        }
    }
}

impl EngineMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let attempts = IntCounterVec::new(
            Opts::new("delivery_attempts_total", "Delivery attempts by adapter and outcome (delivered, retry, permanent)"),
            &["adapter", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("delivery_latency_seconds", "From the change's commit to its delivery, by adapter")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
            &["adapter"],
        )?;
        let queue = IntGaugeVec::new(
            Opts::new("delivery_jobs", "Delivery jobs by adapter and state (pending, inflight, dead)"),
            &["adapter", "state"],
        )?;
        let oldest = IntGaugeVec::new(
            Opts::new("delivery_oldest_pending_seconds", "Age of the oldest change pending or in flight, by adapter (0 when none)"),
            &["adapter"],
        )?;
        let healthy = IntGaugeVec::new(Opts::new("delivery_adapter_up", "1 when the adapter's last health check said up"), &["adapter"])?;
        let phase = HistogramVec::new(
            HistogramOpts::new(
                "delivery_phase_seconds",
                "Time of each step of the delivery engine, by adapter and phase (plan, claim, process, finish)",
            )
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            &["adapter", "phase"],
        )?;
        registry.register(Box::new(phase.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        registry.register(Box::new(oldest.clone()))?;
        registry.register(Box::new(healthy.clone()))?;
        Ok(Self { attempts, latency, queue, oldest, healthy, phase })
    }

    pub fn attempt(&self, adapter: &str, outcome: &str) {
        self.attempts.with_label_values(&[adapter, outcome]).inc();
    }

    pub fn latency(&self, adapter: &str, d: Duration) {
        self.latency.with_label_values(&[adapter]).observe(d.as_secs_f64());
    }

    pub fn phase(&self, adapter: &str, phase: Phase, d: Duration) {
        self.phase.with_label_values(&[adapter, phase.label()]).observe(d.as_secs_f64());
    }

    pub fn health(&self, adapter: &str, up: bool) {
        self.healthy.with_label_values(&[adapter]).set(i64::from(up));
    }

    pub fn queues(&self, stats: &[AdapterStats]) {
        for s in stats {
            self.queue.with_label_values(&[s.adapter.as_str(), "pending"]).set(s.pending);
            self.queue.with_label_values(&[s.adapter.as_str(), "inflight"]).set(s.inflight);
            self.queue.with_label_values(&[s.adapter.as_str(), "dead"]).set(s.dead);
            self.oldest
                .with_label_values(&[s.adapter.as_str()])
                .set(oldest_age(s).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
        }
    }
}

/// Age of the oldest open change of an adapter.
pub fn oldest_age(s: &AdapterStats) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(s.oldest_open.as_deref()?, &time::format_description::well_known::Rfc3339).ok()?;
    (time::OffsetDateTime::now_utc() - t).try_into().ok()
}

/// Where an engine spent its time, read back from a registry its metrics are in: the mean
/// of each step per call, the calls over 250 ms (a stall of that step), and the attempts by
/// outcome. For benchmarks and diagnostics; the figures carry no record data.
pub fn summary(registry: &Registry) -> String {
    let label = |m: &prometheus::proto::Metric, name: &str| {
        m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string()).unwrap_or_default()
    };
    let families = registry.gather();
    let mut out = Vec::new();
    for f in families.iter().filter(|f| f.name() == "delivery_phase_seconds") {
        for m in f.get_metric() {
            let h = m.get_histogram();
            if h.get_sample_count() > 0 {
                let quick = h.get_bucket().iter().find(|b| (b.upper_bound() - 0.25).abs() < 1e-9).map_or(0, |b| b.cumulative_count());
                out.push(format!(
                    "{} {:.2} ms x{} ({} over 250 ms)",
                    label(m, "phase"),
                    h.get_sample_sum() * 1e3 / h.get_sample_count() as f64,
                    h.get_sample_count(),
                    h.get_sample_count() - quick
                ));
            }
        }
    }
    for f in families.iter().filter(|f| f.name() == "delivery_attempts_total") {
        for m in f.get_metric() {
            out.push(format!("attempts {} {}", label(m, "outcome"), m.get_counter().get_value()));
        }
    }
    out.join(", ")
}

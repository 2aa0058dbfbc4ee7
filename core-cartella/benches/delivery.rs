//! Benchmark of the delivery engine on PostgreSQL, to a loopback HTTP peer through the
//! webhook adapter, measured against the write path in the same run:
//!
//! 1. latency: persone created at a sustained rate (default 500/s for 60 s) while 1, then 2,
//!    engines (each with its own pool, as separate workers have) deliver them; change →
//!    delivered latency (commit instant to arrival at the peer), p50 and p99;
//! 2. ceiling: the write path's own commits/s (16 concurrent writers, no engine), then the
//!    deliveries/s of 1 and 2 engines working off that backlog; the ratio.
//!
//! Run: `cargo bench -p core-cartella --bench delivery` (PostgreSQL on 127.0.0.1:5432).
//! RATE, SECS and BACKLOG change the rate, the duration and the ceiling's backlog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    delivery::{Engine, EngineConfig, EngineMetrics},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
    testkit::TestDb,
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

async fn fresh_db() -> TestDb {
    TestDb::postgres("sigess_bench").await.expect("the benchmark needs PostgreSQL at 127.0.0.1:5432")
}

/// Arrivals at the peer: latency from the change's commit instant, when it arrived.
#[derive(Clone, Default)]
struct Peer {
    arrivals: Arc<Mutex<Vec<(Duration, Instant)>>>,
}

async fn hook(State(p): State<Peer>, body: Bytes) -> StatusCode {
    let now = OffsetDateTime::now_utc();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(at) = v["occurred_at"].as_str().and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()) {
        let lat: Duration = (now - at).try_into().unwrap_or_default();
        p.arrivals.lock().unwrap().push((lat, Instant::now()));
    }
    StatusCode::NO_CONTENT
}

async fn peer() -> (Peer, String) {
    let p = Peer::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route("/hook", post(hook)).with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (p, url)
}

fn operator() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "bench".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "bench".into(),
        request_id: "bench".into(),
    }
}

fn persona(i: u64) -> pb::Persona {
    // The codice fiscale must differ: the surname's consonants spell i % 1000, the birth
    // date cycles through 1,680 days; together unique well beyond the runs here.
    const C: [char; 10] = ['B', 'C', 'D', 'F', 'G', 'L', 'M', 'N', 'P', 'R'];
    let n = (i % 1000) as usize;
    let cognome: String = [C[n % 10], 'a', C[(n / 10) % 10], 'a', C[n / 100], 'i'].iter().collect();
    let nome = format!("Nome{i}");
    let (y, m, d) = (1930 + (i % 80) as i32, 1 + (i % 12) as u8, 1 + (i % 28) as u8);
    pb::Persona {
        codice_fiscale: compose(&cognome, &nome, y, m, d, false, "H501"),
        cognome,
        nome,
        sesso: pb::Sesso::Maschio as i32,
        data_nascita: format!("{y}-{m:02}-{d:02}"),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    }
}

async fn open(url: &str, conns: u32) -> Store {
    let mut o = StoreOptions::new(url);
    o.max_connections = conns;
    Store::open(&o).await.unwrap()
}

fn engines(
    n: usize,
    stores: &[Store],
    url: &str,
    metrics: &EngineMetrics,
) -> Vec<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)> {
    let cfg = EngineConfig { poll: Duration::from_millis(20), ..EngineConfig::default() };
    (0..n)
        .map(|i| {
            let args = webhook::WebhookArgs { url: Some(url.into()), kinds: vec!["persona".into()], secret: None, timeout_secs: 10 };
            let hook = adapter_contract::register(webhook::Webhook::from_args(&args).unwrap().unwrap());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let h = Engine::new(stores[i].clone(), vec![hook], cfg.clone(), Some(metrics.clone())).spawn(async move {
                let _ = rx.await;
            });
            (tx, h)
        })
        .collect()
}

async fn stop(es: Vec<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>) {
    for (tx, h) in es {
        let _ = tx.send(());
        let _ = h.await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Writes at `rate`/s for `secs` from 8 writers; returns how many were written.
async fn write_at(store: &Store, start: u64, rate: u64, secs: u64) -> u64 {
    let total = rate * secs;
    let writers = 8u64;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            let mut i = w;
            while i < total {
                // Each writer keeps its share of the schedule: the i-th write is due at i/rate.
                let due = began + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                store.create(&operator(), persona(start + i)).await.unwrap();
                n += 1;
                i += writers;
            }
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    n
}

async fn latency_run(workers: usize, rate: u64, secs: u64) -> (Duration, Duration, u64, u64) {
    let db = fresh_db().await;
    let url = db.url.clone();
    let writer = open(&url, 16).await;
    let stores: Vec<Store> = futures::future::join_all((0..workers).map(|_| open(&url, 8))).await;
    let (p, hook) = peer().await;
    let registry = prometheus::Registry::new();
    let metrics = EngineMetrics::register(&registry).unwrap();
    let es = engines(workers, &stores, &hook, &metrics);
    let written = write_at(&writer, 0, rate, secs).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (p.arrivals.lock().unwrap().len() as u64) < written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(es).await;
    let mut lat: Vec<Duration> = p.arrivals.lock().unwrap().iter().map(|a| a.0).collect();
    lat.sort();
    let delivered = lat.len() as u64;
    for s in stores {
        s.close().await;
    }
    writer.close().await;
    db.drop_pg().await;
    println!("         phases (workers={workers}): {}", core_cartella::delivery::metrics::summary(&registry));
    (pct(&lat, 0.5), pct(&lat, 0.99), delivered, written)
}

/// Commits/s of the write path alone (16 writers), then deliveries/s of `workers` engines
/// over that backlog.
async fn ceiling_run(workers: usize, backlog: u64) -> (f64, f64) {
    let db = fresh_db().await;
    let url = db.url.clone();
    let writer = open(&url, 16).await;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let s = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < backlog {
                s.create(&operator(), persona(i)).await.unwrap();
                i += 16;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let writes = backlog as f64 / began.elapsed().as_secs_f64();
    let stores: Vec<Store> = futures::future::join_all((0..workers).map(|_| open(&url, 8))).await;
    let (p, hook) = peer().await;
    let began = Instant::now();
    let registry = prometheus::Registry::new();
    let metrics = EngineMetrics::register(&registry).unwrap();
    let es = engines(workers, &stores, &hook, &metrics);
    while (p.arrivals.lock().unwrap().len() as u64) < backlog {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = backlog as f64 / began.elapsed().as_secs_f64();
    stop(es).await;
    for s in stores {
        s.close().await;
    }
    writer.close().await;
    db.drop_pg().await;
    println!("         phases (workers={workers}): {}", core_cartella::delivery::metrics::summary(&registry));
    (writes, deliveries)
}

#[tokio::main]
async fn main() {
    let rate = env("RATE", 500);
    let secs = env("SECS", 60);
    let backlog = env("BACKLOG", 20_000);
    println!("delivery benchmark: {rate} changes/s for {secs} s, ceiling over {backlog} changes (PostgreSQL, webhook to a loopback peer)");
    for workers in [1, 2] {
        let (p50, p99, n, written) = latency_run(workers, rate, secs).await;
        // Changes not delivered within 60 s after the last write count as beyond the p99.
        let met = p99 <= Duration::from_millis(250) && n == written;
        println!(
            "latency  workers={workers}: {n} of {written} delivered within 60 s of the last write, p50 {:.1} ms, p99 {:.1} ms of those (target p99 <= 250 ms: {})",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            if met { "met" } else { "NOT met" }
        );
    }
    for workers in [1, 2] {
        let (writes, deliveries) = ceiling_run(workers, backlog).await;
        let ratio = deliveries / writes;
        println!(
            "ceiling  workers={workers}: write path {writes:.0} commits/s, deliveries {deliveries:.0}/s, ratio {ratio:.2}x (target >= 0.8x: {})",
            if ratio >= 0.8 { "met" } else { "NOT met" }
        );
    }
}

//! Change → resources on the FHIR server, through the adapter, against the server's own
//! ceiling for the same Bundles posted directly, in the same run (the Medplum server of
//! `conformance/fhir`, started here).
//!
//! 1. ceiling: the Bundles of `N` distinct shared cartelle POSTed directly by `C` concurrent
//!    clients, as fast as the server answers;
//! 2. adapter: an open loop at `min(500/s, 0.8 × ceiling)`: each change is mapped (`plan`,
//!    the pure step after the load) and delivered (`deliver`, PUTs in one transaction);
//!    latency runs from the change's scheduled time to the server's 2xx (committed, so
//!    visible to any read).
//!
//! `cargo bench -p regione-lazio --bench fhir_delivery` (needs conformance/fhir/setup.sh);
//! `BENCH_N`, `BENCH_CONCURRENCY`, `BENCH_SECONDS` override the defaults.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/peer/mod.rs"]
mod peer;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use adapter_contract::{Adapter, CartellaView, Outcome};
use regione_lazio::{Config, RegioneLazio, mapping::Writes, plan};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A distinct shared cartella: every id suffixed with `i`.
fn view(i: usize) -> CartellaView {
    let mut v = common::shared_view();
    let sfx = |m: &mut Option<adapter_contract::pb::Meta>| {
        if let Some(m) = m {
            m.id = format!("{}-{i}", m.id);
        }
    };
    sfx(&mut v.persona.meta);
    sfx(&mut v.cartella.meta);
    v.cartella.persona_id = format!("per-1-{i}");
    v.cartella.accesso_id = format!("acc-1-{i}");
    for (n, members) in &mut v.nuclei {
        sfx(&mut n.meta);
        n.persona_riferimento_id = format!("per-1-{i}");
        for m in &mut n.membri {
            m.persona_id = format!("{}-{i}", m.persona_id);
        }
        for p in members {
            sfx(&mut p.meta);
        }
    }
    v.accessi.iter_mut().for_each(|a| sfx(&mut a.meta));
    v.valutazioni.iter_mut().for_each(|a| sfx(&mut a.meta));
    v.pai.iter_mut().for_each(|a| sfx(&mut a.meta));
    v.prestazioni.iter_mut().for_each(|a| sfx(&mut a.meta));
    v.condivisioni.iter_mut().for_each(|a| sfx(&mut a.meta));
    v
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env("BENCH_N", 2000);
    let c = env("BENCH_CONCURRENCY", 8);
    let secs = env("BENCH_SECONDS", 10);
    let Some(server) = peer::start(0) else { return };
    let base = server.base();
    let views: Arc<Vec<CartellaView>> = Arc::new((0..n).map(view).collect());
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        views
            .iter()
            .map(|v| {
                let p = plan(std::slice::from_ref(v), "REGIONE", "2026-02-01", Writes::ById, 50).expect("maps");
                serde_json::to_vec(&p[0].delivery.bundle).expect("json")
            })
            .collect(),
    );
    let entries =
        plan(std::slice::from_ref(&views[0]), "REGIONE", "2026-02-01", Writes::ById, 50).expect("maps")[0].delivery.bundle["entry"]
            .as_array()
            .map_or(0, Vec::len);

    // 1. The server's ceiling for the same Bundles, posted directly.
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (client, bodies, next, url) = (client.clone(), bodies.clone(), next.clone(), format!("{base}/"));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= bodies.len() {
                    return lat;
                }
                let t = Instant::now();
                let r =
                    client.post(&url).header("content-type", "application/fhir+json").body(bodies[i].clone()).send().await.expect("POST");
                assert!(r.status().is_success(), "{}", r.status());
                let _ = r.bytes().await;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut direct = Vec::new();
    for t in tasks {
        direct.extend(t.await.expect("task"));
    }
    let ceiling = n as f64 / started.elapsed().as_secs_f64();
    direct.sort();

    // 2. Through the adapter, open loop at a sustained rate below the ceiling.
    let rate = (0.8 * ceiling).min(500.0);
    let adapter = Arc::new(RegioneLazio::new(Config::plain(&base)).expect("adapter"));
    let total = ((rate * secs as f64) as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        let due = start + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let (adapter, views) = (adapter.clone(), views.clone());
        tasks.push(tokio::spawn(async move {
            let v = &views[k % views.len()];
            let planned = plan(std::slice::from_ref(v), "REGIONE", "2026-02-01", Writes::ById, 50).expect("maps");
            let mut delivered = true;
            for p in &planned {
                delivered &= adapter.deliver(p).await == Outcome::Delivered;
            }
            (due.elapsed(), delivered)
        }));
    }
    let mut through = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (lat, ok) = t.await.expect("task");
        if ok {
            through.push(lat);
        } else {
            failed += 1;
        }
    }
    let achieved = (total - failed) as f64 / (Instant::now() - start).as_secs_f64();
    through.sort();

    println!(
        "FHIR server: Medplum 4.5.2 fhir-router, in-memory repository, Node {}",
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );
    println!("Bundle: {entries} entries (one shared cartella), {n} distinct cartelle");
    println!("direct POST, {c} concurrent: ceiling {ceiling:.0} Bundles/s, p50 {:?}, p99 {:?}", pct(&direct, 0.5), pct(&direct, 0.99));
    println!(
        "adapter (map + deliver), open loop at {rate:.0}/s for {secs} s: achieved {achieved:.0}/s, p50 {:?}, p99 {:?}, ratio to ceiling {:.2}, not delivered {failed}",
        pct(&through, 0.5),
        pct(&through, 0.99),
        achieved / ceiling
    );
}

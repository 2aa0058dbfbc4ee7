//! Benchmark of core on PostgreSQL, measured against `pgbench` in the same run:
//!
//! 1. write path: CreatePrestazione over gRPC (record + audit + outbox in one transaction)
//!    at 16 concurrent clients, against pgbench's TPC-B at 16 clients on the same server;
//! 2. read path: GetCartella (the read, returned once its audit row is committed) at 64
//!    concurrent clients, p50/p99.
//!
//! Run: `cargo bench -p core-cartella --bench write_read` (PostgreSQL on 127.0.0.1:5432,
//! `pgbench` on PATH). BENCH_SECS sets the duration of each phase (default 20).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cartella_proto::v1::{self as pb, cartella_service_client::CartellaServiceClient};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
    testkit::TestDb,
};
use tonic::{metadata::MetadataValue, transport::Channel};

fn pgbench(db: &str, clients: u32, secs: u64) -> f64 {
    let init =
        Command::new("pgbench").args(["-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", "16", db]).output().expect("pgbench on PATH");
    assert!(init.status.success(), "pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
    let run = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-c", &clients.to_string(), "-j", "2", "-T", &secs.to_string(), db])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    out.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{out}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let hub_db = TestDb::postgres("sigess_bench").await.expect("the benchmark needs PostgreSQL at 127.0.0.1:5432");
    let pgb_db = TestDb::postgres("pgbench").await.expect("the benchmark needs PostgreSQL at 127.0.0.1:5432");

    let mut opts = StoreOptions::new(&hub_db.url);
    opts.max_connections = 32;
    let store = Store::open(&opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s2 = store.clone();
    let verifier = signer.verifier().unwrap();
    tokio::spawn(async move { core_cartella::server::serve(listener, &s2, verifier, std::future::pending()).await.unwrap() });
    let caller = Caller {
        kind: CallerKind::Operatore,
        subject: "bench".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "benchmark".into(),
        request_id: String::new(),
    };
    let token: MetadataValue<_> = format!("Bearer {}", signer.mint(&caller, Duration::from_secs(3600)).unwrap()).parse().unwrap();
    let client = |token: MetadataValue<tonic::metadata::Ascii>| async move {
        let ch = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        CartellaServiceClient::with_interceptor(ch, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        })
    };

    // Fixture: 64 people with a cartella each.
    let mut c = client(token.clone()).await;
    let mut cartelle = Vec::new();
    for i in 0..64u32 {
        let p = c
            .create_persona(pb::CreatePersonaRequest {
                persona: Some(pb::Persona {
                    codice_fiscale: compose(
                        "Bench",
                        "Mario",
                        1950 + (i / 28) as i32,
                        1 + (i % 12) as u8,
                        1 + (i % 28) as u8,
                        false,
                        "H501",
                    ),
                    cognome: "Bench".into(),
                    nome: "Mario".into(),
                    sesso: pb::Sesso::Maschio as i32,
                    data_nascita: format!("{}-{:02}-{:02}", 1950 + i / 28, 1 + i % 12, 1 + i % 28),
                    luogo_nascita: "H501".into(),
                    cittadinanza: "380".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let cart = c
            .create_cartella(pb::CreateCartellaRequest {
                cartella: Some(pb::Cartella {
                    persona_id: p.meta.unwrap().id,
                    area_utenza: 2,
                    stato: 1,
                    data_apertura: "2026-01-01".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        cartelle.push(cart.meta.unwrap().id);
    }

    // 1. Write path at 16 clients.
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for cid in cartelle.iter().take(16) {
        let cid = cid.clone();
        let mut c = client(token.clone()).await;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                c.create_prestazione(pb::CreatePrestazioneRequest {
                    prestazione: Some(pb::Prestazione {
                        cartella_id: cid.clone(),
                        codice_prestazione: "A1.01".into(),
                        denominazione: "Assistenza domiciliare socio-assistenziale".into(),
                        carattere: 2,
                        prova_mezzi: 4,
                        protocollo_domanda: "BENCH-1".into(),
                        data_erogazione: "2026-03-01".into(),
                        importo: Some(12_000),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let hub_tps = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let pg_tps = pgbench(pgb_db.pg_name().unwrap_or_default(), 16, secs);

    // 2. Read path at 64 clients.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for cid in cartelle.iter().take(64) {
        let cid = cid.clone();
        let mut c = client(token.clone()).await;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                c.get_cartella(pb::GetRequest { id: cid.clone(), purpose: "benchmark".into() }).await.unwrap();
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort();
    let reads = lat.len() as f64 / secs as f64;

    println!("write path (CreatePrestazione: record + audit + outbox), 16 clients, {secs}s");
    println!("  hub      {hub_tps:>10.1} tx/s");
    println!("  pgbench  {pg_tps:>10.1} tps (TPC-B, scale 16, same server, same run)");
    println!("  ratio    {:>10.2}x  (target >= 0.50)", hub_tps / pg_tps);
    println!("read path (GetCartella + audit row), 64 clients, {secs}s");
    println!(
        "  {reads:.1} reads/s, p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );

    store.close().await;
    hub_db.drop_pg().await;
    pgb_db.drop_pg().await;
}

//! A cartella read through the gateway (REST/JSON → gRPC → core → PostgreSQL, with its audit
//! row), measured with `wrk` against, in the same run:
//! (a) the same read as a direct gRPC call to core, at the same concurrency;
//! The gateway is measured twice: with core reached over loopback gRPC (`sigess gateway` in
//! front of `sigess core`) and with core's routes in its own process (`sigess up`).
//! (b) nginx `proxy_pass` to a static JSON backend on loopback (the cost of a plain
//!     reverse-proxy hop), and that backend alone.
//! Targets: gateway rps ≥ 0.8 × nginx proxied rps; gateway p99 ≤ 1.15 × (direct gRPC p99 +
//! nginx hop p99).
//!
//! Run: `cargo bench -p gateway --bench gateway_read` with PostgreSQL on 127.0.0.1:5432 and
//! `wrk` and `nginx` on PATH. BENCH_SECS (default 15) and BENCH_CONNS (default 32).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cartella_proto::v1::{self as pb, cartella_service_client::CartellaServiceClient};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
    testkit::TestDb,
};
use gateway::{
    app::{self, AppConfig, Parts},
    auth::Authenticator,
    core_link::{CoreLink, LinkSecurity},
    stack::limit::RateConfig,
};
use tonic::transport::Channel;

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_ms(v: &str) -> f64 {
    let v = v.trim();
    if let Some(x) = v.strip_suffix("us") {
        x.parse::<f64>().unwrap() / 1000.0
    } else if let Some(x) = v.strip_suffix("ms") {
        x.parse().unwrap()
    } else if let Some(x) = v.strip_suffix('s') {
        x.parse::<f64>().unwrap() * 1000.0
    } else {
        panic!("latency {v:?}")
    }
}

fn wrk(url: &str, token: Option<&str>, conns: u32, secs: u64) -> Wrk {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().expect("wrk on PATH");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.contains("Non-2xx"), "wrk saw errors against {url}:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    };
    Wrk { rps: field("Requests/sec:").parse().unwrap(), p50_ms: parse_ms(&field("50%")), p99_ms: parse_ms(&field("99%")) }
}

/// Stops nginx, master and workers, whatever happens to the benchmark: killing the master
/// alone would leave its workers serving (and holding this process's output open).
struct Nginx {
    child: std::process::Child,
    prefix_and_conf: [String; 4],
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx").args(&self.prefix_and_conf).args(["-s", "stop"]).stderr(Stdio::null()).status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let conns: u32 = std::env::var("BENCH_CONNS").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let db = TestDb::postgres("sigess_gwbench").await.expect("the benchmark needs PostgreSQL at 127.0.0.1:5432");
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 32;
    let store = Store::open(&opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();

    let core_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = core_l.local_addr().unwrap();
    let (s, v) = (store.clone(), signer.verifier().unwrap());
    tokio::spawn(async move { core_cartella::server::serve(core_l, &s, v, std::future::pending()).await.unwrap() });
    let link = CoreLink::connect_lazy(&format!("http://{core_addr}"), &LinkSecurity::default(), signer.clone()).unwrap();
    let cfg = AppConfig { rate: RateConfig { per_minute: 100_000_000, burst: 1_000_000 }, ..Default::default() };
    let app = app::build(
        Parts { link, auth: Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true), store: None, edge: None },
        &cfg,
    )
    .unwrap();
    let gw_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_addr = gw_l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(gw_l, app.router).await.unwrap() });
    // The same gateway calling core's routes in its own process, as `sigess up` runs.
    let routes = core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap();
    let link = CoreLink::in_process(routes, signer.clone());
    let app = app::build(
        Parts { link, auth: Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true), store: None, edge: None },
        &cfg,
    )
    .unwrap();
    let up_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up_l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(up_l, app.router).await.unwrap() });

    let caller = Caller {
        kind: CallerKind::Operatore,
        subject: "bench".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "benchmark".into(),
        request_id: String::new(),
    };
    let token = signer.mint(&caller, Duration::from_secs(3600)).unwrap();
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let connect = || async { Channel::from_shared(format!("http://{core_addr}")).unwrap().connect().await.unwrap() };
    let mut c = CartellaServiceClient::new(connect().await);
    fn with<T>(m: T, auth: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        r.metadata_mut().insert("authorization", auth.clone());
        r
    }
    let p = c
        .create_persona(with(
            pb::CreatePersonaRequest {
                persona: Some(pb::Persona {
                    codice_fiscale: compose("Banco", "Prova", 1960, 1, 1, false, "H501"),
                    cognome: "Banco".into(),
                    nome: "Prova".into(),
                    sesso: 1,
                    data_nascita: "1960-01-01".into(),
                    luogo_nascita: "H501".into(),
                    cittadinanza: "380".into(),
                    ..Default::default()
                }),
            },
            &auth,
        ))
        .await
        .unwrap()
        .into_inner();
    let cart = c
        .create_cartella(with(
            pb::CreateCartellaRequest {
                cartella: Some(pb::Cartella {
                    persona_id: p.meta.unwrap().id,
                    area_utenza: 2,
                    stato: 1,
                    data_apertura: "2026-01-01".into(),
                    ..Default::default()
                }),
            },
            &auth,
        ))
        .await
        .unwrap()
        .into_inner();
    let id = cart.meta.unwrap().id;
    let rest_url = format!("http://{gw_addr}/api/v1/cartelle/{id}");
    let body = reqwest::Client::new().get(&rest_url).bearer_auth(&token).send().await.unwrap();
    assert!(body.status().is_success(), "gateway read failed: {}", body.status());
    let json = body.text().await.unwrap();

    let up_url = format!("http://{up_addr}/api/v1/cartelle/{id}");
    let body = reqwest::Client::new().get(&up_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), json, "both gateways answer the same");

    // Through the gateway: core in another process (here: over loopback gRPC), then core in
    // the gateway's process.
    eprintln!("phase 1: gateway REST, core over gRPC");
    let gw = tokio::task::spawn_blocking({
        let (u, t) = (rest_url.clone(), token.clone());
        move || wrk(&u, Some(&t), conns, secs)
    })
    .await
    .unwrap();
    eprintln!("phase 1b: gateway REST, core in process");
    let up = tokio::task::spawn_blocking({
        let (u, t) = (up_url.clone(), token.clone());
        move || wrk(&u, Some(&t), conns, secs)
    })
    .await
    .unwrap();

    eprintln!("phase 2: direct gRPC");
    // Direct gRPC, same concurrency, each client on its own connection.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut c = CartellaServiceClient::new(connect().await);
        let (id, auth) = (id.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let mut r = tonic::Request::new(pb::GetRequest { id: id.clone(), purpose: "benchmark".into() });
                r.metadata_mut().insert("authorization", auth.clone());
                let t0 = Instant::now();
                c.get_cartella(r).await.unwrap();
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
    let grpc_rps = lat.len() as f64 / secs as f64;
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let (grpc_p50, grpc_p99) = (pct(0.50), pct(0.99));

    // nginx: a static JSON backend and a proxy_pass in front of it.
    let (backend, proxy) = (free_port(), free_port());
    std::fs::write(dir.path().join("cartella.json"), &json).unwrap();
    let conf = format!(
        "worker_processes 2; pid {d}/nginx.pid; error_log {d}/error.log; events {{ worker_connections 1024; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
           upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}\n\
           server {{ listen 127.0.0.1:{backend}; location / {{ default_type application/json; root {d}; }} }}\n\
           server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://backend; }} }}\n\
         }}\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    eprintln!("phase 3: nginx proxy_pass and static backend");
    let prefix_and_conf =
        ["-p".to_string(), dir.path().display().to_string(), "-c".to_string(), dir.path().join("nginx.conf").display().to_string()];
    let child = Command::new("nginx")
        .args(&prefix_and_conf)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx on PATH");
    let nginx = Nginx { child, prefix_and_conf };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ngx_proxy = wrk(&format!("http://127.0.0.1:{proxy}/cartella.json"), None, conns, secs);
    let ngx_static = wrk(&format!("http://127.0.0.1:{backend}/cartella.json"), None, conns, secs);
    drop(nginx);
    let hop = (ngx_proxy.p99_ms - ngx_static.p99_ms).max(0.0);
    let bound = 1.15 * (grpc_p99 + hop);

    println!("cartella read, {conns} connections, {secs}s each, PostgreSQL store (a read returns once its audit row is committed)");
    println!("  gateway REST, core over gRPC   {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms", gw.rps, gw.p50_ms, gw.p99_ms);
    println!("  gateway REST, core in process  {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms", up.rps, up.p50_ms, up.p99_ms);
    println!("  core gRPC direct               {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms", grpc_rps, grpc_p50, grpc_p99);
    println!(
        "  nginx proxy_pass               {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        ngx_proxy.rps, ngx_proxy.p50_ms, ngx_proxy.p99_ms
    );
    println!(
        "  nginx static                   {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        ngx_static.rps, ngx_static.p50_ms, ngx_static.p99_ms
    );
    for (name, g) in [("core over gRPC", &gw), ("core in process", &up)] {
        println!("  gateway, {name}:");
        println!("    rps ratio gateway / nginx proxy = {:.2}x (target >= 0.80)", g.rps / ngx_proxy.rps);
        println!("    rps ratio gateway / direct gRPC = {:.2}x", g.rps / grpc_rps);
        println!(
            "    p99 gateway {:.2} ms vs bound 1.15 x (gRPC p99 {:.2} + nginx hop {:.2}) = {:.2} ms -> {:.2}x of bound (target <= 1.00)",
            g.p99_ms,
            grpc_p99,
            hop,
            bound,
            g.p99_ms / bound
        );
    }

    store.close().await;
    db.drop_pg().await;
}

//! Two `sigess worker` processes on one PostgreSQL database over 10,000 changes, delivering
//! through the webhook adapter to a loopback peer that counts by idempotency key: each
//! change reaches the peer exactly once in effect and the changes of one person arrive in
//! commit order, even when one worker is killed with SIGKILL mid-run and started again
//! (its claims come back after the lease; redeliveries are repeats of the same key).
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
    testkit::TestDb,
};

/// (idempotency key, record id, version) in arrival order.
type Seen = Arc<Mutex<Vec<(String, String, i64)>>>;

async fn hook(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    seen.lock().unwrap().push((key, v["id"].as_str().unwrap_or_default().to_string(), v["version"].as_i64().unwrap_or(0)));
    StatusCode::NO_CONTENT
}

fn worker(db: &str, hook: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sigess"))
        .args(["worker", "--database-url", db, "--webhook-url", hook, "--webhook-kinds", "persona"])
        .args(["--delivery-lease", "5", "--delivery-poll-ms", "50", "--http-addr", "127.0.0.1:0", "--db-max-connections", "6"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn operator() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "op-m01".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "test".into(),
        request_id: "t".into(),
    }
}

fn persona(i: usize) -> pb::Persona {
    // The codice fiscale must differ: the surname's consonants spell i % 1000, the birth
    // date cycles through 1,680 days; together unique well beyond the runs here.
    const C: [char; 10] = ['B', 'C', 'D', 'F', 'G', 'L', 'M', 'N', 'P', 'R'];
    let n = i % 1000;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_deliver_each_change_once_across_a_kill() {
    let Some(db) = TestDb::postgres("sigess_workers").await else { return };
    let url = db.url.clone();
    let mut opts = StoreOptions::new(&url);
    opts.max_connections = 8;
    let store = Store::open(&opts).await.unwrap();

    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route("/hook", post(hook)).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut a = worker(&url, &hook_url);
    let mut b = worker(&url, &hook_url);

    // 2,500 people, each created and updated three times: 10,000 changes, four writers.
    const PEOPLE: usize = 2500;
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..PEOPLE).step_by(4) {
                let mut p = store.create(&operator(), persona(i)).await.unwrap();
                for u in 0..3 {
                    p.contatti = Some(pb::Contatti { telefono: format!("06{u:08}"), ..Default::default() });
                    p = store.update(&operator(), p).await.unwrap();
                }
                ids.push(p.meta.unwrap().id);
            }
            ids
        }));
    }

    // Kill one worker with SIGKILL once deliveries are well under way, then start it again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 3000 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let killed_at = seen.lock().unwrap().len();
    let mut ids = Vec::new();
    for w in writers {
        ids.extend(w.await.unwrap());
    }
    let mut a = worker(&url, &hook_url);

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let distinct = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect::<HashSet<_>>().len();
        if distinct == 10_000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {distinct} of 10000 changes delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill().unwrap();
    b.kill().unwrap();
    let _ = a.wait();
    let _ = b.wait();

    let seen = seen.lock().unwrap().clone();
    // Exactly once in effect: every key, and repeats only of keys already seen, only as
    // many as the killed worker could hold in flight.
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut order: HashMap<&str, Vec<i64>> = HashMap::new();
    for (key, id, version) in &seen {
        if first.insert(key.as_str(), 1).is_none() {
            order.entry(id.as_str()).or_default().push(*version);
        }
    }
    assert_eq!(first.len(), 10_000);
    let repeats = seen.len() - 10_000;
    assert!(repeats <= 64 * 2, "{repeats} repeats: more than the killed worker held in flight");
    for id in &ids {
        assert_eq!(order.get(id.as_str()).cloned().unwrap_or_default(), vec![1, 2, 3, 4], "one person's changes in commit order");
    }
    eprintln!("delivered 10000 changes with {repeats} idempotent repeats; worker killed after {killed_at} arrivals");
    store.close().await;
    db.drop_pg().await;
}

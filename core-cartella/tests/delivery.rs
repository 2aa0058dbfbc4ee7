//! The delivery engine against a real HTTP peer on loopback, through the webhook adapter:
//! exactly-once effect by idempotency key and order per subject, with one engine and with
//! two sharing one PostgreSQL database; dead letters for poison changes that do not hold
//! other subjects back, retried through `DeliveryService` once the cause is fixed; a peer
//! answering 500, 429 with `Retry-After` and timing out, retried with backoff and no busy
//! loop; replay.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use cartella_proto::v1::{self as pb, delivery_service_client::DeliveryServiceClient};
use common::{Bearer, Hub};
use core_cartella::testkit::TestDb;
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    delivery::{Engine, EngineConfig},
    store::{Store, StoreOptions},
};
use tonic::transport::Channel;

/// What the peer does with one request.
#[derive(Clone, Debug)]
enum Act {
    Ok,
    Status(u16, Option<u64>),
    Sleep(Duration),
}

type Script = Box<dyn FnMut(&str, usize) -> Act + Send>;

/// One request the peer accepted: key, subject, record id, version, when.
type Arrival = (String, String, String, i64, Instant);

/// The loopback peer: records every request it accepts.
#[derive(Clone)]
struct Peer {
    seen: Arc<Mutex<Vec<Arrival>>>,
    script: Arc<Mutex<Script>>,
    url: String,
}

async fn hook(State(p): State<Peer>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let subject = headers.get("x-sigess-subject").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let n = p.seen.lock().unwrap().len();
    let act = (p.script.lock().unwrap())(&subject, n);
    match act {
        Act::Ok => {
            let id = v["id"].as_str().unwrap_or_default().to_string();
            p.seen.lock().unwrap().push((key, subject, id, v["version"].as_i64().unwrap_or(0), Instant::now()));
            StatusCode::NO_CONTENT.into_response()
        }
        Act::Status(code, after) => {
            let mut r = StatusCode::from_u16(code).unwrap().into_response();
            if let Some(s) = after {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Act::Sleep(d) => {
            tokio::time::sleep(d).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

impl Peer {
    async fn start(script: Script) -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let p = Peer { seen: Arc::default(), script: Arc::new(Mutex::new(script)), url };
        let app = Router::new().route("/hook", post(hook)).with_state(p.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        p
    }

    fn seen(&self) -> Vec<Arrival> {
        self.seen.lock().unwrap().clone()
    }

    fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }
}

fn webhook(url: &str, timeout_secs: u64) -> Arc<dyn adapter_contract::Runner> {
    let args = webhook::WebhookArgs { url: Some(url.into()), kinds: vec!["persona".into()], secret: None, timeout_secs };
    adapter_contract::register(webhook::Webhook::from_args(&args).unwrap().unwrap())
}

fn fast() -> EngineConfig {
    EngineConfig {
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(2),
        lease: Duration::from_secs(30),
        housekeeping: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

fn operator(ufficio: &str) -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: format!("op-{ufficio}"),
        ente: "H501".into(),
        ufficio: Some(ufficio.into()),
        roles: vec![Role::Operatore],
        purpose: "test".into(),
        request_id: "t".into(),
    }
}

/// A fake person; `i` makes the codice fiscale unique.
fn persona(i: usize) -> pb::Persona {
    let cf = core_cartella::domain::codice_fiscale::compose(
        "Prova",
        &format!("Nome{i}"),
        1950 + (i % 50) as i32,
        1 + (i % 12) as u8,
        1 + (i % 28) as u8,
        false,
        "H501",
    );
    pb::Persona {
        codice_fiscale: cf,
        cognome: "Prova".into(),
        nome: format!("Nome{i}"),
        sesso: pb::Sesso::Maschio as i32,
        data_nascita: format!("{}-{:02}-{:02}", 1950 + (i % 50), 1 + (i % 12), 1 + (i % 28)),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    }
}

/// Creates `people` persons and updates each `updates` times, from `writers` tasks.
/// Returns the persona ids.
async fn write_changes(store: &Store, people: usize, updates: usize, writers: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let caller = operator("M01");
            let mut ids = Vec::new();
            for i in (w..people).step_by(writers) {
                let mut p = store.create(&caller, persona(i)).await.unwrap();
                for u in 0..updates {
                    p.contatti = Some(pb::Contatti { telefono: format!("06{u:08}"), ..Default::default() });
                    p = store.update(&caller, p).await.unwrap();
                }
                ids.push(p.meta.unwrap().id);
            }
            ids
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.unwrap());
    }
    out
}

/// Every change of every person reached the peer once in effect (by key), and the first
/// arrivals of each person's changes are in version order.
fn check_exactly_once_in_order(seen: &[Arrival], ids: &[String], per_person: i64) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut order: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (i, (key, _subject, id, version, _)) in seen.iter().enumerate() {
        if first.insert(key.as_str(), i).is_none() {
            order.entry(id.as_str()).or_default().push(*version);
        }
    }
    assert_eq!(first.len(), ids.len() * per_person as usize, "every change delivered");
    for id in ids {
        let v = order.get(id.as_str()).unwrap_or_else(|| panic!("nothing delivered for a person"));
        let want: Vec<i64> = (1..=per_person).collect();
        assert_eq!(v, &want, "the changes of one person arrive in commit order");
    }
}

async fn open(db: &TestDb) -> Store {
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 10;
    Store::open(&opts).await.unwrap()
}

async fn delivers_each_change_once_in_order(db: &TestDb) {
    let store = open(db).await;
    let peer = Peer::start(Box::new(|_, _| Act::Ok)).await;
    let ids = write_changes(&store, 60, 2, 3).await;
    let engine = Engine::new(store.clone(), vec![webhook(&peer.url, 2)], fast(), None);
    engine.drain(Duration::from_secs(30)).await.unwrap();
    let seen = peer.seen();
    assert_eq!(seen.len(), 180, "no repeats without failures");
    check_exactly_once_in_order(&seen, &ids, 3);
    let stats = store.delivery_stats().await.unwrap();
    let s = stats.iter().find(|s| s.adapter == "webhook").unwrap();
    assert_eq!((s.pending, s.inflight, s.dead, s.delivered), (0, 0, 0, 180));
    // Nothing new: a second drain delivers nothing more.
    engine.drain(Duration::from_secs(5)).await.unwrap();
    assert_eq!(peer.seen().len(), 180);
    store.close().await;
}

async fn poison_is_parked_and_retried_after_the_fix(db: &TestDb) {
    let hub = Hub::start(db).await;
    let store = hub.store.clone();
    let ids = write_changes(&store, 20, 0, 1).await;
    let poison = format!("persona:{}", ids[7]);
    let p2 = poison.clone();
    let peer = Peer::start(Box::new(move |subject, _| if subject == p2 { Act::Status(422, None) } else { Act::Ok })).await;
    let engine = Engine::new(store.clone(), vec![webhook(&peer.url, 2)], fast(), None);
    engine.drain(Duration::from_secs(20)).await.unwrap();
    assert_eq!(peer.seen().len(), 19, "every other subject flowed");

    let admin =
        hub.signer.mint(&Caller { ufficio: None, roles: vec![Role::Amministratore], ..operator("M01") }, Duration::from_secs(600)).unwrap();
    let ch = Channel::from_shared(format!("http://{}", hub.addr)).unwrap().connect().await.unwrap();
    let mut api = DeliveryServiceClient::with_interceptor(ch.clone(), Bearer::new(&admin));
    let dead = api
        .list_deliveries(pb::ListDeliveriesRequest {
            adapter: "webhook".into(),
            state: pb::DeliveryState::Dead as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subject, poison);
    assert_eq!(dead[0].last_error_code, "HTTP_422");
    assert_eq!(dead[0].attempts, 1, "a permanent failure is not retried by itself");

    // An operator of a Municipio may not operate deliveries.
    let mut op = DeliveryServiceClient::with_interceptor(ch.clone(), Bearer::new(&hub.token(Some("M01"), &[Role::Operatore])));
    let refused = op.retry_delivery(pb::DeliveryRef { id: dead[0].id }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // The cause is fixed at the peer; the dead letter is retried and delivered.
    peer.set(Box::new(|_, _| Act::Ok));
    let again = api.retry_delivery(pb::DeliveryRef { id: dead[0].id }).await.unwrap().into_inner();
    assert_eq!(again.state, pb::DeliveryState::Pending as i32);
    engine.drain(Duration::from_secs(20)).await.unwrap();
    assert_eq!(peer.seen().len(), 20);
    let done = api.get_delivery(pb::DeliveryRef { id: dead[0].id }).await.unwrap().into_inner();
    assert_eq!(done.state, pb::DeliveryState::Delivered as i32);
    // A delivered job can be neither retried nor discarded.
    let e = api.discard_delivery(pb::DiscardDeliveryRequest { id: done.id, reason: "non serve".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let e = api.discard_delivery(pb::DiscardDeliveryRequest { id: 999_999, reason: "non serve".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    // A second poison, discarded with a reason that lands in the audit trail.
    peer.set(Box::new(|_, _| Act::Status(400, None)));
    let mut c = store.get::<pb::Persona>(&operator("M01"), &ids[3], "test").await.unwrap();
    c.contatti = Some(pb::Contatti { telefono: "0612345678".into(), ..Default::default() });
    store.update(&operator("M01"), c).await.unwrap();
    engine.drain(Duration::from_secs(20)).await.unwrap();
    let dead = api
        .list_deliveries(pb::ListDeliveriesRequest { state: pb::DeliveryState::Dead as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(dead.len(), 1);
    let bad = api.discard_delivery(pb::DiscardDeliveryRequest { id: dead[0].id, reason: "x".into() }).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let gone =
        api.discard_delivery(pb::DiscardDeliveryRequest { id: dead[0].id, reason: "evento superato".into() }).await.unwrap().into_inner();
    assert_eq!(gone.state, pb::DeliveryState::Discarded as i32);
    assert_eq!(gone.discard_reason, "evento superato");
    assert_eq!(store.audit_count_delivery(dead[0].id, "delivery-discard").await.unwrap(), 1);

    // Adapters and their queues.
    let adapters = api.list_adapters(pb::ListAdaptersRequest {}).await.unwrap().into_inner().adapters;
    let w = adapters.iter().find(|a| a.id == "webhook").unwrap();
    assert_eq!((w.pending, w.inflight, w.dead, w.delivered), (0, 0, 0, 20));
    hub.stop().await;
}

async fn a_failing_peer_is_retried_with_backoff(db: &TestDb) {
    let store = open(db).await;
    // 500 for the first requests, then 429 with Retry-After 1 s, then slower than the
    // adapter's timeout, then fine.
    let started = Instant::now();
    let calls = Arc::new(Mutex::new(0usize));
    let c2 = Arc::clone(&calls);
    let peer = Peer::start(Box::new(move |_, _| {
        *c2.lock().unwrap() += 1;
        let t = started.elapsed();
        if t < Duration::from_millis(800) {
            Act::Status(500, None)
        } else if t < Duration::from_millis(1600) {
            Act::Status(429, Some(1))
        } else if t < Duration::from_millis(2600) {
            Act::Sleep(Duration::from_millis(1500))
        } else {
            Act::Ok
        }
    }))
    .await;
    let ids = write_changes(&store, 10, 0, 1).await;
    let engine = Engine::new(store.clone(), vec![webhook(&peer.url, 1)], fast(), None);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = engine.clone().spawn(async move {
        let _ = rx.await;
    });
    // While the peer fails, readiness reports the adapter's oldest pending change.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = core_cartella::delivery::stale_adapters(&store, Duration::from_millis(100)).await.unwrap();
    assert_eq!(stale.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), vec!["webhook"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while peer.seen().iter().map(|s| s.0.clone()).collect::<std::collections::HashSet<_>>().len() < 10 {
        assert!(Instant::now() < deadline, "not everything delivered once the peer came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(());
    run.await.unwrap();
    check_exactly_once_in_order(&peer.seen(), &ids, 1);
    assert!(core_cartella::delivery::stale_adapters(&store, Duration::ZERO).await.unwrap().is_empty(), "nothing pending once delivered");
    let attempts = *calls.lock().unwrap();
    // 10 jobs over ~3 s of outage with backoff from 200 ms: a busy loop would make thousands.
    assert!(attempts <= 10 * 12, "{attempts} requests: retries must back off");
    assert!(attempts > 10, "the failures were retried");
    store.close().await;
}

async fn replay_repeats_with_the_same_keys(db: &TestDb) {
    let hub = Hub::start(db).await;
    let store = hub.store.clone();
    let peer = Peer::start(Box::new(|_, _| Act::Ok)).await;
    let ids = write_changes(&store, 5, 1, 1).await;
    let engine = Engine::new(store.clone(), vec![webhook(&peer.url, 2)], fast(), None);
    engine.drain(Duration::from_secs(20)).await.unwrap();
    assert_eq!(peer.seen().len(), 10);
    let admin =
        hub.signer.mint(&Caller { ufficio: None, roles: vec![Role::Amministratore], ..operator("M01") }, Duration::from_secs(600)).unwrap();
    let ch = Channel::from_shared(format!("http://{}", hub.addr)).unwrap().connect().await.unwrap();
    let mut api = DeliveryServiceClient::with_interceptor(ch, Bearer::new(&admin));
    let r = api.replay(pb::ReplayRequest { adapter: "webhook".into(), cursor: String::new() }).await.unwrap().into_inner();
    assert_eq!(r.generation, 1);
    let e = api.replay(pb::ReplayRequest { adapter: "nessuno".into(), cursor: String::new() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = api.replay(pb::ReplayRequest { adapter: "webhook".into(), cursor: "x".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    engine.drain(Duration::from_secs(20)).await.unwrap();
    let seen = peer.seen();
    assert_eq!(seen.len(), 20, "every change sent again");
    check_exactly_once_in_order(&seen, &ids, 2);
    hub.stop().await;
}

on_both_backends!(
    delivers_each_change_once_in_order,
    poison_is_parked_and_retried_after_the_fix,
    a_failing_peer_is_retried_with_backoff,
    replay_repeats_with_the_same_keys,
    queued_changes_are_coalesced,
);

/// Two engines, each with its own pool, share 2,000 changes of 500 people on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_share_the_work_on_postgres() {
    let Some(db) = TestDb::postgres("sigess_test").await else { return };
    let store = open(&db).await;
    let peer = Peer::start(Box::new(|_, _| Act::Ok)).await;
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let s = open(&db).await;
        let engine = Engine::new(s, vec![webhook(&peer.url, 5)], fast(), None);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        runs.push(engine.spawn(async move {
            let _ = rx.await;
        }));
        stops.push(tx);
    }
    let ids = write_changes(&store, 500, 3, 4).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while peer.seen().len() < 2000 {
        assert!(Instant::now() < deadline, "only {} of 2000 delivered", peer.seen().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for tx in stops {
        let _ = tx.send(());
    }
    for r in runs {
        r.await.unwrap();
    }
    let seen = peer.seen();
    assert_eq!(seen.len(), 2000, "no change delivered twice by two workers");
    check_exactly_once_in_order(&seen, &ids, 4);
    store.close().await;
    db.drop_pg().await;
}

/// An adapter whose deliveries depend only on the state at delivery time: it coalesces the
/// changes of one person and records which change each delivery was made for.
struct Latest {
    sent: Arc<Mutex<Vec<(String, i64)>>>,
}

impl adapter_contract::Adapter for Latest {
    type Input = ();
    type Delivery = (String, i64);

    fn id(&self) -> &'static str {
        "latest"
    }

    fn follows(&self) -> &'static [&'static str] {
        &["persona"]
    }

    fn coalesce(&self, change: &adapter_contract::Change) -> Option<String> {
        Some(change.id.clone())
    }

    async fn load<'a>(
        &'a self,
        _change: &'a adapter_contract::Change,
        _source: &'a dyn adapter_contract::Source,
    ) -> Result<(), adapter_contract::Outcome> {
        Ok(())
    }

    fn map(
        &self,
        change: &adapter_contract::Change,
        _input: (),
    ) -> Result<Vec<adapter_contract::Planned<(String, i64)>>, adapter_contract::Reason> {
        Ok(vec![adapter_contract::Planned {
            key: format!("{}:{}", change.id, change.version),
            delivery: (change.id.clone(), change.version),
        }])
    }

    async fn deliver<'a>(&'a self, planned: &'a adapter_contract::Planned<(String, i64)>) -> adapter_contract::Outcome {
        self.sent.lock().unwrap().push(planned.delivery.clone());
        adapter_contract::Outcome::Delivered
    }
}

fn admin() -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "admin".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Amministratore],
        purpose: "verifica".into(),
        request_id: "t".into(),
    }
}

/// Plans the `latest` adapter until a committed change is visible to the feed (on a shared
/// PostgreSQL server older transactions elsewhere can hold it back for a moment).
async fn plan_visible(store: &Store, keys: &(dyn Fn(&adapter_contract::Change) -> (String, String) + Sync)) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = store.delivery_plan("latest", &["persona"], keys, 100).await.unwrap().unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Changes of one subject queued before one of them is claimed are delivered by that one
/// job; a change queued after the claim is not covered by it and goes on its own.
async fn queued_changes_are_coalesced(db: &TestDb) {
    let store = open(db).await;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let runner = adapter_contract::register(Latest { sent: Arc::clone(&sent) });
    let ids = write_changes(&store, 3, 4, 1).await;
    let engine = Engine::new(store.clone(), vec![Arc::clone(&runner)], fast(), None);
    engine.drain(Duration::from_secs(30)).await.unwrap();
    let got = sent.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "one delivery per person for 15 queued changes: {got:?}");
    let filter = core_cartella::store::delivery::JobFilter { adapter: "latest".into(), ..Default::default() };
    let (jobs, _) = store.delivery_list(&admin(), &filter, 0, 500).await.unwrap();
    assert_eq!(jobs.len(), 15);
    assert!(jobs.iter().all(|j| j.state == core_cartella::store::delivery::JobState::Delivered), "{jobs:?}");
    for id in &ids {
        let mine: Vec<_> = jobs.iter().filter(|j| &j.change.id == id).collect();
        let first = mine.iter().min_by_key(|j| j.id).unwrap();
        assert_eq!(first.covered_by, None);
        assert!(mine.iter().filter(|j| j.id != first.id).all(|j| j.covered_by == Some(first.id)), "{mine:?}");
    }

    // Claimed, then a new change is queued before the claimed job ends: not covered.
    let caller = operator("M01");
    let mut p = store.get::<pb::Persona>(&caller, &ids[0], "verifica").await.unwrap();
    p.contatti = Some(pb::Contatti { telefono: "0611111111".into(), ..Default::default() });
    let p = store.update(&caller, p).await.unwrap();
    let keys = |c: &adapter_contract::Change| (c.default_subject(), c.id.clone());
    assert_eq!(plan_visible(&store, &keys).await, 1);
    let claimed = store.delivery_claim("latest", "test-claim", 10, 30_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].cover_upto, Some(claimed[0].id), "nothing else queued: it covers only itself");
    let mut p2 = p.clone();
    p2.contatti = Some(pb::Contatti { telefono: "0622222222".into(), ..Default::default() });
    store.update(&caller, p2).await.unwrap();
    assert_eq!(plan_visible(&store, &keys).await, 1);
    let finished = core_cartella::store::delivery::Finish::Delivered { keys: vec![] };
    store.delivery_finish("test-claim", &[(claimed[0].id, finished)]).await.unwrap();
    let (open_jobs, _) = store
        .delivery_list(
            &admin(),
            &core_cartella::store::delivery::JobFilter {
                adapter: "latest".into(),
                state: Some(core_cartella::store::delivery::JobState::Pending),
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(open_jobs.len(), 1, "the change queued after the claim still goes on its own");
    store.close().await;
}

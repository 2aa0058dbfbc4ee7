//! The Regione Lazio journey through core and the delivery engine, against the real FHIR R4
//! server of `conformance/fhir` (Medplum, in Node), on SQLite and on PostgreSQL (a fresh
//! database per test; under CI=true PostgreSQL, node and the server install must be there):
//! records written through core's `Store` by an operator reach the server as linked
//! resources only when a condivisione to `REGIONE` is the basis; updates bump versions
//! without duplicates; an engine dropped mid-run and a second one draining after the lease
//! leave exactly one of each resource; an outage is retried and then delivered; a withdrawn
//! basis sends an inactive Consent and nothing further. All people are fakes built with the
//! codice fiscale algorithm.
#![allow(clippy::unwrap_used)]

#[path = "../../adapters/regione-lazio/tests/peer/mod.rs"]
mod peer;

use std::time::Duration;

use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    delivery::{Engine, EngineConfig},
    domain::codice_fiscale::compose,
    store::{
        Store,
        delivery::{JobFilter, JobState},
    },
    testkit::{TestBackend, TestDb},
};
use regione_lazio::{Config, RegioneLazio, mapping::CF_SYSTEM};
use serde_json::Value;

/// The resource types one shared cartella (persona, cartella, PAI with a goal, one
/// prestazione, the consent) becomes, one each.
const PER_CARTELLA: [&str; 6] = ["Patient", "EpisodeOfCare", "Goal", "CarePlan", "ServiceRequest", "Consent"];

fn operatore() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "op-test".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "test".into(),
        request_id: "t".into(),
    }
}

fn amministratore() -> Caller {
    Caller { subject: "admin-test".into(), ufficio: None, roles: vec![Role::Amministratore], ..operatore() }
}

fn id(meta: &Option<pb::Meta>) -> String {
    meta.as_ref().unwrap().id.clone()
}

fn fast() -> EngineConfig {
    EngineConfig {
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(1),
        lease: Duration::from_secs(30),
        housekeeping: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

fn engine(store: &Store, base: &str, cfg: EngineConfig) -> Engine {
    let adapter = adapter_contract::register(RegioneLazio::new(Config::plain(base)).unwrap());
    Engine::new(store.clone(), vec![adapter], cfg, None)
}

/// A day relative to today (UTC), as core and the adapter compare dates.
fn day(offset: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(offset);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// One person's records as written through core.
struct Written {
    cf: String,
    pai: pb::Pai,
    prestazione: pb::Prestazione,
    condivisione: Option<pb::Condivisione>,
}

/// Persona, open cartella, PAI and prestazione for the `i`-th fake person in M01, and, when
/// `shared`, a condivisione to `REGIONE` valid for a year (the recorded consent).
async fn write(store: &Store, i: usize, shared: bool) -> Written {
    let op = operatore();
    let nome = format!("Nome{}", char::from(b'a' + (i % 26) as u8));
    let year = 1940 + (i % 60) as i32;
    let cf = compose("Prova", &nome, year, 1 + (i % 12) as u8, 1 + (i / 12 % 28) as u8, i.is_multiple_of(2), "H501");
    let p = store
        .create(
            &op,
            pb::Persona {
                codice_fiscale: cf.clone(),
                cognome: "Prova".into(),
                nome,
                sesso: if i.is_multiple_of(2) { pb::Sesso::Femmina } else { pb::Sesso::Maschio } as i32,
                data_nascita: format!("{year}-{:02}-{:02}", 1 + (i % 12), 1 + (i / 12 % 28)),
                luogo_nascita: "H501".into(),
                cittadinanza: "380".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let c = store
        .create(
            &op,
            pb::Cartella {
                persona_id: id(&p.meta),
                area_utenza: pb::AreaUtenza::DisabilitaNonAutosufficienza as i32,
                stato: pb::StatoCartella::Aperta as i32,
                data_apertura: "2026-01-10".into(),
                operatore_responsabile: "op-1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cartella = id(&c.meta);
    let pai = store
        .create(
            &op,
            pb::Pai {
                cartella_id: cartella.clone(),
                data_inizio: "2026-01-15".into(),
                stato: pb::StatoPai::Attivo as i32,
                obiettivi: vec![pb::ObiettivoPai {
                    descrizione: "Mantenere la permanenza a domicilio".into(),
                    indicatore: "Ore di assistenza".into(),
                    scadenza: "2026-06-30".into(),
                    raggiunto: false,
                }],
                interventi: vec![pb::InterventoPianificato {
                    codice_prestazione: "A1.01".into(),
                    descrizione: "Assistenza domiciliare socio-assistenziale".into(),
                    frequenza: "3 volte a settimana".into(),
                    data_inizio: "2026-02-01".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let prestazione = store
        .create(
            &op,
            pb::Prestazione {
                cartella_id: cartella.clone(),
                codice_prestazione: "A1.01".into(),
                denominazione: "Assistenza domiciliare socio-assistenziale".into(),
                carattere: pb::CaratterePrestazione::Periodica as i32,
                prova_mezzi: pb::ProvaMezzi::Nessuna as i32,
                data_inizio: "2026-02-01".into(),
                stato: pb::StatoPrestazione::Attiva as i32,
                importo_mensile: Some(25_000),
                protocollo_domanda: format!("RC-M01-{:06}", 100_000 + i),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let condivisione = if shared {
        Some(
            store
                .create(
                    &op,
                    pb::Condivisione {
                        cartella_id: cartella.clone(),
                        ufficio_destinatario: "REGIONE".into(),
                        base_giuridica: "consenso dell'interessato".into(),
                        valida_fino_al: day(365),
                        scrittura: false,
                        ..Default::default()
                    },
                )
                .await
                .unwrap(),
        )
    } else {
        None
    };
    Written { cf, pai, prestazione, condivisione }
}

async fn all_of(base: &str, t: &str) -> Vec<Value> {
    let b = peer::get(base, &format!("{t}?_count=1000")).await;
    b["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

async fn count(base: &str, t: &str) -> usize {
    all_of(base, t).await.len()
}

async fn patients_with_cf(base: &str, cf: &str) -> Vec<Value> {
    let b = peer::get(base, &format!("Patient?identifier={CF_SYSTEM}|{cf}")).await;
    b["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

/// The server's version id of a resource (Medplum's are opaque, not counters).
fn version(r: &Value) -> String {
    r["meta"]["versionId"].as_str().unwrap_or_else(|| panic!("no versionId: {}", r["meta"])).to_string()
}

/// How many versions the server keeps of a resource.
async fn versions(base: &str, r: &Value) -> usize {
    let h = peer::get(base, &format!("{}/{}/_history", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())).await;
    h["entry"].as_array().map_or(0, Vec::len)
}

/// Every per-cartella type holds exactly `n` resources, and each person sent is one Patient.
async fn exactly_one_each(base: &str, sent: &[&Written], n: usize) {
    for t in PER_CARTELLA {
        assert_eq!(count(base, t).await, n, "{t}");
    }
    for w in sent {
        assert_eq!(patients_with_cf(base, &w.cf).await.len(), 1, "one Patient per person sent");
    }
}

async fn jobs(store: &Store, state: Option<JobState>) -> Vec<core_cartella::store::delivery::Job> {
    let f = JobFilter { adapter: regione_lazio::ID.into(), state, subject: String::new() };
    store.delivery_list(&amministratore(), &f, 0, 1000).await.unwrap().0
}

async fn journey(backend: TestBackend) {
    let Some(server) = peer::start(0) else { return };
    let Some(db) = TestDb::new(backend, "sigess_regione").await else { return };
    let base = server.base();
    let store = db.store(5).await;
    let op = operatore();

    let shared = write(&store, 1, true).await;
    let private = write(&store, 2, false).await;
    let engine = engine(&store, &base, fast());
    engine.drain(Duration::from_secs(30)).await.unwrap();
    assert!(jobs(&store, Some(JobState::Dead)).await.is_empty(), "{:?}", jobs(&store, Some(JobState::Dead)).await);

    // The shared cartella is there, linked; the other person is not.
    exactly_one_each(&base, &[&shared], 1).await;
    assert!(patients_with_cf(&base, &private.cf).await.is_empty(), "no condivisione to REGIONE: nothing sent");
    let patient = &patients_with_cf(&base, &shared.cf).await[0];
    let patient_ref = format!("Patient/{}", patient["id"].as_str().unwrap());
    let eoc = &all_of(&base, "EpisodeOfCare").await[0];
    assert_eq!(eoc["patient"]["reference"], patient_ref);
    let care_plan = &all_of(&base, "CarePlan").await[0];
    assert_eq!(care_plan["subject"]["reference"], patient_ref);
    let sr = &all_of(&base, "ServiceRequest").await[0];
    assert_eq!(sr["basedOn"][0]["reference"], format!("CarePlan/{}", care_plan["id"].as_str().unwrap()));
    let consent = &all_of(&base, "Consent").await[0];
    assert_eq!((consent["status"].as_str(), &consent["patient"]["reference"]), (Some("active"), &Value::from(patient_ref.clone())));
    let plan_v = version(care_plan);
    let plan_n = versions(&base, care_plan).await;

    // An update through core: the CarePlan's version moves, nothing is duplicated.
    let mut pai = shared.pai.clone();
    pai.stato = pb::StatoPai::Concluso as i32;
    pai.data_fine = "2026-10-31".into();
    store.update(&op, pai).await.unwrap();
    engine.drain(Duration::from_secs(30)).await.unwrap();
    exactly_one_each(&base, &[&shared], 1).await;
    let care_plan = &all_of(&base, "CarePlan").await[0];
    assert_eq!(care_plan["status"], "completed");
    assert_ne!(version(care_plan), plan_v, "the CarePlan was updated in place");
    assert!(versions(&base, care_plan).await > plan_n, "a new version in the CarePlan's history");

    // Writes to the unshared cartella still send nothing.
    let mut other = private.prestazione.clone();
    other.importo_mensile = Some(30_000);
    store.update(&op, other).await.unwrap();
    engine.drain(Duration::from_secs(30)).await.unwrap();
    assert!(patients_with_cf(&base, &private.cf).await.is_empty());
    assert_eq!(count(&base, "Patient").await, 1);

    // The basis withdrawn (valid until yesterday): an inactive Consent, then nothing more.
    let mut c = shared.condivisione.clone().unwrap();
    c.valida_fino_al = day(-1);
    store.update(&op, c).await.unwrap();
    engine.drain(Duration::from_secs(30)).await.unwrap();
    let consent = &all_of(&base, "Consent").await[0];
    assert_eq!(consent["status"], "inactive");
    assert_eq!(consent["patient"]["reference"], patient_ref);
    exactly_one_each(&base, &[&shared], 1).await;
    let sr_before = all_of(&base, "ServiceRequest").await[0].clone();
    let sr_n = versions(&base, &sr_before).await;
    let mut p = shared.prestazione.clone();
    p.importo_mensile = Some(40_000);
    store.update(&op, p).await.unwrap();
    engine.drain(Duration::from_secs(30)).await.unwrap();
    let sr_after = &all_of(&base, "ServiceRequest").await[0];
    assert_eq!(version(sr_after), version(&sr_before), "no cartella data after the basis ended");
    assert_eq!(sr_after, &sr_before);
    assert_eq!(versions(&base, sr_after).await, sr_n);
    assert_eq!(count(&base, "ServiceRequest").await, 1);
    // The adapter restates the withdrawal with each later change of the cartella: the
    // Consent may gain a version, but stays the one Consent, inactive.
    let consent_now = all_of(&base, "Consent").await;
    assert_eq!(consent_now.len(), 1);
    assert_eq!(consent_now[0]["status"], "inactive");
    assert_eq!(consent_now[0]["id"], consent["id"]);
    assert!(jobs(&store, Some(JobState::Dead)).await.is_empty());

    store.close().await;
    db.drop_pg().await;
}

async fn engine_dropped_mid_run(backend: TestBackend) {
    let Some(server) = peer::start(0) else { return };
    let Some(db) = TestDb::new(backend, "sigess_regione").await else { return };
    let base = server.base();
    let store = db.store(5).await;
    const N: usize = 12;
    let mut written = Vec::new();
    for i in 0..N {
        written.push(write(&store, 10 + i, true).await);
    }

    // The first worker: a short lease, one job at a time so that work is still in flight
    // when it is dropped (the in-process stand-in for SIGKILL: no shutdown path runs).
    let cfg = EngineConfig { lease: Duration::from_secs(2), concurrency: 1, claim_batch: 4, ..fast() };
    let first = engine(&store, &base, cfg.clone()).spawn(std::future::pending());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&base, "Consent").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the first engine delivered nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.abort();
    let _ = first.await;
    let sent_before = count(&base, "Consent").await;
    assert!(sent_before < N, "the first engine was dropped before finishing ({sent_before} of {N})");
    let open = jobs(&store, Some(JobState::Inflight)).await.len() + jobs(&store, Some(JobState::Pending)).await.len();
    assert!(open > 0, "work was left behind by the dropped engine");

    // A second engine takes over after the lease and finishes: one of each, nothing lost.
    let second = engine(&store, &base, cfg);
    second.drain(Duration::from_secs(60)).await.unwrap();
    let refs: Vec<&Written> = written.iter().collect();
    exactly_one_each(&base, &refs, N).await;
    assert_eq!(count(&base, "Patient").await, N);
    assert!(jobs(&store, Some(JobState::Dead)).await.is_empty());
    assert!(jobs(&store, Some(JobState::Pending)).await.is_empty());
    assert!(jobs(&store, Some(JobState::Inflight)).await.is_empty());

    store.close().await;
    db.drop_pg().await;
}

async fn outage_then_delivered(backend: TestBackend) {
    let port = peer::free_port();
    let Some(server) = peer::start(port) else { return };
    let Some(db) = TestDb::new(backend, "sigess_regione").await else { return };
    let base = server.base();
    let store = db.store(5).await;
    server.kill();

    let w = write(&store, 40, true).await;
    let engine = engine(&store, &base, fast());
    // The server is down: the drain gives up after its wait with the jobs still pending.
    engine.drain(Duration::from_secs(3)).await.unwrap();
    let pending = jobs(&store, Some(JobState::Pending)).await;
    assert!(!pending.is_empty(), "undeliverable jobs stay pending");
    // The head of the cartella's queue is retried; the changes behind it wait their turn
    // (order per subject), unattempted.
    let codes: Vec<&str> = pending.iter().map(|j| j.last_error_code.as_str()).collect();
    assert!(codes.iter().all(|c| *c == "FHIR_UNREACHABLE" || c.is_empty()), "{codes:?}");
    let head = pending.iter().find(|j| j.last_error_code == "FHIR_UNREACHABLE").expect("a failed attempt recorded");
    assert!(head.attempts >= 2, "retried while the server was away: {} attempts", head.attempts);
    assert!(jobs(&store, Some(JobState::Dead)).await.is_empty(), "an outage is not a dead letter");
    assert!(jobs(&store, Some(JobState::Delivered)).await.is_empty());

    let server = peer::start(port).expect("restarted on the same port");
    engine.drain(Duration::from_secs(30)).await.unwrap();
    assert!(jobs(&store, Some(JobState::Pending)).await.is_empty());
    exactly_one_each(&server.base(), &[&w], 1).await;

    store.close().await;
    db.drop_pg().await;
}

/// Consent withdrawn through `RevokeCondivisione` (the operator's act, audited as a revoke):
/// the region gets the Consent `inactive`, and later changes of the cartella send nothing else.
async fn revoked_consent_is_sent_and_stops_deliveries(backend: TestBackend) {
    let Some(server) = peer::start(0) else { return };
    let Some(db) = TestDb::new(backend, "sigess_regione").await else { return };
    let base = server.base();
    let store = db.store(5).await;
    let w = write(&store, 50, true).await;
    let engine = engine(&store, &base, fast());
    engine.drain(Duration::from_secs(30)).await.unwrap();
    exactly_one_each(&base, &[&w], 1).await;
    let consent = all_of(&base, "Consent").await.remove(0);
    assert_eq!(consent["status"], "active");

    let c = w.condivisione.as_ref().unwrap();
    let revoked = store.revoke_condivisione(&operatore(), &id(&c.meta), "consenso revocato dall'interessato").await.unwrap();
    assert!(!revoked.revocata_il.is_empty());
    assert_eq!(store.audit_count(core_cartella::record::Kind::Condivisione, &id(&c.meta), "revoke").await.unwrap(), 1);
    engine.drain(Duration::from_secs(30)).await.unwrap();
    let now = all_of(&base, "Consent").await;
    assert_eq!(now.len(), 1, "the one Consent, updated");
    assert_eq!(now[0]["id"], consent["id"]);
    assert_eq!(now[0]["status"], "inactive");
    assert_ne!(version(&now[0]), version(&consent), "a new version of the Consent");

    let sr = all_of(&base, "ServiceRequest").await.remove(0);
    let mut p = w.prestazione.clone();
    p.importo_mensile = Some(41_000);
    store.update(&operatore(), p).await.unwrap();
    engine.drain(Duration::from_secs(30)).await.unwrap();
    let sr_after = all_of(&base, "ServiceRequest").await;
    assert_eq!(sr_after, vec![sr], "no cartella data after the consent was revoked");
    assert_eq!(all_of(&base, "Consent").await[0]["status"], "inactive");
    assert!(jobs(&store, Some(JobState::Dead)).await.is_empty());
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_consent_is_sent_and_stops_deliveries_sqlite() {
    revoked_consent_is_sent_and_stops_deliveries(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_consent_is_sent_and_stops_deliveries_postgres() {
    revoked_consent_is_sent_and_stops_deliveries(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_sqlite() {
    journey(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_postgres() {
    journey(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_dropped_mid_run_sqlite() {
    engine_dropped_mid_run(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_dropped_mid_run_postgres() {
    engine_dropped_mid_run(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_delivered_sqlite() {
    outage_then_delivered(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_delivered_postgres() {
    outage_then_delivered(TestBackend::Postgres).await;
}

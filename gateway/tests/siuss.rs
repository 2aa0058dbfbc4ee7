//! The SIUSS flow ledger and the WaaS API end to end: records written through the store,
//! the worker draining the outbox, flows served and acknowledged through the real gateway
//! router on 127.0.0.1:0. The ledger tests run on SQLite and on PostgreSQL (a fresh
//! database per test; under CI=true PostgreSQL must answer). Every flow produced is checked
//! with xmllint against INPS's XSDs, and written to `$SIUSS_FLOWS_DIR` when set, for the
//! conformance script. All people are fakes built with the codice fiscale algorithm.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use base64::Engine;
use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{
        Store, StoreOptions,
        flussi::{EsitiError, Esito, StatoFlusso},
    },
    testkit::{TestBackend, TestDb},
};
use gateway::{
    adapters::siuss_drain,
    app::{self, AppConfig, Parts},
    auth::Authenticator,
    core_link::CoreLink,
    siuss_config::{SiussConfig, system_caller},
    stack::limit::RateConfig,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use siuss::from_core::EnteSiuss;
use tokio::net::TcpListener;

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

fn inps() -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "inps-pdnd".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Siuss],
        purpose: "acquisizione SIUSS".into(),
        request_id: "t".into(),
    }
}

fn ente() -> EnteSiuss {
    EnteSiuss {
        codice: "H501".into(),
        denominazione: "Roma Capitale".into(),
        indirizzo: "H501".into(),
        cf_operatore: compose("Operatore", "Prova", 1980, 1, 1, false, "H501"),
    }
}

/// Retries every SIUSS dead letter, as an administrator does through `DeliveryService`.
async fn retry_dead(store: &Store) -> usize {
    let admin = core_cartella::auth::Caller {
        kind: core_cartella::auth::CallerKind::Sistema,
        subject: "amministratore".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![core_cartella::auth::Role::Amministratore],
        purpose: "ripresa dei conferimenti".into(),
        request_id: "t".into(),
    };
    let filter = core_cartella::store::delivery::JobFilter {
        adapter: "siuss".into(),
        state: Some(core_cartella::store::delivery::JobState::Dead),
        ..Default::default()
    };
    let (dead, _) = store.delivery_list(&admin, &filter, 0, 500).await.unwrap();
    for j in &dead {
        store.delivery_retry(&admin, j.id).await.unwrap();
    }
    dead.len()
}

/// Applies every change of the outbox with the SIUSS adapter; none may fail.
async fn drain(store: &Store, e: &EnteSiuss) {
    let out = siuss_drain(store, &SiussConfig { ente: e.clone() }).await.unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
}

fn id(meta: &Option<pb::Meta>) -> String {
    meta.as_ref().unwrap().id.clone()
}

/// A person with an open cartella in `area`; returns the cartella id.
async fn cartella(store: &Store, cognome: &str, area: pb::AreaUtenza) -> String {
    cartella_cf(store, cognome, area, true).await
}

async fn cartella_cf(store: &Store, cognome: &str, area: pb::AreaUtenza, cf: bool) -> String {
    let p = store
        .create(
            &operatore(),
            pb::Persona {
                codice_fiscale: if cf { compose(cognome, "Prova", 1960, 4, 9, true, "H501") } else { String::new() },
                cognome: cognome.into(),
                nome: "Prova".into(),
                sesso: pb::Sesso::Femmina as i32,
                data_nascita: "1960-04-09".into(),
                luogo_nascita: "H501".into(),
                cittadinanza: "380".into(),
                residenza: Some(pb::Indirizzo {
                    codice_nazione: "380".into(),
                    codice_regione: "12".into(),
                    codice_comune: "058091".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let c = store
        .create(
            &operatore(),
            pb::Cartella {
                persona_id: id(&p.meta),
                area_utenza: area as i32,
                stato: pb::StatoCartella::Aperta as i32,
                data_apertura: "2025-01-10".into(),
                operatore_responsabile: "op-1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    id(&c.meta)
}

fn prestazione(cartella_id: &str, mensile: i64) -> pb::Prestazione {
    pb::Prestazione {
        cartella_id: cartella_id.into(),
        codice_prestazione: "A1.01".into(),
        denominazione: "Assistenza domiciliare socio-assistenziale".into(),
        carattere: pb::CaratterePrestazione::Periodica as i32,
        prova_mezzi: pb::ProvaMezzi::Nessuna as i32,
        protocollo_domanda: "RC-M01-100001".into(),
        data_inizio: "2025-02-01".into(),
        data_fine: "2025-12-31".into(),
        importo_mensile: Some(mensile),
        minuti_servizio_mensili: Some(600),
        stato: pb::StatoPrestazione::Attiva as i32,
        ..Default::default()
    }
}

/// xmllint against the XSD of the flow's type; also keeps the flow for the conformance script.
fn check_xsd(id_flusso: &str, xml: &[u8]) {
    let xsd_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/siuss");
    if let Ok(dir) = std::env::var("SIUSS_FLOWS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{id_flusso}.xml")), xml).unwrap();
    }
    let xsd = xsd_dir.join(if id_flusso.contains(".SINBA.") { "SINBA.xsd" } else { "PS_PSA_SINA201812.xsd" });
    if !xsd.exists() || std::process::Command::new("xmllint").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "xmllint and ../shared/siuss are required under CI=true");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.xml");
    std::fs::write(&f, xml).unwrap();
    let out = std::process::Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&f).output().unwrap();
    assert!(out.status.success(), "{id_flusso} not valid: {}", String::from_utf8_lossy(&out.stderr));
}

async fn ledger(backend: TestBackend) {
    let Some(db) = TestDb::new(backend, "sigess_siuss").await else { return };
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let e = ente();

    // A sendable prestazione becomes a ready flow.
    let c1 = cartella(&store, "Verdi", pb::AreaUtenza::PovertaEsclusioneSociale).await;
    let p1 = store.create(&operatore(), prestazione(&c1, 25_000)).await.unwrap();
    let p1_id = id(&p1.meta);
    drain(&store, &e).await;
    let s = store.siuss_stato(&operatore(), &p1_id, "").await.unwrap();
    assert!(s.valutata && s.mancanze.is_empty());
    assert_eq!(s.flussi.len(), 1);
    assert_eq!((s.flussi[0].operazione.as_str(), s.flussi[0].stato), ("I", StatoFlusso::Ready));
    let first = s.flussi[0].id_flusso.clone();
    assert!(first.starts_with("H501.PS.") && first.len() == "H501.PS.20261123.0000001".len());

    // Draining again produces nothing new (idempotent effect).
    drain(&store, &e).await;
    assert_eq!(store.siuss_stato(&operatore(), &p1_id, "").await.unwrap().flussi.len(), 1);

    // Served, and the same `since` twice returns the same flows.
    let a = store.siuss_serve(&inps(), 0, 10).await.unwrap();
    let b = store.siuss_serve(&inps(), 0, 10).await.unwrap();
    assert_eq!(a.iter().map(|f| &f.id_flusso).collect::<Vec<_>>(), b.iter().map(|f| &f.id_flusso).collect::<Vec<_>>());
    assert_eq!(a.len(), 1);
    assert_eq!(store.siuss_flusso(&first).await.unwrap().unwrap().stato, StatoFlusso::Served);
    assert!(store.siuss_serve(&inps(), a[0].ts_flusso, 10).await.unwrap().is_empty());
    assert!(store.siuss_serve(&operatore(), 0, 10).await.is_err(), "an ufficio caller is not served");

    // Esito OK stored; repeating it changes nothing.
    let ok = Esito {
        id_flusso: first.clone(),
        codice_esito: "OK".into(),
        descrizione_esito: String::new(),
        id_acquisizione_siuss: "22738".into(),
        ts_acquisizione: "2026-11-23T11:04:56.852Z".into(),
    };
    store.siuss_esiti(&inps(), std::slice::from_ref(&ok)).await.unwrap();
    let before = store.siuss_flusso(&first).await.unwrap().unwrap();
    store.siuss_esiti(&inps(), std::slice::from_ref(&ok)).await.unwrap();
    let after = store.siuss_flusso(&first).await.unwrap().unwrap();
    assert_eq!(after.stato, StatoFlusso::Acknowledged);
    assert_eq!(after.id_acquisizione_siuss, "22738");
    assert_eq!(
        (before.stato, before.codice_esito.clone(), before.id_acquisizione_siuss.clone()),
        (after.stato, after.codice_esito, after.id_acquisizione_siuss)
    );

    // A changed prestazione: cancellation of what was sent, then the new insertion.
    let mut p1 = store.get::<pb::Prestazione>(&operatore(), &p1_id, "").await.unwrap();
    p1.importo_mensile = Some(30_000);
    store.update(&operatore(), p1).await.unwrap();
    drain(&store, &e).await;
    let s = store.siuss_stato(&operatore(), &p1_id, "").await.unwrap();
    let ops: Vec<&str> = s.flussi.iter().map(|f| f.operazione.as_str()).collect();
    assert_eq!(ops, ["I", "C", "I"]);
    let canc = store.siuss_flusso(&s.flussi[1].id_flusso).await.unwrap().unwrap();
    let canc_xml = String::from_utf8(canc.xml.clone()).unwrap();
    assert!(canc_xml.contains("TipoOperazione=\"C\"") && canc_xml.contains("ImportoMensile=\"250.00\""));
    let nuovo = store.siuss_flusso(&s.flussi[2].id_flusso).await.unwrap().unwrap();
    assert!(String::from_utf8(nuovo.xml.clone()).unwrap().contains("ImportoMensile=\"300.00\""));
    assert!(canc.ts_flusso < nuovo.ts_flusso && canc.seq < nuovo.seq);

    // Esito KO on the new insertion is stored as rejected.
    let ko = Esito {
        id_flusso: nuovo.id_flusso.clone(),
        codice_esito: "RICHIESTA_INVALIDA".into(),
        descrizione_esito: "prova".into(),
        id_acquisizione_siuss: String::new(),
        ts_acquisizione: "2026-11-23T11:04:56.852Z".into(),
    };
    store.siuss_esiti(&inps(), &[ko]).await.unwrap();
    let r = store.siuss_flusso(&nuovo.id_flusso).await.unwrap().unwrap();
    assert_eq!((r.stato, r.codice_esito.as_str()), (StatoFlusso::Rejected, "RICHIESTA_INVALIDA"));

    // A batch naming an unknown flow stores nothing.
    let good = Esito { id_flusso: canc.id_flusso.clone(), codice_esito: "OK".into(), ..ok.clone() };
    let bad = Esito { id_flusso: "H501.PS.20000101.0000009".into(), ..ok.clone() };
    assert!(matches!(store.siuss_esiti(&inps(), &[good, bad]).await, Err(EsitiError::Sconosciuti(v)) if v == vec![1]));
    assert_eq!(store.siuss_flusso(&canc.id_flusso).await.unwrap().unwrap().codice_esito, "");

    // Revoked: only the cancellation (the rejected insertion stands nowhere, so a second
    // prestazione is used).
    let p2 = store.create(&operatore(), prestazione(&c1, 12_000)).await.unwrap();
    let p2_id = id(&p2.meta);
    drain(&store, &e).await;
    let mut p2 = store.get::<pb::Prestazione>(&operatore(), &p2_id, "").await.unwrap();
    p2.stato = pb::StatoPrestazione::Revocata as i32;
    store.update(&operatore(), p2).await.unwrap();
    drain(&store, &e).await;
    let s = store.siuss_stato(&operatore(), &p2_id, "").await.unwrap();
    assert_eq!(s.flussi.iter().map(|f| f.operazione.as_str()).collect::<Vec<_>>(), ["I", "C"]);
    let c_xml = store.siuss_flusso(&s.flussi[1].id_flusso).await.unwrap().unwrap().xml;
    assert!(String::from_utf8(c_xml).unwrap().contains("TipoOperazione=\"C\""));

    // Blocked prestazione: no flow, the list of what is missing.
    let c3 = cartella_cf(&store, "Neri", pb::AreaUtenza::Immigrati, false).await;
    let p3 = store.create(&operatore(), prestazione(&c3, 10_000)).await.unwrap();
    drain(&store, &e).await;
    let s = store.siuss_stato(&operatore(), &id(&p3.meta), "").await.unwrap();
    assert!(s.flussi.is_empty());
    let rules: Vec<&str> = s.mancanze.iter().map(|m| m.rule.as_str()).collect();
    assert_eq!(rules, ["DATO_MANCANTE", "AREA_UTENZA_NON_MAPPABILE"]);
    assert_eq!(s.mancanze[0].path, "beneficiario.codice_fiscale");

    // A change of the cartella reaches its prestazioni: fixing the area leaves only the CF.
    let mut c = store.get::<pb::Cartella>(&operatore(), &c3, "").await.unwrap();
    c.area_utenza = pb::AreaUtenza::PovertaEsclusioneSociale as i32;
    store.update(&operatore(), c).await.unwrap();
    drain(&store, &e).await;
    let s = store.siuss_stato(&operatore(), &id(&p3.meta), "").await.unwrap();
    assert_eq!(s.mancanze.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(), ["DATO_MANCANTE"]);
    assert!(s.flussi.is_empty());

    // The portal export reads the same store page by page (both engines): the revoked
    // prestazione is left out, the one without a codice fiscale is counted under its rule.
    let out = tempfile::tempdir().unwrap();
    let cfg = gateway::siuss_export::ExportConfig {
        ente: e.clone(),
        from: siuss::model::Data::new(2025, 1, 1).unwrap(),
        to: siuss::model::Data::new(2025, 12, 31).unwrap(),
        out: out.path().join("portale/2025"),
        progress: false,
    };
    let sum = gateway::siuss_export::export(&store, &cfg).await.unwrap();
    assert_eq!((sum.lette, sum.revocate, sum.prestazioni_scritte, sum.escluse), (3, 1, 1, 1), "{sum}");
    assert_eq!(sum.per_regola.get("DATO_MANCANTE"), Some(&1));
    assert_eq!(sum.files.len(), 1);
    #[cfg(unix)]
    {
        // Whatever the umask, the files and the folders the export creates are owner-only.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sum.files[0]), 0o600, "export file");
        assert_eq!(mode(&cfg.out), 0o700, "export folder");
        assert_eq!(mode(&out.path().join("portale")), 0o700, "its parent, created with it");
    }
    let name = sum.files[0].file_name().unwrap().to_str().unwrap().trim_end_matches(".xml").to_string();
    check_xsd(&name, &std::fs::read(&sum.files[0]).unwrap());
    // The export's read of each person is audited once, whatever the number of their
    // prestazioni in the page.
    let c = store.get::<pb::Cartella>(&operatore(), &c3, "").await.unwrap();
    let export_reads = |pid: String| {
        let store = store.clone();
        async move { store.audit_count(core_cartella::record::Kind::Persona, &pid, "read").await.unwrap() }
    };
    assert_eq!(export_reads(c.persona_id.clone()).await, 1);
    gateway::siuss_export::export(&store, &cfg).await.unwrap();
    assert_eq!(export_reads(c.persona_id).await, 2, "a second export is audited again");

    // Every flow produced is schema-valid.
    for f in store.siuss_serve(&inps(), 0, 100).await.unwrap() {
        check_xsd(&f.id_flusso, &f.xml);
    }
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn ledger_sqlite() {
    ledger(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn ledger_postgres() {
    ledger(TestBackend::Postgres).await;
}

/// The export's page stream on both engines (SQLite: its own reader thread and read-only
/// connection, a read transaction spanning several pages; PostgreSQL: the page loop over
/// sqlx): every prestazione once, in (persona, prestazione) order, with its own person and
/// cartella, pages of the size asked, each person audited for every page that read them,
/// writes of the hub going on meanwhile, and a stream dropped halfway leaving the store
/// usable.
async fn export_stream(backend: TestBackend) {
    let Some(db) = TestDb::new(backend, "sigess_siuss").await else { return };
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let mut attese = Vec::new();
    for cognome in ["Rossi", "Bianchi", "Verdi", "Neri", "Gialli", "Marroni", "Viola"] {
        let cid = cartella(&store, cognome, pb::AreaUtenza::PovertaEsclusioneSociale).await;
        let persona_id = store.get::<pb::Cartella>(&operatore(), &cid, "").await.unwrap().persona_id;
        for k in 0..3 {
            let pr = store.create(&operatore(), prestazione(&cid, 10_000 + k)).await.unwrap();
            attese.push((persona_id.clone(), id(&pr.meta), cid.clone()));
        }
    }
    attese.sort();
    let caller = system_caller("H501");
    assert!(store.siuss_export_stream(&operatore(), 2).is_err(), "an office-bound operator cannot export the ente");

    // One prestazione per page: more pages than one SQLite read transaction spans.
    let mut pagine = store.siuss_export_stream(&caller, 1).unwrap();
    let mut lette = Vec::new();
    let mut n_pagine = 0;
    while let Some(page) = pagine.next().await.unwrap() {
        n_pagine += 1;
        assert_eq!(page.len(), 1);
        if n_pagine == 10 {
            // A write of the hub while the export reads: not part of this export's earlier
            // pages, and it does not stop the read.
            let cid = cartella(&store, "Concorrente", pb::AreaUtenza::PovertaEsclusioneSociale).await;
            store.create(&operatore(), prestazione(&cid, 1)).await.unwrap();
        }
        for r in page {
            let persona_id = r.persona.meta.as_ref().unwrap().id.clone();
            assert_eq!(r.prestazione.cartella_id, r.cartella.meta.as_ref().unwrap().id);
            assert_eq!(r.cartella.persona_id, persona_id);
            lette.push((persona_id, id(&r.prestazione.meta), r.prestazione.cartella_id.clone()));
        }
    }
    let concorrente: Vec<_> = lette.iter().filter(|x| !attese.contains(x)).cloned().collect();
    assert!(concorrente.len() <= 1, "only the prestazione written during the read may be extra");
    let mut ordinate = lette.clone();
    ordinate.sort();
    assert_eq!(lette, ordinate, "pages come in (persona, prestazione) order");
    lette.retain(|x| attese.contains(x));
    assert_eq!(lette, attese, "every prestazione once");
    for (persona_id, ..) in attese.iter().step_by(3) {
        // Three prestazioni of one person on three pages: three audited reads.
        let n = store.audit_count(core_cartella::record::Kind::Persona, persona_id, "read").await.unwrap();
        assert_eq!(n, 3, "one audit row per page that read the person");
    }

    // Pages of two; the same rows.
    let mut pagine = store.siuss_export_stream(&caller, 2).unwrap();
    let mut tutte = Vec::new();
    while let Some(page) = pagine.next().await.unwrap() {
        assert!(!page.is_empty() && page.len() <= 2);
        tutte.extend(page.into_iter().map(|r| id(&r.prestazione.meta)));
    }
    assert_eq!(tutte.len(), attese.len() + 1, "the prestazione written during the first read is read now");

    // A stream dropped after its first page stops its reader; the store goes on.
    let mut pagine = store.siuss_export_stream(&caller, 1).unwrap();
    assert!(pagine.next().await.unwrap().is_some());
    drop(pagine);
    let cid = cartella(&store, "Dopo", pb::AreaUtenza::PovertaEsclusioneSociale).await;
    store.create(&operatore(), prestazione(&cid, 2)).await.unwrap();
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn export_stream_sqlite() {
    export_stream(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn export_stream_postgres() {
    export_stream(TestBackend::Postgres).await;
}

struct Web {
    base: String,
    signer: TokenSigner,
    store: Store,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn web(rate: RateConfig) -> Web {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/sigess.db", dir.path().display()))).await.unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("key.pem")).unwrap();
    // WaaS reaches the SIUSS ledger through core's gRPC routes (here in the same process).
    let routes = core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap();
    let link = CoreLink::in_process(routes, signer.clone());
    let parts = Parts {
        link,
        auth: Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true),
        store: Some(store.clone()),
        edge: None,
    };
    let built = app::build(parts, &AppConfig { rate, ..AppConfig::default() }).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, built.router).await.unwrap() });
    Web {
        base: format!("http://{addr}/waas/v1"),
        signer,
        store,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        _dir: dir,
    }
}

impl Web {
    fn token(&self, c: &Caller) -> String {
        self.signer.mint(c, Duration::from_secs(600)).unwrap()
    }
}

fn is_problem(r: &reqwest::Response) -> bool {
    r.headers()["content-type"] == "application/problem+json"
}

#[tokio::test]
async fn waas_http() {
    let w = web(RateConfig::default()).await;
    let cfg = SiussConfig { ente: ente() };
    let c = cartella(&w.store, "Gialli", pb::AreaUtenza::FamigliaMinori).await;
    w.store.create(&operatore(), prestazione(&c, 20_000)).await.unwrap();
    drain(&w.store, &cfg.ente).await;
    let tok = w.token(&inps());

    // No credentials: 401 problem on every resource.
    for path in ["/flussi?since=0", "/status"] {
        let r = w.http.get(format!("{}{path}", w.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(is_problem(&r));
    }
    let r = w.http.post(format!("{}/esiti", w.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // An ufficio caller is authenticated but not allowed.
    let r = w.http.get(format!("{}/flussi?since=0", w.base)).bearer_auth(w.token(&operatore())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // limit beyond the yaml's maximum, and since missing: 400 problem with the yaml's members only.
    for q in ["since=0&limit=101", "limit=5", "since=-4"] {
        let r = w.http.get(format!("{}/flussi?{q}", w.base)).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert!(is_problem(&r));
        let body: Value = r.json().await.unwrap();
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert!(keys.iter().all(|k| ["type", "title", "status", "detail", "instance"].contains(&k.as_str())), "{keys:?}");
    }

    // GET /flussi: the yaml's entry shape, the same since twice gives the same flows.
    let get = |since: i64| {
        let (http, base, tok) = (w.http.clone(), w.base.clone(), tok.clone());
        async move { http.get(format!("{base}/flussi?since={since}&limit=100")).bearer_auth(tok).send().await.unwrap() }
    };
    let r = get(0).await;
    assert_eq!(r.status(), StatusCode::OK);
    for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(r.headers().contains_key(h), "{h}");
    }
    let a: Value = r.json().await.unwrap();
    let b: Value = get(0).await.json().await.unwrap();
    assert_eq!(a, b);
    let entries = a["elenco_flussi"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let e = entries[0].as_object().unwrap();
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["codice_ente", "denominazione_ente", "flusso", "id_flusso", "tipo", "ts_flusso"]);
    assert_eq!(e["tipo"], "PS_PSA_SINA");
    assert_eq!(e["codice_ente"], "H501");
    let xml = base64::engine::general_purpose::STANDARD.decode(e["flusso"].as_str().unwrap()).unwrap();
    check_xsd(e["id_flusso"].as_str().unwrap(), &xml);
    let id_flusso = e["id_flusso"].as_str().unwrap().to_string();
    let ts = e["ts_flusso"].as_str().unwrap().to_string();

    // A bad esito body is 400 and stores nothing, even with a good esito beside it.
    let good = json!({"id_flusso": id_flusso, "tipo": "PS_PSA_SINA", "ts_flusso": ts, "ts_acquisizione": ts, "codice_esito": "OK", "id_acquisizione_siuss": "1"});
    let body = json!({"elenco_esiti": [good, {"id_flusso": id_flusso, "tipo": "PS_PSA_SINA", "codice_esito": "BOH"}]});
    let r = w.http.post(format!("{}/esiti", w.base)).bearer_auth(&tok).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(is_problem(&r));
    let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("elenco_esiti[1].codice_esito") && detail.contains("elenco_esiti[1].ts_flusso"), "{detail}");
    assert_eq!(w.store.siuss_flusso(&id_flusso).await.unwrap().unwrap().codice_esito, "");
    let r = w
        .http
        .post(format!("{}/esiti", w.base))
        .bearer_auth(&tok)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A good esito: 204, stored; the same again: 204, unchanged.
    for _ in 0..2 {
        let r = w.http.post(format!("{}/esiti", w.base)).bearer_auth(&tok).json(&json!({"elenco_esiti": [good]})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let f = w.store.siuss_flusso(&id_flusso).await.unwrap().unwrap();
        assert_eq!((f.stato, f.id_acquisizione_siuss.as_str()), (StatoFlusso::Acknowledged, "1"));
    }

    // GET /status: problem+json 200.
    let r = w.http.get(format!("{}/status", w.base)).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(is_problem(&r));
}

#[tokio::test]
async fn waas_rate_limit() {
    let w = web(RateConfig { per_minute: 1, burst: 2 }).await;
    let tok = w.token(&inps());
    let mut last = None;
    for _ in 0..3 {
        last = Some(w.http.get(format!("{}/status", w.base)).bearer_auth(&tok).send().await.unwrap());
    }
    let r = last.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(is_problem(&r));
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("x-ratelimit-reset") && r.headers().contains_key("retry-after"));
}

/// A surname whose codice fiscale letters differ for every `i` (three consonants).
fn cognome(i: usize) -> String {
    const C: &[u8] = b"BCDFGLMNPRSTVZ";
    let c = |k: usize| char::from(C[k % C.len()]);
    format!("{}a{}a{}a", c(i / (C.len() * C.len())), c(i / C.len()), c(i))
}

fn prestazione_change(p: &pb::Prestazione, persona_id: &str) -> adapter_contract::Change {
    let m = p.meta.clone().unwrap();
    adapter_contract::Change {
        cursor: "0.0".into(),
        kind: "prestazione".into(),
        id: m.id,
        op: 2,
        version: m.version,
        ente: m.ente,
        ufficio: m.ufficio,
        persona_id: persona_id.into(),
        cartella_id: p.cartella_id.clone(),
        occurred_at: m.updated_at,
    }
}

/// Two appliers on one ledger: every prestazione applied by two tasks at once, over several
/// rounds of updates (some prestazioni unchanged in a round). Each prestazione must end with
/// exactly its expected flows: one insertion, then a cancellation and an insertion per round
/// that changed it; never two live insertions, never the same insertion twice.
async fn two_appliers(backend: TestBackend, n: usize) {
    let Some(db) = TestDb::new(backend, "sigess_siuss").await else { return };
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let cfg = SiussConfig { ente: ente() };
    let runner = gateway::adapters::siuss(store.clone(), &cfg);
    let source = core_cartella::delivery::source::StoreSource::new(store.clone(), "siuss", "H501");
    let mut prestazioni = Vec::new();
    for i in 0..n.div_ceil(3) {
        let c = cartella(&store, &cognome(i), pb::AreaUtenza::PovertaEsclusioneSociale).await;
        let persona_id = store.get::<pb::Cartella>(&operatore(), &c, "").await.unwrap().persona_id;
        for k in 0..3 {
            if prestazioni.len() < n {
                let p = store.create(&operatore(), prestazione(&c, 20_000 + k)).await.unwrap();
                prestazioni.push((p, persona_id.clone(), vec!["I"]));
            }
        }
    }
    for round in 0..4usize {
        if round > 0 {
            for (i, (p, _, expected)) in prestazioni.iter_mut().enumerate() {
                if (i + round) % 3 == 0 {
                    continue;
                }
                let mut cur = store.get::<pb::Prestazione>(&operatore(), &id(&p.meta), "").await.unwrap();
                cur.importo_mensile = Some(30_000 + i64::try_from(round * 1000 + i).unwrap());
                *p = store.update(&operatore(), cur).await.unwrap();
                expected.extend(["C", "I"]);
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (p, persona_id, _) in &prestazioni {
            for _ in 0..2 {
                let (runner, source, change) = (runner.clone(), source.clone(), prestazione_change(p, persona_id));
                // A store too busy to answer is retried, as the engine would.
                tasks.spawn(async move {
                    for _ in 0..20 {
                        let done = runner.process(&change, &source, &[]).await;
                        if !matches!(done.outcome, adapter_contract::Outcome::Retry { .. }) {
                            return done;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    runner.process(&change, &source, &[]).await
                });
            }
        }
        while let Some(done) = tasks.join_next().await {
            let done = done.unwrap();
            assert_eq!(done.outcome, adapter_contract::Outcome::Delivered, "round {round}");
        }
    }
    for (p, _, expected) in &prestazioni {
        let s = store.siuss_stato(&operatore(), &id(&p.meta), "").await.unwrap();
        let ops: Vec<&str> = s.flussi.iter().map(|f| f.operazione.as_str()).collect();
        assert_eq!(&ops, expected, "prestazione {}", id(&p.meta));
        let inserts: Vec<&str> = s.flussi.iter().filter(|f| f.operazione == "I").map(|f| f.impronta.as_str()).collect();
        assert!(inserts.windows(2).all(|w| w[0] != w[1]), "the same insertion twice");
        assert!(s.mancanze.is_empty() && s.nota.is_empty());
    }
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_appliers_postgres() {
    two_appliers(TestBackend::Postgres, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_appliers_sqlite() {
    two_appliers(TestBackend::Sqlite, 60).await;
}

/// Runs SQL on the test's database beside the store (to damage the ledger on purpose).
async fn sql(url: &str, q: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(q.to_string())).execute(&pool).await.unwrap();
    pool.close().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A cancellation that cannot be produced (the standing insertion's snapshot no longer
/// reads) holds the new insertion: nothing is emitted, the reason is on the prestazione and
/// the change fails permanently; once the snapshot is restored, the next apply emits the
/// cancellation and then the insertion.
async fn failed_cancellation_holds_insertion(backend: TestBackend) {
    let Some(db) = TestDb::new(backend, "sigess_siuss").await else { return };
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let cfg = SiussConfig { ente: ente() };
    let c = cartella(&store, "Rossi", pb::AreaUtenza::PovertaEsclusioneSociale).await;
    let p = store.create(&operatore(), prestazione(&c, 25_000)).await.unwrap();
    let pid = id(&p.meta);
    drain(&store, &cfg.ente).await;
    let first = store.siuss_stato(&operatore(), &pid, "").await.unwrap().flussi.remove(0);
    let snapshot = store.siuss_flusso(&first.id_flusso).await.unwrap().unwrap().snapshot;
    assert!(!snapshot.is_empty());
    sql(&db.url, &format!("UPDATE siuss_flusso SET snapshot = NULL WHERE id_flusso = '{}'", first.id_flusso)).await;

    let mut cur = store.get::<pb::Prestazione>(&operatore(), &pid, "").await.unwrap();
    cur.importo_mensile = Some(31_000);
    store.update(&operatore(), cur).await.unwrap();
    let out = gateway::adapters::siuss_drain(&store, &cfg).await.unwrap();
    assert!(!out.failed.is_empty());
    for (_, r) in &out.failed {
        assert_eq!(r.code, siuss::ledger::RULE_HELD, "{r}");
        assert!(!r.message.contains("Rossi") && !r.message.contains(&compose("Rossi", "Prova", 1960, 4, 9, true, "H501")), "{r}");
    }
    let s = store.siuss_stato(&operatore(), &pid, "").await.unwrap();
    assert_eq!(s.flussi.iter().map(|f| f.operazione.as_str()).collect::<Vec<_>>(), ["I"], "neither the C nor the new I");
    assert!(s.nota.contains("cancellazione") && s.nota.contains(&first.id_flusso), "{}", s.nota);
    assert_eq!(s.mancanze.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(), [siuss::ledger::RULE_HELD]);

    // The cause fixed: the next apply emits C then I, and the hold is gone.
    let restore =
        if backend == TestBackend::Postgres { format!("'\\x{}'::bytea", hex(&snapshot)) } else { format!("X'{}'", hex(&snapshot)) };
    sql(&db.url, &format!("UPDATE siuss_flusso SET snapshot = {restore} WHERE id_flusso = '{}'", first.id_flusso)).await;
    assert!(retry_dead(&store).await > 0, "the held change is a dead letter until retried");
    drain(&store, &cfg.ente).await;
    let s = store.siuss_stato(&operatore(), &pid, "").await.unwrap();
    assert_eq!(s.flussi.iter().map(|f| f.operazione.as_str()).collect::<Vec<_>>(), ["I", "C", "I"]);
    assert!(s.mancanze.is_empty() && s.nota.is_empty(), "{:?} {}", s.mancanze, s.nota);
    let canc = String::from_utf8(store.siuss_flusso(&s.flussi[1].id_flusso).await.unwrap().unwrap().xml).unwrap();
    assert!(canc.contains("TipoOperazione=\"C\"") && canc.contains("ImportoMensile=\"250.00\""));
    for f in &s.flussi {
        check_xsd(&f.id_flusso, &store.siuss_flusso(&f.id_flusso).await.unwrap().unwrap().xml);
    }
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn failed_cancellation_holds_insertion_sqlite() {
    failed_cancellation_holds_insertion(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn failed_cancellation_holds_insertion_postgres() {
    failed_cancellation_holds_insertion(TestBackend::Postgres).await;
}

/// The store's ledger, except that the XML writer of one prestazione's insertion fails while
/// `poisoned` is set.
struct PoisonLedger {
    inner: gateway::adapters::StoreLedger,
    poison: String,
    poisoned: std::sync::atomic::AtomicBool,
}

impl siuss::ledger::Ledger for PoisonLedger {
    fn apply(
        &self,
        mut intent: siuss::ledger::Intent,
    ) -> futures::future::BoxFuture<'_, Result<siuss::ledger::Applied, siuss::ledger::LedgerError>> {
        if intent.prestazione_id == self.poison
            && self.poisoned.load(std::sync::atomic::Ordering::SeqCst)
            && let siuss::ledger::Flows::Insert { insertion, .. } = &mut intent.flows
        {
            insertion.xml = Box::new(|_| Err("1 violazioni: FORMATO flusso".into()));
        }
        self.inner.apply(intent)
    }
}

/// A prestazione whose flow cannot be written fails its own changes permanently, with the
/// reason on the prestazione; every other prestazione is applied; once fixed, it is applied.
async fn poison_prestazione(backend: TestBackend) {
    let Some(db) = TestDb::new(backend, "sigess_siuss").await else { return };
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let cfg = SiussConfig { ente: ente() };
    let mut ids = Vec::new();
    for (i, cognome) in ["Verdi", "Bruni", "Conti"].into_iter().enumerate() {
        let c = cartella(&store, cognome, pb::AreaUtenza::PovertaEsclusioneSociale).await;
        ids.push(id(&store.create(&operatore(), prestazione(&c, 20_000 + i64::try_from(i).unwrap())).await.unwrap().meta));
    }
    let ledger = Arc::new(PoisonLedger {
        inner: gateway::adapters::StoreLedger::new(store.clone()),
        poison: ids[1].clone(),
        poisoned: std::sync::atomic::AtomicBool::new(true),
    });
    let out = gateway::adapters::siuss_drain_with(&store, &cfg, ledger.clone()).await.unwrap();
    assert!(!out.failed.is_empty() && out.failed.len() < out.changes, "{out:?}");
    assert!(out.failed.iter().all(|(_, r)| r.code == "FLUSSO_RIFIUTATO" && r.message.contains("FORMATO")), "{out:?}");
    for (i, pid) in ids.iter().enumerate() {
        let s = store.siuss_stato(&operatore(), pid, "").await.unwrap();
        if i == 1 {
            assert!(s.flussi.is_empty());
            assert!(s.nota.contains("nessun flusso emesso") && s.nota.contains("FORMATO"), "{}", s.nota);
        } else {
            assert_eq!(s.flussi.len(), 1, "other prestazioni are applied");
        }
    }
    ledger.poisoned.store(false, std::sync::atomic::Ordering::SeqCst);
    // Fixed, but parked: nothing happens to a dead letter until it is retried.
    let out = gateway::adapters::siuss_drain_with(&store, &cfg, ledger.clone()).await.unwrap();
    assert_eq!(out.changes, 0, "{out:?}");
    assert!(store.siuss_stato(&operatore(), &ids[1], "").await.unwrap().flussi.is_empty());
    assert!(retry_dead(&store).await > 0);
    let out = gateway::adapters::siuss_drain_with(&store, &cfg, ledger).await.unwrap();
    assert!(out.failed.is_empty() && out.changes > 0, "{out:?}");
    let s = store.siuss_stato(&operatore(), &ids[1], "").await.unwrap();
    assert_eq!(s.flussi.iter().map(|f| f.operazione.as_str()).collect::<Vec<_>>(), ["I"]);
    assert!(s.nota.is_empty());
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn poison_prestazione_sqlite() {
    poison_prestazione(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn poison_prestazione_postgres() {
    poison_prestazione(TestBackend::Postgres).await;
}

/// The SIUSS adapter run by two delivery engines, each with its own pool, on one PostgreSQL
/// ledger while prestazioni are written and updated: no prestazione ever has two live
/// insertions, none gets the same insertion twice in a row, and every one ends with the
/// insertion of its current state (applying the outbox again adds nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_postgres() {
    use core_cartella::delivery::{Engine, EngineConfig};
    let Some(db) = TestDb::postgres("sigess_siuss").await else { return };
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let cfg = SiussConfig { ente: ente() };
    let engine_cfg = EngineConfig { poll: Duration::from_millis(20), backoff_base: Duration::from_millis(50), ..EngineConfig::default() };
    // Small pools: the PostgreSQL server is shared with the other tests.
    let small = StoreOptions { max_connections: 8, ..StoreOptions::new(&db.url) };
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let s = Store::open(&small).await.unwrap();
        let engine = Engine::new(s.clone(), vec![gateway::adapters::siuss(s, &cfg)], engine_cfg.clone(), None);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        runs.push(engine.spawn(async move {
            let _ = rx.await;
        }));
        stops.push(tx);
    }
    let mut ids = Vec::new();
    for i in 0..100 {
        let c = cartella(&store, &cognome(i), pb::AreaUtenza::PovertaEsclusioneSociale).await;
        for k in 0..2 {
            ids.push(id(&store.create(&operatore(), prestazione(&c, 20_000 + k)).await.unwrap().meta));
        }
    }
    for round in 1..=2i64 {
        for (i, pid) in ids.iter().enumerate() {
            let mut p = store.get::<pb::Prestazione>(&operatore(), pid, "").await.unwrap();
            p.importo_mensile = Some(30_000 + round * 1000 + i64::try_from(i).unwrap());
            store.update(&operatore(), p).await.unwrap();
        }
    }
    // A third worker joins to finish what is left, then all stop.
    let s = Store::open(&small).await.unwrap();
    Engine::new(s.clone(), vec![gateway::adapters::siuss(s, &cfg)], engine_cfg, None).drain(Duration::from_secs(120)).await.unwrap();
    for tx in stops {
        let _ = tx.send(());
    }
    for r in runs {
        r.await.unwrap();
    }
    let mut total = 0;
    for pid in &ids {
        let s = store.siuss_stato(&operatore(), pid, "").await.unwrap();
        let mut live = 0;
        let mut last_insert: Option<&str> = None;
        for f in &s.flussi {
            if f.operazione == "I" {
                live += 1;
                assert!(live <= 1, "two live insertions for {pid}");
                assert_ne!(last_insert, Some(f.impronta.as_str()), "the same insertion twice for {pid}");
                last_insert = Some(&f.impronta);
            } else {
                live -= 1;
                assert!(live >= 0, "a cancellation with nothing standing for {pid}");
            }
        }
        assert_eq!(live, 1, "{pid} ends with its insertion standing");
        assert!(s.mancanze.is_empty(), "{pid}: {:?}", s.mancanze);
        total += s.flussi.len();
    }
    drain(&store, &cfg.ente).await;
    let again: usize = {
        let mut n = 0;
        for pid in &ids {
            n += store.siuss_stato(&operatore(), pid, "").await.unwrap().flussi.len();
        }
        n
    };
    assert_eq!(again, total, "the engines left every prestazione in its current state");
    store.close().await;
    db.drop_pg().await;
}

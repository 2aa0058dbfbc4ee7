//! Inbound protected discharges over HTTP, through the whole gateway (PDND voucher, ModI
//! signature, the FHIR endpoint) to core's gRPC routes and its store, on SQLite and on
//! PostgreSQL (a fresh database per test): a discharge becomes an accesso in the Municipio of
//! its health district, seen by that Municipio's operator (and in its change feed) and not by
//! another's, audited as the region's write; the same message twice is one case; a person
//! already known is not created again; a malformed message is answered with an
//! OperationOutcome listing every problem and stores nothing; without a voucher, or without
//! the ModI signature, the answer is 401. Every answer is written to `FHIR_BUNDLE_DIR` (when
//! set) for the independent validator of `conformance/fhir`. All people are fakes.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, path::Path, time::Duration};

use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    record::Kind,
    store::{Cursor, ListFilter, Page, PersonaSearch, Store, StoreOptions},
    testkit::{TestBackend, TestDb},
};
use gateway::{
    app::{self, AppConfig, Parts},
    auth::{Authenticator, ClientRegistry, JwksSource, NewClient, PdndConfig, PdndVerifier, modi::digest_header_value},
    core_link::CoreLink,
    edge_store::EdgeStore,
};
use josekit::{
    jwk::{Jwk, JwkSet},
    jws::{JwsHeader, JwsSigner, RS256},
    jwt::{self, JwtPayload},
};
use regione_lazio::{
    dimissione::{DISTRETTO_SYSTEM, EVENT_CODE, EVENT_SYSTEM},
    mapping::CF_SYSTEM,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const AUD: &str = "https://hub.example.it/fhir/regione";
const ISS: &str = "interop.pagopa.it";
const PDND_KID: &str = "pdnd-key-1";
const REGIONE_KID: &str = "regione-modi-key-1";
const PDND_CLIENT: &str = "b3c1e0d2-regione-lazio";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn rsa_key(kid: &str) -> (Jwk, Jwk) {
    let pair = RS256.generate_key_pair(2048).unwrap();
    let mut private = pair.to_jwk_private_key();
    private.set_key_id(kid);
    let mut public = pair.to_jwk_public_key();
    public.set_key_id(kid);
    public.set_algorithm("RS256");
    public.set_key_use("sig");
    (private, public)
}

fn key_set(keys: &[&Jwk]) -> String {
    let mut set = JwkSet::new();
    for k in keys {
        set.push_key((*k).clone());
    }
    set.to_string()
}

fn jws(signer: &dyn JwsSigner, kid: &str, typ: &str, claims: Value) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id(kid);
    header.set_token_type(typ);
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    jwt::encode_with_signer(&payload, &header, signer).unwrap()
}

/// The hub (gateway in front of core's routes in process) on 127.0.0.1, with the region
/// registered as a PDND client that signs with its own ModI key.
struct Hub {
    base: String,
    store: Store,
    db: TestDb,
    http: reqwest::Client,
    pdnd: Jwk,
    regione: Jwk,
    /// The region's client id at the hub: the subject core audits.
    client_id: String,
    _dir: tempfile::TempDir,
}

async fn hub(backend: TestBackend) -> Option<Hub> {
    hub_with(backend, &AppConfig::default()).await
}

async fn hub_with(backend: TestBackend, app_cfg: &AppConfig) -> Option<Hub> {
    let db = TestDb::new(backend, "sigess_dimissione").await?;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 4;
    let store = Store::open(&opts).await.unwrap();
    let edge = EdgeStore::open(&format!("sqlite://{}", dir.path().join("edge.db").display()), 1).await.unwrap();
    let registry = ClientRegistry::new(edge.clone());
    let signer = TokenSigner::load_or_create(&dir.path().join("hub-key.pem")).unwrap();
    let (pdnd_private, pdnd_public) = rsa_key(PDND_KID);
    let (regione_private, regione_public) = rsa_key(REGIONE_KID);
    let jwks = dir.path().join("pdnd-jwks.json");
    std::fs::write(&jwks, key_set(&[&pdnd_public])).unwrap();
    let mut cfg = PdndConfig::new(JwksSource::File(jwks), AUD);
    cfg.issuer = Some(ISS.into());
    let auth = Authenticator::new(signer.verifier().unwrap())
        .with_clients(registry.clone())
        .with_pdnd(PdndVerifier::from_config(cfg).await.unwrap());
    let (client, _) = registry
        .create(NewClient {
            name: "Regione Lazio, dimissioni protette".into(),
            ente: "H501".into(),
            roles: vec![Role::Operatore],
            purpose: "dimissione protetta".into(),
            pdnd_client_id: Some(PDND_CLIENT.into()),
            pdnd_purpose_id: Some("purpose-dimissioni".into()),
            modi_jwks: Some(key_set(&[&regione_public])),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let routes = core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap();
    let parts = Parts { link: CoreLink::in_process(routes, signer), auth, store: Some(store.clone()), edge: Some(edge) };
    let built = app::build(parts, app_cfg).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, built.router).await.unwrap() });
    Some(Hub {
        base: format!("http://{addr}"),
        store,
        db,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        pdnd: pdnd_private,
        regione: regione_private,
        client_id: client.client_id,
        _dir: dir,
    })
}

/// How a request is credentialed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cred {
    /// PDND voucher and ModI signature, as the region sends them.
    Full,
    /// A voucher only.
    VoucherOnly,
    None,
}

impl Hub {
    fn voucher(&self) -> String {
        let t = now();
        let claims = json!({
            "iss": ISS, "aud": AUD, "client_id": PDND_CLIENT, "sub": PDND_CLIENT, "purposeId": "purpose-dimissioni",
            "jti": uuid::Uuid::new_v4().to_string(), "iat": t, "nbf": t, "exp": t + 600,
        });
        jws(&*RS256.signer_from_jwk(&self.pdnd).unwrap(), PDND_KID, "at+jwt", claims)
    }

    fn modi(&self, body: &[u8]) -> (String, String) {
        let digest = digest_header_value(body);
        let t = now();
        let claims = json!({
            "iss": PDND_CLIENT, "aud": AUD, "jti": uuid::Uuid::new_v4().to_string(), "iat": t, "nbf": t, "exp": t + 300,
            "signed_headers": [{ "digest": digest }, { "content-type": "application/fhir+json" }],
        });
        (jws(&*RS256.signer_from_jwk(&self.regione).unwrap(), REGIONE_KID, "JWT", claims), digest)
    }

    /// POSTs `message` to `$process-message`; the status and the JSON answer.
    async fn send(&self, message: &Value, cred: Cred) -> (u16, Value) {
        self.send_raw(serde_json::to_vec(message).unwrap(), cred).await
    }

    async fn send_raw(&self, body: Vec<u8>, cred: Cred) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/fhir/regione/$process-message", self.base))
            .header("content-type", "application/fhir+json")
            .body(body.clone());
        if cred != Cred::None {
            req = req.bearer_auth(self.voucher());
        }
        if cred == Cred::Full {
            let (sig, digest) = self.modi(&body);
            req = req.header("agid-jwt-signature", sig).header("digest", digest);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        assert_eq!(res.headers()["content-type"], "application/fhir+json", "every answer is FHIR");
        (status, res.json().await.unwrap())
    }

    async fn close(self) {
        self.store.close().await;
        self.db.drop_pg().await;
    }
}

/// Writes a FHIR answer for `conformance/fhir/validate.py`, when `FHIR_BUNDLE_DIR` is set.
fn keep(name: &str, v: &Value) {
    if let Ok(dir) = std::env::var("FHIR_BUNDLE_DIR") {
        std::fs::write(Path::new(&dir).join(format!("dimissione-{name}.json")), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }
}

fn operatore(ufficio: &str) -> Caller {
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

fn ente_reader() -> Caller {
    Caller { subject: "lettore".into(), ufficio: None, roles: vec![Role::Consultazione], ..operatore("M01") }
}

/// A fake person's codice fiscale.
fn cf(i: u8) -> String {
    compose("Bianchi", &format!("Nome{}", char::from(b'a' + i)), 1950 + i32::from(i), 1 + i % 12, 1 + i, false, "H501")
}

fn birth(i: u8) -> String {
    format!("{}-{:02}-{:02}", 1950 + i32::from(i), 1 + i % 12, 1 + i)
}

/// A protected-discharge message for fake person `i`, from the district `distretto`.
fn message(id: &str, i: u8, distretto: &str) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "message",
        "timestamp": "2026-11-27T10:00:00Z",
        "entry": [
            { "fullUrl": "urn:uuid:5e0c6a52-0000-4000-8000-000000000001", "resource": {
                "resourceType": "MessageHeader",
                "id": id,
                "eventCoding": { "system": EVENT_SYSTEM.as_str(), "code": EVENT_CODE },
                "source": { "endpoint": "https://fhir.regione.lazio.example/dimissioni" },
                "focus": [{ "reference": "urn:uuid:5e0c6a52-0000-4000-8000-000000000004" }],
            }},
            { "fullUrl": "urn:uuid:5e0c6a52-0000-4000-8000-000000000002", "resource": {
                "resourceType": "Patient",
                "identifier": [{ "system": CF_SYSTEM, "value": cf(i) }],
                "name": [{ "family": "Bianchi", "given": [format!("Nome{}", char::from(b'a' + i))] }],
                "birthDate": birth(i),
            }},
            { "fullUrl": "urn:uuid:5e0c6a52-0000-4000-8000-000000000003", "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP" },
                "subject": { "reference": "urn:uuid:5e0c6a52-0000-4000-8000-000000000002" },
                "period": { "start": "2026-11-10T08:00:00+01:00", "end": "2026-11-26T11:00:00+01:00" },
            }},
            { "fullUrl": "urn:uuid:5e0c6a52-0000-4000-8000-000000000004", "resource": {
                "resourceType": "ServiceRequest",
                "identifier": [{ "system": "https://fhir.regione.lazio.example/sid/richiesta", "value": format!("RIC-{id}") }],
                "status": "active",
                "intent": "order",
                "code": { "text": "Valutazione sociale per dimissione protetta" },
                "subject": { "reference": "urn:uuid:5e0c6a52-0000-4000-8000-000000000002" },
                "locationCode": [{ "coding": [{ "system": DISTRETTO_SYSTEM.as_str(), "code": distretto }] }],
            }},
        ],
    })
}

async fn accessi(store: &Store, caller: &Caller) -> Vec<pb::Accesso> {
    store.list::<pb::Accesso>(caller, &ListFilter::default(), &Page::default(), "").await.unwrap().0
}

async fn persone(store: &Store, caller: &Caller) -> Vec<pb::Persona> {
    store.list::<pb::Persona>(caller, &ListFilter::default(), &Page::default(), "").await.unwrap().0
}

fn accesso_of(answer: &Value) -> String {
    let h = &answer["entry"][0]["resource"];
    assert_eq!(h["resourceType"], "MessageHeader", "{answer}");
    assert_eq!(h["response"]["code"], "ok", "{answer}");
    h["focus"][0]["identifier"]["value"].as_str().unwrap().to_string()
}

async fn discharge_reaches_its_municipio(backend: TestBackend) {
    let Some(hub) = hub(backend).await else { return };
    let m07 = operatore("M07");
    let m01 = operatore("M01");
    let (status, answer) = hub.send(&message("msg-a", 1, "120202-07"), Cred::Full).await;
    assert_eq!(status, 200, "{answer}");
    keep("risposta-ok", &answer);
    assert_eq!(answer["resourceType"], "Bundle");
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["entry"][0]["resource"]["response"]["identifier"], "msg-a");
    let accesso_id = accesso_of(&answer);

    // M07's operator sees the case at once: a segnalazione being assessed, for the new person.
    let seen = accessi(&hub.store, &m07).await;
    assert_eq!(seen.len(), 1);
    let a = &seen[0];
    assert_eq!(a.meta.as_ref().unwrap().id, accesso_id);
    assert_eq!(a.meta.as_ref().unwrap().ufficio, "M07");
    assert_eq!((a.canale, a.esito), (pb::CanaleAccesso::Segnalazione as i32, pb::EsitoAccesso::InValutazione as i32));
    assert!(a.motivo.contains("2026-11-26") && a.motivo.contains("RIC-msg-a"), "{}", a.motivo);
    let search = PersonaSearch { codice_fiscale: cf(1), ..PersonaSearch::default() };
    let found = hub.store.search_persone(&m07, &search, &Page::default()).await.unwrap().0;
    assert_eq!(found.len(), 1);
    let p = &found[0];
    assert_eq!(p.meta.as_ref().unwrap().id, a.persona_id);
    assert_eq!((p.cognome.as_str(), p.data_nascita.as_str()), ("Bianchi", birth(1).as_str()));
    assert_eq!((p.sesso, p.luogo_nascita.as_str(), p.cittadinanza.as_str()), (pb::Sesso::Maschio as i32, "H501", "380"));
    let got = hub.store.get::<pb::Persona>(&m07, &a.persona_id, "").await.unwrap();
    assert_eq!(got.codice_fiscale, cf(1));

    // ... and in its change feed: the person and the accesso. (On PostgreSQL a change is
    // served once every older transaction on the server has ended: other tests share it.)
    let mut kinds = Vec::new();
    for _ in 0..100 {
        let feed = hub.store.changes_after(&m07, Cursor::default(), &[], 100).await.unwrap();
        kinds = feed.iter().map(|c| (c.kind.clone(), c.id.clone())).collect::<Vec<_>>();
        if kinds.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kinds.contains(&("accesso".to_string(), accesso_id.clone())), "{kinds:?}");
    assert!(kinds.contains(&("persona".to_string(), a.persona_id.clone())), "{kinds:?}");

    // Another Municipio sees neither the case nor the person, and hears nothing of them.
    assert!(accessi(&hub.store, &m01).await.is_empty());
    assert!(hub.store.get::<pb::Accesso>(&m01, &accesso_id, "").await.is_err());
    assert!(hub.store.get::<pb::Persona>(&m01, &a.persona_id, "").await.is_err());
    assert!(hub.store.changes_after(&m01, Cursor::default(), &[], 100).await.unwrap().is_empty());

    // Audited as writes of the region's client.
    assert_eq!(hub.store.audit_count(Kind::Accesso, &accesso_id, "create").await.unwrap(), 1);
    assert_eq!(hub.store.audit_count(Kind::Persona, &a.persona_id, "create").await.unwrap(), 1);
    assert_eq!(a.meta.as_ref().unwrap().updated_by, hub.client_id);
    assert_eq!(p.meta.as_ref().unwrap().updated_by, hub.client_id);

    // A discharge to another district goes to its own Municipio.
    let (status, answer) = hub.send(&message("msg-b", 2, "120201-13"), Cred::Full).await;
    assert_eq!(status, 200, "{answer}");
    let other = accesso_of(&answer);
    let m13 = accessi(&hub.store, &operatore("M13")).await;
    assert_eq!(m13.iter().map(|a| a.meta.as_ref().unwrap().id.clone()).collect::<Vec<_>>(), vec![other]);
    assert_eq!(accessi(&hub.store, &m07).await.len(), 1);
    hub.close().await;
}

async fn same_message_twice_is_one_case(backend: TestBackend) {
    let Some(hub) = hub(backend).await else { return };
    let m = message("msg-twice", 3, "120203-10");
    let (s1, first) = hub.send(&m, Cred::Full).await;
    let (s2, second) = hub.send(&m, Cred::Full).await;
    assert_eq!((s1, s2), (200, 200), "{first} {second}");
    assert_eq!(accesso_of(&first), accesso_of(&second), "the resend answers with the case of the first");
    assert_ne!(first["id"], second["id"], "each response message is its own");
    let reader = ente_reader();
    assert_eq!(accessi(&hub.store, &reader).await.len(), 1);
    assert_eq!(persone(&hub.store, &reader).await.len(), 1);

    // Two copies of a new message at once (about an unknown person): still one case.
    let race = message("msg-race", 9, "120202-06");
    let (a, b) = tokio::join!(hub.send(&race, Cred::Full), hub.send(&race, Cred::Full));
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    assert_eq!(accesso_of(&a.1), accesso_of(&b.1));
    assert_eq!(accessi(&hub.store, &reader).await.len(), 2);
    assert_eq!(persone(&hub.store, &reader).await.len(), 2);

    // Two different messages about one unknown person at once: two cases, one person.
    let (mx, my) = (message("msg-x", 8, "120201-01"), message("msg-y", 8, "120201-01"));
    let (x, y) = tokio::join!(hub.send(&mx, Cred::Full), hub.send(&my, Cred::Full));
    assert_eq!((x.0, y.0), (200, 200), "{} {}", x.1, y.1);
    assert_ne!(accesso_of(&x.1), accesso_of(&y.1));
    let m01 = accessi(&hub.store, &operatore("M01")).await;
    assert_eq!(m01.len(), 2);
    assert_eq!(m01[0].persona_id, m01[1].persona_id);
    assert_eq!(persone(&hub.store, &reader).await.len(), 3);

    // A new message about an earlier person: a second case, the same person.
    let (status, answer) = hub.send(&message("msg-again", 3, "120203-10"), Cred::Full).await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(accesso_of(&answer), accesso_of(&first));
    let m10 = accessi(&hub.store, &operatore("M10")).await;
    assert_eq!(m10.len(), 2);
    assert_eq!(m10[0].persona_id, m10[1].persona_id);
    assert_eq!(persone(&hub.store, &reader).await.len(), 3);
    hub.close().await;
}

/// Each client's messages count against its quota: past it, 429 with `Retry-After` as an
/// OperationOutcome, nothing recorded; every answer is counted by outcome in `/metrics`.
async fn quota_and_outcome_metrics(backend: TestBackend) {
    let cfg = AppConfig { rate: gateway::stack::limit::RateConfig { per_minute: 1, burst: 3 }, ..AppConfig::default() };
    let Some(hub) = hub_with(backend, &cfg).await else { return };
    let m = message("msg-quota", 4, "120203-10");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(hub.send(&m, Cred::Full).await.0);
    }
    assert_eq!(statuses, [200, 200, 200]);
    let over = serde_json::to_vec(&message("msg-over", 5, "120203-10")).unwrap();
    let (sig, digest) = hub.modi(&over);
    let res = hub
        .http
        .post(format!("{}/fhir/regione/$process-message", hub.base))
        .header("content-type", "application/fhir+json")
        .bearer_auth(hub.voucher())
        .header("agid-jwt-signature", sig)
        .header("digest", digest)
        .body(over)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().get("retry-after").is_some(), "{:?}", res.headers());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "throttled");
    let (bad, _) = hub.send_raw(b"{}".to_vec(), Cred::None).await;
    assert_eq!(bad, 401);
    assert_eq!(accessi(&hub.store, &ente_reader()).await.len(), 1, "the message over quota recorded nothing");
    let metrics = hub.http.get(format!("{}/metrics", hub.base)).send().await.unwrap().text().await.unwrap();
    for (outcome, n) in [("recorded", 1), ("repeated", 2), ("limited", 1), ("refused", 1)] {
        let line = format!("sigess_dimissioni_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} missing in:\n{metrics}");
    }
    hub.close().await;
}

#[tokio::test]
async fn quota_and_outcome_metrics_sqlite() {
    quota_and_outcome_metrics(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn quota_and_outcome_metrics_postgres() {
    quota_and_outcome_metrics(TestBackend::Postgres).await;
}

async fn known_person_is_not_created_again(backend: TestBackend) {
    let Some(hub) = hub(backend).await else { return };
    // Already known to Municipio I.
    let known = hub
        .store
        .create(
            &operatore("M01"),
            pb::Persona {
                codice_fiscale: cf(4),
                cognome: "Bianchi".into(),
                nome: "Nomee".into(),
                sesso: pb::Sesso::Maschio as i32,
                data_nascita: birth(4),
                luogo_nascita: "H501".into(),
                cittadinanza: "380".into(),
                ..pb::Persona::default()
            },
        )
        .await
        .unwrap();
    let (status, answer) = hub.send(&message("msg-known", 4, "120202-05"), Cred::Full).await;
    assert_eq!(status, 200, "{answer}");
    let seen = accessi(&hub.store, &operatore("M05")).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].persona_id, known.meta.as_ref().unwrap().id);
    assert_eq!(persone(&hub.store, &ente_reader()).await.len(), 1);
    // M05 now reads the anagrafica through its accesso.
    assert!(hub.store.get::<pb::Persona>(&operatore("M05"), &seen[0].persona_id, "").await.is_ok());
    hub.close().await;
}

async fn malformed_message_stores_nothing(backend: TestBackend) {
    let Some(hub) = hub(backend).await else { return };
    let mut m = message("msg-bad", 5, "120202-07");
    m["entry"][1]["resource"]["identifier"][0]["value"] = json!("BNCNMF55F06H501A");
    m["entry"][1]["resource"]["birthDate"] = json!("06/06/1955");
    m["entry"][2]["resource"]["status"] = json!("in-progress");
    m["entry"][3]["resource"]["locationCode"][0]["coding"][0]["code"] = json!("999999-99");
    let (status, oo) = hub.send(&m, Cred::Full).await;
    assert_eq!(status, 400, "{oo}");
    keep("esito-malformato", &oo);
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let exprs: Vec<&str> = oo["issue"].as_array().unwrap().iter().map(|i| i["expression"][0].as_str().unwrap()).collect();
    assert_eq!(
        exprs,
        vec![
            "Bundle.entry[1].resource.identifier",
            "Bundle.entry[1].resource.birthDate",
            "Bundle.entry[2].resource.status",
            "Bundle.entry[3].resource.locationCode",
        ]
    );
    let text = oo.to_string();
    for value in ["BNCNMF55F06H501A", "06/06/1955", "in-progress", "999999-99", "Bianchi"] {
        assert!(!text.contains(value), "{value} echoed in {text}");
    }
    // Not even JSON.
    let (status, oo) = hub.send_raw(b"{not json".to_vec(), Cred::Full).await;
    assert_eq!(status, 400);
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle");
    let (status, oo) = hub.send(&json!({ "resourceType": "Patient" }), Cred::Full).await;
    assert_eq!(status, 400);
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle.resourceType");
    // Well formed, but core refuses the person: the codice fiscale says another birth date.
    let mut m = message("msg-incoherent", 6, "120202-07");
    m["entry"][1]["resource"]["birthDate"] = json!("1999-09-09");
    let (status, oo) = hub.send(&m, Cred::Full).await;
    assert_eq!(status, 400, "{oo}");
    keep("esito-incoerente", &oo);
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle.entry.resource.ofType(Patient)");
    assert!(oo["issue"][0]["details"]["text"].as_str().unwrap().contains("codice_fiscale"), "{oo}");
    assert!(!oo.to_string().contains(&cf(6)));

    let reader = ente_reader();
    assert!(accessi(&hub.store, &reader).await.is_empty(), "nothing stored");
    assert!(persone(&hub.store, &reader).await.is_empty(), "nothing stored");
    hub.close().await;
}

async fn credentials_are_required(backend: TestBackend) {
    let Some(hub) = hub(backend).await else { return };
    let m = message("msg-cred", 7, "120202-07");
    let (status, oo) = hub.send(&m, Cred::None).await;
    assert_eq!(status, 401, "{oo}");
    assert_eq!((oo["resourceType"].as_str(), oo["issue"][0]["code"].as_str()), (Some("OperationOutcome"), Some("login")));
    keep("esito-senza-voucher", &oo);
    let (status, oo) = hub.send(&m, Cred::VoucherOnly).await;
    assert_eq!(status, 401, "{oo}");
    assert!(oo["issue"][0]["details"]["text"].as_str().unwrap().contains("Agid-JWT-Signature"), "{oo}");
    // A signature over another body is refused by the ModI check.
    let body = serde_json::to_vec(&m).unwrap();
    let (sig, digest) = hub.modi(b"another body");
    let res = hub
        .http
        .post(format!("{}/fhir/regione/$process-message", hub.base))
        .bearer_auth(hub.voucher())
        .header("content-type", "application/fhir+json")
        .header("agid-jwt-signature", sig)
        .header("digest", digest)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(accessi(&hub.store, &ente_reader()).await.is_empty());
    // The same message, properly sent, goes through.
    assert_eq!(hub.send(&m, Cred::Full).await.0, 200);
    hub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discharge_reaches_its_municipio_sqlite() {
    discharge_reaches_its_municipio(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discharge_reaches_its_municipio_postgres() {
    discharge_reaches_its_municipio(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_message_twice_is_one_case_sqlite() {
    same_message_twice_is_one_case(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_message_twice_is_one_case_postgres() {
    same_message_twice_is_one_case(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_person_is_not_created_again_sqlite() {
    known_person_is_not_created_again(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_person_is_not_created_again_postgres() {
    known_person_is_not_created_again(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_stores_nothing_sqlite() {
    malformed_message_stores_nothing(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_stores_nothing_postgres() {
    malformed_message_stores_nothing(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_sqlite() {
    credentials_are_required(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_postgres() {
    credentials_are_required(TestBackend::Postgres).await;
}

//! End-to-end tests of the REST API: a real core over a temporary SQLite file on
//! 127.0.0.1:0, the `/api/v1` router on another port, driven over HTTP with reqwest and
//! caller tokens minted with the test's signing key. Every route of the table is exercised,
//! with the error mapping (400/401/403/404/405/409/412/415) and the OpenAPI document.
//! All people are fakes built with the codice fiscale algorithm.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, net::SocketAddr, sync::Mutex, time::Duration};

use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
};
use gateway::{
    auth::Authenticator,
    core_link::{CoreLink, LinkSecurity},
    rest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};

struct Env {
    base: String,
    signer: TokenSigner,
    http: reqwest::Client,
    /// (method, path template) of every route the test called successfully.
    covered: Mutex<BTreeSet<(String, String)>>,
    stop: Option<oneshot::Sender<()>>,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    start_with(false).await
}

/// The gateway in front of core served over gRPC on 127.0.0.1:0, or (`in_process`) calling
/// core's routes in the same process as `sigess up` does.
async fn start_with(in_process: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sigess.db", dir.path().display());
    let store = Store::open(&StoreOptions::new(&url)).await.unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("key.pem")).unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr: SocketAddr = grpc.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let verifier = signer.verifier().unwrap();
    let s = store.clone();
    tokio::spawn(async move {
        core_cartella::server::serve(grpc, &s, verifier, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let link = if in_process {
        CoreLink::in_process(core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap(), signer.clone())
    } else {
        CoreLink::connect_lazy(&format!("http://{grpc_addr}"), &LinkSecurity::default(), signer.clone()).unwrap()
    };
    let app = rest::router(link, Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true));
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_addr = web.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(web, app).await.unwrap() });
    Env {
        base: format!("http://{web_addr}"),
        signer,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        covered: Mutex::new(BTreeSet::new()),
        stop: Some(tx),
        store,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn etag(&self) -> &str {
        self.headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn id(&self) -> String {
        self.body["meta"]["id"].as_str().unwrap().to_string()
    }

    /// Names in the problem's invalid_params.
    fn invalid(&self) -> Vec<String> {
        self.body["invalid_params"]
            .as_array()
            .map(|a| a.iter().map(|p| p["name"].as_str().unwrap_or("").to_string()).collect())
            .unwrap_or_default()
    }

    fn problem(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.body["status"], status);
        self
    }
}

impl Env {
    fn token(&self, ufficio: Option<&str>, roles: &[Role]) -> String {
        let caller = Caller {
            kind: CallerKind::Operatore,
            subject: format!("op-{}", ufficio.unwrap_or("ente")),
            ente: "H501".into(),
            ufficio: ufficio.map(str::to_string),
            roles: roles.to_vec(),
            purpose: "test".into(),
            request_id: String::new(),
        };
        self.signer.mint(&caller, Duration::from_secs(600)).unwrap()
    }

    fn op(&self, u: &str) -> String {
        self.token(Some(u), &[Role::Operatore])
    }

    /// Sends a request; `template` is the route it exercises, recorded when it succeeds.
    async fn send(
        &self,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut rb = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let res = rb.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            self.covered.lock().unwrap().insert((method.as_str().to_ascii_lowercase(), template.to_string()));
        }
        Reply { status, headers, body }
    }

    async fn get(&self, template: &str, path: &str, token: &str) -> Reply {
        self.send(Method::GET, template, path, Some(token), None, &[]).await
    }

    async fn post(&self, template: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, template, template, Some(token), Some(body), &[]).await
    }

    async fn put(&self, template: &str, path: &str, token: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::PUT, template, path, Some(token), Some(body), headers).await
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.store.close().await;
    }
}

fn persona(cognome: &str, nome: &str, day: u8) -> Value {
    json!({
        "codice_fiscale": compose(cognome, nome, 1961, 5, day, false, "H501"),
        "cognome": cognome,
        "nome": nome,
        "sesso": "SESSO_MASCHIO",
        "data_nascita": format!("1961-05-{day:02}"),
        "luogo_nascita": "H501",
        "cittadinanza": "380",
        "residenza": { "codice_nazione": "380", "codice_regione": "12", "codice_comune": "058091", "indirizzo": "Via Finta 10", "cap": "00153" }
    })
}

fn cartella(pid: &str) -> Value {
    json!({ "persona_id": pid, "area_utenza": "AREA_UTENZA_ANZIANI", "stato": "STATO_CARTELLA_APERTA", "data_apertura": "2026-01-10" })
}

/// A read-modify-write through GET and PUT with If-Match; returns the updated record.
async fn update(env: &Env, tpl: &str, path: &str, token: &str, change: impl FnOnce(&mut Value)) -> Value {
    let got = env.get(tpl, path, token).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let v = got.body["meta"]["version"].as_i64().unwrap();
    assert_eq!(got.etag(), format!("\"{v}\""));
    let mut rec = got.body.clone();
    change(&mut rec);
    let etag = got.etag().to_string();
    let put = env.put(tpl, path, token, rec, &[("if-match", &etag)]).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["meta"]["version"], v + 1);
    assert_eq!(put.etag(), format!("\"{}\"", v + 1));
    put.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_end_to_end() {
    every_route(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_end_to_end_core_in_process() {
    every_route(true).await;
}

async fn every_route(in_process: bool) {
    let env = start_with(in_process).await;
    let t = env.op("M01");

    // Persone: create (201, Location, ETag), get, update, list with paging, search.
    let p = env.post("/api/v1/persone", &t, persona("Rossi", "Mario", 3)).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let pid = p.id();
    assert_eq!(p.etag(), "\"1\"");
    assert_eq!(p.headers["location"], format!("/api/v1/persone/{pid}").as_str());
    assert_eq!(p.headers["cache-control"], "no-store");
    assert_eq!(p.body["meta"]["version"], json!(1), "int64 as a JSON number");
    assert_eq!(p.body["sesso"], "SESSO_MASCHIO", "enums by name");
    assert_eq!(p.body["seconda_cittadinanza"], "", "fields without presence are always written");
    let up = update(&env, "/api/v1/persone/{id}", &format!("/api/v1/persone/{pid}"), &t, |r| {
        r["contatti"] = json!({ "telefono": "06 000000" });
    })
    .await;
    assert_eq!(up["contatti"]["telefono"], "06 000000");
    let other = env.post("/api/v1/persone", &t, persona("Bianchi", "Mario", 4)).await;
    assert_eq!(other.status, StatusCode::CREATED);
    let oid = other.id();
    let page1 = env.get("/api/v1/persone", "/api/v1/persone?page_size=1", &t).await;
    assert_eq!(page1.status, StatusCode::OK, "{}", page1.body);
    assert_eq!(page1.body["persone"].as_array().unwrap().len(), 1);
    let token = page1.body["next_page_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let page2 = env.get("/api/v1/persone", &format!("/api/v1/persone?page_size=1&page_token={token}"), &t).await;
    assert_eq!(page2.body["persone"].as_array().unwrap().len(), 1);
    assert_ne!(page1.body["persone"][0]["meta"]["id"], page2.body["persone"][0]["meta"]["id"]);
    let cf = p.body["codice_fiscale"].as_str().unwrap().to_lowercase();
    let by_cf = env.get("/api/v1/persone/search", &format!("/api/v1/persone/search?codice_fiscale={cf}&purpose=verifica"), &t).await;
    assert_eq!(by_cf.status, StatusCode::OK, "{}", by_cf.body);
    assert_eq!(by_cf.body["persone"][0]["meta"]["id"], pid.as_str());
    let by_name = env.get("/api/v1/persone/search", "/api/v1/persone/search?cognome=ros", &t).await;
    assert_eq!(by_name.body["persone"].as_array().unwrap().len(), 1);
    assert_eq!(by_name.body["persone"][0]["cognome"], "Rossi");

    // Nuclei.
    let n = env
        .post(
            "/api/v1/nuclei",
            &t,
            json!({ "persona_riferimento_id": pid, "membri": [{ "persona_id": oid, "parentela": "PARENTELA_FRATELLO" }] }),
        )
        .await;
    assert_eq!(n.status, StatusCode::CREATED, "{}", n.body);
    let nid = n.id();
    update(&env, "/api/v1/nuclei/{id}", &format!("/api/v1/nuclei/{nid}"), &t, |r| r["note"] = json!("convivenza")).await;
    let nuclei = env.get("/api/v1/nuclei", &format!("/api/v1/nuclei?persona_id={oid}"), &t).await;
    assert_eq!(nuclei.status, StatusCode::OK, "{}", nuclei.body);
    assert_eq!(nuclei.body["nuclei"][0]["note"], "convivenza");
    assert_eq!(nuclei.body["nuclei"][0]["membri"][0]["parentela"], "PARENTELA_FRATELLO");

    // Accessi.
    let a = env
        .post(
            "/api/v1/accessi",
            &t,
            json!({ "persona_id": pid, "data": "2026-01-09", "canale": "CANALE_ACCESSO_SPORTELLO", "segnalante": "spontaneo",
                    "motivo": "richiesta di assistenza", "esito": "ESITO_ACCESSO_PRESA_IN_CARICO" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let aid = a.id();
    update(&env, "/api/v1/accessi/{id}", &format!("/api/v1/accessi/{aid}"), &t, |r| r["motivo"] = json!("assistenza domiciliare")).await;
    let accessi = env.get("/api/v1/accessi", &format!("/api/v1/accessi?persona_id={pid}&dal=2026-01-01&al=2026-01-31"), &t).await;
    assert_eq!(accessi.body["accessi"].as_array().unwrap().len(), 1, "{}", accessi.body);
    let none = env.get("/api/v1/accessi", &format!("/api/v1/accessi?persona_id={pid}&dal=2026-02-01"), &t).await;
    assert!(none.body["accessi"].as_array().unwrap().is_empty());

    // Cartelle.
    let mut cbody = cartella(&pid);
    cbody["accesso_id"] = json!(aid);
    let c = env.post("/api/v1/cartelle", &t, cbody).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    let cid = c.id();
    assert_eq!(c.headers["location"], format!("/api/v1/cartelle/{cid}").as_str());
    update(&env, "/api/v1/cartelle/{id}", &format!("/api/v1/cartelle/{cid}"), &t, |r| r["operatore_responsabile"] = json!("op-18")).await;
    let cartelle =
        env.get("/api/v1/cartelle", "/api/v1/cartelle?area_utenza=AREA_UTENZA_ANZIANI&stato=STATO_CARTELLA_APERTA&ufficio=M01", &t).await;
    assert_eq!(cartelle.status, StatusCode::OK, "{}", cartelle.body);
    assert_eq!(cartelle.body["cartelle"][0]["operatore_responsabile"], "op-18");
    let by_ufficio = env.get("/api/v1/persone", "/api/v1/persone?ufficio=M01", &t).await;
    assert_eq!(by_ufficio.body["persone"].as_array().unwrap().len(), 1, "only the persona with a cartella in M01");

    // Diario.
    let d = env
        .post(
            "/api/v1/diario",
            &t,
            json!({ "cartella_id": cid, "data": "2026-01-12", "tipo": "TIPO_DIARIO_VISITA_DOMICILIARE", "autore": "op-17", "testo": "Visita domiciliare." }),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
    let did = d.id();
    update(&env, "/api/v1/diario/{id}", &format!("/api/v1/diario/{did}"), &t, |r| {
        r["testo"] = json!("Visita domiciliare. Seguira relazione.")
    })
    .await;
    let diario = env.get("/api/v1/cartelle/{cartella_id}/diario", &format!("/api/v1/cartelle/{cid}/diario"), &t).await;
    assert_eq!(diario.body["entries"].as_array().unwrap().len(), 1, "{}", diario.body);

    // Valutazioni (SINA, one arm of the oneof).
    let v = env
        .post(
            "/api/v1/valutazioni",
            &t,
            json!({ "cartella_id": cid, "data": "2026-01-20", "valutatore": "UVM", "sina": {
                "mobilita": 2, "attivita_vita_quotidiana": 2, "disturbi_comportamentali": 1, "area_reddituale": 2, "area_supporto": 2,
                "fonte_derivazione_valutazione": 1, "strumento_valutazione": 1, "necessita_interventi_sociali": ["A1.01"],
                "invalidita_civile": [2], "fonte_derivazione_invalidita": 1 } }),
        )
        .await;
    assert_eq!(v.status, StatusCode::CREATED, "{}", v.body);
    let vid = v.id();
    let v2 = update(&env, "/api/v1/valutazioni/{id}", &format!("/api/v1/valutazioni/{vid}"), &t, |r| {
        r["note"] = json!("rivalutare tra sei mesi")
    })
    .await;
    assert_eq!(v2["sina"]["invalidita_civile"], json!([2]));
    assert!(v2.get("sinba").is_none(), "the unset arm of a oneof is absent");
    let vals = env.get("/api/v1/cartelle/{cartella_id}/valutazioni", &format!("/api/v1/cartelle/{cid}/valutazioni"), &t).await;
    assert_eq!(vals.body["valutazioni"].as_array().unwrap().len(), 1);

    // PAI.
    let pai = env
        .post(
            "/api/v1/pai",
            &t,
            json!({ "cartella_id": cid, "data_inizio": "2026-02-01", "stato": "STATO_PAI_ATTIVO", "obiettivi": [{ "descrizione": "Permanenza a domicilio" }] }),
        )
        .await;
    assert_eq!(pai.status, StatusCode::CREATED, "{}", pai.body);
    let paid = pai.id();
    update(&env, "/api/v1/pai/{id}", &format!("/api/v1/pai/{paid}"), &t, |r| {
        r["verifiche"] = json!([{ "data": "2026-03-01", "esito": "obiettivo in corso", "autore": "op-17" }]);
    })
    .await;
    let pais = env.get("/api/v1/cartelle/{cartella_id}/pai", &format!("/api/v1/cartelle/{cid}/pai"), &t).await;
    assert_eq!(pais.body["pai"][0]["verifiche"][0]["esito"], "obiettivo in corso");

    // Prestazioni: optional int64 amounts as numbers.
    let pr = env
        .post(
            "/api/v1/prestazioni",
            &t,
            json!({ "cartella_id": cid, "codice_prestazione": "A1.01", "denominazione": "Assistenza domiciliare socio-assistenziale",
                    "carattere": "CARATTERE_PRESTAZIONE_PERIODICA", "prova_mezzi": "PROVA_MEZZI_ISEE", "protocollo_domanda": "RC-2026-0001",
                    "data_inizio": "2026-02-01", "data_fine": "2026-07-31", "importo_mensile": 40000, "quota_ente": 36000, "quota_utente": 4000,
                    "dsu": { "numero_protocollo": "INPS-ISEE-2026-00000001-A", "anno_protocollo": "2026", "data": "2026-01-15" },
                    "stato": "STATO_PRESTAZIONE_ATTIVA" }),
        )
        .await;
    assert_eq!(pr.status, StatusCode::CREATED, "{}", pr.body);
    assert_eq!(pr.body["importo_mensile"], json!(40000));
    assert!(pr.body.get("importo").is_none(), "an unset optional stays absent");
    let prid = pr.id();
    update(&env, "/api/v1/prestazioni/{id}", &format!("/api/v1/prestazioni/{prid}"), &t, |r| {
        r["stato"] = json!("STATO_PRESTAZIONE_CONCLUSA")
    })
    .await;
    // Its SIUSS state: no worker runs here, so it is not evaluated yet and has no flows.
    let r = env.get("/api/v1/prestazioni/{id}/siuss", &format!("/api/v1/prestazioni/{prid}/siuss"), &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["valutata"], json!(false));
    let prs = env.get("/api/v1/prestazioni", "/api/v1/prestazioni?codice_prestazione=a1.01", &t).await;
    assert_eq!(prs.body["prestazioni"][0]["stato"], "STATO_PRESTAZIONE_CONCLUSA", "{}", prs.body);

    // Condivisioni: M02 reads the cartella once M01 shares it.
    let t2 = env.op("M02");
    let denied = env.get("/api/v1/cartelle/{id}", &format!("/api/v1/cartelle/{cid}"), &t2).await;
    denied.problem(403);
    let sh = env
        .post(
            "/api/v1/condivisioni",
            &t,
            json!({ "cartella_id": cid, "ufficio_destinatario": "M02", "base_giuridica": "trasferimento di residenza" }),
        )
        .await;
    assert_eq!(sh.status, StatusCode::CREATED, "{}", sh.body);
    assert!(sh.headers.get("location").is_none(), "a condivisione has no URL of its own");
    let shares = env.get("/api/v1/cartelle/{cartella_id}/condivisioni", &format!("/api/v1/cartelle/{cid}/condivisioni"), &t).await;
    assert_eq!(shares.body["condivisioni"][0]["ufficio_destinatario"], "M02");
    assert_eq!(env.get("/api/v1/cartelle/{id}", &format!("/api/v1/cartelle/{cid}"), &t2).await.status, StatusCode::OK);
    // Revoked by M01, the condivisione opens nothing more.
    let sid = sh.body["meta"]["id"].as_str().unwrap().to_string();
    let tpl = "/api/v1/condivisioni/{id}/revoca";
    let r =
        env.send(Method::POST, tpl, &format!("/api/v1/condivisioni/{sid}/revoca?motivo=progetto%20concluso"), Some(&t), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["motivo_revoca"], "progetto concluso");
    env.get("/api/v1/cartelle/{id}", &format!("/api/v1/cartelle/{cid}"), &t2).await.problem(403);

    // Statistiche: aggregates only; one person is below the threshold and suppressed.
    let st = env.token(None, &[Role::Statistica]);
    let r = env.get("/api/v1/statistiche/riepilogo", "/api/v1/statistiche/riepilogo?anno=2026", &st).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["anno"], 2026);
    assert_eq!(r.body["prestazioni"][0]["soppressa"], true);
    assert_eq!(r.body["prestazioni"][0]["spesa_centesimi"], json!(0));
    // The live tables (the projector is not running here: the table is empty but shaped),
    // as JSON, CSV and XLSX, and the catalogue.
    let tpl = "/api/v1/statistiche/tabella";
    let r = env.get(tpl, &format!("{tpl}?misura=prestazioni&righe=municipio&anno_da=2026"), &st).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["misura"].as_str(), r.body["righe"].as_str(), r.body["soglia_minima"].as_i64()),
        (Some("prestazioni"), Some("municipio"), Some(3))
    );
    let r = env.get(tpl, &format!("{tpl}?misura=prestazioni&righe=municipio&anno_da=2026&format=csv"), &st).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[reqwest::header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(r.headers[reqwest::header::CONTENT_DISPOSITION].to_str().unwrap().contains("statistiche_prestazioni_municipio_anno_2026.csv"));
    assert!(r.body.as_str().unwrap().starts_with("periodo,municipio,colonna,valore,persone,somma,media,soppressa"), "{}", r.body);
    let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let r = env.send(Method::GET, tpl, &format!("{tpl}?misura=accessi&righe=sesso"), Some(&st), None, &[("accept", xlsx)]).await;
    assert_eq!((r.status, r.headers[reqwest::header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, xlsx));
    env.get(tpl, &format!("{tpl}?misura=accessi&format=pdf"), &st).await.problem(400);
    env.get(tpl, &format!("{tpl}?misura=accessi&righe=area"), &st).await.problem(400);
    env.get(tpl, &format!("{tpl}?misura=accessi"), &t).await.problem(403);
    let r = env.get("/api/v1/statistiche/catalogo", "/api/v1/statistiche/catalogo", &st).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["misure"].as_array().unwrap().len(), 6);

    // Deliveries: a webhook peer that refuses everything parks one dead letter per change.
    let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", refusing.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/hook", axum::routing::post(|| async { StatusCode::UNPROCESSABLE_ENTITY }));
        axum::serve(refusing, app).await.unwrap()
    });
    let args = webhook::WebhookArgs { url: Some(hook_url), kinds: vec!["cartella".into()], secret: None, timeout_secs: 2 };
    let hook = adapter_contract::register(webhook::Webhook::from_args(&args).unwrap().unwrap());
    let engine = core_cartella::delivery::Engine::new(env.store.clone(), vec![hook], Default::default(), None);
    engine.drain(Duration::from_secs(10)).await.unwrap();
    let admin = env.token(None, &[Role::Amministratore]);
    let r = env.get("/api/v1/adapters", "/api/v1/adapters", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["adapters"][0]["id"], "webhook");
    assert!(r.body["adapters"][0]["dead"].as_i64().unwrap() >= 1, "{}", r.body);
    let r = env.get("/api/v1/deliveries", "/api/v1/deliveries?state=DELIVERY_STATE_DEAD&adapter=webhook&page_size=5", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let dead = r.body["deliveries"][0].clone();
    assert_eq!(dead["last_error_code"], "HTTP_422");
    let id = dead["id"].as_i64().unwrap();
    let r = env.get("/api/v1/deliveries/{id}", &format!("/api/v1/deliveries/{id}"), &admin).await;
    assert_eq!(r.body["state"], "DELIVERY_STATE_DEAD", "{}", r.body);
    assert_eq!(env.get("/api/v1/deliveries/{id}", &format!("/api/v1/deliveries/{id}"), &t).await.status, StatusCode::FORBIDDEN);
    let r =
        env.send(Method::POST, "/api/v1/deliveries/{id}/retry", &format!("/api/v1/deliveries/{id}/retry"), Some(&admin), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "DELIVERY_STATE_PENDING");
    let path = format!("/api/v1/deliveries/{id}/discard?reason=evento%20superato");
    let r = env.send(Method::POST, "/api/v1/deliveries/{id}/discard", &path, Some(&admin), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["discard_reason"], "evento superato");
    let r = env.send(Method::POST, "/api/v1/deliveries/{id}/discard", &path, Some(&admin), None, &[]).await;
    r.problem(422);
    let r = env.send(Method::POST, "/api/v1/adapters/{adapter}/replay", "/api/v1/adapters/webhook/replay", Some(&admin), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["generation"], 1);

    // The ente's INPS flows for administrators (none produced here: no SIUSS worker runs).
    let r = env.get("/api/v1/siuss/flussi", "/api/v1/siuss/flussi?stato=rejected&page_size=10", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stati: Vec<&str> = r.body["per_stato"].as_array().unwrap().iter().map(|c| c["stato"].as_str().unwrap()).collect();
    assert_eq!(stati, ["ready", "served", "acknowledged", "rejected"]);
    env.get("/api/v1/siuss/flussi", "/api/v1/siuss/flussi?stato=perso", &admin).await.problem(400);
    env.get("/api/v1/siuss/flussi", "/api/v1/siuss/flussi", &t).await.problem(403);

    // The registro degli accessi: the rows about Mario Rossi, for the dpo only.
    let dpo = env.token(None, &[Role::Dpo]);
    let path = format!("/api/v1/registro-accessi?persona_id={pid}&purpose=verifica%20del%20dpo");
    let r = env.get("/api/v1/registro-accessi", &path, &dpo).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["persona_id"], pid.as_str());
    let rows = r.body["accessi"].as_array().unwrap().clone();
    let has = |kind: &str, action: &str| rows.iter().any(|a| a["kind"] == kind && a["action"] == action && a["actor"] == "op-M01");
    assert!(has("persona", "create") && has("persona", "read") && has("persona", "update"), "{rows:?}");
    assert!(has("cartella", "create"), "the person's cartella is in their register: {rows:?}");
    let other_id = other.id();
    assert!(rows.iter().all(|a| a["record_id"] != other_id.as_str()), "another person's rows are not shown");
    // Searched by codice fiscale, and the first consultation is in the register too.
    let cf = p.body["codice_fiscale"].as_str().unwrap().to_string();
    let r = env
        .get("/api/v1/registro-accessi", &format!("/api/v1/registro-accessi?codice_fiscale={cf}&purpose=seconda%20verifica"), &dpo)
        .await;
    assert_eq!(r.body["persona_id"], pid.as_str(), "{}", r.body);
    assert!(
        r.body["accessi"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "registro" && a["actor"] == "op-ente" && a["purpose"] == "verifica del dpo"),
        "{}",
        r.body
    );
    let r = env.get("/api/v1/registro-accessi", &format!("{path}&dal=2100-01-01"), &dpo).await;
    assert_eq!(r.body["accessi"], json!([]), "{}", r.body);
    let r = env.get("/api/v1/registro-accessi", &format!("/api/v1/registro-accessi?persona_id={pid}&dal=ieri"), &dpo).await;
    let names: Vec<&str> = r.problem(400).body["invalid_params"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["purpose", "dal"], "every bad field at once");
    env.get("/api/v1/registro-accessi", &path, &t).await.problem(403);
    env.get("/api/v1/registro-accessi", &path, &admin).await.problem(403);
    // A referral from another system: the person found or created, an accesso in the ufficio;
    // the same message id again records nothing new; another ufficio's caller is refused.
    let cf = core_cartella::domain::codice_fiscale::compose("Segnalata", "Rita", 1948, 5, 6, true, "H501");
    let segnalazione = json!({
        "origine": "consultorio-asl", "id_messaggio": "seg-1", "ufficio": "M03",
        "persona": { "codice_fiscale": cf, "cognome": "Segnalata", "nome": "Rita", "data_nascita": "1948-05-06" },
        "segnalante": "Consultorio ASL", "motivo": "Richiesta di valutazione sociale",
    });
    let t3 = env.op("M03");
    let r = env.post("/api/v1/segnalazioni", &t3, segnalazione.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["accesso"]["meta"]["ufficio"], "M03");
    assert_eq!(r.body["accesso"]["canale"], "CANALE_ACCESSO_SEGNALAZIONE");
    assert_eq!(r.body["nuova_persona"], true);
    let again = env.post("/api/v1/segnalazioni", &t3, segnalazione.clone()).await;
    assert_eq!(again.body["accesso"]["meta"]["id"], r.body["accesso"]["meta"]["id"]);
    assert_eq!(again.body["gia_registrata"], true);
    env.post("/api/v1/segnalazioni", &t, segnalazione).await.problem(403);

    revisioni(&env).await;

    // Every route of the table was exercised successfully.
    let covered = env.covered.lock().unwrap().clone();
    for route in rest::routes::ROUTES {
        let key = (route.verb.as_str().to_string(), format!("/api/v1{}", route.path));
        assert!(covered.contains(&key), "route {key:?} not exercised");
    }
    env.stop().await;
}

/// The review queue and merges over REST, for role anagrafe: the pair with its evidence,
/// both personas side by side, the decision, the merges listed and undone, a merge made
/// directly; bad input and other roles answered with problem documents.
async fn revisioni(env: &Env) {
    let t = env.op("M04");
    let a = env.post("/api/v1/persone", &t, persona("Gallo", "Luca", 11)).await.id();
    let b = env.post("/api/v1/persone", &t, persona("Galli", "Luca", 12)).await.id();
    let evidenza = "cognome: simile (Jaro-Winkler >= 0.80) (+2.5)\nnome: uguale (+4.0)\nluogo_nascita: mancante\npeso complessivo: +0.9";
    assert!(env.store.queue_review("H501", &a, &b, 0.66, evidenza).await.unwrap());
    let anagrafe = env.token(Some("M04"), &[Role::Anagrafe]);

    let r = env.get("/api/v1/revisioni", "/api/v1/revisioni?page_size=10", &anagrafe).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let pair = r.body["revisioni"][0].clone();
    assert_eq!((pair["probabilita"].as_f64(), pair["stato"].as_str()), (Some(0.66), Some("STATO_REVISIONE_APERTA")), "{pair}");
    assert_eq!(
        pair["evidenza"]["confronti"][0],
        json!({ "campo": "cognome", "livello": "simile (Jaro-Winkler >= 0.80)", "peso": 2.5, "mancante": false })
    );
    assert_eq!(pair["evidenza"]["confronti"][2]["mancante"], true);
    assert_eq!(pair["evidenza"]["peso_totale"], 0.9);
    let id = pair["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/revisioni/{id}");
    let r = env.get("/api/v1/revisioni/{id}", &format!("{one}?purpose=verifica%20doppioni"), &anagrafe).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut cognomi = [r.body["a"]["persona"]["cognome"].as_str().unwrap(), r.body["b"]["persona"]["cognome"].as_str().unwrap()];
    cognomi.sort_unstable();
    assert_eq!(cognomi, ["Galli", "Gallo"]);
    assert_eq!(
        env.store.audit_count(core_cartella::record::Kind::Persona, &a, "read").await.unwrap(),
        1,
        "the side-by-side read is audited"
    );

    // Bad input and other roles, as problem documents.
    env.get("/api/v1/revisioni", "/api/v1/revisioni?stato=STATO_REVISIONE_FORSE", &anagrafe).await.problem(400);
    assert_eq!(env.get("/api/v1/revisioni", "/api/v1/revisioni?page_token=zz", &anagrafe).await.problem(400).invalid(), ["page_token"]);
    assert_eq!(env.get("/api/v1/revisioni/{id}", "/api/v1/revisioni/non-un-id", &anagrafe).await.problem(400).invalid(), ["id"]);
    env.get("/api/v1/revisioni", "/api/v1/revisioni", &t).await.problem(403);
    env.get("/api/v1/revisioni/{id}", &one, &env.token(None, &[Role::Amministratore])).await.problem(403);
    let decide = format!("{one}/decisione");
    let post = |body: Value| env.send(Method::POST, "/api/v1/revisioni/{id}/decisione", &decide, Some(&anagrafe), Some(body), &[]);
    assert_eq!(post(json!({ "esito": "ESITO_STESSA_PERSONA" })).await.problem(400).invalid(), ["decisione.superstite_id"]);
    post(json!({ "esito": "ESITO_STESSA_PERSONA", "superstite": a })).await.problem(400);
    assert_eq!(env.store.revisioni(&caller_m04_anagrafe(), "", &Default::default()).await.unwrap().0.len(), 1, "nothing decided");

    // The same person: b merged into a.
    let r = post(json!({ "esito": "ESITO_STESSA_PERSONA", "superstite_id": a })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["stato"], "STATO_REVISIONE_STESSA_PERSONA");
    let fusione = r.body["fusione_id"].as_str().unwrap().to_string();
    post(json!({ "esito": "ESITO_PERSONE_DIVERSE" })).await.problem(422);
    env.get("/api/v1/persone/{id}", &format!("/api/v1/persone/{b}"), &t).await.problem(404);
    let r = env.get("/api/v1/fusioni", &format!("/api/v1/fusioni?persona_id={a}"), &anagrafe).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["fusioni"][0]["id"].as_str(), r.body["fusioni"][0]["fusa_id"].as_str()), (Some(fusione.as_str()), Some(b.as_str())));
    let undo = format!("/api/v1/fusioni/{fusione}/annullamento");
    let r = env.send(Method::POST, "/api/v1/fusioni/{id}/annullamento", &undo, Some(&anagrafe), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body["annullata_at"].as_str().unwrap_or("").is_empty());
    env.send(Method::POST, "/api/v1/fusioni/{id}/annullamento", &undo, Some(&anagrafe), None, &[]).await.problem(404);
    assert_eq!(env.get("/api/v1/persone/{id}", &format!("/api/v1/persone/{b}"), &t).await.status, StatusCode::OK, "back");

    // A merge made directly (201), its bad forms refused.
    let r = env.post("/api/v1/fusioni", &anagrafe, json!({ "superstite_id": b, "fusa_id": a })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((r.body["superstite_id"].as_str(), r.body["ufficio_fusa"].as_str()), (Some(b.as_str()), Some("M04")));
    assert_eq!(env.post("/api/v1/fusioni", &anagrafe, json!({ "superstite_id": b })).await.problem(400).invalid(), ["fusione.fusa_id"]);
    env.post("/api/v1/fusioni", &anagrafe, json!({ "superstite_id": b, "fusa_id": a, "nota": "x" })).await.problem(400);
    env.post("/api/v1/fusioni", &t, json!({ "superstite_id": a, "fusa_id": b })).await.problem(403);
}

/// The caller behind the M04 anagrafe token, for reading the store in assertions.
fn caller_m04_anagrafe() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "op-M04".into(),
        ente: "H501".into(),
        ufficio: Some("M04".into()),
        roles: vec![Role::Anagrafe],
        purpose: "test".into(),
        request_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_problem_documents() {
    let env = start().await;
    let t = env.op("M01");
    let p = env.post("/api/v1/persone", &t, persona("Verdi", "Mario", 5)).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let pid = p.id();
    let cf = p.body["codice_fiscale"].as_str().unwrap().to_string();
    let tpl = "/api/v1/persone/{id}";
    let ppath = format!("/api/v1/persone/{pid}");

    // Malformed JSON.
    let res = env.send(Method::POST, "/api/v1/persone", "/api/v1/persone", Some(&t), None, &[("content-type", "application/json")]).await;
    assert_eq!(res.problem(400).invalid(), ["body"]);
    let raw = env
        .http
        .post(format!("{}/api/v1/persone", env.base))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"cognome\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["invalid_params"][0]["name"], "body");
    // Unknown field, wrong type, unknown enum name, non-object nested: all named at once.
    let mut bad = persona("Verdi", "Luigi", 6);
    bad["eta"] = json!(40);
    bad["cognome"] = json!(12);
    bad["sesso"] = json!("SESSO_ALTRO");
    bad["residenza"] = json!("Roma");
    let res = env.post("/api/v1/persone", &t, bad).await;
    let mut names = res.problem(400).invalid();
    names.sort();
    assert_eq!(names, ["persona.cognome", "persona.eta", "persona.residenza", "persona.sesso"]);
    assert!(!res.body.to_string().contains("Roma"), "values are never echoed");
    // Core's own validation arrives as field violations too.
    let mut missing = persona("Gialli", "Mario", 7);
    missing["cognome"] = json!("");
    let res = env.post("/api/v1/persone", &t, missing).await;
    assert!(res.problem(400).invalid().contains(&"persona.cognome".to_string()), "{}", res.body);
    assert_eq!(res.body["grpc_code"], "InvalidArgument");
    // Query parameters: unknown, wrong type, out of range, repeated; core's page_token
    // violation is named by the parameter.
    let res = env.get("/api/v1/persone", "/api/v1/persone?page_size=abc&colore=blu&ufficio=M01&ufficio=M02", &t).await;
    let mut names = res.problem(400).invalid();
    names.sort();
    assert_eq!(names, ["colore", "page_size", "ufficio"]);
    env.get("/api/v1/persone", "/api/v1/persone?page_size=501", &t).await.problem(400);
    let res = env.get("/api/v1/persone", "/api/v1/persone?page_token=%21%21", &t).await;
    assert_eq!(res.problem(400).invalid(), ["page_token"]);
    let res = env.get("/api/v1/cartelle", "/api/v1/cartelle?stato=aperta", &t).await;
    assert_eq!(res.problem(400).invalid(), ["stato"]);
    // A body id contradicting the path.
    let mut rec = p.body.clone();
    rec["meta"]["id"] = json!("altro");
    let res = env.put(tpl, &ppath, &t, rec, &[]).await;
    assert_eq!(res.problem(400).invalid(), ["persona.meta.id"]);
    // Wrong content type.
    let res = env
        .http
        .post(format!("{}/api/v1/persone", env.base))
        .bearer_auth(&t)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // 401: no token, garbage token, token signed by another key.
    let res = env.send(Method::GET, tpl, &ppath, None, None, &[]).await;
    res.problem(401);
    assert_eq!(res.headers["www-authenticate"], "Bearer");
    env.send(Method::GET, tpl, &ppath, Some("abc.def.ghi"), None, &[]).await.problem(401);
    let stranger = TokenSigner::load_or_create(&env._dir.path().join("other.pem")).unwrap();
    let forged = stranger
        .mint(
            &Caller {
                kind: CallerKind::Operatore,
                subject: "x".into(),
                ente: "H501".into(),
                ufficio: Some("M01".into()),
                roles: vec![Role::Operatore],
                purpose: "x".into(),
                request_id: String::new(),
            },
            Duration::from_secs(60),
        )
        .unwrap();
    env.send(Method::GET, tpl, &ppath, Some(&forged), None, &[]).await.problem(401);

    // 403: another Municipio's cartella; a consultazione role writing.
    let c = env.post("/api/v1/cartelle", &t, cartella(&pid)).await;
    let cid = c.id();
    let res = env.get("/api/v1/cartelle/{id}", &format!("/api/v1/cartelle/{cid}"), &env.op("M02")).await;
    res.problem(403);
    assert_eq!(res.body["grpc_code"], "PermissionDenied");
    let reader = env.token(Some("M01"), &[Role::Consultazione]);
    env.post("/api/v1/persone", &reader, persona("Neri", "Mario", 8)).await.problem(403);

    // 404: unknown id, unknown route; 405 with Allow.
    env.get(tpl, "/api/v1/persone/0190aaaa-0000-7000-8000-000000000000", &t).await.problem(404);
    env.get("", "/api/v1/nessuna/risorsa", &t).await.problem(404);
    env.send(Method::GET, "", "/api/v1/persone/x/y/z", None, None, &[]).await.problem(404);
    let res = env.send(Method::DELETE, tpl, &ppath, Some(&t), None, &[]).await;
    res.problem(405);
    let allow = res.headers["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("PUT"), "{allow}");

    // 409: the same codice fiscale again names the existing persona, never the code.
    let res = env.post("/api/v1/persone", &env.op("M02"), persona("Verdi", "Mario", 5)).await;
    res.problem(409);
    assert_eq!(res.body["existing_id"], pid.as_str());
    assert!(!res.body.to_string().contains(&cf));
    // 409: a stale meta.version in the body.
    let v1 = p.body.clone();
    let ok = env.put(tpl, &ppath, &t, v1.clone(), &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let res = env.put(tpl, &ppath, &t, v1.clone(), &[]).await;
    res.problem(409);
    assert_eq!(res.body["grpc_code"], "Aborted");
    // 412: If-Match naming a stale version or a weak tag; 400: a malformed If-Match, or the
    // body's version contradicting it.
    let mut no_meta = v1.clone();
    no_meta.as_object_mut().unwrap().remove("meta");
    env.put(tpl, &ppath, &t, no_meta.clone(), &[("if-match", "\"1\"")]).await.problem(412);
    env.put(tpl, &ppath, &t, no_meta.clone(), &[("if-match", "W/\"2\"")]).await.problem(412);
    let res = env.put(tpl, &ppath, &t, no_meta.clone(), &[("if-match", "qualcosa")]).await;
    assert_eq!(res.problem(400).invalid(), ["If-Match"]);
    let mut both = no_meta.clone();
    both["cognome"] = json!(1);
    let res = env.put(tpl, &ppath, &t, both, &[("if-match", "W/\"2\"")]).await;
    assert_eq!(res.problem(400).invalid(), ["persona.cognome"], "bad input is reported before a failed precondition");
    let res = env.put(tpl, &ppath, &t, v1.clone(), &[("if-match", "\"2\"")]).await;
    assert_eq!(res.problem(400).invalid(), ["persona.meta.version"]);
    let res = env.put(tpl, &ppath, &t, no_meta, &[("if-match", "\"2\"")]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.etag(), "\"3\"");

    // No 5xx for any of the above, and nothing was stored by refused writes.
    let all = env.get("/api/v1/persone", "/api/v1/persone?page_size=500", &t).await;
    assert_eq!(all.body["persone"].as_array().unwrap().len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_docs_are_public() {
    let env = start().await;
    let res = env.http.get(format!("{}/api/v1/openapi.json", env.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for route in rest::routes::ROUTES {
        let op = &doc["paths"][format!("/api/v1{}", route.path)][route.verb.as_str()];
        assert!(op.is_object(), "{} {} missing", route.verb.as_str(), route.path);
        for code in ["400", "401", "403", "429", "503"] {
            assert_eq!(op["responses"][code]["$ref"].as_str().map(|r| r.starts_with("#/components/responses/")), Some(true), "{code}");
        }
        let ok = if rest::routes::creates(route) { "201" } else { "200" };
        assert!(op["responses"][ok]["content"]["application/json"]["schema"]["$ref"].is_string());
    }
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let ptr = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(ptr).is_some(), "{r} does not resolve");
    }
    let docs = env.http.get(format!("{}/api/v1/docs", env.base)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("openapi.json") && !html.contains("https://"), "self-contained page");
    env.stop().await;
}

//! `/api/v1/importazioni` end to end, on SQLite and PostgreSQL: core with an import root
//! served over gRPC on 127.0.0.1:0, the whole gateway application in front of it, driven
//! over HTTP. An administrator uploads an office's export (base64 in JSON) and follows the
//! job to its end, reads its problems by file, line and column, imports a folder under the
//! import root as a dry run; paths outside the root, bad bodies, other roles and missing
//! credentials are refused with problem documents that never quote a value.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    import::jobs::ImportConfig,
    linkage::Config,
    server::CoreOptions,
    store::Store,
    testkit::{TestBackend as Backend, TestDb},
};
use gateway::{
    app::{AppConfig, Parts},
    auth::Authenticator,
    core_link::{CoreLink, LinkSecurity},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::{net::TcpListener, sync::watch};

const PERSONE: &str = "id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_luogo_nascita;cittadinanza;codice_fiscale\n\
A1;Esposito;Carla;F;03/04/1961;Roma;H501;380;\n\
A2;Esposito;Dario;M;11/12/1958;Roma;H501;380;\n\
A3;Romano;;M;01/01/1970;Roma;H501;380;\n";
const NUCLEI: &str = "id_nucleo;id_persona;relazione\nN1;A1;intestatario\nN1;A2;coniuge\n";
const CARTELLE: &str = "id_cartella;id_persona;data_apertura;area_utenza;stato\nC1;A1;01/02/2021;anziani;aperta\n";
const PRESTAZIONI: &str = "id_prestazione;id_cartella;codice_prestazione;denominazione;carattere;prova_mezzi;protocollo_domanda;data_erogazione;importo\n\
S1;C1;B2.01;Contributo economico straordinario;occasionale;isee;PR-1;10/05/2024;250,00\n\
S2;C1;B2.01;Contributo economico straordinario;occasionale;isee;PR-2;10/05/2024;0,00\n";

struct Env {
    base: String,
    signer: TokenSigner,
    http: reqwest::Client,
    store: Store,
    stop: watch::Sender<bool>,
    db: TestDb,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn start(backend: Backend) -> Option<Env> {
    let db = TestDb::new(backend, "sigess_importazioni").await?;
    let store = db.store(4).await;
    let keys = tempfile::tempdir().unwrap();
    let signer = TokenSigner::load_or_create(&keys.path().join("key.pem")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let office = root.path().join("2026").join("M05-A");
    std::fs::create_dir_all(&office).unwrap();
    for (name, text) in [("persone.csv", PERSONE), ("nuclei.csv", NUCLEI), ("cartelle.csv", CARTELLE), ("prestazioni.csv", PRESTAZIONI)] {
        std::fs::write(office.join(name), text).unwrap();
    }
    let opts = CoreOptions {
        import: ImportConfig {
            root: Some(root.path().to_path_buf()),
            heartbeat: Duration::from_millis(50),
            poll: Duration::from_millis(100),
            linkage: Config { u_sample_pairs: 10_000, ..Config::default() },
            ..ImportConfig::default()
        },
    };
    let (stop, stopping) = watch::channel(false);
    let routes = core_cartella::server::routes_with(&store, signer.verifier().unwrap(), Some(stopping.clone()), &opts).await.unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let mut grpc_stop = stopping.clone();
    tokio::spawn(core_cartella::server::serve_routes(grpc, routes, None, async move {
        let _ = grpc_stop.wait_for(|v| *v).await;
    }));
    let link = CoreLink::connect_lazy(&format!("http://{grpc_addr}"), &LinkSecurity::default(), signer.clone()).unwrap();
    let auth = Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true);
    let app = gateway::app::build(Parts { link, auth, store: None, edge: None }, &AppConfig::default()).unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", web.local_addr().unwrap());
    let mut web_stop = stopping;
    tokio::spawn(gateway::tls::serve_plain(web, app.router, async move {
        let _ = web_stop.wait_for(|v| *v).await;
    }));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Some(Env { base, signer, http, store, stop, db, _dirs: (keys, root) })
}

impl Env {
    fn token(&self, ufficio: Option<&str>, roles: &[Role]) -> String {
        let caller = Caller {
            kind: CallerKind::Operatore,
            subject: "admin-rest".into(),
            ente: "H501".into(),
            ufficio: ufficio.map(str::to_string),
            roles: roles.to_vec(),
            purpose: "test".into(),
            request_id: String::new(),
        };
        self.signer.mint(&caller, Duration::from_secs(600)).unwrap()
    }

    fn admin(&self) -> String {
        self.token(None, &[Role::Amministratore])
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let text = res.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn until_done(&self, location: &str) -> Value {
        let token = self.admin();
        for _ in 0..600 {
            let (status, _, job) = self.call(reqwest::Method::GET, location, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["state"] == "IMPORT_STATE_DONE" || job["state"] == "IMPORT_STATE_FAILED" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the job did not end");
    }
}

fn problem(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value, want: u16) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(headers.get("content-type").unwrap(), "application/problem+json");
}

fn files() -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!([
        { "name": "persone.csv", "content": b64(PERSONE) },
        { "name": "nuclei.csv", "content": b64(NUCLEI) },
        { "name": "cartelle.csv", "content": b64(CARTELLE) },
        { "name": "prestazioni.csv", "content": b64(PRESTAZIONI) },
    ])
}

async fn rest_import(backend: Backend) {
    let Some(env) = start(backend).await else { return };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let admin = env.admin();
    let body = json!({ "ufficio": "M05", "origine": "M05-A", "files": files() });

    // Who may start a job.
    let (s, h, b) = env.call(post.clone(), "/api/v1/importazioni", None, Some(body.clone())).await;
    problem(s, &h, &b, 401);
    let op = env.token(Some("M05"), &[Role::Operatore]);
    let (s, h, b) = env.call(post.clone(), "/api/v1/importazioni", Some(&op), Some(body.clone())).await;
    problem(s, &h, &b, 403);
    let (s, h, b) = env.call(get.clone(), "/api/v1/importazioni", Some(&op), None).await;
    problem(s, &h, &b, 403);

    // Bad bodies: every member named, no value quoted.
    let bad =
        json!({ "ufficio": 5, "origine": "M05-A", "dry_run": "Esposito", "files": [{ "name": "persone.csv", "content": "##Esposito" }] });
    let (s, h, b) = env.call(post.clone(), "/api/v1/importazioni", Some(&admin), Some(bad)).await;
    problem(s, &h, &b, 400);
    let names: Vec<&str> = b["invalid_params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["ufficio", "dry_run", "files[0].content"]);
    assert!(!b.to_string().contains("Esposito"));
    let (s, h, b) = env
        .call(
            post.clone(),
            "/api/v1/importazioni",
            Some(&admin),
            Some(json!({ "ufficio": "M05", "origine": "X", "files": [{ "name": "../persone.csv", "content": "" }] })),
        )
        .await;
    problem(s, &h, &b, 400);
    assert_eq!(b["invalid_params"][0]["name"], "files.files[0].name", "{b}");
    for outside in ["../..", "/etc", "2026/../../x", "2026/M99-Z"] {
        let (s, h, b) = env
            .call(
                post.clone(),
                "/api/v1/importazioni",
                Some(&admin),
                Some(json!({ "ufficio": "M05", "origine": "M05-A", "cartella": outside })),
            )
            .await;
        problem(s, &h, &b, 400);
        assert_eq!(b["invalid_params"][0]["name"], "cartella");
        assert!(!b.to_string().contains("etc") && !b.to_string().contains("M99"), "{b}");
    }
    // Linkage settings: numbers of the right kind, each checked by core against its range.
    let with = |linkage: Value| json!({ "ufficio": "M05", "origine": "M05-A", "files": files(), "linkage": linkage });
    let (s, h, b) = env
        .call(
            post.clone(),
            "/api/v1/importazioni",
            Some(&admin),
            Some(with(json!({ "seed": 3, "link_threshold": "alta", "max_block": 1.5 }))),
        )
        .await;
    problem(s, &h, &b, 400);
    let names: Vec<&str> = b["invalid_params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["linkage.seed", "linkage.link_threshold", "linkage.max_block"], "{b}");
    let (s, h, b) = env
        .call(
            post.clone(),
            "/api/v1/importazioni",
            Some(&admin),
            Some(with(json!({ "review_threshold": 0.95, "training_max_block": 1, "u_sample_pairs": 10 }))),
        )
        .await;
    problem(s, &h, &b, 400);
    let names: Vec<&str> = b["invalid_params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["linkage.review_threshold", "linkage.training_max_block", "linkage.u_sample_pairs"], "{b}");
    let res = env
        .http
        .post(format!("{}/api/v1/importazioni", env.base))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body("persone")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);

    // An upload, followed to its end.
    let (s, h, job) = env.call(post.clone(), "/api/v1/importazioni", Some(&admin), Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let location = h.get("location").unwrap().to_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/importazioni/{}", job["id"].as_str().unwrap()));
    assert_eq!(
        (job["ufficio"].as_str(), job["source"].as_str(), job["created_by"].as_str()),
        (Some("M05"), Some("files"), Some("admin-rest"))
    );
    let done = env.until_done(&location).await;
    assert_eq!(done["state"], "IMPORT_STATE_DONE", "{done}");
    let c = &done["counts"];
    assert_eq!(
        (
            c["persone_nuove"].as_i64(),
            c["cartelle_nuove"].as_i64(),
            c["prestazioni_nuove"].as_i64(),
            c["nuclei_nuovi"].as_i64(),
            c["problemi"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(2)),
        "{done}"
    );
    let (s, _, p) = env.call(get.clone(), &format!("{location}/problemi"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let got: Vec<String> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}:{}:{}", x["file"].as_str().unwrap(), x["line"], x["column"].as_str().unwrap()))
        .collect();
    assert_eq!(got, vec!["persone.csv:4:nome", "prestazioni.csv:3:importo"]);
    let persone = sqlx::query("SELECT COUNT(*) FROM persona").fetch_one(env.store.pool()).await.unwrap().try_get::<i64, _>(0).unwrap();
    assert_eq!(persone, 2);
    let (s, h, b) = env.call(post.clone(), &format!("{location}/annulla"), Some(&admin), None).await;
    problem(s, &h, &b, 422);

    // The same office's folder under the import root, as a dry run: all already imported.
    let (s, h, job) = env
        .call(
            post.clone(),
            "/api/v1/importazioni",
            Some(&admin),
            Some(json!({ "ufficio": "M05", "origine": "M05-A", "cartella": "2026/M05-A", "dry_run": true,
                "linkage": { "link_threshold": 0.97, "u_sample_pairs": 5000 } })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let l = &job["linkage"];
    assert_eq!(
        (l["link_threshold"].as_f64(), l["review_threshold"].as_f64(), l["max_block"].as_u64()),
        (Some(0.97), Some(0.5), Some(2000)),
        "{job}"
    );
    assert_eq!(done["linkage"]["link_threshold"].as_f64(), Some(0.9), "a job without settings runs with the defaults: {done}");
    let dry = env.until_done(h.get("location").unwrap().to_str().unwrap()).await;
    assert_eq!((dry["source"].as_str(), dry["dry_run"].as_bool()), (Some("cartella"), Some(true)));
    assert_eq!((dry["counts"]["persone_gia_importate"].as_i64(), dry["counts"]["persone_nuove"].as_i64()), (Some(2), Some(0)), "{dry}");

    let (s, _, list) = env.call(get.clone(), "/api/v1/importazioni?page_size=1", Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["jobs"][0]["id"], job["id"]);
    assert!(!list["next_page_token"].as_str().unwrap().is_empty());
    let (s, h, b) = env.call(get.clone(), "/api/v1/importazioni/no-such-job", Some(&admin), None).await;
    problem(s, &h, &b, 404);

    // The OpenAPI document lists the operations.
    let (_, _, doc) = env.call(get, "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc["paths"]["/api/v1/importazioni"]["post"]["operationId"], "StartImport");
    assert_eq!(doc["paths"]["/api/v1/importazioni"]["get"]["operationId"], "ListImports");
    assert_eq!(doc["paths"]["/api/v1/importazioni/{id}/problemi"]["get"]["operationId"], "ListImportProblems");
    let _ = env.stop.send(true);
    env.store.close().await;
    env.db.drop_pg().await;
}

#[tokio::test]
async fn importazioni_sqlite() {
    rest_import(Backend::Sqlite).await;
}

#[tokio::test]
async fn importazioni_postgres() {
    rest_import(Backend::Postgres).await;
}

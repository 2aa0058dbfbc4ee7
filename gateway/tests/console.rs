//! The web console's HTTP side against a real core and edge store: pages need a session and
//! carry the strict CSP; assets are served with their type; the demo login exists only in
//! demo mode and opens a session with the same cookie and CSRF rules as SPID/CIE; clients
//! and operators are managed only by ente-wide administrators, never answering a codice
//! fiscale. (The browser suite in `conformance/console` drives the same pages in Chromium.)
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
};
use gateway::{
    app::{self, AppConfig, Parts},
    auth::Authenticator,
    core_link::CoreLink,
    edge_store::EdgeStore,
};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};
use tokio::net::TcpListener;

struct Hub {
    base: String,
    signer: TokenSigner,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(demo: bool) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/hub.db", dir.path().display()))).await.unwrap();
    let edge = EdgeStore::open(&format!("sqlite://{}/edge.db", dir.path().display()), 2).await.unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let link = CoreLink::in_process(core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap(), signer.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut auth = Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true);
    if demo {
        gateway::console::seed_demo_operators(&edge).await.unwrap();
        let rp = spid_cie::Rp::new(gateway::console::demo_login_config(addr, dir.path()), Arc::new(edge.clone())).unwrap();
        auth = auth.with_sessions(rp);
    }
    let app =
        app::build(Parts { link, auth, store: Some(store), edge: Some(edge) }, &AppConfig { console_demo: demo, ..Default::default() })
            .unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    let http = reqwest::Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(20)).build().unwrap();
    Hub { base: format!("http://{addr}"), signer, http, _dir: dir }
}

impl Hub {
    fn token(&self, ufficio: Option<&str>, roles: &[Role]) -> String {
        let c = Caller {
            kind: CallerKind::Operatore,
            subject: "admin-test".into(),
            ente: "H501".into(),
            ufficio: ufficio.map(str::to_string),
            roles: roles.to_vec(),
            purpose: "test".into(),
            request_id: String::new(),
        };
        self.signer.mint(&c, Duration::from_secs(300)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_assets_and_the_demo_login() {
    let hub = start(true).await;
    // Without a session a page sends to the login, with the console's headers.
    let r = hub.http.get(format!("{}/console/inps", hub.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/accesso");
    let r = hub.http.get(format!("{}/console/accesso", hub.base)).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"operatore\" id=\"op-demo-dpo\""), "the demo form lists the demo operators");
    assert!(!html.contains("<script>") && !html.contains(" style="), "no inline script or style");
    // Assets: our script with its type, nothing outside the embedded set.
    let r = hub.http.get(format!("{}/console/assets/console.js", hub.base)).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(hub.http.get(format!("{}/console/assets/..%2fbuild.rs", hub.base)).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    // The demo login opens a session; its cookie reads, and writes need the CSRF token too.
    let bad = hub.http.post(format!("{}/console/accesso-demo", hub.base)).form(&[("operatore", "root")]).send().await.unwrap();
    assert!(bad.headers().get("set-cookie").is_none());
    let r = hub.http.post(format!("{}/console/accesso-demo", hub.base)).form(&[("operatore", "demo-amministratore")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let r = hub.http.get(format!("{}/console/", hub.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("demo-amministratore") && page.contains("href=\"/console/utenze\""));
    let session: Value =
        hub.http.get(format!("{}/oidc/rp/session", hub.base)).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
    let csrf = session["csrf_token"].as_str().unwrap();
    let r = hub.http.get(format!("{}/api/v1/adapters", hub.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the session reaches core as an ente-wide amministratore");
    let cf = compose("Verdi", "Anna", 1985, 3, 4, true, "H501");
    let body = json!({ "operator_id": "op-m02-001", "codice_fiscale": cf, "ufficio": "M02", "roles": ["operatore"] });
    let url = format!("{}/console/api/operatori", hub.base);
    let r = hub.http.post(&url).header("cookie", &cookie).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a write without the CSRF token is refused");
    let r = hub.http.post(&url).header("cookie", &cookie).header("x-csrf-token", csrf).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&cf), "no codice fiscale in the answer");
    // The dpo's session reads no deliveries.
    let r = hub.http.post(format!("{}/console/accesso-demo", hub.base)).form(&[("operatore", "demo-dpo")]).send().await.unwrap();
    let dpo = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(
        hub.http.get(format!("{}/api/v1/adapters", hub.base)).header("cookie", &dpo).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        hub.http.get(format!("{}/console/api/client", hub.base)).header("cookie", &dpo).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_operators_for_administrators_only() {
    let hub = start(false).await;
    let r = hub.http.post(format!("{}/console/accesso-demo", hub.base)).form(&[("operatore", "demo-amministratore")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no demo login outside demo mode");
    let admin = hub.token(None, &[Role::Amministratore]);
    let url = |p: &str| format!("{}/console/api/{p}", hub.base);
    // Every bad field at once, nothing stored.
    let r = hub
        .http
        .post(url("operatori"))
        .bearer_auth(&admin)
        .json(&json!({ "operator_id": "a b", "codice_fiscale": "XX", "ufficio": "M01;", "roles": ["root"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let p: Value = r.json().await.unwrap();
    let names: Vec<&str> = p["invalid_params"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["operator_id", "codice_fiscale", "ufficio", "roles"]);
    let list: Value = hub.http.get(url("operatori")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["operatori"], json!([]));
    // A client with a secret shown once; disabled, then its roles changed.
    let r = hub
        .http
        .post(url("client"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "App M04", "ufficio": "M04", "roles": ["operatore"], "purpose": "gestione", "secret": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.unwrap();
    let id = c["client_id"].as_str().unwrap();
    assert!(c["secret"].as_str().is_some_and(|s| s.len() >= 32));
    let r: Value = hub.http.post(url(&format!("client/{id}/disabilita"))).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["disabled"], true);
    let r: Value = hub
        .http
        .post(url(&format!("client/{id}/ruoli")))
        .bearer_auth(&admin)
        .json(&json!({ "roles": ["consultazione"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["roles"], json!(["consultazione"]));
    let list: Value = hub.http.get(url("client")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert!(list.to_string().find("secret_hash").is_none() && list["client"][0].get("secret").is_none());
    // Not for an ufficio's administrator, an operator, or without credentials.
    for t in [hub.token(Some("M01"), &[Role::Amministratore]), hub.token(None, &[Role::Operatore])] {
        assert_eq!(hub.http.get(url("client")).bearer_auth(&t).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(hub.http.get(url("client")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hub.http.post(url("operatori/nessuno/disabilita")).bearer_auth(&admin).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_page_for_role_anagrafe() {
    let hub = start(true).await;
    let r = hub.http.post(format!("{}/console/accesso-demo", hub.base)).form(&[("operatore", "demo-anagrafe")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let r = hub.http.get(format!("{}/console/revisioni", hub.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"tabella-confronto\"") && page.contains("href=\"/console/revisioni\""));
    assert!(!page.contains("alert-warning") && !page.contains("href=\"/console/consegne\""), "its own page only");
    // The session reaches RevisioneService; a write needs the CSRF token.
    let r = hub.http.get(format!("{}/api/v1/revisioni", hub.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let session: Value =
        hub.http.get(format!("{}/oidc/rp/session", hub.base)).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
    let csrf = session["csrf_token"].as_str().unwrap();
    let body = json!({ "superstite_id": uuid::Uuid::now_v7().to_string(), "fusa_id": uuid::Uuid::now_v7().to_string() });
    let url = format!("{}/api/v1/fusioni", hub.base);
    let r = hub.http.post(&url).header("cookie", &cookie).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no CSRF token, no write");
    let r = hub.http.post(&url).header("cookie", &cookie).header("x-csrf-token", csrf).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "core answered: no such persona");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // The amministratore's session has no review queue.
    let r = hub.http.post(format!("{}/console/accesso-demo", hub.base)).form(&[("operatore", "demo-amministratore")]).send().await.unwrap();
    let admin = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let r = hub.http.get(format!("{}/api/v1/revisioni", hub.base)).header("cookie", &admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

//! `sigess gateway` as a process of its own, started without core's database URL, in front
//! of a core reached over gRPC: it serves every route (health, metrics, REST, OAuth2 token,
//! WaaS, SPID/CIE sessions), and the flag for core's database is gone from it.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    store::{Store, StoreOptions},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn gateway_without_core_database_serves_every_route() {
    // Core on its own, with its store in a folder the gateway is never told about.
    let core_dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/core.db", core_dir.path().display()))).await.unwrap();
    core_cartella::demo::seed(&store, 1, 7).await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("hub-signing-key.pem");
    let signer = TokenSigner::load_or_create(&key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (s, v) = (store.clone(), signer.verifier().unwrap());
    let core = tokio::spawn(async move {
        core_cartella::server::serve(listener, &s, v, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    // The gateway's folder: only its edge store and SPID/CIE keys land here.
    let gw = tempfile::tempdir().unwrap();
    let edge = format!("sqlite://{}/edge.db", gw.path().display());
    let sigess = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sigess"));
        c.current_dir(gw.path()).env_remove("DATABASE_URL").env_remove("SIGESS_EDGE_DATABASE_URL");
        c
    };
    let refused = sigess().args(["gateway", "--database-url", "sqlite://x.db"]).output().unwrap();
    assert!(!refused.status.success(), "sigess gateway takes no core database URL");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--database-url"));

    let out = sigess()
        .args(["client", "add", "--edge-database-url", &edge, "--name", "INPS", "--roles", "siuss"])
        .args(["--purpose", "alimentazione SIUSS", "--secret"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().to_string();
    let (client_id, secret) = (field("client_id:"), field("client_secret:"));

    let mut child = sigess()
        .args(["gateway", "--core-url", &format!("http://{core_addr}"), "--edge-database-url", &edge])
        .args(["--http-addr", "127.0.0.1:0", "--accept-hub-tokens", "--signing-key"])
        .arg(&key)
        .args(["--spid-entity-id", "http://127.0.0.1:18999/oidc/rp/", "--session-cookie-secure", "false", "--spid-allow-http-loopback"])
        .args(["--spid-federation-key", "fed.pem", "--spid-sig-key", "sig.pem", "--spid-enc-key", "enc.pem"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let line = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        }),
    )
    .await
    .expect("the gateway starts")
    .unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("listen address printed").to_string();

    let http = reqwest::Client::new();
    let get = |path: &str, bearer: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    assert_eq!(get("/readyz", None).await.unwrap().status(), 200, "edge store and core both answer");
    assert_eq!(get("/metrics", None).await.unwrap().status(), 200);

    // REST as an operator of Municipio I, with a hub token.
    let operator = Caller {
        kind: CallerKind::Operatore,
        subject: "op-m01".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "verifica".into(),
        request_id: String::new(),
    };
    let token = signer.mint(&operator, Duration::from_secs(300)).unwrap();
    let r = get("/api/v1/persone/search?cognome=RO&page_size=5", Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // OAuth2 client credentials against the edge store, then WaaS with the access token.
    let r = http
        .post(format!("{base}/oauth/token"))
        .header("authorization", format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}"))))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    assert_eq!(get("/waas/v1/status", Some(&access)).await.unwrap().status(), 200);
    let r = get("/waas/v1/flussi?since=0&limit=5", Some(&access)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["elenco_flussi"].is_array());
    let esiti = r#"{"elenco_esiti":[{"id_flusso":"H501.PS.20261128.0000001","tipo":"PS_PSA_SINA","ts_flusso":"2026-11-28T10:00:00Z","ts_acquisizione":"2026-11-28T10:00:01Z","codice_esito":"OK"}]}"#;
    let r = http
        .post(format!("{base}/waas/v1/esiti"))
        .bearer_auth(&access)
        .header("content-type", "application/json")
        .body(esiti)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an esito for a flow core never produced is refused through core");
    assert!(r.text().await.unwrap().contains("elenco_esiti[0]"));
    // WaaS is for ente-wide readers: core's answer is not even asked for an ufficio's operator.
    assert_eq!(get("/waas/v1/status", Some(&token)).await.unwrap().status(), 403);

    // SPID/CIE: the relying party's routes over the edge store.
    assert_eq!(get("/oidc/rp/.well-known/openid-federation", None).await.unwrap().status(), 200);
    let r = http.get(format!("{base}/oidc/rp/session")).header("cookie", "sigess_rp_session=planted").send().await.unwrap();
    assert_eq!(r.status(), 401);

    drop(child);
    assert!(!gw.path().join("data").exists(), "the gateway opened nothing of core's");
    assert!(gw.path().join("edge.db").exists());
    let _ = stop.send(());
    core.await.unwrap();
    store.close().await;
}

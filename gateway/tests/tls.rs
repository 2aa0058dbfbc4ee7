//! HTTPS at the gateway with certificates from a test CA made by rcgen: HTTP/1.1 and HTTP/2
//! over one listener, a client certificate from the CA mapped to its registered client, a
//! certificate from another CA refused at the handshake, and shutdown that returns.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use axum::{Extension, Json, Router, middleware, routing::get};
use core_cartella::auth::{Caller, Role, TokenSigner};
use gateway::{
    auth::{Authenticator, ClientRegistry, NewClient, cert_fingerprint, require_caller},
    edge_store::EdgeStore,
    tls::{TlsConfig, serve_tls},
};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Ca {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, issuer: Issuer::new(params, key) }
}

/// A leaf signed by `ca`: (certificate, key).
fn leaf(ca: &Ca, name: &str, server: bool) -> (Certificate, KeyPair) {
    let mut params = CertificateParams::new(if server { vec!["localhost".to_string()] } else { Vec::new() }).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if server {
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, &ca.issuer).unwrap(), key)
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

async fn whoami(Extension(c): Extension<Caller>) -> Json<Value> {
    Json(json!({ "subject": c.subject, "ente": c.ente, "ufficio": c.ufficio }))
}

/// Starts the gateway over TLS; client certificates from `ca` are verified (`required` or
/// optional) and `client` is registered by its fingerprint.
async fn start(ca: &Ca, client: &Certificate, required: bool) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (server_cert, server_key) = leaf(ca, "gateway", true);
    let mut cfg = TlsConfig::new(write("server.pem", &server_cert.pem()), write("server-key.pem", &server_key.serialize_pem()));
    cfg.client_ca = Some(write("clients-ca.pem", &ca.cert.pem()));
    cfg.client_cert_required = required;

    let edge = EdgeStore::open(&format!("sqlite://{}", dir.path().join("edge.db").display()), 1).await.unwrap();
    let registry = ClientRegistry::new(edge);
    let (registered, _) = registry
        .create(NewClient {
            name: "Regione Lazio".into(),
            ente: "H501".into(),
            ufficio: Some("M05".into()),
            roles: vec![Role::Consultazione],
            purpose: "fascicolo sociosanitario".into(),
            cert_sha256: Some(cert_fingerprint(client.der())),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let hub = TokenSigner::load_or_create(&dir.path().join("hub.pem")).unwrap();
    let auth = Authenticator::new(hub.verifier().unwrap()).accept_hub_tokens(true).with_clients(registry);
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route_layer(middleware::from_fn_with_state(auth, require_caller))
        .route("/open", get(|| async { "open" }));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        serve_tls(listener, router, cfg, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (Server { addr, stop: Some(tx), done, ca_pem: ca.cert.pem(), _dir: dir }, registered.client_id)
}

fn client(server: &Server, identity: Option<(&Certificate, &KeyPair)>, http1: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

async fn stop(mut s: Server) {
    let _ = s.stop.take().unwrap().send(());
    tokio::time::timeout(Duration::from_secs(35), s.done).await.unwrap().unwrap();
}

#[tokio::test]
async fn http1_and_http2_over_tls_and_client_certificates_mapped_to_clients() {
    let test_ca = ca("SIGeSS test CA");
    let (client_cert, client_key) = leaf(&test_ca, "regione-lazio", false);
    let (server, client_id) = start(&test_ca, &client_cert, false).await;
    let base = format!("https://localhost:{}", server.addr.port());

    // Without a client certificate (optional mode): open routes work on both protocols.
    let res = client(&server, None, true).get(format!("{base}/open")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.version()), (200, reqwest::Version::HTTP_11));
    let res = client(&server, None, false).get(format!("{base}/open")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.version()), (200, reqwest::Version::HTTP_2));
    let res = client(&server, None, false).get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);

    // The registered client certificate authenticates, with no bearer token, on both protocols.
    for http1 in [true, false] {
        let res = client(&server, Some((&client_cert, &client_key)), http1).get(format!("{base}/whoami")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({ "subject": client_id, "ente": "H501", "ufficio": "M05" }));
    }

    // A certificate from another CA is refused by the handshake: no response at all.
    let other_ca = ca("Somebody else's CA");
    let (foreign_cert, foreign_key) = leaf(&other_ca, "intruder", false);
    for http1 in [true, false] {
        let res = client(&server, Some((&foreign_cert, &foreign_key)), http1).get(format!("{base}/open")).send().await;
        assert!(res.is_err(), "a foreign client certificate got an answer: {:?}", res.map(|r| r.status()));
    }
    // A certificate from the CA that is not registered gets through TLS but authenticates nobody.
    let (stranger_cert, stranger_key) = leaf(&test_ca, "unregistered", false);
    let res = client(&server, Some((&stranger_cert, &stranger_key)), false).get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);

    stop(server).await;
}

#[tokio::test]
async fn required_client_certificate_refuses_anonymous_connections() {
    let test_ca = ca("SIGeSS test CA");
    let (client_cert, client_key) = leaf(&test_ca, "app", false);
    let (server, _) = start(&test_ca, &client_cert, true).await;
    let base = format!("https://localhost:{}", server.addr.port());
    assert!(client(&server, None, false).get(format!("{base}/open")).send().await.is_err());
    let res = client(&server, Some((&client_cert, &client_key)), false).get(format!("{base}/open")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    stop(server).await;
}

#[test]
fn bad_files_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsConfig::new(dir.path().join("none.pem"), dir.path().join("none-key.pem"));
    assert!(missing.server_config().is_err());
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let empty = TlsConfig::new(dir.path().join("empty.pem"), dir.path().join("empty.pem"));
    assert!(empty.server_config().is_err());
}

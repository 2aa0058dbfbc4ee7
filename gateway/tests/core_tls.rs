//! TLS between gateway and core. As processes: `sigess certs` makes the certificates,
//! `sigess core` serves gRPC over mTLS and `sigess gateway` reaches it with its client
//! certificate; a gateway without one is not let in; plaintext to a non-loopback address is
//! refused at start on both sides. In process: the handshake refuses a client without a
//! certificate, one with a certificate from another CA, and a client that trusts another CA.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    server::GrpcTls,
    store::{Store, StoreOptions},
};
use gateway::core_link::{CoreLink, CoreTls, LinkSecurity};
use tokio::{net::TcpListener, sync::oneshot};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigess(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sigess"));
    c.current_dir(dir).env_remove("DATABASE_URL").env_remove("SIGESS_EDGE_DATABASE_URL").env_remove("SIGESS_CORE_URL");
    c
}

/// `sigess certs --out DIR` for core at 127.0.0.1.
fn certs(dir: &Path) -> PathBuf {
    let out = dir.join("tls");
    let o = sigess(dir).args(["certs", "--core-san", "127.0.0.1", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Starts a process and returns it with the first line it prints (its listen address).
async fn started(mut cmd: Command) -> (Killed, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(60), read).await.expect("the process starts").unwrap();
    assert!(!line.is_empty(), "the process printed nothing and ended");
    (child, line)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn gateway_reaches_core_over_mtls_as_processes() {
    let dir = tempfile::tempdir().unwrap();
    let tls = certs(dir.path());
    let key = dir.path().join("hub-signing-key.pem");
    let signer = TokenSigner::load_or_create(&key).unwrap();

    let mut core = sigess(dir.path());
    core.args(["core", "--grpc-addr", "127.0.0.1:0", "--signing-key"]).arg(&key);
    core.arg("--database-url").arg(format!("sqlite://{}/core.db", dir.path().display()));
    core.arg("--grpc-tls-cert").arg(tls.join("core.pem")).arg("--grpc-tls-key").arg(tls.join("core-key.pem"));
    core.arg("--grpc-client-ca").arg(tls.join("ca.pem"));
    let (_core, line) = started(core).await;
    assert!(line.contains("TLS, client certificates required"), "{line}");
    let core_addr: SocketAddr = line.split_whitespace().find_map(|w| w.parse().ok()).expect("address printed");

    let gateway = |name: &str, client_cert: bool| {
        let mut c = sigess(dir.path());
        c.args(["gateway", "--http-addr", "127.0.0.1:0", "--accept-hub-tokens", "--core-url", &format!("https://{core_addr}")]);
        c.arg("--signing-key").arg(&key).arg("--edge-database-url").arg(format!("sqlite://{}/{name}.db", dir.path().display()));
        c.arg("--core-ca").arg(tls.join("ca.pem"));
        if client_cert {
            c.arg("--core-client-cert").arg(tls.join("gateway.pem")).arg("--core-client-key").arg(tls.join("gateway-key.pem"));
        }
        c
    };
    let base = |line: &str| line.split_whitespace().find(|w| w.starts_with("http://")).expect("listen address printed").to_string();
    let http = reqwest::Client::new();

    let (_gw, line) = started(gateway("edge", true)).await;
    let url = base(&line);
    let r = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "core answers over mTLS: {}", r.text().await.unwrap());
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
    let r = http.get(format!("{url}/api/v1/persone/search?cognome=RO&page_size=5")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The same gateway without its client certificate is not let in by core.
    let (_anon, line) = started(gateway("edge-anon", false)).await;
    let r = http.get(format!("{}/readyz", base(&line))).send().await.unwrap();
    assert_eq!(r.status(), 503, "core refuses a gateway without a client certificate");
    let r = http.get(format!("{}/api/v1/persone/search?cognome=RO", base(&line))).bearer_auth(&token).send().await.unwrap();
    // (tonic reports the connection core closed as CANCELLED, which the gateway answers 499.)
    assert!(!r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn plaintext_off_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hub-signing-key.pem");
    TokenSigner::load_or_create(&key).unwrap();
    let db = format!("sqlite://{}/core.db", dir.path().display());

    let core = |extra: &[&str]| {
        let mut c = sigess(dir.path());
        c.args(["core", "--database-url", &db, "--signing-key"]).arg(&key).args(extra);
        c.output().unwrap()
    };
    let o = core(&["--grpc-addr", "0.0.0.0:0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a loopback address") && stderr(&o).contains("--grpc-plaintext"), "{}", stderr(&o));
    assert!(!dir.path().join("core.db").exists(), "refused before the store is opened");
    let o = core(&["--grpc-addr", "127.0.0.1:0", "--grpc-tls-cert", "x.pem"]);
    assert!(!o.status.success() && stderr(&o).contains("--grpc-tls-key"), "a certificate needs its key: {}", stderr(&o));
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let o = core(&["--grpc-addr", "127.0.0.1:0", "--grpc-tls-cert", "junk.pem", "--grpc-tls-key", "junk.pem"]);
    assert!(!o.status.success() && stderr(&o).contains("gRPC TLS settings"), "{}", stderr(&o));

    let gateway = |extra: &[&str]| {
        let mut c = sigess(dir.path());
        c.args(["gateway", "--http-addr", "127.0.0.1:0", "--edge-database-url"])
            .arg(format!("sqlite://{}/edge.db", dir.path().display()))
            .arg("--signing-key")
            .arg(&key)
            .args(extra);
        c
    };
    for url in ["http://10.0.0.1:50051", "http://core:50051"] {
        let o = gateway(&["--core-url", url]).output().unwrap();
        assert!(!o.status.success());
        assert!(stderr(&o).contains("not a loopback address") && stderr(&o).contains("--core-plaintext"), "{}", stderr(&o));
    }
    let o = gateway(&["--core-url", "https://127.0.0.1:50051"]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("needs --core-ca"), "{}", stderr(&o));
    let o = gateway(&["--core-url", "https://127.0.0.1:50051", "--core-ca", "junk.pem"]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("--core-ca holds no PEM certificate"), "{}", stderr(&o));
    let ca = certs(dir.path()).join("ca.pem");
    let o = gateway(&["--core-url", "http://127.0.0.1:50051", "--core-ca", ca.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("https://"), "{}", stderr(&o));

    // With the flag a plaintext link off loopback starts (and connects only when used).
    let (_gw, line) = started({
        let mut c = gateway(&["--core-url", "http://core.invalid:50051", "--core-plaintext"]);
        c.stderr(Stdio::null());
        c
    })
    .await;
    assert!(line.contains("core.invalid"), "{line}");
}

/// A test CA: its certificate and an issuer for leaves.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { pem, issuer: rcgen::Issuer::new(params, key) }
}

/// (certificate, key) PEM signed by `ca`: a server for 127.0.0.1 or a client.
fn leaf(ca: &Ca, server: bool) -> (Vec<u8>, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(if server { vec!["127.0.0.1".to_string()] } else { Vec::new() }).unwrap();
    params.extended_key_usages =
        vec![if server { rcgen::ExtendedKeyUsagePurpose::ServerAuth } else { rcgen::ExtendedKeyUsagePurpose::ClientAuth }];
    let key = rcgen::KeyPair::generate().unwrap();
    (params.signed_by(&key, &ca.issuer).unwrap().pem().into(), key.serialize_pem().into())
}

/// Whether a health check over a link to `addr` with `tls` succeeds.
async fn answers(addr: SocketAddr, tls: CoreTls, signer: &TokenSigner) -> bool {
    let security = LinkSecurity { tls: Some(tls), plaintext_anywhere: false };
    let link = CoreLink::connect_lazy(&format!("https://{addr}"), &security, signer.clone()).unwrap();
    let mut client = HealthClient::new(link.channel());
    let check = client.check(HealthCheckRequest { service: String::new() });
    tokio::time::timeout(Duration::from_secs(10), check).await.expect("an answer or a refusal in time").is_ok()
}

#[tokio::test]
async fn handshake_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/core.db", dir.path().display()))).await.unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let (hub, other) = (ca("hub CA"), ca("another CA"));
    let (cert_pem, key_pem) = leaf(&hub, true);

    let mut stops = Vec::new();
    let mut serve = async |client_ca: Option<&Ca>| {
        let tls = GrpcTls { cert_pem: cert_pem.clone(), key_pem: key_pem.clone(), client_ca_pem: client_ca.map(|c| c.pem.clone().into()) };
        tls.check().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            core_cartella::server::serve_routes(listener, routes, Some(&tls), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        stops.push((stop, task));
        addr
    };
    let trusting = |ca: &Ca, client: Option<(Vec<u8>, Vec<u8>)>| CoreTls::from_pem(ca.pem.clone().into(), client).unwrap();

    // TLS without client certificates: the CA the gateway trusts decides.
    let tls_only = serve(None).await;
    assert!(answers(tls_only, trusting(&hub, None), &signer).await);
    assert!(!answers(tls_only, trusting(&other, None), &signer).await, "a core certificate from a CA the gateway does not trust");

    // mTLS: only a client certificate from the hub's CA is let in.
    let mutual = serve(Some(&hub)).await;
    assert!(!answers(mutual, trusting(&hub, None), &signer).await, "no client certificate");
    assert!(!answers(mutual, trusting(&hub, Some(leaf(&other, false))), &signer).await, "a client certificate from another CA");
    assert!(!answers(mutual, trusting(&other, Some(leaf(&hub, false))), &signer).await, "the gateway trusts the wrong CA");
    assert!(answers(mutual, trusting(&hub, Some(leaf(&hub, false))), &signer).await, "refusals leave the listener serving");

    for (stop, task) in stops {
        let _ = stop.send(());
        task.await.unwrap();
    }
    store.close().await;
}

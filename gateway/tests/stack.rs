//! The gateway in front of a real core: gRPC ingress (unary and streaming), authentication
//! refusals, per-client rate limits, load shedding, request ids, metrics, readiness. Imports,
//! the review queue and deliveries through the ingress, authorised by core, with the
//! message limits of each service.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use cartella_proto::v1::{
    self as pb, cartella_service_client::CartellaServiceClient, delivery_service_client::DeliveryServiceClient,
    feed_service_client::FeedServiceClient, import_service_client::ImportServiceClient, revisione_service_client::RevisioneServiceClient,
};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
};
use gateway::{
    app::{self, AppConfig, Parts},
    auth::Authenticator,
    core_link::{CoreLink, LinkSecurity},
    stack::{StackConfig, limit::RateConfig},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};

struct Running {
    gateway: SocketAddr,
    store: Store,
    signer: TokenSigner,
    stop_core: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn start(cfg: AppConfig) -> Running {
    start_with(cfg, false).await
}

/// The gateway in front of core served over gRPC, or (`in_process`) calling core's routes in
/// its own process as `sigess up` does.
async fn start_with(cfg: AppConfig, in_process: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/hub.db", dir.path().display()))).await.unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let core_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = core_listener.local_addr().unwrap();
    let (stop_core, stopped) = oneshot::channel::<()>();
    let (s, v) = (store.clone(), signer.verifier().unwrap());
    tokio::spawn(async move {
        core_cartella::server::serve(core_listener, &s, v, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let link = if in_process {
        CoreLink::in_process(core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap(), signer.clone())
    } else {
        CoreLink::connect_lazy(&format!("http://{core_addr}"), &LinkSecurity::default(), signer.clone()).unwrap()
    };
    let auth = Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true);
    let app = app::build(Parts { link, auth, store: None, edge: None }, &cfg).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    Running { gateway, store, signer, stop_core: Some(stop_core), _dir: dir }
}

impl Running {
    fn token(&self, subject: &str) -> String {
        self.token_as(subject, Some("M01"), &[Role::Operatore])
    }

    fn token_as(&self, subject: &str, ufficio: Option<&str>, roles: &[Role]) -> String {
        let c = Caller {
            kind: CallerKind::Sistema,
            subject: subject.into(),
            ente: "H501".into(),
            ufficio: ufficio.map(str::to_string),
            roles: roles.to_vec(),
            purpose: "test".into(),
            request_id: String::new(),
        };
        self.signer.mint(&c, Duration::from_secs(300)).unwrap()
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.gateway)).unwrap().connect().await.unwrap()
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if !token.is_empty() {
        r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    r
}

fn persona(day: u8) -> pb::Persona {
    pb::Persona {
        codice_fiscale: compose("Porta", "Lino", 1950, 2, day, false, "H501"),
        cognome: "Porta".into(),
        nome: "Lino".into(),
        sesso: pb::Sesso::Maschio as i32,
        data_nascita: format!("1950-02-{day:02}"),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_ingress_forwards_unary_and_streaming_calls() {
    grpc_ingress_forwards(false).await;
}

#[tokio::test]
async fn grpc_ingress_forwards_to_core_in_process() {
    grpc_ingress_forwards(true).await;
}

async fn grpc_ingress_forwards(in_process: bool) {
    let hub = start_with(AppConfig::default(), in_process).await;
    let token = hub.token("app-municipio-1");
    let mut c = CartellaServiceClient::new(hub.channel().await);
    let p = c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(persona(1)) }, &token)).await.unwrap().into_inner();
    let id = p.meta.as_ref().unwrap().id.clone();
    let got = c.get_persona(with_token(pb::GetRequest { id: id.clone(), ..Default::default() }, &token)).await.unwrap();
    assert!(got.metadata().contains_key("x-ratelimit-remaining"));
    assert_eq!(got.into_inner(), p);
    // Errors from core come back as gRPC statuses with their details.
    let dup = c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(persona(1)) }, &token)).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);

    let mut feed = FeedServiceClient::new(hub.channel().await);
    let mut stream = feed.watch_changes(with_token(pb::WatchChangesRequest::default(), &token)).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.id, id);
    let p2 = c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(persona(2)) }, &token)).await.unwrap().into_inner();
    let live = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(live.id, p2.meta.unwrap().id);
}

fn start_import(files: &[(&str, Vec<u8>)]) -> pb::StartImportRequest {
    pb::StartImportRequest {
        ufficio: "M01".into(),
        origine: "M01-A".into(),
        dry_run: true,
        source: Some(pb::start_import_request::Source::Files(pb::ImportFiles {
            files: files.iter().map(|(name, content)| pb::ImportFile { name: (*name).into(), content: content.clone() }).collect(),
        })),
        linkage: None,
    }
}

const PERSONE_CSV: &str = "id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_luogo_nascita;cittadinanza;codice_fiscale\n\
A1;Esposito;Carla;F;03/04/1961;Roma;H501;380;\n";

#[tokio::test]
async fn grpc_ingress_serves_imports_reviews_and_deliveries_as_core_authorises() {
    let hub = start(AppConfig::default()).await;
    let operatore = hub.token("app-municipio-1");
    let admin = hub.token_as("console-ente", None, &[Role::Amministratore]);
    let anagrafe = hub.token_as("anagrafe-m01", Some("M01"), &[Role::Anagrafe]);

    // Two personas of Municipio I and a pair of them left for review.
    let mut c = CartellaServiceClient::new(hub.channel().await);
    let mut ids = Vec::new();
    for day in [1, 2] {
        let p = c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(persona(day)) }, &operatore)).await.unwrap();
        ids.push(p.into_inner().meta.unwrap().id);
    }
    assert!(hub.store.queue_review("H501", &ids[0], &ids[1], 0.7, "peso complessivo: +1.0").await.unwrap());

    let mut r = RevisioneServiceClient::new(hub.channel().await);
    let list = || pb::ListRevisioniRequest::default();
    let pairs = r.list_revisioni(with_token(list(), &anagrafe)).await.unwrap().into_inner().revisioni;
    assert_eq!(pairs.len(), 1);
    let mut got = [pairs[0].persona_a_id.clone(), pairs[0].persona_b_id.clone()];
    got.sort();
    ids.sort();
    assert_eq!(got.as_slice(), ids.as_slice());
    assert_eq!(r.list_revisioni(with_token(list(), &operatore)).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(r.list_revisioni(with_token(list(), "")).await.unwrap_err().code(), Code::Unauthenticated);

    let mut i = ImportServiceClient::new(hub.channel().await);
    let small = || start_import(&[("persone.csv", PERSONE_CSV.as_bytes().to_vec())]);
    let job = i.start_import(with_token(small(), &admin)).await.unwrap().into_inner();
    assert!(job.dry_run);
    let again = i.get_import(with_token(pb::ImportRef { id: job.id.clone() }, &admin)).await.unwrap().into_inner();
    assert_eq!(again.id, job.id);
    for token in [&operatore, &anagrafe] {
        assert_eq!(i.start_import(with_token(small(), token)).await.unwrap_err().code(), Code::PermissionDenied);
    }
    assert_eq!(i.start_import(with_token(small(), "")).await.unwrap_err().code(), Code::Unauthenticated);

    // An upload of a few MiB (over the 4 MiB of other services) goes through; one over
    // ImportService's limit is refused at the gateway, naming it, and never reaches core.
    let mut big = b"filler\n".to_vec();
    big.resize(6 * 1024 * 1024, b'#');
    let files = [("persone.csv", PERSONE_CSV.as_bytes().to_vec()), ("nuclei.csv", big)];
    let job = i.start_import(with_token(start_import(&files), &admin)).await.unwrap().into_inner();
    assert!(!job.id.is_empty());
    let limit = gateway::grpc_ingress::message_limit("/cartella.v1.ImportService/StartImport");
    let huge = start_import(&[("persone.csv", vec![b'#'; limit])]);
    let refused = i.start_import(with_token(huge, &admin)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains(&format!("limit of {limit} bytes")), "{}", refused.message());
    let jobs = i.list_imports(with_token(pb::ListImportsRequest::default(), &admin)).await.unwrap().into_inner();
    assert_eq!(jobs.jobs.len(), 2, "the refused upload queued nothing");
    // Records keep core's 4 MiB.
    let mut fat = persona(3);
    fat.cognome = "X".repeat(5 * 1024 * 1024);
    let refused = c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(fat) }, &operatore)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    let mut d = DeliveryServiceClient::new(hub.channel().await);
    d.list_adapters(with_token(pb::ListAdaptersRequest {}, &admin)).await.unwrap();
    assert_eq!(d.list_adapters(with_token(pb::ListAdaptersRequest {}, &operatore)).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(d.list_adapters(with_token(pb::ListAdaptersRequest {}, "")).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn grpc_ingress_refuses_without_valid_credentials() {
    let hub = start(AppConfig::default()).await;
    let mut c = CartellaServiceClient::new(hub.channel().await);
    for token in ["", "garbage", "a.b.c"] {
        let err = c.get_persona(with_token(pb::GetRequest { id: "x".into(), ..Default::default() }, token)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "token {token:?}");
    }
    let other = TokenSigner::load_or_create(&hub._dir.path().join("other.pem")).unwrap();
    let forged = other
        .mint(
            &Caller {
                kind: CallerKind::Sistema,
                subject: "x".into(),
                ente: "H501".into(),
                ufficio: None,
                roles: vec![Role::Operatore],
                purpose: String::new(),
                request_id: String::new(),
            },
            Duration::from_secs(60),
        )
        .unwrap();
    let err = c.get_persona(with_token(pb::GetRequest { id: "x".into(), ..Default::default() }, &forged)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn rate_limit_per_client() {
    let hub = start(AppConfig { rate: RateConfig { per_minute: 6, burst: 3 }, ..Default::default() }).await;
    let (a, b) = (hub.token("client-a"), hub.token("client-b"));
    let mut c = CartellaServiceClient::new(hub.channel().await);
    let get = |t: &str| with_token(pb::ListPersoneRequest::default(), t);
    for _ in 0..3 {
        c.list_persone(get(&a)).await.unwrap();
    }
    let err = c.list_persone(get(&a)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.metadata().get("retry-after").is_some());
    assert_eq!(err.metadata().get("x-ratelimit-remaining").unwrap(), "0");
    c.list_persone(get(&b)).await.expect("another client keeps its own quota");
}

#[tokio::test]
async fn rest_rate_limit_after_the_burst() {
    let hub = start(AppConfig { rate: RateConfig { per_minute: 6, burst: 2 }, ..Default::default() }).await;
    let (a, b) = (hub.token("rest-a"), hub.token("rest-b"));
    let http = reqwest::Client::new();
    for remaining in ["1", "0"] {
        let r = http.get(hub.http("/api/v1/persone")).bearer_auth(&a).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "2");
        assert_eq!(r.headers()["x-ratelimit-remaining"], remaining);
    }
    let r = http.get(hub.http("/api/v1/persone")).bearer_auth(&a).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "retry-after {retry}");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(http.get(hub.http("/api/v1/persone")).bearer_auth(&b).send().await.unwrap().status(), 200, "quotas are per client");
    // Refused credentials never consume anyone's quota and are 401, not 429.
    assert_eq!(http.get(hub.http("/api/v1/persone")).bearer_auth("x.y.z").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn sheds_load_beyond_capacity_and_limits_bodies() {
    use axum::{
        Router,
        routing::{get, post},
    };
    let cfg = StackConfig { max_concurrency: 1, max_body: 64, ..Default::default() };
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "done"
        }),
    );
    let echo = gateway::stack::rest(Router::new().route("/echo", post(|body: String| async move { body })), &cfg);
    let app = gateway::stack::outer(slow.merge(echo), &cfg, gateway::stack::metrics::Metrics::new().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let first = tokio::spawn(http.get(format!("http://{addr}/slow")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = http.get(format!("http://{addr}/slow")).send().await.unwrap();
    assert_eq!(r.status(), 503, "the only slot is taken: shed, do not queue");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(first.await.unwrap().unwrap().status(), 200);

    let ok = http.post(format!("http://{addr}/echo")).body("x".repeat(64)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let big = http.post(format!("http://{addr}/echo")).body("x".repeat(65)).send().await.unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.headers()["content-type"], "application/problem+json");
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>("0123456789")));
    let streamed = http.post(format!("http://{addr}/echo")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(streamed.status(), 413, "a body without a length is cut when it grows past the limit");
}

#[tokio::test]
async fn request_ids_metrics_and_readiness() {
    let mut hub = start(AppConfig::default()).await;
    let token = hub.token("metrics-client");
    let http = reqwest::Client::new();
    let r = http.get(hub.http("/healthz")).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty(), "a request id is generated");
    let r = http.get(hub.http("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123", "a given request id is propagated");
    let nf = http.get(hub.http("/no/such/path")).send().await.unwrap();
    assert_eq!(nf.status(), 404);
    assert_eq!(nf.headers()["content-type"], "application/problem+json");

    let mut c = CartellaServiceClient::new(hub.channel().await);
    let p = persona(3);
    c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(p.clone()) }, &token)).await.unwrap();
    for invented in ["FROB1", "FROB2", "FROB3"] {
        let r = http.request(reqwest::Method::from_bytes(invented.as_bytes()).unwrap(), hub.http("/healthz")).send().await.unwrap();
        assert!(r.status().is_client_error(), "{invented}: {}", r.status());
    }
    let m = http.get(hub.http("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!m.contains("FROB"), "a method a client invents is no metric label: {m}");
    assert!(m.contains(r#"method="other""#), "{m}");
    assert!(m.contains(r#"sigess_http_requests_total{method="POST",route="/cartella.v1.CartellaService/{method}",status="200"} 1"#), "{m}");
    assert!(m.contains(r#"sigess_http_requests_total{method="GET",route="unmatched",status="404"} 1"#), "{m}");
    assert!(m.contains("sigess_http_request_duration_seconds_bucket"));
    assert!(m.contains("sigess_http_requests_in_flight"));
    assert!(!m.contains(&p.codice_fiscale) && !m.contains("Porta"), "no personal data in metrics");

    assert_eq!(http.get(hub.http("/readyz")).send().await.unwrap().status(), 200);
    let _ = hub.stop_core.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = http.get(hub.http("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
}

/// Sends `head` and part of a body, then nothing (a slowloris client); returns the status
/// line the gateway answers with, or None when it says nothing within 10 s.
async fn slow_body(addr: SocketAddr, head: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"{\"elenco").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.ok()?.ok()?;
    String::from_utf8_lossy(&buf[..n]).lines().next().map(str::to_string)
}

#[tokio::test]
async fn every_route_times_out_slow_request_bodies() {
    let cfg = AppConfig { stack: StackConfig { timeout: Duration::from_secs(1), ..Default::default() }, ..Default::default() };
    let hub = start(cfg).await;
    let inps = hub.signer.mint(
        &Caller {
            kind: CallerKind::Sistema,
            subject: "inps".into(),
            ente: "H501".into(),
            ufficio: None,
            roles: vec![Role::Siuss],
            purpose: "acquisizione".into(),
            request_id: String::new(),
        },
        Duration::from_secs(300),
    );
    let inps = inps.unwrap();
    let operator = hub.token("app");
    for (route, token) in [("/waas/v1/esiti", &inps), ("/api/v1/persone", &operator)] {
        let head = format!(
            "POST {route} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n"
        );
        let started = std::time::Instant::now();
        let line = slow_body(hub.gateway, &head).await.unwrap_or_else(|| panic!("{route}: no answer to a body that never ends"));
        assert!(line.contains(" 503 "), "{route}: {line}");
        assert!(started.elapsed() < Duration::from_secs(8), "{route}: answered only after {:?}", started.elapsed());
    }
}

/// A request body sent in `pieces`, `pause(i)` before piece i.
fn paused_body(pieces: Vec<Vec<u8>>, pause: impl Fn(usize) -> Duration + Send + Sync + 'static) -> reqwest::Body {
    use futures::StreamExt as _;
    reqwest::Body::wrap_stream(futures::stream::iter(pieces.into_iter().enumerate()).then(move |(i, p)| {
        let wait = pause(i);
        async move {
            tokio::time::sleep(wait).await;
            Ok::<_, std::io::Error>(p)
        }
    }))
}

/// A gRPC call sent raw over HTTP/2, its request body in `pieces`, each after `pause`:
/// the response's status, gRPC status header (trailers-only errors) and body.
async fn grpc_in_pieces(
    hub: &Running,
    path: &str,
    token: &str,
    pieces: Vec<Vec<u8>>,
    pause: impl Fn(usize) -> Duration + Send + Sync + 'static,
) -> (u16, Option<String>, Vec<u8>) {
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let res = client
        .post(hub.http(path))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(paused_body(pieces, pause))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let grpc = res.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_string());
    (status, grpc, res.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
}

#[tokio::test]
async fn slow_uploads_through_the_ingress_are_not_cut_by_the_request_timeout() {
    use prost::Message as _;
    let timeout = Duration::from_millis(800);
    let hub = start(AppConfig { stack: StackConfig { timeout, ..Default::default() }, ..Default::default() }).await;
    let admin = hub.token_as("console-ente", None, &[Role::Amministratore]);
    let mut filler = b"filler\n".to_vec();
    filler.resize(64 * 1024, b'#');
    let msg = start_import(&[("persone.csv", PERSONE_CSV.as_bytes().to_vec()), ("nuclei.csv", filler)]).encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend(u32::try_from(msg.len()).unwrap().to_be_bytes());
    framed.extend(msg);
    let pieces = || framed.chunks(framed.len() / 8 + 1).map(<[u8]>::to_vec).collect::<Vec<_>>();
    const START: &str = "/cartella.v1.ImportService/StartImport";

    // Nine pieces 300 ms apart: 2.7 s of upload, over three times the timeout, and answered.
    let started = std::time::Instant::now();
    let (status, grpc, body) = grpc_in_pieces(&hub, START, &admin, pieces(), |_| Duration::from_millis(300)).await;
    assert_eq!((status, grpc.as_deref()), (200, None), "a slow upload is answered");
    assert!(started.elapsed() > timeout * 3, "the upload was not slow: {:?}", started.elapsed());
    let job = pb::ImportJob::decode(body.get(5..).unwrap_or_default()).unwrap();
    assert!(!job.id.is_empty() && job.dry_run, "{job:?}");

    // A client that stops sending half-way for longer than the timeout is refused, and
    // nothing is queued.
    let (status, grpc, _) = grpc_in_pieces(&hub, START, &admin, pieces(), |i| Duration::from_millis(if i == 4 { 2_500 } else { 0 })).await;
    assert_eq!((status, grpc.as_deref()), (200, Some("4")), "DEADLINE_EXCEEDED when the upload stalls");
    let mut i = ImportServiceClient::new(hub.channel().await);
    let jobs = i.list_imports(with_token(pb::ListImportsRequest::default(), &admin)).await.unwrap().into_inner();
    assert_eq!(jobs.jobs.len(), 1, "the stalled upload queued nothing");
}

/// `POST /api/v1/importazioni` with its JSON body sent in pieces, `pause(i)` before piece i.
async fn rest_upload_in_pieces(
    hub: &Running,
    token: &str,
    body: Vec<u8>,
    pause: impl Fn(usize) -> Duration + Send + Sync + 'static,
) -> (u16, serde_json::Value) {
    let pieces: Vec<Vec<u8>> = body.chunks(body.len() / 8 + 1).map(<[u8]>::to_vec).collect();
    let res = reqwest::Client::new()
        .post(hub.http("/api/v1/importazioni"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(paused_body(pieces, pause))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn slow_rest_uploads_are_not_cut_by_the_request_timeout() {
    use base64::Engine as _;
    let timeout = Duration::from_millis(800);
    let hub = start(AppConfig { stack: StackConfig { timeout, ..Default::default() }, ..Default::default() }).await;
    let admin = hub.token_as("console-ente", None, &[Role::Amministratore]);
    let mut filler = b"filler\n".to_vec();
    filler.resize(64 * 1024, b'#');
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body = serde_json::to_vec(&serde_json::json!({
        "ufficio": "M01", "origine": "M01-A", "dry_run": true,
        "files": [{ "name": "persone.csv", "content": b64(PERSONE_CSV.as_bytes()) }, { "name": "nuclei.csv", "content": b64(&filler) }],
    }))
    .unwrap();

    // Nine pieces 300 ms apart: 2.7 s of upload, over three times the timeout, and answered.
    let started = std::time::Instant::now();
    let (status, job) = rest_upload_in_pieces(&hub, &admin, body.clone(), |_| Duration::from_millis(300)).await;
    assert_eq!(status, 202, "a slow upload is answered: {job}");
    assert!(started.elapsed() > timeout * 3, "the upload was not slow: {:?}", started.elapsed());
    assert!(job["id"].as_str().is_some_and(|id| !id.is_empty()), "{job}");

    // A client that stops sending half-way for longer than the timeout gets 408, and
    // nothing is queued.
    let (status, problem) = rest_upload_in_pieces(&hub, &admin, body, |i| Duration::from_millis(if i == 4 { 2_500 } else { 0 })).await;
    assert_eq!(status, 408, "{problem}");
    assert_eq!(problem["detail"], "the upload paused for more than 800 ms");
    let mut i = ImportServiceClient::new(hub.channel().await);
    let jobs = i.list_imports(with_token(pb::ListImportsRequest::default(), &admin)).await.unwrap().into_inner();
    assert_eq!(jobs.jobs.len(), 1, "the stalled upload queued nothing");
}

/// An import service that takes its time to answer.
struct SlowImports(Duration);

#[tonic::async_trait]
impl pb::import_service_server::ImportService for SlowImports {
    async fn start_import(&self, _: tonic::Request<pb::StartImportRequest>) -> Result<tonic::Response<pb::ImportJob>, tonic::Status> {
        tokio::time::sleep(self.0).await;
        Ok(tonic::Response::new(pb::ImportJob { id: "late".into(), ..Default::default() }))
    }
    async fn get_import(&self, _: tonic::Request<pb::ImportRef>) -> Result<tonic::Response<pb::ImportJob>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
    async fn list_imports(
        &self,
        _: tonic::Request<pb::ListImportsRequest>,
    ) -> Result<tonic::Response<pb::ListImportsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
    async fn list_import_problems(
        &self,
        _: tonic::Request<pb::ListImportProblemsRequest>,
    ) -> Result<tonic::Response<pb::ListImportProblemsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
    async fn cancel_import(&self, _: tonic::Request<pb::ImportRef>) -> Result<tonic::Response<pb::ImportJob>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

#[tokio::test]
async fn the_ingress_still_times_out_a_core_slow_to_answer_after_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = listener.local_addr().unwrap();
    let slow = tonic::service::Routes::new(pb::import_service_server::ImportServiceServer::new(SlowImports(Duration::from_secs(5))));
    tokio::spawn(async move { axum::serve(listener, slow.into_axum_router()).await.unwrap() });
    let link = CoreLink::connect_lazy(&format!("http://{core_addr}"), &LinkSecurity::default(), signer.clone()).unwrap();
    let auth = Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true);
    let timeout = Duration::from_millis(800);
    let cfg = AppConfig { stack: StackConfig { timeout, ..Default::default() }, ..Default::default() };
    let app = app::build(Parts { link, auth, store: None, edge: None }, &cfg).unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = web.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(web, app.router).await.unwrap() });
    let admin = Caller {
        kind: CallerKind::Sistema,
        subject: "console-ente".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Amministratore],
        purpose: "test".into(),
        request_id: String::new(),
    };
    let token = signer.mint(&admin, Duration::from_secs(300)).unwrap();
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let started = std::time::Instant::now();
    let err = ImportServiceClient::new(channel)
        .start_import(with_token(start_import(&[("persone.csv", PERSONE_CSV.as_bytes().to_vec())]), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered only after {:?}", started.elapsed());

    // The same through REST: the upload is quick, core's answer is not, 503.
    let started = std::time::Instant::now();
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/importazioni"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(r#"{"ufficio":"M01","origine":"M01-A","dry_run":true,"files":[{"name":"persone.csv","content":""}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(started.elapsed() < Duration::from_secs(4), "answered only after {:?}", started.elapsed());
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["detail"], "the call took too long: retry shortly");
}

#[tokio::test]
async fn change_feed_streams_are_capped_per_caller_and_end_when_the_client_is_disabled() {
    use gateway::{
        auth::{AccessTokens, ClientRegistry, NewClient},
        edge_store::EdgeStore,
        grpc_ingress::StreamLimits,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/hub.db", dir.path().display()))).await.unwrap();
    let key = dir.path().join("k.pem");
    let signer = TokenSigner::load_or_create(&key).unwrap();
    let edge = EdgeStore::open(&format!("sqlite://{}/edge.db", dir.path().display()), 1).await.unwrap();
    let registry = ClientRegistry::new(edge.clone());
    let tokens = AccessTokens::load(&key, Duration::from_secs(900)).unwrap();
    let auth = Authenticator::new(signer.verifier().unwrap()).with_clients(registry.clone()).with_access_tokens(tokens.clone());
    let link = CoreLink::in_process(core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap(), signer.clone());
    let cfg = AppConfig { streams: StreamLimits::new(2, Duration::from_millis(300)), ..Default::default() };
    let app = app::build(Parts { link, auth, store: None, edge: Some(edge) }, &cfg).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });

    let new = |name: &str| NewClient {
        name: name.into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "gestione".into(),
        with_secret: true,
        ..NewClient::default()
    };
    let (app_a, _) = registry.create(new("App A")).await.unwrap();
    let (app_b, _) = registry.create(new("App B")).await.unwrap();
    let token_a = tokens.issue(&app_a, &[Role::Operatore]).unwrap();
    let token_b = tokens.issue(&app_b, &[Role::Operatore]).unwrap();
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut feed = FeedServiceClient::new(channel.clone());
    let open = |feed: &mut FeedServiceClient<Channel>, t: &str| {
        let r = with_token(pb::WatchChangesRequest::default(), t);
        let mut feed = feed.clone();
        async move { feed.watch_changes(r).await }
    };

    // Two streams per caller; the third is refused, another caller is not affected.
    let s1 = open(&mut feed, &token_a).await.unwrap().into_inner();
    let mut s2 = open(&mut feed, &token_a).await.unwrap().into_inner();
    assert_eq!(open(&mut feed, &token_a).await.unwrap_err().code(), Code::ResourceExhausted);
    let mut b = open(&mut feed, &token_b).await.unwrap().into_inner();
    // Closing one gives its slot back.
    drop(s1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s3 = open(&mut feed, &token_a).await.unwrap().into_inner();

    // App A is disabled: its open streams end with UNAUTHENTICATED within a recheck; B's goes on.
    registry.set_disabled(&app_a.client_id, true).await.unwrap();
    for s in [&mut s2, &mut s3] {
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.message().await {
                    Ok(Some(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("the stream of a disabled client ends");
        assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);
    }
    let mut c = CartellaServiceClient::new(channel);
    let created =
        c.create_persona(with_token(pb::CreatePersonaRequest { persona: Some(persona(3)) }, &token_b)).await.unwrap().into_inner();
    let seen = tokio::time::timeout(Duration::from_secs(5), b.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(seen.id, created.meta.unwrap().id, "the other client's stream still flows");
}

#[tokio::test]
async fn login_routes_are_rate_limited_per_source_address() {
    use axum::{Router, routing::get};
    let routes = Router::new().route("/oidc/rp/landing", get(|| async { "pagina di accesso" }));
    let app = gateway::app::login_routes(routes, RateConfig { per_minute: 1, burst: 3 });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap() });
    let from = |ip: [u8; 4]| reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap();
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let url = format!("http://{addr}/oidc/rp/landing");
    for _ in 0..3 {
        assert_eq!(a.get(&url).send().await.unwrap().status(), 200);
    }
    let r = a.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(b.get(&url).send().await.unwrap().status(), 200, "another address has its own quota");
}

#[tokio::test]
async fn a_client_dribbling_its_headers_loses_the_connection() {
    use axum::{Router, extract::ConnectInfo, routing::get};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = Router::new().route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::tls::serve_plain_with(listener, app, std::future::pending(), Duration::from_secs(1)));
    // A whole request is served, with the peer's address.
    let r = reqwest::get(format!("http://{addr}/peer")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "127.0.0.1");
    // Half a head, then silence: the server gives up on it.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("the server closed or answered").unwrap_or(0);
    assert!(started.elapsed() < Duration::from_secs(5), "held for {:?}", started.elapsed());
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
}

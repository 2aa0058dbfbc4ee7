//! Assembles the gRPC server of core: the `cartella.v1` services behind caller-token
//! authentication, plus standard health (tracking the store) and reflection, served in
//! plaintext (loopback) or over rustls with optional client certificates (mTLS).
use std::{fmt, future::Future, net::SocketAddr, time::Duration};

use cartella_proto::v1::{
    FILE_DESCRIPTOR_SET, audit_service_server::AuditServiceServer, cartella_service_server::CartellaServiceServer,
    delivery_service_server::DeliveryServiceServer, feed_service_server::FeedServiceServer, import_service_server::ImportServiceServer,
    revisione_service_server::RevisioneServiceServer, siuss_service_server::SiussServiceServer, stats_service_server::StatsServiceServer,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Request, Status,
    service::{Interceptor, Routes, interceptor::InterceptedService},
    transport::{Certificate, Identity, Server, ServerTlsConfig},
};
use tonic_health::ServingStatus;

use crate::{
    auth::TokenVerifier,
    import::jobs::{ImportConfig, Jobs, MAX_UPLOAD},
    service::{AuditSvc, CartellaSvc, DeliverySvc, FeedSvc, ImportSvc, RevisioneSvc, SiussSvc, StatsSvc},
    store::Store,
};

/// What core's routes are built with besides the store and the token verifier.
#[derive(Clone, Debug, Default)]
pub struct CoreOptions {
    /// The import runner of this process and the folder server-side imports may read.
    pub import: ImportConfig,
}

pub const SERVICES: [&str; 8] = [
    "cartella.v1.CartellaService",
    "cartella.v1.FeedService",
    "cartella.v1.StatsService",
    "cartella.v1.SiussService",
    "cartella.v1.DeliveryService",
    "cartella.v1.AuditService",
    "cartella.v1.ImportService",
    "cartella.v1.RevisioneService",
];

/// Largest request message core decodes on its services (tonic's default), except:
pub const MESSAGE_LIMIT: usize = 4 * 1024 * 1024;
/// the largest `ImportService` request: an upload of the files with room for their framing.
pub const IMPORT_MESSAGE_LIMIT: usize = MAX_UPLOAD + 1024 * 1024;

/// Verifies the caller token of every call and puts the `Caller` in the request extensions.
#[derive(Clone, Debug)]
pub struct Authenticate {
    verifier: TokenVerifier,
}

impl Authenticate {
    pub fn new(verifier: TokenVerifier) -> Self {
        Self { verifier }
    }
}

/// Request id from the caller (the gateway propagates its own), or a fresh one.
fn request_id<T>(req: &Request<T>) -> String {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let rid = request_id(&req);
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| Status::unauthenticated("caller token missing: send authorization: Bearer <token>"))?;
        let caller = self.verifier.verify(token.trim(), &rid).map_err(|e| Status::unauthenticated(e.to_string()))?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The gRPC routes of core, to serve alone or merged with HTTP routes. Feed streams end
/// only when their client goes: see [`routes_until`].
pub async fn routes(store: &Store, verifier: TokenVerifier) -> Result<Routes, Box<dyn std::error::Error + Send + Sync>> {
    routes_until(store, verifier, None).await
}

/// [`routes`] whose open feed streams end once `stop` turns `true`, so a server stopping
/// gracefully is not held open by followers.
pub async fn routes_until(
    store: &Store,
    verifier: TokenVerifier,
    stop: Option<watch::Receiver<bool>>,
) -> Result<Routes, Box<dyn std::error::Error + Send + Sync>> {
    routes_with(store, verifier, stop, &CoreOptions::default()).await
}

/// [`routes_until`] with `opts`. Also starts this process's import runner, which ends with
/// `stop` or when the store is closed.
pub async fn routes_with(
    store: &Store,
    verifier: TokenVerifier,
    stop: Option<watch::Receiver<bool>>,
    opts: &CoreOptions,
) -> Result<Routes, Box<dyn std::error::Error + Send + Sync>> {
    let jobs = Jobs::new(store.clone(), opts.import.clone());
    jobs.clone().spawn(stop.clone());
    let feed = match &stop {
        Some(stop) => FeedSvc::until(store.clone(), stop.clone()),
        None => FeedSvc::new(store.clone()),
    };
    let auth = Authenticate::new(verifier);
    let (reporter, health) = tonic_health::server::health_reporter();
    for s in SERVICES {
        reporter.set_service_status(s, ServingStatus::Serving).await;
    }
    // Health follows the store: a database that stops answering makes the services NOT_SERVING.
    // The watch ends with `stop`, or when the store is closed, which every command does on
    // shutdown.
    let watched = store.clone();
    let mut stop = stop;
    tokio::spawn(async move {
        let mut last = true;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stopped(&mut stop) => break,
            }
            if watched.pool().is_closed() {
                break;
            }
            let ok = watched.ping().await.is_ok();
            if ok != last {
                let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
                reporter.set_service_status("", status).await;
                for s in SERVICES {
                    reporter.set_service_status(s, status).await;
                }
                last = ok;
            }
        }
    });
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1alpha too: Python's grpcio-reflection client and several common tools speak only it.
    let routes = Routes::new(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(CartellaServiceServer::with_interceptor(CartellaSvc::new(store.clone()), auth.clone()))
        .add_service(FeedServiceServer::with_interceptor(feed, auth.clone()))
        .add_service(StatsServiceServer::with_interceptor(StatsSvc::new(store.clone()), auth.clone()))
        .add_service(SiussServiceServer::with_interceptor(SiussSvc::new(store.clone()), auth.clone()))
        .add_service(DeliveryServiceServer::with_interceptor(DeliverySvc::new(store.clone()), auth.clone()))
        .add_service(AuditServiceServer::with_interceptor(AuditSvc::new(store.clone()), auth.clone()))
        .add_service(RevisioneServiceServer::with_interceptor(RevisioneSvc::new(store.clone()), auth.clone()))
        // Uploaded exports are larger than any record: room for the files and their framing.
        .add_service(InterceptedService::new(
            ImportServiceServer::new(ImportSvc::new(jobs)).max_decoding_message_size(IMPORT_MESSAGE_LIMIT),
            auth,
        ));
    Ok(routes)
}

/// Resolves once `stop` turns `true` (or its sender is gone); never without one.
pub(crate) async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|v| *v).await;
        }
        None => std::future::pending().await,
    }
}

/// Longest a TLS handshake may take on core's listener, so a silent peer cannot hold a slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS of core's gRPC listener, as PEM: the server's certificate chain (leaf first) and key,
/// and, for mutual TLS, the CA certificates every client certificate must chain to. With a
/// client CA a connection without a certificate from it is refused at the handshake.
#[derive(Clone)]
pub struct GrpcTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for GrpcTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcTls").field("mutual", &self.client_ca_pem.is_some()).finish_non_exhaustive()
    }
}

impl GrpcTls {
    /// Builds the TLS configuration once, so files that are not a certificate chain, its
    /// key or a CA stop the process before it listens.
    pub fn check(&self) -> Result<(), tonic::transport::Error> {
        Server::builder().tls_config(self.server_config()).map(drop)
    }

    fn server_config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem)).timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)).client_auth_optional(false),
            None => config,
        }
    }
}

/// Serves core's gRPC on `listener` until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    store: &Store,
    verifier: TokenVerifier,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (stop, stopping) = watch::channel(false);
    let routes = routes_until(store, verifier, Some(stopping)).await?;
    serve_routes(listener, routes, None, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await
}

/// Serves routes built by [`routes`] on `listener`, over TLS when `tls` is given (when the
/// same routes are also called in the process, as `sigess up` does for its gateway). Bad
/// certificate or key files fail here, before the first connection.
pub async fn serve_routes(
    listener: TcpListener,
    routes: Routes,
    tls: Option<&GrpcTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

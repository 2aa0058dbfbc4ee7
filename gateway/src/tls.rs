//! HTTPS for the gateway: rustls (ring provider) with HTTP/1.1 and HTTP/2 chosen by ALPN,
//! and optional client certificates checked against a CA.
//!
//! `serve_tls` accepts connections, runs the handshake off the accept loop (with a time
//! limit, so a silent peer cannot hold a slot), and serves each connection with hyper-util's
//! auto builder. When the client presented a certificate that chains to the configured CA,
//! its DER goes into every request's extensions as `auth::ClientCert`, where the
//! authenticator maps it to a registered client. A certificate that does not chain is
//! refused by the handshake itself. On shutdown the listener closes and open connections
//! are drained, each finishing its in-flight requests, for at most `DRAIN_TIMEOUT`.
use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use rustls::{RootCertStore, ServerConfig, crypto::CryptoProvider, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::ClientCert;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest open connections are given to finish after shutdown is asked.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time a client may take to send a request's head (HTTP/1): a client dribbling
/// its headers a byte at a time (slowloris) loses the connection instead of holding it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection builder both servers use: HTTP/1.1 and h2, with a timer so the header
/// read timeout applies.
fn conn_builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(hyper_util::rt::TokioTimer::new());
    builder
}

/// Serves `router` over plain HTTP on `listener` until `shutdown` completes, then drains,
/// as `serve_tls` does: with the peer address in every request (`ConnectInfo`) and a bound
/// on the time to send a request's head.
pub async fn serve_plain(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
    serve_plain_with(listener, router, shutdown, HEADER_READ_TIMEOUT).await
}

/// As `serve_plain`, with another header read timeout.
pub async fn serve_plain_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    header_timeout: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let svc = tower::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                router.clone().oneshot(req)
            });
            let builder = conn_builder(header_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// TLS settings (`--tls-cert`, `--tls-key`, `--tls-client-ca`, `--tls-client-cert-required`).
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; None = no client certificates.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse connections without a client certificate (otherwise they
    /// are allowed and authenticate with a bearer token).
    pub client_cert_required: bool,
}

impl TlsConfig {
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self { cert: cert.into(), key: key.into(), client_ca: None, client_cert_required: false }
    }

    /// Reads the files and builds the rustls configuration (ALPN `h2`, `http/1.1`).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = install_default_provider();
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| TlsError::file(&self.cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::file(&self.cert, e))?;
        if certs.is_empty() {
            return Err(TlsError::Config(format!("{}: no certificate", self.cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::file(&self.key, e))?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).map_err(|e| TlsError::file(ca, e))? {
                    roots.add(c.map_err(|e| TlsError::file(ca, e))?).map_err(|e| TlsError::Config(format!("{}: {e}", ca.display())))?;
                }
                if roots.is_empty() {
                    return Err(TlsError::Config(format!("{}: no CA certificate", ca.display())));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_cert_required { verifier } else { verifier.allow_unauthenticated() };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Config(e.to_string()))?)
            }
        };
        let mut cfg = builder.with_single_cert(certs, key).map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("TLS listener: {0}")]
    Io(#[from] std::io::Error),
}

impl TlsError {
    fn file(path: &Path, e: impl std::fmt::Display) -> Self {
        Self::Config(format!("{}: {e}", path.display()))
    }
}

/// Installs ring as the process-wide rustls provider (once; later calls, or a provider
/// another part installed first, are fine) and returns the provider this module uses.
pub fn install_default_provider() -> Arc<CryptoProvider> {
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    // Err only means a default is already installed; ours is passed explicitly anyway.
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    ring
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then drains.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    config: TlsConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TlsError> {
    let server_config = config.server_config()?;
    serve_tls_with(listener, router, server_config, shutdown).await
}

/// As `serve_tls`, with a rustls configuration built by the caller.
pub async fn serve_tls_with(
    listener: TcpListener,
    router: Router,
    server_config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TlsError> {
    let acceptor = TlsAcceptor::from(server_config);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| ClientCert(c.as_ref().to_vec()));
            let svc = tower::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                if let Some(c) = &cert {
                    req.extensions_mut().insert(c.clone());
                }
                router.clone().oneshot(req)
            });
            let builder = conn_builder(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

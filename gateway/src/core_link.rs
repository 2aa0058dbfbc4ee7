//! The gateway's link to core: gRPC channels and the key that mints caller tokens, and the
//! rule for how a link to a core process is protected: TLS (optionally with a client
//! certificate for core's mTLS) for an `https://` URL; plaintext `http://` only to a loopback
//! address, or where the operator says the network is already protected.
use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use core_cartella::auth::{Caller, CallerKind, TokenError, TokenSigner};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::{
    service::Routes,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};
use tower::{ServiceExt, util::BoxCloneSyncService};

/// Lifetime of the caller tokens the gateway mints for core: long enough for one call
/// (a feed stream is authenticated once, when it opens), short enough to be useless if leaked.
pub const CALLER_TOKEN_TTL: Duration = Duration::from_secs(60);

/// How long a minted caller token is sent again for the same caller, so a call never
/// starts with less than half of [`CALLER_TOKEN_TTL`] left. Minting is an Ed25519
/// signature, and core verifies a token it has seen before without checking its signature
/// again.
const REUSE_FOR: Duration = Duration::from_secs(30);

/// Callers whose token is kept; past this, tokens too old to reuse are dropped, and if that
/// is not enough, all of them.
const MINTED: usize = 4096;

/// Everything a caller token says: the caller without its request id.
type CallerKey = (bool, String, String, Option<String>, Vec<&'static str>, String);

fn key(c: &Caller) -> CallerKey {
    (
        c.kind == CallerKind::Operatore,
        c.subject.clone(),
        c.ente.clone(),
        c.ufficio.clone(),
        c.roles.iter().map(|r| r.as_str()).collect(),
        c.purpose.clone(),
    )
}

/// How the gateway reaches core: HTTP/2 connections to a core process, or core's gRPC
/// routes in the same process (`sigess up`). Either way a request is a gRPC request, with
/// the caller token core verifies.
pub type CoreChannel = BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, tonic::transport::Error>;

/// HTTP/2 connections the gateway keeps to core. Requests are spread over them in turn: on
/// one connection every request and response passes through that connection's single task
/// on each side, which caps the gateway at what one core can frame.
pub const CORE_CONNECTIONS: usize = 4;

fn boxed(channel: Channel) -> CoreChannel {
    BoxCloneSyncService::new(channel)
}

#[derive(Clone)]
pub struct CoreLink {
    channels: Arc<[CoreChannel]>,
    next: Arc<AtomicUsize>,
    signer: TokenSigner,
    /// `authorization` values minted for each caller, and when.
    minted: Arc<Mutex<HashMap<CallerKey, (SystemTime, String)>>>,
}

impl fmt::Debug for CoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreLink").field("connections", &self.channels.len()).finish_non_exhaustive()
    }
}

impl CoreLink {
    pub fn new(channel: Channel, signer: TokenSigner) -> Self {
        Self::over(vec![boxed(channel)], signer)
    }

    /// Core's routes called in this process: no connection, no HTTP/2 framing, the same
    /// gRPC requests and responses.
    pub fn in_process(routes: Routes, signer: TokenSigner) -> Self {
        let routes = ServiceExt::<http::Request<tonic::body::Body>>::map_err(
            routes.prepare(),
            |e: std::convert::Infallible| -> tonic::transport::Error { match e {} },
        );
        Self::over(vec![BoxCloneSyncService::new(routes)], signer)
    }

    /// A link whose requests take the given channels (at least one) in turn.
    fn over(channels: Vec<CoreChannel>, signer: TokenSigner) -> Self {
        Self { channels: channels.into(), next: Arc::default(), signer, minted: Arc::default() }
    }

    /// Lazily connecting channels to core at `url` (`https://core:50051` with TLS settings,
    /// `http://127.0.0.1:50051` in plaintext), refused when `security` does not allow the
    /// URL (see [`LinkSecurity::check`]).
    pub fn connect_lazy(url: &str, security: &LinkSecurity, signer: TokenSigner) -> Result<Self, LinkError> {
        let uri: http::Uri = url.parse()?;
        let mut endpoint = Channel::from_shared(url.to_string())?.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true);
        if let Some(tls) = security.check(&uri)? {
            endpoint = endpoint.tls_config(tls.client_config()).map_err(|_| {
                LinkError::Tls("the CA, client certificate or client key cannot be used (does the key match the certificate?)")
            })?;
        }
        Ok(Self::over((0..CORE_CONNECTIONS).map(|_| boxed(endpoint.connect_lazy())).collect(), signer))
    }

    pub fn channel(&self) -> CoreChannel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[i].clone()
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// `authorization` value carrying a caller token for `caller` with at least half of
    /// its lifetime left.
    pub fn bearer_for(&self, caller: &Caller) -> Result<String, TokenError> {
        let key = key(caller);
        let now = SystemTime::now();
        let fresh = |at: SystemTime| now.duration_since(at).is_ok_and(|age| age < REUSE_FOR);
        if let Some((_, bearer)) = self.minted.lock().ok().and_then(|m| m.get(&key).filter(|(at, _)| fresh(*at)).cloned()) {
            return Ok(bearer);
        }
        let bearer = format!("Bearer {}", self.signer.mint(caller, CALLER_TOKEN_TTL)?);
        if let Ok(mut m) = self.minted.lock() {
            if m.len() >= MINTED {
                m.retain(|_, (at, _)| fresh(*at));
                if m.len() >= MINTED {
                    m.clear();
                }
            }
            m.insert(key, (now, bearer.clone()));
        }
        Ok(bearer)
    }
}

/// Why the gateway refuses to start its link to core.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("core URL is not a valid URI: {0}")]
    Url(#[from] http::uri::InvalidUri),
    #[error("core URL must start with https:// (TLS) or http:// (plaintext)")]
    Scheme,
    #[error(
        "plaintext gRPC to core at {0}, which is not a loopback address: use an https:// core URL with --core-ca, \
         or --core-plaintext where the network between gateway and core is already encrypted"
    )]
    PlaintextNotLoopback(String),
    #[error("an https:// core URL needs --core-ca (the CA certificate that signed core's certificate)")]
    NoCa,
    #[error("--core-ca, --core-client-cert and --core-client-key apply only to an https:// core URL")]
    TlsWithoutHttps,
    #[error("core TLS settings: {0}")]
    Tls(&'static str),
}

/// TLS settings of the link to core, as PEM: the CA that signed core's certificate and,
/// when core asks for client certificates (mTLS), the gateway's certificate and key.
#[derive(Clone)]
pub struct CoreTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for CoreTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreTls").field("client_cert", &self.identity.is_some()).finish_non_exhaustive()
    }
}

impl CoreTls {
    /// Checks the PEM now, so bad files stop the gateway at start rather than failing every
    /// connection later: `ca_pem` holds at least one certificate, `identity` is a
    /// certificate chain and its private key.
    pub fn from_pem(ca_pem: Vec<u8>, identity: Option<(Vec<u8>, Vec<u8>)>) -> Result<Self, LinkError> {
        let certs = |pem: &[u8]| CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map(|v| v.len()).unwrap_or(0);
        if certs(&ca_pem) == 0 {
            return Err(LinkError::Tls("--core-ca holds no PEM certificate"));
        }
        if let Some((cert, key)) = &identity {
            if certs(cert) == 0 {
                return Err(LinkError::Tls("--core-client-cert holds no PEM certificate"));
            }
            if PrivateKeyDer::from_pem_slice(key).is_err() {
                return Err(LinkError::Tls("--core-client-key holds no PEM private key"));
            }
        }
        Ok(Self { ca_pem, identity })
    }

    fn client_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem)).timeout(Duration::from_secs(10));
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// How the link to a core process may be protected.
#[derive(Clone, Debug, Default)]
pub struct LinkSecurity {
    /// TLS settings for an `https://` URL.
    pub tls: Option<CoreTls>,
    /// Plaintext to a non-loopback address, for networks encrypted below the gateway
    /// (a service mesh, WireGuard).
    pub plaintext_anywhere: bool,
}

impl LinkSecurity {
    /// The TLS settings to use for `uri`, or none for plaintext; an error when the pair is
    /// refused: `https://` without a CA, TLS files with `http://`, plaintext to a host that
    /// is not loopback without `plaintext_anywhere`.
    pub fn check(&self, uri: &http::Uri) -> Result<Option<&CoreTls>, LinkError> {
        match uri.scheme_str() {
            Some("https") => self.tls.as_ref().map(Some).ok_or(LinkError::NoCa),
            Some("http") if self.tls.is_some() => Err(LinkError::TlsWithoutHttps),
            Some("http") => {
                let host = uri.host().unwrap_or_default();
                if self.plaintext_anywhere || is_loopback(host) { Ok(None) } else { Err(LinkError::PlaintextNotLoopback(host.to_string())) }
            }
            _ => Err(LinkError::Scheme),
        }
    }
}

/// A host that names this machine: `localhost`, 127.0.0.0/8, `::1`. Names that DNS resolves
/// are not trusted to stay on the machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use core_cartella::auth::Role;

    use super::*;

    fn caller() -> Caller {
        Caller {
            kind: CallerKind::Operatore,
            subject: "op-1".into(),
            ente: "H501".into(),
            ufficio: Some("M01".into()),
            roles: vec![Role::Operatore],
            purpose: "presa in carico".into(),
            request_id: "r1".into(),
        }
    }

    fn link() -> (tempfile::TempDir, CoreLink) {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
        (dir, CoreLink::connect_lazy("http://127.0.0.1:1", &LinkSecurity::default(), signer).unwrap())
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

    fn tls() -> CoreTls {
        CoreTls::from_pem(CA.into(), None).unwrap()
    }

    /// Which URL and settings pairs start a link, and why the others do not.
    #[test]
    fn transport_rule() {
        let open = LinkSecurity::default();
        let anywhere = LinkSecurity { tls: None, plaintext_anywhere: true };
        let with_tls = LinkSecurity { tls: Some(tls()), plaintext_anywhere: false };
        let check = |s: &LinkSecurity, url: &str| s.check(&url.parse().unwrap()).map(|t| t.is_some());
        for url in ["http://127.0.0.1:50051", "http://127.9.9.9:1", "http://localhost:50051", "http://LOCALHOST", "http://[::1]:50051"] {
            assert!(!check(&open, url).unwrap(), "{url}: plaintext on loopback");
        }
        for url in ["http://10.0.0.5:50051", "http://core:50051", "http://0.0.0.0:50051", "http://[::]:1", "http://localhost.example.org"] {
            assert!(matches!(check(&open, url), Err(LinkError::PlaintextNotLoopback(_))), "{url}");
            assert!(!check(&anywhere, url).unwrap(), "{url}: plaintext allowed by the flag");
        }
        assert!(matches!(check(&open, "https://core:50051"), Err(LinkError::NoCa)));
        assert!(check(&with_tls, "https://core:50051").unwrap());
        assert!(check(&with_tls, "https://127.0.0.1:50051").unwrap());
        assert!(matches!(check(&with_tls, "http://127.0.0.1:50051"), Err(LinkError::TlsWithoutHttps)));
        assert!(matches!(check(&open, "core:50051"), Err(LinkError::Scheme)));
        assert!(matches!(check(&open, "ftp://core"), Err(LinkError::Scheme)));
    }

    /// Files that are not what their flag says stop the gateway at start.
    #[test]
    fn tls_files_are_checked() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert!(matches!(CoreTls::from_pem(b"not pem".to_vec(), None), Err(LinkError::Tls(m)) if m.contains("--core-ca")));
        assert!(matches!(CoreTls::from_pem(key.clone().into(), None), Err(LinkError::Tls(m)) if m.contains("--core-ca")));
        let bad_cert = CoreTls::from_pem(CA.into(), Some((key.clone().into(), key.clone().into())));
        assert!(matches!(bad_cert, Err(LinkError::Tls(m)) if m.contains("--core-client-cert")));
        let bad_key = CoreTls::from_pem(CA.into(), Some((CA.into(), CA.into())));
        assert!(matches!(bad_key, Err(LinkError::Tls(m)) if m.contains("--core-client-key")));
        assert!(CoreTls::from_pem(CA.into(), Some((CA.into(), key.into()))).is_ok());
    }

    /// A caller's token is reused while young enough, never for another caller.
    #[tokio::test]
    async fn caller_tokens_are_reused_per_caller() {
        let (_dir, link) = link();
        let verifier = link.signer().verifier().unwrap();
        let verify = |b: &str| verifier.verify(b.strip_prefix("Bearer ").unwrap(), "").unwrap();
        let a = link.bearer_for(&caller()).unwrap();
        assert_eq!(link.bearer_for(&Caller { request_id: "r2".into(), ..caller() }).unwrap(), a, "the request id is not in the token");
        let others = [
            Caller { kind: CallerKind::Sistema, ..caller() },
            Caller { subject: "op-2".into(), ..caller() },
            Caller { ente: "F839".into(), ..caller() },
            Caller { ufficio: Some("M02".into()), ..caller() },
            Caller { ufficio: None, ..caller() },
            Caller { roles: vec![Role::Consultazione], ..caller() },
            Caller { purpose: "verifica".into(), ..caller() },
        ];
        for other in others {
            let b = link.bearer_for(&other).unwrap();
            assert_ne!(b, a);
            assert_eq!(verify(&b), Caller { request_id: String::new(), ..other });
        }
        assert_eq!(verify(&a), Caller { request_id: String::new(), ..caller() });

        // Once too old to reuse, a new token is minted.
        let old = SystemTime::now() - REUSE_FOR - Duration::from_secs(1);
        link.minted.lock().unwrap().get_mut(&key(&caller())).unwrap().0 = old;
        link.bearer_for(&caller()).unwrap();
        assert!(link.minted.lock().unwrap()[&key(&caller())].0 > old);
    }
}

//! The gateway's link to core: gRPC channels and the key that mints caller tokens.
use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use core_cartella::auth::{Caller, CallerKind, TokenError, TokenSigner};
use tonic::{service::Routes, transport::Channel};
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

    /// Lazily connecting channel to core at `url` (e.g. `http://127.0.0.1:50051`).
    pub fn connect_lazy(url: &str, signer: TokenSigner) -> Result<Self, http::uri::InvalidUri> {
        let endpoint = Channel::from_shared(url.to_string())?.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true);
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
        (dir, CoreLink::connect_lazy("http://127.0.0.1:1", signer).unwrap())
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

//! The port through which the relying party keeps what it needs between requests: the
//! registered operators (read only), the logins under way and the operators' sessions.
//!
//! The adapter owns these types; the binary wires an implementation (the gateway's edge
//! store on SQLite or PostgreSQL). Session ids and login states reach the store already
//! hashed, so nothing it keeps can be replayed as a cookie. [`MemoryStore`] serves tests
//! and shows the contract; [`suite`] is the test every implementation must pass.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use futures::future::BoxFuture;

/// An operator the hub lets log in, as the relying party sees them: who they are for the
/// audit trail and what they may do. The codice fiscale they are matched on is not here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The hub's id for the operator, written to the audit trail.
    pub operator_id: String,
    pub ente: String,
    /// None = the whole ente.
    pub ufficio: Option<String>,
    /// Role names as the hub spells them (`operatore`, `consultazione`, `statistica`).
    pub roles: Vec<String>,
    pub disabled: bool,
}

/// A login started at a provider, waiting for its callback.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub state_hash: String,
    pub browser_hash: String,
    pub provider: String,
    pub nonce: String,
    pub code_verifier: String,
    pub acr: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The path of this site the browser asked to return to after login (checked with
    /// [`is_local_path`](crate::config::is_local_path) when stored and when used).
    pub return_to: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("provider", &self.provider).field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// An operator's session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub operator_id: String,
    pub csrf_token: String,
    pub provider: String,
    /// Kept only to revoke it at the provider on logout.
    pub access_token: Option<String>,
    /// Unix seconds: login, last request, and the absolute end.
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("operator_id", &self.operator_id)
            .field("provider", &self.provider)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The store failed (unreachable, broken); the relying party answers 503 and logs nothing
/// more than this.
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the relying party needs from a store.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// The operator with this codice fiscale (upper case), disabled or not.
    fn operator_by_codice_fiscale<'a>(&'a self, cf: &'a str) -> BoxFuture<'a, StoreResult<Option<OperatorIdentity>>>;
    /// The operator with this id, disabled or not.
    fn operator<'a>(&'a self, operator_id: &'a str) -> BoxFuture<'a, StoreResult<Option<OperatorIdentity>>>;
    fn insert_login_request<'a>(&'a self, r: &'a LoginRequest) -> BoxFuture<'a, StoreResult<()>>;
    /// Takes (reads and deletes) the login request with this state hash, in one step: a
    /// second call with the same state finds nothing, even on another replica. Expired
    /// requests are returned too (the caller refuses them).
    fn take_login_request<'a>(&'a self, state_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<LoginRequest>>>;
    fn insert_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, StoreResult<()>>;
    fn session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<Session>>>;
    /// Records activity on a session (for the idle timeout).
    fn touch_session<'a>(&'a self, id_hash: &'a str, at: i64) -> BoxFuture<'a, StoreResult<()>>;
    /// Ends a session and returns it (its access token is then revoked at the provider).
    fn delete_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<Session>>>;
    /// Deletes sessions past their absolute end or idle since before `idle_before`, and
    /// login requests past their expiry; returns how many went.
    fn purge_sessions(&self, now: i64, idle_before: i64) -> BoxFuture<'_, StoreResult<u64>>;
}

/// A [`SessionStore`] in memory, for tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Memory>>,
}

#[derive(Debug, Default)]
struct Memory {
    /// Operators by id, with their codice fiscale.
    operators: HashMap<String, (String, OperatorIdentity)>,
    logins: HashMap<String, LoginRequest>,
    sessions: HashMap<String, Session>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Registers an operator matched on `codice_fiscale`.
    pub fn add_operator(&self, codice_fiscale: &str, op: OperatorIdentity) {
        self.with(|m| m.operators.insert(op.operator_id.clone(), (codice_fiscale.to_ascii_uppercase(), op)));
    }

    /// Disables or re-enables an operator; disabling ends their sessions, as the real
    /// registry does.
    pub fn set_disabled(&self, operator_id: &str, disabled: bool) {
        self.with(|m| {
            if let Some((_, op)) = m.operators.get_mut(operator_id) {
                op.disabled = disabled;
            }
            if disabled {
                m.sessions.retain(|_, s| s.operator_id != operator_id);
            }
        });
    }
}

impl SessionStore for MemoryStore {
    fn operator_by_codice_fiscale<'a>(&'a self, cf: &'a str) -> BoxFuture<'a, StoreResult<Option<OperatorIdentity>>> {
        let cf = cf.to_ascii_uppercase();
        let found = self.with(|m| m.operators.values().find(|(c, _)| *c == cf).map(|(_, o)| o.clone()));
        Box::pin(async move { Ok(found) })
    }

    fn operator<'a>(&'a self, operator_id: &'a str) -> BoxFuture<'a, StoreResult<Option<OperatorIdentity>>> {
        let found = self.with(|m| m.operators.get(operator_id).map(|(_, o)| o.clone()));
        Box::pin(async move { Ok(found) })
    }

    fn insert_login_request<'a>(&'a self, r: &'a LoginRequest) -> BoxFuture<'a, StoreResult<()>> {
        let dup = self.with(|m| m.logins.insert(r.state_hash.clone(), r.clone()).is_some());
        Box::pin(async move { if dup { Err(StoreError::new("duplicate login state")) } else { Ok(()) } })
    }

    fn take_login_request<'a>(&'a self, state_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<LoginRequest>>> {
        let found = self.with(|m| m.logins.remove(state_hash));
        Box::pin(async move { Ok(found) })
    }

    fn insert_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, StoreResult<()>> {
        let res = self.with(|m| {
            if m.sessions.contains_key(&s.id_hash) {
                return Err(StoreError::new("duplicate session id"));
            }
            if !m.operators.contains_key(&s.operator_id) {
                return Err(StoreError::new("session of an unknown operator"));
            }
            m.sessions.insert(s.id_hash.clone(), s.clone());
            Ok(())
        });
        Box::pin(async move { res })
    }

    fn session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<Session>>> {
        let found = self.with(|m| m.sessions.get(id_hash).cloned());
        Box::pin(async move { Ok(found) })
    }

    fn touch_session<'a>(&'a self, id_hash: &'a str, at: i64) -> BoxFuture<'a, StoreResult<()>> {
        self.with(|m| {
            if let Some(s) = m.sessions.get_mut(id_hash) {
                s.last_seen = at;
            }
        });
        Box::pin(async move { Ok(()) })
    }

    fn delete_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<Session>>> {
        let found = self.with(|m| m.sessions.remove(id_hash));
        Box::pin(async move { Ok(found) })
    }

    fn purge_sessions(&self, now: i64, idle_before: i64) -> BoxFuture<'_, StoreResult<u64>> {
        let n = self.with(|m| {
            let before = m.sessions.len() + m.logins.len();
            m.sessions.retain(|_, s| s.expires_at >= now && s.last_seen >= idle_before);
            m.logins.retain(|_, l| l.expires_at >= now);
            (before - m.sessions.len() - m.logins.len()) as u64
        });
        Box::pin(async move { Ok(n) })
    }
}

/// The test every [`SessionStore`] must pass. The store must be empty of logins and
/// sessions, and hold one enabled operator `op` matched on `codice_fiscale`, and no
/// operator with codice fiscale `XXXXXX80A01H501U`.
pub mod suite {
    use super::{LoginRequest, OperatorIdentity, Session, SessionStore};

    #[allow(clippy::unwrap_used)]
    pub async fn check(s: &dyn SessionStore, codice_fiscale: &str, op: &OperatorIdentity) {
        // Operators: matched on the codice fiscale in any case, found by id.
        let lower = codice_fiscale.to_ascii_lowercase();
        assert_eq!(s.operator_by_codice_fiscale(&codice_fiscale.to_ascii_uppercase()).await.unwrap().as_ref(), Some(op));
        assert_eq!(s.operator_by_codice_fiscale(&lower).await.unwrap().as_ref(), Some(op), "any case");
        assert_eq!(s.operator_by_codice_fiscale("XXXXXX80A01H501U").await.unwrap(), None);
        assert_eq!(s.operator(&op.operator_id).await.unwrap().as_ref(), Some(op));
        assert_eq!(s.operator("nobody").await.unwrap(), None);

        // A login state is used once.
        let req = LoginRequest {
            state_hash: "st".into(),
            browser_hash: "br".into(),
            provider: "https://op/".into(),
            nonce: "n".into(),
            code_verifier: "v".into(),
            acr: "L2".into(),
            expires_at: 100,
            return_to: Some("/console/statistiche".into()),
        };
        s.insert_login_request(&req).await.unwrap();
        assert!(s.insert_login_request(&req).await.is_err(), "a state is stored once");
        assert_eq!(s.take_login_request("st").await.unwrap(), Some(req.clone()));
        assert_eq!(s.take_login_request("st").await.unwrap(), None, "a state is used once");
        let plain = LoginRequest { state_hash: "st2".into(), return_to: None, ..req.clone() };
        s.insert_login_request(&plain).await.unwrap();
        assert_eq!(s.take_login_request("st2").await.unwrap(), Some(plain), "a login without a return path");

        // Sessions: touched, purged when idle or past their end, deleted once.
        let sess = Session {
            id_hash: "h".into(),
            operator_id: op.operator_id.clone(),
            csrf_token: "c".into(),
            provider: "https://op/".into(),
            access_token: Some("at".into()),
            created_at: 10,
            last_seen: 10,
            expires_at: 1000,
        };
        s.insert_session(&sess).await.unwrap();
        assert!(s.insert_session(&sess).await.is_err(), "a session id is issued once");
        let mut stranger = sess.clone();
        stranger.id_hash = "h2".into();
        stranger.operator_id = "nobody".into();
        assert!(s.insert_session(&stranger).await.is_err(), "a session belongs to a registered operator");
        s.touch_session("h", 20).await.unwrap();
        assert_eq!(s.session("h").await.unwrap().map(|x| x.last_seen), Some(20));
        assert_eq!(s.session("h").await.unwrap().and_then(|x| x.access_token), Some("at".into()));
        assert_eq!(s.purge_sessions(30, 15).await.unwrap(), 0);
        assert_eq!(s.purge_sessions(30, 25).await.unwrap(), 1, "idle session purged");
        assert_eq!(s.session("h").await.unwrap(), None);
        s.insert_session(&sess).await.unwrap();
        assert_eq!(s.purge_sessions(1001, 0).await.unwrap(), 1, "session past its end purged");
        s.insert_session(&sess).await.unwrap();
        assert_eq!(s.delete_session("h").await.unwrap(), Some(Session { last_seen: 10, ..sess.clone() }));
        assert_eq!(s.delete_session("h").await.unwrap(), None);

        // Expired login requests are purged with the sessions.
        s.insert_login_request(&req).await.unwrap();
        assert_eq!(s.purge_sessions(99, 0).await.unwrap(), 0);
        assert_eq!(s.purge_sessions(101, 0).await.unwrap(), 1);
        assert_eq!(s.take_login_request("st").await.unwrap(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> OperatorIdentity {
        OperatorIdentity {
            operator_id: "op-m01-1".into(),
            ente: "H501".into(),
            ufficio: Some("M01".into()),
            roles: vec!["operatore".into()],
            disabled: false,
        }
    }

    #[tokio::test]
    async fn memory_store_passes_the_suite() {
        let s = MemoryStore::default();
        s.add_operator("rssmra80a01h501u", op());
        suite::check(&s, "RSSMRA80A01H501U", &op()).await;
    }

    #[tokio::test]
    async fn disabling_ends_sessions() {
        let s = MemoryStore::default();
        s.add_operator("RSSMRA80A01H501U", op());
        let sess = Session {
            id_hash: "h".into(),
            operator_id: "op-m01-1".into(),
            csrf_token: "c".into(),
            provider: "p".into(),
            access_token: None,
            created_at: 1,
            last_seen: 1,
            expires_at: 9,
        };
        s.insert_session(&sess).await.expect("insert");
        s.set_disabled("op-m01-1", true);
        assert_eq!(s.session("h").await.expect("q"), None);
        assert!(s.operator("op-m01-1").await.expect("q").is_some_and(|o| o.disabled));
    }
}

//! spid-cie: the hub's relying party for SPID and CIE (OpenID Connect Federation, Italian
//! profile) and the operator sessions it opens.
//!
//! An operator of a Municipio picks SPID or CIE on the login page; the hub resolves the
//! provider's trust chain through the Trust Anchor, sends a signed request object with
//! PKCE, exchanges the code with a `private_key_jwt` assertion, checks the ID token, opens
//! the encrypted userinfo, and maps the fiscal number to a registered operator. Only then
//! is a server-side session created; its cookie lets the operator's REST calls reach core:
//! the gateway turns the session's [`OperatorIdentity`] into the caller core sees.
//!
//! Pure parts (keys, JOSE checks, trust chains, metadata policy, request objects, ID token
//! and userinfo validation) are in their own modules and tested without I/O; `routes`
//! holds the HTTP side, `session` the cookie → operator path the gateway calls, and
//! `store` the port through which the adapter keeps operators, logins and sessions (the
//! binary wires an implementation; the adapter owns no tables).

pub mod config;
pub mod error;
pub mod federation;
pub mod http;
pub mod jose;
pub mod keys;
pub mod oidc;
pub mod policy;
mod routes;
pub mod session;
pub mod store;
#[cfg(test)]
mod testkit;

use std::sync::Arc;

pub use config::{RpArgs, RpConfig};
pub use error::{Error, Result};
pub use routes::router;
pub use session::SessionRefused;
pub use store::{OperatorIdentity, SessionStore};

use crate::{
    federation::{Resolver, TrustSettings},
    http::Http,
    keys::RpKeys,
};

/// The relying party: configuration, keys, the trust resolver and the session store. Cheap
/// to clone.
#[derive(Clone, Debug)]
pub struct Rp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: RpConfig,
    keys: RpKeys,
    http: Http,
    resolver: Resolver,
    store: Arc<dyn SessionStore>,
}

impl Rp {
    /// Loads (or, when allowed, creates) the key files named in `cfg`.
    pub fn new(cfg: RpConfig, store: Arc<dyn SessionStore>) -> Result<Self> {
        let keys = RpKeys::load(&cfg.federation_keys, &cfg.sig_keys, &cfg.enc_keys, cfg.create_keys)?;
        Self::with_keys(cfg, keys, store)
    }

    pub fn with_keys(cfg: RpConfig, keys: RpKeys, store: Arc<dyn SessionStore>) -> Result<Self> {
        cfg.validate()?;
        let http = Http::new(cfg.http_timeout, cfg.allow_http_loopback)?;
        let settings = TrustSettings {
            trust_anchor: cfg.trust_anchor.clone(),
            anchor_keys: cfg.anchor_keys.clone(),
            required_trust_marks: cfg.provider_trust_marks.clone(),
            intermediates: cfg.intermediates.clone(),
            allow_http_loopback: cfg.allow_http_loopback,
        };
        let resolver = Resolver::new(http.clone(), settings, cfg.chain_max_age);
        Ok(Self { inner: Arc::new(Inner { cfg, keys, http, resolver, store }) })
    }

    pub fn config(&self) -> &RpConfig {
        &self.inner.cfg
    }

    pub fn keys(&self) -> &RpKeys {
        &self.inner.keys
    }

    pub fn resolver(&self) -> &Resolver {
        &self.inner.resolver
    }

    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }

    pub fn store(&self) -> &dyn SessionStore {
        self.inner.store.as_ref()
    }

    /// The routes under `/oidc/rp/`.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }
}

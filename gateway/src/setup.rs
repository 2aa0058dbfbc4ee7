//! Command-line settings of the gateway's authentication and TLS, and building the
//! `Authenticator` and token endpoint from them. Shared by `sigess up` and `sigess gateway`.
use std::{path::PathBuf, time::Duration};

use axum::Router;
use clap::Args;
use core_cartella::auth::TokenSigner;

use crate::{
    auth::{
        Authenticator,
        clients::ClientRegistry,
        oauth::{AccessTokens, TokenLimits, oauth_router},
        pdnd::{PdndConfig, PdndVerifier},
    },
    edge_store::EdgeStore,
    stack::limit::RateConfig,
    tls::TlsConfig,
};

#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// Accept caller tokens minted by `sigess token` with the hub key as credentials at the
    /// edge (REST, gRPC ingress, WaaS). They can name any ente, ufficio and roles: for demos,
    /// tests and trusted scripts only. On with `up --demo`.
    #[arg(long, env = "SIGESS_ACCEPT_HUB_TOKENS")]
    pub accept_hub_tokens: bool,
    /// PDND key set (JWKS) verifying vouchers: a file or an https URL (http only on
    /// loopback). Enables PDND vouchers, and ModI signatures, which are verified with the
    /// calling client's own keys (`sigess client add --modi-jwks`).
    #[arg(long, env = "SIGESS_PDND_JWKS", requires = "pdnd_audience")]
    pub pdnd_jwks: Option<String>,
    /// `aud` every PDND voucher must carry (the e-service's audience).
    #[arg(long, env = "SIGESS_PDND_AUDIENCE")]
    pub pdnd_audience: Option<String>,
    /// `iss` every PDND voucher must carry (e.g. interop.pagopa.it); any when omitted.
    #[arg(long, env = "SIGESS_PDND_ISSUER")]
    pub pdnd_issuer: Option<String>,
    /// `aud` of the ModI Agid-JWT-Signature; defaults to the PDND audience.
    #[arg(long, env = "SIGESS_MODI_AUDIENCE")]
    pub modi_audience: Option<String>,
    /// Refuse PDND requests without an Agid-JWT-Signature (ModI INTEGRITY_REST_01).
    #[arg(long, env = "SIGESS_PDND_REQUIRE_INTEGRITY")]
    pub pdnd_require_integrity: bool,
    /// Clock leeway in seconds for exp/nbf/iat of vouchers and signatures.
    #[arg(long, env = "SIGESS_PDND_LEEWAY", default_value_t = 60)]
    pub pdnd_leeway: u64,
    /// Seconds before the PDND key set is fetched again.
    #[arg(long, env = "SIGESS_PDND_JWKS_REFRESH", default_value_t = 3600)]
    pub pdnd_jwks_refresh: u64,
    /// Client secrets POST /oauth/token checks at once (each Argon2id check takes about
    /// 19 MiB); requests waiting longer than 2 s for a free check get 503 with Retry-After.
    /// Default: the number of CPUs, between 2 and 8.
    #[arg(long, env = "SIGESS_OAUTH_CONCURRENT_CHECKS")]
    pub oauth_concurrent_checks: Option<usize>,
    /// Token requests per minute from one source address (a quarter of it at once); past it
    /// 429 with Retry-After, before any secret is checked.
    #[arg(long, env = "SIGESS_OAUTH_RATE_PER_SOURCE", default_value_t = 120)]
    pub oauth_rate_per_source: u32,
    /// Token requests per minute naming one client id, known or not (a sixth of it at once).
    #[arg(long, env = "SIGESS_OAUTH_RATE_PER_CLIENT", default_value_t = 60)]
    pub oauth_rate_per_client: u32,
    /// Lifetime in seconds of access tokens issued by POST /oauth/token.
    #[arg(long, env = "SIGESS_ACCESS_TOKEN_TTL", default_value_t = 3600)]
    pub access_token_ttl: u64,
    /// Ed25519 key (PKCS#8 PEM) signing access tokens; defaults to the --signing-key.
    #[arg(long, env = "SIGESS_ACCESS_TOKEN_KEY")]
    pub access_token_key: Option<PathBuf>,
    /// TLS certificate chain (PEM). With --tls-key, the gateway serves HTTPS (HTTP/1.1 and h2).
    #[arg(long, env = "SIGESS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "SIGESS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) client certificates must chain to; enables mTLS clients.
    #[arg(long, env = "SIGESS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: refuse connections without a client certificate.
    #[arg(long, env = "SIGESS_TLS_CLIENT_CERT_REQUIRED", requires = "tls_client_ca")]
    pub tls_client_cert_required: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Config(String),
}

impl AuthArgs {
    /// The bounds on `/oauth/token` these flags set.
    pub fn token_limits(&self) -> TokenLimits {
        let d = TokenLimits::default();
        let rate = |per_minute: u32, share: u32| RateConfig { per_minute: per_minute.max(1), burst: (per_minute / share).max(1) };
        TokenLimits {
            concurrent_checks: self.oauth_concurrent_checks.unwrap_or(d.concurrent_checks).max(1),
            check_wait: d.check_wait,
            per_source: rate(self.oauth_rate_per_source, 4),
            per_client: rate(self.oauth_rate_per_client, 6),
        }
    }

    pub fn tls(&self) -> Option<TlsConfig> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        let mut t = TlsConfig::new(cert, key);
        t.client_ca = self.tls_client_ca.clone();
        t.client_cert_required = self.tls_client_cert_required;
        Some(t)
    }

    /// The authenticator with every configured credential kind, and the token endpoint.
    pub async fn build(
        &self,
        store: &EdgeStore,
        signer: &TokenSigner,
        signing_key: &std::path::Path,
    ) -> Result<(Authenticator, Router), SetupError> {
        let cfg = |e: &dyn std::fmt::Display| SetupError::Config(e.to_string());
        let registry = ClientRegistry::new(store.clone());
        let key = self.access_token_key.as_deref().unwrap_or(signing_key);
        let tokens = AccessTokens::load(key, Duration::from_secs(self.access_token_ttl.max(60))).map_err(|e| cfg(&e))?;
        let mut auth = Authenticator::new(signer.verifier().map_err(|e| cfg(&e))?)
            .accept_hub_tokens(self.accept_hub_tokens)
            .with_clients(registry.clone())
            .with_access_tokens(tokens.clone());
        if self.accept_hub_tokens {
            tracing::warn!("hub caller tokens are accepted at the edge (--accept-hub-tokens or --demo): not for real data");
        }
        if let Some(jwks) = &self.pdnd_jwks {
            let audience =
                self.pdnd_audience.clone().ok_or_else(|| SetupError::Config("--pdnd-audience is required with --pdnd-jwks".into()))?;
            let mut c = PdndConfig::new(jwks.parse().map_err(|e| cfg(&e))?, audience);
            c.issuer = self.pdnd_issuer.clone();
            c.modi_audience = self.modi_audience.clone();
            c.require_integrity = self.pdnd_require_integrity;
            c.leeway = Duration::from_secs(self.pdnd_leeway);
            c.refresh = Duration::from_secs(self.pdnd_jwks_refresh.max(10));
            auth = auth.with_pdnd(PdndVerifier::from_config(c).await.map_err(|e| cfg(&e))?);
        }
        Ok((auth, oauth_router(registry, tokens, self.token_limits())))
    }
}

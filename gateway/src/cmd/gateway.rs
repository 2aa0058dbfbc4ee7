//! `sigess gateway`: the HTTP side alone, in front of a core reached over gRPC, with its
//! own edge store and no access to core's database; and the
//! HTTP settings and session purge it shares with `sigess up`.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;

use core_cartella::auth::TokenSigner;
use gateway::{
    app::{self, Parts},
    core_link::{CoreLink, CoreTls, LinkSecurity},
    edge_store::EdgeStore,
};
use tokio::net::TcpListener;

use super::{EdgeStoreArgs, KeyArgs, StopFuture, shutdown_signal, stopper};

/// Settings of the gateway's HTTP side.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Seconds a call may take to its response head before the gateway answers 503 (REST,
    /// WaaS, sessions: counted from the request's arrival, slow bodies included). On the
    /// gRPC ingress the client's upload does not count: the seconds run from its end
    /// (UNAVAILABLE past them) and bound any pause in the upload (DEADLINE_EXCEEDED).
    #[arg(long, env = "SIGESS_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "SIGESS_MAX_BODY", default_value_t = 1_048_576)]
    max_body: usize,
    /// Requests served at once; beyond it new ones get 503 at once.
    #[arg(long, env = "SIGESS_MAX_CONCURRENCY", default_value_t = 1024)]
    max_concurrency: usize,
    /// Origin allowed by CORS (the web console's); repeat for several.
    #[arg(long = "cors-origin", env = "SIGESS_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Sustained requests per minute per client.
    #[arg(long, env = "SIGESS_RATE_PER_MINUTE", default_value_t = 600)]
    rate_per_minute: u32,
    /// Requests a client may send in a burst.
    #[arg(long, env = "SIGESS_RATE_BURST", default_value_t = 60)]
    rate_burst: u32,
    /// Change-feed streams (WatchChanges through the gRPC ingress) one caller may hold open.
    #[arg(long, env = "SIGESS_STREAMS_PER_CALLER", default_value_t = 4)]
    streams_per_caller: usize,
    /// Seconds between checks of an open stream's credentials; the stream ends once they
    /// no longer pass (client disabled, operator logged out, token expired).
    #[arg(long, env = "SIGESS_STREAM_RECHECK", default_value_t = 30)]
    stream_recheck: u64,
    /// Requests per minute from one source address on the SPID/CIE login routes (/oidc/rp/),
    /// a quarter of it at once; 429 past it.
    #[arg(long, env = "SIGESS_LOGIN_RATE_PER_MINUTE", default_value_t = 120)]
    login_rate_per_minute: u32,
}

impl HttpArgs {
    pub fn app_config(&self) -> gateway::app::AppConfig {
        gateway::app::AppConfig {
            stack: gateway::stack::StackConfig {
                timeout: Duration::from_secs(self.request_timeout.max(1)),
                max_body: self.max_body,
                max_concurrency: self.max_concurrency.max(1),
                cors_origins: self.cors_origins.clone(),
            },
            rate: gateway::stack::limit::RateConfig { per_minute: self.rate_per_minute, burst: self.rate_burst },
            delivery_max_age: None,
            streams: gateway::grpc_ingress::StreamLimits::new(self.streams_per_caller, Duration::from_secs(self.stream_recheck.max(1))),
            login_rate: gateway::stack::limit::RateConfig {
                per_minute: self.login_rate_per_minute.max(1),
                burst: (self.login_rate_per_minute / 4).max(1),
            },
            console_demo: false,
        }
    }
}

#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    edge: EdgeStoreArgs,
    #[command(flatten)]
    spid: spid_cie::RpArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    auth: gateway::setup::AuthArgs,
    #[command(flatten)]
    core: CoreLinkArgs,
    /// HTTP listen address (REST, gRPC ingress, metrics, health).
    #[arg(long, env = "SIGESS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
}

/// How the gateway reaches core: its URL and how the link is protected.
#[derive(Args, Debug)]
pub struct CoreLinkArgs {
    /// Where core's gRPC answers: https://HOST:PORT (TLS, with --core-ca) or http://… (plaintext,
    /// only to a loopback address unless --core-plaintext).
    #[arg(long, env = "SIGESS_CORE_URL", default_value = "http://127.0.0.1:50051")]
    core_url: String,
    /// PEM CA certificate(s) that core's server certificate must chain to (https:// core URL).
    #[arg(long, env = "SIGESS_CORE_CA")]
    core_ca: Option<PathBuf>,
    /// PEM client certificate the gateway presents to core (when core requires mTLS).
    #[arg(long, env = "SIGESS_CORE_CLIENT_CERT", requires = "core_client_key")]
    core_client_cert: Option<PathBuf>,
    /// PEM private key of --core-client-cert.
    #[arg(long, env = "SIGESS_CORE_CLIENT_KEY", requires = "core_client_cert")]
    core_client_key: Option<PathBuf>,
    /// Allow a plaintext http:// core URL to a non-loopback address: only where the network
    /// between gateway and core is already encrypted (service mesh, VPN).
    #[arg(long, env = "SIGESS_CORE_PLAINTEXT")]
    core_plaintext: bool,
}

impl CoreLinkArgs {
    /// Reads the TLS files and opens the link, refusing what [`LinkSecurity::check`] refuses.
    pub fn connect(&self, signer: TokenSigner) -> Result<CoreLink> {
        let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let identity = match (&self.core_client_cert, &self.core_client_key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        let tls = match &self.core_ca {
            Some(ca) => Some(CoreTls::from_pem(read(ca)?, identity)?),
            None if identity.is_some() => bail!("--core-client-cert needs --core-ca (the CA that signed core's certificate)"),
            None => None,
        };
        let security = LinkSecurity { tls, plaintext_anywhere: self.core_plaintext };
        CoreLink::connect_lazy(&self.core_url, &security, signer).context("the link to core")
    }
}

/// The gateway alone, in front of a core reached at `--core-url`.
pub async fn run(a: GatewayArgs) -> Result<()> {
    let signer = TokenSigner::load_or_create(&a.key.signing_key).context("signing key")?;
    let spid = a.spid.config().context("SPID/CIE login settings")?;
    // The gateway has no access to core's database: everything of core's goes over gRPC.
    let edge = a.edge.open().await?;
    let link = a.core.connect(signer.clone())?;
    let (auth, token_endpoint) = a.auth.build(&edge, &signer, &a.key.signing_key).await.context("authentication settings")?;
    let (stop, on_stop) = stopper();
    let auth = with_sessions(auth, spid, &edge, on_stop())?;
    let app = app::build_full(Parts { link, auth, store: None, edge: Some(edge.clone()) }, &a.http.app_config(), Some(token_endpoint))
        .context("building the HTTP application")?;
    let web = TcpListener::bind(a.http_addr).await.with_context(|| format!("binding HTTP on {}", a.http_addr))?;
    tracing::info!(http_addr = %web.local_addr()?, core = %a.core.core_url, "gateway listening");
    println!("SIGeSS gateway: http://{} in front of core at {}", web.local_addr()?, a.core.core_url);
    let signalled = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    match a.auth.tls() {
        Some(t) => gateway::tls::serve_tls(web, app.router, t, signalled).await.context("HTTPS server")?,
        None => gateway::tls::serve_plain(web, app.router, signalled).await.context("HTTP server")?,
    }
    edge.close().await;
    Ok(())
}

/// The authenticator with SPID/CIE operator sessions over the edge store, when login is
/// enabled; their expired rows are purged in the background until `stop` resolves.
pub fn with_sessions(
    auth: gateway::auth::Authenticator,
    spid: Option<spid_cie::RpConfig>,
    edge: &EdgeStore,
    stop: StopFuture,
) -> Result<gateway::auth::Authenticator> {
    Ok(match spid {
        Some(mut rp) => {
            rp.landing = gateway::console::landing();
            purge_sessions_periodically(edge.clone(), rp.idle_timeout, stop);
            auth.with_sessions(spid_cie::Rp::new(rp, Arc::new(edge.clone())).context("SPID/CIE login")?)
        }
        None => auth,
    })
}

/// Deletes expired operator sessions and stale login requests every five minutes (a
/// session past its timeouts is already refused; this keeps the tables small), until `stop`.
fn purge_sessions_periodically(store: EdgeStore, idle: Duration, stop: StopFuture) {
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            }
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            let idle = i64::try_from(idle.as_secs()).unwrap_or(i64::MAX);
            match store.purge_sessions(now, now.saturating_sub(idle)).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired operator sessions purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging operator sessions failed"),
            }
        }
    });
}

//! Running the hub: opening the store, serving gRPC and HTTP, graceful shutdown.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, anyhow};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner, TokenVerifier},
    demo,
    store::{Store, StoreOptions},
};
use tokio::{net::TcpListener, sync::watch};

use gateway::{
    app::{self, AppConfig, Parts},
    core_link::CoreLink,
};

#[derive(Debug)]
pub struct UpConfig {
    pub database_url: String,
    pub db_max_connections: u32,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// People per Municipio to seed, when demo data is wanted.
    pub demo: Option<u32>,
    pub signer: TokenSigner,
    pub signing_key_path: PathBuf,
    pub auth: gateway::setup::AuthArgs,
    pub app: AppConfig,
    pub siuss: gateway::siuss_worker::SiussConfig,
    /// SPID/CIE operator login (None = disabled).
    pub spid: Option<spid_cie::RpConfig>,
}

#[derive(Debug)]
pub struct GatewayConfig {
    pub database_url: String,
    pub db_max_connections: u32,
    pub core_url: String,
    pub http_addr: SocketAddr,
    pub signer: TokenSigner,
    pub signing_key_path: PathBuf,
    pub auth: gateway::setup::AuthArgs,
    pub app: AppConfig,
    /// SPID/CIE operator login (None = disabled).
    pub spid: Option<spid_cie::RpConfig>,
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested: draining in-flight calls");
}

async fn open_store(url: &str, max: u32) -> Result<Store> {
    let mut opts = StoreOptions::new(url);
    opts.max_connections = max;
    let store = Store::open(&opts).await.map_err(|e| anyhow!("opening the store: {e}"))?;
    tracing::info!(backend = ?store.backend(), "store open, migrations applied");
    Ok(store)
}

fn stopper() -> (watch::Sender<bool>, impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) {
    let (tx, rx) = watch::channel(false);
    let make = move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|v| *v).await;
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    };
    (tx, make)
}

pub async fn up(cfg: UpConfig) -> Result<()> {
    let store = open_store(&cfg.database_url, cfg.db_max_connections).await?;
    if let Some(size) = cfg.demo {
        let s = demo::seed(&store, size, 20_261_123).await.map_err(|e| anyhow!("seeding demo data: {e}"))?;
        if s.already_seeded {
            tracing::info!("demo data: the store already holds people, nothing seeded");
        } else {
            tracing::info!(
                persone = s.persone,
                nuclei = s.nuclei,
                accessi = s.accessi,
                cartelle = s.cartelle,
                prestazioni = s.prestazioni,
                "demo data seeded"
            );
        }
    }
    let grpc = TcpListener::bind(cfg.grpc_addr).await.with_context(|| format!("binding gRPC on {}", cfg.grpc_addr))?;
    let web = TcpListener::bind(cfg.http_addr).await.with_context(|| format!("binding HTTP on {}", cfg.http_addr))?;
    let grpc_addr = grpc.local_addr()?;
    let http_addr = web.local_addr()?;
    tracing::info!(%grpc_addr, %http_addr, "SIGeSS hub listening");
    println!(
        "SIGeSS hub: core gRPC on {grpc_addr}; gateway on http://{http_addr} (REST /api/v1, gRPC ingress, /metrics, /healthz, /readyz)"
    );
    if cfg.demo.is_some() {
        let demo_caller = Caller {
            kind: CallerKind::Operatore,
            subject: "demo-operatore-m01".into(),
            ente: demo::ENTE.into(),
            ufficio: Some(demo::municipio(1)),
            roles: vec![Role::Operatore],
            purpose: "dimostrazione".into(),
            request_id: String::new(),
        };
        let token = cfg.signer.mint(&demo_caller, Duration::from_secs(12 * 3600))?;
        println!(
            "Demo caller token (operatore of Municipio I, 12 hours):\n  {token}\n\
             Mint others with: sigess token --signing-key {} --ufficio M02 --roles operatore",
            cfg.signing_key_path.display()
        );
    }
    let (stop, on_stop) = stopper();
    let siuss_task = gateway::siuss_worker::spawn(store.clone(), cfg.siuss.clone(), on_stop());
    let verifier = cfg.signer.verifier()?;
    let routes = core_cartella::server::routes(&store, verifier).await.map_err(|e| anyhow!("gRPC routes: {e}"))?;
    let grpc_routes = routes.clone();
    let grpc_stop = on_stop();
    let grpc_task = tokio::spawn(async move {
        core_cartella::server::serve_routes(grpc, grpc_routes, grpc_stop).await.map_err(|e| anyhow!("gRPC server: {e}"))
    });
    // The gateway calls core's routes in this process: the same gRPC calls, caller tokens and
    // audit, without a loopback connection.
    let link = CoreLink::in_process(routes, cfg.signer.clone());
    // Demo mode is the one where anyone holding the hub key acts as anyone: the demo store
    // holds only fake data (seeding refuses a store with other data).
    let mut auth_args = cfg.auth.clone();
    auth_args.accept_hub_tokens |= cfg.demo.is_some();
    let (auth, token_endpoint) = auth_args.build(&store, &cfg.signer, &cfg.signing_key_path).await?;
    let auth = match cfg.spid {
        Some(rp) => {
            purge_sessions_periodically(store.clone(), rp.idle_timeout);
            auth.with_sessions(spid_cie::Rp::new(rp, store.clone())?)
        }
        None => auth,
    };
    let app = app::build_full(Parts { link, auth, store: Some(store.clone()) }, &cfg.app, Some(token_endpoint))?;
    let tls = cfg.auth.tls();
    let web_stop = on_stop();
    let web_task = tokio::spawn(async move {
        match tls {
            Some(t) => gateway::tls::serve_tls(web, app.router, t, web_stop).await.map_err(|e| anyhow!("HTTPS server: {e}"))?,
            None => axum::serve(web, app.router).with_graceful_shutdown(web_stop).await.map_err(|e| anyhow!("HTTP server: {e}"))?,
        }
        Ok::<_, anyhow::Error>(store)
    });
    shutdown_signal().await;
    let _ = stop.send(true);
    grpc_task.await??;
    let store = web_task.await??;
    let _ = siuss_task.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn core(url: &str, max: u32, addr: SocketAddr, verifier: TokenVerifier) -> Result<()> {
    let store = open_store(url, max).await?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding gRPC on {addr}"))?;
    tracing::info!(grpc_addr = %listener.local_addr()?, "core-cartella listening");
    println!("core-cartella: gRPC on {}", listener.local_addr()?);
    core_cartella::server::serve(listener, &store, verifier, shutdown_signal()).await.map_err(|e| anyhow!("gRPC server: {e}"))?;
    store.close().await;
    Ok(())
}

/// The gateway alone, in front of a core reached at `core_url`.
pub async fn gateway(cfg: GatewayConfig) -> Result<()> {
    let store = open_store(&cfg.database_url, cfg.db_max_connections).await?;
    let link = CoreLink::connect_lazy(&cfg.core_url, cfg.signer.clone()).with_context(|| format!("core URL {}", cfg.core_url))?;
    let (auth, token_endpoint) = cfg.auth.build(&store, &cfg.signer, &cfg.signing_key_path).await?;
    let auth = match cfg.spid {
        Some(rp) => {
            purge_sessions_periodically(store.clone(), rp.idle_timeout);
            auth.with_sessions(spid_cie::Rp::new(rp, store.clone())?)
        }
        None => auth,
    };
    let app = app::build_full(Parts { link, auth, store: Some(store.clone()) }, &cfg.app, Some(token_endpoint))?;
    let web = TcpListener::bind(cfg.http_addr).await.with_context(|| format!("binding HTTP on {}", cfg.http_addr))?;
    tracing::info!(http_addr = %web.local_addr()?, core = %cfg.core_url, "gateway listening");
    println!("SIGeSS gateway: http://{} in front of core at {}", web.local_addr()?, cfg.core_url);
    match cfg.auth.tls() {
        Some(t) => gateway::tls::serve_tls(web, app.router, t, shutdown_signal()).await?,
        None => axum::serve(web, app.router).with_graceful_shutdown(shutdown_signal()).await?,
    }
    store.close().await;
    Ok(())
}

/// The SIUSS worker alone (`sigess worker`).
pub async fn worker(url: &str, max: u32, cfg: gateway::siuss_worker::SiussConfig) -> Result<()> {
    let store = open_store(url, max).await?;
    println!("SIGeSS SIUSS worker for ente {}", cfg.ente.codice);
    gateway::siuss_worker::run(store.clone(), cfg, shutdown_signal()).await;
    store.close().await;
    Ok(())
}

/// `sigess siuss export`: portal batch files and a summary without personal data.
pub async fn siuss_export(url: &str, max: u32, args: &gateway::siuss_export::ExportArgs) -> Result<()> {
    let cfg = args.config()?;
    let store = open_store(url, max).await?;
    let summary = gateway::siuss_export::export(&store, &cfg).await?;
    print!("{summary}");
    store.close().await;
    Ok(())
}

/// Deletes expired operator sessions and stale login requests every five minutes (a
/// session past its timeouts is already refused; this keeps the tables small).
fn purge_sessions_periodically(store: Store, idle: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(300)).await;
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

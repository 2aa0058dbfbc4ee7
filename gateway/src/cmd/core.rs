//! `sigess core`: core-cartella's gRPC server alone, over TLS (with optional mTLS) or, on
//! loopback, in plaintext.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use core_cartella::auth::{TokenSigner, TokenVerifier};
use tokio::net::TcpListener;

use super::{GrpcListenArgs, StoreArgs, shutdown_signal};

#[derive(Args, Debug)]
pub struct CoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    grpc: GrpcListenArgs,
    /// Ed25519 public key (PEM) that verifies caller tokens. Core needs no private key.
    #[arg(long, env = "SIGESS_VERIFY_KEY", conflicts_with = "signing_key")]
    verify_key: Option<PathBuf>,
    /// Alternatively, the private key file (the public half is derived from it).
    #[arg(long, env = "SIGESS_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    #[command(flatten)]
    stats: super::stats::ProjectorArgs,
    #[command(flatten)]
    import: super::import::ImportRootArgs,
}

pub async fn run(a: CoreArgs) -> Result<()> {
    let verifier = match (&a.verify_key, &a.signing_key) {
        (Some(p), _) => TokenVerifier::from_public_pem(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("verify key {}", p.display()))?,
        (None, Some(p)) => TokenSigner::load_or_create(p).context("signing key")?.verifier()?,
        (None, None) => bail!("core needs --verify-key (public PEM) or --signing-key"),
    };
    let tls = a.grpc.tls()?;
    let core_options = a.import.core_options()?;
    let store = a.store.open().await?;
    tracing::info!(backend = ?store.backend(), "store open, migrations applied");
    let addr = a.grpc.grpc_addr;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding gRPC on {addr}"))?;
    let transport = transport_name(tls.as_ref());
    tracing::info!(grpc_addr = %listener.local_addr()?, transport, "core-cartella listening");
    println!("core-cartella: gRPC on {} ({transport})", listener.local_addr()?);
    let (stats_stop, on_stats_stop) = super::stopper();
    let stats_task = a.stats.projector(&store).map(|p| p.spawn(on_stats_stop()));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let routes = core_cartella::server::routes_with(&store, verifier, Some(stopping), &core_options)
        .await
        .map_err(anyhow::Error::from_boxed)
        .context("gRPC routes")?;
    let signalled = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    let served = core_cartella::server::serve_routes(listener, routes, tls.as_ref(), signalled).await;
    let _ = stats_stop.send(true);
    if let Some(t) = stats_task {
        let _ = t.await;
    }
    served.map_err(anyhow::Error::from_boxed).context("gRPC server")?;
    store.close().await;
    Ok(())
}

/// How core's listener is protected, for its start line.
pub fn transport_name(tls: Option<&core_cartella::server::GrpcTls>) -> &'static str {
    match tls {
        None => "plaintext",
        Some(t) if t.client_ca_pem.is_some() => "TLS, client certificates required",
        Some(_) => "TLS",
    }
}

//! `sigess core`: core-cartella's gRPC server alone.
use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use core_cartella::auth::{TokenSigner, TokenVerifier};
use tokio::net::TcpListener;

use super::{StoreArgs, shutdown_signal};

#[derive(Args, Debug)]
pub struct CoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// gRPC listen address.
    #[arg(long, env = "SIGESS_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// Ed25519 public key (PEM) that verifies caller tokens. Core needs no private key.
    #[arg(long, env = "SIGESS_VERIFY_KEY", conflicts_with = "signing_key")]
    verify_key: Option<PathBuf>,
    /// Alternatively, the private key file (the public half is derived from it).
    #[arg(long, env = "SIGESS_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    #[command(flatten)]
    stats: super::stats::ProjectorArgs,
}

pub async fn run(a: CoreArgs) -> Result<()> {
    let verifier = match (&a.verify_key, &a.signing_key) {
        (Some(p), _) => TokenVerifier::from_public_pem(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("verify key {}", p.display()))?,
        (None, Some(p)) => TokenSigner::load_or_create(p).context("signing key")?.verifier()?,
        (None, None) => bail!("core needs --verify-key (public PEM) or --signing-key"),
    };
    let store = a.store.open().await?;
    tracing::info!(backend = ?store.backend(), "store open, migrations applied");
    let listener = TcpListener::bind(a.grpc_addr).await.with_context(|| format!("binding gRPC on {}", a.grpc_addr))?;
    tracing::info!(grpc_addr = %listener.local_addr()?, "core-cartella listening");
    println!("core-cartella: gRPC on {}", listener.local_addr()?);
    let (stop, on_stop) = super::stopper();
    let stats_task = a.stats.projector(&store).map(|p| p.spawn(on_stop()));
    let served = core_cartella::server::serve(listener, &store, verifier, shutdown_signal()).await;
    let _ = stop.send(true);
    if let Some(t) = stats_task {
        let _ = t.await;
    }
    served.map_err(anyhow::Error::from_boxed).context("gRPC server")?;
    store.close().await;
    Ok(())
}

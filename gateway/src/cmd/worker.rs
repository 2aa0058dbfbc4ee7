//! `sigess worker`: the SIUSS worker alone; follows the outbox and produces INPS flows.
use anyhow::Result;
use clap::Args;

use super::{StoreArgs, shutdown_signal};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    siuss: gateway::siuss_worker::SiussArgs,
}

pub async fn run(a: WorkerArgs) -> Result<()> {
    let cfg = a.siuss.config(false);
    let store = a.store.open().await?;
    tracing::info!(backend = ?store.backend(), "store open, migrations applied");
    println!("SIGeSS SIUSS worker for ente {}", cfg.ente.codice);
    gateway::siuss_worker::run(store.clone(), cfg, shutdown_signal()).await;
    store.close().await;
    Ok(())
}

//! `sigess siuss …`: INPS SIUSS one-shot jobs run on core's side (they read core's store).
use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::StoreArgs;

#[derive(Subcommand, Debug)]
pub enum SiussCommand {
    /// Write the portal batch files (many beneficiaries per file) of an ente for a period,
    /// named {ente}.{PS|SINBA}.{AAAAMMGG}.{NNNNNNN}.xml, and print what was left out and why.
    Export(SiussExportArgs),
}

#[derive(Args, Debug)]
pub struct SiussExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    export: gateway::siuss_export::ExportArgs,
}

pub async fn run(c: SiussCommand) -> Result<()> {
    match c {
        SiussCommand::Export(a) => export(a).await,
    }
}

/// `sigess siuss export`: portal batch files and a summary without personal data.
async fn export(a: SiussExportArgs) -> Result<()> {
    let cfg = a.export.config().context("export settings")?;
    let store = a.store.open().await?;
    let summary = gateway::siuss_export::export(&store, &cfg).await.context("SIUSS export")?;
    print!("{summary}");
    store.close().await;
    Ok(())
}

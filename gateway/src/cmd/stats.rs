//! `sigess stats …`: the statistics projection's one-shot jobs (core side: they use core's
//! store), and the projector's flags for `sigess up` and `sigess core`.
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use core_cartella::{stats::projector::Projector, store::Store};

use super::StoreArgs;

/// How the statistics projector runs beside core.
#[derive(Args, Debug, Clone)]
pub struct ProjectorArgs {
    /// Milliseconds between looks at the outbox for writes of other processes (writes of
    /// this process are applied at once).
    #[arg(long = "stats-poll-ms", env = "SIGESS_STATS_POLL_MS", default_value_t = 500)]
    pub stats_poll_ms: u64,
    /// Do not run the statistics projector in this process (another process runs it).
    #[arg(long = "no-stats-projector", env = "SIGESS_NO_STATS_PROJECTOR")]
    pub off: bool,
}

impl ProjectorArgs {
    /// The projector of this process, unless turned off.
    pub fn projector(&self, store: &Store) -> Option<Projector> {
        (!self.off).then(|| Projector::new(store.clone(), Duration::from_millis(self.stats_poll_ms.max(10))))
    }
}

#[derive(Subcommand, Debug)]
pub enum StatsCommand {
    /// Rebuild the statistics projection from the records (after a restore, or to check
    /// it); the projector then goes on from the outbox.
    Rebuild(RebuildArgs),
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(c: StatsCommand) -> Result<()> {
    match c {
        StatsCommand::Rebuild(a) => {
            let store = a.store.open().await?;
            let t = Instant::now();
            let n = store.stats_rebuild().await.context("rebuilding the statistics projection")?;
            let stato = store.stats_stato().await?;
            println!("statistics rebuilt: {n} facts in {:.1} s, up to change {}", t.elapsed().as_secs_f64(), stato.cursore);
            store.close().await;
            Ok(())
        }
    }
}

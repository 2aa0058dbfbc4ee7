//! `sigess stats …`: the statistics projection's one-shot jobs (core side: they use core's
//! store), and the projector's flags for `sigess up` and `sigess core`.
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use core_cartella::{
    stats::projector::Projector,
    store::{
        Store,
        projection::{Avanzamento, Lotto, PERSONE_PER_LOTTO},
    },
};

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
    /// it); the projector then goes on from the outbox. Reads the records a batch of people
    /// at a time (memory stays bounded) and reports progress on stderr.
    Rebuild(RebuildArgs),
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// People whose records are read and turned into facts per batch (memory grows with
    /// it; the result does not depend on it).
    #[arg(long, default_value_t = PERSONE_PER_LOTTO as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
}

/// One progress line: people done of the total, facts, cells written.
fn riga(a: &Avanzamento, t: Instant) -> String {
    let pct = (a.persone * 100).checked_div(a.persone_totali).unwrap_or(100).min(100);
    format!(
        "stats rebuild: {} of {} people ({pct}%), {} facts, {} cell changes written, {:.0} s",
        a.persone,
        a.persone_totali,
        a.fatti,
        a.celle,
        t.elapsed().as_secs_f64()
    )
}

pub async fn run(c: StatsCommand) -> Result<()> {
    match c {
        StatsCommand::Rebuild(a) => {
            let store = a.store.open().await?;
            let t = Instant::now();
            let mut shown = Instant::now();
            let lotto = Lotto { persone: usize::try_from(a.batch).unwrap_or(PERSONE_PER_LOTTO), ..Lotto::default() };
            let mut last = Avanzamento::default();
            let n = store
                .stats_rebuild_with(lotto, |p| {
                    last = p;
                    if shown.elapsed() >= Duration::from_secs(2) {
                        eprintln!("{}", riga(&p, t));
                        shown = Instant::now();
                    }
                })
                .await
                .context("rebuilding the statistics projection")?;
            eprintln!("{}", riga(&last, t));
            let stato = store.stats_stato().await?;
            println!("statistics rebuilt: {n} facts in {:.1} s, up to change {}", t.elapsed().as_secs_f64(), stato.cursore);
            store.close().await;
            Ok(())
        }
    }
}

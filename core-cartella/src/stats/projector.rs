//! The statistics projector: a task that applies the outbox to the projection as soon as
//! a write is signalled in this process, and at least every `poll` for writes of other
//! processes. It runs in `sigess up` and `sigess core`; on PostgreSQL several processes may
//! run it, the cursor row lock lets one apply a batch at a time.
use std::time::Duration;

use tokio::sync::watch;

use crate::{error::Result, store::Store};

/// Changes applied per batch.
pub const BATCH: u32 = 500;

#[derive(Clone, Debug)]
pub struct Projector {
    store: Store,
    poll: Duration,
}

impl Projector {
    pub fn new(store: Store, poll: Duration) -> Self {
        Self { store, poll: poll.max(Duration::from_millis(10)) }
    }

    /// Applies batches until the outbox holds nothing more that is visible.
    pub async fn drain(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            match self.store.stats_apply(BATCH).await? {
                Some(0) | None => return Ok(n),
                Some(k) => n += k,
            }
        }
    }

    /// Runs until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let mut changed: watch::Receiver<u64> = self.store.subscribe();
        let mut failures: u32 = 0;
        tracing::info!("statistics projector running");
        loop {
            let wait = match self.drain().await {
                Ok(_) => {
                    failures = 0;
                    self.poll
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "statistics projector: batch failed, retrying");
                    self.poll.saturating_mul(failures.min(50))
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = changed.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("statistics projector stopped");
    }

    /// Spawns [`Projector::run`].
    pub fn spawn(self, stop: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }
}

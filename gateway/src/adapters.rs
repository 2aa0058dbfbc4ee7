//! The one place where outbound adapters are registered and wired to core's store: each
//! adapter's ports implemented over [`Store`], and a function per adapter returning it as
//! the delivery engine holds it.
//!
//! SIUSS: [`StoreLedger`] is the flow ledger port over core's atomic `siuss_apply`.
//! [`siuss_drain`] walks the outbox with the adapter directly, applying every change in
//! commit order through core's `Source` (tests, benches), without the delivery engine's
//! tables.
use std::{sync::Arc, time::Duration};

use adapter_contract::{Outcome, Reason, Runner, register};
use core_cartella::{
    auth::Caller,
    error::CoreError,
    record::Kind,
    store::{
        Cursor, Store,
        flussi::{self, Applicazione, ApplyError, Decisione, Flusso, Mancanza, Scelta},
    },
};
use futures::future::BoxFuture;
use siuss::{
    adapter::SiussAdapter,
    ledger::{Applied, Decision, Gap, Intent, Ledger, LedgerError, Standing},
};

use crate::siuss_config::{SiussConfig, system_caller};

/// The flags of every outbound adapter (`sigess up`, `sigess worker`).
#[derive(clap::Args, Debug, Clone)]
pub struct AdapterArgs {
    #[command(flatten)]
    pub siuss: crate::siuss_config::SiussArgs,
    #[command(flatten)]
    pub webhook: webhook::WebhookArgs,
    #[command(flatten)]
    pub regione: regione_lazio::RegioneArgs,
}

/// Why an adapter's configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdapterConfigError {
    #[error("webhook: {0}")]
    Webhook(#[from] webhook::ConfigError),
    #[error("Regione Lazio: {0}")]
    Regione(#[from] regione_lazio::ConfigError),
}

/// Every outbound adapter this hub runs: the one registration list. SIUSS always; the
/// others when their flags configure them.
pub fn registered(store: &Store, a: &AdapterArgs, demo: bool) -> Result<Vec<Arc<dyn Runner>>, AdapterConfigError> {
    let mut out = vec![siuss(store.clone(), &a.siuss.config(demo))];
    if let Some(w) = webhook::Webhook::from_args(&a.webhook)? {
        out.push(register(w));
    }
    if let Some((r, warnings)) = regione_lazio::RegioneLazio::from_args(&a.regione)? {
        for w in &warnings {
            tracing::warn!("Regione Lazio adapter: {w}");
            eprintln!("WARNING: Regione Lazio adapter: {w}");
        }
        out.push(register(r));
    }
    Ok(out)
}

/// The SIUSS adapter over `store`, as the engine runs it.
pub fn siuss(store: Store, cfg: &SiussConfig) -> Arc<dyn Runner> {
    siuss_with(Arc::new(StoreLedger::new(store)), cfg)
}

/// The SIUSS adapter over any ledger (tests wrap [`StoreLedger`]).
pub fn siuss_with(ledger: Arc<dyn Ledger>, cfg: &SiussConfig) -> Arc<dyn Runner> {
    register(SiussAdapter::new(cfg.ente.clone(), ledger))
}

/// The SIUSS flow ledger over core's store.
#[derive(Clone, Debug)]
pub struct StoreLedger {
    store: Store,
}

impl StoreLedger {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn mancanza(g: Gap) -> Mancanza {
    Mancanza { path: g.path, rule: g.rule, message: g.message }
}

fn standing(f: &Flusso) -> Standing {
    Standing { id_flusso: f.id_flusso.clone(), tipo: f.tipo.clone(), impronta: f.impronta.clone(), snapshot: f.snapshot.clone() }
}

fn emissione(e: siuss::ledger::Emissione) -> flussi::Emissione {
    flussi::Emissione { tipo: e.tipo, operazione: e.operazione, impronta: e.impronta, snapshot: e.snapshot, xml: e.xml }
}

impl Ledger for StoreLedger {
    fn apply(&self, intent: Intent) -> BoxFuture<'_, Result<Applied, LedgerError>> {
        let Intent { prestazione_id, ente, denominazione, ufficio, version, gaps, nota, flows } = intent;
        let d = Decisione {
            prestazione_id,
            ente,
            denominazione_ente: denominazione,
            ufficio,
            version,
            mancanze: gaps.into_iter().map(mancanza).collect(),
            nota,
            // Called by the store inside its transaction, with what stands read there.
            decidi: Box::new(move |f: Option<&Flusso>| match flows.decide(f.map(standing).as_ref()) {
                Decision::Emit { flows, nota } => Scelta::Emetti { emissioni: flows.into_iter().map(emissione).collect(), nota },
                Decision::Hold { reason, gap } => Scelta::Trattieni { nota: reason, mancanza: mancanza(gap) },
            }),
        };
        Box::pin(async move {
            match self.store.siuss_apply(d).await {
                Ok(Applicazione::Emessi(ids)) => Ok(Applied::Emitted(ids)),
                Ok(Applicazione::Trattenuta(nota)) => Ok(Applied::Held(nota)),
                Ok(Applicazione::Superata) => Ok(Applied::Stale),
                Err(ApplyError::Rifiutato(why)) => Err(LedgerError::Refused(why)),
                Err(ApplyError::Core(e)) if e.retryable() => Err(LedgerError::Unavailable(e.to_string())),
                // Nothing else the store reports gets better by applying the same intent again.
                Err(ApplyError::Core(e)) => Err(LedgerError::Refused(e.to_string())),
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("store: {0}")]
    Store(#[from] CoreError),
    /// A change could not be applied now (e.g. the store went away mid-way); the walk stops
    /// before it, to try it again.
    #[error("change {cursor} to be retried: {reason}")]
    Retry { cursor: String, reason: Reason },
}

/// What a walk of the outbox did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Changes walked.
    pub changes: usize,
    /// Changes that failed permanently (cursor and reason, no personal data); the walk went
    /// past them.
    pub failed: Vec<(String, Reason)>,
}

/// Changes read from the outbox per batch.
const BATCH: u32 = 200;

/// Longest wait in [`siuss_drain`] for committed changes to become servable.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// Walks the outbox with one adapter, applying changes in commit order from `cursor`.
struct Walk {
    store: Store,
    runner: Arc<dyn Runner>,
    source: core_cartella::delivery::source::StoreSource,
    caller: Caller,
    kinds: Vec<Kind>,
    cursor: Cursor,
}

impl Walk {
    fn new(store: Store, runner: Arc<dyn Runner>, ente: &str) -> Self {
        let kinds = runner.follows().iter().filter_map(|k| Kind::parse(k)).collect();
        Self {
            source: core_cartella::delivery::source::StoreSource::new(store.clone(), runner.id(), ente),
            caller: system_caller(ente),
            store,
            runner,
            kinds,
            cursor: Cursor::default(),
        }
    }

    /// One batch. Returns how many changes it consumed.
    async fn step(&mut self, out: &mut Drained) -> Result<usize, DriveError> {
        let changes = self.store.changes_after(&self.caller, self.cursor, &self.kinds, BATCH).await?;
        for c in &changes {
            let change = core_cartella::store::delivery::contract_change(c);
            match self.runner.process(&change, &self.source, &[]).await.outcome {
                Outcome::Delivered => {}
                Outcome::Retry { reason, .. } => return Err(DriveError::Retry { cursor: change.cursor, reason }),
                Outcome::Permanent(reason) => {
                    tracing::warn!(adapter = self.runner.id(), cursor = %change.cursor, kind = %change.kind, code = %reason.code, reason = %reason.message, "change failed permanently");
                    out.failed.push((change.cursor, reason));
                }
            }
            self.cursor = c.cursor;
            out.changes += 1;
        }
        Ok(changes.len())
    }

    async fn pending(&self) -> Result<bool, DriveError> {
        Ok(self.store.changes_pending(&self.caller.ente, self.cursor, &self.kinds).await?)
    }
}

/// Walks the whole outbox with the SIUSS adapter over `store`, applying every change in
/// order. Changes already committed but not yet servable (a concurrent older transaction
/// still running on PostgreSQL) are waited for, up to 30 s. Walking again changes nothing
/// already applied.
pub async fn siuss_drain(store: &Store, cfg: &SiussConfig) -> Result<Drained, DriveError> {
    siuss_drain_with(store, cfg, Arc::new(StoreLedger::new(store.clone()))).await
}

/// [`siuss_drain`] with another ledger.
pub async fn siuss_drain_with(store: &Store, cfg: &SiussConfig, ledger: Arc<dyn Ledger>) -> Result<Drained, DriveError> {
    let mut walk = Walk::new(store.clone(), siuss_with(ledger, cfg), &cfg.ente.codice);
    let mut out = Drained::default();
    let since = std::time::Instant::now();
    loop {
        if walk.step(&mut out).await? > 0 {
            continue;
        }
        if !walk.pending().await? || since.elapsed() > DRAIN_WAIT {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

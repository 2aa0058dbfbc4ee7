//! The one place where outbound adapters are registered and wired to core's store: each
//! adapter's ports implemented over [`Store`], and a function per adapter returning it as
//! the delivery engine holds it.
//!
//! SIUSS: [`StoreLedger`] is the flow ledger port over core's atomic `siuss_apply`;
//! [`StoreSource`] serves the reads SIUSS makes (a prestazione with its sources, the
//! prestazioni of a cartella or person) as the ente-wide system caller, audited by core.
//! [`siuss_drain`] walks the outbox with the adapter directly, applying every change in
//! order (tests, benches, one-shot runs), and [`siuss_spawn`] runs that walk as the
//! in-process producer of `sigess up` and `sigess worker`, keeping its position in memory
//! (a restart walks the outbox again, which changes nothing already applied).
use std::{future::Future, sync::Arc, time::Duration};

use adapter_contract::{Change, Outcome, PrestazioneView, Reason, Runner, Source, SourceError, register};
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
}

/// Why an adapter's configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdapterConfigError {
    #[error("webhook: {0}")]
    Webhook(#[from] webhook::ConfigError),
}

/// Every outbound adapter this hub runs: the one registration list. SIUSS always; the
/// others when their flags configure them.
pub fn registered(store: &Store, a: &AdapterArgs, demo: bool) -> Result<Vec<Arc<dyn Runner>>, AdapterConfigError> {
    let mut out = vec![siuss(store.clone(), &a.siuss.config(demo))];
    if let Some(w) = webhook::Webhook::from_args(&a.webhook)? {
        out.push(register(w));
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

/// The reads SIUSS makes, over core's store, as the ente-wide system caller (each read of a
/// prestazione with its sources is audited with SIUSS's purpose). It serves SIUSS's reads
/// only: the cartella reads of the contract answer that they are not served here.
#[derive(Clone, Debug)]
pub struct StoreSource {
    store: Store,
    caller: Caller,
}

impl StoreSource {
    pub fn new(store: Store, ente: &str) -> Self {
        Self { store, caller: system_caller(ente) }
    }
}

fn source_error(e: CoreError) -> SourceError {
    if e.retryable() { SourceError::Unavailable(e.to_string()) } else { SourceError::Corrupt(e.to_string()) }
}

const NOT_SERVED: &str = "cartella reads are not served by the SIUSS source";

impl Source for StoreSource {
    fn prestazione(&self, id: &str) -> BoxFuture<'_, Result<Option<PrestazioneView>, SourceError>> {
        let id = id.to_string();
        Box::pin(async move {
            let f = self.store.siuss_fonte(&self.caller, &id).await.map_err(source_error)?;
            Ok(f.map(|f| PrestazioneView {
                persona: f.persona,
                cartella: f.cartella,
                prestazione: f.prestazione,
                sina: f.sina,
                sinba: f.sinba,
            }))
        })
    }

    fn prestazioni_of_cartella(&self, cartella_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let id = cartella_id.to_string();
        Box::pin(async move {
            if id.is_empty() {
                return Ok(Vec::new());
            }
            self.store.siuss_prestazioni_di(&self.caller.ente, &id, "").await.map_err(source_error)
        })
    }

    fn prestazioni_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let id = persona_id.to_string();
        Box::pin(async move {
            if id.is_empty() {
                return Ok(Vec::new());
            }
            self.store.siuss_prestazioni_di(&self.caller.ente, "", &id).await.map_err(source_error)
        })
    }

    fn cartella(&self, _id: &str) -> BoxFuture<'_, Result<Option<adapter_contract::CartellaView>, SourceError>> {
        Box::pin(std::future::ready(Err(SourceError::Corrupt(NOT_SERVED.into()))))
    }

    fn cartelle_of_persona(&self, _persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        Box::pin(std::future::ready(Err(SourceError::Corrupt(NOT_SERVED.into()))))
    }
}

/// A change of core's feed as the adapter contract carries it.
pub fn contract_change(c: &core_cartella::store::Change) -> Change {
    Change {
        cursor: c.cursor.to_string(),
        kind: c.kind.clone(),
        id: c.id.clone(),
        op: c.op,
        version: c.version,
        ente: c.ente.clone(),
        ufficio: c.ufficio.clone(),
        persona_id: c.persona_id.clone(),
        cartella_id: c.cartella_id.clone(),
        occurred_at: c.occurred_at.clone(),
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
    source: StoreSource,
    caller: Caller,
    kinds: Vec<Kind>,
    cursor: Cursor,
}

impl Walk {
    fn new(store: Store, runner: Arc<dyn Runner>, ente: &str) -> Self {
        let kinds = runner.follows().iter().filter_map(|k| Kind::parse(k)).collect();
        Self { source: StoreSource::new(store.clone(), ente), caller: system_caller(ente), store, runner, kinds, cursor: Cursor::default() }
    }

    /// One batch. Returns how many changes it consumed.
    async fn step(&mut self, out: &mut Drained) -> Result<usize, DriveError> {
        let changes = self.store.changes_after(&self.caller, self.cursor, &self.kinds, BATCH).await?;
        for c in &changes {
            let change = contract_change(c);
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

/// Runs the SIUSS adapter over the outbox until `stop` completes: a batch whenever the store
/// signals a write in this process, or every `poll` for writes of other processes; a change
/// to be retried is tried again with backoff.
pub async fn siuss_run(store: Store, cfg: SiussConfig, stop: impl Future<Output = ()> + Send) {
    let mut walk = Walk::new(store.clone(), siuss(store.clone(), &cfg), &cfg.ente.codice);
    let mut changed = store.subscribe();
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut out = Drained::default();
        match walk.step(&mut out).await {
            Ok(n) if n > 0 => {
                backoff = Duration::from_millis(500);
                tracing::info!(changes = n, failed = out.failed.len(), "SIUSS batch applied");
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "SIUSS batch stopped; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut stop => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(cfg.poll) => {}
            _ = &mut stop => break,
        }
    }
    tracing::info!("SIUSS producer stopped");
}

/// Spawns [`siuss_run`] as a task (what `sigess up` does).
pub fn siuss_spawn(store: Store, cfg: SiussConfig, stop: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(siuss_run(store, cfg, stop))
}

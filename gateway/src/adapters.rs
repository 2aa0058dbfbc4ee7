//! The one place where outbound adapters are registered and wired to core's store: each
//! adapter's ports implemented over [`Store`], and a function per adapter returning it as
//! the delivery engine holds it.
//!
//! SIUSS: [`StoreLedger`] is the flow ledger port over core's atomic `siuss_apply`.
//! [`siuss_drain`] runs the delivery engine with this adapter alone until no work is due
//! (tests, benches, one-shot runs).
use std::{sync::Arc, time::Duration};

use adapter_contract::{Reason, Runner, register};
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    delivery::{Engine, EngineConfig},
    error::CoreError,
    store::{
        Store,
        delivery::{JobFilter, JobState},
        flussi::{self, Applicazione, ApplyError, Decisione, Flusso, Mancanza, Scelta},
    },
};
use futures::future::BoxFuture;
use siuss::{
    adapter::SiussAdapter,
    ledger::{Applied, Decision, Gap, Intent, Ledger, LedgerError, Standing},
};

use crate::siuss_config::SiussConfig;

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
}

/// What one [`siuss_drain`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Jobs finished in this run (delivered or parked).
    pub changes: usize,
    /// Jobs parked as dead letters in this run: cursor and reason (no personal data). Like
    /// any dead letter they stay parked until retried (`DeliveryService.Retry`).
    pub failed: Vec<(String, Reason)>,
}

/// Longest wait in [`siuss_drain`] for committed changes to become servable and for
/// retried jobs to come due.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// Runs the delivery engine with the SIUSS adapter alone over `store` until no job is due
/// (tests, benches and one-shot runs): the same claims, ordering, retries and dead letters
/// as `sigess worker`, with short backoffs. Changes already committed but not yet servable
/// (an older transaction still running on PostgreSQL) are waited for, up to 30 s.
pub async fn siuss_drain(store: &Store, cfg: &SiussConfig) -> Result<Drained, DriveError> {
    siuss_drain_with(store, cfg, Arc::new(StoreLedger::new(store.clone()))).await
}

/// [`siuss_drain`] with another ledger.
pub async fn siuss_drain_with(store: &Store, cfg: &SiussConfig, ledger: Arc<dyn Ledger>) -> Result<Drained, DriveError> {
    let started = core_cartella::store::delivery::now_ms();
    let runner = siuss_with(ledger, cfg);
    let id = runner.id();
    let engine_cfg = EngineConfig {
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_secs(2),
        poll: Duration::from_millis(20),
        ..EngineConfig::default()
    };
    Engine::new(store.clone(), vec![runner], engine_cfg, None).drain(DRAIN_WAIT).await?;
    let admin = Caller {
        kind: CallerKind::Sistema,
        subject: "siuss-drain".into(),
        ente: cfg.ente.codice.clone(),
        ufficio: None,
        roles: vec![Role::Amministratore],
        purpose: "verifica dei conferimenti SIUSS".into(),
        request_id: "siuss-drain".into(),
    };
    let filter = JobFilter { adapter: id.to_string(), ..JobFilter::default() };
    let mut out = Drained::default();
    let mut after = 0;
    loop {
        let (jobs, next) = store.delivery_list(&admin, &filter, after, 500).await?;
        for j in jobs.iter().filter(|j| j.finished_at.is_some_and(|t| t >= started)) {
            out.changes += 1;
            if j.state == JobState::Dead {
                out.failed.push((j.change.cursor.clone(), Reason::new(j.last_error_code.clone(), j.last_error.clone())));
            }
        }
        match next {
            Some(n) => after = n,
            None => return Ok(out),
        }
    }
}

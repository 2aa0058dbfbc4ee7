//! The SIUSS producer: follows the outbox and keeps the flow ledger in step with the
//! cartelle. Each prestazione touched by a change (its own, its cartella's, an assessment's
//! or its person's) is mapped again; when it is sendable and differs from what stands at
//! INPS the hub emits, by itself, the cancellation (`TipoOperazione="C"`) of the earlier
//! insertion and the new insertion; a revoked prestazione gets only the cancellation; a
//! prestazione that cannot be sent records the full list of what blocks it.
//!
//! Runs in `sigess up` as a task and alone as `sigess worker`. The cursor is stored in the
//! ledger after each batch; replaying a batch is harmless because a decision compares the
//! fingerprint of the mapped record with the insertion standing at INPS.
use std::{collections::BTreeSet, future::Future, time::Duration};

use cartella_proto::v1::{self as pb, Valutazione};
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    error::CoreError,
    record::Kind,
    store::{
        Store,
        flussi::{Decisione, Emissione, Fonte, Mancanza},
    },
};
use prost::Message;
use siuss::{
    FlowId, TipoFlusso, Violation,
    from_core::{EnteSiuss, Record, Sorgente, impronta, map, xml_cooperazione},
    model::{Data, TipoOperazione},
};

/// Changes read from the outbox per batch.
const BATCH: u32 = 200;

/// How the ente appears in SIUSS flows. Flags shared by `up`, `worker` and `siuss export`.
#[derive(clap::Args, Debug, Clone)]
pub struct SiussArgs {
    /// Codice ente in SIUSS flows (Belfiore code of the Comune).
    #[arg(long = "siuss-ente", env = "SIGESS_SIUSS_ENTE", default_value = "H501")]
    pub ente: String,
    /// Denominazione of the ente in flows and in GET /flussi entries.
    #[arg(long = "siuss-denominazione", env = "SIGESS_SIUSS_DENOMINAZIONE", default_value = "Roma Capitale")]
    pub denominazione: String,
    /// Belfiore code of the ente's seat (`Ente/@Indirizzo`).
    #[arg(long = "siuss-indirizzo", env = "SIGESS_SIUSS_INDIRIZZO", default_value = "H501")]
    pub indirizzo: String,
    /// Codice fiscale of the operator responsible for the flows (`Ente/@CFOperatore`).
    /// Without it every prestazione is held back with this as the missing item.
    #[arg(long = "siuss-cf-operatore", env = "SIGESS_SIUSS_CF_OPERATORE", default_value = "")]
    pub cf_operatore: String,
    /// Seconds between outbox polls when no change is signalled in-process.
    #[arg(long = "siuss-poll", env = "SIGESS_SIUSS_POLL", default_value_t = 5)]
    pub poll_secs: u64,
}

impl SiussArgs {
    pub fn ente(&self) -> EnteSiuss {
        EnteSiuss {
            codice: self.ente.clone(),
            denominazione: self.denominazione.clone(),
            indirizzo: self.indirizzo.clone(),
            cf_operatore: self.cf_operatore.trim().to_ascii_uppercase(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SiussConfig {
    pub ente: EnteSiuss,
    pub poll: Duration,
}

impl SiussArgs {
    /// The worker's configuration. With demo data and no operator codice fiscale given, a
    /// fake one is used so the demo produces flows.
    pub fn config(&self, demo: bool) -> SiussConfig {
        let mut ente = self.ente();
        if demo && ente.cf_operatore.is_empty() {
            ente.cf_operatore = core_cartella::domain::codice_fiscale::compose("Operatore", "Demo", 1980, 1, 1, false, "H501");
        }
        SiussConfig { ente, poll: Duration::from_secs(self.poll_secs.max(1)) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("store: {0}")]
    Store(#[from] CoreError),
    #[error("the system clock is outside the years SIUSS dates can carry")]
    Clock,
}

/// The ente-wide system caller the worker reads and writes the ledger as.
pub fn system_caller(ente: &str) -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "siuss-worker".into(),
        ente: ente.into(),
        ufficio: None,
        roles: vec![Role::Consultazione],
        purpose: "conferimento SIUSS a INPS".into(),
        request_id: "siuss-worker".into(),
    }
}

fn cursor_name(ente: &str) -> String {
    format!("siuss:{ente}")
}

pub fn today() -> Result<Data, WorkerError> {
    let d = time::OffsetDateTime::now_utc().date();
    let anno = u16::try_from(d.year()).map_err(|_| WorkerError::Clock)?;
    Data::new(anno, u8::from(d.month()), d.day()).map_err(|_| WorkerError::Clock)
}

fn mancanze(v: Vec<Violation>) -> Vec<Mancanza> {
    v.into_iter().map(|x| Mancanza { path: x.path, rule: x.rule.code().to_string(), message: x.message }).collect()
}

/// The sources of a flow, kept with an insertion so its cancellation repeats it exactly.
fn snapshot(f: &Fonte) -> Vec<u8> {
    let mut out = Vec::new();
    f.persona.encode_length_delimited(&mut out).ok();
    f.cartella.encode_length_delimited(&mut out).ok();
    f.prestazione.encode_length_delimited(&mut out).ok();
    for v in [&f.sina, &f.sinba] {
        out.push(u8::from(v.is_some()));
        if let Some(v) = v {
            v.encode_length_delimited(&mut out).ok();
        }
    }
    out
}

fn from_snapshot(mut b: &[u8]) -> Option<Fonte> {
    let persona = pb::Persona::decode_length_delimited(&mut b).ok()?;
    let cartella = pb::Cartella::decode_length_delimited(&mut b).ok()?;
    let prestazione = pb::Prestazione::decode_length_delimited(&mut b).ok()?;
    let mut opt = || -> Option<Option<Valutazione>> {
        let (&flag, rest) = b.split_first()?;
        b = rest;
        if flag == 0 { Some(None) } else { Valutazione::decode_length_delimited(&mut b).ok().map(Some) }
    };
    let sina = opt()?;
    let sinba = opt()?;
    Some(Fonte { persona, cartella, prestazione, sina, sinba })
}

fn sorgente(f: &Fonte) -> Sorgente<'_> {
    Sorgente { persona: &f.persona, cartella: &f.cartella, prestazione: &f.prestazione, sina: f.sina.as_ref(), sinba: f.sinba.as_ref() }
}

fn token(t: TipoFlusso) -> &'static str {
    if t.is_ps() { "PS" } else { "SINBA" }
}

fn emissione(ente: &EnteSiuss, rec: Record, impronta: String, snapshot: Vec<u8>, operazione: &'static str) -> Emissione {
    let ente = ente.clone();
    let tipo = token(rec.tipo());
    Emissione {
        tipo,
        operazione,
        impronta,
        snapshot,
        xml: Box::new(move |id: &str| {
            let fid: FlowId = id.parse().map_err(|e: siuss::FlowIdError| e.to_string())?;
            xml_cooperazione(&ente, &fid, &rec).map_err(|v| format!("{} violazioni", v.len()))
        }),
    }
}

/// Decides one prestazione and records the decision. Returns the ids of the flows produced.
pub async fn process(
    store: &Store,
    ente: &EnteSiuss,
    caller: &Caller,
    prestazione_id: &str,
    oggi: Data,
) -> Result<Vec<String>, WorkerError> {
    let Some(fonte) = store.siuss_fonte(caller, prestazione_id).await? else { return Ok(Vec::new()) };
    let meta = fonte.prestazione.meta.clone().unwrap_or_default();
    let standing = store.siuss_standing(prestazione_id).await?;
    let mut d = Decisione {
        prestazione_id: prestazione_id.to_string(),
        ente: ente.codice.clone(),
        denominazione_ente: ente.denominazione.clone(),
        ufficio: meta.ufficio.clone(),
        version: meta.version,
        mancanze: mancanze(ente.check()),
        nota: String::new(),
        emissioni: Vec::new(),
    };
    // The cancellation of what stands at INPS, mapped from the sources it was inserted from.
    let cancellazione = |d: &mut Decisione| match &standing {
        Some(s) if s.tipo == "PS" => match from_snapshot(&s.snapshot).map(|f| map(&sorgente(&f), TipoOperazione::Cancellazione, oggi)) {
            Some(Ok(rec @ Record::Ps(_))) => match impronta(&rec) {
                Ok(imp) => d.emissioni.push(emissione(ente, rec, imp, Vec::new(), "C")),
                Err(_) => d.nota = "la cancellazione del flusso precedente non è stata generata: contattare l'assistenza".into(),
            },
            _ => d.nota = "la cancellazione del flusso precedente non è stata generata: contattare l'assistenza".into(),
        },
        Some(_) => d.nota = "SINBA non prevede la cancellazione: il record resta presso INPS fino al prossimo aggiornamento".into(),
        None => {}
    };
    if !d.mancanze.is_empty() {
        // Misconfigured ente: nothing can be sent, whatever the prestazione holds.
    } else if fonte.prestazione.stato == pb::StatoPrestazione::Revocata as i32 {
        cancellazione(&mut d);
        if d.nota.is_empty() {
            d.nota = "prestazione revocata".into();
        }
    } else {
        match map(&sorgente(&fonte), TipoOperazione::Inserimento, oggi) {
            Err(v) => d.mancanze = mancanze(v),
            Ok(rec) => match impronta(&rec) {
                Err(v) => d.mancanze = mancanze(v),
                Ok(imp) if standing.as_ref().is_some_and(|s| s.impronta == imp) => {}
                Ok(imp) => {
                    cancellazione(&mut d);
                    d.emissioni.push(emissione(ente, rec, imp, snapshot(&fonte), "I"));
                }
            },
        }
    }
    Ok(store.siuss_apply(d).await?)
}

/// Processes one batch of outbox changes. Returns how many changes it consumed.
pub async fn step(store: &Store, ente: &EnteSiuss) -> Result<usize, WorkerError> {
    let caller = system_caller(&ente.codice);
    let name = cursor_name(&ente.codice);
    let cursor = store.siuss_cursor(&name).await?;
    let changes = store.changes_after(&caller, cursor, &KINDS, BATCH).await?;
    let Some(last) = changes.last().map(|c| c.cursor) else { return Ok(0) };
    let mut ids = BTreeSet::new();
    for c in &changes {
        match Kind::parse(&c.kind) {
            Some(Kind::Prestazione) => {
                ids.insert(c.id.clone());
            }
            Some(Kind::Cartella) => ids.extend(store.siuss_prestazioni_di(&ente.codice, &c.id, "").await?),
            Some(Kind::Valutazione) => ids.extend(store.siuss_prestazioni_di(&ente.codice, &c.cartella_id, "").await?),
            Some(Kind::Persona) => ids.extend(store.siuss_prestazioni_di(&ente.codice, "", &c.id).await?),
            _ => {}
        }
    }
    let oggi = today()?;
    let mut produced = 0usize;
    for id in &ids {
        produced += process(store, ente, &caller, id, oggi).await?.len();
    }
    store.siuss_set_cursor(&name, last).await?;
    tracing::info!(changes = changes.len(), prestazioni = ids.len(), flussi = produced, "SIUSS worker batch");
    Ok(changes.len())
}

/// Kinds of change the worker follows.
const KINDS: [Kind; 4] = [Kind::Prestazione, Kind::Cartella, Kind::Valutazione, Kind::Persona];

/// Longest wait in [`drain`] for committed changes to become servable.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// Drains the outbox: steps until no change is left after the cursor (tests, one-shot
/// runs). Changes already committed but not yet servable (a concurrent older transaction
/// still running on PostgreSQL) are waited for, up to 30 s.
pub async fn drain(store: &Store, ente: &EnteSiuss) -> Result<(), WorkerError> {
    let since = std::time::Instant::now();
    loop {
        if step(store, ente).await? > 0 {
            continue;
        }
        let cursor = store.siuss_cursor(&cursor_name(&ente.codice)).await?;
        if !store.changes_pending(&ente.codice, cursor, &KINDS).await? || since.elapsed() > DRAIN_WAIT {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs until `stop` completes: a batch whenever the store signals a write in this process,
/// or every `poll` for writes made by other processes.
pub async fn run(store: Store, cfg: SiussConfig, stop: impl Future<Output = ()> + Send) {
    let mut changed = store.subscribe();
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(500);
    loop {
        match step(&store, &cfg.ente).await {
            Ok(n) if n > 0 => {
                backoff = Duration::from_millis(500);
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "SIUSS worker batch failed; retrying");
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
    tracing::info!("SIUSS worker stopped");
}

/// Spawns the worker as a task (what `sigess up` does).
pub fn spawn(store: Store, cfg: SiussConfig, stop: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(store, cfg, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip() {
        let f = Fonte {
            persona: pb::Persona { cognome: "Prova".into(), ..Default::default() },
            prestazione: pb::Prestazione { importo: Some(5), ..Default::default() },
            sinba: Some(Valutazione { note: "x".into(), ..Default::default() }),
            ..Default::default()
        };
        let back = from_snapshot(&snapshot(&f)).expect("decodes");
        assert_eq!(back.persona, f.persona);
        assert_eq!(back.prestazione, f.prestazione);
        assert_eq!(back.sina, None);
        assert_eq!(back.sinba, f.sinba);
    }
}

//! The SIUSS flow producer as an outbound adapter of the delivery engine.
//!
//! It follows prestazioni, cartelle, valutazioni and persone: every prestazione of the
//! configured ente that a change touches is mapped again ([`crate::from_core::map`]). `map`
//! plans one delivery per prestazione: its insertion (with the record's fingerprint and the
//! snapshot of its sources), its gaps, or, when revoked, its cancellation. `deliver` hands
//! the plan to the flow [`Ledger`] as an [`Intent`], which decides against what stands at
//! INPS inside the ledger's transaction (see [`crate::ledger`]). A prestazione whose flow
//! the ledger refuses is a permanent failure of that delivery only.
use std::sync::Arc;

use adapter_contract::{Adapter, Change, Outcome, Planned, PrestazioneView, Reason, Source, kind, pb};
use prost::Message;

use crate::{
    FlowId, TipoFlusso, Violation,
    from_core::{EnteSiuss, Record, Sorgente, impronta, map, xml_cooperazione},
    ledger::{Applied, CancelProducer, Cancellation, Emissione, Flows, Gap, Intent, Ledger, LedgerError, RULE_HELD, Standing},
    model::{Data, TipoOperazione},
};

/// The adapter's id in the delivery tables, the API and metric labels.
pub const ID: &str = "siuss";

const FOLLOWS: &[&str] = &[kind::PRESTAZIONE, kind::CARTELLA, kind::VALUTAZIONE, kind::PERSONA];

/// What `load` reads for one change: the day the mapping refers to, and the ente's
/// prestazioni the change touches (each once, in id order).
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub oggi: Data,
    pub prestazioni: Vec<PrestazioneView>,
}

/// What to do for one prestazione.
#[derive(Clone, PartialEq)]
pub enum Plan {
    /// Nothing to send: the delivery records the gaps.
    Nothing,
    /// Send this record unless the same stands at INPS.
    Insert { record: Box<Record>, impronta: String, snapshot: Vec<u8> },
    /// Cancel what stands at INPS.
    Revoke,
}

/// One planned delivery: one prestazione's intent, as data (the ledger's closures are built
/// when it is delivered, so a delivery can be retried).
#[derive(Clone, PartialEq)]
pub struct Delivery {
    pub prestazione_id: String,
    pub ufficio: String,
    pub version: i64,
    pub oggi: Data,
    pub gaps: Vec<Gap>,
    pub plan: Plan,
}

// The record holds personal data: Debug shows only ids, version and fingerprint.
impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plan::Nothing => f.write_str("Nothing"),
            Plan::Insert { impronta, .. } => f.debug_struct("Insert").field("impronta", impronta).finish_non_exhaustive(),
            Plan::Revoke => f.write_str("Revoke"),
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("prestazione_id", &self.prestazione_id)
            .field("version", &self.version)
            .field("gaps", &self.gaps.len())
            .field("plan", &self.plan)
            .finish()
    }
}

/// Today's date in UTC, or None when the clock is outside the years SIUSS dates carry.
pub fn today() -> Option<Data> {
    let d = time::OffsetDateTime::now_utc().date();
    Data::new(u16::try_from(d.year()).ok()?, u8::from(d.month()), d.day()).ok()
}

/// The SIUSS adapter of one ente.
pub struct SiussAdapter {
    ente: EnteSiuss,
    ledger: Arc<dyn Ledger>,
    clock: fn() -> Option<Data>,
}

impl std::fmt::Debug for SiussAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiussAdapter").field("ente", &self.ente.codice).finish_non_exhaustive()
    }
}

impl SiussAdapter {
    pub fn new(ente: EnteSiuss, ledger: Arc<dyn Ledger>) -> Self {
        Self { ente, ledger, clock: today }
    }

    /// The same adapter reading "today" from `clock` (tests fix the date).
    pub fn with_clock(mut self, clock: fn() -> Option<Data>) -> Self {
        self.clock = clock;
        self
    }

    /// The planned delivery of one prestazione. Pure.
    pub fn plan(&self, view: &PrestazioneView, oggi: Data) -> Planned<Delivery> {
        let meta = view.prestazione.meta.clone().unwrap_or_default();
        let mut d = Delivery {
            prestazione_id: meta.id.clone(),
            ufficio: meta.ufficio,
            version: meta.version,
            oggi,
            gaps: gaps(self.ente.check()),
            plan: Plan::Nothing,
        };
        let mut tag = "gaps".to_string();
        if !d.gaps.is_empty() {
            // Misconfigured ente: nothing can be sent, whatever the prestazione holds.
        } else if view.prestazione.stato == pb::StatoPrestazione::Revocata as i32 {
            d.plan = Plan::Revoke;
            tag = "revocata".into();
        } else {
            match map(&sorgente(view), TipoOperazione::Inserimento, oggi).and_then(|rec| impronta(&rec).map(|imp| (rec, imp))) {
                Err(v) => d.gaps = gaps(v),
                Ok((record, imp)) => {
                    tag.clone_from(&imp);
                    d.plan = Plan::Insert { record: Box::new(record), impronta: imp, snapshot: snapshot(view) };
                }
            }
        }
        Planned { key: format!("{ID}:{}:{}:{tag}", meta.id, meta.version), delivery: d }
    }

    fn intent(&self, d: &Delivery) -> Intent {
        let flows = match &d.plan {
            Plan::Nothing => Flows::Nothing,
            Plan::Insert { record, impronta, snapshot } => Flows::Insert {
                insertion: emissione(&self.ente, (**record).clone(), impronta.clone(), snapshot.clone(), "I"),
                cancel: cancel_producer(self.ente.clone(), d.oggi),
            },
            Plan::Revoke => Flows::Revoke { cancel: cancel_producer(self.ente.clone(), d.oggi) },
        };
        Intent {
            prestazione_id: d.prestazione_id.clone(),
            ente: self.ente.codice.clone(),
            denominazione: self.ente.denominazione.clone(),
            ufficio: d.ufficio.clone(),
            version: d.version,
            gaps: d.gaps.clone(),
            nota: String::new(),
            flows,
        }
    }
}

impl Adapter for SiussAdapter {
    type Input = Input;
    type Delivery = Delivery;

    fn id(&self) -> &'static str {
        ID
    }

    fn follows(&self) -> &'static [&'static str] {
        FOLLOWS
    }

    /// The person: a change of the person, of their cartella or of an assessment reaches
    /// the same prestazioni, so they are applied in commit order.
    fn subject(&self, change: &Change) -> String {
        if change.kind == kind::PERSONA { format!("persona:{}", change.id) } else { change.default_subject() }
    }

    async fn load<'a>(&'a self, change: &'a Change, source: &'a dyn Source) -> Result<Input, Outcome> {
        let oggi = (self.clock)().ok_or_else(|| Outcome::retry("CLOCK", "the system clock is outside the years SIUSS dates carry"))?;
        let mut ids = if !change.ente.is_empty() && change.ente != self.ente.codice {
            Vec::new()
        } else {
            match change.kind.as_str() {
                kind::PRESTAZIONE => vec![change.id.clone()],
                kind::CARTELLA => source.prestazioni_of_cartella(&change.id).await?,
                kind::VALUTAZIONE if !change.cartella_id.is_empty() => source.prestazioni_of_cartella(&change.cartella_id).await?,
                kind::PERSONA => source.prestazioni_of_persona(&change.id).await?,
                _ => Vec::new(),
            }
        };
        ids.sort();
        ids.dedup();
        let mut prestazioni = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(v) = source.prestazione(id).await?
                && v.prestazione.meta.as_ref().is_some_and(|m| m.ente == self.ente.codice)
            {
                prestazioni.push(v);
            }
        }
        Ok(Input { oggi, prestazioni })
    }

    fn map(&self, _change: &Change, input: Input) -> Result<Vec<Planned<Delivery>>, Reason> {
        Ok(input.prestazioni.iter().map(|v| self.plan(v, input.oggi)).collect())
    }

    async fn deliver<'a>(&'a self, planned: &'a Planned<Delivery>) -> Outcome {
        match self.ledger.apply(self.intent(&planned.delivery)).await {
            Ok(Applied::Emitted(_) | Applied::Stale) => Outcome::Delivered,
            // The hold is recorded on the prestazione; a dead letter lets an operator apply it
            // again once the cause is fixed.
            Ok(Applied::Held(reason)) => Outcome::permanent(RULE_HELD, reason),
            Err(LedgerError::Unavailable(m)) => Outcome::retry("STORE_UNAVAILABLE", m),
            Err(LedgerError::Refused(m)) => Outcome::permanent("FLUSSO_RIFIUTATO", m),
        }
    }
}

fn gaps(v: Vec<Violation>) -> Vec<Gap> {
    v.into_iter().map(Gap::from).collect()
}

/// What a reason may say of violations: their rules and paths, never values.
fn rules(v: &[Violation]) -> String {
    let mut r: Vec<String> = v.iter().map(|x| format!("{} {}", x.rule.code(), x.path)).collect();
    r.dedup();
    format!("{} violazioni: {}", v.len(), r.join(", "))
}

fn sorgente(v: &PrestazioneView) -> Sorgente<'_> {
    Sorgente { persona: &v.persona, cartella: &v.cartella, prestazione: &v.prestazione, sina: v.sina.as_ref(), sinba: v.sinba.as_ref() }
}

/// The sources of a flow, kept with an insertion so its cancellation repeats it exactly:
/// persona, cartella and prestazione length-delimited, then for SINA and SINBA a presence
/// byte and the assessment.
pub fn snapshot(v: &PrestazioneView) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec cannot run out of space.
    v.persona.encode_length_delimited(&mut out).ok();
    v.cartella.encode_length_delimited(&mut out).ok();
    v.prestazione.encode_length_delimited(&mut out).ok();
    for a in [&v.sina, &v.sinba] {
        out.push(u8::from(a.is_some()));
        if let Some(a) = a {
            a.encode_length_delimited(&mut out).ok();
        }
    }
    out
}

/// The sources back from [`snapshot`]; None when the bytes do not decode.
pub fn from_snapshot(mut b: &[u8]) -> Option<PrestazioneView> {
    let persona = pb::Persona::decode_length_delimited(&mut b).ok()?;
    let cartella = pb::Cartella::decode_length_delimited(&mut b).ok()?;
    let prestazione = pb::Prestazione::decode_length_delimited(&mut b).ok()?;
    let mut opt = || -> Option<Option<pb::Valutazione>> {
        let (&flag, rest) = b.split_first()?;
        b = rest;
        match flag {
            0 => Some(None),
            1 => pb::Valutazione::decode_length_delimited(&mut b).ok().map(Some),
            _ => None,
        }
    };
    let sina = opt()?;
    let sinba = opt()?;
    b.is_empty().then_some(PrestazioneView { persona, cartella, prestazione, sina, sinba })
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
            let fid: FlowId = id.parse().map_err(|e: crate::FlowIdError| e.to_string())?;
            xml_cooperazione(&ente, &fid, &rec).map_err(|v| rules(&v))
        }),
    }
}

/// The cancellation of a standing insertion, mapped from the sources it was inserted from.
fn cancel_producer(ente: EnteSiuss, oggi: Data) -> CancelProducer {
    Box::new(move |s: &Standing| {
        if s.tipo != "PS" {
            return Ok(Cancellation::NotProvided(
                "SINBA non prevede la cancellazione: il record resta presso INPS fino al prossimo aggiornamento".into(),
            ));
        }
        let fonti = from_snapshot(&s.snapshot).ok_or_else(|| "le fonti del flusso inserito non sono leggibili".to_string())?;
        let rec = map(&sorgente(&fonti), TipoOperazione::Cancellazione, oggi).map_err(|v| rules(&v))?;
        if !matches!(rec, Record::Ps(_)) {
            return Err("le fonti del flusso inserito non danno più un record PS".into());
        }
        let imp = impronta(&rec).map_err(|v| rules(&v))?;
        Ok(Cancellation::Flow(emissione(&ente, rec, imp, Vec::new(), "C")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip() {
        let v = PrestazioneView {
            persona: pb::Persona { cognome: "Prova".into(), ..Default::default() },
            prestazione: pb::Prestazione { importo: Some(5), ..Default::default() },
            sinba: Some(pb::Valutazione { note: "x".into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(from_snapshot(&snapshot(&v)), Some(v.clone()));
        let mut bad = snapshot(&v);
        bad.push(7);
        assert_eq!(from_snapshot(&bad), None, "trailing bytes");
        assert_eq!(from_snapshot(&[0xff, 0x01]), None);
        assert_eq!(from_snapshot(&[]), None);
    }
}

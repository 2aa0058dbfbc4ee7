//! The flow ledger as the SIUSS adapter sees it: a port ([`Ledger`]) that applies one
//! prestazione's [`Intent`] atomically, and the pure rule ([`Flows::decide`]) that turns an
//! intent and what stands at INPS into the flows to emit.
//!
//! The ledger (core's store, wired by the `sigess` binary) holds the prestazione's ledger row
//! locked for the whole decision: it reads what stands, calls [`Flows::decide`], writes the
//! flows it returns and the prestazione's gaps, and commits. Deciding inside that transaction
//! is what keeps two workers from inserting the same prestazione twice, and what keeps a new
//! insertion back when the cancellation of the standing one cannot be produced.
use futures::future::BoxFuture;

/// Writes a flow's XML once its id (`{ente}.{tipo}.{AAAAMMGG}.{NNNNNNN}`) is known, or says
/// why it cannot (the reason names rules or counts, never values).
pub type XmlWriter = Box<dyn FnOnce(&str) -> Result<Vec<u8>, String> + Send>;

/// Produces the cancellation of the insertion standing at INPS from that insertion's
/// snapshot, or says why it cannot.
pub type CancelProducer = Box<dyn FnOnce(&Standing) -> Result<Cancellation, String> + Send>;

/// A problem that keeps a prestazione from being sent (a rule broken, a datum missing): where
/// and which rule, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub path: String,
    pub rule: String,
    pub message: String,
}

impl From<crate::Violation> for Gap {
    fn from(v: crate::Violation) -> Self {
        Self { path: v.path, rule: v.rule.code().to_string(), message: v.message }
    }
}

/// The insertion standing at INPS for a prestazione: its latest flow, when that is an
/// insertion INPS has not rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub id_flusso: String,
    /// `PS` or `SINBA`.
    pub tipo: String,
    pub impronta: String,
    /// The encoded records the insertion was mapped from ([`crate::adapter::snapshot`]).
    pub snapshot: Vec<u8>,
}

/// One flow to write.
pub struct Emissione {
    /// `PS` or `SINBA`.
    pub tipo: &'static str,
    /// `I` or `C`.
    pub operazione: &'static str,
    pub impronta: String,
    /// The records an insertion was mapped from, kept so its cancellation repeats it; empty
    /// for a cancellation.
    pub snapshot: Vec<u8>,
    pub xml: XmlWriter,
}

impl std::fmt::Debug for Emissione {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emissione").field("tipo", &self.tipo).field("operazione", &self.operazione).finish_non_exhaustive()
    }
}

/// What cancelling a standing insertion takes.
#[derive(Debug)]
pub enum Cancellation {
    /// A `C` flow.
    Flow(Emissione),
    /// The flow type has no cancellation (SINBA states the minor's current situation); the
    /// note says so to operators.
    NotProvided(String),
}

/// The flows an intent may lead to, once what stands is known.
pub enum Flows {
    /// Nothing to send (the prestazione has gaps, or the ente is misconfigured).
    Nothing,
    /// A sendable prestazione: its insertion, preceded by the cancellation of what stands
    /// when that differs.
    Insert { insertion: Emissione, cancel: CancelProducer },
    /// A revoked prestazione: the cancellation of what stands, if anything.
    Revoke { cancel: CancelProducer },
}

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nothing => f.write_str("Nothing"),
            Self::Insert { insertion, .. } => f.debug_struct("Insert").field("insertion", insertion).finish_non_exhaustive(),
            Self::Revoke { .. } => f.write_str("Revoke"),
        }
    }
}

/// What the adapter asks the ledger to apply for one version of a prestazione.
#[derive(Debug)]
pub struct Intent {
    pub prestazione_id: String,
    /// Codice ente of the flows.
    pub ente: String,
    /// `denominazione_ente` of the flows.
    pub denominazione: String,
    pub ufficio: String,
    /// The prestazione's version: the ledger ignores an intent older than the one it holds.
    pub version: i64,
    /// Empty when the prestazione is sendable.
    pub gaps: Vec<Gap>,
    /// A note for operators, no personal data (replaced by the decision's, when it has one).
    pub nota: String,
    pub flows: Flows,
}

/// The outcome of [`Flows::decide`].
#[derive(Debug)]
pub enum Decision {
    /// Write these flows, in order (possibly none); `nota` replaces the intent's when set.
    Emit { flows: Vec<Emissione>, nota: Option<String> },
    /// Write no flow: the cancellation of what stands could not be produced, so the new
    /// insertion is held too. `gap` joins the prestazione's gaps and `reason` becomes its note.
    Hold { reason: String, gap: Gap },
}

/// Rule code of a held insertion.
pub const RULE_HELD: &str = "CANCELLAZIONE_NON_GENERATA";

const NOTA_REVOCATA: &str = "prestazione revocata";

impl Flows {
    /// Decides the flows given what stands at INPS (read in the ledger's transaction):
    /// - nothing standing: the insertion alone (a revoked prestazione: nothing);
    /// - an insertion standing with the same fingerprint: nothing (already at INPS);
    /// - otherwise the cancellation of what stands, then the insertion; when the
    ///   cancellation cannot be produced, neither.
    pub fn decide(self, standing: Option<&Standing>) -> Decision {
        let (insertion, cancel) = match self {
            Flows::Nothing => return Decision::Emit { flows: Vec::new(), nota: None },
            Flows::Insert { insertion, cancel } => (Some(insertion), cancel),
            Flows::Revoke { cancel } => (None, cancel),
        };
        let revoked = insertion.is_none();
        let Some(standing) = standing else {
            return Decision::Emit { flows: insertion.into_iter().collect(), nota: revoked.then(|| NOTA_REVOCATA.to_string()) };
        };
        if insertion.as_ref().is_some_and(|i| i.impronta == standing.impronta) {
            return Decision::Emit { flows: Vec::new(), nota: None };
        }
        match cancel(standing) {
            Ok(Cancellation::Flow(c)) => {
                let mut flows = vec![c];
                flows.extend(insertion);
                Decision::Emit { flows, nota: revoked.then(|| NOTA_REVOCATA.to_string()) }
            }
            Ok(Cancellation::NotProvided(nota)) => Decision::Emit { flows: insertion.into_iter().collect(), nota: Some(nota) },
            Err(why) => {
                let reason = format!(
                    "la cancellazione del flusso {} non è stata generata ({why}): {} trattenuto; contattare l'assistenza",
                    standing.id_flusso,
                    if revoked { "nessun flusso" } else { "il nuovo inserimento è" }
                );
                let gap = Gap { path: "flusso.cancellazione".into(), rule: RULE_HELD.into(), message: reason.clone() };
                Decision::Hold { reason, gap }
            }
        }
    }
}

/// What applying an intent did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The decision is recorded; these flows (ids, in order) were written, possibly none.
    Emitted(Vec<String>),
    /// No flow was written: the cancellation could not be produced (the reason is the
    /// prestazione's note and one of its gaps).
    Held(String),
    /// The ledger holds a newer version of the prestazione; nothing changed.
    Stale,
}

/// Why the ledger did not apply an intent. Messages name rules and counts, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The store did not answer; applying again later may succeed.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// A flow was refused (its XML could not be written, or it is too large): nothing of the
    /// decision was stored, and applying the same intent again fails the same way.
    #[error("the ledger refused the flow: {0}")]
    Refused(String),
}

/// The flow ledger. Implemented by the binary over core's store.
pub trait Ledger: Send + Sync {
    /// Applies `intent` in one transaction with the prestazione's ledger row locked: reads
    /// what stands, calls [`Flows::decide`], writes the flows it returns (each with a fresh
    /// id and `ts_flusso`) and the prestazione's gaps and note.
    fn apply(&self, intent: Intent) -> BoxFuture<'_, Result<Applied, LedgerError>>;
}

//! The adapter contract: what an outbound adapter is to the delivery engine.
//!
//! An adapter follows some kinds of change in core's outbox. For each change the engine
//! hands it, the adapter
//! 1. names the change's **subject** (changes of one subject are delivered in commit order,
//!    different subjects in parallel),
//! 2. **loads** what it needs through the [`Source`] port (records as the contract's
//!    protobuf types; each read is audited by core),
//! 3. **maps** the change and what it loaded to zero or more [`Planned`] deliveries, each
//!    with a stable idempotency key — a pure function, unit-tested without I/O,
//! 4. **delivers** one planned delivery through its thin transport and classifies the
//!    [`Outcome`]: delivered, retry (maybe after a time the peer asked for), or permanent
//!    failure with a reason that names fields and codes, never personal data.
//!
//! Adapters depend on this crate and `cartella-proto` only, never on core's store. The
//! engine (core side) runs every adapter registered in the `sigess` binary's one list; adding
//! a system is one crate under `adapters/` and one registration line. [`testkit`] is the
//! shared suite every adapter runs in its own tests.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;

pub use cartella_proto::v1 as pb;

pub mod testkit;

/// Kinds of record a change can be about, as the outbox names them.
pub mod kind {
    pub const PERSONA: &str = "persona";
    pub const NUCLEO: &str = "nucleo";
    pub const ACCESSO: &str = "accesso";
    pub const CARTELLA: &str = "cartella";
    pub const DIARIO: &str = "diario";
    pub const VALUTAZIONE: &str = "valutazione";
    pub const PAI: &str = "pai";
    pub const PRESTAZIONE: &str = "prestazione";
    pub const CONDIVISIONE: &str = "condivisione";
    /// Every kind, in the order the contract lists them.
    pub const ALL: [&str; 9] = [PERSONA, NUCLEO, ACCESSO, CARTELLA, DIARIO, VALUTAZIONE, PAI, PRESTAZIONE, CONDIVISIONE];
}

/// One change from core's outbox: ids and ownership, never personal data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The change feed's cursor of this change ("txid.seq"); unique and stable.
    pub cursor: String,
    /// One of [`kind`].
    pub kind: String,
    /// The changed record's id.
    pub id: String,
    /// 1 create, 2 update, 3 merge: a persona merged into the persona `persona_id` names (the
    /// survivor), after which its id no longer resolves (an update of it later means the
    /// merge was undone).
    pub op: i64,
    pub version: i64,
    pub ente: String,
    pub ufficio: String,
    /// The person the record belongs to (empty when none, e.g. a nucleo).
    pub persona_id: String,
    /// The cartella the record hangs off (empty when none).
    pub cartella_id: String,
    pub occurred_at: String,
}

impl Change {
    /// The default subject: the person the change is about, else the record itself. Every
    /// change of one person is then delivered in commit order.
    pub fn default_subject(&self) -> String {
        if self.persona_id.is_empty() { format!("{}:{}", self.kind, self.id) } else { format!("persona:{}", self.persona_id) }
    }
}

/// A prestazione with the records it is mapped from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrestazioneView {
    pub persona: pb::Persona,
    pub cartella: pb::Cartella,
    pub prestazione: pb::Prestazione,
    /// The cartella's latest SINA assessment.
    pub sina: Option<pb::Valutazione>,
    /// The cartella's latest SINBA assessment.
    pub sinba: Option<pb::Valutazione>,
}

/// A cartella with everything an outbound system may be sent about it. Diary notes are not
/// part of it: they never leave the hub.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CartellaView {
    pub persona: pb::Persona,
    pub cartella: pb::Cartella,
    /// Households the person belongs to, with their members' anagrafiche.
    pub nuclei: Vec<(pb::Nucleo, Vec<pb::Persona>)>,
    pub accessi: Vec<pb::Accesso>,
    pub valutazioni: Vec<pb::Valutazione>,
    pub pai: Vec<pb::Pai>,
    pub prestazioni: Vec<pb::Prestazione>,
    pub condivisioni: Vec<pb::Condivisione>,
}

/// Why a read through the [`Source`] failed. Never carries personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The store did not answer; the engine retries the delivery later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be read (e.g. it does not decode).
    #[error("a stored record cannot be read: {0}")]
    Corrupt(String),
}

/// The port through which adapters read core's records. Core implements it over its store
/// with an ente-wide system caller named after the adapter; every read is audited with the
/// adapter's purpose.
pub trait Source: Send + Sync {
    /// A prestazione with its person, cartella and latest SINA/SINBA; None when gone.
    fn prestazione(&self, id: &str) -> BoxFuture<'_, Result<Option<PrestazioneView>, SourceError>>;
    /// Ids of the prestazioni of a cartella, in id order.
    fn prestazioni_of_cartella(&self, cartella_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>>;
    /// Ids of the prestazioni of a person (all cartelle), in id order.
    fn prestazioni_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>>;
    /// A cartella with everything that may be shared about it; None when gone.
    fn cartella(&self, id: &str) -> BoxFuture<'_, Result<Option<CartellaView>, SourceError>>;
    /// Ids of the cartelle of a person, in id order.
    fn cartelle_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>>;
}

/// One delivery an adapter planned for a change, with its idempotency key: the same change
/// mapped from the same records always gives the same key, so a redelivery is recognised
/// by the peer (or by the adapter's own ledger) and changes nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned<D> {
    pub key: String,
    pub delivery: D,
}

/// A permanent failure's reason: a stable code plus a message naming fields or the peer's
/// codes, never values of personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

impl Reason {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How one delivery (or the load or map before it) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The peer has it (a repeat recognised by its idempotency key counts as delivered).
    Delivered,
    /// Try again later: after `after` when the peer said so (`Retry-After`), otherwise after
    /// the engine's backoff. `reason` is for operators (no personal data).
    Retry { after: Option<Duration>, reason: Reason },
    /// Will not succeed by trying again; parked as a dead letter until a person retries it
    /// (after fixing the cause) or discards it.
    Permanent(Reason),
}

impl Outcome {
    pub fn retry(code: &str, message: impl Into<String>) -> Self {
        Self::Retry { after: None, reason: Reason::new(code, message) }
    }

    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::Permanent(Reason::new(code, message))
    }

    /// A stable label for metrics: "delivered", "retry" or "permanent".
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry { .. } => "retry",
            Self::Permanent(_) => "permanent",
        }
    }
}

impl From<SourceError> for Outcome {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Unavailable(m) => Outcome::retry("STORE_UNAVAILABLE", m),
            SourceError::Corrupt(m) => Outcome::permanent("RECORD_UNREADABLE", m),
        }
    }
}

/// An adapter's view of its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Not reachable or refusing; `reason` has no personal data.
    Down(String),
}

/// An outbound adapter. `Input` is what [`Adapter::load`] reads for one change, `Delivery`
/// what one planned delivery carries to [`Adapter::deliver`].
pub trait Adapter: Send + Sync + 'static {
    type Input: Send;
    type Delivery: Send + Sync;

    /// Stable id: names the adapter in the delivery tables, the API and metric labels.
    fn id(&self) -> &'static str;

    /// The change kinds it follows (see [`kind`]); others never reach it.
    fn follows(&self) -> &'static [&'static str];

    /// The subject of a change: changes of one subject are delivered in commit order.
    /// Default: the person, else the record.
    fn subject(&self, change: &Change) -> String {
        change.default_subject()
    }

    /// Whether changes may be coalesced, and under which key. An adapter whose deliveries
    /// depend only on the state it loads at delivery time (not on the change itself) returns
    /// a key naming what it loads (e.g. the cartella): the queued changes of one subject with
    /// the same key, committed before one of them is claimed, are then delivered by that one
    /// job, since its load reads the state they made. Default: none, every change is
    /// delivered on its own.
    fn coalesce(&self, change: &Change) -> Option<String> {
        let _ = change;
        None
    }

    /// Reads what mapping the change needs. An error other than an unavailable store is
    /// permanent for this change.
    fn load<'a>(&'a self, change: &'a Change, source: &'a dyn Source) -> impl Future<Output = Result<Self::Input, Outcome>> + Send + 'a;

    /// Maps a change to its deliveries. Pure: no I/O, no clock beyond what `input` holds.
    fn map(&self, change: &Change, input: Self::Input) -> Result<Vec<Planned<Self::Delivery>>, Reason>;

    /// Delivers one planned delivery and classifies what happened.
    fn deliver<'a>(&'a self, planned: &'a Planned<Self::Delivery>) -> impl Future<Output = Outcome> + Send + 'a;

    /// Whether the peer is reachable; the default says up.
    fn health(&self) -> impl Future<Output = Health> + Send + '_ {
        std::future::ready(Health::Up)
    }
}

/// What the engine learns from processing one change with one adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Processed {
    /// Keys of deliveries that reached the peer in this attempt.
    pub delivered: Vec<String>,
    /// How the change as a whole ended: Delivered when every planned delivery was, else
    /// the first delivery that did not succeed (later ones were not tried, to keep order).
    pub outcome: Outcome,
}

/// An adapter as the engine holds it: object-safe, one per registration.
pub trait Runner: Send + Sync {
    fn id(&self) -> &'static str;
    fn follows(&self) -> &'static [&'static str];
    fn subject(&self, change: &Change) -> String;
    fn coalesce(&self, change: &Change) -> Option<String>;
    /// Load, map and deliver, skipping deliveries whose keys are in `done` (delivered by an
    /// earlier attempt).
    fn process<'a>(&'a self, change: &'a Change, source: &'a dyn Source, done: &'a [String]) -> BoxFuture<'a, Processed>;
    fn health(&self) -> BoxFuture<'_, Health>;
}

/// Wraps an [`Adapter`] for the engine.
#[derive(Debug)]
pub struct Registered<A>(pub A);

impl<A: Adapter> Runner for Registered<A> {
    fn id(&self) -> &'static str {
        self.0.id()
    }

    fn follows(&self) -> &'static [&'static str] {
        self.0.follows()
    }

    fn subject(&self, change: &Change) -> String {
        self.0.subject(change)
    }

    fn coalesce(&self, change: &Change) -> Option<String> {
        self.0.coalesce(change)
    }

    fn process<'a>(&'a self, change: &'a Change, source: &'a dyn Source, done: &'a [String]) -> BoxFuture<'a, Processed> {
        Box::pin(async move {
            let input = match self.0.load(change, source).await {
                Ok(i) => i,
                Err(outcome) => return Processed { delivered: Vec::new(), outcome },
            };
            let planned = match self.0.map(change, input) {
                Ok(p) => p,
                Err(reason) => return Processed { delivered: Vec::new(), outcome: Outcome::Permanent(reason) },
            };
            let mut delivered = Vec::new();
            for p in &planned {
                if done.iter().any(|k| k == &p.key) {
                    continue;
                }
                match self.0.deliver(p).await {
                    Outcome::Delivered => delivered.push(p.key.clone()),
                    other => return Processed { delivered, outcome: other },
                }
            }
            Processed { delivered, outcome: Outcome::Delivered }
        })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(self.0.health())
    }
}

/// Registers an adapter: `register(MyAdapter::new(cfg))`.
pub fn register<A: Adapter>(adapter: A) -> Arc<dyn Runner> {
    Arc::new(Registered(adapter))
}

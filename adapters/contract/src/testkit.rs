//! The shared adapter test suite: every adapter calls [`check_contract`] from its own tests
//! with fixtures of its domain, and may use [`MemorySource`] to load them without a store.
//!
//! What every adapter must hold to:
//! - an id made of lowercase letters, digits and dashes, and a non-empty list of followed
//!   kinds, each a kind of the contract;
//! - a subject that depends on the change only (same change, same subject);
//! - `map` pure and deterministic: the same change and input give the same deliveries and
//!   keys, and the keys of one change are distinct;
//! - reasons (of `map`, and of `load` through the [`MemorySource`]) that never repeat the
//!   personal data of the fixture.
use std::collections::{BTreeMap, HashSet};

use futures::future::BoxFuture;

use crate::{Adapter, CartellaView, Change, Outcome, PrestazioneView, Source, SourceError, kind};

/// A [`Source`] over records held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    pub prestazioni: BTreeMap<String, PrestazioneView>,
    pub cartelle: BTreeMap<String, CartellaView>,
    /// When set, every read fails with this error (to test how an adapter treats it).
    pub fail: Option<SourceError>,
}

impl MemorySource {
    fn check(&self) -> Result<(), SourceError> {
        self.fail.clone().map_or(Ok(()), Err)
    }

    fn ids(&self, f: impl Fn(&PrestazioneView) -> bool) -> Vec<String> {
        self.prestazioni.iter().filter(|(_, v)| f(v)).map(|(k, _)| k.clone()).collect()
    }
}

impl Source for MemorySource {
    fn prestazione(&self, id: &str) -> BoxFuture<'_, Result<Option<PrestazioneView>, SourceError>> {
        let r = self.check().map(|()| self.prestazioni.get(id).cloned());
        Box::pin(std::future::ready(r))
    }

    fn prestazioni_of_cartella(&self, cartella_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let r = self.check().map(|()| self.ids(|v| v.prestazione.cartella_id == cartella_id));
        Box::pin(std::future::ready(r))
    }

    fn prestazioni_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let r = self.check().map(|()| self.ids(|v| v.cartella.persona_id == persona_id));
        Box::pin(std::future::ready(r))
    }

    fn cartella(&self, id: &str) -> BoxFuture<'_, Result<Option<CartellaView>, SourceError>> {
        let r = self.check().map(|()| self.cartelle.get(id).cloned());
        Box::pin(std::future::ready(r))
    }

    fn cartelle_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let r = self
            .check()
            .map(|()| self.cartelle.iter().filter(|(_, v)| v.cartella.persona_id == persona_id).map(|(k, _)| k.clone()).collect());
        Box::pin(std::future::ready(r))
    }
}

/// A failed check of the contract, saying which rule and for which fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

/// Runs the shared suite on `adapter` with `fixtures` (changes the adapter follows) loaded
/// from `source`. `personal` lists the personal data in the fixtures (codici fiscali,
/// names, notes) that no reason may repeat. Returns every violation found.
pub async fn check_contract<A>(adapter: &A, source: &MemorySource, fixtures: &[Change], personal: &[&str]) -> Vec<Violation>
where
    A: Adapter,
    A::Delivery: PartialEq + std::fmt::Debug,
{
    let mut out = Vec::new();
    let id = adapter.id();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        out.push(Violation(format!("id {id:?} must be lowercase letters, digits and dashes")));
    }
    if adapter.follows().is_empty() {
        out.push(Violation("follows no change kind".into()));
    }
    for k in adapter.follows() {
        if !kind::ALL.contains(k) {
            out.push(Violation(format!("follows {k:?}, which is not a kind of the contract")));
        }
    }
    let leaks = |text: &str| personal.iter().any(|p| !p.is_empty() && text.contains(p));
    for (i, change) in fixtures.iter().enumerate() {
        if adapter.subject(change) != adapter.subject(&change.clone()) || adapter.subject(change).is_empty() {
            out.push(Violation(format!("fixture {i}: subject is empty or not stable")));
        }
        let first = adapter.load(change, source).await;
        let second = adapter.load(change, source).await;
        let (a, b) = match (first, second) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(o), _) | (_, Err(o)) => {
                if let Outcome::Permanent(r) | Outcome::Retry { reason: r, .. } = &o
                    && (leaks(&r.message) || leaks(&r.code))
                {
                    out.push(Violation(format!("fixture {i}: load's reason repeats personal data")));
                }
                continue;
            }
        };
        match (adapter.map(change, a), adapter.map(change, b)) {
            (Ok(x), Ok(y)) => {
                if x != y {
                    out.push(Violation(format!("fixture {i}: map is not deterministic")));
                }
                let keys: HashSet<&str> = x.iter().map(|p| p.key.as_str()).collect();
                if keys.len() != x.len() {
                    out.push(Violation(format!("fixture {i}: two deliveries of one change share a key")));
                }
                if x.iter().any(|p| p.key.is_empty() || leaks(&p.key)) {
                    out.push(Violation(format!("fixture {i}: an idempotency key is empty or holds personal data")));
                }
            }
            (Err(r), Err(s)) => {
                if r != s {
                    out.push(Violation(format!("fixture {i}: map fails differently on the same input")));
                }
                if leaks(&r.message) || leaks(&r.code) {
                    out.push(Violation(format!("fixture {i}: map's reason repeats personal data")));
                }
            }
            _ => out.push(Violation(format!("fixture {i}: map succeeds once and fails once on the same input"))),
        }
    }
    // An unavailable store must be retried, never parked as a dead letter.
    let down = MemorySource { fail: Some(SourceError::Unavailable("test".into())), ..source.clone() };
    for (i, change) in fixtures.iter().enumerate() {
        if let Err(Outcome::Permanent(_)) = adapter.load(change, &down).await {
            out.push(Violation(format!("fixture {i}: an unavailable store is treated as a permanent failure")));
        }
    }
    out
}

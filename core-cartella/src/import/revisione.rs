//! After the offices' exports are in: one linkage over the ente's whole anagrafica queues
//! the pairs of personas a person should look at. Each import links its own rows against
//! the hub with a model trained on that run, so two records of offices imported apart may
//! be seen together, and weighed with the whole ente's data, only here. Nothing is merged
//! by this pass: every pair at or above the review threshold goes to the review queue.
use super::load::{evidence_text, hub_persone};
use crate::{
    error::Result,
    linkage::{self, Config, Evidence},
    store::Store,
};

/// Links the ente's personas among themselves and queues the pairs worth a decision (a
/// pair already queued, decided or not, is not queued again). Returns how many were new.
pub async fn queue_undecided_pairs(store: &Store, ente: &str, cfg: &Config) -> Result<usize> {
    let (ids, records) = hub_persone(store, ente).await?;
    let prepared: Vec<linkage::Prepared> = records.iter().map(linkage::prepare).collect();
    let result = linkage::link(&prepared, cfg);
    let mut queued = 0;
    for p in &result.pairs {
        // Two personas never share a trusted codice fiscale (it is unique in the ente), so
        // every pair here was weighed field by field.
        let Evidence::Score { comparison, match_weight } = &p.evidence else { continue };
        let (Some(a), Some(b)) = (ids.get(p.a as usize), ids.get(p.b as usize)) else { continue };
        if store.queue_review(ente, a, b, p.probability, &evidence_text(&result.model, comparison, *match_weight)).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

//! Record linkage of persons: which records from the offices' registries (and the hub) are
//! the same person. Pure functions over values; the import and the review queue call them.
//!
//! The pipeline: every record is normalised ([`prepare`]) and its codice fiscale judged
//! ([`cf::judge`]): a code is trusted only when its structure and check character are right
//! and it agrees with the surname, name, birth date and sex it encodes (omocodia included).
//! Records sharing a trusted code are the same person; records with two different trusted
//! codes are different people. The others are compared pairwise (Fellegi–Sunter) within
//! blocks ([`blocking`]) so the work grows with the number of records, not its square; the
//! m and u probabilities are estimated from the data ([`em`]): u from random pairs, m and
//! the share of matches by expectation–maximisation over the blocked pairs. Each pair ends
//! as linked, review or different by two thresholds on the match probability, and linked
//! pairs are joined into clusters that never hold two different trusted codes.

pub mod blocking;
pub mod cf;
pub mod cluster;
pub mod compare;
pub mod em;

use time::Date;

pub use compare::{Comparison, FIELDS, Field};
pub use em::Model;

use crate::domain::codes::normalize_name;

/// Sex as a registry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sesso {
    M,
    F,
}

/// One person as an office registered them: the fields linkage compares. Debug redacts the
/// personal data.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub cognome: String,
    pub nome: String,
    pub sesso: Option<Sesso>,
    pub nascita: Option<Date>,
    /// Comune or foreign state of birth, as written.
    pub luogo_nascita: String,
    /// As written; empty when missing.
    pub codice_fiscale: String,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Record(<redacted>)")
    }
}

/// A record ready for comparison: names folded to upper-case ASCII letters and single
/// spaces, the codice fiscale judged.
#[derive(Clone, PartialEq, Eq)]
pub struct Prepared {
    pub cognome: String,
    pub nome: String,
    pub sesso: Option<Sesso>,
    pub nascita: Option<Date>,
    pub luogo: String,
    /// The code as written, normalised (upper case, no spaces); empty when missing.
    pub cf_raw: String,
    pub cf: cf::Judgement,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("cf", &self.cf).finish_non_exhaustive()
    }
}

impl Prepared {
    /// The trusted codice fiscale, if any.
    pub fn trusted_cf(&self) -> Option<&str> {
        matches!(self.cf, cf::Judgement::Trusted).then_some(self.cf_raw.as_str())
    }
}

/// Upper-case ASCII letters and single spaces: accents folded, apostrophes and other marks
/// dropped ("D'Angelo" and "DANGELO" compare equal).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in normalize_name(s).chars() {
        if c.is_ascii_alphabetic() {
            out.push(c.to_ascii_uppercase());
        } else if (c.is_whitespace() || c == '-') && !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

pub fn prepare(r: &Record) -> Prepared {
    let cognome = fold(&r.cognome);
    let nome = fold(&r.nome);
    let cf_raw: String = r.codice_fiscale.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let cf = cf::judge(&cf_raw, &cognome, &nome, r.nascita, r.sesso);
    Prepared { cognome, nome, sesso: r.sesso, nascita: r.nascita, luogo: fold(&r.luogo_nascita), cf_raw, cf }
}

/// The three outcomes for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Different,
    Review,
    Linked,
}

/// Thresholds on the match probability, and the work limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// At or above: the same person.
    pub link_threshold: f64,
    /// At or above (and below `link_threshold`): a person decides.
    pub review_threshold: f64,
    /// Blocks with more records than this are skipped for that key (the other keys still
    /// bring their pairs together), so one very common name cannot make the work quadratic.
    pub max_block: usize,
    /// Random pairs drawn to estimate the u probabilities.
    pub u_sample_pairs: usize,
    pub em_iterations: usize,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { link_threshold: 0.9, review_threshold: 0.5, max_block: 2_000, u_sample_pairs: 1_000_000, em_iterations: 25, seed: 15 }
    }
}

/// Why two records were judged as they were.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// They share a trusted codice fiscale.
    SameTrustedCf,
    /// They carry two different trusted codici fiscali.
    DifferentTrustedCf,
    /// The Fellegi–Sunter comparison: the level of each field and the match weight (log2
    /// Bayes factor, prior included).
    Score { comparison: Comparison, match_weight: f64 },
}

/// One pair of records worth reporting (linked or for review).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
    pub probability: f64,
    pub outcome: Outcome,
    pub evidence: Evidence,
}

/// What linkage found.
#[derive(Debug, Clone)]
pub struct Linkage {
    /// Linked and review pairs (`a < b`), linked first, then by probability.
    pub pairs: Vec<Pair>,
    /// Cluster of each record (the smallest record index in it).
    pub clusters: Vec<u32>,
    pub model: Model,
    pub stats: Stats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: usize,
    pub trusted_cf: usize,
    pub candidate_pairs: u64,
    pub skipped_blocks: usize,
    pub linked: usize,
    pub review: usize,
}

/// Links a set of records among themselves.
pub fn link(records: &[Prepared], cfg: &Config) -> Linkage {
    let keys = blocking::keys(records);
    let mut stats = Stats { records: records.len(), ..Stats::default() };
    stats.trusted_cf = records.iter().filter(|r| r.trusted_cf().is_some()).count();

    let mut model = em::Model::u_from_random_pairs(records, cfg.u_sample_pairs, cfg.seed);
    let mut sessions = Vec::new();
    let mut expected_matches = None;
    for (key, left_out) in blocking::TRAINING {
        let mut patterns = em::Patterns::default();
        blocking::for_each_pair_of_key(&keys, key, cfg.max_block, |a, b| {
            patterns.add(compare::compare(&records[a as usize], &records[b as usize]))
        });
        let (trained, lambda) = model.train_session(&patterns, left_out, cfg.em_iterations);
        if key == 0 {
            expected_matches = Some(lambda * patterns.total() as f64);
        }
        sessions.push(trained);
    }
    model.combine(&sessions);
    // Matches sharing a birth date, over the share of matches whose dates agree.
    let n = records.len() as f64;
    let all_pairs = (n * (n - 1.0) / 2.0).max(1.0);
    let date_recall = model.m[2][0].max(0.05);
    model.lambda = (expected_matches.unwrap_or(0.0) / date_recall / all_pairs).clamp(1e-12, 0.5);
    let mut pairs = Vec::new();
    let mut candidates = 0u64;
    stats.skipped_blocks = blocking::for_each_pair(&keys, cfg.max_block, |a, b| {
        candidates += 1;
        let (ra, rb) = (&records[a as usize], &records[b as usize]);
        let (probability, evidence) = match cf_decides(ra, rb) {
            Some(e @ Evidence::SameTrustedCf) => (1.0, e),
            Some(e) => (0.0, e),
            None => {
                let comparison = compare::compare(ra, rb);
                let w = model.match_weight(&comparison);
                (em::probability(w), Evidence::Score { comparison, match_weight: w })
            }
        };
        let outcome = if probability >= cfg.link_threshold {
            Outcome::Linked
        } else if probability >= cfg.review_threshold {
            Outcome::Review
        } else {
            Outcome::Different
        };
        if outcome != Outcome::Different {
            pairs.push(Pair { a, b, probability, outcome, evidence });
        }
    });
    stats.candidate_pairs = candidates;
    // Records sharing a trusted code may sit in no common block (a typo in every field):
    // they are linked all the same.
    for (a, b) in same_trusted_cf(records) {
        pairs.push(Pair { a, b, probability: 1.0, outcome: Outcome::Linked, evidence: Evidence::SameTrustedCf });
    }
    pairs.sort_by(|x, y| y.outcome.cmp(&x.outcome).then(y.probability.total_cmp(&x.probability)).then((x.a, x.b).cmp(&(y.a, y.b))));
    pairs.dedup_by(|x, y| x.a == y.a && x.b == y.b);
    stats.linked = pairs.iter().filter(|p| p.outcome == Outcome::Linked).count();
    stats.review = pairs.len() - stats.linked;
    let clusters = cluster::clusters(records, &pairs);
    Linkage { pairs, clusters, model, stats }
}

/// A decision the codici fiscali make on their own.
pub fn cf_decides(a: &Prepared, b: &Prepared) -> Option<Evidence> {
    match (a.trusted_cf(), b.trusted_cf()) {
        (Some(x), Some(y)) if x == y => Some(Evidence::SameTrustedCf),
        (Some(_), Some(_)) => Some(Evidence::DifferentTrustedCf),
        _ => None,
    }
}

/// Pairs (a < b) of records with the same trusted code, each record paired with the first
/// of its code.
fn same_trusted_cf(records: &[Prepared]) -> Vec<(u32, u32)> {
    let mut first: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(cf) = r.trusted_cf() {
            match first.get(cf) {
                Some(&f) => out.push((f, i as u32)),
                None => {
                    first.insert(cf, i as u32);
                }
            }
        }
    }
    out
}

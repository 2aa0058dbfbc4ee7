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
    /// The same limit for the blocks that train the m probabilities, much smaller: in a
    /// large block of namesakes nearly every pair is two different people, and
    /// expectation–maximisation, left with too few matches there, takes for its "match" class
    /// whatever else those pairs have in common. Matches are a far larger share of small
    /// blocks, and they are no different from the matches in large ones.
    pub training_max_block: usize,
    /// Random pairs drawn to estimate the u probabilities.
    pub u_sample_pairs: usize,
    pub em_iterations: usize,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            link_threshold: 0.9,
            review_threshold: 0.5,
            max_block: 2_000,
            training_max_block: 100,
            u_sample_pairs: 1_000_000,
            em_iterations: 25,
            seed: 15,
        }
    }
}

/// The largest `max_block` accepted: past it one common name makes the work quadratic.
pub const MAX_BLOCK_LIMIT: usize = 100_000;
/// The range of `u_sample_pairs`: fewer pairs estimate u poorly, more only take time.
pub const U_SAMPLE_PAIRS_RANGE: std::ops::RangeInclusive<usize> = 1_000..=100_000_000;
/// The range of `em_iterations`.
pub const EM_ITERATIONS_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000;

impl Config {
    /// What is wrong with these settings, as (setting, reason) with the setting named as
    /// the field is (`link_threshold`, …); empty when they can be used.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut bad = Vec::new();
        let probability = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !probability(self.link_threshold) {
            bad.push(("link_threshold", "must be a probability between 0 and 1".to_string()));
        }
        if !probability(self.review_threshold) {
            bad.push(("review_threshold", "must be a probability between 0 and 1".to_string()));
        } else if probability(self.link_threshold) && self.review_threshold > self.link_threshold {
            bad.push(("review_threshold", "must not be above link_threshold".to_string()));
        }
        if !(2..=MAX_BLOCK_LIMIT).contains(&self.max_block) {
            bad.push(("max_block", format!("must be between 2 and {MAX_BLOCK_LIMIT}")));
        }
        if self.training_max_block < 2 || self.training_max_block > self.max_block.clamp(2, MAX_BLOCK_LIMIT) {
            bad.push(("training_max_block", "must be between 2 and max_block".to_string()));
        }
        if !U_SAMPLE_PAIRS_RANGE.contains(&self.u_sample_pairs) {
            bad.push(("u_sample_pairs", format!("must be between {} and {}", U_SAMPLE_PAIRS_RANGE.start(), U_SAMPLE_PAIRS_RANGE.end())));
        }
        if !EM_ITERATIONS_RANGE.contains(&self.em_iterations) {
            bad.push(("em_iterations", format!("must be between {} and {}", EM_ITERATIONS_RANGE.start(), EM_ITERATIONS_RANGE.end())));
        }
        bad
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
    match link_unless(records, cfg, &|| false) {
        Some(l) => l,
        None => unreachable!("a linkage nobody stops ends"),
    }
}

/// [`link`], giving up (None) once `stopped` says so: it is asked between the training
/// sessions and every few thousand candidate pairs, so a cancelled import does not wait for
/// the whole linkage of a large office.
pub fn link_unless(records: &[Prepared], cfg: &Config, stopped: &dyn Fn() -> bool) -> Option<Linkage> {
    const OGNI: u64 = 4096;
    let keys = blocking::keys(records);
    let mut stats = Stats { records: records.len(), ..Stats::default() };
    stats.trusted_cf = records.iter().filter(|r| r.trusted_cf().is_some()).count();

    let mut model = em::Model::u_from_random_pairs(records, cfg.u_sample_pairs, cfg.seed);
    let mut sessions = Vec::new();
    let mut expected_matches = None;
    for (key, left_out) in blocking::TRAINING {
        if stopped() {
            return None;
        }
        let mut patterns = em::Patterns::default();
        let (kept, with_key) = blocking::for_each_pair_of_key(&keys, key, cfg.training_max_block, |a, b| {
            patterns.add(compare::compare(&records[a as usize], &records[b as usize]))
        });
        let (trained, lambda) = model.train_session(&patterns, left_out, cfg.em_iterations);
        if key == 0 {
            // Matches grow with the records, not the pairs: the blocks left out of training
            // hold as many per record as those kept.
            expected_matches = Some(lambda * patterns.total() as f64 * with_key as f64 / kept.max(1) as f64);
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
    let mut fermo = stopped();
    stats.skipped_blocks = blocking::for_each_pair(&keys, cfg.max_block, |a, b| {
        if fermo {
            return;
        }
        candidates += 1;
        if candidates.is_multiple_of(OGNI) && stopped() {
            fermo = true;
            return;
        }
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
    if fermo {
        return None;
    }
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
    Some(Linkage { pairs, clusters, model, stats })
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    #[test]
    fn settings_are_checked_one_by_one() {
        assert!(Config::default().check().is_empty());
        let names = |c: Config| c.check().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let d = Config::default;
        assert_eq!(names(Config { link_threshold: 1.5, ..d() }), ["link_threshold"]);
        assert_eq!(names(Config { link_threshold: f64::NAN, ..d() }), ["link_threshold"]);
        assert_eq!(names(Config { review_threshold: -0.1, ..d() }), ["review_threshold"]);
        assert_eq!(names(Config { review_threshold: 0.95, ..d() }), ["review_threshold"], "above the link threshold");
        assert_eq!(names(Config { link_threshold: 1.0, review_threshold: 0.0, ..d() }), Vec::<&str>::new());
        assert_eq!(names(Config { max_block: 1, ..d() }), ["max_block", "training_max_block"]);
        assert_eq!(names(Config { max_block: MAX_BLOCK_LIMIT + 1, ..d() }), ["max_block"]);
        assert_eq!(names(Config { training_max_block: 3_000, ..d() }), ["training_max_block"], "above max_block");
        assert_eq!(names(Config { u_sample_pairs: 10, em_iterations: 0, ..d() }), ["u_sample_pairs", "em_iterations"]);
    }
    use time::{Date, Duration, macros::date};

    use super::*;

    fn word(rng: &mut StdRng) -> String {
        (0..8).map(|_| char::from(b'A' + rng.random_range(0..26u8))).collect()
    }

    /// Many people sharing one name, each registered once, and people with names of their
    /// own, each registered twice with the same birth date (one with a surname typo now and
    /// then). No codici fiscali, so everything rests on the model.
    fn namesakes_and_pairs(namesakes: usize, people: usize) -> Vec<Prepared> {
        let mut rng = StdRng::seed_from_u64(3);
        let day = |rng: &mut StdRng| date!(1930 - 01 - 01) + Duration::days(rng.random_range(0..365 * 90));
        let place = |rng: &mut StdRng| ["ROMA", "MILANO", "NAPOLI", "BARI"][rng.random_range(0..4)].to_string();
        let mut out = Vec::new();
        let mut push = |cognome: String, nome: String, sesso, nascita: Date, luogo: String| {
            out.push(prepare(&Record {
                cognome,
                nome,
                sesso: Some(sesso),
                nascita: Some(nascita),
                luogo_nascita: luogo,
                codice_fiscale: String::new(),
            }))
        };
        for _ in 0..namesakes {
            let (d, l) = (day(&mut rng), place(&mut rng));
            push("ROSSI".into(), "MARIO".into(), Sesso::M, d, l);
        }
        for i in 0..people {
            let (c, n, d, l) = (word(&mut rng), word(&mut rng), day(&mut rng), place(&mut rng));
            let sesso = if i % 2 == 0 { Sesso::M } else { Sesso::F };
            let typo = if i % 10 == 0 { format!("{}X", &c[..7]) } else { c.clone() };
            push(c, n.clone(), sesso, d, l.clone());
            push(typo, n, sesso, d, l);
        }
        out
    }

    /// A block of namesakes far larger than the matches among the other records must not
    /// train the model: a disagreeing birth date keeps weighing strongly against a match.
    #[test]
    fn namesakes_do_not_drown_the_matches_in_training() {
        let records = namesakes_and_pairs(1_500, 1_000);
        let cfg = Config { u_sample_pairs: 200_000, ..Config::default() };
        let capped = link(&records, &cfg);
        let uncapped = link(&records, &Config { training_max_block: cfg.max_block, ..cfg.clone() });
        let (date, other_date) = (2, 3u8);
        let w_capped = capped.model.field_weight(date, other_date);
        let w_uncapped = uncapped.model.field_weight(date, other_date);
        assert!(w_capped < -4.0, "disagreeing birth date weighs {w_capped:.1} with training blocks capped");
        assert!(w_uncapped > w_capped + 2.0, "uncapped {w_uncapped:.1}, capped {w_capped:.1}: the case does not show the problem");
        // And the duplicates are found.
        let linked = capped.pairs.iter().filter(|p| p.outcome == Outcome::Linked).count();
        assert!(linked >= 990, "linked {linked} of 1000");
    }

    /// A linkage asked to stop gives up: at once when asked before it starts, and part-way
    /// through the candidate pairs when asked then; never asked, it gives what `link` gives.
    #[test]
    fn a_stopped_linkage_gives_up_part_way() {
        let records = namesakes_and_pairs(300, 2_000);
        let cfg = Config { u_sample_pairs: 20_000, ..Config::default() };
        assert!(link_unless(&records, &cfg, &|| true).is_none());
        let asked = std::cell::Cell::new(0u32);
        // Not during training nor before the pairs, then at the first check among them.
        let late = || {
            asked.set(asked.get() + 1);
            asked.get() > blocking::TRAINING.len() as u32 + 1
        };
        assert!(link_unless(&records, &cfg, &late).is_none());
        assert!(asked.get() > blocking::TRAINING.len() as u32 + 1, "the pairs were never asked about: {}", asked.get());
        let whole = link_unless(&records, &cfg, &|| false).map(|l| l.pairs.len());
        assert_eq!(whole, Some(link(&records, &cfg).pairs.len()));
    }
}

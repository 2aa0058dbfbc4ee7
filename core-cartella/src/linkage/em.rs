//! The Fellegi–Sunter model: for each field and agreement level, m (the probability of the
//! level among pairs of the same person) and u (among pairs of different people), and λ,
//! the share of matches among all pairs. u comes from random pairs of records
//! (nearly all of different people); m from expectation–maximisation in one session per
//! training key, each leaving out the fields its key is made of (the approach splink
//! takes) and each over the key's small blocks only (`Config::training_max_block`: in a
//! large block of namesakes the few matches are lost among pairs that share more than
//! random pairs do, such as the sex a name implies); λ, the prior share of matches among
//! all pairs, from the matches one session expects divided by the share of matches its key
//! catches. Patterns are counted once
//! each, so an iteration costs the number of distinct patterns, not of pairs.
use std::collections::HashMap;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    Prepared,
    compare::{Comparison, FIELDS, compare},
};

/// Counts of each comparison pattern.
#[derive(Debug, Default, Clone)]
pub struct Patterns {
    counts: HashMap<[Option<u8>; 6], u64>,
}

impl Patterns {
    pub fn add(&mut self, c: Comparison) {
        *self.counts.entry(c.levels).or_insert(0) += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub lambda: f64,
}

/// Kept away from 0 and 1 so no single field can make a weight infinite.
const FLOOR: f64 = 1e-6;

impl Model {
    /// u from up to `pairs` random pairs of distinct records (Laplace-smoothed); m and λ at
    /// their starting values.
    pub fn u_from_random_pairs(records: &[Prepared], pairs: usize, seed: u64) -> Self {
        let mut counts: Vec<Vec<f64>> = FIELDS.iter().map(|f| vec![1.0; f.levels()]).collect();
        if records.len() >= 2 {
            let mut rng = StdRng::seed_from_u64(seed);
            let n = records.len();
            let draws = pairs.min(n.saturating_mul(n - 1) / 2);
            for _ in 0..draws {
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                for (k, l) in compare(&records[a], &records[b]).levels.iter().enumerate() {
                    if let Some(l) = l {
                        counts[k][*l as usize] += 1.0;
                    }
                }
            }
        }
        let u = counts.into_iter().map(normalised).collect();
        let m = FIELDS
            .iter()
            .map(|f| {
                // Most matches agree fully; the rest spread over the weaker levels, halving.
                let mut v: Vec<f64> = (0..f.levels()).map(|l| if l == 0 { 0.9 } else { 0.1 / 2f64.powi(l as i32) }).collect();
                normalise(&mut v);
                v
            })
            .collect();
        Self { m, u, lambda: 0.3 }
    }

    /// One training session: expectation–maximisation of m and of the session's share of
    /// matches over the patterns of the pairs one blocking key brought together, with u
    /// fixed and the fields that key is made of left out (within its blocks they agree by
    /// construction, which says nothing of matches). Returns the m of the fields trained
    /// (None for those left out) and the session's share of matches.
    pub fn train_session(&self, patterns: &Patterns, left_out: &[usize], iterations: usize) -> (Vec<Option<Vec<f64>>>, f64) {
        let mut m = self.m.clone();
        let mut lambda: f64 = 0.1;
        let total = patterns.total() as f64;
        if total > 0.0 {
            for _ in 0..iterations {
                let mut acc: Vec<Vec<f64>> = m.iter().map(|v| vec![0.0; v.len()]).collect();
                let mut matches = 0.0;
                for (levels, &count) in &patterns.counts {
                    let mut w = (lambda / (1.0 - lambda)).log2();
                    for (k, l) in levels.iter().enumerate() {
                        if let Some(l) = l
                            && !left_out.contains(&k)
                        {
                            w += (m[k][*l as usize] / self.u[k][*l as usize]).log2();
                        }
                    }
                    let wm = probability(w) * count as f64;
                    matches += wm;
                    for (k, l) in levels.iter().enumerate() {
                        if let Some(l) = l {
                            acc[k][*l as usize] += wm;
                        }
                    }
                }
                for (k, a) in acc.into_iter().enumerate() {
                    if !left_out.contains(&k) && a.iter().sum::<f64>() > 0.0 {
                        m[k] = normalised(a);
                    }
                }
                lambda = (matches / total).clamp(FLOOR, 1.0 - FLOOR);
            }
        }
        let trained = m.into_iter().enumerate().map(|(k, v)| (!left_out.contains(&k)).then_some(v)).collect();
        (trained, lambda)
    }

    /// Sets each field's m to the mean of the sessions that trained it.
    pub fn combine(&mut self, sessions: &[Vec<Option<Vec<f64>>>]) {
        for k in 0..self.m.len() {
            let trained: Vec<&Vec<f64>> = sessions.iter().filter_map(|s| s[k].as_ref()).collect();
            if !trained.is_empty() {
                let mean: Vec<f64> =
                    (0..self.m[k].len()).map(|l| trained.iter().map(|v| v[l]).sum::<f64>() / trained.len() as f64).collect();
                self.m[k] = normalised(mean);
            }
        }
    }

    /// log2 of the posterior odds of a match: the prior odds times each field's m/u.
    pub fn match_weight(&self, c: &Comparison) -> f64 {
        self.weight_of(&c.levels)
    }

    fn weight_of(&self, levels: &[Option<u8>; 6]) -> f64 {
        let prior = (self.lambda / (1.0 - self.lambda)).log2();
        prior + levels.iter().enumerate().filter_map(|(k, l)| l.map(|l| self.field_weight(k, l))).sum::<f64>()
    }

    /// log2(m/u) of field `k` at level `l`.
    pub fn field_weight(&self, k: usize, l: u8) -> f64 {
        (self.m[k][l as usize] / self.u[k][l as usize]).log2()
    }
}

/// Match probability of a match weight.
pub fn probability(weight: f64) -> f64 {
    let odds = weight.exp2();
    if odds.is_infinite() { 1.0 } else { odds / (1.0 + odds) }
}

fn normalise(v: &mut [f64]) {
    let s: f64 = v.iter().sum();
    for x in v.iter_mut() {
        *x = (*x / s).max(FLOOR);
    }
}

fn normalised(mut v: Vec<f64>) -> Vec<f64> {
    normalise(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns drawn from a known model: EM must find the m it was drawn from and λ.
    #[test]
    fn em_recovers_a_known_model() {
        let mut rng = StdRng::seed_from_u64(1);
        let true_m = [[0.85, 0.1, 0.05, 0.0], [0.8, 0.15, 0.05, 0.0]];
        let true_u = [[0.01, 0.02, 0.07, 0.9], [0.02, 0.03, 0.05, 0.9]];
        let draw = |rng: &mut StdRng, p: &[f64; 4]| {
            let mut x: f64 = rng.random();
            for (i, &pi) in p.iter().enumerate() {
                if x < pi {
                    return i as u8;
                }
                x -= pi;
            }
            3
        };
        let mut patterns = Patterns::default();
        for i in 0..200_000 {
            let is_match = i % 5 == 0;
            let (a, b) = if is_match { (&true_m[0], &true_m[1]) } else { (&true_u[0], &true_u[1]) };
            let levels = [Some(draw(&mut rng, a)), Some(draw(&mut rng, b)), None, None, None, None];
            patterns.add(Comparison { levels, swapped_names: false });
        }
        let mut model = Model {
            m: FIELDS.iter().map(|f| vec![1.0 / f.levels() as f64; f.levels()]).collect(),
            u: FIELDS.iter().map(|f| vec![1.0 / f.levels() as f64; f.levels()]).collect(),
            lambda: 0.5,
        };
        model.m[0] = vec![0.7, 0.1, 0.1, 0.1];
        model.m[1] = vec![0.7, 0.1, 0.1, 0.1];
        model.u[0] = true_u[0].to_vec();
        model.u[1] = true_u[1].to_vec();
        let (trained, lambda) = model.train_session(&patterns, &[], 50);
        assert!((lambda - 0.2).abs() < 0.01, "lambda {lambda}");
        model.combine(&[trained]);
        model.lambda = lambda;
        for (k, want) in true_m.iter().enumerate() {
            for (l, &w) in want.iter().enumerate().take(3) {
                assert!((model.m[k][l] - w).abs() < 0.02, "m[{k}][{l}] = {} want {w}", model.m[k][l]);
            }
        }
        // A left-out field keeps its starting m.
        let (left, _) = model.train_session(&patterns, &[1], 50);
        assert!(left[1].is_none() && left[0].is_some());
        // Full agreement weighs for a match, full disagreement against.
        let agree = Comparison { levels: [Some(0), Some(0), None, None, None, None], swapped_names: false };
        let disagree = Comparison { levels: [Some(3), Some(3), None, None, None, None], swapped_names: false };
        assert!(probability(model.match_weight(&agree)) > 0.99);
        assert!(probability(model.match_weight(&disagree)) < 0.01);
    }

    #[test]
    fn probability_of_weights() {
        assert_eq!(probability(0.0), 0.5);
        assert!((probability(10.0) - 1024.0 / 1025.0).abs() < 1e-12);
        assert_eq!(probability(5000.0), 1.0);
        assert!(probability(-5000.0) < 1e-300);
    }
}

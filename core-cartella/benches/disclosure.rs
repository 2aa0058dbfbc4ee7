//! Benchmark of the disclosure control on one year's realistic table family: 15 Municipi ×
//! 12 areas at the year, its 4 quarters and 12 months, with the margins and the total
//! (about 3,500 cells), from a fixed-seed generator with a skewed distribution (a few big
//! areas, many small ones, Municipi of different sizes), so that many cells are under the
//! threshold. Prints the cells, the primary suppressed ones, the published share and the
//! time of one protection within the request's budget (`sopprimi_entro`; BENCH_BUDGET_MS,
//! default 2000; BENCH_CALLS calls, default 5), and how many were refused past it.
//!
//! Run: `cargo bench -p core-cartella --bench disclosure`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use core_cartella::stats::disclosure::{self, Cella};

/// The hub's default threshold.
const SOGLIA: i64 = 3;

/// xorshift64*: a fixed sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson count of mean `lambda` (Knuth's method; `lambda` stays small here).
    fn poisson(&mut self, lambda: f64) -> i64 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit {
            k += 1;
            p *= self.unit();
        }
        k
    }
}

/// People per (Municipio, area, month), then summed into quarters, the year and the margins;
/// cells nobody is in are not listed, as in the projection.
fn family(seed: u64) -> Vec<Cella> {
    let mut rng = Rng(seed);
    let municipi: Vec<f64> = (0..15).map(|_| 0.4 + 1.2 * rng.unit()).collect();
    // Areas from big to small: 80, 26, 14, 8, 6, … 1.5 people a month in an average Municipio.
    let aree: Vec<f64> = (0..12).map(|a| 80.0 / f64::from(a + 1).powf(1.6)).collect();
    let mut mesi = vec![[[0i64; 12]; 12]; 15];
    for (m, fm) in municipi.iter().enumerate() {
        for (a, fa) in aree.iter().enumerate() {
            for cell in mesi[m][a].iter_mut() {
                *cell = rng.poisson(fm * fa);
            }
        }
    }
    let mut periodi: Vec<(String, Vec<usize>)> = vec![("2026".into(), (0..12).collect())];
    for q in 0..4 {
        periodi.push((format!("2026-T{}", q + 1), (3 * q..3 * q + 3).collect()));
    }
    for month in 0..12 {
        periodi.push((format!("2026-{:02}", month + 1), vec![month]));
    }
    let mut out = Vec::new();
    let mut push = |periodo: &str, riga: String, colonna: String, persone: i64| {
        if persone > 0 {
            // Prestazioni: a person has one to a few in a period.
            let valore = persone + persone / 3;
            out.push(Cella { periodo: periodo.into(), riga, colonna, valore, persone, somma: valore * 400 });
        }
    };
    let star = || "*".to_string();
    for (p, months) in &periodi {
        let sum = |ms: &[usize], ar: &[usize]| -> i64 {
            ms.iter()
                .flat_map(|&m| ar.iter().flat_map(move |&a| months.iter().map(move |&t| (m, a, t))))
                .map(|(m, a, t)| mesi[m][a][t])
                .sum()
        };
        let all_m: Vec<usize> = (0..15).collect();
        let all_a: Vec<usize> = (0..12).collect();
        push(p, star(), star(), sum(&all_m, &all_a));
        for m in 0..15 {
            push(p, format!("M{:02}", m + 1), star(), sum(&[m], &all_a));
        }
        for a in 0..12 {
            push(p, star(), format!("A{:02}", a + 1), sum(&all_m, &[a]));
        }
        for m in 0..15 {
            for a in 0..12 {
                push(p, format!("M{:02}", m + 1), format!("A{:02}", a + 1), sum(&[m], &[a]));
            }
        }
    }
    out.sort_by(|x, y| (&x.periodo, &x.riga, &x.colonna).cmp(&(&y.periodo, &y.riga, &y.colonna)));
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let budget_ms: u64 = std::env::var("BENCH_BUDGET_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let budget = Duration::from_millis(budget_ms);
    let celle = family(0x5EED_D15C);
    let primarie = celle.iter().filter(|c| c.persone < SOGLIA).count();
    let mut times = Vec::with_capacity(calls);
    let mut soppresse = None;
    let mut refused = 0;
    for _ in 0..calls {
        let t = Instant::now();
        match std::hint::black_box(disclosure::sopprimi_entro(std::hint::black_box(&celle), SOGLIA, budget)) {
            Ok(s) => soppresse = Some(s),
            Err(_) => refused += 1,
        }
        times.push(t.elapsed());
    }
    times.sort();
    let n = celle.len();
    let pct = |k: usize| 100.0 * k as f64 / n as f64;
    println!("disclosure of one year's family (15 Municipi × 12 areas × 17 periods, margins), threshold {SOGLIA}, budget {budget_ms} ms");
    println!("  cells                        {n}");
    println!("  primary suppressed           {primarie} ({:.1}%)", pct(primarie));
    println!("  at or above the threshold    {} ({:.1}%)", n - primarie, pct(n - primarie));
    match soppresse {
        Some(s) => {
            let pubblicate = s.iter().filter(|s| !**s).count();
            println!("  published                    {pubblicate} ({:.1}%)", pct(pubblicate));
        }
        None => println!("  published                    none: refused past the budget"),
    }
    println!(
        "  per call                     p50 {:.2} ms  max {:.2} ms  ({calls} calls, {refused} refused past the budget)",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

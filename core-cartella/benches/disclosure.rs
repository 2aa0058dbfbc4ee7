//! Benchmark of the disclosure control on one year's realistic table family: 15 Municipi ×
//! 12 areas at the year, its 4 quarters and 12 months, with the margins and the total
//! (about 3,500 cells), from a fixed-seed generator with a skewed distribution (a few big
//! areas, many small ones, Municipi of different sizes), so that many cells are under the
//! threshold (`testkit::famiglie::sparsa`). Prints the cells, the primary suppressed ones,
//! the published share and the time of one protection within the request's budget
//! (`sopprimi_entro`; BENCH_BUDGET_MS, default 2000; BENCH_CALLS calls, default 5), how many
//! were refused past it, and a check of the published pattern from scratch: exact
//! elimination and the bounds check over the whole family, with nothing carried over from
//! the protection's rounds (both must find no cell).
//!
//! Run: `cargo bench -p core-cartella --bench disclosure`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use core_cartella::{stats::disclosure, testkit::famiglie};

/// The hub's default threshold.
const SOGLIA: i64 = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let budget_ms: u64 = std::env::var("BENCH_BUDGET_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let budget = Duration::from_millis(budget_ms);
    let celle = famiglie::sparsa(0x5EED_D15C, 15, 12, 1.0);
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
            let rel = disclosure::relazioni(&celle);
            let rel: Vec<&disclosure::Relazione> = rel.iter().collect();
            let valori: Vec<i64> = celle.iter().map(|c| c.persone).collect();
            let t = Instant::now();
            let derivate = disclosure::derivabili(&rel, &s).len();
            let fissate = disclosure::fissate(&rel, &s, &valori).len();
            println!(
                "  check from scratch           {derivate} derivable, {fissate} pinned by the bounds ({:.0} ms)",
                t.elapsed().as_secs_f64() * 1e3
            );
            assert_eq!((derivate, fissate), (0, 0), "the published pattern leaves cells a reader can work out");
        }
        None => println!("  published                    none: refused past the budget"),
    }
    println!(
        "  per call                     p50 {:.2} ms  max {:.2} ms  ({calls} calls, {refused} refused past the budget)",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

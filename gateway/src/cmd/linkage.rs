//! `sigess linkage`: links the persons of several offices' exports among themselves without
//! storing anything, to see what an import would link and to choose thresholds. Writes the
//! cluster of every record (office folder, local id, cluster) and prints counts and the
//! estimated model; no personal data is printed.
use std::{io::Write, path::PathBuf, time::Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use core_cartella::{
    import::{Source, read_export},
    linkage::{self, Config, FIELDS},
};

#[derive(Args, Debug)]
pub struct LinkageArgs {
    /// Folder holding one sub-folder per office export (each with persone.csv …).
    dir: PathBuf,
    /// Where to write `ufficio_origine;id_persona;cluster` for every record read.
    #[arg(long)]
    clusters_out: Option<PathBuf>,
    #[command(flatten)]
    settings: LinkageSettingsArgs,
}

/// Record-linkage settings (`sigess import`, `sigess linkage`; for `sigess up` and
/// `sigess core`, those of import jobs whose request gives none); the defaults are
/// `linkage::Config`'s.
#[derive(Args, Debug, Clone)]
pub struct LinkageSettingsArgs {
    /// A pair whose match probability is at least this is the same person (0–1).
    #[arg(long, env = "SIGESS_LINK_THRESHOLD", default_value_t = Config::default().link_threshold)]
    pub link_threshold: f64,
    /// A pair at least this (and below --link-threshold) goes to the review queue (0 to
    /// --link-threshold).
    #[arg(long, env = "SIGESS_REVIEW_THRESHOLD", default_value_t = Config::default().review_threshold)]
    pub review_threshold: f64,
    /// Records sharing a blocking key are compared only when there are at most this many of
    /// them; the other keys still bring a pair together (2–100000).
    #[arg(long, env = "SIGESS_LINK_MAX_BLOCK", default_value_t = Config::default().max_block)]
    pub max_block: usize,
    /// The same limit for the blocks that train the m probabilities by EM (2 to
    /// --max-block): large blocks of namesakes hold too few matches to train on.
    #[arg(long, env = "SIGESS_LINK_TRAINING_MAX_BLOCK", default_value_t = Config::default().training_max_block)]
    pub training_max_block: usize,
    /// Random pairs drawn to estimate the u probabilities (1000–100000000).
    #[arg(long, env = "SIGESS_LINK_U_SAMPLE_PAIRS", default_value_t = Config::default().u_sample_pairs)]
    pub u_sample_pairs: usize,
    /// Rounds of expectation–maximisation per training session (1–1000).
    #[arg(long, env = "SIGESS_LINK_EM_ITERATIONS", default_value_t = Config::default().em_iterations)]
    pub em_iterations: usize,
}

impl LinkageSettingsArgs {
    /// The settings, or an error naming every flag with a bad value.
    pub fn config(&self) -> Result<Config> {
        let c = Config {
            link_threshold: self.link_threshold,
            review_threshold: self.review_threshold,
            max_block: self.max_block,
            training_max_block: self.training_max_block,
            u_sample_pairs: self.u_sample_pairs,
            em_iterations: self.em_iterations,
            ..Config::default()
        };
        let flag = |s: &str| format!("--{}", s.replace('_', "-"));
        let bad: Vec<String> = c
            .check()
            .into_iter()
            .map(|(name, why)| {
                let why = ["link_threshold", "max_block"].iter().fold(why, |w, n| w.replace(n, &flag(n)));
                format!("{} {why}", flag(name))
            })
            .collect();
        if !bad.is_empty() {
            bail!("bad linkage settings: {}", bad.join("; "));
        }
        Ok(c)
    }
}

pub fn run(a: LinkageArgs) -> Result<()> {
    let cfg = a.settings.config()?;
    let started = Instant::now();
    let mut offices: Vec<PathBuf> = std::fs::read_dir(&a.dir)
        .with_context(|| format!("reading {}", a.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("persone.csv").is_file())
        .collect();
    offices.sort();
    if offices.is_empty() {
        bail!("no office folder with a persone.csv under {}", a.dir.display());
    }
    let today = time::OffsetDateTime::now_utc().date();
    let (mut origin, mut records, mut problems) = (Vec::new(), Vec::new(), 0usize);
    for dir in &offices {
        let office = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let x = read_export(&Source::Dir(dir.clone()), today);
        problems += x.problems.len();
        for p in x.persone {
            records.push(linkage::prepare(&p.record));
            origin.push((office.clone(), p.id));
        }
    }
    let read = started.elapsed();
    let result = linkage::link(&records, &cfg);
    let linked = started.elapsed() - read;
    let s = &result.stats;
    let persons = {
        let mut c = result.clusters.clone();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    println!("offices: {}  records: {}  rows with problems: {problems}", offices.len(), s.records);
    println!("trusted codici fiscali: {}  candidate pairs: {}  blocks skipped: {}", s.trusted_cf, s.candidate_pairs, s.skipped_blocks);
    println!("linked pairs: {}  review pairs: {}  persons: {persons}", s.linked, s.review);
    println!("read {:.2}s  linkage {:.2}s", read.as_secs_f64(), linked.as_secs_f64());
    println!("model: lambda {:.4}", result.model.lambda);
    for (k, f) in FIELDS.iter().enumerate() {
        let weights: Vec<String> = (0..f.levels()).map(|l| format!("{:+.1}", result.model.field_weight(k, l as u8))).collect();
        println!("  {:<15} log2(m/u) by level: {}", f.name(), weights.join(" "));
    }
    if let Some(path) = a.clusters_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?);
        writeln!(w, "ufficio_origine;id_persona;cluster")?;
        for ((office, id), c) in origin.iter().zip(&result.clusters) {
            writeln!(w, "{office};{id};{c}")?;
        }
        w.flush()?;
    }
    Ok(())
}

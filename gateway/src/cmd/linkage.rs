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
    thresholds: ThresholdArgs,
}

/// Match-probability thresholds of record linkage.
#[derive(Args, Debug, Clone)]
pub struct ThresholdArgs {
    /// Pairs whose match probability is at least this are the same person.
    #[arg(long, env = "SIGESS_LINK_THRESHOLD", default_value_t = 0.9)]
    pub link_threshold: f64,
    /// Pairs at least this (and below --link-threshold) go to the review queue.
    #[arg(long, env = "SIGESS_REVIEW_THRESHOLD", default_value_t = 0.5)]
    pub review_threshold: f64,
}

impl ThresholdArgs {
    pub fn config(&self) -> Result<Config> {
        let (l, r) = (self.link_threshold, self.review_threshold);
        if !(0.0..=1.0).contains(&l) || !(0.0..=1.0).contains(&r) || r > l {
            bail!("thresholds must lie in 0..=1 with --review-threshold <= --link-threshold");
        }
        Ok(Config { link_threshold: l, review_threshold: r, ..Config::default() })
    }
}

pub fn run(a: LinkageArgs) -> Result<()> {
    let cfg = a.thresholds.config()?;
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

//! `sigess import`: one office's CSV export into core's store (a core-side job: it opens
//! the store). Persons are linked against the hub and among the rows first; each person is
//! then written with their rows of every file and their household in one transaction.
//! `--dry-run` writes nothing and lists every problem by file, line and column. Re-running
//! the same export imports only what is missing. Ctrl-C (or SIGTERM) stops it between two
//! units; the linkage settings are flags (`LinkageSettingsArgs`). Also the import root flag of `up` and
//! `core`, from which `ImportService` jobs may read.
use std::{io::IsTerminal, path::PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    import::{
        Source,
        jobs::ImportConfig,
        load::{ImportOptions, StopSignal, import, import_until},
    },
    linkage::Config,
    server::CoreOptions,
    store::Store,
};

use super::{StoreArgs, linkage::LinkageSettingsArgs};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The office's export folder (persone.csv, nuclei.csv, cartelle.csv, prestazioni.csv).
    dir: PathBuf,
    /// Ente the records belong to (Belfiore code of the Comune).
    #[arg(long, default_value = "H501")]
    ente: String,
    /// Ufficio the records belong to (e.g. M01).
    #[arg(long)]
    ufficio: String,
    /// Name of the source office, kept with every row's local id so re-runs find what is
    /// already in; defaults to the folder's name.
    #[arg(long)]
    origine: Option<String>,
    /// Check everything and say what would be imported, writing nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    linkage: LinkageSettingsArgs,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(a: ImportArgs) -> Result<()> {
    let linkage = a.linkage.config()?;
    let origine = match a.origine {
        Some(o) => o,
        None => a
            .dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .context("the folder has no name: give --origine")?,
    };
    let store = a.store.open().await?;
    let caller = importer(&a.ente, &a.ufficio, &origine);
    let bar = if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} persone [{elapsed_precise}, {per_sec}, eta {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let opts = ImportOptions { origine, dry_run: a.dry_run, linkage };
    // Ctrl-C or SIGTERM: the person in progress is finished or rolled back, then it stops.
    let stop = StopSignal::new();
    let on_signal = tokio::spawn({
        let stop = stop.clone();
        async move {
            super::shutdown_signal().await;
            stop.stop();
        }
    });
    let mut units = (0, 0);
    let s = import_until(
        &store,
        &caller,
        &Source::Dir(a.dir.clone()),
        &opts,
        &mut |done, total| {
            units = (done, total);
            bar.set_length(total);
            bar.set_position(done);
        },
        &stop,
    )
    .await
    .context("import")?;
    on_signal.abort();
    bar.finish_and_clear();
    store.close().await;
    for p in &s.problems {
        println!("{p}");
    }
    let verb = if a.dry_run { "would be" } else { "were" };
    println!("problems: {} (rows with a problem {verb} left out)", s.problems.len());
    println!(
        "persone: {} rows, {} already imported, {} new personas {verb} created, {} rows {verb} joined to personas the hub holds, {} to another row of this export",
        s.persone_rows, s.persone_gia_importate, s.persone_nuove, s.persone_collegate, s.persone_unite
    );
    println!("pairs for review: {}  codici fiscali not trusted (not stored): {}", s.coppie_da_rivedere, s.cf_non_affidabili);
    println!("cartelle: {} new, {} already imported", s.cartelle_nuove, s.cartelle_gia_importate);
    println!("prestazioni: {} new, {} already imported", s.prestazioni_nuove, s.prestazioni_gia_importate);
    println!("nuclei: {} new, {} already imported", s.nuclei_nuovi, s.nuclei_gia_importati);
    if s.stopped {
        bail!(
            "interrupted after {} of {} units (whole persons and households only): run the same command again to import the rest",
            units.0,
            units.1
        );
    }
    Ok(())
}

fn importer(ente: &str, ufficio: &str, origine: &str) -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "sigess-import".into(),
        ente: ente.into(),
        ufficio: Some(ufficio.into()),
        roles: vec![Role::Operatore],
        purpose: "importazione dalle banche dati degli uffici".into(),
        request_id: format!("import-{origine}"),
    }
}

/// Imports every office folder under `dir` (sub-folders named `Mnn-…`, ufficio `Mnn`), in
/// name order, logging counts per office; then links the ente's whole anagrafica once and
/// queues the pairs a person should decide.
pub async fn import_offices(store: &Store, ente: &str, dir: &std::path::Path) -> Result<()> {
    let mut offices: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("persone.csv").is_file())
        .collect();
    offices.sort();
    for office in offices {
        let origine = office.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ufficio = origine.split('-').next().unwrap_or_default().to_string();
        let opts = ImportOptions { origine: origine.clone(), dry_run: false, linkage: Config::default() };
        let s = import(store, &importer(ente, &ufficio, &origine), &Source::Dir(office.clone()), &opts, &mut |_, _| {}).await?;
        tracing::info!(
            origine,
            problems = s.problems.len(),
            nuove = s.persone_nuove,
            collegate = s.persone_collegate,
            unite = s.persone_unite,
            da_rivedere = s.coppie_da_rivedere,
            cartelle = s.cartelle_nuove,
            prestazioni = s.prestazioni_nuove,
            nuclei = s.nuclei_nuovi,
            "office export imported"
        );
    }
    let queued = core_cartella::import::revisione::queue_undecided_pairs(store, ente, &Config::default())
        .await
        .context("linking the ente's anagrafica for the review queue")?;
    tracing::info!(coppie = queued, "pairs of personas queued for review");
    Ok(())
}

/// Where `ImportService` jobs may read office exports from, and the linkage settings a job
/// uses where its request gives none (`up`, `core`).
#[derive(Args, Debug, Clone)]
pub struct ImportRootArgs {
    /// Folder whose sub-folders import jobs (gRPC ImportService, REST /api/v1/importazioni)
    /// may read exports from, named by a relative path; nothing outside it is read. Without
    /// it jobs import only uploaded files.
    #[arg(long, env = "SIGESS_IMPORT_ROOT")]
    pub import_root: Option<PathBuf>,
    #[command(flatten)]
    pub linkage: super::linkage::LinkageSettingsArgs,
}

impl ImportRootArgs {
    /// Core's options with this root and these linkage defaults; a root that is not a
    /// readable folder, or a bad setting, stops the start.
    pub fn core_options(&self) -> Result<CoreOptions> {
        let linkage = self.linkage.config()?;
        if let Some(root) = &self.import_root {
            anyhow::ensure!(root.is_dir(), "--import-root {} is not a folder", root.display());
        }
        Ok(CoreOptions { import: ImportConfig { root: self.import_root.clone(), linkage, ..ImportConfig::default() } })
    }
}

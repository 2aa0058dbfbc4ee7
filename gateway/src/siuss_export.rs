//! `sigess siuss export`: the portal batch files for INPS's web upload, many beneficiaries
//! per file, streamed from the store page by page so memory does not grow with the ente.
//!
//! Selection: the ente's prestazioni in force in the period — occasional ones paid in
//! [from, to], periodic ones started by `to` and not ended before `from` — except revoked
//! ones. Consecutive prestazioni of one person form one Beneficiario (PS) or one SINBA
//! record. A prestazione the mapping blocks is left out and counted under each rule it
//! breaks; nothing personal is printed.
//!
//! File names (the spec has none): the flow id, `{ente}.{PS|SINBA}.{AAAAMMGG}.{NNNNNNN}.xml`
//! (`FlowId::nome_file`), with the day of the export and the next number of the ente's daily
//! progressivo shared with cooperation flows, so a file name is never reused and esiti can
//! be matched to it. Files are written as `.part` and renamed when complete.
use std::{
    collections::BTreeMap,
    fs::File,
    io::BufWriter,
    path::{Path, PathBuf},
};

use cartella_proto::v1 as pb;
use core_cartella::{
    error::CoreError,
    store::{Store, flussi::RigaExport},
};
use siuss::{
    FlowId, FlussoPsWriter, FlussoSinbaWriter, FlussoWriter, TipoFlusso, Validato, VoceFlusso, WriteError,
    from_core::{EnteSiuss, RecordValidato, Sorgente, map_validato},
    model::{Beneficiario, Data, Sinba, TipoOperazione},
};

use crate::siuss_config::system_caller;

/// Prestazioni read per page.
pub const PAGE: u32 = 1000;

/// Flags of `sigess siuss export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Codice ente (Belfiore code of the Comune) whose prestazioni are exported.
    #[arg(long, default_value = "H501")]
    pub ente: String,
    /// First day of the period, YYYY-MM-DD.
    #[arg(long)]
    pub from: String,
    /// Last day of the period, YYYY-MM-DD.
    #[arg(long)]
    pub to: String,
    /// Folder the files are written to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Denominazione of the ente in the file header.
    #[arg(long, env = "SIGESS_SIUSS_DENOMINAZIONE", default_value = "Roma Capitale")]
    pub denominazione: String,
    /// Belfiore code of the ente's seat (`Ente/@Indirizzo`).
    #[arg(long, env = "SIGESS_SIUSS_INDIRIZZO", default_value = "H501")]
    pub indirizzo: String,
    /// Codice fiscale of the operator responsible for the flows (`Ente/@CFOperatore`).
    #[arg(long, env = "SIGESS_SIUSS_CF_OPERATORE")]
    pub cf_operatore: String,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

impl ExportArgs {
    pub fn config(&self) -> Result<ExportConfig, ExportError> {
        let date = |flag: &str, v: &str| Data::parse(v).map_err(|_| ExportError::Ente(format!("--{flag}: expected YYYY-MM-DD")));
        let (from, to) = (date("from", &self.from)?, date("to", &self.to)?);
        if from > to {
            return Err(ExportError::Ente("--from is after --to".into()));
        }
        Ok(ExportConfig {
            ente: EnteSiuss {
                codice: self.ente.clone(),
                denominazione: self.denominazione.clone(),
                indirizzo: self.indirizzo.clone(),
                cf_operatore: self.cf_operatore.trim().to_ascii_uppercase(),
            },
            from,
            to,
            out: self.out.clone(),
            progress: !self.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        })
    }
}

#[derive(Debug, Clone)]
pub struct ExportConfig {
    pub ente: EnteSiuss,
    pub from: Data,
    pub to: Data,
    pub out: PathBuf,
    /// Draw a progress bar (only on a terminal).
    pub progress: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub files: Vec<PathBuf>,
    pub lette: u64,
    pub fuori_periodo: u64,
    pub revocate: u64,
    pub prestazioni_scritte: u64,
    pub beneficiari_ps: u64,
    pub record_sinba: u64,
    /// Prestazioni left out because the mapping blocked them.
    pub escluse: u64,
    /// Rule code → prestazioni breaking it.
    pub per_regola: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("store: {0}")]
    Store(#[from] CoreError),
    #[error("writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the ente configuration is not valid for SIUSS flows: {0}")]
    Ente(String),
    #[error("flow id: {0}")]
    FlowId(#[from] siuss::FlowIdError),
    #[error("flow: {0}")]
    Write(#[from] WriteError),
}

fn in_periodo(p: &pb::Prestazione, from: Data, to: Data) -> bool {
    let d = |s: &str| Data::parse(s).ok();
    if p.carattere == pb::CaratterePrestazione::Occasionale as i32 {
        d(&p.data_erogazione).is_some_and(|e| e >= from && e <= to)
    } else {
        match d(&p.data_inizio) {
            Some(i) => i <= to && d(&p.data_fine).is_none_or(|f| f >= from),
            // Without a start date it is still offered, so the summary says what is missing.
            None => true,
        }
    }
}

struct Out<W> {
    path: PathBuf,
    part: PathBuf,
    writer: W,
}

fn open_part(dir: &Path, id: &FlowId) -> Result<(PathBuf, PathBuf, BufWriter<File>), ExportError> {
    let path = dir.join(id.nome_file());
    let part = dir.join(format!("{}.part", id.nome_file()));
    let f = create_private(&part).map_err(|e| ExportError::Io { path: part.display().to_string(), source: e })?;
    Ok((path, part, BufWriter::with_capacity(1 << 20, f)))
}

/// Creates (or truncates) a file only its owner can read: the files hold codici fiscali and
/// prestazioni of every beneficiary, whatever the umask of whoever runs the export.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn finish_file(path: &Path, part: &Path, w: BufWriter<File>) -> Result<(), ExportError> {
    let f = w.into_inner().map_err(|e| ExportError::Io { path: part.display().to_string(), source: e.into_error() })?;
    f.sync_all().map_err(|e| ExportError::Io { path: part.display().to_string(), source: e })?;
    std::fs::rename(part, path).map_err(|e| ExportError::Io { path: path.display().to_string(), source: e })
}

/// Groups a person's mapped records until the person changes.
#[derive(Default)]
struct Gruppo {
    persona_id: String,
    /// The person's Beneficiario, its prestazioni merged; checked once, by the mapping. A
    /// second one only if a prestazione's mapping gave different personal data.
    ps: Vec<Validato<Beneficiario>>,
    /// The person's SINBA record with the codes of all its prestazioni (the first record's
    /// other fields kept); checked by the writer.
    sinba: Option<Sinba>,
}

struct Exporter<'a> {
    store: &'a Store,
    cfg: &'a ExportConfig,
    giorno: Data,
    /// The PS file, opened at the first beneficiary written.
    ps: Option<Out<FlussoPsWriter<BufWriter<File>>>>,
    /// The SINBA file, opened at the first record written.
    sinba: Option<Out<FlussoSinbaWriter<BufWriter<File>>>>,
    sum: ExportSummary,
}

impl Exporter<'_> {
    async fn flow_id(&self, tipo: TipoFlusso) -> Result<FlowId, ExportError> {
        let n = self.store.siuss_next_progressivo(&self.cfg.ente.codice, &self.giorno.compact()).await?;
        Ok(FlowId::new(self.cfg.ente.codice.clone(), tipo, self.giorno, u32::try_from(n).unwrap_or(u32::MAX))?)
    }

    fn count_rules(&mut self, v: &[siuss::Violation]) {
        let mut seen: Vec<&str> = v.iter().map(|x| x.rule.code()).collect();
        seen.sort_unstable();
        seen.dedup();
        for r in seen {
            *self.sum.per_regola.entry(r.to_string()).or_default() += 1;
        }
    }

    async fn flush(&mut self, g: Gruppo) -> Result<(), ExportError> {
        for b in g.ps {
            if self.ps.is_none() {
                self.ps = Some(self.open(TipoFlusso::Ps).await?);
            }
            if let Some(o) = self.ps.as_mut() {
                let r = o.writer.write_validato(&b);
                self.tally(r, b.prestazioni(), |s| s.beneficiari_ps += 1)?;
            }
        }
        if let Some(s) = g.sinba {
            if self.sinba.is_none() {
                self.sinba = Some(self.open(TipoFlusso::Sinba).await?);
            }
            if let Some(o) = self.sinba.as_mut() {
                let r = o.writer.write(&s);
                self.tally(r, s.prestazioni(), |s| s.record_sinba += 1)?;
            }
        }
        Ok(())
    }

    /// Opens the next file of a flow type, named by a fresh flow id.
    async fn open<V: VoceFlusso>(&self, tipo: TipoFlusso) -> Result<Out<FlussoWriter<BufWriter<File>, V>>, ExportError> {
        let id = self.flow_id(tipo).await?;
        let (path, part, w) = open_part(&self.cfg.out, &id)?;
        let writer = FlussoWriter::begin(w, &self.cfg.ente.identificazione(&id))?;
        Ok(Out { path, part, writer })
    }

    /// Counts a record written, or left out with the rules it breaks.
    fn tally(
        &mut self,
        r: Result<(), WriteError>,
        prestazioni: usize,
        scritto: impl FnOnce(&mut ExportSummary),
    ) -> Result<(), ExportError> {
        let n = prestazioni as u64;
        match r {
            Ok(()) => {
                scritto(&mut self.sum);
                self.sum.prestazioni_scritte += n;
                Ok(())
            }
            Err(WriteError::Invalid(v)) => {
                self.sum.escluse += n;
                self.count_rules(&v);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn add(&mut self, g: &mut Gruppo, f: &RigaExport) {
        self.sum.lette += 1;
        if f.prestazione.stato == pb::StatoPrestazione::Revocata as i32 {
            self.sum.revocate += 1;
            return;
        }
        if !in_periodo(&f.prestazione, self.cfg.from, self.cfg.to) {
            self.sum.fuori_periodo += 1;
            return;
        }
        let src = Sorgente {
            persona: &f.persona,
            cartella: &f.cartella,
            prestazione: &f.prestazione,
            sina: f.sina.as_deref(),
            sinba: f.sinba.as_deref(),
        };
        match map_validato(&src, TipoOperazione::Inserimento, self.cfg.to) {
            Err(v) => {
                self.sum.escluse += 1;
                self.count_rules(&v);
            }
            Ok(RecordValidato::Ps(b)) => match g.ps.last_mut() {
                Some(cur) => {
                    if let Err(altro) = cur.unisci(b) {
                        g.ps.push(altro);
                    }
                }
                None => g.ps.push(b),
            },
            Ok(RecordValidato::Sinba(s)) => match &mut g.sinba {
                Some(cur) => {
                    for c in s.into_inner().prestazioni {
                        if !cur.prestazioni.contains(&c) {
                            cur.prestazioni.push(c);
                        }
                    }
                }
                None => g.sinba = Some(s.into_inner()),
            },
        }
    }
}

/// Completes a file: closes the document, syncs and renames it; a file that got no record
/// is removed instead.
fn close<V: VoceFlusso>(out: Option<Out<FlussoWriter<BufWriter<File>, V>>>) -> Result<Option<PathBuf>, ExportError> {
    let Some(Out { path, part, writer }) = out else { return Ok(None) };
    match writer.finish() {
        Ok(w) => {
            finish_file(&path, &part, w)?;
            Ok(Some(path))
        }
        Err(WriteError::Vuoto) => {
            let _ = std::fs::remove_file(&part);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the export. Files with no record are not left behind.
pub async fn export(store: &Store, cfg: &ExportConfig) -> Result<ExportSummary, ExportError> {
    let problems = cfg.ente.check();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        return Err(ExportError::Ente(list.join("; ")));
    }
    core_cartella::private_fs::create_dir(&cfg.out).map_err(|e| ExportError::Io { path: cfg.out.display().to_string(), source: e })?;
    let caller = system_caller(&cfg.ente.codice);
    let giorno =
        siuss::adapter::today().ok_or_else(|| ExportError::Ente("the system clock is outside the years SIUSS dates can carry".into()))?;
    let bar = if cfg.progress {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} prestazioni lette, {msg} [{elapsed_precise}, {per_sec}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut ex = Exporter { store, cfg, giorno, ps: None, sinba: None, sum: ExportSummary::default() };
    // Pages are read (and their audit rows committed) ahead of this loop, which maps and
    // writes them: a bounded number of pages in flight, so memory stays bounded.
    let mut pagine = store.siuss_export_stream(&caller, PAGE)?;
    let mut g = Gruppo::default();
    while let Some(page) = pagine.next().await? {
        for f in &page {
            let pid = f.persona.meta.as_ref().map(|m| m.id.as_str()).unwrap_or_default();
            if pid != g.persona_id {
                let done = std::mem::replace(&mut g, Gruppo { persona_id: pid.to_string(), ..Default::default() });
                ex.flush(done).await?;
            }
            ex.add(&mut g, f);
        }
        bar.inc(page.len() as u64);
        bar.set_message(format!("{} scritte, {} escluse", ex.sum.prestazioni_scritte, ex.sum.escluse));
    }
    ex.flush(g).await?;
    bar.finish_and_clear();
    let mut sum = ex.sum;
    for file in [close(ex.ps)?, close(ex.sinba)?].into_iter().flatten() {
        sum.files.push(file);
    }
    Ok(sum)
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "prestazioni lette: {}", self.lette)?;
        writeln!(
            f,
            "  scritte: {} ({} beneficiari PS, {} record SINBA)",
            self.prestazioni_scritte, self.beneficiari_ps, self.record_sinba
        )?;
        writeln!(f, "  fuori periodo: {}", self.fuori_periodo)?;
        writeln!(f, "  revocate: {}", self.revocate)?;
        writeln!(f, "  escluse perché incomplete o non conformi: {}", self.escluse)?;
        for (regola, n) in &self.per_regola {
            writeln!(f, "    {regola}: {n}")?;
        }
        for p in &self.files {
            writeln!(f, "file: {}", p.display())?;
        }
        Ok(())
    }
}

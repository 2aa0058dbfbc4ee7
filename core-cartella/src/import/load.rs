//! Importing one office's export into the store. Persons are linked first, among the rows
//! and against the persons the ente already holds: a row that is the same person as one in
//! the hub gets that persona; rows that are the same person among themselves become one
//! persona. The rows are then written in units: a person with their rows of every file
//! (cartelle, prestazioni), joined with the people of their household (a nucleo names
//! several persons), each unit in one transaction together with the office's identifiers of
//! every row (`import_origine`). So an interrupted import re-run later imports exactly what
//! is missing, and never half a person or half a household.
//! A row the hub refuses is left out with the rows that depend on it (a cartella's
//! prestazioni); a household with a row in error is left out whole, so that a re-run after
//! the fix writes it complete.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use cartella_proto::v1::{Cartella, MembroNucleo, Nucleo, Persona, Prestazione, Sesso as PbSesso, StatoCartella};
use prost::Message;
use sqlx::Row;

use super::{
    CartellaRow, NucleoRow, PersonaRow, PrestazioneRow, Problem, Source, read_export,
    rows::{CARTELLE, Export, NUCLEI, PERSONE, PRESTAZIONI},
};
use crate::{
    auth::Caller,
    domain::codes::format_date,
    error::{CoreError, Result},
    linkage::{self, Config, Outcome, Record, Sesso, cf::Judgement},
    record::Record as _,
    store::{Store, now, sql::Q},
};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The office the export comes from: with its local ids it identifies rows across runs.
    pub origine: String,
    pub dry_run: bool,
    pub linkage: Config,
}

/// Asks a running import to stop. The import looks at it between units (and between the
/// persons of a unit, and between its phases): a unit in progress is rolled back whole, the
/// units written stay, and the summary says it stopped. A re-run imports the rest.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What an import did (or, in a dry run, would do). Counts only: no personal data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The import was asked to stop ([`StopSignal`]) and ended before its last unit: the
    /// counts are those of the units written.
    pub stopped: bool,
    pub problems: Vec<Problem>,
    pub persone_rows: usize,
    pub persone_gia_importate: usize,
    /// New personas created.
    pub persone_nuove: usize,
    /// Rows found to be a persona the hub already held.
    pub persone_collegate: usize,
    /// Rows found to be the same person as another row of this export.
    pub persone_unite: usize,
    /// Pairs left for a person to decide with a side from this origine (this run's rows or
    /// personas an earlier run of it imported), whether queued now or already queued.
    pub coppie_da_rivedere: usize,
    /// Codici fiscali not trusted (not stored; the persona is kept without).
    pub cf_non_affidabili: usize,
    pub cartelle_nuove: usize,
    pub cartelle_gia_importate: usize,
    pub nuclei_nuovi: usize,
    /// Households (not rows) imported on an earlier run.
    pub nuclei_gia_importati: usize,
    pub prestazioni_nuove: usize,
    pub prestazioni_gia_importate: usize,
}

/// Field (in the hub's validation) → export column, for problems.
fn column_of(field: &str) -> &'static str {
    match field.rsplit('.').next().unwrap_or_default() {
        "cognome" => "cognome",
        "nome" => "nome",
        "sesso" => "sesso",
        "data_nascita" => "data_nascita",
        "luogo_nascita" => "codice_luogo_nascita",
        "cittadinanza" => "cittadinanza",
        "codice_fiscale" => "codice_fiscale",
        "data_apertura" => "data_apertura",
        "data_chiusura" => "data_chiusura",
        "motivo_chiusura" => "motivo_chiusura",
        "area_utenza" => "area_utenza",
        "stato" => "stato",
        "persona_id" | "persona_riferimento_id" => "id_persona",
        "cartella_id" => "id_cartella",
        "parentela" => "relazione",
        "codice_prestazione" => "codice_prestazione",
        "denominazione" => "denominazione",
        "carattere" => "carattere",
        "prova_mezzi" => "prova_mezzi",
        "protocollo_domanda" => "protocollo_domanda",
        "data_inizio" => "data_inizio",
        "data_fine" => "data_fine",
        "data_erogazione" => "data_erogazione",
        "importo" | "importo_mensile" => "importo",
        "periodo_erogazione" => "periodo_erogazione",
        _ => "",
    }
}

fn persona_of(row: &PersonaRow, trusted_cf: bool) -> Persona {
    let r = &row.record;
    Persona {
        codice_fiscale: if trusted_cf { r.codice_fiscale.trim().to_ascii_uppercase() } else { String::new() },
        cognome: r.cognome.clone(),
        nome: r.nome.clone(),
        sesso: match r.sesso {
            Some(Sesso::M) => PbSesso::Maschio as i32,
            Some(Sesso::F) => PbSesso::Femmina as i32,
            None => 0,
        },
        data_nascita: r.nascita.map(format_date).unwrap_or_default(),
        luogo_nascita: row.codice_luogo.clone(),
        cittadinanza: row.cittadinanza.clone(),
        ..Default::default()
    }
}

fn cartella_of(c: &CartellaRow, persona_id: &str) -> Cartella {
    Cartella {
        persona_id: persona_id.to_string(),
        area_utenza: c.area_utenza,
        stato: if c.aperta { StatoCartella::Aperta } else { StatoCartella::Chiusa } as i32,
        data_apertura: format_date(c.apertura),
        data_chiusura: c.chiusura.map(format_date).unwrap_or_default(),
        motivo_chiusura: c.motivo_chiusura.clone(),
        ..Default::default()
    }
}

fn prestazione_of(p: &PrestazioneRow, cartella_id: &str) -> Prestazione {
    let periodica = p.carattere == cartella_proto::v1::CaratterePrestazione::Periodica as i32;
    let date = |d: Option<time::Date>| d.map(format_date).unwrap_or_default();
    Prestazione {
        cartella_id: cartella_id.to_string(),
        codice_prestazione: p.codice.clone(),
        denominazione: p.denominazione.clone(),
        carattere: p.carattere,
        prova_mezzi: p.prova_mezzi,
        protocollo_domanda: p.protocollo.clone(),
        data_inizio: date(p.inizio),
        data_fine: date(p.fine),
        data_erogazione: date(p.erogazione),
        importo_mensile: periodica.then_some(p.importo_centesimi),
        importo: (!periodica).then_some(p.importo_centesimi),
        periodo_erogazione: p.periodo_erogazione,
        stato: p.stato,
        ..Default::default()
    }
}

fn problem_of(file: &str, line: u64, field: &str, description: &str) -> Problem {
    // The hub's own date format means nothing to someone fixing a CSV file in dd/mm/yyyy.
    Problem { file: file.into(), line, column: column_of(field).into(), reason: description.replace(" (YYYY-MM-DD)", "") }
}

fn row_problem(file: &str, line: u64, column: &str, reason: &str) -> Problem {
    Problem { file: file.into(), line, column: column.into(), reason: reason.into() }
}

/// Ids the office's rows of `kind` already have in the hub.
async fn imported(store: &Store, ente: &str, origine: &str, kind: &str) -> Result<HashMap<String, String>> {
    let rows = Q::new("SELECT id_locale, record_id FROM import_origine WHERE ente = ")
        .bind_text(ente)
        .push(" AND origine = ")
        .bind_text(origine)
        .push(" AND kind = ")
        .bind_text(kind)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| Ok((r.try_get("id_locale")?, r.try_get("record_id")?))).collect()
}

/// The ente's personas as linkage records (place as Belfiore code, as the import's rows).
pub(super) async fn hub_persone(store: &Store, ente: &str) -> Result<(Vec<String>, Vec<Record>)> {
    let rows = Q::new("SELECT id, body FROM persona WHERE ente = ").bind_text(ente).push(" ORDER BY id").fetch_all(store.pool()).await?;
    let (mut ids, mut recs) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    for r in rows {
        let body: Vec<u8> = r.try_get("body")?;
        let p = Persona::decode(body.as_slice()).map_err(|_| CoreError::Internal("undecodable persona record".into()))?;
        ids.push(r.try_get("id")?);
        recs.push(Record {
            cognome: p.cognome,
            nome: p.nome,
            sesso: match PbSesso::try_from(p.sesso) {
                Ok(PbSesso::Maschio) => Some(Sesso::M),
                Ok(PbSesso::Femmina) => Some(Sesso::F),
                _ => None,
            },
            nascita: super::parse_iso(&p.data_nascita),
            luogo_nascita: p.luogo_nascita,
            codice_fiscale: p.codice_fiscale,
        });
    }
    Ok((ids, recs))
}

/// A household of the export that can be written: its intestatario's row first.
#[derive(Debug)]
struct Household<'a> {
    id: &'a str,
    rows: Vec<&'a NucleoRow>,
}

/// The households of `nuclei` that are new and whole: one intestatario, each person once,
/// every person importable (`persona_ok`). The others are reported row by row.
fn households<'a>(
    nuclei: &'a [NucleoRow],
    in_errore: &HashSet<String>,
    done: &HashMap<String, String>,
    persona_ok: &dyn Fn(&str) -> bool,
    s: &mut ImportSummary,
) -> Vec<Household<'a>> {
    let mut by_id: BTreeMap<&str, Vec<&NucleoRow>> = BTreeMap::new();
    for n in nuclei {
        by_id.entry(n.id.as_str()).or_default().push(n);
    }
    let mut out = Vec::new();
    let mut ordered: Vec<(&str, Vec<&NucleoRow>)> = by_id.into_iter().collect();
    ordered.sort_by_key(|(_, rows)| rows[0].line);
    for (id, rows) in ordered {
        if done.contains_key(id) {
            s.nuclei_gia_importati += 1;
            continue;
        }
        let before = s.problems.len();
        let mut bad: HashSet<u64> = HashSet::new();
        let intestatari: Vec<&&NucleoRow> = rows.iter().filter(|r| r.intestatario()).collect();
        if intestatari.is_empty() {
            s.problems.push(row_problem(NUCLEI, rows[0].line, "relazione", "the household has no intestatario"));
            bad.insert(rows[0].line);
        }
        for r in intestatari.iter().skip(1) {
            s.problems.push(row_problem(NUCLEI, r.line, "relazione", "the household already has an intestatario on an earlier line"));
            bad.insert(r.line);
        }
        let mut seen = HashSet::new();
        for r in &rows {
            if !seen.insert(r.persona.as_str()) {
                s.problems.push(row_problem(NUCLEI, r.line, "id_persona", "the persona is already in the household on an earlier line"));
                bad.insert(r.line);
            } else if !persona_ok(&r.persona) {
                s.problems.push(row_problem(NUCLEI, r.line, "id_persona", "its persona is in error"));
                bad.insert(r.line);
            }
        }
        if s.problems.len() > before || in_errore.contains(id) {
            for r in rows.iter().filter(|r| !bad.contains(&r.line)) {
                s.problems.push(row_problem(NUCLEI, r.line, "id_nucleo", "left out with its household: another of its rows is in error"));
            }
            continue;
        }
        let mut rows = rows;
        rows.sort_by_key(|r| !r.intestatario());
        out.push(Household { id, rows });
    }
    out
}

/// Whose records a unit writes: a persona the hub holds, or a new one (a linkage cluster).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Hub(String),
    New(u32),
}

/// What one person (a key) brings: new rows of persone.csv (candidate indexes) and the
/// local ids of the persona rows whose cartelle and prestazioni are theirs.
#[derive(Debug, Default)]
struct Work<'a> {
    rows: Vec<usize>,
    locals: Vec<&'a str>,
}

/// Counts of what a unit writes, added to the summary when it commits.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    persone_nuove: usize,
    persone_collegate: usize,
    persone_unite: usize,
    cartelle: usize,
    prestazioni: usize,
    nuclei: usize,
}

impl ImportSummary {
    fn add(&mut self, c: Counts) {
        self.persone_nuove += c.persone_nuove;
        self.persone_collegate += c.persone_collegate;
        self.persone_unite += c.persone_unite;
        self.cartelle_nuove += c.cartelle;
        self.prestazioni_nuove += c.prestazioni;
        self.nuclei_nuovi += c.nuclei;
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Imports (or with `dry_run` only checks) the export in `src` for `caller`'s ente and
/// ufficio. `progress(done, total)` is called after each unit (a person, or a household with
/// its people).
pub async fn import(
    store: &Store,
    caller: &Caller,
    src: &Source,
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<ImportSummary> {
    import_until(store, caller, src, opts, progress, &StopSignal::new()).await
}

/// A unit stopped half-way by the [`StopSignal`]: its transaction is rolled back.
#[derive(Debug)]
struct Stopped;

/// [`import`] that ends early, cleanly, once `stop` is set: it is looked at before each
/// unit and between the persons of a unit (a unit stopped half-way is rolled back), and
/// between the phases before writing. The pairs for review whose two personas were written
/// are still queued; the summary has `stopped` set and counts what was written.
pub async fn import_until(
    store: &Store,
    caller: &Caller,
    src: &Source,
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
    stop: &StopSignal,
) -> Result<ImportSummary> {
    let (_, today) = now();
    let Export { persone, nuclei, cartelle, prestazioni, nuclei_in_errore, problems } = read_export(src, today);
    let mut s = ImportSummary { problems, persone_rows: persone.len(), ..Default::default() };
    if stop.is_stopped() {
        s.stopped = true;
        return Ok(s);
    }
    let ente = caller.ente.clone();
    let done_persone = imported(store, &ente, &opts.origine, "persona").await?;
    let done_cartelle = imported(store, &ente, &opts.origine, "cartella").await?;
    let done_nuclei = imported(store, &ente, &opts.origine, "nucleo").await?;
    let done_prestazioni = imported(store, &ente, &opts.origine, "prestazione").await?;

    // Rows the hub would refuse are problems too, found before anything is written.
    let mut candidates: Vec<(&PersonaRow, Persona)> = Vec::new();
    for row in &persone {
        if done_persone.contains_key(&row.id) {
            s.persone_gia_importate += 1;
            continue;
        }
        let prepared = linkage::prepare(&row.record);
        let trusted = prepared.cf == Judgement::Trusted;
        if !trusted && !row.record.codice_fiscale.is_empty() {
            s.cf_non_affidabili += 1;
        }
        let mut p = persona_of(row, trusted);
        let violations = p.validate(today);
        if violations.is_empty() {
            candidates.push((row, p));
        } else {
            s.problems.extend(violations.iter().map(|v| problem_of(PERSONE, row.line, &v.field, &v.description)));
        }
    }
    let candidate_of: HashMap<&str, usize> = candidates.iter().enumerate().map(|(k, (r, _))| (r.id.as_str(), k)).collect();
    let persona_ok = |id: &str| done_persone.contains_key(id) || candidate_of.contains_key(id);

    // Cartelle: the new ones by persona; every usable one (new or imported) → its persona.
    let mut cartelle_of: HashMap<&str, Vec<&CartellaRow>> = HashMap::new();
    let mut persona_of_cartella: HashMap<&str, &str> = HashMap::new();
    for c in &cartelle {
        if done_cartelle.contains_key(&c.id) {
            s.cartelle_gia_importate += 1;
            persona_of_cartella.insert(&c.id, &c.persona);
            continue;
        }
        let violations = cartella_of(c, "x").validate(today);
        if !violations.is_empty() {
            s.problems.extend(
                violations
                    .iter()
                    .filter(|v| !v.field.ends_with("persona_id"))
                    .map(|v| problem_of(CARTELLE, c.line, &v.field, &v.description)),
            );
        } else if !persona_ok(&c.persona) {
            s.problems.push(row_problem(CARTELLE, c.line, "id_persona", "its persona is in error"));
        } else {
            cartelle_of.entry(c.persona.as_str()).or_default().push(c);
            persona_of_cartella.insert(&c.id, &c.persona);
        }
    }
    // Prestazioni checked as the hub checks them (SIUSS codes, carattere, dates, amounts).
    let mut prestazioni_of: HashMap<&str, Vec<&PrestazioneRow>> = HashMap::new();
    for p in &prestazioni {
        if done_prestazioni.contains_key(&p.id) {
            s.prestazioni_gia_importate += 1;
            continue;
        }
        let violations = prestazione_of(p, "x").validate(today);
        let violations: Vec<_> = violations.iter().filter(|v| !v.field.ends_with("cartella_id")).collect();
        if !violations.is_empty() {
            s.problems.extend(violations.iter().map(|v| problem_of(PRESTAZIONI, p.line, &v.field, &v.description)));
        } else if let Some(persona) = persona_of_cartella.get(p.cartella.as_str()) {
            prestazioni_of.entry(persona).or_default().push(p);
        } else {
            s.problems.push(row_problem(PRESTAZIONI, p.line, "id_cartella", "its cartella is in error"));
        }
    }
    let households = households(&nuclei, &nuclei_in_errore, &done_nuclei, &persona_ok, &mut s);

    // Linkage: the hub's personas first, then the new rows.
    if stop.is_stopped() {
        s.stopped = true;
        return Ok(s);
    }
    let (hub_ids, hub_records) = hub_persone(store, &ente).await?;
    let mut all: Vec<linkage::Prepared> = hub_records.iter().map(linkage::prepare).collect();
    for (row, _) in &candidates {
        let mut r = row.record.clone();
        r.luogo_nascita = row.codice_luogo.clone();
        all.push(linkage::prepare(&r));
    }
    // Seconds of CPU at a large office's size: off the runtime's workers, and stopped by
    // the same signal as the rest.
    let cfg = opts.linkage.clone();
    let segnale = stop.clone();
    let result = tokio::task::spawn_blocking(move || linkage::link_unless(&all, &cfg, &|| segnale.is_stopped()))
        .await
        .map_err(|_| CoreError::Internal("the record linkage of an import ended abruptly".into()))?;
    let Some(result) = result else {
        s.stopped = true;
        return Ok(s);
    };
    let h = hub_ids.len();
    // The pairs this run answers for: those with a side from this origine, a row of this
    // run or a persona an earlier run of it imported (a run interrupted after writing both
    // sides of a pair, before queueing it, queues it when resumed). Pairs of personas that
    // came otherwise were queued by whatever brought them.
    let of_origine: HashSet<&str> = done_persone.values().map(String::as_str).collect();
    let ours = |i: u32| (i as usize) >= h || of_origine.contains(hub_ids[i as usize].as_str());
    let to_review = || result.pairs.iter().filter(|p| p.outcome == Outcome::Review && (ours(p.a) || ours(p.b)));
    s.coppie_da_rivedere = to_review().count();

    // Each local persona id → whose records it holds.
    let mut key_of: HashMap<&str, Key> = done_persone.iter().map(|(l, id)| (l.as_str(), Key::Hub(id.clone()))).collect();
    let mut work: BTreeMap<Key, Work<'_>> = BTreeMap::new();
    for (k, (row, _)) in candidates.iter().enumerate() {
        let cluster = result.clusters[h + k];
        let key = if (cluster as usize) < h { Key::Hub(hub_ids[cluster as usize].clone()) } else { Key::New(cluster) };
        key_of.insert(row.id.as_str(), key.clone());
        work.entry(key).or_default().rows.push(k);
    }
    let mut locals: Vec<&str> = cartelle_of.keys().chain(prestazioni_of.keys()).copied().collect();
    locals.extend(candidates.iter().map(|(r, _)| r.id.as_str()));
    for l in locals {
        if let Some(key) = key_of.get(l) {
            let w = work.entry(key.clone()).or_default();
            if !w.locals.contains(&l) {
                w.locals.push(l);
            }
        }
    }
    for hh in &households {
        for r in &hh.rows {
            if let Some(key) = key_of.get(r.persona.as_str()) {
                work.entry(key.clone()).or_default();
            }
        }
    }
    // Units: the keys joined by households, each written in one transaction.
    let keys: Vec<Key> = work.keys().cloned().collect();
    let index: HashMap<&Key, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    for hh in &households {
        let ids: Vec<usize> = hh.rows.iter().filter_map(|r| key_of.get(r.persona.as_str()).and_then(|k| index.get(k)).copied()).collect();
        for w in ids.windows(2) {
            let (a, b) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
            parent[a] = b;
        }
    }
    let mut units: BTreeMap<usize, (Vec<&Key>, Vec<&Household<'_>>)> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let root = find(&mut parent, i);
        units.entry(root).or_default().0.push(k);
    }
    for hh in &households {
        if let Some(&i) = key_of.get(hh.rows[0].persona.as_str()).and_then(|k| index.get(k)) {
            let root = find(&mut parent, i);
            units.entry(root).or_default().1.push(hh);
        }
    }
    let units: Vec<(Vec<&Key>, Vec<&Household<'_>>)> = units.into_values().collect();
    let counts_of = |keys: &[&Key], hhs: &[&Household<'_>]| -> Counts {
        let mut c = Counts { nuclei: hhs.len(), ..Counts::default() };
        for key in keys {
            let w = &work[*key];
            match key {
                Key::New(_) => {
                    c.persone_nuove += 1;
                    c.persone_unite += w.rows.len().saturating_sub(1);
                }
                Key::Hub(_) => c.persone_collegate += w.rows.len(),
            }
            for l in &w.locals {
                c.cartelle += cartelle_of.get(l).map_or(0, Vec::len);
                c.prestazioni += prestazioni_of.get(l).map_or(0, Vec::len);
            }
        }
        c
    };
    if stop.is_stopped() {
        s.stopped = true;
        return Ok(s);
    }
    if opts.dry_run {
        for (keys, hhs) in &units {
            s.add(counts_of(keys, hhs));
        }
        return Ok(s);
    }

    let total = units.len() as u64;
    let mut written: Vec<Option<String>> = vec![None; candidates.len()];
    let mut cartella_ids: HashMap<&str, String> = HashMap::new();
    for (done, (keys, hhs)) in units.iter().enumerate() {
        if stop.is_stopped() {
            s.stopped = true;
            break;
        }
        let mut tx = store.begin_write().await?;
        let (at, today) = now();
        // The row being written, to name it when the hub refuses it.
        let mut current = (PERSONE, 0u64);
        let mut persona_ids: HashMap<&Key, String> = HashMap::new();
        let mut new_cartelle: Vec<(&str, String)> = Vec::new();
        let outcome: Result<std::result::Result<(), Stopped>> = async {
            for key in keys {
                if stop.is_stopped() {
                    return Ok(Err(Stopped));
                }
                let w = &work[*key];
                let persona_id = match key {
                    Key::Hub(id) => id.clone(),
                    Key::New(_) => {
                        let (row, p) = &candidates[w.rows[0]];
                        current = (PERSONE, row.line);
                        let mut p = p.clone();
                        store.create_with(&mut tx, caller, &mut p, &at, today).await?;
                        p.meta.map(|m| m.id).unwrap_or_default()
                    }
                };
                for &k in &w.rows {
                    let row = candidates[k].0;
                    current = (PERSONE, row.line);
                    origin(&mut tx, &ente, &opts.origine, "persona", &row.id, &persona_id, &at).await?;
                }
                for l in &w.locals {
                    for c in cartelle_of.get(l).into_iter().flatten() {
                        current = (CARTELLE, c.line);
                        let mut pb = cartella_of(c, &persona_id);
                        store.create_with(&mut tx, caller, &mut pb, &at, today).await?;
                        let id = pb.meta.map(|m| m.id).unwrap_or_default();
                        origin(&mut tx, &ente, &opts.origine, "cartella", &c.id, &id, &at).await?;
                        new_cartelle.push((c.id.as_str(), id));
                    }
                    for p in prestazioni_of.get(l).into_iter().flatten() {
                        current = (PRESTAZIONI, p.line);
                        let cartella_id = match done_cartelle.get(&p.cartella) {
                            Some(id) => id.clone(),
                            None => new_cartelle
                                .iter()
                                .find(|(local, _)| *local == p.cartella)
                                .map(|(_, id)| id.clone())
                                .ok_or(CoreError::Conflict("the prestazione's cartella was not written"))?,
                        };
                        let mut pb = prestazione_of(p, &cartella_id);
                        store.create_with(&mut tx, caller, &mut pb, &at, today).await?;
                        let id = pb.meta.map(|m| m.id).unwrap_or_default();
                        origin(&mut tx, &ente, &opts.origine, "prestazione", &p.id, &id, &at).await?;
                    }
                }
                persona_ids.insert(key, persona_id);
            }
            for hh in hhs {
                let id_of = |r: &NucleoRow| key_of.get(r.persona.as_str()).and_then(|k| persona_ids.get(k)).cloned();
                current = (NUCLEI, hh.rows[0].line);
                let riferimento = id_of(hh.rows[0]).ok_or(CoreError::Conflict("the household's persona was not written"))?;
                let mut seen = HashSet::from([riferimento.clone()]);
                let mut membri = Vec::new();
                for r in &hh.rows[1..] {
                    let id = id_of(r).ok_or(CoreError::Conflict("the household's persona was not written"))?;
                    // Two rows found to be one person are one member.
                    if seen.insert(id.clone()) {
                        membri.push(MembroNucleo { persona_id: id, parentela: r.parentela });
                    }
                }
                let mut pb = Nucleo { persona_riferimento_id: riferimento, membri, ..Default::default() };
                store.create_with(&mut tx, caller, &mut pb, &at, today).await?;
                let id = pb.meta.map(|m| m.id).unwrap_or_default();
                origin(&mut tx, &ente, &opts.origine, "nucleo", hh.id, &id, &at).await?;
            }
            Ok(Ok(()))
        }
        .await;
        let refused: Vec<Problem> = match outcome {
            Ok(Err(Stopped)) => {
                tx.rollback().await?;
                s.stopped = true;
                break;
            }
            Ok(Ok(())) => {
                tx.commit().await?;
                s.add(counts_of(keys, hhs));
                for key in keys {
                    for &k in &work[*key].rows {
                        written[k] = persona_ids.get(*key).cloned();
                    }
                }
                cartella_ids.extend(new_cartelle);
                Vec::new()
            }
            Err(CoreError::Invalid(v)) => v.iter().map(|v| problem_of(current.0, current.1, &v.field, &v.description)).collect(),
            Err(CoreError::PersonaExists { .. }) => {
                vec![problem_of(current.0, current.1, "codice_fiscale", "another persona of the ente has this codice fiscale")]
            }
            Err(CoreError::Denied(why) | CoreError::Conflict(why)) => vec![row_problem(current.0, current.1, "", why)],
            Err(e) => return Err(e),
        };
        if !refused.is_empty() {
            s.problems.extend(refused);
            // The unit's other persons were left out with it: say so on each of their rows.
            for key in keys {
                for &k in &work[*key].rows {
                    let line = candidates[k].0.line;
                    if (PERSONE, line) != current {
                        s.problems.push(row_problem(
                            PERSONE,
                            line,
                            "",
                            &format!("left out with line {} of {}, which the hub refused", current.1, current.0),
                        ));
                    }
                }
            }
        }
        progress(done as u64 + 1, total);
    }
    // Undecided pairs go to the review queue, as the personas they became.
    let persona_at =
        |i: u32| -> Option<String> { if (i as usize) < h { Some(hub_ids[i as usize].clone()) } else { written[i as usize - h].clone() } };
    // Queueing is idempotent per pair: a pair already queued, decided or not, stays as it is.
    for p in to_review() {
        if let (Some(a), Some(b), linkage::Evidence::Score { comparison, match_weight }) = (persona_at(p.a), persona_at(p.b), &p.evidence) {
            store.queue_review(&ente, &a, &b, p.probability, &evidence_text(&result.model, comparison, *match_weight)).await?;
        }
    }
    Ok(s)
}

/// The evidence of a pair as people read it: each field's agreement and weight, no values.
pub fn evidence_text(model: &linkage::Model, c: &linkage::Comparison, match_weight: f64) -> String {
    let mut out = Vec::new();
    for (k, f) in linkage::FIELDS.iter().enumerate() {
        match c.levels[k] {
            Some(l) => out.push(format!("{}: {} ({:+.1})", f.name(), f.level_name(l), model.field_weight(k, l))),
            None => out.push(format!("{}: mancante", f.name())),
        }
    }
    if c.swapped_names {
        out.push("cognome e nome scambiati".into());
    }
    out.push(format!("peso complessivo: {match_weight:+.1}"));
    out.join("\n")
}

async fn origin(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ente: &str,
    origine: &str,
    kind: &str,
    id_locale: &str,
    record_id: &str,
    at: &str,
) -> Result<()> {
    Q::new("INSERT INTO import_origine (ente, origine, kind, id_locale, record_id, imported_at) VALUES (")
        .bind_text(ente)
        .push(", ")
        .bind_text(origine)
        .push(", ")
        .bind_text(kind)
        .push(", ")
        .bind_text(id_locale)
        .push(", ")
        .bind_text(record_id)
        .push(", ")
        .bind_text(at)
        .push(")")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

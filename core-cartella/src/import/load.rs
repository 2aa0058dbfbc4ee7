//! Importing one office's export into the store. Persons are linked first, among the rows
//! and against the persons the ente already holds: a row that is the same person as one in
//! the hub gets that persona; rows that are the same person among themselves become one
//! persona. Each person is then written with their cartelle in one transaction, together
//! with the office's identifiers of every row (`import_origine`), so an interrupted import
//! re-run later imports exactly what is missing and never half a person.
//! Nuclei and prestazioni are read and checked (the dry run reports their problems) but not
//! yet written: the export does not carry what the hub requires of a prestazione
//! (denominazione, carattere, prova dei mezzi, protocollo).
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use cartella_proto::v1::{Cartella, Persona, Sesso as PbSesso, StatoCartella};
use prost::Message;
use sqlx::Row;

use super::{CartellaRow, PersonaRow, Problem, read_export, rows::Export};
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

/// What an import did (or, in a dry run, would do). Counts only: no personal data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub problems: Vec<Problem>,
    pub persone_rows: usize,
    pub persone_gia_importate: usize,
    /// New personas created.
    pub persone_nuove: usize,
    /// Rows found to be a persona the hub already held.
    pub persone_collegate: usize,
    /// Rows found to be the same person as another row of this export.
    pub persone_unite: usize,
    /// Pairs left for a person to decide.
    pub coppie_da_rivedere: usize,
    /// Codici fiscali not trusted (not stored; the persona is kept without).
    pub cf_non_affidabili: usize,
    pub cartelle_nuove: usize,
    pub cartelle_gia_importate: usize,
    pub nuclei_letti: usize,
    pub prestazioni_lette: usize,
}

/// Persona field (in the hub's validation) → export column, for problems.
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

fn problem_of(file: &str, line: u64, field: &str, description: &str) -> Problem {
    // The hub's own date format means nothing to someone fixing a CSV file in dd/mm/yyyy.
    Problem { file: file.into(), line, column: column_of(field).into(), reason: description.replace(" (YYYY-MM-DD)", "") }
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

/// Imports (or with `dry_run` only checks) the export in `dir` for `caller`'s ente and
/// ufficio. `progress(done, total)` is called after each person.
pub async fn import(
    store: &Store,
    caller: &Caller,
    dir: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportSummary> {
    let (_, today) = now();
    let Export { persone, nuclei, cartelle, prestazioni, problems } = read_export(dir, today);
    let mut s = ImportSummary {
        problems,
        persone_rows: persone.len(),
        nuclei_letti: nuclei.len(),
        prestazioni_lette: prestazioni.len(),
        ..Default::default()
    };
    let ente = caller.ente.clone();
    let done_persone = imported(store, &ente, &opts.origine, "persona").await?;
    let done_cartelle = imported(store, &ente, &opts.origine, "cartella").await?;

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
            s.problems.extend(violations.iter().map(|v| problem_of(super::rows::PERSONE, row.line, &v.field, &v.description)));
        }
    }
    let mut cartelle_of: BTreeMap<&str, Vec<&CartellaRow>> = BTreeMap::new();
    for c in &cartelle {
        if done_cartelle.contains_key(&c.id) {
            s.cartelle_gia_importate += 1;
            continue;
        }
        let mut pb = cartella_of(c, "x");
        let violations = pb.validate(today);
        let persona_ok = done_persone.contains_key(&c.persona) || candidates.iter().any(|(r, _)| r.id == c.persona);
        if !violations.is_empty() {
            s.problems.extend(
                violations
                    .iter()
                    .filter(|v| !v.field.ends_with("persona_id"))
                    .map(|v| problem_of(super::rows::CARTELLE, c.line, &v.field, &v.description)),
            );
        } else if !persona_ok {
            s.problems.push(Problem {
                file: super::rows::CARTELLE.into(),
                line: c.line,
                column: "id_persona".into(),
                reason: "its persona is in error".into(),
            });
        } else {
            cartelle_of.entry(c.persona.as_str()).or_default().push(c);
        }
    }

    // Linkage: the hub's personas first, then the new rows.
    let (hub_ids, hub_records) = hub_persone(store, &ente).await?;
    let mut all: Vec<linkage::Prepared> = hub_records.iter().map(linkage::prepare).collect();
    for (row, _) in &candidates {
        let mut r = row.record.clone();
        r.luogo_nascita = row.codice_luogo.clone();
        all.push(linkage::prepare(&r));
    }
    let result = linkage::link(&all, &opts.linkage);
    let h = hub_ids.len();
    s.coppie_da_rivedere = result.pairs.iter().filter(|p| p.outcome == Outcome::Review && (p.b as usize) >= h).count();
    // Each person to write: the hub persona they join (if any) and their rows.
    let mut groups: BTreeMap<u32, (Option<String>, Vec<usize>)> = BTreeMap::new();
    for (k, _) in candidates.iter().enumerate() {
        let cluster = result.clusters[h + k];
        let g = groups.entry(cluster).or_insert_with(|| {
            ((cluster as usize) < h).then(|| hub_ids[cluster as usize].clone()).map_or((None, Vec::new()), |id| (Some(id), Vec::new()))
        });
        g.1.push(k);
    }
    for (existing, rows) in groups.values() {
        match existing {
            Some(_) => s.persone_collegate += rows.len(),
            None => {
                s.persone_nuove += 1;
                s.persone_unite += rows.len() - 1;
            }
        }
    }
    // Cartelle of rows imported on an earlier run, now in the export.
    let late: Vec<(&str, &Vec<&CartellaRow>)> =
        cartelle_of.iter().filter_map(|(p, cs)| done_persone.get(*p).map(|id| (id.as_str(), cs))).collect();
    if opts.dry_run {
        s.cartelle_nuove = cartelle_of.values().map(Vec::len).sum();
        return Ok(s);
    }

    let total = (groups.len() + late.len()) as u64;
    let mut done = 0u64;
    let mut written: Vec<Option<String>> = vec![None; candidates.len()];
    for (existing, rows) in groups.values() {
        let mut tx = store.pool().begin().await?;
        let (at, today) = now();
        let outcome: Result<usize> = async {
            let persona_id = match existing {
                Some(id) => id.clone(),
                None => {
                    let mut p = candidates[rows[0]].1.clone();
                    store.create_with(&mut tx, caller, &mut p, &at, today).await?;
                    p.meta.map(|m| m.id).unwrap_or_default()
                }
            };
            let mut n = 0;
            for &k in rows {
                written[k] = Some(persona_id.clone());
                let row = candidates[k].0;
                origin(&mut tx, &ente, &opts.origine, "persona", &row.id, &persona_id, &at).await?;
                for c in cartelle_of.get(row.id.as_str()).into_iter().flatten() {
                    let mut pb = cartella_of(c, &persona_id);
                    store.create_with(&mut tx, caller, &mut pb, &at, today).await?;
                    let id = pb.meta.map(|m| m.id).unwrap_or_default();
                    origin(&mut tx, &ente, &opts.origine, "cartella", &c.id, &id, &at).await?;
                    n += 1;
                }
            }
            Ok(n)
        }
        .await;
        match outcome {
            Ok(n) => {
                tx.commit().await?;
                s.cartelle_nuove += n;
            }
            Err(CoreError::Invalid(v)) => {
                drop(tx);
                rows.iter().for_each(|&k| written[k] = None);
                let row = candidates[rows[0]].0;
                s.problems.extend(v.iter().map(|v| problem_of(super::rows::PERSONE, row.line, &v.field, &v.description)));
            }
            Err(CoreError::PersonaExists { .. }) => {
                drop(tx);
                rows.iter().for_each(|&k| written[k] = None);
                let row = candidates[rows[0]].0;
                s.problems.push(problem_of(
                    super::rows::PERSONE,
                    row.line,
                    "codice_fiscale",
                    "another persona of the ente has this codice fiscale",
                ));
            }
            Err(e) => return Err(e),
        }
        done += 1;
        progress(done, total);
    }
    for (persona_id, cs) in late {
        let mut tx = store.pool().begin().await?;
        let (at, today) = now();
        for c in cs {
            let mut pb = cartella_of(c, persona_id);
            store.create_with(&mut tx, caller, &mut pb, &at, today).await?;
            let id = pb.meta.map(|m| m.id).unwrap_or_default();
            origin(&mut tx, &ente, &opts.origine, "cartella", &c.id, &id, &at).await?;
            s.cartelle_nuove += 1;
        }
        tx.commit().await?;
        done += 1;
        progress(done, total);
    }
    // Undecided pairs go to the review queue, as the personas they became.
    let persona_at =
        |i: u32| -> Option<String> { if (i as usize) < h { Some(hub_ids[i as usize].clone()) } else { written[i as usize - h].clone() } };
    for p in result.pairs.iter().filter(|p| p.outcome == Outcome::Review && (p.b as usize) >= h) {
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

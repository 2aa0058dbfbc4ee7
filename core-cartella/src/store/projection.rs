//! The statistics projection's tables (`stats_cursor`, `stats_fatto`, `stats_cella`):
//! applying the outbox to them, rebuilding them from the records, and reading a table.
//!
//! A change is applied per person: every fact of the person is derived again from their
//! records (`stats::fatti`), and the difference between the stored and the new facts is
//! added to the cells of every grouping, so no aggregate is recomputed by scanning. The
//! cursor row is locked by the batch that moves it (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL): with several processes one applies while the others skip. A rebuild derives
//! every fact again a batch of people at a time (people in id order, keyset-paged), and adds
//! each person's contribution to the cells exactly as a live change does, under the same lock
//! and in one transaction: memory holds one batch and the cells summed since the last flush,
//! never the records.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use cartella_proto::v1::{Accesso, Cartella, Meta, Pai, Persona, Prestazione};
use prost::Message;
use sqlx::{Any, Row, Transaction, any::AnyRow};
use time::Date;

use super::{Backend, Store, feed::Cursor, now, sql::Q};
use crate::{
    auth::{Caller, Role},
    error::{CoreError, Result},
    stats::{
        Grana, Misura, Richiesta, TOTALE,
        disclosure::{self, Cella},
        fatti::{Dossier, Fatto, fatti},
        gruppi, gruppo,
    },
};

/// Name of the projection's cursor row.
const CURSORE: &str = "stats";

/// Rows per multi-row INSERT: SQLite looks a numbered parameter up in a list when binding,
/// so a statement's cost grows with the square of its parameter count; ~800 keeps it small.
const CHUNK: usize = 64;

/// People per batch of a rebuild.
pub const PERSONE_PER_LOTTO: usize = 500;

/// Cells a rebuild sums in memory before adding them to `stats_cella`.
pub const CELLE_IN_MEMORIA: usize = 100_000;

/// How much a rebuild holds in memory at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lotto {
    /// People whose records are read per batch.
    pub persone: usize,
    /// Cell sums kept before they are added to `stats_cella`.
    pub celle: usize,
}

impl Default for Lotto {
    fn default() -> Self {
        Self { persone: PERSONE_PER_LOTTO, celle: CELLE_IN_MEMORIA }
    }
}

/// How far a rebuild has gone, reported after each batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Avanzamento {
    /// People whose facts are derived, of about `persone_totali` (the people registered
    /// when the rebuild started; records of people without a registry row count too).
    pub persone: u64,
    pub persone_totali: u64,
    pub fatti: u64,
    /// Cell changes written to `stats_cella` so far.
    pub celle: u64,
}

/// Sums of cell changes, keyed by cell.
type Delta = HashMap<Chiave, (i64, i64, i64)>;

fn accumula(into: &mut Delta, from: Delta) {
    for (k, d) in from {
        let e = into.entry(k).or_insert((0, 0, 0));
        e.0 += d.0;
        e.1 += d.1;
        e.2 += d.2;
    }
}

/// The kinds whose records feed the statistics.
const KINDS: [&str; 5] = ["persona", "accesso", "cartella", "pai", "prestazione"];

/// Where the projection stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatoProiezione {
    pub cursore: Cursor,
    /// RFC 3339 instant of the last batch applied ("" before the first).
    pub aggiornato_al: String,
}

/// A published cell, after disclosure control and rounding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellaPubblicata {
    pub periodo: String,
    pub riga: String,
    pub colonna: String,
    pub soppressa: bool,
    pub valore: i64,
    pub persone: i64,
    pub somma: i64,
    pub media: f64,
}

/// A published table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tabella {
    pub ente: String,
    pub soglia: i64,
    pub base_somma: i64,
    pub celle: Vec<CellaPubblicata>,
    pub stato: StatoProiezione,
}

/// Key of a cell of the projection.
type Chiave = (String, Misura, String, i32, String, String, String);

/// One person's contribution to a cell: the records counted and the sum.
#[derive(Default)]
struct Quota {
    record: BTreeSet<String>,
    somma: i64,
}

/// Every cell a person's facts fall in, with what they add to it.
fn quote(fatti: &[Fatto]) -> HashMap<Chiave, Quota> {
    let mut out: HashMap<Chiave, Quota> = HashMap::new();
    for f in fatti {
        for g in gruppi(f.misura) {
            let v = |i: usize| g.get(i).map_or(TOTALE.to_string(), |d| f.dim(*d).to_string());
            for grana in Grana::ALL {
                let k = (f.ente.clone(), f.misura, gruppo(&g), f.anno, grana.etichetta(f.anno, f.mese), v(0), v(1));
                let q = out.entry(k).or_default();
                q.record.insert(f.record_id.clone());
                q.somma += f.somma;
            }
        }
    }
    out
}

/// Differences (valore, persone, somma) between a person's old and new contributions.
fn differenze(old: &[Fatto], new: &[Fatto]) -> HashMap<Chiave, (i64, i64, i64)> {
    let len = |q: &Quota| i64::try_from(q.record.len()).unwrap_or(i64::MAX);
    let mut out: HashMap<Chiave, (i64, i64, i64)> = HashMap::new();
    for (k, q) in quote(old) {
        out.insert(k, (-len(&q), -1, -q.somma));
    }
    for (k, q) in quote(new) {
        let e = out.entry(k).or_insert((0, 0, 0));
        e.0 += len(&q);
        e.1 += 1;
        e.2 += q.somma;
    }
    out.retain(|_, d| *d != (0, 0, 0));
    out
}

fn decode<M: Message + Default>(r: &AnyRow, what: &'static str) -> Result<M> {
    let body: Vec<u8> = r.try_get("body")?;
    M::decode(body.as_slice()).map_err(|_| CoreError::Internal(format!("undecodable {what} record")))
}

/// Meta from the indexed columns (the authority for id, ente and ufficio).
fn meta_of(r: &AnyRow) -> Result<Option<Meta>> {
    Ok(Some(Meta { id: r.try_get("id")?, ente: r.try_get("ente")?, ufficio: r.try_get("ufficio")?, ..Default::default() }))
}

fn fatto_of(r: &AnyRow) -> Result<Fatto> {
    let misura: String = r.try_get("misura")?;
    let mese: String = r.try_get("mese")?;
    Ok(Fatto {
        persona_id: r.try_get("persona_id")?,
        record_id: r.try_get("record_id")?,
        misura: Misura::parse(&misura).ok_or_else(|| CoreError::Internal("unknown measure in the projection".into()))?,
        anno: i32::try_from(r.try_get::<i64, _>("anno")?).unwrap_or(0),
        mese: mese.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1),
        ente: r.try_get("ente")?,
        municipio: r.try_get("municipio")?,
        area: r.try_get("area")?,
        prestazione: r.try_get("prestazione")?,
        sesso: r.try_get("sesso")?,
        fascia_eta: r.try_get("fascia_eta")?,
        somma: r.try_get("somma")?,
    })
}

const FATTO_COLS: &str =
    "persona_id, record_id, misura, anno, trimestre, mese, ente, municipio, area, prestazione, sesso, fascia_eta, somma";

async fn insert_fatti(tx: &mut Transaction<'static, Any>, fatti: &[Fatto]) -> Result<()> {
    for chunk in fatti.chunks(CHUNK) {
        let mut q = Q::new("INSERT INTO stats_fatto (");
        q.push(FATTO_COLS).push(") VALUES ");
        for (i, f) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(").bind_text(&f.persona_id).push(", ").bind_text(&f.record_id).push(", ").bind_shared(Some(f.misura.as_str()));
            q.push(", ").bind_int(i64::from(f.anno)).push(", ").bind_shared(Some(&Grana::Trimestre.etichetta(f.anno, f.mese)));
            q.push(", ").bind_shared(Some(&Grana::Mese.etichetta(f.anno, f.mese))).push(", ").bind_shared(Some(&f.ente));
            q.push(", ").bind_shared(Some(&f.municipio)).push(", ").bind_shared(Some(&f.area)).push(", ").bind_shared(Some(&f.prestazione));
            q.push(", ").bind_shared(Some(&f.sesso)).push(", ").bind_shared(Some(&f.fascia_eta)).push(", ").bind_int(f.somma).push(")");
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Only holders of the statistics or the administrator role read the conoscitivo level.
fn check_reader(caller: &Caller) -> Result<()> {
    if caller.has(Role::Statistica) || caller.has(Role::Amministratore) {
        Ok(())
    } else {
        Err(CoreError::Denied("statistics are read with role statistica or amministratore"))
    }
}

/// Loads every record of `ids` people, grouped by person.
async fn dossiers(tx: &mut Transaction<'static, Any>, ids: Option<&[String]>) -> Result<BTreeMap<String, Dossier>> {
    let mut out: BTreeMap<String, Dossier> = BTreeMap::new();
    if let Some(ids) = ids {
        for id in ids {
            out.insert(id.clone(), Dossier::default());
        }
    }
    // `WHERE <col> IN (…)` over the people, or every row for a rebuild.
    let scoped = |sql: &str, col: &str, ids: Option<&[String]>| {
        let mut q = Q::new(sql);
        if let Some(ids) = ids {
            q.push(" WHERE ").push(col).push(" IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_text(id);
            }
            q.push(")");
        }
        q
    };
    if ids.is_some_and(|i| i.is_empty()) {
        return Ok(out);
    }
    for r in scoped("SELECT id, ente, ufficio, body FROM persona", "id", ids).fetch_all(&mut **tx).await? {
        let mut p: Persona = decode(&r, "persona")?;
        p.meta = meta_of(&r)?;
        let id: String = r.try_get("id")?;
        out.entry(id).or_default().persona = Some(p);
    }
    let mut cartella_persona: HashMap<String, String> = HashMap::new();
    for r in scoped("SELECT id, ente, ufficio, persona_id, body FROM cartella", "persona_id", ids).fetch_all(&mut **tx).await? {
        let mut c: Cartella = decode(&r, "cartella")?;
        c.meta = meta_of(&r)?;
        let pid: String = r.try_get::<Option<String>, _>("persona_id")?.unwrap_or_default();
        cartella_persona.insert(r.try_get("id")?, pid.clone());
        out.entry(pid).or_default().cartelle.push(c);
    }
    for r in scoped("SELECT id, ente, ufficio, persona_id, body FROM accesso", "persona_id", ids).fetch_all(&mut **tx).await? {
        let mut a: Accesso = decode(&r, "accesso")?;
        a.meta = meta_of(&r)?;
        let pid: String = r.try_get::<Option<String>, _>("persona_id")?.unwrap_or_default();
        out.entry(pid).or_default().accessi.push(a);
    }
    let child = |table: &str| {
        let mut q = Q::new("SELECT id, ente, ufficio, cartella_id, body FROM ");
        q.push(table);
        if let Some(ids) = ids {
            q.push(" WHERE cartella_id IN (SELECT id FROM cartella WHERE persona_id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_text(id);
            }
            q.push("))");
        }
        q
    };
    for r in child("prestazione").fetch_all(&mut **tx).await? {
        let mut p: Prestazione = decode(&r, "prestazione")?;
        p.meta = meta_of(&r)?;
        let cid: String = r.try_get::<Option<String>, _>("cartella_id")?.unwrap_or_default();
        if let Some(pid) = cartella_persona.get(&cid) {
            out.entry(pid.clone()).or_default().prestazioni.push(p);
        }
    }
    for r in child("pai").fetch_all(&mut **tx).await? {
        let mut p: Pai = decode(&r, "pai")?;
        p.meta = meta_of(&r)?;
        let cid: String = r.try_get::<Option<String>, _>("cartella_id")?.unwrap_or_default();
        if let Some(pid) = cartella_persona.get(&cid) {
            out.entry(pid.clone()).or_default().pai.push(p);
        }
    }
    out.remove("");
    Ok(out)
}

/// Adds cell changes to `stats_cella`, and deletes the cells nobody is in any more. Returns
/// how many cells changed.
async fn add_celle(tx: &mut Transaction<'static, Any>, mut delta: Delta) -> Result<u64> {
    delta.retain(|_, d| *d != (0, 0, 0));
    let mut keys: Vec<(Chiave, (i64, i64, i64))> = delta.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in keys.chunks(CHUNK) {
        let mut q = Q::new("INSERT INTO stats_cella (ente, misura, gruppo, anno, periodo, v1, v2, valore, persone, somma) VALUES ");
        for (i, ((ente, m, g, anno, p, v1, v2), (dv, dp, ds))) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(").bind_shared(Some(ente)).push(", ").bind_shared(Some(m.as_str())).push(", ").bind_shared(Some(g));
            q.push(", ").bind_int(i64::from(*anno)).push(", ").bind_shared(Some(p)).push(", ").bind_shared(Some(v1));
            q.push(", ").bind_shared(Some(v2)).push(", ").bind_int(*dv).push(", ").bind_int(*dp).push(", ").bind_int(*ds).push(")");
        }
        q.push(
            " ON CONFLICT (ente, misura, gruppo, anno, periodo, v1, v2) DO UPDATE SET valore = stats_cella.valore + excluded.valore, \
             persone = stats_cella.persone + excluded.persone, somma = stats_cella.somma + excluded.somma",
        );
        q.execute(&mut **tx).await?;
    }
    // Cells nobody is in any more.
    for ((ente, m, g, anno, p, v1, v2), _) in keys.iter().filter(|(_, d)| d.1 < 0) {
        Q::new("DELETE FROM stats_cella WHERE ente = ")
            .bind_text(ente)
            .push(" AND misura = ")
            .bind_text(m.as_str())
            .push(" AND gruppo = ")
            .bind_text(g)
            .push(" AND anno = ")
            .bind_int(i64::from(*anno))
            .push(" AND periodo = ")
            .bind_text(p)
            .push(" AND v1 = ")
            .bind_text(v1)
            .push(" AND v2 = ")
            .bind_text(v2)
            .push(" AND persone <= 0")
            .execute(&mut **tx)
            .await?;
    }
    Ok(u64::try_from(keys.len()).unwrap_or(u64::MAX))
}

/// Longest a table request may spend on its disclosure control (see
/// [`disclosure::sopprimi_entro`]).
pub const BUDGET_PROTEZIONE: std::time::Duration = std::time::Duration::from_secs(2);

impl Store {
    /// Smallest number of people a published statistics cell may describe.
    pub fn stats_soglia(&self) -> i64 {
        self.stats_soglia
    }

    /// Locks the projection's cursor row: waiting for it (`wait`), or None when another
    /// process holds it (PostgreSQL; SQLite has one writer).
    async fn stats_lock(&self, tx: &mut Transaction<'static, Any>, wait: bool) -> Result<Option<(Cursor, String)>> {
        let mut q = Q::new("SELECT txid, seq, updated_at FROM stats_cursor WHERE nome = ");
        q.bind_text(CURSORE);
        if self.backend == Backend::Postgres {
            q.push(if wait { " FOR UPDATE" } else { " FOR UPDATE SKIP LOCKED" });
        }
        let Some(r) = q.fetch_optional(&mut **tx).await? else { return Ok(None) };
        Ok(Some((Cursor { txid: r.try_get("txid")?, seq: r.try_get("seq")? }, r.try_get("updated_at")?)))
    }

    async fn stats_move(&self, tx: &mut Transaction<'static, Any>, to: Cursor, at: &str) -> Result<()> {
        Q::new("UPDATE stats_cursor SET txid = ")
            .bind_int(to.txid)
            .push(", seq = ")
            .bind_int(to.seq)
            .push(", updated_at = ")
            .bind_text(at)
            .push(" WHERE nome = ")
            .bind_text(CURSORE)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Applies up to `limit` outbox changes after the projection's cursor. Returns how many
    /// changes were read, or None when another process is applying.
    pub async fn stats_apply(&self, limit: u32) -> Result<Option<usize>> {
        let mut tx = self.pool.begin().await?;
        let Some((cursor, last_at)) = self.stats_lock(&mut tx, false).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let changes = self.outbox_after(&mut *tx, cursor, limit).await?;
        let (at, oggi) = now();
        // A new month moves every open cartella and PAI into it.
        let rollover = !last_at.is_empty() && last_at.get(..7) != at.get(..7);
        if changes.is_empty() && !rollover {
            tx.rollback().await?;
            return Ok(Some(0));
        }
        let mut persone: BTreeSet<String> = BTreeSet::new();
        let mut cartelle: BTreeSet<String> = BTreeSet::new();
        for c in changes.iter().filter(|c| KINDS.contains(&c.kind.as_str())) {
            if c.kind == "persona" {
                persone.insert(c.id.clone());
            } else if !c.persona_id.is_empty() {
                persone.insert(c.persona_id.clone());
            } else if !c.cartella_id.is_empty() {
                cartelle.insert(c.cartella_id.clone());
            }
        }
        if !cartelle.is_empty() {
            let mut q = Q::new("SELECT DISTINCT persona_id FROM cartella WHERE id IN (");
            for (i, id) in cartelle.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_text(id);
            }
            q.push(")");
            for r in q.fetch_all(&mut *tx).await? {
                if let Some(p) = r.try_get::<Option<String>, _>("persona_id")? {
                    persone.insert(p);
                }
            }
        }
        if rollover && let Some(prev) = last_at.get(..7) {
            let q = Q::new("SELECT DISTINCT persona_id FROM stats_fatto WHERE misura IN ('persone_in_carico', 'pai_attivi') AND mese = ")
                .bind_text(prev)
                .fetch_all(&mut *tx)
                .await?;
            for r in q {
                persone.insert(r.try_get("persona_id")?);
            }
        }
        let ids: Vec<String> = persone.into_iter().collect();
        for chunk in ids.chunks(500) {
            self.stats_apply_people(&mut tx, chunk, oggi).await?;
        }
        let to = changes.last().map_or(cursor, |c| c.cursor);
        self.stats_move(&mut tx, to, &at).await?;
        tx.commit().await?;
        Ok(Some(changes.len()))
    }

    async fn stats_apply_people(&self, tx: &mut Transaction<'static, Any>, ids: &[String], oggi: Date) -> Result<()> {
        let mut q = Q::new("SELECT ");
        q.push(FATTO_COLS).push(" FROM stats_fatto WHERE persona_id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind_text(id);
        }
        q.push(")");
        let mut old: HashMap<String, Vec<Fatto>> = HashMap::new();
        for r in q.fetch_all(&mut **tx).await? {
            let f = fatto_of(&r)?;
            old.entry(f.persona_id.clone()).or_default().push(f);
        }
        let dossiers = dossiers(tx, Some(ids)).await?;
        let mut delta: Delta = HashMap::new();
        let mut inserts = Vec::new();
        let mut changed: Vec<&str> = Vec::new();
        for id in ids {
            let mut before = old.remove(id).unwrap_or_default();
            before.sort();
            let after = dossiers.get(id).map(|d| fatti(id, d, oggi)).unwrap_or_default();
            if before == after {
                continue;
            }
            accumula(&mut delta, differenze(&before, &after));
            changed.push(id);
            inserts.extend(after);
        }
        if changed.is_empty() {
            return Ok(());
        }
        let mut q = Q::new("DELETE FROM stats_fatto WHERE persona_id IN (");
        for (i, id) in changed.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind_text(id);
        }
        q.push(")");
        q.execute(&mut **tx).await?;
        insert_fatti(tx, &inserts).await?;
        add_celle(tx, delta).await?;
        Ok(())
    }

    /// Rebuilds the projection from the records: every fact derived again, every cell
    /// summed again, the cursor set to the last change already visible. Returns the number
    /// of facts.
    pub async fn stats_rebuild(&self) -> Result<u64> {
        self.stats_rebuild_with(Lotto::default(), |_| {}).await
    }

    /// [`Store::stats_rebuild`] holding at most `lotto` in memory and calling `progress`
    /// after each batch of people. The result does not depend on `lotto`: a cell adds up
    /// what each person contributes to it, as the live projection does.
    pub async fn stats_rebuild_with(&self, lotto: Lotto, mut progress: impl FnMut(Avanzamento) + Send) -> Result<u64> {
        let per_lotto = lotto.persone.max(1);
        let mut tx = self.pool.begin().await?;
        self.stats_lock(&mut tx, true).await?.ok_or_else(|| CoreError::Internal("the statistics cursor row is missing".into()))?;
        // The last change visible now: everything before it is in the records read below;
        // changes after it are applied again by the projector, which is idempotent.
        let mut q = super::feed::select_after(self.backend, Cursor::default());
        q.push(" ORDER BY txid DESC, seq DESC LIMIT 1");
        let end = match q.fetch_optional(&mut *tx).await? {
            Some(r) => super::feed::change(&r)?.cursor,
            None => Cursor::default(),
        };
        Q::new("DELETE FROM stats_cella").execute(&mut *tx).await?;
        Q::new("DELETE FROM stats_fatto").execute(&mut *tx).await?;
        let (at, oggi) = now();
        let totali: i64 = match Q::new("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM persona").fetch_optional(&mut *tx).await? {
            Some(r) => r.try_get("n")?,
            None => 0,
        };
        let mut stato = Avanzamento { persone_totali: u64::try_from(totali).unwrap_or(0), ..Default::default() };
        let mut celle: Delta = HashMap::new();
        let mut dopo = String::new();
        loop {
            // The next people in id order: registered ones, and those only records name.
            let mut q = Q::new("SELECT id FROM persona WHERE id > ");
            q.bind_text(&dopo).push(" UNION SELECT persona_id FROM cartella WHERE persona_id > ").bind_text(&dopo);
            q.push(" UNION SELECT persona_id FROM accesso WHERE persona_id > ").bind_text(&dopo);
            q.push(" ORDER BY 1 LIMIT ").bind_int(i64::try_from(per_lotto).unwrap_or(i64::MAX));
            let ids: Vec<String> =
                q.fetch_all(&mut *tx).await?.iter().map(|r| r.try_get::<String, _>(0)).collect::<std::result::Result<_, _>>()?;
            let Some(last) = ids.last() else { break };
            dopo = last.clone();
            let dossiers = dossiers(&mut tx, Some(&ids)).await?;
            let mut fatti_lotto = Vec::new();
            for (id, d) in &dossiers {
                let f = fatti(id, d, oggi);
                accumula(&mut celle, differenze(&[], &f));
                fatti_lotto.extend(f);
            }
            insert_fatti(&mut tx, &fatti_lotto).await?;
            stato.persone += ids.len() as u64;
            stato.fatti += fatti_lotto.len() as u64;
            if celle.len() >= lotto.celle {
                stato.celle += add_celle(&mut tx, std::mem::take(&mut celle)).await?;
            }
            progress(stato);
        }
        stato.celle += add_celle(&mut tx, celle).await?;
        progress(stato);
        self.stats_move(&mut tx, end, &at).await?;
        tx.commit().await?;
        Ok(stato.fatti)
    }

    /// Where the projection stands.
    pub async fn stats_stato(&self) -> Result<StatoProiezione> {
        let r = Q::new("SELECT txid, seq, updated_at FROM stats_cursor WHERE nome = ")
            .bind_text(CURSORE)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::Internal("the statistics cursor row is missing".into()))?;
        Ok(StatoProiezione {
            cursore: Cursor { txid: r.try_get("txid")?, seq: r.try_get("seq")? },
            aggiornato_al: r.try_get("updated_at")?,
        })
    }

    /// The catalogue's reading rights: who may ask for `stats_stato` and tables.
    pub fn stats_check(&self, caller: &Caller) -> Result<()> {
        check_reader(caller)
    }

    /// A table of the caller's ente, under disclosure control.
    pub async fn stats_tabella(&self, caller: &Caller, r: &Richiesta) -> Result<Tabella> {
        check_reader(caller)?;
        let soglia = self.stats_soglia;
        // Cells are protected in the canonical orientation (dimensions in catalogue order),
        // so a table and its transpose suppress the same cells.
        let (a, b) = match (r.righe, r.colonne) {
            (Some(x), Some(y)) if y < x => (Some(y), Some(x)),
            other => other,
        };
        let transposed = a != r.righe;
        let mut groups: Vec<(String, u8)> = vec![(gruppo(&[]), 0)];
        if let Some(a) = a {
            groups.push((gruppo(&[a]), 1));
        }
        if let Some(b) = b {
            groups.push((gruppo(&[b]), 2));
        }
        if let (Some(a), Some(b)) = (a, b) {
            groups.push((gruppo(&[a, b]), 3));
        }
        let mut q = Q::new("SELECT gruppo, anno, periodo, v1, v2, valore, persone, somma FROM stats_cella WHERE ente = ");
        q.bind_text(&caller.ente).push(" AND misura = ").bind_text(r.misura.as_str()).push(" AND gruppo IN (");
        for (i, (g, _)) in groups.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind_text(g);
        }
        q.push(") AND anno >= ").bind_int(i64::from(r.anno_da)).push(" AND anno <= ").bind_int(i64::from(r.anno_a));
        let rows = q.fetch_all(&self.pool).await?;
        let mut per_anno: BTreeMap<i64, Vec<Cella>> = BTreeMap::new();
        for row in &rows {
            let g: String = row.try_get("gruppo")?;
            let livello = groups.iter().find(|(x, _)| *x == g).map_or(0, |(_, l)| *l);
            let v1: String = row.try_get("v1")?;
            let (riga, colonna) = match livello {
                0 => (TOTALE.to_string(), TOTALE.to_string()),
                1 => (v1, TOTALE.to_string()),
                2 => (TOTALE.to_string(), v1),
                _ => (v1, row.try_get("v2")?),
            };
            per_anno.entry(row.try_get("anno")?).or_default().push(Cella {
                periodo: row.try_get("periodo")?,
                riga,
                colonna,
                valore: row.try_get("valore")?,
                persone: row.try_get("persone")?,
                somma: row.try_get("somma")?,
            });
        }
        let base_somma = r.misura.base_somma();
        // The protection is CPU work of unbounded length on a sparse family: on a blocking
        // thread, within a budget for the whole request.
        let protected = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + BUDGET_PROTEZIONE;
            per_anno
                .into_values()
                .map(|mut cells| {
                    cells.sort_by(|x, y| (&x.periodo, &x.riga, &x.colonna).cmp(&(&y.periodo, &y.riga, &y.colonna)));
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    disclosure::sopprimi_entro(&cells, soglia, left).map(|s| (cells, s))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| CoreError::Internal("the disclosure control of a table ended abruptly".into()))?
        .map_err(|_| {
            CoreError::Invalid(vec![crate::domain::Violation {
                field: "righe".into(),
                description: "this table is too sparse to protect in time: ask for fewer dimensions, a coarser period or fewer years"
                    .into(),
            }])
        })?;
        let mut celle = Vec::new();
        for (cells, soppresse) in protected {
            for (c, s) in cells.into_iter().zip(soppresse) {
                if Grana::di(&c.periodo) != r.grana {
                    continue;
                }
                let (riga, colonna) = if transposed { (c.colonna, c.riga) } else { (c.riga, c.colonna) };
                celle.push(pubblica(c.periodo, riga, colonna, c.valore, c.persone, c.somma, s, base_somma));
            }
        }
        // Totals after the values they sum.
        let key = |s: &str| (s == TOTALE, s.to_string());
        celle.sort_by(|x, y| (&x.periodo, key(&x.riga), key(&x.colonna)).cmp(&(&y.periodo, key(&y.riga), key(&y.colonna))));
        Ok(Tabella { ente: caller.ente.clone(), soglia, base_somma, celle, stato: self.stats_stato().await? })
    }
}

/// A cell as published: zeros when suppressed; otherwise counts rounded to the base, the
/// mean rounded to `base_somma`, and `somma` as the rounded count times the rounded mean
/// (rounding the sum alone would show one person's amount in the difference of two
/// answers).
#[allow(clippy::too_many_arguments)]
fn pubblica(
    periodo: String,
    riga: String,
    colonna: String,
    valore: i64,
    persone: i64,
    somma: i64,
    soppressa: bool,
    base_somma: i64,
) -> CellaPubblicata {
    if soppressa || valore <= 0 {
        return CellaPubblicata { periodo, riga, colonna, soppressa: true, ..Default::default() };
    }
    let base = crate::stats::BASE_ARROTONDAMENTO;
    let media = disclosure::arrotonda((somma + valore / 2) / valore, base_somma);
    let valore = disclosure::arrotonda(valore, base);
    CellaPubblicata {
        periodo,
        riga,
        colonna,
        soppressa,
        valore,
        persone: disclosure::arrotonda(persone, base),
        somma: valore.saturating_mul(media),
        media: media as f64,
    }
}

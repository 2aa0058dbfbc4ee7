//! Merging two personas found to be one person, and undoing it. The merge moves every
//! record that points at the merged persona (accessi, cartelle and what hangs from them,
//! prestazioni included, nuclei and their members, the import's office ids) to the
//! survivor, rewriting each with a new version (column and body) and an outbox row, so the
//! feed and the adapters see the move. The merged persona gets an outbox row of its own
//! (`OP_MERGE`, its `persona_id` naming the survivor) and the survivor a new version, so the
//! change feed, the adapters and the statistics projector learn that one person became the
//! other. The merged persona's row is kept in `fusione` with the list of what moved; the
//! SIUSS ledger is keyed by prestazione and is not touched, so its history stays as it was
//! sent. The merged persona's open review pairs move onto the survivor (see
//! `Store::move_pairs_in`). Undoing puts the row back (a new version, an outbox row) and
//! moves exactly the listed records and pairs back; records added to the survivor since
//! stay.
use cartella_proto::v1::{Accesso, Cartella, Condivisione, DiarioEntry, MembroNucleo, Nucleo, Pai, Persona, Prestazione, Valutazione};
use prost::Message;
use sqlx::{Any, Row, Transaction};

use super::{
    OP_MERGE, OP_UPDATE, Page, Store, audit, now,
    records::{Placement, check_page},
    scope::{Mode, push_scope},
    sql::Q,
};
use crate::{
    auth::{Caller, Role},
    error::{CoreError, Result},
    record::{Kind, Record, ScopeClass, Val},
};

/// Tables whose rows carry `persona_id`, in the order they are moved.
const TABLES: [Kind; 8] =
    [Kind::Accesso, Kind::Cartella, Kind::Nucleo, Kind::Diario, Kind::Valutazione, Kind::Pai, Kind::Prestazione, Kind::Condivisione];

/// One merge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fusione {
    pub id: String,
    pub superstite: String,
    pub fusa: String,
    /// The ufficio that registered the merged persona.
    pub ufficio_fusa: String,
    /// Records moved to the survivor (household memberships included, office ids not).
    pub spostati: usize,
    pub at: String,
    pub actor: String,
    pub annullata_at: Option<String>,
}

impl Fusione {
    pub fn annullata(&self) -> bool {
        self.annullata_at.is_some()
    }
}

/// Merges, undoing and the review queue need role `anagrafe`.
pub(crate) fn check_anagrafe(caller: &Caller) -> Result<()> {
    if caller.has(Role::Anagrafe) {
        Ok(())
    } else {
        Err(CoreError::Denied("the caller's roles do not allow reviewing or merging personas (role anagrafe)"))
    }
}

/// A record's body with `change` applied and its meta moved to `version`, written now by
/// `by`: a body always carries the version its row has.
fn rewrite<R: Record>(body: &[u8], version: i64, at: &str, by: &str, change: impl FnOnce(&mut R)) -> Result<Vec<u8>> {
    let mut r = R::decode(body).map_err(|_| CoreError::Internal(format!("undecodable {} record", R::KIND.name())))?;
    change(&mut r);
    let m = r.meta_mut();
    m.version = version;
    m.updated_at = at.to_string();
    m.updated_by = by.to_string();
    Ok(r.encode_to_vec())
}

/// Whether a line of a merge's list names a record (office ids and review pairs are listed
/// too, to be put back on undo, but are not records).
fn is_record(line: &str) -> bool {
    !line.starts_with("origine:") && !line.starts_with("revisione:")
}

const FUSIONE_COLS: &str = "id, superstite, fusa, fusa_ufficio, spostati, at, actor, annullata_at";

fn fusione_of(r: &sqlx::any::AnyRow) -> Result<Fusione> {
    Ok(Fusione {
        id: r.try_get("id")?,
        superstite: r.try_get("superstite")?,
        fusa: r.try_get("fusa")?,
        ufficio_fusa: r.try_get("fusa_ufficio")?,
        spostati: r.try_get::<String, _>("spostati")?.lines().filter(|l| is_record(l)).count(),
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        annullata_at: r.try_get("annullata_at")?,
    })
}

/// Locks the rows of the personas for the transaction (row locks on PostgreSQL; SQLite has
/// one writer), in id order so that two merges of the same pair cannot deadlock. False when
/// one of them is not a persona of `ente`.
async fn lock_persone(tx: &mut Transaction<'static, Any>, ente: &str, ids: &[&str]) -> Result<bool> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    for id in ids {
        let n = Q::new("UPDATE persona SET version = version WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(ente)
            .execute(&mut **tx)
            .await?;
        if n != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Store {
    /// Merges persona `fusa` into `superstite` (same ente; an ufficio-bound caller only
    /// personas its ufficio registered).
    pub async fn merge_persone(&self, caller: &Caller, superstite: &str, fusa: &str) -> Result<Fusione> {
        check_anagrafe(caller)?;
        let mut tx = self.pool.begin().await?;
        let (at, _) = now();
        let f = self.merge_in(&mut tx, caller, superstite, fusa, &at).await?;
        tx.commit().await?;
        self.notify();
        Ok(f)
    }

    /// [`Store::merge_persone`] in the caller's transaction (deciding a pair of the review
    /// queue merges and records the decision in one).
    pub(super) async fn merge_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        superstite: &str,
        fusa: &str,
        at: &str,
    ) -> Result<Fusione> {
        if superstite == fusa {
            return Err(CoreError::invalid("fusione.fusa_id", "is the survivor itself"));
        }
        if !lock_persone(tx, &caller.ente, &[superstite, fusa]).await? {
            return Err(CoreError::NotFound { kind: "persona" });
        }
        for id in [superstite, fusa] {
            let row = Q::new("SELECT ufficio FROM persona WHERE id = ")
                .bind_text(id)
                .push(" AND ente = ")
                .bind_text(&caller.ente)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(CoreError::NotFound { kind: "persona" })?;
            let ufficio: String = row.try_get("ufficio")?;
            if caller.ufficio.as_deref().is_some_and(|u| u != ufficio) {
                return Err(CoreError::Denied("only an ente-wide caller merges personas another ufficio registered"));
            }
        }
        let mut moved: Vec<String> = Vec::new();
        for kind in TABLES {
            let mut q = Q::new("SELECT id FROM ");
            q.push(kind.table()).push(" WHERE persona_id = ").bind_text(fusa).push(" ORDER BY id");
            for r in q.fetch_all(&mut **tx).await? {
                let id: String = r.try_get("id")?;
                self.repoint(tx, caller, kind, &id, fusa, superstite, at).await?;
                moved.push(format!("{}:{id}", kind.name()));
            }
        }
        // Households where the merged persona is a member (not the reference).
        let rows = Q::new("SELECT nucleo_id FROM nucleo_membro WHERE persona_id = ").bind_text(fusa).fetch_all(&mut **tx).await?;
        for r in rows {
            let nid: String = r.try_get("nucleo_id")?;
            let both = Q::new("SELECT 1 AS x FROM nucleo_membro WHERE nucleo_id = ")
                .bind_text(&nid)
                .push(" AND persona_id = ")
                .bind_text(superstite)
                .fetch_optional(&mut **tx)
                .await?
                .is_some();
            self.repoint_member(tx, caller, &nid, fusa, (!both).then_some(superstite), at).await?;
            moved.push(format!("{}:{nid}", if both { "membro-" } else { "membro+" }));
        }
        let rows = Q::new("SELECT origine, id_locale FROM import_origine WHERE kind = 'persona' AND record_id = ")
            .bind_text(fusa)
            .fetch_all(&mut **tx)
            .await?;
        for r in rows {
            // Tab-separated: office names and local ids hold no tabs (CSV cells are trimmed).
            moved.push(format!("origine:{}\t{}", r.try_get::<String, _>("origine")?, r.try_get::<String, _>("id_locale")?));
        }
        Q::new("UPDATE import_origine SET record_id = ")
            .bind_text(superstite)
            .push(" WHERE record_id = ")
            .bind_text(fusa)
            .execute(&mut **tx)
            .await?;
        let id = uuid::Uuid::now_v7().to_string();
        for pair in self.move_pairs_in(tx, caller, fusa, superstite, &id, at).await? {
            moved.push(format!("revisione:{pair}"));
        }
        let row = Q::new("SELECT ufficio, version, created_at, updated_at, updated_by, body FROM persona WHERE id = ")
            .bind_text(fusa)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(CoreError::NotFound { kind: "persona" })?;
        let ufficio: String = row.try_get("ufficio")?;
        let version: i64 = row.try_get("version")?;
        let spostati = moved.join("\n");
        let mut q = Q::new(
            "INSERT INTO fusione (id, ente, superstite, fusa, fusa_ufficio, fusa_version, fusa_created_at, fusa_updated_at, fusa_updated_by, fusa_body, spostati, at, actor) VALUES (",
        );
        q.bind_text(&id).push(", ").bind_text(&caller.ente).push(", ").bind_text(superstite).push(", ").bind_text(fusa);
        q.push(", ").bind_text(&ufficio).push(", ").bind_int(version);
        q.push(", ").bind_text(&row.try_get::<String, _>("created_at")?).push(", ").bind_text(&row.try_get::<String, _>("updated_at")?);
        q.push(", ").bind_text(&row.try_get::<String, _>("updated_by")?).push(", ").bind(Val::Bytes(row.try_get("body")?));
        q.push(", ").bind_text(&spostati).push(", ").bind_text(at).push(", ").bind_text(&caller.subject).push(")");
        q.execute(&mut **tx).await?;
        Q::new("DELETE FROM persona WHERE id = ").bind_text(fusa).execute(&mut **tx).await?;
        // The merged persona's last change: merged into the survivor, one version on.
        let place =
            Placement { ente: caller.ente.clone(), ufficio: ufficio.clone(), persona_id: Some(superstite.to_string()), cartella_id: None };
        self.outbox(tx, Kind::Persona, fusa, OP_MERGE, version + 1, &place, at).await?;
        self.touch_persona(tx, caller, superstite, at).await?;
        audit(&mut **tx, caller, at, "merge", Kind::Persona, &[superstite, fusa], "").await?;
        Ok(Fusione {
            id,
            superstite: superstite.to_string(),
            fusa: fusa.to_string(),
            ufficio_fusa: ufficio,
            spostati: moved.iter().filter(|l| is_record(l)).count(),
            at: at.to_string(),
            actor: caller.subject.clone(),
            annullata_at: None,
        })
    }

    /// Undoes a merge: the merged persona comes back with its id and the records that moved.
    pub async fn unmerge_persone(&self, caller: &Caller, fusione_id: &str) -> Result<Fusione> {
        check_anagrafe(caller)?;
        let mut tx = self.pool.begin().await?;
        let (at, _) = now();
        // Claimed first: of two concurrent undos one finds it undone already.
        let claimed = Q::new("UPDATE fusione SET annullata_at = ")
            .bind_text(&at)
            .push(" WHERE id = ")
            .bind_text(fusione_id)
            .push(" AND ente = ")
            .bind_text(&caller.ente)
            .push(" AND annullata_at IS NULL")
            .execute(&mut *tx)
            .await?;
        if claimed != 1 {
            return Err(CoreError::NotFound { kind: "fusione" });
        }
        let mut q = Q::new("SELECT ");
        q.push(FUSIONE_COLS).push(", fusa_version, fusa_created_at, fusa_body FROM fusione WHERE id = ").bind_text(fusione_id);
        let row = q.fetch_optional(&mut *tx).await?.ok_or(CoreError::NotFound { kind: "fusione" })?;
        let mut f = fusione_of(&row)?;
        let (superstite, fusa) = (f.superstite.clone(), f.fusa.clone());
        if caller.ufficio.as_deref().is_some_and(|u| u != f.ufficio_fusa) {
            return Err(CoreError::Denied("only an ente-wide caller undoes a merge of another ufficio's persona"));
        }
        if !lock_persone(&mut tx, &caller.ente, &[&superstite]).await? {
            return Err(CoreError::Conflict("the survivor was merged into another persona since: undo that merge first"));
        }
        let body: Vec<u8> = row.try_get("fusa_body")?;
        // Its merge took one version: coming back takes the next.
        let version = row.try_get::<i64, _>("fusa_version")? + 2;
        let body = rewrite::<Persona>(&body, version, &at, &caller.subject, |_| {})?;
        let persona = Persona::decode(body.as_slice()).map_err(|_| CoreError::Internal("undecodable persona record".into()))?;
        if !persona.codice_fiscale.is_empty() {
            let taken = Q::new("SELECT 1 AS x FROM persona WHERE ente = ")
                .bind_text(&caller.ente)
                .push(" AND codice_fiscale = ")
                .bind_text(&persona.codice_fiscale)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if taken {
                return Err(CoreError::Conflict("another persona now holds the merged persona's codice fiscale"));
            }
        }
        let mut q = Q::new("INSERT INTO persona (id, version, ente, ufficio, persona_id, created_at, updated_at, updated_by, body");
        let cols = persona.columns();
        for (c, _) in &cols {
            q.push(", ").push(c);
        }
        q.push(") VALUES (").bind_text(&fusa).push(", ").bind_int(version).push(", ").bind_text(&caller.ente);
        q.push(", ").bind_text(&f.ufficio_fusa).push(", ").bind_text(&fusa);
        q.push(", ").bind_text(&row.try_get::<String, _>("fusa_created_at")?).push(", ").bind_text(&at);
        q.push(", ").bind_text(&caller.subject).push(", ").bind(Val::Bytes(body));
        for (_, v) in cols {
            q.push(", ").bind(v);
        }
        q.push(")");
        q.execute(&mut *tx).await?;
        let spostati: String = row.try_get("spostati")?;
        for entry in spostati.lines() {
            let Some((what, id)) = entry.split_once(':') else { continue };
            match what {
                "membro+" => self.repoint_member(&mut tx, caller, id, &superstite, Some(&fusa), &at).await?,
                "membro-" => self.add_member(&mut tx, caller, id, &fusa, &at).await?,
                "origine" => {
                    let (origine, id_locale) = id.split_once('\t').unwrap_or((id, ""));
                    Q::new("UPDATE import_origine SET record_id = ")
                        .bind_text(&fusa)
                        .push(" WHERE ente = ")
                        .bind_text(&caller.ente)
                        .push(" AND kind = 'persona' AND origine = ")
                        .bind_text(origine)
                        .push(" AND id_locale = ")
                        .bind_text(id_locale)
                        .execute(&mut *tx)
                        .await?;
                }
                "revisione" => self.restore_pair_in(&mut tx, &caller.ente, id, &superstite, &fusa).await?,
                kind => {
                    let kind = Kind::parse(kind).ok_or_else(|| CoreError::Internal("unknown kind in a merge record".into()))?;
                    self.repoint(&mut tx, caller, kind, id, &superstite, &fusa, &at).await?;
                }
            }
        }
        // A pair decided or closed by this merge is open again: the decision was undone.
        Q::new("UPDATE revisione SET stato = ")
            .bind_text(super::revisione::APERTA)
            .push(", decided_at = NULL, decided_by = NULL, fusione_id = NULL WHERE fusione_id = ")
            .bind_text(fusione_id)
            .execute(&mut *tx)
            .await?;
        let place =
            Placement { ente: caller.ente.clone(), ufficio: f.ufficio_fusa.clone(), persona_id: Some(fusa.clone()), cartella_id: None };
        self.outbox(&mut tx, Kind::Persona, &fusa, OP_UPDATE, version, &place, &at).await?;
        self.touch_persona(&mut tx, caller, &superstite, &at).await?;
        audit(&mut *tx, caller, &at, "unmerge", Kind::Persona, &[&superstite, &fusa], "").await?;
        tx.commit().await?;
        self.notify();
        f.annullata_at = Some(at);
        Ok(f)
    }

    /// The merges of the caller's ente, newest first; only those of `persona_id` (as survivor
    /// or merged) when it is not empty. An ufficio-bound caller sees the merges of personas
    /// its ufficio registered or whose survivor it may read.
    pub async fn fusioni(&self, caller: &Caller, persona_id: &str, page: &Page) -> Result<(Vec<Fusione>, String)> {
        check_anagrafe(caller)?;
        let size = check_page(page)?;
        let (_, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let mut q = Q::new("SELECT ");
        q.push(FUSIONE_COLS).push(" FROM fusione WHERE ente = ").bind_text(&caller.ente);
        if let Some(u) = caller.ufficio.as_deref() {
            q.push(" AND (fusa_ufficio = ").bind_text(u).push(" OR superstite IN (SELECT id FROM persona WHERE ");
            push_scope(&mut q, caller, ScopeClass::Persona, Mode::Read, &today_s);
            q.push("))");
        }
        if !persona_id.is_empty() {
            q.push(" AND (superstite = ").bind_text(persona_id).push(" OR fusa = ").bind_text(persona_id).push(")");
        }
        if !page.token.is_empty() {
            q.push(" AND id < ").bind_text(&page.token);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_int(i64::from(size) + 1);
        let rows = q.fetch_all(&self.pool).await?;
        let out = rows.iter().take(size as usize).map(fusione_of).collect::<Result<Vec<_>>>()?;
        let next = if rows.len() > size as usize { out.last().map(|f| f.id.clone()).unwrap_or_default() } else { String::new() };
        Ok((out, next))
    }

    /// A new version of a persona whose records changed around it (a merge or its undoing):
    /// the row, its body's meta and an outbox row, so followers read it again.
    async fn touch_persona(&self, tx: &mut Transaction<'static, Any>, caller: &Caller, id: &str, at: &str) -> Result<()> {
        let row = Q::new("SELECT version, ente, ufficio, body FROM persona WHERE id = ")
            .bind_text(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(CoreError::NotFound { kind: "persona" })?;
        let version = row.try_get::<i64, _>("version")? + 1;
        let body = rewrite::<Persona>(&row.try_get::<Vec<u8>, _>("body")?, version, at, &caller.subject, |_| {})?;
        Q::new("UPDATE persona SET version = ")
            .bind_int(version)
            .push(", updated_at = ")
            .bind_text(at)
            .push(", updated_by = ")
            .bind_text(&caller.subject)
            .push(", body = ")
            .bind(Val::Bytes(body))
            .push(" WHERE id = ")
            .bind_text(id)
            .execute(&mut **tx)
            .await?;
        let place =
            Placement { ente: row.try_get("ente")?, ufficio: row.try_get("ufficio")?, persona_id: Some(id.to_string()), cartella_id: None };
        self.outbox(tx, Kind::Persona, id, OP_UPDATE, version, &place, at).await
    }

    /// Points one record from persona `from` to `to`: the column, and the body for the
    /// kinds whose message carries the persona's id; a new version and an outbox row.
    #[allow(clippy::too_many_arguments)]
    async fn repoint(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        kind: Kind,
        id: &str,
        from: &str,
        to: &str,
        at: &str,
    ) -> Result<()> {
        let mut q = Q::new("SELECT version, ente, ufficio, cartella_id, body FROM ");
        q.push(kind.table()).push(" WHERE id = ").bind_text(id);
        let Some(row) = q.fetch_optional(&mut **tx).await? else { return Ok(()) };
        let body: Vec<u8> = row.try_get("body")?;
        let version = row.try_get::<i64, _>("version")? + 1;
        let by = caller.subject.as_str();
        let body = match kind {
            Kind::Accesso => rewrite::<Accesso>(&body, version, at, by, |a| a.persona_id = to.to_string())?,
            Kind::Cartella => rewrite::<Cartella>(&body, version, at, by, |c| c.persona_id = to.to_string())?,
            Kind::Nucleo => rewrite::<Nucleo>(&body, version, at, by, |n| {
                if n.persona_riferimento_id == from {
                    n.persona_riferimento_id = to.to_string();
                }
            })?,
            Kind::Diario => rewrite::<DiarioEntry>(&body, version, at, by, |_| {})?,
            Kind::Valutazione => rewrite::<Valutazione>(&body, version, at, by, |_| {})?,
            Kind::Pai => rewrite::<Pai>(&body, version, at, by, |_| {})?,
            Kind::Prestazione => rewrite::<Prestazione>(&body, version, at, by, |_| {})?,
            Kind::Condivisione => rewrite::<Condivisione>(&body, version, at, by, |_| {})?,
            Kind::Persona => return Err(CoreError::Internal("a persona is not moved to another persona".into())),
        };
        let mut q = Q::new("UPDATE ");
        q.push(kind.table()).push(" SET persona_id = ").bind_text(to).push(", version = ").bind_int(version);
        q.push(", updated_at = ").bind_text(at).push(", updated_by = ").bind_text(by);
        q.push(", body = ").bind(Val::Bytes(body)).push(" WHERE id = ").bind_text(id);
        q.execute(&mut **tx).await?;
        let place = Placement {
            ente: row.try_get("ente")?,
            ufficio: row.try_get("ufficio")?,
            persona_id: Some(to.to_string()),
            cartella_id: row.try_get("cartella_id")?,
        };
        self.outbox(tx, kind, id, OP_UPDATE, version, &place, at).await
    }

    /// In household `nid`, replaces member `from` with `to` (or removes `from` when `to` is
    /// None: `to` already belongs).
    async fn repoint_member(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        nid: &str,
        from: &str,
        to: Option<&str>,
        at: &str,
    ) -> Result<()> {
        Q::new("DELETE FROM nucleo_membro WHERE nucleo_id = ")
            .bind_text(nid)
            .push(" AND persona_id = ")
            .bind_text(from)
            .execute(&mut **tx)
            .await?;
        if let Some(to) = to {
            Q::new("INSERT INTO nucleo_membro (nucleo_id, persona_id) VALUES (")
                .bind_text(nid)
                .push(", ")
                .bind_text(to)
                .push(")")
                .execute(&mut **tx)
                .await?;
        }
        self.rewrite_members(tx, caller, nid, at, |membri| match to {
            Some(to) => membri.iter_mut().filter(|m| m.persona_id == from).for_each(|m| m.persona_id = to.to_string()),
            None => membri.retain(|m| m.persona_id != from),
        })
        .await
    }

    async fn add_member(&self, tx: &mut Transaction<'static, Any>, caller: &Caller, nid: &str, who: &str, at: &str) -> Result<()> {
        Q::new("INSERT INTO nucleo_membro (nucleo_id, persona_id) VALUES (")
            .bind_text(nid)
            .push(", ")
            .bind_text(who)
            .push(")")
            .execute(&mut **tx)
            .await?;
        self.rewrite_members(tx, caller, nid, at, |membri| {
            membri.push(MembroNucleo { persona_id: who.to_string(), parentela: 0 });
        })
        .await
    }

    async fn rewrite_members(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        nid: &str,
        at: &str,
        change: impl FnOnce(&mut Vec<MembroNucleo>),
    ) -> Result<()> {
        let Some(row) = Q::new("SELECT version, ente, ufficio, persona_id, body FROM nucleo WHERE id = ")
            .bind_text(nid)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(());
        };
        let version = row.try_get::<i64, _>("version")? + 1;
        let body = rewrite::<Nucleo>(&row.try_get::<Vec<u8>, _>("body")?, version, at, &caller.subject, |n| change(&mut n.membri))?;
        Q::new("UPDATE nucleo SET version = ")
            .bind_int(version)
            .push(", updated_at = ")
            .bind_text(at)
            .push(", updated_by = ")
            .bind_text(&caller.subject)
            .push(", body = ")
            .bind(Val::Bytes(body))
            .push(" WHERE id = ")
            .bind_text(nid)
            .execute(&mut **tx)
            .await?;
        let place = Placement {
            ente: row.try_get("ente")?,
            ufficio: row.try_get("ufficio")?,
            persona_id: row.try_get("persona_id")?,
            cartella_id: None,
        };
        self.outbox(tx, Kind::Nucleo, nid, OP_UPDATE, version, &place, at).await
    }
}

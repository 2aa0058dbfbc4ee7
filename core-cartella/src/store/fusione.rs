//! Merging two personas found to be one person, and undoing it. The merge moves every
//! record that points at the merged persona (accessi, cartelle and what hangs from them,
//! prestazioni included, nuclei and their members, the import's office ids) to the
//! survivor, rewriting the bodies that carry the persona's id with a new version and an
//! outbox row each, so the feed and the adapters see the move. The merged persona's row is
//! kept in `fusione` with the list of what moved; the SIUSS ledger is keyed by prestazione
//! and is not touched, so its history stays as it was sent. Undoing puts the row back and
//! moves exactly the listed records back; records added to the survivor since stay.
use cartella_proto::v1::{Accesso, Cartella, Nucleo, Persona};
use prost::Message;
use sqlx::{Any, Row, Transaction};

use super::{Store, audit, now, records::Placement, sql::Q};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::{Kind, Record, Val},
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
    pub spostati: usize,
    pub annullata: bool,
}

impl Store {
    /// Merges persona `fusa` into `superstite` (same ente; an ufficio-bound caller only
    /// within its ufficio). Returns the merge's id.
    pub async fn merge_persone(&self, caller: &Caller, superstite: &str, fusa: &str) -> Result<String> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow writing"));
        }
        if superstite == fusa {
            return Err(CoreError::invalid("fusa_id", "is the survivor itself"));
        }
        let mut tx = self.pool.begin().await?;
        let (at, _) = now();
        for id in [superstite, fusa] {
            let row = Q::new("SELECT ufficio FROM persona WHERE id = ")
                .bind_text(id)
                .push(" AND ente = ")
                .bind_text(&caller.ente)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(CoreError::NotFound { kind: "persona" })?;
            let ufficio: String = row.try_get("ufficio")?;
            if caller.ufficio.as_deref().is_some_and(|u| u != ufficio) {
                return Err(CoreError::Denied("only an ente-wide caller merges personas of different uffici"));
            }
        }
        let mut moved: Vec<String> = Vec::new();
        for kind in TABLES {
            let mut q = Q::new("SELECT id FROM ");
            q.push(kind.table()).push(" WHERE persona_id = ").bind_text(fusa).push(" ORDER BY id");
            for r in q.fetch_all(&mut *tx).await? {
                let id: String = r.try_get("id")?;
                self.repoint(&mut tx, caller, kind, &id, fusa, superstite, &at).await?;
                moved.push(format!("{}:{id}", kind.name()));
            }
        }
        // Households where the merged persona is a member (not the reference).
        let rows = Q::new("SELECT nucleo_id FROM nucleo_membro WHERE persona_id = ").bind_text(fusa).fetch_all(&mut *tx).await?;
        for r in rows {
            let nid: String = r.try_get("nucleo_id")?;
            let both = Q::new("SELECT 1 AS x FROM nucleo_membro WHERE nucleo_id = ")
                .bind_text(&nid)
                .push(" AND persona_id = ")
                .bind_text(superstite)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            self.repoint_member(&mut tx, caller, &nid, fusa, (!both).then_some(superstite), &at).await?;
            moved.push(format!("{}:{nid}", if both { "membro-" } else { "membro+" }));
        }
        let rows = Q::new("SELECT origine, id_locale FROM import_origine WHERE kind = 'persona' AND record_id = ")
            .bind_text(fusa)
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            // Tab-separated: office names and local ids hold no tabs (CSV cells are trimmed).
            moved.push(format!("origine:{}\t{}", r.try_get::<String, _>("origine")?, r.try_get::<String, _>("id_locale")?));
        }
        Q::new("UPDATE import_origine SET record_id = ")
            .bind_text(superstite)
            .push(" WHERE record_id = ")
            .bind_text(fusa)
            .execute(&mut *tx)
            .await?;
        let row = Q::new("SELECT ufficio, version, created_at, updated_at, updated_by, body FROM persona WHERE id = ")
            .bind_text(fusa)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CoreError::NotFound { kind: "persona" })?;
        let id = uuid::Uuid::now_v7().to_string();
        let mut q = Q::new(
            "INSERT INTO fusione (id, ente, superstite, fusa, fusa_ufficio, fusa_version, fusa_created_at, fusa_updated_at, fusa_updated_by, fusa_body, spostati, at, actor) VALUES (",
        );
        q.bind_text(&id).push(", ").bind_text(&caller.ente).push(", ").bind_text(superstite).push(", ").bind_text(fusa);
        q.push(", ").bind_text(&row.try_get::<String, _>("ufficio")?).push(", ").bind_int(row.try_get("version")?);
        q.push(", ").bind_text(&row.try_get::<String, _>("created_at")?).push(", ").bind_text(&row.try_get::<String, _>("updated_at")?);
        q.push(", ").bind_text(&row.try_get::<String, _>("updated_by")?).push(", ").bind(Val::Bytes(row.try_get("body")?));
        q.push(", ").bind_text(&moved.join("\n")).push(", ").bind_text(&at).push(", ").bind_text(&caller.subject).push(")");
        q.execute(&mut *tx).await?;
        Q::new("DELETE FROM persona WHERE id = ").bind_text(fusa).execute(&mut *tx).await?;
        audit(&mut *tx, caller, &at, "merge", Kind::Persona, &[superstite, fusa], "").await?;
        tx.commit().await?;
        self.notify();
        Ok(id)
    }

    /// Undoes a merge: the merged persona comes back with its id and the records that moved.
    pub async fn unmerge_persone(&self, caller: &Caller, fusione_id: &str) -> Result<()> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow writing"));
        }
        let mut tx = self.pool.begin().await?;
        let (at, _) = now();
        let row = Q::new("SELECT * FROM fusione WHERE id = ")
            .bind_text(fusione_id)
            .push(" AND ente = ")
            .bind_text(&caller.ente)
            .push(" AND annullata_at IS NULL")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CoreError::NotFound { kind: "fusione" })?;
        let (superstite, fusa): (String, String) = (row.try_get("superstite")?, row.try_get("fusa")?);
        let ufficio: String = row.try_get("fusa_ufficio")?;
        if caller.ufficio.as_deref().is_some_and(|u| u != ufficio) {
            return Err(CoreError::Denied("only an ente-wide caller undoes a merge of another ufficio's persona"));
        }
        let body: Vec<u8> = row.try_get("fusa_body")?;
        let persona = Persona::decode(body.as_slice()).map_err(|_| CoreError::Internal("undecodable persona record".into()))?;
        let mut q = Q::new("INSERT INTO persona (id, version, ente, ufficio, created_at, updated_at, updated_by, body");
        let cols = persona.columns();
        for (c, _) in &cols {
            q.push(", ").push(c);
        }
        q.push(") VALUES (").bind_text(&fusa).push(", ").bind_int(row.try_get("fusa_version")?).push(", ").bind_text(&caller.ente);
        q.push(", ").bind_text(&ufficio).push(", ").bind_text(&row.try_get::<String, _>("fusa_created_at")?);
        q.push(", ")
            .bind_text(&row.try_get::<String, _>("fusa_updated_at")?)
            .push(", ")
            .bind_text(&row.try_get::<String, _>("fusa_updated_by")?);
        q.push(", ").bind(Val::Bytes(body));
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
                kind => {
                    let kind = Kind::parse(kind).ok_or_else(|| CoreError::Internal("unknown kind in a merge record".into()))?;
                    self.repoint(&mut tx, caller, kind, id, &superstite, &fusa, &at).await?;
                }
            }
        }
        Q::new("UPDATE fusione SET annullata_at = ").bind_text(&at).push(" WHERE id = ").bind_text(fusione_id).execute(&mut *tx).await?;
        audit(&mut *tx, caller, &at, "unmerge", Kind::Persona, &[&superstite, &fusa], "").await?;
        tx.commit().await?;
        self.notify();
        Ok(())
    }

    /// The merges of a persona (as survivor or merged), newest first.
    pub async fn fusioni(&self, caller: &Caller, persona_id: &str) -> Result<Vec<Fusione>> {
        let rows = Q::new("SELECT id, superstite, fusa, spostati, annullata_at FROM fusione WHERE ente = ")
            .bind_text(&caller.ente)
            .push(" AND (superstite = ")
            .bind_text(persona_id)
            .push(" OR fusa = ")
            .bind_text(persona_id)
            .push(") ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Fusione {
                    id: r.try_get("id")?,
                    superstite: r.try_get("superstite")?,
                    fusa: r.try_get("fusa")?,
                    spostati: r.try_get::<String, _>("spostati")?.lines().filter(|l| !l.starts_with("origine:")).count(),
                    annullata: r.try_get::<Option<String>, _>("annullata_at")?.is_some(),
                })
            })
            .collect()
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
        let undecodable = || CoreError::Internal(format!("undecodable {} record", kind.name()));
        let body = match kind {
            Kind::Accesso => {
                let mut a = Accesso::decode(body.as_slice()).map_err(|_| undecodable())?;
                a.persona_id = to.to_string();
                a.encode_to_vec()
            }
            Kind::Cartella => {
                let mut c = Cartella::decode(body.as_slice()).map_err(|_| undecodable())?;
                c.persona_id = to.to_string();
                c.encode_to_vec()
            }
            Kind::Nucleo => {
                let mut n = Nucleo::decode(body.as_slice()).map_err(|_| undecodable())?;
                if n.persona_riferimento_id == from {
                    n.persona_riferimento_id = to.to_string();
                }
                n.encode_to_vec()
            }
            _ => body,
        };
        let version = row.try_get::<i64, _>("version")? + 1;
        let mut q = Q::new("UPDATE ");
        q.push(kind.table()).push(" SET persona_id = ").bind_text(to).push(", version = ").bind_int(version);
        q.push(", updated_at = ").bind_text(at).push(", updated_by = ").bind_text(&caller.subject);
        q.push(", body = ").bind(Val::Bytes(body)).push(" WHERE id = ").bind_text(id);
        q.execute(&mut **tx).await?;
        let place = Placement {
            ente: row.try_get("ente")?,
            ufficio: row.try_get("ufficio")?,
            persona_id: Some(to.to_string()),
            cartella_id: row.try_get("cartella_id")?,
        };
        self.outbox(tx, kind, id, 2, version, &place, at).await
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
            membri.push(cartella_proto::v1::MembroNucleo { persona_id: who.to_string(), parentela: 0 });
        })
        .await
    }

    async fn rewrite_members(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        nid: &str,
        at: &str,
        change: impl FnOnce(&mut Vec<cartella_proto::v1::MembroNucleo>),
    ) -> Result<()> {
        let Some(row) = Q::new("SELECT version, ente, ufficio, persona_id, body FROM nucleo WHERE id = ")
            .bind_text(nid)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(());
        };
        let body: Vec<u8> = row.try_get("body")?;
        let mut n = Nucleo::decode(body.as_slice()).map_err(|_| CoreError::Internal("undecodable nucleo record".into()))?;
        change(&mut n.membri);
        let version = row.try_get::<i64, _>("version")? + 1;
        Q::new("UPDATE nucleo SET version = ")
            .bind_int(version)
            .push(", updated_at = ")
            .bind_text(at)
            .push(", updated_by = ")
            .bind_text(&caller.subject)
            .push(", body = ")
            .bind(Val::Bytes(n.encode_to_vec()))
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
        self.outbox(tx, Kind::Nucleo, nid, 2, version, &place, at).await
    }
}

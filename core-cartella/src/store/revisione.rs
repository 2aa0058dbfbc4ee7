//! The review queue: pairs of personas linkage left undecided, with the evidence (levels
//! and weights per field, never the values), and the decision on each: the same person
//! (merged, see `fusione`) or two people. Reading a pair's two personas side by side is
//! audited like any read; deciding is audited as a write.
use cartella_proto::v1::Persona;
use prost::Message;
use sqlx::{Any, Row, Transaction, any::AnyRow};

use super::{
    Page, Store, audit,
    fusione::check_anagrafe,
    now,
    scope::{Mode, push_scope},
    sql::Q,
};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::{Kind, ScopeClass},
};

#[derive(Debug, Clone, PartialEq)]
pub struct Revisione {
    pub id: String,
    pub persona_a: String,
    pub persona_b: String,
    /// The uffici that registered the two personas; None when a persona no longer exists.
    pub ufficio_a: Option<String>,
    pub ufficio_b: Option<String>,
    pub probabilita: f64,
    /// One `field: level (log2 m/u)` per line (see [`Evidenza::parse`]).
    pub evidenza: String,
    pub stato: String,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub fusione_id: Option<String>,
}

pub const APERTA: &str = "aperta";
pub const STESSA_PERSONA: &str = "stessa_persona";
pub const PERSONE_DIVERSE: &str = "persone_diverse";
/// Closed by a merge: the pair, moved onto the survivor, was already queued for it. Open
/// again (with its own personas) when that merge is undone.
pub const ASSORBITA: &str = "assorbita";

/// What a person decided about a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decisione {
    /// One person: the other persona of the pair is merged into `superstite`.
    StessaPersona {
        superstite: String,
    },
    PersoneDiverse,
}

/// How one field compares, as the evidence text says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Confronto {
    pub campo: String,
    pub livello: String,
    pub peso: f64,
    pub mancante: bool,
}

/// The evidence of a pair, read back from its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidenza {
    pub confronti: Vec<Confronto>,
    pub nomi_scambiati: bool,
    pub peso_totale: f64,
}

const SWAPPED: &str = "cognome e nome scambiati";
const TOTAL: &str = "peso complessivo";
const MISSING: &str = "mancante";

impl Evidenza {
    /// Reads the lines `import::load::evidence_text` writes: `field: level (+w.w)`,
    /// `field: mancante`, the swapped-names line and `peso complessivo: +w.w`. A line of
    /// another shape is kept as a field with no weight, so nothing written is lost.
    pub fn parse(text: &str) -> Self {
        let mut e = Evidenza::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line == SWAPPED {
                e.nomi_scambiati = true;
                continue;
            }
            let Some((campo, rest)) = line.split_once(": ") else {
                e.confronti.push(Confronto { campo: line.to_string(), livello: String::new(), peso: 0.0, mancante: false });
                continue;
            };
            if campo == TOTAL {
                e.peso_totale = rest.trim().parse().unwrap_or(0.0);
                continue;
            }
            if rest == MISSING {
                e.confronti.push(Confronto { campo: campo.to_string(), livello: MISSING.to_string(), peso: 0.0, mancante: true });
                continue;
            }
            let weighted = rest
                .strip_suffix(')')
                .and_then(|r| r.rsplit_once(" ("))
                .and_then(|(livello, w)| w.parse::<f64>().ok().map(|w| (livello, w)));
            let (livello, peso) = weighted.unwrap_or((rest, 0.0));
            e.confronti.push(Confronto { campo: campo.to_string(), livello: livello.to_string(), peso, mancante: false });
        }
        e
    }
}

/// One persona of a pair as the caller sees it: the record (None when it no longer exists)
/// and how many of its records the caller may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonaConfrontata {
    pub persona: Option<Persona>,
    pub cartelle: i64,
    pub accessi: i64,
    pub prestazioni: i64,
    pub nuclei: i64,
}

/// A pair with both personas, side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Dettaglio {
    pub revisione: Revisione,
    pub a: PersonaConfrontata,
    pub b: PersonaConfrontata,
}

/// A pair row with the uffici of its personas; callers add conditions on `r.` columns.
fn select() -> Q {
    Q::new(
        "SELECT r.id, r.persona_a, r.persona_b, CAST(ROUND(r.probabilita * 1000000) AS BIGINT) AS p, r.evidenza, r.stato, \
         r.created_at, r.decided_at, r.decided_by, r.fusione_id, pa.ufficio AS ufficio_a, pb.ufficio AS ufficio_b \
         FROM revisione r LEFT JOIN persona pa ON pa.id = r.persona_a LEFT JOIN persona pb ON pb.id = r.persona_b WHERE r.ente = ",
    )
}

/// ` AND (`column` names a persona the caller may read, or none at all on a decided pair)`:
/// a decided pair's merged persona no longer exists.
fn push_visible(q: &mut Q, caller: &Caller, column: &str, missing: &str, today: &str) {
    q.push(" AND (").push(column).push(" IN (SELECT id FROM persona WHERE ");
    push_scope(q, caller, ScopeClass::Persona, Mode::Read, today);
    q.push(") OR (r.stato <> ").bind_text(APERTA).push(" AND ").push(missing).push(" IS NULL))");
}

/// Page token of the queue: the last pair's probability (millionths) and id, `p-id`.
fn parse_token(token: &str) -> Result<Option<(i64, &str)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || CoreError::invalid("page.page_token", "is not a token this service issued");
    let (p, id) = token.split_once('-').ok_or_else(bad)?;
    let p: i64 = p.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Err(bad());
    }
    Ok(Some((p, id)))
}

impl Store {
    /// Queues a pair (ordered so a pair is queued once) unless it is already queued.
    pub async fn queue_review(&self, ente: &str, a: &str, b: &str, probabilita: f64, evidenza: &str) -> Result<bool> {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        if a == b {
            return Ok(false);
        }
        let (at, _) = now();
        let exists = Q::new("SELECT 1 AS x FROM revisione WHERE ente = ")
            .bind_text(ente)
            .push(" AND persona_a = ")
            .bind_text(a)
            .push(" AND persona_b = ")
            .bind_text(b)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if exists {
            return Ok(false);
        }
        let mut q = Q::new("INSERT INTO revisione (id, ente, persona_a, persona_b, probabilita, evidenza, stato, created_at) VALUES (");
        q.bind_text(&uuid::Uuid::now_v7().to_string()).push(", ").bind_text(ente).push(", ").bind_text(a).push(", ").bind_text(b);
        // sqlx::Any binds no floats portably here: millionths as an integer, divided in SQL.
        q.push(", ").bind_int((probabilita * 1e6).round() as i64).push(" / 1000000.0, ").bind_text(evidenza);
        q.push(", ").bind_text(APERTA).push(", ").bind_text(&at).push(")");
        q.execute(&self.pool).await?;
        Ok(true)
    }

    /// Pairs of the caller's ente in `stato` (open ones by default), most likely first.
    /// Only pairs whose personas the caller may read. An open pair names personas that
    /// exist: a merge moves the open pairs of the merged persona onto the survivor.
    pub async fn revisioni(&self, caller: &Caller, stato: &str, page: &Page) -> Result<(Vec<Revisione>, String)> {
        check_anagrafe(caller)?;
        let size = super::records::check_page(page)?;
        let after = parse_token(&page.token)?;
        let (_, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let mut q = select();
        q.bind_text(&caller.ente).push(" AND r.stato = ").bind_text(if stato.is_empty() { APERTA } else { stato });
        push_visible(&mut q, caller, "r.persona_a", "pa.id", &today_s);
        push_visible(&mut q, caller, "r.persona_b", "pb.id", &today_s);
        if let Some((p, id)) = after {
            const P: &str = "CAST(ROUND(r.probabilita * 1000000) AS BIGINT)";
            q.push(" AND (").push(P).push(" < ").bind_int(p);
            q.push(" OR (").push(P).push(" = ").bind_int(p).push(" AND r.id > ").bind_text(id).push("))");
        }
        q.push(" ORDER BY p DESC, r.id LIMIT ").bind_int(i64::from(size) + 1);
        let rows = q.fetch_all(&self.pool).await?;
        let out = rows.iter().take(size as usize).map(row_to).collect::<Result<Vec<_>>>()?;
        let next = match (rows.len() > size as usize, rows.get(size as usize - 1)) {
            (true, Some(last)) => format!("{}-{}", last.try_get::<i64, _>("p")?, last.try_get::<String, _>("id")?),
            _ => String::new(),
        };
        Ok((out, next))
    }

    /// One pair with both personas side by side: the read of the personas is audited with
    /// `purpose`. Refused when the caller may not read one of them.
    pub async fn revisione(&self, caller: &Caller, id: &str, purpose: &str) -> Result<Dettaglio> {
        check_anagrafe(caller)?;
        let purpose = caller.purpose_for(purpose)?;
        let (at, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let row = select()
            .bind_text(&caller.ente)
            .push(" AND r.id = ")
            .bind_text(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CoreError::NotFound { kind: "revisione" })?;
        let revisione = row_to(&row)?;
        let mut q = Q::new("SELECT id, body, CAST(CASE WHEN ");
        push_scope(&mut q, caller, ScopeClass::Persona, Mode::Read, &today_s);
        q.push(" THEN 1 ELSE 0 END AS BIGINT) AS visible FROM persona WHERE id IN (");
        q.bind_text(&revisione.persona_a).push(", ").bind_text(&revisione.persona_b).push(")");
        let mut a = PersonaConfrontata::default();
        let mut b = PersonaConfrontata::default();
        let mut read: Vec<String> = Vec::new();
        for r in q.fetch_all(&self.pool).await? {
            if r.try_get::<i64, _>("visible")? != 1 {
                return Err(CoreError::Denied("a persona of the pair belongs to another ufficio and no sharing basis allows this read"));
            }
            let pid: String = r.try_get("id")?;
            let body: Vec<u8> = r.try_get("body")?;
            let persona = Persona::decode(body.as_slice()).map_err(|_| CoreError::Internal("undecodable persona record".into()))?;
            let side = if pid == revisione.persona_a { &mut a } else { &mut b };
            *side = self.counts(caller, &pid, &today_s).await?;
            side.persona = Some(persona);
            read.push(pid);
        }
        let ids: Vec<&str> = read.iter().map(String::as_str).collect();
        self.audit_read(caller, &at, Kind::Persona, &ids, purpose).await?;
        Ok(Dettaglio { revisione, a, b })
    }

    /// The records of a persona the caller may see, by kind.
    async fn counts(&self, caller: &Caller, persona: &str, today: &str) -> Result<PersonaConfrontata> {
        let mut out = PersonaConfrontata::default();
        for (kind, slot) in [
            (Kind::Cartella, &mut out.cartelle),
            (Kind::Accesso, &mut out.accessi),
            (Kind::Prestazione, &mut out.prestazioni),
            (Kind::Nucleo, &mut out.nuclei),
        ] {
            let mut q = Q::new("SELECT COUNT(*) AS n FROM ");
            q.push(kind.table()).push(" WHERE ");
            push_scope(&mut q, caller, kind.scope_class(), Mode::Read, today);
            if kind == Kind::Nucleo {
                q.push(" AND (persona_id = ").bind_text(persona);
                q.push(" OR id IN (SELECT nucleo_id FROM nucleo_membro WHERE persona_id = ").bind_text(persona).push("))");
            } else {
                q.push(" AND persona_id = ").bind_text(persona);
            }
            *slot = q.fetch_optional(&self.pool).await?.map_or(Ok(0), |r| r.try_get("n"))?;
        }
        Ok(out)
    }

    /// Decides an open pair: the same person (merged into the chosen survivor, which must be
    /// one of the pair) or two people (the caller must be able to read both). The decision
    /// and the merge commit together.
    pub async fn decide_review(&self, caller: &Caller, id: &str, decisione: &Decisione) -> Result<Revisione> {
        check_anagrafe(caller)?;
        let mut tx = self.pool.begin().await?;
        let (at, today) = now();
        let row = select()
            .bind_text(&caller.ente)
            .push(" AND r.id = ")
            .bind_text(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CoreError::NotFound { kind: "revisione" })?;
        let mut r = row_to(&row)?;
        if r.stato != APERTA {
            return Err(CoreError::Conflict("the pair was already decided"));
        }
        let stato = match decisione {
            Decisione::StessaPersona { .. } => STESSA_PERSONA,
            Decisione::PersoneDiverse => PERSONE_DIVERSE,
        };
        // Claimed first: of two concurrent decisions one finds the pair decided.
        let claimed = Q::new("UPDATE revisione SET stato = ")
            .bind_text(stato)
            .push(", decided_at = ")
            .bind_text(&at)
            .push(", decided_by = ")
            .bind_text(&caller.subject)
            .push(" WHERE id = ")
            .bind_text(id)
            .push(" AND stato = ")
            .bind_text(APERTA)
            .execute(&mut *tx)
            .await?;
        if claimed != 1 {
            return Err(CoreError::Conflict("the pair was already decided"));
        }
        match decisione {
            Decisione::StessaPersona { superstite } => {
                let fusa = if *superstite == r.persona_a {
                    r.persona_b.clone()
                } else if *superstite == r.persona_b {
                    r.persona_a.clone()
                } else {
                    return Err(CoreError::invalid("decisione.superstite_id", "is not one of the pair's personas"));
                };
                let f = self.merge_in(&mut tx, caller, superstite, &fusa, &at).await?;
                Q::new("UPDATE revisione SET fusione_id = ").bind_text(&f.id).push(" WHERE id = ").bind_text(id).execute(&mut *tx).await?;
                r.fusione_id = Some(f.id);
            }
            Decisione::PersoneDiverse => {
                let today_s = crate::domain::codes::format_date(today);
                self.check_readable(&mut tx, caller, &[&r.persona_a, &r.persona_b], &today_s).await?;
                audit(&mut *tx, caller, &at, "distinct", Kind::Persona, &[&r.persona_a, &r.persona_b], "").await?;
            }
        }
        tx.commit().await?;
        self.notify();
        r.stato = stato.into();
        r.decided_at = Some(at);
        r.decided_by = Some(caller.subject.clone());
        Ok(r)
    }

    /// Moves the open pairs of persona `fusa` onto `superstite` within a merge, returning
    /// the ids of the pairs moved. A pair of the two personas themselves is closed as the
    /// same person, decided by the merge; a pair that would repeat one already queued for the
    /// survivor is closed as [`ASSORBITA`] (both reopen when the merge is undone).
    pub(super) async fn move_pairs_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        fusa: &str,
        superstite: &str,
        fusione_id: &str,
        at: &str,
    ) -> Result<Vec<String>> {
        let rows = Q::new("SELECT id, persona_a, persona_b FROM revisione WHERE ente = ")
            .bind_text(&caller.ente)
            .push(" AND stato = ")
            .bind_text(APERTA)
            .push(" AND (persona_a = ")
            .bind_text(fusa)
            .push(" OR persona_b = ")
            .bind_text(fusa)
            .push(") ORDER BY id")
            .fetch_all(&mut **tx)
            .await?;
        let mut moved = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let (a, b): (String, String) = (r.try_get("persona_a")?, r.try_get("persona_b")?);
            let other = if a == fusa { b } else { a };
            let close = |stato: &'static str| {
                let mut q = Q::new("UPDATE revisione SET stato = ");
                q.bind_text(stato).push(", decided_at = ").bind_text(at).push(", decided_by = ").bind_text(&caller.subject);
                q.push(", fusione_id = ").bind_text(fusione_id).push(" WHERE id = ").bind_text(&id);
                q
            };
            if other == superstite {
                close(STESSA_PERSONA).execute(&mut **tx).await?;
            } else if self.pair_exists(tx, &caller.ente, superstite, &other).await? {
                close(ASSORBITA).execute(&mut **tx).await?;
            } else {
                self.set_pair(tx, &id, superstite, &other).await?;
                moved.push(id);
            }
        }
        Ok(moved)
    }

    /// Undoing a merge, puts a pair it moved back onto the merged persona: when it is still
    /// open and names the survivor (a pair decided since keeps the personas it was decided
    /// on), and unless that pair is queued again meanwhile.
    pub(super) async fn restore_pair_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        ente: &str,
        id: &str,
        superstite: &str,
        fusa: &str,
    ) -> Result<()> {
        let Some(r) = Q::new("SELECT persona_a, persona_b, stato FROM revisione WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(ente)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(());
        };
        let (a, b, stato): (String, String, String) = (r.try_get("persona_a")?, r.try_get("persona_b")?, r.try_get("stato")?);
        let other = match (a == superstite, b == superstite) {
            (true, _) => b,
            (_, true) => a,
            _ => return Ok(()),
        };
        if stato != APERTA || other == fusa || self.pair_exists(tx, ente, fusa, &other).await? {
            return Ok(());
        }
        self.set_pair(tx, id, fusa, &other).await
    }

    async fn pair_exists(&self, tx: &mut Transaction<'static, Any>, ente: &str, x: &str, y: &str) -> Result<bool> {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Ok(Q::new("SELECT 1 AS x FROM revisione WHERE ente = ")
            .bind_text(ente)
            .push(" AND persona_a = ")
            .bind_text(a)
            .push(" AND persona_b = ")
            .bind_text(b)
            .fetch_optional(&mut **tx)
            .await?
            .is_some())
    }

    async fn set_pair(&self, tx: &mut Transaction<'static, Any>, id: &str, x: &str, y: &str) -> Result<()> {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Q::new("UPDATE revisione SET persona_a = ")
            .bind_text(a)
            .push(", persona_b = ")
            .bind_text(b)
            .push(" WHERE id = ")
            .bind_text(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// NotFound unless every persona exists in the caller's ente, Denied unless the caller
    /// may read each.
    async fn check_readable(&self, tx: &mut Transaction<'static, Any>, caller: &Caller, ids: &[&str], today: &str) -> Result<()> {
        for id in ids {
            let mut q = Q::new("SELECT CAST(CASE WHEN ");
            push_scope(&mut q, caller, ScopeClass::Persona, Mode::Read, today);
            q.push(" THEN 1 ELSE 0 END AS BIGINT) AS visible FROM persona WHERE id = ").bind_text(id);
            q.push(" AND ente = ").bind_text(&caller.ente);
            let row = q.fetch_optional(&mut **tx).await?.ok_or(CoreError::NotFound { kind: "persona" })?;
            if row.try_get::<i64, _>("visible")? != 1 {
                return Err(CoreError::Denied("a persona of the pair belongs to another ufficio and no sharing basis allows this read"));
            }
        }
        Ok(())
    }
}

fn row_to(r: &AnyRow) -> Result<Revisione> {
    Ok(Revisione {
        id: r.try_get("id")?,
        persona_a: r.try_get("persona_a")?,
        persona_b: r.try_get("persona_b")?,
        ufficio_a: r.try_get("ufficio_a")?,
        ufficio_b: r.try_get("ufficio_b")?,
        probabilita: r.try_get::<i64, _>("p")? as f64 / 1e6,
        evidenza: r.try_get("evidenza")?,
        stato: r.try_get("stato")?,
        created_at: r.try_get("created_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        fusione_id: r.try_get("fusione_id")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::linkage::{Comparison, Model};

    #[test]
    fn evidence_reads_back_what_the_import_writes() {
        // Two levels per field, weights log2(m/u) that are easy to read back.
        let model = Model { m: vec![vec![0.8, 0.2]; 6], u: vec![vec![0.1, 0.8]; 6], lambda: 0.01 };
        let c = Comparison { levels: [Some(0), Some(1), None, Some(0), Some(0), None], swapped_names: true };
        let text = crate::import::load::evidence_text(&model, &c, 4.26);
        let e = Evidenza::parse(&text);
        let campi: Vec<&str> = e.confronti.iter().map(|c| c.campo.as_str()).collect();
        assert_eq!(campi, ["cognome", "nome", "data_nascita", "luogo_nascita", "sesso", "codice_fiscale"]);
        assert_eq!(e.confronti[0].livello, "uguale");
        assert!((e.confronti[0].peso - 3.0).abs() < 1e-9, "{:?}", e.confronti[0]);
        assert_eq!(e.confronti[1].livello, "quasi uguale (Jaro-Winkler >= 0.92)", "a level naming a parenthesis keeps it");
        assert!((e.confronti[1].peso + 2.0).abs() < 1e-9);
        assert!(e.confronti[2].mancante && e.confronti[2].peso == 0.0 && e.confronti[2].livello == "mancante");
        assert!(e.nomi_scambiati);
        assert!((e.peso_totale - 4.3).abs() < 1e-9, "one decimal, as written");
    }

    #[test]
    fn evidence_of_other_shapes_is_kept() {
        let cases = [
            ("", Evidenza::default()),
            (
                "cognome: simile",
                Evidenza {
                    confronti: vec![Confronto { campo: "cognome".into(), livello: "simile".into(), peso: 0.0, mancante: false }],
                    ..Evidenza::default()
                },
            ),
            (
                "nota libera\npeso complessivo: non numerico",
                Evidenza {
                    confronti: vec![Confronto { campo: "nota libera".into(), livello: String::new(), peso: 0.0, mancante: false }],
                    ..Evidenza::default()
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Evidenza::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn page_tokens() {
        assert_eq!(parse_token("").unwrap(), None);
        assert_eq!(parse_token("720000-0190-ab").unwrap(), Some((720000, "0190-ab")));
        for bad in ["720000", "x-abc", "1-", "1-a b", "1-a'", "-1-a"] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}

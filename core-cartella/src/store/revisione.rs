//! The review queue: pairs of personas linkage left undecided, with the evidence (levels
//! and weights per field, never the values), and the decision on each: the same person
//! (merged, see `fusione`) or two people.
use sqlx::Row;

use super::{Store, audit, now, sql::Q};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::Kind,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Revisione {
    pub id: String,
    pub persona_a: String,
    pub persona_b: String,
    pub probabilita: f64,
    /// One `field: level (log2 m/u)` per line.
    pub evidenza: String,
    pub stato: String,
    pub fusione_id: Option<String>,
}

pub const APERTA: &str = "aperta";
pub const STESSA_PERSONA: &str = "stessa_persona";
pub const PERSONE_DIVERSE: &str = "persone_diverse";

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

    /// Open pairs of the caller's ente, most likely first.
    pub async fn review_queue(&self, caller: &Caller) -> Result<Vec<Revisione>> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow deciding on personas"));
        }
        let rows = Q::new("SELECT id, persona_a, persona_b, CAST(probabilita * 1000000 AS BIGINT) AS p, evidenza, stato, fusione_id FROM revisione WHERE ente = ")
            .bind_text(&caller.ente)
            .push(" AND stato = ")
            .bind_text(APERTA)
            .push(" ORDER BY probabilita DESC, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to).collect()
    }

    /// Decides a pair: `same` merges b into a (a survives), otherwise marks them different.
    pub async fn decide_review(&self, caller: &Caller, id: &str, same: bool) -> Result<Revisione> {
        let row = Q::new("SELECT id, persona_a, persona_b, CAST(probabilita * 1000000 AS BIGINT) AS p, evidenza, stato, fusione_id FROM revisione WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(&caller.ente)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CoreError::NotFound { kind: "revisione" })?;
        let mut r = row_to(&row)?;
        if r.stato != APERTA {
            return Err(CoreError::Conflict("the pair was already decided"));
        }
        let fusione = if same { Some(self.merge_persone(caller, &r.persona_a, &r.persona_b).await?) } else { None };
        let (at, _) = now();
        let stato = if same { STESSA_PERSONA } else { PERSONE_DIVERSE };
        let mut q = Q::new("UPDATE revisione SET stato = ");
        q.bind_text(stato).push(", decided_at = ").bind_text(&at).push(", decided_by = ").bind_text(&caller.subject);
        q.push(", fusione_id = ").bind(crate::record::Val::Text(fusione.clone())).push(" WHERE id = ").bind_text(id);
        q.execute(&self.pool).await?;
        if !same {
            audit(&self.pool, caller, &at, "distinct", Kind::Persona, &[&r.persona_a, &r.persona_b], "").await?;
        }
        r.stato = stato.into();
        r.fusione_id = fusione;
        Ok(r)
    }
}

fn row_to(r: &sqlx::any::AnyRow) -> Result<Revisione> {
    Ok(Revisione {
        id: r.try_get("id")?,
        persona_a: r.try_get("persona_a")?,
        persona_b: r.try_get("persona_b")?,
        probabilita: r.try_get::<i64, _>("p")? as f64 / 1e6,
        evidenza: r.try_get("evidenza")?,
        stato: r.try_get("stato")?,
        fusione_id: r.try_get("fusione_id")?,
    })
}

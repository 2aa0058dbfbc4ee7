//! What a delivery adapter loads for one cartella, read in one transaction with one group
//! commit of its audit rows: an adapter that sends whole cartelle would otherwise wait for
//! one audit commit per record kind it reads.
use cartella_proto::v1::{Accesso, Cartella, Condivisione, Nucleo, Pai, Persona, Prestazione, Valutazione};
use sqlx::{Any, Row, Transaction};

use super::{
    Backend, Store, audit_log, now,
    records::{ListFilter, MAX_PAGE, decode, read_visible},
    scope::{Mode, push_scope},
    sql::Q,
};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::{Kind, Record},
};

/// A cartella with everything it holds, as one delivery adapter loads it: read in one
/// transaction (a consistent snapshot on PostgreSQL) with one group commit of its audit rows.
#[derive(Clone, Debug)]
pub struct CartellaCompleta {
    pub cartella: Cartella,
    pub persona: Persona,
    /// The person's households, each with its members' records.
    pub nuclei: Vec<(Nucleo, Vec<Persona>)>,
    /// The person's accessi.
    pub accessi: Vec<Accesso>,
    pub valutazioni: Vec<Valutazione>,
    pub pai: Vec<Pai>,
    pub prestazioni: Vec<Prestazione>,
    pub condivisioni: Vec<Condivisione>,
}

/// Records read inside one transaction, and the audit rows they owe.
struct Letture<'a> {
    caller: &'a Caller,
    today: String,
    read: Vec<(Kind, String)>,
}

impl Letture<'_> {
    /// One record by id, within the caller's scope: None when there is none, Denied when
    /// it is out of scope (as [`Store::get`]).
    async fn one<R: Record>(&mut self, tx: &mut Transaction<'static, Any>, id: &str) -> Result<Option<R>> {
        let rec = read_visible::<R, _>(&mut **tx, self.caller, id, &self.today).await?;
        if rec.is_some() {
            self.read.push((R::KIND, id.to_string()));
        }
        Ok(rec)
    }

    /// Every record of a kind matching `filter` within the caller's scope, page by page.
    async fn all<R: Record>(&mut self, tx: &mut Transaction<'static, Any>, filter: &ListFilter) -> Result<Vec<R>> {
        let mut out = Vec::new();
        let mut last = String::new();
        loop {
            let mut q = Q::new("SELECT id, body FROM ");
            q.push(R::KIND.table()).push(" WHERE ");
            push_scope(&mut q, self.caller, R::KIND.scope_class(), Mode::Read, &self.today);
            filter.push(&mut q);
            if !last.is_empty() {
                q.push(" AND id > ").bind_text(&last);
            }
            q.push(" ORDER BY id LIMIT ").bind_int(i64::from(MAX_PAGE));
            let rows = q.fetch_all(&mut **tx).await?;
            for row in &rows {
                let id: String = row.try_get("id")?;
                out.push(decode::<R>(row)?);
                self.read.push((R::KIND, id.clone()));
                last = id;
            }
            if rows.len() < MAX_PAGE as usize {
                return Ok(out);
            }
        }
    }
}

impl Store {
    /// A cartella with its person, households (with their members), the person's accessi,
    /// and the cartella's valutazioni, PAI, prestazioni and condivisioni: None when the
    /// cartella or its person does not exist. Read in one transaction within the caller's
    /// scope; every record read is audited (one row each, one group commit for all) before
    /// anything is returned.
    pub async fn cartella_completa(&self, caller: &Caller, id: &str, purpose: &str) -> Result<Option<CartellaCompleta>> {
        if !caller.can_read() {
            return Err(CoreError::Denied("the caller's roles do not allow reading records"));
        }
        let purpose = caller.purpose_for(purpose)?;
        let (at, today) = now();
        let mut l = Letture { caller, today: crate::domain::codes::format_date(today), read: Vec::new() };
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            Q::new("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        }
        let loaded = self.completa_in(&mut tx, &mut l, id).await;
        // Read only: nothing to keep.
        tx.rollback().await?;
        let Some(c) = loaded? else { return Ok(None) };
        let mut rows = Vec::with_capacity(l.read.len());
        for (kind, id) in &l.read {
            rows.extend(audit_log::rows(caller, &at, "read", *kind, &[id.as_str()], purpose));
        }
        self.reads.commit(rows).await?;
        Ok(Some(c))
    }

    async fn completa_in(&self, tx: &mut Transaction<'static, Any>, l: &mut Letture<'_>, id: &str) -> Result<Option<CartellaCompleta>> {
        let Some(cartella) = l.one::<Cartella>(tx, id).await? else { return Ok(None) };
        let Some(persona) = l.one::<Persona>(tx, &cartella.persona_id).await? else { return Ok(None) };
        let mut nuclei = Vec::new();
        for n in l.all::<Nucleo>(tx, &ListFilter::default().nucleo_of(&cartella.persona_id)).await? {
            let mut membri = Vec::with_capacity(n.membri.len());
            for m in &n.membri {
                if let Some(p) = l.one::<Persona>(tx, &m.persona_id).await? {
                    membri.push(p);
                }
            }
            nuclei.push((n, membri));
        }
        let of_cartella = ListFilter::default().eq_text("cartella_id", id);
        Ok(Some(CartellaCompleta {
            accessi: l.all::<Accesso>(tx, &ListFilter::default().eq_text("persona_id", &cartella.persona_id)).await?,
            valutazioni: l.all::<Valutazione>(tx, &of_cartella).await?,
            pai: l.all::<Pai>(tx, &of_cartella).await?,
            prestazioni: l.all::<Prestazione>(tx, &of_cartella).await?,
            condivisioni: l.all::<Condivisione>(tx, &of_cartella).await?,
            persona,
            cartella,
            nuclei,
        }))
    }
}

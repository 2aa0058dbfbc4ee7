//! Create, read, update and list of any record kind, with tenancy and optimistic
//! concurrency. A write commits its audit and outbox rows in its own transaction; a read
//! returns once its audit rows are committed (see `audit_log`).
use cartella_proto::v1::{Condivisione, Meta, Persona};
use prost::Message;
use sqlx::{Any, Row, Transaction, any::AnyRow};

use super::{
    Store, audit, now,
    scope::{Mode, push_scope},
    sql::Q,
};
use crate::{
    auth::Caller,
    domain::{Violation, codes::normalize_name, codice_fiscale::CodiceFiscale},
    error::{CoreError, Result},
    record::{Kind, Record, ScopeClass, Val},
};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

#[derive(Clone, Debug, Default)]
pub struct Page {
    pub size: u32,
    pub token: String,
}

#[derive(Clone, Debug)]
enum Cond {
    Eq(&'static str, Val),
    Ge(&'static str, String),
    Le(&'static str, String),
    NucleoOf(String),
    PersonaInUfficio(String),
}

/// Filters of a list call; empty values are ignored so callers can pass request fields as is.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    conds: Vec<Cond>,
}

impl ListFilter {
    pub fn eq_text(mut self, col: &'static str, value: &str) -> Self {
        if !value.is_empty() {
            self.conds.push(Cond::Eq(col, Val::text(value)));
        }
        self
    }

    pub fn eq_int(mut self, col: &'static str, value: i32) -> Self {
        if value != 0 {
            self.conds.push(Cond::Eq(col, Val::Int(Some(i64::from(value)))));
        }
        self
    }

    pub fn from_date(mut self, col: &'static str, value: &str) -> Self {
        if !value.is_empty() {
            self.conds.push(Cond::Ge(col, value.to_string()));
        }
        self
    }

    pub fn to_date(mut self, col: &'static str, value: &str) -> Self {
        if !value.is_empty() {
            self.conds.push(Cond::Le(col, value.to_string()));
        }
        self
    }

    /// People with a cartella (or shared cartella) in `ufficio`.
    pub fn in_ufficio_cartelle(mut self, ufficio: &str) -> Self {
        self.conds.push(Cond::PersonaInUfficio(ufficio.to_string()));
        self
    }

    /// Households where the person is the reference person or a member.
    pub fn nucleo_of(mut self, persona_id: &str) -> Self {
        if !persona_id.is_empty() {
            self.conds.push(Cond::NucleoOf(persona_id.to_string()));
        }
        self
    }

    pub(super) fn push(&self, q: &mut Q) {
        for c in &self.conds {
            match c {
                Cond::Eq(col, v) => {
                    q.push(" AND ").push(col).push(" = ").bind(v.clone());
                }
                Cond::Ge(col, v) => {
                    q.push(" AND ").push(col).push(" >= ").bind_text(v);
                }
                Cond::Le(col, v) => {
                    q.push(" AND ").push(col).push(" <= ").bind_text(v);
                }
                Cond::PersonaInUfficio(u) => {
                    q.push(" AND id IN (SELECT persona_id FROM cartella WHERE ufficio = ").bind_text(u).push(")");
                }
                Cond::NucleoOf(p) => {
                    q.push(" AND (persona_id = ").bind_text(p);
                    q.push(" OR id IN (SELECT nucleo_id FROM nucleo_membro WHERE persona_id = ").bind_text(p).push("))");
                }
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PersonaSearch {
    pub codice_fiscale: String,
    pub cognome: String,
    pub nome: String,
    pub data_nascita: String,
    pub purpose: String,
}

/// Path prefix of a kind's message in requests, for field violations.
fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Diario => "entry",
        k => k.name(),
    }
}

fn invalid(kind: Kind, field: &str, description: &str) -> CoreError {
    CoreError::Invalid(vec![Violation { field: format!("{}.{field}", prefix(kind)), description: description.to_string() }])
}

/// One record by id within the caller's scope on `today`, not audited: None when there is
/// none, Denied when it is out of scope. Callers audit what they return.
pub(super) async fn read_visible<'c, R: Record, E: sqlx::Executor<'c, Database = Any>>(
    e: E,
    caller: &Caller,
    id: &str,
    today: &str,
) -> Result<Option<R>> {
    let mut q = Q::new("SELECT body, CAST(CASE WHEN ");
    push_scope(&mut q, caller, R::KIND.scope_class(), Mode::Read, today);
    q.push(" THEN 1 ELSE 0 END AS BIGINT) AS visible FROM ").push(R::KIND.table()).push(" WHERE id = ").bind_text(id);
    let Some(row) = q.fetch_optional(e).await? else { return Ok(None) };
    if row.try_get::<i64, _>("visible")? != 1 {
        return Err(CoreError::Denied("the record belongs to another ufficio and no sharing basis allows this read"));
    }
    decode::<R>(&row).map(Some)
}

pub(super) fn decode<R: Record>(row: &AnyRow) -> Result<R> {
    let body: Vec<u8> = row.try_get("body")?;
    R::decode(body.as_slice()).map_err(|_| CoreError::Internal(format!("undecodable {} record", R::KIND.name())))
}

pub(super) fn check_page(page: &Page) -> Result<u32> {
    if !page.token.is_empty() && (page.token.len() > 64 || !page.token.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')) {
        return Err(CoreError::invalid("page.page_token", "is not a token this service issued"));
    }
    Ok(match page.size {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    })
}

/// Owner and links a new record gets.
pub(super) struct Placement {
    pub(super) ente: String,
    pub(super) ufficio: String,
    pub(super) persona_id: Option<String>,
    pub(super) cartella_id: Option<String>,
}

impl Store {
    pub async fn create<R: Record>(&self, caller: &Caller, rec: R) -> Result<R> {
        let cf = (R::KIND == Kind::Persona).then(|| rec.codice_fiscale_ref().to_string());
        let mut tx = self.pool.begin().await?;
        match self.create_in(&mut tx, caller, rec).await {
            Ok(rec) => {
                tx.commit().await?;
                self.notify();
                Ok(rec)
            }
            // Another writer stored the same codice fiscale between the check and the insert:
            // answer as the check would have, with the id now committed.
            Err(CoreError::Store(e)) if is_unique_violation(&e) && cf.as_deref().is_some_and(|c| !c.is_empty()) => {
                drop(tx);
                match self.persona_id_by_cf(&caller.ente, cf.as_deref().unwrap_or_default()).await? {
                    Some(id) => Err(CoreError::PersonaExists { id }),
                    None => Err(CoreError::Store(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn persona_id_by_cf(&self, ente: &str, cf: &str) -> Result<Option<String>> {
        let row = Q::new("SELECT id FROM persona WHERE ente = ")
            .bind_text(ente)
            .push(" AND codice_fiscale = ")
            .bind_text(cf)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>("id")).transpose()?)
    }

    /// `create` inside the caller's transaction: the record, its audit row and its outbox
    /// row. The caller commits, then calls `notify`.
    pub(super) async fn create_in<R: Record>(&self, tx: &mut Transaction<'static, Any>, caller: &Caller, mut rec: R) -> Result<R> {
        let (at, today) = now();
        self.create_with(tx, caller, &mut rec, &at, today).await?;
        Ok(rec)
    }

    /// Validates, places and inserts a new record with its audit and outbox rows in the
    /// caller's transaction (the import writes a person and their records in one).
    pub(crate) async fn create_with<R: Record>(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        rec: &mut R,
        at: &str,
        today: time::Date,
    ) -> Result<()> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow writing"));
        }
        let violations = rec.validate(today);
        if !violations.is_empty() {
            return Err(CoreError::Invalid(violations));
        }
        let today_s = crate::domain::codes::format_date(today);
        let id = uuid::Uuid::now_v7().to_string();
        let place = self.place(tx, caller, &*rec, &id, &today_s).await?;
        if R::KIND == Kind::Persona {
            self.check_cf_unique(tx, &place.ente, &*rec, None).await?;
        }
        let meta = rec.meta_mut();
        *meta = Meta {
            id: id.clone(),
            version: 1,
            ente: place.ente.clone(),
            ufficio: place.ufficio.clone(),
            created_at: at.to_string(),
            updated_at: at.to_string(),
            updated_by: caller.subject.clone(),
        };
        let mut q = Q::new("INSERT INTO ");
        q.push(R::KIND.table());
        q.push(" (id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body");
        let cols = rec.columns();
        for (c, _) in &cols {
            q.push(", ").push(c);
        }
        q.push(") VALUES (").bind_text(&id).push(", ").bind_int(1).push(", ").bind_text(&place.ente);
        q.push(", ").bind_text(&place.ufficio).push(", ").bind(Val::Text(place.persona_id.clone()));
        q.push(", ").bind(Val::Text(place.cartella_id.clone())).push(", ").bind_text(at).push(", ").bind_text(at);
        q.push(", ").bind_text(&caller.subject).push(", ").bind(Val::Bytes(rec.encode_to_vec()));
        for (_, v) in cols {
            q.push(", ").bind(v);
        }
        q.push(")");
        q.execute(&mut **tx).await?;
        if R::KIND == Kind::Nucleo {
            self.replace_members(tx, &id, &*rec).await?;
        }
        audit(&mut **tx, caller, at, "create", R::KIND, &[&id], "").await?;
        self.outbox(tx, R::KIND, &id, 1, 1, &place, at).await?;
        Ok(())
    }

    pub async fn get<R: Record>(&self, caller: &Caller, id: &str, purpose: &str) -> Result<R> {
        if !caller.can_read() {
            return Err(CoreError::Denied("the caller's roles do not allow reading records"));
        }
        let purpose = caller.purpose_for(purpose)?;
        let (at, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let rec = read_visible::<R, _>(&self.pool, caller, id, &today_s).await?.ok_or(CoreError::NotFound { kind: R::KIND.name() })?;
        self.audit_read(caller, &at, R::KIND, &[id], purpose).await?;
        Ok(rec)
    }

    /// Ends a sharing basis now: its validity ends yesterday (the scope SQL stops honouring
    /// it at once), the record keeps when and why, and the revocation is audited and sent to
    /// the feed like any change. Only the owning ufficio or an ente-wide writer may revoke.
    pub async fn revoke_condivisione(&self, caller: &Caller, id: &str, motivo: &str) -> Result<Condivisione> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow writing"));
        }
        let violations = crate::domain::validate::motivo_revoca(motivo);
        if !violations.is_empty() {
            return Err(CoreError::Invalid(violations));
        }
        let (at, today) = now();
        let mut tx = self.pool.begin().await?;
        let row = Q::new("SELECT version, ente, ufficio, persona_id, cartella_id, body FROM condivisione WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(&caller.ente)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CoreError::NotFound { kind: Kind::Condivisione.name() })?;
        let owner: String = row.try_get("ufficio")?;
        if caller.ufficio.as_deref().is_some_and(|u| u != owner) {
            return Err(CoreError::Denied("only the ufficio that shared the cartella may revoke the sharing"));
        }
        let mut rec = decode::<Condivisione>(&row)?;
        if !rec.revocata_il.is_empty() {
            return Ok(rec);
        }
        let version = row.try_get::<i64, _>("version")? + 1;
        let yesterday = crate::domain::codes::format_date(today.previous_day().unwrap_or(today));
        rec.valida_fino_al = yesterday.clone();
        rec.revocata_il = at.clone();
        rec.motivo_revoca = motivo.to_string();
        let old = rec.meta.clone().unwrap_or_default();
        rec.meta = Some(Meta { version, updated_at: at.clone(), updated_by: caller.subject.clone(), ..old });
        Q::new("UPDATE condivisione SET version = ")
            .bind_int(version)
            .push(", updated_at = ")
            .bind_text(&at)
            .push(", updated_by = ")
            .bind_text(&caller.subject)
            .push(", valida_fino_al = ")
            .bind_text(&yesterday)
            .push(", body = ")
            .bind(Val::Bytes(rec.encode_to_vec()))
            .push(" WHERE id = ")
            .bind_text(id)
            .execute(&mut *tx)
            .await?;
        let place = Placement {
            ente: row.try_get("ente")?,
            ufficio: owner,
            persona_id: row.try_get("persona_id")?,
            cartella_id: row.try_get("cartella_id")?,
        };
        audit(&mut *tx, caller, &at, "revoke", Kind::Condivisione, &[id], "").await?;
        self.outbox(&mut tx, Kind::Condivisione, id, 2, version, &place, &at).await?;
        tx.commit().await?;
        self.notify();
        Ok(rec)
    }

    pub async fn update<R: Record>(&self, caller: &Caller, mut rec: R) -> Result<R> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow writing"));
        }
        let id = rec.id().to_string();
        if id.is_empty() {
            return Err(invalid(R::KIND, "meta.id", "is required"));
        }
        if rec.version() < 1 {
            return Err(invalid(R::KIND, "meta.version", "is required: send the version you read"));
        }
        let (at, today) = now();
        let violations = rec.validate(today);
        if !violations.is_empty() {
            return Err(CoreError::Invalid(violations));
        }
        let today_s = crate::domain::codes::format_date(today);
        let mut tx = self.pool.begin().await?;
        let mut q = Q::new("SELECT version, ente, ufficio, persona_id, cartella_id, body, CAST(CASE WHEN ");
        push_scope(&mut q, caller, R::KIND.scope_class(), Mode::Write, &today_s);
        q.push(" THEN 1 ELSE 0 END AS BIGINT) AS writable FROM ").push(R::KIND.table()).push(" WHERE id = ").bind_text(&id);
        let row = q.fetch_optional(&mut *tx).await?.ok_or(CoreError::NotFound { kind: R::KIND.name() })?;
        if row.try_get::<i64, _>("writable")? != 1 {
            return Err(CoreError::Denied("the record belongs to another ufficio and no sharing basis allows this change"));
        }
        let current: i64 = row.try_get("version")?;
        if current != rec.version() {
            return Err(CoreError::Stale { kind: R::KIND.name(), current });
        }
        let stored = decode::<R>(&row)?;
        let stored_persona: Option<String> = row.try_get("persona_id")?;
        let stored_cartella: Option<String> = row.try_get("cartella_id")?;
        if R::KIND.is_cartella_child() && Some(rec.cartella_ref()) != stored_cartella.as_deref() {
            return Err(invalid(R::KIND, "cartella_id", "cannot be changed"));
        }
        if matches!(R::KIND, Kind::Cartella | Kind::Accesso) && Some(rec.persona_ref()) != stored_persona.as_deref() {
            return Err(invalid(R::KIND, "persona_id", "cannot be changed"));
        }
        let place = Placement {
            ente: row.try_get("ente")?,
            ufficio: row.try_get("ufficio")?,
            persona_id: if R::KIND == Kind::Nucleo { Some(rec.persona_ref().to_string()) } else { stored_persona },
            cartella_id: stored_cartella,
        };
        if R::KIND == Kind::Nucleo {
            self.check_nucleo_refs(&mut tx, &rec, &place.ente).await?;
        }
        if R::KIND == Kind::Persona {
            self.check_cf_unique(&mut tx, &place.ente, &rec, Some(&id)).await?;
        }
        let old = stored.meta_ref().cloned().unwrap_or_default();
        let version = current + 1;
        *rec.meta_mut() = Meta { version, updated_at: at.clone(), updated_by: caller.subject.clone(), ..old };
        let mut q = Q::new("UPDATE ");
        q.push(R::KIND.table()).push(" SET version = ").bind_int(version);
        q.push(", updated_at = ").bind_text(&at).push(", updated_by = ").bind_text(&caller.subject);
        q.push(", persona_id = ").bind(Val::Text(place.persona_id.clone()));
        q.push(", body = ").bind(Val::Bytes(rec.encode_to_vec()));
        for (c, v) in rec.columns() {
            q.push(", ").push(c).push(" = ").bind(v);
        }
        q.push(" WHERE id = ").bind_text(&id).push(" AND version = ").bind_int(current);
        let n = match q.execute(&mut *tx).await {
            Ok(n) => n,
            Err(e) if R::KIND == Kind::Persona && is_unique_violation(&e) => {
                return Err(invalid(R::KIND, "codice_fiscale", "belongs to another persona"));
            }
            Err(e) => return Err(e.into()),
        };
        if n != 1 {
            return Err(CoreError::Stale { kind: R::KIND.name(), current });
        }
        if R::KIND == Kind::Nucleo {
            self.replace_members(&mut tx, &id, &rec).await?;
        }
        audit(&mut *tx, caller, &at, "update", R::KIND, &[&id], "").await?;
        self.outbox(&mut tx, R::KIND, &id, 2, version, &place, &at).await?;
        tx.commit().await?;
        self.notify();
        Ok(rec)
    }

    pub async fn list<R: Record>(&self, caller: &Caller, filter: &ListFilter, page: &Page, purpose: &str) -> Result<(Vec<R>, String)> {
        if !caller.can_read() {
            return Err(CoreError::Denied("the caller's roles do not allow reading records"));
        }
        let purpose = caller.purpose_for(purpose)?;
        let size = check_page(page)?;
        let (at, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let mut q = Q::new("SELECT id, body FROM ");
        q.push(R::KIND.table()).push(" WHERE ");
        push_scope(&mut q, caller, R::KIND.scope_class(), Mode::Read, &today_s);
        filter.push(&mut q);
        self.page_rows::<R>(caller, q, page, size, &at, purpose).await
    }

    /// Exact codice fiscale across the ente (the person is in front of the operator), or
    /// name prefixes within the caller's scope.
    pub async fn search_persone(&self, caller: &Caller, s: &PersonaSearch, page: &Page) -> Result<(Vec<Persona>, String)> {
        if !caller.can_read() {
            return Err(CoreError::Denied("the caller's roles do not allow reading records"));
        }
        let purpose = caller.purpose_for(&s.purpose)?;
        let size = check_page(page)?;
        let (at, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let mut q = Q::new("SELECT id, body FROM persona WHERE ");
        if !s.codice_fiscale.trim().is_empty() {
            let cf = CodiceFiscale::parse(&s.codice_fiscale).map_err(|e| CoreError::invalid("codice_fiscale", &e.to_string()))?;
            q.push("ente = ").bind_text(&caller.ente).push(" AND codice_fiscale = ").bind_text(cf.expose());
        } else {
            let cognome = normalize_name(&s.cognome);
            if cognome.chars().count() < 2 {
                return Err(CoreError::invalid("cognome", "give a codice_fiscale or at least 2 letters of the cognome"));
            }
            push_scope(&mut q, caller, ScopeClass::Persona, Mode::Read, &today_s);
            q.push(" AND cognome_norm LIKE ").bind_text(&like_prefix(&cognome)).push(" ESCAPE '\\'");
            let nome = normalize_name(&s.nome);
            if !nome.is_empty() {
                q.push(" AND nome_norm LIKE ").bind_text(&like_prefix(&nome)).push(" ESCAPE '\\'");
            }
            if !s.data_nascita.is_empty() {
                q.push(" AND data_nascita = ").bind_text(&s.data_nascita);
            }
        }
        self.page_rows::<Persona>(caller, q, page, size, &at, purpose).await
    }

    async fn page_rows<R: Record>(
        &self,
        caller: &Caller,
        mut q: Q,
        page: &Page,
        size: u32,
        at: &str,
        purpose: &str,
    ) -> Result<(Vec<R>, String)> {
        if !page.token.is_empty() {
            q.push(" AND id > ").bind_text(&page.token);
        }
        q.push(" ORDER BY id LIMIT ").bind_int(i64::from(size) + 1);
        let rows = q.fetch_all(&self.pool).await?;
        let mut ids: Vec<String> = Vec::with_capacity(rows.len());
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.iter().take(size as usize) {
            ids.push(row.try_get("id")?);
            out.push(decode::<R>(row)?);
        }
        let next = if rows.len() > size as usize { ids.last().cloned().unwrap_or_default() } else { String::new() };
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.audit_read(caller, at, R::KIND, &id_refs, purpose).await?;
        Ok((out, next))
    }

    /// Decides owner and links of a new record, checking the records it refers to.
    async fn place<R: Record>(
        &self,
        tx: &mut Transaction<'static, Any>,
        caller: &Caller,
        rec: &R,
        id: &str,
        today: &str,
    ) -> Result<Placement> {
        let kind = R::KIND;
        if kind.is_cartella_child() {
            let cartella_id = rec.cartella_ref();
            let mut q = Q::new("SELECT ente, ufficio, persona_id, CAST(CASE WHEN ");
            push_scope(&mut q, caller, ScopeClass::Cartella, Mode::Write, today);
            q.push(" THEN 1 ELSE 0 END AS BIGINT) AS writable FROM cartella WHERE id = ").bind_text(cartella_id);
            let row = q.fetch_optional(&mut **tx).await?.ok_or_else(|| invalid(kind, "cartella_id", "no such cartella"))?;
            if row.try_get::<i64, _>("writable")? != 1 {
                return Err(CoreError::Denied("the cartella belongs to another ufficio and no sharing basis allows this change"));
            }
            let ufficio: String = row.try_get("ufficio")?;
            if kind == Kind::Condivisione {
                if caller.ufficio.as_deref().is_some_and(|u| u != ufficio) {
                    return Err(CoreError::Denied("only the ufficio that owns a cartella may share it"));
                }
                if rec.grantee() == ufficio {
                    return Err(invalid(kind, "ufficio_destinatario", "is the ufficio that already owns the cartella"));
                }
            }
            return Ok(Placement {
                ente: row.try_get("ente")?,
                ufficio,
                persona_id: row.try_get("persona_id")?,
                cartella_id: Some(cartella_id.to_string()),
            });
        }
        let ufficio = match (&caller.ufficio, rec.meta_ref().map(|m| m.ufficio.as_str()).unwrap_or("")) {
            (Some(u), _) => u.clone(),
            (None, u) if !u.is_empty() => u.to_string(),
            (None, _) if kind == Kind::Persona => String::new(),
            (None, _) => return Err(invalid(kind, "meta.ufficio", "is required for callers not bound to an ufficio")),
        };
        let mut place = Placement { ente: caller.ente.clone(), ufficio, persona_id: None, cartella_id: None };
        match kind {
            Kind::Persona => place.persona_id = Some(id.to_string()),
            Kind::Nucleo => {
                self.check_nucleo_refs(tx, rec, &caller.ente).await?;
                place.persona_id = Some(rec.persona_ref().to_string());
            }
            Kind::Accesso | Kind::Cartella => {
                if !self.persona_exists(tx, rec.persona_ref(), &caller.ente).await? {
                    return Err(invalid(kind, "persona_id", "no such persona in this ente"));
                }
                place.persona_id = Some(rec.persona_ref().to_string());
                if kind == Kind::Cartella {
                    place.cartella_id = Some(id.to_string());
                    if !rec.accesso_ref().is_empty() {
                        let row = Q::new("SELECT persona_id FROM accesso WHERE id = ")
                            .bind_text(rec.accesso_ref())
                            .push(" AND ente = ")
                            .bind_text(&caller.ente)
                            .fetch_optional(&mut **tx)
                            .await?;
                        let same = match row {
                            Some(r) => r.try_get::<Option<String>, _>("persona_id")?.as_deref() == Some(rec.persona_ref()),
                            None => false,
                        };
                        if !same {
                            return Err(invalid(kind, "accesso_id", "no such accesso for this persona"));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(place)
    }

    async fn persona_exists(&self, tx: &mut Transaction<'static, Any>, id: &str, ente: &str) -> Result<bool> {
        let row = Q::new("SELECT id FROM persona WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(ente)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.is_some())
    }

    async fn check_nucleo_refs<R: Record>(&self, tx: &mut Transaction<'static, Any>, rec: &R, ente: &str) -> Result<()> {
        let mut bad = Vec::new();
        if !self.persona_exists(tx, rec.persona_ref(), ente).await? {
            bad.push(Violation { field: "nucleo.persona_riferimento_id".into(), description: "no such persona in this ente".into() });
        }
        for (i, m) in rec.member_refs().into_iter().enumerate() {
            if !self.persona_exists(tx, m, ente).await? {
                bad.push(Violation { field: format!("nucleo.membri[{i}].persona_id"), description: "no such persona in this ente".into() });
            }
        }
        if bad.is_empty() { Ok(()) } else { Err(CoreError::Invalid(bad)) }
    }

    async fn replace_members<R: Record>(&self, tx: &mut Transaction<'static, Any>, id: &str, rec: &R) -> Result<()> {
        Q::new("DELETE FROM nucleo_membro WHERE nucleo_id = ").bind_text(id).execute(&mut **tx).await?;
        for m in rec.member_refs() {
            Q::new("INSERT INTO nucleo_membro (nucleo_id, persona_id) VALUES (")
                .bind_text(id)
                .push(", ")
                .bind_text(m)
                .push(")")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn check_cf_unique<R: Record>(
        &self,
        tx: &mut Transaction<'static, Any>,
        ente: &str,
        rec: &R,
        except: Option<&str>,
    ) -> Result<()> {
        if rec.codice_fiscale_ref().is_empty() {
            return Ok(());
        }
        // Within the record's ente only: another ente's persona is neither an obstacle nor
        // something this caller may learn the id (or existence) of.
        let row = Q::new("SELECT id FROM persona WHERE ente = ")
            .bind_text(ente)
            .push(" AND codice_fiscale = ")
            .bind_text(rec.codice_fiscale_ref())
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            Some(r) => {
                let existing: String = r.try_get("id")?;
                if Some(existing.as_str()) == except {
                    Ok(())
                } else if except.is_some() {
                    Err(invalid(Kind::Persona, "codice_fiscale", "belongs to another persona"))
                } else {
                    Err(CoreError::PersonaExists { id: existing })
                }
            }
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn outbox(
        &self,
        tx: &mut Transaction<'static, Any>,
        kind: Kind,
        id: &str,
        op: i64,
        version: i64,
        place: &Placement,
        at: &str,
    ) -> Result<()> {
        let mut q =
            Q::new("INSERT INTO outbox (kind, record_id, op, version, ente, ufficio, persona_id, cartella_id, occurred_at) VALUES (");
        q.bind_text(kind.name()).push(", ").bind_text(id).push(", ").bind_int(op).push(", ").bind_int(version);
        q.push(", ").bind_text(&place.ente).push(", ").bind_text(&place.ufficio);
        q.push(", ").bind(Val::Text(place.persona_id.clone())).push(", ").bind(Val::Text(place.cartella_id.clone()));
        q.push(", ").bind_text(at).push(")");
        q.execute(&mut **tx).await?;
        Ok(())
    }
}

fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

//! The operators who log in with SPID/CIE, and the edge store as the SPID/CIE adapter's
//! session store: logins under way (taken once) and operators' sessions.
//!
//! The store keeps what the relying party gives it: session ids and login states arrive
//! already hashed, so nothing here can be replayed as a cookie.
use core_cartella::auth::Role;
use futures::future::BoxFuture;
use spid_cie::store::{LoginRequest, OperatorIdentity, Session, SessionStore, StoreError, StoreResult};
use sqlx::{Row, any::AnyRow};

use super::{EdgeStore, EdgeStoreError, Result, now_rfc3339, roles_parse, roles_text, unique_violation};

/// An operator the hub lets log in, as registered with `sigess operator add`.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    /// The hub's id for the operator, written to the audit trail.
    pub operator_id: String,
    /// Upper-case codice fiscale, the key SPID/CIE identities are matched on.
    pub codice_fiscale: String,
    pub ente: String,
    pub ufficio: Option<String>,
    pub roles: Vec<Role>,
    pub created_at: String,
    pub disabled: bool,
}

impl std::fmt::Debug for OperatorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorRecord")
            .field("operator_id", &self.operator_id)
            .field("ente", &self.ente)
            .field("ufficio", &self.ufficio)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl OperatorRecord {
    /// What the relying party sees of the operator (no codice fiscale).
    pub fn identity(&self) -> OperatorIdentity {
        OperatorIdentity {
            operator_id: self.operator_id.clone(),
            ente: self.ente.clone(),
            ufficio: self.ufficio.clone(),
            roles: self.roles.iter().map(|r| r.as_str().to_string()).collect(),
            disabled: self.disabled,
        }
    }
}

macro_rules! operator_columns {
    () => {
        "operator_id, codice_fiscale, ente, ufficio, roles, created_at, disabled_at"
    };
}
macro_rules! login_columns {
    () => {
        "state_hash, browser_hash, provider, nonce, code_verifier, acr, expires_at, return_to"
    };
}
macro_rules! session_columns {
    () => {
        "id_hash, operator_id, csrf_token, provider, access_token, created_at, last_seen, expires_at"
    };
}

fn operator_from_row(row: &AnyRow) -> Result<OperatorRecord> {
    let roles: String = row.try_get("roles")?;
    let disabled_at: Option<String> = row.try_get("disabled_at")?;
    Ok(OperatorRecord {
        operator_id: row.try_get("operator_id")?,
        codice_fiscale: row.try_get("codice_fiscale")?,
        ente: row.try_get("ente")?,
        ufficio: row.try_get("ufficio")?,
        roles: roles_parse(&roles),
        created_at: row.try_get("created_at")?,
        disabled: disabled_at.is_some(),
    })
}

fn login_from_row(row: &AnyRow) -> Result<LoginRequest> {
    Ok(LoginRequest {
        state_hash: row.try_get("state_hash")?,
        browser_hash: row.try_get("browser_hash")?,
        provider: row.try_get("provider")?,
        nonce: row.try_get("nonce")?,
        code_verifier: row.try_get("code_verifier")?,
        acr: row.try_get("acr")?,
        expires_at: row.try_get("expires_at")?,
        return_to: row.try_get("return_to")?,
    })
}

fn session_from_row(row: &AnyRow) -> Result<Session> {
    Ok(Session {
        id_hash: row.try_get("id_hash")?,
        operator_id: row.try_get("operator_id")?,
        csrf_token: row.try_get("csrf_token")?,
        provider: row.try_get("provider")?,
        access_token: row.try_get("access_token")?,
        created_at: row.try_get("created_at")?,
        last_seen: row.try_get("last_seen")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl EdgeStore {
    /// Registers an operator; its id and codice fiscale must be unused.
    pub async fn insert_operator(&self, o: &OperatorRecord) -> Result<OperatorRecord> {
        if o.operator_id.is_empty() || o.ente.is_empty() || o.codice_fiscale.len() != 16 {
            return Err(EdgeStoreError::Invalid("operator_id, ente and a 16-character codice fiscale are required"));
        }
        let at = now_rfc3339();
        let res = sqlx::query(concat!("INSERT INTO operator (", operator_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(o.operator_id.clone())
            .bind(o.codice_fiscale.to_ascii_uppercase())
            .bind(o.ente.clone())
            .bind(o.ufficio.clone().filter(|u| !u.is_empty()))
            .bind(roles_text(&o.roles))
            .bind(at.clone())
            .bind(o.disabled.then_some(at))
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => {
                return Err(EdgeStoreError::Invalid("an operator with this id or codice fiscale is already registered"));
            }
            Err(e) => return Err(e.into()),
        }
        self.operator_record(&o.operator_id).await?.ok_or(EdgeStoreError::Invalid("the operator vanished after its registration"))
    }

    pub async fn operator_record(&self, operator_id: &str) -> Result<Option<OperatorRecord>> {
        let row = sqlx::query(concat!("SELECT ", operator_columns!(), " FROM operator WHERE operator_id = $1"))
            .bind(operator_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operator_from_row).transpose()
    }

    /// The operator with this codice fiscale (any case), disabled or not.
    pub async fn operator_record_by_codice_fiscale(&self, cf: &str) -> Result<Option<OperatorRecord>> {
        let row = sqlx::query(concat!("SELECT ", operator_columns!(), " FROM operator WHERE codice_fiscale = $1"))
            .bind(cf.to_ascii_uppercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operator_from_row).transpose()
    }

    /// Disables or re-enables an operator and ends their sessions; false when unknown.
    pub async fn set_operator_disabled(&self, operator_id: &str, disabled: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE operator SET disabled_at = $1 WHERE operator_id = $2")
            .bind(disabled.then(now_rfc3339))
            .bind(operator_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if disabled {
            sqlx::query("DELETE FROM operator_session WHERE operator_id = $1").bind(operator_id.to_string()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Every registered operator, by id.
    pub async fn list_operators(&self) -> Result<Vec<OperatorRecord>> {
        let rows =
            sqlx::query(concat!("SELECT ", operator_columns!(), " FROM operator ORDER BY operator_id")).fetch_all(&self.pool).await?;
        rows.iter().map(operator_from_row).collect()
    }

    /// Replaces an operator's roles (their sessions see the change at their next request);
    /// false when unknown.
    pub async fn set_operator_roles(&self, operator_id: &str, roles: &[Role]) -> Result<bool> {
        if roles.is_empty() {
            return Err(EdgeStoreError::Invalid("at least one role is required"));
        }
        let res = sqlx::query("UPDATE operator SET roles = $1 WHERE operator_id = $2")
            .bind(roles_text(roles))
            .bind(operator_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn insert_login(&self, r: &LoginRequest) -> Result<()> {
        sqlx::query(concat!("INSERT INTO login_request (", login_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(r.state_hash.clone())
            .bind(r.browser_hash.clone())
            .bind(r.provider.clone())
            .bind(r.nonce.clone())
            .bind(r.code_verifier.clone())
            .bind(r.acr.clone())
            .bind(r.expires_at)
            .bind(r.return_to.clone())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_login(&self, state_hash: &str) -> Result<Option<LoginRequest>> {
        let row = sqlx::query(concat!("DELETE FROM login_request WHERE state_hash = $1 RETURNING ", login_columns!()))
            .bind(state_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(login_from_row).transpose()
    }

    async fn insert_session_row(&self, s: &Session) -> Result<()> {
        sqlx::query(concat!("INSERT INTO operator_session (", session_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(s.id_hash.clone())
            .bind(s.operator_id.clone())
            .bind(s.csrf_token.clone())
            .bind(s.provider.clone())
            .bind(s.access_token.clone())
            .bind(s.created_at)
            .bind(s.last_seen)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_row(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(concat!("SELECT ", session_columns!(), " FROM operator_session WHERE id_hash = $1"))
            .bind(id_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch(&self, id_hash: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE operator_session SET last_seen = $1 WHERE id_hash = $2")
            .bind(at)
            .bind(id_hash.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session_row(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(concat!("DELETE FROM operator_session WHERE id_hash = $1 RETURNING ", session_columns!()))
            .bind(id_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Deletes sessions past their absolute end or idle since before `idle_before`, and
    /// login requests past their expiry; returns how many rows went.
    pub async fn purge_sessions(&self, now_secs: i64, idle_before: i64) -> Result<u64> {
        let a = sqlx::query("DELETE FROM operator_session WHERE expires_at < $1 OR last_seen < $2")
            .bind(now_secs)
            .bind(idle_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM login_request WHERE expires_at < $1").bind(now_secs).execute(&self.pool).await?.rows_affected();
        Ok(a + b)
    }
}

fn port<T>(r: Result<T>) -> StoreResult<T> {
    r.map_err(StoreError::new)
}

impl SessionStore for EdgeStore {
    fn operator_by_codice_fiscale<'a>(&'a self, cf: &'a str) -> BoxFuture<'a, StoreResult<Option<OperatorIdentity>>> {
        Box::pin(async move { port(self.operator_record_by_codice_fiscale(cf).await.map(|o| o.map(|o| o.identity()))) })
    }

    fn operator<'a>(&'a self, operator_id: &'a str) -> BoxFuture<'a, StoreResult<Option<OperatorIdentity>>> {
        Box::pin(async move { port(self.operator_record(operator_id).await.map(|o| o.map(|o| o.identity()))) })
    }

    fn insert_login_request<'a>(&'a self, r: &'a LoginRequest) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { port(self.insert_login(r).await) })
    }

    fn take_login_request<'a>(&'a self, state_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<LoginRequest>>> {
        Box::pin(async move { port(self.take_login(state_hash).await) })
    }

    fn insert_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { port(self.insert_session_row(s).await) })
    }

    fn session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<Session>>> {
        Box::pin(async move { port(self.session_row(id_hash).await) })
    }

    fn touch_session<'a>(&'a self, id_hash: &'a str, at: i64) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { port(self.touch(id_hash, at).await) })
    }

    fn delete_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<Session>>> {
        Box::pin(async move { port(self.delete_session_row(id_hash).await) })
    }

    fn purge_sessions(&self, now: i64, idle_before: i64) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move { port(EdgeStore::purge_sessions(self, now, idle_before).await) })
    }
}

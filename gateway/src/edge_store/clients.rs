//! Registered system clients and the ModI signature ids already seen.
//!
//! Look-ups by id, certificate fingerprint and PDND client id; the `jti` ledger records each
//! signature id in one statement, so two replicas racing on the same id cannot both accept
//! it; rows past their expiry are purged.
use core_cartella::auth::Role;
use sqlx::{Row, any::AnyRow};

use super::{EdgeStore, EdgeStoreError, Result, now_rfc3339, roles_parse, roles_text, unique_violation};

/// A registered system client.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    /// A label for people (e.g. "INPS WaaS", "Cartella app M03").
    pub name: String,
    /// PHC string of the secret's hash; None for clients without a secret.
    pub secret_hash: Option<String>,
    pub ente: String,
    /// None = the whole ente.
    pub ufficio: Option<String>,
    pub roles: Vec<Role>,
    pub purpose: String,
    /// Lower-case hex SHA-256 of the DER certificate the client presents over mTLS.
    pub cert_sha256: Option<String>,
    /// The client id PDND writes in the vouchers it issues to this client.
    pub pdnd_client_id: Option<String>,
    /// The PDND purpose (`purposeId`) this client's vouchers must name.
    pub pdnd_purpose_id: Option<String>,
    /// The public keys the client signs ModI `Agid-JWT-Signature`s with: a JWK set as JSON
    /// text, stored as given (the registry checks it holds only RSA public keys with a kid).
    pub modi_jwks: Option<String>,
    /// RFC 3339, set by the store on insert.
    pub created_at: String,
    pub disabled: bool,
}

// The hash is not the secret, but it is still material for an offline guess: keep it out of logs.
impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("ente", &self.ente)
            .field("ufficio", &self.ufficio)
            .field("roles", &self.roles)
            .field("has_secret", &self.secret_hash.is_some())
            .field("cert_sha256", &self.cert_sha256)
            .field("pdnd_client_id", &self.pdnd_client_id)
            .field("has_modi_jwks", &self.modi_jwks.is_some())
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// The columns of `hub_client`, in the order of every SELECT and INSERT below.
macro_rules! columns {
    () => {
        "client_id, name, secret_hash, ente, ufficio, roles, purpose, cert_sha256, pdnd_client_id, modi_jwks, created_at, disabled_at, pdnd_purpose_id"
    };
}

fn from_row(row: &AnyRow) -> Result<ClientRecord> {
    let roles: String = row.try_get("roles")?;
    let disabled_at: Option<String> = row.try_get("disabled_at")?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        ente: row.try_get("ente")?,
        ufficio: row.try_get("ufficio")?,
        roles: roles_parse(&roles),
        purpose: row.try_get("purpose")?,
        cert_sha256: row.try_get("cert_sha256")?,
        pdnd_client_id: row.try_get("pdnd_client_id")?,
        pdnd_purpose_id: row.try_get("pdnd_purpose_id")?,
        modi_jwks: row.try_get("modi_jwks")?,
        created_at: row.try_get("created_at")?,
        disabled: disabled_at.is_some(),
    })
}

impl EdgeStore {
    /// Registers a client. Its id, certificate fingerprint and PDND client id must each be
    /// unused; otherwise the call is refused as invalid and nothing is written.
    pub async fn insert_client(&self, c: &ClientRecord) -> Result<ClientRecord> {
        if c.client_id.is_empty() || c.ente.is_empty() {
            return Err(EdgeStoreError::Invalid("client_id and ente are required"));
        }
        let at = now_rfc3339();
        let res = sqlx::query(concat!(
            "INSERT INTO hub_client (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(c.client_id.clone())
        .bind(c.name.clone())
        .bind(c.secret_hash.clone())
        .bind(c.ente.clone())
        .bind(c.ufficio.clone().filter(|u| !u.is_empty()))
        .bind(roles_text(&c.roles))
        .bind(c.purpose.clone())
        .bind(c.cert_sha256.as_deref().map(str::to_ascii_lowercase))
        .bind(c.pdnd_client_id.clone().filter(|p| !p.is_empty()))
        .bind(c.modi_jwks.clone().filter(|k| !k.trim().is_empty()))
        .bind(at.clone())
        .bind(c.disabled.then_some(at))
        .bind(c.pdnd_purpose_id.clone().filter(|p| !p.is_empty()))
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => {
                return Err(EdgeStoreError::Invalid("a client with this id, certificate or PDND client id is already registered"));
            }
            Err(e) => return Err(e.into()),
        }
        self.client(&c.client_id).await?.ok_or(EdgeStoreError::Invalid("the client vanished after its registration"))
    }

    /// The client with this hub client id, disabled or not.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM hub_client WHERE client_id = $1"))
            .bind(client_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The client whose mTLS certificate has this SHA-256 fingerprint (hex, any case).
    pub async fn client_by_cert_sha256(&self, fingerprint: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM hub_client WHERE cert_sha256 = $1"))
            .bind(fingerprint.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The client PDND knows by this client id.
    pub async fn client_by_pdnd_id(&self, pdnd_client_id: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM hub_client WHERE pdnd_client_id = $1"))
            .bind(pdnd_client_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every registered client, by id.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM hub_client ORDER BY client_id")).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Disables or re-enables a client; false when there is no such client.
    pub async fn set_client_disabled(&self, client_id: &str, disabled: bool) -> Result<bool> {
        let res = sqlx::query("UPDATE hub_client SET disabled_at = $1 WHERE client_id = $2")
            .bind(disabled.then(now_rfc3339))
            .bind(client_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Replaces a client's roles (access tokens already issued keep only the roles still
    /// granted); false when there is no such client.
    pub async fn set_client_roles(&self, client_id: &str, roles: &[Role]) -> Result<bool> {
        if roles.is_empty() {
            return Err(EdgeStoreError::Invalid("at least one role is required"));
        }
        let res = sqlx::query("UPDATE hub_client SET roles = $1 WHERE client_id = $2")
            .bind(roles_text(roles))
            .bind(client_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Replaces a client's secret hash (rotation); false when there is no such client.
    pub async fn set_client_secret_hash(&self, client_id: &str, secret_hash: &str) -> Result<bool> {
        let res = sqlx::query("UPDATE hub_client SET secret_hash = $1 WHERE client_id = $2")
            .bind(secret_hash.to_string())
            .bind(client_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Replaces a client's ModI key set (JWK set JSON; None removes it); false when there is
    /// no such client.
    pub async fn set_client_modi_jwks(&self, client_id: &str, jwks: Option<&str>) -> Result<bool> {
        let res = sqlx::query("UPDATE hub_client SET modi_jwks = $1 WHERE client_id = $2")
            .bind(jwks.map(str::to_string))
            .bind(client_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Records a signature id seen from `issuer`, valid until `expires_at` (Unix seconds).
    /// True when it is new (or its earlier use has expired), false for a replay. One
    /// statement, so two replicas racing on the same id cannot both see it as new.
    pub async fn remember_jti(&self, issuer: &str, jti: &str, expires_at: i64, now_secs: i64) -> Result<bool> {
        let res = sqlx::query(
            "INSERT INTO modi_jti (issuer, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE modi_jti.expires_at < $4",
        )
        .bind(issuer.to_string())
        .bind(jti.to_string())
        .bind(expires_at)
        .bind(now_secs)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Deletes the ids whose signatures have expired; returns how many went.
    pub async fn purge_jtis(&self, now_secs: i64) -> Result<u64> {
        let res = sqlx::query("DELETE FROM modi_jti WHERE expires_at < $1").bind(now_secs).execute(&self.pool).await?;
        Ok(res.rows_affected())
    }
}

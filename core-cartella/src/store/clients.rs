//! The registry of system clients and the ledger of ModI signature ids.
//!
//! A system client (a municipal application, an adapter, INPS through PDND) is registered
//! once with the ente, optional ufficio, roles and purpose it acts with; the gateway finds it
//! by its hub client id (OAuth2 client credentials), by the SHA-256 fingerprint of its TLS
//! certificate, or by its PDND client id. A client that signs ModI requests also has the
//! public keys it signs them with (a JWK set), against which its signatures are verified.
//! The store only keeps what it is given: secrets arrive already hashed (the gateway hashes
//! them with Argon2id), so no clear secret is ever written here. The ledger of `jti`s lets
//! every gateway replica refuse a replayed signed request; rows past their expiry are purged.
use sqlx::{Row, any::AnyRow};

use super::{Store, now, sql::Q};
use crate::{
    auth::Role,
    error::{CoreError, Result},
    record::Val,
};

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
    /// The public keys the client signs ModI `Agid-JWT-Signature`s with: a JWK set as JSON
    /// text, stored as given (the gateway checks it holds only RSA public keys with a kid).
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

const COLUMNS: &str =
    "client_id, name, secret_hash, ente, ufficio, roles, purpose, cert_sha256, pdnd_client_id, modi_jwks, created_at, disabled_at";

fn from_row(row: &AnyRow) -> Result<ClientRecord> {
    let roles: String = row.try_get("roles")?;
    let disabled_at: Option<String> = row.try_get("disabled_at")?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        ente: row.try_get("ente")?,
        ufficio: row.try_get("ufficio")?,
        roles: roles.split_whitespace().filter_map(Role::parse).collect(),
        purpose: row.try_get("purpose")?,
        cert_sha256: row.try_get("cert_sha256")?,
        pdnd_client_id: row.try_get("pdnd_client_id")?,
        modi_jwks: row.try_get("modi_jwks")?,
        created_at: row.try_get("created_at")?,
        disabled: disabled_at.is_some(),
    })
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Registers a client. Its id, certificate fingerprint and PDND client id must each be
    /// unused; otherwise the call is refused as invalid and nothing is written.
    pub async fn insert_client(&self, c: &ClientRecord) -> Result<ClientRecord> {
        if c.client_id.is_empty() || c.ente.is_empty() {
            return Err(CoreError::invalid("client", "client_id and ente are required"));
        }
        let (at, _) = now();
        let roles = c.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" ");
        let mut q = Q::new("INSERT INTO hub_client (");
        q.push(COLUMNS).push(") VALUES (").bind_text(&c.client_id);
        q.push(", ").bind_text(&c.name);
        q.push(", ").bind(Val::Text(c.secret_hash.clone()));
        q.push(", ").bind_text(&c.ente);
        q.push(", ").bind(Val::Text(c.ufficio.clone().filter(|u| !u.is_empty())));
        q.push(", ").bind_text(&roles);
        q.push(", ").bind_text(&c.purpose);
        q.push(", ").bind(Val::Text(c.cert_sha256.as_deref().map(str::to_ascii_lowercase)));
        q.push(", ").bind(Val::Text(c.pdnd_client_id.clone().filter(|p| !p.is_empty())));
        q.push(", ").bind(Val::Text(c.modi_jwks.clone().filter(|k| !k.trim().is_empty())));
        q.push(", ").bind_text(&at);
        q.push(", ").bind(Val::Text(c.disabled.then(|| at.clone()))).push(")");
        match q.execute(&self.pool).await {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => {
                return Err(CoreError::invalid("client", "a client with this id, certificate or PDND client id is already registered"));
            }
            Err(e) => return Err(e.into()),
        }
        self.client(&c.client_id).await?.ok_or(CoreError::NotFound { kind: "client" })
    }

    async fn client_where(&self, column: &'static str, value: &str) -> Result<Option<ClientRecord>> {
        let mut q = Q::new("SELECT ");
        q.push(COLUMNS).push(" FROM hub_client WHERE ").push(column).push(" = ").bind_text(value);
        q.fetch_optional(&self.pool).await?.as_ref().map(from_row).transpose()
    }

    /// The client with this hub client id, disabled or not.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        self.client_where("client_id", client_id).await
    }

    /// The client whose mTLS certificate has this SHA-256 fingerprint (hex, any case).
    pub async fn client_by_cert_sha256(&self, fingerprint: &str) -> Result<Option<ClientRecord>> {
        self.client_where("cert_sha256", &fingerprint.to_ascii_lowercase()).await
    }

    /// The client PDND knows by this client id.
    pub async fn client_by_pdnd_id(&self, pdnd_client_id: &str) -> Result<Option<ClientRecord>> {
        self.client_where("pdnd_client_id", pdnd_client_id).await
    }

    /// Every registered client, by id.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        let mut q = Q::new("SELECT ");
        q.push(COLUMNS).push(" FROM hub_client ORDER BY client_id");
        q.fetch_all(&self.pool).await?.iter().map(from_row).collect()
    }

    /// Disables or re-enables a client; false when there is no such client.
    pub async fn set_client_disabled(&self, client_id: &str, disabled: bool) -> Result<bool> {
        let (at, _) = now();
        let mut q = Q::new("UPDATE hub_client SET disabled_at = ");
        q.bind(Val::Text(disabled.then_some(at))).push(" WHERE client_id = ").bind_text(client_id);
        Ok(q.execute(&self.pool).await? == 1)
    }

    /// Replaces a client's secret hash (rotation); false when there is no such client.
    pub async fn set_client_secret_hash(&self, client_id: &str, secret_hash: &str) -> Result<bool> {
        let mut q = Q::new("UPDATE hub_client SET secret_hash = ");
        q.bind_text(secret_hash).push(" WHERE client_id = ").bind_text(client_id);
        Ok(q.execute(&self.pool).await? == 1)
    }

    /// Replaces a client's ModI key set (JWK set JSON; None removes it); false when there is
    /// no such client.
    pub async fn set_client_modi_jwks(&self, client_id: &str, jwks: Option<&str>) -> Result<bool> {
        let mut q = Q::new("UPDATE hub_client SET modi_jwks = ");
        q.bind(Val::Text(jwks.map(str::to_string))).push(" WHERE client_id = ").bind_text(client_id);
        Ok(q.execute(&self.pool).await? == 1)
    }

    /// Records a signature id seen from `issuer`, valid until `expires_at` (Unix seconds).
    /// True when it is new (or its earlier use has expired), false for a replay. One
    /// statement, so two replicas racing on the same id cannot both see it as new.
    pub async fn remember_jti(&self, issuer: &str, jti: &str, expires_at: i64, now_secs: i64) -> Result<bool> {
        let mut q = Q::new("INSERT INTO modi_jti (issuer, jti, expires_at) VALUES (");
        q.bind_text(issuer).push(", ").bind_text(jti).push(", ").bind_int(expires_at);
        q.push(") ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE modi_jti.expires_at < ");
        q.bind_int(now_secs);
        Ok(q.execute(&self.pool).await? == 1)
    }

    /// Deletes the ids whose signatures have expired; returns how many went.
    pub async fn purge_jtis(&self, now_secs: i64) -> Result<u64> {
        let mut q = Q::new("DELETE FROM modi_jti WHERE expires_at < ");
        q.bind_int(now_secs);
        Ok(q.execute(&self.pool).await?)
    }
}

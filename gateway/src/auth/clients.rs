//! The registry of system clients as the gateway and the CLI see it: registration with a
//! generated secret shown once, secret checks, look-ups by certificate or PDND id, and the
//! public keys a client signs ModI requests with.
//!
//! Secrets are random 256-bit values; only their Argon2id hash (a PHC string) is stored, so a
//! copy of the database does not let anyone act as a client. Hashing and checking run on the
//! blocking pool because Argon2 is deliberately slow. A check for an unknown client still
//! runs one hash, so timing does not tell which client ids exist.
use std::sync::OnceLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use core_cartella::auth::{Caller, CallerKind, Role};
use sha2::{Digest, Sha256};

use crate::edge_store::{ClientRecord, EdgeStore, EdgeStoreError};

/// Why a registry operation failed. Messages carry no secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid client: {0}")]
    Invalid(String),
    #[error("no such client")]
    NotFound,
    #[error("client store unavailable")]
    Unavailable(#[source] EdgeStoreError),
    #[error("secret hashing failed")]
    Hash,
}

impl From<EdgeStoreError> for RegistryError {
    fn from(e: EdgeStoreError) -> Self {
        match e {
            EdgeStoreError::Invalid(why) => Self::Invalid(why.into()),
            other => Self::Unavailable(other),
        }
    }
}

/// A client secret in clear: returned once at registration or rotation, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// The secret, to hand to the client's operator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(…)")
    }
}

/// What registering a client takes (`sigess client add`).
#[derive(Clone, Debug, Default)]
pub struct NewClient {
    /// Chosen id; a UUID is generated when None.
    pub client_id: Option<String>,
    pub name: String,
    pub ente: String,
    pub ufficio: Option<String>,
    pub roles: Vec<Role>,
    pub purpose: String,
    /// Generate a secret for the OAuth2 client-credentials grant.
    pub with_secret: bool,
    /// SHA-256 fingerprint (hex) of the client's mTLS certificate; see `cert_fingerprint`.
    pub cert_sha256: Option<String>,
    /// The client id PDND puts in this client's vouchers.
    pub pdnd_client_id: Option<String>,
    /// The PDND purpose (`purposeId`) its vouchers must name; required with `pdnd_client_id`.
    pub pdnd_purpose_id: Option<String>,
    /// The public keys the client signs ModI `Agid-JWT-Signature`s with: a JWK or JWK set
    /// (JSON) of RSA public keys with their `kid`; see `modi::parse_client_jwks`.
    pub modi_jwks: Option<String>,
}

/// A ModI key set as it is stored, or why it cannot be registered.
fn modi_key_set(json: &str) -> Result<String, RegistryError> {
    super::modi::parse_client_jwks(json.as_bytes()).map_err(|e| RegistryError::Invalid(format!("ModI key set: {e}")))
}

/// Lower-case hex SHA-256 of a DER certificate: how mTLS clients are registered and found.
pub fn cert_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

/// Fingerprint of the first certificate in a PEM file's text (for `--cert FILE`).
pub fn cert_fingerprint_pem(pem: &[u8]) -> Result<String, RegistryError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_slice(pem).map_err(|_| RegistryError::Invalid("no PEM certificate found".into()))?;
    Ok(cert_fingerprint(&der))
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Argon2id hash of a secret, as a PHC string (`$argon2id$v=19$…`).
pub fn hash_secret(secret: &str) -> Result<String, RegistryError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|_| RegistryError::Hash)?;
    Argon2::default().hash_password(secret.as_bytes(), &salt).map(|h| h.to_string()).map_err(|_| RegistryError::Hash)
}

/// Whether `secret` matches the PHC `hash`; false for a hash that does not parse.
pub fn verify_secret(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
}

/// A hash no secret matches, checked against when the client is unknown so that both paths
/// cost the same.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_secret(ClientSecret::generate().expose()).unwrap_or_default())
}

/// The caller a registered client acts as.
pub fn caller_for(client: &ClientRecord, roles: Vec<Role>, purpose: &str, request_id: &str) -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: client.client_id.clone(),
        ente: client.ente.clone(),
        ufficio: client.ufficio.clone(),
        roles,
        purpose: if purpose.is_empty() { client.purpose.clone() } else { purpose.to_string() },
        request_id: request_id.to_string(),
    }
}

/// Outcome of a secret check.
#[derive(Debug, thiserror::Error)]
pub enum SecretCheck {
    /// Unknown client, no secret registered, wrong secret, or disabled: one answer for all.
    #[error("client authentication failed")]
    Refused,
    #[error("client store unavailable")]
    Unavailable,
}

/// The registry over the hub's store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientRegistry {
    store: EdgeStore,
}

impl ClientRegistry {
    pub fn new(store: EdgeStore) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &EdgeStore {
        &self.store
    }

    /// Registers a client. Returns the stored record and, when `with_secret`, the secret in
    /// clear: the only time it can be read.
    pub async fn create(&self, new: NewClient) -> Result<(ClientRecord, Option<ClientSecret>), RegistryError> {
        if new.ente.trim().is_empty() {
            return Err(RegistryError::Invalid("ente is required".into()));
        }
        if new.roles.is_empty() {
            return Err(RegistryError::Invalid("at least one role is required".into()));
        }
        if let Some(fp) = &new.cert_sha256
            && !is_hex_sha256(fp)
        {
            return Err(RegistryError::Invalid("cert_sha256 must be 64 hex digits".into()));
        }
        if !new.with_secret && new.cert_sha256.is_none() && new.pdnd_client_id.as_deref().is_none_or(|p| p.trim().is_empty()) {
            return Err(RegistryError::Invalid("a client needs a secret, a certificate or a PDND client id".into()));
        }
        let pdnd_client_id = new.pdnd_client_id.filter(|p| !p.trim().is_empty());
        let pdnd_purpose_id = new.pdnd_purpose_id.map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
        if pdnd_client_id.is_some() != pdnd_purpose_id.is_some() {
            return Err(RegistryError::Invalid(
                "a PDND client needs its PDND purpose id (pdnd_purpose_id), and only a PDND client has one".into(),
            ));
        }
        let modi_jwks = new.modi_jwks.as_deref().map(modi_key_set).transpose()?;
        let secret = new.with_secret.then(ClientSecret::generate);
        let secret_hash = match &secret {
            Some(s) => {
                let s = s.clone();
                Some(tokio::task::spawn_blocking(move || hash_secret(s.expose())).await.map_err(|_| RegistryError::Hash)??)
            }
            None => None,
        };
        let record = ClientRecord {
            client_id: new.client_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            name: new.name,
            secret_hash,
            ente: new.ente.trim().to_string(),
            ufficio: new.ufficio.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()),
            roles: new.roles,
            purpose: new.purpose,
            cert_sha256: new.cert_sha256.map(|f| f.to_ascii_lowercase()),
            pdnd_client_id,
            pdnd_purpose_id,
            modi_jwks,
            created_at: String::new(),
            disabled: false,
        };
        let stored = self.store.insert_client(&record).await?;
        Ok((stored, secret))
    }

    /// Replaces a client's secret with a new one, returned in clear once.
    pub async fn rotate_secret(&self, client_id: &str) -> Result<ClientSecret, RegistryError> {
        let secret = ClientSecret::generate();
        let s = secret.clone();
        let hash = tokio::task::spawn_blocking(move || hash_secret(s.expose())).await.map_err(|_| RegistryError::Hash)??;
        if self.store.set_client_secret_hash(client_id, &hash).await? { Ok(secret) } else { Err(RegistryError::NotFound) }
    }

    /// Replaces a client's ModI keys (a JWK or JWK set, checked as at registration), e.g.
    /// when it rotates them on PDND; None removes them.
    pub async fn set_modi_jwks(&self, client_id: &str, jwks: Option<&str>) -> Result<(), RegistryError> {
        let jwks = jwks.map(modi_key_set).transpose()?;
        if self.store.set_client_modi_jwks(client_id, jwks.as_deref()).await? { Ok(()) } else { Err(RegistryError::NotFound) }
    }

    pub async fn set_disabled(&self, client_id: &str, disabled: bool) -> Result<(), RegistryError> {
        if self.store.set_client_disabled(client_id, disabled).await? { Ok(()) } else { Err(RegistryError::NotFound) }
    }

    pub async fn list(&self) -> Result<Vec<ClientRecord>, RegistryError> {
        Ok(self.store.list_clients().await?)
    }

    pub async fn find(&self, client_id: &str) -> Result<Option<ClientRecord>, RegistryError> {
        Ok(self.store.client(client_id).await?)
    }

    /// The client registered with this DER certificate.
    pub async fn by_certificate(&self, der: &[u8]) -> Result<Option<ClientRecord>, RegistryError> {
        Ok(self.store.client_by_cert_sha256(&cert_fingerprint(der)).await?)
    }

    pub async fn by_pdnd_id(&self, pdnd_client_id: &str) -> Result<Option<ClientRecord>, RegistryError> {
        Ok(self.store.client_by_pdnd_id(pdnd_client_id).await?)
    }

    /// Checks a client id and secret (OAuth2 client authentication).
    pub async fn authenticate_secret(&self, client_id: &str, secret: &str) -> Result<ClientRecord, SecretCheck> {
        let found = self.store.client(client_id).await.map_err(|_| SecretCheck::Unavailable)?;
        let hash = found.as_ref().and_then(|c| c.secret_hash.clone()).unwrap_or_else(|| decoy_hash().to_string());
        let secret = secret.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_secret(&hash, &secret)).await.map_err(|_| SecretCheck::Unavailable)?;
        match found {
            Some(c) if ok && c.secret_hash.is_some() && !c.disabled => Ok(c),
            _ => Err(SecretCheck::Refused),
        }
    }
}

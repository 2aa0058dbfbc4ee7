//! The relying party's own keys: federation keys (sign the entity configuration), `sig`
//! keys (request objects, client assertions) and `enc` keys (userinfo JWE). Each is RSA,
//! read from a file holding a PEM private key or a private JWK, with its `kid` taken from
//! the JWK or, for PEM, the RFC 7638 thumbprint. Several keys of one use may be loaded at
//! once for rotation: all are published, the first one signs, and decryption picks the key
//! named by the JWE header's `kid`.
use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use josekit::{
    jwk::{Jwk, KeyPair, alg::rsa::RsaKeyPair},
    jws::{JwsSigner, RS256},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a key is for, as written in its JWK `use` (the federation key is a signing key
/// published in the entity configuration's top-level `jwks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    Federation,
    Sig,
    Enc,
}

impl KeyUse {
    fn jwk_use(self) -> &'static str {
        match self {
            Self::Federation | Self::Sig => "sig",
            Self::Enc => "enc",
        }
    }
}

/// One RSA private key with its public half.
#[derive(Clone)]
pub struct RpKey {
    kid: String,
    key_use: KeyUse,
    private: Jwk,
    public: Jwk,
}

impl fmt::Debug for RpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpKey").field("kid", &self.kid).field("use", &self.key_use).finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint of an RSA public JWK: the kid when the key file has none.
pub fn rsa_thumbprint(public: &Jwk) -> Result<String> {
    let field = |k: &str| public.parameter(k).and_then(Value::as_str).ok_or(Error::Key(format!("RSA key lacks {k}")));
    // Members in lexicographic order, no whitespace, as the RFC requires.
    let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, field("e")?, field("n")?);
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

impl RpKey {
    fn from_pair(pair: RsaKeyPair, kid: Option<String>, key_use: KeyUse) -> Result<Self> {
        if pair.key_len() * 8 < 2048 {
            return Err(Error::Key("RSA keys must have at least 2048 bits".into()));
        }
        let mut private = pair.to_jwk_private_key();
        let mut public = pair.to_jwk_public_key();
        let kid = match kid {
            Some(k) if !k.is_empty() => k,
            _ => rsa_thumbprint(&public)?,
        };
        for j in [&mut private, &mut public] {
            j.set_key_id(kid.clone());
            j.set_key_use(key_use.jwk_use());
            // `alg` stays unset: josekit refuses a key whose alg differs from the one asked,
            // and the OP picks keys by `use` and `kid` only.
        }
        Ok(Self { kid, key_use, private, public })
    }

    /// A fresh 2048-bit RSA key (tests, and first start when no key file exists).
    pub fn generate(key_use: KeyUse) -> Result<Self> {
        let pair = RsaKeyPair::generate(2048).map_err(|e| Error::Key(e.to_string()))?;
        Self::from_pair(pair, None, key_use)
    }

    /// Reads a PEM (PKCS#1 or PKCS#8) private key or a private RSA JWK.
    pub fn from_bytes(bytes: &[u8], key_use: KeyUse) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|_| Error::Key("key file is not text".into()))?.trim_start();
        if text.starts_with('{') {
            let jwk = Jwk::from_bytes(text.as_bytes()).map_err(|_| Error::Key("not a JWK".into()))?;
            if jwk.key_type() != "RSA" {
                return Err(Error::Key("only RSA keys are accepted".into()));
            }
            let kid = jwk.key_id().map(str::to_string);
            let pair = RsaKeyPair::from_jwk(&jwk).map_err(|_| Error::Key("JWK is not an RSA private key".into()))?;
            Self::from_pair(pair, kid, key_use)
        } else {
            let pair = RsaKeyPair::from_pem(text.as_bytes()).map_err(|_| Error::Key("PEM is not an RSA private key".into()))?;
            Self::from_pair(pair, None, key_use)
        }
    }

    /// Loads the key at `path`; when `create` is set and the file is missing, generates one
    /// and writes it as PEM with mode 0600.
    pub fn load(path: &Path, key_use: KeyUse, create: bool) -> Result<Self> {
        if !path.exists() && create {
            let pair = RsaKeyPair::generate(2048).map_err(|e| Error::Key(e.to_string()))?;
            write_private(path, &pair.to_pem_private_key())?;
        }
        let bytes = fs::read(path).map_err(|e| Error::Key(format!("cannot read {}: {}", path.display(), e.kind())))?;
        Self::from_bytes(&bytes, key_use)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn key_use(&self) -> KeyUse {
        self.key_use
    }

    /// The public JWK, with `kid` and `use`.
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.public.as_ref().clone())
    }

    pub(crate) fn private_jwk(&self) -> &Jwk {
        &self.private
    }

    pub(crate) fn signer(&self) -> Result<Box<dyn JwsSigner>> {
        let s = RS256.signer_from_jwk(&self.private).map_err(|e| Error::Key(e.to_string()))?;
        Ok(Box::new(s))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &[u8]) -> Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::Key(format!("cannot create {}: {}", dir.display(), e.kind())))?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Key(format!("cannot create {}: {}", path.display(), e.kind())))?;
    f.write_all(pem).map_err(|e| Error::Key(e.to_string()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, pem: &[u8]) -> Result<()> {
    fs::write(path, pem).map_err(|e| Error::Key(e.to_string()))
}

/// The keys of one use. The first key is the current one (it signs); the others stay
/// published so tokens signed before a rotation still verify, and still decrypt.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<RpKey>,
}

impl KeyRing {
    pub fn new(keys: Vec<RpKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Key("at least one key is needed".into()));
        }
        let mut kids: Vec<&str> = keys.iter().map(RpKey::kid).collect();
        kids.sort_unstable();
        kids.dedup();
        if kids.len() != keys.len() {
            return Err(Error::Key("two keys share a kid".into()));
        }
        Ok(Self { keys })
    }

    pub fn current(&self) -> &RpKey {
        // `new` refuses an empty ring.
        &self.keys[0]
    }

    pub fn by_kid(&self, kid: &str) -> Option<&RpKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &RpKey> {
        self.keys.iter()
    }

    pub fn public_jwks(&self) -> Vec<Value> {
        self.keys.iter().map(RpKey::public_jwk).collect()
    }
}

/// The three rings a relying party needs.
#[derive(Clone, Debug)]
pub struct RpKeys {
    pub federation: KeyRing,
    pub sig: KeyRing,
    pub enc: KeyRing,
}

impl RpKeys {
    /// Fresh keys of each kind (tests).
    pub fn generate() -> Result<Self> {
        Ok(Self {
            federation: KeyRing::new(vec![RpKey::generate(KeyUse::Federation)?])?,
            sig: KeyRing::new(vec![RpKey::generate(KeyUse::Sig)?])?,
            enc: KeyRing::new(vec![RpKey::generate(KeyUse::Enc)?])?,
        })
    }

    /// Keys from files: the first path of each list is the current key.
    pub fn load(federation: &[PathBuf], sig: &[PathBuf], enc: &[PathBuf], create: bool) -> Result<Self> {
        let ring = |paths: &[PathBuf], u: KeyUse| -> Result<KeyRing> {
            KeyRing::new(paths.iter().map(|p| RpKey::load(p, u, create)).collect::<Result<Vec<_>>>()?)
        };
        Ok(Self { federation: ring(federation, KeyUse::Federation)?, sig: ring(sig, KeyUse::Sig)?, enc: ring(enc, KeyUse::Enc)? })
    }

    /// `{"keys": [...]}` of the public federation keys, as `register_rp.py --jwks` reads it.
    pub fn federation_jwks(&self) -> Value {
        json!({ "keys": self.federation.public_jwks() })
    }

    /// The inline `jwks` of the `openid_relying_party` metadata: `sig` and `enc` keys.
    pub fn metadata_jwks(&self) -> Value {
        let mut keys = self.sig.public_jwks();
        keys.extend(self.enc.public_jwks());
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_jwk_files_rotation_by_kid() {
        let dir = tempfile::tempdir().expect("tmp");
        let pem_path = dir.path().join("sig.pem");
        let created = RpKey::load(&pem_path, KeyUse::Sig, true).expect("created");
        let again = RpKey::load(&pem_path, KeyUse::Sig, false).expect("reloaded");
        assert_eq!(created.kid(), again.kid(), "kid is the stable thumbprint");
        assert_eq!(created.public_jwk()["use"], "sig");
        assert!(created.public_jwk().get("d").is_none(), "public JWK has no private part");

        let mut jwk = RsaKeyPair::generate(2048).expect("gen").to_jwk_private_key();
        jwk.set_key_id("rotated-2026");
        let jwk_path = dir.path().join("enc.jwk");
        fs::write(&jwk_path, jwk.to_string()).expect("write");
        let enc = RpKey::load(&jwk_path, KeyUse::Enc, false).expect("jwk");
        assert_eq!(enc.kid(), "rotated-2026");
        assert_eq!(enc.public_jwk()["use"], "enc");

        let second = RpKey::generate(KeyUse::Sig).expect("gen");
        let ring = KeyRing::new(vec![created.clone(), second.clone()]).expect("ring");
        assert_eq!(ring.current().kid(), created.kid());
        assert_eq!(ring.by_kid(second.kid()).map(RpKey::kid), Some(second.kid()));
        assert!(ring.by_kid("nope").is_none());
        assert!(KeyRing::new(vec![created.clone(), again]).is_err(), "duplicate kid refused");
        assert!(KeyRing::new(vec![]).is_err());
        assert!(RpKey::from_bytes(b"not a key", KeyUse::Sig).is_err());
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // The example key of RFC 7638 section 3.1.
        let jwk = Jwk::from_bytes(br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).expect("jwk");
        assert_eq!(rsa_thumbprint(&jwk).expect("tp"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}

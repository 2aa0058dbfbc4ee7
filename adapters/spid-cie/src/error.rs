//! Why a federation or login step failed. Messages name the step and the rule that failed,
//! never a token, a code, a claim value or anything about the person logging in, so they
//! can be logged and shown as they are.

/// Everything the relying party can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key material: {0}")]
    Key(String),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("{what}: algorithm {alg} is not accepted")]
    Algorithm { what: &'static str, alg: String },
    #[error("{0}: no key with that kid")]
    UnknownKid(&'static str),
    #[error("{0}: signature invalid")]
    Signature(&'static str),
    #[error("{0}: expired or not yet valid")]
    Expired(&'static str),
    #[error("{what}: claim {claim} is missing or wrong")]
    Claim { what: &'static str, claim: &'static str },
    #[error("trust chain: {0}")]
    Trust(String),
    #[error("metadata policy: {0}")]
    Policy(String),
    #[error("{0}: cannot decrypt")]
    Decrypt(&'static str),
    #[error("HTTP {step}: {detail}")]
    Http { step: &'static str, detail: String },
    #[error("JOSE library: {0}")]
    Jose(String),
}

impl Error {
    pub(crate) fn claim(what: &'static str, claim: &'static str) -> Self {
        Self::Claim { what, claim }
    }

    pub(crate) fn http(step: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Http { step, detail: detail.to_string() }
    }
}

/// reqwest errors carry the URL, which for some calls holds a query string: keep only the
/// kind of failure.
pub(crate) fn http_error(step: &'static str, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_status() {
        "error status"
    } else if e.is_body() || e.is_decode() {
        "unreadable body"
    } else {
        "request failed"
    };
    Error::http(step, kind)
}

pub type Result<T> = std::result::Result<T, Error>;

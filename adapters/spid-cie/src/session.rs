//! Operator sessions: cookies, timeouts, CSRF, and the cookie → operator path the gateway
//! calls for requests without an `Authorization` header.
//!
//! The cookie holds a random 256-bit id; the store keeps only its SHA-256, so neither a
//! log line nor a copy of the table can be turned back into a cookie. A session ends
//! after `idle_timeout` without requests or `absolute_timeout` after login. Requests that
//! change something (anything but GET/HEAD/OPTIONS) must also carry the session's CSRF
//! token in `X-CSRF-Token`: the cookie alone is not enough to act.
use axum::http::{HeaderMap, HeaderValue, header};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{
    Rp,
    jose::{now, random_token},
    oidc::constant_time_eq,
    store::{OperatorIdentity, Session, StoreError},
};

/// Header carrying the CSRF token on state-changing REST calls.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Activity is written back at most this often (seconds), not on every request.
const TOUCH_EVERY: i64 = 15;

/// Why a session cookie did not authenticate. Shown as the 401 detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    #[error("session unknown or ended: log in again")]
    Unknown,
    #[error("session expired: log in again")]
    Expired,
    #[error("operator disabled")]
    Disabled,
    #[error("missing or wrong X-CSRF-Token for a request that changes data")]
    Csrf,
    #[error("session store unavailable")]
    Store,
}

/// SHA-256 (base64url) of a cookie value or state: what the store keeps.
pub fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// Value of cookie `name` in the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

impl Rp {
    /// Session cookie name: `__Host-` prefixed when Secure, so no subdomain or plain-HTTP
    /// page can set it.
    pub fn session_cookie_name(&self) -> &'static str {
        if self.config().cookie_secure { "__Host-sigess_rp_session" } else { "sigess_rp_session" }
    }

    pub(crate) fn login_cookie_name(&self) -> &'static str {
        if self.config().cookie_secure { "__Host-sigess_rp_login" } else { "sigess_rp_login" }
    }

    fn cookie_attrs(&self) -> &'static str {
        if self.config().cookie_secure { "; Path=/; HttpOnly; SameSite=Lax; Secure" } else { "; Path=/; HttpOnly; SameSite=Lax" }
    }

    pub(crate) fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!("{name}={value}; Max-Age={max_age}{}", self.cookie_attrs())).ok()
    }

    pub(crate) fn clear_cookie(&self, name: &str) -> Option<HeaderValue> {
        self.set_cookie(name, "", 0)
    }

    /// True when the request carries this hub's session cookie (the gateway asks before
    /// falling back to other credentials).
    pub fn has_session_cookie(&self, headers: &HeaderMap) -> bool {
        cookie(headers, self.session_cookie_name()).is_some()
    }

    /// Opens a session for `operator_id` and returns its `Set-Cookie` value. A session the
    /// request already carried is ended first: a session id planted before login is never
    /// promoted. `provider` names who vouched for the operator (an SPID/CIE provider's
    /// entity id, or the demo login); `access_token` is kept only to revoke it on logout.
    pub async fn open_session(
        &self,
        headers: &HeaderMap,
        operator_id: &str,
        provider: &str,
        access_token: Option<String>,
    ) -> Result<Option<HeaderValue>, StoreError> {
        if let Some(old) = cookie(headers, self.session_cookie_name()).map(digest) {
            let _ = self.store().delete_session(&old).await;
        }
        let sid = random_token(32);
        let t = now();
        let max = i64::try_from(self.config().absolute_timeout.as_secs()).unwrap_or(8 * 3600);
        let rec = Session {
            id_hash: digest(&sid),
            operator_id: operator_id.to_string(),
            csrf_token: random_token(32),
            provider: provider.to_string(),
            access_token,
            created_at: t,
            last_seen: t,
            expires_at: t + max,
        };
        self.store().insert_session(&rec).await?;
        Ok(self.set_cookie(self.session_cookie_name(), &sid, max))
    }

    /// The live session of this request, ended here if it timed out.
    pub(crate) async fn live_session(&self, headers: &HeaderMap) -> Result<Session, SessionRefused> {
        let id = cookie(headers, self.session_cookie_name()).ok_or(SessionRefused::Unknown)?;
        let hash = digest(id);
        let store = self.store();
        let s = store.session(&hash).await.map_err(|_| SessionRefused::Store)?.ok_or(SessionRefused::Unknown)?;
        let t = now();
        let idle = i64::try_from(self.config().idle_timeout.as_secs()).unwrap_or(i64::MAX);
        if t >= s.expires_at || t - s.last_seen >= idle {
            let _ = store.delete_session(&hash).await;
            return Err(SessionRefused::Expired);
        }
        if t - s.last_seen >= TOUCH_EVERY {
            store.touch_session(&hash, t).await.map_err(|_| SessionRefused::Store)?;
        }
        Ok(s)
    }

    /// The operator behind the session cookie of a request; the gateway makes the caller
    /// core sees from it, with the purpose in [`RpConfig::purpose`](crate::RpConfig).
    ///
    /// `Ok(None)` when there is no session cookie (other credentials may apply).
    pub async fn session_operator(&self, headers: &HeaderMap, method: &str) -> Result<Option<OperatorIdentity>, SessionRefused> {
        if !self.has_session_cookie(headers) {
            return Ok(None);
        }
        let s = self.live_session(headers).await?;
        if !matches!(method, "GET" | "HEAD" | "OPTIONS") {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !constant_time_eq(sent.as_bytes(), s.csrf_token.as_bytes()) {
                return Err(SessionRefused::Csrf);
            }
        }
        let op = self.store().operator(&s.operator_id).await.map_err(|_| SessionRefused::Store)?.ok_or(SessionRefused::Unknown)?;
        if op.disabled {
            return Err(SessionRefused::Disabled);
        }
        Ok(Some(op))
    }
}

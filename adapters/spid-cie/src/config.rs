//! Configuration of the relying party and of operator sessions, as `sigess` flags and
//! environment variables (`RpArgs`, flattened into a subcommand) or built directly
//! (`RpConfig`, for tests and embedders).
use std::{path::PathBuf, time::Duration};

use serde_json::Value;

use crate::error::{Error, Result};

/// Flags of the SPID/CIE relying party. Nothing is enabled unless `--spid-entity-id` is
/// given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RpArgs {
    /// Entity id of the hub's relying party, with the trailing slash, e.g.
    /// https://sigess.comune.roma.it/oidc/rp/ . Its path must end in /oidc/rp/ (the routes
    /// are served there). Enables SPID/CIE login.
    #[arg(long, env = "SIGESS_SPID_ENTITY_ID")]
    pub spid_entity_id: Option<String>,
    /// Entity id of the Trust Anchor (with the trailing slash).
    #[arg(long, env = "SIGESS_SPID_TRUST_ANCHOR", default_value = "https://registry.spid.gov.it/")]
    pub spid_trust_anchor: String,
    /// JWKS file pinning the Trust Anchor's federation keys. Without it the keys the
    /// anchor publishes at its entity id are taken as they are.
    #[arg(long, env = "SIGESS_SPID_TRUST_ANCHOR_JWKS")]
    pub spid_trust_anchor_jwks: Option<PathBuf>,
    /// Federation key files (PEM or private JWK, RSA); the first one signs the entity
    /// configuration, all are published. Created (PEM, mode 0600) when missing.
    #[arg(long, env = "SIGESS_SPID_FEDERATION_KEY", value_delimiter = ',', default_value = "./data/spid-federation-key.pem")]
    pub spid_federation_key: Vec<PathBuf>,
    /// Signing key files for request objects and client assertions (first one signs).
    #[arg(long, env = "SIGESS_SPID_SIG_KEY", value_delimiter = ',', default_value = "./data/spid-sig-key.pem")]
    pub spid_sig_key: Vec<PathBuf>,
    /// Encryption key files for userinfo (picked by the JWE kid).
    #[arg(long, env = "SIGESS_SPID_ENC_KEY", value_delimiter = ',', default_value = "./data/spid-enc-key.pem")]
    pub spid_enc_key: Vec<PathBuf>,
    /// File with the trust marks issued to the relying party (a JSON list of
    /// {"trust_mark_type"/"id", "trust_mark"}), copied into the entity configuration.
    #[arg(long, env = "SIGESS_SPID_TRUST_MARKS")]
    pub spid_trust_marks: Option<PathBuf>,
    /// Trust mark types a provider must carry (issued by the Trust Anchor).
    #[arg(long, env = "SIGESS_SPID_PROVIDER_TRUST_MARK", value_delimiter = ',')]
    pub spid_provider_trust_mark: Vec<String>,
    /// Entity ids of the CIE providers (the others listed by the anchor are SPID).
    #[arg(long, env = "SIGESS_SPID_CIE_PROVIDERS", value_delimiter = ',')]
    pub spid_cie_providers: Vec<String>,
    /// Organisation name published in the metadata.
    #[arg(long, env = "SIGESS_SPID_ORGANIZATION", default_value = "Roma Capitale")]
    pub spid_organization: String,
    /// Home page of the organisation, published as `homepage_uri` (default: the origin of the
    /// entity id).
    #[arg(long, env = "SIGESS_SPID_HOMEPAGE_URI")]
    pub spid_homepage_uri: Option<String>,
    /// Privacy policy page (`policy_uri`), required for AgID onboarding.
    #[arg(long, env = "SIGESS_SPID_POLICY_URI")]
    pub spid_policy_uri: Option<String>,
    /// Logo (`logo_uri`), required for AgID onboarding.
    #[arg(long, env = "SIGESS_SPID_LOGO_URI")]
    pub spid_logo_uri: Option<String>,
    /// Contact addresses (the organisation's PEC first), published as `contacts` of the
    /// federation entity and of the relying party; repeat or separate with commas.
    #[arg(long, env = "SIGESS_SPID_CONTACTS", value_delimiter = ',')]
    pub spid_contact: Vec<String>,
    /// Client name shown by the providers.
    #[arg(long, env = "SIGESS_SPID_CLIENT_NAME", default_value = "SIGeSS - cartella sociale")]
    pub spid_client_name: String,
    /// SPID level requested (acr): 1, 2 or 3.
    #[arg(long, env = "SIGESS_SPID_LEVEL", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub spid_level: u8,
    /// Session cookie `Secure` attribute. Turn off only for plain-HTTP tests on 127.0.0.1.
    #[arg(long, env = "SIGESS_SESSION_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub session_cookie_secure: bool,
    /// Minutes without requests after which a session ends.
    #[arg(long, env = "SIGESS_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u64,
    /// Hours after login after which a session ends whatever its use.
    #[arg(long, env = "SIGESS_SESSION_MAX_HOURS", default_value_t = 8)]
    pub session_max_hours: u64,
    /// Entity ids of intermediates (with the trailing slash) a provider's chain may pass
    /// through on its way to the Trust Anchor; authority hints naming anything else are not
    /// followed. Empty: providers must be direct subordinates of the anchor.
    #[arg(long, env = "SIGESS_SPID_INTERMEDIATES", value_delimiter = ',')]
    pub spid_intermediate: Vec<String>,
    /// Allow plain http to loopback federation peers and providers (and an http loopback
    /// entity id). For tests against local peers only; never in production.
    #[arg(long, env = "SIGESS_SPID_ALLOW_HTTP_LOOPBACK")]
    pub spid_allow_http_loopback: bool,
}

/// Everything the relying party runs with.
#[derive(Clone, Debug)]
pub struct RpConfig {
    /// Entity id = client id, ending in `/`.
    pub entity_id: String,
    pub trust_anchor: String,
    pub anchor_keys: Vec<Value>,
    pub federation_keys: Vec<PathBuf>,
    pub sig_keys: Vec<PathBuf>,
    pub enc_keys: Vec<PathBuf>,
    /// Create missing key files (first start).
    pub create_keys: bool,
    pub trust_marks: Vec<Value>,
    pub provider_trust_marks: Vec<String>,
    pub cie_providers: Vec<String>,
    pub organization_name: String,
    pub client_name: String,
    /// `homepage_uri`; None: the origin of the entity id.
    pub homepage_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub logo_uri: Option<String>,
    /// `contacts` (the PEC first).
    pub contacts: Vec<String>,
    /// `https://www.spid.gov.it/SpidL<level>`.
    pub acr: String,
    pub cookie_secure: bool,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Lifetime of the published entity configuration.
    pub ec_lifetime: Duration,
    /// Longest time a resolved chain is used before resolving again.
    pub chain_max_age: Duration,
    /// How long a started login may take before its callback is refused.
    pub login_timeout: Duration,
    /// Purpose written to the audit trail for an operator's calls.
    pub purpose: String,
    pub http_timeout: Duration,
    /// Intermediates a provider's chain may pass through (besides the anchor).
    pub intermediates: Vec<String>,
    /// Plain http to loopback peers (tests only).
    pub allow_http_loopback: bool,
    /// Where an operator lands after login when the login named no return path: the path
    /// of the first entry whose role (as the hub spells it) the operator holds, else the
    /// login page. The gateway sends the holders of console roles to the console.
    pub landing: Vec<(String, String)>,
}

/// Longest return path a login carries (longer ones are ignored).
pub const MAX_RETURN_PATH: usize = 512;

/// True when `p` is a path on this site a browser may be sent to after login or logout:
/// absolute (`/…`), not `//host` or `/\host` (which browsers read as another site),
/// printable ASCII only (so it is a valid `Location` and carries no control characters),
/// and not longer than [`MAX_RETURN_PATH`].
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() <= MAX_RETURN_PATH && p.bytes().all(|b| b.is_ascii_graphic())
}

/// Path under which the routes are mounted; the entity id must end with it.
pub const BASE_PATH: &str = "/oidc/rp/";

impl RpConfig {
    /// Defaults around an entity id and a Trust Anchor.
    pub fn new(entity_id: &str, trust_anchor: &str) -> Self {
        Self {
            entity_id: entity_id.to_string(),
            trust_anchor: trust_anchor.to_string(),
            anchor_keys: Vec::new(),
            federation_keys: Vec::new(),
            sig_keys: Vec::new(),
            enc_keys: Vec::new(),
            create_keys: true,
            trust_marks: Vec::new(),
            provider_trust_marks: Vec::new(),
            cie_providers: Vec::new(),
            organization_name: "Roma Capitale".into(),
            client_name: "SIGeSS - cartella sociale".into(),
            homepage_uri: None,
            policy_uri: None,
            logo_uri: None,
            contacts: Vec::new(),
            acr: "https://www.spid.gov.it/SpidL2".into(),
            cookie_secure: true,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(8 * 3600),
            ec_lifetime: Duration::from_secs(24 * 3600),
            chain_max_age: Duration::from_secs(3600),
            login_timeout: Duration::from_secs(10 * 60),
            purpose: "gestione della cartella sociale".into(),
            http_timeout: Duration::from_secs(10),
            intermediates: Vec::new(),
            allow_http_loopback: false,
            landing: Vec::new(),
        }
    }

    /// Where a browser goes once the operator holding `roles` has logged in: the login's
    /// own return path when it had a valid one, else the landing of the first role of
    /// [`RpConfig::landing`] the operator holds, else the login page.
    pub fn after_login<'a>(&'a self, return_to: Option<&'a str>, roles: &[String]) -> &'a str {
        if let Some(p) = return_to.filter(|p| is_local_path(p)) {
            return p;
        }
        self.landing.iter().find(|(role, _)| roles.iter().any(|r| r == role)).map_or(BASE_PATH, |(_, path)| path.as_str())
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}callback", self.entity_id)
    }

    /// The federation resolve endpoint the relying party serves (about itself).
    pub fn resolve_endpoint(&self) -> String {
        format!("{}resolve", self.entity_id)
    }

    /// `homepage_uri`: the configured one, or the origin of the entity id.
    pub fn homepage(&self) -> String {
        self.homepage_uri.clone().unwrap_or_else(|| {
            reqwest::Url::parse(&self.entity_id).map(|u| u.origin().ascii_serialization() + "/").unwrap_or_else(|_| self.entity_id.clone())
        })
    }

    /// Checks the values that would make the login unsafe or unreachable.
    pub fn validate(&self) -> Result<()> {
        let eid = crate::http::check_url(&self.entity_id, self.allow_http_loopback)
            .map_err(|_| Error::Key("entity id must be https (http on loopback only with --spid-allow-http-loopback)".into()))?;
        if !eid.path().ends_with(BASE_PATH) || eid.query().is_some() || eid.fragment().is_some() {
            return Err(Error::Key(format!("entity id must end with {BASE_PATH}, without query or fragment")));
        }
        if !self.trust_anchor.ends_with('/') {
            return Err(Error::Key("trust anchor id must end with /".into()));
        }
        if !self.cookie_secure && eid.scheme() == "https" {
            return Err(Error::Key("a non-Secure session cookie is allowed only for an http loopback entity id".into()));
        }
        if self.landing.iter().any(|(_, path)| !is_local_path(path)) {
            return Err(Error::Key("a landing after login must be a path of this site".into()));
        }
        if self.idle_timeout.is_zero() || self.absolute_timeout < self.idle_timeout {
            return Err(Error::Key("session timeouts: idle must be > 0 and not above the absolute one".into()));
        }
        Ok(())
    }
}

impl RpArgs {
    /// The configuration these flags describe; None when login is not enabled.
    pub fn config(&self) -> Result<Option<RpConfig>> {
        let Some(entity_id) = &self.spid_entity_id else { return Ok(None) };
        let mut c = RpConfig::new(entity_id, &self.spid_trust_anchor);
        if let Some(p) = &self.spid_trust_anchor_jwks {
            let v: Value = read_json(p)?;
            c.anchor_keys = v.get("keys").and_then(Value::as_array).cloned().ok_or(Error::Key("anchor JWKS has no keys".into()))?;
        }
        c.federation_keys = self.spid_federation_key.clone();
        c.sig_keys = self.spid_sig_key.clone();
        c.enc_keys = self.spid_enc_key.clone();
        if let Some(p) = &self.spid_trust_marks {
            c.trust_marks = match read_json(p)? {
                Value::Array(a) => a,
                _ => return Err(Error::Key("trust marks file must hold a JSON list".into())),
            };
        }
        c.provider_trust_marks = self.spid_provider_trust_mark.clone();
        c.cie_providers = self.spid_cie_providers.clone();
        c.organization_name = self.spid_organization.clone();
        c.client_name = self.spid_client_name.clone();
        c.homepage_uri = self.spid_homepage_uri.clone();
        c.policy_uri = self.spid_policy_uri.clone();
        c.logo_uri = self.spid_logo_uri.clone();
        c.contacts = self.spid_contact.clone();
        for (flag, set) in [
            ("--spid-policy-uri", c.policy_uri.is_some()),
            ("--spid-logo-uri", c.logo_uri.is_some()),
            ("--spid-contact (the PEC)", !c.contacts.is_empty()),
        ] {
            if !set {
                tracing::warn!("SPID/CIE: {flag} is not set; AgID onboarding requires it in the entity configuration");
            }
        }
        c.acr = format!("https://www.spid.gov.it/SpidL{}", self.spid_level);
        c.cookie_secure = self.session_cookie_secure;
        c.idle_timeout = Duration::from_secs(self.session_idle_minutes.max(1) * 60);
        c.absolute_timeout = Duration::from_secs(self.session_max_hours.max(1) * 3600);
        c.intermediates = self.spid_intermediate.clone();
        c.allow_http_loopback = self.spid_allow_http_loopback;
        if c.allow_http_loopback {
            tracing::warn!("SPID/CIE: plain http to loopback peers is allowed (--spid-allow-http-loopback): tests only");
        }
        c.validate()?;
        Ok(Some(c))
    }
}

fn read_json(p: &std::path::Path) -> Result<Value> {
    let bytes = std::fs::read(p).map_err(|e| Error::Key(format!("cannot read {}: {}", p.display(), e.kind())))?;
    serde_json::from_slice(&bytes).map_err(|_| Error::Key(format!("{} is not JSON", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_return_paths() {
        for ok in ["/", "/console/", "/console/statistiche?anno=2026", "/oidc/rp/", "/%2F%2Fstill-a-path"] {
            assert!(is_local_path(ok), "{ok}");
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_PATH));
        for bad in [
            "",
            "console",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example/",
            "/a\r\nLocation: https://evil.example/",
            "/a b",
            "/caffè",
            "\t/console/",
            long.as_str(),
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn after_login_the_return_path_then_the_role_landing_then_the_login_page() {
        let mut c = RpConfig::new("https://sigess.example.org/oidc/rp/", "https://ta.example.org/");
        c.landing = vec![("amministratore".into(), "/console/".into()), ("statistica".into(), "/console/statistiche".into())];
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: [(Option<&str>, &[&str], &str); 8] = [
            (None, &["operatore"], BASE_PATH),
            (None, &[], BASE_PATH),
            (None, &["statistica"], "/console/statistiche"),
            (None, &["statistica", "amministratore"], "/console/"),
            (Some("/console/registro"), &["operatore"], "/console/registro"),
            (Some("//evil.example/"), &["amministratore"], "/console/"),
            (Some("https://evil.example/"), &["operatore"], BASE_PATH),
            (Some("/x\r\ny"), &["statistica"], "/console/statistiche"),
        ];
        for (ret, r, want) in cases {
            assert_eq!(c.after_login(ret, &roles(r)), want, "{ret:?} {r:?}");
        }
        assert!(c.validate().is_ok());
        c.landing.push(("dpo".into(), "https://evil.example/".into()));
        assert!(c.validate().is_err(), "a landing off this site is refused");
    }
}

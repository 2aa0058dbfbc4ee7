//! The adapter's configuration: every flag under `--regione-` (env `SIGESS_REGIONE_…`), and
//! its resolution into a checked [`Config`] (files read, all-or-none groups enforced), parsed
//! and tested apart from any I/O but reading the named key files.
use std::{path::PathBuf, time::Duration};

/// Flags of the Regione Lazio adapter. Without `--regione-fhir-base` the adapter is off. Each
/// argument's id carries the `regione_` prefix: the gateway's own flags (`pdnd_audience`,
/// `modi_audience`, ...) share the command and clap refuses two arguments with one id.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RegioneArgs {
    /// Base URL of the region's FHIR R4 server (transaction Bundles are POSTed to it, health
    /// is GET {base}/metadata). Absent: the adapter is off.
    #[arg(id = "regione_fhir_base", long = "regione-fhir-base", env = "SIGESS_REGIONE_FHIR_BASE", value_name = "URL")]
    pub fhir_base: Option<String>,
    /// PDND token endpoint the hub asks for a voucher (client_credentials with a signed
    /// client assertion). With the other --regione-pdnd-* flags it switches PDND on.
    #[arg(id = "regione_pdnd_token_url", long = "regione-pdnd-token-url", env = "SIGESS_REGIONE_PDND_TOKEN_URL", value_name = "URL")]
    pub pdnd_token_url: Option<String>,
    /// The hub's client id on PDND (iss and sub of the client assertion).
    #[arg(id = "regione_pdnd_client_id", long = "regione-pdnd-client-id", env = "SIGESS_REGIONE_PDND_CLIENT_ID")]
    pub pdnd_client_id: Option<String>,
    /// Key id (kid) of the hub's public key registered on PDND.
    #[arg(id = "regione_pdnd_kid", long = "regione-pdnd-kid", env = "SIGESS_REGIONE_PDND_KID")]
    pub pdnd_kid: Option<String>,
    /// PEM file with the hub's RSA private key: signs the client assertion, and the ModI
    /// headers when ModI is on.
    #[arg(id = "regione_pdnd_key", long = "regione-pdnd-key", env = "SIGESS_REGIONE_PDND_KEY", value_name = "FILE")]
    pub pdnd_key: Option<PathBuf>,
    /// Audience of the client assertion (PDND's, as its documentation names it).
    #[arg(id = "regione_pdnd_audience", long = "regione-pdnd-audience", env = "SIGESS_REGIONE_PDND_AUDIENCE")]
    pub pdnd_audience: Option<String>,
    /// purposeId of the hub's purpose (finalità) for the region's e-service.
    #[arg(id = "regione_pdnd_purpose_id", long = "regione-pdnd-purpose-id", env = "SIGESS_REGIONE_PDND_PURPOSE_ID")]
    pub pdnd_purpose_id: Option<String>,
    /// Audience of the ModI headers (the e-service's, as the region publishes it). Switches on
    /// INTEGRITY_REST_01 (Agid-JWT-Signature with Digest) and AUDIT_REST_02
    /// (Agid-JWT-TrackingEvidence); needs PDND on.
    #[arg(id = "regione_modi_audience", long = "regione-modi-audience", env = "SIGESS_REGIONE_MODI_AUDIENCE")]
    pub modi_audience: Option<String>,
    /// PEM client certificate for mutual TLS with the region (with --regione-tls-key).
    #[arg(id = "regione_tls_cert", long = "regione-tls-cert", env = "SIGESS_REGIONE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the mutual-TLS client certificate.
    #[arg(id = "regione_tls_key", long = "regione-tls-key", env = "SIGESS_REGIONE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle to trust for the region's server, in addition to the system roots.
    #[arg(id = "regione_tls_ca", long = "regione-tls-ca", env = "SIGESS_REGIONE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Timeout of one request to the region or to PDND, in seconds.
    #[arg(id = "regione_timeout", long = "regione-timeout", env = "SIGESS_REGIONE_TIMEOUT", default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// The condivisione recipient (ufficio_destinatario) that records the basis for sharing a
    /// cartella with the region.
    #[arg(id = "regione_recipient", long = "regione-recipient", env = "SIGESS_REGIONE_RECIPIENT", default_value = "REGIONE")]
    pub recipient: String,
    /// Write each resource as a conditional update on its business identifier (`PUT
    /// Type?identifier=…`) instead of an update of an id derived from it: for servers that
    /// refuse client-assigned ids (and accept conditional transactions of a cartella's size).
    #[arg(id = "regione_conditional_writes", long = "regione-conditional-writes", env = "SIGESS_REGIONE_CONDITIONAL_WRITES")]
    pub conditional_writes: bool,
    /// Most entries in one transaction: a larger cartella goes as several transactions, in
    /// order (servers cap them; Medplum at 50 updates).
    #[arg(id = "regione_max_entries", long = "regione-max-entries", env = "SIGESS_REGIONE_MAX_ENTRIES", default_value_t = 50)]
    pub max_entries: usize,
}

/// Why the flags do not make a configuration. Names flags, never values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--regione-fhir-base must be an http(s) URL")]
    BadBase,
    #[error("PDND needs all of --regione-pdnd-token-url, -client-id, -kid, -key, -audience, -purpose-id; missing: {0}")]
    PdndIncomplete(String),
    #[error("--regione-modi-audience needs PDND on (the ModI headers are signed with the PDND client's key)")]
    ModiWithoutPdnd,
    #[error("--regione-tls-cert and --regione-tls-key go together")]
    TlsIncomplete,
    #[error("cannot read {flag}: {source}")]
    Read { flag: &'static str, source: std::io::Error },
    #[error("--regione-pdnd-key is not a PEM RSA private key usable for RS256")]
    BadKey,
    #[error("--regione-timeout must be at least 1 second")]
    BadTimeout,
    #[error("--regione-max-entries must be at least 1")]
    BadMaxEntries,
    #[error("cannot build the HTTP client (TLS material?): {0}")]
    Client(String),
}

/// PDND voucher settings, checked.
#[derive(Clone)]
pub struct PdndConfig {
    pub token_url: String,
    pub client_id: String,
    pub kid: String,
    /// The hub's private key, PEM.
    pub key_pem: Vec<u8>,
    pub audience: String,
    pub purpose_id: String,
}

impl std::fmt::Debug for PdndConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdndConfig")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .field("key_pem", &"<redacted>")
            .field("audience", &self.audience)
            .field("purpose_id", &self.purpose_id)
            .finish()
    }
}

/// The adapter's checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub fhir_base: String,
    pub pdnd: Option<PdndConfig>,
    /// ModI audience: Some switches on INTEGRITY_REST_01 and AUDIT_REST_02.
    pub modi_audience: Option<String>,
    /// Client certificate chain and key (PEM, concatenated) for mTLS.
    pub tls_identity_pem: Option<Vec<u8>>,
    pub tls_ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    pub recipient: String,
    pub writes: crate::mapping::Writes,
    pub max_entries: usize,
}

impl Config {
    /// A configuration with only the base URL (no PDND, ModI, mTLS), for tests and the demo.
    pub fn plain(fhir_base: impl Into<String>) -> Self {
        Self {
            fhir_base: fhir_base.into(),
            pdnd: None,
            modi_audience: None,
            tls_identity_pem: None,
            tls_ca_pem: None,
            timeout: Duration::from_secs(10),
            recipient: "REGIONE".into(),
            writes: crate::mapping::Writes::ById,
            max_entries: 50,
        }
    }
}

fn read(flag: &'static str, path: &PathBuf) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read { flag, source })
}

impl RegioneArgs {
    /// The checked configuration; Ok(None) when the adapter is off (no base URL).
    pub fn config(&self) -> Result<Option<Config>, ConfigError> {
        let Some(base) = self.fhir_base.as_deref().map(str::trim).filter(|b| !b.is_empty()) else { return Ok(None) };
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(ConfigError::BadBase);
        }
        if self.timeout == 0 {
            return Err(ConfigError::BadTimeout);
        }
        if self.max_entries == 0 {
            return Err(ConfigError::BadMaxEntries);
        }
        let pdnd_fields = [
            ("--regione-pdnd-token-url", self.pdnd_token_url.is_some()),
            ("--regione-pdnd-client-id", self.pdnd_client_id.is_some()),
            ("--regione-pdnd-kid", self.pdnd_kid.is_some()),
            ("--regione-pdnd-key", self.pdnd_key.is_some()),
            ("--regione-pdnd-audience", self.pdnd_audience.is_some()),
            ("--regione-pdnd-purpose-id", self.pdnd_purpose_id.is_some()),
        ];
        let missing: Vec<&str> = pdnd_fields.iter().filter(|(_, set)| !set).map(|(n, _)| *n).collect();
        let pdnd = match (
            &self.pdnd_token_url,
            &self.pdnd_client_id,
            &self.pdnd_kid,
            &self.pdnd_key,
            &self.pdnd_audience,
            &self.pdnd_purpose_id,
        ) {
            (Some(token_url), Some(client_id), Some(kid), Some(key), Some(audience), Some(purpose_id)) => {
                let key_pem = read("--regione-pdnd-key", key)?;
                // Refuse a key that cannot sign now, not at the first delivery.
                josekit::jws::RS256.signer_from_pem(&key_pem).map_err(|_| ConfigError::BadKey)?;
                Some(PdndConfig {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    kid: kid.clone(),
                    key_pem,
                    audience: audience.clone(),
                    purpose_id: purpose_id.clone(),
                })
            }
            _ if missing.len() == pdnd_fields.len() => None,
            _ => return Err(ConfigError::PdndIncomplete(missing.join(", "))),
        };
        if self.modi_audience.is_some() && pdnd.is_none() {
            return Err(ConfigError::ModiWithoutPdnd);
        }
        let tls_identity_pem = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                let mut pem = read("--regione-tls-cert", c)?;
                pem.push(b'\n');
                pem.extend(read("--regione-tls-key", k)?);
                Some(pem)
            }
            (None, None) => None,
            _ => return Err(ConfigError::TlsIncomplete),
        };
        let tls_ca_pem = self.tls_ca.as_ref().map(|p| read("--regione-tls-ca", p)).transpose()?;
        Ok(Some(Config {
            fhir_base: base.trim_end_matches('/').to_string(),
            pdnd,
            modi_audience: self.modi_audience.clone(),
            tls_identity_pem,
            tls_ca_pem,
            timeout: Duration::from_secs(self.timeout),
            recipient: self.recipient.clone(),
            writes: if self.conditional_writes { crate::mapping::Writes::Conditional } else { crate::mapping::Writes::ById },
            max_entries: self.max_entries,
        }))
    }
}

/// What the hub prints loudly at start when the adapter runs without the protections a
/// production regional e-service needs.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if cfg.pdnd.is_none() {
        w.push("Regione Lazio adapter: PDND is OFF (no voucher is sent); production needs --regione-pdnd-token-url, --regione-pdnd-client-id, --regione-pdnd-kid, --regione-pdnd-key, --regione-pdnd-audience, --regione-pdnd-purpose-id".into());
    }
    if cfg.modi_audience.is_none() {
        w.push("Regione Lazio adapter: ModI INTEGRITY_REST_01 and AUDIT_REST_02 are OFF (requests are not signed); production needs --regione-modi-audience".into());
    }
    if cfg.fhir_base.starts_with("http://") {
        w.push("Regione Lazio adapter: --regione-fhir-base is plain http; production needs https".into());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        regione: RegioneArgs,
    }

    fn parse(args: &[&str]) -> Result<Option<Config>, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("sigess").chain(args.iter().copied())).expect("flags parse");
        cli.regione.config()
    }

    #[test]
    fn absent_base_means_off_and_base_alone_warns() {
        assert!(parse(&[]).expect("ok").is_none());
        let cfg = parse(&["--regione-fhir-base", "http://127.0.0.1:8090/fhir/"]).expect("ok").expect("on");
        assert_eq!(cfg.fhir_base, "http://127.0.0.1:8090/fhir");
        assert_eq!(cfg.recipient, "REGIONE");
        let w = warnings(&cfg);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("PDND is OFF") && w[1].contains("ModI") && w[2].contains("https"));
    }

    #[test]
    fn incomplete_groups_are_refused_naming_flags() {
        let e = parse(&["--regione-fhir-base", "https://x.example", "--regione-pdnd-client-id", "c"]).expect_err("refused");
        let m = e.to_string();
        assert!(m.contains("--regione-pdnd-token-url") && !m.contains("--regione-pdnd-client-id,"), "{m}");
        let e = parse(&["--regione-fhir-base", "https://x.example", "--regione-modi-audience", "a"]).expect_err("refused");
        assert!(matches!(e, ConfigError::ModiWithoutPdnd));
        let e = parse(&["--regione-fhir-base", "https://x.example", "--regione-tls-cert", "/x"]).expect_err("refused");
        assert!(matches!(e, ConfigError::TlsIncomplete));
        assert!(matches!(parse(&["--regione-fhir-base", "ftp://x"]), Err(ConfigError::BadBase)));
        assert!(matches!(parse(&["--regione-fhir-base", "https://x.example", "--regione-timeout", "0"]), Err(ConfigError::BadTimeout)));
    }

    #[test]
    fn a_full_pdnd_group_reads_and_checks_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a key").expect("write");
        let good = dir.path().join("good.pem");
        let kp = josekit::jws::RS256.generate_key_pair(2048).expect("key");
        std::fs::write(&good, kp.to_pem_private_key()).expect("write");
        let flags = |key: &str| {
            vec![
                "--regione-fhir-base".to_string(),
                "https://fhir.example".into(),
                "--regione-pdnd-token-url".into(),
                "https://pdnd.example/token".into(),
                "--regione-pdnd-client-id".into(),
                "client".into(),
                "--regione-pdnd-kid".into(),
                "kid1".into(),
                "--regione-pdnd-key".into(),
                key.into(),
                "--regione-pdnd-audience".into(),
                "aud".into(),
                "--regione-pdnd-purpose-id".into(),
                "purpose".into(),
                "--regione-modi-audience".into(),
                "modi".into(),
            ]
        };
        let run = |key: &str| {
            let f = flags(key);
            parse(&f.iter().map(String::as_str).collect::<Vec<_>>())
        };
        assert!(matches!(run(bad.to_str().expect("utf8")), Err(ConfigError::BadKey)));
        assert!(matches!(run("/nonexistent/key.pem"), Err(ConfigError::Read { .. })));
        let cfg = run(good.to_str().expect("utf8")).expect("ok").expect("on");
        assert!(cfg.pdnd.is_some() && cfg.modi_audience.as_deref() == Some("modi"));
        assert!(warnings(&cfg).is_empty());
        assert!(!format!("{cfg:?}").contains("PRIVATE KEY"));
    }
}

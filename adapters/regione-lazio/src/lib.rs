//! The Regione Lazio adapter: cartelle shared with the regional socio-sanitary record as FHIR
//! R4, and protected hospital discharges received from it.
//!
//! Outbound, [`RegioneLazio`] implements the adapter contract: for a change of a person's
//! records it loads the person's cartelle (or the one cartella the change names), maps each
//! cartella **that has a sharing basis** ([`mapping::sharing_basis`]) to one `transaction`
//! Bundle of conditional updates ([`mapping`]), and POSTs it to the region's FHIR base with a
//! PDND voucher and the ModI headers when configured ([`security`], [`config`]), classifying
//! the answer ([`classify`]). Inbound, [`dimissione`] parses and validates a protected
//! discharge `message` Bundle into a typed [`dimissione::Dimissione`] or an OperationOutcome,
//! routes it to a Municipio and builds the response message; the gateway serves it.
use std::time::SystemTime;

use adapter_contract::{Adapter, CartellaView, Change, Health, Outcome, Planned, Reason, Source, kind};
use serde_json::Value;

pub mod classify;
pub mod config;
pub mod dimissione;
pub mod mapping;
pub mod security;

pub use config::{Config, ConfigError, RegioneArgs, warnings};

/// The adapter's id in the delivery tables, the API and metric labels.
pub const ID: &str = "regione-lazio";
const FHIR_JSON: &str = "application/fhir+json";

/// What [`RegioneLazio::load`] reads for one change: the cartelle to consider, and the day
/// (UTC) against which sharing bases are checked, read once so `map` stays pure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    pub today: String,
    pub cartelle: Vec<CartellaView>,
}

/// One cartella's transaction Bundle, ready to POST.
#[derive(Clone, Debug, PartialEq)]
pub struct BundleDelivery {
    pub cartella_id: String,
    pub bundle: Value,
}

/// The adapter. Cheap to share (the engine holds one).
#[derive(Debug)]
pub struct RegioneLazio {
    cfg: Config,
    http: reqwest::Client,
    pdnd: Option<security::Pdnd>,
}

impl RegioneLazio {
    /// Builds the adapter and its HTTP client (mTLS identity and extra CA when configured).
    pub fn new(cfg: Config) -> Result<Self, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirected POST would be retried as a GET by a following client.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &cfg.tls_identity_pem {
            builder = builder.identity(
                reqwest::Identity::from_pem(pem).map_err(|_| ConfigError::Client("--regione-tls-cert/--regione-tls-key".into()))?,
            );
        }
        if let Some(pem) = &cfg.tls_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|_| ConfigError::Client("--regione-tls-ca".into()))? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| ConfigError::Client(e.to_string()))?;
        let pdnd = match &cfg.pdnd {
            Some(p) => Some(security::Pdnd::new(p.clone(), cfg.modi_audience.clone()).map_err(|_| ConfigError::BadKey)?),
            None => None,
        };
        Ok(Self { cfg, http, pdnd })
    }

    /// The adapter the flags configure, with the warnings to print loudly at start; None
    /// when `--regione-fhir-base` is absent (the adapter is off).
    pub fn from_args(args: &RegioneArgs) -> Result<Option<(Self, Vec<String>)>, ConfigError> {
        let Some(cfg) = args.config()? else { return Ok(None) };
        let w = warnings(&cfg);
        Ok(Some((Self::new(cfg)?, w)))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The Bundles of `loaded`: one per cartella with a sharing basis (or an ended one, to
    /// withdraw), keyed by cartella id and content hash.
    pub fn bundles(&self, loaded: &Loaded) -> Result<Vec<Planned<BundleDelivery>>, Reason> {
        plan(&loaded.cartelle, &self.cfg.recipient, &loaded.today, self.cfg.writes, self.cfg.max_entries)
    }

    async fn post(&self, body: Vec<u8>) -> Outcome {
        let mut req = self
            .http
            .post(format!("{}/", self.cfg.fhir_base))
            .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
            .header(reqwest::header::ACCEPT, FHIR_JSON);
        if let Some(pdnd) = &self.pdnd {
            let voucher = match pdnd.voucher(&self.http).await {
                Ok(v) => v,
                Err(e) => return Outcome::retry("PDND_VOUCHER", e.to_string()),
            };
            req = req.bearer_auth(&voucher.access_token);
            if let Some(aud) = &self.cfg.modi_audience {
                let (digest, signature) = match security::integrity(pdnd.signer(), aud, &body, FHIR_JSON) {
                    Ok(x) => x,
                    Err(e) => return Outcome::permanent("MODI_SIGN", e.to_string()),
                };
                req = req.header("Digest", digest).header("Agid-JWT-Signature", signature);
                if let Some(t) = &voucher.tracking_evidence {
                    req = req.header("Agid-JWT-TrackingEvidence", t);
                }
            }
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::retry("FHIR_UNREACHABLE", security::transport_kind(&e)),
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if (200..300).contains(&status) => {
                // The server took the transaction; a lost answer body does not undo it.
                tracing::warn!(adapter = ID, error = security::transport_kind(&e), "answer body lost after a 2xx");
                Default::default()
            }
            Err(e) => return Outcome::retry("FHIR_UNREACHABLE", security::transport_kind(&e)),
        };
        if status == 401 {
            match &self.pdnd {
                Some(pdnd) => pdnd.forget().await,
                // Without PDND nothing the hub can renew would change the answer.
                None => return Outcome::permanent("FHIR_UNAUTHORIZED", "HTTP 401 and PDND is off (--regione-pdnd-*)"),
            }
        }
        classify::classify(status, retry_after.as_deref(), &body)
    }
}

/// Maps cartelle to their Bundles (see [`RegioneLazio::bundles`]): the whole cartella while
/// its basis holds, only the inactive Consent once it has ended, nothing when it never had
/// one; a Bundle larger than `max_entries` goes as several transactions in order
/// ([`mapping::split`]). Pure.
pub fn plan(
    cartelle: &[CartellaView],
    recipient: &str,
    today: &str,
    writes: mapping::Writes,
    max_entries: usize,
) -> Result<Vec<Planned<BundleDelivery>>, Reason> {
    let mut out = Vec::new();
    for view in cartelle {
        let bundle = match (mapping::sharing_basis(view, recipient, today), mapping::ended_basis(view, recipient, today)) {
            (Some(basis), _) => mapping::cartella_bundle(view, basis, writes)?,
            (None, Some(ended)) => mapping::withdrawal_bundle(view, ended, writes)?,
            (None, None) => continue,
        };
        let cartella_id = view.cartella.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
        let key = mapping::bundle_key(&cartella_id, &bundle);
        let parts = mapping::split(bundle, max_entries, writes);
        let n = parts.len();
        for (i, bundle) in parts.into_iter().enumerate() {
            // Parts of one Bundle are delivered in order; a retry skips those already delivered.
            let key = if n == 1 { key.clone() } else { format!("{key}:{}/{n}", i + 1) };
            out.push(Planned { key, delivery: BundleDelivery { cartella_id: cartella_id.clone(), bundle } });
        }
    }
    Ok(out)
}

/// Today's date in UTC, "YYYY-MM-DD".
fn today() -> String {
    let now: time::OffsetDateTime = SystemTime::now().into();
    let d = now.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The cartella a change is about, when it names one.
fn cartella_of(change: &Change) -> Option<&str> {
    if change.kind == kind::CARTELLA { Some(change.id.as_str()) } else { Some(change.cartella_id.as_str()).filter(|c| !c.is_empty()) }
}

impl Adapter for RegioneLazio {
    type Input = Loaded;
    type Delivery = BundleDelivery;

    fn id(&self) -> &'static str {
        ID
    }

    fn follows(&self) -> &'static [&'static str] {
        &[kind::PERSONA, kind::NUCLEO, kind::ACCESSO, kind::CARTELLA, kind::VALUTAZIONE, kind::PAI, kind::PRESTAZIONE, kind::CONDIVISIONE]
    }

    /// Every delivery is the state of whole cartelle at delivery time: the changes of one
    /// cartella (or, for a change of the person, of all the person's cartelle) queued before
    /// one of them is claimed go as that one Bundle.
    fn coalesce(&self, change: &Change) -> Option<String> {
        match cartella_of(change) {
            Some(id) => Some(format!("cartella:{id}")),
            None if !change.persona_id.is_empty() => Some(format!("persona:{}", change.persona_id)),
            None => None,
        }
    }

    async fn load<'a>(&'a self, change: &'a Change, source: &'a dyn Source) -> Result<Loaded, Outcome> {
        let ids = match cartella_of(change) {
            Some(id) => vec![id.to_string()],
            None if !change.persona_id.is_empty() => source.cartelle_of_persona(&change.persona_id).await?,
            // A change with neither (e.g. a household) names nobody to send.
            None => Vec::new(),
        };
        let mut cartelle = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(view) = source.cartella(&id).await? {
                cartelle.push(view);
            }
        }
        Ok(Loaded { today: today(), cartelle })
    }

    fn map(&self, _change: &Change, input: Loaded) -> Result<Vec<Planned<BundleDelivery>>, Reason> {
        self.bundles(&input)
    }

    async fn deliver<'a>(&'a self, planned: &'a Planned<BundleDelivery>) -> Outcome {
        match serde_json::to_vec(&planned.delivery.bundle) {
            Ok(body) => self.post(body).await,
            Err(_) => Outcome::permanent("BUNDLE_ENCODE", "the Bundle cannot be serialised"),
        }
    }

    async fn health(&self) -> Health {
        match self.http.get(format!("{}/metadata", self.cfg.fhir_base)).header(reqwest::header::ACCEPT, FHIR_JSON).send().await {
            Ok(r) if r.status().is_success() => Health::Up,
            Ok(r) => Health::Down(format!("GET /metadata answered HTTP {}", r.status().as_u16())),
            Err(e) => Health::Down(format!("GET /metadata: {}", security::transport_kind(&e))),
        }
    }
}

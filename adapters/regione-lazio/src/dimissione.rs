//! Inbound protected hospital discharge (*dimissione protetta*): the region's FHIR `message`
//! Bundle parsed and validated into a typed [`Dimissione`], the health district routed to its
//! Municipio ([`DISTRETTI_ROMA`]), and the FHIR response message. Pure: the gateway serves
//! the endpoint (behind PDND and ModI) and core records the case.
//!
//! The message the hub accepts:
//! - `Bundle.type` = `message`; `entry[0]` a MessageHeader with `eventCoding`
//!   [`EVENT_SYSTEM`]|[`EVENT_CODE`], an `id` (the message id: the same id twice is one case)
//!   and `source.endpoint`;
//! - one Patient: codice fiscale (under its OID, or the older `http://hl7.it/sid/codiceFiscale`),
//!   family and given name, birth date; gender optional; citizenship (the `patient-citizenship`
//!   extension, ISO 3166 numeric) optional for a person born in Italy, required for one whose
//!   codice fiscale says born abroad;
//! - one Encounter, the discharge: `status` finished, `period.end` the discharge day, `subject`
//!   the Patient;
//! - one ServiceRequest for the social assessment: an `identifier`, `status` active, `intent`
//!   order, a `code`, `subject` the Patient, and the health district that is to take the case
//!   as a `locationCode` coding of [`DISTRETTO_SYSTEM`].
//!
//! Every problem found is reported, each with its FHIRPath `expression` and a fixed text:
//! an OperationOutcome never repeats a value of the message.
use adapter_contract::pb;
use serde_json::{Value, json};

use crate::mapping::{CF_SYSTEM, CF_SYSTEM_LEGACY, CITIZENSHIP, ISO_3166, code_system, is_calendar_date, sid, urn_uuid};

/// The event of a protected discharge, in the hub's code system of regional events.
pub const EVENT_CODE: &str = "dimissione-protetta";
pub static EVENT_SYSTEM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| code_system("evento-regione"));
/// Health districts: ministerial ASL code, a dash, the district's number (see [`DISTRETTI_ROMA`]).
pub static DISTRETTO_SYSTEM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| code_system("distretto-sanitario"));

/// Which Municipio takes a case from which health district of Rome. This is configuration
/// held as code: the ministerial codes of ASL Roma 1 (120201), Roma 2 (120202) and Roma 3
/// (120203) and the district numbers, each district covering exactly one Municipio (since the
/// 2016 reorganisation the number of a Roman district is the number of its Municipio: ASL
/// Roma 1 covers Municipi I, II, III, XIII, XIV, XV; Roma 2 IV–IX; Roma 3 X–XII). Change it
/// here, and only here, when the region renumbers.
pub const DISTRETTI_ROMA: [(&str, &str); 15] = [
    ("120201-01", "M01"),
    ("120201-02", "M02"),
    ("120201-03", "M03"),
    ("120201-13", "M13"),
    ("120201-14", "M14"),
    ("120201-15", "M15"),
    ("120202-04", "M04"),
    ("120202-05", "M05"),
    ("120202-06", "M06"),
    ("120202-07", "M07"),
    ("120202-08", "M08"),
    ("120202-09", "M09"),
    ("120203-10", "M10"),
    ("120203-11", "M11"),
    ("120203-12", "M12"),
];

/// The Municipio (ufficio code) of a Roman health district, if the district is one.
pub fn municipio_of(distretto: &str) -> Option<&'static str> {
    DISTRETTI_ROMA.iter().find(|(d, _)| *d == distretto).map(|(_, m)| *m)
}

/// A valid protected-discharge message. Its Debug redacts the personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct Dimissione {
    /// MessageHeader.id: the message's identity (a resend carries the same).
    pub message_id: String,
    /// ServiceRequest.identifier value: the region's id of the assessment request.
    pub richiesta_id: String,
    pub codice_fiscale: String,
    pub cognome: String,
    pub nome: String,
    pub sesso: pb::Sesso,
    /// "YYYY-MM-DD".
    pub data_nascita: String,
    /// ISO 3166 numeric code of the citizenship, when the message states it.
    pub cittadinanza: Option<String>,
    /// The discharge day, "YYYY-MM-DD".
    pub data_dimissione: String,
    pub distretto: String,
    /// The Municipio (ufficio code, "M01" … "M15") that takes the case.
    pub municipio: &'static str,
}

impl std::fmt::Debug for Dimissione {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dimissione")
            .field("message_id", &self.message_id)
            .field("richiesta_id", &self.richiesta_id)
            .field("codice_fiscale", &"<redacted>")
            .field("cognome", &"<redacted>")
            .field("nome", &"<redacted>")
            .field("sesso", &"<redacted>")
            .field("data_nascita", &"<redacted>")
            .field("cittadinanza", &"<redacted>")
            .field("data_dimissione", &self.data_dimissione)
            .field("distretto", &self.distretto)
            .field("municipio", &self.municipio)
            .finish()
    }
}

/// One problem of a message: an OperationOutcome issue code, where, and a fixed text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub code: &'static str,
    pub expression: String,
    pub text: &'static str,
}

/// A refused message: every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub Vec<Issue>);

impl Invalid {
    /// The OperationOutcome to answer with (HTTP 400 / 422).
    pub fn operation_outcome(&self) -> Value {
        json!({
            "resourceType": "OperationOutcome",
            "issue": self.0.iter().map(|i| json!({
                "severity": "error",
                "code": i.code,
                "details": { "text": i.text },
                "expression": [i.expression],
            })).collect::<Vec<_>>(),
        })
    }
}

struct Problems(Vec<Issue>);

impl Problems {
    fn add(&mut self, code: &'static str, expression: impl Into<String>, text: &'static str) {
        self.0.push(Issue { code, expression: expression.into(), text });
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(*p)?,
        };
    }
    cur.as_str().filter(|s| !s.trim().is_empty())
}

/// Whether `cf` is a well-formed codice fiscale with a right check character (omocodia
/// substitutions included).
pub fn codice_fiscale_valid(cf: &str) -> bool {
    const ODD: [u32; 26] = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
    const DIGIT_POS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
    const OMOCODIA: &str = "LMNPQRSTUV";
    let b = cf.as_bytes();
    if b.len() != 16 || !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return false;
    }
    for (i, c) in b.iter().enumerate() {
        let digit_slot = DIGIT_POS.contains(&i);
        let ok = if digit_slot { c.is_ascii_digit() || OMOCODIA.as_bytes().contains(c) } else { c.is_ascii_uppercase() };
        if !ok {
            return false;
        }
    }
    let mut sum = 0;
    for (i, c) in b[..15].iter().enumerate() {
        let idx = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') };
        sum += if i % 2 == 0 { ODD[idx as usize] } else { idx };
    }
    u32::from(b[15] - b'A') == sum % 26
}

/// The entries of `bundle` whose resource has `resource_type`, with their index.
fn entries<'a>(bundle: &'a Value, resource_type: &str) -> Vec<(usize, &'a Value)> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|a| a.iter().enumerate().filter(|(_, e)| e["resource"]["resourceType"] == resource_type).collect())
        .unwrap_or_default()
}

/// Whether `reference` points at the entry `entry` (by its fullUrl or `Type/id`).
fn refers_to(reference: Option<&str>, entry: &Value) -> bool {
    let Some(r) = reference else { return false };
    let res = &entry["resource"];
    entry.get("fullUrl").and_then(Value::as_str) == Some(r)
        || matches!((res["resourceType"].as_str(), res["id"].as_str()), (Some(t), Some(id)) if r == format!("{t}/{id}"))
}

/// The single entry of a type; a problem when there is none or more than one.
fn one<'a>(bundle: &'a Value, resource_type: &str, p: &mut Problems) -> Option<(usize, &'a Value)> {
    let found = entries(bundle, resource_type);
    match found.len() {
        1 => Some(found[0]),
        0 => {
            p.add("required", format!("Bundle.entry.resource.ofType({resource_type})"), "the message lacks this resource");
            None
        }
        _ => {
            p.add("invalid", format!("Bundle.entry.resource.ofType({resource_type})"), "the message holds this resource more than once");
            None
        }
    }
}

fn check_header(bundle: &Value, p: &mut Problems) -> Option<String> {
    let first = &bundle["entry"][0]["resource"];
    if first["resourceType"] != "MessageHeader" {
        p.add("required", "Bundle.entry[0].resource", "the first entry must be the MessageHeader");
        return None;
    }
    let event_ok = first["eventCoding"]["system"].as_str() == Some(EVENT_SYSTEM.as_str()) && first["eventCoding"]["code"] == EVENT_CODE;
    if !event_ok {
        p.add("code-invalid", "Bundle.entry[0].resource.eventCoding", "the event is not a protected discharge");
    }
    if str_at(first, &["source", "endpoint"]).is_none() {
        p.add("required", "Bundle.entry[0].resource.source.endpoint", "the message's source endpoint is missing");
    }
    let id = str_at(first, &["id"]);
    if id.is_none() {
        p.add("required", "Bundle.entry[0].resource.id", "the message id is missing");
    }
    id.map(str::to_string)
}

struct Person {
    cf: String,
    cognome: String,
    nome: String,
    sesso: pb::Sesso,
    nascita: String,
    cittadinanza: Option<String>,
}

/// The citizenship the Patient states, if any: `Ok(None)` without the extension, `Err(())`
/// when it is there but holds no ISO 3166 numeric code.
fn citizenship(r: &Value) -> Result<Option<String>, ()> {
    let Some(ext) = r["extension"].as_array().and_then(|a| a.iter().find(|e| e["url"] == CITIZENSHIP)) else { return Ok(None) };
    let code = ext["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == "code")
        .flat_map(|e| e["valueCodeableConcept"]["coding"].as_array().into_iter().flatten())
        .find(|c| c["system"] == ISO_3166)
        .and_then(|c| c["code"].as_str());
    match code {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()) && c != "000" => Ok(Some(c.to_string())),
        _ => Err(()),
    }
}

fn check_patient(i: usize, r: &Value, p: &mut Problems) -> Option<Person> {
    let at = |path: &str| format!("Bundle.entry[{i}].resource.{path}");
    let cf = r["identifier"].as_array().and_then(|ids| {
        ids.iter().find(|x| matches!(x["system"].as_str(), Some(CF_SYSTEM | CF_SYSTEM_LEGACY))).and_then(|x| x["value"].as_str())
    });
    let cf = match cf {
        None => {
            p.add("required", at("identifier"), "no codice fiscale identifier");
            None
        }
        Some(v) if !codice_fiscale_valid(&v.trim().to_ascii_uppercase()) => {
            p.add("value", at("identifier"), "the codice fiscale is not valid");
            None
        }
        Some(v) => Some(v.trim().to_ascii_uppercase()),
    };
    let cognome = str_at(r, &["name", "0", "family"]);
    if cognome.is_none() {
        p.add("required", at("name[0].family"), "the family name is missing");
    }
    let nome = str_at(r, &["name", "0", "given", "0"]);
    if nome.is_none() {
        p.add("required", at("name[0].given"), "the given name is missing");
    }
    let nascita = match str_at(r, &["birthDate"]) {
        None => {
            p.add("required", at("birthDate"), "the birth date is missing");
            None
        }
        Some(d) if !is_calendar_date(d) => {
            p.add("value", at("birthDate"), "the birth date is not a full date (YYYY-MM-DD)");
            None
        }
        Some(d) => Some(d.to_string()),
    };
    let sesso = match r.get("gender").map(|g| g.as_str()) {
        None => pb::Sesso::Unspecified,
        Some(Some("male")) => pb::Sesso::Maschio,
        Some(Some("female")) => pb::Sesso::Femmina,
        Some(Some("other" | "unknown")) => pb::Sesso::Unspecified,
        Some(_) => {
            p.add("code-invalid", at("gender"), "gender is not a code of administrative-gender");
            pb::Sesso::Unspecified
        }
    };
    let cittadinanza = match citizenship(r) {
        Ok(c) => c,
        Err(()) => {
            p.add("code-invalid", at("extension"), "the citizenship is not an ISO 3166 numeric code");
            None
        }
    };
    // The cartella needs a citizenship; for a person born in Italy the hub may assume it, for
    // one born abroad (a "Z" place of birth in the codice fiscale) the message must state it.
    if cittadinanza.is_none() && cf.as_deref().is_some_and(|c| c.as_bytes().get(11) == Some(&b'Z')) {
        p.add("required", at("extension"), "the citizenship of a person born abroad is missing");
    }
    Some(Person { cf: cf?, cognome: cognome?.trim().to_string(), nome: nome?.trim().to_string(), sesso, nascita: nascita?, cittadinanza })
}

fn check_encounter(i: usize, r: &Value, patient: Option<&Value>, p: &mut Problems) -> Option<String> {
    let at = |path: &str| format!("Bundle.entry[{i}].resource.{path}");
    if r["status"] != "finished" {
        p.add("value", at("status"), "the discharge encounter must be finished");
    }
    if let Some(pe) = patient
        && !refers_to(str_at(r, &["subject", "reference"]), pe)
    {
        p.add("invalid", at("subject"), "the encounter's subject is not the message's Patient");
    }
    match str_at(r, &["period", "end"]) {
        None => {
            p.add("required", at("period.end"), "the discharge date is missing");
            None
        }
        // `get` and not slicing: a multi-byte character must not split (and panic).
        Some(end) => match end.get(..10).filter(|d| is_calendar_date(d)) {
            Some(d) => Some(d.to_string()),
            None => {
                p.add("value", at("period.end"), "the discharge date is not a date");
                None
            }
        },
    }
}

fn check_request(i: usize, r: &Value, patient: Option<&Value>, p: &mut Problems) -> (Option<String>, Option<(String, &'static str)>) {
    let at = |path: &str| format!("Bundle.entry[{i}].resource.{path}");
    let id = str_at(r, &["identifier", "0", "value"]).map(str::to_string);
    if id.is_none() {
        p.add("required", at("identifier"), "the request has no identifier");
    }
    if r["status"] != "active" {
        p.add("value", at("status"), "the request must be active");
    }
    if r["intent"] != "order" {
        p.add("value", at("intent"), "the request's intent must be order");
    }
    if r["code"]["coding"].as_array().is_none_or(|c| c.is_empty()) && str_at(r, &["code", "text"]).is_none() {
        p.add("required", at("code"), "the requested service is missing");
    }
    if let Some(pe) = patient
        && !refers_to(str_at(r, &["subject", "reference"]), pe)
    {
        p.add("invalid", at("subject"), "the request's subject is not the message's Patient");
    }
    let district = r["locationCode"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .find_map(|c| (c["system"].as_str() == Some(DISTRETTO_SYSTEM.as_str())).then(|| c["code"].as_str()).flatten());
    let routed = match district {
        None => {
            p.add("required", at("locationCode"), "the health district is missing");
            None
        }
        Some(d) => match municipio_of(d) {
            Some(m) => Some((d.to_string(), m)),
            None => {
                p.add("code-invalid", at("locationCode"), "the health district is not one of Rome's");
                None
            }
        },
    };
    (id, routed)
}

/// Parses and validates a protected-discharge message. Either everything is right, or every
/// problem found is listed (and nothing should be stored).
pub fn parse(body: &[u8]) -> Result<Dimissione, Invalid> {
    let mut p = Problems(Vec::new());
    let bundle: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            p.add("structure", "Bundle", "the body is not a JSON object");
            return Err(Invalid(p.0));
        }
    };
    if bundle["resourceType"] != "Bundle" {
        p.add("structure", "Bundle.resourceType", "the body is not a Bundle");
        return Err(Invalid(p.0));
    }
    if bundle["type"] != "message" {
        p.add("value", "Bundle.type", "the Bundle must be a message");
    }
    if bundle["entry"].as_array().is_none_or(|e| e.is_empty()) {
        p.add("required", "Bundle.entry", "the message has no entries");
        return Err(Invalid(p.0));
    }
    let message_id = check_header(&bundle, &mut p);
    let patient_entry = one(&bundle, "Patient", &mut p);
    let person = patient_entry.and_then(|(i, e)| check_patient(i, &e["resource"], &mut p));
    let patient = patient_entry.map(|(_, e)| e);
    let discharge = one(&bundle, "Encounter", &mut p).and_then(|(i, e)| check_encounter(i, &e["resource"], patient, &mut p));
    let (richiesta, routed) = match one(&bundle, "ServiceRequest", &mut p) {
        Some((i, e)) => check_request(i, &e["resource"], patient, &mut p),
        None => (None, None),
    };
    match (message_id, person, discharge, richiesta, routed) {
        (Some(message_id), Some(person), Some(data_dimissione), Some(richiesta_id), Some((distretto, municipio))) if p.0.is_empty() => {
            Ok(Dimissione {
                message_id,
                richiesta_id,
                codice_fiscale: person.cf,
                cognome: person.cognome,
                nome: person.nome,
                sesso: person.sesso,
                data_nascita: person.nascita,
                cittadinanza: person.cittadinanza,
                data_dimissione,
                distretto,
                municipio,
            })
        }
        _ => Err(Invalid(p.0)),
    }
}

/// How the hub answers a message (MessageHeader.response.code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseCode {
    /// Recorded (or recorded before: the same message again).
    Ok,
    /// Not now (the store is unavailable): the region may resend.
    TransientError,
    /// The message is wrong: it will never be accepted as it is.
    FatalError,
}

/// The FHIR response message to a protected-discharge message: a `message` Bundle whose
/// MessageHeader answers `request_message_id`, with the OperationOutcome of a refusal, and
/// (when recorded) the hub's accesso as the focus, by identifier. `response_id` (a UUID) and
/// `now` (RFC 3339) are the caller's, so this stays pure.
pub fn response_message(
    request_message_id: &str,
    code: ResponseCode,
    accesso_id: Option<&str>,
    outcome: Option<&Value>,
    response_id: &str,
    now: &str,
    hub_endpoint: &str,
) -> Value {
    let code = match code {
        ResponseCode::Ok => "ok",
        ResponseCode::TransientError => "transient-error",
        ResponseCode::FatalError => "fatal-error",
    };
    let outcome_url = urn_uuid("OperationOutcome", "response", response_id);
    let mut header = json!({
        "resourceType": "MessageHeader",
        "id": response_id,
        "eventCoding": { "system": EVENT_SYSTEM.as_str(), "code": EVENT_CODE },
        "source": { "name": "SIGeSS hub, Roma Capitale", "endpoint": hub_endpoint },
        "response": { "identifier": request_message_id, "code": code },
    });
    if let Some(a) = accesso_id {
        header["focus"] = json!([{ "type": "Encounter", "identifier": { "system": sid("accesso"), "value": a } }]);
    }
    let mut entries = vec![json!({ "fullUrl": format!("urn:uuid:{response_id}"), "resource": header })];
    if let Some(oo) = outcome {
        entries[0]["resource"]["response"]["details"] = json!({ "reference": outcome_url });
        entries.push(json!({ "fullUrl": outcome_url, "resource": oo }));
    }
    json!({ "resourceType": "Bundle", "id": response_id, "type": "message", "timestamp": now, "entry": entries })
}

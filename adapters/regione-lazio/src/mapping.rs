//! Core → FHIR R4: one cartella, with what may be shared about it, as one `transaction`
//! Bundle (a `serde_json::Value`). Pure: no I/O, no clock (the caller says what day it is).
//!
//! Every resource carries a business identifier in the hub's namespace (system
//! [`NS`]`/sid/<kind>`, value the hub's record id) and a logical id derived from it, and
//! travels as an update of that id (`PUT Type/sigess-…`, [`Writes::ById`], the default) or as
//! a conditional update on the identifier (`PUT Type?identifier=system|value`,
//! [`Writes::Conditional`]); either way a resend creates nothing new. Deterministic ids are
//! the default because servers run conditional writes under serializable isolation and cap
//! such transactions (Medplum: 8 entries; a cartella has more), and because they cost the
//! server no search per entry. References inside the Bundle use `urn:uuid:` full URLs
//! derived from the identifiers, which the server rewrites to its ids. A Bundle larger than
//! a server takes is [`split`] into ordered parts. Italian conventions follow HL7 Italia's
//! guides: codice fiscale under its OID, ISTAT codes on address parts through
//! `iso21090-SC-coding` (as the published Italian guides code them), birth place and
//! citizenship extensions.
//!
//! What never leaves the hub: diary notes (not even in [`CartellaView`]), and every free-text
//! `note`, `motivo`, `segnalante`, `valutatore` or `autore` of the other records (they may
//! describe people); amounts, ISEE and contacts (not needed for joint care, so minimised).
use std::collections::BTreeSet;

use adapter_contract::{CartellaView, Reason, pb};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The hub's canonical namespace: identifier systems under `/sid/`, code systems of ours
/// (SIUSS nomenclature, INPS codes) under `/CodeSystem/`.
pub const NS: &str = "https://sigess.comune.roma.it/fhir";
/// Codice fiscale, as HL7 Italia's core guide names it.
pub const CF_SYSTEM: &str = "urn:oid:2.16.840.1.113883.2.9.4.3.2";
/// The codice fiscale system of the older HL7 Italia base guide, accepted inbound.
pub const CF_SYSTEM_LEGACY: &str = "http://hl7.it/sid/codiceFiscale";
/// ISTAT codes of comuni, provinces and regions, under the canonical HL7 Italia's published
/// guides (core, lab report) use.
pub const ISTAT_SYSTEM: &str = "http://terminology.hl7.it/CodeSystem/istat-unitaAmministrativeTerritoriali";
/// The coding of a string element (an address part), as those guides code city and state.
const SC_CODING: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-SC-coding";
const BIRTH_PLACE: &str = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace";
pub(crate) const CITIZENSHIP: &str = "http://hl7.org/fhir/StructureDefinition/patient-citizenship";
pub(crate) const ISO_3166: &str = "urn:iso:std:iso:3166";
const V3_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
const V3_ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// An identifier system of the hub: `NS/sid/<kind>`.
pub fn sid(kind: &str) -> String {
    format!("{NS}/sid/{kind}")
}

/// A code system of the hub: `NS/CodeSystem/<name>`.
pub fn code_system(name: &str) -> String {
    format!("{NS}/CodeSystem/{name}")
}

/// Whether `c` is the recorded basis for sharing with the region: until core records the
/// person's consent as its own record, a condivisione to the configured regional recipient
/// that is still valid on `today` and not revoked (withdrawn consent) counts as one. The one place to switch to the consent
/// record.
pub fn is_sharing_basis(c: &pb::Condivisione, recipient: &str, today: &str) -> bool {
    c.ufficio_destinatario == recipient && c.revocata_il.is_empty() && (c.valida_fino_al.is_empty() || c.valida_fino_al.as_str() >= today)
}

/// The cartella's sharing basis with the region, if it has one (the first that holds).
pub fn sharing_basis<'a>(view: &'a CartellaView, recipient: &str, today: &str) -> Option<&'a pb::Condivisione> {
    view.condivisioni.iter().find(|c| is_sharing_basis(c, recipient, today))
}

/// How each resource is written (see the module's doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Writes {
    /// `PUT Type/<id derived from the identifier>` (update as create).
    #[default]
    ById,
    /// `PUT Type?identifier=system|value`.
    Conditional,
}

/// The logical id of a resource: `sigess-` and 32 hex digits of the SHA-256 of its type and
/// identifier (FHIR ids allow 64 characters of `[A-Za-z0-9.-]`; record ids may not fit).
pub fn logical_id(resource_type: &str, system: &str, value: &str) -> String {
    let h = Sha256::digest(format!("{resource_type}|{system}|{value}").as_bytes());
    let hex: String = h[..16].iter().map(|v| format!("{v:02x}")).collect();
    format!("sigess-{hex}")
}

/// A name-based UUID (SHA-256 of the resource type and identifier, version nibble 5) for the
/// Bundle's `urn:uuid:` full URLs: stable across mappings, different across resources.
pub(crate) fn urn_uuid(resource_type: &str, system: &str, value: &str) -> String {
    let h = Sha256::digest(format!("{resource_type}|{system}|{value}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..])
}

/// Percent-encodes an identifier value for a conditional URL (the system is a URL already).
fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn invalid(field: &str, what: &str) -> Reason {
    Reason::new("INVALID_RECORD", format!("{field} {what}"))
}

/// A calendar date as FHIR wants it; empty → None; anything else names the field.
fn date(field: &str, v: &str) -> Result<Option<String>, Reason> {
    if v.is_empty() {
        return Ok(None);
    }
    if is_calendar_date(v) { Ok(Some(v.to_string())) } else { Err(invalid(field, "is not a date (YYYY-MM-DD)")) }
}

/// Whether `v` is a day of the calendar written "YYYY-MM-DD" (so "2026-02-30" is not: FHIR
/// validators that parse dates refuse it).
pub(crate) fn is_calendar_date(v: &str) -> bool {
    v.len() == 10 && time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

/// An instant (RFC 3339) as FHIR's dateTime wants it; empty or unusable → None (only used
/// for bookkeeping fields the hub sets itself).
fn instant(v: &str) -> Option<String> {
    let b = v.as_bytes();
    (b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && (v.ends_with('Z') || v.contains('+'))).then(|| v.to_string())
}

fn period(start: Option<String>, end: Option<String>) -> Option<Value> {
    let mut p = Map::new();
    if let Some(s) = start {
        p.insert("start".into(), Value::String(s));
    }
    if let Some(e) = end {
        p.insert("end".into(), Value::String(e));
    }
    (!p.is_empty()).then_some(Value::Object(p))
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({ "system": system, "code": code });
    if let Some(d) = display.filter(|d| !d.is_empty()) {
        c["display"] = json!(d);
    }
    c
}

fn concept(system: &str, code: &str, display: Option<&str>) -> Value {
    json!({ "coding": [coding(system, code, display)] })
}

fn coded_string(system: &str, code: &str) -> Value {
    json!({ "extension": [{ "url": SC_CODING, "valueCoding": { "system": system, "code": code } }] })
}

/// Sets `v[k] = x` only when `x` is Some.
fn set(v: &mut Value, k: &str, x: Option<Value>) {
    if let (Some(x), Some(o)) = (x, v.as_object_mut()) {
        o.insert(k.to_string(), x);
    }
}

fn roman(n: u32) -> Option<&'static str> {
    const R: [&str; 15] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV"];
    R.get(n.checked_sub(1)? as usize).copied()
}

/// The Municipio number of an ufficio code "M01" … "M15".
pub fn municipio_number(ufficio: &str) -> Option<u32> {
    let n: u32 = ufficio.strip_prefix('M')?.parse().ok()?;
    (1..=15).contains(&n).then_some(n)
}

/// The Bundle under construction: entries in order, each resource once.
struct Bundle {
    entries: Vec<Value>,
    seen: BTreeSet<String>,
    writes: Writes,
}

impl Bundle {
    /// Adds `resource` (of `resource_type`, identified by the hub's `kind` and `id`) as a
    /// conditional update, once; returns its full URL for references.
    fn put(&mut self, resource_type: &str, kind: &str, id: &str, mut resource: Value) -> String {
        let system = sid(kind);
        let full_url = urn_uuid(resource_type, &system, id);
        if !self.seen.insert(full_url.clone()) {
            return full_url;
        }
        let mut identifiers = vec![json!({ "use": "official", "system": system, "value": id })];
        if let Some(extra) = resource.get_mut("identifier").and_then(Value::as_array_mut) {
            identifiers.append(extra);
        }
        let url = match self.writes {
            Writes::ById => {
                let logical = logical_id(resource_type, &system, id);
                if let Some(o) = resource.as_object_mut() {
                    o.insert("id".into(), json!(logical));
                }
                format!("{resource_type}/{logical}")
            }
            Writes::Conditional => format!("{resource_type}?identifier={system}|{}", encode_query(id)),
        };
        if let Some(o) = resource.as_object_mut() {
            o.insert("resourceType".into(), json!(resource_type));
            o.insert("identifier".into(), Value::Array(identifiers));
        }
        self.entries.push(json!({ "fullUrl": full_url, "resource": resource, "request": { "method": "PUT", "url": url } }));
        full_url
    }
}

fn reference(full_url: &str) -> Value {
    json!({ "reference": full_url })
}

/// The Organization of the Comune (ente) and of an ufficio in it (`partOf` the Comune);
/// returns the ufficio's full URL (the Comune's when `ufficio` is empty).
fn organization(b: &mut Bundle, ente: &str, ufficio: &str) -> String {
    let name = if ente == "H501" { "Roma Capitale".to_string() } else { format!("Comune {ente}") };
    let comune = b.put(
        "Organization",
        "ente",
        ente,
        json!({
            "active": true,
            "type": [concept("http://terminology.hl7.org/CodeSystem/organization-type", "govt", Some("Government"))],
            "name": name,
        }),
    );
    if ufficio.is_empty() {
        return comune;
    }
    let name = match municipio_number(ufficio).and_then(roman) {
        Some(r) => format!("Municipio {r}"),
        None => format!("Ufficio {ufficio}"),
    };
    b.put(
        "Organization",
        "ufficio",
        &format!("{ente}/{ufficio}"),
        json!({
            "active": true,
            "type": [concept(&code_system("tipo-ufficio"), if municipio_number(ufficio).is_some() { "municipio" } else { "ufficio" }, None)],
            "name": name,
            "partOf": reference(&comune),
        }),
    )
}

fn meta_of(m: &Option<pb::Meta>) -> pb::Meta {
    m.clone().unwrap_or_default()
}

fn gender(s: pb::Sesso) -> &'static str {
    match s {
        pb::Sesso::Maschio => "male",
        pb::Sesso::Femmina => "female",
        pb::Sesso::Unspecified => "unknown",
    }
}

fn address(a: &pb::Indirizzo, use_: &str) -> Option<Value> {
    if a.codice_comune.is_empty() && a.indirizzo.is_empty() && a.codice_nazione.is_empty() {
        return None;
    }
    let mut v = json!({ "use": use_, "type": "physical" });
    if !a.indirizzo.is_empty() {
        v["line"] = json!([a.indirizzo]);
    }
    if !a.codice_comune.is_empty() {
        v["_city"] = coded_string(ISTAT_SYSTEM, &a.codice_comune);
    }
    if !a.codice_regione.is_empty() {
        v["_state"] = coded_string(ISTAT_SYSTEM, &a.codice_regione);
    }
    if !a.cap.is_empty() {
        v["postalCode"] = json!(a.cap);
    }
    if !a.codice_nazione.is_empty() {
        v["country"] = json!(a.codice_nazione);
    }
    Some(v)
}

fn citizenship(code: &str) -> Value {
    json!({ "url": CITIZENSHIP, "extension": [{ "url": "code", "valueCodeableConcept": concept(ISO_3166, code, None) }] })
}

/// Identifiers of a person beyond the hub's own: the codice fiscale when known.
fn cf_identifier(p: &pb::Persona) -> Vec<Value> {
    if p.codice_fiscale.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "use": "official", "system": CF_SYSTEM, "value": p.codice_fiscale })]
    }
}

fn human_name(p: &pb::Persona) -> Option<Value> {
    if p.cognome.is_empty() && p.nome.is_empty() {
        return None;
    }
    let mut n = json!({ "use": "official" });
    if !p.cognome.is_empty() {
        n["family"] = json!(p.cognome);
    }
    if !p.nome.is_empty() {
        n["given"] = json!([p.nome]);
    }
    Some(json!([n]))
}

fn patient(b: &mut Bundle, p: &pb::Persona, comune: &str) -> Result<String, Reason> {
    let id = meta_of(&p.meta).id;
    let mut r =
        json!({ "identifier": cf_identifier(p), "active": true, "gender": gender(p.sesso()), "managingOrganization": reference(comune) });
    set(&mut r, "name", human_name(p));
    set(&mut r, "birthDate", date("persona.data_nascita", &p.data_nascita)?.map(Value::String));
    let mut ext = Vec::new();
    if !p.luogo_nascita.is_empty() {
        // Belfiore codes: a comune ("H501"), or a foreign country ("Z…").
        let coded = coded_string(&code_system("belfiore"), &p.luogo_nascita);
        let place = if p.luogo_nascita.starts_with('Z') { json!({ "_country": coded }) } else { json!({ "_city": coded }) };
        ext.push(json!({ "url": BIRTH_PLACE, "valueAddress": place }));
    }
    for c in [&p.cittadinanza, &p.seconda_cittadinanza] {
        if !c.is_empty() {
            ext.push(citizenship(c));
        }
    }
    if !ext.is_empty() {
        r["extension"] = Value::Array(ext);
    }
    let addresses: Vec<Value> =
        [p.residenza.as_ref().and_then(|a| address(a, "home")), p.domicilio.as_ref().and_then(|a| address(a, "temp"))]
            .into_iter()
            .flatten()
            .collect();
    if !addresses.is_empty() {
        r["address"] = Value::Array(addresses);
    }
    Ok(b.put("Patient", "persona", &id, r))
}

fn parentela_code(p: pb::Parentela) -> (&'static str, &'static str) {
    match p {
        pb::Parentela::Unspecified => ("non-specificata", "Non specificata"),
        pb::Parentela::Intestatario => ("intestatario", "Intestatario"),
        pb::Parentela::Coniuge => ("coniuge", "Coniuge"),
        pb::Parentela::Figlio => ("figlio", "Figlio/a"),
        pb::Parentela::Genitore => ("genitore", "Genitore"),
        pb::Parentela::Fratello => ("fratello", "Fratello/sorella"),
        pb::Parentela::Nonno => ("nonno", "Nonno/a"),
        pb::Parentela::Nipote => ("nipote", "Nipote"),
        pb::Parentela::Convivente => ("convivente", "Convivente"),
        pb::Parentela::AltroParente => ("altro-parente", "Altro parente"),
        pb::Parentela::Altro => ("altro", "Altro"),
    }
}

/// HL7 v3 role of a member towards the reference person of the household (when the patient
/// is that person); "nipote" is both grandchild and nephew, so it gets none.
fn v3_role(p: pb::Parentela) -> Option<&'static str> {
    match p {
        pb::Parentela::Coniuge => Some("SPS"),
        pb::Parentela::Figlio => Some("CHILD"),
        pb::Parentela::Genitore => Some("PRN"),
        pb::Parentela::Fratello => Some("SIB"),
        pb::Parentela::Nonno => Some("GRPRN"),
        pb::Parentela::Convivente => Some("ROOM"),
        pb::Parentela::AltroParente => Some("FAMMEMB"),
        _ => None,
    }
}

fn related_persons(b: &mut Bundle, view: &CartellaView, patient: &str) -> Result<(), Reason> {
    let me = meta_of(&view.persona.meta).id;
    for (nucleo, members) in &view.nuclei {
        let is_reference = nucleo.persona_riferimento_id == me;
        for m in members {
            let mid = meta_of(&m.meta).id;
            if mid == me || mid.is_empty() {
                continue;
            }
            let parentela = nucleo.membri.iter().find(|x| x.persona_id == mid).map(|x| x.parentela()).unwrap_or_default();
            let (code, display) = parentela_code(parentela);
            let mut codings = vec![coding(&code_system("parentela-nucleo"), code, Some(display))];
            if is_reference && let Some(role) = v3_role(parentela) {
                codings.push(coding(V3_ROLE, role, None));
            }
            let mut r = json!({
                "identifier": cf_identifier(m),
                "active": true,
                "patient": reference(patient),
                "relationship": [{ "coding": codings }],
                "gender": gender(m.sesso()),
            });
            set(&mut r, "name", human_name(m));
            set(&mut r, "birthDate", date("nucleo.membro.data_nascita", &m.data_nascita)?.map(Value::String));
            b.put("RelatedPerson", "relazione-nucleo", &format!("{me}/{mid}"), r);
        }
    }
    Ok(())
}

fn area_utenza(a: pb::AreaUtenza) -> Option<(&'static str, &'static str)> {
    Some(match a {
        pb::AreaUtenza::Unspecified => return None,
        pb::AreaUtenza::FamigliaMinori => ("1", "Famiglia e minori"),
        pb::AreaUtenza::DisabilitaNonAutosufficienza => ("2", "Disabilità e non autosufficienza"),
        pb::AreaUtenza::PovertaEsclusioneSociale => ("3", "Povertà ed esclusione sociale"),
        pb::AreaUtenza::Anziani => ("4", "Anziani"),
        pb::AreaUtenza::Immigrati => ("5", "Immigrati"),
        pb::AreaUtenza::Dipendenze => ("6", "Dipendenze"),
        pb::AreaUtenza::SaluteMentale => ("7", "Salute mentale"),
        pb::AreaUtenza::Multiutenza => ("8", "Multiutenza"),
    })
}

fn episode_of_care(b: &mut Bundle, c: &pb::Cartella, patient: &str, managing: &str) -> Result<String, Reason> {
    let status = match c.stato() {
        pb::StatoCartella::Chiusa => "finished",
        _ => "active",
    };
    let mut r = json!({ "status": status, "patient": reference(patient), "managingOrganization": reference(managing) });
    if let Some((code, display)) = area_utenza(c.area_utenza()) {
        r["type"] = json!([concept(&code_system("area-utenza"), code, Some(display))]);
    }
    set(&mut r, "period", period(date("cartella.data_apertura", &c.data_apertura)?, date("cartella.data_chiusura", &c.data_chiusura)?));
    Ok(b.put("EpisodeOfCare", "cartella", &meta_of(&c.meta).id, r))
}

fn encounter(b: &mut Bundle, a: &pb::Accesso, patient: &str, episode: Option<&str>, org: &str) -> Result<(), Reason> {
    let (class, class_display) = match a.canale() {
        pb::CanaleAccesso::Telefono | pb::CanaleAccesso::Email => ("VR", "virtual"),
        pb::CanaleAccesso::Domicilio => ("HH", "home health"),
        _ => ("AMB", "ambulatory"),
    };
    let canale = match a.canale() {
        pb::CanaleAccesso::Unspecified => None,
        pb::CanaleAccesso::Sportello => Some("sportello"),
        pb::CanaleAccesso::Telefono => Some("telefono"),
        pb::CanaleAccesso::Email => Some("email"),
        pb::CanaleAccesso::Domicilio => Some("domicilio"),
        pb::CanaleAccesso::Segnalazione => Some("segnalazione"),
    };
    let esito = match a.esito() {
        pb::EsitoAccesso::Unspecified => None,
        pb::EsitoAccesso::Informazioni => Some("informazioni"),
        pb::EsitoAccesso::InvioAServizio => Some("invio-a-servizio"),
        pb::EsitoAccesso::PresaInCarico => Some("presa-in-carico"),
        pb::EsitoAccesso::InValutazione => Some("in-valutazione"),
    };
    let mut types = Vec::new();
    if let Some(c) = canale {
        types.push(concept(&code_system("canale-accesso"), c, None));
    }
    if let Some(e) = esito {
        types.push(concept(&code_system("esito-accesso"), e, None));
    }
    let mut r = json!({
        "status": "finished",
        "class": coding(V3_ACT, class, Some(class_display)),
        "subject": reference(patient),
        "serviceProvider": reference(org),
    });
    if !types.is_empty() {
        r["type"] = Value::Array(types);
    }
    if let Some(ep) = episode {
        r["episodeOfCare"] = json!([reference(ep)]);
    }
    set(&mut r, "period", period(date("accesso.data", &a.data)?, None));
    b.put("Encounter", "accesso", &meta_of(&a.meta).id, r);
    Ok(())
}

fn prestazione_coding(code: &str, display: &str) -> Value {
    coding(&code_system("siuss-prestazione"), code, Some(display))
}

fn care_plan(b: &mut Bundle, p: &pb::Pai, patient: &str, episode: &str, org: &str) -> Result<String, Reason> {
    let pai_id = meta_of(&p.meta).id;
    let (status, activity_status) = match p.stato() {
        pb::StatoPai::Bozza => ("draft", "not-started"),
        pb::StatoPai::Attivo => ("active", "in-progress"),
        pb::StatoPai::Concluso => ("completed", "completed"),
        pb::StatoPai::Unspecified => ("unknown", "unknown"),
    };
    let mut goals = Vec::new();
    for (i, o) in p.obiettivi.iter().enumerate() {
        let mut g = json!({
            "lifecycleStatus": if o.raggiunto { "completed" } else if status == "draft" { "proposed" } else { "active" },
            "achievementStatus": concept("http://terminology.hl7.org/CodeSystem/goal-achievement", if o.raggiunto { "achieved" } else { "in-progress" }, None),
            "description": { "text": if o.descrizione.is_empty() { "Obiettivo" } else { o.descrizione.as_str() } },
            "subject": reference(patient),
        });
        let due = date("pai.obiettivi.scadenza", &o.scadenza)?;
        if due.is_some() || !o.indicatore.is_empty() {
            let mut t = json!({});
            if !o.indicatore.is_empty() {
                t["measure"] = json!({ "text": o.indicatore });
            }
            set(&mut t, "dueDate", due.map(Value::String));
            g["target"] = json!([t]);
        }
        goals.push(reference(&b.put("Goal", "obiettivo-pai", &format!("{pai_id}/{}", i + 1), g)));
    }
    let mut activities = Vec::new();
    for it in &p.interventi {
        let mut d = json!({ "kind": "ServiceRequest", "status": activity_status });
        if !it.codice_prestazione.is_empty() {
            d["code"] = json!({ "coding": [prestazione_coding(&it.codice_prestazione, &it.descrizione)] });
        }
        if !it.descrizione.is_empty() {
            d["description"] = json!(it.descrizione);
        }
        match period(date("pai.interventi.data_inizio", &it.data_inizio)?, date("pai.interventi.data_fine", &it.data_fine)?) {
            Some(per) => d["scheduledPeriod"] = per,
            None if !it.frequenza.is_empty() => d["scheduledString"] = json!(it.frequenza),
            None => {}
        }
        activities.push(json!({ "detail": d }));
    }
    let mut r = json!({
        "status": status,
        "intent": "plan",
        "category": [concept(&code_system("tipo-piano"), "pai", Some("Progetto assistenziale individualizzato"))],
        "subject": reference(patient),
        "author": reference(org),
        "supportingInfo": [reference(episode)],
    });
    set(&mut r, "period", period(date("pai.data_inizio", &p.data_inizio)?, date("pai.data_fine", &p.data_fine)?));
    if !goals.is_empty() {
        r["goal"] = Value::Array(goals);
    }
    if !activities.is_empty() {
        r["activity"] = Value::Array(activities);
    }
    Ok(b.put("CarePlan", "pai", &pai_id, r))
}

fn int_component(scheda: &str, name: &str, v: i32) -> Option<Value> {
    (v != 0).then(|| json!({ "code": concept(&code_system(scheda), name, None), "valueInteger": v }))
}

fn str_component(scheda: &str, name: &str, v: &str) -> Option<Value> {
    (!v.is_empty()).then(|| json!({ "code": concept(&code_system(scheda), name, None), "valueString": v }))
}

fn sina_components(s: &pb::Sina) -> Vec<Value> {
    let ints = [
        ("mobilita", s.mobilita),
        ("attivita-vita-quotidiana", s.attivita_vita_quotidiana),
        ("disturbi-area-cognitiva", s.disturbi_area_cognitiva),
        ("disturbi-comportamentali", s.disturbi_comportamentali),
        ("necessita-cure-sanitarie", s.necessita_cure_sanitarie),
        ("area-reddituale", s.area_reddituale),
        ("area-supporto", s.area_supporto),
        ("fonte-derivazione-valutazione", s.fonte_derivazione_valutazione),
        ("strumento-valutazione", s.strumento_valutazione),
        ("fonte-derivazione-invalidita", s.fonte_derivazione_invalidita),
    ];
    let mut out: Vec<Value> = ints.iter().filter_map(|(n, v)| int_component("sina", n, *v)).collect();
    out.extend(s.invalidita_civile.iter().filter_map(|v| int_component("sina", "invalidita-civile", *v)));
    out.extend(s.necessita_interventi_sociali.iter().filter(|c| !c.is_empty()).map(|c| {
        json!({ "code": concept(&code_system("sina"), "necessita-interventi-sociali", None), "valueCodeableConcept": { "coding": [coding(&code_system("siuss-prestazione"), c, None)] } })
    }));
    out
}

fn sinba_components(s: &pb::Sinba) -> Vec<Value> {
    let ints = [
        ("minore-straniero-non-accompagnato", s.minore_straniero_non_accompagnato),
        ("condizione-minore", s.condizione_minore),
        ("luogo-vita", s.luogo_vita),
        ("scuola-frequentata", s.scuola_frequentata),
        ("condizione-lavoro", s.condizione_lavoro),
        ("disabilita", s.disabilita),
        ("tipo-disabilita", s.tipo_disabilita),
        ("inv-civ-certificazioni", s.inv_civ_certificazioni),
        ("titolo-studio-padre", s.titolo_studio_padre),
        ("titolo-studio-madre", s.titolo_studio_madre),
        ("occupazione-padre", s.occupazione_padre),
        ("occupazione-madre", s.occupazione_madre),
        ("fonte-segnalazione", s.fonte_segnalazione),
        ("valutazione-minore", s.valutazione_minore),
        ("valutazione-famiglia-minore", s.valutazione_famiglia_minore),
        ("segnalazione-autorita-giudiziaria", s.segnalazione_autorita_giudiziaria),
        ("provvedimento-giudiziario", s.provvedimento_giudiziario),
        ("autorita-provvedimento", s.autorita_provvedimento),
        ("potesta-tutela", s.potesta_tutela),
        ("tipo-provvedimento-giudiziario", s.tipo_provvedimento_giudiziario),
        ("forma-intervento-affido", s.forma_intervento_affido),
        ("tipo-intervento-affido", s.tipo_intervento_affido),
        ("durata-affido", s.durata_affido),
        ("carattere-affido", s.carattere_affido),
        ("esito-affido", s.esito_affido),
        ("carattere-inserimento-residenziale", s.carattere_inserimento_residenziale),
        ("forma-inserimento-residenziale", s.forma_inserimento_residenziale),
        ("tipo-inserimento-residenziale", s.tipo_inserimento_residenziale),
        ("esito-inserimento-struttura", s.esito_inserimento_struttura),
        ("motivazione-chiusura-carico", s.motivazione_chiusura_carico),
        ("situazione-chiusura-carico", s.situazione_chiusura_carico),
        ("collaborazioni-interventi", s.collaborazioni_interventi),
        ("numero-componenti-isee", s.numero_componenti_isee),
        ("fascia-eta-beneficiario", s.fascia_eta_beneficiario),
        ("fascia-isee-beneficiario", s.fascia_isee_beneficiario),
    ];
    let strs = [
        ("codice-cittadinanza-padre", &s.codice_cittadinanza_padre),
        ("codice-cittadinanza-madre", &s.codice_cittadinanza_madre),
        ("codice-regione-residenza-padre", &s.codice_regione_residenza_padre),
        ("codice-regione-residenza-madre", &s.codice_regione_residenza_madre),
        ("data-prima-segnalazione", &s.data_prima_segnalazione),
        ("data-segnalazione", &s.data_segnalazione),
        ("data-provvedimento-giudiziario", &s.data_provvedimento_giudiziario),
    ];
    let mut out: Vec<Value> = ints.iter().filter_map(|(n, v)| int_component("sinba", n, *v)).collect();
    out.extend(strs.iter().filter_map(|(n, v)| str_component("sinba", n, v)));
    out.extend(s.composizione_famiglia.iter().filter_map(|v| int_component("sinba", "composizione-famiglia", *v)));
    out.extend(s.prestazioni.iter().filter(|c| !c.is_empty()).map(|c| {
        json!({ "code": concept(&code_system("sinba"), "prestazioni", None), "valueCodeableConcept": { "coding": [coding(&code_system("siuss-prestazione"), c, None)] } })
    }));
    out
}

fn observation(b: &mut Bundle, v: &pb::Valutazione, patient: &str, org: &str) -> Result<(), Reason> {
    let (code, display, components) = match &v.scheda {
        Some(pb::valutazione::Scheda::Sina(s)) => ("sina", "Scheda SINA (non autosufficienza)", sina_components(s)),
        Some(pb::valutazione::Scheda::Sinba(s)) => ("sinba", "Scheda SINBA (minori e famiglie)", sinba_components(s)),
        // An assessment without a scheda has nothing codified to share.
        None => return Ok(()),
    };
    let mut r = json!({
        "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/observation-category", "survey", Some("Survey"))],
        "code": concept(&code_system("valutazione"), code, Some(display)),
        "subject": reference(patient),
        "performer": [reference(org)],
    });
    set(&mut r, "effectiveDateTime", date("valutazione.data", &v.data)?.map(Value::String));
    if !components.is_empty() {
        r["component"] = Value::Array(components);
    }
    b.put("Observation", "valutazione", &meta_of(&v.meta).id, r);
    Ok(())
}

fn service_request(b: &mut Bundle, p: &pb::Prestazione, patient: &str, org: &str, plans: &[(String, &pb::Pai)]) -> Result<(), Reason> {
    let status = match p.stato() {
        pb::StatoPrestazione::Attiva => "active",
        pb::StatoPrestazione::Conclusa => "completed",
        pb::StatoPrestazione::Revocata => "revoked",
        pb::StatoPrestazione::Unspecified => "unknown",
    };
    let mut r = json!({
        "status": status,
        "intent": "order",
        "category": [concept(&code_system("tipo-richiesta"), "prestazione-sociale", Some("Prestazione sociale"))],
        "subject": reference(patient),
        "requester": reference(org),
    });
    if !p.codice_prestazione.is_empty() {
        r["code"] = json!({ "coding": [prestazione_coding(&p.codice_prestazione, &p.denominazione)] });
    }
    let occurrence = match p.carattere() {
        pb::CaratterePrestazione::Occasionale => {
            date("prestazione.data_erogazione", &p.data_erogazione)?.map(|d| ("occurrenceDateTime", json!(d)))
        }
        _ => period(date("prestazione.data_inizio", &p.data_inizio)?, date("prestazione.data_fine", &p.data_fine)?)
            .map(|per| ("occurrencePeriod", per)),
    };
    if let Some((k, v)) = occurrence {
        r[k] = v;
    }
    set(&mut r, "authoredOn", date("prestazione.data_evento", &p.data_evento)?.map(Value::String));
    // A prestazione planned in a PAI of the same cartella is based on that plan.
    let based: Vec<Value> = plans
        .iter()
        .filter(|(_, pai)| pai.interventi.iter().any(|i| i.codice_prestazione == p.codice_prestazione))
        .map(|(url, _)| reference(url))
        .collect();
    if !based.is_empty() {
        r["basedOn"] = Value::Array(based);
    }
    b.put("ServiceRequest", "prestazione", &meta_of(&p.meta).id, r);
    Ok(())
}

/// The Consent of a sharing basis: `active` while it holds, `inactive` once it ended (the
/// region learns that nothing more will come).
fn consent(b: &mut Bundle, c: &pb::Condivisione, patient: Value, comune: Value, active: bool) -> Result<(), Reason> {
    let m = meta_of(&c.meta);
    let mut r = json!({
        "status": if active { "active" } else { "inactive" },
        "scope": concept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", Some("Privacy Consent")),
        "category": [concept("http://loinc.org", "59284-0", Some("Patient Consent"))],
        "patient": patient,
        "organization": [comune],
        "policyRule": { "coding": [coding(V3_ACT, "OPTIN", Some("opt-in"))] },
        "provision": { "type": "permit" },
    });
    if !c.base_giuridica.is_empty() {
        // A legal-basis label chosen from the hub's list, not a free description of the person.
        r["policyRule"]["text"] = json!(c.base_giuridica);
    }
    set(&mut r, "dateTime", instant(&m.created_at).map(Value::String));
    if let Some(end) = date("condivisione.valida_fino_al", &c.valida_fino_al)? {
        r["provision"]["period"] = json!({ "end": end });
    }
    b.put("Consent", "condivisione", &m.id, r);
    Ok(())
}

/// A reference to a resource sent earlier and not in this Bundle: by its logical id, or (with
/// conditional writes, where the server chose the id) by its business identifier.
fn earlier(writes: Writes, resource_type: &str, kind: &str, id: &str) -> Value {
    let system = sid(kind);
    match writes {
        Writes::ById => json!({ "reference": format!("{resource_type}/{}", logical_id(resource_type, &system, id)) }),
        Writes::Conditional => json!({ "type": resource_type, "identifier": { "system": system, "value": id } }),
    }
}

/// The regional basis that held and has ended (expired) when no other holds: its end is
/// sent once more as an inactive Consent, and nothing else of the cartella is.
pub fn ended_basis<'a>(view: &'a CartellaView, recipient: &str, today: &str) -> Option<&'a pb::Condivisione> {
    if sharing_basis(view, recipient, today).is_some() {
        return None;
    }
    view.condivisioni.iter().filter(|c| c.ufficio_destinatario == recipient).max_by(|a, b| a.valida_fino_al.cmp(&b.valida_fino_al))
}

/// The transaction Bundle that withdraws an ended basis: only its Consent, now inactive,
/// referring to the Patient and the Comune sent before (no personal data is sent again).
pub fn withdrawal_bundle(view: &CartellaView, ended: &pb::Condivisione, writes: Writes) -> Result<Value, Reason> {
    let persona = meta_of(&view.persona.meta).id;
    let ente = meta_of(&view.cartella.meta).ente;
    if persona.is_empty() {
        return Err(invalid("persona.meta.id", "is empty"));
    }
    let mut b = Bundle { entries: Vec::new(), seen: BTreeSet::new(), writes };
    consent(&mut b, ended, earlier(writes, "Patient", "persona", &persona), earlier(writes, "Organization", "ente", &ente), false)?;
    Ok(json!({ "resourceType": "Bundle", "type": "transaction", "entry": b.entries }))
}

/// Every record sent needs its id (the business identifier's value) and the cartella its
/// ente: an empty one would make an invalid identifier, so it is refused naming the field.
fn require_ids(view: &CartellaView, basis: &pb::Condivisione) -> Result<(), Reason> {
    let id = |m: &Option<pb::Meta>| meta_of(m).id;
    let checks = [
        ("cartella.meta.id", !id(&view.cartella.meta).is_empty()),
        ("cartella.meta.ente", !meta_of(&view.cartella.meta).ente.is_empty()),
        ("persona.meta.id", !id(&view.persona.meta).is_empty()),
        ("accesso.meta.id", view.accessi.iter().all(|a| !id(&a.meta).is_empty())),
        ("valutazione.meta.id", view.valutazioni.iter().all(|v| !id(&v.meta).is_empty())),
        ("pai.meta.id", view.pai.iter().all(|p| !id(&p.meta).is_empty())),
        ("prestazione.meta.id", view.prestazioni.iter().all(|p| !id(&p.meta).is_empty())),
        ("condivisione.meta.id", !id(&basis.meta).is_empty()),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((field, _)) => Err(invalid(field, "is empty")),
        None => Ok(()),
    }
}

/// The transaction Bundle of one cartella shared on the basis `basis`. Fails, naming the
/// field, when a record holds a value FHIR cannot carry (e.g. a malformed date).
pub fn cartella_bundle(view: &CartellaView, basis: &pb::Condivisione, writes: Writes) -> Result<Value, Reason> {
    require_ids(view, basis)?;
    let cm = meta_of(&view.cartella.meta);
    let mut b = Bundle { entries: Vec::new(), seen: BTreeSet::new(), writes };
    let comune = organization(&mut b, &cm.ente, "");
    let managing = organization(&mut b, &cm.ente, &cm.ufficio);
    let patient = patient(&mut b, &view.persona, &comune)?;
    related_persons(&mut b, view, &patient)?;
    let episode = episode_of_care(&mut b, &view.cartella, &patient, &managing)?;
    for a in &view.accessi {
        let am = meta_of(&a.meta);
        let org = organization(&mut b, &am.ente, &am.ufficio);
        let ep = (view.cartella.accesso_id == am.id).then_some(episode.as_str());
        encounter(&mut b, a, &patient, ep, &org)?;
    }
    let mut plans = Vec::new();
    for p in &view.pai {
        let pm = meta_of(&p.meta);
        let org = organization(&mut b, &pm.ente, &pm.ufficio);
        plans.push((care_plan(&mut b, p, &patient, &episode, &org)?, p));
    }
    for v in &view.valutazioni {
        let vm = meta_of(&v.meta);
        let org = organization(&mut b, &vm.ente, &vm.ufficio);
        observation(&mut b, v, &patient, &org)?;
    }
    for p in &view.prestazioni {
        let pm = meta_of(&p.meta);
        let org = organization(&mut b, &pm.ente, &pm.ufficio);
        service_request(&mut b, p, &patient, &org, &plans)?;
    }
    consent(&mut b, basis, reference(&patient), reference(&comune), true)?;
    Ok(json!({ "resourceType": "Bundle", "type": "transaction", "entry": b.entries }))
}

/// Splits a transaction Bundle into transactions of at most `max` entries, in order, for
/// servers that cap a transaction's size (Medplum: 50 updates). Entries come in dependency
/// order (what is referred to before what refers to it), so a part only refers to its own
/// entries or to earlier parts; references to an earlier part become references to the
/// resource as written: `Type/<id>` with [`Writes::ById`], the business identifier with
/// [`Writes::Conditional`] (where the server chose the id).
pub fn split(bundle: Value, max: usize, writes: Writes) -> Vec<Value> {
    let entries = match bundle.get("entry").and_then(Value::as_array) {
        Some(e) if max > 0 && e.len() > max => e.clone(),
        _ => return vec![bundle],
    };
    let mut targets = std::collections::BTreeMap::new();
    for e in &entries {
        let r = &e["resource"];
        if let (Some(url), Some(t), Some(system), Some(value)) =
            (e["fullUrl"].as_str(), r["resourceType"].as_str(), r["identifier"][0]["system"].as_str(), r["identifier"][0]["value"].as_str())
        {
            let target = match writes {
                Writes::ById => json!({ "reference": format!("{t}/{}", logical_id(t, system, value)) }),
                Writes::Conditional => json!({ "type": t, "identifier": { "system": system, "value": value } }),
            };
            targets.insert(url.to_string(), target);
        }
    }
    entries
        .chunks(max)
        .map(|part| {
            let own: BTreeSet<&str> = part.iter().filter_map(|e| e["fullUrl"].as_str()).collect();
            let mut part = part.to_vec();
            for e in &mut part {
                retarget(&mut e["resource"], &own, &targets);
            }
            json!({ "resourceType": "Bundle", "type": "transaction", "entry": part })
        })
        .collect()
}

/// Replaces every reference to a full URL outside `own` with its target.
fn retarget(v: &mut Value, own: &BTreeSet<&str>, targets: &std::collections::BTreeMap<String, Value>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("reference")
                && !own.contains(r.as_str())
                && let Some(t) = targets.get(r)
            {
                *v = t.clone();
                return;
            }
            o.values_mut().for_each(|x| retarget(x, own, targets));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| retarget(x, own, targets)),
        _ => {}
    }
}

/// The idempotency key of a cartella's Bundle: the cartella id and a hash of the content,
/// so the same content is recognised and changed content is a new delivery.
pub fn bundle_key(cartella_id: &str, bundle: &Value) -> String {
    let h = Sha256::digest(bundle.to_string().as_bytes());
    let hex: String = h[..12].iter().map(|v| format!("{v:02x}")).collect();
    format!("{cartella_id}:{hex}")
}

#[cfg(test)]
mod basis_tests {
    use super::*;

    #[test]
    fn a_revoked_or_expired_condivisione_is_no_basis() {
        let c = pb::Condivisione { ufficio_destinatario: "REGIONE".into(), valida_fino_al: "2027-01-01".into(), ..Default::default() };
        assert!(is_sharing_basis(&c, "REGIONE", "2026-11-28"));
        assert!(!is_sharing_basis(&c, "M02", "2026-11-28"));
        assert!(!is_sharing_basis(&c, "REGIONE", "2027-01-02"));
        let revoked = pb::Condivisione { revocata_il: "2026-11-27T10:00:00Z".into(), ..c };
        assert!(!is_sharing_basis(&revoked, "REGIONE", "2026-11-28"));
    }
}

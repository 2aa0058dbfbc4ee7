//! The pure mapping, without I/O: which cartelle become Bundles, what the Bundle holds
//! (resources, identifiers, conditional requests, internal references), what never leaves
//! the hub, and the shared adapter contract suite.
mod common;

use std::collections::{BTreeMap, BTreeSet};

use adapter_contract::{Adapter, pb, testkit::check_contract};
use regione_lazio::{Config, Loaded, RegioneLazio, mapping, mapping::Writes, plan};
use serde_json::Value;

const TODAY: &str = "2026-02-01";

fn adapter() -> RegioneLazio {
    RegioneLazio::new(Config::plain("http://127.0.0.1:9")).expect("adapter")
}

fn bundle(view: &adapter_contract::CartellaView) -> Value {
    let planned = plan(std::slice::from_ref(view), "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    assert_eq!(planned.len(), 1);
    planned[0].delivery.bundle.clone()
}

fn resources<'a>(b: &'a Value, t: &str) -> Vec<&'a Value> {
    b["entry"].as_array().expect("entries").iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == t).collect()
}

#[tokio::test]
async fn the_adapter_passes_the_shared_contract_suite() {
    let violations = check_contract(&adapter(), &common::source(), &common::changes(), &common::PERSONAL).await;
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn only_cartelle_with_a_valid_regional_basis_are_planned() {
    let shared = common::shared_view();
    let unshared = common::unshared_view();
    let mut expired = common::shared_view();
    expired.condivisioni = vec![common::condivisione("con-9", "car-1", "REGIONE", "2026-01-31")];
    let mut last_day = common::shared_view();
    last_day.condivisioni = vec![common::condivisione("con-9", "car-1", "REGIONE", TODAY)];
    let cases: Vec<(&str, Vec<adapter_contract::CartellaView>, &str, usize)> = vec![
        ("shared", vec![shared.clone()], "REGIONE", 1),
        ("not shared with the region", vec![unshared.clone()], "REGIONE", 0),
        ("basis expired yesterday: its withdrawal", vec![expired], "REGIONE", 1),
        ("basis valid through today", vec![last_day], "REGIONE", 1),
        ("another configured recipient", vec![shared.clone()], "ASL-RM1", 0),
        ("one of two", vec![shared, unshared], "REGIONE", 1),
    ];
    for (name, views, recipient, want) in cases {
        let got = plan(&views, recipient, TODAY, Writes::ById, 50).expect("maps");
        assert_eq!(got.len(), want, "{name}");
    }
}

#[test]
fn the_bundle_holds_every_resource_once_as_conditional_updates() {
    let b = bundle(&common::shared_view());
    assert_eq!(b["type"], "transaction");
    let mut counts = BTreeMap::new();
    for e in b["entry"].as_array().expect("entries") {
        *counts.entry(e["resource"]["resourceType"].as_str().expect("type").to_string()).or_insert(0) += 1;
        let req = &e["request"];
        assert_eq!(req["method"], "PUT");
        let t = e["resource"]["resourceType"].as_str().expect("type");
        let value = e["resource"]["identifier"][0]["value"].as_str().expect("own identifier");
        let system = e["resource"]["identifier"][0]["system"].as_str().expect("system");
        assert!(system.starts_with(mapping::NS), "{system}");
        let id = mapping::logical_id(t, system, value);
        assert_eq!(e["resource"]["id"], id.as_str());
        assert!(id.len() <= 64 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        assert_eq!(req["url"], format!("{t}/{id}"));
        assert!(e["fullUrl"].as_str().expect("fullUrl").starts_with("urn:uuid:"));
    }
    let want: BTreeMap<String, i32> = [
        ("Organization", 2),
        ("Patient", 1),
        ("RelatedPerson", 1),
        ("EpisodeOfCare", 1),
        ("Encounter", 1),
        ("Goal", 1),
        ("CarePlan", 1),
        ("Observation", 1),
        ("ServiceRequest", 1),
        ("Consent", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, want);
}

#[test]
fn an_ended_basis_sends_only_its_inactive_consent() {
    let mut v = common::shared_view();
    v.condivisioni =
        vec![common::condivisione("con-1", "car-1", "REGIONE", "2026-01-31"), common::condivisione("con-2", "car-1", "M02", "")];
    for writes in [Writes::ById, Writes::Conditional] {
        let planned = plan(std::slice::from_ref(&v), "REGIONE", TODAY, writes, 50).expect("maps");
        let b = &planned[0].delivery.bundle;
        let entries = b["entry"].as_array().expect("entries");
        assert_eq!(entries.len(), 1, "{b}");
        let c = &entries[0]["resource"];
        assert_eq!(c["resourceType"], "Consent");
        assert_eq!(c["status"], "inactive");
        assert_eq!(c["identifier"][0]["value"], "con-1");
        assert_eq!(c["provision"]["period"]["end"], "2026-01-31");
        let text = b.to_string();
        for p in common::PERSONAL {
            assert!(!text.contains(p), "{p} sent again");
        }
        match writes {
            Writes::ById => assert_eq!(
                c["patient"]["reference"],
                format!("Patient/{}", mapping::logical_id("Patient", &mapping::sid("persona"), "per-1"))
            ),
            Writes::Conditional => assert_eq!(c["patient"]["identifier"]["value"], "per-1"),
        }
    }
    // A basis that still holds wins over an ended one.
    v.condivisioni.push(common::condivisione("con-7", "car-1", "REGIONE", ""));
    let planned = plan(std::slice::from_ref(&v), "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    assert!(planned[0].delivery.bundle["entry"].as_array().expect("entries").len() > 1);
}

#[test]
fn a_large_cartella_goes_as_ordered_parts_referring_back() {
    let v = common::large_view(60);
    let whole = plan(std::slice::from_ref(&v), "REGIONE", TODAY, Writes::ById, 1000).expect("maps");
    assert_eq!(whole.len(), 1);
    let total = whole[0].delivery.bundle["entry"].as_array().expect("entries").len();
    let parts = plan(std::slice::from_ref(&v), "REGIONE", TODAY, Writes::ById, 20).expect("maps");
    assert_eq!(parts.len(), total.div_ceil(20));
    let keys: BTreeSet<&str> = parts.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), parts.len());
    let mut earlier: BTreeSet<String> = BTreeSet::new();
    let mut seen = 0;
    for p in &parts {
        let entries = p.delivery.bundle["entry"].as_array().expect("entries");
        assert!(entries.len() <= 20);
        seen += entries.len();
        let own: BTreeSet<String> = entries.iter().map(|e| e["fullUrl"].as_str().expect("url").to_string()).collect();
        let mut refs = Vec::new();
        references(&p.delivery.bundle, &mut refs);
        for r in refs {
            assert!(own.contains(&r) || earlier.contains(&r), "{r} is neither in its part nor written before");
        }
        earlier.extend(entries.iter().map(|e| e["request"]["url"].as_str().expect("url").to_string()));
    }
    assert_eq!(seen, total);
}

#[test]
fn conditional_writes_use_the_business_identifier() {
    let planned = plan(&[common::shared_view()], "REGIONE", TODAY, Writes::Conditional, 50).expect("maps");
    for e in planned[0].delivery.bundle["entry"].as_array().expect("entries") {
        let t = e["resource"]["resourceType"].as_str().expect("type");
        let value = e["resource"]["identifier"][0]["value"].as_str().expect("own identifier");
        let system = e["resource"]["identifier"][0]["system"].as_str().expect("system");
        assert_eq!(e["request"]["url"], format!("{t}?identifier={system}|{}", value.replace('/', "%2F")));
        assert!(e["resource"].get("id").is_none());
    }
    let by_id = plan(&[common::shared_view()], "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    assert_ne!(planned[0].key, by_id[0].key);
}

fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("reference") {
                out.push(r.clone());
            }
            o.values().for_each(|x| references(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

#[test]
fn every_reference_points_inside_the_bundle_and_the_links_are_right() {
    let b = bundle(&common::shared_view());
    let full: BTreeSet<String> =
        b["entry"].as_array().expect("entries").iter().map(|e| e["fullUrl"].as_str().expect("url").to_string()).collect();
    let mut refs = Vec::new();
    references(&b, &mut refs);
    assert!(refs.len() > 10);
    for r in &refs {
        assert!(full.contains(r), "dangling reference {r}");
    }
    let url_of = |t: &str| {
        b["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["resource"]["resourceType"] == t)
            .map(|e| e["fullUrl"].as_str().expect("url").to_string())
            .expect("present")
    };
    let patient = url_of("Patient");
    let episode = url_of("EpisodeOfCare");
    let orgs = resources(&b, "Organization");
    let municipio = orgs.iter().find(|o| o["name"] == "Municipio I").expect("Municipio I");
    assert!(municipio["partOf"]["reference"].as_str().is_some());
    let eoc = &resources(&b, "EpisodeOfCare")[0];
    assert_eq!(eoc["patient"]["reference"], patient);
    assert_eq!(eoc["status"], "active");
    assert_eq!(eoc["period"]["start"], "2026-01-10");
    let managing = eoc["managingOrganization"]["reference"].as_str().expect("managing");
    let managing_entry = b["entry"].as_array().expect("entries").iter().find(|e| e["fullUrl"] == managing).expect("managing org in bundle");
    assert_eq!(managing_entry["resource"]["name"], "Municipio I");
    let enc = &resources(&b, "Encounter")[0];
    assert_eq!(enc["episodeOfCare"][0]["reference"], episode);
    assert_eq!(enc["class"]["code"], "AMB");
    let plan = &resources(&b, "CarePlan")[0];
    assert_eq!(plan["status"], "active");
    assert_eq!(plan["period"]["end"], "2026-12-31");
    assert_eq!(plan["activity"][0]["detail"]["code"]["coding"][0]["code"], "A1.01");
    assert_eq!(plan["goal"].as_array().expect("goals").len(), 1);
    let sr = &resources(&b, "ServiceRequest")[0];
    assert_eq!(sr["code"]["coding"][0]["system"], mapping::code_system("siuss-prestazione"));
    assert_eq!(sr["occurrencePeriod"]["start"], "2026-02-01");
    assert_eq!(sr["basedOn"][0]["reference"], url_of("CarePlan"));
    let obs = &resources(&b, "Observation")[0];
    assert_eq!(obs["code"]["coding"][0]["code"], "sina");
    assert!(
        obs["component"]
            .as_array()
            .expect("components")
            .iter()
            .any(|c| c["code"]["coding"][0]["code"] == "mobilita" && c["valueInteger"] == 2)
    );
    let consent = &resources(&b, "Consent")[0];
    assert_eq!(consent["identifier"][0]["value"], "con-1");
    let rp = &resources(&b, "RelatedPerson")[0];
    let codes: Vec<&str> =
        rp["relationship"][0]["coding"].as_array().expect("codings").iter().map(|c| c["code"].as_str().expect("code")).collect();
    assert_eq!(codes, ["figlio", "CHILD"]);
}

#[test]
fn the_patient_follows_italian_conventions() {
    let b = bundle(&common::shared_view());
    let p = &resources(&b, "Patient")[0];
    let ids = p["identifier"].as_array().expect("identifiers");
    assert!(ids.iter().any(|i| i["system"] == mapping::CF_SYSTEM && i["value"] == common::CF));
    assert_eq!(p["gender"], "male");
    assert_eq!(p["birthDate"], "1980-01-01");
    assert_eq!(p["name"][0]["family"], "Rossi");
    let home = &p["address"][0];
    assert_eq!(home["use"], "home");
    assert_eq!(home["_city"]["extension"][0]["valueCoding"]["system"], mapping::ISTAT_SYSTEM);
    assert_eq!(home["_city"]["extension"][0]["valueCoding"]["code"], "058091");
    let ext = p["extension"].as_array().expect("extensions");
    assert!(ext.iter().any(|e| e["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
        && e["valueAddress"]["_city"]["extension"][0]["valueCoding"]["code"] == "H501"));
    assert!(ext.iter().any(|e| e["url"] == "http://hl7.org/fhir/StructureDefinition/patient-citizenship"));
    assert!(p.get("telecom").is_none());
}

#[test]
fn free_text_of_other_records_and_contacts_never_leave() {
    let text = bundle(&common::shared_view()).to_string();
    for secret in ["nota riservata", "motivo riservato", "vicina di casa", "0600000000", "mario@example.invalid", "45000", "PROT-1", "op-7"]
    {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

#[test]
fn keys_are_stable_and_follow_the_content() {
    let a = plan(&[common::shared_view()], "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    let b = plan(&[common::shared_view()], "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    assert_eq!(a, b);
    assert!(a[0].key.starts_with("car-1:"));
    let mut changed = common::shared_view();
    changed.pai[0].stato = pb::StatoPai::Concluso as i32;
    let c = plan(&[changed], "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    assert_ne!(a[0].key, c[0].key);
}

#[test]
fn a_malformed_date_is_refused_naming_the_field_only() {
    let mut v = common::shared_view();
    v.persona.data_nascita = "01/01/1980".into();
    let r = plan(std::slice::from_ref(&v), "REGIONE", TODAY, Writes::ById, 50).expect_err("refused");
    assert_eq!(r.code, "INVALID_RECORD");
    assert!(r.message.contains("persona.data_nascita") && !r.message.contains("1980"), "{}", r.message);
    v.persona.data_nascita = "1980-02-30".into();
    let r = plan(&[v], "REGIONE", TODAY, Writes::ById, 50).expect_err("refused");
    assert!(r.message.contains("persona.data_nascita"), "{}", r.message);
}

#[test]
fn a_record_without_id_is_refused_naming_it() {
    type Edit = fn(&mut adapter_contract::CartellaView);
    let cases: Vec<(Edit, &str)> = vec![
        (|v| v.accessi[0].meta = None, "accesso.meta.id"),
        (|v| v.prestazioni[0].meta = common::meta("", "M01"), "prestazione.meta.id"),
        (|v| v.cartella.meta.as_mut().expect("meta").ente.clear(), "cartella.meta.ente"),
    ];
    for (edit, field) in cases {
        let mut v = common::shared_view();
        edit(&mut v);
        let r = plan(&[v], "REGIONE", TODAY, Writes::ById, 50).expect_err("refused");
        assert_eq!(r.message, format!("{field} is empty"));
    }
}

#[test]
fn statuses_map_by_table() {
    let cases =
        [(pb::StatoCartella::Aperta, "active"), (pb::StatoCartella::Chiusa, "finished"), (pb::StatoCartella::Unspecified, "active")];
    for (stato, want) in cases {
        let mut v = common::shared_view();
        v.cartella.stato = stato as i32;
        assert_eq!(resources(&bundle(&v), "EpisodeOfCare")[0]["status"], want, "{stato:?}");
    }
    let cases = [
        (pb::CanaleAccesso::Sportello, "AMB"),
        (pb::CanaleAccesso::Telefono, "VR"),
        (pb::CanaleAccesso::Email, "VR"),
        (pb::CanaleAccesso::Domicilio, "HH"),
        (pb::CanaleAccesso::Segnalazione, "AMB"),
    ];
    for (canale, want) in cases {
        let mut v = common::shared_view();
        v.accessi[0].canale = canale as i32;
        assert_eq!(resources(&bundle(&v), "Encounter")[0]["class"]["code"], want, "{canale:?}");
    }
    let cases = [
        (pb::StatoPrestazione::Attiva, "active"),
        (pb::StatoPrestazione::Conclusa, "completed"),
        (pb::StatoPrestazione::Revocata, "revoked"),
    ];
    for (stato, want) in cases {
        let mut v = common::shared_view();
        v.prestazioni[0].stato = stato as i32;
        assert_eq!(resources(&bundle(&v), "ServiceRequest")[0]["status"], want, "{stato:?}");
    }
}

#[tokio::test]
async fn load_reads_the_named_cartella_or_all_of_the_person() {
    let a = adapter();
    let src = common::source();
    let by_cartella = a.load(&common::change("pai", "pai-1", "per-1", "car-1"), &src).await.expect("loads");
    assert_eq!(by_cartella.cartelle.len(), 1);
    let by_persona = a.load(&common::change("persona", "per-1", "per-1", ""), &src).await.expect("loads");
    assert_eq!(by_persona.cartelle.len(), 2);
    let planned = a.map(&common::change("persona", "per-1", "per-1", ""), by_persona).expect("maps");
    assert_eq!(planned.len(), 1, "only the shared cartella");
    let gone = a.load(&common::change("cartella", "car-404", "per-9", ""), &src).await.expect("loads");
    assert_eq!(gone, Loaded { today: gone.today.clone(), cartelle: vec![] });
}

//! Against a real FHIR R4 server (`conformance/fhir`, Medplum): a shared cartella reaches it
//! as linked resources, the Patient is searchable by codice fiscale, a resend leaves one of
//! each, an update bumps versions without duplicates, everything sent passes Medplum's
//! validator, a rejection becomes a permanent failure without personal data, and an outage
//! is retried then delivered. When `FHIR_BUNDLE_DIR` is set, the Bundles sent and the
//! resources read back are written there for the independent Python validator.
mod common;
mod peer;

use adapter_contract::{Adapter, Outcome, Planned, pb};
use regione_lazio::{BundleDelivery, Config, RegioneLazio, mapping, mapping::Writes, plan};
use serde_json::{Value, json};

const TODAY: &str = "2026-02-01";
const TYPES: [&str; 10] = [
    "Organization",
    "Patient",
    "RelatedPerson",
    "EpisodeOfCare",
    "Encounter",
    "Goal",
    "CarePlan",
    "Observation",
    "ServiceRequest",
    "Consent",
];

fn planned(view: &adapter_contract::CartellaView) -> Planned<BundleDelivery> {
    plan(std::slice::from_ref(view), "REGIONE", TODAY, Writes::ById, 50).expect("maps").pop().expect("one Bundle")
}

fn dump(name: &str, v: &Value) {
    if let Ok(dir) = std::env::var("FHIR_BUNDLE_DIR") {
        std::fs::create_dir_all(&dir).expect("FHIR_BUNDLE_DIR");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.json")), serde_json::to_vec_pretty(v).expect("json"))
            .expect("write");
    }
}

async fn all_of(base: &str, t: &str) -> Vec<Value> {
    let b = peer::get(base, &format!("{t}?_count=500")).await;
    b["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

async fn counts(base: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for t in TYPES {
        out.push((t.to_string(), all_of(base, t).await.len()));
    }
    out
}

#[tokio::test]
async fn a_shared_cartella_reaches_the_server_linked_idempotent_and_valid() {
    let Some(server) = peer::start(0) else { return };
    let base = server.base();
    let adapter = RegioneLazio::new(Config::plain(&base)).expect("adapter");
    assert_eq!(adapter.health().await, adapter_contract::Health::Up);

    let first = planned(&common::shared_view());
    dump("bundle-1", &first.delivery.bundle);
    assert!(peer::validate(&base, &first.delivery.bundle).await.is_empty(), "the Bundle as sent has validation errors");
    assert_eq!(adapter.deliver(&first).await, Outcome::Delivered);

    let want: Vec<(String, usize)> = TYPES.iter().map(|t| (t.to_string(), if *t == "Organization" { 2 } else { 1 })).collect();
    assert_eq!(counts(&base).await, want);

    // Searchable by codice fiscale, under the OID.
    let found = peer::get(&base, &format!("Patient?identifier={}|{}", mapping::CF_SYSTEM, common::CF)).await;
    assert_eq!(found["total"], 1, "{found}");
    let patient = &found["entry"][0]["resource"];
    let patient_ref = format!("Patient/{}", patient["id"].as_str().expect("id"));

    // Linked: references were rewritten from urn:uuid to the server's ids.
    let eoc = &all_of(&base, "EpisodeOfCare").await[0];
    assert_eq!(eoc["patient"]["reference"], patient_ref);
    let municipio = all_of(&base, "Organization").await.into_iter().find(|o| o["name"] == "Municipio I").expect("Municipio I");
    assert_eq!(eoc["managingOrganization"]["reference"], format!("Organization/{}", municipio["id"].as_str().expect("id")));
    let plan_res = &all_of(&base, "CarePlan").await[0];
    assert_eq!(plan_res["subject"]["reference"], patient_ref);
    let sr = &all_of(&base, "ServiceRequest").await[0];
    assert_eq!(sr["basedOn"][0]["reference"], format!("CarePlan/{}", plan_res["id"].as_str().expect("id")));
    let enc = &all_of(&base, "Encounter").await[0];
    assert_eq!(enc["episodeOfCare"][0]["reference"], format!("EpisodeOfCare/{}", eoc["id"].as_str().expect("id")));
    let by_patient = peer::get(&base, &format!("CarePlan?subject={patient_ref}")).await;
    assert_eq!(by_patient["total"], 1);

    // Redelivery of the same Bundle: still one of each.
    assert_eq!(adapter.deliver(&first).await, Outcome::Delivered);
    assert_eq!(counts(&base).await, want);

    // An update (the PAI concluded, a second prestazione): versions bump, no duplicates.
    let mut changed = common::shared_view();
    changed.pai[0].stato = pb::StatoPai::Concluso as i32;
    let mut second = changed.prestazioni[0].clone();
    second.meta = common::meta("pre-2", "M01");
    second.codice_prestazione = "A2.03".into();
    changed.prestazioni.push(second);
    let update = planned(&changed);
    assert_ne!(update.key, first.key);
    dump("bundle-2", &update.delivery.bundle);
    assert!(peer::validate(&base, &update.delivery.bundle).await.is_empty(), "the updated Bundle has validation errors");
    assert_eq!(adapter.deliver(&update).await, Outcome::Delivered);
    let after = counts(&base).await;
    let want2: Vec<(String, usize)> = want.iter().map(|(t, n)| (t.clone(), if t == "ServiceRequest" { 2 } else { *n })).collect();
    assert_eq!(after, want2);
    let plan_now = &all_of(&base, "CarePlan").await[0];
    assert_eq!(plan_now["id"], plan_res["id"]);
    assert_eq!(plan_now["status"], "completed");
    let history = peer::get(&base, &format!("CarePlan/{}/_history", plan_now["id"].as_str().expect("id"))).await;
    assert!(history["entry"].as_array().expect("history").len() >= 3, "three deliveries, three versions: {history}");

    // Every resource as stored passes Medplum's validator with zero errors.
    let mut n = 0;
    for t in TYPES {
        for r in all_of(&base, t).await {
            let errors = peer::validate(&base, &r).await;
            assert!(errors.is_empty(), "{t}: {errors:?}");
            dump(&format!("stored-{t}-{n}"), &r);
            n += 1;
        }
    }
    assert_eq!(n, 12);

    // The basis ends: only the Consent goes, now inactive; nothing is duplicated.
    let mut ended = changed.clone();
    ended.condivisioni = vec![common::condivisione("con-1", "car-1", "REGIONE", "2026-01-31")];
    let withdrawal = planned(&ended);
    dump("bundle-withdrawal", &withdrawal.delivery.bundle);
    assert!(peer::validate(&base, &withdrawal.delivery.bundle).await.is_empty());
    assert_eq!(adapter.deliver(&withdrawal).await, Outcome::Delivered);
    assert_eq!(counts(&base).await, want2);
    let consent = &all_of(&base, "Consent").await[0];
    assert_eq!(consent["status"], "inactive");
    assert_eq!(consent["patient"]["reference"], patient_ref);
}

#[tokio::test]
async fn a_rejection_is_permanent_and_names_no_personal_data() {
    let Some(server) = peer::start(0) else { return };
    let adapter = RegioneLazio::new(Config::plain(server.base())).expect("adapter");
    // A Bundle the mapping never makes (a Patient posted as an Observation, carrying personal
    // data), to see the real server's refusal classified.
    let bad = Planned {
        key: "car-x:bad".into(),
        delivery: BundleDelivery {
            cartella_id: "car-x".into(),
            bundle: json!({
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{
                    "fullUrl": "urn:uuid:5b1e7f0c-0000-5000-8000-000000000001",
                    "resource": { "resourceType": "Patient", "name": [{ "family": "Rossi" }], "birthDate": common::CF },
                    "request": { "method": "POST", "url": "Observation" },
                }],
            }),
        },
    };
    match adapter.deliver(&bad).await {
        Outcome::Permanent(r) => {
            assert_eq!(r.code, "FHIR_REJECTED");
            assert!(r.message.starts_with("HTTP 4"), "{}", r.message);
            for p in common::PERSONAL {
                assert!(!r.message.contains(p), "reason repeats personal data: {}", r.message);
            }
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_outage_is_retried_and_delivered_once_the_server_is_back() {
    let port = peer::free_port();
    let Some(server) = peer::start(port) else { return };
    let adapter = RegioneLazio::new(Config::plain(server.base())).expect("adapter");
    let p = planned(&common::shared_view());
    server.kill();
    match adapter.deliver(&p).await {
        Outcome::Retry { reason, .. } => assert_eq!(reason.code, "FHIR_UNREACHABLE"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert!(matches!(adapter.health().await, adapter_contract::Health::Down(_)));
    let server = peer::start(port).expect("restarted");
    assert_eq!(adapter.deliver(&p).await, Outcome::Delivered);
    let found = peer::get(&server.base(), &format!("Patient?identifier={}|{}", mapping::CF_SYSTEM, common::CF)).await;
    assert_eq!(found["total"], 1);
}

#[tokio::test]
async fn discharge_messages_and_responses_are_valid_fhir() {
    let Some(server) = peer::start(0) else { return };
    let base = server.base();
    let inbound = common::message();
    assert!(regione_lazio::dimissione::parse(&serde_json::to_vec(&inbound).expect("json")).is_ok());
    let invalid = regione_lazio::dimissione::parse(b"[]").expect_err("refused");
    let answers = [
        ("dimissione-message", inbound.clone()),
        (
            "dimissione-response-ok",
            regione_lazio::dimissione::response_message(
                "msg-1",
                regione_lazio::dimissione::ResponseCode::Ok,
                Some("acc-9"),
                None,
                "0b6f2b1e-1111-4222-8333-444455556666",
                "2026-02-03T10:00:01Z",
                "https://sigess.example/fhir",
            ),
        ),
        (
            "dimissione-response-refused",
            regione_lazio::dimissione::response_message(
                "msg-2",
                regione_lazio::dimissione::ResponseCode::FatalError,
                None,
                Some(&invalid.operation_outcome()),
                "0b6f2b1e-1111-4222-8333-444455556667",
                "2026-02-03T10:00:01Z",
                "https://sigess.example/fhir",
            ),
        ),
    ];
    for (name, v) in answers {
        let errors = peer::validate(&base, &v).await;
        assert!(errors.is_empty(), "{name}: {errors:?}");
        dump(name, &v);
    }
}

#[tokio::test]
async fn a_cartella_larger_than_the_server_takes_goes_in_parts() {
    let Some(server) = peer::start(0) else { return };
    let base = server.base();
    let adapter = RegioneLazio::new(Config::plain(&base)).expect("adapter");
    let view = common::large_view(60);
    // In one transaction Medplum refuses it (more than 50 updates): a dead letter.
    let whole = plan(std::slice::from_ref(&view), "REGIONE", TODAY, Writes::ById, 1000).expect("maps").pop().expect("one");
    assert!(matches!(adapter.deliver(&whole).await, Outcome::Permanent(_)));
    let parts = plan(std::slice::from_ref(&view), "REGIONE", TODAY, Writes::ById, 50).expect("maps");
    assert_eq!(parts.len(), 2);
    for p in &parts {
        assert_eq!(adapter.deliver(p).await, Outcome::Delivered);
    }
    let srs = all_of(&base, "ServiceRequest").await;
    assert_eq!(srs.len(), 60);
    let plan_id = all_of(&base, "CarePlan").await[0]["id"].as_str().expect("id").to_string();
    assert!(srs.iter().all(|sr| sr["basedOn"][0]["reference"] == format!("CarePlan/{plan_id}")));
}

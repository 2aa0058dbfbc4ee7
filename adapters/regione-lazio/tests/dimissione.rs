//! Inbound protected discharges, pure: a valid message gives the typed case routed to its
//! Municipio; each defect is reported with its expression; every defect of a bad message is
//! reported at once; no outcome repeats a value; the district table covers each Municipio
//! once; the response message answers the request.
mod common;

use adapter_contract::pb;
use regione_lazio::{
    dimissione::{DISTRETTI_ROMA, ResponseCode, codice_fiscale_valid, municipio_of, parse, response_message},
    mapping::CF_SYSTEM_LEGACY,
};
use serde_json::{Value, json};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

#[test]
fn a_valid_message_gives_the_case_routed_to_its_municipio() {
    let d = parse(&body(&common::message())).expect("valid");
    assert_eq!(d.message_id, "msg-1");
    assert_eq!(d.richiesta_id, "RIC-77");
    assert_eq!(d.codice_fiscale, common::CF);
    assert_eq!((d.cognome.as_str(), d.nome.as_str()), ("Rossi", "Mario"));
    assert_eq!(d.sesso, pb::Sesso::Maschio);
    assert_eq!(d.data_nascita, "1980-01-01");
    assert_eq!(d.data_dimissione, "2026-02-02");
    assert_eq!((d.distretto.as_str(), d.municipio), ("120202-07", "M07"));
    let debug = format!("{d:?}");
    assert!(!debug.contains(common::CF) && !debug.contains("Rossi") && !debug.contains("1980"), "{debug}");
    // The older codice fiscale system is accepted too.
    let mut m = common::message();
    m["entry"][1]["resource"]["identifier"][0]["system"] = json!(CF_SYSTEM_LEGACY);
    assert_eq!(parse(&body(&m)).expect("valid").codice_fiscale, common::CF);
}

/// A fake codice fiscale of someone born abroad (place of birth Z129).
const CF_ESTERO: &str = "RSSMRA80A01Z129W";

fn citizenship(code: &str) -> Value {
    json!([{
        "url": "http://hl7.org/fhir/StructureDefinition/patient-citizenship",
        "extension": [{ "url": "code", "valueCodeableConcept": { "coding": [{ "system": "urn:iso:std:iso:3166", "code": code }] } }],
    }])
}

#[test]
fn citizenship_is_read_and_needed_for_people_born_abroad() {
    assert_eq!(parse(&body(&common::message())).expect("valid").cittadinanza, None, "born in Rome: may be left out");
    let mut m = common::message();
    m["entry"][1]["resource"]["identifier"][0]["value"] = json!(CF_ESTERO);
    m["entry"][1]["resource"]["extension"] = citizenship("642");
    let d = parse(&body(&m)).expect("valid");
    assert_eq!((d.codice_fiscale.as_str(), d.cittadinanza.as_deref()), (CF_ESTERO, Some("642")));
}

#[test]
fn each_defect_is_reported_with_its_expression() {
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("not a message", |m| m["type"] = json!("transaction"), "Bundle.type"),
        ("header not first", |m| m["entry"].as_array_mut().expect("a").swap(0, 1), "Bundle.entry[0].resource"),
        ("wrong event", |m| m["entry"][0]["resource"]["eventCoding"]["code"] = json!("ammissione"), "Bundle.entry[0].resource.eventCoding"),
        (
            "no message id",
            |m| m["entry"][0]["resource"].as_object_mut().expect("o").remove("id").map(drop).unwrap_or(()),
            "Bundle.entry[0].resource.id",
        ),
        ("no source", |m| m["entry"][0]["resource"]["source"] = json!({}), "Bundle.entry[0].resource.source.endpoint"),
        ("no codice fiscale", |m| m["entry"][1]["resource"]["identifier"] = json!([]), "Bundle.entry[1].resource.identifier"),
        (
            "bad check character",
            |m| m["entry"][1]["resource"]["identifier"][0]["value"] = json!("RSSMRA80A01H501A"),
            "Bundle.entry[1].resource.identifier",
        ),
        (
            "no family name",
            |m| m["entry"][1]["resource"]["name"][0].as_object_mut().expect("o").remove("family").map(drop).unwrap_or(()),
            "Bundle.entry[1].resource.name[0].family",
        ),
        ("no given name", |m| m["entry"][1]["resource"]["name"][0]["given"] = json!([]), "Bundle.entry[1].resource.name[0].given"),
        ("partial birth date", |m| m["entry"][1]["resource"]["birthDate"] = json!("1980"), "Bundle.entry[1].resource.birthDate"),
        ("bad gender", |m| m["entry"][1]["resource"]["gender"] = json!("M"), "Bundle.entry[1].resource.gender"),
        ("encounter in progress", |m| m["entry"][2]["resource"]["status"] = json!("in-progress"), "Bundle.entry[2].resource.status"),
        (
            "multi-byte discharge date",
            |m| m["entry"][2]["resource"]["period"]["end"] = json!("2026-02-0é"),
            "Bundle.entry[2].resource.period.end",
        ),
        (
            "no discharge date",
            |m| m["entry"][2]["resource"]["period"] = json!({ "start": "2026-01-20" }),
            "Bundle.entry[2].resource.period.end",
        ),
        (
            "encounter of someone else",
            |m| m["entry"][2]["resource"]["subject"]["reference"] = json!("Patient/other"),
            "Bundle.entry[2].resource.subject",
        ),
        ("no request identifier", |m| m["entry"][3]["resource"]["identifier"] = json!([]), "Bundle.entry[3].resource.identifier"),
        ("request not an order", |m| m["entry"][3]["resource"]["intent"] = json!("proposal"), "Bundle.entry[3].resource.intent"),
        ("request revoked", |m| m["entry"][3]["resource"]["status"] = json!("revoked"), "Bundle.entry[3].resource.status"),
        ("no requested service", |m| m["entry"][3]["resource"]["code"] = json!({}), "Bundle.entry[3].resource.code"),
        ("no district", |m| m["entry"][3]["resource"]["locationCode"] = json!([]), "Bundle.entry[3].resource.locationCode"),
        (
            "district outside Rome",
            |m| m["entry"][3]["resource"]["locationCode"][0]["coding"][0]["code"] = json!("120204-01"),
            "Bundle.entry[3].resource.locationCode",
        ),
        (
            "citizenship not ISO 3166 numeric",
            |m| m["entry"][1]["resource"]["extension"] = citizenship("ROU"),
            "Bundle.entry[1].resource.extension",
        ),
        (
            "born abroad, no citizenship",
            |m| m["entry"][1]["resource"]["identifier"][0]["value"] = json!(CF_ESTERO),
            "Bundle.entry[1].resource.extension",
        ),
        ("no encounter", |m| drop(m["entry"].as_array_mut().expect("a").remove(2)), "Bundle.entry.resource.ofType(Encounter)"),
        (
            "two patients",
            |m| {
                let p = m["entry"][1].clone();
                m["entry"].as_array_mut().expect("a").push(p)
            },
            "Bundle.entry.resource.ofType(Patient)",
        ),
    ];
    for (name, edit, expression) in cases {
        let mut m = common::message();
        edit(&mut m);
        let invalid = parse(&body(&m)).err().unwrap_or_else(|| panic!("{name}: accepted"));
        let exprs: Vec<&str> = invalid.0.iter().map(|i| i.expression.as_str()).collect();
        assert!(exprs.contains(&expression), "{name}: {exprs:?}");
    }
}

#[test]
fn a_bad_message_reports_every_problem_and_no_value() {
    let mut m = common::message();
    m["entry"][1]["resource"]["identifier"][0]["value"] = json!("RSSMRA80A01H501A");
    m["entry"][1]["resource"]["birthDate"] = json!("01/01/1980");
    m["entry"][2]["resource"]["status"] = json!("planned");
    m["entry"][3]["resource"]["locationCode"][0]["coding"][0]["code"] = json!("999999-99");
    let invalid = parse(&body(&m)).expect_err("refused");
    assert_eq!(invalid.0.len(), 4, "{:?}", invalid.0);
    let oo = invalid.operation_outcome();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"].as_array().expect("issues").len(), 4);
    assert!(oo["issue"].as_array().expect("issues").iter().all(|i| i["expression"][0].is_string() && i["severity"] == "error"));
    let text = oo.to_string();
    for value in ["RSSMRA80A01H501A", "01/01/1980", "planned", "999999-99", "Rossi", "Mario"] {
        assert!(!text.contains(value), "{value} echoed");
    }
    for garbage in [&b"not json"[..], b"[]", br#"{"resourceType":"Patient"}"#, br#"{"resourceType":"Bundle","type":"message"}"#] {
        let invalid = parse(garbage).expect_err("refused");
        assert!(!invalid.0.is_empty());
    }
}

#[test]
fn codici_fiscali_are_checked() {
    let cases = [
        (common::CF, true),
        ("RSSMRA80A01H501A", false),
        ("RSSMRA80A01H50", false),
        ("rssmra80a01h501u", false),
        ("RSSMRA8LA01H501U", false),
    ];
    for (cf, want) in cases {
        assert_eq!(codice_fiscale_valid(cf), want, "{cf}");
    }
}

#[test]
fn the_district_table_covers_each_municipio_once() {
    let mut municipi: Vec<&str> = DISTRETTI_ROMA.iter().map(|(_, m)| *m).collect();
    municipi.sort_unstable();
    let want: Vec<String> = (1..=15).map(|n| format!("M{n:02}")).collect();
    assert_eq!(municipi, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(municipio_of("120201-01"), Some("M01"));
    assert_eq!(municipio_of("120203-12"), Some("M12"));
    assert_eq!(municipio_of("120201-04"), None, "district 4 is ASL Roma 2's");
}

#[test]
fn the_response_message_answers_the_request() {
    let ok = response_message(
        "msg-1",
        ResponseCode::Ok,
        Some("acc-9"),
        None,
        "0b6f2b1e-1111-4222-8333-444455556666",
        "2026-02-03T10:00:01Z",
        "https://sigess.example/fhir",
    );
    assert_eq!(ok["type"], "message");
    let h = &ok["entry"][0]["resource"];
    assert_eq!(h["resourceType"], "MessageHeader");
    assert_eq!(h["response"]["identifier"], "msg-1");
    assert_eq!(h["response"]["code"], "ok");
    assert_eq!(h["focus"][0]["identifier"]["value"], "acc-9");
    let invalid = parse(b"[]").expect_err("refused");
    let oo = invalid.operation_outcome();
    let bad = response_message(
        "msg-2",
        ResponseCode::FatalError,
        None,
        Some(&oo),
        "0b6f2b1e-1111-4222-8333-444455556667",
        "2026-02-03T10:00:01Z",
        "https://sigess.example/fhir",
    );
    assert_eq!(bad["entry"][0]["resource"]["response"]["code"], "fatal-error");
    assert_eq!(bad["entry"][0]["resource"]["response"]["details"]["reference"], bad["entry"][1]["fullUrl"]);
    assert_eq!(bad["entry"][1]["resource"], oo);
}

#[test]
fn no_input_makes_the_parser_panic() {
    let valid = body(&common::message());
    for cut in 0..valid.len() {
        assert!(parse(&valid[..cut]).is_err());
    }
    // Every string of the message replaced by values of other types and shapes.
    let shapes = [json!(null), json!(7), json!([]), json!({}), json!("é"), json!("2026-02-0é1")];
    let text = String::from_utf8(valid).expect("utf8");
    for (i, _) in text.match_indices("\":\"") {
        for shape in &shapes {
            let Some(end) = text[i + 3..].find('"') else { continue };
            let mutated = format!("{}\":{}{}", &text[..i], shape, &text[i + 3 + end + 1..]);
            let _ = parse(mutated.as_bytes());
        }
    }
}

//! Fake fixtures shared by the adapter's tests: two people in one household, a cartella
//! shared with the region (PAI, prestazioni, SINA, accesso) and one that is not, loaded
//! through the contract's `MemorySource`; and a valid protected-discharge message.
#![allow(dead_code)]

use adapter_contract::{CartellaView, Change, kind, pb, testkit::MemorySource};
use regione_lazio::{
    dimissione::{DISTRETTO_SYSTEM, EVENT_CODE, EVENT_SYSTEM},
    mapping::CF_SYSTEM,
};
use serde_json::{Value, json};

pub const CF: &str = "RSSMRA80A01H501U";
pub const CF_FIGLIA: &str = "RSSLCU05C41H501X";
pub const PERSONAL: [&str; 8] =
    [CF, CF_FIGLIA, "Rossi", "Mario", "Lucia", "Via dei Fiori 3", "nota riservata del nucleo", "motivo riservato"];

pub fn meta(id: &str, ufficio: &str) -> Option<pb::Meta> {
    Some(pb::Meta {
        id: id.into(),
        version: 1,
        ente: "H501".into(),
        ufficio: ufficio.into(),
        created_at: "2026-01-10T09:00:00Z".into(),
        updated_at: "2026-01-10T09:00:00Z".into(),
        updated_by: "op-1".into(),
    })
}

pub fn persona() -> pb::Persona {
    pb::Persona {
        meta: meta("per-1", "M01"),
        codice_fiscale: CF.into(),
        cognome: "Rossi".into(),
        nome: "Mario".into(),
        sesso: pb::Sesso::Maschio as i32,
        data_nascita: "1980-01-01".into(),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        seconda_cittadinanza: String::new(),
        residenza: Some(pb::Indirizzo {
            codice_nazione: "380".into(),
            codice_regione: "12".into(),
            codice_comune: "058091".into(),
            indirizzo: "Via dei Fiori 3".into(),
            cap: "00100".into(),
        }),
        domicilio: None,
        contatti: Some(pb::Contatti { telefono: "0600000000".into(), email: "mario@example.invalid".into(), pec: String::new() }),
    }
}

pub fn figlia() -> pb::Persona {
    pb::Persona {
        meta: meta("per-2", "M01"),
        codice_fiscale: CF_FIGLIA.into(),
        cognome: "Rossi".into(),
        nome: "Lucia".into(),
        sesso: pb::Sesso::Femmina as i32,
        data_nascita: "2005-03-01".into(),
        luogo_nascita: "Z404".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    }
}

pub fn condivisione(id: &str, cartella: &str, to: &str, until: &str) -> pb::Condivisione {
    pb::Condivisione {
        meta: meta(id, "M01"),
        cartella_id: cartella.into(),
        ufficio_destinatario: to.into(),
        base_giuridica: "consenso dell'interessato".into(),
        valida_fino_al: until.into(),
        scrittura: false,
        ..Default::default()
    }
}

/// The shared cartella `car-1` of per-1, with everything in it.
pub fn shared_view() -> CartellaView {
    CartellaView {
        persona: persona(),
        cartella: pb::Cartella {
            meta: meta("car-1", "M01"),
            persona_id: "per-1".into(),
            operatore_responsabile: "op-7".into(),
            area_utenza: pb::AreaUtenza::DisabilitaNonAutosufficienza as i32,
            stato: pb::StatoCartella::Aperta as i32,
            data_apertura: "2026-01-10".into(),
            data_chiusura: String::new(),
            motivo_chiusura: String::new(),
            accesso_id: "acc-1".into(),
        },
        nuclei: vec![(
            pb::Nucleo {
                meta: meta("nuc-1", "M01"),
                persona_riferimento_id: "per-1".into(),
                membri: vec![
                    pb::MembroNucleo { persona_id: "per-1".into(), parentela: pb::Parentela::Intestatario as i32 },
                    pb::MembroNucleo { persona_id: "per-2".into(), parentela: pb::Parentela::Figlio as i32 },
                ],
                note: "nota riservata del nucleo".into(),
            },
            vec![persona(), figlia()],
        )],
        accessi: vec![pb::Accesso {
            meta: meta("acc-1", "M01"),
            persona_id: "per-1".into(),
            data: "2026-01-05".into(),
            canale: pb::CanaleAccesso::Sportello as i32,
            segnalante: "vicina di casa".into(),
            motivo: "motivo riservato".into(),
            esito: pb::EsitoAccesso::PresaInCarico as i32,
            servizio_inviante: String::new(),
        }],
        valutazioni: vec![pb::Valutazione {
            meta: meta("val-1", "M01"),
            cartella_id: "car-1".into(),
            data: "2026-01-12".into(),
            valutatore: "op-7".into(),
            note: "nota riservata della valutazione".into(),
            scheda: Some(pb::valutazione::Scheda::Sina(pb::Sina {
                mobilita: 2,
                attivita_vita_quotidiana: 2,
                disturbi_comportamentali: 1,
                area_reddituale: 1,
                area_supporto: 2,
                fonte_derivazione_valutazione: 1,
                strumento_valutazione: 1,
                necessita_interventi_sociali: vec!["A1.01".into()],
                invalidita_civile: vec![3],
                ..Default::default()
            })),
        }],
        pai: vec![pb::Pai {
            meta: meta("pai-1", "M01"),
            cartella_id: "car-1".into(),
            data_inizio: "2026-01-15".into(),
            data_fine: "2026-12-31".into(),
            stato: pb::StatoPai::Attivo as i32,
            obiettivi: vec![pb::ObiettivoPai {
                descrizione: "Mantenere la permanenza a domicilio".into(),
                indicatore: "Ore di assistenza erogate".into(),
                scadenza: "2026-06-30".into(),
                raggiunto: false,
            }],
            interventi: vec![pb::InterventoPianificato {
                codice_prestazione: "A1.01".into(),
                descrizione: "Assistenza domiciliare socio-assistenziale".into(),
                frequenza: "3 volte a settimana".into(),
                data_inizio: "2026-02-01".into(),
                data_fine: "2026-12-31".into(),
            }],
            verifiche: vec![pb::VerificaPai {
                data: "2026-03-01".into(),
                esito: "nota riservata della verifica".into(),
                autore: "op-7".into(),
            }],
        }],
        prestazioni: vec![pb::Prestazione {
            meta: meta("pre-1", "M01"),
            cartella_id: "car-1".into(),
            codice_prestazione: "A1.01".into(),
            denominazione: "Assistenza domiciliare socio-assistenziale".into(),
            carattere: pb::CaratterePrestazione::Periodica as i32,
            prova_mezzi: pb::ProvaMezzi::Isee as i32,
            protocollo_domanda: "PROT-1".into(),
            data_evento: "2026-01-20".into(),
            data_inizio: "2026-02-01".into(),
            importo_mensile: Some(45_000),
            stato: pb::StatoPrestazione::Attiva as i32,
            ..Default::default()
        }],
        condivisioni: vec![condivisione("con-1", "car-1", "REGIONE", ""), condivisione("con-2", "car-1", "M02", "")],
    }
}

/// Cartella `car-2` of per-1, shared with another Municipio only.
pub fn unshared_view() -> CartellaView {
    let mut v = shared_view();
    v.cartella.meta = meta("car-2", "M01");
    v.condivisioni = vec![condivisione("con-3", "car-2", "M02", "")];
    v.pai.clear();
    v.prestazioni.clear();
    v.valutazioni.clear();
    v
}

pub fn source() -> MemorySource {
    let mut s = MemorySource::default();
    s.cartelle.insert("car-1".into(), shared_view());
    s.cartelle.insert("car-2".into(), unshared_view());
    s
}

pub fn change(k: &str, id: &str, persona: &str, cartella: &str) -> Change {
    Change {
        cursor: format!("1.{id}"),
        kind: k.into(),
        id: id.into(),
        op: 2,
        version: 2,
        ente: "H501".into(),
        ufficio: "M01".into(),
        persona_id: persona.into(),
        cartella_id: cartella.into(),
        occurred_at: "2026-01-20T10:00:00Z".into(),
    }
}

/// One change of every kind the adapter follows, plus an unknown cartella.
pub fn changes() -> Vec<Change> {
    vec![
        change(kind::PERSONA, "per-1", "per-1", ""),
        change(kind::NUCLEO, "nuc-1", "", ""),
        change(kind::ACCESSO, "acc-1", "per-1", ""),
        change(kind::CARTELLA, "car-1", "per-1", "car-1"),
        change(kind::CARTELLA, "car-2", "per-1", "car-2"),
        change(kind::VALUTAZIONE, "val-1", "per-1", "car-1"),
        change(kind::PAI, "pai-1", "per-1", "car-1"),
        change(kind::PRESTAZIONE, "pre-1", "per-1", "car-1"),
        change(kind::CONDIVISIONE, "con-1", "per-1", "car-1"),
        change(kind::CARTELLA, "car-404", "per-9", "car-404"),
    ]
}

/// A valid protected-discharge message from the region (district 7 of ASL Roma 2).
pub fn message() -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "message",
        "timestamp": "2026-02-03T10:00:00Z",
        "entry": [
            { "fullUrl": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000001", "resource": {
                "resourceType": "MessageHeader",
                "id": "msg-1",
                "eventCoding": { "system": EVENT_SYSTEM.as_str(), "code": EVENT_CODE },
                "source": { "endpoint": "https://fhir.regione.lazio.example/dimissioni" },
                "focus": [{ "reference": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000004" }],
            }},
            { "fullUrl": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000002", "resource": {
                "resourceType": "Patient",
                "identifier": [{ "system": CF_SYSTEM, "value": CF }],
                "name": [{ "family": "Rossi", "given": ["Mario"] }],
                "gender": "male",
                "birthDate": "1980-01-01",
            }},
            { "fullUrl": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000003", "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP" },
                "subject": { "reference": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000002" },
                "period": { "start": "2026-01-20T08:00:00+01:00", "end": "2026-02-02T11:00:00+01:00" },
            }},
            { "fullUrl": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000004", "resource": {
                "resourceType": "ServiceRequest",
                "identifier": [{ "system": "https://fhir.regione.lazio.example/sid/richiesta", "value": "RIC-77" }],
                "status": "active",
                "intent": "order",
                "code": { "text": "Valutazione sociale per dimissione protetta" },
                "subject": { "reference": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000002" },
                "encounter": { "reference": "urn:uuid:7d1c0f6e-0000-4000-8000-000000000003" },
                "locationCode": [{ "coding": [{ "system": DISTRETTO_SYSTEM.as_str(), "code": "120202-07" }] }],
            }},
        ],
    })
}

/// The shared cartella with `n` prestazioni (of the planned code, so each is based on the PAI).
pub fn large_view(n: usize) -> CartellaView {
    let mut v = shared_view();
    let base = v.prestazioni[0].clone();
    v.prestazioni = (0..n)
        .map(|i| {
            let mut p = base.clone();
            p.meta = meta(&format!("pre-{i:03}"), "M01");
            p
        })
        .collect();
    v
}

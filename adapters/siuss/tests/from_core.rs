//! Mapping from cartella records to SIUSS records: tables of fake cases, each checked for the
//! record produced or for the complete list of what blocks it.
#![allow(clippy::unwrap_used)]

mod common;

use cartella_proto::v1 as pb;
use common::{fake_cf, omocodic};
use siuss::from_core::{
    EnteSiuss, Record, RecordValidato, Sorgente, area_inps, id_beneficiario_sinba, impronta, map, map_validato, xml_cooperazione,
};
use siuss::model::*;
use siuss::{FlowId, Rule, TipoFlusso};

fn oggi() -> Data {
    Data::new(2026, 11, 23).unwrap()
}

fn persona() -> pb::Persona {
    pb::Persona {
        meta: Some(pb::Meta { id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(), ..Default::default() }),
        codice_fiscale: fake_cf("TSTPRV", 1950, 3, 12, true, "H501"),
        cognome: "Testa".into(),
        nome: "Prova".into(),
        sesso: pb::Sesso::Femmina as i32,
        data_nascita: "1950-03-12".into(),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        residenza: Some(pb::Indirizzo {
            codice_nazione: "380".into(),
            codice_regione: "12".into(),
            codice_comune: "058091".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cartella(area: pb::AreaUtenza) -> pb::Cartella {
    pb::Cartella { area_utenza: area as i32, stato: pb::StatoCartella::Aperta as i32, ..Default::default() }
}

fn periodica() -> pb::Prestazione {
    pb::Prestazione {
        codice_prestazione: "A1.01".into(),
        denominazione: "Assistenza domiciliare socio-assistenziale".into(),
        carattere: pb::CaratterePrestazione::Periodica as i32,
        prova_mezzi: pb::ProvaMezzi::Isee as i32,
        protocollo_domanda: "RC-M01-123456".into(),
        data_inizio: "2025-02-01".into(),
        data_fine: "2025-12-31".into(),
        importo_mensile: Some(10_123),
        periodo_erogazione: Some(11),
        quota_ente: Some(9_000),
        quota_utente: Some(1_123),
        minuti_servizio_mensili: Some(125),
        dsu: Some(pb::Dsu { numero_protocollo: "INPS-ISEE-2025-1".into(), anno_protocollo: "2025".into(), data: "2025-01-15".into() }),
        stato: pb::StatoPrestazione::Attiva as i32,
        ..Default::default()
    }
}

fn sina() -> pb::Valutazione {
    pb::Valutazione {
        scheda: Some(pb::valutazione::Scheda::Sina(pb::Sina {
            mobilita: 2,
            attivita_vita_quotidiana: 2,
            disturbi_comportamentali: 1,
            area_reddituale: 1,
            area_supporto: 2,
            fonte_derivazione_valutazione: 1,
            strumento_valutazione: 1,
            necessita_interventi_sociali: vec!["A1.01".into()],
            invalidita_civile: vec![1, 3],
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn ente() -> EnteSiuss {
    EnteSiuss {
        codice: "H501".into(),
        denominazione: "Roma Capitale".into(),
        indirizzo: "H501".into(),
        cf_operatore: fake_cf("PRTRTR", 1970, 1, 1, false, "H501"),
    }
}

fn rules(v: &[siuss::Violation]) -> Vec<Rule> {
    v.iter().map(|x| x.rule).collect()
}

#[test]
fn periodic_prestazione_maps_every_field() {
    let (p, c, x, s) = (persona(), cartella(pb::AreaUtenza::DisabilitaNonAutosufficienza), periodica(), sina());
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: Some(&s), sinba: None };
    let Record::Ps(b) = map(&src, TipoOperazione::Inserimento, oggi()).unwrap() else { panic!("PS expected") };
    assert_eq!(b.codice_fiscale, p.codice_fiscale);
    assert_eq!(b.anagrafica.cognome, "TESTA");
    assert_eq!(b.anagrafica.anno_nascita, 1950);
    assert_eq!(b.anagrafica.genere, Genere::Femmina);
    assert_eq!(b.indirizzi.len(), 1);
    let ps = &b.prestazioni_sociali[0];
    assert_eq!(ps.tipo_operazione, TipoOperazione::Inserimento);
    assert_eq!(ps.presenza_prova_mezzi, PresenzaProvaMezzi::Isee);
    assert_eq!(ps.carattere_prestazione, Some(CaratterePrestazione::Periodica));
    assert_eq!(ps.importo_mensile.unwrap().to_string(), "101.23");
    assert_eq!(ps.importo_quota_utente.unwrap().to_string(), "11.23");
    assert_eq!(ps.periodo_erogazione, Some(11));
    assert_eq!(ps.ore_servizio_mensile.unwrap().to_string(), "2.05");
    assert_eq!(ps.anno_protocollo_dsu, Some(2025));
    assert_eq!(ps.presa_carico, SiNo::Si);
    assert_eq!(ps.area_utenza, Some(AreaUtenza::DisabilitaNonAutosufficienza));
    let sina = ps.sina.as_ref().unwrap();
    assert_eq!(sina.invalidita_civile, vec![InvCiv::Parziale75, InvCiv::TotaleSenzaAccompagnamento]);

    let id = FlowId::new("H501", TipoFlusso::Ps, oggi(), 1).unwrap();
    let xml = String::from_utf8(xml_cooperazione(&ente(), &id, &Record::Ps(b.clone())).unwrap()).unwrap();
    assert!(xml.contains("Nome=\"H501.PS.20261123.0000001\""));
    assert!(xml.contains("ImportoMensile=\"101.23\""));
    assert!(xml.contains("OreServizioMensile=\"2.05\""));
}

#[test]
fn area_table() {
    use pb::AreaUtenza as A;
    let table = [
        (A::FamigliaMinori, false, Some(AreaUtenza::FamigliaMinori)),
        (A::DisabilitaNonAutosufficienza, false, Some(AreaUtenza::DisabilitaNonAutosufficienza)),
        (A::PovertaEsclusioneSociale, false, Some(AreaUtenza::PovertaEsclusioneSociale)),
        (A::Anziani, true, Some(AreaUtenza::DisabilitaNonAutosufficienza)),
        (A::Anziani, false, None),
        (A::Immigrati, true, None),
        (A::Dipendenze, false, None),
        (A::SaluteMentale, false, None),
        (A::Multiutenza, false, None),
        (A::Unspecified, false, None),
    ];
    for (core, con_sina, inps) in table {
        assert_eq!(area_inps(core as i32, con_sina), inps, "{core:?} con_sina={con_sina}");
    }
}

#[test]
fn unmappable_area_blocks_only_with_presa_in_carico() {
    let (p, x) = (persona(), periodica());
    let aperta = cartella(pb::AreaUtenza::Immigrati);
    let src = Sorgente { persona: &p, cartella: &aperta, prestazione: &x, sina: None, sinba: None };
    let v = map(&src, TipoOperazione::Inserimento, oggi()).unwrap_err();
    assert_eq!(rules(&v), vec![Rule::AreaUtenzaNonMappabile]);
    assert!(v[0].message.contains("indicarne una"));

    let chiusa = pb::Cartella { stato: pb::StatoCartella::Chiusa as i32, ..aperta.clone() };
    let src = Sorgente { cartella: &chiusa, ..src };
    let Record::Ps(b) = map(&src, TipoOperazione::Inserimento, oggi()).unwrap() else { panic!() };
    assert_eq!(b.prestazioni_sociali[0].presa_carico, SiNo::No);
    assert_eq!(b.prestazioni_sociali[0].area_utenza, None);
}

#[test]
fn incomplete_prestazione_lists_everything_missing() {
    let p = pb::Persona { codice_fiscale: String::new(), sesso: 0, residenza: None, ..persona() };
    let c = cartella(pb::AreaUtenza::Anziani);
    let x = pb::Prestazione {
        carattere: pb::CaratterePrestazione::Periodica as i32,
        importo_mensile: Some(10_000),
        quota_ente: Some(5_000),
        data_fine: "2026-01-31".into(),
        dsu: Some(pb::Dsu { numero_protocollo: "X1".into(), ..Default::default() }),
        ..Default::default()
    };
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: None, sinba: None };
    let v = map(&src, TipoOperazione::Inserimento, oggi()).unwrap_err();
    let got = rules(&v);
    for expected in [
        Rule::DatoMancante,           // codice fiscale, sesso, residenza, prova mezzi, codice, denominazione, protocollo
        Rule::AreaUtenzaNonMappabile, // anziano without SINA
        Rule::PeriodicaSenzaDataInizio,
        Rule::DataFineSenzaDataInizio,
        Rule::DsuIncompleta,
        Rule::SommaQuote,
    ] {
        assert!(got.contains(&expected), "{expected:?} missing from {got:?}");
    }
    let mancanti: Vec<&str> = v.iter().filter(|x| x.rule == Rule::DatoMancante).map(|x| x.path.as_str()).collect();
    for path in [
        "beneficiario.codice_fiscale",
        "beneficiario.anagrafica.genere",
        "beneficiario.indirizzi[0]",
        "beneficiario.prestazioni_sociali[0].presenza_prova_mezzi",
        "beneficiario.prestazioni_sociali[0].codice_prestazione",
        "beneficiario.prestazioni_sociali[0].denominazione_prestazione",
        "beneficiario.prestazioni_sociali[0].protocollo_domanda",
    ] {
        assert!(mancanti.contains(&path), "{path} not reported: {mancanti:?}");
    }
    // An empty text is reported once, as missing, not again as a length violation.
    assert!(!v.iter().any(|x| x.rule == Rule::Lunghezza && x.path.ends_with("codice_prestazione")));
    // No message quotes personal data.
    for x in &v {
        assert!(!x.message.contains("TESTA") && !x.message.contains("Testa"));
    }
}

#[test]
fn occasional_without_amount_and_date() {
    let (p, c) = (persona(), cartella(pb::AreaUtenza::PovertaEsclusioneSociale));
    let x = pb::Prestazione {
        carattere: pb::CaratterePrestazione::Occasionale as i32,
        importo_mensile: None,
        data_inizio: String::new(),
        data_fine: String::new(),
        quota_ente: None,
        quota_utente: None,
        ..periodica()
    };
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: None, sinba: None };
    let got = rules(&map(&src, TipoOperazione::Inserimento, oggi()).unwrap_err());
    assert_eq!(got, vec![Rule::OccasionaleSenzaDataErogazione, Rule::OccasionaleSenzaImportoPrestazione]);
}

#[test]
fn omocodic_cf_with_letters_in_year_is_reported_not_sent() {
    let cf = omocodic(&fake_cf("TSTPRV", 1950, 3, 12, true, "H501"), &[14, 13, 12, 10, 9, 7, 6]);
    let p = pb::Persona { codice_fiscale: cf, ..persona() };
    let (c, x) = (cartella(pb::AreaUtenza::PovertaEsclusioneSociale), periodica());
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: None, sinba: None };
    let v = map(&src, TipoOperazione::Inserimento, oggi()).unwrap_err();
    assert_eq!(rules(&v), vec![Rule::CodiceFiscaleOmocodico]);
    assert!(v[0].message.contains("omocodico"));
}

#[test]
fn cancellation_and_fingerprint() {
    let (p, c, x) = (persona(), cartella(pb::AreaUtenza::PovertaEsclusioneSociale), periodica());
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: None, sinba: None };
    let ins = map(&src, TipoOperazione::Inserimento, oggi()).unwrap();
    let canc = map(&src, TipoOperazione::Cancellazione, oggi()).unwrap();
    let Record::Ps(b) = &canc else { panic!() };
    assert_eq!(b.prestazioni_sociali[0].tipo_operazione, TipoOperazione::Cancellazione);
    assert_eq!(impronta(&ins).unwrap(), impronta(&map(&src, TipoOperazione::Inserimento, oggi()).unwrap()).unwrap());
    assert_ne!(impronta(&ins).unwrap(), impronta(&canc).unwrap());
    let changed = pb::Prestazione { importo_mensile: Some(10_124), quota_utente: Some(1_124), ..x.clone() };
    let src2 = Sorgente { prestazione: &changed, ..src };
    assert_ne!(impronta(&ins).unwrap(), impronta(&map(&src2, TipoOperazione::Inserimento, oggi()).unwrap()).unwrap());
}

fn sinba_completa() -> pb::Valutazione {
    pb::Valutazione {
        scheda: Some(pb::valutazione::Scheda::Sinba(pb::Sinba {
            minore_straniero_non_accompagnato: 2,
            condizione_minore: 1,
            luogo_vita: 1,
            scuola_frequentata: 5,
            condizione_lavoro: 1,
            disabilita: 2,
            data_prima_segnalazione: "03/2025".into(),
            fonte_segnalazione: 13,
            valutazione_minore: 2,
            valutazione_famiglia_minore: 12,
            segnalazione_autorita_giudiziaria: 2,
            provvedimento_giudiziario: 2,
            composizione_famiglia: vec![1, 3],
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[test]
fn minor_with_sinba_goes_to_sinba() {
    let p = pb::Persona { codice_fiscale: String::new(), data_nascita: "2016-05-02".into(), ..persona() };
    let (c, x, v) = (cartella(pb::AreaUtenza::FamigliaMinori), periodica(), sinba_completa());
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: None, sinba: Some(&v) };
    let Record::Sinba(s) = map(&src, TipoOperazione::Inserimento, oggi()).unwrap() else { panic!("SINBA expected") };
    assert_eq!(s.prestazioni, vec!["A1.01".to_string()]);
    assert_eq!(s.anno_nascita, 2016);
    // 8 years old on 2025-02-01, the prestazione's start.
    assert_eq!(s.fascia_eta_beneficiario, FasciaEtaBeneficiario::Da6a9);
    assert_eq!(s.id_beneficiario, id_beneficiario_sinba("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
    assert_eq!(s.id_beneficiario.len(), 20);
    let id = FlowId::new("H501", TipoFlusso::Sinba, oggi(), 2).unwrap();
    assert!(xml_cooperazione(&ente(), &id, &Record::Sinba(s)).is_ok());

    // The same minor without a SINBA assessment is a PS beneficiary (and needs a CF).
    let src = Sorgente { sinba: None, ..src };
    let v = map(&src, TipoOperazione::Inserimento, oggi()).unwrap_err();
    assert_eq!(v[0].path, "beneficiario.codice_fiscale");
}

#[test]
fn incomplete_sinba_lists_every_gap() {
    let p = pb::Persona { data_nascita: "2016-05-02".into(), ..persona() };
    let (c, x) = (cartella(pb::AreaUtenza::FamigliaMinori), periodica());
    let v = pb::Valutazione {
        scheda: Some(pb::valutazione::Scheda::Sinba(pb::Sinba { luogo_vita: 99, ..Default::default() })),
        ..Default::default()
    };
    let src = Sorgente { persona: &p, cartella: &c, prestazione: &x, sina: None, sinba: Some(&v) };
    let got = map(&src, TipoOperazione::Inserimento, oggi()).unwrap_err();
    let paths: Vec<&str> = got.iter().map(|x| x.path.as_str()).collect();
    for path in
        ["sinba.famiglia", "sinba.condizione_minore", "sinba.data_prima_segnalazione", "sinba.fonte_segnalazione", "sinba.luogo_vita"]
    {
        assert!(paths.contains(&path), "{path} not in {paths:?}");
    }
    assert!(got.iter().any(|x| x.rule == Rule::CodiceNonAmmesso && x.path == "sinba.luogo_vita"));
}

#[test]
fn misconfigured_ente_is_reported() {
    let bad = EnteSiuss { cf_operatore: "XXX".into(), ..ente() };
    assert!(bad.check().iter().any(|v| v.path.ends_with("cf_operatore")));
    assert!(ente().check().is_empty());
}

#[test]
fn map_validato_agrees_with_map() {
    let minore = pb::Persona { codice_fiscale: String::new(), data_nascita: "2016-05-02".into(), ..persona() };
    let senza_nome = pb::Persona { nome: " ".into(), ..persona() };
    let (c, x, s, v) = (cartella(pb::AreaUtenza::DisabilitaNonAutosufficienza), periodica(), sina(), sinba_completa());
    let cases = [(persona(), Some(&s), None), (minore.clone(), None, Some(&v)), (minore, None, None), (senza_nome, Some(&s), None)];
    for (p, sina, sinba) in &cases {
        let src = Sorgente { persona: p, cartella: &c, prestazione: &x, sina: *sina, sinba: *sinba };
        for op in [TipoOperazione::Inserimento, TipoOperazione::Cancellazione] {
            let a = map(&src, op, oggi());
            let b = map_validato(&src, op, oggi());
            if let Ok(r) = &b {
                assert_eq!(r.tipo(), a.as_ref().unwrap().tipo());
            }
            assert_eq!(a, b.map(Record::from));
        }
    }
    let src = Sorgente { persona: &cases[1].0, cartella: &c, prestazione: &x, sina: None, sinba: Some(&v) };
    assert!(matches!(map_validato(&src, TipoOperazione::Inserimento, oggi()), Ok(RecordValidato::Sinba(_))));
}

#[test]
fn id_beneficiario_sinba_keeps_the_last_20_ascii_alphanumerics() {
    assert_eq!(id_beneficiario_sinba("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), "7E5F8A9B0C1D2E3F4A5B");
    assert_eq!(id_beneficiario_sinba("àb-ç1é"), "B1");
    assert_eq!(id_beneficiario_sinba("--"), "");
}

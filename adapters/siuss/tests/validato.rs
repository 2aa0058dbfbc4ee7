//! Records proven valid: checking, merging the prestazioni of one person, writing without a
//! second check.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use siuss::model::*;
use siuss::rules::{validate_beneficiario, validate_sinba_record};
use siuss::{FlussoPsWriter, FlussoSinbaWriter, Rule, Validato, VoceFlusso};

fn ps(b: Beneficiario) -> Validato<Beneficiario> {
    Validato::valida(b, "beneficiario").unwrap()
}

fn sb(s: Sinba) -> Validato<Sinba> {
    Validato::valida(s, "sinba").unwrap()
}

#[test]
fn valida_reports_what_validate_reports() {
    let mut bad = beneficiario(0, vec![prestazione_periodica()]);
    bad.prestazioni_sociali[0].importo_mensile = Some(Importo(-500));
    let expected = validate_beneficiario(&bad, "beneficiari[7]").unwrap_err();
    assert_eq!(Validato::valida(bad.clone(), "beneficiari[7]").unwrap_err(), expected);
    assert_eq!(bad.validate("beneficiari[7]").unwrap_err(), expected);

    let mut bad = sinba(0);
    bad.prestazioni[0] = "A1".into();
    let expected = validate_sinba_record(&bad, "sinba[2]").unwrap_err();
    assert_eq!(Validato::valida(bad, "sinba[2]").unwrap_err(), expected);

    let good = beneficiario(0, vec![prestazione_periodica()]);
    assert_eq!(ps(good.clone()).into_inner(), good);
}

#[test]
fn prestazioni_of_one_person_merge() {
    let mut m = ps(beneficiario(3, vec![prestazione_periodica()]));
    let b = ps(beneficiario(3, vec![prestazione_occasionale(), prestazione_periodica()]));
    m.unisci(b).unwrap();
    assert_eq!(m.prestazioni_sociali.len(), 3);
    assert_eq!(m.prestazioni(), 3);
    assert_eq!(m.prestazioni_sociali[1].codice_prestazione, prestazione_occasionale().codice_prestazione);
    assert!(validate_beneficiario(&m, "beneficiario").is_ok());
}

#[test]
fn different_people_or_addresses_do_not_merge() {
    let a = beneficiario(3, vec![prestazione_periodica()]);
    let others = [
        beneficiario(4, vec![prestazione_occasionale()]),
        {
            let mut b = beneficiario(3, vec![prestazione_occasionale()]);
            b.indirizzi.push(Indirizzo { codice_regione: None, codice_comune: None, codice_nazione: "100".into() });
            b
        },
        {
            let mut b = beneficiario(3, vec![prestazione_occasionale()]);
            b.anagrafica.codice_seconda_cittadinanza = Some("100".into());
            b
        },
    ];
    for b in others {
        let mut x = ps(a.clone());
        let y = x.unisci(ps(b.clone())).unwrap_err();
        assert_eq!(x.into_inner(), a);
        assert_eq!(y.into_inner(), b);
    }
}

#[test]
fn sinba_merge_adds_distinct_codes_only() {
    let mut b = sinba(0);
    b.prestazioni = vec!["A1.02".into(), "A2.17".into()];
    let mut m = sb(sinba(0));
    m.unisci(sb(b)).unwrap();
    assert_eq!(m.prestazioni, vec!["A1.02".to_string(), "A2.17".to_string()]);
    assert!(validate_sinba_record(&m, "sinba").is_ok());

    // Any other field differing (here the age band, worked out per prestazione) keeps the
    // records apart.
    let mut c = sinba(0);
    c.fascia_eta_beneficiario = FasciaEtaBeneficiario::Da9a12;
    let mut x = sb(sinba(0));
    let y = x.unisci(sb(c.clone())).unwrap_err();
    assert_eq!(x.into_inner(), sinba(0));
    assert_eq!(y.into_inner(), c);
    assert!(sb(sinba(0)).unisci(sb(sinba(1))).is_err());
}

#[test]
fn write_validato_counts_in_the_positions() {
    let mut w = FlussoPsWriter::begin(Vec::new(), &identificazione("H501.PS.20250520.0000008")).unwrap();
    w.write_validato(&ps(beneficiario(0, vec![prestazione_periodica()]))).unwrap();
    let mut bad = beneficiario(1, vec![prestazione_periodica()]);
    bad.prestazioni_sociali[0].importo_mensile = Some(Importo(-500));
    let err = w.write(&bad).unwrap_err();
    assert!(
        err.violations()
            .iter()
            .any(|v| v.rule == Rule::ImportoNonPositivo && v.path == "beneficiari[1].prestazioni_sociali[0].importo_mensile")
    );
    w.write_validato(&ps(beneficiario(2, vec![prestazione_occasionale()]))).unwrap();
    assert_eq!(w.scritti(), 2);

    // Same bytes as `write`.
    let mut v = FlussoPsWriter::begin(Vec::new(), &identificazione("H501.PS.20250520.0000008")).unwrap();
    v.write(&beneficiario(0, vec![prestazione_periodica()])).unwrap();
    v.write(&beneficiario(2, vec![prestazione_occasionale()])).unwrap();
    assert_eq!(w.finish().unwrap(), v.finish().unwrap());

    let mut w = FlussoSinbaWriter::begin(Vec::new(), &identificazione("H501.SINBA.20250520.0000003")).unwrap();
    w.write_validato(&sb(sinba(0))).unwrap();
    let mut bad = sinba(1);
    bad.famiglia.clear();
    let err = w.write(&bad).unwrap_err();
    assert!(err.violations().iter().any(|v| v.rule == Rule::Cardinalita && v.path == "sinba[1].famiglia"));
    assert_eq!(w.scritti(), 1);
}

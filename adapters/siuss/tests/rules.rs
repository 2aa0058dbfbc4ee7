//! Table-driven tests of every rule in `siuss::rules`: each case breaks exactly one rule of
//! an otherwise valid flow and expects that rule, at that path.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use siuss::model::*;
use siuss::rules::{Canale, Rule, Violation, validate_ps, validate_sinba};

type PsCase = (&'static str, fn(&mut FlussoPs), Rule, &'static str);

fn p0(f: &mut FlussoPs) -> &mut PrestazioneSociale {
    &mut f.beneficiari[0].prestazioni_sociali[0]
}

fn b0(f: &mut FlussoPs) -> &mut Beneficiario {
    &mut f.beneficiari[0]
}

const P: &str = "beneficiari[0].prestazioni_sociali[0]";

fn ps_cases() -> Vec<PsCase> {
    vec![
        ("nome flusso vuoto", |f| f.identificazione_flusso.nome.clear(), Rule::NomeFlussoVuoto, "identificazione_flusso.nome"),
        ("nome flusso solo spazi", |f| f.identificazione_flusso.nome = "   ".into(), Rule::NomeFlussoVuoto, "identificazione_flusso.nome"),
        (
            "nome flusso > 50",
            |f| {
                let e = "E".repeat(32);
                f.identificazione_flusso.ente.codice = e.clone();
                f.identificazione_flusso.nome = format!("{e}.PS.20250520.0000002");
            },
            Rule::NomeFlussoLunghezza,
            "identificazione_flusso.nome",
        ),
        (
            "nome flusso esempio INPS 8 cifre",
            |f| f.identificazione_flusso.nome = "H501.PS.20210520.00000004".into(),
            Rule::NomeFlussoFormato,
            "identificazione_flusso.nome",
        ),
        (
            "nome flusso esempio INPS 5 parti",
            |f| f.identificazione_flusso.nome = "H501.PS.INPS.20160423.115235".into(),
            Rule::NomeFlussoFormato,
            "identificazione_flusso.nome",
        ),
        (
            "nome flusso ente diverso",
            |f| f.identificazione_flusso.nome = "F205.PS.20250520.0000002".into(),
            Rule::NomeFlussoEnte,
            "identificazione_flusso.nome",
        ),
        (
            "nome flusso tipo SINBA in flusso PS",
            |f| f.identificazione_flusso.nome = "H501.SINBA.20250520.0000002".into(),
            Rule::NomeFlussoTipo,
            "identificazione_flusso.nome",
        ),
        (
            "ente codice vuoto",
            |f| {
                f.identificazione_flusso.ente.codice.clear();
            },
            Rule::Lunghezza,
            "identificazione_flusso.ente.codice",
        ),
        (
            "ente denominazione vuota",
            |f| f.identificazione_flusso.ente.denominazione = Some(String::new()),
            Rule::Lunghezza,
            "identificazione_flusso.ente.denominazione",
        ),
        (
            "ente indirizzo non Belfiore",
            |f| f.identificazione_flusso.ente.indirizzo = "ROMA".into(),
            Rule::Formato,
            "identificazione_flusso.ente.indirizzo",
        ),
        (
            "cf operatore errato",
            |f| f.identificazione_flusso.ente.cf_operatore.replace_range(15..16, "0"),
            Rule::CodiceFiscale,
            "identificazione_flusso.ente.cf_operatore",
        ),
        ("nessun beneficiario", |f| f.beneficiari.clear(), Rule::Cardinalita, "beneficiari"),
        (
            "cooperazione due beneficiari",
            |f| {
                let b = f.beneficiari[0].clone();
                f.beneficiari.push(b)
            },
            Rule::CooperazioneUnicoBeneficiario,
            "beneficiari",
        ),
        (
            "cooperazione due prestazioni",
            |f| b0(f).prestazioni_sociali.push(prestazione_occasionale()),
            Rule::CooperazioneUnicaPrestazione,
            "beneficiari[0].prestazioni_sociali",
        ),
        (
            "cf check errato",
            |f| {
                let cf = &mut b0(f).codice_fiscale;
                let last = if cf.ends_with('A') { "B" } else { "A" };
                cf.replace_range(15..16, last);
            },
            Rule::CodiceFiscale,
            "beneficiari[0].codice_fiscale",
        ),
        (
            "cf omocodico su anno",
            |f| {
                let cf = b0(f).codice_fiscale.clone();
                b0(f).codice_fiscale = omocodic(&cf, &[12, 13, 14, 10, 9, 7])
            },
            Rule::CodiceFiscaleOmocodico,
            "beneficiari[0].codice_fiscale",
        ),
        (
            "cf omocodico su giorno",
            |f| {
                let cf = b0(f).codice_fiscale.clone();
                b0(f).codice_fiscale = omocodic(&cf, &[14, 13, 12, 10])
            },
            Rule::CodiceFiscaleOmocodico,
            "beneficiari[0].codice_fiscale",
        ),
        ("cognome vuoto", |f| b0(f).anagrafica.cognome.clear(), Rule::Lunghezza, "beneficiari[0].anagrafica.cognome"),
        ("nome > 36", |f| b0(f).anagrafica.nome = "A".repeat(37), Rule::Lunghezza, "beneficiari[0].anagrafica.nome"),
        (
            "nome con carattere di controllo",
            |f| b0(f).anagrafica.nome = "AN\u{1}NA".into(),
            Rule::CaratteriNonAmmessi,
            "beneficiari[0].anagrafica.nome",
        ),
        ("anno nascita 3 cifre", |f| b0(f).anagrafica.anno_nascita = 999, Rule::Formato, "beneficiari[0].anagrafica.anno_nascita"),
        (
            "luogo nascita non Belfiore",
            |f| b0(f).anagrafica.luogo_nascita = "1234".into(),
            Rule::Formato,
            "beneficiari[0].anagrafica.luogo_nascita",
        ),
        (
            "cittadinanza non numerica",
            |f| b0(f).anagrafica.codice_cittadinanza = "ITA".into(),
            Rule::Formato,
            "beneficiari[0].anagrafica.codice_cittadinanza",
        ),
        (
            "seconda cittadinanza 2 cifre",
            |f| b0(f).anagrafica.codice_seconda_cittadinanza = Some("38".into()),
            Rule::Formato,
            "beneficiari[0].anagrafica.codice_seconda_cittadinanza",
        ),
        ("nessun indirizzo", |f| b0(f).indirizzi.clear(), Rule::Cardinalita, "beneficiari[0].indirizzi"),
        ("sei indirizzi", |f| b0(f).indirizzi = vec![indirizzo_roma(); 6], Rule::Cardinalita, "beneficiari[0].indirizzi"),
        (
            "italia senza regione",
            |f| b0(f).indirizzi[0].codice_regione = None,
            Rule::ResidenzaItaliaIncompleta,
            "beneficiari[0].indirizzi[0].codice_regione",
        ),
        (
            "italia senza comune",
            |f| b0(f).indirizzi[0].codice_comune = None,
            Rule::ResidenzaItaliaIncompleta,
            "beneficiari[0].indirizzi[0].codice_comune",
        ),
        (
            "comune 5 cifre",
            |f| b0(f).indirizzi[0].codice_comune = Some("58091".into()),
            Rule::Formato,
            "beneficiari[0].indirizzi[0].codice_comune",
        ),
        (
            "nazione non numerica",
            |f| b0(f).indirizzi[0].codice_nazione = "IT".into(),
            Rule::Formato,
            "beneficiari[0].indirizzi[0].codice_nazione",
        ),
        ("nessuna prestazione", |f| b0(f).prestazioni_sociali.clear(), Rule::Cardinalita, "beneficiari[0].prestazioni_sociali"),
        (
            "codice prestazione corto",
            |f| p0(f).codice_prestazione = "A2.1".into(),
            Rule::Lunghezza,
            "beneficiari[0].prestazioni_sociali[0].codice_prestazione",
        ),
        (
            "denominazione corta",
            |f| p0(f).denominazione_prestazione = "Alloggi".into(),
            Rule::Lunghezza,
            "beneficiari[0].prestazioni_sociali[0].denominazione_prestazione",
        ),
        (
            "protocollo domanda > 32",
            |f| p0(f).protocollo_domanda = "X".repeat(33),
            Rule::Lunghezza,
            "beneficiari[0].prestazioni_sociali[0].protocollo_domanda",
        ),
        (
            "carattere assente",
            |f| p0(f).carattere_prestazione = None,
            Rule::CarattereObbligatorio,
            "beneficiari[0].prestazioni_sociali[0].carattere_prestazione",
        ),
        (
            "periodica senza data inizio",
            |f| {
                p0(f).data_inizio_prestazione = None;
                p0(f).data_fine_prestazione = None
            },
            Rule::PeriodicaSenzaDataInizio,
            "beneficiari[0].prestazioni_sociali[0].data_inizio_prestazione",
        ),
        (
            "periodica senza importo mensile",
            |f| p0(f).importo_mensile = None,
            Rule::PeriodicaSenzaImportoMensile,
            "beneficiari[0].prestazioni_sociali[0].importo_mensile",
        ),
        (
            "occasionale senza data erogazione",
            |f| {
                *p0(f) = prestazione_occasionale();
                p0(f).data_erogazione_prestazione = None
            },
            Rule::OccasionaleSenzaDataErogazione,
            "beneficiari[0].prestazioni_sociali[0].data_erogazione_prestazione",
        ),
        (
            "occasionale senza importo",
            |f| {
                *p0(f) = prestazione_occasionale();
                p0(f).importo_prestazione = None
            },
            Rule::OccasionaleSenzaImportoPrestazione,
            "beneficiari[0].prestazioni_sociali[0].importo_prestazione",
        ),
        (
            "dsu senza numero",
            |f| p0(f).numero_protocollo_dsu = None,
            Rule::DsuIncompleta,
            "beneficiari[0].prestazioni_sociali[0].numero_protocollo_dsu",
        ),
        (
            "dsu numero vuoto",
            |f| p0(f).numero_protocollo_dsu = Some(String::new()),
            Rule::DsuIncompleta,
            "beneficiari[0].prestazioni_sociali[0].numero_protocollo_dsu",
        ),
        (
            "dsu senza anno",
            |f| p0(f).anno_protocollo_dsu = None,
            Rule::DsuIncompleta,
            "beneficiari[0].prestazioni_sociali[0].anno_protocollo_dsu",
        ),
        ("dsu senza data", |f| p0(f).data_dsu = None, Rule::DsuIncompleta, "beneficiari[0].prestazioni_sociali[0].data_dsu"),
        (
            "dsu numero > 30",
            |f| p0(f).numero_protocollo_dsu = Some("N".repeat(31)),
            Rule::Lunghezza,
            "beneficiari[0].prestazioni_sociali[0].numero_protocollo_dsu",
        ),
        (
            "dsu anno 5 cifre",
            |f| p0(f).anno_protocollo_dsu = Some(10_000),
            Rule::Formato,
            "beneficiari[0].prestazioni_sociali[0].anno_protocollo_dsu",
        ),
        (
            "data fine senza inizio",
            |f| {
                *p0(f) = prestazione_occasionale();
                p0(f).data_fine_prestazione = Some(d(2025, 12, 31))
            },
            Rule::DataFineSenzaDataInizio,
            "beneficiari[0].prestazioni_sociali[0].data_fine_prestazione",
        ),
        (
            "data fine anno successivo",
            |f| p0(f).data_fine_prestazione = Some(d(2026, 1, 31)),
            Rule::DataFineAnnoDiverso,
            "beneficiari[0].prestazioni_sociali[0].data_fine_prestazione",
        ),
        (
            "data fine precedente",
            |f| p0(f).data_fine_prestazione = Some(d(2025, 2, 1)),
            Rule::DataFinePrecedente,
            "beneficiari[0].prestazioni_sociali[0].data_fine_prestazione",
        ),
        (
            "importo mensile zero",
            |f| {
                let p = p0(f);
                p.importo_mensile = Some(Importo(0));
                p.importo_quota_ente = None;
                p.importo_quota_utente = None;
                p.importo_quota_ssn = None
            },
            Rule::ImportoNonPositivo,
            "beneficiari[0].prestazioni_sociali[0].importo_mensile",
        ),
        (
            "importo mensile negativo",
            |f| {
                let p = p0(f);
                p.importo_mensile = Some(Importo(-500));
                p.importo_quota_ente = None;
                p.importo_quota_utente = None;
                p.importo_quota_ssn = None
            },
            Rule::ImportoNonPositivo,
            "beneficiari[0].prestazioni_sociali[0].importo_mensile",
        ),
        (
            "importo prestazione zero",
            |f| {
                *p0(f) = prestazione_occasionale();
                let p = p0(f);
                p.importo_prestazione = Some(Importo(0));
                p.importo_quota_ente = None;
                p.importo_quota_utente = None;
                p.importo_quota_ssn = None
            },
            Rule::ImportoNonPositivo,
            "beneficiari[0].prestazioni_sociali[0].importo_prestazione",
        ),
        (
            "quota ente zero",
            |f| {
                let p = p0(f);
                p.importo_quota_ente = Some(Importo(0));
                p.importo_quota_utente = Some(Importo(7_425))
            },
            Rule::ImportoNonPositivo,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_ente",
        ),
        (
            "quota ssn zero (esempio INPS)",
            |f| {
                let p = p0(f);
                p.importo_quota_ssn = Some(Importo(0));
                p.importo_quota_ente = Some(Importo(7_952))
            },
            Rule::ImportoNonPositivo,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_ssn",
        ),
        (
            "quota utente negativa",
            |f| {
                let p = p0(f);
                p.importo_quota_utente = Some(Importo(-1));
                p.importo_quota_ente = Some(Importo(7_426))
            },
            Rule::ImportoNegativo,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_utente",
        ),
        (
            "quota richiesta negativa",
            |f| p0(f).importo_quota_richiesta = Some(Importo(-1)),
            Rule::ImportoNegativo,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_richiesta",
        ),
        (
            "soglia isee negativa",
            |f| p0(f).importo_soglia_isee = Some(Importo(-1)),
            Rule::ImportoNegativo,
            "beneficiari[0].prestazioni_sociali[0].importo_soglia_isee",
        ),
        (
            "somma quote diversa da mensile",
            |f| p0(f).importo_quota_ente = Some(Importo(5_253)),
            Rule::SommaQuote,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_*",
        ),
        (
            "somma quote parziale diversa",
            |f| p0(f).importo_quota_ssn = None,
            Rule::SommaQuote,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_*",
        ),
        (
            "somma quote diversa da importo prestazione",
            |f| {
                *p0(f) = prestazione_occasionale();
                p0(f).importo_prestazione = Some(Importo(126_524))
            },
            Rule::SommaQuote,
            "beneficiari[0].prestazioni_sociali[0].importo_quota_*",
        ),
        (
            "periodo erogazione 0",
            |f| p0(f).periodo_erogazione = Some(0),
            Rule::PeriodoErogazione,
            "beneficiari[0].prestazioni_sociali[0].periodo_erogazione",
        ),
        (
            "periodo erogazione 13",
            |f| p0(f).periodo_erogazione = Some(13),
            Rule::PeriodoErogazione,
            "beneficiari[0].prestazioni_sociali[0].periodo_erogazione",
        ),
        (
            "ore servizio 60 minuti",
            |f| p0(f).ore_servizio_mensile = Some(OreServizio::new(2, 60)),
            Rule::OreServizioMinuti,
            "beneficiari[0].prestazioni_sociali[0].ore_servizio_mensile",
        ),
        (
            "presa in carico senza area utenza",
            |f| p0(f).area_utenza = None,
            Rule::AreaUtenzaObbligatoria,
            "beneficiari[0].prestazioni_sociali[0].area_utenza",
        ),
        (
            "sina codice necessita corto",
            |f| {
                if let Some(s) = p0(f).sina.as_mut() {
                    s.necessita_interventi_sociali[1] = "A2".into()
                }
            },
            Rule::Lunghezza,
            "beneficiari[0].prestazioni_sociali[0].sina.necessita_interventi_sociali[1]",
        ),
    ]
}

fn has(v: &[Violation], rule: Rule, path: &str) -> bool {
    v.iter().any(|x| x.rule == rule && x.path == path)
}

#[test]
fn baseline_flows_are_valid() {
    assert_eq!(validate_ps(&flusso_coop(), Canale::Cooperazione), Ok(()));
    assert_eq!(validate_sinba(&flusso_sinba_coop(), Canale::Cooperazione), Ok(()));
    let mut f = flusso_coop();
    *p0(&mut f) = prestazione_occasionale();
    assert_eq!(validate_ps(&f, Canale::Cooperazione), Ok(()));
}

#[test]
fn every_ps_rule_fires() {
    let mut failures = Vec::new();
    for (name, mutate, rule, path) in ps_cases() {
        let mut f = flusso_coop();
        mutate(&mut f);
        match validate_ps(&f, Canale::Cooperazione) {
            Ok(()) => failures.push(format!("{name}: no violation")),
            Err(v) if !has(&v, rule, path) => failures.push(format!("{name}: expected {rule} at {path}, got {v:?}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_variant_is_covered_by_a_case() {
    let covered: std::collections::HashSet<Rule> = ps_cases().iter().map(|c| c.2).chain(sinba_cases().iter().map(|c| c.2)).collect();
    let all = [
        Rule::NomeFlussoVuoto,
        Rule::NomeFlussoLunghezza,
        Rule::NomeFlussoFormato,
        Rule::NomeFlussoEnte,
        Rule::NomeFlussoTipo,
        Rule::Lunghezza,
        Rule::Formato,
        Rule::CaratteriNonAmmessi,
        Rule::Cardinalita,
        Rule::CooperazioneUnicoBeneficiario,
        Rule::CooperazioneUnicaPrestazione,
        Rule::CodiceFiscale,
        Rule::CodiceFiscaleOmocodico,
        Rule::ResidenzaItaliaIncompleta,
        Rule::CarattereObbligatorio,
        Rule::PeriodicaSenzaDataInizio,
        Rule::PeriodicaSenzaImportoMensile,
        Rule::OccasionaleSenzaDataErogazione,
        Rule::OccasionaleSenzaImportoPrestazione,
        Rule::DsuIncompleta,
        Rule::DataFineSenzaDataInizio,
        Rule::DataFineAnnoDiverso,
        Rule::DataFinePrecedente,
        Rule::ImportoNonPositivo,
        Rule::ImportoNegativo,
        Rule::SommaQuote,
        Rule::PeriodoErogazione,
        Rule::OreServizioMinuti,
        Rule::AreaUtenzaObbligatoria,
        Rule::NumeroComponentiIsee,
        Rule::IdBeneficiarioIdentificante,
    ];
    for r in all {
        assert!(covered.contains(&r), "no test case for {r}");
    }
}

#[test]
fn portal_allows_many_beneficiaries_and_prestazioni() {
    let mut f = flusso_coop();
    f.beneficiari[0].prestazioni_sociali.push(prestazione_occasionale());
    f.beneficiari.push(beneficiario(1, vec![prestazione_occasionale()]));
    assert_eq!(validate_ps(&f, Canale::Portale), Ok(()));
    let v = validate_ps(&f, Canale::Cooperazione).unwrap_err();
    assert!(has(&v, Rule::CooperazioneUnicoBeneficiario, "beneficiari"));
    assert!(has(&v, Rule::CooperazioneUnicaPrestazione, "beneficiari[0].prestazioni_sociali"));
}

#[test]
fn all_violations_are_reported_at_once() {
    let mut f = flusso_coop();
    f.identificazione_flusso.nome.clear();
    let p = p0(&mut f);
    p.importo_mensile = None;
    p.area_utenza = None;
    p.data_dsu = None;
    p.data_fine_prestazione = Some(d(2026, 1, 1));
    let v = validate_ps(&f, Canale::Cooperazione).unwrap_err();
    for (rule, path) in [
        (Rule::NomeFlussoVuoto, "identificazione_flusso.nome".to_string()),
        (Rule::PeriodicaSenzaImportoMensile, format!("{P}.importo_mensile")),
        (Rule::AreaUtenzaObbligatoria, format!("{P}.area_utenza")),
        (Rule::DsuIncompleta, format!("{P}.data_dsu")),
        (Rule::DataFineAnnoDiverso, format!("{P}.data_fine_prestazione")),
    ] {
        assert!(has(&v, rule, &path), "missing {rule} at {path}: {v:?}");
    }
}

#[test]
fn foreign_address_needs_no_regione_or_comune() {
    let mut f = flusso_coop();
    b0(&mut f).indirizzi = vec![Indirizzo { codice_regione: None, codice_comune: None, codice_nazione: "276".into() }];
    assert_eq!(validate_ps(&f, Canale::Cooperazione), Ok(()));
}

#[test]
fn cancellation_follows_the_same_rules() {
    let mut f = flusso_coop();
    p0(&mut f).tipo_operazione = TipoOperazione::Cancellazione;
    assert_eq!(validate_ps(&f, Canale::Cooperazione), Ok(()));
    p0(&mut f).importo_mensile = None;
    assert!(validate_ps(&f, Canale::Cooperazione).is_err());
}

#[test]
fn quote_utente_zero_is_allowed() {
    let mut f = flusso_coop();
    let p = p0(&mut f);
    p.importo_quota_utente = Some(Importo(0));
    p.importo_quota_ente = Some(Importo(7_425));
    assert_eq!(validate_ps(&f, Canale::Cooperazione), Ok(()));
}

#[test]
fn omocodia_on_place_digits_is_fine() {
    let mut f = flusso_coop();
    let cf = b0(&mut f).codice_fiscale.clone();
    b0(&mut f).codice_fiscale = omocodic(&cf, &[14, 13]);
    assert_eq!(validate_ps(&f, Canale::Cooperazione), Ok(()));
}

#[test]
fn messages_carry_no_personal_data() {
    let mut f = flusso_coop();
    let cf = b0(&mut f).codice_fiscale.clone();
    b0(&mut f).codice_fiscale = omocodic(&cf, &[14, 13, 12, 10, 9]);
    let cf_bad = b0(&mut f).codice_fiscale.clone();
    b0(&mut f).anagrafica.cognome = "ESEMPIOLUNGHISSIMOCOGNOMEOLTRE36CARATTERI".into();
    f.identificazione_flusso.ente.cf_operatore = "PRVPRT75H12H501Q".into();
    let v = validate_ps(&f, Canale::Cooperazione).unwrap_err();
    assert!(v.len() >= 3, "{v:?}");
    for x in &v {
        let text = x.to_string();
        for secret in [cf_bad.as_str(), &cf_bad[..6], "ESEMPIO", "PRVPRT", "ANNA"] {
            assert!(!text.contains(secret), "{text} leaks {secret}");
        }
    }
}

/// The first PS flow of INPS's OpenAPI example, transcribed: it breaks several table rules.
#[test]
fn inps_openapi_example_breaks_the_tables() {
    let mut f = flusso_coop();
    f.identificazione_flusso.nome = "H501.PS.20210520.0000002".into();
    let mut p1 = prestazione_periodica();
    p1.importo_mensile = Some(Importo(10_123));
    p1.importo_quota_ente = Some(Importo(5_254));
    p1.importo_quota_utente = Some(Importo(2_171));
    p1.importo_quota_ssn = Some(Importo(0));
    p1.data_inizio_prestazione = Some(d(2020, 10, 14));
    p1.data_fine_prestazione = Some(d(2020, 11, 13));
    p1.numero_protocollo_dsu = None;
    p1.anno_protocollo_dsu = None;
    p1.data_dsu = None;
    let mut p3 = prestazione_occasionale();
    p3.data_erogazione_prestazione = Some(d(2020, 12, 1));
    f.beneficiari[0].prestazioni_sociali = vec![p1, prestazione_periodica(), p3];
    let v = validate_ps(&f, Canale::Cooperazione).unwrap_err();
    assert!(has(&v, Rule::ImportoNonPositivo, &format!("{P}.importo_quota_ssn")));
    assert!(has(&v, Rule::SommaQuote, &format!("{P}.importo_quota_*")));
    assert!(has(&v, Rule::CooperazioneUnicaPrestazione, "beneficiari[0].prestazioni_sociali"));
}

// ----------------------------------------------------------------------------------------
// SINBA
// ----------------------------------------------------------------------------------------

type SinbaCase = (&'static str, fn(&mut FlussoSinba), Rule, &'static str);

fn s0(f: &mut FlussoSinba) -> &mut Sinba {
    &mut f.sinba[0]
}

fn sinba_cases() -> Vec<SinbaCase> {
    vec![
        ("nome vuoto", |f| f.identificazione_flusso.nome.clear(), Rule::NomeFlussoVuoto, "identificazione_flusso.nome"),
        (
            "tipo PS in flusso SINBA",
            |f| f.identificazione_flusso.nome = "H501.PS.20250520.0000003".into(),
            Rule::NomeFlussoTipo,
            "identificazione_flusso.nome",
        ),
        (
            "esempio INPS 8 cifre",
            |f| f.identificazione_flusso.nome = "H501.SINBA.20210520.00000004".into(),
            Rule::NomeFlussoFormato,
            "identificazione_flusso.nome",
        ),
        ("nessun record", |f| f.sinba.clear(), Rule::Cardinalita, "sinba"),
        ("cooperazione due record", |f| f.sinba.push(sinba(1)), Rule::CooperazioneUnicoBeneficiario, "sinba"),
        (
            "cooperazione due prestazioni (esito INPS)",
            |f| s0(f).prestazioni.push("A2.06".into()),
            Rule::CooperazioneUnicaPrestazione,
            "sinba[0].prestazioni",
        ),
        ("id beneficiario vuoto", |f| s0(f).id_beneficiario.clear(), Rule::Lunghezza, "sinba[0].id_beneficiario"),
        ("id beneficiario > 20", |f| s0(f).id_beneficiario = "X".repeat(21), Rule::Lunghezza, "sinba[0].id_beneficiario"),
        (
            "id beneficiario e' un cf",
            |f| s0(f).id_beneficiario = fake_cf("SMPNNA", 2017, 3, 4, true, "H501"),
            Rule::IdBeneficiarioIdentificante,
            "sinba[0].id_beneficiario",
        ),
        ("nessuna prestazione", |f| s0(f).prestazioni.clear(), Rule::Cardinalita, "sinba[0].prestazioni"),
        ("codice prestazione lungo", |f| s0(f).prestazioni[0] = "A1.02.0000001".into(), Rule::Lunghezza, "sinba[0].prestazioni[0]"),
        ("famiglia vuota", |f| s0(f).famiglia.clear(), Rule::Cardinalita, "sinba[0].famiglia"),
        (
            "cittadinanza padre",
            |f| s0(f).codice_cittadinanza_padre = Some("38A".into()),
            Rule::Formato,
            "sinba[0].codice_cittadinanza_padre",
        ),
        (
            "cittadinanza madre",
            |f| s0(f).codice_cittadinanza_madre = Some("3800".into()),
            Rule::Formato,
            "sinba[0].codice_cittadinanza_madre",
        ),
        (
            "regione padre",
            |f| s0(f).codice_regione_residenza_padre = Some("1".into()),
            Rule::Formato,
            "sinba[0].codice_regione_residenza_padre",
        ),
        (
            "regione madre",
            |f| s0(f).codice_regione_residenza_madre = Some("123".into()),
            Rule::Formato,
            "sinba[0].codice_regione_residenza_madre",
        ),
        ("componenti isee 0", |f| s0(f).numero_componenti_isee = Some(0), Rule::NumeroComponentiIsee, "sinba[0].numero_componenti_isee"),
        ("componenti isee 10", |f| s0(f).numero_componenti_isee = Some(10), Rule::NumeroComponentiIsee, "sinba[0].numero_componenti_isee"),
        ("anno nascita", |f| s0(f).anno_nascita = 17, Rule::Formato, "sinba[0].anno_nascita"),
        ("nazione residenza", |f| s0(f).codice_nazione_residenza = "ITA".into(), Rule::Formato, "sinba[0].codice_nazione_residenza"),
        (
            "italia senza regione",
            |f| s0(f).codice_regione_residenza = None,
            Rule::ResidenzaItaliaIncompleta,
            "sinba[0].codice_regione_residenza",
        ),
        ("regione residenza", |f| s0(f).codice_regione_residenza = Some("1".into()), Rule::Formato, "sinba[0].codice_regione_residenza"),
    ]
}

#[test]
fn every_sinba_rule_fires() {
    let mut failures = Vec::new();
    for (name, mutate, rule, path) in sinba_cases() {
        let mut f = flusso_sinba_coop();
        mutate(&mut f);
        match validate_sinba(&f, Canale::Cooperazione) {
            Ok(()) => failures.push(format!("{name}: no violation")),
            Err(v) if !has(&v, rule, path) => failures.push(format!("{name}: expected {rule} at {path}, got {v:?}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sinba_portal_allows_many_codes_and_records() {
    let mut f = flusso_sinba_coop();
    f.sinba[0].prestazioni.push("A2.06".into());
    f.sinba.push(sinba(1));
    assert_eq!(validate_sinba(&f, Canale::Portale), Ok(()));
}

#[test]
fn sinba_foreign_residence_needs_no_regione() {
    let mut f = flusso_sinba_coop();
    s0(&mut f).codice_nazione_residenza = "218".into();
    s0(&mut f).codice_regione_residenza = None;
    assert_eq!(validate_sinba(&f, Canale::Cooperazione), Ok(()));
}

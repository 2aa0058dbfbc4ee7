//! Fake but well-formed test data shared by the integration tests: codici fiscali with a
//! correct check character, invented names, Roma Capitale ente codes.

#![allow(dead_code)]

use siuss::cf::carattere_controllo;
use siuss::model::*;

pub const MONTHS: &[u8] = b"ABCDEHLMPRST";

/// Builds a codice fiscale from invented parts and appends the right check character.
pub fn fake_cf(letters6: &str, year: u16, month: u8, day: u8, female: bool, belfiore: &str) -> String {
    let m = char::from(MONTHS[usize::from(month - 1)]);
    let d = if female { day + 40 } else { day };
    let first15 = format!("{letters6}{:02}{m}{d:02}{belfiore}", year % 100);
    let check = carattere_controllo(&first15).expect("15 alphanumerics");
    format!("{first15}{check}")
}

/// Same as [`fake_cf`], then replaces digits by omocodia letters at the given positions and
/// recomputes the check character.
pub fn omocodic(cf: &str, positions: &[usize]) -> String {
    const L: &[u8] = b"LMNPQRSTUV";
    let mut b: Vec<u8> = cf.as_bytes()[..15].to_vec();
    for &p in positions {
        b[p] = L[usize::from(b[p] - b'0')];
    }
    let first15 = String::from_utf8(b).expect("ascii");
    let check = carattere_controllo(&first15).expect("15 alphanumerics");
    format!("{first15}{check}")
}

pub fn d(y: u16, m: u8, g: u8) -> Data {
    Data::new(y, m, g).expect("valid test date")
}

pub fn ente() -> Ente {
    Ente {
        codice: "H501".into(),
        denominazione: Some("Roma Capitale - Dipartimento Politiche Sociali".into()),
        indirizzo: "H501".into(),
        cf_operatore: fake_cf("PRVPRT", 1975, 6, 12, false, "H501"),
    }
}

pub fn identificazione(nome: &str) -> IdentificazioneFlusso {
    IdentificazioneFlusso { nome: nome.into(), ente: ente() }
}

const COGNOMI: &[&str] = &["ESEMPIO", "PROVA", "FITTIZIO", "DEMO", "CAMPIONE", "TEST D'ARCO"];
const NOMI: &[&str] = &["ANNA", "LUCA", "MARTA", "PAOLO", "GIULIA", "NICOLÒ"];

pub fn anagrafica(i: usize) -> (String, Anagrafica) {
    let female = i.is_multiple_of(2);
    let year = 1930 + (i % 70) as u16;
    let month = (i % 12) as u8 + 1;
    let day = (i % 28) as u8 + 1;
    let letters = ["SMPNNA", "PRVLCU", "FTTMRT", "DMEPLA", "CMPGLI", "TSTNCL"][i % 6];
    let cf = fake_cf(letters, year, month, day, female, "H501");
    let a = Anagrafica {
        cognome: COGNOMI[i % COGNOMI.len()].into(),
        nome: NOMI[i % NOMI.len()].into(),
        anno_nascita: year,
        luogo_nascita: "H501".into(),
        genere: if female { Genere::Femmina } else { Genere::Maschio },
        codice_cittadinanza: "380".into(),
        codice_seconda_cittadinanza: None,
    };
    (cf, a)
}

pub fn indirizzo_roma() -> Indirizzo {
    Indirizzo { codice_regione: Some("12".into()), codice_comune: Some("058091".into()), codice_nazione: "380".into() }
}

pub fn prestazione_periodica() -> PrestazioneSociale {
    PrestazioneSociale {
        tipo_operazione: TipoOperazione::Inserimento,
        presenza_prova_mezzi: PresenzaProvaMezzi::Isee,
        carattere_prestazione: Some(CaratterePrestazione::Periodica),
        numero_protocollo_dsu: Some("INPS-ISEE-2025-FAKE0001".into()),
        anno_protocollo_dsu: Some(2025),
        data_dsu: Some(d(2025, 1, 15)),
        codice_prestazione: "A2.16".into(),
        denominazione_prestazione: "Interventi di supporto per reperimento alloggi".into(),
        protocollo_domanda: "RC/2025/000123".into(),
        data_evento: Some(d(2025, 2, 1)),
        data_inizio_prestazione: Some(d(2025, 3, 1)),
        data_fine_prestazione: Some(d(2025, 12, 31)),
        data_erogazione_prestazione: None,
        importo_prestazione: None,
        periodo_erogazione: Some(10),
        importo_mensile: Some(Importo(10_123)),
        importo_quota_ente: Some(Importo(5_254)),
        importo_quota_utente: Some(Importo(2_171)),
        importo_quota_ssn: Some(Importo(2_698)),
        importo_quota_richiesta: Some(Importo(15_164)),
        importo_soglia_isee: Some(Importo(1_700_000)),
        ore_servizio_mensile: Some(OreServizio::new(2, 59)),
        presa_carico: SiNo::Si,
        area_utenza: Some(AreaUtenza::DisabilitaNonAutosufficienza),
        sina: Some(sina()),
    }
}

pub fn prestazione_occasionale() -> PrestazioneSociale {
    PrestazioneSociale {
        tipo_operazione: TipoOperazione::Inserimento,
        presenza_prova_mezzi: PresenzaProvaMezzi::Nessuna,
        carattere_prestazione: Some(CaratterePrestazione::Occasionale),
        numero_protocollo_dsu: None,
        anno_protocollo_dsu: None,
        data_dsu: None,
        codice_prestazione: "A1.09".into(),
        denominazione_prestazione: "Telesoccorso e teleassistenza".into(),
        protocollo_domanda: "RC/2025/000456".into(),
        data_evento: None,
        data_inizio_prestazione: None,
        data_fine_prestazione: None,
        data_erogazione_prestazione: Some(d(2025, 12, 1)),
        importo_prestazione: Some(Importo(126_523)),
        periodo_erogazione: None,
        importo_mensile: None,
        importo_quota_ente: Some(Importo(96_769)),
        importo_quota_utente: Some(Importo(15_556)),
        importo_quota_ssn: Some(Importo(14_198)),
        importo_quota_richiesta: None,
        importo_soglia_isee: None,
        ore_servizio_mensile: None,
        presa_carico: SiNo::No,
        area_utenza: None,
        sina: None,
    }
}

pub fn sina() -> Sina {
    Sina {
        mobilita: Mobilita::SiSpostaAssistito,
        attivita_vita_quotidiana: AttivitaVitaQuotidiana::ParzialmenteDipendente,
        disturbi_area_cognitiva: Some(DisturbiAreaCognitiva::Lievi),
        disturbi_comportamentali: DisturbiComportamentali::Assenti,
        necessita_cure_sanitarie: Some(NecessitaCureSanitarie::Media),
        area_reddituale: AreaReddituale::AiutoDaParenti,
        area_supporto: AreaSupporto::RetePresenzaParziale,
        fonte_derivazione_valutazione: FonteDerivazioneValutazione::Uvm,
        strumento_valutazione: StrumentoValutazione::Svama,
        fonte_derivazione_invalidita: Some(FonteDerivazioneInvalidita::CertificazioneVerificata),
        necessita_interventi_sociali: vec!["A2.17".into(), "A2.18".into()],
        invalidita_civile: vec![InvCiv::Parziale75, InvCiv::L104Art3Comma3],
    }
}

pub fn beneficiario(i: usize, prestazioni: Vec<PrestazioneSociale>) -> Beneficiario {
    let (cf, anagrafica) = anagrafica(i);
    Beneficiario { codice_fiscale: cf, anagrafica, indirizzi: vec![indirizzo_roma()], prestazioni_sociali: prestazioni }
}

/// A valid cooperation flow: one beneficiary, one periodic prestazione with SINA.
pub fn flusso_coop() -> FlussoPs {
    FlussoPs {
        identificazione_flusso: identificazione("H501.PS.20250520.0000002"),
        beneficiari: vec![beneficiario(0, vec![prestazione_periodica()])],
    }
}

pub fn sinba(i: usize) -> Sinba {
    Sinba {
        id_beneficiario: format!("RC-MIN-{i:08}"),
        prestazioni: vec!["A1.02".into()],
        famiglia: vec![ComposizioneFamiglia::Madre, ComposizioneFamiglia::FratelliSorelle],
        minore_straniero_no_acc: SiNo::No,
        condizione_minore: CondizioneMinore::NonOrfano,
        luogo_vita: LuogoVita::PropriaFamiglia,
        scuola_frequentata: ScuolaFrequentata::Primaria,
        condizione_lavoro: CondizioneLavoro::Inattivo,
        disabilita: SiNo::No,
        tipo_disabilita: None,
        inv_civ_certificazioni: None,
        codice_cittadinanza_padre: Some("380".into()),
        codice_cittadinanza_madre: Some("380".into()),
        codice_regione_residenza_padre: Some("12".into()),
        codice_regione_residenza_madre: Some("12".into()),
        titolo_studio_padre: Some(TitoloStudio::Diploma),
        titolo_studio_madre: Some(TitoloStudio::Laurea),
        occupazione_padre: Some(Occupazione::Occupato),
        occupazione_madre: Some(Occupazione::Disoccupato),
        data_prima_segnalazione: MeseAnno::new(1, 2024).expect("valid"),
        fonte_segnalazione: FonteSegnalazione::Scuola,
        valutazione_minore: ValutazioneMinore::ProblemiRelazionaliComportamentali,
        valutazione_famiglia_minore: ValutazioneFamigliaMinore::DifficoltaEconomiche,
        segnalazione_autorita_giudiziaria: SiNo::Si,
        data_segnalazione: Some(MeseAnno::new(6, 2024).expect("valid")),
        provvedimento_giudiziario: SiNo::Si,
        data_provvedimento_giudiziario: Some(MeseAnno::new(9, 2024).expect("valid")),
        autorita_provvedimento: Some(AutoritaProvvedimento::TribunaleMinori),
        potesta_tutela: Some(PotestaTutela::PrescrizioniGenitori),
        tipo_provvedimento_giudiziario: Some(TipoProvvedimentoGiudiziario::AffidoServizioSociale),
        forma_intervento_affido: Some(FormaIntervento::Giudiziario),
        tipo_intervento_affido: Some(TipoInterventoAffido::Eterofamiliare),
        durata_affido: Some(DurataAffido::TempoPieno),
        carattere_affido: Some(CarattereAffido::Residenziale),
        esito_affido: None,
        carattere_inserimento_residenziale: Some(CarattereInserimentoResidenziale::ComunitarioSocioEducativa),
        forma_inserimento_residenziale: Some(FormaIntervento::Consensuale),
        tipo_inserimento_residenziale: Some(TipoInserimentoResidenziale::SenzaGenitore),
        esito_inserimento_struttura: None,
        motivazione_chiusura_carico: None,
        situazione_chiusura_carico: None,
        collaborazioni_interventi: Some(CollaborazioniInterventi::Npi),
        numero_componenti_isee: Some(4),
        fascia_eta_beneficiario: FasciaEtaBeneficiario::Da6a9,
        fascia_isee_beneficiario: Some(FasciaIseeBeneficiario::Fino6000),
        anno_nascita: 2017,
        codice_regione_residenza: Some("12".into()),
        codice_nazione_residenza: "380".into(),
    }
}

pub fn flusso_sinba_coop() -> FlussoSinba {
    FlussoSinba { identificazione_flusso: identificazione("H501.SINBA.20250520.0000003"), sinba: vec![sinba(0)] }
}

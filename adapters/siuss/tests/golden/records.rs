//! Records whose XML is pinned byte for byte in `tests/golden/`: every optional attribute
//! present or absent, texts that need escaping, amounts and dates at their edges.

use super::common::*;
use siuss::model::*;

pub fn beneficiari() -> Vec<Beneficiario> {
    let mut tutto = prestazione_periodica();
    tutto.tipo_operazione = TipoOperazione::Cancellazione;
    tutto.denominazione_prestazione = "Assistenza <domiciliare> & \"integrata\" dell'ente".into();
    tutto.numero_protocollo_dsu = Some("A&B<C>'D\"".into());
    tutto.anno_protocollo_dsu = Some(1999);
    tutto.data_evento = Some(d(1000, 1, 1));
    tutto.importo_quota_richiesta = Some(Importo(5));
    tutto.importo_soglia_isee = Some(Importo(0));
    tutto.ore_servizio_mensile = Some(OreServizio::new(0, 5));
    tutto.periodo_erogazione = Some(1);
    let mut occasionale = prestazione_occasionale();
    occasionale.importo_prestazione = Some(Importo(900_000_000_001));
    occasionale.importo_quota_ente = Some(Importo(900_000_000_000));
    occasionale.importo_quota_utente = Some(Importo(1));
    occasionale.importo_quota_ssn = None;
    occasionale.area_utenza = Some(AreaUtenza::PovertaEsclusioneSociale);
    let mut senza_liste = prestazione_periodica();
    if let Some(s) = senza_liste.sina.as_mut() {
        s.necessita_interventi_sociali.clear();
        s.invalidita_civile.clear();
        s.disturbi_area_cognitiva = None;
        s.necessita_cure_sanitarie = None;
        s.fonte_derivazione_invalidita = None;
    }
    let mut b0 = beneficiario(5, vec![tutto, occasionale, senza_liste]);
    b0.anagrafica.codice_seconda_cittadinanza = Some("100".into());
    b0.indirizzi.push(Indirizzo { codice_regione: None, codice_comune: None, codice_nazione: "100".into() });
    let b1 = beneficiario(4, vec![prestazione_occasionale()]);
    vec![b0, b1]
}

pub fn sinba() -> Vec<Sinba> {
    let mut s0 = super::common::sinba(0);
    s0.prestazioni.push("A2.17&'".into());
    s0.famiglia.push(ComposizioneFamiglia::AltriConviventi);
    s0.esito_affido = Some(EsitoAffido::Altro);
    s0.esito_inserimento_struttura = Some(EsitoInserimentoStruttura::Autonomo);
    s0.motivazione_chiusura_carico = Some(MotivazioneChiusuraCarico::Maggiorenne);
    s0.situazione_chiusura_carico = Some(SituazioneChiusuraCarico::Autonomia);
    s0.tipo_disabilita = Some(TipoDisabilita::Plurima);
    s0.inv_civ_certificazioni = Some(InvCivCertificazioni::L104);
    s0.data_segnalazione = Some(MeseAnno::new(12, 2099).expect("valid"));
    let mut s1 = super::common::sinba(1);
    s1.id_beneficiario = "ID<1>&'\"".into();
    s1.codice_cittadinanza_padre = None;
    s1.codice_cittadinanza_madre = None;
    s1.codice_regione_residenza_padre = None;
    s1.codice_regione_residenza_madre = None;
    s1.titolo_studio_padre = None;
    s1.titolo_studio_madre = None;
    s1.occupazione_padre = None;
    s1.occupazione_madre = None;
    s1.data_segnalazione = None;
    s1.data_provvedimento_giudiziario = None;
    s1.numero_componenti_isee = None;
    s1.fascia_isee_beneficiario = None;
    s1.codice_regione_residenza = None;
    s1.codice_nazione_residenza = "100".into();
    s1.data_prima_segnalazione = MeseAnno::new(1, 1900).expect("valid");
    s1.anno_nascita = 2008;
    vec![s0, s1]
}

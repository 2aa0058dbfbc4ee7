//! Streaming XML writers for the PS/PSA/SINA and SINBA flows.
//!
//! Every record is validated with [`crate::rules`] before a single byte of it is written, so
//! a document produced here is schema-valid and meets the spec tables; an invalid record is
//! returned to the caller with its violations and the document stays well-formed, so a
//! portal batch can skip it and go on. Memory use does not depend on the number of records:
//! the writers hold only the output sink (wrap files in a `BufWriter`).
//!
//! - [`write_flusso_ps`] / [`write_flusso_sinba`]: a whole in-memory flow, e.g. the
//!   single-beneficiary, single-prestazione flow served by `GET /flussi`.
//! - [`FlussoWriter`] (aliases [`FlussoPsWriter`], [`FlussoSinbaWriter`]): `begin`, one record
//!   at a time, `finish`.

use std::fmt::Display;
use std::io::Write;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::model::*;
use crate::rules::{
    self, Canale, Indice, Schema, Violation, validate_beneficiario, validate_beneficiario_at,
    validate_identificazione, validate_sinba_at, validate_sinba_record,
};
use crate::validato::Validato;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("errore di scrittura: {0}")]
    Io(#[from] std::io::Error),
    #[error("dati non conformi alle regole SIUSS ({} violazioni)", .0.len())]
    Invalid(Vec<Violation>),
    #[error("un flusso deve contenere almeno un beneficiario")]
    Vuoto,
}

impl WriteError {
    /// The violations, when the error is a validation failure.
    pub fn violations(&self) -> &[Violation] {
        match self {
            WriteError::Invalid(v) => v,
            _ => &[],
        }
    }
}

fn attr(el: &mut BytesStart<'_>, name: &str, value: &str) {
    el.push_attribute((name, value));
}

fn attr_d(el: &mut BytesStart<'_>, name: &str, value: impl Display) {
    el.push_attribute((name, value.to_string().as_str()));
}

fn attr_opt<T: Display>(el: &mut BytesStart<'_>, name: &str, value: Option<T>) {
    if let Some(v) = value {
        attr_d(el, name, v);
    }
}

/// The document being written (internal to the writers; public only because
/// [`VoceFlusso`] names it).
#[doc(hidden)]
pub struct Doc<W: Write> {
    xml: Writer<W>,
}

impl<W: Write> std::fmt::Debug for Doc<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doc").finish_non_exhaustive()
    }
}

impl<W: Write> Doc<W> {
    fn open(w: W, id: &IdentificazioneFlusso) -> Result<Self, WriteError> {
        // Newlines without indentation: readable in a pager, no padding bytes in large files.
        let mut xml = Writer::new_with_indent(w, b' ', 0);
        xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let mut root = BytesStart::new("Flusso");
        attr(&mut root, "xmlns", NAMESPACE);
        xml.write_event(Event::Start(root))?;

        let mut idf = BytesStart::new("IdentificazioneFlusso");
        attr(&mut idf, "Nome", &id.nome);
        xml.write_event(Event::Start(idf))?;
        let e = &id.ente;
        let mut ente = BytesStart::new("Ente");
        attr(&mut ente, "Codice", &e.codice);
        attr_opt(&mut ente, "Denominazione", e.denominazione.as_deref());
        attr(&mut ente, "Indirizzo", &e.indirizzo);
        attr(&mut ente, "CFOperatore", &e.cf_operatore);
        xml.write_event(Event::Empty(ente))?;
        xml.write_event(Event::End(BytesEnd::new("IdentificazioneFlusso")))?;
        Ok(Self { xml })
    }

    fn close(mut self) -> Result<W, WriteError> {
        self.xml.write_event(Event::End(BytesEnd::new("Flusso")))?;
        let mut w = self.xml.into_inner();
        w.flush()?;
        Ok(w)
    }

    fn text_element(&mut self, name: &str, text: &str) -> Result<(), WriteError> {
        self.xml.write_event(Event::Start(BytesStart::new(name)))?;
        self.xml.write_event(Event::Text(BytesText::new(text)))?;
        self.xml.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(())
    }

    fn beneficiario(&mut self, b: &Beneficiario) -> Result<(), WriteError> {
        let mut el = BytesStart::new("Beneficiario");
        attr(&mut el, "CodiceFiscale", &b.codice_fiscale);
        self.xml.write_event(Event::Start(el))?;

        let a = &b.anagrafica;
        let mut an = BytesStart::new("Anagrafica");
        attr(&mut an, "Cognome", &a.cognome);
        attr(&mut an, "Nome", &a.nome);
        attr_d(
            &mut an,
            "AnnoNascita",
            format_args!("{:04}", a.anno_nascita),
        );
        attr(&mut an, "LuogoNascita", &a.luogo_nascita);
        attr(&mut an, "Genere", a.genere.codice());
        attr(&mut an, "CodiceCittadinanza", &a.codice_cittadinanza);
        attr_opt(
            &mut an,
            "CodiceSecondaCittadinanza",
            a.codice_seconda_cittadinanza.as_deref(),
        );
        self.xml.write_event(Event::Empty(an))?;

        for ind in &b.indirizzi {
            let mut el = BytesStart::new("Indirizzo");
            attr_opt(&mut el, "CodiceRegione", ind.codice_regione.as_deref());
            attr_opt(&mut el, "CodiceComune", ind.codice_comune.as_deref());
            attr(&mut el, "CodiceNazione", &ind.codice_nazione);
            self.xml.write_event(Event::Empty(el))?;
        }
        for ps in &b.prestazioni_sociali {
            self.prestazione(ps)?;
        }
        self.xml
            .write_event(Event::End(BytesEnd::new("Beneficiario")))?;
        Ok(())
    }

    fn prestazione(&mut self, ps: &PrestazioneSociale) -> Result<(), WriteError> {
        let mut el = BytesStart::new("PrestazioniSociali");
        attr(&mut el, "TipoOperazione", ps.tipo_operazione.codice());
        attr(
            &mut el,
            "PresenzaProvaMezzi",
            ps.presenza_prova_mezzi.codice(),
        );
        attr_opt(&mut el, "CaratterePrestazione", ps.carattere_prestazione);
        attr_opt(
            &mut el,
            "NumeroProtocolloDSU",
            ps.numero_protocollo_dsu.as_deref(),
        );
        attr_opt(
            &mut el,
            "AnnoProtocolloDSU",
            ps.anno_protocollo_dsu.map(|a| format!("{a:04}")),
        );
        attr_opt(&mut el, "DataDSU", ps.data_dsu);
        attr(&mut el, "CodicePrestazione", &ps.codice_prestazione);
        attr(
            &mut el,
            "DenominazionePrestazione",
            &ps.denominazione_prestazione,
        );
        attr(&mut el, "ProtocolloDomanda", &ps.protocollo_domanda);
        attr_opt(&mut el, "DataEvento", ps.data_evento);
        attr_opt(&mut el, "DataInizioPrestazione", ps.data_inizio_prestazione);
        attr_opt(&mut el, "DataFinePrestazione", ps.data_fine_prestazione);
        attr_opt(
            &mut el,
            "DataErogazionePrestazione",
            ps.data_erogazione_prestazione,
        );
        attr_opt(&mut el, "ImportoPrestazione", ps.importo_prestazione);
        attr_opt(&mut el, "PeriodoErogazione", ps.periodo_erogazione);
        attr_opt(&mut el, "ImportoMensile", ps.importo_mensile);
        attr_opt(&mut el, "ImportoQuotaEnte", ps.importo_quota_ente);
        attr_opt(&mut el, "ImportoQuotaUtente", ps.importo_quota_utente);
        attr_opt(&mut el, "ImportoQuotaSSN", ps.importo_quota_ssn);
        attr_opt(&mut el, "ImportoQuotaRichiesta", ps.importo_quota_richiesta);
        attr_opt(&mut el, "ImportoSogliaISEE", ps.importo_soglia_isee);
        attr_opt(&mut el, "OreServizioMensile", ps.ore_servizio_mensile);
        attr(&mut el, "PresaCarico", ps.presa_carico.codice());
        attr_opt(&mut el, "AreaUtenza", ps.area_utenza);

        match &ps.sina {
            None => self.xml.write_event(Event::Empty(el))?,
            Some(s) => {
                self.xml.write_event(Event::Start(el))?;
                self.sina(s)?;
                self.xml
                    .write_event(Event::End(BytesEnd::new("PrestazioniSociali")))?;
            }
        }
        Ok(())
    }

    fn sina(&mut self, s: &Sina) -> Result<(), WriteError> {
        let mut el = BytesStart::new("SINA");
        attr(&mut el, "Mobilita", s.mobilita.codice());
        attr(
            &mut el,
            "AttivitaVitaQuotidiana",
            s.attivita_vita_quotidiana.codice(),
        );
        attr_opt(&mut el, "DisturbiAreaCognitiva", s.disturbi_area_cognitiva);
        attr(
            &mut el,
            "DisturbiComportamentali",
            s.disturbi_comportamentali.codice(),
        );
        attr_opt(
            &mut el,
            "NecessitaCureSanitarie",
            s.necessita_cure_sanitarie,
        );
        attr(&mut el, "AreaReddituale", s.area_reddituale.codice());
        attr(&mut el, "AreaSupporto", s.area_supporto.codice());
        attr(
            &mut el,
            "FonteDerivazioneValutazione",
            s.fonte_derivazione_valutazione.codice(),
        );
        attr(
            &mut el,
            "StrumentoValutazione",
            s.strumento_valutazione.codice(),
        );
        attr_opt(
            &mut el,
            "FonteDerivazioneInvalidita",
            s.fonte_derivazione_invalidita,
        );

        if s.necessita_interventi_sociali.is_empty() && s.invalidita_civile.is_empty() {
            self.xml.write_event(Event::Empty(el))?;
            return Ok(());
        }
        self.xml.write_event(Event::Start(el))?;
        if !s.necessita_interventi_sociali.is_empty() {
            self.xml
                .write_event(Event::Start(BytesStart::new("NecessitaInterventiSociali")))?;
            for c in &s.necessita_interventi_sociali {
                self.text_element("CodicePrestazione", c)?;
            }
            self.xml
                .write_event(Event::End(BytesEnd::new("NecessitaInterventiSociali")))?;
        }
        if !s.invalidita_civile.is_empty() {
            self.xml
                .write_event(Event::Start(BytesStart::new("InvaliditaCivile")))?;
            for c in &s.invalidita_civile {
                self.text_element("InvCiv", c.codice())?;
            }
            self.xml
                .write_event(Event::End(BytesEnd::new("InvaliditaCivile")))?;
        }
        self.xml.write_event(Event::End(BytesEnd::new("SINA")))?;
        Ok(())
    }

    fn sinba(&mut self, s: &Sinba) -> Result<(), WriteError> {
        let mut el = BytesStart::new("SINBA");
        attr(&mut el, "IDBeneficiario", &s.id_beneficiario);
        attr(
            &mut el,
            "MinoreStranieroNoAcc",
            s.minore_straniero_no_acc.codice(),
        );
        attr(&mut el, "CondizioneMinore", s.condizione_minore.codice());
        attr(&mut el, "LuogoVita", s.luogo_vita.codice());
        attr(&mut el, "ScuolaFrequentata", s.scuola_frequentata.codice());
        attr(&mut el, "CondizioneLavoro", s.condizione_lavoro.codice());
        attr(&mut el, "Disabilita", s.disabilita.codice());
        attr_opt(&mut el, "TipoDisabilita", s.tipo_disabilita);
        attr_opt(&mut el, "InvCivCertificazioni", s.inv_civ_certificazioni);
        attr_opt(
            &mut el,
            "CodiceCittadinanzaPadre",
            s.codice_cittadinanza_padre.as_deref(),
        );
        attr_opt(
            &mut el,
            "CodiceCittadinanzaMadre",
            s.codice_cittadinanza_madre.as_deref(),
        );
        attr_opt(
            &mut el,
            "CodiceRegioneResidenzaPadre",
            s.codice_regione_residenza_padre.as_deref(),
        );
        attr_opt(
            &mut el,
            "CodiceRegioneResidenzaMadre",
            s.codice_regione_residenza_madre.as_deref(),
        );
        attr_opt(&mut el, "TitoloStudioPadre", s.titolo_studio_padre);
        attr_opt(&mut el, "TitoloStudioMadre", s.titolo_studio_madre);
        attr_opt(&mut el, "OccupazionePadre", s.occupazione_padre);
        attr_opt(&mut el, "OccupazioneMadre", s.occupazione_madre);
        attr_d(&mut el, "DataPrimaSegnalazione", s.data_prima_segnalazione);
        attr(&mut el, "FonteSegnalazione", s.fonte_segnalazione.codice());
        attr(&mut el, "ValutazioneMinore", s.valutazione_minore.codice());
        attr(
            &mut el,
            "ValutazioneFamigliaMinore",
            s.valutazione_famiglia_minore.codice(),
        );
        attr(
            &mut el,
            "SegnalazioneAutoritaGiudiziaria",
            s.segnalazione_autorita_giudiziaria.codice(),
        );
        attr_opt(&mut el, "DataSegnalazione", s.data_segnalazione);
        attr(
            &mut el,
            "ProvvedimentoGiudiziario",
            s.provvedimento_giudiziario.codice(),
        );
        attr_opt(
            &mut el,
            "DataProvvedimentoGiudiziario",
            s.data_provvedimento_giudiziario,
        );
        attr_opt(&mut el, "AutoritaProvvedimento", s.autorita_provvedimento);
        attr_opt(&mut el, "PotestaTutela", s.potesta_tutela);
        attr_opt(
            &mut el,
            "TipoProvvedimentoGiudiziario",
            s.tipo_provvedimento_giudiziario,
        );
        attr_opt(&mut el, "FormaInterventoAffido", s.forma_intervento_affido);
        attr_opt(&mut el, "TipoInterventoAffido", s.tipo_intervento_affido);
        attr_opt(&mut el, "DurataAffido", s.durata_affido);
        attr_opt(&mut el, "CarattereAffido", s.carattere_affido);
        attr_opt(&mut el, "EsitoAffido", s.esito_affido);
        attr_opt(
            &mut el,
            "CarattereInserimentoResidenziale",
            s.carattere_inserimento_residenziale,
        );
        attr_opt(
            &mut el,
            "FormaInserimentoResidenziale",
            s.forma_inserimento_residenziale,
        );
        attr_opt(
            &mut el,
            "TipoInserimentoResidenziale",
            s.tipo_inserimento_residenziale,
        );
        attr_opt(
            &mut el,
            "EsitoInserimentoStruttura",
            s.esito_inserimento_struttura,
        );
        attr_opt(
            &mut el,
            "MotivazioneChiusuraCarico",
            s.motivazione_chiusura_carico,
        );
        attr_opt(
            &mut el,
            "SituazioneChiusuraCarico",
            s.situazione_chiusura_carico,
        );
        attr_opt(
            &mut el,
            "CollaborazioniInterventi",
            s.collaborazioni_interventi,
        );
        attr_opt(&mut el, "NumeroComponentiISEE", s.numero_componenti_isee);
        attr(
            &mut el,
            "FasciaEtaBeneficiario",
            s.fascia_eta_beneficiario.codice(),
        );
        attr_opt(
            &mut el,
            "FasciaISEEBeneficiario",
            s.fascia_isee_beneficiario,
        );
        attr_d(
            &mut el,
            "AnnoNascita",
            format_args!("{:04}", s.anno_nascita),
        );
        attr_opt(
            &mut el,
            "CodiceRegioneResidenza",
            s.codice_regione_residenza.as_deref(),
        );
        attr(
            &mut el,
            "CodiceNazioneResidenza",
            &s.codice_nazione_residenza,
        );
        self.xml.write_event(Event::Start(el))?;

        self.xml
            .write_event(Event::Start(BytesStart::new("Prestazioni")))?;
        for c in &s.prestazioni {
            self.text_element("CodicePrestazione", c)?;
        }
        self.xml
            .write_event(Event::End(BytesEnd::new("Prestazioni")))?;
        self.xml
            .write_event(Event::Start(BytesStart::new("Famiglia")))?;
        for c in &s.famiglia {
            self.text_element("ComposizioneFamiglia", c.codice())?;
        }
        self.xml
            .write_event(Event::End(BytesEnd::new("Famiglia")))?;
        self.xml.write_event(Event::End(BytesEnd::new("SINBA")))?;
        Ok(())
    }
}

/// Validates and writes a whole PS/PSA/SINA flow; returns the sink.
pub fn write_flusso_ps<W: Write>(w: W, flusso: &FlussoPs, canale: Canale) -> Result<W, WriteError> {
    rules::validate_ps(flusso, canale).map_err(WriteError::Invalid)?;
    let mut doc = Doc::open(w, &flusso.identificazione_flusso)?;
    for b in &flusso.beneficiari {
        doc.beneficiario(b)?;
    }
    doc.close()
}

/// Validates and writes a whole SINBA flow; returns the sink.
pub fn write_flusso_sinba<W: Write>(
    w: W,
    flusso: &FlussoSinba,
    canale: Canale,
) -> Result<W, WriteError> {
    rules::validate_sinba(flusso, canale).map_err(WriteError::Invalid)?;
    let mut doc = Doc::open(w, &flusso.identificazione_flusso)?;
    for s in &flusso.sinba {
        doc.sinba(s)?;
    }
    doc.close()
}

/// A record a portal batch is made of: a PS/PSA/SINA [`Beneficiario`] or a [`Sinba`] record.
/// Ties each record type to its schema, its validation and its XML, so one writer serves
/// both flows.
pub trait VoceFlusso: crate::sealed::Sealed {
    /// The schema whose header rules apply.
    const SCHEMA: Schema;
    /// Name of the record list in violation paths (`beneficiari[3]…`).
    const LISTA: &'static str;
    /// Every rule the record breaks, with paths under `path`.
    fn validate(&self, path: &str) -> Result<(), Vec<Violation>>;
    /// Number of prestazioni the record carries.
    fn prestazioni(&self) -> usize;
    /// [`validate`](Self::validate) with a path formatted only if a violation is found.
    #[doc(hidden)]
    fn validate_at(&self, path: &dyn Display) -> Result<(), Vec<Violation>>;
    #[doc(hidden)]
    fn write_to<W: Write>(&self, doc: &mut Doc<W>) -> Result<(), WriteError>;
}

impl VoceFlusso for Beneficiario {
    const SCHEMA: Schema = Schema::PsPsaSina;
    const LISTA: &'static str = "beneficiari";
    fn validate(&self, path: &str) -> Result<(), Vec<Violation>> {
        validate_beneficiario(self, path)
    }
    fn validate_at(&self, path: &dyn Display) -> Result<(), Vec<Violation>> {
        validate_beneficiario_at(self, path)
    }
    fn prestazioni(&self) -> usize {
        self.prestazioni_sociali.len()
    }
    fn write_to<W: Write>(&self, doc: &mut Doc<W>) -> Result<(), WriteError> {
        doc.beneficiario(self)
    }
}

impl VoceFlusso for Sinba {
    const SCHEMA: Schema = Schema::Sinba;
    const LISTA: &'static str = "sinba";
    fn validate(&self, path: &str) -> Result<(), Vec<Violation>> {
        validate_sinba_record(self, path)
    }
    fn validate_at(&self, path: &dyn Display) -> Result<(), Vec<Violation>> {
        validate_sinba_at(self, path)
    }
    fn prestazioni(&self) -> usize {
        self.prestazioni.len()
    }
    fn write_to<W: Write>(&self, doc: &mut Doc<W>) -> Result<(), WriteError> {
        doc.sinba(self)
    }
}

/// Writes a portal batch one record at a time: `begin`, [`write`](Self::write) (or
/// [`write_validato`](Self::write_validato)) per record, `finish`.
///
/// Violation paths use the position of the record among all calls to `write` and
/// `write_validato`, rejected ones included, so they match the caller's input order.
pub struct FlussoWriter<W: Write, V: VoceFlusso> {
    doc: Doc<W>,
    offerti: u64,
    scritti: u64,
    voce: std::marker::PhantomData<fn(&V)>,
}

/// PS/PSA/SINA portal batch writer.
pub type FlussoPsWriter<W> = FlussoWriter<W, Beneficiario>;
/// SINBA portal batch writer.
pub type FlussoSinbaWriter<W> = FlussoWriter<W, Sinba>;

impl<W: Write, V: VoceFlusso> std::fmt::Debug for FlussoWriter<W, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlussoWriter")
            .field("schema", &V::SCHEMA)
            .field("offerti", &self.offerti)
            .field("scritti", &self.scritti)
            .finish_non_exhaustive()
    }
}

impl<W: Write, V: VoceFlusso> FlussoWriter<W, V> {
    /// Validates the header and writes it.
    pub fn begin(w: W, id: &IdentificazioneFlusso) -> Result<Self, WriteError> {
        validate_identificazione(id, V::SCHEMA).map_err(WriteError::Invalid)?;
        Ok(Self {
            doc: Doc::open(w, id)?,
            offerti: 0,
            scritti: 0,
            voce: std::marker::PhantomData,
        })
    }

    /// Writes one record, or returns its violations and writes nothing.
    pub fn write(&mut self, v: &V) -> Result<(), WriteError> {
        let path = Indice(V::LISTA, self.offerti);
        self.offerti += 1;
        v.validate_at(&path).map_err(WriteError::Invalid)?;
        v.write_to(&mut self.doc)?;
        self.scritti += 1;
        Ok(())
    }

    /// Writes one record already checked by the rules, without checking it again; counts
    /// as a call to [`write`](Self::write) for the positions in violation paths. Fails only
    /// on I/O errors.
    pub fn write_validato(&mut self, v: &Validato<V>) -> Result<(), WriteError> {
        self.offerti += 1;
        v.get().write_to(&mut self.doc)?;
        self.scritti += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn scritti(&self) -> u64 {
        self.scritti
    }

    /// Closes the document. Fails with [`WriteError::Vuoto`] if nothing was written, since
    /// both XSDs require at least one record; the partial output must then be dropped.
    pub fn finish(self) -> Result<W, WriteError> {
        if self.scritti == 0 {
            return Err(WriteError::Vuoto);
        }
        self.doc.close()
    }
}

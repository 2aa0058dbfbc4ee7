//! Streaming XML writers for the PS/PSA/SINA and SINBA flows.
//!
//! Every record is validated with [`crate::rules`] before a single byte of it is written, so
//! a document produced here is schema-valid and meets the spec tables; an invalid record is
//! returned to the caller with its violations and the document stays well-formed, so a
//! portal batch can skip it and go on. Memory use does not depend on the number of records:
//! the writers hold only the output sink (wrap files in a `BufWriter`) and one reused buffer
//! for the start tag being built.
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
use crate::num::{push_pad, push_u64};
use crate::rules::{
    self, Canale, Indice, Schema, Violation, validate_beneficiario, validate_beneficiario_at, validate_identificazione, validate_sinba_at,
    validate_sinba_record,
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

/// Bit `b` set for the bytes quick-xml escapes in attribute values, all below 64.
const DA_ESCAPARE: u64 = 1 << b'<' | 1 << b'>' | 1 << b'&' | 1 << b'\'' | 1 << b'"';

fn da_escapare(b: u8) -> bool {
    b < 64 && DA_ESCAPARE >> b & 1 == 1
}

/// Appends `value` escaped as quick-xml escapes attribute values (`quick_xml::escape::
/// escape`: `<`, `>`, `&`, `'`, `"`), without building an intermediate string.
fn push_escaped(out: &mut String, value: &str) {
    let mut rest = value;
    // The five characters are ASCII, so a byte search finds them and never splits a
    // character.
    while let Some(i) = rest.bytes().position(da_escapare) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\'' => "&apos;",
            b'&' => "&amp;",
            _ => "&quot;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// A value written as an attribute: as its `Display` would write it (escaped, for text).
trait Valore {
    fn scrivi(self, out: &mut String);
}

impl Valore for &str {
    fn scrivi(self, out: &mut String) {
        push_escaped(out, self);
    }
}

impl Valore for &String {
    fn scrivi(self, out: &mut String) {
        push_escaped(out, self);
    }
}

impl<C: Codice> Valore for C {
    fn scrivi(self, out: &mut String) {
        out.push_str(self.codice_xml());
    }
}

impl Valore for u8 {
    fn scrivi(self, out: &mut String) {
        push_u64(out, u64::from(self));
    }
}

/// A year written with four digits (`{:04}`).
struct Anno(u16);

impl Valore for Anno {
    fn scrivi(self, out: &mut String) {
        push_pad(out, u64::from(self.0), 4);
    }
}

impl Valore for Data {
    fn scrivi(self, out: &mut String) {
        push_pad(out, u64::from(self.anno()), 4);
        out.push('-');
        push_pad(out, u64::from(self.mese()), 2);
        out.push('-');
        push_pad(out, u64::from(self.giorno()), 2);
    }
}

impl Valore for MeseAnno {
    fn scrivi(self, out: &mut String) {
        push_pad(out, u64::from(self.mese()), 2);
        out.push('/');
        push_pad(out, u64::from(self.anno()), 4);
    }
}

impl Valore for Importo {
    fn scrivi(self, out: &mut String) {
        if self.0 < 0 {
            out.push('-');
        }
        let abs = self.0.unsigned_abs();
        push_u64(out, abs / 100);
        out.push('.');
        push_pad(out, abs % 100, 2);
    }
}

impl Valore for OreServizio {
    fn scrivi(self, out: &mut String) {
        push_u64(out, u64::from(self.ore));
        out.push('.');
        push_pad(out, u64::from(self.minuti), 2);
    }
}

/// The document being written (internal to the writers; public only because
/// [`VoceFlusso`] names it).
#[doc(hidden)]
pub struct Doc<W: Write> {
    xml: Writer<W>,
    /// Name and attributes of the start tag being built, reused from tag to tag so that
    /// writing a record allocates nothing once the buffer has grown.
    tag: String,
    name_len: usize,
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
        let mut doc = Self { xml, tag: String::with_capacity(1024), name_len: 0 };
        doc.tag("Flusso");
        doc.attr("xmlns", NAMESPACE);
        doc.start()?;

        doc.tag("IdentificazioneFlusso");
        doc.attr("Nome", &id.nome);
        doc.start()?;
        let e = &id.ente;
        doc.tag("Ente");
        doc.attr("Codice", &e.codice);
        doc.attr_opt("Denominazione", e.denominazione.as_deref());
        doc.attr("Indirizzo", &e.indirizzo);
        doc.attr("CFOperatore", &e.cf_operatore);
        doc.empty()?;
        doc.xml.write_event(Event::End(BytesEnd::new("IdentificazioneFlusso")))?;
        Ok(doc)
    }

    /// Starts building the start tag of element `name`.
    fn tag(&mut self, name: &str) {
        self.tag.clear();
        self.tag.push_str(name);
        self.name_len = name.len();
    }

    /// Adds an attribute to the tag being built, as `BytesStart::push_attribute` would.
    fn attr(&mut self, name: &str, value: impl Valore) {
        self.tag.push(' ');
        self.tag.push_str(name);
        self.tag.push_str("=\"");
        value.scrivi(&mut self.tag);
        self.tag.push('"');
    }

    fn attr_opt(&mut self, name: &str, value: Option<impl Valore>) {
        if let Some(v) = value {
            self.attr(name, v);
        }
    }

    /// Writes the tag built as an empty element.
    fn empty(&mut self) -> Result<(), WriteError> {
        let el = BytesStart::from_content(self.tag.as_str(), self.name_len);
        self.xml.write_event(Event::Empty(el))?;
        Ok(())
    }

    /// Writes the tag built as a start tag.
    fn start(&mut self) -> Result<(), WriteError> {
        let el = BytesStart::from_content(self.tag.as_str(), self.name_len);
        self.xml.write_event(Event::Start(el))?;
        Ok(())
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
        self.tag("Beneficiario");
        self.attr("CodiceFiscale", &b.codice_fiscale);
        self.start()?;

        let a = &b.anagrafica;
        self.tag("Anagrafica");
        self.attr("Cognome", &a.cognome);
        self.attr("Nome", &a.nome);
        self.attr("AnnoNascita", Anno(a.anno_nascita));
        self.attr("LuogoNascita", &a.luogo_nascita);
        self.attr("Genere", a.genere);
        self.attr("CodiceCittadinanza", &a.codice_cittadinanza);
        self.attr_opt("CodiceSecondaCittadinanza", a.codice_seconda_cittadinanza.as_deref());
        self.empty()?;

        for ind in &b.indirizzi {
            self.tag("Indirizzo");
            self.attr_opt("CodiceRegione", ind.codice_regione.as_deref());
            self.attr_opt("CodiceComune", ind.codice_comune.as_deref());
            self.attr("CodiceNazione", &ind.codice_nazione);
            self.empty()?;
        }
        for ps in &b.prestazioni_sociali {
            self.prestazione(ps)?;
        }
        self.xml.write_event(Event::End(BytesEnd::new("Beneficiario")))?;
        Ok(())
    }

    fn prestazione(&mut self, ps: &PrestazioneSociale) -> Result<(), WriteError> {
        self.tag("PrestazioniSociali");
        self.attr("TipoOperazione", ps.tipo_operazione);
        self.attr("PresenzaProvaMezzi", ps.presenza_prova_mezzi);
        self.attr_opt("CaratterePrestazione", ps.carattere_prestazione);
        self.attr_opt("NumeroProtocolloDSU", ps.numero_protocollo_dsu.as_deref());
        self.attr_opt("AnnoProtocolloDSU", ps.anno_protocollo_dsu.map(Anno));
        self.attr_opt("DataDSU", ps.data_dsu);
        self.attr("CodicePrestazione", &ps.codice_prestazione);
        self.attr("DenominazionePrestazione", &ps.denominazione_prestazione);
        self.attr("ProtocolloDomanda", &ps.protocollo_domanda);
        self.attr_opt("DataEvento", ps.data_evento);
        self.attr_opt("DataInizioPrestazione", ps.data_inizio_prestazione);
        self.attr_opt("DataFinePrestazione", ps.data_fine_prestazione);
        self.attr_opt("DataErogazionePrestazione", ps.data_erogazione_prestazione);
        self.attr_opt("ImportoPrestazione", ps.importo_prestazione);
        self.attr_opt("PeriodoErogazione", ps.periodo_erogazione);
        self.attr_opt("ImportoMensile", ps.importo_mensile);
        self.attr_opt("ImportoQuotaEnte", ps.importo_quota_ente);
        self.attr_opt("ImportoQuotaUtente", ps.importo_quota_utente);
        self.attr_opt("ImportoQuotaSSN", ps.importo_quota_ssn);
        self.attr_opt("ImportoQuotaRichiesta", ps.importo_quota_richiesta);
        self.attr_opt("ImportoSogliaISEE", ps.importo_soglia_isee);
        self.attr_opt("OreServizioMensile", ps.ore_servizio_mensile);
        self.attr("PresaCarico", ps.presa_carico);
        self.attr_opt("AreaUtenza", ps.area_utenza);

        match &ps.sina {
            None => self.empty()?,
            Some(s) => {
                self.start()?;
                self.sina(s)?;
                self.xml.write_event(Event::End(BytesEnd::new("PrestazioniSociali")))?;
            }
        }
        Ok(())
    }

    fn sina(&mut self, s: &Sina) -> Result<(), WriteError> {
        self.tag("SINA");
        self.attr("Mobilita", s.mobilita);
        self.attr("AttivitaVitaQuotidiana", s.attivita_vita_quotidiana);
        self.attr_opt("DisturbiAreaCognitiva", s.disturbi_area_cognitiva);
        self.attr("DisturbiComportamentali", s.disturbi_comportamentali);
        self.attr_opt("NecessitaCureSanitarie", s.necessita_cure_sanitarie);
        self.attr("AreaReddituale", s.area_reddituale);
        self.attr("AreaSupporto", s.area_supporto);
        self.attr("FonteDerivazioneValutazione", s.fonte_derivazione_valutazione);
        self.attr("StrumentoValutazione", s.strumento_valutazione);
        self.attr_opt("FonteDerivazioneInvalidita", s.fonte_derivazione_invalidita);

        if s.necessita_interventi_sociali.is_empty() && s.invalidita_civile.is_empty() {
            self.empty()?;
            return Ok(());
        }
        self.start()?;
        if !s.necessita_interventi_sociali.is_empty() {
            self.xml.write_event(Event::Start(BytesStart::new("NecessitaInterventiSociali")))?;
            for c in &s.necessita_interventi_sociali {
                self.text_element("CodicePrestazione", c)?;
            }
            self.xml.write_event(Event::End(BytesEnd::new("NecessitaInterventiSociali")))?;
        }
        if !s.invalidita_civile.is_empty() {
            self.xml.write_event(Event::Start(BytesStart::new("InvaliditaCivile")))?;
            for c in &s.invalidita_civile {
                self.text_element("InvCiv", c.codice())?;
            }
            self.xml.write_event(Event::End(BytesEnd::new("InvaliditaCivile")))?;
        }
        self.xml.write_event(Event::End(BytesEnd::new("SINA")))?;
        Ok(())
    }

    fn sinba(&mut self, s: &Sinba) -> Result<(), WriteError> {
        self.tag("SINBA");
        self.attr("IDBeneficiario", &s.id_beneficiario);
        self.attr("MinoreStranieroNoAcc", s.minore_straniero_no_acc);
        self.attr("CondizioneMinore", s.condizione_minore);
        self.attr("LuogoVita", s.luogo_vita);
        self.attr("ScuolaFrequentata", s.scuola_frequentata);
        self.attr("CondizioneLavoro", s.condizione_lavoro);
        self.attr("Disabilita", s.disabilita);
        self.attr_opt("TipoDisabilita", s.tipo_disabilita);
        self.attr_opt("InvCivCertificazioni", s.inv_civ_certificazioni);
        self.attr_opt("CodiceCittadinanzaPadre", s.codice_cittadinanza_padre.as_deref());
        self.attr_opt("CodiceCittadinanzaMadre", s.codice_cittadinanza_madre.as_deref());
        self.attr_opt("CodiceRegioneResidenzaPadre", s.codice_regione_residenza_padre.as_deref());
        self.attr_opt("CodiceRegioneResidenzaMadre", s.codice_regione_residenza_madre.as_deref());
        self.attr_opt("TitoloStudioPadre", s.titolo_studio_padre);
        self.attr_opt("TitoloStudioMadre", s.titolo_studio_madre);
        self.attr_opt("OccupazionePadre", s.occupazione_padre);
        self.attr_opt("OccupazioneMadre", s.occupazione_madre);
        self.attr("DataPrimaSegnalazione", s.data_prima_segnalazione);
        self.attr("FonteSegnalazione", s.fonte_segnalazione);
        self.attr("ValutazioneMinore", s.valutazione_minore);
        self.attr("ValutazioneFamigliaMinore", s.valutazione_famiglia_minore);
        self.attr("SegnalazioneAutoritaGiudiziaria", s.segnalazione_autorita_giudiziaria);
        self.attr_opt("DataSegnalazione", s.data_segnalazione);
        self.attr("ProvvedimentoGiudiziario", s.provvedimento_giudiziario);
        self.attr_opt("DataProvvedimentoGiudiziario", s.data_provvedimento_giudiziario);
        self.attr_opt("AutoritaProvvedimento", s.autorita_provvedimento);
        self.attr_opt("PotestaTutela", s.potesta_tutela);
        self.attr_opt("TipoProvvedimentoGiudiziario", s.tipo_provvedimento_giudiziario);
        self.attr_opt("FormaInterventoAffido", s.forma_intervento_affido);
        self.attr_opt("TipoInterventoAffido", s.tipo_intervento_affido);
        self.attr_opt("DurataAffido", s.durata_affido);
        self.attr_opt("CarattereAffido", s.carattere_affido);
        self.attr_opt("EsitoAffido", s.esito_affido);
        self.attr_opt("CarattereInserimentoResidenziale", s.carattere_inserimento_residenziale);
        self.attr_opt("FormaInserimentoResidenziale", s.forma_inserimento_residenziale);
        self.attr_opt("TipoInserimentoResidenziale", s.tipo_inserimento_residenziale);
        self.attr_opt("EsitoInserimentoStruttura", s.esito_inserimento_struttura);
        self.attr_opt("MotivazioneChiusuraCarico", s.motivazione_chiusura_carico);
        self.attr_opt("SituazioneChiusuraCarico", s.situazione_chiusura_carico);
        self.attr_opt("CollaborazioniInterventi", s.collaborazioni_interventi);
        self.attr_opt("NumeroComponentiISEE", s.numero_componenti_isee);
        self.attr("FasciaEtaBeneficiario", s.fascia_eta_beneficiario);
        self.attr_opt("FasciaISEEBeneficiario", s.fascia_isee_beneficiario);
        self.attr("AnnoNascita", Anno(s.anno_nascita));
        self.attr_opt("CodiceRegioneResidenza", s.codice_regione_residenza.as_deref());
        self.attr("CodiceNazioneResidenza", &s.codice_nazione_residenza);
        self.start()?;

        self.xml.write_event(Event::Start(BytesStart::new("Prestazioni")))?;
        for c in &s.prestazioni {
            self.text_element("CodicePrestazione", c)?;
        }
        self.xml.write_event(Event::End(BytesEnd::new("Prestazioni")))?;
        self.xml.write_event(Event::Start(BytesStart::new("Famiglia")))?;
        for c in &s.famiglia {
            self.text_element("ComposizioneFamiglia", c.codice())?;
        }
        self.xml.write_event(Event::End(BytesEnd::new("Famiglia")))?;
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
pub fn write_flusso_sinba<W: Write>(w: W, flusso: &FlussoSinba, canale: Canale) -> Result<W, WriteError> {
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
        Ok(Self { doc: Doc::open(w, id)?, offerti: 0, scritti: 0, voce: std::marker::PhantomData })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scritto(v: impl Valore) -> String {
        let mut s = String::new();
        v.scrivi(&mut s);
        s
    }

    #[test]
    fn escaping_is_quick_xml_s() {
        for s in ["", "plain", "D'ARCO", "a&b<c>d\"e'f", "&&&", "<", "NICOLÒ & Cà", "tab\there\nnewline"] {
            assert_eq!(scritto(s), quick_xml::escape::escape(s), "{s:?}");
        }
    }

    #[test]
    fn values_are_written_as_displayed() {
        for (a, m, g) in [(1000, 1, 1), (2025, 3, 7), (9999, 12, 31)] {
            let d = Data::new(a, m, g).unwrap();
            assert_eq!(scritto(d), d.to_string());
            assert_eq!(scritto(Anno(a)), format!("{a:04}"));
        }
        for a in [0, 5, 999] {
            assert_eq!(scritto(Anno(a)), format!("{a:04}"));
        }
        for (m, a) in [(1, 1900), (12, 2099)] {
            let d = MeseAnno::new(m, a).unwrap();
            assert_eq!(scritto(d), d.to_string());
        }
        for c in [0, 5, -5, 99, 100, 10_123, -10_123, i64::MAX, i64::MIN] {
            assert_eq!(scritto(Importo(c)), Importo(c).to_string());
        }
        for (o, m) in [(0, 0), (2, 5), (12, 59), (u32::MAX, 99)] {
            let v = OreServizio::new(o, m);
            assert_eq!(scritto(v), v.to_string());
        }
        for n in [0u8, 9, 12, 255] {
            assert_eq!(scritto(n), n.to_string());
        }
        for c in FonteSegnalazione::ALL {
            assert_eq!(scritto(*c), c.to_string());
        }
    }
}

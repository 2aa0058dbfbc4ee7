//! Mapping from the cartella (`cartella.v1` records) to SIUSS flows: one prestazione of one
//! person becomes one PS Beneficiario with one PrestazioniSociali, or, for a minor whose
//! cartella holds a SINBA assessment, one SINBA record.
//!
//! Pure functions over values. A prestazione that cannot be sent yet is never turned into a
//! half-filled flow: the mapping returns the whole list of what is missing or wrong, the
//! gaps found here (a datum the cartella lacks, an area with no INPS equivalent) together
//! with every rule of [`crate::rules`] that the mapped record breaks. Missing data are
//! replaced by placeholders only to let the rules run on the rest; whenever a placeholder is
//! used the result is an error, so a placeholder never reaches a flow.
//!
//! Area mapping (core `AreaUtenza` → INPS `AreaUtenza`): 1, 2, 3 keep their code; Anziani (4)
//! maps to 2 (disabilità e non autosufficienza) only when the cartella holds a SINA
//! assessment, which is by definition the assessment of a non-self-sufficient person; every
//! other area (immigrati, dipendenze, salute mentale, multiutenza, unspecified) could fall in
//! more than one INPS area and is left to the operator: with PresaCarico = 1 the prestazione
//! is blocked with [`Rule::AreaUtenzaNonMappabile`], otherwise the optional area is omitted.

use std::fmt::Display;

use cartella_proto::v1 as pb;
use pb::valutazione::Scheda;

use crate::flow_id::{FlowId, TipoFlusso};
use crate::model::*;
use crate::rules::{Dot, Rule, Schema, Violation, validate_beneficiario, validate_identificazione, validate_sinba_record};
use crate::validato::Validato;
use crate::writer::VoceFlusso;

/// The ente sending the flows, as INPS knows it (`EnteType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnteSiuss {
    /// Codice ente (for Roma Capitale its Belfiore code, `H501`).
    pub codice: String,
    pub denominazione: String,
    /// Belfiore code of the ente's seat.
    pub indirizzo: String,
    /// Codice fiscale of the operator responsible for the flows.
    pub cf_operatore: String,
}

impl EnteSiuss {
    fn ente(&self) -> Ente {
        Ente {
            codice: self.codice.clone(),
            denominazione: (!self.denominazione.is_empty()).then(|| self.denominazione.clone()),
            indirizzo: self.indirizzo.clone(),
            cf_operatore: self.cf_operatore.clone(),
        }
    }

    /// Header of a flow with the given id.
    pub fn identificazione(&self, id: &FlowId) -> IdentificazioneFlusso {
        IdentificazioneFlusso { nome: id.to_string(), ente: self.ente() }
    }

    /// Problems of the ente configuration itself, checked as INPS would check the header.
    pub fn check(&self) -> Vec<Violation> {
        let nome =
            epoch().and_then(|d| FlowId::new(self.codice.clone(), TipoFlusso::Ps, d, 1).ok()).map(|i| i.to_string()).unwrap_or_default();
        let header = IdentificazioneFlusso { nome, ente: self.ente() };
        validate_identificazione(&header, Schema::PsPsaSina).err().unwrap_or_default()
    }
}

/// 2000-01-01, for placeholders and fingerprints (always `Some`).
fn epoch() -> Option<Data> {
    Data::new(2000, 1, 1).ok()
}

/// What one prestazione is mapped from.
#[derive(Debug, Clone, Copy)]
pub struct Sorgente<'a> {
    pub persona: &'a pb::Persona,
    pub cartella: &'a pb::Cartella,
    pub prestazione: &'a pb::Prestazione,
    /// The most recent valutazione of the cartella with a SINA scheda, if any.
    pub sina: Option<&'a pb::Valutazione>,
    /// The most recent valutazione of the cartella with a SINBA scheda, if any.
    pub sinba: Option<&'a pb::Valutazione>,
}

/// A mapped record, ready for a cooperation flow or a portal batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Ps(Beneficiario),
    Sinba(Sinba),
}

impl Record {
    pub fn tipo(&self) -> TipoFlusso {
        match self {
            Record::Ps(_) => TipoFlusso::Ps,
            Record::Sinba(_) => TipoFlusso::Sinba,
        }
    }
}

/// A mapped record together with the proof that it passed the rules: what [`map_validato`]
/// returns, written by [`crate::FlussoWriter::write_validato`] without checking it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValidato {
    Ps(Validato<Beneficiario>),
    Sinba(Validato<Sinba>),
}

impl RecordValidato {
    pub fn tipo(&self) -> TipoFlusso {
        match self {
            RecordValidato::Ps(_) => TipoFlusso::Ps,
            RecordValidato::Sinba(_) => TipoFlusso::Sinba,
        }
    }
}

impl From<RecordValidato> for Record {
    fn from(r: RecordValidato) -> Self {
        match r {
            RecordValidato::Ps(b) => Record::Ps(b.into_inner()),
            RecordValidato::Sinba(s) => Record::Sinba(s.into_inner()),
        }
    }
}

/// Which flow a prestazione goes in: SINBA for a person under 18 on `riferimento` whose
/// cartella holds a SINBA assessment, PS otherwise.
pub fn tipo_flusso(src: &Sorgente<'_>, oggi: Data) -> TipoFlusso {
    // The age matters only when there is a SINBA assessment.
    if src.sinba.is_some() && eta(src.persona, data_riferimento(src.prestazione, oggi)).is_some_and(|e| e < 18) {
        TipoFlusso::Sinba
    } else {
        TipoFlusso::Ps
    }
}

/// The date a prestazione refers to: erogazione (occasional), else inizio (periodic), else
/// `oggi`.
pub fn data_riferimento(p: &pb::Prestazione, oggi: Data) -> Data {
    Data::parse(&p.data_erogazione).or_else(|_| Data::parse(&p.data_inizio)).unwrap_or(oggi)
}

fn eta(persona: &pb::Persona, il: Data) -> Option<u16> {
    let n = Data::parse(&persona.data_nascita).ok()?;
    let mut anni = il.anno().checked_sub(n.anno())?;
    if (il.mese(), il.giorno()) < (n.mese(), n.giorno()) {
        anni = anni.checked_sub(1)?;
    }
    Some(anni)
}

/// Maps one prestazione. `op` is `C` to cancel what an earlier flow inserted (SINBA has no
/// operation type: a SINBA record always states the minor's current situation).
pub fn map(src: &Sorgente<'_>, op: TipoOperazione, oggi: Data) -> Result<Record, Vec<Violation>> {
    map_validato(src, op, oggi).map(Record::from)
}

/// [`map`], keeping the proof that the record passed the rules, so that a batch writer
/// need not check it again ([`crate::FlussoWriter::write_validato`]) and the prestazioni of
/// one person can be merged safely ([`Validato::unisci`]).
pub fn map_validato(src: &Sorgente<'_>, op: TipoOperazione, oggi: Data) -> Result<RecordValidato, Vec<Violation>> {
    match tipo_flusso(src, oggi) {
        TipoFlusso::Sinba => map_sinba(src, oggi).map(RecordValidato::Sinba),
        _ => map_ps(src, op).map(RecordValidato::Ps),
    }
}

/// Collects the gaps found while mapping. Paths are taken as `Display` and formatted only
/// when a gap is pushed: a complete prestazione costs no path strings.
#[derive(Default)]
struct Gaps {
    out: Vec<Violation>,
}

impl Gaps {
    fn push(&mut self, path: impl Display, rule: Rule, message: &str) {
        self.out.push(Violation { path: path.to_string(), rule, message: message.to_string() });
    }

    fn missing(&mut self, path: impl Display, what: &str) {
        self.push(path, Rule::DatoMancante, &format!("{what}: dato mancante nella cartella"));
    }

    /// A required text, trimmed; the empty string is reported here and left to the length
    /// rules only when it is present but malformed.
    fn text<'v>(&mut self, path: impl Display, what: &str, v: &'v str) -> &'v str {
        let t = trim(v);
        if t.is_empty() {
            self.missing(path, what);
        }
        t
    }

    fn opt_text(v: &str) -> Option<String> {
        let t = trim(v);
        (!t.is_empty()).then(|| t.to_string())
    }

    fn data(&mut self, path: impl Display, v: &str) -> Option<Data> {
        if v.is_empty() {
            return None;
        }
        match Data::parse(v) {
            Ok(d) => Some(d),
            Err(_) => {
                self.push(path, Rule::Formato, "data non valida: attesa AAAA-MM-GG");
                None
            }
        }
    }

    fn mese_anno(&mut self, path: impl Display, v: &str) -> Option<MeseAnno> {
        if v.is_empty() {
            return None;
        }
        match MeseAnno::parse(v) {
            Ok(d) => Some(d),
            Err(_) => {
                self.push(path, Rule::Formato, "data non valida: attesa MM/AAAA tra 1900 e 2099");
                None
            }
        }
    }

    /// An optional INPS code held as an integer (0 = absent).
    fn code<T>(&mut self, path: impl Display, v: i32, from: fn(&str) -> Option<T>) -> Option<T> {
        if v == 0 {
            return None;
        }
        let c = crate::num::with_i32(v, from);
        if c.is_none() {
            self.push(path, Rule::CodiceNonAmmesso, "codice non previsto dallo schema INPS");
        }
        c
    }

    /// A required INPS code: absent is a gap; the placeholder only lets the rules go on.
    fn req<T: Copy>(&mut self, path: impl Display, what: &str, v: i32, from: fn(&str) -> Option<T>, all: &[T]) -> T {
        if v == 0 {
            self.missing(&path, what);
        }
        // Every code list generated by `codelist!` has at least one value.
        self.code(&path, v, from).unwrap_or(all[0])
    }
}

fn importo(v: Option<i64>) -> Option<Importo> {
    v.map(Importo)
}

fn anno_nascita(g: &mut Gaps, path: impl Display, persona: &pb::Persona) -> u16 {
    match Data::parse(&persona.data_nascita) {
        Ok(d) => d.anno(),
        Err(_) => {
            g.missing(path, "data di nascita");
            2000
        }
    }
}

fn map_ps(src: &Sorgente<'_>, op: TipoOperazione) -> Result<Validato<Beneficiario>, Vec<Violation>> {
    let mut g = Gaps::default();
    let p = src.persona;
    let b = "beneficiario";
    let f = |name: &'static str| Dot(&b, name);
    let codice_fiscale = trim(&p.codice_fiscale).to_ascii_uppercase();
    if codice_fiscale.is_empty() {
        g.push(
            f("codice_fiscale"),
            Rule::DatoMancante,
            "la persona non ha codice fiscale: il flusso PS lo richiede (solo i minori in SINBA ne sono esenti)",
        );
    }
    let genere = match pb::Sesso::try_from(p.sesso) {
        Ok(pb::Sesso::Maschio) => Genere::Maschio,
        Ok(pb::Sesso::Femmina) => Genere::Femmina,
        _ => {
            g.missing(f("anagrafica.genere"), "sesso");
            Genere::Maschio
        }
    };
    let anagrafica = Anagrafica {
        cognome: maiuscole(g.text(f("anagrafica.cognome"), "cognome", &p.cognome)),
        nome: maiuscole(g.text(f("anagrafica.nome"), "nome", &p.nome)),
        anno_nascita: anno_nascita(&mut g, f("anagrafica.anno_nascita"), p),
        luogo_nascita: or_placeholder(g.text(f("anagrafica.luogo_nascita"), "luogo di nascita", &p.luogo_nascita), "Z000"),
        genere,
        codice_cittadinanza: or_placeholder(g.text(f("anagrafica.codice_cittadinanza"), "cittadinanza", &p.cittadinanza), "990"),
        codice_seconda_cittadinanza: Gaps::opt_text(&p.seconda_cittadinanza),
    };
    let mut indirizzi = Vec::new();
    match &p.residenza {
        Some(r) if !trim(&r.codice_nazione).is_empty() => indirizzi.push(indirizzo(r)),
        _ => {
            g.missing(f("indirizzi[0]"), "residenza (almeno il codice nazione)");
            indirizzi.push(Indirizzo { codice_regione: None, codice_comune: None, codice_nazione: "990".into() });
        }
    }
    if let Some(d) = &p.domicilio
        && !trim(&d.codice_nazione).is_empty()
    {
        let d = indirizzo(d);
        if !indirizzi.contains(&d) {
            indirizzi.push(d);
        }
    }
    let ps = prestazione_sociale(&mut g, src, op, &f("prestazioni_sociali[0]"));
    let out = Beneficiario { codice_fiscale, anagrafica, indirizzi, prestazioni_sociali: vec![ps] };
    let rules = validate_beneficiario(&out, b);
    concludi(g, out, rules)
}

/// Paths already explained by a gap of the mapping: the rules' own finding there (an empty
/// text's length, a missing required area) would say the same thing twice.
fn all_paths(v: &[Violation]) -> Vec<String> {
    v.iter().map(|x| x.path.clone()).collect()
}

fn all_has_gap(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| p == path)
}

fn or_placeholder(v: &str, placeholder: &str) -> String {
    if v.is_empty() { placeholder } else { v }.to_string()
}

/// `str::trim`, returning at once in the common case of a value that starts and ends with
/// a printable ASCII character (every whitespace character is either at most 0x20 or not
/// ASCII).
fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [a, .., z] | [a @ z] if (0x21..0x80).contains(a) && (0x21..0x80).contains(z) => s,
        _ => s.trim(),
    }
}

/// `str::to_uppercase`, without its Unicode tables for the common all-ASCII name.
fn maiuscole(s: &str) -> String {
    if s.is_ascii() { s.to_ascii_uppercase() } else { s.to_uppercase() }
}

fn indirizzo(r: &pb::Indirizzo) -> Indirizzo {
    Indirizzo {
        codice_regione: Gaps::opt_text(&r.codice_regione),
        codice_comune: Gaps::opt_text(&r.codice_comune),
        codice_nazione: trim(&r.codice_nazione).to_string(),
    }
}

/// INPS AreaUtenza for a cartella; `None` when no unambiguous one exists.
pub fn area_inps(area: i32, con_sina: bool) -> Option<AreaUtenza> {
    match pb::AreaUtenza::try_from(area).ok()? {
        pb::AreaUtenza::FamigliaMinori => Some(AreaUtenza::FamigliaMinori),
        pb::AreaUtenza::DisabilitaNonAutosufficienza => Some(AreaUtenza::DisabilitaNonAutosufficienza),
        pb::AreaUtenza::PovertaEsclusioneSociale => Some(AreaUtenza::PovertaEsclusioneSociale),
        pb::AreaUtenza::Anziani if con_sina => Some(AreaUtenza::DisabilitaNonAutosufficienza),
        _ => None,
    }
}

fn prestazione_sociale(g: &mut Gaps, src: &Sorgente<'_>, op: TipoOperazione, p: &dyn Display) -> PrestazioneSociale {
    let x = src.prestazione;
    let f = |name: &'static str| Dot(p, name);
    let presenza_prova_mezzi = match pb::ProvaMezzi::try_from(x.prova_mezzi) {
        Ok(pb::ProvaMezzi::Isee) => PresenzaProvaMezzi::Isee,
        Ok(pb::ProvaMezzi::Altra) => PresenzaProvaMezzi::AltraProvaMezzi,
        Ok(pb::ProvaMezzi::IseeEsente) => PresenzaProvaMezzi::IseeEsentata,
        Ok(pb::ProvaMezzi::Nessuna) => PresenzaProvaMezzi::Nessuna,
        _ => {
            g.missing(f("presenza_prova_mezzi"), "prova dei mezzi");
            PresenzaProvaMezzi::Nessuna
        }
    };
    let carattere_prestazione = match pb::CaratterePrestazione::try_from(x.carattere) {
        Ok(pb::CaratterePrestazione::Periodica) => Some(CaratterePrestazione::Periodica),
        Ok(pb::CaratterePrestazione::Occasionale) => Some(CaratterePrestazione::Occasionale),
        // Reported by the rules (CarattereObbligatorio).
        _ => None,
    };
    let nessuna = pb::Dsu::default();
    let dsu = x.dsu.as_ref().unwrap_or(&nessuna);
    let anno_protocollo_dsu = match trim(&dsu.anno_protocollo) {
        "" => None,
        a => match a.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => {
                g.push(f("anno_protocollo_dsu"), Rule::Formato, "anno atteso di 4 cifre");
                None
            }
        },
    };
    // Out of u8 becomes 0, which breaks the 1–12 rule that reports it.
    let periodo_erogazione = x.periodo_erogazione.map(|m| u8::try_from(m).unwrap_or_default());
    let ore_servizio_mensile = x.minuti_servizio_mensili.and_then(|m| match u32::try_from(m) {
        Ok(m) => Some(OreServizio::da_minuti(m)),
        Err(_) => {
            g.push(f("ore_servizio_mensile"), Rule::Formato, "i minuti di servizio mensili non possono essere negativi");
            None
        }
    });
    let aperta = src.cartella.stato == pb::StatoCartella::Aperta as i32;
    let presa_carico = if aperta { SiNo::Si } else { SiNo::No };
    let sina = src.sina.and_then(|v| match &v.scheda {
        Some(Scheda::Sina(s)) => Some(map_sina(g, s, &f("sina"))),
        _ => None,
    });
    let area_utenza = area_inps(src.cartella.area_utenza, sina.is_some());
    if area_utenza.is_none() && presa_carico == SiNo::Si {
        g.push(
            f("area_utenza"),
            Rule::AreaUtenzaNonMappabile,
            "l'area utenza della cartella non corrisponde in modo univoco a un'area INPS (1 famiglia e minori, \
             2 disabilità e non autosufficienza, 3 povertà ed esclusione sociale): indicarne una nella cartella",
        );
    }
    PrestazioneSociale {
        tipo_operazione: op,
        presenza_prova_mezzi,
        carattere_prestazione,
        numero_protocollo_dsu: Gaps::opt_text(&dsu.numero_protocollo),
        anno_protocollo_dsu,
        data_dsu: g.data(f("data_dsu"), &dsu.data),
        codice_prestazione: g.text(f("codice_prestazione"), "codice prestazione", &x.codice_prestazione).to_string(),
        denominazione_prestazione: g.text(f("denominazione_prestazione"), "denominazione della prestazione", &x.denominazione).to_string(),
        protocollo_domanda: g.text(f("protocollo_domanda"), "protocollo della domanda", &x.protocollo_domanda).to_string(),
        data_evento: g.data(f("data_evento"), &x.data_evento),
        data_inizio_prestazione: g.data(f("data_inizio_prestazione"), &x.data_inizio),
        data_fine_prestazione: g.data(f("data_fine_prestazione"), &x.data_fine),
        data_erogazione_prestazione: g.data(f("data_erogazione_prestazione"), &x.data_erogazione),
        importo_prestazione: importo(x.importo),
        periodo_erogazione,
        importo_mensile: importo(x.importo_mensile),
        importo_quota_ente: importo(x.quota_ente),
        importo_quota_utente: importo(x.quota_utente),
        importo_quota_ssn: importo(x.quota_ssn),
        importo_quota_richiesta: importo(x.quota_richiesta),
        importo_soglia_isee: importo(x.soglia_isee),
        ore_servizio_mensile,
        presa_carico,
        area_utenza,
        sina,
    }
}

fn map_sina(g: &mut Gaps, s: &pb::Sina, p: &dyn Display) -> Sina {
    let f = |name: &'static str| Dot(p, name);
    let mut invalidita_civile = Vec::new();
    for (i, c) in s.invalidita_civile.iter().enumerate() {
        if let Some(c) = g.code(format_args!("{p}.invalidita_civile[{i}]"), *c, InvCiv::from_codice) {
            invalidita_civile.push(c);
        }
    }
    Sina {
        mobilita: g.req(f("mobilita"), "SINA mobilità", s.mobilita, Mobilita::from_codice, Mobilita::ALL),
        attivita_vita_quotidiana: g.req(
            f("attivita_vita_quotidiana"),
            "SINA attività della vita quotidiana",
            s.attivita_vita_quotidiana,
            AttivitaVitaQuotidiana::from_codice,
            AttivitaVitaQuotidiana::ALL,
        ),
        disturbi_area_cognitiva: g.code(f("disturbi_area_cognitiva"), s.disturbi_area_cognitiva, DisturbiAreaCognitiva::from_codice),
        disturbi_comportamentali: g.req(
            f("disturbi_comportamentali"),
            "SINA disturbi comportamentali",
            s.disturbi_comportamentali,
            DisturbiComportamentali::from_codice,
            DisturbiComportamentali::ALL,
        ),
        necessita_cure_sanitarie: g.code(f("necessita_cure_sanitarie"), s.necessita_cure_sanitarie, NecessitaCureSanitarie::from_codice),
        area_reddituale: g.req(
            f("area_reddituale"),
            "SINA area reddituale",
            s.area_reddituale,
            AreaReddituale::from_codice,
            AreaReddituale::ALL,
        ),
        area_supporto: g.req(f("area_supporto"), "SINA area supporto", s.area_supporto, AreaSupporto::from_codice, AreaSupporto::ALL),
        fonte_derivazione_valutazione: g.req(
            f("fonte_derivazione_valutazione"),
            "SINA fonte della valutazione",
            s.fonte_derivazione_valutazione,
            FonteDerivazioneValutazione::from_codice,
            FonteDerivazioneValutazione::ALL,
        ),
        strumento_valutazione: g.req(
            f("strumento_valutazione"),
            "SINA strumento di valutazione",
            s.strumento_valutazione,
            StrumentoValutazione::from_codice,
            StrumentoValutazione::ALL,
        ),
        fonte_derivazione_invalidita: g.code(
            f("fonte_derivazione_invalidita"),
            s.fonte_derivazione_invalidita,
            FonteDerivazioneInvalidita::from_codice,
        ),
        necessita_interventi_sociali: s.necessita_interventi_sociali.iter().map(|c| trim(c).to_string()).collect(),
        invalidita_civile,
    }
}

/// Stable pseudonymous `IDBeneficiario` for SINBA (at most 20 characters): the last 20 hex
/// digits of the hub's persona id, which carry its random part and nothing about the person.
pub fn id_beneficiario_sinba(persona_id: &str) -> String {
    // Bytes of non-ASCII characters are never ASCII alphanumerics, so what is kept is one
    // byte per character.
    let alnum = || persona_id.bytes().filter(u8::is_ascii_alphanumeric);
    let skip = alnum().count().saturating_sub(20);
    alnum().skip(skip).map(|b| char::from(b.to_ascii_uppercase())).collect()
}

fn fascia_eta(anni: u16) -> FasciaEtaBeneficiario {
    match anni {
        0..=2 => FasciaEtaBeneficiario::Da0a3,
        3..=5 => FasciaEtaBeneficiario::Da3a6,
        6..=8 => FasciaEtaBeneficiario::Da6a9,
        9..=11 => FasciaEtaBeneficiario::Da9a12,
        12..=14 => FasciaEtaBeneficiario::Da12a15,
        _ => FasciaEtaBeneficiario::Da15a18,
    }
}

/// The path of every SINBA gap and violation.
const SINBA: &str = "sinba";

fn sinba_field(name: &'static str) -> Dot<'static> {
    Dot(&SINBA, name)
}

/// Maps a minor's SINBA record, one section of the INPS record at a time. The sections run
/// in the order of the record's fields, so the gaps come out in that order too.
fn map_sinba(src: &Sorgente<'_>, oggi: Data) -> Result<Validato<Sinba>, Vec<Violation>> {
    let mut g = Gaps::default();
    let empty = pb::Sinba::default();
    let s = match src.sinba.and_then(|v| v.scheda.as_ref()) {
        Some(Scheda::Sinba(s)) => s,
        _ => &empty,
    };
    let nessuna = pb::Indirizzo::default();
    let residenza = src.persona.residenza.as_ref().unwrap_or(&nessuna);
    let chi = sinba_beneficiario(&mut g, src, s, residenza, oggi);
    let Some(data_prima_segnalazione) = sinba_prima_segnalazione(&mut g, s) else { return Err(g.out) };
    let minore = sinba_minore(&mut g, s);
    let SinbaGenitori {
        cittadinanza: [codice_cittadinanza_padre, codice_cittadinanza_madre],
        regione_residenza: [codice_regione_residenza_padre, codice_regione_residenza_madre],
        titolo_studio: [titolo_studio_padre, titolo_studio_madre],
        occupazione: [occupazione_padre, occupazione_madre],
    } = sinba_genitori(&mut g, s);
    let segnalazione = sinba_segnalazione(&mut g, s);
    let interventi = sinba_interventi(&mut g, s);
    let chiusura = sinba_chiusura(&mut g, s);
    let fascia_isee_beneficiario =
        g.code(sinba_field("fascia_isee_beneficiario"), s.fascia_isee_beneficiario, FasciaIseeBeneficiario::from_codice);
    let out = Sinba {
        id_beneficiario: chi.id_beneficiario,
        prestazioni: vec![chi.codice_prestazione],
        famiglia: chi.famiglia,
        minore_straniero_no_acc: minore.straniero_non_accompagnato,
        condizione_minore: minore.condizione,
        luogo_vita: minore.luogo_vita,
        scuola_frequentata: minore.scuola_frequentata,
        condizione_lavoro: minore.condizione_lavoro,
        disabilita: minore.disabilita,
        tipo_disabilita: minore.tipo_disabilita,
        inv_civ_certificazioni: minore.inv_civ_certificazioni,
        codice_cittadinanza_padre,
        codice_cittadinanza_madre,
        codice_regione_residenza_padre,
        codice_regione_residenza_madre,
        titolo_studio_padre,
        titolo_studio_madre,
        occupazione_padre,
        occupazione_madre,
        data_prima_segnalazione,
        fonte_segnalazione: segnalazione.fonte,
        valutazione_minore: segnalazione.valutazione_minore,
        valutazione_famiglia_minore: segnalazione.valutazione_famiglia,
        segnalazione_autorita_giudiziaria: segnalazione.autorita_giudiziaria,
        data_segnalazione: segnalazione.data,
        provvedimento_giudiziario: segnalazione.provvedimento,
        data_provvedimento_giudiziario: segnalazione.data_provvedimento,
        autorita_provvedimento: segnalazione.autorita_provvedimento,
        potesta_tutela: segnalazione.potesta_tutela,
        tipo_provvedimento_giudiziario: segnalazione.tipo_provvedimento,
        forma_intervento_affido: interventi.forma_affido,
        tipo_intervento_affido: interventi.tipo_affido,
        durata_affido: interventi.durata_affido,
        carattere_affido: interventi.carattere_affido,
        esito_affido: interventi.esito_affido,
        carattere_inserimento_residenziale: interventi.carattere_residenziale,
        forma_inserimento_residenziale: interventi.forma_residenziale,
        tipo_inserimento_residenziale: interventi.tipo_residenziale,
        esito_inserimento_struttura: interventi.esito_struttura,
        motivazione_chiusura_carico: chiusura.motivazione,
        situazione_chiusura_carico: chiusura.situazione,
        collaborazioni_interventi: chiusura.collaborazioni,
        numero_componenti_isee: match s.numero_componenti_isee {
            0 => None,
            n => Some(u8::try_from(n).unwrap_or(0)),
        },
        fascia_eta_beneficiario: chi.fascia_eta,
        fascia_isee_beneficiario,
        anno_nascita: chi.anno_nascita,
        codice_regione_residenza: Gaps::opt_text(&residenza.codice_regione),
        codice_nazione_residenza: chi.codice_nazione_residenza,
    };
    let rules = validate_sinba_record(&out, SINBA);
    concludi(g, out, rules)
}

/// Who the record is about: the pseudonymous id, the prestazione, the family, age and
/// country of residence.
struct SinbaBeneficiario {
    id_beneficiario: String,
    codice_prestazione: String,
    famiglia: Vec<ComposizioneFamiglia>,
    anno_nascita: u16,
    fascia_eta: FasciaEtaBeneficiario,
    codice_nazione_residenza: String,
}

fn sinba_beneficiario(g: &mut Gaps, src: &Sorgente<'_>, s: &pb::Sinba, residenza: &pb::Indirizzo, oggi: Data) -> SinbaBeneficiario {
    let f = sinba_field;
    let persona_id = src.persona.meta.as_ref().map(|m| m.id.as_str()).unwrap_or_default();
    let id_beneficiario = id_beneficiario_sinba(persona_id);
    if id_beneficiario.is_empty() {
        g.missing(f("id_beneficiario"), "identificativo della persona");
    }
    let codice_prestazione = g.text(f("prestazioni[0]"), "codice prestazione", &src.prestazione.codice_prestazione).to_string();
    let mut famiglia = Vec::new();
    for (i, c) in s.composizione_famiglia.iter().enumerate() {
        if let Some(c) = g.code(format_args!("{SINBA}.famiglia[{i}]"), *c, ComposizioneFamiglia::from_codice) {
            famiglia.push(c);
        }
    }
    if s.composizione_famiglia.is_empty() {
        g.missing(f("famiglia"), "composizione della famiglia");
    }
    let anno_nascita = anno_nascita(g, f("anno_nascita"), src.persona);
    let fascia_eta = match s.fascia_eta_beneficiario {
        0 => match eta(src.persona, data_riferimento(src.prestazione, oggi)) {
            Some(a) => fascia_eta(a),
            None => FasciaEtaBeneficiario::Da0a3,
        },
        v => g.req(f("fascia_eta_beneficiario"), "fascia di età", v, FasciaEtaBeneficiario::from_codice, FasciaEtaBeneficiario::ALL),
    };
    let codice_nazione_residenza = match trim(&residenza.codice_nazione) {
        "" => {
            g.missing(f("codice_nazione_residenza"), "nazione di residenza");
            "990".to_string()
        }
        n => n.to_string(),
    };
    SinbaBeneficiario { id_beneficiario, codice_prestazione, famiglia, anno_nascita, fascia_eta, codice_nazione_residenza }
}

/// When the minor first came to the service; 01/2000 stands in for a missing one (reported
/// as a gap). None only if that placeholder could not be built.
fn sinba_prima_segnalazione(g: &mut Gaps, s: &pb::Sinba) -> Option<MeseAnno> {
    let f = sinba_field;
    match g.mese_anno(f("data_prima_segnalazione"), &s.data_prima_segnalazione) {
        Some(d) => Some(d),
        None => {
            if s.data_prima_segnalazione.is_empty() {
                g.missing(f("data_prima_segnalazione"), "data della prima segnalazione");
            }
            MeseAnno::new(1, 2000).ok()
        }
    }
}

/// The minor's own situation: origin, where and how they live, school, work, disability.
struct SinbaMinore {
    straniero_non_accompagnato: SiNo,
    condizione: CondizioneMinore,
    luogo_vita: LuogoVita,
    scuola_frequentata: ScuolaFrequentata,
    condizione_lavoro: CondizioneLavoro,
    disabilita: SiNo,
    tipo_disabilita: Option<TipoDisabilita>,
    inv_civ_certificazioni: Option<InvCivCertificazioni>,
}

fn sinba_minore(g: &mut Gaps, s: &pb::Sinba) -> SinbaMinore {
    let f = sinba_field;
    SinbaMinore {
        straniero_non_accompagnato: g.req(
            f("minore_straniero_no_acc"),
            "minore straniero non accompagnato",
            s.minore_straniero_non_accompagnato,
            SiNo::from_codice,
            SiNo::ALL,
        ),
        condizione: g.req(
            f("condizione_minore"),
            "condizione del minore",
            s.condizione_minore,
            CondizioneMinore::from_codice,
            CondizioneMinore::ALL,
        ),
        luogo_vita: g.req(f("luogo_vita"), "luogo di vita", s.luogo_vita, LuogoVita::from_codice, LuogoVita::ALL),
        scuola_frequentata: g.req(
            f("scuola_frequentata"),
            "scuola frequentata",
            s.scuola_frequentata,
            ScuolaFrequentata::from_codice,
            ScuolaFrequentata::ALL,
        ),
        condizione_lavoro: g.req(
            f("condizione_lavoro"),
            "condizione lavorativa",
            s.condizione_lavoro,
            CondizioneLavoro::from_codice,
            CondizioneLavoro::ALL,
        ),
        disabilita: g.req(f("disabilita"), "disabilità", s.disabilita, SiNo::from_codice, SiNo::ALL),
        tipo_disabilita: g.code(f("tipo_disabilita"), s.tipo_disabilita, TipoDisabilita::from_codice),
        inv_civ_certificazioni: g.code(f("inv_civ_certificazioni"), s.inv_civ_certificazioni, InvCivCertificazioni::from_codice),
    }
}

/// The parents, father first then mother: citizenship, region of residence, schooling, work.
struct SinbaGenitori {
    cittadinanza: [Option<String>; 2],
    regione_residenza: [Option<String>; 2],
    titolo_studio: [Option<TitoloStudio>; 2],
    occupazione: [Option<Occupazione>; 2],
}

fn sinba_genitori(g: &mut Gaps, s: &pb::Sinba) -> SinbaGenitori {
    let f = sinba_field;
    SinbaGenitori {
        cittadinanza: [Gaps::opt_text(&s.codice_cittadinanza_padre), Gaps::opt_text(&s.codice_cittadinanza_madre)],
        regione_residenza: [Gaps::opt_text(&s.codice_regione_residenza_padre), Gaps::opt_text(&s.codice_regione_residenza_madre)],
        titolo_studio: [
            g.code(f("titolo_studio_padre"), s.titolo_studio_padre, TitoloStudio::from_codice),
            g.code(f("titolo_studio_madre"), s.titolo_studio_madre, TitoloStudio::from_codice),
        ],
        occupazione: [
            g.code(f("occupazione_padre"), s.occupazione_padre, Occupazione::from_codice),
            g.code(f("occupazione_madre"), s.occupazione_madre, Occupazione::from_codice),
        ],
    }
}

/// How the case was reported and assessed, and what the courts decided.
struct SinbaSegnalazione {
    fonte: FonteSegnalazione,
    valutazione_minore: ValutazioneMinore,
    valutazione_famiglia: ValutazioneFamigliaMinore,
    autorita_giudiziaria: SiNo,
    data: Option<MeseAnno>,
    provvedimento: SiNo,
    data_provvedimento: Option<MeseAnno>,
    autorita_provvedimento: Option<AutoritaProvvedimento>,
    potesta_tutela: Option<PotestaTutela>,
    tipo_provvedimento: Option<TipoProvvedimentoGiudiziario>,
}

fn sinba_segnalazione(g: &mut Gaps, s: &pb::Sinba) -> SinbaSegnalazione {
    let f = sinba_field;
    SinbaSegnalazione {
        fonte: g.req(
            f("fonte_segnalazione"),
            "fonte della segnalazione",
            s.fonte_segnalazione,
            FonteSegnalazione::from_codice,
            FonteSegnalazione::ALL,
        ),
        valutazione_minore: g.req(
            f("valutazione_minore"),
            "valutazione del minore",
            s.valutazione_minore,
            ValutazioneMinore::from_codice,
            ValutazioneMinore::ALL,
        ),
        valutazione_famiglia: g.req(
            f("valutazione_famiglia_minore"),
            "valutazione della famiglia",
            s.valutazione_famiglia_minore,
            ValutazioneFamigliaMinore::from_codice,
            ValutazioneFamigliaMinore::ALL,
        ),
        autorita_giudiziaria: g.req(
            f("segnalazione_autorita_giudiziaria"),
            "segnalazione all'autorità giudiziaria",
            s.segnalazione_autorita_giudiziaria,
            SiNo::from_codice,
            SiNo::ALL,
        ),
        data: g.mese_anno(f("data_segnalazione"), &s.data_segnalazione),
        provvedimento: g.req(
            f("provvedimento_giudiziario"),
            "provvedimento giudiziario",
            s.provvedimento_giudiziario,
            SiNo::from_codice,
            SiNo::ALL,
        ),
        data_provvedimento: g.mese_anno(f("data_provvedimento_giudiziario"), &s.data_provvedimento_giudiziario),
        autorita_provvedimento: g.code(f("autorita_provvedimento"), s.autorita_provvedimento, AutoritaProvvedimento::from_codice),
        potesta_tutela: g.code(f("potesta_tutela"), s.potesta_tutela, PotestaTutela::from_codice),
        tipo_provvedimento: g.code(
            f("tipo_provvedimento_giudiziario"),
            s.tipo_provvedimento_giudiziario,
            TipoProvvedimentoGiudiziario::from_codice,
        ),
    }
}

/// Foster care (affido) and residential placement, when the minor has either.
struct SinbaInterventi {
    forma_affido: Option<FormaIntervento>,
    tipo_affido: Option<TipoInterventoAffido>,
    durata_affido: Option<DurataAffido>,
    carattere_affido: Option<CarattereAffido>,
    esito_affido: Option<EsitoAffido>,
    carattere_residenziale: Option<CarattereInserimentoResidenziale>,
    forma_residenziale: Option<FormaIntervento>,
    tipo_residenziale: Option<TipoInserimentoResidenziale>,
    esito_struttura: Option<EsitoInserimentoStruttura>,
}

fn sinba_interventi(g: &mut Gaps, s: &pb::Sinba) -> SinbaInterventi {
    let f = sinba_field;
    SinbaInterventi {
        forma_affido: g.code(f("forma_intervento_affido"), s.forma_intervento_affido, FormaIntervento::from_codice),
        tipo_affido: g.code(f("tipo_intervento_affido"), s.tipo_intervento_affido, TipoInterventoAffido::from_codice),
        durata_affido: g.code(f("durata_affido"), s.durata_affido, DurataAffido::from_codice),
        carattere_affido: g.code(f("carattere_affido"), s.carattere_affido, CarattereAffido::from_codice),
        esito_affido: g.code(f("esito_affido"), s.esito_affido, EsitoAffido::from_codice),
        carattere_residenziale: g.code(
            f("carattere_inserimento_residenziale"),
            s.carattere_inserimento_residenziale,
            CarattereInserimentoResidenziale::from_codice,
        ),
        forma_residenziale: g.code(f("forma_inserimento_residenziale"), s.forma_inserimento_residenziale, FormaIntervento::from_codice),
        tipo_residenziale: g.code(
            f("tipo_inserimento_residenziale"),
            s.tipo_inserimento_residenziale,
            TipoInserimentoResidenziale::from_codice,
        ),
        esito_struttura: g.code(f("esito_inserimento_struttura"), s.esito_inserimento_struttura, EsitoInserimentoStruttura::from_codice),
    }
}

/// Why and how the service closed the case, and who it worked with.
struct SinbaChiusura {
    motivazione: Option<MotivazioneChiusuraCarico>,
    situazione: Option<SituazioneChiusuraCarico>,
    collaborazioni: Option<CollaborazioniInterventi>,
}

fn sinba_chiusura(g: &mut Gaps, s: &pb::Sinba) -> SinbaChiusura {
    let f = sinba_field;
    SinbaChiusura {
        motivazione: g.code(f("motivazione_chiusura_carico"), s.motivazione_chiusura_carico, MotivazioneChiusuraCarico::from_codice),
        situazione: g.code(f("situazione_chiusura_carico"), s.situazione_chiusura_carico, SituazioneChiusuraCarico::from_codice),
        collaborazioni: g.code(f("collaborazioni_interventi"), s.collaborazioni_interventi, CollaborazioniInterventi::from_codice),
    }
}

/// The mapping's gaps, then the rules' findings on what it built (except where a gap
/// already explains them); none at all means the record passed every rule.
fn concludi<T: VoceFlusso>(g: Gaps, out: T, rules: Result<(), Vec<Violation>>) -> Result<Validato<T>, Vec<Violation>> {
    let mut all = g.out;
    if let Err(v) = rules {
        let gaps = all_paths(&all);
        all.extend(v.into_iter().filter(|x| !all_has_gap(&gaps, &x.path)));
    }
    if all.is_empty() { Ok(Validato::gia_validato(out)) } else { Err(all) }
}

/// The complete cooperation flow (one beneficiary, one prestazione) of a mapped record,
/// written as XML. Checks the header too, so a misconfigured ente is reported, not sent.
pub fn xml_cooperazione(ente: &EnteSiuss, id: &FlowId, rec: &Record) -> Result<Vec<u8>, Vec<Violation>> {
    let idf = ente.identificazione(id);
    let res = match rec {
        Record::Ps(b) => crate::writer::write_flusso_ps(
            Vec::new(),
            &FlussoPs { identificazione_flusso: idf, beneficiari: vec![b.clone()] },
            crate::rules::Canale::Cooperazione,
        ),
        Record::Sinba(s) => crate::writer::write_flusso_sinba(
            Vec::new(),
            &FlussoSinba { identificazione_flusso: idf, sinba: vec![s.clone()] },
            crate::rules::Canale::Cooperazione,
        ),
    };
    res.map_err(|e| match e {
        crate::writer::WriteError::Invalid(v) => v,
        other => vec![Violation { path: "flusso".into(), rule: Rule::Formato, message: other.to_string() }],
    })
}

/// A fingerprint of what INPS would receive for a record, independent of the flow header:
/// 64-bit FNV-1a over the record's XML, stable across builds and Rust versions (the ledger
/// compares it to decide whether a prestazione already sent has changed).
pub fn impronta(rec: &Record) -> Result<String, Vec<Violation>> {
    let ente =
        EnteSiuss { codice: "X000".into(), denominazione: String::new(), indirizzo: "X000".into(), cf_operatore: "00000000000".into() };
    let id = epoch().and_then(|d| FlowId::new("X000", rec.tipo(), d, 0).ok()).ok_or_else(Vec::new)?;
    let xml = xml_cooperazione(&ente, &id, rec)?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in xml {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_and_maiuscole_match_std() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "ab",
            "Roma",
            " Roma ",
            "\u{85}x",
            "x\u{a0}",
            "\u{3000}y\u{3000}",
            "é",
            " è ",
            "~",
            "\u{7f}",
            "d'Arco",
            "Nicolò",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
            assert_eq!(maiuscole(s), s.to_uppercase(), "{s:?}");
        }
    }
}

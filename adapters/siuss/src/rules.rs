//! Validation of PS/PSA/SINA and SINBA flows before they leave the hub.
//!
//! Two kinds of checks live here:
//! - the conditional rules of the spec tables (v2.0.1, tables 2–16) that the XSDs cannot
//!   express, e.g. CaratterePrestazione 1 needs DataInizioPrestazione and ImportoMensile;
//! - the XSD facets (lengths, digit patterns, cardinalities) that the wire model cannot
//!   enforce by its types because it holds plain strings and vectors.
//!
//! Together they make "validate passes" imply "the writer's output is schema-valid and
//! meets the spec", which is what lets the writer refuse bad records one by one in a batch.
//! Where INPS's own OpenAPI examples contradict the tables (zero quote amounts, quote sums
//! that do not add up, DataFine in a later year, 8-digit sequences, several prestazioni in a
//! cooperation flow), the tables win.
//!
//! Violation messages never include field values: paths carry indexes only, so a list of
//! violations can be logged or returned in an esito without leaking personal data.

use std::fmt;

use crate::cf::{self, CfError};
use crate::flow_id::{FlowId, MAX_NOME_FLUSSO};
use crate::model::*;

/// How the flow reaches INPS. Section 2.1 (note added in v2.0.1): a flow served by
/// `GET /flussi` carries exactly one beneficiary with one prestazione; portal uploads may
/// carry many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Canale {
    /// `GET /flussi` through PDND.
    Cooperazione,
    /// XML upload through the INPS web application.
    Portale,
}

/// Identifier of the rule that was broken, stable for programmatic handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    NomeFlussoVuoto,
    NomeFlussoLunghezza,
    NomeFlussoFormato,
    NomeFlussoEnte,
    NomeFlussoTipo,
    Lunghezza,
    Formato,
    CaratteriNonAmmessi,
    Cardinalita,
    CooperazioneUnicoBeneficiario,
    CooperazioneUnicaPrestazione,
    CodiceFiscale,
    CodiceFiscaleOmocodico,
    ResidenzaItaliaIncompleta,
    CarattereObbligatorio,
    PeriodicaSenzaDataInizio,
    PeriodicaSenzaImportoMensile,
    OccasionaleSenzaDataErogazione,
    OccasionaleSenzaImportoPrestazione,
    DsuIncompleta,
    DataFineSenzaDataInizio,
    DataFineAnnoDiverso,
    DataFinePrecedente,
    ImportoNonPositivo,
    ImportoNegativo,
    SommaQuote,
    PeriodoErogazione,
    OreServizioMinuti,
    AreaUtenzaObbligatoria,
    NumeroComponentiIsee,
    IdBeneficiarioIdentificante,
    /// A datum the flow needs is not in the cartella (mapping from core, [`crate::from_core`]).
    DatoMancante,
    /// The cartella's area has no unambiguous INPS AreaUtenza.
    AreaUtenzaNonMappabile,
    /// A code in the cartella is not in the XSD's list.
    CodiceNonAmmesso,
}

impl Rule {
    pub const fn code(self) -> &'static str {
        use Rule::*;
        match self {
            NomeFlussoVuoto => "NOME_FLUSSO_VUOTO",
            NomeFlussoLunghezza => "NOME_FLUSSO_LUNGHEZZA",
            NomeFlussoFormato => "NOME_FLUSSO_FORMATO",
            NomeFlussoEnte => "NOME_FLUSSO_ENTE",
            NomeFlussoTipo => "NOME_FLUSSO_TIPO",
            Lunghezza => "LUNGHEZZA",
            Formato => "FORMATO",
            CaratteriNonAmmessi => "CARATTERI_NON_AMMESSI",
            Cardinalita => "CARDINALITA",
            CooperazioneUnicoBeneficiario => "COOPERAZIONE_UNICO_BENEFICIARIO",
            CooperazioneUnicaPrestazione => "COOPERAZIONE_UNICA_PRESTAZIONE",
            CodiceFiscale => "CODICE_FISCALE",
            CodiceFiscaleOmocodico => "CODICE_FISCALE_OMOCODICO",
            ResidenzaItaliaIncompleta => "RESIDENZA_ITALIA_INCOMPLETA",
            CarattereObbligatorio => "CARATTERE_OBBLIGATORIO",
            PeriodicaSenzaDataInizio => "PERIODICA_SENZA_DATA_INIZIO",
            PeriodicaSenzaImportoMensile => "PERIODICA_SENZA_IMPORTO_MENSILE",
            OccasionaleSenzaDataErogazione => "OCCASIONALE_SENZA_DATA_EROGAZIONE",
            OccasionaleSenzaImportoPrestazione => "OCCASIONALE_SENZA_IMPORTO_PRESTAZIONE",
            DsuIncompleta => "DSU_INCOMPLETA",
            DataFineSenzaDataInizio => "DATA_FINE_SENZA_DATA_INIZIO",
            DataFineAnnoDiverso => "DATA_FINE_ANNO_DIVERSO",
            DataFinePrecedente => "DATA_FINE_PRECEDENTE",
            ImportoNonPositivo => "IMPORTO_NON_POSITIVO",
            ImportoNegativo => "IMPORTO_NEGATIVO",
            SommaQuote => "SOMMA_QUOTE",
            PeriodoErogazione => "PERIODO_EROGAZIONE",
            OreServizioMinuti => "ORE_SERVIZIO_MINUTI",
            AreaUtenzaObbligatoria => "AREA_UTENZA_OBBLIGATORIA",
            NumeroComponentiIsee => "NUMERO_COMPONENTI_ISEE",
            IdBeneficiarioIdentificante => "ID_BENEFICIARIO_IDENTIFICANTE",
            DatoMancante => "DATO_MANCANTE",
            AreaUtenzaNonMappabile => "AREA_UTENZA_NON_MAPPABILE",
            CodiceNonAmmesso => "CODICE_NON_AMMESSO",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One broken rule. `path` locates the field (`beneficiari[0].prestazioni_sociali[2].
/// importo_mensile`); `message` explains the rule in Italian and never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.path, self.message, self.rule)
    }
}

/// `parent.name`, formatted only when a violation is reported: valid records, the common
/// case, cost no path strings.
#[derive(Clone, Copy)]
pub(crate) struct Dot<'a>(pub(crate) &'a dyn fmt::Display, pub(crate) &'a str);

impl fmt::Display for Dot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// `list[index]`, formatted only when a violation is reported.
#[derive(Clone, Copy)]
pub(crate) struct Indice<'a>(pub(crate) &'a str, pub(crate) u64);

impl fmt::Display for Indice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

#[derive(Default)]
struct Checker {
    out: Vec<Violation>,
}

/// Characters XML 1.0 cannot carry at all; the writer would otherwise emit a document no
/// parser accepts.
fn xml_char_ok(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

impl Checker {
    fn push(&mut self, path: impl fmt::Display, rule: Rule, message: impl Into<String>) {
        self.out.push(Violation { path: path.to_string(), rule, message: message.into() });
    }

    /// XSD `minLength`/`maxLength` count characters, not bytes.
    fn text(&mut self, path: impl fmt::Display, value: &str, min: usize, max: usize) {
        let (n, xml_ok) = if value.bytes().all(|b| (0x20..0x80).contains(&b)) {
            // Printable ASCII (and DEL): one byte per character, all allowed in XML.
            (value.len(), true)
        } else if value.is_ascii() {
            // Below 0x80 only the C0 controls other than tab and line ends fall outside
            // `xml_char_ok`.
            let ok = value.bytes().all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'));
            (value.len(), ok)
        } else {
            (value.chars().count(), value.chars().all(xml_char_ok))
        };
        if n < min || n > max {
            self.push(&path, Rule::Lunghezza, format!("lunghezza {n} fuori dall'intervallo ammesso {min}..{max} caratteri"));
        }
        if !xml_ok {
            self.push(&path, Rule::CaratteriNonAmmessi, "contiene caratteri di controllo non ammessi in XML");
        }
    }

    fn digits(&mut self, path: impl fmt::Display, value: &str, n: usize) {
        if value.len() != n || !value.bytes().all(|c| c.is_ascii_digit()) {
            self.push(path, Rule::Formato, format!("attese esattamente {n} cifre"));
        }
    }

    fn opt_digits(&mut self, path: impl fmt::Display, value: Option<&str>, n: usize) {
        if let Some(v) = value {
            self.digits(path, v, n);
        }
    }

    /// Belfiore / catastale code: one letter and three digits (foreign states use `Z`).
    fn belfiore(&mut self, path: impl fmt::Display, value: &str) {
        let b = value.as_bytes();
        let ok = b.len() == 4 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit);
        if !ok {
            self.push(path, Rule::Formato, "codice catastale (Belfiore) atteso: una lettera maiuscola e tre cifre");
        }
    }

    fn anno(&mut self, path: impl fmt::Display, anno: u16) {
        if !(1000..=9999).contains(&anno) {
            self.push(path, Rule::Formato, "anno atteso di 4 cifre");
        }
    }

    fn codice_fiscale(&mut self, path: impl fmt::Display, value: &str) {
        match cf::verifica(value) {
            Ok(()) => {}
            Err(e @ CfError::OmocodiaNonRappresentabile) => {
                self.push(path, Rule::CodiceFiscaleOmocodico, e.to_string());
            }
            Err(e) => self.push(path, Rule::CodiceFiscale, e.to_string()),
        }
    }

    fn positive(&mut self, path: impl fmt::Display, v: Option<Importo>) {
        if let Some(v) = v
            && v.0 <= 0
        {
            self.push(path, Rule::ImportoNonPositivo, "l'importo deve essere maggiore di 0");
        }
    }

    fn non_negative(&mut self, path: impl fmt::Display, v: Option<Importo>) {
        if let Some(v) = v
            && v.0 < 0
        {
            self.push(path, Rule::ImportoNegativo, "l'importo non può essere negativo");
        }
    }

    fn finish(self) -> Result<(), Vec<Violation>> {
        if self.out.is_empty() { Ok(()) } else { Err(self.out) }
    }
}

/// Which of the two schemas a flow header belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    PsPsaSina,
    Sinba,
}

fn check_identificazione(c: &mut Checker, id: &IdentificazioneFlusso, schema: Schema) {
    let p = "identificazione_flusso";
    let nome = &id.nome;
    if nome.trim().is_empty() {
        c.push(format!("{p}.nome"), Rule::NomeFlussoVuoto, "il nome del flusso è obbligatorio");
    } else {
        if nome.chars().count() > MAX_NOME_FLUSSO {
            c.push(format!("{p}.nome"), Rule::NomeFlussoLunghezza, format!("il nome del flusso supera {MAX_NOME_FLUSSO} caratteri"));
        }
        match nome.parse::<FlowId>() {
            Err(e) => c.push(format!("{p}.nome"), Rule::NomeFlussoFormato, e.to_string()),
            Ok(fid) => {
                if fid.ente() != id.ente.codice {
                    c.push(format!("{p}.nome"), Rule::NomeFlussoEnte, "il codice ente nel nome del flusso differisce da Ente/@Codice");
                }
                let ok = match schema {
                    Schema::PsPsaSina => fid.tipo().is_ps(),
                    Schema::Sinba => !fid.tipo().is_ps(),
                };
                if !ok {
                    c.push(
                        format!("{p}.nome"),
                        Rule::NomeFlussoTipo,
                        match schema {
                            Schema::PsPsaSina => "un flusso PS_PSA_SINA deve avere tipo PS, PSA o SINA nel nome",
                            Schema::Sinba => "un flusso SINBA deve avere tipo SINBA nel nome",
                        },
                    );
                }
            }
        }
    }
    let e = &id.ente;
    let pe = Dot(&p, "ente");
    c.text(format_args!("{pe}.codice"), &e.codice, 1, 32);
    if let Some(d) = &e.denominazione {
        c.text(format_args!("{pe}.denominazione"), d, 1, 100);
    }
    c.belfiore(format_args!("{pe}.indirizzo"), &e.indirizzo);
    c.codice_fiscale(format_args!("{pe}.cf_operatore"), &e.cf_operatore);
}

/// Checks a flow header on its own (used by the streaming writer before anything is written).
pub fn validate_identificazione(id: &IdentificazioneFlusso, schema: Schema) -> Result<(), Vec<Violation>> {
    let mut c = Checker::default();
    check_identificazione(&mut c, id, schema);
    c.finish()
}

/// Full check of a PS/PSA/SINA flow; returns every violation found.
pub fn validate_ps(flusso: &FlussoPs, canale: Canale) -> Result<(), Vec<Violation>> {
    let mut c = Checker::default();
    check_identificazione(&mut c, &flusso.identificazione_flusso, Schema::PsPsaSina);
    let n = flusso.beneficiari.len();
    if n == 0 {
        c.push("beneficiari", Rule::Cardinalita, "il flusso deve contenere almeno un beneficiario");
    }
    if canale == Canale::Cooperazione && n > 1 {
        c.push("beneficiari", Rule::CooperazioneUnicoBeneficiario, "in cooperazione applicativa un flusso contiene un solo beneficiario");
    }
    for (i, b) in flusso.beneficiari.iter().enumerate() {
        let p = Indice("beneficiari", i as u64);
        check_beneficiario(&mut c, b, &p);
        if canale == Canale::Cooperazione && b.prestazioni_sociali.len() > 1 {
            c.push(
                format!("{p}.prestazioni_sociali"),
                Rule::CooperazioneUnicaPrestazione,
                "in cooperazione applicativa un flusso contiene una sola prestazione",
            );
        }
    }
    c.finish()
}

/// Checks one beneficiary; `path` prefixes every violation path (e.g. `beneficiari[41]`).
pub fn validate_beneficiario(b: &Beneficiario, path: &str) -> Result<(), Vec<Violation>> {
    validate_beneficiario_at(b, &path)
}

/// [`validate_beneficiario`] with a path formatted only if a violation is found.
pub(crate) fn validate_beneficiario_at(b: &Beneficiario, path: &dyn fmt::Display) -> Result<(), Vec<Violation>> {
    let mut c = Checker::default();
    check_beneficiario(&mut c, b, path);
    c.finish()
}

/// Every rule checked here concerns the beneficiary's own fields (codice fiscale,
/// anagrafica, indirizzi) or one prestazione at a time; across prestazioni there is only
/// "at least one". [`crate::validato::Validato::unisci`] relies on this to merge two valid
/// beneficiaries without checking them again: a rule that looks at several prestazioni
/// together (a maximum, duplicates) must be checked there too.
fn check_beneficiario(c: &mut Checker, b: &Beneficiario, p: &dyn fmt::Display) {
    c.codice_fiscale(format_args!("{p}.codice_fiscale"), &b.codice_fiscale);

    let a = &b.anagrafica;
    let pa = Dot(p, "anagrafica");
    c.text(format_args!("{pa}.cognome"), &a.cognome, 1, 36);
    c.text(format_args!("{pa}.nome"), &a.nome, 1, 36);
    c.anno(format_args!("{pa}.anno_nascita"), a.anno_nascita);
    c.belfiore(format_args!("{pa}.luogo_nascita"), &a.luogo_nascita);
    c.digits(format_args!("{pa}.codice_cittadinanza"), &a.codice_cittadinanza, 3);
    c.opt_digits(format_args!("{pa}.codice_seconda_cittadinanza"), a.codice_seconda_cittadinanza.as_deref(), 3);

    if b.indirizzi.is_empty() || b.indirizzi.len() > 5 {
        c.push(format!("{p}.indirizzi"), Rule::Cardinalita, "da 1 a 5 indirizzi per beneficiario");
    }
    for (i, ind) in b.indirizzi.iter().enumerate() {
        check_indirizzo(c, ind, &format_args!("{p}.indirizzi[{i}]"));
    }

    if b.prestazioni_sociali.is_empty() {
        c.push(format!("{p}.prestazioni_sociali"), Rule::Cardinalita, "almeno una prestazione per beneficiario");
    }
    for (i, ps) in b.prestazioni_sociali.iter().enumerate() {
        check_prestazione(c, ps, &format_args!("{p}.prestazioni_sociali[{i}]"));
    }
}

fn check_indirizzo(c: &mut Checker, ind: &Indirizzo, p: &dyn fmt::Display) {
    c.digits(format_args!("{p}.codice_nazione"), &ind.codice_nazione, 3);
    c.opt_digits(format_args!("{p}.codice_regione"), ind.codice_regione.as_deref(), 2);
    c.opt_digits(format_args!("{p}.codice_comune"), ind.codice_comune.as_deref(), 6);
    if ind.codice_nazione == NAZIONE_ITALIA {
        if ind.codice_regione.is_none() {
            c.push(
                format!("{p}.codice_regione"),
                Rule::ResidenzaItaliaIncompleta,
                "codice regione obbligatorio se la nazione è Italia (380)",
            );
        }
        if ind.codice_comune.is_none() {
            c.push(
                format!("{p}.codice_comune"),
                Rule::ResidenzaItaliaIncompleta,
                "codice comune obbligatorio se la nazione è Italia (380)",
            );
        }
    }
}

fn check_prestazione(c: &mut Checker, ps: &PrestazioneSociale, p: &dyn fmt::Display) {
    let f = |name: &'static str| Dot(p, name);

    c.text(f("codice_prestazione"), &ps.codice_prestazione, 5, 10);
    c.text(f("denominazione_prestazione"), &ps.denominazione_prestazione, 10, 200);
    c.text(f("protocollo_domanda"), &ps.protocollo_domanda, 1, 32);

    match ps.carattere_prestazione {
        None => c.push(
            f("carattere_prestazione"),
            Rule::CarattereObbligatorio,
            "CaratterePrestazione è obbligatorio (1 periodica, 2 occasionale)",
        ),
        Some(CaratterePrestazione::Periodica) => {
            if ps.data_inizio_prestazione.is_none() {
                c.push(
                    f("data_inizio_prestazione"),
                    Rule::PeriodicaSenzaDataInizio,
                    "obbligatoria per prestazione periodica (CaratterePrestazione 1)",
                );
            }
            if ps.importo_mensile.is_none() {
                c.push(
                    f("importo_mensile"),
                    Rule::PeriodicaSenzaImportoMensile,
                    "obbligatorio per prestazione periodica (CaratterePrestazione 1)",
                );
            }
        }
        Some(CaratterePrestazione::Occasionale) => {
            if ps.data_erogazione_prestazione.is_none() {
                c.push(
                    f("data_erogazione_prestazione"),
                    Rule::OccasionaleSenzaDataErogazione,
                    "obbligatoria per prestazione occasionale (CaratterePrestazione 2)",
                );
            }
            if ps.importo_prestazione.is_none() {
                c.push(
                    f("importo_prestazione"),
                    Rule::OccasionaleSenzaImportoPrestazione,
                    "obbligatorio per prestazione occasionale (CaratterePrestazione 2)",
                );
            }
        }
    }

    // An empty NumeroProtocolloDSU is schema-valid (minLength 0) but says nothing, so it
    // counts as absent for the all-or-nothing rule.
    let numero = ps.numero_protocollo_dsu.as_deref().filter(|s| !s.trim().is_empty());
    let present = [numero.is_some(), ps.anno_protocollo_dsu.is_some(), ps.data_dsu.is_some()];
    if present.iter().any(|&x| x) && !present.iter().all(|&x| x) {
        let names = ["numero_protocollo_dsu", "anno_protocollo_dsu", "data_dsu"];
        for (name, here) in names.iter().zip(present) {
            if !here {
                c.push(
                    f(name),
                    Rule::DsuIncompleta,
                    "i dati DSU (numero protocollo, anno protocollo, data) vanno compilati tutti o nessuno",
                );
            }
        }
    }
    if let Some(n) = &ps.numero_protocollo_dsu {
        c.text(f("numero_protocollo_dsu"), n, 0, 30);
    }
    if let Some(a) = ps.anno_protocollo_dsu {
        c.anno(f("anno_protocollo_dsu"), a);
    }

    if let Some(fine) = ps.data_fine_prestazione {
        match ps.data_inizio_prestazione {
            None => c.push(f("data_fine_prestazione"), Rule::DataFineSenzaDataInizio, "DataFinePrestazione richiede DataInizioPrestazione"),
            Some(inizio) => {
                if fine.anno() != inizio.anno() {
                    c.push(
                        f("data_fine_prestazione"),
                        Rule::DataFineAnnoDiverso,
                        "DataFinePrestazione deve cadere nello stesso anno di DataInizioPrestazione",
                    );
                }
                if fine < inizio {
                    c.push(f("data_fine_prestazione"), Rule::DataFinePrecedente, "DataFinePrestazione precede DataInizioPrestazione");
                }
            }
        }
    }

    c.positive(f("importo_prestazione"), ps.importo_prestazione);
    c.positive(f("importo_mensile"), ps.importo_mensile);
    c.positive(f("importo_quota_ente"), ps.importo_quota_ente);
    c.non_negative(f("importo_quota_utente"), ps.importo_quota_utente);
    c.positive(f("importo_quota_ssn"), ps.importo_quota_ssn);
    // No sign rule in the tables for these two statistical amounts, but a negative maximum
    // or threshold is meaningless and would only be a sign error upstream.
    c.non_negative(f("importo_quota_richiesta"), ps.importo_quota_richiesta);
    c.non_negative(f("importo_soglia_isee"), ps.importo_soglia_isee);

    let quote = [ps.importo_quota_ente, ps.importo_quota_utente, ps.importo_quota_ssn];
    if quote.iter().any(Option::is_some) {
        let riferimento = match ps.carattere_prestazione {
            Some(CaratterePrestazione::Periodica) => ps.importo_mensile.map(|i| (i, "ImportoMensile")),
            Some(CaratterePrestazione::Occasionale) => ps.importo_prestazione.map(|i| (i, "ImportoPrestazione")),
            None => None,
        };
        // Without the reference amount the missing field is already reported above.
        if let Some((tot, nome)) = riferimento {
            let somma: i128 = quote.iter().flatten().map(|q| i128::from(q.0)).sum();
            if somma != i128::from(tot.0) {
                c.push(
                    format!("{p}.importo_quota_*"),
                    Rule::SommaQuote,
                    format!("la somma delle quote (ente, utente, SSN) deve essere uguale a {nome}"),
                );
            }
        }
    }

    if let Some(m) = ps.periodo_erogazione
        && !(1..=12).contains(&m)
    {
        c.push(f("periodo_erogazione"), Rule::PeriodoErogazione, "PeriodoErogazione va da 1 a 12");
    }
    if let Some(o) = ps.ore_servizio_mensile
        && o.minuti > 59
    {
        c.push(f("ore_servizio_mensile"), Rule::OreServizioMinuti, "OreServizioMensile è in formato HH,MM: i minuti vanno da 00 a 59");
    }

    if ps.presa_carico == SiNo::Si && ps.area_utenza.is_none() {
        c.push(f("area_utenza"), Rule::AreaUtenzaObbligatoria, "AreaUtenza obbligatoria quando PresaCarico = 1");
    }

    if let Some(s) = &ps.sina {
        for (i, codice) in s.necessita_interventi_sociali.iter().enumerate() {
            c.text(format_args!("{p}.sina.necessita_interventi_sociali[{i}]"), codice, 5, 10);
        }
    }
}

/// Full check of a SINBA flow.
///
/// In cooperation the flow carries one SINBA record with a single CodicePrestazione: INPS's
/// own esito example rejects, with "solo un beneficiario e una prestazione sociale", a SINBA
/// flow whose record lists two codes.
pub fn validate_sinba(flusso: &FlussoSinba, canale: Canale) -> Result<(), Vec<Violation>> {
    let mut c = Checker::default();
    check_identificazione(&mut c, &flusso.identificazione_flusso, Schema::Sinba);
    let n = flusso.sinba.len();
    if n == 0 {
        c.push("sinba", Rule::Cardinalita, "il flusso deve contenere almeno un elemento SINBA");
    }
    if canale == Canale::Cooperazione && n > 1 {
        c.push("sinba", Rule::CooperazioneUnicoBeneficiario, "in cooperazione applicativa un flusso contiene un solo beneficiario");
    }
    for (i, s) in flusso.sinba.iter().enumerate() {
        let p = Indice("sinba", i as u64);
        check_sinba(&mut c, s, &p);
        if canale == Canale::Cooperazione && s.prestazioni.len() > 1 {
            c.push(
                format!("{p}.prestazioni"),
                Rule::CooperazioneUnicaPrestazione,
                "in cooperazione applicativa un flusso contiene una sola prestazione",
            );
        }
    }
    c.finish()
}

/// Checks one SINBA record; `path` prefixes every violation path.
pub fn validate_sinba_record(s: &Sinba, path: &str) -> Result<(), Vec<Violation>> {
    validate_sinba_at(s, &path)
}

/// [`validate_sinba_record`] with a path formatted only if a violation is found.
pub(crate) fn validate_sinba_at(s: &Sinba, path: &dyn fmt::Display) -> Result<(), Vec<Violation>> {
    let mut c = Checker::default();
    check_sinba(&mut c, s, path);
    c.finish()
}

/// As for [`check_beneficiario`], the codici prestazione are checked one at a time plus
/// "at least one"; [`crate::validato::Validato::unisci`] relies on it.
fn check_sinba(c: &mut Checker, s: &Sinba, p: &dyn fmt::Display) {
    let f = |name: &'static str| Dot(p, name);
    c.text(f("id_beneficiario"), &s.id_beneficiario, 1, 20);
    // SINBA identifies minors without a codice fiscale by design; a CF-shaped id means the
    // source system put the real identifier where a pseudonym belongs.
    if cf::sembra_codice_fiscale(&s.id_beneficiario) {
        c.push(
            f("id_beneficiario"),
            Rule::IdBeneficiarioIdentificante,
            "IDBeneficiario ha la forma di un codice fiscale: SINBA richiede un identificativo non personale",
        );
    }
    if s.prestazioni.is_empty() {
        c.push(f("prestazioni"), Rule::Cardinalita, "almeno un CodicePrestazione");
    }
    for (i, codice) in s.prestazioni.iter().enumerate() {
        c.text(format_args!("{p}.prestazioni[{i}]"), codice, 5, 10);
    }
    if s.famiglia.is_empty() {
        c.push(f("famiglia"), Rule::Cardinalita, "almeno una ComposizioneFamiglia");
    }
    c.opt_digits(f("codice_cittadinanza_padre"), s.codice_cittadinanza_padre.as_deref(), 3);
    c.opt_digits(f("codice_cittadinanza_madre"), s.codice_cittadinanza_madre.as_deref(), 3);
    c.opt_digits(f("codice_regione_residenza_padre"), s.codice_regione_residenza_padre.as_deref(), 2);
    c.opt_digits(f("codice_regione_residenza_madre"), s.codice_regione_residenza_madre.as_deref(), 2);
    if let Some(n) = s.numero_componenti_isee
        && !(1..=9).contains(&n)
    {
        c.push(f("numero_componenti_isee"), Rule::NumeroComponentiIsee, "NumeroComponentiISEE va da 1 a 9");
    }
    c.anno(f("anno_nascita"), s.anno_nascita);
    c.digits(f("codice_nazione_residenza"), &s.codice_nazione_residenza, 3);
    c.opt_digits(f("codice_regione_residenza"), s.codice_regione_residenza.as_deref(), 2);
    if s.codice_nazione_residenza == NAZIONE_ITALIA && s.codice_regione_residenza.is_none() {
        c.push(
            f("codice_regione_residenza"),
            Rule::ResidenzaItaliaIncompleta,
            "codice regione di residenza obbligatorio se la nazione è Italia (380)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Checker::text` as first written: count and check the characters one by one.
    fn text_slow(value: &str, min: usize, max: usize) -> Vec<Violation> {
        let mut c = Checker::default();
        let n = value.chars().count();
        if n < min || n > max {
            c.push("p", Rule::Lunghezza, format!("lunghezza {n} fuori dall'intervallo ammesso {min}..{max} caratteri"));
        }
        if !value.chars().all(xml_char_ok) {
            c.push("p", Rule::CaratteriNonAmmessi, "contiene caratteri di controllo non ammessi in XML");
        }
        c.out
    }

    #[test]
    fn text_checks_match_the_char_by_char_ones() {
        for s in [
            "",
            "ROSSI",
            "D'ARCO",
            "NICOLÒ",
            "tab\there",
            "line\r\nend",
            "bell\u{7}",
            "del\u{7f}",
            "nul\0",
            "\u{fffe}",
            "\u{ffff}x",
            "emoji 😀",
            "àèìòù àèìòù",
            "0123456789",
        ] {
            for (min, max) in [(1, 5), (0, 30), (10, 200)] {
                let mut c = Checker::default();
                c.text("p", s, min, max);
                assert_eq!(c.out, text_slow(s, min, max), "{s:?} {min}..{max}");
            }
        }
    }
}

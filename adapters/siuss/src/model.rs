//! Wire model of the two SIUSS flows: PS/PSA/SINA (`PS_PSA_SINA201812.xsd`) and SINBA
//! (`SINBA.xsd`), both in namespace `http://inps.it/Casellario`.
//!
//! The structs mirror the XSD one to one (field names are the element and attribute names
//! in snake_case) and keep every attribute the XSD declares optional as `Option`, even where
//! the spec tables make it conditionally mandatory: those conditions live in [`crate::rules`],
//! so that a record coming from a cartella can be checked and every problem reported at once
//! instead of failing at construction time. Value types with a closed domain (dates, code
//! lists, amounts, service hours) are typed here so that the writer can never format them
//! wrongly.

use std::fmt;

/// Namespace shared by both XSDs.
pub const NAMESPACE: &str = "http://inps.it/Casellario";

/// Error building one of the small value types of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("data non valida: {0}")]
    Data(String),
    #[error("mese/anno non valido: {0}")]
    MeseAnno(String),
    #[error("ore di servizio non valide: {0}")]
    OreServizio(String),
    #[error("importo non valido: {0}")]
    Importo(String),
}

/// Calendar date written as `xs:date` (`AAAA-MM-GG`). Only constructible when valid, and
/// restricted to four-digit years because the XSD date lexical form would otherwise need a
/// sign or more digits that INPS has never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Data {
    anno: u16,
    mese: u8,
    giorno: u8,
}

fn is_leap(anno: u16) -> bool {
    (anno.is_multiple_of(4) && !anno.is_multiple_of(100)) || anno.is_multiple_of(400)
}

fn days_in_month(anno: u16, mese: u8) -> u8 {
    match mese {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(anno) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Data {
    pub fn new(anno: u16, mese: u8, giorno: u8) -> Result<Self, ValueError> {
        if !(1000..=9999).contains(&anno) {
            return Err(ValueError::Data(format!("anno {anno} fuori intervallo")));
        }
        if !(1..=12).contains(&mese) {
            return Err(ValueError::Data(format!("mese {mese} fuori intervallo")));
        }
        if giorno == 0 || giorno > days_in_month(anno, mese) {
            return Err(ValueError::Data(format!("giorno {giorno} non esiste in {anno}-{mese:02}")));
        }
        Ok(Self { anno, mese, giorno })
    }

    /// Parses `AAAA-MM-GG`.
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::Data(format!("formato atteso AAAA-MM-GG, trovato {s:?}"));
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()) {
            return Err(bad());
        }
        // Ten bytes, dashes at 4 and 7, ASCII digits elsewhere.
        let d = |i: usize| b[i] - b'0';
        let anno = u16::from(d(0)) * 1000 + u16::from(d(1)) * 100 + u16::from(d(2)) * 10 + u16::from(d(3));
        Self::new(anno, d(5) * 10 + d(6), d(8) * 10 + d(9))
    }

    /// Parses the compact `AAAAMMGG` form used inside flow ids.
    pub fn parse_compact(s: &str) -> Result<Self, ValueError> {
        if s.len() != 8 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ValueError::Data(format!("formato atteso AAAAMMGG, trovato {s:?}")));
        }
        let anno = s[0..4].parse::<u16>().map_err(|e| ValueError::Data(e.to_string()))?;
        let mese = s[4..6].parse::<u8>().map_err(|e| ValueError::Data(e.to_string()))?;
        let giorno = s[6..8].parse::<u8>().map_err(|e| ValueError::Data(e.to_string()))?;
        Self::new(anno, mese, giorno)
    }

    pub fn anno(self) -> u16 {
        self.anno
    }
    pub fn mese(self) -> u8 {
        self.mese
    }
    pub fn giorno(self) -> u8 {
        self.giorno
    }

    /// `AAAAMMGG`, as used in flow ids.
    pub fn compact(self) -> String {
        format!("{:04}{:02}{:02}", self.anno, self.mese, self.giorno)
    }
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.anno, self.mese, self.giorno)
    }
}

/// SINBA `DataMeseAnnoType`: `MM/AAAA` with the year limited to 1900–2099 by the XSD pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeseAnno {
    anno: u16,
    mese: u8,
}

impl MeseAnno {
    pub fn new(mese: u8, anno: u16) -> Result<Self, ValueError> {
        if !(1..=12).contains(&mese) || !(1900..=2099).contains(&anno) {
            return Err(ValueError::MeseAnno(format!("{mese:02}/{anno:04}")));
        }
        Ok(Self { anno, mese })
    }

    /// Parses `MM/AAAA`.
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::MeseAnno(format!("formato atteso MM/AAAA, trovato {s:?}"));
        let (m, a) = s.split_once('/').ok_or_else(bad)?;
        if m.len() != 2 || a.len() != 4 || !m.bytes().chain(a.bytes()).all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        Self::new(m.parse().map_err(|_| bad())?, a.parse().map_err(|_| bad())?)
    }

    pub fn mese(self) -> u8 {
        self.mese
    }
    pub fn anno(self) -> u16 {
        self.anno
    }
}

impl fmt::Display for MeseAnno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:04}", self.mese, self.anno)
    }
}

/// Amount in euro cents. Kept signed so that a wrong sign coming from a source system is
/// representable and reported by the rules instead of being silently clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Importo(pub i64);

impl Importo {
    pub const ZERO: Importo = Importo(0);

    pub fn centesimi(self) -> i64 {
        self.0
    }

    /// Parses a decimal euro amount with at most two fraction digits; accepts `.` or `,`
    /// as separator because cartella exports use both.
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::Importo(format!("{s:?}"));
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = match body.split_once(['.', ',']) {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() || frac.len() > 2 || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let euro: i64 = int.parse().map_err(|_| bad())?;
        let cent: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
            _ => frac.parse().map_err(|_| bad())?,
        };
        let v = euro.checked_mul(100).and_then(|e| e.checked_add(cent)).ok_or_else(bad)?;
        Ok(Importo(if neg { -v } else { v }))
    }
}

impl fmt::Display for Importo {
    /// `xs:decimal` lexical form with exactly two fraction digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// `OreServizioMensile`: the spec gives the format `HH,MM` (hours and minutes) but the XSD
/// type is `xs:decimal`, where a comma is illegal. INPS's examples carry `2.59`, i.e. the
/// minutes go after a dot as two digits, not as a fraction of an hour; that is the form
/// written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OreServizio {
    pub ore: u32,
    pub minuti: u8,
}

impl OreServizio {
    pub fn new(ore: u32, minuti: u8) -> Self {
        Self { ore, minuti }
    }

    pub fn da_minuti(totale: u32) -> Self {
        Self { ore: totale / 60, minuti: (totale % 60) as u8 }
    }

    pub fn minuti_totali(self) -> u64 {
        u64::from(self.ore) * 60 + u64::from(self.minuti)
    }

    /// Accepts `HH,MM`, `HH.MM` or `HH`; minutes must be two digits so that `2,5` is not
    /// silently read as either 5 or 50 minutes.
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::OreServizio(format!("formato atteso HH,MM, trovato {s:?}"));
        let (h, m) = match s.split_once([',', '.']) {
            Some((h, m)) => (h, Some(m)),
            None => (s, None),
        };
        if h.is_empty() || !h.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let ore = h.parse().map_err(|_| bad())?;
        let minuti = match m {
            None => 0,
            Some(m) if m.len() == 2 && m.bytes().all(|c| c.is_ascii_digit()) => m.parse().map_err(|_| bad())?,
            Some(_) => return Err(bad()),
        };
        Ok(Self { ore, minuti })
    }
}

impl fmt::Display for OreServizio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.ore, self.minuti)
    }
}

/// The code lists of this module, for the writer: each value is written as its code.
pub(crate) trait Codice: Copy {
    fn codice_xml(self) -> &'static str;
}

macro_rules! codelist {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $code:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// Code as written in the XML.
            pub const fn codice(self) -> &'static str {
                match self { $($name::$var => $code),+ }
            }

            pub fn from_codice(s: &str) -> Option<Self> {
                match s { $($code => Some($name::$var),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.codice())
            }
        }

        impl Codice for $name {
            fn codice_xml(self) -> &'static str {
                self.codice()
            }
        }
    };
}

codelist!(
    /// Used for every yes/no attribute of both XSDs (1 = sì, 2 = no).
    SiNo { Si = "1", No = "2" }
);

codelist!(
    /// `TipoOperazioneType`: `C` cancels a prestazione sent earlier.
    #[derive(Default)]
    TipoOperazione { #[default] Inserimento = "I", Cancellazione = "C" }
);

codelist!(Genere { Maschio = "1", Femmina = "2" });

codelist!(PresenzaProvaMezzi {
    /// Soggetta a ISEE.
    Isee = "1",
    /// Prova dei mezzi non tramite ISEE.
    AltraProvaMezzi = "2",
    /// Di norma soggetta a ISEE, esentata per questo beneficiario.
    IseeEsentata = "3",
    /// Nessuna prova dei mezzi.
    Nessuna = "4",
});

codelist!(CaratterePrestazione { Periodica = "1", Occasionale = "2" });

codelist!(AreaUtenza {
    FamigliaMinori = "1",
    DisabilitaNonAutosufficienza = "2",
    PovertaEsclusioneSociale = "3",
});

codelist!(Mobilita { SiSpostaDaSolo = "1", SiSpostaAssistito = "2", NonSiSposta = "3" });
codelist!(AttivitaVitaQuotidiana {
    Autonomo = "1",
    ParzialmenteDipendente = "2",
    TotalmenteDipendente = "3",
});
codelist!(DisturbiAreaCognitiva { Lievi = "1", Moderati = "2", Gravi = "3" });
codelist!(DisturbiComportamentali { Assenti = "1", Presenti = "2" });
codelist!(NecessitaCureSanitarie { Bassa = "1", Media = "2", Alta = "3" });
codelist!(AreaReddituale {
    AutonomoInEquilibrio = "1",
    AiutoDaParenti = "2",
    BisognoSenzaAiuti = "3",
});
codelist!(AreaSupporto { RetePresente = "1", RetePresenzaParziale = "2", ReteAssente = "3" });
codelist!(FonteDerivazioneValutazione {
    Uvm = "1",
    CartellaSociale = "2",
    AltraDocumentazione = "3",
    RaccoltaDiretta = "4",
});
codelist!(StrumentoValutazione {
    Svama = "1",
    Aged = "2",
    Rug = "3",
    Sosia = "4",
    SchemaPolare = "5",
    Valgraf = "6",
    Altro = "7",
});
codelist!(InvCiv {
    Parziale75 = "1",
    TotaleConAccompagnamento = "2",
    TotaleSenzaAccompagnamento = "3",
    Npi = "4",
    L104Art3Comma1 = "5",
    L104Art3Comma3 = "6",
    L104Art12 = "7",
    L104Art13 = "8",
});
codelist!(FonteDerivazioneInvalidita { CertificazioneVerificata = "1", Dichiarazione = "2" });

// ---------------------------------------------------------------------------------------
// PS / PSA / SINA
// ---------------------------------------------------------------------------------------

/// `EnteType`, shared by both flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ente {
    /// Codice ente as known to INPS (1–32 characters).
    pub codice: String,
    pub denominazione: Option<String>,
    /// Belfiore code of the ente's seat (4 characters).
    pub indirizzo: String,
    pub cf_operatore: String,
}

/// `IdentificazioneFlussoType`, shared by both flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentificazioneFlusso {
    /// `{ente}.{PS|PSA|SINA|SINBA}.{AAAAMMGG}.{NNNNNNN}`; see [`crate::flow_id::FlowId`].
    pub nome: String,
    pub ente: Ente,
}

/// Root `Flusso` of `PS_PSA_SINA201812.xsd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlussoPs {
    pub identificazione_flusso: IdentificazioneFlusso,
    pub beneficiari: Vec<Beneficiario>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beneficiario {
    pub codice_fiscale: String,
    pub anagrafica: Anagrafica,
    /// 1 to 5 occurrences.
    pub indirizzi: Vec<Indirizzo>,
    /// At least one.
    pub prestazioni_sociali: Vec<PrestazioneSociale>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anagrafica {
    pub cognome: String,
    pub nome: String,
    pub anno_nascita: u16,
    /// Belfiore code of the birth place (foreign countries use the `Z` codes).
    pub luogo_nascita: String,
    pub genere: Genere,
    /// Three digits; `990` = not available.
    pub codice_cittadinanza: String,
    pub codice_seconda_cittadinanza: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indirizzo {
    pub codice_regione: Option<String>,
    pub codice_comune: Option<String>,
    pub codice_nazione: String,
}

/// Country code of Italy in the codification used by `CodiceNazione`.
pub const NAZIONE_ITALIA: &str = "380";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrestazioneSociale {
    pub tipo_operazione: TipoOperazione,
    pub presenza_prova_mezzi: PresenzaProvaMezzi,
    pub carattere_prestazione: Option<CaratterePrestazione>,
    pub numero_protocollo_dsu: Option<String>,
    pub anno_protocollo_dsu: Option<u16>,
    pub data_dsu: Option<Data>,
    pub codice_prestazione: String,
    pub denominazione_prestazione: String,
    pub protocollo_domanda: String,
    pub data_evento: Option<Data>,
    pub data_inizio_prestazione: Option<Data>,
    pub data_fine_prestazione: Option<Data>,
    pub data_erogazione_prestazione: Option<Data>,
    pub importo_prestazione: Option<Importo>,
    /// Months, 1–12.
    pub periodo_erogazione: Option<u8>,
    pub importo_mensile: Option<Importo>,
    pub importo_quota_ente: Option<Importo>,
    pub importo_quota_utente: Option<Importo>,
    pub importo_quota_ssn: Option<Importo>,
    pub importo_quota_richiesta: Option<Importo>,
    pub importo_soglia_isee: Option<Importo>,
    pub ore_servizio_mensile: Option<OreServizio>,
    pub presa_carico: SiNo,
    pub area_utenza: Option<AreaUtenza>,
    pub sina: Option<Sina>,
}

/// `SINAType`: assessment of a non-self-sufficient person attached to a prestazione.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sina {
    pub mobilita: Mobilita,
    pub attivita_vita_quotidiana: AttivitaVitaQuotidiana,
    pub disturbi_area_cognitiva: Option<DisturbiAreaCognitiva>,
    pub disturbi_comportamentali: DisturbiComportamentali,
    pub necessita_cure_sanitarie: Option<NecessitaCureSanitarie>,
    pub area_reddituale: AreaReddituale,
    pub area_supporto: AreaSupporto,
    pub fonte_derivazione_valutazione: FonteDerivazioneValutazione,
    pub strumento_valutazione: StrumentoValutazione,
    pub fonte_derivazione_invalidita: Option<FonteDerivazioneInvalidita>,
    /// Codici prestazione needed; empty means the element is omitted.
    pub necessita_interventi_sociali: Vec<String>,
    /// Empty means the element is omitted.
    pub invalidita_civile: Vec<InvCiv>,
}

// ---------------------------------------------------------------------------------------
// SINBA
// ---------------------------------------------------------------------------------------

codelist!(ComposizioneFamiglia {
    Madre = "1",
    Padre = "2",
    FratelliSorelle = "3",
    Nonni = "4",
    CompagnoGenitore = "5",
    AltriConviventi = "6",
});
codelist!(CondizioneMinore {
    NonOrfano = "1",
    OrfanoEntrambi = "2",
    OrfanoPadre = "3",
    OrfanoMadre = "4",
    GenitoriIgnoti = "5",
});
codelist!(LuogoVita {
    PropriaFamiglia = "1",
    PressoParenti = "2",
    FamigliaAffidataria = "3",
    StrutturaResidenzialeSociale = "4",
    StrutturaResidenzialeSanitaria = "5",
    IstitutoPenaleMinorile = "6",
    AmiciConoscenti = "7",
    SenzaDimora = "8",
});
codelist!(ScuolaFrequentata {
    Nessuna = "1",
    Struttura = "2",
    AsiloNido = "3",
    Infanzia = "4",
    Primaria = "5",
    SecondariaPrimoGrado = "6",
    SecondariaSecondoGrado = "7",
    FormazioneProfessionale = "8",
});
codelist!(CondizioneLavoro {
    Inattivo = "1",
    Occupato = "2",
    Disoccupato = "3",
    CercaPrimaOccupazione = "4",
});
codelist!(TipoDisabilita { Fisica = "1", Psichica = "2", Sensoriale = "3", Plurima = "4" });
codelist!(InvCivCertificazioni {
    Parziale75 = "1",
    TotaleConAccompagnamento = "2",
    TotaleSenzaAccompagnamento = "3",
    Npi = "4",
    L104 = "5",
});
codelist!(TitoloStudio {
    Nessuno = "1",
    LicenzaElementare = "2",
    LicenzaMedia = "3",
    QualificaProfessionale = "4",
    Diploma = "5",
    Laurea = "6",
});
codelist!(Occupazione {
    Occupato = "1",
    Disoccupato = "2",
    CercaPrimaOccupazione = "3",
    Casalinga = "4",
    Studente = "5",
    Ritirato = "6",
    Inabile = "7",
    AltraCondizione = "8",
});
codelist!(FonteSegnalazione {
    ServizioSocialeGiustiziaMinorile = "1",
    AltroServizioSociale = "2",
    ServiziSanitari = "3",
    PrivatoSociale = "4",
    ForzeOrdine = "5",
    BeneficiarioStesso = "6",
    GenitoriAffidatariTutore = "7",
    FamiliariConviventi = "8",
    ParentiNonConviventi = "9",
    TribunaleOrdinario = "10",
    AutoritaGiudiziarieMinorili = "11",
    ProfessionistaPrivato = "12",
    Scuola = "13",
    VicinatoConoscenti = "14",
});
codelist!(ValutazioneMinore {
    NessunaProblematica = "1",
    ProblemiRelazionaliComportamentali = "2",
    Dipendenze = "3",
    PresuntoAbbandono = "4",
    ProblemiSanitari = "5",
    ViolenzaSessuale = "6",
    AltreViolenze = "7",
    GraveDevianza = "8",
    ProblemiAutonomiaDisabilita = "9",
    ProcedurePenali = "10",
    GestanteMadreMinorenne = "11",
    StranieroNonAccompagnato = "12",
    AbbandonoScolastico = "13",
});
codelist!(ValutazioneFamigliaMinore {
    NessunaProblematica = "1",
    FragilitaGenitoriale = "2",
    Dipendenza = "3",
    ProblematichePsichiatriche = "4",
    AltreProblematicheSanitarie = "5",
    GraveConflittualita = "6",
    Maltrattante = "7",
    Abusante = "8",
    ProblemiGiudiziari = "9",
    FallimentoAffidoPreadottivo = "10",
    InadempienzaObblighiSanitari = "11",
    DifficoltaEconomiche = "12",
    DifficoltaAbitative = "13",
});
codelist!(AutoritaProvvedimento {
    GiudiceTutelare = "1",
    TribunaleMinori = "2",
    ProcuraMinori = "3",
    TribunaleOrdinario = "4",
});
codelist!(PotestaTutela {
    Sospensione = "1",
    Decadenza = "2",
    PrescrizioniGenitori = "3",
    TutelaParentiAltri = "4",
    Curatela = "5",
});
codelist!(TipoProvvedimentoGiudiziario {
    Adottabilita = "1",
    AdozioneNazionale = "2",
    AdozioneInternazionale = "3",
    AffidamentoFamiliare = "4",
    AffidoServizioSociale = "5",
    AffidamentoUnGenitore = "6",
    Vigilanza = "7",
    /// The XSD label merges "post-adozione" and "allontanamento in via d'emergenza
    /// (art. 403 c.c.)" under one code.
    PostAdozioneAllontanamento = "8",
});
codelist!(
    /// Used by `FormaInterventoAffido` and `FormaInserimentoResidenziale`.
    FormaIntervento { Consensuale = "1", Giudiziario = "2" }
);
codelist!(TipoInterventoAffido { Intrafamiliare = "1", Eterofamiliare = "2" });
codelist!(DurataAffido { TempoPieno = "1", TempoParziale = "2" });
codelist!(CarattereAffido { Residenziale = "1", Diurno = "2" });
codelist!(EsitoAffido {
    RientroFamigliaOrigine = "1",
    AltroNucleo = "2",
    Adottato = "3",
    StrutturaSocioEducativa = "4",
    StrutturaSanitaria = "5",
    Autonomia = "6",
    Rimpatriato = "7",
    DestinazioneIgnota = "8",
    Altro = "9",
});
codelist!(CarattereInserimentoResidenziale {
    FamiliareAccoglienzaAbitativa = "1",
    FamiliareFunzioneTutelare = "2",
    FamiliareSocioEducativa = "3",
    ComunitarioEmergenza = "4",
    ComunitarioAccoglienzaAbitativa = "5",
    ComunitarioFunzioneTutelare = "6",
    ComunitarioSocioEducativa = "7",
    ComunitarioEducativaPsicologica = "8",
    ComunitarioSocioSanitariaBassa = "9",
    ComunitarioSocioSanitariaMedioAlta = "10",
});
codelist!(TipoInserimentoResidenziale { ConGenitore = "1", SenzaGenitore = "2" });
codelist!(EsitoInserimentoStruttura {
    RientroFamigliaOrigine = "1",
    FamigliaAffidataria = "2",
    Adottato = "3",
    AltraStrutturaSocioEducativa = "4",
    StrutturaSanitaria = "5",
    Autonomo = "6",
    Rimpatriato = "7",
    DestinazioneIgnota = "8",
    Altro = "9",
});
codelist!(MotivazioneChiusuraCarico {
    AltroAmbitoStessaRegione = "1",
    AltroAmbitoAltraRegione = "2",
    Maggiorenne = "3",
    ConclusioneInterventi = "4",
    UscitaRichiesta = "5",
    Rimpatrio = "6",
    Irreperibilita = "7",
    Decesso = "8",
    Altro = "9",
});
codelist!(SituazioneChiusuraCarico {
    FamigliaOrigine = "1",
    Autonomia = "2",
    FamigliaAffidataria = "3",
    StrutturaSocioAssistenziale = "4",
    StrutturaSanitaria = "5",
    Adottato = "6",
    IstitutoPenale = "7",
    DestinazioneIgnota = "8",
});
codelist!(CollaborazioniInterventi {
    Sert = "1",
    Npi = "2",
    Psicologia = "3",
    ClinicaDsm = "4",
    AltriServiziSociali = "5",
    Ussm = "6",
    Scuola = "7",
    PrivatoSociale = "8",
    Altro = "9",
});
codelist!(FasciaEtaBeneficiario {
    Da0a3 = "1",
    Da3a6 = "2",
    Da6a9 = "3",
    Da9a12 = "4",
    Da12a15 = "5",
    Da15a18 = "6",
});
codelist!(FasciaIseeBeneficiario {
    Zero = "1",
    Fino3000 = "2",
    Fino6000 = "3",
    Fino9000 = "4",
    Fino12000 = "5",
    Fino15000 = "6",
    Fino20000 = "7",
    Oltre20000 = "8",
});

/// Root `Flusso` of `SINBA.xsd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlussoSinba {
    pub identificazione_flusso: IdentificazioneFlusso,
    pub sinba: Vec<Sinba>,
}

/// `SinbaType`: a minor in care, identified by a local pseudonymous id instead of a
/// codice fiscale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sinba {
    /// 1–20 characters.
    pub id_beneficiario: String,
    /// Codici prestazione (5–10 characters each), at least one.
    pub prestazioni: Vec<String>,
    /// At least one.
    pub famiglia: Vec<ComposizioneFamiglia>,
    pub minore_straniero_no_acc: SiNo,
    pub condizione_minore: CondizioneMinore,
    pub luogo_vita: LuogoVita,
    pub scuola_frequentata: ScuolaFrequentata,
    pub condizione_lavoro: CondizioneLavoro,
    pub disabilita: SiNo,
    pub tipo_disabilita: Option<TipoDisabilita>,
    pub inv_civ_certificazioni: Option<InvCivCertificazioni>,
    pub codice_cittadinanza_padre: Option<String>,
    pub codice_cittadinanza_madre: Option<String>,
    pub codice_regione_residenza_padre: Option<String>,
    pub codice_regione_residenza_madre: Option<String>,
    pub titolo_studio_padre: Option<TitoloStudio>,
    pub titolo_studio_madre: Option<TitoloStudio>,
    pub occupazione_padre: Option<Occupazione>,
    pub occupazione_madre: Option<Occupazione>,
    pub data_prima_segnalazione: MeseAnno,
    pub fonte_segnalazione: FonteSegnalazione,
    pub valutazione_minore: ValutazioneMinore,
    pub valutazione_famiglia_minore: ValutazioneFamigliaMinore,
    pub segnalazione_autorita_giudiziaria: SiNo,
    pub data_segnalazione: Option<MeseAnno>,
    pub provvedimento_giudiziario: SiNo,
    pub data_provvedimento_giudiziario: Option<MeseAnno>,
    pub autorita_provvedimento: Option<AutoritaProvvedimento>,
    pub potesta_tutela: Option<PotestaTutela>,
    pub tipo_provvedimento_giudiziario: Option<TipoProvvedimentoGiudiziario>,
    pub forma_intervento_affido: Option<FormaIntervento>,
    pub tipo_intervento_affido: Option<TipoInterventoAffido>,
    pub durata_affido: Option<DurataAffido>,
    pub carattere_affido: Option<CarattereAffido>,
    pub esito_affido: Option<EsitoAffido>,
    pub carattere_inserimento_residenziale: Option<CarattereInserimentoResidenziale>,
    pub forma_inserimento_residenziale: Option<FormaIntervento>,
    pub tipo_inserimento_residenziale: Option<TipoInserimentoResidenziale>,
    pub esito_inserimento_struttura: Option<EsitoInserimentoStruttura>,
    pub motivazione_chiusura_carico: Option<MotivazioneChiusuraCarico>,
    pub situazione_chiusura_carico: Option<SituazioneChiusuraCarico>,
    pub collaborazioni_interventi: Option<CollaborazioniInterventi>,
    /// 1–9.
    pub numero_componenti_isee: Option<u8>,
    pub fascia_eta_beneficiario: FasciaEtaBeneficiario,
    pub fascia_isee_beneficiario: Option<FasciaIseeBeneficiario>,
    pub anno_nascita: u16,
    pub codice_regione_residenza: Option<String>,
    pub codice_nazione_residenza: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rejects_impossible_days() {
        assert!(Data::new(2024, 2, 29).is_ok());
        assert!(Data::new(2023, 2, 29).is_err());
        assert!(Data::new(1900, 2, 29).is_err());
        assert!(Data::new(2000, 2, 29).is_ok());
        assert!(Data::new(2024, 4, 31).is_err());
        assert!(Data::new(2024, 13, 1).is_err());
        assert!(Data::new(999, 1, 1).is_err());
    }

    #[test]
    fn data_round_trips() {
        let d = Data::parse("2025-03-07").unwrap();
        assert_eq!(d.to_string(), "2025-03-07");
        assert_eq!(d.compact(), "20250307");
        assert_eq!(Data::parse_compact("20250307").unwrap(), d);
        assert!(Data::parse("2025-3-07").is_err());
        assert!(Data::parse("2025/03/07").is_err());
        assert!(Data::parse("2025-+3-07").is_err());
    }

    /// `Data::parse` as first written, with `str::parse` on the three parts.
    fn parse_slow(s: &str) -> Result<Data, ValueError> {
        let bad = || ValueError::Data(format!("formato atteso AAAA-MM-GG, trovato {s:?}"));
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let anno = s[0..4].parse::<u16>().map_err(|_| bad())?;
        let mese = s[5..7].parse::<u8>().map_err(|_| bad())?;
        let giorno = s[8..10].parse::<u8>().map_err(|_| bad())?;
        if !s.bytes().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()) {
            return Err(bad());
        }
        Data::new(anno, mese, giorno)
    }

    #[test]
    fn data_parse_matches_the_slow_parse() {
        for s in [
            "2025-03-07",
            "2024-02-29",
            "2023-02-29",
            "0999-01-01",
            "1000-01-01",
            "9999-12-31",
            "2025-00-10",
            "2025-13-10",
            "2025-01-00",
            "2025-01-32",
            "+025-03-07",
            "2025-+3-07",
            "2025-03-+7",
            "2025-03-0 ",
            " 2025-03-0",
            "2025/03/07",
            "2025-3-7",
            "20250307",
            "",
            "2é25-03-07",
            "2025-03-07T",
            "abcd-ef-gh",
        ] {
            assert_eq!(Data::parse(s), parse_slow(s), "{s:?}");
        }
    }

    #[test]
    fn mese_anno_follows_xsd_pattern() {
        assert_eq!(MeseAnno::parse("03/2012").unwrap().to_string(), "03/2012");
        assert!(MeseAnno::parse("3/2012").is_err());
        assert!(MeseAnno::parse("13/2012").is_err());
        assert!(MeseAnno::parse("01/1899").is_err());
        assert!(MeseAnno::parse("01/2100").is_err());
    }

    #[test]
    fn importo_formats_as_decimal() {
        assert_eq!(Importo(10123).to_string(), "101.23");
        assert_eq!(Importo(5).to_string(), "0.05");
        assert_eq!(Importo(-5).to_string(), "-0.05");
        assert_eq!(Importo(0).to_string(), "0.00");
        assert_eq!(Importo::parse("101,23").unwrap(), Importo(10123));
        assert_eq!(Importo::parse("17000.0").unwrap(), Importo(1_700_000));
        assert_eq!(Importo::parse("-0.5").unwrap(), Importo(-50));
        assert!(Importo::parse("1.234").is_err());
        assert!(Importo::parse(".5").is_err());
        assert!(Importo::parse("1e3").is_err());
    }

    #[test]
    fn ore_servizio_hh_mm() {
        assert_eq!(OreServizio::parse("2,59").unwrap(), OreServizio::new(2, 59));
        assert_eq!(OreServizio::parse("12.05").unwrap().to_string(), "12.05");
        assert_eq!(OreServizio::parse("40").unwrap().to_string(), "40.00");
        assert!(OreServizio::parse("2,5").is_err());
        assert!(OreServizio::parse(",30").is_err());
        assert_eq!(OreServizio::da_minuti(125), OreServizio::new(2, 5));
    }

    #[test]
    fn codelists_round_trip() {
        for c in FonteSegnalazione::ALL {
            assert_eq!(FonteSegnalazione::from_codice(c.codice()), Some(*c));
        }
        assert_eq!(TipoOperazione::default().codice(), "I");
        assert_eq!(CaratterePrestazione::Occasionale.codice(), "2");
        assert_eq!(SiNo::from_codice("3"), None);
    }
}

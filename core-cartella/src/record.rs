//! The record kinds of the cartella and what the store needs to know about each: its table,
//! how its owner is decided, its indexed columns. One generic store path serves them all.
use cartella_proto::v1::{
    Accesso, CaratterePrestazione, Cartella, Condivisione, DiarioEntry, Meta, Nucleo, Pai, Persona, Prestazione, Valutazione,
    valutazione::Scheda,
};
use time::Date;

use crate::domain::{
    Violation,
    codes::{normalize_name, parse_date},
    validate,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Persona,
    Nucleo,
    Accesso,
    Cartella,
    Diario,
    Valutazione,
    Pai,
    Prestazione,
    Condivisione,
}

/// How visibility of a kind is decided (see `store::scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeClass {
    /// The anagrafica: visible where the person is known (owner, cartelle, accessi, nuclei).
    Persona,
    /// Owned by an ufficio.
    Ufficio,
    /// A cartella and what hangs off it: owner ufficio, or a sharing basis on the cartella.
    Cartella,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Persona,
        Kind::Nucleo,
        Kind::Accesso,
        Kind::Cartella,
        Kind::Diario,
        Kind::Valutazione,
        Kind::Pai,
        Kind::Prestazione,
        Kind::Condivisione,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Persona => "persona",
            Kind::Nucleo => "nucleo",
            Kind::Accesso => "accesso",
            Kind::Cartella => "cartella",
            Kind::Diario => "diario",
            Kind::Valutazione => "valutazione",
            Kind::Pai => "pai",
            Kind::Prestazione => "prestazione",
            Kind::Condivisione => "condivisione",
        }
    }

    /// Table name; equal to the kind name, listed apart so SQL never takes a caller's string.
    pub fn table(self) -> &'static str {
        self.name()
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn scope_class(self) -> ScopeClass {
        match self {
            Kind::Persona => ScopeClass::Persona,
            Kind::Nucleo | Kind::Accesso => ScopeClass::Ufficio,
            _ => ScopeClass::Cartella,
        }
    }

    /// Children take owner and persona from their cartella.
    pub fn is_cartella_child(self) -> bool {
        matches!(self, Kind::Diario | Kind::Valutazione | Kind::Pai | Kind::Prestazione | Kind::Condivisione)
    }
}

/// A value bound into SQL.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Vec<u8>),
}

impl Val {
    pub fn text(s: &str) -> Val {
        Val::Text(Some(s.to_string()))
    }

    /// NULL for an empty string: optional columns stay NULL, not "".
    pub fn opt_text(s: &str) -> Val {
        Val::Text((!s.is_empty()).then(|| s.to_string()))
    }
}

pub trait Record: prost::Message + Default + Clone + Send + Sync + Unpin + 'static {
    const KIND: Kind;
    fn meta_ref(&self) -> Option<&Meta>;
    fn meta_mut(&mut self) -> &mut Meta;
    /// Checks and normalises the record; every violation at once.
    fn validate(&mut self, today: Date) -> Vec<Violation>;
    /// The person the record is about, when it names one itself.
    fn persona_ref(&self) -> &str {
        ""
    }
    /// The cartella a child record hangs off.
    fn cartella_ref(&self) -> &str {
        ""
    }
    /// Other people the record names (household members).
    fn member_refs(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The accesso a cartella came from.
    fn accesso_ref(&self) -> &str {
        ""
    }
    /// The ufficio a sharing basis opens the cartella to.
    fn grantee(&self) -> &str {
        ""
    }
    /// The codice fiscale of a persona.
    fn codice_fiscale_ref(&self) -> &str {
        ""
    }
    /// Kind-specific indexed columns.
    fn columns(&self) -> Vec<(&'static str, Val)> {
        Vec::new()
    }
    fn id(&self) -> &str {
        self.meta_ref().map_or("", |m| m.id.as_str())
    }
    fn version(&self) -> i64 {
        self.meta_ref().map_or(0, |m| m.version)
    }
}

macro_rules! meta_access {
    () => {
        fn meta_ref(&self) -> Option<&Meta> {
            self.meta.as_ref()
        }
        fn meta_mut(&mut self) -> &mut Meta {
            self.meta.get_or_insert_with(Meta::default)
        }
    };
}

impl Record for Persona {
    const KIND: Kind = Kind::Persona;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::persona(self, today)
    }
    fn codice_fiscale_ref(&self) -> &str {
        &self.codice_fiscale
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("codice_fiscale", Val::opt_text(&self.codice_fiscale)),
            ("cognome_norm", Val::text(&normalize_name(&self.cognome))),
            ("nome_norm", Val::text(&normalize_name(&self.nome))),
            ("data_nascita", Val::opt_text(&self.data_nascita)),
        ]
    }
}

impl Record for Nucleo {
    const KIND: Kind = Kind::Nucleo;
    meta_access!();
    fn validate(&mut self, _today: Date) -> Vec<Violation> {
        validate::nucleo(self)
    }
    fn persona_ref(&self) -> &str {
        &self.persona_riferimento_id
    }
    fn member_refs(&self) -> Vec<&str> {
        self.membri.iter().map(|m| m.persona_id.as_str()).collect()
    }
}

impl Record for Accesso {
    const KIND: Kind = Kind::Accesso;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::accesso(self, today)
    }
    fn persona_ref(&self) -> &str {
        &self.persona_id
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![("data", Val::opt_text(&self.data))]
    }
}

impl Record for Cartella {
    const KIND: Kind = Kind::Cartella;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::cartella(self, today)
    }
    fn persona_ref(&self) -> &str {
        &self.persona_id
    }
    fn accesso_ref(&self) -> &str {
        &self.accesso_id
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![("area_utenza", Val::Int(Some(i64::from(self.area_utenza)))), ("stato", Val::Int(Some(i64::from(self.stato))))]
    }
}

impl Record for DiarioEntry {
    const KIND: Kind = Kind::Diario;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::diario(self, today)
    }
    fn cartella_ref(&self) -> &str {
        &self.cartella_id
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![("data", Val::opt_text(&self.data))]
    }
}

impl Record for Valutazione {
    const KIND: Kind = Kind::Valutazione;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::valutazione(self, today)
    }
    fn cartella_ref(&self) -> &str {
        &self.cartella_id
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        let tipo = match self.scheda {
            Some(Scheda::Sina(_)) => "sina",
            Some(Scheda::Sinba(_)) => "sinba",
            None => "",
        };
        vec![("data", Val::opt_text(&self.data)), ("tipo", Val::opt_text(tipo))]
    }
}

impl Record for Pai {
    const KIND: Kind = Kind::Pai;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::pai(self, today)
    }
    fn cartella_ref(&self) -> &str {
        &self.cartella_id
    }
}

impl Record for Prestazione {
    const KIND: Kind = Kind::Prestazione;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        validate::prestazione(self, today)
    }
    fn cartella_ref(&self) -> &str {
        &self.cartella_id
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        let (anno, spesa) = anno_e_spesa(self);
        vec![
            ("codice_prestazione", Val::text(&self.codice_prestazione)),
            ("anno", Val::Int(anno)),
            ("spesa_centesimi", Val::Int(Some(spesa))),
            ("stato", Val::Int(Some(i64::from(self.stato)))),
        ]
    }
}

/// Reference year and expenditure of a prestazione, for the conoscitivo aggregates: monthly
/// amount × months (declared, else counted from the dates to year end) for periodic ones.
pub fn anno_e_spesa(p: &Prestazione) -> (Option<i64>, i64) {
    if p.carattere == CaratterePrestazione::Periodica as i32 {
        let start = parse_date(&p.data_inizio);
        let months = match (p.periodo_erogazione, start) {
            (Some(n), _) => i64::from(n),
            (None, Some(s)) => {
                let end_month = parse_date(&p.data_fine).map_or(12, |e| u8::from(e.month()));
                i64::from(end_month.saturating_sub(u8::from(s.month())) + 1)
            }
            (None, None) => 0,
        };
        (start.map(|d| i64::from(d.year())), p.importo_mensile.unwrap_or(0).saturating_mul(months))
    } else {
        (parse_date(&p.data_erogazione).map(|d| i64::from(d.year())), p.importo.unwrap_or(0))
    }
}

impl Record for Condivisione {
    const KIND: Kind = Kind::Condivisione;
    meta_access!();
    fn validate(&mut self, today: Date) -> Vec<Violation> {
        let v = validate::condivisione(self, today);
        if v.is_empty() && self.valida_fino_al.is_empty() {
            let end = today.saturating_add(time::Duration::days(validate::CONDIVISIONE_DEFAULT_DAYS));
            self.valida_fino_al = crate::domain::codes::format_date(end);
        }
        v
    }
    fn cartella_ref(&self) -> &str {
        &self.cartella_id
    }
    fn grantee(&self) -> &str {
        &self.ufficio_destinatario
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("ufficio_destinatario", Val::text(&self.ufficio_destinatario)),
            ("valida_fino_al", Val::opt_text(&self.valida_fino_al)),
            ("scrittura", Val::Int(Some(i64::from(self.scrittura)))),
        ]
    }
}

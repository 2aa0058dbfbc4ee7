//! The conoscitivo level: what a statistics table can be asked for (measures, dimensions,
//! periods), the facts each record contributes (`fatti`), the projection that keeps the
//! tables up to date from the change feed (`projector`) and the disclosure control every
//! published table goes through (`disclosure`).
pub mod disclosure;
pub mod fatti;
pub mod projector;

use crate::error::{CoreError, Result};

/// Smallest number of distinct people a published cell may describe, unless configured.
pub const SOGLIA_PREDEFINITA: i64 = 3;

/// Published counts are rounded to a multiple of this.
pub const BASE_ARROTONDAMENTO: i64 = 5;

/// What a table counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Misura {
    /// Cartelle open during the period (and the people they belong to).
    PersoneInCarico,
    /// Cartelle opened in the period.
    PreseInCarico,
    /// Accessi at the segretariato sociale.
    Accessi,
    /// Prestazioni (not revoked) by start or payment date, and their spending.
    Prestazioni,
    /// PAI in force during the period.
    PaiAttivi,
    /// Days from the first accesso to the presa in carico, by the month of the presa.
    AttesaPresaInCarico,
}

impl Misura {
    pub const ALL: [Misura; 6] =
        [Self::PersoneInCarico, Self::PreseInCarico, Self::Accessi, Self::Prestazioni, Self::PaiAttivi, Self::AttesaPresaInCarico];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PersoneInCarico => "persone_in_carico",
            Self::PreseInCarico => "prese_in_carico",
            Self::Accessi => "accessi",
            Self::Prestazioni => "prestazioni",
            Self::PaiAttivi => "pai_attivi",
            Self::AttesaPresaInCarico => "attesa_presa_in_carico",
        }
    }

    pub fn descrizione(self) -> &'static str {
        match self {
            Self::PersoneInCarico => "Persone in carico: cartelle aperte nel periodo",
            Self::PreseInCarico => "Nuove prese in carico: cartelle aperte nel periodo per la prima volta",
            Self::Accessi => "Accessi al segretariato sociale",
            Self::Prestazioni => "Prestazioni erogate e spesa (centesimi di euro)",
            Self::PaiAttivi => "PAI in vigore nel periodo",
            Self::AttesaPresaInCarico => "Giorni dal primo accesso alla presa in carico",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The dimensions a table of this measure may use: an accesso has no area of need yet,
    /// and only prestazioni have a codice prestazione.
    pub fn ammette(self, d: Dim) -> bool {
        match d {
            Dim::Prestazione => self == Self::Prestazioni,
            Dim::Area => self != Self::Accessi,
            _ => true,
        }
    }

    /// Published `somma` is rounded to a multiple of this: euro cents of spending (100 €),
    /// days of waiting.
    pub fn base_somma(self) -> i64 {
        match self {
            Self::Prestazioni => 10_000,
            _ => BASE_ARROTONDAMENTO,
        }
    }
}

/// A dimension a table can be broken down by, in the canonical order the projection's
/// groupings use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// The ufficio of the record (the Municipio).
    Municipio,
    /// SIUSS area of need of the cartella.
    Area,
    /// SIUSS nomenclature code of the prestazione.
    Prestazione,
    Sesso,
    /// Age band at the end of the month.
    FasciaEta,
}

impl Dim {
    pub const ALL: [Dim; 5] = [Self::Municipio, Self::Area, Self::Prestazione, Self::Sesso, Self::FasciaEta];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Municipio => "municipio",
            Self::Area => "area",
            Self::Prestazione => "prestazione",
            Self::Sesso => "sesso",
            Self::FasciaEta => "fascia_eta",
        }
    }

    pub fn descrizione(self) -> &'static str {
        match self {
            Self::Municipio => "Municipio (ufficio titolare)",
            Self::Area => "Area di utenza SIUSS",
            Self::Prestazione => "Codice prestazione (nomenclatore SIUSS)",
            Self::Sesso => "Sesso",
            Self::FasciaEta => "Fascia di età a fine mese",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// The grouping key of a set of dimensions in the projection: names in canonical order,
/// joined by commas ("" for the grand total).
pub fn gruppo(dims: &[Dim]) -> String {
    let mut d = dims.to_vec();
    d.sort();
    d.dedup();
    d.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",")
}

/// Every grouping the projection keeps for a measure: the total, each allowed dimension,
/// each pair of allowed dimensions.
pub fn gruppi(m: Misura) -> Vec<Vec<Dim>> {
    let dims: Vec<Dim> = Dim::ALL.into_iter().filter(|d| m.ammette(*d)).collect();
    let mut out = vec![Vec::new()];
    for (i, a) in dims.iter().enumerate() {
        out.push(vec![*a]);
        for b in &dims[i + 1..] {
            out.push(vec![*a, *b]);
        }
    }
    out
}

/// Grain of the periods of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grana {
    Anno,
    Trimestre,
    Mese,
}

impl Grana {
    pub const ALL: [Grana; 3] = [Self::Anno, Self::Trimestre, Self::Mese];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anno => "anno",
            Self::Trimestre => "trimestre",
            Self::Mese => "mese",
        }
    }

    pub fn descrizione(self) -> &'static str {
        match self {
            Self::Anno => "Anno solare (\"2026\")",
            Self::Trimestre => "Trimestre (\"2026-T1\")",
            Self::Mese => "Mese (\"2026-03\")",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The label of the period of this grain holding month `mese` (1–12) of `anno`.
    pub fn etichetta(self, anno: i32, mese: u8) -> String {
        match self {
            Self::Anno => format!("{anno:04}"),
            Self::Trimestre => format!("{anno:04}-T{}", (mese.saturating_sub(1)) / 3 + 1),
            Self::Mese => format!("{anno:04}-{mese:02}"),
        }
    }

    /// The grain of a period label.
    pub fn di(periodo: &str) -> Self {
        match periodo.len() {
            4 => Self::Anno,
            7 if periodo.as_bytes().get(5) == Some(&b'T') => Self::Trimestre,
            _ => Self::Mese,
        }
    }
}

/// Label of a total over a dimension, and of a dimension a table does not use.
pub const TOTALE: &str = "*";

/// Longest span of years one table may cover.
pub const MAX_ANNI: i32 = 10;

/// A checked table request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Richiesta {
    pub misura: Misura,
    pub righe: Option<Dim>,
    pub colonne: Option<Dim>,
    pub grana: Grana,
    pub anno_da: i32,
    pub anno_a: i32,
}

impl Richiesta {
    /// Checks a request as the contract states it, naming every bad field at once.
    pub fn parse(misura: &str, righe: &str, colonne: &str, periodo: &str, anno_da: i32, anno_a: i32, anno_corrente: i32) -> Result<Self> {
        let mut bad = Vec::new();
        let m = Misura::parse(misura);
        if m.is_none() {
            bad.push(("misura", "is not a measure of the catalogue"));
        }
        let dim = |s: &str, field: &'static str, bad: &mut Vec<(&'static str, &'static str)>| -> Option<Dim> {
            if s.is_empty() {
                return None;
            }
            match Dim::parse(s) {
                Some(d) if m.is_none_or(|m| m.ammette(d)) => Some(d),
                Some(_) => {
                    bad.push((field, "this measure cannot be broken down by this dimension"));
                    None
                }
                None => {
                    bad.push((field, "is not a dimension of the catalogue"));
                    None
                }
            }
        };
        let righe_d = dim(righe, "righe", &mut bad);
        let colonne_d = dim(colonne, "colonne", &mut bad);
        if righe_d.is_some() && righe_d == colonne_d {
            bad.push(("colonne", "must differ from righe"));
        }
        let grana = if periodo.is_empty() { Some(Grana::Anno) } else { Grana::parse(periodo) };
        if grana.is_none() {
            bad.push(("periodo", "must be mese, trimestre or anno"));
        }
        let da = if anno_da == 0 { anno_corrente } else { anno_da };
        let a = if anno_a == 0 { da } else { anno_a };
        if !(1900..=2200).contains(&da) {
            bad.push(("anno_da", "must be a year between 1900 and 2200"));
        }
        if !(1900..=2200).contains(&a) {
            bad.push(("anno_a", "must be a year between 1900 and 2200"));
        } else if a < da {
            bad.push(("anno_a", "must not precede anno_da"));
        } else if a - da >= MAX_ANNI {
            bad.push(("anno_a", "a table covers at most 10 years"));
        }
        match (m, grana, bad.is_empty()) {
            (Some(misura), Some(grana), true) => {
                Ok(Self { misura, righe: righe_d.or(colonne_d), colonne: righe_d.and(colonne_d), grana, anno_da: da, anno_a: a })
            }
            _ => Err(CoreError::Invalid(
                bad.into_iter().map(|(f, d)| crate::domain::Violation { field: f.to_string(), description: d.to_string() }).collect(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_are_checked_field_by_field() {
        let r = Richiesta::parse("prestazioni", "municipio", "prestazione", "mese", 2025, 2026, 2026).unwrap();
        assert_eq!(
            (r.misura, r.righe, r.colonne, r.grana),
            (Misura::Prestazioni, Some(Dim::Municipio), Some(Dim::Prestazione), Grana::Mese)
        );
        let r = Richiesta::parse("accessi", "", "sesso", "", 0, 0, 2026).unwrap();
        assert_eq!((r.righe, r.colonne, r.grana, r.anno_da, r.anno_a), (Some(Dim::Sesso), None, Grana::Anno, 2026, 2026));
        let fields = |e: CoreError| match e {
            CoreError::Invalid(v) => v.into_iter().map(|v| v.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields(Richiesta::parse("nulla", "x", "", "settimana", 2026, 2020, 2026).unwrap_err()),
            ["misura", "righe", "periodo", "anno_a"]
        );
        assert_eq!(fields(Richiesta::parse("accessi", "area", "", "", 0, 0, 2026).unwrap_err()), ["righe"]);
        assert_eq!(fields(Richiesta::parse("pai_attivi", "prestazione", "", "", 0, 0, 2026).unwrap_err()), ["righe"]);
        assert_eq!(fields(Richiesta::parse("prestazioni", "sesso", "sesso", "", 0, 0, 2026).unwrap_err()), ["colonne"]);
        assert_eq!(fields(Richiesta::parse("prestazioni", "", "", "", 2000, 2020, 2026).unwrap_err()), ["anno_a"]);
    }

    #[test]
    fn groupings_cover_every_pair_of_allowed_dimensions() {
        assert_eq!(gruppi(Misura::Prestazioni).len(), 1 + 5 + 10);
        assert_eq!(gruppi(Misura::Accessi).len(), 1 + 3 + 3);
        assert_eq!(gruppo(&[Dim::Sesso, Dim::Municipio]), "municipio,sesso");
        assert_eq!(Grana::Trimestre.etichetta(2026, 4), "2026-T2");
        assert_eq!(Grana::di("2026-T2"), Grana::Trimestre);
        assert_eq!(Grana::di("2026-04"), Grana::Mese);
    }
}

//! The comparison of two prepared records, field by field, as discrete agreement levels
//! (0 is the strongest agreement; `None` when either side is missing, which then weighs
//! nothing). Surname and name are compared straight and swapped, keeping the better.
use strsim::jaro_winkler;
use time::Date;

use super::Prepared;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Cognome,
    Nome,
    Nascita,
    Luogo,
    Sesso,
    CodiceFiscale,
}

pub const FIELDS: [Field; 6] = [Field::Cognome, Field::Nome, Field::Nascita, Field::Luogo, Field::Sesso, Field::CodiceFiscale];

impl Field {
    /// Number of agreement levels.
    pub const fn levels(self) -> usize {
        match self {
            Field::Cognome | Field::Nome => 4,
            Field::Nascita => 4,
            Field::Luogo => 3,
            Field::Sesso => 2,
            Field::CodiceFiscale => 3,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Field::Cognome => "cognome",
            Field::Nome => "nome",
            Field::Nascita => "data_nascita",
            Field::Luogo => "luogo_nascita",
            Field::Sesso => "sesso",
            Field::CodiceFiscale => "codice_fiscale",
        }
    }

    /// What each level means, for people reading the evidence.
    pub fn level_name(self, level: u8) -> &'static str {
        match (self, level) {
            (Field::Cognome | Field::Nome, 0) => "uguale",
            (Field::Cognome | Field::Nome, 1) => "quasi uguale (Jaro-Winkler >= 0.92)",
            (Field::Cognome | Field::Nome, 2) => "simile (Jaro-Winkler >= 0.80)",
            (Field::Nascita, 0) => "uguale",
            (Field::Nascita, 1) => "giorno e mese scambiati",
            (Field::Nascita, 2) => "differisce in una sola parte (giorno, mese o anno)",
            (Field::Luogo, 0) => "uguale",
            (Field::Luogo, 1) => "simile (Jaro-Winkler >= 0.88)",
            (Field::Sesso, 0) => "uguale",
            (Field::CodiceFiscale, 0) => "uguale",
            (Field::CodiceFiscale, 1) => "differisce in al piu due caratteri",
            _ => "diverso",
        }
    }
}

/// The agreement level of each field of [`FIELDS`], and whether surname and name were
/// compared swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Comparison {
    pub levels: [Option<u8>; 6],
    pub swapped_names: bool,
}

pub fn compare(a: &Prepared, b: &Prepared) -> Comparison {
    let straight = (similarity(&a.cognome, &b.cognome), similarity(&a.nome, &b.nome));
    let swapped = (similarity(&a.cognome, &b.nome), similarity(&a.nome, &b.cognome));
    let sum = |p: (Option<f64>, Option<f64>)| p.0.unwrap_or(0.0) + p.1.unwrap_or(0.0);
    // Swapped only when clearly better: "ROSSI MARIO" vs "MARIO ROSSI", not two similar names.
    let swapped_names = sum(swapped) > sum(straight) + 0.15;
    let (c, n) = if swapped_names { swapped } else { straight };
    Comparison {
        levels: [
            c.map(name_level),
            n.map(name_level),
            date_level(a.nascita, b.nascita),
            place_level(&a.luogo, &b.luogo),
            match (a.sesso, b.sesso) {
                (Some(x), Some(y)) => Some(u8::from(x != y)),
                _ => None,
            },
            cf_level(&a.cf_raw, &b.cf_raw),
        ],
        swapped_names,
    }
}

fn similarity(a: &str, b: &str) -> Option<f64> {
    (!a.is_empty() && !b.is_empty()).then(|| if a == b { 1.0 } else { jaro_winkler(a, b) })
}

fn name_level(s: f64) -> u8 {
    if s >= 1.0 {
        0
    } else if s >= 0.92 {
        1
    } else if s >= 0.80 {
        2
    } else {
        3
    }
}

fn date_level(a: Option<Date>, b: Option<Date>) -> Option<u8> {
    let (a, b) = (a?, b?);
    let (ad, am, ay) = (a.day(), u8::from(a.month()), a.year());
    let (bd, bm, by) = (b.day(), u8::from(b.month()), b.year());
    Some(if a == b {
        0
    } else if ay == by && ad == bm && am == bd {
        1
    } else if u8::from(ay == by) + u8::from(am == bm) + u8::from(ad == bd) == 2 {
        2
    } else {
        3
    })
}

fn place_level(a: &str, b: &str) -> Option<u8> {
    similarity(a, b).map(|s| {
        if s >= 1.0 {
            0
        } else if s >= 0.88 {
            1
        } else {
            2
        }
    })
}

fn cf_level(a: &str, b: &str) -> Option<u8> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a == b {
        return Some(0);
    }
    let differing = if a.len() == b.len() { a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count() } else { usize::MAX };
    Some(if differing <= 2 { 1 } else { 2 })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::linkage::{Record, Sesso, prepare};

    fn rec(cognome: &str, nome: &str, nascita: Option<Date>, luogo: &str, sesso: Option<Sesso>, cf: &str) -> Prepared {
        prepare(&Record {
            cognome: cognome.into(),
            nome: nome.into(),
            sesso,
            nascita,
            luogo_nascita: luogo.into(),
            codice_fiscale: cf.into(),
        })
    }

    #[test]
    fn levels() {
        let base = rec("Rossi", "Mario", Some(date!(1980 - 03 - 07)), "Roma", Some(Sesso::M), "RSSMRA80C07H501X");
        let cases = vec![
            // identical, apart from case and accents
            (
                rec("ROSSI", "MARIO", Some(date!(1980 - 03 - 07)), "ROMA", Some(Sesso::M), "rssmra80c07h501x"),
                [Some(0), Some(0), Some(0), Some(0), Some(0), Some(0)],
                false,
            ),
            // swapped names, day/month swapped, place typo, sex missing, CF one char off
            (
                rec("Mario", "Rossi", Some(date!(1980 - 07 - 03)), "Rma", None, "RSSMRA80C07H501Y"),
                [Some(0), Some(0), Some(1), Some(1), None, Some(1)],
                true,
            ),
            // surname typo, year typo, different place and sex, no CF
            (
                rec("Rosi", "Marco", Some(date!(1981 - 03 - 07)), "Milano", Some(Sesso::F), ""),
                [Some(1), Some(2), Some(2), Some(2), Some(1), None],
                false,
            ),
            // nothing in common
            (
                rec("Bianchi", "Giulia", Some(date!(1990 - 11 - 21)), "", None, "BNCGLI90S61H501Z"),
                [Some(3), Some(3), Some(3), None, None, Some(2)],
                false,
            ),
            (rec("", "", None, "", None, ""), [None, None, None, None, None, None], false),
        ];
        for (other, want, swapped) in cases {
            let c = compare(&base, &other);
            assert_eq!(c.levels, want, "{:?}", other.cognome);
            assert_eq!(c.swapped_names, swapped);
            assert_eq!(compare(&other, &base).levels, want, "symmetric");
        }
    }

    #[test]
    fn apostrophes_and_accents_fold() {
        assert_eq!(crate::linkage::fold("  D'Angelo  "), "DANGELO");
        assert_eq!(crate::linkage::fold("Niccolò  De-Luca"), "NICCOLO DE LUCA");
    }
}

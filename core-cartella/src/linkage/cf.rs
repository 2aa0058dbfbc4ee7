//! Whether a record's codice fiscale can be trusted to identify the person: a right check
//! character is not enough, the code must also agree with what it encodes (the letters of
//! surname and name, birth date, sex), with omocodia letters decoded.
use time::Date;

use super::Sesso;
use crate::domain::codice_fiscale::{CfError, CodiceFiscale, name_letters};

/// What was found about a record's codice fiscale. Carries no part of the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Missing,
    /// The structure or the check character is wrong.
    Malformed(CfError),
    /// Well formed, but its surname/name letters match neither the record's names nor the
    /// names swapped.
    NamesDisagree,
    /// Well formed, but its birth date or sex differs from the record's.
    BirthDisagrees,
    Trusted,
}

/// Judges `cf` (already upper case, no spaces) against the folded names and birth data.
/// Missing birth date or sex is no disagreement.
pub fn judge(cf: &str, cognome: &str, nome: &str, nascita: Option<Date>, sesso: Option<Sesso>) -> Judgement {
    if cf.is_empty() {
        return Judgement::Missing;
    }
    let code = match CodiceFiscale::parse(cf) {
        Ok(c) => c,
        Err(e) => return Judgement::Malformed(e),
    };
    let letters = &code.expose()[..6];
    if letters != name_letters(cognome, nome) && letters != name_letters(nome, cognome) {
        return Judgement::NamesDisagree;
    }
    let (yy, month, day, female) = code.birth();
    if let Some(d) = nascita
        && (d.year().rem_euclid(100) as u8 != yy || u8::from(d.month()) != month || d.day() != day)
    {
        return Judgement::BirthDisagrees;
    }
    if let Some(s) = sesso
        && (s == Sesso::F) != female
    {
        return Judgement::BirthDisagrees;
    }
    Judgement::Trusted
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::domain::codice_fiscale::{check_char, compose};

    fn omocode_last(cf: &str) -> String {
        let mut b = cf.as_bytes().to_vec();
        b[14] = b"LMNPQRSTUV"[(b[14] - b'0') as usize];
        b[15] = check_char(&b[..15]);
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn table() {
        let rossi = compose("Rossi", "Mario", 1980, 3, 7, false, "H501");
        let bad_check = format!("{}{}", &rossi[..15], if rossi.ends_with('A') { 'B' } else { 'A' });
        let other_name = compose("Bianchi", "Mario", 1980, 3, 7, false, "H501");
        let nicolo = compose("Fabbrò", "Niccolò", 1950, 12, 1, false, "H501");
        let omocodico = omocode_last(&rossi);
        let d = Some(date!(1980 - 03 - 07));
        type Case<'a> = (&'a str, &'a str, &'a str, Option<Date>, Option<Sesso>, Judgement);
        let cases: Vec<Case<'_>> = vec![
            (&rossi, "ROSSI", "MARIO", d, Some(Sesso::M), Judgement::Trusted),
            (&rossi, "ROSSI", "MARIO", None, None, Judgement::Trusted),
            // Swapped in the record: the code still names the person.
            (&rossi, "MARIO", "ROSSI", d, Some(Sesso::M), Judgement::Trusted),
            ("", "ROSSI", "MARIO", d, None, Judgement::Missing),
            (&bad_check, "ROSSI", "MARIO", d, None, Judgement::Malformed(CfError::CheckChar)),
            (&rossi[..15], "ROSSI", "MARIO", d, None, Judgement::Malformed(CfError::Length)),
            (&other_name, "ROSSI", "MARIO", d, None, Judgement::NamesDisagree),
            (&rossi, "ROSSI", "MARIO", Some(date!(1980 - 07 - 03)), None, Judgement::BirthDisagrees),
            (&rossi, "ROSSI", "MARIO", Some(date!(1981 - 03 - 07)), None, Judgement::BirthDisagrees),
            (&rossi, "ROSSI", "MARIO", d, Some(Sesso::F), Judgement::BirthDisagrees),
            (&omocodico, "ROSSI", "MARIO", d, Some(Sesso::M), Judgement::Trusted),
            (&nicolo, "FABBRO", "NICCOLO", Some(date!(1950 - 12 - 01)), None, Judgement::Trusted),
        ];
        for (cf, cognome, nome, nascita, sesso, want) in cases {
            assert_eq!(judge(cf, cognome, nome, nascita, sesso), want, "{cognome} {nome} {nascita:?} {sesso:?}");
        }
    }
}

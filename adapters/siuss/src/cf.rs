//! Codice fiscale checks: structure, check character, the 11-digit numeric form, and the
//! omocodia case that the INPS XSD pattern cannot carry.
//!
//! The XSD pattern `[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z][A-Za-z0-9]{3}[A-Za-z]` accepts
//! letters in the place-of-birth digits but not in the year or day digits. Agenzia delle
//! Entrate's omocodia substitutes digits from the right, so the first substitutions land in
//! the place digits (accepted) and later ones in the day and year digits (rejected). Such a
//! person has a perfectly valid codice fiscale that INPS's schema refuses; we detect it so
//! the record is held back with a clear reason instead of being sent and bounced.
//!
//! Errors deliberately carry no part of the code: they end up in logs and esiti.

/// Why a codice fiscale is not acceptable for a SIUSS flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CfError {
    #[error("codice fiscale di lunghezza errata (attesi 16 caratteri o 11 cifre)")]
    Lunghezza,
    #[error("codice fiscale con struttura non valida")]
    Struttura,
    #[error("codice fiscale con mese di nascita non valido")]
    Mese,
    #[error("codice fiscale con giorno di nascita non valido")]
    Giorno,
    #[error("codice fiscale con carattere di controllo errato")]
    Controllo,
    #[error(
        "codice fiscale omocodico con lettere nelle posizioni di anno o giorno di nascita: \
         valido, ma rifiutato dal pattern dello XSD INPS; il beneficiario non può essere \
         inviato finché INPS non aggiorna lo schema"
    )]
    OmocodiaNonRappresentabile,
}

const MONTH_LETTERS: &[u8] = b"ABCDEHLMPRST";
/// Letters standing for digits 0–9 in an omocodic code.
const OMOCODIA: &[u8] = b"LMNPQRSTUV";
/// Positions (0-based) of the digits that omocodia may replace.
const OMOCODIA_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
/// Of those, the ones the XSD pattern requires to be digits (`\d{2}` year, `\d{2}` day).
const XSD_DIGIT_POSITIONS: [usize; 4] = [6, 7, 9, 10];

const ODD_VALUES: [u32; 26] = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];

fn char_value(c: u8, odd: bool) -> Option<u32> {
    let idx = match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A'),
        _ => return None,
    };
    if odd { ODD_VALUES.get(idx as usize).copied() } else { Some(idx) }
}

/// Check character for the first 15 characters of an alphanumeric codice fiscale
/// (case-insensitive). `None` if the input is not 15 ASCII alphanumerics.
pub fn carattere_controllo(primi15: &str) -> Option<char> {
    let b = primi15.as_bytes();
    if b.len() != 15 {
        return None;
    }
    let mut sum = 0u32;
    for (i, c) in b.iter().enumerate() {
        // Positions are counted from 1 in the algorithm, so index 0 is "odd".
        sum += char_value(c.to_ascii_uppercase(), i % 2 == 0)?;
    }
    char::from_u32(u32::from(b'A') + sum % 26)
}

fn omocodia_digit(c: u8) -> Option<u8> {
    if c.is_ascii_digit() { Some(c - b'0') } else { OMOCODIA.iter().position(|&l| l == c).map(|p| p as u8) }
}

/// Checks an alphanumeric (16) or numeric (11 digits, optionally padded with up to five
/// spaces as the XSD allows) codice fiscale.
pub fn verifica(cf: &str) -> Result<(), CfError> {
    let b = cf.as_bytes();
    if b.len() >= 11 && b.len() <= 16 && b[..11].iter().all(u8::is_ascii_digit) {
        if !b[11..].iter().all(|&c| c == b' ') {
            return Err(CfError::Struttura);
        }
        return verifica_numerico(&b[..11]);
    }
    if b.len() != 16 {
        return Err(CfError::Lunghezza);
    }
    let mut up = [0u8; 16];
    for (u, c) in up.iter_mut().zip(b) {
        *u = c.to_ascii_uppercase();
    }
    for (i, &c) in up.iter().enumerate() {
        let ok = if OMOCODIA_POSITIONS.contains(&i) { omocodia_digit(c).is_some() } else { c.is_ascii_uppercase() };
        if !ok {
            return Err(CfError::Struttura);
        }
    }
    if !MONTH_LETTERS.contains(&up[8]) {
        return Err(CfError::Mese);
    }
    let d1 = omocodia_digit(up[9]).ok_or(CfError::Struttura)?;
    let d2 = omocodia_digit(up[10]).ok_or(CfError::Struttura)?;
    let day = d1 * 10 + d2;
    if !((1..=31).contains(&day) || (41..=71).contains(&day)) {
        return Err(CfError::Giorno);
    }
    let first15 = std::str::from_utf8(&up[..15]).map_err(|_| CfError::Struttura)?;
    if carattere_controllo(first15) != Some(char::from(up[15])) {
        return Err(CfError::Controllo);
    }
    if XSD_DIGIT_POSITIONS.iter().any(|&i| !up[i].is_ascii_digit()) {
        return Err(CfError::OmocodiaNonRappresentabile);
    }
    Ok(())
}

/// The 11-digit form (temporary codes and legal persons) uses the partita IVA check digit.
fn verifica_numerico(d: &[u8]) -> Result<(), CfError> {
    let mut sum = 0u32;
    for (i, c) in d[..10].iter().enumerate() {
        let v = u32::from(c - b'0');
        sum += if i % 2 == 0 {
            v
        } else {
            let x = v * 2;
            if x > 9 { x - 9 } else { x }
        };
    }
    let check = (10 - sum % 10) % 10;
    if check == u32::from(d[10] - b'0') { Ok(()) } else { Err(CfError::Controllo) }
}

/// Returns true when the string has the shape of a codice fiscale, valid or not; used to
/// keep real identifiers out of fields meant to be pseudonymous.
pub fn sembra_codice_fiscale(s: &str) -> bool {
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() == 11 && b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    b.len() == 16
        && b.iter().enumerate().all(|(i, c)| {
            let c = c.to_ascii_uppercase();
            if OMOCODIA_POSITIONS.contains(&i) { omocodia_digit(c).is_some() } else { c.is_ascii_uppercase() }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_check(first15: &str) -> String {
        let c = carattere_controllo(first15).unwrap();
        format!("{first15}{c}")
    }

    #[test]
    fn check_character_of_known_fake_codes() {
        // Widely published specimen codes.
        assert_eq!(carattere_controllo("RSSMRA85T10A562"), Some('S'));
        assert_eq!(carattere_controllo("BNCGVN80A01H501"), Some('J'));
    }

    #[test]
    fn accepts_plain_and_lowercase() {
        assert_eq!(verifica("RSSMRA85T10A562S"), Ok(()));
        assert_eq!(verifica("rssmra85t10a562s"), Ok(()));
    }

    #[test]
    fn rejects_wrong_check_character() {
        assert_eq!(verifica("RSSMRA85T10A562X"), Err(CfError::Controllo));
    }

    #[test]
    fn rejects_bad_structure_month_day_length() {
        assert_eq!(verifica("RSSMRA85T10A56"), Err(CfError::Lunghezza));
        assert_eq!(verifica("RSS1RA85T10A562S"), Err(CfError::Struttura));
        assert_eq!(verifica(&with_check("RSSMRA85F10A562")), Err(CfError::Mese));
        assert_eq!(verifica(&with_check("RSSMRA85T35A562")), Err(CfError::Giorno));
        assert_eq!(verifica(&with_check("RSSMRA85T00A562")), Err(CfError::Giorno));
        assert_eq!(verifica(&with_check("RSSMRA85T72A562")), Err(CfError::Giorno));
    }

    #[test]
    fn omocodia_in_place_digits_is_accepted() {
        // 2 -> N in the last place digit: still matches the XSD pattern.
        assert_eq!(verifica(&with_check("RSSMRA85T10A56N")), Ok(()));
        assert_eq!(verifica(&with_check("RSSMRA85T10ARSN")), Ok(()));
    }

    #[test]
    fn omocodia_in_day_or_year_is_reported() {
        // Day 10 -> "1L" and year 85 -> "UR": valid codes the XSD pattern refuses.
        assert_eq!(verifica(&with_check("RSSMRA85T1LARSN")), Err(CfError::OmocodiaNonRappresentabile));
        assert_eq!(verifica(&with_check("RSSMRAURTMLARSN")), Err(CfError::OmocodiaNonRappresentabile));
    }

    #[test]
    fn numeric_form_with_padding() {
        // Fake partita IVA with a correct check digit.
        assert_eq!(verifica("12345678903"), Ok(()));
        assert_eq!(verifica("12345678903     "), Ok(()));
        assert_eq!(verifica("12345678904"), Err(CfError::Controllo));
        assert_eq!(verifica("12345678903  x"), Err(CfError::Struttura));
    }

    #[test]
    fn error_messages_carry_no_code() {
        let msg = CfError::OmocodiaNonRappresentabile.to_string();
        assert!(!msg.contains("RSS"));
    }

    #[test]
    fn detects_cf_shaped_strings() {
        assert!(sembra_codice_fiscale("RSSMRA85T10A562S"));
        assert!(sembra_codice_fiscale("12345678903"));
        assert!(!sembra_codice_fiscale("MIN-2024-0001"));
    }
}

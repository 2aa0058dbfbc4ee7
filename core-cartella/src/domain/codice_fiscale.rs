//! Codice fiscale of natural persons: normalisation, structure, check character (with
//! omocodia substitutions) and coherence with birth date and sex.
use std::fmt;

/// A normalised (trimmed, upper-case) and checked codice fiscale. Debug and Display redact it:
/// the only way to the text is [`CodiceFiscale::expose`], used where it must be stored or sent.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CodiceFiscale(String);

impl CodiceFiscale {
    pub fn parse(raw: &str) -> Result<Self, CfError> {
        let cf = raw.trim().to_ascii_uppercase();
        check(&cf)?;
        Ok(Self(cf))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when some digit positions hold omocodia letters.
    pub fn is_omocodico(&self) -> bool {
        OMOCODIA_POSITIONS.iter().any(|&i| self.0.as_bytes()[i].is_ascii_alphabetic())
    }

    /// Birth data encoded in the code: (two-digit year, month 1–12, day 1–31, female).
    pub fn birth(&self) -> (u8, u8, u8, bool) {
        let d = decoded_digits(&self.0);
        let year = d[0] * 10 + d[1];
        let month = MONTHS.iter().position(|&m| m == self.0.as_bytes()[8]).map_or(0, |p| p + 1) as u8;
        let raw_day = d[2] * 10 + d[3];
        let female = raw_day > 40;
        (year, month, if female { raw_day - 40 } else { raw_day }, female)
    }

    /// Belfiore code of the place of birth encoded in the code (a comune, or "Znnn" for a
    /// foreign country), omocodia letters mapped back to digits.
    pub fn luogo_nascita(&self) -> String {
        let d = decoded_digits(&self.0);
        format!("{}{}{}{}", char::from(self.0.as_bytes()[11]), d[4], d[5], d[6])
    }

    /// Whether the code says the person was born abroad (a "Z" place of birth).
    pub fn nato_all_estero(&self) -> bool {
        self.0.as_bytes()[11] == b'Z'
    }
}

impl fmt::Debug for CodiceFiscale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodiceFiscale(<redacted>)")
    }
}

impl fmt::Display for CodiceFiscale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<codice fiscale>")
    }
}

/// Why a codice fiscale was refused. Messages never repeat the code itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CfError {
    #[error("must be 16 characters")]
    Length,
    #[error("character {0} is not allowed there")]
    BadChar(usize),
    #[error("month letter is not one of ABCDEHLMPRST")]
    Month,
    #[error("day of birth is out of range")]
    Day,
    #[error("check character does not match")]
    CheckChar,
}

const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";
/// Positions (0-based) of digits that omocodia may replace with letters.
const OMOCODIA_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";
/// Values of characters in odd (1-based) positions for the check character: digits 0–9 and
/// letters A–Z share the table by their index.
const ODD_VALUES: [u32; 26] = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];

fn check(cf: &str) -> Result<(), CfError> {
    let b = cf.as_bytes();
    if b.len() != 16 {
        return Err(CfError::Length);
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            0..=5 | 8 | 11 | 15 => c.is_ascii_uppercase(),
            _ => c.is_ascii_digit() || OMOCODIA_LETTERS.contains(&c),
        };
        if !ok {
            return Err(CfError::BadChar(i + 1));
        }
    }
    if !MONTHS.contains(&b[8]) {
        return Err(CfError::Month);
    }
    let d = decoded_digits(cf);
    let day = d[2] * 10 + d[3];
    if !(1..=31).contains(&day) && !(41..=71).contains(&day) {
        return Err(CfError::Day);
    }
    if check_char(&b[..15]) != b[15] {
        return Err(CfError::CheckChar);
    }
    Ok(())
}

/// The digits at the omocodia positions, letters mapped back to digits.
fn decoded_digits(cf: &str) -> [u8; 7] {
    let b = cf.as_bytes();
    let mut out = [0u8; 7];
    for (k, &i) in OMOCODIA_POSITIONS.iter().enumerate() {
        let c = b[i];
        out[k] = if c.is_ascii_digit() { c - b'0' } else { OMOCODIA_LETTERS.iter().position(|&l| l == c).unwrap_or(0) as u8 };
    }
    out
}

/// Check character of the first 15 characters (upper-case ASCII letters and digits).
pub fn check_char(first15: &[u8]) -> u8 {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let idx = if c.is_ascii_digit() { (c - b'0') as usize } else { (c.saturating_sub(b'A')) as usize % 26 };
            if i % 2 == 0 { ODD_VALUES[idx] } else { idx as u32 }
        })
        .sum();
    b'A' + (sum % 26) as u8
}

/// Builds the code for fake people (demo data and tests): consonant/vowel rules for the
/// name parts, then date, sex, place and check character.
pub fn compose(cognome: &str, nome: &str, year: i32, month: u8, day: u8, female: bool, belfiore: &str) -> String {
    let mut s = String::with_capacity(16);
    s.push_str(&name_letters(cognome, nome));
    s.push_str(&format!("{:02}", year.rem_euclid(100)));
    s.push(MONTHS[(month.clamp(1, 12) - 1) as usize] as char);
    s.push_str(&format!("{:02}", if female { day + 40 } else { day }));
    s.push_str(belfiore);
    let c = check_char(s.as_bytes());
    s.push(c as char);
    s
}

/// The six letters a code takes from surname and name (accented letters count as plain ones).
pub fn name_letters(cognome: &str, nome: &str) -> String {
    let mut s = name_part(cognome, false);
    s.push_str(&name_part(nome, true));
    s
}

fn name_part(name: &str, is_nome: bool) -> String {
    let folded = super::codes::normalize_name(name);
    let up: Vec<u8> = folded.bytes().filter(u8::is_ascii_alphabetic).map(|c| c.to_ascii_uppercase()).collect();
    let cons: Vec<u8> = up.iter().copied().filter(|c| !b"AEIOU".contains(c)).collect();
    let vow: Vec<u8> = up.iter().copied().filter(|c| b"AEIOU".contains(c)).collect();
    let mut picked: Vec<u8> =
        if is_nome && cons.len() >= 4 { vec![cons[0], cons[2], cons[3]] } else { cons.iter().chain(vow.iter()).copied().take(3).collect() };
    while picked.len() < 3 {
        picked.push(b'X');
    }
    String::from_utf8_lossy(&picked).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (input, expected) — fake codes built by the algorithm, checked by hand.
        let rossi = compose("Rossi", "Mario", 1980, 1, 1, false, "H501");
        let bianchi = compose("Bianchi", "Giulia", 1975, 12, 31, true, "F205");
        let cases: Vec<(String, Result<(), CfError>)> = vec![
            (rossi.clone(), Ok(())),
            (bianchi.clone(), Ok(())),
            (rossi.to_ascii_lowercase(), Ok(())),
            (format!("  {rossi} "), Ok(())),
            (rossi[..15].to_string(), Err(CfError::Length)),
            (format!("{rossi}X"), Err(CfError::Length)),
            (String::new(), Err(CfError::Length)),
            (wrong_check(&rossi), Err(CfError::CheckChar)),
            (omocode(&rossi, &[14]), Ok(())),
            (omocode(&rossi, &[14, 13, 12, 10, 9, 7, 6]), Ok(())),
            (wrong_check(&omocode(&rossi, &[14])), Err(CfError::CheckChar)),
            (with_char(&rossi, 6, b'A'), Err(CfError::BadChar(7))),
            (with_char(&rossi, 0, b'1'), Err(CfError::BadChar(1))),
            (fix_check(&with_char(&rossi, 8, b'F')), Err(CfError::Month)),
            (fix_check(&with_char(&with_char(&rossi, 9, b'3'), 10, b'5')), Err(CfError::Day)),
        ];
        for (input, expected) in cases {
            assert_eq!(CodiceFiscale::parse(&input).map(|_| ()), expected, "input {input:?}");
        }
    }

    #[test]
    fn omocodia_decodes_birth() {
        let cf = CodiceFiscale::parse(&omocode(&compose("Verdi", "Anna", 1990, 7, 15, true, "H501"), &[6, 7, 9, 10])).expect("valid");
        assert!(cf.is_omocodico());
        assert_eq!(cf.birth(), (90, 7, 15, true));
    }

    #[test]
    fn place_of_birth_decoded() {
        let cases = [
            (compose("Verdi", "Anna", 1990, 7, 15, true, "H501"), &[][..], "H501", false),
            (compose("Verdi", "Anna", 1990, 7, 15, true, "F205"), &[12, 13, 14][..], "F205", false),
            (compose("Ionescu", "Ana", 1985, 3, 2, true, "Z129"), &[14][..], "Z129", true),
        ];
        for (cf, omocodia, luogo, estero) in cases {
            let cf = CodiceFiscale::parse(&omocode(&cf, omocodia)).expect("valid");
            assert_eq!((cf.luogo_nascita().as_str(), cf.nato_all_estero()), (luogo, estero));
        }
    }

    #[test]
    fn known_public_example() {
        // The textbook example used in Agenzia delle Entrate material.
        assert!(CodiceFiscale::parse("RSSMRA85T10A562S").is_ok());
        assert_eq!(CodiceFiscale::parse("RSSMRA85T10A562T"), Err(CfError::CheckChar));
    }

    #[test]
    fn redacted() {
        let cf = CodiceFiscale::parse("RSSMRA85T10A562S").expect("valid");
        assert!(!format!("{cf:?} {cf}").contains("RSS"));
    }

    fn with_char(s: &str, i: usize, c: u8) -> String {
        let mut b = s.as_bytes().to_vec();
        b[i] = c;
        String::from_utf8(b).expect("ascii")
    }
    fn fix_check(s: &str) -> String {
        with_char(s, 15, check_char(&s.as_bytes()[..15]))
    }
    fn wrong_check(s: &str) -> String {
        let c = s.as_bytes()[15];
        with_char(s, 15, if c == b'Z' { b'A' } else { c + 1 })
    }
    fn omocode(s: &str, positions: &[usize]) -> String {
        let mut out = s.to_string();
        for &i in positions {
            let d = out.as_bytes()[i] - b'0';
            out = with_char(&out, i, OMOCODIA_LETTERS[d as usize]);
        }
        fix_check(&out)
    }
}

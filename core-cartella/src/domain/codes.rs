//! Formats of the public codes the cartella carries (Belfiore, ISTAT, ISO 3166) and of dates.
use time::{Date, macros::format_description};

/// Belfiore code of a comune ("H501") or foreign country ("Z404").
pub fn is_belfiore(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 4 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit)
}

/// ISTAT comune code: six digits (province and progressive).
pub fn is_istat_comune(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|c| c.is_ascii_digit())
}

/// ISTAT region code: "01" … "20".
pub fn is_istat_regione(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit()) && matches!(s.parse::<u8>(), Ok(1..=20))
}

/// ISO 3166-1 numeric country code, as INPS uses for cittadinanza and nazione.
pub fn is_iso_numeric(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|c| c.is_ascii_digit()) && s != "000"
}

pub const ITALIA: &str = "380";

/// INPS codice prestazione of the Ax.yy catalogue: 5–10 upper-case letters, digits and dots.
pub fn is_codice_prestazione(s: &str) -> bool {
    (5..=10).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'.')
}

/// Parses an ISO calendar date, "YYYY-MM-DD".
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

/// Parses a SINBA month-year, "MM/YYYY" as INPS writes it.
pub fn parse_month_year(s: &str) -> Option<(u8, i32)> {
    let (m, y) = s.split_once('/')?;
    let month: u8 = m.parse().ok()?;
    let year: i32 = y.parse().ok()?;
    ((1..=12).contains(&month) && m.len() == 2 && y.len() == 4).then_some((month, year))
}

pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Upper-case, accent-free form of a name, used for search keys.
pub fn normalize_name(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' | 'À' | 'Á' | 'Â' | 'Ä' => 'A',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'E',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
            'ò' | 'ó' | 'ô' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Ö' => 'O',
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
            '’' => '\'',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_tables() {
        for (s, ok) in [("H501", true), ("Z404", true), ("h501", false), ("H50", false), ("HH01", false)] {
            assert_eq!(is_belfiore(s), ok, "{s}");
        }
        for (s, ok) in [("058091", true), ("58091", false), ("05809A", false)] {
            assert_eq!(is_istat_comune(s), ok, "{s}");
        }
        for (s, ok) in [("12", true), ("01", true), ("00", false), ("21", false), ("1", false)] {
            assert_eq!(is_istat_regione(s), ok, "{s}");
        }
        for (s, ok) in [("380", true), ("000", false), ("38", false), ("ITA", false)] {
            assert_eq!(is_iso_numeric(s), ok, "{s}");
        }
        for (s, ok) in [("A1.01", true), ("A1.01.02", true), ("A1", false), ("a1.01", false), ("A1.01.02.03", false)] {
            assert_eq!(is_codice_prestazione(s), ok, "{s}");
        }
    }

    #[test]
    fn dates() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2024-2-1").is_none());
        assert!(parse_date("").is_none());
        assert_eq!(parse_month_year("03/2024"), Some((3, 2024)));
        assert_eq!(parse_month_year("13/2024"), None);
        assert_eq!(normalize_name(" Nicolò D’Amico "), "NICOLO D'AMICO");
    }
}

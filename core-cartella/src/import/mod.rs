//! Reading the offices' CSV exports (the layout in `conformance/linkage/README.md`): one
//! folder per office, one `;`-separated file per entity, UTF-8 or Windows-1252, Italian
//! dates. Rows stream from the file one at a time; each field is decoded as UTF-8 when it is
//! valid UTF-8 and as Windows-1252 otherwise, so a file needs no declared encoding.
//! Every problem names the file, line and column and never the value (it may be personal
//! data). Rows with a problem are reported and left out; the others are kept.

pub mod jobs;
pub mod load;
pub mod revisione;
pub mod rows;

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    fmt,
    fs::File,
    io::Read,
    path::PathBuf,
    sync::Arc,
};

use time::{Date, Month};

pub use rows::{CartellaRow, FILES, NucleoRow, PersonaRow, PrestazioneRow, read_export};

/// One problem in an export, by place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based line of the file (the header is line 1); 0 when about the whole file.
    pub line: u64,
    /// Column name; empty when about the whole row or file.
    pub column: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column.is_empty()) {
            (0, _) => write!(f, "{}: {}", self.file, self.reason),
            (l, true) => write!(f, "{}:{l}: {}", self.file, self.reason),
            (l, false) => write!(f, "{}:{l}: column {}: {}", self.file, self.column, self.reason),
        }
    }
}

/// A CSV file read row by row, with its header's column positions.
pub struct CsvFile {
    name: String,
    reader: csv::Reader<Box<dyn Read>>,
    columns: HashMap<String, usize>,
    record: csv::ByteRecord,
}

impl fmt::Debug for CsvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvFile").field("name", &self.name).finish_non_exhaustive()
    }
}

/// One row of a [`CsvFile`].
#[derive(Debug)]
pub struct Row<'a> {
    file: &'a CsvFile,
    pub line: u64,
}

/// Where an export's files are: an office's folder, or the files uploaded with a job.
#[derive(Clone)]
pub enum Source {
    Dir(PathBuf),
    /// File name → content.
    Files(BTreeMap<String, Arc<[u8]>>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(_) => f.write_str("Source::Dir"),
            Self::Files(files) => f.debug_tuple("Source::Files").field(&files.keys().collect::<Vec<_>>()).finish(),
        }
    }
}

impl Source {
    fn open(&self, name: &str) -> Option<Box<dyn Read>> {
        match self {
            Self::Dir(dir) => File::open(dir.join(name)).ok().map(|f| Box::new(f) as Box<dyn Read>),
            Self::Files(files) => files.get(name).map(|b| Box::new(std::io::Cursor::new(b.clone())) as Box<dyn Read>),
        }
    }
}

impl CsvFile {
    /// Opens the file `name` of `src` and checks its header has every column in `required`.
    pub fn open(src: &Source, name: &str, required: &[&str]) -> Result<Self, Problem> {
        let file = src.open(name).ok_or_else(|| whole_file(name, "cannot be opened"))?;
        Self::from_reader(name, file, required)
    }

    pub fn from_reader(name: &str, r: Box<dyn Read>, required: &[&str]) -> Result<Self, Problem> {
        let r: Box<dyn Read> = Box::new(StripCr(r));
        let mut reader = csv::ReaderBuilder::new().delimiter(b';').flexible(true).has_headers(true).from_reader(r);
        let header = reader.byte_headers().map_err(|_| whole_file(name, "header row cannot be read"))?.clone();
        let columns: HashMap<String, usize> =
            header.iter().enumerate().map(|(i, h)| (decode(h).trim().trim_start_matches('\u{feff}').to_ascii_lowercase(), i)).collect();
        for c in required {
            if !columns.contains_key(*c) {
                return Err(Problem {
                    file: name.into(),
                    line: 1,
                    column: (*c).into(),
                    reason: "required column missing from the header".into(),
                });
            }
        }
        Ok(Self { name: name.to_string(), reader, columns, record: csv::ByteRecord::new() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next row, or None at the end; a row that cannot be split into fields is a problem.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, Problem>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, |p| p.line());
                Some(Ok(Row { file: self, line }))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                Some(Err(Problem { file: self.name.clone(), line, column: String::new(), reason: "row cannot be read as CSV".into() }))
            }
        }
    }
}

impl Row<'_> {
    /// The trimmed text of a column (empty when the row is short or the column absent).
    pub fn get(&self, column: &str) -> Cow<'_, str> {
        match self.file.columns.get(column).and_then(|&i| self.file.record.get(i)) {
            Some(b) => match decode(b) {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
            },
            None => Cow::Borrowed(""),
        }
    }

    pub fn problem(&self, column: &str, reason: &str) -> Problem {
        Problem { file: self.file.name.clone(), line: self.line, column: column.into(), reason: reason.into() }
    }
}

/// Drops carriage returns: the csv reader counts a CRLF row's line at the LF it has not yet
/// read, so problems on Windows files would name the line before.
struct StripCr(Box<dyn Read>);

impl Read for StripCr {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.0.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut k = 0;
            for i in 0..n {
                if buf[i] != b'\r' {
                    buf[k] = buf[i];
                    k += 1;
                }
            }
            if k > 0 {
                return Ok(k);
            }
        }
    }
}

fn whole_file(name: &str, reason: &str) -> Problem {
    Problem { file: name.into(), line: 0, column: String::new(), reason: reason.into() }
}

/// UTF-8 when valid, Windows-1252 otherwise.
pub fn decode(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(b).0,
    }
}

/// Why a date was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("date must be dd/mm/yyyy (also dd-mm-yyyy or dd.mm.yyyy)")]
    Format,
    #[error("no such day in the calendar")]
    NoSuchDay,
}

/// Parses an Italian date: day, month, four-digit year separated by `/`, `-` or `.`.
pub fn parse_date(s: &str) -> Result<Date, DateError> {
    let parts: Vec<&str> = s.split(['/', '-', '.']).collect();
    let [d, m, y] = parts.as_slice() else { return Err(DateError::Format) };
    let num = |p: &str, max_len: usize| -> Result<u32, DateError> {
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(DateError::Format);
        }
        p.parse().map_err(|_| DateError::Format)
    };
    let (d, m) = (num(d, 2)?, num(m, 2)?);
    if y.len() != 4 {
        return Err(DateError::Format);
    }
    let y = num(y, 4)? as i32;
    let month = Month::try_from(u8::try_from(m).map_err(|_| DateError::NoSuchDay)?).map_err(|_| DateError::NoSuchDay)?;
    Date::from_calendar_date(y, month, u8::try_from(d).map_err(|_| DateError::NoSuchDay)?).map_err(|_| DateError::NoSuchDay)
}

/// Parses the hub's own yyyy-mm-dd dates.
pub fn parse_iso(s: &str) -> Option<Date> {
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (it.next()?.parse::<i32>().ok()?, it.next()?.parse::<u8>().ok()?, it.next()?.parse::<u8>().ok()?);
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

/// Parses an amount in euro with a decimal comma (or point), at most two decimals, into
/// cents. Thousands separators are refused: they are ambiguous between the two styles.
pub fn parse_euro_cents(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = match s.split_once([',', '.']) {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || int.len() > 12
        || !int.bytes().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse::<i64>().ok()?,
    };
    Some(int.parse::<i64>().ok()? * 100 + cents)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn dates() {
        let cases = [
            ("07/03/1980", Ok(date!(1980 - 03 - 07))),
            ("7/3/1980", Ok(date!(1980 - 03 - 07))),
            ("07-03-1980", Ok(date!(1980 - 03 - 07))),
            ("07.03.1980", Ok(date!(1980 - 03 - 07))),
            ("29/02/2000", Ok(date!(2000 - 02 - 29))),
            ("29/02/1900", Err(DateError::NoSuchDay)),
            ("31/04/1980", Err(DateError::NoSuchDay)),
            ("07/13/1980", Err(DateError::NoSuchDay)),
            ("07/03/80", Err(DateError::Format)),
            ("1980-03-07", Err(DateError::Format)),
            ("", Err(DateError::Format)),
            ("a7/03/1980", Err(DateError::Format)),
            ("07/03/1980/1", Err(DateError::Format)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_date(s), want, "{s:?}");
        }
    }

    #[test]
    fn amounts() {
        let cases = [
            ("12,50", Some(1250)),
            ("12.5", Some(1250)),
            ("0", Some(0)),
            ("1234,05", Some(123405)),
            ("1.234,05", None),
            ("-3", None),
            ("", None),
            ("1,234", None),
            ("x", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_euro_cents(s), want, "{s:?}");
        }
    }

    #[test]
    fn windows_1252_and_utf8_fields() {
        assert_eq!(decode("Nicolò".as_bytes()), "Nicolò");
        assert_eq!(decode(b"Nicol\xf2"), "Nicolò");
        assert_eq!(decode(b"Cant\xf9"), "Cantù");
    }

    #[test]
    fn header_and_rows() {
        let data = "\u{feff}ID_PERSONA;cognome\r\nA1;Rossi\r\n\"A2\";\"De; Luca\"\r\nA3\r\n".as_bytes().to_vec();
        let mut f = CsvFile::from_reader("persone.csv", Box::new(std::io::Cursor::new(data)), &["id_persona", "cognome"]).expect("header");
        let mut got = Vec::new();
        while let Some(row) = f.next_row() {
            let row = row.expect("row");
            got.push((row.line, row.get("id_persona").into_owned(), row.get("cognome").into_owned()));
        }
        assert_eq!(got, vec![(2, "A1".into(), "Rossi".into()), (3, "A2".into(), "De; Luca".into()), (4, "A3".into(), String::new())]);
        let missing =
            CsvFile::from_reader("persone.csv", Box::new(std::io::Cursor::new(b"id_persona\n".to_vec())), &["id_persona", "cognome"]);
        assert_eq!(
            missing.map(|_| ()),
            Err(Problem {
                file: "persone.csv".into(),
                line: 1,
                column: "cognome".into(),
                reason: "required column missing from the header".into()
            })
        );
    }
}

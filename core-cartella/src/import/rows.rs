//! The four files of an office's export as typed rows, each checked on its own and against
//! the rows it refers to (a cartella's persona, a prestazione's cartella). A row in error is
//! left out, and so are the rows that refer to it, each with its own problem.
use std::collections::HashSet;

use cartella_proto::v1::{CaratterePrestazione, Parentela, ProvaMezzi, StatoPrestazione};
use time::Date;

use super::{CsvFile, Problem, Row, Source, parse_date, parse_euro_cents};
use crate::linkage::{Record, Sesso};

/// A persona row. Debug redacts the personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonaRow {
    pub line: u64,
    pub id: String,
    pub record: Record,
    /// Belfiore code of the place of birth (optional column).
    pub codice_luogo: String,
    /// ISO 3166 numeric (optional column).
    pub cittadinanza: String,
    pub indirizzo: String,
}

impl std::fmt::Debug for PersonaRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonaRow").field("line", &self.line).field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NucleoRow {
    pub line: u64,
    pub id: String,
    pub persona: String,
    /// `cartella.v1.Parentela` number; `Intestatario` for the household's reference person.
    pub parentela: i32,
}

impl NucleoRow {
    pub fn intestatario(&self) -> bool {
        self.parentela == Parentela::Intestatario as i32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartellaRow {
    pub line: u64,
    pub id: String,
    pub persona: String,
    pub apertura: Date,
    /// `cartella.v1.AreaUtenza` number.
    pub area_utenza: i32,
    pub aperta: bool,
    pub chiusura: Option<Date>,
    pub motivo_chiusura: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrestazioneRow {
    pub line: u64,
    pub id: String,
    pub cartella: String,
    pub codice: String,
    pub denominazione: String,
    /// `cartella.v1.CaratterePrestazione` number.
    pub carattere: i32,
    /// `cartella.v1.ProvaMezzi` number.
    pub prova_mezzi: i32,
    pub protocollo: String,
    pub inizio: Option<Date>,
    pub fine: Option<Date>,
    pub erogazione: Option<Date>,
    /// Monthly amount of a periodic prestazione, total of an occasional one.
    pub importo_centesimi: i64,
    pub periodo_erogazione: Option<i32>,
    /// `cartella.v1.StatoPrestazione` number.
    pub stato: i32,
}

/// Everything good in an export, and every problem found.
#[derive(Debug, Default)]
pub struct Export {
    pub persone: Vec<PersonaRow>,
    pub nuclei: Vec<NucleoRow>,
    pub cartelle: Vec<CartellaRow>,
    pub prestazioni: Vec<PrestazioneRow>,
    /// Households with a row in error: they are left out whole.
    pub nuclei_in_errore: HashSet<String>,
    pub problems: Vec<Problem>,
}

pub const PERSONE: &str = "persone.csv";
pub const NUCLEI: &str = "nuclei.csv";
pub const CARTELLE: &str = "cartelle.csv";
pub const PRESTAZIONI: &str = "prestazioni.csv";

/// The files of an export, in the order they are read.
pub const FILES: [&str; 4] = [PERSONE, NUCLEI, CARTELLE, PRESTAZIONI];

/// The columns `prestazioni.csv` must have; `data_inizio`, `data_fine`, `data_erogazione`,
/// `periodo_erogazione` and `stato` are optional columns.
pub const PRESTAZIONI_COLUMNS: [&str; 8] =
    ["id_prestazione", "id_cartella", "codice_prestazione", "denominazione", "carattere", "prova_mezzi", "protocollo_domanda", "importo"];

/// Reads an office's export. `today` bounds dates that cannot be in the future.
pub fn read_export(dir: &Source, today: Date) -> Export {
    let mut x = Export::default();
    let mut ids = HashSet::new();
    each_row(
        dir,
        PERSONE,
        &["id_persona", "cognome", "nome", "sesso", "data_nascita", "luogo_nascita", "codice_fiscale"],
        &mut x.problems,
        |row, problems| {
            let p = persona(row, today, problems)?;
            unique(row, "id_persona", &p.id, &mut ids, problems)?;
            x.persone.push(p);
            Some(())
        },
    );
    let persone: HashSet<&str> = x.persone.iter().map(|p| p.id.as_str()).collect();
    each_row(dir, NUCLEI, &["id_nucleo", "id_persona", "relazione"], &mut x.problems, |row, problems| {
        let id = required(row, "id_nucleo", problems)?;
        let Some(persona) = reference(row, "id_persona", &persone, PERSONE, problems) else {
            x.nuclei_in_errore.insert(id);
            return None;
        };
        let Some(parentela) = parentela(&row.get("relazione")) else {
            x.nuclei_in_errore.insert(id);
            return report(
                problems,
                row.problem("relazione", "must be intestatario, componente or a kinship (coniuge, figlio, genitore, …)"),
            );
        };
        x.nuclei.push(NucleoRow { line: row.line, id, persona, parentela: parentela as i32 });
        Some(())
    });
    let mut ids = HashSet::new();
    each_row(dir, CARTELLE, &["id_cartella", "id_persona", "data_apertura", "area_utenza", "stato"], &mut x.problems, |row, problems| {
        let c = cartella(row, &persone, today, problems)?;
        unique(row, "id_cartella", &c.id, &mut ids, problems)?;
        x.cartelle.push(c);
        Some(())
    });
    let cartelle: HashSet<&str> = x.cartelle.iter().map(|c| c.id.as_str()).collect();
    let mut ids = HashSet::new();
    each_row(dir, PRESTAZIONI, &PRESTAZIONI_COLUMNS, &mut x.problems, |row, problems| {
        let p = prestazione(row, &cartelle, problems)?;
        unique(row, "id_prestazione", &p.id, &mut ids, problems)?;
        x.prestazioni.push(p);
        Some(())
    });
    x
}

/// Calls `f` on every row of a file; a missing file or header is one problem.
fn each_row(
    dir: &Source,
    name: &str,
    required: &[&str],
    problems: &mut Vec<Problem>,
    mut f: impl FnMut(&Row<'_>, &mut Vec<Problem>) -> Option<()>,
) {
    let mut file = match CsvFile::open(dir, name, required) {
        Ok(f) => f,
        Err(p) => {
            problems.push(p);
            return;
        }
    };
    while let Some(row) = file.next_row() {
        match row {
            Ok(row) => {
                let _ = f(&row, problems);
            }
            Err(p) => problems.push(p),
        }
    }
}

fn report<T>(problems: &mut Vec<Problem>, p: Problem) -> Option<T> {
    problems.push(p);
    None
}

fn required(row: &Row<'_>, column: &str, problems: &mut Vec<Problem>) -> Option<String> {
    let v = row.get(column);
    if v.is_empty() { report(problems, row.problem(column, "required value missing")) } else { Some(v.into_owned()) }
}

fn unique(row: &Row<'_>, column: &str, id: &str, seen: &mut HashSet<String>, problems: &mut Vec<Problem>) -> Option<()> {
    if seen.insert(id.to_string()) { Some(()) } else { report(problems, row.problem(column, "identifier already used on an earlier line")) }
}

fn reference(row: &Row<'_>, column: &str, known: &HashSet<&str>, file: &str, problems: &mut Vec<Problem>) -> Option<String> {
    let v = required(row, column, problems)?;
    if known.contains(v.as_str()) {
        Some(v)
    } else {
        report(problems, row.problem(column, &format!("refers to a row missing from {file} or in error there")))
    }
}

fn date(row: &Row<'_>, column: &str, optional: bool, problems: &mut Vec<Problem>) -> Option<Option<Date>> {
    let v = row.get(column);
    if v.is_empty() {
        return if optional { Some(None) } else { report(problems, row.problem(column, "required value missing")) };
    }
    match parse_date(&v) {
        Ok(d) => Some(Some(d)),
        Err(e) => report(problems, row.problem(column, &e.to_string())),
    }
}

fn persona(row: &Row<'_>, today: Date, problems: &mut Vec<Problem>) -> Option<PersonaRow> {
    let before = problems.len();
    let id = required(row, "id_persona", problems);
    let cognome = required(row, "cognome", problems);
    let nome = required(row, "nome", problems);
    let sesso = match row.get("sesso").to_ascii_uppercase().as_str() {
        "M" => Some(Sesso::M),
        "F" => Some(Sesso::F),
        "" => None,
        _ => {
            problems.push(row.problem("sesso", "must be M, F or empty"));
            None
        }
    };
    let nascita = date(row, "data_nascita", true, problems).flatten();
    if let Some(d) = nascita
        && (d > today || d.year() < 1890)
    {
        problems.push(row.problem("data_nascita", "birth date out of range (future or before 1890)"));
    }
    let cf = row.get("codice_fiscale");
    if !cf.is_empty() && (cf.chars().count() != 16 || !cf.chars().all(|c| c.is_ascii_alphanumeric())) {
        // Kept out rather than judged: it cannot be a codice fiscale at all.
        problems.push(row.problem("codice_fiscale", "must be 16 letters and digits, or empty"));
    }
    if problems.len() > before {
        return None;
    }
    Some(PersonaRow {
        line: row.line,
        id: id?,
        record: Record {
            cognome: cognome?,
            nome: nome?,
            sesso,
            nascita,
            luogo_nascita: row.get("luogo_nascita").into_owned(),
            codice_fiscale: cf.into_owned(),
        },
        codice_luogo: row.get("codice_luogo_nascita").to_ascii_uppercase(),
        cittadinanza: row.get("cittadinanza").into_owned(),
        indirizzo: row.get("indirizzo").into_owned(),
    })
}

/// `cartella.v1.AreaUtenza` of the names exports use.
pub fn area_utenza(s: &str) -> Option<i32> {
    Some(match s.to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "famiglia_minori" | "famiglia_e_minori" => 1,
        "disabili" | "disabilita" | "non_autosufficienza" => 2,
        "poverta" | "poverta_esclusione_sociale" | "esclusione_sociale" => 3,
        "anziani" => 4,
        "immigrati" => 5,
        "dipendenze" => 6,
        "salute_mentale" => 7,
        "multiutenza" => 8,
        _ => return None,
    })
}

fn cartella(row: &Row<'_>, persone: &HashSet<&str>, today: Date, problems: &mut Vec<Problem>) -> Option<CartellaRow> {
    let before = problems.len();
    let id = required(row, "id_cartella", problems);
    let persona = reference(row, "id_persona", persone, PERSONE, problems);
    let apertura = date(row, "data_apertura", false, problems).flatten();
    if apertura.is_some_and(|d| d > today) {
        problems.push(row.problem("data_apertura", "opening date in the future"));
    }
    let area = area_utenza(&row.get("area_utenza"));
    if area.is_none() {
        problems.push(row.problem("area_utenza", "not one of the known areas"));
    }
    let aperta = match row.get("stato").to_ascii_lowercase().as_str() {
        "aperta" => Some(true),
        "chiusa" => Some(false),
        _ => {
            problems.push(row.problem("stato", "must be aperta or chiusa"));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    let chiusura = date(row, "data_chiusura", true, problems).flatten();
    if problems.len() > before {
        return None;
    }
    Some(CartellaRow {
        line: row.line,
        id: id?,
        persona: persona?,
        apertura: apertura?,
        area_utenza: area?,
        aperta: aperta?,
        chiusura,
        motivo_chiusura: row.get("motivo_chiusura").into_owned(),
    })
}

/// `cartella.v1.Parentela` of the names exports use: `componente` when the office keeps no
/// kinship.
pub fn parentela(s: &str) -> Option<Parentela> {
    Some(match s.to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "intestatario" | "intestataria" | "capofamiglia" => Parentela::Intestatario,
        "componente" | "" | "altro" => Parentela::Altro,
        "coniuge" => Parentela::Coniuge,
        "figlio" | "figlia" => Parentela::Figlio,
        "genitore" | "padre" | "madre" => Parentela::Genitore,
        "fratello" | "sorella" => Parentela::Fratello,
        "nonno" | "nonna" => Parentela::Nonno,
        "nipote" => Parentela::Nipote,
        "convivente" => Parentela::Convivente,
        "altro_parente" => Parentela::AltroParente,
        _ => return None,
    })
}

fn enum_column<T>(row: &Row<'_>, column: &str, parse: fn(&str) -> Option<T>, reason: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let v = row.get(column);
    if v.is_empty() {
        return report(problems, row.problem(column, "required value missing"));
    }
    parse(&v.to_ascii_lowercase()).or_else(|| report(problems, row.problem(column, reason)))
}

fn carattere(s: &str) -> Option<CaratterePrestazione> {
    match s {
        "periodica" | "1" => Some(CaratterePrestazione::Periodica),
        "occasionale" | "2" => Some(CaratterePrestazione::Occasionale),
        _ => None,
    }
}

fn prova_mezzi(s: &str) -> Option<ProvaMezzi> {
    match s.replace([' ', '-'], "_").as_str() {
        "isee" => Some(ProvaMezzi::Isee),
        "altra" => Some(ProvaMezzi::Altra),
        "isee_esente" => Some(ProvaMezzi::IseeEsente),
        "nessuna" => Some(ProvaMezzi::Nessuna),
        _ => None,
    }
}

fn stato_prestazione(s: &str) -> Option<StatoPrestazione> {
    match s {
        "" | "attiva" => Some(StatoPrestazione::Attiva),
        "conclusa" => Some(StatoPrestazione::Conclusa),
        "revocata" => Some(StatoPrestazione::Revocata),
        _ => None,
    }
}

fn prestazione(row: &Row<'_>, cartelle: &HashSet<&str>, problems: &mut Vec<Problem>) -> Option<PrestazioneRow> {
    let before = problems.len();
    let id = required(row, "id_prestazione", problems);
    let cartella = reference(row, "id_cartella", cartelle, CARTELLE, problems);
    let codice = required(row, "codice_prestazione", problems);
    let carattere = enum_column(row, "carattere", carattere, "must be periodica or occasionale", problems);
    let prova = enum_column(row, "prova_mezzi", prova_mezzi, "must be isee, altra, isee_esente or nessuna", problems);
    let inizio = date(row, "data_inizio", true, problems).flatten();
    let fine = date(row, "data_fine", true, problems).flatten();
    let erogazione = date(row, "data_erogazione", true, problems).flatten();
    if let (Some(i), Some(f)) = (inizio, fine)
        && f < i
    {
        problems.push(row.problem("data_fine", "ends before it starts"));
    }
    let importo = parse_euro_cents(&row.get("importo"));
    if importo.is_none() {
        problems.push(row.problem("importo", "must be an amount in euro such as 123,45"));
    }
    let periodo = match row.get("periodo_erogazione").as_ref() {
        "" => Some(None),
        p => match p.parse::<i32>() {
            Ok(n) if (1..=12).contains(&n) => Some(Some(n)),
            _ => report(problems, row.problem("periodo_erogazione", "must be a number of months, 1 to 12")),
        },
    };
    let stato = stato_prestazione(&row.get("stato").to_ascii_lowercase());
    if stato.is_none() {
        problems.push(row.problem("stato", "must be attiva, conclusa, revocata or empty"));
    }
    if problems.len() > before {
        return None;
    }
    Some(PrestazioneRow {
        line: row.line,
        id: id?,
        cartella: cartella?,
        codice: codice?,
        denominazione: row.get("denominazione").into_owned(),
        carattere: carattere? as i32,
        prova_mezzi: prova? as i32,
        protocollo: row.get("protocollo_domanda").into_owned(),
        inizio,
        fine,
        erogazione,
        importo_centesimi: importo?,
        periodo_erogazione: periodo?,
        stato: stato? as i32,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use time::macros::date;

    use super::*;

    fn write(dir: &Path, name: &str, text: &[u8]) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    /// Every kind of bad row is reported by file, line and column, and left out with the
    /// rows depending on it; good rows are kept.
    #[test]
    fn bad_rows_are_reported_and_left_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        write(
            d,
            PERSONE,
            b"id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_fiscale;indirizzo\r\n\
P1;Rossi;Mario;M;07/03/1980;Roma;;Via Appia 1\r\n\
P2;;Anna;F;31/02/1980;Roma;;\r\n\
P3;Fabbr\xf2;Luca;X;01/01/1970;Roma;ABC;\r\n\
P1;Verdi;Sara;F;;;;\r\n\
P4;Bianchi;Giulia;f;01/01/2999;;;\r\n\
P5;Neri;Ugo;;;;;\r\n",
        );
        write(d, NUCLEI, b"id_nucleo;id_persona;relazione\nN1;P1;intestatario\nN1;P2;componente\nN2;P5;zio\n");
        write(d, CARTELLE, b"id_cartella;id_persona;data_apertura;area_utenza;stato\nC1;P1;01/02/2020;anziani;aperta\nC2;P3;01/02/2020;anziani;aperta\nC3;P5;;marziani;sospesa\nC4;P5;01/02/2020;poverta;chiusa\n");
        write(
            d,
            PRESTAZIONI,
            b"id_prestazione;id_cartella;codice_prestazione;denominazione;carattere;prova_mezzi;protocollo_domanda;data_inizio;data_fine;data_erogazione;importo;stato\n\
S1;C1;A1.01;Assistenza domiciliare;periodica;isee;P1;01/03/2020;;;12,50;\n\
S2;C2;A1.01;Assistenza domiciliare;periodica;isee;P2;01/03/2020;;;1;\n\
S3;C4;;Assistenza;mensile;nessuno;P3;01/03/2020;01/02/2020;;1.000,00;sospesa\n\
S1;C4;B1.02;Contributo economico;Occasionale;nessuna;P4;;;01/03/2020;3;conclusa\n",
        );
        let x = read_export(&Source::Dir(d.to_path_buf()), date!(2026 - 11 - 28));
        let got: Vec<String> = x.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "persone.csv:3: column cognome: required value missing",
                "persone.csv:3: column data_nascita: no such day in the calendar",
                "persone.csv:4: column sesso: must be M, F or empty",
                "persone.csv:4: column codice_fiscale: must be 16 letters and digits, or empty",
                "persone.csv:5: column id_persona: identifier already used on an earlier line",
                "persone.csv:6: column data_nascita: birth date out of range (future or before 1890)",
                "nuclei.csv:3: column id_persona: refers to a row missing from persone.csv or in error there",
                "nuclei.csv:4: column relazione: must be intestatario, componente or a kinship (coniuge, figlio, genitore, …)",
                "cartelle.csv:3: column id_persona: refers to a row missing from persone.csv or in error there",
                "cartelle.csv:4: column data_apertura: required value missing",
                "cartelle.csv:4: column area_utenza: not one of the known areas",
                "cartelle.csv:4: column stato: must be aperta or chiusa",
                "prestazioni.csv:3: column id_cartella: refers to a row missing from cartelle.csv or in error there",
                "prestazioni.csv:4: column codice_prestazione: required value missing",
                "prestazioni.csv:4: column carattere: must be periodica or occasionale",
                "prestazioni.csv:4: column prova_mezzi: must be isee, altra, isee_esente or nessuna",
                "prestazioni.csv:4: column data_fine: ends before it starts",
                "prestazioni.csv:4: column importo: must be an amount in euro such as 123,45",
                "prestazioni.csv:4: column stato: must be attiva, conclusa, revocata or empty",
                "prestazioni.csv:5: column id_prestazione: identifier already used on an earlier line",
            ]
        );
        assert_eq!(x.persone.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec!["P1", "P5"]);
        assert_eq!(x.nuclei.iter().map(|n| (n.persona.as_str(), n.intestatario())).collect::<Vec<_>>(), vec![("P1", true)]);
        assert_eq!(x.cartelle.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["C1", "C4"]);
        assert_eq!(x.prestazioni.iter().map(|p| (p.id.as_str(), p.importo_centesimi)).collect::<Vec<_>>(), vec![("S1", 1250)]);
        // Values never appear in problems.
        assert!(!got.iter().any(|p| p.contains("Rossi") || p.contains("31/02") || p.contains("marziani") || p.contains("mensile")));
    }

    #[test]
    fn missing_file_is_one_problem() {
        let dir = tempfile::tempdir().expect("tmp");
        let x = read_export(&Source::Dir(dir.path().to_path_buf()), date!(2026 - 11 - 28));
        assert_eq!(x.problems.len(), 4);
        assert_eq!(x.problems[0].to_string(), "persone.csv: cannot be opened");
    }
}

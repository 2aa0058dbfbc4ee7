//! Downloads of a statistics table in open formats: CSV (RFC 4180) and a spreadsheet
//! (XLSX, Office Open XML). The format is chosen by `?format=csv|xlsx` or by `Accept`;
//! without either the table is JSON like every other answer. Suppressed cells are written
//! as `X` and flagged in a column of their own, so they are never mistaken for zeros.
use axum::http::{HeaderMap, header};
use serde_json::Value;

/// The method whose answers can be downloaded.
pub const RPC: &str = "cartella.v1.StatsService.GetTabella";

pub const CSV: &str = "text/csv; charset=utf-8";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Marker of a suppressed figure.
pub const SOPPRESSO: &str = "X";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formato {
    Csv,
    Xlsx,
}

impl Formato {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => CSV,
            Self::Xlsx => XLSX,
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }
}

/// A `format` the table cannot be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatoIgnoto;

/// The format asked for: `format` taken out of the query pairs (it is not a field of the
/// request), else the first download type `Accept` names.
pub fn formato(pairs: &mut Vec<(String, String)>, headers: &HeaderMap) -> Result<Option<Formato>, FormatoIgnoto> {
    if let Some(i) = pairs.iter().position(|(k, _)| k == "format") {
        let (_, v) = pairs.remove(i);
        return match v.as_str() {
            "csv" => Ok(Some(Formato::Csv)),
            "xlsx" => Ok(Some(Formato::Xlsx)),
            "json" => Ok(None),
            _ => Err(FormatoIgnoto),
        };
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for part in accept.split(',') {
        match part.split(';').next().unwrap_or("").trim() {
            "text/csv" => return Ok(Some(Formato::Csv)),
            XLSX => return Ok(Some(Formato::Xlsx)),
            "application/json" | "application/*" | "*/*" => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

const HEADER: [&str; 8] = ["periodo", "riga", "colonna", "valore", "persone", "somma", "media", "soppressa"];

/// The table's rows as text cells, the header first.
fn rows(t: &Value) -> Vec<[String; 8]> {
    let righe = t.get("righe").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("riga");
    let colonne = t.get("colonne").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("colonna");
    let mut header = HEADER.map(str::to_string);
    header[1] = righe.to_string();
    header[2] = colonne.to_string();
    let mut out = vec![header];
    for c in t.get("celle").and_then(Value::as_array).into_iter().flatten() {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let soppressa = c.get("soppressa").and_then(Value::as_bool).unwrap_or(false);
        let n = |k: &str| if soppressa { SOPPRESSO.to_string() } else { c.get(k).map_or(String::new(), |v| v.to_string()) };
        out.push([
            s("periodo"),
            s("riga"),
            s("colonna"),
            n("valore"),
            n("persone"),
            n("somma"),
            n("media"),
            if soppressa { "si" } else { "no" }.into(),
        ]);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The file name offered: the measure and dimensions, nothing personal.
pub fn nome_file(t: &Value, f: Formato) -> String {
    let part = |k: &str| t.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| s.to_string());
    let name: Vec<String> = ["misura", "righe", "colonne", "periodo"].iter().filter_map(|k| part(k)).collect();
    let anni = match (t.get("anno_da").and_then(Value::as_i64), t.get("anno_a").and_then(Value::as_i64)) {
        (Some(a), Some(b)) if a == b => format!("_{a}"),
        (Some(a), Some(b)) => format!("_{a}-{b}"),
        _ => String::new(),
    };
    format!("statistiche_{}{anni}.{}", name.join("_"), f.ext())
}

/// The table in format `f`.
pub fn render(t: &Value, f: Formato) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let rows = rows(t);
    match f {
        Formato::Csv => {
            let mut out = String::new();
            for r in &rows {
                out.push_str(&r.iter().map(|s| csv_field(s)).collect::<Vec<_>>().join(","));
                out.push_str("\r\n");
            }
            Ok(out.into_bytes())
        }
        Formato::Xlsx => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let bold = rust_xlsxwriter::Format::new().set_bold();
            let ws = wb.add_worksheet();
            ws.set_name("statistiche")?;
            for (i, r) in rows.iter().enumerate() {
                let row = u32::try_from(i).unwrap_or(u32::MAX);
                for (j, v) in r.iter().enumerate() {
                    let col = u16::try_from(j).unwrap_or(u16::MAX);
                    if i == 0 {
                        ws.write_string_with_format(row, col, v, &bold)?;
                    } else if (3..7).contains(&j)
                        && let Ok(x) = v.parse::<f64>()
                    {
                        ws.write_number(row, col, x)?;
                    } else {
                        ws.write_string(row, col, v)?;
                    }
                }
            }
            let meta = format!(
                "Ente {}; soglia minima {} persone; conteggi arrotondati a multipli di {}; X = cella soppressa",
                t.get("ente").and_then(Value::as_str).unwrap_or(""),
                t.get("soglia_minima").and_then(Value::as_i64).unwrap_or(0),
                t.get("base_arrotondamento").and_then(Value::as_i64).unwrap_or(0),
            );
            ws.write_string(u32::try_from(rows.len() + 1).unwrap_or(u32::MAX), 0, &meta)?;
            wb.save_to_buffer()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn table() -> Value {
        json!({
            "ente": "H501", "misura": "prestazioni", "righe": "municipio", "colonne": "", "periodo": "anno",
            "anno_da": 2026, "anno_a": 2026, "soglia_minima": 3, "base_arrotondamento": 5,
            "celle": [
                {"periodo": "2026", "riga": "M01", "colonna": "*", "soppressa": false, "valore": 10, "persone": 5, "somma": 120000, "media": 12000.0},
                {"periodo": "2026", "riga": "M02", "colonna": "*", "soppressa": true, "valore": 0, "persone": 0, "somma": 0, "media": 0.0},
            ]
        })
    }

    #[test]
    fn csv_marks_suppressed_cells() {
        let csv = String::from_utf8(render(&table(), Formato::Csv).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "periodo,municipio,colonna,valore,persone,somma,media,soppressa");
        assert_eq!(lines[1], "2026,M01,*,10,5,120000,12000.0,no");
        assert_eq!(lines[2], "2026,M02,*,X,X,X,X,si");
        assert_eq!(nome_file(&table(), Formato::Csv), "statistiche_prestazioni_municipio_anno_2026.csv");
    }

    #[test]
    fn xlsx_is_a_zip_archive() {
        let b = render(&table(), Formato::Xlsx).unwrap();
        assert_eq!(&b[..2], b"PK");
    }

    #[test]
    fn format_from_query_or_accept() {
        let mut h = HeaderMap::new();
        let mut q = vec![("misura".to_string(), "accessi".to_string()), ("format".to_string(), "xlsx".to_string())];
        assert_eq!(formato(&mut q, &h), Ok(Some(Formato::Xlsx)));
        assert_eq!(q.len(), 1, "format is not passed on as a request field");
        assert_eq!(formato(&mut vec![("format".into(), "pdf".into())], &h), Err(FormatoIgnoto));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/csv;q=0.9, application/json"));
        assert_eq!(formato(&mut Vec::new(), &h), Ok(Some(Formato::Csv)));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(formato(&mut Vec::new(), &h), Ok(None));
    }
}

//! Flow identifiers `{ente}.{TIPO}.{AAAAMMGG}.{NNNNNNN}`: formatting and strict parsing.
//!
//! The same string is used as `IdentificazioneFlusso/@Nome` in the XML (at most 50
//! characters, spec tables 2 and 13) and as `id_flusso` in the `GET /flussi` entry (at most
//! 64 characters, OpenAPI). The spec does not define a file-name convention for portal
//! uploads; [`FlowId::nome_file`] simply reuses the id, which is unique per ente and day.

use std::fmt;
use std::str::FromStr;

use crate::model::Data;

/// Longest `id_flusso` accepted by the OpenAPI.
pub const MAX_ID_FLUSSO: usize = 64;
/// Longest `Nome` accepted by the XSD.
pub const MAX_NOME_FLUSSO: usize = 50;
/// `NNNNNNN`: seven digits.
pub const MAX_PROGRESSIVO: u32 = 9_999_999;

/// Token in the second position of the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TipoFlusso {
    Ps,
    Psa,
    Sina,
    Sinba,
}

impl TipoFlusso {
    pub const fn token(self) -> &'static str {
        match self {
            TipoFlusso::Ps => "PS",
            TipoFlusso::Psa => "PSA",
            TipoFlusso::Sina => "SINA",
            TipoFlusso::Sinba => "SINBA",
        }
    }

    pub fn from_token(s: &str) -> Option<Self> {
        Some(match s {
            "PS" => TipoFlusso::Ps,
            "PSA" => TipoFlusso::Psa,
            "SINA" => TipoFlusso::Sina,
            "SINBA" => TipoFlusso::Sinba,
            _ => return None,
        })
    }

    /// Value of the `tipo` property of a `GET /flussi` entry.
    pub const fn tipo_api(self) -> &'static str {
        match self {
            TipoFlusso::Sinba => "SINBA",
            _ => "PS_PSA_SINA",
        }
    }

    /// True for the tokens that name a flow of `PS_PSA_SINA201812.xsd`.
    pub const fn is_ps(self) -> bool {
        !matches!(self, TipoFlusso::Sinba)
    }
}

impl fmt::Display for TipoFlusso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowIdError {
    #[error("identificativo flusso vuoto")]
    Vuoto,
    #[error("identificativo flusso: attese 4 parti separate da '.', trovate {0}")]
    Parti(usize),
    #[error("identificativo flusso: codice ente vuoto o con caratteri non alfanumerici")]
    Ente,
    #[error("identificativo flusso: tipo non ammesso (PS, PSA, SINA, SINBA)")]
    Tipo,
    #[error("identificativo flusso: data non valida (AAAAMMGG)")]
    Data,
    #[error("identificativo flusso: progressivo giornaliero deve essere di 7 cifre")]
    Progressivo,
    #[error("identificativo flusso più lungo di {MAX_ID_FLUSSO} caratteri")]
    Lunghezza,
}

/// Parsed flow id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowId {
    ente: String,
    tipo: TipoFlusso,
    data: Data,
    progressivo: u32,
}

fn ente_ok(ente: &str) -> bool {
    !ente.is_empty() && ente.len() <= 32 && ente.bytes().all(|c| c.is_ascii_alphanumeric())
}

impl FlowId {
    pub fn new(ente: impl Into<String>, tipo: TipoFlusso, data: Data, progressivo: u32) -> Result<Self, FlowIdError> {
        let ente = ente.into();
        if !ente_ok(&ente) {
            return Err(FlowIdError::Ente);
        }
        if progressivo > MAX_PROGRESSIVO {
            return Err(FlowIdError::Progressivo);
        }
        let id = Self { ente, tipo, data, progressivo };
        if id.to_string().len() > MAX_ID_FLUSSO {
            return Err(FlowIdError::Lunghezza);
        }
        Ok(id)
    }

    pub fn ente(&self) -> &str {
        &self.ente
    }
    pub fn tipo(&self) -> TipoFlusso {
        self.tipo
    }
    pub fn data(&self) -> Data {
        self.data
    }
    pub fn progressivo(&self) -> u32 {
        self.progressivo
    }

    /// Whether the id also fits `IdentificazioneFlusso/@Nome` (50 characters).
    pub fn fits_nome(&self) -> bool {
        self.to_string().len() <= MAX_NOME_FLUSSO
    }

    /// File name for a portal upload (`{id}.xml`). The spec has no naming rule for
    /// uploads; this keeps the id visible so that esiti can be matched by name.
    pub fn nome_file(&self) -> String {
        format!("{self}.xml")
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}.{:07}", self.ente, self.tipo, self.data.compact(), self.progressivo)
    }
}

impl FromStr for FlowId {
    type Err = FlowIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(FlowIdError::Vuoto);
        }
        if s.len() > MAX_ID_FLUSSO {
            return Err(FlowIdError::Lunghezza);
        }
        let parts: Vec<&str> = s.split('.').collect();
        let [ente, tipo, data, prog] = parts.as_slice() else {
            return Err(FlowIdError::Parti(parts.len()));
        };
        if !ente_ok(ente) {
            return Err(FlowIdError::Ente);
        }
        let tipo = TipoFlusso::from_token(tipo).ok_or(FlowIdError::Tipo)?;
        let data = Data::parse_compact(data).map_err(|_| FlowIdError::Data)?;
        if prog.len() != 7 || !prog.bytes().all(|c| c.is_ascii_digit()) {
            return Err(FlowIdError::Progressivo);
        }
        let progressivo = prog.parse().map_err(|_| FlowIdError::Progressivo)?;
        Ok(Self { ente: (*ente).to_owned(), tipo, data, progressivo })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: u16, m: u8, g: u8) -> Data {
        Data::new(y, m, g).unwrap()
    }

    #[test]
    fn formats_with_seven_digit_sequence() {
        let id = FlowId::new("H501", TipoFlusso::Ps, d(2021, 5, 20), 2).unwrap();
        assert_eq!(id.to_string(), "H501.PS.20210520.0000002");
        assert_eq!(id.nome_file(), "H501.PS.20210520.0000002.xml");
        assert_eq!(id.tipo().tipo_api(), "PS_PSA_SINA");
        assert!(id.fits_nome());
    }

    #[test]
    fn parses_round_trip() {
        for s in ["H501.PS.20210520.0000002", "H501.SINBA.20240229.9999999", "H501.SINA.20250101.0000000"] {
            assert_eq!(s.parse::<FlowId>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_inps_example_ids() {
        // Both appear in INPS's own OpenAPI examples.
        assert_eq!("H501.SINBA.20210520.00000004".parse::<FlowId>(), Err(FlowIdError::Progressivo));
        assert_eq!("H501.PS.INPS.20160423.115235".parse::<FlowId>(), Err(FlowIdError::Parti(5)));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!("".parse::<FlowId>(), Err(FlowIdError::Vuoto));
        assert_eq!("H501.XX.20210520.0000002".parse::<FlowId>(), Err(FlowIdError::Tipo));
        assert_eq!("H501.PS.20210230.0000002".parse::<FlowId>(), Err(FlowIdError::Data));
        assert_eq!("H-501.PS.20210520.0000002".parse::<FlowId>(), Err(FlowIdError::Ente));
        assert_eq!("H501.PS.20210520.000002".parse::<FlowId>(), Err(FlowIdError::Progressivo));
        assert_eq!(FlowId::new("H501", TipoFlusso::Ps, d(2021, 5, 20), 10_000_000), Err(FlowIdError::Progressivo));
    }

    #[test]
    fn long_ente_fits_id_but_not_nome() {
        let ente = "E".repeat(32);
        let id = FlowId::new(ente, TipoFlusso::Sinba, d(2021, 5, 20), 1).unwrap();
        assert!(id.to_string().len() <= MAX_ID_FLUSSO);
        assert!(!id.fits_nome());
    }
}

//! The writer's exact output, pinned byte for byte: `tests/golden/*.xml` hold what it wrote
//! for the records of `tests/golden/records.rs`; both ways of writing a batch record
//! (`write`, which checks it, and `write_validato`) must keep producing those bytes.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "golden/records.rs"]
mod records;

use common::identificazione;
use siuss::{FlussoPsWriter, FlussoSinbaWriter, Validato};

const PS: &str = include_str!("golden/portale_ps.xml");
const SINBA: &str = include_str!("golden/portale_sinba.xml");

fn ps_id() -> siuss::model::IdentificazioneFlusso {
    identificazione("H501.PS.20250520.0000011")
}

fn sinba_id() -> siuss::model::IdentificazioneFlusso {
    identificazione("H501.SINBA.20250520.0000012")
}

#[test]
fn write_keeps_the_pinned_bytes() {
    let mut w = FlussoPsWriter::begin(Vec::new(), &ps_id()).unwrap();
    for b in records::beneficiari() {
        w.write(&b).unwrap();
    }
    assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), PS);

    let mut w = FlussoSinbaWriter::begin(Vec::new(), &sinba_id()).unwrap();
    for s in records::sinba() {
        w.write(&s).unwrap();
    }
    assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), SINBA);
}

#[test]
fn write_validato_keeps_the_pinned_bytes() {
    let mut w = FlussoPsWriter::begin(Vec::new(), &ps_id()).unwrap();
    for b in records::beneficiari() {
        w.write_validato(&Validato::valida(b, "beneficiario").unwrap()).unwrap();
    }
    assert_eq!(w.scritti(), 2);
    assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), PS);

    let mut w = FlussoSinbaWriter::begin(Vec::new(), &sinba_id()).unwrap();
    for s in records::sinba() {
        w.write_validato(&Validato::valida(s, "sinba").unwrap()).unwrap();
    }
    assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), SINBA);
}

//! INPS SIUSS adapter: wire model, spec rules and streaming XML writers for the
//! PS/PSA/SINA and SINBA flows that Roma Capitale conferisce to INPS (specifica tecnica
//! WaaS-SIUSS v2.0.1, `PS_PSA_SINA201812.xsd`, `SINBA.xsd`).
//!
//! No I/O of its own other than the `std::io::Write` sink handed to the writers: the
//! adapter reads through the contract's `Source` port and writes through the [`ledger::Ledger`]
//! port, both implemented by the binary.
//!
//! - [`model`]: Rust types mirroring the two XSDs;
//! - [`rules`]: every rule of the spec tables that the XSDs cannot express, plus the XSD
//!   facets the model cannot enforce by type; reports all violations at once;
//! - [`writer`]: validating streaming writers (whole flow, or one record at a time);
//! - [`flow_id`]: `{ente}.{TIPO}.{AAAAMMGG}.{NNNNNNN}` identifiers;
//! - [`cf`]: codice fiscale checks, including omocodic codes the XSD pattern refuses;
//! - [`from_core`]: the cartella's records (`cartella.v1`) mapped to flow records;
//! - [`validato`]: records proven valid by the rules, written and merged without checking
//!   them again;
//! - [`ledger`]: the flow ledger's port and the pure decision of what to emit against what
//!   stands at INPS;
//! - [`adapter`]: the flow producer as an outbound adapter of the delivery engine.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adapter;
pub mod cf;
pub mod flow_id;
pub mod from_core;
pub mod ledger;
pub mod model;
mod num;
pub mod rules;
pub mod validato;
pub mod writer;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::model::Beneficiario {}
    impl Sealed for crate::model::Sinba {}
}

pub use flow_id::{FlowId, FlowIdError, TipoFlusso};
pub use rules::{Canale, Rule, Schema, Violation, validate_ps, validate_sinba};
pub use validato::Validato;
pub use writer::{FlussoPsWriter, FlussoSinbaWriter, FlussoWriter, VoceFlusso, WriteError, write_flusso_ps, write_flusso_sinba};

//! Tenancy as SQL: which rows of a kind a caller may see or change. One definition per
//! scope class, used by reads, writes, lists and the feed alike, so the rule cannot differ
//! between paths.
use crate::{auth::Caller, record::ScopeClass};

use super::sql::Q;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

/// Appends `(condition)` restricting rows of `class` (aliased as the bare table) to the caller.
/// `today` bounds the validity of sharing bases.
pub fn push_scope(q: &mut Q, caller: &Caller, class: ScopeClass, mode: Mode, today: &str) {
    q.push("(ente = ").bind_text(&caller.ente);
    let Some(ufficio) = caller.ufficio.as_deref() else {
        // Ente-wide callers see the whole ente.
        q.push(")");
        return;
    };
    match class {
        ScopeClass::Ufficio => {
            q.push(" AND ufficio = ").bind_text(ufficio);
        }
        ScopeClass::Cartella => {
            q.push(" AND (ufficio = ").bind_text(ufficio).push(" OR cartella_id IN (");
            push_shared(q, ufficio, mode, today);
            q.push("))");
        }
        ScopeClass::Persona => {
            q.push(" AND (ufficio = ").bind_text(ufficio);
            q.push(" OR id IN (SELECT persona_id FROM cartella WHERE ente = ").bind_text(&caller.ente);
            q.push(" AND (ufficio = ").bind_text(ufficio).push(" OR id IN (");
            push_shared(q, ufficio, mode, today);
            q.push(")))");
            // An accesso or a household makes the person known to the ufficio (it reads the
            // anagrafica) but is no presa in carico: changing the anagrafica takes the
            // registering ufficio or a cartella (its own, or shared with write).
            if mode == Mode::Read {
                q.push(" OR id IN (SELECT persona_id FROM accesso WHERE ente = ").bind_text(&caller.ente);
                q.push(" AND ufficio = ").bind_text(ufficio).push(")");
                q.push(" OR id IN (SELECT m.persona_id FROM nucleo_membro m JOIN nucleo n ON n.id = m.nucleo_id WHERE n.ente = ");
                q.bind_text(&caller.ente).push(" AND n.ufficio = ").bind_text(ufficio).push(")");
            }
            q.push(")");
        }
    }
    q.push(")");
}

/// `SELECT cartella_id` of the sharing bases valid today for `ufficio`.
fn push_shared(q: &mut Q, ufficio: &str, mode: Mode, today: &str) {
    q.push("SELECT s.cartella_id FROM condivisione s WHERE s.ufficio_destinatario = ").bind_text(ufficio);
    q.push(" AND (s.valida_fino_al IS NULL OR s.valida_fino_al >= ").bind_text(today).push(")");
    if mode == Mode::Write {
        q.push(" AND s.scrittura = 1");
    }
}

//! Referrals received from other systems (`RecordSegnalazione`): the person found by codice
//! fiscale or created, an accesso in the ufficio that takes the case, and the sender's
//! message id kept under a unique key, in one transaction, so the same message received
//! twice is one case.
use cartella_proto::v1::{Accesso, CanaleAccesso, EsitoAccesso, Meta, Persona, Segnalazione, Sesso};
use sqlx::{Any, Row, Transaction};

use super::{Store, now, records::is_unique_violation, sql::Q};
use crate::{
    auth::Caller,
    domain::{Violation, codes, codice_fiscale::CodiceFiscale},
    error::{CoreError, Result},
    record::Kind,
};

const MAX_ORIGINE: usize = 64;
const MAX_ID_MESSAGGIO: usize = 200;

/// What `record_segnalazione` did.
#[derive(Clone, Debug, PartialEq)]
pub struct Registrata {
    pub accesso: Accesso,
    /// The person was created by this referral.
    pub nuova_persona: bool,
    /// The message had been recorded before: nothing was written this time.
    pub gia_registrata: bool,
}

/// Every problem of a request, before anything is read or written.
fn check(req: &Segnalazione) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut add =
        |field: &str, description: &str| v.push(Violation { field: format!("segnalazione.{field}"), description: description.into() });
    let token = |s: &str, max: usize| s.len() <= max && s.bytes().all(|c| c.is_ascii_graphic());
    if req.origine.is_empty() {
        add("origine", "is required");
    } else if !token(&req.origine, MAX_ORIGINE) {
        add("origine", "must be at most 64 printable ASCII characters without spaces");
    }
    if req.id_messaggio.is_empty() {
        add("id_messaggio", "is required");
    } else if !token(&req.id_messaggio, MAX_ID_MESSAGGIO) {
        add("id_messaggio", "must be at most 200 printable ASCII characters without spaces");
    }
    if req.ufficio.trim().is_empty() {
        add("ufficio", "is required");
    }
    match &req.persona {
        None => add("persona", "is required"),
        Some(p) if p.codice_fiscale.trim().is_empty() => add("persona.codice_fiscale", "is required"),
        Some(p) => {
            if let Err(e) = CodiceFiscale::parse(&p.codice_fiscale) {
                add("persona.codice_fiscale", &e.to_string());
            }
        }
    }
    v
}

/// The person to create from the sender's data: what the codice fiscale encodes fills the
/// gaps the cartella requires.
fn nuova_persona(req: &Segnalazione, cf: &CodiceFiscale) -> Persona {
    let mut p = req.persona.clone().unwrap_or_default();
    p.codice_fiscale = cf.expose().to_string();
    if p.luogo_nascita.trim().is_empty() {
        p.luogo_nascita = cf.luogo_nascita();
    }
    if p.sesso == Sesso::Unspecified as i32 {
        p.sesso = if cf.birth().3 { Sesso::Femmina } else { Sesso::Maschio } as i32;
    }
    if p.cittadinanza.trim().is_empty() && !cf.nato_all_estero() {
        p.cittadinanza = codes::ITALIA.to_string();
    }
    p.meta = Some(Meta { ufficio: req.ufficio.clone(), ..Meta::default() });
    p
}

/// A violation of the person or accesso created, named by its field in the request.
fn as_request_field(v: Violation) -> Violation {
    let field = match v.field.split_once('.') {
        Some(("persona", rest)) => format!("segnalazione.persona.{rest}"),
        Some(("accesso", rest)) => format!("segnalazione.{rest}"),
        _ => v.field,
    };
    Violation { field, ..v }
}

impl Store {
    /// Records a referral (see `RecordSegnalazione` in the proto). A concurrent copy of the
    /// same message, or a concurrent referral creating the same person, is resolved by the
    /// unique keys: the loser reads what the winner committed, or tries once more.
    pub async fn record_segnalazione(&self, caller: &Caller, req: Segnalazione) -> Result<Registrata> {
        if !caller.can_write() {
            return Err(CoreError::Denied("the caller's roles do not allow writing"));
        }
        let violations = check(&req);
        if !violations.is_empty() {
            return Err(CoreError::Invalid(violations));
        }
        if caller.ufficio.as_deref().is_some_and(|u| u != req.ufficio) {
            return Err(CoreError::Denied("a caller bound to an ufficio records referrals for its own ufficio only"));
        }
        if let Some(r) = self.segnalazione_registrata(caller, &req).await? {
            return Ok(r);
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut tx = self.pool.begin().await?;
            let err = match self.segnalazione_in(&mut tx, caller, &req).await {
                Ok(r) => {
                    tx.commit().await?;
                    self.notify();
                    return Ok(r);
                }
                Err(e) => e,
            };
            drop(tx);
            let err = match err {
                CoreError::Invalid(v) => return Err(CoreError::Invalid(v.into_iter().map(as_request_field).collect())),
                e => e,
            };
            let raced = match &err {
                CoreError::Store(e) => is_unique_violation(e),
                CoreError::PersonaExists { .. } => true,
                _ => false,
            };
            if !raced {
                return Err(err);
            }
            if let Some(r) = self.segnalazione_registrata(caller, &req).await? {
                return Ok(r);
            }
            if attempts >= 2 {
                return Err(err);
            }
        }
    }

    /// The accesso a message recorded before, read (and audited) for the caller.
    async fn segnalazione_registrata(&self, caller: &Caller, req: &Segnalazione) -> Result<Option<Registrata>> {
        let row = Q::new("SELECT a.body AS body FROM segnalazione_esterna s JOIN accesso a ON a.id = s.accesso_id WHERE s.ente = ")
            .bind_text(&caller.ente)
            .push(" AND s.origine = ")
            .bind_text(&req.origine)
            .push(" AND s.id_messaggio = ")
            .bind_text(&req.id_messaggio)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let body: Vec<u8> = row.try_get("body")?;
        let accesso =
            <Accesso as prost::Message>::decode(body.as_slice()).map_err(|_| CoreError::Internal("undecodable accesso record".into()))?;
        let (at, _) = now();
        let id = accesso.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
        self.audit_read(caller, &at, Kind::Accesso, &[&id], &caller.purpose).await?;
        Ok(Some(Registrata { accesso, nuova_persona: false, gia_registrata: true }))
    }

    async fn segnalazione_in(&self, tx: &mut Transaction<'static, Any>, caller: &Caller, req: &Segnalazione) -> Result<Registrata> {
        let cf = CodiceFiscale::parse(req.persona.as_ref().map(|p| p.codice_fiscale.as_str()).unwrap_or_default())
            .map_err(|e| CoreError::invalid("segnalazione.persona.codice_fiscale", &e.to_string()))?;
        let found = Q::new("SELECT id FROM persona WHERE ente = ")
            .bind_text(&caller.ente)
            .push(" AND codice_fiscale = ")
            .bind_text(cf.expose())
            .fetch_optional(&mut **tx)
            .await?;
        let (persona_id, nuova) = match found {
            Some(r) => (r.try_get::<String, _>("id")?, false),
            None => {
                let p = self.create_in(tx, caller, nuova_persona(req, &cf)).await?;
                (p.meta.map(|m| m.id).unwrap_or_default(), true)
            }
        };
        let (at, today) = now();
        let accesso = Accesso {
            meta: Some(Meta { ufficio: req.ufficio.clone(), ..Meta::default() }),
            persona_id: persona_id.clone(),
            data: if req.data.is_empty() { codes::format_date(today) } else { req.data.clone() },
            canale: CanaleAccesso::Segnalazione as i32,
            segnalante: req.segnalante.clone(),
            motivo: req.motivo.clone(),
            esito: EsitoAccesso::InValutazione as i32,
            servizio_inviante: String::new(),
        };
        let accesso = self.create_in(tx, caller, accesso).await?;
        let accesso_id = accesso.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
        Q::new("INSERT INTO segnalazione_esterna (ente, origine, id_messaggio, accesso_id, persona_id, ricevuta_il) VALUES (")
            .bind_text(&caller.ente)
            .push(", ")
            .bind_text(&req.origine)
            .push(", ")
            .bind_text(&req.id_messaggio)
            .push(", ")
            .bind_text(&accesso_id)
            .push(", ")
            .bind_text(&persona_id)
            .push(", ")
            .bind_text(&at)
            .push(")")
            .execute(&mut **tx)
            .await?;
        Ok(Registrata { accesso, nuova_persona: nuova, gia_registrata: false })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::codice_fiscale::compose;

    fn good() -> Segnalazione {
        Segnalazione {
            origine: "regione-lazio".into(),
            id_messaggio: "msg-1".into(),
            persona: Some(Persona {
                codice_fiscale: compose("Verdi", "Anna", 1950, 3, 4, true, "Z129"),
                cognome: "Verdi".into(),
                nome: "Anna".into(),
                data_nascita: "1950-03-04".into(),
                ..Persona::default()
            }),
            ufficio: "M05".into(),
            ..Segnalazione::default()
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        assert!(check(&good()).is_empty());
        type Edit = fn(&mut Segnalazione);
        let cases: [(Edit, &str); 7] = [
            (|s| s.origine.clear(), "segnalazione.origine"),
            (|s| s.origine = "regione lazio".into(), "segnalazione.origine"),
            (|s| s.id_messaggio.clear(), "segnalazione.id_messaggio"),
            (|s| s.id_messaggio = "x".repeat(201), "segnalazione.id_messaggio"),
            (|s| s.ufficio = " ".into(), "segnalazione.ufficio"),
            (|s| s.persona = None, "segnalazione.persona"),
            (|s| s.persona.as_mut().unwrap().codice_fiscale = "VRDNNA50C44Z129A".into(), "segnalazione.persona.codice_fiscale"),
        ];
        for (edit, field) in cases {
            let mut s = good();
            edit(&mut s);
            let v = check(&s);
            assert_eq!(v.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), vec![field]);
            assert!(!v[0].description.contains("VRDNNA"), "no value in the description");
        }
    }

    #[test]
    fn a_new_person_gets_what_the_code_encodes() {
        let s = good();
        let cf = CodiceFiscale::parse(&s.persona.as_ref().unwrap().codice_fiscale).unwrap();
        let p = nuova_persona(&s, &cf);
        assert_eq!((p.luogo_nascita.as_str(), p.sesso), ("Z129", Sesso::Femmina as i32));
        assert_eq!(p.cittadinanza, "", "born abroad: not assumed");
        assert_eq!(p.meta.unwrap().ufficio, "M05");
        let mut italian = good();
        let born_in_rome = compose("Verdi", "Anna", 1950, 3, 4, true, "H501");
        italian.persona.as_mut().unwrap().codice_fiscale = born_in_rome.clone();
        let p = nuova_persona(&italian, &CodiceFiscale::parse(&born_in_rome).unwrap());
        assert_eq!((p.luogo_nascita.as_str(), p.cittadinanza.as_str()), ("H501", "380"));
    }

    #[test]
    fn refusals_of_the_records_name_request_fields() {
        let v = |f: &str| as_request_field(Violation { field: f.into(), description: "x".into() }).field;
        assert_eq!(v("persona.cittadinanza"), "segnalazione.persona.cittadinanza");
        assert_eq!(v("accesso.data"), "segnalazione.data");
        assert_eq!(v("segnalazione.ufficio"), "segnalazione.ufficio");
    }
}

//! The registro degli accessi: the audit rows about one person, for the data protection
//! officer. "About a person" is their anagrafica, the households they belong to, their
//! accessi and cartelle, and every record hanging off those cartelle (diario, valutazioni,
//! PAI, prestazioni, condivisioni). Reading the register is itself audited, on the person,
//! with the purpose the officer declared, before anything is returned.
use sqlx::Row;
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use super::{Store, audit, now, sql::Q};
use crate::{
    auth::{Caller, Role, check_purpose},
    domain::{Violation, codice_fiscale::CodiceFiscale},
    error::{CoreError, Result},
    record::Kind,
};

/// Tables whose rows hang off a cartella (their `cartella_id` column names it).
const UNDER_CARTELLA: [&str; 5] = ["diario", "valutazione", "pai", "prestazione", "condivisione"];

/// What the officer asks for. One of `persona_id` and `codice_fiscale` names the person.
#[derive(Clone, Debug, Default)]
pub struct RegistroFilter {
    pub persona_id: String,
    pub codice_fiscale: String,
    pub actor: String,
    /// RFC 3339 instant or `YYYY-MM-DD` (from the start of that day, UTC).
    pub dal: String,
    /// RFC 3339 instant or `YYYY-MM-DD` (to the end of that day, UTC).
    pub al: String,
}

/// One audit row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RigaRegistro {
    pub id: i64,
    pub at: String,
    pub actor_kind: String,
    pub actor: String,
    pub ente: String,
    pub ufficio: String,
    pub action: String,
    pub kind: String,
    pub record_id: String,
    pub purpose: String,
    pub request_id: String,
}

/// One page of the register.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaginaRegistro {
    /// The person the rows are about; empty when none of the ente matched.
    pub persona_id: String,
    pub righe: Vec<RigaRegistro>,
    /// The audit id to continue before, when there is a next page.
    pub next: Option<i64>,
}

/// The register is read by ente-wide callers with role `dpo`.
fn check_dpo(caller: &Caller) -> Result<()> {
    if caller.ufficio.is_some() || !caller.has(Role::Dpo) {
        return Err(CoreError::Denied("the registro degli accessi is read by ente-wide callers with role dpo"));
    }
    Ok(())
}

/// A bound to compare the audit trail's instants with, or None when `s` is empty. The trail
/// writes RFC 3339 UTC with optional fractions (`…T10:00:00.25Z`), so the bound is the UTC
/// instant to the second without the `Z`: as text it sorts before every instant of that
/// second and after every earlier one. A date alone stands for the start (`end = false`) or
/// the end of that day.
fn bound(s: &str, end: bool) -> std::result::Result<Option<String>, &'static str> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let t = match Date::parse(s, format_description!("[year]-[month]-[day]")) {
        Ok(d) if end => d.next_day().ok_or("is out of range")?.midnight().assume_utc(),
        Ok(d) => d.midnight().assume_utc(),
        Err(_) => {
            let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| "must be an RFC 3339 instant or a date YYYY-MM-DD")?;
            t.to_offset(time::UtcOffset::UTC)
        }
    };
    t.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).map(Some).map_err(|_| "is out of range")
}

/// Checks the request as a whole, every problem at once.
fn check(f: &RegistroFilter, purpose: &str) -> Result<(Option<String>, Option<String>)> {
    let mut v = Vec::new();
    let mut bad = |field: &str, d: &str| v.push(Violation { field: field.into(), description: d.into() });
    if f.persona_id.trim().is_empty() == f.codice_fiscale.trim().is_empty() {
        bad("persona_id", "give the person's id or their codice fiscale (one of the two)");
    }
    if !f.codice_fiscale.trim().is_empty() && CodiceFiscale::parse(f.codice_fiscale.trim()).is_err() {
        bad("codice_fiscale", "is not a valid codice fiscale");
    }
    let p = purpose.trim();
    if p.chars().count() < 3 {
        bad("purpose", "say why the register is read (at least 3 characters)");
    } else if let Err(e) = check_purpose(p) {
        bad("purpose", &e.to_string());
    }
    let dal = bound(&f.dal, false).unwrap_or_else(|e| {
        bad("dal", e);
        None
    });
    let al = bound(&f.al, true).unwrap_or_else(|e| {
        bad("al", e);
        None
    });
    if v.is_empty() { Ok((dal, al)) } else { Err(CoreError::Invalid(v)) }
}

impl Store {
    /// One page of the audit rows about a person of the caller's ente, newest first (before
    /// the audit id `before` when it is > 0). The consultation is audited first.
    pub async fn registro_accessi(
        &self,
        caller: &Caller,
        f: &RegistroFilter,
        purpose: &str,
        before: i64,
        size: u32,
    ) -> Result<PaginaRegistro> {
        check_dpo(caller)?;
        let (dal, al) = check(f, purpose)?;
        let size = size.clamp(1, 500);
        let mut q = Q::new("SELECT id FROM persona WHERE ente = ");
        q.bind_text(&caller.ente);
        if f.persona_id.trim().is_empty() {
            let cf = CodiceFiscale::parse(f.codice_fiscale.trim()).map_err(|_| CoreError::invalid("codice_fiscale", "is not valid"))?;
            q.push(" AND codice_fiscale = ").bind_text(cf.expose());
        } else {
            q.push(" AND id = ").bind_text(f.persona_id.trim());
        }
        let Some(row) = q.fetch_optional(&self.pool).await? else {
            return Ok(PaginaRegistro::default());
        };
        let persona: String = row.try_get("id")?;
        let (at, _) = now();
        audit(&self.pool, caller, &at, "registro", Kind::Persona, &[&persona], purpose.trim()).await?;

        let mut q =
            Q::new("SELECT id, at, actor_kind, actor, ente, ufficio, action, kind, record_id, purpose, request_id FROM audit WHERE (");
        q.push("(kind = 'persona' AND record_id = ").bind_text(&persona).push(")");
        q.push(" OR (kind = 'nucleo' AND record_id IN (SELECT nucleo_id FROM nucleo_membro WHERE persona_id = ")
            .bind_text(&persona)
            .push("))");
        q.push(" OR (kind = 'accesso' AND record_id IN (SELECT id FROM accesso WHERE persona_id = ").bind_text(&persona).push("))");
        q.push(" OR (kind = 'cartella' AND record_id IN (SELECT id FROM cartella WHERE persona_id = ").bind_text(&persona).push("))");
        for t in UNDER_CARTELLA {
            // Table names come from the constant above, never from input.
            q.push(" OR (kind = '").push(t).push("' AND record_id IN (SELECT id FROM ").push(t);
            q.push(" WHERE cartella_id IN (SELECT id FROM cartella WHERE persona_id = ").bind_text(&persona).push(")))");
        }
        q.push(")");
        if !f.actor.trim().is_empty() {
            q.push(" AND actor = ").bind_text(f.actor.trim());
        }
        if let Some(d) = &dal {
            q.push(" AND at >= ").bind_text(d);
        }
        if let Some(a) = &al {
            q.push(" AND at < ").bind_text(a);
        }
        if before > 0 {
            q.push(" AND id < ").bind_int(before);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_int(i64::from(size) + 1);
        let rows = q.fetch_all(&self.pool).await?;
        let mut righe = Vec::with_capacity(rows.len());
        for r in &rows {
            righe.push(RigaRegistro {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor_kind: r.try_get("actor_kind")?,
                actor: r.try_get("actor")?,
                ente: r.try_get("ente")?,
                ufficio: r.try_get::<Option<String>, _>("ufficio")?.unwrap_or_default(),
                action: r.try_get("action")?,
                kind: r.try_get("kind")?,
                record_id: r.try_get("record_id")?,
                purpose: r.try_get("purpose")?,
                request_id: r.try_get("request_id")?,
            });
        }
        let next = (righe.len() > size as usize).then(|| {
            righe.truncate(size as usize);
            righe.last().map_or(0, |r| r.id)
        });
        Ok(PaginaRegistro { persona_id: persona, righe, next })
    }
}

#[cfg(test)]
mod tests {
    use super::bound;

    #[test]
    fn bounds_accept_dates_and_instants_and_refuse_the_rest() {
        assert_eq!(bound("", false), Ok(None));
        assert_eq!(bound("2026-11-28", false), Ok(Some("2026-11-28T00:00:00".into())));
        assert_eq!(bound("2026-11-28", true), Ok(Some("2026-11-29T00:00:00".into())));
        assert_eq!(bound("2026-11-28T10:00:00+01:00", false), Ok(Some("2026-11-28T09:00:00".into())));
        // Instants of the trail, with and without fractions, sort on the right side.
        let from = bound("2026-11-28", false).ok().flatten().unwrap_or_default();
        assert!("2026-11-28T00:00:00Z" >= from.as_str() && "2026-11-28T00:00:00.5Z" >= from.as_str());
        assert!("2026-11-27T23:59:59.999Z" < from.as_str());
        assert!(bound("28/11/2026", false).is_err());
        assert!(bound("2026-13-01", false).is_err());
    }
}

//! Validators for each record of the cartella. They also normalise what has one canonical
//! form (codice fiscale upper-case, trimmed codes) so the store keeps one spelling.
use cartella_proto::v1::{
    Accesso, AreaUtenza, CanaleAccesso, CaratterePrestazione, Cartella, Condivisione, DiarioEntry, EsitoAccesso, Indirizzo, Nucleo, Pai,
    Persona, Prestazione, ProvaMezzi, Sesso, Sina, Sinba, StatoCartella, StatoPai, StatoPrestazione, TipoDiario, Valutazione,
    valutazione::Scheda,
};
use time::Date;

use super::{
    Violation, Violations,
    codes::{self, parse_date, parse_month_year},
    codice_fiscale::CodiceFiscale,
};

const MAX_TEXT: usize = 200;
const MAX_NOTE: usize = 20_000;

fn required_text(v: &mut Violations, field: &str, s: &str, max: usize) {
    if s.trim().is_empty() {
        v.add(field, "is required");
    } else if s.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

fn optional_text(v: &mut Violations, field: &str, s: &str, max: usize) {
    if s.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

/// A required date, not after `today` when `past_only`.
fn required_date(v: &mut Violations, field: &str, s: &str, today: Date, past_only: bool) -> Option<Date> {
    if s.is_empty() {
        v.add(field, "is required (YYYY-MM-DD)");
        return None;
    }
    optional_date(v, field, s, today, past_only)
}

fn optional_date(v: &mut Violations, field: &str, s: &str, today: Date, past_only: bool) -> Option<Date> {
    if s.is_empty() {
        return None;
    }
    match parse_date(s) {
        None => {
            v.add(field, "must be a calendar date YYYY-MM-DD");
            None
        }
        Some(d) if d.year() < 1900 => {
            v.add(field, "must not be before 1900");
            None
        }
        Some(d) if past_only && d > today => {
            v.add(field, "must not be in the future");
            None
        }
        Some(d) => Some(d),
    }
}

fn date_order(v: &mut Violations, end_field: &str, start: Option<Date>, end: Option<Date>, start_field: &str) {
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        v.add(end_field, format!("must not be before {start_field}"));
    }
}

fn required_enum(v: &mut Violations, field: &str, value: i32, known: bool) {
    if value == 0 {
        v.add(field, "is required");
    } else if !known {
        v.add(field, "is not a known value");
    }
}

fn required_id(v: &mut Violations, field: &str, id: &str) {
    if id.trim().is_empty() {
        v.add(field, "is required");
    } else if id.len() > 64 || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        v.add(field, "is not a valid id");
    }
}

fn indirizzo(v: &mut Violations, field: &str, a: &Indirizzo) {
    if a.codice_nazione.is_empty() {
        v.add(&format!("{field}.codice_nazione"), "is required (ISO 3166 numeric)");
    } else if !codes::is_iso_numeric(&a.codice_nazione) {
        v.add(&format!("{field}.codice_nazione"), "must be an ISO 3166 numeric code (3 digits)");
    }
    let italy = a.codice_nazione == codes::ITALIA;
    if italy && a.codice_regione.is_empty() {
        v.add(&format!("{field}.codice_regione"), "is required when codice_nazione is 380");
    } else if !a.codice_regione.is_empty() && !codes::is_istat_regione(&a.codice_regione) {
        v.add(&format!("{field}.codice_regione"), "must be an ISTAT region code 01-20");
    }
    if italy && a.codice_comune.is_empty() {
        v.add(&format!("{field}.codice_comune"), "is required when codice_nazione is 380");
    } else if !a.codice_comune.is_empty() && !codes::is_istat_comune(&a.codice_comune) {
        v.add(&format!("{field}.codice_comune"), "must be an ISTAT comune code (6 digits)");
    }
    optional_text(v, &format!("{field}.indirizzo"), &a.indirizzo, MAX_TEXT);
    if !a.cap.is_empty() && !digits(&a.cap, 5) {
        v.add(&format!("{field}.cap"), "must be 5 digits");
    }
}

pub fn persona(p: &mut Persona, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("persona");
    required_text(&mut v, "cognome", &p.cognome, 36);
    required_text(&mut v, "nome", &p.nome, 36);
    p.cognome = p.cognome.trim().to_string();
    p.nome = p.nome.trim().to_string();
    required_enum(&mut v, "sesso", p.sesso, Sesso::try_from(p.sesso).is_ok());
    let nascita = required_date(&mut v, "data_nascita", &p.data_nascita, today, true);
    p.luogo_nascita = p.luogo_nascita.trim().to_ascii_uppercase();
    if p.luogo_nascita.is_empty() {
        v.add("luogo_nascita", "is required (Belfiore code)");
    } else if !codes::is_belfiore(&p.luogo_nascita) {
        v.add("luogo_nascita", "must be a Belfiore code: a letter and 3 digits");
    }
    if p.cittadinanza.is_empty() {
        v.add("cittadinanza", "is required (ISO 3166 numeric)");
    } else if !codes::is_iso_numeric(&p.cittadinanza) {
        v.add("cittadinanza", "must be an ISO 3166 numeric code (3 digits)");
    }
    if !p.seconda_cittadinanza.is_empty() && !codes::is_iso_numeric(&p.seconda_cittadinanza) {
        v.add("seconda_cittadinanza", "must be an ISO 3166 numeric code (3 digits)");
    }
    if !p.codice_fiscale.trim().is_empty() {
        match CodiceFiscale::parse(&p.codice_fiscale) {
            Err(e) => v.add("codice_fiscale", e.to_string()),
            Ok(cf) => {
                let (yy, mm, dd, female) = cf.birth();
                if let Some(d) = nascita
                    && (d.year().rem_euclid(100) as u8, u8::from(d.month()), d.day()) != (yy, mm, dd)
                {
                    v.add("codice_fiscale", "does not match data_nascita");
                }
                let sesso_f = p.sesso == Sesso::Femmina as i32;
                if p.sesso != 0 && sesso_f != female {
                    v.add("codice_fiscale", "does not match sesso");
                }
                p.codice_fiscale = cf.expose().to_string();
            }
        }
    } else {
        p.codice_fiscale.clear();
    }
    if let Some(r) = &p.residenza {
        indirizzo(&mut v, "residenza", r);
    }
    if let Some(d) = &p.domicilio {
        indirizzo(&mut v, "domicilio", d);
    }
    if let Some(c) = &p.contatti {
        optional_text(&mut v, "contatti.telefono", &c.telefono, 32);
        if !c.email.is_empty() && !c.email.contains('@') {
            v.add("contatti.email", "is not an e-mail address");
        }
        if !c.pec.is_empty() && !c.pec.contains('@') {
            v.add("contatti.pec", "is not an e-mail address");
        }
    }
    v.into_vec()
}

pub fn nucleo(n: &Nucleo) -> Vec<Violation> {
    let mut v = Violations::new("nucleo");
    required_id(&mut v, "persona_riferimento_id", &n.persona_riferimento_id);
    let mut seen = std::collections::HashSet::new();
    for (i, m) in n.membri.iter().enumerate() {
        required_id(&mut v, &format!("membri[{i}].persona_id"), &m.persona_id);
        if !seen.insert(m.persona_id.as_str()) || m.persona_id == n.persona_riferimento_id {
            v.add(&format!("membri[{i}].persona_id"), "appears twice in the household");
        }
        required_enum(&mut v, &format!("membri[{i}].parentela"), m.parentela, cartella_proto::v1::Parentela::try_from(m.parentela).is_ok());
    }
    optional_text(&mut v, "note", &n.note, MAX_NOTE);
    v.into_vec()
}

pub fn accesso(a: &Accesso, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("accesso");
    required_id(&mut v, "persona_id", &a.persona_id);
    required_date(&mut v, "data", &a.data, today, true);
    required_enum(&mut v, "canale", a.canale, CanaleAccesso::try_from(a.canale).is_ok());
    required_enum(&mut v, "esito", a.esito, EsitoAccesso::try_from(a.esito).is_ok());
    optional_text(&mut v, "segnalante", &a.segnalante, MAX_TEXT);
    optional_text(&mut v, "motivo", &a.motivo, MAX_NOTE);
    if a.esito == EsitoAccesso::InvioAServizio as i32 && a.servizio_inviante.trim().is_empty() {
        v.add("servizio_inviante", "is required when esito is INVIO_A_SERVIZIO");
    }
    v.into_vec()
}

pub fn cartella(c: &Cartella, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("cartella");
    required_id(&mut v, "persona_id", &c.persona_id);
    required_enum(&mut v, "area_utenza", c.area_utenza, AreaUtenza::try_from(c.area_utenza).is_ok());
    required_enum(&mut v, "stato", c.stato, StatoCartella::try_from(c.stato).is_ok());
    optional_text(&mut v, "operatore_responsabile", &c.operatore_responsabile, 64);
    let apertura = required_date(&mut v, "data_apertura", &c.data_apertura, today, true);
    if c.stato == StatoCartella::Chiusa as i32 {
        let chiusura = required_date(&mut v, "data_chiusura", &c.data_chiusura, today, true);
        date_order(&mut v, "data_chiusura", apertura, chiusura, "data_apertura");
        required_text(&mut v, "motivo_chiusura", &c.motivo_chiusura, MAX_TEXT);
    } else if !c.data_chiusura.is_empty() {
        v.add("data_chiusura", "must be empty while the cartella is open");
    }
    if !c.accesso_id.is_empty() {
        required_id(&mut v, "accesso_id", &c.accesso_id);
    }
    v.into_vec()
}

pub fn diario(d: &DiarioEntry, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("entry");
    required_id(&mut v, "cartella_id", &d.cartella_id);
    required_date(&mut v, "data", &d.data, today, true);
    required_enum(&mut v, "tipo", d.tipo, TipoDiario::try_from(d.tipo).is_ok());
    required_text(&mut v, "autore", &d.autore, 64);
    required_text(&mut v, "testo", &d.testo, MAX_NOTE);
    v.into_vec()
}

fn enum_range(v: &mut Violations, field: &str, value: i32, max: i32, required: bool) {
    if value == 0 {
        if required {
            v.add(field, "is required");
        }
    } else if !(1..=max).contains(&value) {
        v.add(field, format!("must be a code from 1 to {max}"));
    }
}

fn sina(v: &mut Violations, s: &Sina) {
    enum_range(v, "sina.mobilita", s.mobilita, 3, true);
    enum_range(v, "sina.attivita_vita_quotidiana", s.attivita_vita_quotidiana, 3, true);
    enum_range(v, "sina.disturbi_area_cognitiva", s.disturbi_area_cognitiva, 3, false);
    enum_range(v, "sina.disturbi_comportamentali", s.disturbi_comportamentali, 2, true);
    enum_range(v, "sina.necessita_cure_sanitarie", s.necessita_cure_sanitarie, 3, false);
    enum_range(v, "sina.area_reddituale", s.area_reddituale, 3, true);
    enum_range(v, "sina.area_supporto", s.area_supporto, 3, true);
    enum_range(v, "sina.fonte_derivazione_valutazione", s.fonte_derivazione_valutazione, 4, true);
    enum_range(v, "sina.strumento_valutazione", s.strumento_valutazione, 7, true);
    enum_range(v, "sina.fonte_derivazione_invalidita", s.fonte_derivazione_invalidita, 2, false);
    for (i, c) in s.necessita_interventi_sociali.iter().enumerate() {
        if !codes::is_codice_prestazione(c) {
            v.add(&format!("sina.necessita_interventi_sociali[{i}]"), "must be a codice prestazione (5-10 chars)");
        }
    }
    for (i, c) in s.invalidita_civile.iter().enumerate() {
        enum_range(v, &format!("sina.invalidita_civile[{i}]"), *c, 8, true);
    }
    if s.fonte_derivazione_invalidita != 0 && s.invalidita_civile.is_empty() {
        v.add("sina.invalidita_civile", "is required when fonte_derivazione_invalidita is given");
    }
}

fn sinba(v: &mut Violations, s: &Sinba) {
    for (field, value) in [
        ("sinba.minore_straniero_non_accompagnato", s.minore_straniero_non_accompagnato),
        ("sinba.condizione_minore", s.condizione_minore),
        ("sinba.luogo_vita", s.luogo_vita),
        ("sinba.scuola_frequentata", s.scuola_frequentata),
        ("sinba.condizione_lavoro", s.condizione_lavoro),
        ("sinba.disabilita", s.disabilita),
        ("sinba.fonte_segnalazione", s.fonte_segnalazione),
        ("sinba.valutazione_minore", s.valutazione_minore),
        ("sinba.valutazione_famiglia_minore", s.valutazione_famiglia_minore),
        ("sinba.segnalazione_autorita_giudiziaria", s.segnalazione_autorita_giudiziaria),
        ("sinba.provvedimento_giudiziario", s.provvedimento_giudiziario),
        ("sinba.fascia_eta_beneficiario", s.fascia_eta_beneficiario),
    ] {
        enum_range(v, field, value, 99, true);
    }
    if s.data_prima_segnalazione.is_empty() {
        v.add("sinba.data_prima_segnalazione", "is required (MM/YYYY)");
    }
    for (field, value) in [
        ("sinba.data_prima_segnalazione", &s.data_prima_segnalazione),
        ("sinba.data_segnalazione", &s.data_segnalazione),
        ("sinba.data_provvedimento_giudiziario", &s.data_provvedimento_giudiziario),
    ] {
        if !value.is_empty() && parse_month_year(value).is_none() {
            v.add(field, "must be a month and year MM/YYYY");
        }
    }
    for (field, value) in [
        ("sinba.codice_cittadinanza_padre", &s.codice_cittadinanza_padre),
        ("sinba.codice_cittadinanza_madre", &s.codice_cittadinanza_madre),
    ] {
        if !value.is_empty() && !codes::is_iso_numeric(value) {
            v.add(field, "must be an ISO 3166 numeric code (3 digits)");
        }
    }
    for (field, value) in [
        ("sinba.codice_regione_residenza_padre", &s.codice_regione_residenza_padre),
        ("sinba.codice_regione_residenza_madre", &s.codice_regione_residenza_madre),
    ] {
        if !value.is_empty() && !codes::is_istat_regione(value) {
            v.add(field, "must be an ISTAT region code 01-20");
        }
    }
    for (i, c) in s.prestazioni.iter().enumerate() {
        if !codes::is_codice_prestazione(c) {
            v.add(&format!("sinba.prestazioni[{i}]"), "must be a codice prestazione (5-10 chars)");
        }
    }
}

pub fn valutazione(x: &Valutazione, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("valutazione");
    required_id(&mut v, "cartella_id", &x.cartella_id);
    required_date(&mut v, "data", &x.data, today, true);
    optional_text(&mut v, "valutatore", &x.valutatore, 64);
    optional_text(&mut v, "note", &x.note, MAX_NOTE);
    match &x.scheda {
        None => v.add("scheda", "one of sina or sinba is required"),
        Some(Scheda::Sina(s)) => sina(&mut v, s),
        Some(Scheda::Sinba(s)) => sinba(&mut v, s),
    }
    v.into_vec()
}

pub fn pai(p: &Pai, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("pai");
    required_id(&mut v, "cartella_id", &p.cartella_id);
    required_enum(&mut v, "stato", p.stato, StatoPai::try_from(p.stato).is_ok());
    let inizio = required_date(&mut v, "data_inizio", &p.data_inizio, today, false);
    let fine = optional_date(&mut v, "data_fine", &p.data_fine, today, false);
    date_order(&mut v, "data_fine", inizio, fine, "data_inizio");
    for (i, o) in p.obiettivi.iter().enumerate() {
        required_text(&mut v, &format!("obiettivi[{i}].descrizione"), &o.descrizione, MAX_NOTE);
        optional_date(&mut v, &format!("obiettivi[{i}].scadenza"), &o.scadenza, today, false);
    }
    for (i, it) in p.interventi.iter().enumerate() {
        if !codes::is_codice_prestazione(&it.codice_prestazione) {
            v.add(&format!("interventi[{i}].codice_prestazione"), "must be a codice prestazione (5-10 chars)");
        }
        let s = optional_date(&mut v, &format!("interventi[{i}].data_inizio"), &it.data_inizio, today, false);
        let e = optional_date(&mut v, &format!("interventi[{i}].data_fine"), &it.data_fine, today, false);
        date_order(&mut v, &format!("interventi[{i}].data_fine"), s, e, "data_inizio");
    }
    for (i, r) in p.verifiche.iter().enumerate() {
        required_date(&mut v, &format!("verifiche[{i}].data"), &r.data, today, true);
        required_text(&mut v, &format!("verifiche[{i}].esito"), &r.esito, MAX_NOTE);
    }
    v.into_vec()
}

fn positive(v: &mut Violations, field: &str, value: Option<i64>) {
    if let Some(x) = value
        && x <= 0
    {
        v.add(field, "must be greater than 0");
    }
}

/// What INPS spec v2.0.1 (table 9) requires of a prestazione, plus the hub's own coherence.
pub fn prestazione(p: &mut Prestazione, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("prestazione");
    required_id(&mut v, "cartella_id", &p.cartella_id);
    p.codice_prestazione = p.codice_prestazione.trim().to_ascii_uppercase();
    if p.codice_prestazione.is_empty() {
        v.add("codice_prestazione", "is required");
    } else if !codes::is_codice_prestazione(&p.codice_prestazione) {
        v.add("codice_prestazione", "must be 5-10 upper-case letters, digits or dots (Ax.yy catalogue)");
    }
    let den = p.denominazione.trim().chars().count();
    if !(10..=200).contains(&den) {
        v.add("denominazione", "must be 10-200 characters");
    }
    let prot = p.protocollo_domanda.trim().chars().count();
    if !(1..=32).contains(&prot) {
        v.add("protocollo_domanda", "must be 1-32 characters");
    }
    required_enum(&mut v, "carattere", p.carattere, CaratterePrestazione::try_from(p.carattere).is_ok());
    required_enum(&mut v, "prova_mezzi", p.prova_mezzi, ProvaMezzi::try_from(p.prova_mezzi).is_ok());
    if p.stato != 0 && StatoPrestazione::try_from(p.stato).is_err() {
        v.add("stato", "is not a known value");
    }
    optional_date(&mut v, "data_evento", &p.data_evento, today, true);
    for (field, value) in
        [("importo_mensile", p.importo_mensile), ("importo", p.importo), ("quota_ente", p.quota_ente), ("quota_ssn", p.quota_ssn)]
    {
        positive(&mut v, field, value);
    }
    if p.quota_utente.is_some_and(|x| x < 0) {
        v.add("quota_utente", "must not be negative");
    }
    for (field, value) in [("quota_richiesta", p.quota_richiesta), ("soglia_isee", p.soglia_isee)] {
        if value.is_some_and(|x| x < 0) {
            v.add(field, "must not be negative");
        }
    }
    if let Some(m) = p.minuti_servizio_mensili
        && !(0..=744 * 60).contains(&m)
    {
        v.add("minuti_servizio_mensili", "must be between 0 and the minutes of a month");
    }
    if let Some(n) = p.periodo_erogazione
        && !(1..=12).contains(&n)
    {
        v.add("periodo_erogazione", "must be 1-12 months");
    }

    let inizio = optional_date(&mut v, "data_inizio", &p.data_inizio, today, false);
    let fine = optional_date(&mut v, "data_fine", &p.data_fine, today, false);
    // Checked for its format here; which carattere needs it is checked below.
    optional_date(&mut v, "data_erogazione", &p.data_erogazione, today, false);
    let amount = if p.carattere == CaratterePrestazione::Periodica as i32 {
        if p.data_inizio.is_empty() {
            v.add("data_inizio", "is required for a periodic prestazione");
        }
        if p.importo_mensile.is_none() {
            v.add("importo_mensile", "is required for a periodic prestazione");
        }
        if !p.data_erogazione.is_empty() {
            v.add("data_erogazione", "applies only to an occasional prestazione");
        }
        if p.importo.is_some() {
            v.add("importo", "applies only to an occasional prestazione");
        }
        date_order(&mut v, "data_fine", inizio, fine, "data_inizio");
        if let (Some(s), Some(e)) = (inizio, fine)
            && s.year() != e.year()
        {
            v.add("data_fine", "must be in the same year as data_inizio");
        }
        p.importo_mensile
    } else if p.carattere == CaratterePrestazione::Occasionale as i32 {
        if p.data_erogazione.is_empty() {
            v.add("data_erogazione", "is required for an occasional prestazione");
        }
        if p.importo.is_none() {
            v.add("importo", "is required for an occasional prestazione");
        }
        if p.importo_mensile.is_some() {
            v.add("importo_mensile", "applies only to a periodic prestazione");
        }
        p.importo
    } else {
        None
    };
    let quote = [p.quota_ente, p.quota_utente, p.quota_ssn];
    if quote.iter().any(Option::is_some)
        && let Some(total) = amount
    {
        let sum: i64 = quote.iter().flatten().fold(0i64, |a, b| a.saturating_add(*b));
        if sum != total {
            v.add("quota_ente", "quota_ente + quota_utente + quota_ssn must equal the amount");
        }
    }
    if let Some(d) = &p.dsu {
        let present = [!d.numero_protocollo.is_empty(), !d.anno_protocollo.is_empty(), !d.data.is_empty()];
        if present.iter().any(|x| *x) && !present.iter().all(|x| *x) {
            v.add("dsu", "numero_protocollo, anno_protocollo and data must be given all together or not at all");
        }
        optional_text(&mut v, "dsu.numero_protocollo", &d.numero_protocollo, 30);
        if !d.anno_protocollo.is_empty() && !digits(&d.anno_protocollo, 4) {
            v.add("dsu.anno_protocollo", "must be a 4-digit year");
        }
        optional_date(&mut v, "dsu.data", &d.data, today, true);
    }
    v.into_vec()
}

/// Days a sharing basis lasts when its creator gives no end: access to another ufficio's
/// special-category data is reviewed at least yearly (GDPR art. 5(1)(e)); a longer one is
/// given explicitly.
pub const CONDIVISIONE_DEFAULT_DAYS: i64 = 365;

pub fn condivisione(c: &Condivisione, today: Date) -> Vec<Violation> {
    let mut v = Violations::new("condivisione");
    required_id(&mut v, "cartella_id", &c.cartella_id);
    required_text(&mut v, "ufficio_destinatario", &c.ufficio_destinatario, 16);
    required_text(&mut v, "base_giuridica", &c.base_giuridica, MAX_TEXT);
    optional_date(&mut v, "valida_fino_al", &c.valida_fino_al, today, false);
    if !c.revocata_il.is_empty() || !c.motivo_revoca.is_empty() {
        v.add("revocata_il", "is set by RevokeCondivisione only");
    }
    v.into_vec()
}

/// What revoking needs: a reason, bounded like every free text.
pub fn motivo_revoca(motivo: &str) -> Vec<Violation> {
    let mut v = Violations::new("");
    required_text(&mut v, "motivo", motivo, MAX_TEXT);
    v.into_vec()
}

/// True when `s` is exactly `n` ASCII digits.
fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codice_fiscale::compose;
    use cartella_proto::v1::Dsu;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 23);

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|x| x.field.as_str()).collect()
    }

    pub fn good_persona() -> Persona {
        Persona {
            codice_fiscale: compose("Esposito", "Luca", 1970, 3, 14, false, "H501"),
            cognome: "Esposito".into(),
            nome: "Luca".into(),
            sesso: Sesso::Maschio as i32,
            data_nascita: "1970-03-14".into(),
            luogo_nascita: "H501".into(),
            cittadinanza: "380".into(),
            residenza: Some(Indirizzo {
                codice_nazione: "380".into(),
                codice_regione: "12".into(),
                codice_comune: "058091".into(),
                indirizzo: "Via Finta 1".into(),
                cap: "00100".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn persona_ok_and_normalised() {
        let mut p = good_persona();
        p.codice_fiscale = p.codice_fiscale.to_lowercase();
        assert!(persona(&mut p, TODAY).is_empty());
        assert_eq!(p.codice_fiscale, p.codice_fiscale.to_uppercase());
    }

    #[test]
    fn persona_reports_every_bad_field() {
        let mut p = good_persona();
        p.cognome.clear();
        p.data_nascita = "2030-01-01".into();
        p.luogo_nascita = "ROMA".into();
        p.cittadinanza = "IT".into();
        if let Some(r) = p.residenza.as_mut() {
            r.codice_comune.clear();
        }
        let v = persona(&mut p, TODAY);
        assert_eq!(
            fields(&v),
            ["persona.cognome", "persona.data_nascita", "persona.luogo_nascita", "persona.cittadinanza", "persona.residenza.codice_comune"]
        );
    }

    #[test]
    fn persona_cf_must_match_birth_and_sex() {
        let mut p = good_persona();
        p.data_nascita = "1970-03-15".into();
        assert_eq!(fields(&persona(&mut p, TODAY)), ["persona.codice_fiscale"]);
        let mut p = good_persona();
        p.sesso = Sesso::Femmina as i32;
        assert_eq!(fields(&persona(&mut p, TODAY)), ["persona.codice_fiscale"]);
        let mut p = good_persona();
        p.codice_fiscale.clear();
        assert!(persona(&mut p, TODAY).is_empty(), "people without a codice fiscale are allowed");
    }

    fn periodic() -> Prestazione {
        Prestazione {
            cartella_id: "c1".into(),
            codice_prestazione: "A1.01".into(),
            denominazione: "Assistenza domiciliare socio-assistenziale".into(),
            carattere: CaratterePrestazione::Periodica as i32,
            prova_mezzi: ProvaMezzi::Isee as i32,
            protocollo_domanda: "PROT-1".into(),
            data_inizio: "2026-01-01".into(),
            data_fine: "2026-06-30".into(),
            importo_mensile: Some(30_000),
            ..Default::default()
        }
    }

    #[test]
    fn prestazione_table() {
        type Case = (&'static str, fn(&mut Prestazione), &'static [&'static str]);
        let cases: &[Case] = &[
            ("periodic ok", |_| {}, &[]),
            (
                "occasional ok",
                |p| {
                    p.carattere = CaratterePrestazione::Occasionale as i32;
                    p.data_inizio.clear();
                    p.data_fine.clear();
                    p.importo_mensile = None;
                    p.data_erogazione = "2026-02-01".into();
                    p.importo = Some(15_000);
                },
                &[],
            ),
            (
                "periodic needs start and monthly",
                |p| {
                    p.data_inizio.clear();
                    p.data_fine.clear();
                    p.importo_mensile = None;
                },
                &["prestazione.data_inizio", "prestazione.importo_mensile"],
            ),
            (
                "occasional needs date and amount",
                |p| {
                    p.carattere = CaratterePrestazione::Occasionale as i32;
                    p.data_inizio.clear();
                    p.data_fine.clear();
                    p.importo_mensile = None;
                },
                &["prestazione.data_erogazione", "prestazione.importo"],
            ),
            ("carattere required", |p| p.carattere = 0, &["prestazione.carattere"]),
            ("end in another year", |p| p.data_fine = "2027-01-31".into(), &["prestazione.data_fine"]),
            ("end before start", |p| p.data_fine = "2025-12-31".into(), &["prestazione.data_fine", "prestazione.data_fine"]),
            ("amount positive", |p| p.importo_mensile = Some(0), &["prestazione.importo_mensile"]),
            (
                "quote sum",
                |p| {
                    p.quota_ente = Some(20_000);
                    p.quota_utente = Some(5_000);
                },
                &["prestazione.quota_ente"],
            ),
            (
                "quote ok",
                |p| {
                    p.quota_ente = Some(20_000);
                    p.quota_utente = Some(0);
                    p.quota_ssn = Some(10_000);
                },
                &[],
            ),
            (
                "dsu partial",
                |p| p.dsu = Some(Dsu { numero_protocollo: "INPS-ISEE-2026-1".into(), ..Default::default() }),
                &["prestazione.dsu"],
            ),
            (
                "dsu full",
                |p| {
                    p.dsu = Some(Dsu {
                        numero_protocollo: "INPS-ISEE-2026-1".into(),
                        anno_protocollo: "2026".into(),
                        data: "2026-01-10".into(),
                    })
                },
                &[],
            ),
            (
                "short name and code",
                |p| {
                    p.denominazione = "ADI".into();
                    p.codice_prestazione = "A1".into();
                },
                &["prestazione.codice_prestazione", "prestazione.denominazione"],
            ),
            ("periodo", |p| p.periodo_erogazione = Some(13), &["prestazione.periodo_erogazione"]),
        ];
        for (name, mutate, expected) in cases {
            let mut p = periodic();
            mutate(&mut p);
            let v = prestazione(&mut p, TODAY);
            assert_eq!(fields(&v), *expected, "{name}");
        }
    }

    #[test]
    fn sina_ranges() {
        let mut x = Valutazione {
            cartella_id: "c1".into(),
            data: "2026-01-01".into(),
            scheda: Some(Scheda::Sina(Sina {
                mobilita: 4,
                attivita_vita_quotidiana: 1,
                disturbi_comportamentali: 1,
                area_reddituale: 1,
                area_supporto: 1,
                fonte_derivazione_valutazione: 1,
                strumento_valutazione: 1,
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(fields(&valutazione(&x, TODAY)), ["valutazione.sina.mobilita"]);
        x.scheda = None;
        assert_eq!(fields(&valutazione(&x, TODAY)), ["valutazione.scheda"]);
    }

    #[test]
    fn cartella_closing_needs_date_and_reason() {
        let c = Cartella {
            persona_id: "p1".into(),
            area_utenza: AreaUtenza::Anziani as i32,
            stato: StatoCartella::Chiusa as i32,
            data_apertura: "2025-01-01".into(),
            ..Default::default()
        };
        assert_eq!(fields(&cartella(&c, TODAY)), ["cartella.data_chiusura", "cartella.motivo_chiusura"]);
    }
}

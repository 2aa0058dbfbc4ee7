//! The facts a person's records contribute to the statistics: one row per record, measure
//! and month, carrying the dimensions the tables break down by. Pure: the projector loads
//! a person's records and stores what these functions return.
use cartella_proto::v1::{Accesso, AreaUtenza, Cartella, Pai, Persona, Prestazione, Sesso, StatoCartella, StatoPai, StatoPrestazione};
use time::Date;

use super::{Dim, Misura};
use crate::{domain::codes::parse_date, record::anno_e_spesa};

/// Longest run of months one record contributes (a cartella open for decades counts from
/// this many months before the current one).
pub const MAX_MESI: i32 = 240;

/// One record's contribution to one measure in one month.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fatto {
    pub persona_id: String,
    pub record_id: String,
    pub misura: Misura,
    pub anno: i32,
    /// 1–12.
    pub mese: u8,
    pub ente: String,
    pub municipio: String,
    pub area: String,
    pub prestazione: String,
    pub sesso: String,
    pub fascia_eta: String,
    /// Euro cents of a prestazione, days of waiting; 0 otherwise.
    pub somma: i64,
}

impl Fatto {
    /// The value of a dimension.
    pub fn dim(&self, d: Dim) -> &str {
        match d {
            Dim::Municipio => &self.municipio,
            Dim::Area => &self.area,
            Dim::Prestazione => &self.prestazione,
            Dim::Sesso => &self.sesso,
            Dim::FasciaEta => &self.fascia_eta,
        }
    }
}

/// Everything of one person the facts are derived from.
#[derive(Clone, Debug, Default)]
pub struct Dossier {
    pub persona: Option<Persona>,
    pub cartelle: Vec<Cartella>,
    pub accessi: Vec<Accesso>,
    pub prestazioni: Vec<Prestazione>,
    pub pai: Vec<Pai>,
}

pub fn area_label(a: i32) -> &'static str {
    match AreaUtenza::try_from(a).unwrap_or(AreaUtenza::Unspecified) {
        AreaUtenza::FamigliaMinori => "famiglia_minori",
        AreaUtenza::DisabilitaNonAutosufficienza => "disabilita_non_autosufficienza",
        AreaUtenza::PovertaEsclusioneSociale => "poverta_esclusione_sociale",
        AreaUtenza::Anziani => "anziani",
        AreaUtenza::Immigrati => "immigrati",
        AreaUtenza::Dipendenze => "dipendenze",
        AreaUtenza::SaluteMentale => "salute_mentale",
        AreaUtenza::Multiutenza => "multiutenza",
        AreaUtenza::Unspecified => "non_indicata",
    }
}

pub fn sesso_label(s: i32) -> &'static str {
    match Sesso::try_from(s).unwrap_or(Sesso::Unspecified) {
        Sesso::Maschio => "M",
        Sesso::Femmina => "F",
        Sesso::Unspecified => "non_indicato",
    }
}

/// Age band at the end of month `mese` of `anno` for someone born on `nascita`.
pub fn fascia_eta(nascita: Option<Date>, anno: i32, mese: u8) -> &'static str {
    let Some(n) = nascita else { return "non_indicata" };
    let eta = anno - n.year() - i32::from(mese < u8::from(n.month()));
    match eta {
        i32::MIN..=-1 => "non_indicata",
        0..=17 => "0-17",
        18..=24 => "18-24",
        25..=44 => "25-44",
        45..=64 => "45-64",
        65..=74 => "65-74",
        _ => "75+",
    }
}

/// A month as a count from year 0, for ranges.
fn idx(anno: i32, mese: u8) -> i32 {
    anno * 12 + i32::from(mese) - 1
}

fn from_idx(i: i32) -> (i32, u8) {
    (i.div_euclid(12), u8::try_from(i.rem_euclid(12) + 1).unwrap_or(1))
}

fn month_of(d: Date) -> i32 {
    idx(d.year(), u8::from(d.month()))
}

/// The person's attributes every fact carries.
struct Chi<'a> {
    persona_id: &'a str,
    sesso: &'static str,
    nascita: Option<Date>,
}

impl Chi<'_> {
    #[allow(clippy::too_many_arguments)]
    fn fatto(
        &self,
        record_id: &str,
        misura: Misura,
        m: i32,
        ente: &str,
        municipio: &str,
        area: &str,
        prestazione: &str,
        somma: i64,
    ) -> Fatto {
        let (anno, mese) = from_idx(m);
        Fatto {
            persona_id: self.persona_id.to_string(),
            record_id: record_id.to_string(),
            misura,
            anno,
            mese,
            ente: ente.to_string(),
            municipio: municipio.to_string(),
            area: area.to_string(),
            prestazione: prestazione.to_string(),
            sesso: self.sesso.to_string(),
            fascia_eta: fascia_eta(self.nascita, anno, mese).to_string(),
            somma,
        }
    }
}

fn meta(m: Option<&cartella_proto::v1::Meta>) -> (&str, &str, &str) {
    m.map_or(("", "", ""), |m| (m.id.as_str(), m.ente.as_str(), m.ufficio.as_str()))
}

/// Every fact of one person's records as of `oggi`. Records whose dates are missing or
/// unreadable contribute nothing to the measures that need them.
pub fn fatti(persona_id: &str, d: &Dossier, oggi: Date) -> Vec<Fatto> {
    let chi = Chi {
        persona_id,
        sesso: sesso_label(d.persona.as_ref().map_or(0, |p| p.sesso)),
        nascita: d.persona.as_ref().and_then(|p| parse_date(&p.data_nascita)),
    };
    let ora = month_of(oggi);
    let mut out = Vec::new();
    let accessi: Vec<(&str, Date)> = d.accessi.iter().filter_map(|a| parse_date(&a.data).map(|dt| (meta(a.meta.as_ref()).0, dt))).collect();
    for a in &d.accessi {
        let (id, ente, uff) = meta(a.meta.as_ref());
        if let Some(dt) = parse_date(&a.data) {
            out.push(chi.fatto(id, Misura::Accessi, month_of(dt), ente, uff, area_label(0), "", 0));
        }
    }
    for c in &d.cartelle {
        let (id, ente, uff) = meta(c.meta.as_ref());
        let area = area_label(c.area_utenza);
        let Some(apertura) = parse_date(&c.data_apertura) else { continue };
        let inizio = month_of(apertura);
        out.push(chi.fatto(id, Misura::PreseInCarico, inizio, ente, uff, area, "", 0));
        let fine = match (c.stato == StatoCartella::Chiusa as i32, parse_date(&c.data_chiusura)) {
            (_, Some(ch)) => month_of(ch).min(ora),
            (true, None) => inizio,
            (false, None) => ora,
        };
        for m in inizio.max(ora - MAX_MESI)..=fine {
            out.push(chi.fatto(id, Misura::PersoneInCarico, m, ente, uff, area, "", 0));
        }
        // The accesso the cartella names, else the person's first accesso before it.
        let primo = accessi
            .iter()
            .find(|(aid, _)| !c.accesso_id.is_empty() && *aid == c.accesso_id)
            .map(|(_, dt)| *dt)
            .or_else(|| accessi.iter().map(|(_, dt)| *dt).filter(|dt| *dt <= apertura).min());
        if let Some(p) = primo.filter(|p| *p <= apertura) {
            let giorni = (apertura - p).whole_days().max(0);
            out.push(chi.fatto(id, Misura::AttesaPresaInCarico, inizio, ente, uff, area, "", giorni));
        }
    }
    let area_of = |cartella_id: &str| {
        d.cartelle.iter().find(|c| meta(c.meta.as_ref()).0 == cartella_id).map_or(area_label(0), |c| area_label(c.area_utenza))
    };
    for p in &d.prestazioni {
        if p.stato == StatoPrestazione::Revocata as i32 {
            continue;
        }
        let (id, ente, uff) = meta(p.meta.as_ref());
        let data = if p.data_erogazione.is_empty() { &p.data_inizio } else { &p.data_erogazione };
        let Some(dt) = parse_date(data) else { continue };
        let (_, spesa) = anno_e_spesa(p);
        out.push(chi.fatto(id, Misura::Prestazioni, month_of(dt), ente, uff, area_of(&p.cartella_id), &p.codice_prestazione, spesa));
    }
    for p in &d.pai {
        if p.stato != StatoPai::Attivo as i32 && p.stato != StatoPai::Concluso as i32 {
            continue;
        }
        let (id, ente, uff) = meta(p.meta.as_ref());
        let Some(inizio) = parse_date(&p.data_inizio).map(month_of) else { continue };
        let fine = parse_date(&p.data_fine).map_or(ora, month_of).min(ora);
        let fine = if p.stato == StatoPai::Concluso as i32 && p.data_fine.is_empty() { inizio } else { fine };
        for m in inizio.max(ora - MAX_MESI)..=fine {
            out.push(chi.fatto(id, Misura::PaiAttivi, m, ente, uff, area_of(&p.cartella_id), "", 0));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cartella_proto::v1::{CaratterePrestazione, Meta};
    use time::macros::date;

    use super::*;

    fn meta(id: &str, uff: &str) -> Option<Meta> {
        Some(Meta { id: id.into(), ente: "H501".into(), ufficio: uff.into(), ..Default::default() })
    }

    #[test]
    fn age_bands_turn_in_the_birth_month() {
        let n = Some(date!(2008 - 06 - 20));
        assert_eq!(fascia_eta(n, 2026, 5), "0-17");
        assert_eq!(fascia_eta(n, 2026, 6), "18-24");
        assert_eq!(fascia_eta(None, 2026, 6), "non_indicata");
        assert_eq!(fascia_eta(Some(date!(1940 - 01 - 01)), 2026, 1), "75+");
    }

    #[test]
    fn a_dossier_gives_one_fact_per_record_measure_and_month() {
        let d = Dossier {
            persona: Some(Persona { sesso: Sesso::Femmina as i32, data_nascita: "1950-03-10".into(), ..Default::default() }),
            accessi: vec![Accesso { meta: meta("a1", "M03"), data: "2026-01-20".into(), ..Default::default() }],
            cartelle: vec![Cartella {
                meta: meta("c1", "M03"),
                area_utenza: AreaUtenza::Anziani as i32,
                stato: StatoCartella::Aperta as i32,
                data_apertura: "2026-02-09".into(),
                ..Default::default()
            }],
            prestazioni: vec![
                Prestazione {
                    meta: meta("p1", "M03"),
                    cartella_id: "c1".into(),
                    codice_prestazione: "A1.01".into(),
                    carattere: CaratterePrestazione::Occasionale as i32,
                    data_erogazione: "2026-03-05".into(),
                    importo: Some(12_000),
                    stato: StatoPrestazione::Attiva as i32,
                    ..Default::default()
                },
                Prestazione {
                    meta: meta("p2", "M03"),
                    cartella_id: "c1".into(),
                    codice_prestazione: "A1.02".into(),
                    carattere: CaratterePrestazione::Occasionale as i32,
                    data_erogazione: "2026-03-06".into(),
                    importo: Some(5_000),
                    stato: StatoPrestazione::Revocata as i32,
                    ..Default::default()
                },
            ],
            pai: vec![Pai {
                meta: meta("pai1", "M03"),
                cartella_id: "c1".into(),
                data_inizio: "2026-03-01".into(),
                stato: StatoPai::Bozza as i32,
                ..Default::default()
            }],
        };
        let f = fatti("per1", &d, date!(2026 - 04 - 15));
        let of = |m: Misura| f.iter().filter(|x| x.misura == m).collect::<Vec<_>>();
        assert_eq!(of(Misura::Accessi).len(), 1);
        assert_eq!(of(Misura::PreseInCarico).len(), 1);
        // February to April, the current month.
        assert_eq!(of(Misura::PersoneInCarico).iter().map(|x| x.mese).collect::<Vec<_>>(), [2, 3, 4]);
        let attesa = of(Misura::AttesaPresaInCarico);
        assert_eq!((attesa.len(), attesa[0].somma, attesa[0].mese), (1, 20, 2));
        let p = of(Misura::Prestazioni);
        assert_eq!(p.len(), 1, "a revoked prestazione counts for nothing");
        assert_eq!((p[0].somma, p[0].area.as_str(), p[0].prestazione.as_str()), (12_000, "anziani", "A1.01"));
        assert_eq!((p[0].sesso.as_str(), p[0].fascia_eta.as_str(), p[0].municipio.as_str()), ("F", "75+", "M03"));
        assert!(of(Misura::PaiAttivi).is_empty(), "a draft PAI is not in force");
    }
}

//! Fake demo data for the 15 Municipi of Roma Capitale: people, households, accessi,
//! cartelle, diary entries, assessments, PAI and prestazioni. Names are drawn from common
//! Italian names, codici fiscali are computed from the fake data; nothing is a real person.
//! Seeding goes through the store's normal write path, so it is validated and audited.
//! With [`DemoOptions::consensi_regione`] one cartella in five also gets a condivisione to
//! the region's recipient recording the person's consent, so that an outbound adapter for
//! the region (configured in the gateway; core knows nothing of it) has cartelle to send.
use cartella_proto::v1::{
    self as pb, Accesso, AreaUtenza, CanaleAccesso, CaratterePrestazione, Cartella, Contatti, DiarioEntry, EsitoAccesso, Indirizzo,
    MembroNucleo, Meta, Nucleo, ObiettivoPai, Pai, Parentela, Persona, Prestazione, ProvaMezzi, Sesso, Sina, StatoCartella, StatoPai,
    StatoPrestazione, TipoDiario, Valutazione, valutazione::Scheda,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use sqlx::Row;

use crate::{
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    error::{CoreError, Result},
    store::Store,
};

pub const ENTE: &str = "H501";

/// Ufficio code of Municipio `n` (1–15).
pub fn municipio(n: u32) -> String {
    format!("M{n:02}")
}

const COGNOMI: &[&str] = &[
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti",
    "De Luca", "Costa", "Giordano", "Mancini", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi",
    "Caruso", "Ferrara", "Galli", "Martini", "Leone",
];
const NOMI_M: &[&str] =
    &["Marco", "Luca", "Giuseppe", "Francesco", "Alessandro", "Andrea", "Matteo", "Lorenzo", "Davide", "Paolo", "Stefano", "Giorgio"];
const NOMI_F: &[&str] =
    &["Giulia", "Francesca", "Sara", "Chiara", "Anna", "Maria", "Elena", "Laura", "Martina", "Alessia", "Paola", "Silvia"];
/// (Belfiore of birth, cittadinanza ISO numeric): Roma, Milano, Napoli, Albania, Romania, Marocco.
const NASCITE: &[(&str, &str)] = &[
    ("H501", "380"),
    ("H501", "380"),
    ("H501", "380"),
    ("F205", "380"),
    ("F839", "380"),
    ("Z100", "008"),
    ("Z129", "642"),
    ("Z330", "504"),
];
/// Plausible codes and names for demo prestazioni (carattere, prova dei mezzi).
const PRESTAZIONI: &[(&str, &str, CaratterePrestazione)] = &[
    ("A1.01", "Assistenza domiciliare socio-assistenziale", CaratterePrestazione::Periodica),
    ("A1.04", "Trasporto sociale per persone con disabilita", CaratterePrestazione::Periodica),
    ("B1.02", "Contributo economico una tantum", CaratterePrestazione::Occasionale),
    ("B2.01", "Contributo economico per il pagamento del canone", CaratterePrestazione::Periodica),
    ("C1.03", "Centro diurno per anziani fragili", CaratterePrestazione::Periodica),
    ("D1.01", "Buoni spesa per beni di prima necessita", CaratterePrestazione::Occasionale),
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub persone: u32,
    pub nuclei: u32,
    pub accessi: u32,
    pub cartelle: u32,
    pub prestazioni: u32,
    /// Condivisioni recording consent to the region ([`DemoOptions::consensi_regione`]).
    pub consensi_regione: u32,
    pub already_seeded: bool,
}

/// What the demo seeds beyond the Municipi's own records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// The recipient (ufficio_destinatario) that the region's adapter reads as the basis for
    /// sharing: when set, one cartella in five gets an open-ended condivisione to it whose
    /// base giuridica is the consent of the person. None seeds no such condivisione.
    pub consensi_regione: Option<String>,
}

/// One cartella in this many gets the consent to the region, when asked for.
const CONSENSO_OGNI: u32 = 5;

fn seeder() -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "demo-seed".into(),
        ente: ENTE.into(),
        ufficio: None,
        roles: vec![Role::Operatore],
        purpose: "caricamento dati dimostrativi".into(),
        request_id: "demo".into(),
    }
}

fn in_ufficio(ufficio: &str) -> Option<Meta> {
    Some(Meta { ufficio: ufficio.to_string(), ..Default::default() })
}

fn date(y: i32, m: u32, d: u32) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seeds `per_municipio` people in each of the 15 Municipi unless the store already holds
/// people. Deterministic for a given seed.
pub async fn seed(store: &Store, per_municipio: u32, seed: u64) -> Result<DemoSummary> {
    seed_with(store, per_municipio, seed, &DemoOptions::default()).await
}

/// [`seed`] with options. The options do not draw from the random stream, so the same seed
/// gives the same people and cartelle with or without them.
pub async fn seed_with(store: &Store, per_municipio: u32, seed: u64, opts: &DemoOptions) -> Result<DemoSummary> {
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM persona").fetch_one(store.pool()).await?.try_get("n")?;
    if existing > 0 {
        // Demo mode lets anyone holding the hub key act as anyone, so it runs only on a store
        // that began as a demo store. A real store never has the seeder's rows: seeding
        // refuses a store that already holds people.
        let seeded: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM audit WHERE actor = 'demo-seed' AND actor_kind = 'sistema' AND action = 'create'")
                .fetch_one(store.pool())
                .await?
                .try_get("n")?;
        if seeded == 0 {
            return Err(CoreError::Denied("the store holds data that --demo did not seed: demo mode is refused on it"));
        }
        return Ok(DemoSummary { already_seeded: true, ..Default::default() });
    }
    let caller = seeder();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = DemoSummary::default();
    for m in 1..=15 {
        let ufficio = municipio(m);
        let mut persone_ids: Vec<String> = Vec::new();
        for _ in 0..per_municipio {
            let female = rng.random_bool(0.55);
            let cognome = *COGNOMI.choose(&mut rng).unwrap_or(&"Rossi");
            let nome = *(if female { NOMI_F } else { NOMI_M }).choose(&mut rng).unwrap_or(&"Anna");
            let (year, month, day) = (rng.random_range(1935..2022), rng.random_range(1..=12u8), rng.random_range(1..=28u8));
            let (luogo, cittadinanza) = *NASCITE.choose(&mut rng).unwrap_or(&("H501", "380"));
            let with_cf = rng.random_bool(0.97);
            let p = Persona {
                meta: in_ufficio(&ufficio),
                codice_fiscale: if with_cf { compose(cognome, nome, year, month, day, female, luogo) } else { String::new() },
                cognome: cognome.into(),
                nome: nome.into(),
                sesso: if female { Sesso::Femmina } else { Sesso::Maschio } as i32,
                data_nascita: date(year, u32::from(month), u32::from(day)),
                luogo_nascita: luogo.into(),
                cittadinanza: cittadinanza.into(),
                residenza: Some(Indirizzo {
                    codice_nazione: "380".into(),
                    codice_regione: "12".into(),
                    codice_comune: "058091".into(),
                    indirizzo: format!("Via Immaginaria {}", rng.random_range(1..300)),
                    cap: format!("001{:02}", rng.random_range(18..99)),
                }),
                contatti: Some(Contatti { telefono: format!("06 5550 {:04}", rng.random_range(0..10000)), ..Default::default() }),
                ..Default::default()
            };
            let p = match store.create(&caller, p).await {
                Ok(p) => p,
                Err(CoreError::PersonaExists { .. }) => continue,
                Err(e) => return Err(e),
            };
            out.persone += 1;
            let pid = p.meta.as_ref().map(|x| x.id.clone()).unwrap_or_default();
            persone_ids.push(pid.clone());
            let anziano = year < 1955;

            if persone_ids.len() >= 3 && rng.random_bool(0.2) {
                let others: Vec<String> = persone_ids.iter().rev().skip(1).take(2).cloned().collect();
                let n = Nucleo {
                    meta: in_ufficio(&ufficio),
                    persona_riferimento_id: pid.clone(),
                    membri: others.into_iter().map(|o| MembroNucleo { persona_id: o, parentela: Parentela::Convivente as i32 }).collect(),
                    note: String::new(),
                };
                store.create(&caller, n).await?;
                out.nuclei += 1;
            }
            if !rng.random_bool(0.75) {
                continue;
            }
            let anno_accesso = rng.random_range(2023..=2026);
            let presa = rng.random_bool(0.8);
            let a = Accesso {
                meta: in_ufficio(&ufficio),
                persona_id: pid.clone(),
                data: date(anno_accesso, rng.random_range(1..=10), rng.random_range(1..=28)),
                canale: *[CanaleAccesso::Sportello, CanaleAccesso::Telefono, CanaleAccesso::Segnalazione]
                    .choose(&mut rng)
                    .unwrap_or(&CanaleAccesso::Sportello) as i32,
                segnalante: "Servizio sociale".into(),
                motivo: "Richiesta di sostegno".into(),
                esito: if presa { EsitoAccesso::PresaInCarico } else { EsitoAccesso::Informazioni } as i32,
                servizio_inviante: String::new(),
            };
            let a = store.create(&caller, a).await?;
            out.accessi += 1;
            if !presa {
                continue;
            }
            let area = if anziano {
                AreaUtenza::Anziani
            } else {
                *[AreaUtenza::FamigliaMinori, AreaUtenza::DisabilitaNonAutosufficienza, AreaUtenza::PovertaEsclusioneSociale]
                    .choose(&mut rng)
                    .unwrap_or(&AreaUtenza::PovertaEsclusioneSociale)
            };
            let c = Cartella {
                meta: in_ufficio(&ufficio),
                persona_id: pid.clone(),
                operatore_responsabile: format!("op-{ufficio}-{}", rng.random_range(1..40)),
                area_utenza: area as i32,
                stato: StatoCartella::Aperta as i32,
                data_apertura: a.data.clone(),
                accesso_id: a.meta.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
                ..Default::default()
            };
            let c = store.create(&caller, c).await?;
            out.cartelle += 1;
            let cid = c.meta.as_ref().map(|x| x.id.clone()).unwrap_or_default();
            // The first cartella and every fifth after it, counted rather than drawn: see
            // `seed_with`.
            if let Some(to) = opts.consensi_regione.as_deref()
                && out.cartelle % CONSENSO_OGNI == 1
            {
                let consenso = pb::Condivisione {
                    meta: None,
                    cartella_id: cid.clone(),
                    ufficio_destinatario: to.to_string(),
                    base_giuridica: "consenso dell'interessato (dimostrativo)".into(),
                    // No end date given: the store's default (a year from today) applies.
                    valida_fino_al: String::new(),
                    scrittura: false,
                    ..Default::default()
                };
                store.create(&caller, consenso).await?;
                out.consensi_regione += 1;
            }
            store
                .create(
                    &caller,
                    DiarioEntry {
                        meta: None,
                        cartella_id: cid.clone(),
                        data: c.data_apertura.clone(),
                        tipo: TipoDiario::Colloquio as i32,
                        autore: c.operatore_responsabile.clone(),
                        testo: "Primo colloquio: raccolta della situazione familiare e dei bisogni (testo dimostrativo).".into(),
                    },
                )
                .await?;
            if matches!(area, AreaUtenza::Anziani | AreaUtenza::DisabilitaNonAutosufficienza) {
                store
                    .create(
                        &caller,
                        Valutazione {
                            meta: None,
                            cartella_id: cid.clone(),
                            data: c.data_apertura.clone(),
                            valutatore: "UVM distretto".into(),
                            note: String::new(),
                            scheda: Some(Scheda::Sina(Sina {
                                mobilita: rng.random_range(1..=3),
                                attivita_vita_quotidiana: rng.random_range(1..=3),
                                disturbi_area_cognitiva: rng.random_range(0..=3),
                                disturbi_comportamentali: rng.random_range(1..=2),
                                necessita_cure_sanitarie: rng.random_range(0..=3),
                                area_reddituale: rng.random_range(1..=3),
                                area_supporto: rng.random_range(1..=3),
                                fonte_derivazione_valutazione: 1,
                                strumento_valutazione: 1,
                                fonte_derivazione_invalidita: 0,
                                necessita_interventi_sociali: vec!["A1.01".into()],
                                invalidita_civile: Vec::new(),
                            })),
                        },
                    )
                    .await?;
            }
            let anno = anno_accesso.max(2024);
            if rng.random_bool(0.3) {
                store
                    .create(
                        &caller,
                        Pai {
                            meta: None,
                            cartella_id: cid.clone(),
                            data_inizio: date(anno, 11, 1),
                            data_fine: date(anno + 1, 10, 31),
                            stato: StatoPai::Attivo as i32,
                            obiettivi: vec![ObiettivoPai { descrizione: "Mantenere l'autonomia a domicilio".into(), ..Default::default() }],
                            interventi: vec![pb::InterventoPianificato {
                                codice_prestazione: "A1.01".into(),
                                descrizione: "Assistenza domiciliare".into(),
                                frequenza: "settimanale".into(),
                                ..Default::default()
                            }],
                            verifiche: Vec::new(),
                        },
                    )
                    .await?;
            }
            for _ in 0..rng.random_range(1..=3) {
                let (codice, denominazione, carattere) = *PRESTAZIONI.choose(&mut rng).unwrap_or(&PRESTAZIONI[0]);
                let importo = rng.random_range(50..600) * 100;
                let quota_utente = if rng.random_bool(0.3) { importo / 10 } else { 0 };
                let mut p = Prestazione {
                    meta: None,
                    cartella_id: cid.clone(),
                    codice_prestazione: codice.into(),
                    denominazione: denominazione.into(),
                    carattere: carattere as i32,
                    prova_mezzi: *[ProvaMezzi::Isee, ProvaMezzi::Nessuna].choose(&mut rng).unwrap_or(&ProvaMezzi::Nessuna) as i32,
                    protocollo_domanda: format!("RC-{ufficio}-{}", rng.random_range(100000..999999)),
                    stato: StatoPrestazione::Attiva as i32,
                    ..Default::default()
                };
                if quota_utente > 0 {
                    p.quota_ente = Some(importo - quota_utente);
                    p.quota_utente = Some(quota_utente);
                }
                let mese = rng.random_range(1..=6);
                if carattere == CaratterePrestazione::Periodica {
                    p.data_inizio = date(anno - 1, mese, 1);
                    p.data_fine = date(anno - 1, 12, 31);
                    p.importo_mensile = Some(importo);
                } else {
                    p.data_erogazione = date(anno - 1, mese, 15);
                    p.importo = Some(importo);
                }
                store.create(&caller, p).await?;
                out.prestazioni += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    async fn seeded(opts: &DemoOptions) -> (DemoSummary, Vec<String>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/demo.db", dir.path().display()))).await.expect("store");
        let s = seed_with(&store, 4, 7, opts).await.expect("seeded");
        let rows = sqlx::query("SELECT ufficio_destinatario FROM condivisione")
            .fetch_all(store.pool())
            .await
            .expect("condivisioni")
            .into_iter()
            .map(|r| r.try_get("ufficio_destinatario").expect("col"))
            .collect();
        store.close().await;
        (s, rows, dir)
    }

    #[tokio::test]
    async fn consents_to_the_region_only_when_asked() {
        let (plain, none, _d1) = seeded(&DemoOptions::default()).await;
        assert!(plain.cartelle >= 10, "enough cartelle to see one in five: {plain:?}");
        assert!(none.is_empty(), "no condivisioni without the option: {none:?}");
        assert_eq!(plain.consensi_regione, 0);

        let opts = DemoOptions { consensi_regione: Some("REGIONE".into()) };
        let (with, rows, _d2) = seeded(&opts).await;
        // The same people and cartelle: the option does not disturb the random stream.
        assert_eq!((with.persone, with.cartelle, with.prestazioni), (plain.persone, plain.cartelle, plain.prestazioni));
        assert_eq!(with.consensi_regione, plain.cartelle.div_ceil(CONSENSO_OGNI));
        assert_eq!(rows.len() as u32, with.consensi_regione);
        assert!(rows.iter().all(|to| to == "REGIONE"), "{rows:?}");
    }
}

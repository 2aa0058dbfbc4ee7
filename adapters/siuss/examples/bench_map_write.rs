//! Timing of a portal export: maps fake cartella records to SIUSS records, merges the
//! consecutive prestazioni of one person and writes the PS and SINBA batches to a sink.
//!
//! `cargo run --release -p siuss --example bench_map_write [prestazioni [phase...]]`
//! (default 200000 prestazioni, every phase). Phases:
//!
//! - `map`: `map` alone;
//! - `write`: `FlussoWriter::write` (which checks) of records mapped and merged beforehand;
//! - `export`: `map`, merge as the gateway export does, `write`;
//! - `validato`: `map_validato`, `Validato::unisci`, `write_validato`;
//! - `file:PREFIX`: as `validato`, once, into `PREFIX.ps.xml` and `PREFIX.sinba.xml`.
//!
//! Prints the best of five runs per phase and a digest of the XML and of the violations,
//! so two builds can be checked to produce the same bytes.

#![allow(clippy::unwrap_used)]

use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use cartella_proto::v1 as pb;
use siuss::cf::carattere_controllo;
use siuss::from_core::{Record, RecordValidato, Sorgente, map, map_validato};
use siuss::model::*;
use siuss::{FlussoPsWriter, FlussoSinbaWriter, Validato, Violation, WriteError};

const MONTHS: &[u8] = b"ABCDEHLMPRST";

fn fake_cf(letters6: &str, year: u16, month: u8, day: u8, female: bool) -> String {
    let m = char::from(MONTHS[usize::from(month - 1)]);
    let d = if female { day + 40 } else { day };
    let first15 = format!("{letters6}{:02}{m}{d:02}H501", year % 100);
    let check = carattere_controllo(&first15).unwrap();
    format!("{first15}{check}")
}

struct Persona {
    persona: pb::Persona,
    cartella: pb::Cartella,
    sina: Option<pb::Valutazione>,
    sinba: Option<pb::Valutazione>,
    prestazioni: Vec<pb::Prestazione>,
}

fn persona(i: usize) -> Persona {
    let minore = i % 10 == 3;
    let female = i.is_multiple_of(2);
    let year = if minore { 2012 + (i % 10) as u16 } else { 1930 + (i % 70) as u16 };
    let month = (i % 12) as u8 + 1;
    let day = (i % 28) as u8 + 1;
    let letters = ["SMPNNA", "PRVLCU", "FTTMRT", "DMEPLA", "CMPGLI", "TSTNCL"][i % 6];
    // One in a thousand people lacks a datum, so the error path is exercised too.
    let cf = if i % 1000 == 7 { String::new() } else { fake_cf(letters, year, month, day, female) };
    let persona = pb::Persona {
        meta: Some(pb::Meta { id: format!("0193a1b2-c3d4-7e5f-8a9b-{i:012x}"), ..Default::default() }),
        codice_fiscale: cf,
        cognome: ["Esempio", "Prova", "Fittizio", "Demo", "Campione", "Test d'Arco"][i % 6].into(),
        nome: ["Anna", "Luca", "Marta", "Paolo", "Giulia", "Nicolò"][i % 6].into(),
        sesso: if female { pb::Sesso::Femmina } else { pb::Sesso::Maschio } as i32,
        data_nascita: format!("{year:04}-{month:02}-{day:02}"),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        residenza: Some(pb::Indirizzo {
            codice_nazione: "380".into(),
            codice_regione: "12".into(),
            codice_comune: "058091".into(),
            ..Default::default()
        }),
        domicilio: (i.is_multiple_of(5)).then(|| pb::Indirizzo {
            codice_nazione: "380".into(),
            codice_regione: "12".into(),
            codice_comune: "058047".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut persona = persona;
    match i % 1000 {
        11 => persona.sesso = 0,
        13 => persona.luogo_nascita = "Roma".into(),
        17 => persona.residenza = None,
        19 => persona.data_nascita = "1950-02-30".into(),
        _ => {}
    }
    let area = if i % 1000 == 23 {
        pb::AreaUtenza::Immigrati
    } else if minore {
        pb::AreaUtenza::FamigliaMinori
    } else if i.is_multiple_of(3) {
        pb::AreaUtenza::Anziani
    } else {
        pb::AreaUtenza::PovertaEsclusioneSociale
    };
    let cartella = pb::Cartella { area_utenza: area as i32, stato: pb::StatoCartella::Aperta as i32, ..Default::default() };
    let sina = (!minore && i.is_multiple_of(3)).then(|| pb::Valutazione {
        scheda: Some(pb::valutazione::Scheda::Sina(pb::Sina {
            mobilita: 2,
            attivita_vita_quotidiana: 2,
            disturbi_comportamentali: 1,
            area_reddituale: 1,
            area_supporto: 2,
            fonte_derivazione_valutazione: 1,
            strumento_valutazione: 1,
            necessita_interventi_sociali: vec!["A1.01".into()],
            invalidita_civile: vec![1, 3],
            ..Default::default()
        })),
        ..Default::default()
    });
    let sinba = minore.then(|| pb::Valutazione {
        scheda: Some(pb::valutazione::Scheda::Sinba(pb::Sinba {
            minore_straniero_non_accompagnato: 2,
            condizione_minore: 1,
            luogo_vita: 1,
            scuola_frequentata: 5,
            condizione_lavoro: 1,
            disabilita: 2,
            data_prima_segnalazione: "03/2025".into(),
            fonte_segnalazione: 13,
            valutazione_minore: 2,
            valutazione_famiglia_minore: 12,
            segnalazione_autorita_giudiziaria: 2,
            provvedimento_giudiziario: 2,
            composizione_famiglia: vec![1, 3],
            numero_componenti_isee: 3,
            ..Default::default()
        })),
        ..Default::default()
    });
    let mut sinba = sinba;
    if let Some(pb::Valutazione { scheda: Some(pb::valutazione::Scheda::Sinba(s)), .. }) = &mut sinba {
        match i % 1000 {
            53 => s.luogo_vita = 99,
            63 => s.composizione_famiglia.clear(),
            73 => s.data_prima_segnalazione = "3/2025".into(),
            _ => {}
        }
    }
    let n = 2 + i % 2;
    let prestazioni = (0..n)
        .map(|k| {
            if (i + k).is_multiple_of(2) {
                pb::Prestazione {
                    codice_prestazione: format!("A1.0{}", 1 + k),
                    denominazione: "Assistenza domiciliare socio-assistenziale".into(),
                    carattere: pb::CaratterePrestazione::Periodica as i32,
                    prova_mezzi: pb::ProvaMezzi::Isee as i32,
                    protocollo_domanda: format!("RC-M01-{i:06}-{k}"),
                    data_inizio: "2025-02-01".into(),
                    data_fine: "2025-12-31".into(),
                    importo_mensile: Some(10_123 + i as i64 % 1000),
                    periodo_erogazione: Some(11),
                    quota_ente: Some(9_000 + i as i64 % 1000),
                    quota_utente: Some(1_123),
                    minuti_servizio_mensili: Some(125),
                    dsu: Some(pb::Dsu {
                        numero_protocollo: "INPS-ISEE-2025-1".into(),
                        anno_protocollo: "2025".into(),
                        data: "2025-01-15".into(),
                    }),
                    stato: pb::StatoPrestazione::Attiva as i32,
                    ..Default::default()
                }
            } else {
                pb::Prestazione {
                    codice_prestazione: format!("A2.1{}", k),
                    denominazione: "Contributi economici una tantum".into(),
                    carattere: pb::CaratterePrestazione::Occasionale as i32,
                    prova_mezzi: pb::ProvaMezzi::Nessuna as i32,
                    protocollo_domanda: format!("RC-M02-{i:06}-{k}"),
                    data_erogazione: "2025-06-15".into(),
                    importo: Some(50_000 + i as i64 % 777),
                    quota_ente: Some(50_000 + i as i64 % 777),
                    stato: pb::StatoPrestazione::Attiva as i32,
                    ..Default::default()
                }
            }
        })
        .collect::<Vec<_>>();
    let mut prestazioni = prestazioni;
    match i % 1000 {
        29 => prestazioni[0].data_fine = "2026-01-31".into(),
        31 => prestazioni[0].denominazione = "Breve".into(),
        37 => prestazioni[0].carattere = 0,
        41 => prestazioni[0].quota_utente = Some(-5),
        43 => prestazioni[0].data_inizio = "01/02/2025".into(),
        _ => {}
    }
    Persona { persona, cartella, sina, sinba, prestazioni }
}

fn sorgenti(persone: &[Persona]) -> impl Iterator<Item = (usize, Sorgente<'_>)> {
    persone.iter().enumerate().flat_map(|(i, p)| {
        p.prestazioni.iter().map(move |x| {
            (i, Sorgente { persona: &p.persona, cartella: &p.cartella, prestazione: x, sina: p.sina.as_ref(), sinba: p.sinba.as_ref() })
        })
    })
}

fn oggi() -> Data {
    Data::new(2025, 12, 31).unwrap()
}

fn ente() -> Ente {
    Ente {
        codice: "H501".into(),
        denominazione: Some("Roma Capitale".into()),
        indirizzo: "H501".into(),
        cf_operatore: fake_cf("PRVPRT", 1975, 6, 12, false),
    }
}

fn id(nome: &str) -> IdentificazioneFlusso {
    IdentificazioneFlusso { nome: nome.into(), ente: ente() }
}

/// Hashes whatever is written to it.
#[derive(Default)]
struct HashSink(DefaultHasher, u64);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Conti {
    ok: u64,
    errori: u64,
    beneficiari: u64,
    sinba: u64,
    violazioni: u64,
}

fn hash_violations(h: &mut DefaultHasher, v: &[Violation]) {
    for x in v {
        h.write(x.path.as_bytes());
        h.write(x.rule.code().as_bytes());
        h.write(x.message.as_bytes());
    }
}

/// Map only.
fn run_map(persone: &[Persona], h: &mut DefaultHasher) -> Conti {
    let mut c = Conti::default();
    for (_, src) in sorgenti(persone) {
        match map(&src, TipoOperazione::Inserimento, oggi()) {
            Ok(_) => c.ok += 1,
            Err(v) => {
                c.errori += 1;
                c.violazioni += v.len() as u64;
                hash_violations(h, &v);
            }
        }
    }
    c
}

fn write_ps<W: Write>(w: &mut FlussoPsWriter<W>, b: &Beneficiario, c: &mut Conti) {
    match w.write(b) {
        Ok(()) => c.beneficiari += 1,
        Err(WriteError::Invalid(_)) => panic!("a mapped record is valid"),
        Err(e) => panic!("{e}"),
    }
}

fn write_sinba<W: Write>(w: &mut FlussoSinbaWriter<W>, s: &Sinba, c: &mut Conti) {
    match w.write(s) {
        Ok(()) => c.sinba += 1,
        Err(WriteError::Invalid(_)) => panic!("a mapped record is valid"),
        Err(e) => panic!("{e}"),
    }
}

/// Map, merge per person as the gateway export does, write with `FlussoWriter::write`.
fn run_export<W: Write>(persone: &[Persona], ps: W, sb: W) -> (Conti, W, W) {
    let mut c = Conti::default();
    let mut wps = FlussoPsWriter::begin(ps, &id("H501.PS.20251231.0000001")).unwrap();
    let mut wsb = FlussoSinbaWriter::begin(sb, &id("H501.SINBA.20251231.0000002")).unwrap();
    let mut cur: Option<usize> = None;
    let mut gps: Option<Beneficiario> = None;
    let mut gsb: Option<Sinba> = None;
    for (i, src) in sorgenti(persone) {
        if cur != Some(i) {
            if let Some(b) = gps.take() {
                write_ps(&mut wps, &b, &mut c);
            }
            if let Some(s) = gsb.take() {
                write_sinba(&mut wsb, &s, &mut c);
            }
            cur = Some(i);
        }
        match map(&src, TipoOperazione::Inserimento, oggi()) {
            Err(_) => c.errori += 1,
            Ok(Record::Ps(b)) => {
                c.ok += 1;
                match &mut gps {
                    Some(g) => g.prestazioni_sociali.extend(b.prestazioni_sociali),
                    None => gps = Some(b),
                }
            }
            Ok(Record::Sinba(s)) => {
                c.ok += 1;
                match &mut gsb {
                    Some(g) => {
                        for k in s.prestazioni {
                            if !g.prestazioni.contains(&k) {
                                g.prestazioni.push(k);
                            }
                        }
                    }
                    None => gsb = Some(s),
                }
            }
        }
    }
    if let Some(b) = gps.take() {
        write_ps(&mut wps, &b, &mut c);
    }
    if let Some(s) = gsb.take() {
        write_sinba(&mut wsb, &s, &mut c);
    }
    (c, wps.finish().unwrap(), wsb.finish().unwrap())
}

/// [`run_export`] with each record checked once: `map_validato`, `Validato::unisci`,
/// `FlussoWriter::write_validato`.
fn run_export_validato<W: Write>(persone: &[Persona], ps: W, sb: W) -> (Conti, W, W) {
    let mut c = Conti::default();
    let mut wps = FlussoPsWriter::begin(ps, &id("H501.PS.20251231.0000001")).unwrap();
    let mut wsb = FlussoSinbaWriter::begin(sb, &id("H501.SINBA.20251231.0000002")).unwrap();
    let mut cur: Option<usize> = None;
    let mut gps: Option<Validato<Beneficiario>> = None;
    let mut gsb: Option<Validato<Sinba>> = None;
    for (i, src) in sorgenti(persone) {
        if cur != Some(i) {
            if let Some(b) = gps.take() {
                wps.write_validato(&b).unwrap();
                c.beneficiari += 1;
            }
            if let Some(s) = gsb.take() {
                wsb.write_validato(&s).unwrap();
                c.sinba += 1;
            }
            cur = Some(i);
        }
        match map_validato(&src, TipoOperazione::Inserimento, oggi()) {
            Err(_) => c.errori += 1,
            Ok(RecordValidato::Ps(b)) => {
                c.ok += 1;
                match &mut gps {
                    None => gps = Some(b),
                    Some(g) => {
                        if let Err(b) = g.unisci(b) {
                            wps.write_validato(g).unwrap();
                            c.beneficiari += 1;
                            *g = b;
                        }
                    }
                }
            }
            Ok(RecordValidato::Sinba(s)) => {
                c.ok += 1;
                match &mut gsb {
                    None => gsb = Some(s),
                    Some(g) => {
                        if let Err(s) = g.unisci(s) {
                            wsb.write_validato(g).unwrap();
                            c.sinba += 1;
                            *g = s;
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = gps.take() {
        wps.write_validato(&b).unwrap();
        c.beneficiari += 1;
    }
    if let Some(s) = gsb.take() {
        wsb.write_validato(&s).unwrap();
        c.sinba += 1;
    }
    (c, wps.finish().unwrap(), wsb.finish().unwrap())
}

/// The merged records of [`run_export`], built once.
fn gruppi(persone: &[Persona]) -> (Vec<Beneficiario>, Vec<Sinba>) {
    let (mut ps, mut sb) = (Vec::new(), Vec::new());
    for p in persone {
        let (mut gps, mut gsb): (Option<Beneficiario>, Option<Sinba>) = (None, None);
        for x in &p.prestazioni {
            let src =
                Sorgente { persona: &p.persona, cartella: &p.cartella, prestazione: x, sina: p.sina.as_ref(), sinba: p.sinba.as_ref() };
            match map(&src, TipoOperazione::Inserimento, oggi()) {
                Err(_) => {}
                Ok(Record::Ps(b)) => match &mut gps {
                    Some(g) => g.prestazioni_sociali.extend(b.prestazioni_sociali),
                    None => gps = Some(b),
                },
                Ok(Record::Sinba(s)) => match &mut gsb {
                    Some(g) => {
                        for k in s.prestazioni {
                            if !g.prestazioni.contains(&k) {
                                g.prestazioni.push(k);
                            }
                        }
                    }
                    None => gsb = Some(s),
                },
            }
        }
        ps.extend(gps);
        sb.extend(gsb);
    }
    (ps, sb)
}

/// Write only (validating in `write`), of records merged beforehand.
fn run_write(ps: &[Beneficiario], sb: &[Sinba]) -> Conti {
    let mut c = Conti::default();
    let mut wps = FlussoPsWriter::begin(io::sink(), &id("H501.PS.20251231.0000001")).unwrap();
    let mut wsb = FlussoSinbaWriter::begin(io::sink(), &id("H501.SINBA.20251231.0000002")).unwrap();
    for b in ps {
        write_ps(&mut wps, b, &mut c);
    }
    for s in sb {
        write_sinba(&mut wsb, s, &mut c);
    }
    wps.finish().unwrap();
    wsb.finish().unwrap();
    c
}

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut min = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let r = f();
        min = min.min(t.elapsed());
        out = Some(r);
    }
    (min, out.unwrap())
}

/// Prints the counts and the digests of the two flows written into hashing sinks.
fn digest(c: &Conti, (_, ps, sb): (Conti, HashSink, HashSink)) {
    println!("  {c:?}\n  PS {} bytes digest {:016x}, SINBA {} bytes digest {:016x}", ps.1, ps.0.finish(), sb.1, sb.0.finish());
}

fn report(name: &str, n: usize, d: Duration) {
    println!("{name:<40} {:>8.1} ms  {:>7.0} ns/prestazione", d.as_secs_f64() * 1e3, d.as_nanos() as f64 / n as f64);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(200_000);
    // Further arguments pick phases (`map`, `write`, `export`, `validato`); none runs all.
    let fasi: Vec<String> = args.collect();
    let fase = |f: &str| fasi.is_empty() || fasi.iter().any(|x| x == f);
    let mut persone = Vec::new();
    let mut n = 0;
    while n < target {
        let p = persona(persone.len());
        n += p.prestazioni.len();
        persone.push(p);
    }
    println!("{} persone, {n} prestazioni", persone.len());

    if fase("map") {
        let (d, c) = best(|| run_map(&persone, &mut DefaultHasher::new()));
        report("map", n, d);
        let mut hv = DefaultHasher::new();
        assert_eq!(run_map(&persone, &mut hv), c);
        println!("  {c:?} violazioni digest {:016x}", hv.finish());
    }

    if fase("write") {
        let (gps, gsb) = gruppi(&persone);
        let (d, _) = best(|| run_write(&gps, &gsb));
        report("write only (validating)", n, d);
    }

    if fase("export") {
        let (d, (c, ..)) = best(|| run_export(&persone, io::sink(), io::sink()));
        report("map + merge + write (sink)", n, d);
        digest(&c, run_export(&persone, HashSink::default(), HashSink::default()));
    }

    // `file:PREFIX` writes the two flows to PREFIX.ps.xml and PREFIX.sinba.xml, once.
    for prefix in fasi.iter().filter_map(|f| f.strip_prefix("file:")) {
        let crea = |ext: &str| io::BufWriter::with_capacity(1 << 16, std::fs::File::create(format!("{prefix}.{ext}.xml")).unwrap());
        let t = Instant::now();
        let (c, ps, sb) = run_export_validato(&persone, crea("ps"), crea("sinba"));
        ps.into_inner().unwrap().sync_all().unwrap();
        sb.into_inner().unwrap().sync_all().unwrap();
        report("map_validato + unisci + write_validato (file)", n, t.elapsed());
        println!("  {c:?}");
    }

    if fase("validato") {
        let (d, (c, ..)) = best(|| run_export_validato(&persone, io::sink(), io::sink()));
        report("map_validato + unisci + write_validato", n, d);
        digest(&c, run_export_validato(&persone, HashSink::default(), HashSink::default()));
    }
}

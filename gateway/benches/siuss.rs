//! SIUSS benchmarks (not run by CI; commands and results in BENCHMARKS.md).
//!
//! - `seed DB N`: writes N fake prestazioni (four per person, one cartella each) straight
//!   into a fresh SQLite store in bulk transactions, bypassing the audited write path, so
//!   that `sigess siuss export` can then be measured on a large ente.
//! - `export SEED_DB SIGESS RUNS`: the portal export of the seeded store against
//!   `xmllint --stream --schema` validating the file it wrote, alternating, RUNS times. Each
//!   run exports from a fresh copy of SEED_DB (so audit rows of earlier runs do not pile up)
//!   with the `sigess` binary at SIGESS, both under GNU `time` for wall time and peak RSS,
//!   and prints the ratio xmllint time / export time per run and their median.
//! - `flussi N`: seeds N prestazioni through the normal write path, lets the worker produce
//!   their flows, then pages through `GET /waas/v1/flussi?limit=100` over HTTP and prints
//!   flows per second, against reading the same rows straight from the store.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    domain::codice_fiscale::compose,
    store::{Store, StoreOptions},
};
use gateway::{
    adapters::siuss_drain,
    app,
    auth::Authenticator,
    core_link::{CoreLink, LinkSecurity},
    siuss_config::SiussConfig,
};
use prost::Message;
use serde_json::Value;

const COGNOMI: &[&str] = &["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"];
const NOMI: &[&str] = &["Giulia", "Marco", "Sara", "Luca", "Anna", "Paolo"];

fn persona(i: u64) -> pb::Persona {
    let female = i.is_multiple_of(2);
    let year = 1930 + (i % 70) as i32;
    let (m, d) = ((i % 12) as u8 + 1, (i % 28) as u8 + 1);
    let cognome = COGNOMI[(i as usize / 7) % COGNOMI.len()];
    let nome = NOMI[(i as usize / 3) % NOMI.len()];
    pb::Persona {
        codice_fiscale: compose(cognome, nome, year, m, d, female, "H501"),
        cognome: cognome.into(),
        nome: nome.into(),
        sesso: if female { pb::Sesso::Femmina } else { pb::Sesso::Maschio } as i32,
        data_nascita: format!("{year:04}-{m:02}-{d:02}"),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        residenza: Some(pb::Indirizzo {
            codice_nazione: "380".into(),
            codice_regione: "12".into(),
            codice_comune: "058091".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A well-formed fake codice fiscale unique for `i`: the six letters encode `i` in base 26,
/// the rest is taken from `cf` and the check character recomputed.
fn unique_cf(cf: &str, i: u64) -> String {
    let mut letters = String::new();
    let mut n = i;
    for _ in 0..6 {
        letters.insert(0, char::from(b'A' + (n % 26) as u8));
        n /= 26;
    }
    let first15 = format!("{letters}{}", &cf[6..15]);
    let c = siuss::cf::carattere_controllo(&first15).unwrap();
    format!("{first15}{c}")
}

fn prestazione(cartella_id: &str, i: u64) -> pb::Prestazione {
    let importo = 5_000 + (i % 500) as i64 * 100;
    pb::Prestazione {
        cartella_id: cartella_id.into(),
        codice_prestazione: "A1.01".into(),
        denominazione: "Assistenza domiciliare socio-assistenziale".into(),
        carattere: pb::CaratterePrestazione::Periodica as i32,
        prova_mezzi: pb::ProvaMezzi::Nessuna as i32,
        protocollo_domanda: format!("RC-{i:010}"),
        data_inizio: format!("2025-{:02}-01", (i % 6) + 1),
        data_fine: "2025-12-31".into(),
        importo_mensile: Some(importo),
        stato: pb::StatoPrestazione::Attiva as i32,
        ..Default::default()
    }
}

fn meta(id: &str, ufficio: &str) -> Option<pb::Meta> {
    Some(pb::Meta { id: id.into(), version: 1, ente: "H501".into(), ufficio: ufficio.into(), ..Default::default() })
}

async fn seed(db: &str, n: u64) {
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{db}"))).await.unwrap();
    let pool = store.pool();
    let t = Instant::now();
    let per = 4u64;
    let people = n.div_ceil(per);
    let chunk = 2_000u64;
    let mut done = 0u64;
    for start in (0..people).step_by(chunk as usize) {
        let mut tx = pool.begin().await.unwrap();
        for i in start..(start + chunk).min(people) {
            let uff = format!("M{:02}", i % 15 + 1);
            let pid = format!("p{i:012}");
            let cid = format!("c{i:012}");
            let mut p = persona(i);
            p.meta = meta(&pid, &uff);
            p.codice_fiscale = unique_cf(&p.codice_fiscale, i);
            sqlx::query("INSERT INTO persona (id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, codice_fiscale, cognome_norm, nome_norm, data_nascita) VALUES ($1, 1, 'H501', $2, NULL, NULL, 'x', 'x', 'bench', $3, $4, $5, $6, $7)")
                .bind(&pid).bind(&uff).bind(p.encode_to_vec()).bind(&p.codice_fiscale).bind(p.cognome.to_uppercase()).bind(p.nome.to_uppercase()).bind(&p.data_nascita)
                .execute(&mut *tx).await.unwrap();
            let c = pb::Cartella {
                meta: meta(&cid, &uff),
                persona_id: pid.clone(),
                area_utenza: pb::AreaUtenza::PovertaEsclusioneSociale as i32,
                stato: pb::StatoCartella::Aperta as i32,
                data_apertura: "2025-01-10".into(),
                ..Default::default()
            };
            sqlx::query("INSERT INTO cartella (id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, area_utenza, stato) VALUES ($1, 1, 'H501', $2, $3, $1, 'x', 'x', 'bench', $4, 3, 1)")
                .bind(&cid).bind(&uff).bind(&pid).bind(c.encode_to_vec())
                .execute(&mut *tx).await.unwrap();
            for k in 0..per {
                if done >= n {
                    break;
                }
                let prid = format!("r{i:012}{k}");
                let mut x = prestazione(&cid, done);
                x.meta = meta(&prid, &uff);
                sqlx::query("INSERT INTO prestazione (id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, codice_prestazione, anno, spesa_centesimi, stato) VALUES ($1, 1, 'H501', $2, $3, $4, 'x', 'x', 'bench', $5, 'A1.01', 2025, 0, 1)")
                    .bind(&prid).bind(&uff).bind(&pid).bind(&cid).bind(x.encode_to_vec())
                    .execute(&mut *tx).await.unwrap();
                done += 1;
            }
        }
        tx.commit().await.unwrap();
    }
    store.close().await;
    println!("seeded {done} prestazioni of {people} people in {:.1}s", t.elapsed().as_secs_f64());
}

fn operatore() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "bench".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "bench".into(),
        request_id: "b".into(),
    }
}

async fn flussi(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/b.db", dir.path().display()))).await.unwrap();
    for i in 0..n {
        let mut p = persona(i);
        p.codice_fiscale = unique_cf(&p.codice_fiscale, i);
        let p = store.create(&operatore(), p).await.unwrap();
        let pid = p.meta.unwrap().id;
        let c = store
            .create(
                &operatore(),
                pb::Cartella { persona_id: pid, area_utenza: 3, stato: 1, data_apertura: "2025-01-10".into(), ..Default::default() },
            )
            .await
            .unwrap();
        store.create(&operatore(), prestazione(&c.meta.unwrap().id, i)).await.unwrap();
    }
    let ente = siuss::from_core::EnteSiuss {
        codice: "H501".into(),
        denominazione: "Roma Capitale".into(),
        indirizzo: "H501".into(),
        cf_operatore: compose("Operatore", "Bench", 1980, 1, 1, false, "H501"),
    };
    let t = Instant::now();
    siuss_drain(&store, &SiussConfig { ente }).await.unwrap();
    println!("worker produced {n} flows in {:.2}s ({:.0} flows/s)", t.elapsed().as_secs_f64(), n as f64 / t.elapsed().as_secs_f64());

    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let link = CoreLink::connect_lazy("http://127.0.0.1:9", &LinkSecurity::default(), signer.clone()).unwrap();
    let rate = gateway::stack::limit::RateConfig { per_minute: 10_000_000, burst: 1_000_000 };
    let built = app::build(
        app::Parts {
            link,
            auth: Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true),
            store: Some(store.clone()),
            edge: None,
        },
        &app::AppConfig { rate, ..Default::default() },
    )
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, built.router).await.unwrap() });
    let inps = Caller {
        kind: CallerKind::Sistema,
        subject: "inps".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Siuss],
        purpose: "bench".into(),
        request_id: "b".into(),
    };
    let tok = signer.mint(&inps, Duration::from_secs(3600)).unwrap();
    let http = reqwest::Client::new();
    let t = Instant::now();
    let (mut since, mut got, mut bytes) = (0i64, 0u64, 0usize);
    loop {
        let body = http
            .get(format!("http://{addr}/waas/v1/flussi?since={since}&limit=100"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bytes += body.len();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let page = v["elenco_flussi"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        got += page.len() as u64;
        let last = page.last().unwrap()["ts_flusso"].as_str().unwrap();
        since = time::OffsetDateTime::parse(last, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp_nanos() as i64
            / 1_000_000;
    }
    let http_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut since, mut direct) = (0i64, 0u64);
    loop {
        let page = store.siuss_serve(&inps, since, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        since = last.ts_flusso;
        direct += page.len() as u64;
    }
    let direct_s = t.elapsed().as_secs_f64();
    println!(
        "GET /flussi limit=100: {got} flows in {http_s:.2}s = {:.0} flows/s, {:.0} requests/s, {:.1} MB/s; store alone {:.0} flows/s; HTTP+JSON+base64 costs {:.2}x",
        got as f64 / http_s,
        got as f64 / 100.0 / http_s,
        bytes as f64 / 1e6 / http_s,
        direct as f64 / direct_s,
        http_s / direct_s
    );
}

/// Runs `cmd` under GNU time; returns (wall seconds, peak RSS in KiB).
fn timed(mut cmd: std::process::Command) -> (f64, u64) {
    let mut t = std::process::Command::new("/usr/bin/time");
    t.arg("-f").arg("TIMED %e %M").arg(cmd.get_program()).args(cmd.get_args());
    cmd = t;
    let out = cmd.stdout(std::process::Stdio::null()).output().expect("GNU time at /usr/bin/time (Debian package time)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err.lines().rev().find(|l| l.starts_with("TIMED ")).expect("time's report");
    let mut f = line.split_whitespace().skip(1);
    (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap())
}

fn export(seed: &str, sigess: &str, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let out = dir.path().join("out");
    let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/siuss/PS_PSA_SINA201812.xsd");
    let cf = compose("Operatore", "Prova", 1980, 1, 1, false, "H501");
    let mut ratios = Vec::new();
    for run in 1..=runs {
        for f in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{f}", db.display()));
        }
        let _ = std::fs::remove_dir_all(&out);
        std::fs::copy(seed, &db).unwrap();
        let mut e = std::process::Command::new(sigess);
        e.args(["siuss", "export", "--ente", "H501", "--from", "2025-01-01", "--to", "2025-12-31", "--no-progress", "--cf-operatore", &cf]);
        e.arg("--database-url").arg(format!("sqlite://{}", db.display())).arg("--out").arg(&out);
        let (export_s, export_kib) = timed(e);
        let files: Vec<_> = std::fs::read_dir(&out).unwrap().map(|f| f.unwrap().path()).collect();
        let mut x = std::process::Command::new("xmllint");
        x.args(["--stream", "--noout", "--schema"]).arg(&xsd).args(&files);
        let (xmllint_s, xmllint_kib) = timed(x);
        let size: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
        let ratio = xmllint_s / export_s;
        ratios.push(ratio);
        println!(
            "run {run}: export {export_s:.2} s, peak RSS {:.1} MiB; xmllint --stream {xmllint_s:.2} s, peak RSS {:.1} MiB; {:.0} MB; ratio {ratio:.2}x",
            export_kib as f64 / 1024.0,
            xmllint_kib as f64 / 1024.0,
            size as f64 / 1e6
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio xmllint time / export time: {:.2}x (target >= 1.0)", ratios[ratios.len() / 2]);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    match args.first().map(String::as_str) {
        Some("seed") => rt.block_on(seed(&args[1], args.get(2).map_or(1_000_000, |s| s.parse().unwrap()))),
        Some("export") => {
            export(&args[1], args.get(2).map_or("target/release/sigess", String::as_str), args.get(3).map_or(3, |s| s.parse().unwrap()))
        }
        Some("flussi") => rt.block_on(flussi(args.get(1).map_or(5_000, |s| s.parse().unwrap()))),
        _ => eprintln!("usage: siuss seed DB N | siuss export SEED_DB [SIGESS [RUNS]] | siuss flussi N"),
    }
}

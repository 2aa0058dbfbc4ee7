//! Statistics tables through the gateway (REST → core → the projection, with disclosure
//! control) on 1,000,000 prestazioni of 250,000 people, against DuckDB computing the same
//! tables from the same rows, exported to CSV, in the same run.
//!
//! The rows are inserted with SQL (the API would take hours for a million), the projection
//! is built with `stats_rebuild` (what `sigess stats rebuild` runs), and the gateway serves
//! `sigess up`'s way (core's routes in its process) on SQLite. Each query is timed one at a
//! time, `BENCH_QUERIES` times after a warm-up, on both sides.
//! Target: statistics p99 ≤ 50 ms and below DuckDB's.
//!
//! Run: `cargo bench -p gateway --bench stats` with a Python that imports `duckdb`
//! (`BENCH_PYTHON`, default `python3`). `BENCH_PERSONE` (250000), `BENCH_PRESTAZIONI`
//! (1000000), `BENCH_QUERIES` (200).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    process::Command,
    time::{Duration, Instant},
};

use cartella_proto::v1 as pb;
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    record::Val,
    store::{Store, StoreOptions, projection::Lotto, sql::Q},
};
use gateway::{
    app::{self, AppConfig, Parts},
    auth::Authenticator,
    core_link::CoreLink,
    stack::limit::RateConfig,
};
use prost::Message;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const CODICI: [&str; 12] = ["A1.01", "A1.02", "A1.03", "A1.04", "A2.01", "A2.02", "A2.03", "A3.01", "A3.02", "A4.01", "A4.02", "A5.01"];
const AT: &str = "2026-01-01T00:00:00Z";

struct Riga {
    cols: &'static str,
    vals: Vec<Val>,
}

async fn insert(store: &Store, table: &str, rows: &[Riga]) {
    let mut tx = store.pool().begin().await.unwrap();
    // Small statements: SQLite's binding cost grows with the square of the parameter count.
    for chunk in rows.chunks(64) {
        let mut q = Q::new("INSERT INTO ");
        q.push(table).push(" (").push(chunk[0].cols).push(") VALUES ");
        for (i, r) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            for (j, v) in r.vals.iter().enumerate() {
                if j > 0 {
                    q.push(", ");
                }
                q.bind(v.clone());
            }
            q.push(")");
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn t(s: &str) -> Val {
    Val::text(s)
}

/// Fake people, one cartella each, and `n_pr` occasional prestazioni spread over them and
/// over 2026; the same rows as CSV for DuckDB.
async fn seed(store: &Store, n_p: usize, n_pr: usize, dir: &std::path::Path) {
    let mut persone = Vec::new();
    let mut cartelle = Vec::new();
    let mut csv_p = std::io::BufWriter::new(std::fs::File::create(dir.join("persone.csv")).unwrap());
    let mut csv_c = std::io::BufWriter::new(std::fs::File::create(dir.join("cartelle.csv")).unwrap());
    let mut csv_s = std::io::BufWriter::new(std::fs::File::create(dir.join("prestazioni.csv")).unwrap());
    writeln!(csv_p, "id,sesso,data_nascita").unwrap();
    writeln!(csv_c, "id,persona_id,ufficio,area").unwrap();
    writeln!(csv_s, "id,cartella_id,ufficio,codice,data,spesa,stato").unwrap();
    for i in 0..n_p {
        let (id, cid, uff) = (format!("p{i:07}"), format!("c{i:07}"), format!("M{:02}", 1 + i % 15));
        let sesso = 1 + (i % 2) as i32;
        let nascita = format!("{}-{:02}-{:02}", 1930 + i % 90, 1 + i % 12, 1 + i % 28);
        let area = 1 + (i % 8) as i32;
        let apertura = format!("2026-{:02}-01", 9 + i % 3);
        let body =
            pb::Persona { cognome: "Prova".into(), nome: format!("N{i}"), sesso, data_nascita: nascita.clone(), ..Default::default() };
        persone.push(Riga {
            cols: "id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, cognome_norm, nome_norm, data_nascita",
            vals: vec![t(&id), Val::Int(Some(1)), t("H501"), t(&uff), t(&id), Val::Text(None), t(AT), t(AT), t("bench"), Val::Bytes(body.encode_to_vec()), t("PROVA"), t(&format!("N{i}")), t(&nascita)],
        });
        let body = pb::Cartella {
            persona_id: id.clone(),
            area_utenza: area,
            stato: pb::StatoCartella::Aperta as i32,
            data_apertura: apertura,
            ..Default::default()
        };
        cartelle.push(Riga {
            cols: "id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, area_utenza, stato",
            vals: vec![
                t(&cid),
                Val::Int(Some(1)),
                t("H501"),
                t(&uff),
                t(&id),
                t(&cid),
                t(AT),
                t(AT),
                t("bench"),
                Val::Bytes(body.encode_to_vec()),
                Val::Int(Some(i64::from(area))),
                Val::Int(Some(1)),
            ],
        });
        writeln!(csv_p, "{id},{sesso},{nascita}").unwrap();
        writeln!(csv_c, "{cid},{id},{uff},{area}").unwrap();
    }
    insert(store, "persona", &persone).await;
    insert(store, "cartella", &cartelle).await;
    drop((persone, cartelle));
    let mut rows = Vec::new();
    for j in 0..n_pr {
        let i = j % n_p;
        let (id, cid, uff) = (format!("s{j:08}"), format!("c{i:07}"), format!("M{:02}", 1 + i % 15));
        let codice = CODICI[(j / n_p + i) % CODICI.len()];
        let data = format!("2026-{:02}-{:02}", 1 + j % 12, 1 + j % 28);
        let importo = 5_000 + (j % 100) as i64 * 100;
        let body = pb::Prestazione {
            cartella_id: cid.clone(),
            codice_prestazione: codice.into(),
            carattere: pb::CaratterePrestazione::Occasionale as i32,
            data_erogazione: data.clone(),
            importo: Some(importo),
            stato: pb::StatoPrestazione::Attiva as i32,
            ..Default::default()
        };
        rows.push(Riga {
            cols: "id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, codice_prestazione, anno, spesa_centesimi, stato",
            vals: vec![t(&id), Val::Int(Some(1)), t("H501"), t(&uff), Val::Text(None), t(&cid), t(AT), t(AT), t("bench"), Val::Bytes(body.encode_to_vec()), t(codice), Val::Int(Some(2026)), Val::Int(Some(importo)), Val::Int(Some(1))],
        });
        writeln!(csv_s, "{id},{cid},{uff},{codice},{data},{importo},1").unwrap();
        if rows.len() == 100_000 {
            insert(store, "prestazione", &rows).await;
            rows.clear();
        }
    }
    insert(store, "prestazione", &rows).await;
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The DuckDB side: loads the CSVs into tables once, then times each query.
const DUCKDB: &str = r#"
import sys, time, duckdb
d, n = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
# No progress bar: its output would mix with the figures on stdout.
con.execute("SET enable_progress_bar = false")
t0 = time.perf_counter()
for t in ("persone", "cartelle", "prestazioni"):
    con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv_auto('{d}/{t}.csv', header=true)")
load = (time.perf_counter() - t0) * 1000
Q = {
 "municipio×area, anno": """SELECT s.ufficio, c.area, COUNT(DISTINCT s.id), COUNT(DISTINCT c.persona_id), SUM(s.spesa)
   FROM prestazioni s JOIN cartelle c ON s.cartella_id = c.id WHERE s.stato <> 3 AND year(s.data) = 2026
   GROUP BY GROUPING SETS ((s.ufficio, c.area), (s.ufficio), (c.area), ())""",
 "municipio×area, mese": """SELECT strftime(s.data, '%Y-%m') m, s.ufficio, c.area, COUNT(DISTINCT s.id), COUNT(DISTINCT c.persona_id), SUM(s.spesa)
   FROM prestazioni s JOIN cartelle c ON s.cartella_id = c.id WHERE s.stato <> 3 AND year(s.data) = 2026
   GROUP BY GROUPING SETS ((m, s.ufficio, c.area), (m, s.ufficio), (m, c.area), (m))""",
 "prestazione×sesso, trimestre": """SELECT year(s.data) || '-T' || quarter(s.data) q, s.codice, p.sesso, COUNT(DISTINCT s.id), COUNT(DISTINCT p.id), SUM(s.spesa)
   FROM prestazioni s JOIN cartelle c ON s.cartella_id = c.id JOIN persone p ON c.persona_id = p.id WHERE s.stato <> 3 AND year(s.data) = 2026
   GROUP BY GROUPING SETS ((q, s.codice, p.sesso), (q, s.codice), (q, p.sesso), (q))""",
}
print(f"load\t{load:.1f}")
for name, q in Q.items():
    for _ in range(3):
        con.execute(q).fetchall()
    xs = []
    for _ in range(n):
        t0 = time.perf_counter(); rows = con.execute(q).fetchall(); xs.append((time.perf_counter() - t0) * 1000)
    xs.sort()
    print(f"{name}\t{xs[len(xs)//2]:.2f}\t{xs[int(round((len(xs)-1)*0.99))]:.2f}\t{len(rows)}")
"#;

#[tokio::main]
async fn main() {
    let (n_p, n_pr, n_q) = (env("BENCH_PERSONE", 250_000), env("BENCH_PRESTAZIONI", 1_000_000), env("BENCH_QUERIES", 200));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/bench.db", dir.path().display()))).await.unwrap();
    let t0 = Instant::now();
    seed(&store, n_p, n_pr, dir.path()).await;
    let seeded = t0.elapsed();
    let t0 = Instant::now();
    let mut shown = Instant::now();
    let facts = store
        .stats_rebuild_with(Lotto::default(), |a| {
            if shown.elapsed() >= Duration::from_secs(10) {
                eprintln!("rebuild: {} of {} people, {} facts, {:.0} s", a.persone, a.persone_totali, a.fatti, t0.elapsed().as_secs_f64());
                shown = Instant::now();
            }
        })
        .await
        .unwrap();
    let rebuilt = t0.elapsed();
    println!(
        "{n_p} people, {n_pr} prestazioni: inserted in {:.1} s; projection rebuilt in {:.1} s ({facts} facts)",
        seeded.as_secs_f64(),
        rebuilt.as_secs_f64()
    );

    let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let routes = core_cartella::server::routes(&store, signer.verifier().unwrap()).await.unwrap();
    let cfg = AppConfig { rate: RateConfig { per_minute: 100_000_000, burst: 1_000_000 }, ..Default::default() };
    let app = app::build(
        Parts {
            link: CoreLink::in_process(routes, signer.clone()),
            auth: Authenticator::new(signer.verifier().unwrap()).accept_hub_tokens(true),
            store: None,
            edge: None,
        },
        &cfg,
    )
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app.router).await.unwrap() });
    let caller = Caller {
        kind: CallerKind::Operatore,
        subject: "bench-statistica".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Statistica],
        purpose: "programmazione".into(),
        request_id: String::new(),
    };
    let token = signer.mint(&caller, Duration::from_secs(3600)).unwrap();
    let http = reqwest::Client::new();
    let queries = [
        ("municipio×area, anno", "misura=prestazioni&righe=municipio&colonne=area&periodo=anno&anno_da=2026"),
        ("municipio×area, mese", "misura=prestazioni&righe=municipio&colonne=area&periodo=mese&anno_da=2026"),
        ("prestazione×sesso, trimestre", "misura=prestazioni&righe=prestazione&colonne=sesso&periodo=trimestre&anno_da=2026"),
    ];
    let mut ours = Vec::new();
    for (name, q) in queries {
        let url = format!("http://{addr}/api/v1/statistiche/tabella?{q}");
        let mut cells = 0;
        let mut xs = Vec::new();
        for i in 0..n_q + 10 {
            let t0 = Instant::now();
            let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{name}");
            let v: serde_json::Value = r.json().await.unwrap();
            if i >= 10 {
                xs.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            cells = v["celle"].as_array().map_or(0, Vec::len);
        }
        // Printed at once, so a failure on the DuckDB side loses none of the hub's figures.
        let (p50, p99) = (pct(&mut xs, 0.5), pct(&mut xs, 0.99));
        println!("hub: {name}: {cells} cells, p50 {p50:.2} ms, p99 {p99:.2} ms");
        ours.push((name, p50, p99, cells));
    }

    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python).arg("-c").arg(DUCKDB).arg(dir.path()).arg(n_q.to_string()).output().expect("BENCH_PYTHON runs");
    assert!(out.status.success(), "DuckDB side failed: {}", String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut duck = std::collections::HashMap::new();
    for line in text.lines() {
        // Whatever a terminal-style writer put before a carriage return is not ours.
        let line = line.rsplit('\r').next().unwrap_or(line);
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 2 {
            continue;
        }
        if f[0] == "load" {
            println!("DuckDB: CSV loaded into tables in {} ms (not counted below)", f[1]);
        } else if let [name, p50, p99, rows] = f[..]
            && let (Ok(p50), Ok(p99)) = (p50.parse::<f64>(), p99.parse::<f64>())
        {
            duck.insert(name.to_string(), (p50, p99, rows.to_string()));
        }
    }
    println!(
        "\n| table (prestazioni, 2026) | hub cells | hub p50 ms | hub p99 ms | DuckDB rows | DuckDB p50 ms | DuckDB p99 ms | p99 DuckDB/hub |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for (name, p50, p99, cells) in &ours {
        let Some((d50, d99, rows)) = duck.get(*name) else {
            println!("| {name} | {cells} | {p50:.2} | {p99:.2} | (DuckDB gave no figure; its output follows) | | | |\n{text}");
            ok = false;
            continue;
        };
        println!("| {name} | {cells} | {p50:.2} | {p99:.2} | {rows} | {d50:.2} | {d99:.2} | {:.1}× |", d99 / p99);
        ok &= *p99 <= 50.0 && p99 < d99;
    }
    println!("\ntarget (hub p99 ≤ 50 ms and below DuckDB's): {}", if ok { "met" } else { "NOT met" });
}

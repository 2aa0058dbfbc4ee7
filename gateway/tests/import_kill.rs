//! `sigess import`, the real binary, killed with SIGKILL half-way through an office of a
//! generated three-office export (people registered in two offices, look-alikes without a
//! codice fiscale): what it wrote is whole persons and households only, and running it
//! again imports exactly the rest. In the end every row is in once, every person is one
//! persona, and the look-alike pairs are in the review queue, those of persons the killed
//! run wrote included. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use core_cartella::{
    domain::codice_fiscale::compose,
    testkit::{TestBackend as Backend, TestDb},
};
use sqlx::{AnyPool, Row};

const OFFICES: [&str; 3] = ["M01-A", "M02-A", "M03-A"];
const PEOPLE: usize = 2400;
const CONSONANTS: &[u8; 20] = b"bcdfghjklmnpqrstvwxz";
const NAMES: [&str; 8] = ["Anna", "Marco", "Giulia", "Luca", "Sara", "Paolo", "Elena", "Davide"];

/// Person `i`: a surname whose three consonants spell `i`, so every codice fiscale differs.
fn person(i: usize) -> (String, &'static str, bool, (i32, u8, u8)) {
    let c = |k: usize| char::from(CONSONANTS[(i / 20usize.pow(k as u32)) % 20]);
    let cognome: String = [c(2).to_ascii_uppercase(), 'a', c(1), 'e', c(0), 'i'].iter().collect();
    let nome = NAMES[i % NAMES.len()];
    let female = i.is_multiple_of(2);
    (cognome, nome, female, (1935 + (i % 60) as i32, 1 + (i / 7 % 12) as u8, 1 + (i % 28) as u8))
}

/// What the generated export holds, to check the store against.
#[derive(Default)]
struct Truth {
    /// (office, local id) → person.
    rows: HashMap<(usize, String), usize>,
    /// (office, household id) → its two local person ids.
    households: Vec<(usize, String, [String; 2])>,
    /// (office, look-alike local id, office, local id of the person it looks like).
    lookalikes: Vec<((usize, String), (usize, String))>,
}

/// One person's row in an office, with a cartella and a prestazione.
fn push_row(files: &mut [[String; 4]], truth: &mut Truth, office: usize, local: String, i: usize, cognome: &str, cf: &str) {
    let (_, nome, female, (y, m, d)) = person(i % PEOPLE);
    let f = &mut files[office];
    let sesso = if female { "F" } else { "M" };
    f[0].push_str(&format!("{local};{cognome};{nome};{sesso};{d:02}/{m:02}/{y};Roma;H501;380;{cf}\n"));
    f[2].push_str(&format!("C{local};{local};01/02/2020;anziani;aperta\n"));
    f[3].push_str(&format!("S{local};C{local};B2.01;Contributo economico straordinario;occasionale;isee;PR-{local};10/05/2024;120,50\n"));
    truth.rows.insert((office, local), i);
}

/// Person `i` lives in office `i % 3`, in a household of two with the next person there;
/// one in four is registered again, with the same codice fiscale, in the next office; one
/// in forty has a look-alike there (a vowel of the surname changed, no codice fiscale).
fn generate(dir: &Path) -> Truth {
    let mut truth = Truth::default();
    let mut files: Vec<[String; 4]> = (0..3)
        .map(|_| {
            [
                "id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_luogo_nascita;cittadinanza;codice_fiscale\n".into(),
                "id_nucleo;id_persona;relazione\n".into(),
                "id_cartella;id_persona;data_apertura;area_utenza;stato\n".into(),
                "id_prestazione;id_cartella;codice_prestazione;denominazione;carattere;prova_mezzi;protocollo_domanda;data_erogazione;importo\n"
                    .into(),
            ]
        })
        .collect();
    for i in 0..PEOPLE {
        let (cognome, nome, female, (y, m, d)) = person(i);
        let cf = compose(&cognome, nome, y, m, d, female, "H501");
        let home = i % 3;
        push_row(&mut files, &mut truth, home, format!("P{i}"), i, &cognome, &cf);
        if (i / 3) % 2 == 1 {
            let (a, b) = (format!("P{}", i - 3), format!("P{i}"));
            files[home][1].push_str(&format!("N{i};{a};intestatario\nN{i};{b};coniuge\n"));
            truth.households.push((home, format!("N{i}"), [a, b]));
        }
        let next = (home + 1) % 3;
        if i.is_multiple_of(4) {
            push_row(&mut files, &mut truth, next, format!("R{i}"), i, &cognome.to_uppercase(), &cf);
        }
        if i % 40 == 1 {
            let lookalike: String = cognome.chars().take(5).chain(['o']).collect();
            push_row(&mut files, &mut truth, next, format!("L{i}"), PEOPLE + i, &lookalike, "");
            truth.lookalikes.push(((next, format!("L{i}")), (home, format!("P{i}"))));
        }
    }
    for (k, office) in OFFICES.iter().enumerate() {
        let d = dir.join(office);
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in ["persone.csv", "nuclei.csv", "cartelle.csv", "prestazioni.csv"].iter().zip(&files[k]) {
            std::fs::write(d.join(name), text).unwrap();
        }
    }
    truth
}

fn import(url: &str, dir: &Path, office: usize) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sigess"));
    c.arg("import").arg(dir.join(OFFICES[office]));
    c.args(["--ufficio", &OFFICES[office][..3], "--database-url", url, "--db-max-connections", "4"]);
    // Nothing is linked on its score, and look-alikes are left for review.
    c.args(["--link-threshold", "1", "--review-threshold", "0.05", "--u-sample-pairs", "100000"]);
    c.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::inherit());
    c
}

fn run_to_end(url: &str, dir: &Path, office: usize) {
    let status = import(url, dir, office).status().unwrap();
    assert!(status.success(), "sigess import of {} ended with {status}", OFFICES[office]);
}

/// (kind, local id) → record id of what an office's imports wrote.
async fn imported(pool: &AnyPool, office: usize) -> HashMap<(String, String), String> {
    let rows = sqlx::query("SELECT kind, id_locale, record_id FROM import_origine WHERE origine = $1")
        .bind(OFFICES[office])
        .fetch_all(pool)
        .await
        .unwrap();
    rows.iter().map(|r| ((r.get("kind"), r.get("id_locale")), r.get("record_id"))).collect()
}

/// Every person of `office` written came whole: their cartella and prestazione, and their
/// household with both people; a household is there only with both.
async fn only_whole_units(pool: &AnyPool, truth: &Truth, office: usize) -> usize {
    let done = imported(pool, office).await;
    let has = |kind: &str, id: &str| done.contains_key(&(kind.to_string(), id.to_string()));
    let persons: Vec<&String> = truth.rows.keys().filter(|(o, _)| *o == office).map(|(_, l)| l).collect();
    for l in &persons {
        let whole = [has("persona", l), has("cartella", &format!("C{l}")), has("prestazione", &format!("S{l}"))];
        assert!(whole == [true; 3] || whole == [false; 3], "person {l} of {} half-imported: {whole:?}", OFFICES[office]);
    }
    for (o, n, [a, b]) in &truth.households {
        if *o == office {
            let whole = [has("nucleo", n), has("persona", a), has("persona", b)];
            assert!(whole == [true; 3] || whole == [false; 3], "household {n} half-imported: {whole:?}");
        }
    }
    persons.iter().filter(|l| has("persona", l)).count()
}

async fn count(pool: &AnyPool, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().try_get::<i64, _>(0).unwrap()
}

async fn killed_and_run_again(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_import_kill").await else { return };
    let export = tempfile::tempdir().unwrap();
    let truth = generate(export.path());
    let started = Instant::now();

    run_to_end(&db.url, export.path(), 0);
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&db.url).await.unwrap();
    let rows_of = |office: usize| truth.rows.keys().filter(|(o, _)| *o == office).count();

    // The second office, killed once it has written part of its persons.
    let mut child = import(&db.url, export.path(), 1).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM import_origine WHERE origine = $1 AND kind = 'persona'")
            .bind(OFFICES[1])
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        if n >= 30 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "sigess import ended before it could be killed");
        assert!(Instant::now() < deadline, "sigess import wrote nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not ended: {status}");
    let written = only_whole_units(&pool, &truth, 1).await;
    assert!(written > 0 && written < rows_of(1), "killed half-way: {written} of {} rows", rows_of(1));
    let pairs_before = count(&pool, "SELECT COUNT(*) FROM revisione").await;

    // Run again, then the third office.
    run_to_end(&db.url, export.path(), 1);
    assert_eq!(only_whole_units(&pool, &truth, 1).await, rows_of(1), "the re-run imports the rest");
    run_to_end(&db.url, export.path(), 2);

    // Every row once, every person one persona.
    let mut persona_of: HashMap<usize, String> = HashMap::new();
    for (office, name) in OFFICES.iter().enumerate() {
        assert_eq!(only_whole_units(&pool, &truth, office).await, rows_of(office), "{name} whole");
        let done = imported(&pool, office).await;
        for ((kind, local), id) in &done {
            if kind != "persona" {
                continue;
            }
            let who = truth.rows[&(office, local.clone())];
            let prev = persona_of.insert(who, id.clone());
            assert!(prev.is_none() || prev.as_deref() == Some(id.as_str()), "person {who} is two personas");
        }
    }
    let lookalikes = truth.lookalikes.len();
    assert_eq!(persona_of.len(), PEOPLE + lookalikes);
    let distinct: HashSet<&String> = persona_of.values().collect();
    assert_eq!(distinct.len(), PEOPLE + lookalikes, "no two people share a persona");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM persona").await, (PEOPLE + lookalikes) as i64);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM import_origine").await, (truth.rows.len() * 3 + truth.households.len()) as i64);

    // Every look-alike pair is in the review queue, those the killed run had written too.
    let pairs: HashSet<(String, String)> = sqlx::query("SELECT persona_a, persona_b FROM revisione WHERE stato = 'aperta'")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("persona_a"), r.get("persona_b")))
        .collect();
    let pair_of = |x: &(usize, String)| persona_of[&truth.rows[x]].clone();
    for (l, p) in &truth.lookalikes {
        let (a, b) = (pair_of(l), pair_of(p));
        let key = if a <= b { (a, b) } else { (b, a) };
        assert!(pairs.contains(&key), "look-alike {} of {} not queued for review", l.1, OFFICES[l.0]);
    }
    assert!(count(&pool, "SELECT COUNT(*) FROM revisione").await > pairs_before);
    eprintln!("imports, kill and re-run: {:.1}s", started.elapsed().as_secs_f64());
    pool.close().await;
    db.drop_pg().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_killed_and_run_again_sqlite() {
    killed_and_run_again(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_killed_and_run_again_postgres() {
    killed_and_run_again(Backend::Postgres).await;
}

/// Ctrl-C (SIGINT) is not a kill: `sigess import` finishes or rolls back the unit in
/// progress, says how far it got and exits with an error; run again, it imports the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_interrupted_with_ctrl_c_stops_between_units() {
    let db = TestDb::sqlite("sigess_import_int.db");
    let export = tempfile::tempdir().unwrap();
    let truth = generate(export.path());
    let rows = truth.rows.keys().filter(|(o, _)| *o == 0).count();
    let child = import(&db.url, export.path(), 0).stderr(Stdio::piped()).spawn().unwrap();
    sqlx::any::install_default_drivers();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pool = loop {
        // The store is created by the child: wait for it.
        if let Ok(pool) = AnyPool::connect(&db.url).await {
            let n = sqlx::query("SELECT COUNT(*) FROM import_origine WHERE kind = 'persona'")
                .fetch_one(&pool)
                .await
                .map(|r| r.get::<i64, _>(0));
            if n.is_ok_and(|n| n >= 30) {
                break pool;
            }
            pool.close().await;
        }
        assert!(Instant::now() < deadline, "sigess import wrote nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ended with an error, not by the signal: {}", out.status);
    assert!(err.contains("interrupted after") && err.contains("run the same command again"), "{err}");
    let written = only_whole_units(&pool, &truth, 0).await;
    assert!(written > 0 && written < rows, "stopped half-way: {written} of {rows}");
    run_to_end(&db.url, export.path(), 0);
    assert_eq!(only_whole_units(&pool, &truth, 0).await, rows);
    pool.close().await;
}

#[test]
fn bad_linkage_flags_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hub.db", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_sigess"))
        .arg("import")
        .arg(dir.path())
        .args(["--ufficio", "M01", "--database-url", &url])
        .args(["--review-threshold", "0.95", "--link-threshold", "0.9", "--max-block", "1", "--em-iterations", "0"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for flag in ["--review-threshold", "--max-block", "--training-max-block", "--em-iterations"] {
        assert!(err.contains(&format!("{flag} must")), "{flag} not named: {err}");
    }
    assert!(!dir.path().join("hub.db").exists(), "refused before the store is opened");

    // The same settings are the defaults of import jobs for `sigess core`, checked at start.
    let out = Command::new(env!("CARGO_BIN_EXE_sigess"))
        .arg("core")
        .args(["--database-url", &url, "--link-threshold", "1.5", "--signing-key"])
        .arg(dir.path().join("k.pem"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--link-threshold must"), "--link-threshold not named: {err}");
    assert!(!dir.path().join("hub.db").exists(), "refused before the store is opened");
}

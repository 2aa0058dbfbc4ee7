//! `import::load`: an office's export into the store on both engines. Bad rows are all
//! reported and nothing is stored for them; a dry run stores nothing; a re-run after fixing
//! the file imports only what is missing; a row that is a persona the hub already holds is
//! joined to it, and two rows of one person become one persona. Households and prestazioni
//! land with their people: a household with a row in error is left out whole, a prestazione
//! the hub refuses (SIUSS code, carattere, dates) is reported by column. Pairs left for
//! review are queued again by a re-run when an interrupted run wrote them but never queued
//! them; pairs of other origins stay out, and a decided pair is not re-opened.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use cartella_proto::v1::{Nucleo, Parentela, Persona, Prestazione, Sesso};
use core_cartella::testkit::{TestBackend as Backend, TestDb};
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    import::{
        Source,
        load::{ImportOptions, ImportSummary, import},
    },
    linkage::Config,
    store::{
        Store, StoreOptions,
        revisione::{APERTA, Decisione, PERSONE_DIVERSE},
    },
};
use prost::Message;
use sqlx::Row;

fn caller() -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "import-test".into(),
        ente: "H501".into(),
        ufficio: Some("M03".into()),
        roles: vec![Role::Operatore],
        purpose: "importazione".into(),
        request_id: "t".into(),
    }
}

const PRESTAZIONI_HEADER: &str = "id_prestazione;id_cartella;codice_prestazione;denominazione;carattere;prova_mezzi;protocollo_domanda;data_inizio;data_fine;data_erogazione;importo\n";

const HEADER: &str =
    "id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_luogo_nascita;cittadinanza;codice_fiscale;indirizzo\r\n";

fn persone(rows: &[String]) -> String {
    let mut s = HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push_str("\r\n");
    }
    s
}

fn write_export(dir: &Path, persone_csv: &str, cartelle_csv: &str) {
    std::fs::write(dir.join("persone.csv"), persone_csv).unwrap();
    std::fs::write(dir.join("nuclei.csv"), "id_nucleo;id_persona;relazione\n").unwrap();
    std::fs::write(dir.join("cartelle.csv"), cartelle_csv).unwrap();
    std::fs::write(dir.join("prestazioni.csv"), PRESTAZIONI_HEADER).unwrap();
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(store.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

async fn run(store: &Store, dir: &Path, dry_run: bool) -> ImportSummary {
    let opts = ImportOptions { origine: "M03-A".into(), dry_run, linkage: Config { u_sample_pairs: 10_000, ..Config::default() } };
    import(store, &caller(), &Source::Dir(dir.to_path_buf()), &opts, &mut |_, _| {}).await.unwrap()
}

async fn bad_rows_dry_run_rerun_and_links(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = Store::open(&StoreOptions { max_connections: 4, ..StoreOptions::new(&db.url) }).await.unwrap();
    // A persona the hub already holds, with a trusted code.
    let cf_verdi = compose("Verdi", "Anna", 1950, 4, 9, true, "H501");
    store
        .create(
            &caller(),
            Persona {
                codice_fiscale: cf_verdi.clone(),
                cognome: "Verdi".into(),
                nome: "Anna".into(),
                sesso: Sesso::Femmina as i32,
                data_nascita: "1950-04-09".into(),
                luogo_nascita: "H501".into(),
                cittadinanza: "380".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cf_rossi = compose("Rossi", "Mario", 1980, 3, 7, false, "H501");
    let good = vec![
        format!("A1;Rossi;Mario;M;07/03/1980;Roma;H501;380;{cf_rossi};Via Appia 1"),
        // The same person typed again by the office, code and all, names swapped.
        format!("A2;MARIO;ROSSI;M;07/03/1980;ROMA;H501;380;{};", cf_rossi.to_lowercase()),
        // The hub's persona, surname mistyped, same code.
        format!("A3;Verdy;Anna;F;09/04/1950;Roma;H501;380;{cf_verdi};"),
        "A4;Neri;Ugo;M;01/01/1970;Roma;H501;380;;".to_string(),
    ];
    let mut rows = good.clone();
    rows.push("A5;Bianchi;Luisa;X;31/02/1970;Roma;H501;380;;".into()); // bad sex and date
    rows.push("A6;Gallo;Piero;M;01/01/1960;Roma;ROMA;380;;".into()); // place not a Belfiore code
    let cartelle = "id_cartella;id_persona;data_apertura;area_utenza;stato;data_chiusura;motivo_chiusura\n\
C1;A1;01/02/2020;anziani;aperta;;\n\
C2;A5;01/02/2020;anziani;aperta;;\n\
C3;A6;01/02/2020;anziani;aperta;;\n\
C4;A4;01/02/2020;anziani;chiusa;;\n";
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &persone(&rows), cartelle);

    let dry = run(&store, dir.path(), true).await;
    let problems: Vec<String> = dry.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        vec![
            "persone.csv:6: column sesso: must be M, F or empty",
            "persone.csv:6: column data_nascita: no such day in the calendar",
            "cartelle.csv:3: column id_persona: refers to a row missing from persone.csv or in error there",
            "persone.csv:7: column codice_luogo_nascita: must be a Belfiore code: a letter and 3 digits",
            "cartelle.csv:4: column id_persona: its persona is in error",
            "cartelle.csv:5: column data_chiusura: is required",
            "cartelle.csv:5: column motivo_chiusura: is required",
        ]
    );
    assert_eq!((dry.persone_nuove, dry.persone_unite, dry.persone_collegate), (2, 1, 1));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, 1, "a dry run stores nothing");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM import_origine").await, 0);

    let first = run(&store, dir.path(), false).await;
    assert_eq!(first.problems.len(), 7);
    assert_eq!((first.persone_nuove, first.persone_unite, first.persone_collegate, first.cartelle_nuove), (2, 1, 1, 1));
    // Rossi (one persona for two rows), Neri, and the hub's Verdi: nothing for A5, A6, C2–C4.
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, 3);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM cartella").await, 1);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM import_origine WHERE kind = 'persona'").await, 4);
    assert_eq!(count(&store, "SELECT COUNT(DISTINCT record_id) FROM import_origine WHERE kind = 'persona'").await, 3);
    let verdi: String =
        sqlx::query("SELECT p.codice_fiscale FROM import_origine o JOIN persona p ON p.id = o.record_id WHERE o.id_locale = 'A3'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    assert_eq!(verdi, cf_verdi, "A3 joined the persona the hub held");
    let audits = count(&store, "SELECT COUNT(*) FROM audit WHERE action = 'create' AND kind = 'persona'").await;
    assert_eq!(audits, 3, "each created persona audited like any other write");

    // The office fixes its rows; the re-run imports only what was missing.
    let mut fixed = good;
    fixed.push("A5;Bianchi;Luisa;F;28/02/1970;Roma;H501;380;;".into());
    fixed.push("A6;Gallo;Piero;M;01/01/1960;Roma;H501;380;;".into());
    let cartelle_fixed = "id_cartella;id_persona;data_apertura;area_utenza;stato;data_chiusura;motivo_chiusura\n\
C1;A1;01/02/2020;anziani;aperta;;\n\
C2;A5;01/02/2020;anziani;aperta;;\n\
C3;A6;01/02/2020;anziani;aperta;;\n\
C4;A4;01/02/2020;anziani;chiusa;01/03/2021;Obiettivi raggiunti\n";
    write_export(dir.path(), &persone(&fixed), cartelle_fixed);
    let second = run(&store, dir.path(), false).await;
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!((second.persone_gia_importate, second.persone_nuove, second.cartelle_gia_importate, second.cartelle_nuove), (4, 2, 1, 3));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, 5);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM cartella").await, 4);
    // And a third run finds nothing to do.
    let third = run(&store, dir.path(), false).await;
    assert_eq!((third.persone_nuove, third.cartelle_nuove, third.persone_gia_importate, third.cartelle_gia_importate), (0, 0, 6, 4));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, 5);
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn import_sqlite() {
    bad_rows_dry_run_rerun_and_links(Backend::Sqlite).await;
}

#[tokio::test]
async fn import_postgres() {
    bad_rows_dry_run_rerun_and_links(Backend::Postgres).await;
}

async fn bodies<M: Message + Default>(store: &Store, sql: &'static str) -> Vec<M> {
    let rows = sqlx::query(sql).fetch_all(store.pool()).await.unwrap();
    rows.iter().map(|r| M::decode(r.try_get::<Vec<u8>, _>(0).unwrap().as_slice()).unwrap()).collect()
}

async fn origin_of(store: &Store, kind: &str, id_locale: &str) -> String {
    sqlx::query("SELECT record_id FROM import_origine WHERE kind = $1 AND id_locale = $2")
        .bind(kind)
        .bind(id_locale)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

const PERSONE_NUCLEI: &[&str] = &[
    "B1;Rossi;Mario;M;07/03/1950;Roma;H501;380;;",
    "B2;Rossi;Anna;F;12/10/1985;Roma;H501;380;;",
    "B3;Neri;Ugo;M;01/01/1940;Roma;H501;380;;",
    "B4;Gallo;Pia;F;31/02/1942;Roma;H501;380;;",
    "B5;Bianchi;Luisa;F;05/06/1977;Roma;H501;380;;",
];

fn households_export(dir: &Path, fixed: bool) {
    let mut persone_rows: Vec<String> = PERSONE_NUCLEI.iter().map(|r| (*r).to_string()).collect();
    if fixed {
        persone_rows[3] = "B4;Gallo;Pia;F;28/02/1942;Roma;H501;380;;".into();
    }
    std::fs::write(dir.join("persone.csv"), persone(&persone_rows)).unwrap();
    let n3 = if fixed { "intestatario" } else { "componente" };
    std::fs::write(
        dir.join("nuclei.csv"),
        format!("id_nucleo;id_persona;relazione\nN1;B1;intestatario\nN1;B2;figlia\nN2;B3;intestatario\nN2;B4;coniuge\nN3;B5;{n3}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("cartelle.csv"),
        "id_cartella;id_persona;data_apertura;area_utenza;stato;data_chiusura;motivo_chiusura\n\
K1;B1;01/02/2020;anziani;aperta;;\n\
K2;B3;01/02/2020;anziani;aperta;;\n\
K3;B5;01/02/2020;poverta;aperta;;\n",
    )
    .unwrap();
    // Windows-1252, as half the offices write: "Attivit\xe0" is "Attività".
    let mut prestazioni = PRESTAZIONI_HEADER.as_bytes().to_vec();
    prestazioni.extend_from_slice(b"S1;K1;A1.01;Assistenza domiciliare anziani;periodica;isee;PROT-1;01/03/2024;31/12/2024;;150,00\n");
    prestazioni.extend_from_slice(if fixed {
        b"S2;K1;A1.04;Attivit\xe0 di socializzazione;occasionale;nessuna;PROT-2;;;15/04/2024;20\n".as_slice()
    } else {
        b"S2;K1;X;Attivit\xe0 di socializzazione;occasionale;nessuna;PROT-2;;;15/04/2024;20\n".as_slice()
    });
    prestazioni.extend_from_slice(if fixed {
        b"S3;K1;B1.02;Trasporto sociale disabili;occasionale;altra;PROT-3;02/02/2024;;02/02/2024;12,5\n".as_slice()
    } else {
        b"S3;K1;B1.02;Trasporto sociale disabili;occasionale;altra;PROT-3;02/02/2024;;;12,5\n".as_slice()
    });
    prestazioni.extend_from_slice(b"S4;K2;B2.01;Contributo economico straordinario;occasionale;isee;PROT-4;;;10/05/2024;1234,56\n");
    prestazioni.extend_from_slice(if fixed {
        b"S5;K3;C1.03;Contributo per il canone di locazione;periodica;isee;PROT-5;01/01/2024;30/06/2024;;300\n".as_slice()
    } else {
        b"S5;K9;C1.03;Contributo per il canone di locazione;periodica;isee;PROT-5;01/01/2024;30/06/2024;;300\n".as_slice()
    });
    prestazioni.extend_from_slice(if fixed {
        b"S6;K3;D1.01;Pasti a domicilio per la persona;periodica;nessuna;PROT-6;01/11/2024;31/12/2024;;80,00\n".as_slice()
    } else {
        b"S6;K3;D1.01;Pasti a domicilio per la persona;periodica;nessuna;PROT-6;01/11/2024;28/02/2025;;80,00\n".as_slice()
    });
    std::fs::write(dir.join("prestazioni.csv"), prestazioni).unwrap();
}

async fn households_and_prestazioni(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = Store::open(&StoreOptions { max_connections: 4, ..StoreOptions::new(&db.url) }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    households_export(dir.path(), false);

    let dry = run(&store, dir.path(), true).await;
    let problems: Vec<String> = dry.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        vec![
            "persone.csv:5: column data_nascita: no such day in the calendar",
            "nuclei.csv:5: column id_persona: refers to a row missing from persone.csv or in error there",
            "prestazioni.csv:6: column id_cartella: refers to a row missing from cartelle.csv or in error there",
            "prestazioni.csv:3: column codice_prestazione: must be 5-10 upper-case letters, digits or dots (Ax.yy catalogue)",
            "prestazioni.csv:4: column data_erogazione: is required for an occasional prestazione",
            "prestazioni.csv:7: column data_fine: must be in the same year as data_inizio",
            "nuclei.csv:4: column id_nucleo: left out with its household: another of its rows is in error",
            "nuclei.csv:6: column relazione: the household has no intestatario",
        ]
    );
    assert_eq!(
        (dry.persone_nuove, dry.cartelle_nuove, dry.prestazioni_nuove, dry.nuclei_nuovi),
        (4, 3, 2, 1),
        "B1–B3 and B5; K1–K3; S1 and S4; N1"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, 0, "a dry run stores nothing");

    let first = run(&store, dir.path(), false).await;
    assert_eq!(first.problems, dry.problems);
    assert_eq!((first.persone_nuove, first.cartelle_nuove, first.prestazioni_nuove, first.nuclei_nuovi), (4, 3, 2, 1));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM prestazione").await, 2);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM nucleo").await, 1);
    let nuclei: Vec<Nucleo> = bodies(&store, "SELECT body FROM nucleo").await;
    assert_eq!(nuclei[0].persona_riferimento_id, origin_of(&store, "persona", "B1").await);
    assert_eq!(nuclei[0].membri.len(), 1);
    assert_eq!(nuclei[0].membri[0].persona_id, origin_of(&store, "persona", "B2").await);
    assert_eq!(nuclei[0].membri[0].parentela, Parentela::Figlio as i32);
    let s4: Vec<Prestazione> =
        bodies(&store, "SELECT p.body FROM prestazione p JOIN import_origine o ON o.record_id = p.id WHERE o.id_locale = 'S4'").await;
    assert_eq!((s4[0].importo, s4[0].data_erogazione.as_str(), s4[0].codice_prestazione.as_str()), (Some(123_456), "2024-05-10", "B2.01"));
    assert_eq!(s4[0].cartella_id, origin_of(&store, "cartella", "K2").await);
    let s1: Vec<Prestazione> =
        bodies(&store, "SELECT p.body FROM prestazione p JOIN import_origine o ON o.record_id = p.id WHERE o.id_locale = 'S1'").await;
    assert_eq!((s1[0].importo_mensile, s1[0].importo), (Some(15_000), None));

    // The office fixes every row; the re-run writes only what was missing.
    households_export(dir.path(), true);
    let second = run(&store, dir.path(), false).await;
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!(
        (second.persone_gia_importate, second.persone_nuove, second.prestazioni_gia_importate, second.prestazioni_nuove),
        (4, 1, 2, 4)
    );
    assert_eq!((second.nuclei_gia_importati, second.nuclei_nuovi, second.cartelle_gia_importate, second.cartelle_nuove), (1, 2, 3, 0));
    let s2: Vec<Prestazione> =
        bodies(&store, "SELECT p.body FROM prestazione p JOIN import_origine o ON o.record_id = p.id WHERE o.id_locale = 'S2'").await;
    assert_eq!(s2[0].denominazione, "Attività di socializzazione", "Windows-1252 read as such");
    // N2: the persona imported on the first run and the one fixed since, in one household.
    let n2_id = origin_of(&store, "nucleo", "N2").await;
    let n2: Vec<Nucleo> = bodies(&store, "SELECT body FROM nucleo").await;
    let n2 = n2.iter().find(|n| n.meta.as_ref().unwrap().id == n2_id).unwrap();
    assert_eq!(n2.persona_riferimento_id, origin_of(&store, "persona", "B3").await);
    assert_eq!(n2.membri[0].persona_id, origin_of(&store, "persona", "B4").await);
    assert_eq!(n2.membri[0].parentela, Parentela::Coniuge as i32);
    let third = run(&store, dir.path(), false).await;
    assert_eq!((third.persone_nuove, third.cartelle_nuove, third.prestazioni_nuove, third.nuclei_nuovi), (0, 0, 0, 0));
    assert_eq!((third.prestazioni_gia_importate, third.nuclei_gia_importati), (6, 3));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM prestazione").await, 6);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM nucleo").await, 3);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, 5);
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn households_and_prestazioni_sqlite() {
    households_and_prestazioni(Backend::Sqlite).await;
}

#[tokio::test]
async fn households_and_prestazioni_postgres() {
    households_and_prestazioni(Backend::Postgres).await;
}

/// Every pair that shares a blocking key is left for review and none is linked on its score,
/// so the planted pairs do not hang on what the model learns from a handful of rows.
fn review_all() -> Config {
    Config { u_sample_pairs: 10_000, link_threshold: 2.0, review_threshold: 0.0, ..Config::default() }
}

async fn run_origine(store: &Store, dir: &Path, origine: &str, dry_run: bool) -> ImportSummary {
    let opts = ImportOptions { origine: origine.into(), dry_run, linkage: review_all() };
    import(store, &caller(), &Source::Dir(dir.to_path_buf()), &opts, &mut |_, _| {}).await.unwrap()
}

/// The review queue as (first label, second label, stato), sorted; a persona is labelled by
/// its office row (`origine/id_locale`), or `diretta` when it was created otherwise.
async fn queue(store: &Store) -> Vec<(String, String, String)> {
    let labels: std::collections::HashMap<String, String> =
        sqlx::query("SELECT record_id, origine, id_locale FROM import_origine WHERE kind = 'persona'")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get::<String, _>(0).unwrap(),
                    format!("{}/{}", r.try_get::<String, _>(1).unwrap(), r.try_get::<String, _>(2).unwrap()),
                )
            })
            .collect();
    let label = |id: String| labels.get(&id).cloned().unwrap_or_else(|| "diretta".into());
    let mut out: Vec<(String, String, String)> = sqlx::query("SELECT persona_a, persona_b, stato FROM revisione")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let (a, b) = (label(r.try_get(0).unwrap()), label(r.try_get(1).unwrap()));
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            (a, b, r.try_get(2).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn pair(a: &str, b: &str, stato: &str) -> (String, String, String) {
    (a.into(), b.into(), stato.into())
}

async fn review_pairs_survive_an_interrupted_run(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = Store::open(&StoreOptions { max_connections: 4, ..StoreOptions::new(&db.url) }).await.unwrap();
    // A persona created at the desk, then another office's export with its double and one
    // person this export has too.
    let neri = Persona {
        cognome: "Neri".into(),
        nome: "Ugo".into(),
        sesso: Sesso::Maschio as i32,
        data_nascita: "1990-03-03".into(),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    };
    store.create(&caller(), neri).await.unwrap();
    let altro = tempfile::tempdir().unwrap();
    let rows = ["O1;Verdi;Luca;M;02/02/1980;Roma;H501;380;;".to_string(), "O2;Neri;Ugo;M;03/03/1990;Roma;H501;380;;".to_string()];
    write_export(altro.path(), &persone(&rows), "id_cartella;id_persona;data_apertura;area_utenza;stato\n");
    let b = run_origine(&store, altro.path(), "M03-B", false).await;
    assert_eq!((b.persone_nuove, b.coppie_da_rivedere), (2, 1));
    assert_eq!(queue(&store).await, vec![pair("M03-B/O2", "diretta", APERTA)]);

    // This export: a pair of its own rows, a row whose double came from the other office,
    // and a person with no double.
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        "A1;Rossi;Maria;F;01/01/1970;Roma;H501;380;;".to_string(),
        "A2;Rossa;Maria;F;01/01/1970;Roma;H501;380;;".to_string(),
        "A3;Verdi;Luca;M;02/02/1980;Roma;H501;380;;".to_string(),
        "A4;Gallo;Piero;M;06/06/1960;Roma;H501;380;;".to_string(),
    ];
    write_export(dir.path(), &persone(&rows), "id_cartella;id_persona;data_apertura;area_utenza;stato\n");
    let first = run_origine(&store, dir.path(), "M03-A", false).await;
    assert_eq!((first.persone_nuove, first.coppie_da_rivedere), (4, 2));
    let ours = vec![pair("M03-A/A1", "M03-A/A2", APERTA), pair("M03-A/A3", "M03-B/O1", APERTA)];
    let mut all = ours.clone();
    all.push(pair("M03-B/O2", "diretta", APERTA));
    all.sort();
    assert_eq!(queue(&store).await, all);
    let personas = count(&store, "SELECT COUNT(*) FROM persona").await;
    assert_eq!(personas, 7);

    // Interrupted after its units, before the queueing: nothing queued.
    sqlx::query("DELETE FROM revisione").execute(store.pool()).await.unwrap();
    let dry = run_origine(&store, dir.path(), "M03-A", true).await;
    assert_eq!((dry.persone_gia_importate, dry.persone_nuove, dry.coppie_da_rivedere), (4, 0, 2));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM revisione").await, 0, "a dry run queues nothing");
    // The resumed run imports nothing again and queues this export's pairs, not the other
    // office's (its own import answers for it).
    let resumed = run_origine(&store, dir.path(), "M03-A", false).await;
    assert!(resumed.problems.is_empty(), "{:?}", resumed.problems);
    assert_eq!((resumed.persone_gia_importate, resumed.persone_nuove, resumed.persone_collegate), (4, 0, 0));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, personas);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM import_origine").await, 6);
    assert_eq!(queue(&store).await, ours);

    // A decided pair stays decided, once: re-runs queue only what is missing.
    let anagrafe = Caller { roles: vec![Role::Anagrafe], ..caller() };
    let (a1, a2) = (origin_of(&store, "persona", "A1").await, origin_of(&store, "persona", "A2").await);
    // The queue keeps a pair's personas ordered.
    let (a, b) = if a1 <= a2 { (a1, a2) } else { (a2, a1) };
    let id: String = sqlx::query("SELECT id FROM revisione WHERE persona_a = $1 AND persona_b = $2")
        .bind(&a)
        .bind(&b)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    store.decide_review(&anagrafe, &id, &Decisione::PersoneDiverse).await.unwrap();
    let decided = vec![pair("M03-A/A1", "M03-A/A2", PERSONE_DIVERSE), pair("M03-A/A3", "M03-B/O1", APERTA)];
    run_origine(&store, dir.path(), "M03-A", false).await;
    assert_eq!(queue(&store).await, decided);
    sqlx::query("DELETE FROM revisione WHERE stato = 'aperta'").execute(store.pool()).await.unwrap();
    run_origine(&store, dir.path(), "M03-A", false).await;
    assert_eq!(queue(&store).await, decided);
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn review_pairs_survive_an_interrupted_run_sqlite() {
    review_pairs_survive_an_interrupted_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn review_pairs_survive_an_interrupted_run_postgres() {
    review_pairs_survive_an_interrupted_run(Backend::Postgres).await;
}

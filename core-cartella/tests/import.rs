//! `import::load`: an office's export into the store on both engines. Bad rows are all
//! reported and nothing is stored for them; a dry run stores nothing; a re-run after fixing
//! the file imports only what is missing; a row that is a persona the hub already holds is
//! joined to it, and two rows of one person become one persona.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use cartella_proto::v1::{Persona, Sesso};
use core_cartella::testkit::{TestBackend as Backend, TestDb};
use core_cartella::{
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    import::load::{ImportOptions, ImportSummary, import},
    linkage::Config,
    store::{Store, StoreOptions},
};
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
    std::fs::write(dir.join("prestazioni.csv"), "id_prestazione;id_cartella;codice_prestazione;data_inizio;data_fine;importo\n").unwrap();
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(store.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

async fn run(store: &Store, dir: &Path, dry_run: bool) -> ImportSummary {
    let opts = ImportOptions { origine: "M03-A".into(), dry_run, linkage: Config { u_sample_pairs: 10_000, ..Config::default() } };
    import(store, &caller(), dir, &opts, &mut |_, _| {}).await.unwrap()
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

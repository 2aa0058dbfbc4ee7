//! The edge store on SQLite and PostgreSQL: the SPID/CIE adapter's session-store suite (the
//! same one its in-memory store passes), operator registration (duplicates refused, disabling
//! ends sessions), and the `sigess operator` commands writing to `--edge-database-url`.
#![allow(clippy::unwrap_used)]

use core_cartella::{
    auth::Role,
    testkit::{TestBackend, TestDb},
};
use gateway::edge_store::{EdgeStore, EdgeStoreError, OperatorRecord};
use spid_cie::{
    SessionStore,
    store::{Session, suite},
};

const CF: &str = "RSSMRA80A01H501U";

fn operator() -> OperatorRecord {
    OperatorRecord {
        operator_id: "op-m01-1".into(),
        codice_fiscale: CF.to_ascii_lowercase(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore, Role::Statistica],
        created_at: String::new(),
        disabled: false,
    }
}

async fn check(backend: TestBackend) {
    let Some(db) = TestDb::new(backend, "sigess_edge").await else { return };
    let edge = EdgeStore::open(&db.url, 4).await.unwrap();
    let saved = edge.insert_operator(&operator()).await.unwrap();
    assert_eq!(saved.codice_fiscale, CF, "stored upper case");
    assert_eq!(saved.identity().roles, ["operatore", "statistica"]);
    suite::check(&edge, CF, &saved.identity()).await;

    // Registration refuses duplicates and incomplete records, naming no value.
    for (o, says) in [
        (operator(), "already registered"),
        (OperatorRecord { operator_id: "op-2".into(), ..operator() }, "already registered"),
        (OperatorRecord { codice_fiscale: "SHORT".into(), ..operator() }, "16-character"),
    ] {
        match edge.insert_operator(&o).await {
            Err(EdgeStoreError::Invalid(m)) => assert!(m.contains(says) && !m.contains(CF), "{m}"),
            other => panic!("expected a refusal saying {says:?}, got {other:?}"),
        }
    }

    // Disabling ends the operator's sessions; the operator stays, disabled.
    let s = Session {
        id_hash: "live".into(),
        operator_id: "op-m01-1".into(),
        csrf_token: "c".into(),
        provider: "https://op/".into(),
        access_token: None,
        created_at: 1,
        last_seen: 1,
        expires_at: i64::MAX,
    };
    edge.insert_session(&s).await.unwrap();
    assert!(edge.set_operator_disabled("op-m01-1", true).await.unwrap());
    assert_eq!(edge.session("live").await.unwrap(), None);
    assert!(SessionStore::operator(&edge, "op-m01-1").await.unwrap().unwrap().disabled);
    assert!(edge.set_operator_disabled("op-m01-1", false).await.unwrap());
    assert!(!edge.operator_record("op-m01-1").await.unwrap().unwrap().disabled);
    assert!(!edge.set_operator_disabled("nobody", true).await.unwrap(), "unknown operator");
    edge.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn edge_store_sqlite() {
    check(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn edge_store_postgres() {
    check(TestBackend::Postgres).await;
}

/// `sigess operator add/disable/enable` write to the edge store named by
/// `--edge-database-url`, and core's database URL is not needed for them.
#[tokio::test]
async fn operator_commands_use_the_edge_store() {
    let db = TestDb::sqlite("edge.db");
    let sigess = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sigess"))
            .args(args)
            .args(["--edge-database-url", &db.url])
            .env_remove("DATABASE_URL")
            .current_dir(db.dir().unwrap())
            .output()
            .unwrap()
    };
    let out = sigess(&[
        "operator",
        "add",
        "--id",
        "op-m03-7",
        "--ufficio",
        "M03",
        "--roles",
        "operatore,consultazione",
        "--codice-fiscale",
        "TINIT-RSSMRA80A01H501U",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = sigess(&["operator", "add", "--id", "op-x", "--codice-fiscale", "RSSMRA80A01H501A"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("codice fiscale") && !err.contains("RSSMRA80A01H501A"), "{err}");
    assert!(sigess(&["operator", "disable", "op-m03-7"]).status.success());
    assert!(!sigess(&["operator", "enable", "op-nobody"]).status.success());

    let edge = EdgeStore::open(&db.url, 1).await.unwrap();
    let op = edge.operator_record_by_codice_fiscale("rssmra80a01h501u").await.unwrap().unwrap();
    assert_eq!((op.operator_id.as_str(), op.ufficio.as_deref(), op.disabled), ("op-m03-7", Some("M03"), true));
    assert_eq!(op.roles, [Role::Operatore, Role::Consultazione]);
    // Core's store (default ./data/sigess.db in the working folder) was never opened.
    assert!(!db.dir().unwrap().join("data").exists());
}

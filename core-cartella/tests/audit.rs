//! Read audits, committed in groups shared by concurrent reads, on SQLite and PostgreSQL:
//! every read that returns data has its committed audit row, and a read whose audit row
//! cannot be committed returns an error instead of data.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cartella_proto::v1 as pb;
use core_cartella::testkit::TestDb;
use core_cartella::{
    CoreError,
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    record::Kind,
    store::{ListFilter, Page, Store, StoreOptions, registro::RegistroFilter},
};
use sqlx::Row;

/// Generous: on two shared cores PostgreSQL commits a few hundred reads in well under a second.
const PATIENCE: Duration = Duration::from_secs(60);

fn caller() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "op-M01".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore],
        purpose: "test".into(),
        request_id: String::new(),
    }
}

fn persona(i: u32) -> pb::Persona {
    let (year, month, day) = (1950 + i / 300, 1 + (i / 28) % 12, 1 + i % 28);
    pb::Persona {
        codice_fiscale: compose("Corale", "Mario", year as i32, month as u8, day as u8, false, "H501"),
        cognome: "Corale".into(),
        nome: "Mario".into(),
        sesso: pb::Sesso::Maschio as i32,
        data_nascita: format!("{year}-{month:02}-{day:02}"),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    }
}

async fn open(db: &TestDb) -> Store {
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 20;
    Store::open(&opts).await.unwrap()
}

/// `n` people, the first with a cartella; returns the cartella id.
async fn fixture(store: &Store, n: u32) -> String {
    let c = caller();
    let mut first = String::new();
    for i in 0..n {
        let p = store.create(&c, persona(i)).await.unwrap();
        if i == 0 {
            first = p.meta.unwrap().id;
        }
    }
    let cartella = pb::Cartella {
        persona_id: first,
        area_utenza: pb::AreaUtenza::Anziani as i32,
        stato: pb::StatoCartella::Aperta as i32,
        data_apertura: "2026-01-10".into(),
        ..Default::default()
    };
    store.create(&c, cartella).await.unwrap().meta.unwrap().id
}

async fn read_audits(store: &Store) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM audit WHERE action = 'read'").fetch_one(store.pool()).await.unwrap().try_get("n").unwrap()
}

async fn concurrent_reads_each_commit_their_audit(db: &TestDb) {
    let store = open(db).await;
    let cid = fixture(&store, 60).await;
    let c = caller();
    let mut gets = Vec::new();
    for i in 0..200 {
        let (store, cid, c) = (store.clone(), cid.clone(), c.clone());
        gets.push(tokio::spawn(async move { store.get::<pb::Cartella>(&c, &cid, &format!("lettura {i}")).await }));
    }
    // Pages of every size up to the whole list, so batches reach their row cap and requests
    // that do not fit wait for the next batch.
    let mut lists = Vec::new();
    for size in [1, 7, 30, 59, 60, 500, 500, 500, 500, 500, 500, 500, 500, 500] {
        let (store, c) = (store.clone(), c.clone());
        lists.push(tokio::spawn(async move {
            store.list::<pb::Persona>(&c, &ListFilter::default(), &Page { size, token: String::new() }, "").await
        }));
    }
    for g in gets {
        let rec = tokio::time::timeout(PATIENCE, g).await.expect("a read hung").unwrap().expect("read failed");
        assert_eq!(rec.meta.unwrap().id, cid);
    }
    let mut listed = 0;
    for l in lists {
        let (page, _) = tokio::time::timeout(PATIENCE, l).await.expect("a list hung").unwrap().expect("list failed");
        assert!(!page.is_empty());
        listed += page.len() as i64;
    }
    assert_eq!(store.audit_count(Kind::Cartella, &cid, "read").await.unwrap(), 200);
    assert_eq!(read_audits(&store).await, 200 + listed, "one audit row per record returned, no more, no less");
    let purposes: i64 = sqlx::query("SELECT COUNT(DISTINCT purpose) AS n FROM audit WHERE action = 'read' AND kind = 'cartella'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(purposes, 200, "each read keeps its own purpose in a shared commit");
    store.close().await;
}

async fn read_fails_when_its_audit_cannot_commit(db: &TestDb) {
    let store = open(db).await;
    let cid = fixture(&store, 3).await;
    let c = caller();
    let all = Page { size: 10, token: String::new() };
    store.get::<pb::Cartella>(&c, &cid, "").await.unwrap();

    sqlx::query("ALTER TABLE audit RENAME TO audit_away").execute(store.pool()).await.unwrap();
    let err = store.get::<pb::Cartella>(&c, &cid, "").await.unwrap_err();
    assert!(matches!(err, CoreError::Store(_)), "{err:?}");
    assert!(err.retryable());
    let err = store.list::<pb::Persona>(&c, &ListFilter::default(), &all, "").await.unwrap_err();
    assert!(matches!(err, CoreError::Store(_)), "{err:?}");
    let mut gets = Vec::new();
    for _ in 0..20 {
        let (store, cid, c) = (store.clone(), cid.clone(), c.clone());
        gets.push(tokio::spawn(async move { store.get::<pb::Cartella>(&c, &cid, "").await }));
    }
    for g in gets {
        let r = tokio::time::timeout(PATIENCE, g).await.expect("a read hung").unwrap();
        assert!(matches!(r, Err(CoreError::Store(_))), "{r:?}");
    }

    sqlx::query("ALTER TABLE audit_away RENAME TO audit").execute(store.pool()).await.unwrap();
    store.get::<pb::Cartella>(&c, &cid, "").await.unwrap();
    assert_eq!(store.audit_count(Kind::Cartella, &cid, "read").await.unwrap(), 2, "only the reads that returned data");
    assert_eq!(read_audits(&store).await, 2);

    // Once the store is closed a read fails at once rather than waiting for a commit.
    store.close().await;
    let r = tokio::time::timeout(PATIENCE, store.get::<pb::Cartella>(&c, &cid, "")).await.expect("a read hung after close");
    assert!(matches!(r, Err(CoreError::Store(_))), "{r:?}");
}

/// A declared purpose is bounded in length and characters before anything is read, and a
/// system client reads only for the purpose it was registered with.
async fn purpose_is_bounded_and_registered_purpose_stands(db: &TestDb) {
    let store = open(db).await;
    let cid = fixture(&store, 3).await;
    let op = caller();
    let all = Page { size: 10, token: String::new() };
    let search =
        |purpose: &str| core_cartella::store::PersonaSearch { cognome: "Corale".into(), purpose: purpose.into(), ..Default::default() };

    let long = "x".repeat(60_000);
    let err = store.get::<pb::Cartella>(&op, &cid, &long).await.unwrap_err();
    assert!(matches!(&err, CoreError::Invalid(v) if v[0].field == "purpose"), "{err:?}");
    let err = store.search_persone(&op, &search(&long), &all).await.unwrap_err();
    assert!(matches!(&err, CoreError::Invalid(v) if v[0].field == "purpose"), "{err:?}");
    let err = store.list::<pb::Persona>(&op, &ListFilter::default(), &all, "riga\nfalsa").await.unwrap_err();
    assert!(matches!(&err, CoreError::Invalid(v) if v[0].field == "purpose"), "{err:?}");
    assert_eq!(read_audits(&store).await, 0, "nothing read, nothing audited");
    let at_limit = "è".repeat(200);
    store.get::<pb::Cartella>(&op, &cid, &at_limit).await.expect("200 characters are enough and allowed");

    let sistema = Caller { kind: CallerKind::Sistema, subject: "app-m01".into(), purpose: "gestione".into(), ..caller() };
    let err = store.get::<pb::Cartella>(&sistema, &cid, "altro scopo").await.unwrap_err();
    assert!(matches!(err, CoreError::Denied(_)), "{err:?}");
    let err = store.search_persone(&sistema, &search("altro scopo"), &all).await.unwrap_err();
    assert!(matches!(err, CoreError::Denied(_)), "{err:?}");
    store.get::<pb::Cartella>(&sistema, &cid, "").await.expect("no purpose: the registered one");
    store.get::<pb::Cartella>(&sistema, &cid, "gestione").await.expect("the registered purpose");
    let purposes: Vec<String> = sqlx::query("SELECT purpose FROM audit WHERE action = 'read' AND actor = 'app-m01'")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("purpose").unwrap())
        .collect();
    assert_eq!(purposes, ["gestione", "gestione"]);
    store.get::<pb::Cartella>(&op, &cid, "altro scopo").await.expect("an operator names the purpose of each read");
    store.close().await;
}

/// The registro degli accessi shows the rows about one person (their anagrafica, their
/// cartella), newest first and paged without overlap, only to an ente-wide dpo; each
/// consultation is itself audited before rows are returned.
async fn registro_shows_one_persons_rows_to_the_dpo(db: &TestDb) {
    let store = open(db).await;
    let cartella = fixture(&store, 3).await;
    let c = caller();
    let cart: pb::Cartella = store.get(&c, &cartella, "lettura di prova").await.unwrap();
    let pid = cart.persona_id.clone();
    let person: pb::Persona = store.get(&c, &pid, "").await.unwrap();
    let dpo = Caller { subject: "dpo-1".into(), ufficio: None, roles: vec![Role::Dpo], ..caller() };
    let f = RegistroFilter { persona_id: pid.clone(), ..Default::default() };
    let page = store.registro_accessi(&dpo, &f, "verifica periodica", 0, 100).await.unwrap();
    assert_eq!(page.persona_id, pid);
    assert!(page.righe.iter().all(|r| r.record_id == pid || r.record_id == cartella), "only this person's records: {:?}", page.righe);
    let has = |kind: &str, action: &str, purpose: &str| {
        page.righe.iter().any(|r| r.kind == kind && r.action == action && r.actor == "op-M01" && r.purpose == purpose)
    };
    assert!(has("cartella", "read", "lettura di prova"), "{:?}", page.righe);
    assert!(has("persona", "read", "test") && has("persona", "create", "test") && has("cartella", "create", "test"));
    assert!(page.righe.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    // The consultation is in the register (and in the audit table) before anything is returned.
    assert_eq!(page.righe[0].action, "registro");
    assert_eq!(page.righe[0].actor, "dpo-1");

    // Paging: one row a page walks the same rows, each once.
    let all = store.registro_accessi(&dpo, &f, "verifica periodica", 0, 500).await.unwrap().righe;
    let (mut seen, mut before) = (Vec::new(), 0);
    loop {
        let p = store.registro_accessi(&dpo, &f, "verifica periodica", before, 1).await.unwrap();
        seen.extend(p.righe.iter().map(|r| r.id).filter(|id| all.iter().any(|a| a.id == *id)));
        match p.next {
            Some(n) => before = n,
            None => break,
        }
    }
    assert_eq!(seen, all.iter().map(|r| r.id).collect::<Vec<_>>());

    // By codice fiscale, the same person.
    let by_cf = RegistroFilter { codice_fiscale: person.codice_fiscale.clone(), ..Default::default() };
    assert_eq!(store.registro_accessi(&dpo, &by_cf, "verifica periodica", 0, 10).await.unwrap().persona_id, pid);
    // Unknown person: nothing, and nothing audited about anyone.
    let nobody = RegistroFilter { persona_id: "01900000-0000-7000-8000-000000000000".into(), ..Default::default() };
    assert_eq!(store.registro_accessi(&dpo, &nobody, "verifica periodica", 0, 10).await.unwrap().persona_id, "");
    // Others may not read it; a purpose is required.
    for who in [
        caller(),
        Caller { ufficio: None, roles: vec![Role::Amministratore], ..caller() },
        Caller { ufficio: Some("M01".into()), ..dpo.clone() },
    ] {
        assert!(matches!(store.registro_accessi(&who, &f, "verifica periodica", 0, 10).await, Err(CoreError::Denied(_))));
    }
    assert!(matches!(store.registro_accessi(&dpo, &f, "", 0, 10).await, Err(CoreError::Invalid(v)) if v[0].field == "purpose"));
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit WHERE action = 'registro' AND actor = 'dpo-1'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert!(n >= 3, "every consultation of a known person is audited ({n})");
    store.close().await;
}

on_both_backends!(
    concurrent_reads_each_commit_their_audit,
    read_fails_when_its_audit_cannot_commit,
    purpose_is_bounded_and_registered_purpose_stands,
    registro_shows_one_persons_rows_to_the_dpo
);

/// The SQLite file, its WAL and the folder the store creates are owner-only whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}/sigess.db", dir.display()))).await.unwrap();
    store.create(&caller(), persona(1)).await.unwrap();
    let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "data folder");
    assert_eq!(mode("sigess.db"), 0o600);
    assert_eq!(mode("sigess.db-wal"), 0o600);
    store.close().await;
}

/// Demo mode (hub tokens accepted at the edge) runs only on a store that began as a demo
/// store: seeding refuses a store holding data it did not seed.
#[tokio::test]
async fn demo_refuses_a_store_with_other_data() {
    let real = TestDb::sqlite("sigess_test.db");
    let store = open(&real).await;
    store.create(&caller(), persona(1)).await.unwrap();
    let err = core_cartella::demo::seed(&store, 1, 7).await.unwrap_err();
    assert!(matches!(err, CoreError::Denied(_)), "{err:?}");
    store.close().await;

    let demo = TestDb::sqlite("sigess_test.db");
    let store = open(&demo).await;
    let first = core_cartella::demo::seed(&store, 1, 7).await.unwrap();
    assert!(!first.already_seeded && first.persone > 0);
    store.create(&caller(), persona(1)).await.unwrap();
    assert!(core_cartella::demo::seed(&store, 1, 7).await.unwrap().already_seeded, "a demo store someone used stays a demo store");
    store.close().await;
}

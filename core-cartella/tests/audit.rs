//! Read audits, committed in groups shared by concurrent reads, on SQLite and PostgreSQL:
//! every read that returns data has its committed audit row, and a read whose audit row
//! cannot be committed returns an error instead of data.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cartella_proto::v1 as pb;
use common::Db;
use core_cartella::{
    CoreError,
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    record::Kind,
    store::{ListFilter, Page, Store, StoreOptions},
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

async fn open(db: &Db) -> Store {
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

async fn concurrent_reads_each_commit_their_audit(db: &Db) {
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

async fn read_fails_when_its_audit_cannot_commit(db: &Db) {
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

on_both_backends!(concurrent_reads_each_commit_their_audit, read_fails_when_its_audit_cannot_commit);

//! Merging two personas and undoing it, on both engines: every reference moves to the
//! survivor (column and body), households keep consistent members, the merged row is kept,
//! audit rows are written, and undoing moves back exactly what moved.
#![allow(clippy::unwrap_used)]

mod common;

use cartella_proto::v1::{
    Accesso, AreaUtenza, CanaleAccesso, Cartella, EsitoAccesso, MembroNucleo, Nucleo, Parentela, Persona, Sesso, StatoCartella,
};
use core_cartella::testkit::{TestBackend as Backend, TestDb};
use core_cartella::{
    CoreError,
    auth::{Caller, CallerKind, Role},
    record::Kind,
    store::{
        Page, Store, StoreOptions,
        revisione::{APERTA, ASSORBITA, Decisione, PERSONE_DIVERSE, Revisione, STESSA_PERSONA},
    },
};
use sqlx::Row;

fn caller() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "op-fusione".into(),
        ente: "H501".into(),
        ufficio: Some("M01".into()),
        roles: vec![Role::Operatore, Role::Anagrafe],
        purpose: "unificazione anagrafica".into(),
        request_id: "t".into(),
    }
}

async fn persona(store: &Store, cognome: &str) -> String {
    let p = Persona {
        cognome: cognome.into(),
        nome: "Anna".into(),
        sesso: Sesso::Femmina as i32,
        data_nascita: "1960-05-05".into(),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        ..Default::default()
    };
    store.create(&caller(), p).await.unwrap().meta.unwrap().id
}

async fn cartella(store: &Store, persona_id: &str) -> String {
    let c = Cartella {
        persona_id: persona_id.into(),
        area_utenza: AreaUtenza::Anziani as i32,
        stato: StatoCartella::Aperta as i32,
        data_apertura: "2024-01-10".into(),
        ..Default::default()
    };
    store.create(&caller(), c).await.unwrap().meta.unwrap().id
}

async fn nucleo(store: &Store, riferimento: &str, membro: &str) -> String {
    let n = Nucleo {
        persona_riferimento_id: riferimento.into(),
        membri: vec![MembroNucleo { persona_id: membro.into(), parentela: Parentela::Convivente as i32 }],
        ..Default::default()
    };
    store.create(&caller(), n).await.unwrap().meta.unwrap().id
}

async fn owner(store: &Store, table: &'static str, id: &str) -> String {
    let sql = match table {
        "cartella" => "SELECT persona_id FROM cartella WHERE id = $1",
        "accesso" => "SELECT persona_id FROM accesso WHERE id = $1",
        _ => "SELECT persona_id FROM nucleo WHERE id = $1",
    };
    sqlx::query(sql).bind(id.to_string()).fetch_one(store.pool()).await.unwrap().try_get(0).unwrap()
}

async fn members(store: &Store, nid: &str) -> Vec<String> {
    let rows = sqlx::query("SELECT persona_id FROM nucleo_membro WHERE nucleo_id = $1 ORDER BY persona_id")
        .bind(nid.to_string())
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.iter().map(|r| r.try_get(0).unwrap()).collect()
}

async fn merge_and_unmerge(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = Store::open(&StoreOptions { max_connections: 4, ..StoreOptions::new(&db.url) }).await.unwrap();
    let c = caller();
    let (p1, p2, p3) = (persona(&store, "Rossi").await, persona(&store, "Rosi").await, persona(&store, "Neri").await);
    let c1 = cartella(&store, &p1).await;
    let c2 = cartella(&store, &p2).await;
    let a2 = store
        .create(
            &c,
            Accesso {
                persona_id: p2.clone(),
                data: "2024-01-05".into(),
                canale: CanaleAccesso::Sportello as i32,
                esito: EsitoAccesso::Informazioni as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .meta
        .unwrap()
        .id;
    let n1 = nucleo(&store, &p3, &p2).await; // p2 a member
    let n2 = nucleo(&store, &p2, &p1).await; // p2 the reference, p1 already a member
    let outbox_before: i64 = sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(store.pool()).await.unwrap().try_get(0).unwrap();

    let f = store.merge_persone(&c, &p1, &p2).await.unwrap();
    assert!(matches!(store.get::<Persona>(&c, &p2, "").await, Err(CoreError::NotFound { .. })));
    assert_eq!(owner(&store, "cartella", &c2).await, p1);
    assert_eq!(store.get::<Cartella>(&c, &c2, "").await.unwrap().persona_id, p1, "the body moves with the column");
    assert_eq!(store.get::<Accesso>(&c, &a2, "").await.unwrap().persona_id, p1);
    assert_eq!(members(&store, &n1).await, vec![p1.clone()]);
    let n2_body = store.get::<Nucleo>(&c, &n2, "").await.unwrap();
    assert_eq!(n2_body.persona_riferimento_id, p1);
    assert_eq!(store.get::<Nucleo>(&c, &n1, "").await.unwrap().membri[0].persona_id, p1);
    assert_eq!(owner(&store, "cartella", &c1).await, p1);
    let outbox_after: i64 = sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(store.pool()).await.unwrap().try_get(0).unwrap();
    assert_eq!(
        outbox_after - outbox_before,
        6,
        "c2, a2, n2 (reference) and n1 (member) rewritten, each with an outbox row; the merged persona and the survivor one each"
    );
    // A moved record's body carries the version of its row: it can be updated at once.
    let moved = store.get::<Cartella>(&c, &c2, "").await.unwrap();
    let row_version: i64 = sqlx::query("SELECT version FROM cartella WHERE id = $1")
        .bind(c2.clone())
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!((moved.meta.as_ref().unwrap().version, row_version), (2, 2));
    assert_eq!(moved.meta.as_ref().unwrap().updated_by, "op-fusione");
    let mut note = moved.clone();
    note.operatore_responsabile = "op-m01-007".into();
    store.update(&c, note).await.unwrap();
    assert_eq!(store.get::<Persona>(&c, &p1, "").await.unwrap().meta.unwrap().version, 2, "the survivor has a new version");
    assert_eq!(store.audit_count(Kind::Persona, &p2, "merge").await.unwrap(), 1);
    assert_eq!(store.audit_count(Kind::Persona, &p1, "merge").await.unwrap(), 1);
    let list = store.fusioni(&c, &p1, &Page::default()).await.unwrap().0;
    assert_eq!((list.len(), list[0].fusa.as_str(), list[0].annullata()), (1, p2.as_str(), false));
    assert_eq!((list[0].id.as_str(), list[0].spostati), (f.id.as_str(), 4));
    assert!(matches!(store.merge_persone(&c, &p1, &p2).await, Err(CoreError::NotFound { .. })), "already merged");
    assert!(store.merge_persone(&c, &p1, &p1).await.is_err());

    // A cartella opened for the survivor after the merge stays with it on undo.
    let c3 = cartella(&store, &p1).await;
    let undone = store.unmerge_persone(&c, &f.id).await.unwrap();
    assert!(undone.annullata());
    let back = store.get::<Persona>(&c, &p2, "").await.unwrap();
    assert_eq!((back.cognome.as_str(), back.meta.unwrap().version), ("Rosi", 3), "created 1, merged 2, back 3");
    let c2_back = store.get::<Cartella>(&c, &c2, "").await.unwrap();
    assert_eq!((c2_back.persona_id.as_str(), c2_back.meta.unwrap().version), (p2.as_str(), 4), "moved, updated, moved back");
    assert_eq!(owner(&store, "cartella", &c2).await, p2);
    assert_eq!(owner(&store, "cartella", &c3).await, p1);
    assert_eq!(owner(&store, "cartella", &c1).await, p1);
    assert_eq!(store.get::<Accesso>(&c, &a2, "").await.unwrap().persona_id, p2);
    assert_eq!(members(&store, &n1).await, vec![p2.clone()]);
    assert_eq!(store.get::<Nucleo>(&c, &n2, "").await.unwrap().persona_riferimento_id, p2);
    let mut n2_members = members(&store, &n2).await;
    n2_members.sort();
    assert_eq!(n2_members, vec![p1.clone()], "p1 was a member of n2 before the merge and still is");
    assert_eq!(store.audit_count(Kind::Persona, &p2, "unmerge").await.unwrap(), 1);
    assert!(store.fusioni(&c, &p1, &Page::default()).await.unwrap().0[0].annullata());
    assert!(matches!(store.unmerge_persone(&c, &f.id).await, Err(CoreError::NotFound { .. })), "undone once");
    // Without role anagrafe nobody merges, even a writer.
    let writer = Caller { roles: vec![Role::Operatore], ..caller() };
    assert!(matches!(store.merge_persone(&writer, &p1, &p2).await, Err(CoreError::Denied(_))));
    store.close().await;
    db.drop_pg().await;
}

async fn review_queue(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = Store::open(&StoreOptions { max_connections: 4, ..StoreOptions::new(&db.url) }).await.unwrap();
    let c = caller();
    let (p1, p2, p3) = (persona(&store, "Rossi").await, persona(&store, "Rosi").await, persona(&store, "Russo").await);
    let c2 = cartella(&store, &p2).await;
    assert!(store.queue_review("H501", &p2, &p1, 0.72, "cognome: simile").await.unwrap());
    assert!(!store.queue_review("H501", &p1, &p2, 0.72, "cognome: simile").await.unwrap(), "queued once whatever the order");
    assert!(store.queue_review("H501", &p1, &p3, 0.55, "nome: uguale").await.unwrap());
    let q = store.revisioni(&c, "", &Page::default()).await.unwrap().0;
    assert_eq!(q.len(), 2);
    assert!((q[0].probabilita - 0.72).abs() < 1e-9, "most likely first");
    assert_eq!(q[0].evidenza, "cognome: simile");
    assert_eq!(q[0].ufficio_a.as_deref(), Some("M01"));
    // Paging by one keeps the order and ends.
    let first = store.revisioni(&c, "", &Page { size: 1, token: String::new() }).await.unwrap();
    assert_eq!(first.0[0].id, q[0].id);
    let second = store.revisioni(&c, "", &Page { size: 1, token: first.1 }).await.unwrap();
    assert_eq!((second.0[0].id.as_str(), second.1.as_str()), (q[1].id.as_str(), ""));
    // The survivor is the one chosen: p1, whatever its place in the pair.
    let same = store.decide_review(&c, &q[0].id, &Decisione::StessaPersona { superstite: p1.clone() }).await.unwrap();
    assert!(same.fusione_id.is_some());
    assert_eq!(store.get::<Cartella>(&c, &c2, "").await.unwrap().persona_id, p1);
    assert!(matches!(store.get::<Persona>(&c, &p2, "").await, Err(CoreError::NotFound { .. })));
    let other = store.revisioni(&c, "", &Page::default()).await.unwrap().0;
    assert_eq!(other.len(), 1);
    let wrong = Decisione::StessaPersona { superstite: p2.clone() };
    assert!(matches!(store.decide_review(&c, &other[0].id, &wrong).await, Err(CoreError::Invalid(_))), "not one of the pair");
    let diff = store.decide_review(&c, &other[0].id, &Decisione::PersoneDiverse).await.unwrap();
    assert_eq!(diff.stato, PERSONE_DIVERSE);
    assert_eq!(store.audit_count(Kind::Persona, &p3, "distinct").await.unwrap(), 1);
    assert!(store.revisioni(&c, "", &Page::default()).await.unwrap().0.is_empty());
    assert_eq!(store.revisioni(&c, PERSONE_DIVERSE, &Page::default()).await.unwrap().0.len(), 1);
    let again = Decisione::StessaPersona { superstite: p1.clone() };
    assert!(matches!(store.decide_review(&c, &other[0].id, &again).await, Err(CoreError::Conflict(_))));
    let outsider = Caller { ente: "F205".into(), ..caller() };
    assert!(matches!(store.decide_review(&outsider, &other[0].id, &again).await, Err(CoreError::NotFound { .. })));
    // Undoing the merge opens its pair again.
    store.unmerge_persone(&c, same.fusione_id.as_deref().unwrap()).await.unwrap();
    let reopened = store.revisioni(&c, "", &Page::default()).await.unwrap().0;
    assert_eq!((reopened.len(), reopened[0].id.as_str(), reopened[0].fusione_id.as_deref()), (1, q[0].id.as_str(), None));
    store.close().await;
    db.drop_pg().await;
}

/// Every pair of the ente, by id.
async fn pairs(store: &Store) -> Vec<(String, String, String, String, Option<String>)> {
    let rows =
        sqlx::query("SELECT id, persona_a, persona_b, stato, fusione_id FROM revisione ORDER BY id").fetch_all(store.pool()).await.unwrap();
    rows.iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap(), r.try_get(3).unwrap(), r.try_get(4).unwrap()))
        .collect()
}

fn ordered(x: &str, y: &str) -> (String, String) {
    if x <= y { (x.to_string(), y.to_string()) } else { (y.to_string(), x.to_string()) }
}

async fn queued(store: &Store, x: &str, y: &str) -> String {
    let (a, b) = ordered(x, y);
    sqlx::query("SELECT id FROM revisione WHERE persona_a = $1 AND persona_b = $2")
        .bind(a)
        .bind(b)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// The open pairs the queue shows, as unordered persona pairs.
async fn open_pairs(store: &Store) -> Vec<(String, String)> {
    let (list, _): (Vec<Revisione>, _) = store.revisioni(&caller(), "", &Page::default()).await.unwrap();
    let mut out: Vec<(String, String)> = list.iter().map(|r| ordered(&r.persona_a, &r.persona_b)).collect();
    out.sort();
    out
}

/// The merged persona's open pairs move onto the survivor: a pair of the two merged personas
/// closes as decided by the merge, a pair that repeats one the survivor already has collapses
/// into it, the others follow; undoing the merge puts all of them back.
async fn pairs_follow_merges(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = Store::open(&StoreOptions { max_connections: 4, ..StoreOptions::new(&db.url) }).await.unwrap();
    let c = caller();
    let s = persona(&store, "Rossi").await;
    let f = persona(&store, "Rosi").await;
    let (x, y, z) = (persona(&store, "Russo").await, persona(&store, "Rossini").await, persona(&store, "Neri").await);
    store.queue_review("H501", &f, &s, 0.6, "cognome: simile").await.unwrap();
    store.queue_review("H501", &f, &x, 0.7, "nome: uguale").await.unwrap();
    store.queue_review("H501", &s, &x, 0.5, "nome: uguale").await.unwrap();
    store.queue_review("H501", &y, &f, 0.65, "sesso: uguale").await.unwrap();
    store.queue_review("H501", &f, &z, 0.55, "sesso: uguale").await.unwrap();
    let (fs, fx, sx, fy, fz) = (
        queued(&store, &f, &s).await,
        queued(&store, &f, &x).await,
        queued(&store, &s, &x).await,
        queued(&store, &f, &y).await,
        queued(&store, &f, &z).await,
    );
    // Someone already decided that F and Z are two people: that pair is not moved.
    store.decide_review(&c, &fz, &Decisione::PersoneDiverse).await.unwrap();
    let before = pairs(&store).await;

    let m = store.merge_persone(&c, &s, &f).await.unwrap();
    assert_eq!(m.spostati, 0, "pairs are not counted as moved records");
    let mut want = vec![ordered(&s, &x), ordered(&s, &y)];
    want.sort();
    assert_eq!(open_pairs(&store).await, want, "every open pair names existing personas, none twice");
    let now = pairs(&store).await;
    assert_eq!(now.len(), before.len(), "no pair is deleted or added");
    let row = |id: &str| now.iter().find(|p| p.0 == id).unwrap().clone();
    assert_eq!((row(&fs).3, row(&fs).4), (STESSA_PERSONA.to_string(), Some(m.id.clone())), "the pair of the two is decided by the merge");
    assert_eq!((row(&fx).3, row(&fx).4), (ASSORBITA.to_string(), Some(m.id.clone())), "F–X collapses into S–X");
    assert_eq!((row(&sx).3.as_str(), row(&sx).4.as_deref()), (APERTA, None));
    let (a, b) = ordered(&s, &y);
    assert_eq!((row(&fy).1, row(&fy).2, row(&fy).3), (a, b, APERTA.to_string()), "F–Y follows F onto S");
    assert_eq!(row(&fz), before.iter().find(|p| p.0 == fz).unwrap().clone(), "a decided pair stays as decided");
    assert_eq!(store.revisioni(&c, ASSORBITA, &Page::default()).await.unwrap().0.len(), 1);
    // The moved pair can be decided and shows the survivor side by side.
    let detail = store.revisione(&c, &fy, "unificazione anagrafica").await.unwrap();
    assert!(detail.a.persona.is_some() && detail.b.persona.is_some(), "both personas of a moved pair exist");

    store.unmerge_persone(&c, &m.id).await.unwrap();
    assert_eq!(pairs(&store).await, before, "undoing the merge restores every pair as it was");
    let mut want = vec![ordered(&f, &s), ordered(&f, &x), ordered(&s, &x), ordered(&f, &y)];
    want.sort();
    assert_eq!(open_pairs(&store).await, want);

    // A moved pair decided after the merge keeps the personas it was decided on.
    let m = store.merge_persone(&c, &s, &f).await.unwrap();
    store.decide_review(&c, &fy, &Decisione::PersoneDiverse).await.unwrap();
    store.unmerge_persone(&c, &m.id).await.unwrap();
    let after = pairs(&store).await;
    let fy_row = after.iter().find(|p| p.0 == fy).unwrap();
    let (a, b) = ordered(&s, &y);
    assert_eq!((&fy_row.1, &fy_row.2, fy_row.3.as_str()), (&a, &b, PERSONE_DIVERSE));
    assert_eq!(after.iter().find(|p| p.0 == fx).unwrap().3, APERTA, "the collapsed pair is open again");
    assert_eq!(after.iter().find(|p| p.0 == fs).unwrap().3, APERTA);

    // Merging through the queue: the decided pair and the other pairs of the merged persona.
    let d = store.decide_review(&c, &fx, &Decisione::StessaPersona { superstite: x.clone() }).await.unwrap();
    let after = pairs(&store).await;
    let get = |id: &str| after.iter().find(|p| p.0 == id).unwrap().clone();
    assert_eq!((get(&fx).3, get(&fx).4), (STESSA_PERSONA.to_string(), d.fusione_id.clone()));
    let (a, b) = ordered(&f, &s);
    assert_eq!((get(&fs).1, get(&fs).2, get(&fs).3), (a.clone(), b.clone(), ASSORBITA.to_string()), "F–S would repeat S–X");
    store.unmerge_persone(&c, d.fusione_id.as_deref().unwrap()).await.unwrap();
    let after = pairs(&store).await;
    let fs_row = after.iter().find(|p| p.0 == fs).unwrap();
    assert_eq!((&fs_row.1, &fs_row.2, fs_row.3.as_str(), fs_row.4.as_deref()), (&a, &b, APERTA, None));
    assert_eq!(after.iter().find(|p| p.0 == fx).unwrap().3, APERTA, "the decided pair is open again");
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn pairs_follow_merges_sqlite() {
    pairs_follow_merges(Backend::Sqlite).await;
}

#[tokio::test]
async fn pairs_follow_merges_postgres() {
    pairs_follow_merges(Backend::Postgres).await;
}

#[tokio::test]
async fn review_sqlite() {
    review_queue(Backend::Sqlite).await;
}

#[tokio::test]
async fn review_postgres() {
    review_queue(Backend::Postgres).await;
}

#[tokio::test]
async fn fusione_sqlite() {
    merge_and_unmerge(Backend::Sqlite).await;
}

#[tokio::test]
async fn fusione_postgres() {
    merge_and_unmerge(Backend::Postgres).await;
}

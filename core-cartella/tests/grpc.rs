//! End-to-end tests of `cartella.v1` against a real server, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use cartella_proto::v1::{self as pb, valutazione::Scheda};
use common::Hub;
use core_cartella::testkit::TestDb;
use core_cartella::{auth::Role, domain::codice_fiscale::compose, record::Kind};
use tonic::Code;
use tonic_types::StatusExt;

fn persona(cognome: &str, nome: &str, day: u8) -> pb::Persona {
    pb::Persona {
        codice_fiscale: compose(cognome, nome, 1961, 5, day, false, "H501"),
        cognome: cognome.into(),
        nome: nome.into(),
        sesso: pb::Sesso::Maschio as i32,
        data_nascita: format!("1961-05-{day:02}"),
        luogo_nascita: "H501".into(),
        cittadinanza: "380".into(),
        residenza: Some(pb::Indirizzo {
            codice_nazione: "380".into(),
            codice_regione: "12".into(),
            codice_comune: "058091".into(),
            indirizzo: "Via Finta 10".into(),
            cap: "00153".into(),
        }),
        ..Default::default()
    }
}

fn id_of(meta: &Option<pb::Meta>) -> String {
    meta.as_ref().unwrap().id.clone()
}

fn violations(status: &tonic::Status) -> Vec<String> {
    status.get_details_bad_request().map(|b| b.field_violations.into_iter().map(|v| v.field).collect()).unwrap_or_default()
}

async fn count(db_store: &core_cartella::store::Store, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
        .fetch_one(db_store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// Creates persona + cartella in Municipio `u`; returns (persona id, cartella id).
async fn persona_with_cartella(hub: &Hub, u: &str, cognome: &str, day: u8) -> (String, String) {
    let mut c = hub.op(u).await;
    let p = c.create_persona(pb::CreatePersonaRequest { persona: Some(persona(cognome, "Mario", day)) }).await.unwrap().into_inner();
    let cart = c
        .create_cartella(pb::CreateCartellaRequest {
            cartella: Some(pb::Cartella {
                persona_id: id_of(&p.meta),
                area_utenza: pb::AreaUtenza::Anziani as i32,
                stato: pb::StatoCartella::Aperta as i32,
                data_apertura: "2026-01-10".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    (id_of(&p.meta), id_of(&cart.meta))
}

fn prestazione(cartella_id: &str) -> pb::Prestazione {
    pb::Prestazione {
        cartella_id: cartella_id.into(),
        codice_prestazione: "A1.01".into(),
        denominazione: "Assistenza domiciliare socio-assistenziale".into(),
        carattere: pb::CaratterePrestazione::Periodica as i32,
        prova_mezzi: pb::ProvaMezzi::Isee as i32,
        protocollo_domanda: "RC-2026-0001".into(),
        data_inizio: "2026-02-01".into(),
        data_fine: "2026-07-31".into(),
        importo_mensile: Some(40_000),
        quota_ente: Some(36_000),
        quota_utente: Some(4_000),
        dsu: Some(pb::Dsu {
            numero_protocollo: "INPS-ISEE-2026-00000001-A".into(),
            anno_protocollo: "2026".into(),
            data: "2026-01-15".into(),
        }),
        stato: pb::StatoPrestazione::Attiva as i32,
        ..Default::default()
    }
}

async fn crud_every_kind(db: &TestDb) {
    let hub = Hub::start(db).await;
    let mut c = hub.op("M01").await;

    // Persona: create, get, update, list, search.
    let p = c.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Rossi", "Mario", 3)) }).await.unwrap().into_inner();
    let pid = id_of(&p.meta);
    assert_eq!(p.meta.as_ref().unwrap().version, 1);
    assert_eq!(p.meta.as_ref().unwrap().ufficio, "M01");
    let got = c.get_persona(pb::GetRequest { id: pid.clone(), purpose: "verifica".into() }).await.unwrap().into_inner();
    assert_eq!(got, p);
    let mut changed = got.clone();
    changed.contatti = Some(pb::Contatti { telefono: "06 000000".into(), ..Default::default() });
    let updated = c.update_persona(pb::UpdatePersonaRequest { persona: Some(changed) }).await.unwrap().into_inner();
    assert_eq!(updated.meta.as_ref().unwrap().version, 2);
    assert_eq!(updated.contatti.as_ref().unwrap().telefono, "06 000000");
    let other = c.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Bianchi", "Mario", 4)) }).await.unwrap().into_inner();
    let list = c
        .list_persone(pb::ListPersoneRequest { page: Some(pb::Page { page_size: 1, page_token: String::new() }), ufficio: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.persone.len(), 1);
    assert!(!list.next_page_token.is_empty());
    let list2 = c
        .list_persone(pb::ListPersoneRequest {
            page: Some(pb::Page { page_size: 1, page_token: list.next_page_token }),
            ufficio: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list2.persone.len(), 1);
    assert!(list2.next_page_token.is_empty());
    let seen: HashSet<String> = list.persone.iter().chain(list2.persone.iter()).map(|x| id_of(&x.meta)).collect();
    assert_eq!(seen, HashSet::from([pid.clone(), id_of(&other.meta)]));
    let by_cf = c
        .search_persone(pb::SearchPersoneRequest { codice_fiscale: p.codice_fiscale.to_lowercase(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_cf.persone.iter().map(|x| id_of(&x.meta)).collect::<Vec<_>>(), std::slice::from_ref(&pid));
    let by_name = c.search_persone(pb::SearchPersoneRequest { cognome: "ros".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(by_name.persone.len(), 1);
    assert_eq!(by_name.persone[0].cognome, "Rossi");

    // Nucleo.
    let n = c
        .create_nucleo(pb::CreateNucleoRequest {
            nucleo: Some(pb::Nucleo {
                persona_riferimento_id: pid.clone(),
                membri: vec![pb::MembroNucleo { persona_id: id_of(&other.meta), parentela: pb::Parentela::Fratello as i32 }],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut n2 = c.get_nucleo(pb::GetRequest { id: id_of(&n.meta), ..Default::default() }).await.unwrap().into_inner();
    n2.note = "convivenza".into();
    c.update_nucleo(pb::UpdateNucleoRequest { nucleo: Some(n2) }).await.unwrap();
    let nuclei = c.list_nuclei(pb::ListNucleiRequest { persona_id: id_of(&other.meta), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(nuclei.nuclei.len(), 1);
    assert_eq!(nuclei.nuclei[0].note, "convivenza");

    // Accesso.
    let a = c
        .create_accesso(pb::CreateAccessoRequest {
            accesso: Some(pb::Accesso {
                persona_id: pid.clone(),
                data: "2026-01-09".into(),
                canale: pb::CanaleAccesso::Sportello as i32,
                segnalante: "spontaneo".into(),
                motivo: "richiesta di assistenza".into(),
                esito: pb::EsitoAccesso::PresaInCarico as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut a2 = c.get_accesso(pb::GetRequest { id: id_of(&a.meta), ..Default::default() }).await.unwrap().into_inner();
    a2.motivo = "richiesta di assistenza domiciliare".into();
    c.update_accesso(pb::UpdateAccessoRequest { accesso: Some(a2) }).await.unwrap();
    let accessi = c
        .list_accessi(pb::ListAccessiRequest {
            persona_id: pid.clone(),
            dal: "2026-01-01".into(),
            al: "2026-01-31".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accessi.accessi.len(), 1);
    let none = c
        .list_accessi(pb::ListAccessiRequest { persona_id: pid.clone(), dal: "2026-02-01".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(none.accessi.is_empty());

    // Cartella.
    let cart = c
        .create_cartella(pb::CreateCartellaRequest {
            cartella: Some(pb::Cartella {
                persona_id: pid.clone(),
                area_utenza: pb::AreaUtenza::DisabilitaNonAutosufficienza as i32,
                stato: pb::StatoCartella::Aperta as i32,
                data_apertura: "2026-01-10".into(),
                accesso_id: id_of(&a.meta),
                operatore_responsabile: "op-17".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let cid = id_of(&cart.meta);
    let mut cart2 = c.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    cart2.operatore_responsabile = "op-18".into();
    let cart3 = c.update_cartella(pb::UpdateCartellaRequest { cartella: Some(cart2) }).await.unwrap().into_inner();
    assert_eq!(cart3.operatore_responsabile, "op-18");
    let cartelle = c
        .list_cartelle(pb::ListCartelleRequest { area_utenza: pb::AreaUtenza::DisabilitaNonAutosufficienza as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cartelle.cartelle.iter().map(|x| id_of(&x.meta)).collect::<Vec<_>>(), std::slice::from_ref(&cid));
    let by_ufficio = c.list_persone(pb::ListPersoneRequest { ufficio: "M01".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(by_ufficio.persone.len(), 1, "only the persona with a cartella in M01");

    // Diario.
    let d = c
        .create_diario_entry(pb::CreateDiarioEntryRequest {
            entry: Some(pb::DiarioEntry {
                cartella_id: cid.clone(),
                data: "2026-01-12".into(),
                tipo: pb::TipoDiario::VisitaDomiciliare as i32,
                autore: "op-17".into(),
                testo: "Visita domiciliare: abitazione adeguata.".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.meta.as_ref().unwrap().ufficio, "M01", "children take the owner of their cartella");
    let mut d2 = c.get_diario_entry(pb::GetRequest { id: id_of(&d.meta), ..Default::default() }).await.unwrap().into_inner();
    d2.testo.push_str(" Seguira relazione.");
    c.update_diario_entry(pb::UpdateDiarioEntryRequest { entry: Some(d2) }).await.unwrap();
    assert_eq!(
        c.list_diario(pb::ListByCartellaRequest { cartella_id: cid.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .entries
            .len(),
        1
    );

    // Valutazione (SINA).
    let v = c
        .create_valutazione(pb::CreateValutazioneRequest {
            valutazione: Some(pb::Valutazione {
                cartella_id: cid.clone(),
                data: "2026-01-20".into(),
                valutatore: "UVM".into(),
                scheda: Some(Scheda::Sina(pb::Sina {
                    mobilita: 2,
                    attivita_vita_quotidiana: 2,
                    disturbi_comportamentali: 1,
                    area_reddituale: 2,
                    area_supporto: 2,
                    fonte_derivazione_valutazione: 1,
                    strumento_valutazione: 1,
                    necessita_interventi_sociali: vec!["A1.01".into()],
                    invalidita_civile: vec![2],
                    fonte_derivazione_invalidita: 1,
                    ..Default::default()
                })),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut v2 = c.get_valutazione(pb::GetRequest { id: id_of(&v.meta), ..Default::default() }).await.unwrap().into_inner();
    v2.note = "rivalutare tra sei mesi".into();
    c.update_valutazione(pb::UpdateValutazioneRequest { valutazione: Some(v2) }).await.unwrap();
    assert_eq!(
        c.list_valutazioni(pb::ListByCartellaRequest { cartella_id: cid.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .valutazioni
            .len(),
        1
    );

    // PAI.
    let pai = c
        .create_pai(pb::CreatePaiRequest {
            pai: Some(pb::Pai {
                cartella_id: cid.clone(),
                data_inizio: "2026-02-01".into(),
                stato: pb::StatoPai::Attivo as i32,
                obiettivi: vec![pb::ObiettivoPai { descrizione: "Permanenza a domicilio".into(), ..Default::default() }],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut pai2 = c.get_pai(pb::GetRequest { id: id_of(&pai.meta), ..Default::default() }).await.unwrap().into_inner();
    pai2.verifiche.push(pb::VerificaPai { data: "2026-03-01".into(), esito: "obiettivo in corso".into(), autore: "op-17".into() });
    c.update_pai(pb::UpdatePaiRequest { pai: Some(pai2) }).await.unwrap();
    assert_eq!(
        c.list_pai(pb::ListByCartellaRequest { cartella_id: cid.clone(), ..Default::default() }).await.unwrap().into_inner().pai.len(),
        1
    );

    // Prestazione.
    let pr = c.create_prestazione(pb::CreatePrestazioneRequest { prestazione: Some(prestazione(&cid)) }).await.unwrap().into_inner();
    let mut pr2 = c.get_prestazione(pb::GetRequest { id: id_of(&pr.meta), ..Default::default() }).await.unwrap().into_inner();
    pr2.stato = pb::StatoPrestazione::Conclusa as i32;
    let pr3 = c.update_prestazione(pb::UpdatePrestazioneRequest { prestazione: Some(pr2) }).await.unwrap().into_inner();
    assert_eq!(pr3.meta.as_ref().unwrap().version, 2);
    let prs = c
        .list_prestazioni(pb::ListPrestazioniRequest { codice_prestazione: "a1.01".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prs.prestazioni.len(), 1);
    assert_eq!(prs.prestazioni[0].stato, pb::StatoPrestazione::Conclusa as i32);

    // Statistics are aggregates; this single person sits below the threshold and is suppressed.
    let mut s = hub.stats(&hub.token(None, &[Role::Statistica])).await;
    let r = s.get_riepilogo(pb::GetRiepilogoRequest { anno: 2026 }).await.unwrap().into_inner();
    assert_eq!(r.prestazioni.len(), 1);
    assert!(r.prestazioni[0].soppressa);
    assert_eq!(r.prestazioni[0].spesa_centesimi, 0);
    hub.stop().await;
}

async fn duplicate_codice_fiscale(db: &TestDb) {
    let hub = Hub::start(db).await;
    let mut m1 = hub.op("M01").await;
    let mut m2 = hub.op("M02").await;
    let p = m1.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Verdi", "Mario", 5)) }).await.unwrap().into_inner();
    let err = m2.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Verdi", "Mario", 5)) }).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(err.get_details_resource_info().unwrap().resource_name, id_of(&p.meta));
    assert!(!err.message().contains(&p.codice_fiscale), "no personal data in errors");
    assert_eq!(count(&hub.store, "persona").await, 1);
    // Municipio II opens its own cartella on the existing person.
    m2.create_cartella(pb::CreateCartellaRequest {
        cartella: Some(pb::Cartella {
            persona_id: id_of(&p.meta),
            area_utenza: pb::AreaUtenza::PovertaEsclusioneSociale as i32,
            stato: pb::StatoCartella::Aperta as i32,
            data_apertura: "2026-03-01".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let seen = m2.get_persona(pb::GetRequest { id: id_of(&p.meta), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(seen.cognome, "Verdi");
    hub.stop().await;
}

async fn tenancy(db: &TestDb) {
    let hub = Hub::start(db).await;
    let (pid, cid) = persona_with_cartella(&hub, "M01", "Neri", 6).await;
    let mut m1 = hub.op("M01").await;
    let mut m2 = hub.op("M02").await;
    let denied = |r: Result<tonic::Response<pb::Cartella>, tonic::Status>| assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    denied(m2.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await);
    let cart = m1.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    let mut attempt = cart.clone();
    attempt.operatore_responsabile = "intruso".into();
    denied(m2.update_cartella(pb::UpdateCartellaRequest { cartella: Some(attempt.clone()) }).await);
    assert_eq!(m2.get_persona(pb::GetRequest { id: pid.clone(), ..Default::default() }).await.unwrap_err().code(), Code::PermissionDenied);
    let child = m2.create_diario_entry(pb::CreateDiarioEntryRequest {
        entry: Some(pb::DiarioEntry {
            cartella_id: cid.clone(),
            data: "2026-02-01".into(),
            tipo: 1,
            autore: "x".into(),
            testo: "y".into(),
            ..Default::default()
        }),
    });
    assert_eq!(child.await.unwrap_err().code(), Code::PermissionDenied);
    assert!(m2.list_cartelle(pb::ListCartelleRequest::default()).await.unwrap().into_inner().cartelle.is_empty());
    assert!(m2.list_prestazioni(pb::ListPrestazioniRequest::default()).await.unwrap().into_inner().prestazioni.is_empty());

    // Only the owner may share; a read-only sharing basis opens reads, not writes.
    let share = |scrittura| pb::CreateCondivisioneRequest {
        condivisione: Some(pb::Condivisione {
            cartella_id: cid.clone(),
            ufficio_destinatario: "M02".into(),
            base_giuridica: "trasferimento di residenza".into(),
            scrittura,
            ..Default::default()
        }),
    };
    assert_eq!(m2.create_condivisione(share(true)).await.unwrap_err().code(), Code::PermissionDenied);
    m1.create_condivisione(share(false)).await.unwrap();
    let read = m2.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(read, cart);
    m2.get_persona(pb::GetRequest { id: pid.clone(), ..Default::default() }).await.unwrap();
    denied(m2.update_cartella(pb::UpdateCartellaRequest { cartella: Some(attempt.clone()) }).await);
    m1.create_condivisione(share(true)).await.unwrap();
    let written = m2.update_cartella(pb::UpdateCartellaRequest { cartella: Some(attempt) }).await.unwrap().into_inner();
    assert_eq!(written.meta.as_ref().unwrap().ufficio, "M01", "sharing does not move ownership");

    // An expired sharing basis opens nothing.
    let (_, cid2) = persona_with_cartella(&hub, "M01", "Gialli", 7).await;
    m1.create_condivisione(pb::CreateCondivisioneRequest {
        condivisione: Some(pb::Condivisione {
            cartella_id: cid2.clone(),
            ufficio_destinatario: "M03".into(),
            base_giuridica: "progetto congiunto concluso".into(),
            valida_fino_al: "2020-12-31".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let mut m3 = hub.op("M03").await;
    denied(m3.get_cartella(pb::GetRequest { id: cid2, ..Default::default() }).await);

    // Roles: consultazione reads but does not write; statistica reads no records.
    let mut reader = hub.cartella(&hub.token(Some("M01"), &[Role::Consultazione])).await;
    let cart = reader.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    denied(reader.update_cartella(pb::UpdateCartellaRequest { cartella: Some(cart) }).await);
    let mut stat = hub.cartella(&hub.token(None, &[Role::Statistica])).await;
    denied(stat.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await);
    // The whole ente (e.g. the Social Policy Department) reads every Municipio.
    let mut dept = hub.cartella(&hub.token(None, &[Role::Consultazione])).await;
    dept.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap();

    // No token, a token of another key, a garbage token.
    let mut anon = hub.cartella("").await;
    assert_eq!(
        anon.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let dir = tempfile::tempdir().unwrap();
    let forger = core_cartella::auth::TokenSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
    let forged = forger
        .mint(
            &core_cartella::auth::Caller {
                kind: core_cartella::auth::CallerKind::Operatore,
                subject: "x".into(),
                ente: "H501".into(),
                ufficio: None,
                roles: vec![Role::Operatore],
                purpose: String::new(),
                request_id: String::new(),
            },
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let mut f = hub.cartella(&forged).await;
    assert_eq!(f.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap_err().code(), Code::Unauthenticated);
    let mut g = hub.cartella("not.a.token").await;
    assert_eq!(g.get_cartella(pb::GetRequest { id: cid, ..Default::default() }).await.unwrap_err().code(), Code::Unauthenticated);
    hub.stop().await;
}

async fn stale_version(db: &TestDb) {
    let hub = Hub::start(db).await;
    let (_, cid) = persona_with_cartella(&hub, "M04", "Marrone", 8).await;
    let mut a = hub.op("M04").await;
    let mut b = hub.op("M04").await;
    let seen_a = a.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    let mut seen_b = b.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    seen_b.operatore_responsabile = "op-b".into();
    b.update_cartella(pb::UpdateCartellaRequest { cartella: Some(seen_b) }).await.unwrap();
    let mut stale = seen_a;
    stale.operatore_responsabile = "op-a".into();
    let err = a.update_cartella(pb::UpdateCartellaRequest { cartella: Some(stale) }).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let now = a.get_cartella(pb::GetRequest { id: cid, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(now.operatore_responsabile, "op-b");
    assert_eq!(now.meta.unwrap().version, 2);
    hub.stop().await;
}

async fn reads_are_audited(db: &TestDb) {
    let hub = Hub::start(db).await;
    let (pid, cid) = persona_with_cartella(&hub, "M05", "Viola", 9).await;
    let mut c = hub.op("M05").await;
    assert_eq!(hub.store.audit_count(Kind::Cartella, &cid, "read").await.unwrap(), 0);
    assert_eq!(hub.store.audit_count(Kind::Cartella, &cid, "create").await.unwrap(), 1);
    c.get_cartella(pb::GetRequest { id: cid.clone(), purpose: "colloquio".into() }).await.unwrap();
    c.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(hub.store.audit_count(Kind::Cartella, &cid, "read").await.unwrap(), 2);
    c.list_cartelle(pb::ListCartelleRequest::default()).await.unwrap();
    assert_eq!(hub.store.audit_count(Kind::Cartella, &cid, "read").await.unwrap(), 3);
    c.search_persone(pb::SearchPersoneRequest { cognome: "Viola".into(), ..Default::default() }).await.unwrap();
    assert_eq!(hub.store.audit_count(Kind::Persona, &pid, "read").await.unwrap(), 1);
    // A refused read leaves no trace of data but is not counted as a read either.
    let mut m6 = hub.op("M06").await;
    m6.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!(hub.store.audit_count(Kind::Cartella, &cid, "read").await.unwrap(), 3);
    use sqlx::Row;
    let row = sqlx::query("SELECT actor, purpose, ufficio FROM audit WHERE action = 'read' AND kind = 'cartella' ORDER BY id LIMIT 1")
        .fetch_one(hub.store.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("actor").unwrap(), "op-M05");
    assert_eq!(row.try_get::<String, _>("purpose").unwrap(), "colloquio");
    hub.stop().await;
}

async fn malformed_input(db: &TestDb) {
    let hub = Hub::start(db).await;
    let mut c = hub.op("M07").await;
    let mut bad = persona("Blu", "Mario", 10);
    bad.codice_fiscale.replace_range(15..16, if bad.codice_fiscale.ends_with('A') { "B" } else { "A" });
    bad.luogo_nascita = "ROMA".into();
    bad.data_nascita = "1961-02-30".into();
    bad.residenza.as_mut().unwrap().codice_comune.clear();
    let err = c.create_persona(pb::CreatePersonaRequest { persona: Some(bad.clone()) }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violations(&err);
    fields.sort();
    assert_eq!(fields, ["persona.codice_fiscale", "persona.data_nascita", "persona.luogo_nascita", "persona.residenza.codice_comune"]);
    assert!(!err.message().contains(&bad.codice_fiscale));
    assert_eq!(count(&hub.store, "persona").await, 0);
    assert_eq!(count(&hub.store, "outbox").await, 0);
    let err = c.create_persona(pb::CreatePersonaRequest { persona: None }).await.unwrap_err();
    assert_eq!(violations(&err), ["persona"]);

    // An invalid update changes nothing already stored.
    let (_, cid) = persona_with_cartella(&hub, "M07", "Blu", 11).await;
    let pr = c.create_prestazione(pb::CreatePrestazioneRequest { prestazione: Some(prestazione(&cid)) }).await.unwrap().into_inner();
    let mut broken = pr.clone();
    broken.importo_mensile = None;
    broken.data_fine = "2027-01-31".into();
    broken.quota_ente = Some(1);
    let err = c.update_prestazione(pb::UpdatePrestazioneRequest { prestazione: Some(broken) }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violations(&err);
    fields.sort();
    assert_eq!(fields, ["prestazione.data_fine", "prestazione.importo_mensile"]);
    let still = c.get_prestazione(pb::GetRequest { id: id_of(&pr.meta), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(still, pr);

    // References must exist; page tokens must be ours; kinds must be known.
    let err = c
        .create_prestazione(pb::CreatePrestazioneRequest { prestazione: Some(prestazione("0190d7c4-0000-7000-8000-000000000000")) })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["prestazione.cartella_id"]);
    let err = c
        .list_persone(pb::ListPersoneRequest {
            page: Some(pb::Page { page_size: 10, page_token: "'; DROP TABLE persona; --".into() }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c.get_cartella(pb::GetRequest { id: "does-not-exist".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c.search_persone(pb::SearchPersoneRequest { cognome: "%".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut f = hub.feed(&hub.token(Some("M07"), &[Role::Operatore])).await;
    let err = f.watch_changes(pb::WatchChangesRequest { kinds: vec!["segreti".into()], ..Default::default() }).await.unwrap_err();
    assert_eq!(violations(&err), ["kinds[0]"]);
    let err = f.watch_changes(pb::WatchChangesRequest { cursor: "x".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(violations(&err), ["cursor"]);
    hub.stop().await;
}

async fn next_events(stream: &mut tonic::Streaming<pb::ChangeEvent>, n: usize) -> Vec<pb::ChangeEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await.expect("event in time").unwrap().unwrap();
        out.push(ev);
    }
    out
}

async fn watch_changes_resumes(db: &TestDb) {
    let hub = Hub::start(db).await;
    let token = hub.token(Some("M08"), &[Role::Operatore]);
    let mut c = hub.op("M08").await;
    let mut created = Vec::new();
    for day in 1..=5 {
        let p = c.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Feed", "Mario", day)) }).await.unwrap().into_inner();
        created.push(id_of(&p.meta));
    }
    // Another Municipio's changes are not in this caller's feed.
    persona_with_cartella(&hub, "M09", "Altrove", 12).await;

    let mut feed = hub.feed(&token).await;
    let mut stream = feed.watch_changes(pb::WatchChangesRequest::default()).await.unwrap().into_inner();
    let first = next_events(&mut stream, 3).await;
    drop(stream);
    // Writes while disconnected, including an update.
    for day in 6..=8 {
        let p = c.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Feed", "Mario", day)) }).await.unwrap().into_inner();
        created.push(id_of(&p.meta));
    }
    let mut p0 = c.get_persona(pb::GetRequest { id: created[0].clone(), ..Default::default() }).await.unwrap().into_inner();
    p0.nome = "Mariano".into();
    c.update_persona(pb::UpdatePersonaRequest { persona: Some(p0) }).await.unwrap();

    let mut stream =
        feed.watch_changes(pb::WatchChangesRequest { cursor: first[2].cursor.clone(), kinds: vec![] }).await.unwrap().into_inner();
    let rest = next_events(&mut stream, 6).await;
    // Live: a change made while the stream is open arrives too.
    let live = c.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Feed", "Mario", 9)) }).await.unwrap().into_inner();
    let tail = next_events(&mut stream, 1).await;
    let all: Vec<_> = first.iter().chain(rest.iter()).chain(tail.iter()).collect();
    let ids: Vec<String> = all.iter().map(|e| e.id.clone()).collect();
    let mut expected = created.clone();
    expected.push(created[0].clone());
    expected.push(id_of(&live.meta));
    assert_eq!(ids, expected, "no gap, no repeat, in commit order");
    assert_eq!(all[8].operazione, pb::Operazione::Update as i32);
    assert_eq!(all[8].version, 2);
    assert!(all.iter().all(|e| e.ufficio == "M08"));
    // Filtering by kind.
    let mut only =
        feed.watch_changes(pb::WatchChangesRequest { cursor: String::new(), kinds: vec!["cartella".into()] }).await.unwrap().into_inner();
    let got = tokio::time::timeout(std::time::Duration::from_millis(1500), only.message()).await;
    assert!(got.is_err(), "no cartella changes in M08");
    hub.stop().await;
}

/// Many concurrent writers while a follower streams: it must see every change exactly once.
async fn feed_under_concurrency(db: &TestDb) {
    let hub = Hub::start(db).await;
    let token = hub.token(None, &[Role::Consultazione]);
    let mut feed = hub.feed(&token).await;
    let mut stream = feed.watch_changes(pb::WatchChangesRequest::default()).await.unwrap().into_inner();
    let writers = 8;
    let per = 15u8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut c = hub.op(&format!("M{:02}", w + 1)).await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for day in 1..=per {
                let cognome = ["Abate", "Bruni", "Conti", "Dini", "Elmi", "Fabbri", "Galli", "Leoni"][w];
                let p = c
                    .create_persona(pb::CreatePersonaRequest { persona: Some(persona(cognome, "Mario", day)) })
                    .await
                    .unwrap()
                    .into_inner();
                ids.push(id_of(&p.meta));
            }
            ids
        }));
    }
    let mut expected = HashSet::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    let events = next_events(&mut stream, expected.len()).await;
    let seen: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(seen.len(), expected.len(), "no repeats");
    let extra = tokio::time::timeout(std::time::Duration::from_millis(800), stream.message()).await;
    assert!(extra.is_err(), "nothing beyond the writes");
    hub.stop().await;
}

async fn restart_keeps_data(db: &TestDb) {
    let hub = Hub::start(db).await;
    let (pid, cid) = persona_with_cartella(&hub, "M10", "Durevole", 13).await;
    let mut c = hub.op("M10").await;
    let pr = c.create_prestazione(pb::CreatePrestazioneRequest { prestazione: Some(prestazione(&cid)) }).await.unwrap().into_inner();
    let (signer, keydir) = hub.stop().await;
    let hub = Hub::start_with(db, signer, keydir).await;
    let mut c = hub.op("M10").await;
    assert_eq!(c.get_persona(pb::GetRequest { id: pid, ..Default::default() }).await.unwrap().into_inner().cognome, "Durevole");
    assert_eq!(c.get_prestazione(pb::GetRequest { id: id_of(&pr.meta), ..Default::default() }).await.unwrap().into_inner(), pr);
    hub.stop().await;
}

/// Tenancy at its edges, with two enti (Roma Capitale H501 and Milano F205): an ufficio may
/// not filter by another ufficio's cartelle, an accesso makes the anagrafica readable but not
/// writable, the codice fiscale is unique within an ente and never reveals another ente's
/// persona, and the feed brings a persona's updates to every ufficio that sees the persona.
async fn tenancy_edges_two_enti(db: &TestDb) {
    use core_cartella::auth::{Caller, CallerKind};
    let hub = Hub::start(db).await;
    let caller = |ente: &str, ufficio: &str| Caller {
        kind: CallerKind::Operatore,
        subject: format!("op-{ente}-{ufficio}"),
        ente: ente.into(),
        ufficio: Some(ufficio.into()),
        roles: vec![Role::Operatore],
        purpose: "test".into(),
        request_id: String::new(),
    };
    let (pid, _) = persona_with_cartella(&hub, "M01", "Confine", 9).await;
    let mut m1 = hub.op("M01").await;
    let mut m2 = hub.op("M02").await;
    let p = m1.get_persona(pb::GetRequest { id: pid.clone(), ..Default::default() }).await.unwrap().into_inner();

    // Milano registers its own record for the same codice fiscale; Roma's id stays unknown to it.
    let milano_token = hub.signer.mint(&caller("F205", "Z1"), std::time::Duration::from_secs(600)).unwrap();
    let mut milano = hub.cartella(&milano_token).await;
    let mut theirs = p.clone();
    theirs.meta = None;
    let created = milano.create_persona(pb::CreatePersonaRequest { persona: Some(theirs.clone()) }).await;
    let created = created.expect("a codice fiscale is unique within an ente, not across enti").into_inner();
    assert_ne!(id_of(&created.meta), pid);
    assert_eq!(created.meta.as_ref().unwrap().ente, "F205");
    let again = milano.create_persona(pb::CreatePersonaRequest { persona: Some(theirs) }).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(again.get_details_resource_info().unwrap().resource_name, id_of(&created.meta), "its own persona's id, not Roma's");
    let found = milano
        .search_persone(pb::SearchPersoneRequest { codice_fiscale: p.codice_fiscale.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.persone.iter().map(|x| id_of(&x.meta)).collect::<Vec<_>>(), [id_of(&created.meta)]);
    assert_eq!(
        milano.get_persona(pb::GetRequest { id: pid.clone(), ..Default::default() }).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // M02 records an accesso for the person: it reads the anagrafica, it does not change it.
    m2.create_accesso(pb::CreateAccessoRequest {
        accesso: Some(pb::Accesso {
            persona_id: pid.clone(),
            data: "2026-01-09".into(),
            canale: pb::CanaleAccesso::Sportello as i32,
            segnalante: "spontaneo".into(),
            motivo: "richiesta di informazioni".into(),
            esito: pb::EsitoAccesso::PresaInCarico as i32,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let seen = m2.get_persona(pb::GetRequest { id: pid.clone(), ..Default::default() }).await.unwrap().into_inner();
    let mut changed = seen.clone();
    changed.contatti = Some(pb::Contatti { telefono: "06 111111".into(), ..Default::default() });
    let refused = m2.update_persona(pb::UpdatePersonaRequest { persona: Some(changed) }).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "an accesso is no presa in carico");

    // M02 may not learn which of the people it knows are in care at M01.
    let by_other = m2.list_persone(pb::ListPersoneRequest { ufficio: "M01".into(), page: None }).await.unwrap_err();
    assert_eq!(by_other.code(), Code::PermissionDenied);
    let own = m1.list_persone(pb::ListPersoneRequest { ufficio: "M01".into(), page: None }).await.unwrap().into_inner();
    assert!(own.persone.iter().any(|x| id_of(&x.meta) == pid));

    // M01 updates the anagrafica: M02, which follows the person through its accesso, hears of
    // it; Milano does not.
    let mut upd = p.clone();
    upd.contatti = Some(pb::Contatti { telefono: "06 222222".into(), ..Default::default() });
    m1.update_persona(pb::UpdatePersonaRequest { persona: Some(upd) }).await.unwrap();
    let persona_updates = |c: Caller| {
        let store = hub.store.clone();
        let pid = pid.clone();
        async move {
            let changes = store.changes_after(&c, Default::default(), &[Kind::Persona], 1000).await.unwrap();
            changes.iter().filter(|ch| ch.id == pid && ch.op == 2).count()
        }
    };
    // On PostgreSQL the feed serves a transaction once every older one has ended: wait for it.
    let mut seen = 0;
    for _ in 0..50 {
        seen = persona_updates(caller("H501", "M02")).await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "the update reaches an ufficio that sees the persona");
    assert_eq!(persona_updates(caller("F205", "Z1")).await, 0, "and no other ente");
    assert_eq!(persona_updates(caller("H501", "M03")).await, 0, "nor an ufficio that does not know the person");
    hub.stop().await;
}

/// A sharing basis without an end lasts a year; the owning ufficio revokes it (audited, in the
/// feed), after which the recipient reads nothing; the recipient cannot revoke it.
async fn condivisione_revoked_and_bounded(db: &TestDb) {
    let hub = Hub::start(db).await;
    let (_, cid) = persona_with_cartella(&hub, "M01", "Revoca", 11).await;
    let mut m1 = hub.op("M01").await;
    let mut m2 = hub.op("M02").await;
    let share = pb::Condivisione {
        cartella_id: cid.clone(),
        ufficio_destinatario: "M02".into(),
        base_giuridica: "presa in carico congiunta".into(),
        scrittura: true,
        ..Default::default()
    };
    let s = m1.create_condivisione(pb::CreateCondivisioneRequest { condivisione: Some(share.clone()) }).await.unwrap().into_inner();
    let today = time::OffsetDateTime::now_utc().date();
    let expected = core_cartella::domain::codes::format_date(today + time::Duration::days(365));
    assert_eq!(s.valida_fino_al, expected, "no end given: one year");
    let forged = pb::Condivisione { revocata_il: "2026-01-01T00:00:00Z".into(), ..share };
    let err = m1.create_condivisione(pb::CreateCondivisioneRequest { condivisione: Some(forged) }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    m2.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap();

    let sid = id_of(&s.meta);
    let revoke = |id: &str, motivo: &str| pb::RevokeCondivisioneRequest { id: id.into(), motivo: motivo.into() };
    assert_eq!(m2.revoke_condivisione(revoke(&sid, "non più necessaria")).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(m1.revoke_condivisione(revoke(&sid, "")).await.unwrap_err().code(), Code::InvalidArgument, "a reason is required");
    let long = "x".repeat(201);
    assert_eq!(m1.revoke_condivisione(revoke(&sid, &long)).await.unwrap_err().code(), Code::InvalidArgument);
    let r = m1.revoke_condivisione(revoke(&sid, "progetto concluso")).await.unwrap().into_inner();
    assert!(!r.revocata_il.is_empty());
    assert_eq!(r.motivo_revoca, "progetto concluso");
    assert_eq!(r.meta.as_ref().unwrap().version, 2);
    assert!(r.valida_fino_al < core_cartella::domain::codes::format_date(today), "{}", r.valida_fino_al);
    assert_eq!(m2.get_cartella(pb::GetRequest { id: cid.clone(), ..Default::default() }).await.unwrap_err().code(), Code::PermissionDenied);
    let again = m1.revoke_condivisione(revoke(&sid, "di nuovo")).await.unwrap().into_inner();
    assert_eq!(again, r, "revoking a revoked sharing changes nothing");
    assert_eq!(hub.store.audit_count(Kind::Condivisione, &sid, "revoke").await.unwrap(), 1);
    let listed =
        m1.list_condivisioni(pb::ListByCartellaRequest { cartella_id: cid.clone(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(listed.condivisioni, std::slice::from_ref(&r), "the record keeps when and why");
    let mut milano = hub
        .cartella(
            &hub.signer
                .mint(
                    &core_cartella::auth::Caller {
                        kind: core_cartella::auth::CallerKind::Operatore,
                        subject: "op-milano".into(),
                        ente: "F205".into(),
                        ufficio: None,
                        roles: vec![Role::Operatore],
                        purpose: "test".into(),
                        request_id: String::new(),
                    },
                    std::time::Duration::from_secs(600),
                )
                .unwrap(),
        )
        .await;
    assert_eq!(
        milano.revoke_condivisione(revoke(&sid, "altro ente")).await.unwrap_err().code(),
        Code::NotFound,
        "another ente's sharing does not exist for it"
    );
    hub.stop().await;
}

on_both_backends!(
    condivisione_revoked_and_bounded,
    tenancy_edges_two_enti,
    crud_every_kind,
    duplicate_codice_fiscale,
    tenancy,
    stale_version,
    reads_are_audited,
    malformed_input,
    watch_changes_resumes,
    feed_under_concurrency,
    restart_keeps_data,
);

/// Stopping the server ends open feed streams with UNAVAILABLE (the follower resumes from
/// its cursor elsewhere) instead of waiting for every follower to leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_open_feeds() {
    let db = TestDb::sqlite("sigess_test.db");
    let hub = Hub::start(&db).await;
    let mut c = hub.op("M08").await;
    c.create_persona(pb::CreatePersonaRequest { persona: Some(persona("Feed", "Mario", 1)) }).await.unwrap();
    let mut feed = hub.feed(&hub.token(Some("M08"), &[Role::Operatore])).await;
    let mut stream = feed.watch_changes(pb::WatchChangesRequest::default()).await.unwrap().into_inner();
    assert_eq!(next_events(&mut stream, 1).await.len(), 1, "the stream is open and caught up");
    // Hub::stop waits up to 10 s for the server: a stream holding it open would exceed this.
    tokio::time::timeout(std::time::Duration::from_secs(5), hub.stop()).await.expect("the server stops with a feed open");
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message()).await.expect("the stream ends");
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
}

/// Server reflection answers in both versions clients speak: v1 (grpcurl) and v1alpha
/// (Python's grpcio-reflection and other common tools), listing the same services.
#[tokio::test]
async fn reflection_v1_and_v1alpha() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::{v1, v1alpha};
    let db = TestDb::sqlite("sigess_test.db");
    let hub = Hub::start(&db).await;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", hub.addr)).unwrap().connect().await.unwrap();

    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("v1alpha is served")
        .into_inner();
    let Some(Ok(v1alpha::ServerReflectionResponse {
        message_response: Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)),
        ..
    })) = alpha.next().await
    else {
        panic!("no service list from v1alpha");
    };
    // Each version lists itself; the rest must agree.
    let own = |names: Vec<String>| names.into_iter().filter(|n| !n.starts_with("grpc.reflection.")).collect::<HashSet<String>>();
    let alpha_names = own(list.service.into_iter().map(|s| s.name).collect());
    assert!(alpha_names.contains("cartella.v1.CartellaService"), "{alpha_names:?}");

    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut one = v1::server_reflection_client::ServerReflectionClient::new(ch)
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(v1::ServerReflectionResponse {
        message_response: Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)),
        ..
    })) = one.next().await
    else {
        panic!("no service list from v1");
    };
    assert_eq!(own(list.service.into_iter().map(|s| s.name).collect()), alpha_names, "both versions list the same services");
    hub.stop().await;
}

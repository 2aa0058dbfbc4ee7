//! The SIUSS adapter against the adapter contract's shared suite, and its decisions against
//! an in-memory flow ledger that follows the port's contract (decide under one lock, what
//! stands = the latest flow when it is an insertion): insertion, no repeat, cancellation
//! then insertion, a failed cancellation holding its insertion, revocation, and how ledger
//! failures are classified. All people are fakes.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use adapter_contract::{
    Adapter, Change, Outcome, Planned, PrestazioneView, kind, pb,
    testkit::{MemorySource, check_contract},
};
use common::fake_cf;
use futures::future::BoxFuture;
use siuss::{
    adapter::{Delivery, Plan, SiussAdapter},
    from_core::EnteSiuss,
    ledger::{Applied, Decision, Intent, Ledger, LedgerError, RULE_HELD, Standing},
    model::Data,
};

fn oggi() -> Option<Data> {
    Data::new(2026, 11, 23).ok()
}

fn ente() -> EnteSiuss {
    EnteSiuss {
        codice: "H501".into(),
        denominazione: "Roma Capitale".into(),
        indirizzo: "H501".into(),
        cf_operatore: fake_cf("PRTRTR", 1970, 1, 1, false, "H501"),
    }
}

fn meta(id: &str, ente: &str, version: i64) -> Option<pb::Meta> {
    Some(pb::Meta { id: id.into(), ente: ente.into(), ufficio: "M01".into(), version, ..Default::default() })
}

fn persona(id: &str, cf: bool) -> pb::Persona {
    pb::Persona {
        meta: meta(id, "H501", 1),
        codice_fiscale: if cf { fake_cf("TSTPRV", 1950, 3, 12, true, "H501") } else { String::new() },
        cognome: "Testa".into(),
        nome: "Prova".into(),
        sesso: pb::Sesso::Femmina as i32,
        data_nascita: "1950-03-12".into(),
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

fn view(id: &str, ente: &str, persona_id: &str, cartella_id: &str, cf: bool) -> PrestazioneView {
    PrestazioneView {
        persona: persona(persona_id, cf),
        cartella: pb::Cartella {
            meta: meta(cartella_id, ente, 1),
            persona_id: persona_id.into(),
            area_utenza: pb::AreaUtenza::PovertaEsclusioneSociale as i32,
            stato: pb::StatoCartella::Aperta as i32,
            data_apertura: "2025-01-10".into(),
            ..Default::default()
        },
        prestazione: pb::Prestazione {
            meta: meta(id, ente, 1),
            cartella_id: cartella_id.into(),
            codice_prestazione: "A1.01".into(),
            denominazione: "Assistenza domiciliare socio-assistenziale".into(),
            carattere: pb::CaratterePrestazione::Periodica as i32,
            prova_mezzi: pb::ProvaMezzi::Nessuna as i32,
            protocollo_domanda: "RC-M01-100001".into(),
            data_inizio: "2025-02-01".into(),
            data_fine: "2025-12-31".into(),
            importo_mensile: Some(25_000),
            minuti_servizio_mensili: Some(600),
            stato: pb::StatoPrestazione::Attiva as i32,
            ..Default::default()
        },
        sina: None,
        sinba: None,
    }
}

fn change(k: &str, id: &str, persona_id: &str, cartella_id: &str) -> Change {
    Change {
        cursor: format!("1.{id}"),
        kind: k.into(),
        id: id.into(),
        op: 2,
        version: 1,
        ente: "H501".into(),
        ufficio: "M01".into(),
        persona_id: persona_id.into(),
        cartella_id: cartella_id.into(),
        occurred_at: "2026-11-23T10:00:00Z".into(),
    }
}

/// p1 sendable, p2 of a person without codice fiscale, p3 revoked, p9 of another ente.
fn source() -> MemorySource {
    let mut s = MemorySource::default();
    s.prestazioni.insert("p1".into(), view("p1", "H501", "pe1", "c1", true));
    s.prestazioni.insert("p2".into(), view("p2", "H501", "pe2", "c2", false));
    let mut p3 = view("p3", "H501", "pe1", "c1", true);
    p3.prestazione.stato = pb::StatoPrestazione::Revocata as i32;
    s.prestazioni.insert("p3".into(), p3);
    s.prestazioni.insert("p9".into(), view("p9", "F205", "pe1", "c1", true));
    s
}

#[derive(Clone, Debug)]
struct Flow {
    id: String,
    tipo: String,
    op: String,
    impronta: String,
    snapshot: Vec<u8>,
    xml: String,
}

/// A ledger in memory keeping the port's contract. `fail` makes every apply fail so.
#[derive(Default)]
struct MemoryLedger {
    flows: Mutex<BTreeMap<String, Vec<Flow>>>,
    notes: Mutex<BTreeMap<String, (String, Vec<String>)>>,
    fail: Mutex<Option<LedgerError>>,
    n: Mutex<u32>,
}

impl MemoryLedger {
    fn ops(&self, id: &str) -> Vec<String> {
        self.flows.lock().unwrap().get(id).map(|v| v.iter().map(|f| f.op.clone()).collect()).unwrap_or_default()
    }
}

impl Ledger for MemoryLedger {
    fn apply(&self, intent: Intent) -> BoxFuture<'_, Result<Applied, LedgerError>> {
        Box::pin(async move {
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            let mut all = self.flows.lock().unwrap();
            let list = all.entry(intent.prestazione_id.clone()).or_default();
            let standing = list.last().filter(|f| f.op == "I").map(|f| Standing {
                id_flusso: f.id.clone(),
                tipo: f.tipo.clone(),
                impronta: f.impronta.clone(),
                snapshot: f.snapshot.clone(),
            });
            let mut gaps: Vec<String> = intent.gaps.iter().map(|g| g.rule.clone()).collect();
            let (emit, nota, held) = match intent.flows.decide(standing.as_ref()) {
                Decision::Emit { flows, nota } => (flows, nota.unwrap_or(intent.nota), false),
                Decision::Hold { reason, gap } => {
                    gaps.push(gap.rule);
                    (Vec::new(), reason, true)
                }
            };
            let mut written = Vec::new();
            for e in emit {
                let mut n = self.n.lock().unwrap();
                *n += 1;
                let id = format!("{}.{}.20261123.{:07}", intent.ente, e.tipo, *n);
                let xml = (e.xml)(&id).map_err(LedgerError::Refused)?;
                written.push(Flow {
                    id,
                    tipo: e.tipo.into(),
                    op: e.operazione.into(),
                    impronta: e.impronta,
                    snapshot: e.snapshot,
                    xml: String::from_utf8(xml).unwrap(),
                });
            }
            let ids = written.iter().map(|f| f.id.clone()).collect();
            list.extend(written);
            self.notes.lock().unwrap().insert(intent.prestazione_id, (nota.clone(), gaps));
            Ok(if held { Applied::Held(nota) } else { Applied::Emitted(ids) })
        })
    }
}

fn adapter(ledger: Arc<MemoryLedger>) -> SiussAdapter {
    SiussAdapter::new(ente(), ledger).with_clock(oggi)
}

const PERSONAL: &[&str] = &["Testa", "TESTA", "Prova", "PROVA"];

fn personal() -> Vec<String> {
    let mut p: Vec<String> = PERSONAL.iter().map(|s| s.to_string()).collect();
    p.push(fake_cf("TSTPRV", 1950, 3, 12, true, "H501"));
    p
}

#[tokio::test]
async fn shared_contract_suite() {
    let a = adapter(Arc::default());
    let fixtures = [
        change(kind::PRESTAZIONE, "p1", "pe1", "c1"),
        change(kind::PRESTAZIONE, "p2", "pe2", "c2"),
        change(kind::PRESTAZIONE, "p3", "pe1", "c1"),
        change(kind::PRESTAZIONE, "p9", "pe1", "c1"),
        change(kind::PRESTAZIONE, "gone", "pe1", "c1"),
        change(kind::CARTELLA, "c1", "pe1", ""),
        change(kind::VALUTAZIONE, "v1", "pe1", "c1"),
        change(kind::PERSONA, "pe1", "", ""),
    ];
    let p = personal();
    let refs: Vec<&str> = p.iter().map(String::as_str).collect();
    let v = check_contract(&a, &source(), &fixtures, &refs).await;
    assert!(v.is_empty(), "{v:?}");
}

async fn planned(a: &SiussAdapter, s: &MemorySource, c: &Change) -> Vec<Planned<Delivery>> {
    let input = a.load(c, s).await.unwrap();
    a.map(c, input).unwrap()
}

#[tokio::test]
async fn load_and_map_plan_one_delivery_per_prestazione_of_the_ente() {
    let a = adapter(Arc::default());
    let s = source();
    // A change of the person reaches p1 and p3 (p9 belongs to another ente); keys name the
    // prestazione, its version and the fingerprint, "revocata" or "gaps".
    let p = planned(&a, &s, &change(kind::PERSONA, "pe1", "", "")).await;
    let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let Plan::Insert { impronta, .. } = &p[0].delivery.plan else { panic!("p1 is sendable: {:?}", p[0].delivery) };
    assert_eq!(keys[0], format!("siuss:p1:1:{impronta}"));
    assert_eq!(keys[1], "siuss:p3:1:revocata");
    assert_eq!(p[1].delivery.plan, Plan::Revoke);
    let g = planned(&a, &s, &change(kind::CARTELLA, "c2", "pe2", "")).await;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].key, "siuss:p2:1:gaps");
    assert_eq!(g[0].delivery.gaps.iter().map(|x| x.rule.as_str()).collect::<Vec<_>>(), ["DATO_MANCANTE"]);
    // A valutazione reaches its cartella's prestazioni; a change of another ente nothing.
    assert_eq!(planned(&a, &s, &change(kind::VALUTAZIONE, "v1", "pe1", "c1")).await.len(), 2);
    let mut other = change(kind::PRESTAZIONE, "p9", "pe1", "c1");
    other.ente = "F205".into();
    assert!(planned(&a, &s, &other).await.is_empty());
    assert!(planned(&a, &s, &change(kind::PRESTAZIONE, "p9", "pe1", "c1")).await.is_empty());
    // The person is the subject of every change touching them.
    assert_eq!(a.subject(&change(kind::PERSONA, "pe1", "", "")), "persona:pe1");
    assert_eq!(a.subject(&change(kind::PRESTAZIONE, "p1", "pe1", "c1")), "persona:pe1");
    // A misconfigured ente: every prestazione has the ente's gaps and nothing to send.
    let bad = SiussAdapter::new(EnteSiuss { cf_operatore: String::new(), ..ente() }, Arc::new(MemoryLedger::default())).with_clock(oggi);
    let p = planned(&bad, &s, &change(kind::PRESTAZIONE, "p1", "pe1", "c1")).await;
    assert_eq!((p[0].delivery.plan.clone(), p[0].key.as_str()), (Plan::Nothing, "siuss:p1:1:gaps"));
    assert!(!p[0].delivery.gaps.is_empty());
    // Debug of a delivery shows no personal data.
    let dbg = format!("{:?}", planned(&a, &s, &change(kind::PRESTAZIONE, "p1", "pe1", "c1")).await);
    assert!(personal().iter().all(|x| !dbg.contains(x.as_str())), "{dbg}");
}

async fn deliver_all(a: &SiussAdapter, s: &MemorySource, c: &Change) -> Vec<Outcome> {
    let mut out = Vec::new();
    for p in planned(a, s, c).await {
        out.push(a.deliver(&p).await);
    }
    out
}

#[tokio::test]
async fn insertion_then_cancellation_and_new_insertion() {
    let ledger = Arc::new(MemoryLedger::default());
    let a = adapter(ledger.clone());
    let mut s = source();
    let c1 = change(kind::PRESTAZIONE, "p1", "pe1", "c1");
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1"), ["I"]);
    // The same again: already at INPS, nothing new.
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1"), ["I"]);
    // Changed: the cancellation of what was inserted (from its snapshot), then the new one.
    let v = s.prestazioni.get_mut("p1").unwrap();
    v.prestazione.importo_mensile = Some(30_000);
    v.prestazione.meta = meta("p1", "H501", 2);
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1"), ["I", "C", "I"]);
    let flows = ledger.flows.lock().unwrap()["p1"].clone();
    assert!(flows[1].xml.contains("TipoOperazione=\"C\"") && flows[1].xml.contains("ImportoMensile=\"250.00\""), "{}", flows[1].xml);
    assert!(flows[2].xml.contains("ImportoMensile=\"300.00\""));
    assert!(flows[1].snapshot.is_empty() && !flows[2].snapshot.is_empty());
    // Revoked: only the cancellation.
    let v = s.prestazioni.get_mut("p1").unwrap();
    v.prestazione.stato = pb::StatoPrestazione::Revocata as i32;
    v.prestazione.meta = meta("p1", "H501", 3);
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1"), ["I", "C", "I", "C"]);
    assert_eq!(ledger.notes.lock().unwrap()["p1"].0, "prestazione revocata");
    // Nothing stands any more: revoked again, nothing.
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1").len(), 4);
}

#[tokio::test]
async fn failed_cancellation_holds_the_insertion() {
    let ledger = Arc::new(MemoryLedger::default());
    let a = adapter(ledger.clone());
    let mut s = source();
    let c1 = change(kind::PRESTAZIONE, "p1", "pe1", "c1");
    deliver_all(&a, &s, &c1).await;
    // The standing insertion's snapshot no longer reads.
    let good = {
        let mut f = ledger.flows.lock().unwrap();
        std::mem::replace(&mut f.get_mut("p1").unwrap()[0].snapshot, vec![0xff, 0x01])
    };
    s.prestazioni.get_mut("p1").unwrap().prestazione.importo_mensile = Some(30_000);
    let out = deliver_all(&a, &s, &c1).await;
    let [Outcome::Permanent(r)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(r.code, RULE_HELD);
    assert!(personal().iter().all(|x| !r.message.contains(x.as_str())), "{r}");
    assert_eq!(ledger.ops("p1"), ["I"], "neither the C nor the new I");
    let (nota, gaps) = ledger.notes.lock().unwrap()["p1"].clone();
    assert!(nota.contains("cancellazione") && gaps == [RULE_HELD], "{nota} {gaps:?}");
    // The cause fixed: the next apply emits the cancellation, then the insertion.
    ledger.flows.lock().unwrap().get_mut("p1").unwrap()[0].snapshot = good;
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1"), ["I", "C", "I"]);
    assert!(ledger.notes.lock().unwrap()["p1"].1.is_empty());
}

#[tokio::test]
async fn sinba_standing_is_replaced_without_cancellation() {
    let ledger = Arc::new(MemoryLedger::default());
    let a = adapter(ledger.clone());
    let s = source();
    // A SINBA insertion stands (written by hand: its tipo is what matters here).
    ledger.flows.lock().unwrap().insert(
        "p1".into(),
        vec![Flow {
            id: "H501.SINBA.20261122.0000001".into(),
            tipo: "SINBA".into(),
            op: "I".into(),
            impronta: "0".into(),
            snapshot: Vec::new(),
            xml: String::new(),
        }],
    );
    assert_eq!(deliver_all(&a, &s, &change(kind::PRESTAZIONE, "p1", "pe1", "c1")).await, [Outcome::Delivered]);
    assert_eq!(ledger.ops("p1"), ["I", "I"]);
    assert!(ledger.notes.lock().unwrap()["p1"].0.contains("SINBA"));
}

#[tokio::test]
async fn ledger_failures_are_classified() {
    let ledger = Arc::new(MemoryLedger::default());
    let a = adapter(ledger.clone());
    let s = source();
    let c1 = change(kind::PRESTAZIONE, "p1", "pe1", "c1");
    *ledger.fail.lock().unwrap() = Some(LedgerError::Unavailable("down".into()));
    assert!(matches!(deliver_all(&a, &s, &c1).await.as_slice(), [Outcome::Retry { .. }]));
    *ledger.fail.lock().unwrap() = Some(LedgerError::Refused("flusso I non scritto: 1 violazioni".into()));
    let out = deliver_all(&a, &s, &c1).await;
    assert!(matches!(out.as_slice(), [Outcome::Permanent(r)] if r.code == "FLUSSO_RIFIUTATO"), "{out:?}");
    *ledger.fail.lock().unwrap() = None;
    assert_eq!(deliver_all(&a, &s, &c1).await, [Outcome::Delivered]);
    // An unavailable store while loading is retried.
    let down = MemorySource { fail: Some(adapter_contract::SourceError::Unavailable("x".into())), ..s };
    assert!(matches!(a.load(&c1, &down).await, Err(Outcome::Retry { .. })));
}

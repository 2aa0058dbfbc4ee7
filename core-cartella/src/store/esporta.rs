//! The streaming read behind the SIUSS portal export: an ente's prestazioni in
//! (persona, prestazione) order, a page at a time, with the person, the cartella and its
//! latest SINA/SINBA of each, and one read-audit row per person committed before a page is
//! handed over.
//!
//! On a SQLite file the pages are read by a thread of their own on a read-only connection,
//! so the read does not wait on sqlx's connection thread row by row (handing each row to the
//! async side cost a third of the export's time); a few pages share one read transaction
//! (one snapshot), and writes of the running hub go on meanwhile (WAL). The audit rows go through
//! the store's group commit. On PostgreSQL (and in-memory SQLite) pages are read with
//! [`Store::siuss_export_page`], one repeatable-read snapshot per page.
//!
//! Pages are produced ahead of the consumer through bounded channels (at most
//! [`AHEAD`] pages waiting), so memory does not grow with the ente.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use prost::Message;
use rusqlite::{OpenFlags, OptionalExtension, Row, params};
use tokio::sync::mpsc;

use super::{
    Store, audit_log,
    flussi::{ExportKey, RigaExport},
    now,
};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::Kind,
};

/// Pages read ahead of the consumer in each channel of the pipeline.
pub const AHEAD: usize = 4;

/// Purpose written in the audit rows of the export.
pub const SCOPO_EXPORT: &str = "esportazione SIUSS per il portale INPS";

/// The pages of an export, in order. Dropping it stops the read.
#[derive(Debug)]
pub struct ExportStream {
    rx: mpsc::Receiver<Result<Vec<RigaExport>>>,
}

impl ExportStream {
    /// The next page (never empty), after its audit rows are committed; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<RigaExport>>> {
        self.rx.recv().await.transpose()
    }
}

/// A page as read from SQLite, still encoded: decoding happens in the next stage, while the
/// page's audit rows are being committed, so reading and decoding overlap.
struct Letta {
    /// (index into `persone`, index into `cartelle`, prestazione body)
    righe: Vec<(usize, usize, Vec<u8>)>,
    /// (persona id, body), in page order.
    persone: Vec<(String, Vec<u8>)>,
    cartelle: Vec<CartellaGrezza>,
}

/// A cartella's body with its latest SINA and SINBA bodies.
type CartellaGrezza = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

impl Letta {
    fn decodifica(self) -> Result<Vec<RigaExport>> {
        let persone = self
            .persone
            .iter()
            .map(|(_, b)| decodifica::<cartella_proto::v1::Persona>(Some(b), "persona").map(|p| Arc::new(p.unwrap_or_default())))
            .collect::<Result<Vec<_>>>()?;
        let cartelle = self
            .cartelle
            .iter()
            .map(|(c, sina, sinba)| {
                Ok((
                    Arc::new(decodifica::<cartella_proto::v1::Cartella>(Some(c), "cartella")?.unwrap_or_default()),
                    decodifica(sina.as_deref(), "sina_body")?.map(Arc::new),
                    decodifica(sinba.as_deref(), "sinba_body")?.map(Arc::new),
                ))
            })
            .collect::<Result<Vec<CartellaLetta>>>()?;
        self.righe
            .into_iter()
            .map(|(pe, ca, body)| {
                let (cartella, sina, sinba) = &cartelle[ca];
                Ok(RigaExport {
                    persona: Arc::clone(&persone[pe]),
                    cartella: Arc::clone(cartella),
                    prestazione: decodifica(Some(&body), "body")?.unwrap_or_default(),
                    sina: sina.clone(),
                    sinba: sinba.clone(),
                })
            })
            .collect()
    }
}

impl Store {
    /// Starts the export read of the caller's ente, `page` prestazioni per page. The caller
    /// must be ente-wide and allowed to read.
    pub fn siuss_export_stream(&self, caller: &Caller, page: u32) -> Result<ExportStream> {
        if caller.ufficio.is_some() || !caller.can_read() {
            return Err(CoreError::Denied("the SIUSS export needs an ente-wide caller allowed to read"));
        }
        let page = page.max(1);
        let (tx, rx) = mpsc::channel(AHEAD);
        match self.sqlite_file.clone() {
            Some(path) => {
                let (lette_tx, lette_rx) = mpsc::channel::<Result<Letta>>(AHEAD);
                let ente = caller.ente.clone();
                std::thread::Builder::new()
                    .name("siuss-export-read".into())
                    .spawn(move || {
                        if let Err(e) = leggi_sqlite(&path, &ente, page, &lette_tx) {
                            let _ = lette_tx.blocking_send(Err(e));
                        }
                    })
                    .map_err(|e| CoreError::Internal(format!("cannot start the export reader: {e}")))?;
                tokio::spawn(audita(self.clone(), caller.clone(), lette_rx, tx));
            }
            None => {
                tokio::spawn(pagine_sqlx(self.clone(), caller.clone(), page, tx));
            }
        }
        Ok(ExportStream { rx })
    }
}

/// Commits each page's audit rows while decoding the page, then hands the page on.
async fn audita(store: Store, caller: Caller, mut rx: mpsc::Receiver<Result<Letta>>, tx: mpsc::Sender<Result<Vec<RigaExport>>>) {
    while let Some(letta) = rx.recv().await {
        let out = match letta {
            Ok(letta) => {
                let (at, _) = now();
                let ids: Vec<&str> = letta.persone.iter().map(|(id, _)| id.as_str()).collect();
                let rows = audit_log::rows(&caller, &at, "read", Kind::Persona, &ids, SCOPO_EXPORT);
                let reads = Arc::clone(&store.reads);
                let committed = tokio::spawn(async move { reads.commit(rows).await });
                let righe = letta.decodifica();
                match committed.await {
                    Ok(Ok(())) => righe,
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(CoreError::Internal(format!("audit of the export page: {e}"))),
                }
            }
            Err(e) => Err(e),
        };
        let failed = out.is_err();
        if tx.send(out).await.is_err() || failed {
            return;
        }
    }
}

/// The page loop over sqlx, for PostgreSQL and in-memory SQLite.
async fn pagine_sqlx(store: Store, caller: Caller, page: u32, tx: mpsc::Sender<Result<Vec<RigaExport>>>) {
    let mut key = ExportKey::default();
    loop {
        let (righe, last) = match store.siuss_export_page(&caller, &key, page).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let full = righe.len() as u32 == page;
        if !righe.is_empty() && tx.send(Ok(righe)).await.is_err() {
            return;
        }
        match last {
            Some(k) if full => key = k,
            _ => return,
        }
    }
}

fn sqlite_err(e: rusqlite::Error) -> CoreError {
    CoreError::Internal(format!("export read: {e}"))
}

/// A TEXT column without copying it.
fn text<'r>(r: &'r Row<'_>, i: usize) -> Result<&'r str> {
    r.get_ref(i).map_err(sqlite_err)?.as_str().map_err(|e| CoreError::Internal(format!("export read: column {i}: {e}")))
}

/// A BLOB column (or NULL) without copying it.
fn blob<'r>(r: &'r Row<'_>, i: usize) -> Result<Option<&'r [u8]>> {
    r.get_ref(i).map_err(sqlite_err)?.as_blob_or_null().map_err(|e| CoreError::Internal(format!("export read: column {i}: {e}")))
}

/// Decodes a record's protobuf body (or NULL); shared with the sqlx reads of `flussi`.
pub(super) fn decodifica<M: Message + Default>(b: Option<&[u8]>, col: &str) -> Result<Option<M>> {
    match b {
        Some(b) => M::decode(b).map(Some).map_err(|_| CoreError::Internal(format!("undecodable {col}"))),
        None => Ok(None),
    }
}

const PRESTAZIONI: &str = "SELECT id, persona_id, cartella_id, body FROM prestazione \
     WHERE ente = ?1 AND (persona_id, id) > (?2, ?3) ORDER BY persona_id, id LIMIT ?4";

/// Pages read in one read transaction (one snapshot) on SQLite.
const PAGINE_PER_LETTURA: u32 = 16;

/// A decoded cartella with its latest SINA and SINBA.
type CartellaLetta =
    (Arc<cartella_proto::v1::Cartella>, Option<Arc<cartella_proto::v1::Valutazione>>, Option<Arc<cartella_proto::v1::Valutazione>>);

/// Reads every page, [`PAGINE_PER_LETTURA`] pages per read transaction, and sends them;
/// returns when done, on an error, or when the receiver is gone.
fn leggi_sqlite(path: &PathBuf, ente: &str, page: u32, tx: &mpsc::Sender<Result<Letta>>) -> Result<()> {
    let conn = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sqlite_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite_err)?;
    let mut prestazioni = conn.prepare(PRESTAZIONI).map_err(sqlite_err)?;
    // A person and a cartella are looked up by id (one seek each) as the page names them,
    // instead of walking the page's key range again for each table.
    let mut persona_q = conn.prepare("SELECT body FROM persona WHERE id = ?1").map_err(sqlite_err)?;
    let mut cartella_q = conn
        .prepare(&format!("SELECT c.body, {} FROM cartella c WHERE c.id = ?1", super::flussi::ULTIME_VALUTAZIONI))
        .map_err(sqlite_err)?;
    let mut after = ExportKey::default();
    let mut pagina = 0u32;
    loop {
        // A read transaction spans PAGINE_PER_LETTURA pages. Between them the hub's writes
        // (the export's own audit rows included) can be checkpointed, which a transaction
        // held for the whole export would prevent, growing the WAL; within them the page
        // cache is kept (SQLite empties a reader's cache when it starts a transaction after
        // another connection wrote).
        if pagina.is_multiple_of(PAGINE_PER_LETTURA) {
            conn.execute_batch("BEGIN").map_err(sqlite_err)?;
        }
        pagina += 1;
        let mut letta = Letta { righe: Vec::with_capacity(page as usize), persone: Vec::new(), cartelle: Vec::new() };
        // Cartelle of this page by id (a person's prestazioni may belong to several).
        let mut cartelle: HashMap<String, usize> = HashMap::new();
        let mut last_id = String::new();
        {
            let mut it = prestazioni.query(params![ente, after.persona_id, after.prestazione_id, i64::from(page)]).map_err(sqlite_err)?;
            while let Some(r) = it.next().map_err(sqlite_err)? {
                let persona_id = text(r, 1)?;
                if letta.persone.last().is_none_or(|(p, _)| p != persona_id) {
                    let body: Vec<u8> = persona_q
                        .query_row([persona_id], |r| r.get(0))
                        .optional()
                        .map_err(sqlite_err)?
                        .ok_or_else(|| CoreError::Internal("prestazione without its persona".into()))?;
                    letta.persone.push((persona_id.to_string(), body));
                }
                let cartella_id = text(r, 2)?;
                let ca = match cartelle.get(cartella_id) {
                    Some(i) => *i,
                    None => {
                        let c = cartella_q
                            .query_row([cartella_id], |c| Ok((c.get(0)?, c.get(1)?, c.get(2)?)))
                            .optional()
                            .map_err(sqlite_err)?
                            .ok_or_else(|| CoreError::Internal("prestazione without its cartella".into()))?;
                        letta.cartelle.push(c);
                        cartelle.insert(cartella_id.to_string(), letta.cartelle.len() - 1);
                        letta.cartelle.len() - 1
                    }
                };
                let body = blob(r, 3)?.unwrap_or_default().to_vec();
                letta.righe.push((letta.persone.len() - 1, ca, body));
                last_id.clear();
                last_id.push_str(text(r, 0)?);
            }
        }
        let full = letta.righe.len() as u32 == page;
        if !full || pagina.is_multiple_of(PAGINE_PER_LETTURA) {
            conn.execute_batch("COMMIT").map_err(sqlite_err)?;
        }
        let Some((persona_id, _)) = letta.persone.last() else {
            break;
        };
        let last = ExportKey { persona_id: persona_id.clone(), prestazione_id: last_id };
        if tx.blocking_send(Ok(letta)).is_err() {
            return Ok(());
        }
        if !full {
            break;
        }
        after = last;
    }
    Ok(())
}

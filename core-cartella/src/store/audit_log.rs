//! Audit rows, and the group commit of read audits.
//!
//! A read must not return data before its audit row is durable, but one commit per read caps
//! reads at the database's commit rate. Readers therefore hand their rows to [`ReadAudits`]
//! and wait: a worker gathers whatever rows are queued (at most [`MAX_ROWS`]), writes them
//! with one multi-row INSERT, commits, and tells every reader of the batch the outcome. A
//! few batches may be committing at once (see `Store::open`); while they are, the next one
//! fills up, so under load many reads share one commit, and with a single reader a batch is
//! just that reader's rows. Rows a reader has handed over are committed even if the reader
//! goes away before the answer.
use std::{borrow::Cow, error::Error as StdError, fmt, sync::Arc};

use sqlx::{AnyPool, error::DatabaseError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::sql::Q;
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::Kind,
};

/// Most rows one INSERT carries: 10 bound parameters each, so at most 5,000 parameters, well
/// under SQLite's (32,766) and PostgreSQL's (65,535) limits. A page of a list (at most 500
/// records) fits in one statement.
pub(crate) const MAX_ROWS: usize = 500;

/// Readers' requests waiting for the worker; a full queue makes readers wait to enqueue.
const QUEUE: usize = 1024;

/// One row of the audit trail.
#[derive(Clone, Debug)]
pub(crate) struct AuditRow {
    at: String,
    actor_kind: &'static str,
    actor: String,
    ente: String,
    ufficio: Option<String>,
    action: String,
    kind: &'static str,
    record_id: String,
    purpose: String,
    request_id: String,
}

/// The rows recording that `caller` did `action` on the records `ids` of `kind`. An empty
/// `purpose` falls back to the purpose the caller declared for the session.
pub(crate) fn rows(caller: &Caller, at: &str, action: &str, kind: Kind, ids: &[&str], purpose: &str) -> Vec<AuditRow> {
    let purpose = if purpose.is_empty() { caller.purpose.as_str() } else { purpose };
    let actor_kind = caller.kind.as_str();
    ids.iter()
        .map(|id| AuditRow {
            at: at.to_string(),
            actor_kind,
            actor: caller.subject.clone(),
            ente: caller.ente.clone(),
            ufficio: caller.ufficio.clone(),
            action: action.to_string(),
            kind: kind.name(),
            record_id: (*id).to_string(),
            purpose: purpose.to_string(),
            request_id: caller.request_id.clone(),
        })
        .collect()
}

/// One INSERT of all `rows`; callers keep it to [`MAX_ROWS`] rows unless they know the
/// parameter count stays within the backend's limit.
pub(crate) fn insert(rows: &[AuditRow]) -> Q {
    let mut q = Q::new("INSERT INTO audit (at, actor_kind, actor, ente, ufficio, action, kind, record_id, purpose, request_id) VALUES ");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        // Values repeated across rows (the same caller, time, purpose) are bound once.
        let shared = |q: &mut Q, v: &str| {
            q.push(", ").bind_shared(Some(v));
        };
        q.push("(").bind_shared(Some(&r.at));
        shared(&mut q, r.actor_kind);
        shared(&mut q, &r.actor);
        shared(&mut q, &r.ente);
        q.push(", ").bind_shared(r.ufficio.as_deref());
        shared(&mut q, &r.action);
        shared(&mut q, r.kind);
        q.push(", ").bind_text(&r.record_id);
        shared(&mut q, &r.purpose);
        shared(&mut q, &r.request_id);
        q.push(")");
    }
    q
}

type Outcome = Result<(), Arc<sqlx::Error>>;

struct Pending {
    rows: Vec<AuditRow>,
    done: oneshot::Sender<Outcome>,
}

enum Msg {
    Rows(Pending),
    /// Commit what is queued, refuse anything later, and answer once all batches are done.
    Stop(oneshot::Sender<()>),
}

/// The group committer of read audits of one store. Its worker ends when the store is
/// closed ([`ReadAudits::stop`]) or when every handle to it is dropped.
#[derive(Debug)]
pub(crate) struct ReadAudits {
    tx: mpsc::Sender<Msg>,
}

impl ReadAudits {
    /// Starts the worker on the current tokio runtime, with at most `in_flight` batches
    /// being committed at once (each on its own connection of `pool`).
    pub(crate) fn start(pool: AnyPool, in_flight: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx, in_flight.max(1)));
        Self { tx }
    }

    /// Returns once `rows` are committed, or with the error that prevented it.
    pub(crate) async fn commit(&self, rows: Vec<AuditRow>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.tx.send(Msg::Rows(Pending { rows, done })).await.map_err(|_| CoreError::Store(sqlx::Error::PoolClosed))?;
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CoreError::Store(for_one_reader(&e))),
            // The worker was dropped with the batch (its runtime is shutting down).
            Err(_) => Err(CoreError::Store(sqlx::Error::WorkerCrashed)),
        }
    }

    /// Commits what is queued and waits for every batch in flight; later reads fail.
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.tx.send(Msg::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Msg>, in_flight: usize) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut stops = Vec::new();
    // A request that did not fit in the previous batch.
    let mut carry: Option<Pending> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(Msg::Rows(p)) => p,
                Some(Msg::Stop(s)) => {
                    stops.push(s);
                    rx.close();
                    continue;
                }
                None => break,
            },
        };
        let mut n = first.rows.len();
        let mut batch = vec![first];
        while n < MAX_ROWS {
            match rx.try_recv() {
                Ok(Msg::Rows(p)) if n + p.rows.len() > MAX_ROWS => {
                    carry = Some(p);
                    break;
                }
                Ok(Msg::Rows(p)) => {
                    n += p.rows.len();
                    batch.push(p);
                }
                Ok(Msg::Stop(s)) => {
                    stops.push(s);
                    rx.close();
                }
                Err(_) => break,
            }
        }
        tokio::spawn(commit_batch(pool.clone(), batch, slot));
    }
    // Every batch holds a slot until it has answered its readers.
    let _ = slots.acquire_many(u32::try_from(in_flight).unwrap_or(u32::MAX)).await;
    for s in stops {
        let _ = s.send(());
    }
}

async fn commit_batch(pool: AnyPool, batch: Vec<Pending>, _slot: OwnedSemaphorePermit) {
    let mut rows = Vec::with_capacity(batch.iter().map(|p| p.rows.len()).sum());
    let mut waiting = Vec::with_capacity(batch.len());
    for p in batch {
        rows.extend(p.rows);
        waiting.push(p.done);
    }
    let outcome = write(&pool, &rows).await.map_err(Arc::new);
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, rows = rows.len(), readers = waiting.len(), "audit group commit failed; its reads fail");
    }
    for w in waiting {
        let _ = w.send(outcome.clone());
    }
}

/// One statement commits on its own; rows beyond one statement share a transaction.
async fn write(pool: &AnyPool, rows: &[AuditRow]) -> Result<(), sqlx::Error> {
    if rows.len() <= MAX_ROWS {
        insert(rows).execute(pool).await?;
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(MAX_ROWS) {
        insert(chunk).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Each reader of a failed batch gets its own error: the variant is kept where it can be
/// (a database error keeps its message, code and kind), the text otherwise.
fn for_one_reader(e: &Arc<sqlx::Error>) -> sqlx::Error {
    match &**e {
        sqlx::Error::Database(_) => sqlx::Error::Database(Box::new(SharedDbError(e.clone()))),
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::BeginFailed => sqlx::Error::BeginFailed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// A database error shared by the readers of one batch. Holds a `sqlx::Error::Database`.
struct SharedDbError(Arc<sqlx::Error>);

impl SharedDbError {
    fn inner(&self) -> Option<&dyn DatabaseError> {
        self.0.as_database_error()
    }
}

impl fmt::Debug for SharedDbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedDbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner() {
            Some(d) => fmt::Display::fmt(d, f),
            None => fmt::Display::fmt(&*self.0, f),
        }
    }
}

impl StdError for SharedDbError {}

impl DatabaseError for SharedDbError {
    fn message(&self) -> &str {
        self.inner().map_or("database error", |d| d.message())
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.inner().and_then(|d| d.code())
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn constraint(&self) -> Option<&str> {
        self.inner().and_then(|d| d.constraint())
    }

    fn table(&self) -> Option<&str> {
        self.inner().and_then(|d| d.table())
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        self.inner().map_or(sqlx::error::ErrorKind::Other, |d| d.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CallerKind;
    use crate::store::{Store, StoreOptions};

    fn caller() -> Caller {
        Caller {
            kind: CallerKind::Sistema,
            subject: "t".into(),
            ente: "H501".into(),
            ufficio: None,
            roles: Vec::new(),
            purpose: "test".into(),
            request_id: String::new(),
        }
    }

    async fn count(pool: &AnyPool) -> i64 {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit").fetch_one(pool).await.expect("count");
        sqlx::Row::try_get(&row, "n").expect("n")
    }

    /// Requests of every size, queued at once, end up committed exactly once each: the ones
    /// that do not fit a batch wait for the next, and one larger than a statement is split.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_queued_row_is_committed_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&StoreOptions::new(&format!("sqlite://{}", dir.path().join("a.db").display()))).await.expect("open");
        let reads = Arc::new(ReadAudits::start(store.pool().clone(), 2));
        let sizes: Vec<usize> = (0..120).map(|i| if i == 60 { 2 * MAX_ROWS + 7 } else { (i * 37) % MAX_ROWS + 1 }).collect();
        let ids: Vec<String> = (0..2 * MAX_ROWS + 7).map(|i| format!("r{i}")).collect();
        let mut tasks = Vec::new();
        for &n in &sizes {
            let refs: Vec<&str> = ids[..n].iter().map(String::as_str).collect();
            let batch = rows(&caller(), "2026-11-23T00:00:00Z", "read", Kind::Persona, &refs, "");
            let reads = reads.clone();
            tasks.push(tokio::spawn(async move { reads.commit(batch).await }));
        }
        for t in tasks {
            t.await.expect("join").expect("commit");
        }
        assert_eq!(count(store.pool()).await, sizes.iter().sum::<usize>() as i64);

        reads.stop().await;
        let late = reads.commit(rows(&caller(), "2026-11-23T00:00:00Z", "read", Kind::Persona, &["x"], "")).await;
        assert!(matches!(late, Err(CoreError::Store(sqlx::Error::PoolClosed))), "{late:?}");
        reads.stop().await;
        store.close().await;
    }

    /// Every reader of a batch that fails gets the database error, with its kind and message.
    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_readers() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&StoreOptions::new(&format!("sqlite://{}", dir.path().join("a.db").display()))).await.expect("open");
        sqlx::query("DROP TABLE audit").execute(store.pool()).await.expect("drop");
        let reads = Arc::new(ReadAudits::start(store.pool().clone(), 1));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let reads = reads.clone();
            let id = format!("r{i}");
            tasks.push(tokio::spawn(async move { reads.commit(rows(&caller(), "t", "read", Kind::Persona, &[&id], "")).await }));
        }
        for t in tasks {
            match t.await.expect("join") {
                Err(CoreError::Store(sqlx::Error::Database(d))) => {
                    assert!(d.message().contains("audit"), "{}", d.message());
                    assert_eq!(d.kind(), sqlx::error::ErrorKind::Other);
                }
                other => panic!("expected a database error, got {other:?}"),
            }
        }
        drop(reads);
        store.close().await;
    }
}

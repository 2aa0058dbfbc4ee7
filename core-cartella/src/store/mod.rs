//! The store: sqlx over SQLite (embedded, default) or PostgreSQL, chosen by the URL.
//!
//! `sqlx::Any` is used so one SQL text serves both backends: records are kept as a protobuf
//! body plus the columns queries filter on, all of types `Any` decodes (text, integers,
//! bytes). What must differ (migrations, the feed's visibility bound) is kept side by side.
//! Every write commits the record, its audit row and its outbox row in one transaction.
//! Every read's audit rows are committed before the read returns: for reads of records
//! (`get`, `list`, `search_persone`) in group commits shared by concurrent reads (see
//! `audit_log`), for the SIUSS reads (`flussi`) in the transaction that reads the data. A
//! read whose audit rows cannot be committed returns an error, not the data.

mod audit_log;
pub mod completa;
pub mod delivery;
pub mod esporta;
mod feed;
pub mod flussi;
pub mod fusione;
pub mod projection;
mod records;
pub mod registro;
pub mod revisione;
pub mod scope;
mod segnalazioni;
pub mod sql;
mod stats;

use std::{path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyPoolOptions, install_default_drivers},
};
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::sync::watch;

pub use feed::{Change, Cursor, OP_CREATE, OP_MERGE, OP_UPDATE};
pub use records::{ListFilter, MAX_PAGE, Page, PersonaSearch};
pub use segnalazioni::Registrata;
pub use stats::{CellaCartelle, CellaPrestazioni, Riepilogo};

/// Smallest number of people a published statistics cell may describe.
pub fn stats_threshold() -> i64 {
    stats::SOGLIA_MINIMA
}

use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::Kind,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl FromStr for Backend {
    type Err = CoreError;
    fn from_str(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(CoreError::Internal("database URL must start with sqlite: or postgres:".into()))
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub url: String,
    /// Pool size for PostgreSQL. SQLite always uses one connection: every read also writes
    /// an audit row, and a single writer avoids SQLITE_BUSY on lock upgrades.
    pub max_connections: u32,
    /// Smallest number of people a published statistics cell may describe.
    pub stats_soglia: i64,
}

impl StoreOptions {
    pub fn new(url: &str) -> Self {
        Self { url: url.to_string(), max_connections: 32, stats_soglia: crate::stats::SOGLIA_PREDEFINITA }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Bumped after each committed write so feed streams in this process wake at once;
    /// other processes are caught by the feed's polling.
    changed: Arc<watch::Sender<u64>>,
    /// Group commit of read audits.
    reads: Arc<audit_log::ReadAudits>,
    /// The database file, for readers that open their own connection (the SIUSS export);
    /// None for PostgreSQL and in-memory SQLite.
    sqlite_file: Option<PathBuf>,
    /// Disclosure threshold of the statistics tables.
    stats_soglia: i64,
}

/// Read-audit batches committed at once on PostgreSQL, each on its own connection. SQLite
/// has one connection, so one batch.
const READ_AUDIT_BATCHES_PG: usize = 4;

/// Current instant as RFC 3339 UTC, and today's date.
pub fn now() -> (String, Date) {
    let t = OffsetDateTime::now_utc();
    (t.format(&Rfc3339).unwrap_or_default(), t.date())
}

impl Store {
    /// Connects, creating the SQLite file and its folder if needed, and applies migrations.
    pub async fn open(opts: &StoreOptions) -> Result<Self> {
        install_default_drivers();
        let backend: Backend = opts.url.parse()?;
        let mut url = opts.url.clone();
        let sqlite_file = if backend == Backend::Sqlite { prepare_sqlite_path(&mut url)? } else { None };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 1 } else { opts.max_connections.max(1) })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                        ))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&pool).await.map_err(|e| CoreError::Internal(format!("migration failed: {e}")))?;
        let (tx, _) = watch::channel(0);
        let in_flight = if backend == Backend::Sqlite { 1 } else { READ_AUDIT_BATCHES_PG };
        let reads = Arc::new(audit_log::ReadAudits::start(pool.clone(), in_flight));
        Ok(Self { pool, backend, changed: Arc::new(tx), reads, sqlite_file, stats_soglia: opts.stats_soglia.max(1) })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write after reading. On SQLite it takes the write lock when
    /// it begins (`BEGIN IMMEDIATE`): a deferred one that read first fails at its first
    /// write when another connection wrote meanwhile (SQLITE_BUSY_SNAPSHOT), where this one
    /// waits for the busy timeout.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Readiness: the store answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Commits the read audits already queued, then closes the pool; later calls fail.
    pub async fn close(&self) {
        self.reads.stop().await;
        self.pool.close().await;
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Number of audit rows about a record (used by tests and the console).
    pub async fn audit_count(&self, kind: Kind, record_id: &str, action: &str) -> Result<i64> {
        let row = sql::Q::new("SELECT COUNT(*) AS n FROM audit WHERE kind = ")
            .bind_text(kind.name())
            .push(" AND record_id = ")
            .bind_text(record_id)
            .push(" AND action = ")
            .bind_text(action)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(Ok(0), |r| sqlx::Row::try_get::<i64, _>(&r, "n"))?)
    }
}

/// Turns `sqlite://path` / `sqlite:path` into a URL that creates the file, and creates its
/// folder; returns the file's path. `sqlite::memory:` is left alone.
fn prepare_sqlite_path(url: &mut String) -> Result<Option<PathBuf>> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let file = PathBuf::from(rest.split('?').next().unwrap_or_default());
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_fs::create_dir(dir)
            .map_err(|e| CoreError::Internal(format!("cannot create database folder {}: {e}", dir.display())))?;
    }
    // SQLite gives its -wal and -shm files the mode of the database file, so creating that
    // file owner-only first keeps all three from other users whatever the umask.
    crate::private_fs::create_file(&file)
        .map_err(|e| CoreError::Internal(format!("cannot create database file {}: {e}", file.display())))?;
    if !url.contains("mode=") {
        url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
    }
    Ok(Some(file))
}

/// Writes the audit rows of an action on records, in the transaction (or autocommit) of `e`.
pub(crate) async fn audit<'c, E: Executor<'c, Database = sqlx::Any>>(
    e: E,
    caller: &Caller,
    at: &str,
    action: &str,
    kind: Kind,
    ids: &[&str],
    purpose: &str,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    audit_log::insert(&audit_log::rows(caller, at, action, kind, ids, purpose)).execute(e).await?;
    Ok(())
}

impl Store {
    /// Returns once the audit rows of a read are committed, in a group commit shared with
    /// concurrent reads.
    pub(crate) async fn audit_read(&self, caller: &Caller, at: &str, kind: Kind, ids: &[&str], purpose: &str) -> Result<()> {
        self.reads.commit(audit_log::rows(caller, at, "read", kind, ids, purpose)).await
    }
}

//! The edge store: what the gateway keeps for itself and core never sees — registered
//! system clients, the ModI signature ids already seen, the operators who log in with
//! SPID/CIE, their logins under way and their sessions.
//!
//! sqlx `Any` over SQLite (embedded, the default of `sigess up`: `edge.db` next to core's
//! file) or PostgreSQL (a database or schema of its own, shared by every gateway replica),
//! chosen by `--edge-database-url`; one SQL text serves both (`$n` placeholders), only the
//! migrations differ. It implements the SPID/CIE adapter's [`spid_cie::SessionStore`] port.
mod clients;
mod operators;

use std::{path::PathBuf, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyPoolOptions, install_default_drivers},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub use clients::ClientRecord;
pub use operators::OperatorRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why an edge store operation failed. Messages carry no value of a record.
#[derive(Debug, thiserror::Error)]
pub enum EdgeStoreError {
    /// The record is refused as given (missing field, duplicate key); the text says which.
    #[error("{0}")]
    Invalid(&'static str),
    #[error("edge database URL must start with sqlite: or postgres:")]
    Url,
    #[error("cannot create the edge database folder")]
    Folder(#[source] std::io::Error),
    #[error("edge store migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("edge store unavailable")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = EdgeStoreError> = std::result::Result<T, E>;

/// The edge store. Cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct EdgeStore {
    pool: AnyPool,
    backend: Backend,
}

impl EdgeStore {
    /// Connects, creating the SQLite file and its folder if needed, and applies the edge's
    /// migrations. `max_connections` applies to PostgreSQL; SQLite uses one connection.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(EdgeStoreError::Url);
        };
        let mut url = url.to_string();
        if backend == Backend::Sqlite {
            prepare_sqlite_path(&mut url)?;
        }
        let pool = AnyPoolOptions::new()
            // One SQLite writer avoids SQLITE_BUSY on lock upgrades; the edge's writes are few.
            .max_connections(if backend == Backend::Sqlite { 1 } else { max_connections.max(1) })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // foreign_keys: a session must name a registered operator, as on PostgreSQL.
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
            Backend::Sqlite => sqlx::migrate!("./migrations/edge/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/edge/postgres"),
        };
        migrator.run(&pool).await?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Readiness: the store answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The edge file `sigess up` uses when no `--edge-database-url` is given: `edge.db` in the
/// folder of core's SQLite file, or `./data/edge.db` when core is on PostgreSQL or in memory.
pub fn default_url_beside(core_url: &str) -> String {
    let file = core_url.strip_prefix("sqlite:").map(|r| r.trim_start_matches("//")).map(|r| r.split('?').next().unwrap_or_default());
    match file.filter(|f| !f.is_empty() && !f.contains(":memory:")) {
        Some(f) => {
            let dir = PathBuf::from(f).parent().map(PathBuf::from).filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| ".".into());
            format!("sqlite://{}", dir.join("edge.db").display())
        }
        None => "sqlite://./data/edge.db".into(),
    }
}

/// Turns `sqlite://path` into a URL that creates the file, and creates its folder.
/// In-memory URLs are left alone.
fn prepare_sqlite_path(url: &mut String) -> Result<()> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(());
    }
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let file = PathBuf::from(rest.split('?').next().unwrap_or_default());
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Owner-only, as core's files: the edge store holds sessions and client keys.
        core_cartella::private_fs::create_dir(dir).map_err(EdgeStoreError::Folder)?;
        core_cartella::private_fs::create_file(&file).map_err(EdgeStoreError::Folder)?;
    }
    if !url.contains("mode=") {
        url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
    }
    Ok(())
}

/// Current instant as RFC 3339 UTC.
fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Roles as stored: space separated names.
fn roles_text(roles: &[core_cartella::auth::Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" ")
}

fn roles_parse(text: &str) -> Vec<core_cartella::auth::Role> {
    text.split_whitespace().filter_map(core_cartella::auth::Role::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::default_url_beside;

    #[test]
    fn edge_file_beside_core() {
        let cases = [
            ("sqlite://./data/sigess.db", "sqlite://./data/edge.db"),
            ("sqlite:///var/lib/sigess/hub.db?mode=rwc", "sqlite:///var/lib/sigess/edge.db"),
            ("sqlite://hub.db", "sqlite://./edge.db"),
            ("sqlite::memory:", "sqlite://./data/edge.db"),
            ("postgres://db/sigess", "sqlite://./data/edge.db"),
        ];
        for (core, edge) in cases {
            assert_eq!(default_url_beside(core), edge, "{core}");
        }
    }
}

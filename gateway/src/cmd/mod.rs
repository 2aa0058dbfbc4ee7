//! The `sigess` subcommands, one module per command group, and what they share: the store
//! and key flags, role and caller-kind values, opening the store, and the shutdown signal.
use std::path::PathBuf;

use ::gateway::edge_store::EdgeStore;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use core_cartella::{
    auth::Role,
    store::{Store, StoreOptions},
};
use tokio::sync::watch;

pub mod client;
pub mod core;
pub mod gateway;
pub mod operator;
pub mod siuss;
pub mod stats;
pub mod token;
pub mod up;
pub mod worker;

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Database URL: sqlite://PATH (embedded, created if missing) or postgres://…
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://./data/sigess.db")]
    pub database_url: String,
    /// Connection pool size on PostgreSQL (SQLite always uses one writer connection).
    #[arg(long, env = "SIGESS_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,
    /// Statistics: smallest number of people a published cell may describe; smaller cells
    /// are suppressed (and further cells so that none can be worked out).
    #[arg(long, env = "SIGESS_STATS_SOGLIA", default_value_t = core_cartella::stats::SOGLIA_PREDEFINITA, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub stats_soglia: i64,
}

impl StoreArgs {
    /// Connects and applies migrations.
    pub async fn open(&self) -> Result<Store> {
        let mut opts = StoreOptions::new(&self.database_url);
        opts.max_connections = self.db_max_connections;
        opts.stats_soglia = self.stats_soglia;
        let store = Store::open(&opts).await.context("opening the store")?;
        tracing::debug!(backend = ?store.backend(), "store open, migrations applied");
        Ok(store)
    }
}

/// Where the edge store is (clients, operators, sessions, ModI signature ids), for the
/// commands that need no default beside core's file.
#[derive(Args, Debug, Clone)]
pub struct EdgeStoreArgs {
    /// Edge database URL: sqlite://PATH (embedded, created if missing) or postgres://… (a
    /// database or schema of its own, not core's).
    #[arg(long, env = "SIGESS_EDGE_DATABASE_URL", default_value = "sqlite://./data/edge.db")]
    pub edge_database_url: String,
    /// Connection pool size of the edge store on PostgreSQL.
    #[arg(long, env = "SIGESS_EDGE_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub edge_db_max_connections: u32,
}

impl EdgeStoreArgs {
    pub async fn open(&self) -> Result<EdgeStore> {
        open_edge(&self.edge_database_url, self.edge_db_max_connections).await
    }
}

/// Opens the edge store and applies its migrations.
pub async fn open_edge(url: &str, max_connections: u32) -> Result<EdgeStore> {
    let edge = EdgeStore::open(url, max_connections).await.context("opening the edge store")?;
    tracing::debug!(backend = ?edge.backend(), "edge store open, migrations applied");
    Ok(edge)
}

#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// Ed25519 private key (PKCS#8 PEM) that signs caller tokens; created (mode 0600) if missing.
    #[arg(long, env = "SIGESS_SIGNING_KEY", default_value = "./data/hub-signing-key.pem")]
    pub signing_key: PathBuf,
}

/// A role on the command line (`--roles operatore,consultazione`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Reads and writes cartelle in scope.
    Operatore,
    /// Reads cartelle in scope.
    Consultazione,
    /// Reads aggregates only.
    Statistica,
    /// Operates the hub: deliveries, dead letters, replay.
    Amministratore,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Operatore => Role::Operatore,
            RoleArg::Consultazione => Role::Consultazione,
            RoleArg::Statistica => Role::Statistica,
            RoleArg::Amministratore => Role::Amministratore,
        }
    }
}

/// The roles of a `--roles` flag, in the order given.
pub fn roles(args: &[RoleArg]) -> Vec<Role> {
    args.iter().map(|&r| Role::from(r)).collect()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested: draining in-flight calls");
}

/// A boxed future that resolves when the hub stops.
pub type StopFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One stop switch for several tasks: send `true` on the sender, and every future made by
/// the maker resolves.
pub fn stopper() -> (watch::Sender<bool>, impl Fn() -> StopFuture) {
    let (tx, rx) = watch::channel(false);
    let make = move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|v| *v).await;
        }) as StopFuture
    };
    (tx, make)
}

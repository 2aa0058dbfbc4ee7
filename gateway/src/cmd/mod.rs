//! The `sigess` subcommands, one module per command group, and what they share: the store
//! and key flags, role and caller-kind values, opening the store, and the shutdown signal.
use std::{net::SocketAddr, path::PathBuf};

use ::gateway::edge_store::EdgeStore;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use core_cartella::{
    auth::Role,
    server::GrpcTls,
    store::{Store, StoreOptions},
};
use tokio::sync::watch;

pub mod certs;
pub mod client;
pub mod core;
pub mod gateway;
pub mod import;
pub mod linkage;
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

/// Core's gRPC listener: where it binds and how it is protected.
#[derive(Args, Debug, Clone)]
pub struct GrpcListenArgs {
    /// gRPC listen address. Without --grpc-tls-cert only a loopback address is accepted,
    /// unless --grpc-plaintext.
    #[arg(long, env = "SIGESS_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// PEM certificate chain (leaf first) core's gRPC serves over TLS.
    #[arg(long, env = "SIGESS_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of --grpc-tls-cert.
    #[arg(long, env = "SIGESS_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) client certificates must chain to: with it, core accepts only
    /// connections presenting such a certificate (mTLS; the gateway's --core-client-cert).
    #[arg(long, env = "SIGESS_GRPC_CLIENT_CA", requires = "grpc_tls_cert")]
    pub grpc_client_ca: Option<PathBuf>,
    /// Serve plaintext gRPC on a non-loopback address: only where the network is already
    /// encrypted (service mesh, VPN).
    #[arg(long, env = "SIGESS_GRPC_PLAINTEXT", conflicts_with = "grpc_tls_cert")]
    pub grpc_plaintext: bool,
}

impl GrpcListenArgs {
    /// The listener's TLS settings read from their files, or none for plaintext, which is
    /// refused on a non-loopback address without --grpc-plaintext.
    pub fn tls(&self) -> Result<Option<GrpcTls>> {
        let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let (Some(cert), Some(key)) = (&self.grpc_tls_cert, &self.grpc_tls_key) else {
            if !self.grpc_addr.ip().is_loopback() && !self.grpc_plaintext {
                bail!(
                    "plaintext gRPC on {}, which is not a loopback address: give --grpc-tls-cert and --grpc-tls-key \
                     (and --grpc-client-ca for mTLS), or --grpc-plaintext where the network is already encrypted",
                    self.grpc_addr
                );
            }
            return Ok(None);
        };
        let tls =
            GrpcTls { cert_pem: read(cert)?, key_pem: read(key)?, client_ca_pem: self.grpc_client_ca.as_ref().map(read).transpose()? };
        tls.check().context("gRPC TLS settings")?;
        Ok(Some(tls))
    }
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
    /// Operates the hub: deliveries, dead letters, replay, INPS flows, the web console.
    Amministratore,
    /// INPS's WaaS consumer: pulls SIUSS flows and posts esiti; reads no records.
    Siuss,
    /// Data protection officer: reads the registro degli accessi.
    Dpo,
    /// Keeps one anagrafica per person: the review queue of possible duplicates, merges and
    /// their undoing; reads the personas of the pairs it examines.
    Anagrafe,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Operatore => Role::Operatore,
            RoleArg::Consultazione => Role::Consultazione,
            RoleArg::Statistica => Role::Statistica,
            RoleArg::Amministratore => Role::Amministratore,
            RoleArg::Siuss => Role::Siuss,
            RoleArg::Dpo => Role::Dpo,
            RoleArg::Anagrafe => Role::Anagrafe,
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

//! `sigess worker`: the delivery engine alone, for scale-out: any number of workers on one
//! PostgreSQL database share the deliveries of every outbound adapter. On SQLite the engine
//! runs inside `sigess up` only (one writer).
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use clap::Args;
use core_cartella::{
    delivery::{Engine, EngineMetrics},
    store::Backend,
};

use super::{StoreArgs, shutdown_signal, stopper};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    adapters: gateway::adapters::AdapterArgs,
    #[command(flatten)]
    engine: gateway::delivery::EngineArgs,
    /// Address of the worker's own `/metrics` and `/healthz`.
    #[arg(long, env = "SIGESS_WORKER_HTTP_ADDR", default_value = "127.0.0.1:9464")]
    http_addr: SocketAddr,
}

pub async fn run(a: WorkerArgs) -> Result<()> {
    let store = a.store.open().await?;
    if store.backend() == Backend::Sqlite {
        bail!("sigess worker needs PostgreSQL: on SQLite the delivery engine runs inside sigess up (one writer)");
    }
    let metrics = gateway::stack::metrics::Metrics::new().context("metrics")?;
    let engine_metrics = EngineMetrics::register(metrics.registry()).context("delivery metrics")?;
    let adapters = gateway::adapters::registered(&store, &a.adapters, false).context("outbound adapters")?;
    let engine = Engine::new(store.clone(), adapters, a.engine.config(), Some(engine_metrics));
    println!("SIGeSS delivery worker: adapters {}; metrics on http://{}/metrics", engine.adapter_ids().join(", "), a.http_addr);
    let (stop, on_stop) = stopper();
    let http = tokio::spawn(gateway::delivery::serve_worker_http(a.http_addr, metrics, on_stop()));
    let engine_task = engine.spawn(on_stop());
    shutdown_signal().await;
    let _ = stop.send(true);
    let _ = engine_task.await;
    http.await.context("worker HTTP task")?.context("worker HTTP server")?;
    store.close().await;
    Ok(())
}

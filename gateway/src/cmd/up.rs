//! `sigess up`: core, the delivery engine (every outbound adapter) and the gateway in one
//! process, over one store.
use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use clap::Args;
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    delivery::{Engine, EngineMetrics},
    demo,
};
use gateway::{
    app::{self, Parts},
    core_link::CoreLink,
};
use tokio::net::TcpListener;

use super::{
    GrpcListenArgs, KeyArgs, StoreArgs,
    gateway::{HttpArgs, with_sessions},
    open_edge, shutdown_signal, stopper,
};

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Edge database URL (clients, operators, sessions, ModI signature ids): sqlite://PATH or
    /// postgres://… (a database or schema of its own); by default edge.db in the folder of
    /// core's SQLite file (./data/edge.db when core is on PostgreSQL).
    #[arg(long, env = "SIGESS_EDGE_DATABASE_URL")]
    edge_database_url: Option<String>,
    /// Connection pool size of the edge store on PostgreSQL.
    #[arg(long, env = "SIGESS_EDGE_DB_MAX_CONNECTIONS", default_value_t = 8)]
    edge_db_max_connections: u32,
    #[command(flatten)]
    spid: spid_cie::RpArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    auth: gateway::setup::AuthArgs,
    /// Core's gRPC listener (local tools; the gateway calls core inside the process).
    #[command(flatten)]
    grpc: GrpcListenArgs,
    /// HTTP listen address of the gateway (REST, gRPC ingress, metrics, health).
    #[arg(long, env = "SIGESS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Seed fake demo data for the 15 Municipi (only into an empty store).
    #[arg(long, env = "SIGESS_DEMO")]
    demo: bool,
    /// People per Municipio seeded by --demo.
    #[arg(long, env = "SIGESS_DEMO_SIZE", default_value_t = 40)]
    demo_size: u32,
    /// With --demo: also import a folder of fake office exports (one sub-folder per office,
    /// named like M01-A for Municipio I; made by conformance/linkage/gen_offices.py), whose
    /// duplicates are linked to the demo's people and to each other, then queue for review
    /// the pairs of personas one linkage over the whole anagrafica leaves undecided. Re-runs
    /// import nothing twice.
    #[arg(long, env = "SIGESS_DEMO_IMPORT", requires = "demo")]
    demo_import: Option<std::path::PathBuf>,
    #[command(flatten)]
    adapters: gateway::adapters::AdapterArgs,
    #[command(flatten)]
    engine: gateway::delivery::EngineArgs,
    #[command(flatten)]
    stats: super::stats::ProjectorArgs,
    #[command(flatten)]
    import: super::import::ImportRootArgs,
}

pub async fn run(a: UpArgs) -> Result<()> {
    let signer = TokenSigner::load_or_create(&a.key.signing_key).context("signing key")?;
    let spid = a.spid.config().context("SPID/CIE login settings")?;
    let grpc_tls = a.grpc.tls()?;
    let core_options = a.import.core_options()?;
    let store = a.store.open().await?;
    tracing::info!(backend = ?store.backend(), "store open, migrations applied");
    let edge_url = a.edge_database_url.clone().unwrap_or_else(|| gateway::edge_store::default_url_beside(&a.store.database_url));
    let edge = open_edge(&edge_url, a.edge_db_max_connections).await?;
    if a.demo {
        // With the region's adapter on, part of the demo cartelle carry the consent it needs,
        // so cartelle reach the FHIR server at once.
        let regione = &a.adapters.regione;
        let opts = demo::DemoOptions {
            consensi_regione: regione.fhir_base.as_deref().is_some_and(|b| !b.trim().is_empty()).then(|| regione.recipient.clone()),
        };
        let s = demo::seed_with(&store, a.demo_size, 20_261_123, &opts).await.context("seeding demo data")?;
        if s.already_seeded {
            tracing::info!("demo data: the store already holds people, nothing seeded");
        } else {
            tracing::info!(
                persone = s.persone,
                nuclei = s.nuclei,
                accessi = s.accessi,
                cartelle = s.cartelle,
                prestazioni = s.prestazioni,
                consensi_regione = s.consensi_regione,
                "demo data seeded"
            );
        }
        if let Some(dir) = &a.demo_import {
            super::import::import_offices(&store, demo::ENTE, dir).await.context("importing the demo office exports")?;
        }
    }
    let grpc = TcpListener::bind(a.grpc.grpc_addr).await.with_context(|| format!("binding gRPC on {}", a.grpc.grpc_addr))?;
    let web = TcpListener::bind(a.http_addr).await.with_context(|| format!("binding HTTP on {}", a.http_addr))?;
    let grpc_addr = grpc.local_addr()?;
    let http_addr = web.local_addr()?;
    // The demo's console login opens operator sessions even without SPID/CIE settings.
    let spid = match spid {
        None if a.demo => {
            gateway::console::seed_demo_operators(&edge).await.context("demo operators")?;
            let dir = a.key.signing_key.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
            Some(gateway::console::demo_login_config(http_addr, &dir))
        }
        other => {
            if a.demo {
                gateway::console::seed_demo_operators(&edge).await.context("demo operators")?;
            }
            other
        }
    };
    tracing::info!(%grpc_addr, %http_addr, "SIGeSS hub listening");
    println!(
        "SIGeSS hub: core gRPC on {grpc_addr}; gateway on http://{http_addr} (REST /api/v1, web console /console/, gRPC ingress, /metrics, /healthz, /readyz)"
    );
    if a.demo {
        let demo_caller = Caller {
            kind: CallerKind::Operatore,
            subject: "demo-operatore-m01".into(),
            ente: demo::ENTE.into(),
            ufficio: Some(demo::municipio(1)),
            roles: vec![Role::Operatore],
            purpose: "dimostrazione".into(),
            request_id: String::new(),
        };
        let token = signer.mint(&demo_caller, Duration::from_secs(12 * 3600))?;
        println!(
            "Demo caller token (operatore of Municipio I, 12 hours):\n  {token}\n\
             Mint others with: sigess token --signing-key {} --ufficio M02 --roles operatore",
            a.key.signing_key.display()
        );
    }
    let (stop, on_stop) = stopper();
    let verifier = signer.verifier()?;
    // Feed streams end when the hub stops, on core's port and through the gateway alike.
    let routes = core_cartella::server::routes_with(&store, verifier, Some(stop.subscribe()), &core_options)
        .await
        .map_err(anyhow::Error::from_boxed)
        .context("gRPC routes")?;
    let grpc_routes = routes.clone();
    let grpc_stop = on_stop();
    let grpc_task = tokio::spawn(async move {
        core_cartella::server::serve_routes(grpc, grpc_routes, grpc_tls.as_ref(), grpc_stop)
            .await
            .map_err(anyhow::Error::from_boxed)
            .context("gRPC server")
    });
    // The gateway calls core's routes in this process: the same gRPC calls, caller tokens and
    // audit, without a loopback connection.
    let link = CoreLink::in_process(routes, signer.clone());
    // Demo mode is the one where anyone holding the hub key acts as anyone: the demo store
    // holds only fake data (seeding refuses a store with other data).
    let mut auth_args = a.auth.clone();
    auth_args.accept_hub_tokens |= a.demo;
    let (auth, token_endpoint) = auth_args.build(&edge, &signer, &a.key.signing_key).await.context("authentication settings")?;
    let auth = with_sessions(auth, spid, &edge, on_stop())?;
    let app = app::build_full(
        Parts { link, auth, store: Some(store.clone()), edge: Some(edge.clone()) },
        &gateway::app::AppConfig { delivery_max_age: a.engine.max_age(), console_demo: a.demo, ..a.http.app_config() },
        Some(token_endpoint),
    )
    .context("building the HTTP application")?;
    let adapters = gateway::adapters::registered(&store, &a.adapters, a.demo).context("outbound adapters")?;
    let engine_metrics = EngineMetrics::register(app.metrics.registry()).context("delivery metrics")?;
    let engine_task = Engine::new(store.clone(), adapters, a.engine.config(), Some(engine_metrics)).spawn(on_stop());
    let stats_task = a.stats.projector(&store).map(|p| p.spawn(on_stop()));
    let tls = a.auth.tls();
    let web_stop = on_stop();
    let web_task = tokio::spawn(async move {
        match tls {
            Some(t) => gateway::tls::serve_tls(web, app.router, t, web_stop).await.context("HTTPS server")?,
            None => gateway::tls::serve_plain(web, app.router, web_stop).await.context("HTTP server")?,
        }
        Ok::<_, anyhow::Error>(store)
    });
    shutdown_signal().await;
    let _ = stop.send(true);
    grpc_task.await??;
    let store = web_task.await??;
    let _ = engine_task.await;
    if let Some(t) = stats_task {
        let _ = t.await;
    }
    store.close().await;
    edge.close().await;
    tracing::info!("stopped");
    Ok(())
}

//! `sigess`: the SIGeSS hub binary. `sigess up` runs everything in one process; the other
//! subcommands run parts alone or do one-shot jobs. This file is the composition root: the
//! command line and logging; each command group lives in `cmd/`.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod cmd;

/// mimalloc: the hub allocates many small short-lived buffers per request and per exported
/// record (decoded records, JSON, XML attributes); glibc's malloc spent a quarter of the
/// export's time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "sigess", version, about = "SIGeSS interoperability hub of Roma Capitale")]
struct Cli {
    /// Log format: "text" for people, "json" for log collectors.
    #[arg(long, env = "SIGESS_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Parsed once at start; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run core and the HTTP side in one process (embedded SQLite by default).
    Up(cmd::up::UpArgs),
    /// Run core-cartella's gRPC server alone.
    Core(cmd::core::CoreArgs),
    /// Run the gateway alone, in front of a core reached over gRPC.
    Gateway(cmd::gateway::GatewayArgs),
    /// Mint a caller token signed with the hub key (for demos, tests and trusted scripts).
    Token(cmd::token::TokenArgs),
    /// Register and manage system clients (OAuth2 client credentials, mTLS, PDND).
    #[command(subcommand)]
    Client(cmd::client::ClientCmd),
    /// Register operators who may log in with SPID or CIE.
    #[command(subcommand)]
    Operator(cmd::operator::OperatorCmd),
    /// Run the delivery engine alone (scale-out on PostgreSQL): every outbound adapter.
    Worker(cmd::worker::WorkerArgs),
    /// Make a private CA, core's server certificate and the gateway's client certificate
    /// for TLS between gateway and core.
    Certs(cmd::certs::CertsArgs),
    /// Import one office's CSV export into core's store: persons linked against the hub,
    /// each person with their rows of every file and their household in one transaction;
    /// --dry-run checks only.
    Import(cmd::import::ImportArgs),
    /// Link the persons of several offices' CSV exports without storing them: counts, the
    /// estimated model and (optionally) every record's cluster.
    Linkage(cmd::linkage::LinkageArgs),
    /// INPS SIUSS one-shot jobs.
    Siuss {
        #[command(subcommand)]
        command: cmd::siuss::SiussCommand,
    },
    /// Statistics (conoscitivo level) one-shot jobs: `sigess stats rebuild`.
    Stats {
        #[command(subcommand)]
        command: cmd::stats::StatsCommand,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,h2=warn,hyper=warn,tower=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Up(a) => cmd::up::run(a).await,
            Command::Gateway(a) => cmd::gateway::run(a).await,
            Command::Core(a) => cmd::core::run(a).await,
            Command::Token(a) => cmd::token::run(a),
            Command::Client(c) => cmd::client::run(c).await,
            Command::Operator(c) => cmd::operator::run(c).await,
            Command::Worker(a) => cmd::worker::run(a).await,
            Command::Certs(a) => cmd::certs::run(a),
            Command::Import(a) => cmd::import::run(a).await,
            Command::Linkage(a) => cmd::linkage::run(a),
            Command::Siuss { command } => cmd::siuss::run(command).await,
            Command::Stats { command } => cmd::stats::run(command).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's flags are consistent (unique ids and names, valid defaults): clap
    /// checks this only when a subcommand is parsed, so a clash would otherwise surface as a
    /// panic at start.
    #[test]
    fn every_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

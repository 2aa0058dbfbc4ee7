//! `sigess`: the SIGeSS hub binary. `sigess up` runs everything in one process; the other
//! subcommands run parts alone or do one-shot jobs.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};

/// mimalloc: the hub allocates many small short-lived buffers per request and per exported
/// record (decoded records, JSON, XML attributes); glibc's malloc spent a quarter of the
/// export's time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Args, Parser, Subcommand};
use core_cartella::auth::{Caller, CallerKind, Role, TokenSigner, TokenVerifier};

mod run;

#[derive(Parser, Debug)]
#[command(name = "sigess", version, about = "SIGeSS interoperability hub of Roma Capitale")]
struct Cli {
    /// Log format: "text" for people, "json" for log collectors.
    #[arg(long, env = "SIGESS_LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run core and the HTTP side in one process (embedded SQLite by default).
    Up(UpArgs),
    /// Run core-cartella's gRPC server alone.
    Core(CoreArgs),
    /// Run the gateway alone, in front of a core reached over gRPC.
    Gateway(GatewayArgs),
    /// Mint a caller token signed with the hub key (for demos, tests and trusted scripts).
    Token(TokenArgs),
    /// Register and manage system clients (OAuth2 client credentials, mTLS, PDND).
    #[command(subcommand)]
    Client(ClientCmd),
    /// Register operators who may log in with SPID or CIE.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Run the SIUSS worker alone: follows the outbox and produces INPS flows.
    Worker(WorkerArgs),
    /// INPS SIUSS one-shot jobs.
    Siuss {
        #[command(subcommand)]
        command: SiussCommand,
    },
}

#[derive(Subcommand, Debug)]
enum SiussCommand {
    /// Write the portal batch files (many beneficiaries per file) of an ente for a period,
    /// named {ente}.{PS|SINBA}.{AAAAMMGG}.{NNNNNNN}.xml, and print what was left out and why.
    Export(SiussExportArgs),
}

#[derive(Args, Debug)]
struct SiussExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    export: gateway::siuss_export::ExportArgs,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    siuss: gateway::siuss_config::SiussArgs,
}

#[derive(Args, Debug, Clone)]
struct StoreArgs {
    /// Database URL: sqlite://PATH (embedded, created if missing) or postgres://…
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://./data/sigess.db")]
    database_url: String,
    /// Connection pool size on PostgreSQL (SQLite always uses one writer connection).
    #[arg(long, env = "SIGESS_DB_MAX_CONNECTIONS", default_value_t = 32)]
    db_max_connections: u32,
}

#[derive(Args, Debug, Clone)]
struct KeyArgs {
    /// Ed25519 private key (PKCS#8 PEM) that signs caller tokens; created (mode 0600) if missing.
    #[arg(long, env = "SIGESS_SIGNING_KEY", default_value = "./data/hub-signing-key.pem")]
    signing_key: PathBuf,
}

/// Settings of the gateway's HTTP side.
#[derive(Args, Debug, Clone)]
struct HttpArgs {
    /// Seconds a REST call may take before the gateway answers 503.
    #[arg(long, env = "SIGESS_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "SIGESS_MAX_BODY", default_value_t = 1_048_576)]
    max_body: usize,
    /// Requests served at once; beyond it new ones get 503 at once.
    #[arg(long, env = "SIGESS_MAX_CONCURRENCY", default_value_t = 1024)]
    max_concurrency: usize,
    /// Origin allowed by CORS (the web console's); repeat for several.
    #[arg(long = "cors-origin", env = "SIGESS_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Sustained requests per minute per client.
    #[arg(long, env = "SIGESS_RATE_PER_MINUTE", default_value_t = 600)]
    rate_per_minute: u32,
    /// Requests a client may send in a burst.
    #[arg(long, env = "SIGESS_RATE_BURST", default_value_t = 60)]
    rate_burst: u32,
}

impl HttpArgs {
    fn app_config(&self) -> gateway::app::AppConfig {
        gateway::app::AppConfig {
            stack: gateway::stack::StackConfig {
                timeout: Duration::from_secs(self.request_timeout.max(1)),
                max_body: self.max_body,
                max_concurrency: self.max_concurrency.max(1),
                cors_origins: self.cors_origins.clone(),
            },
            rate: gateway::stack::limit::RateConfig { per_minute: self.rate_per_minute, burst: self.rate_burst },
        }
    }
}

#[derive(Args, Debug)]
struct GatewayArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    spid: spid_cie::RpArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    auth: gateway::setup::AuthArgs,
    /// Where core's gRPC answers.
    #[arg(long, env = "SIGESS_CORE_URL", default_value = "http://127.0.0.1:50051")]
    core_url: String,
    /// HTTP listen address (REST, gRPC ingress, metrics, health).
    #[arg(long, env = "SIGESS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
}

#[derive(Args, Debug)]
struct UpArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    spid: spid_cie::RpArgs,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    auth: gateway::setup::AuthArgs,
    /// gRPC listen address of core.
    #[arg(long, env = "SIGESS_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// HTTP listen address of the gateway (REST, gRPC ingress, metrics, health).
    #[arg(long, env = "SIGESS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Seed fake demo data for the 15 Municipi (only into an empty store).
    #[arg(long, env = "SIGESS_DEMO")]
    demo: bool,
    /// People per Municipio seeded by --demo.
    #[arg(long, env = "SIGESS_DEMO_SIZE", default_value_t = 40)]
    demo_size: u32,
    #[command(flatten)]
    siuss: gateway::siuss_config::SiussArgs,
}

#[derive(Args, Debug)]
struct CoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// gRPC listen address.
    #[arg(long, env = "SIGESS_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// Ed25519 public key (PEM) that verifies caller tokens. Core needs no private key.
    #[arg(long, env = "SIGESS_VERIFY_KEY", conflicts_with = "signing_key")]
    verify_key: Option<PathBuf>,
    /// Alternatively, the private key file (the public half is derived from it).
    #[arg(long, env = "SIGESS_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ClientCmd {
    /// Register a client; prints its id and, once, its secret.
    Add(ClientAddArgs),
    /// List registered clients (no secrets).
    List(ClientStore),
    /// Refuse every credential of a client.
    Disable(ClientIdArgs),
    /// Accept a disabled client again.
    Enable(ClientIdArgs),
    /// Replace a client's secret; prints the new one once.
    RotateSecret(ClientIdArgs),
    /// Replace the public keys a client signs ModI requests with (after it rotated them on
    /// PDND); checked as `client add --modi-jwks`.
    SetModiJwks(ClientModiArgs),
}

#[derive(Subcommand, Debug)]
enum OperatorCmd {
    /// Register an operator: their codice fiscale (as in the SPID/CIE fiscal_number) and scope.
    Add(OperatorAddArgs),
    /// Refuse the operator's logins and end their sessions.
    Disable(OperatorIdArgs),
    /// Allow a disabled operator again.
    Enable(OperatorIdArgs),
}

#[derive(Args, Debug)]
struct OperatorAddArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The hub's id for the operator, written to the audit trail (not the codice fiscale).
    #[arg(long)]
    id: String,
    /// Codice fiscale; a "TINIT-" prefix is accepted and dropped. Read from the terminal
    /// or a pipe when omitted, so it does not land in the shell history.
    #[arg(long)]
    codice_fiscale: Option<String>,
    /// Ente (Belfiore code).
    #[arg(long, default_value = "H501")]
    ente: String,
    /// Ufficio (e.g. M01); omit for an ente-wide operator.
    #[arg(long)]
    ufficio: Option<String>,
    /// Comma-separated roles: operatore, consultazione, statistica.
    #[arg(long, value_delimiter = ',', default_value = "operatore")]
    roles: Vec<String>,
}

#[derive(Args, Debug)]
struct OperatorIdArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The operator id.
    operator_id: String,
}

#[derive(Args, Debug)]
struct ClientStore {
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args, Debug)]
struct ClientIdArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The client id.
    client_id: String,
}

#[derive(Args, Debug)]
struct ClientModiArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The client id.
    client_id: String,
    /// JWK or JWK set (JSON) of the client's RSA public keys, each with its kid.
    #[arg(long, value_name = "FILE")]
    modi_jwks: PathBuf,
}

#[derive(Args, Debug)]
struct ClientAddArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Human-readable name (e.g. "INPS SIUSS", "App Municipio III").
    #[arg(long)]
    name: String,
    /// Chosen client id; a UUID when omitted.
    #[arg(long)]
    id: Option<String>,
    /// Ente the client acts for (Belfiore code).
    #[arg(long, default_value = "H501")]
    ente: String,
    /// Ufficio the client is bound to; omit for an ente-wide client.
    #[arg(long)]
    ufficio: Option<String>,
    /// Comma-separated roles: operatore, consultazione, statistica.
    #[arg(long, value_delimiter = ',', required = true)]
    roles: Vec<String>,
    /// Declared purpose of processing, written to the audit trail.
    #[arg(long)]
    purpose: String,
    /// Generate a secret for the OAuth2 client-credentials grant.
    #[arg(long)]
    secret: bool,
    /// PEM certificate the client presents over mTLS.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client id PDND puts in this client's vouchers.
    #[arg(long)]
    pdnd_client_id: Option<String>,
    /// JWK or JWK set (JSON) of the RSA public keys the client signs ModI requests
    /// (Agid-JWT-Signature, INTEGRITY_REST_01) with, each with the kid it has on PDND (for
    /// INPS: the keys of its PDND client). Its signatures are verified with these keys only;
    /// without them they are refused. Private keys, keys without kid and non-RSA keys are
    /// refused here.
    #[arg(long, value_name = "FILE")]
    modi_jwks: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TokenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Ente (Belfiore code of the Comune).
    #[arg(long, default_value = "H501")]
    ente: String,
    /// Ufficio (e.g. M01 … M15); omit for an ente-wide caller.
    #[arg(long)]
    ufficio: Option<String>,
    /// Comma-separated roles: operatore, consultazione, statistica.
    #[arg(long, default_value = "operatore", value_delimiter = ',')]
    roles: Vec<String>,
    /// Caller id written to the audit trail (operator id or client id).
    #[arg(long, default_value = "demo-operatore")]
    subject: String,
    /// Caller kind.
    #[arg(long, default_value = "operatore", value_parser = ["operatore", "sistema"])]
    kind: String,
    /// Declared purpose of processing, written to the audit trail.
    #[arg(long, default_value = "gestione della cartella sociale")]
    purpose: String,
    /// Lifetime in seconds (at most 86400).
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Also print the public key that verifies the token.
    #[arg(long)]
    print_public_key: bool,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,h2=warn,hyper=warn,tower=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Up(a) => {
                let signer = TokenSigner::load_or_create(&a.key.signing_key).context("signing key")?;
                run::up(run::UpConfig {
                    database_url: a.store.database_url,
                    db_max_connections: a.store.db_max_connections,
                    grpc_addr: a.grpc_addr,
                    http_addr: a.http_addr,
                    demo: a.demo.then_some(a.demo_size),
                    signer,
                    signing_key_path: a.key.signing_key,
                    auth: a.auth,
                    app: a.http.app_config(),
                    siuss: a.siuss.config(a.demo),
                    spid: a.spid.config().context("SPID/CIE login settings")?,
                })
                .await
            }
            Command::Gateway(a) => {
                let signer = TokenSigner::load_or_create(&a.key.signing_key).context("signing key")?;
                run::gateway(run::GatewayConfig {
                    database_url: a.store.database_url,
                    db_max_connections: a.store.db_max_connections,
                    core_url: a.core_url,
                    http_addr: a.http_addr,
                    signer,
                    signing_key_path: a.key.signing_key,
                    auth: a.auth,
                    app: a.http.app_config(),
                    spid: a.spid.config().context("SPID/CIE login settings")?,
                })
                .await
            }
            Command::Core(a) => {
                let verifier = match (&a.verify_key, &a.signing_key) {
                    (Some(p), _) => TokenVerifier::from_public_pem(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)?,
                    (None, Some(p)) => TokenSigner::load_or_create(p)?.verifier()?,
                    (None, None) => bail!("core needs --verify-key (public PEM) or --signing-key"),
                };
                run::core(&a.store.database_url, a.store.db_max_connections, a.grpc_addr, verifier).await
            }
            Command::Token(a) => token(a),
            Command::Client(c) => client(c).await,
            Command::Operator(c) => operator(c).await,
            Command::Worker(a) => run::worker(&a.store.database_url, a.store.db_max_connections, a.siuss.config(false)).await,
            Command::Siuss { command: SiussCommand::Export(a) } => {
                run::siuss_export(&a.store.database_url, a.store.db_max_connections, &a.export).await
            }
        }
    })
}

async fn registry(store: &StoreArgs) -> Result<gateway::auth::clients::ClientRegistry> {
    let mut opts = core_cartella::store::StoreOptions::new(&store.database_url);
    opts.max_connections = store.db_max_connections;
    let s = core_cartella::store::Store::open(&opts).await.map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
    Ok(gateway::auth::clients::ClientRegistry::new(s))
}

async fn open_store(store: &StoreArgs) -> Result<core_cartella::store::Store> {
    let mut opts = core_cartella::store::StoreOptions::new(&store.database_url);
    opts.max_connections = store.db_max_connections;
    core_cartella::store::Store::open(&opts).await.map_err(|e| anyhow::anyhow!("opening the store: {e}"))
}

async fn operator(c: OperatorCmd) -> Result<()> {
    match c {
        OperatorCmd::Add(a) => {
            let raw = match a.codice_fiscale {
                Some(cf) => cf,
                None => {
                    eprintln!("codice fiscale of the operator:");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line
                }
            };
            let raw = raw.trim();
            let cf = core_cartella::domain::codice_fiscale::CodiceFiscale::parse(raw.strip_prefix("TINIT-").unwrap_or(raw))
                .map_err(|e| anyhow::anyhow!("codice fiscale: {e}"))?;
            let mut roles = Vec::new();
            for r in &a.roles {
                roles.push(Role::parse(r.trim()).with_context(|| format!("unknown role {r:?}: use operatore, consultazione, statistica"))?);
            }
            let rec = open_store(&a.store)
                .await?
                .insert_operator(&core_cartella::store::OperatorRecord {
                    operator_id: a.id,
                    codice_fiscale: cf.expose().to_string(),
                    ente: a.ente,
                    ufficio: a.ufficio,
                    roles,
                    created_at: String::new(),
                    disabled: false,
                })
                .await?;
            println!("operator {} registered ({}, {})", rec.operator_id, rec.ente, rec.ufficio.as_deref().unwrap_or("whole ente"));
        }
        OperatorCmd::Disable(a) => {
            if !open_store(&a.store).await?.set_operator_disabled(&a.operator_id, true).await? {
                bail!("no operator {}", a.operator_id);
            }
        }
        OperatorCmd::Enable(a) => {
            if !open_store(&a.store).await?.set_operator_disabled(&a.operator_id, false).await? {
                bail!("no operator {}", a.operator_id);
            }
        }
    }
    Ok(())
}

async fn client(c: ClientCmd) -> Result<()> {
    match c {
        ClientCmd::Add(a) => {
            let mut roles = Vec::new();
            for r in &a.roles {
                roles.push(Role::parse(r.trim()).with_context(|| format!("unknown role {r:?}: use operatore, consultazione, statistica"))?);
            }
            let cert_sha256 = match &a.cert {
                Some(p) => Some(gateway::auth::clients::cert_fingerprint_pem(
                    &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                )?),
                None => None,
            };
            let modi_jwks = a.modi_jwks.as_deref().map(read_modi_jwks).transpose()?;
            let reg = registry(&a.store).await?;
            let (rec, secret) = reg
                .create(gateway::auth::clients::NewClient {
                    client_id: a.id,
                    name: a.name,
                    ente: a.ente,
                    ufficio: a.ufficio,
                    roles,
                    purpose: a.purpose,
                    with_secret: a.secret,
                    cert_sha256,
                    pdnd_client_id: a.pdnd_client_id,
                    modi_jwks,
                })
                .await?;
            println!("client_id: {}", rec.client_id);
            if let Some(s) = secret {
                println!(
                    "client_secret: {}
(shown once: only its hash is stored)",
                    s.expose()
                );
            }
        }
        ClientCmd::List(a) => {
            println!("client_id\tname\tente\tufficio\troles\tsecret\tmtls\tpdnd\tmodi");
            for c in registry(&a.store).await?.list().await? {
                let roles: Vec<&str> = c.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    c.client_id,
                    c.name,
                    c.ente,
                    c.ufficio.as_deref().unwrap_or("-"),
                    roles.join(","),
                    if c.secret_hash.is_some() { "yes" } else { "no" },
                    if c.cert_sha256.is_some() { "yes" } else { "no" },
                    c.pdnd_client_id.as_deref().unwrap_or("-"),
                    if c.modi_jwks.is_some() { "yes" } else { "no" },
                );
            }
        }
        ClientCmd::Disable(a) => registry(&a.store).await?.set_disabled(&a.client_id, true).await?,
        ClientCmd::Enable(a) => registry(&a.store).await?.set_disabled(&a.client_id, false).await?,
        ClientCmd::RotateSecret(a) => {
            let s = registry(&a.store).await?.rotate_secret(&a.client_id).await?;
            println!(
                "client_secret: {}
(shown once: only its hash is stored)",
                s.expose()
            );
        }
        ClientCmd::SetModiJwks(a) => {
            let jwks = read_modi_jwks(&a.modi_jwks)?;
            registry(&a.store).await?.set_modi_jwks(&a.client_id, Some(&jwks)).await?;
        }
    }
    Ok(())
}

/// A `--modi-jwks` file, checked: RSA public keys with a kid, or an error naming the file.
fn read_modi_jwks(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    gateway::auth::modi::parse_client_jwks(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn token(a: TokenArgs) -> Result<()> {
    let signer = TokenSigner::load_or_create(&a.key.signing_key).context("signing key")?;
    let mut roles = Vec::new();
    for r in &a.roles {
        roles.push(Role::parse(r.trim()).with_context(|| format!("unknown role {r:?}: use operatore, consultazione, statistica"))?);
    }
    if a.ttl == 0 || a.ttl > 86_400 {
        bail!("--ttl must be between 1 and 86400 seconds");
    }
    let caller = Caller {
        kind: if a.kind == "sistema" { CallerKind::Sistema } else { CallerKind::Operatore },
        subject: a.subject,
        ente: a.ente,
        ufficio: a.ufficio,
        roles,
        purpose: a.purpose,
        request_id: String::new(),
    };
    println!("{}", signer.mint(&caller, Duration::from_secs(a.ttl))?);
    if a.print_public_key {
        print!("{}", String::from_utf8_lossy(signer.public_pem()));
    }
    Ok(())
}

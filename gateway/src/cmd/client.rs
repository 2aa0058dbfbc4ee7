//! `sigess client …`: registers and manages system clients (OAuth2 client credentials,
//! mTLS, PDND and their ModI keys).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use gateway::auth::clients::{ClientRegistry, NewClient, cert_fingerprint_pem};

use super::{EdgeStoreArgs, RoleArg, roles};

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
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

#[derive(Args, Debug)]
pub struct ClientStore {
    #[command(flatten)]
    store: EdgeStoreArgs,
}

#[derive(Args, Debug)]
pub struct ClientIdArgs {
    #[command(flatten)]
    store: EdgeStoreArgs,
    /// The client id.
    client_id: String,
}

#[derive(Args, Debug)]
pub struct ClientModiArgs {
    #[command(flatten)]
    store: EdgeStoreArgs,
    /// The client id.
    client_id: String,
    /// JWK or JWK set (JSON) of the client's RSA public keys, each with its kid.
    #[arg(long, value_name = "FILE")]
    modi_jwks: PathBuf,
}

#[derive(Args, Debug)]
pub struct ClientAddArgs {
    #[command(flatten)]
    store: EdgeStoreArgs,
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
    /// Comma-separated roles: operatore, consultazione, statistica, amministratore, dpo,
    /// anagrafe, siuss (INPS pulling SIUSS flows through WaaS).
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    roles: Vec<RoleArg>,
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
    #[arg(long, requires = "pdnd_purpose_id")]
    pdnd_client_id: Option<String>,
    /// The PDND purpose (purposeId) the client's vouchers must name (required with
    /// --pdnd-client-id): a voucher for another purpose is refused.
    #[arg(long, requires = "pdnd_client_id")]
    pdnd_purpose_id: Option<String>,
    /// JWK or JWK set (JSON) of the RSA public keys the client signs ModI requests
    /// (Agid-JWT-Signature, INTEGRITY_REST_01) with, each with the kid it has on PDND (for
    /// INPS: the keys of its PDND client). Its signatures are verified with these keys only;
    /// without them they are refused. Private keys, keys without kid and non-RSA keys are
    /// refused here.
    #[arg(long, value_name = "FILE")]
    modi_jwks: Option<PathBuf>,
}

async fn registry(store: &EdgeStoreArgs) -> Result<ClientRegistry> {
    Ok(ClientRegistry::new(store.open().await?))
}

pub async fn run(c: ClientCmd) -> Result<()> {
    match c {
        ClientCmd::Add(a) => {
            let cert_sha256 = match &a.cert {
                Some(p) => Some(
                    cert_fingerprint_pem(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
                        .with_context(|| format!("certificate {}", p.display()))?,
                ),
                None => None,
            };
            let modi_jwks = a.modi_jwks.as_deref().map(read_modi_jwks).transpose()?;
            let (rec, secret) = registry(&a.store)
                .await?
                .create(NewClient {
                    client_id: a.id,
                    name: a.name,
                    ente: a.ente,
                    ufficio: a.ufficio,
                    roles: roles(&a.roles),
                    purpose: a.purpose,
                    with_secret: a.secret,
                    cert_sha256,
                    pdnd_client_id: a.pdnd_client_id,
                    pdnd_purpose_id: a.pdnd_purpose_id,
                    modi_jwks,
                })
                .await
                .context("registering the client")?;
            println!("client_id: {}", rec.client_id);
            if let Some(s) = secret {
                print_secret(s.expose());
            }
        }
        ClientCmd::List(a) => {
            println!("client_id\tname\tente\tufficio\troles\tsecret\tmtls\tpdnd\tmodi");
            for c in registry(&a.store).await?.list().await.context("listing clients")? {
                let roles: Vec<&str> = c.roles.iter().map(|r| r.as_str()).collect();
                let yes = |b: bool| if b { "yes" } else { "no" };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    c.client_id,
                    c.name,
                    c.ente,
                    c.ufficio.as_deref().unwrap_or("-"),
                    roles.join(","),
                    yes(c.secret_hash.is_some()),
                    yes(c.cert_sha256.is_some()),
                    c.pdnd_client_id.as_deref().unwrap_or("-"),
                    yes(c.modi_jwks.is_some()),
                );
            }
        }
        ClientCmd::Disable(a) => registry(&a.store).await?.set_disabled(&a.client_id, true).await.context("disabling the client")?,
        ClientCmd::Enable(a) => registry(&a.store).await?.set_disabled(&a.client_id, false).await.context("enabling the client")?,
        ClientCmd::RotateSecret(a) => {
            let s = registry(&a.store).await?.rotate_secret(&a.client_id).await.context("rotating the secret")?;
            print_secret(s.expose());
        }
        ClientCmd::SetModiJwks(a) => {
            let jwks = read_modi_jwks(&a.modi_jwks)?;
            registry(&a.store).await?.set_modi_jwks(&a.client_id, Some(&jwks)).await.context("replacing the ModI keys")?;
        }
    }
    Ok(())
}

fn print_secret(secret: &str) {
    println!("client_secret: {secret}\n(shown once: only its hash is stored)");
}

/// A `--modi-jwks` file, checked: RSA public keys with a kid, or an error naming the file.
fn read_modi_jwks(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // The parser's reasons are plain strings (no error type to chain), so they are wrapped.
    gateway::auth::modi::parse_client_jwks(&bytes).map_err(|reason| anyhow!(reason)).with_context(|| format!("{}", path.display()))
}

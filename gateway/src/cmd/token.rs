//! `sigess token`: mints a caller token signed with the hub key (for demos, tests and
//! trusted scripts).
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use core_cartella::auth::{Caller, CallerKind, TokenSigner};

use super::{KeyArgs, RoleArg, roles};

/// The caller kind a minted token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A social worker.
    Operatore,
    /// A system client.
    Sistema,
}

impl From<KindArg> for CallerKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Operatore => CallerKind::Operatore,
            KindArg::Sistema => CallerKind::Sistema,
        }
    }
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Ente (Belfiore code of the Comune).
    #[arg(long, default_value = "H501")]
    ente: String,
    /// Ufficio (e.g. M01 … M15); omit for an ente-wide caller.
    #[arg(long)]
    ufficio: Option<String>,
    /// Comma-separated roles: operatore, consultazione, statistica, amministratore, dpo, anagrafe.
    #[arg(long, value_enum, default_value = "operatore", value_delimiter = ',')]
    roles: Vec<RoleArg>,
    /// Caller id written to the audit trail (operator id or client id).
    #[arg(long, default_value = "demo-operatore")]
    subject: String,
    /// Caller kind.
    #[arg(long, value_enum, default_value = "operatore")]
    kind: KindArg,
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

pub fn run(a: TokenArgs) -> Result<()> {
    let signer = TokenSigner::load_or_create(&a.key.signing_key).context("signing key")?;
    if a.ttl == 0 || a.ttl > 86_400 {
        bail!("--ttl must be between 1 and 86400 seconds");
    }
    let caller = Caller {
        kind: a.kind.into(),
        subject: a.subject,
        ente: a.ente,
        ufficio: a.ufficio,
        roles: roles(&a.roles),
        purpose: a.purpose,
        request_id: String::new(),
    };
    println!("{}", signer.mint(&caller, Duration::from_secs(a.ttl)).context("minting the token")?);
    if a.print_public_key {
        print!("{}", String::from_utf8_lossy(signer.public_pem()));
    }
    Ok(())
}

//! `sigess operator …`: registers operators who may log in with SPID or CIE, and disables
//! or enables them.
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use core_cartella::domain::codice_fiscale::CodiceFiscale;
use gateway::edge_store::OperatorRecord;

use super::{EdgeStoreArgs, RoleArg, roles};

#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Register an operator: their codice fiscale (as in the SPID/CIE fiscal_number) and scope.
    Add(OperatorAddArgs),
    /// Refuse the operator's logins and end their sessions.
    Disable(OperatorIdArgs),
    /// Allow a disabled operator again.
    Enable(OperatorIdArgs),
}

#[derive(Args, Debug)]
pub struct OperatorAddArgs {
    #[command(flatten)]
    store: EdgeStoreArgs,
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
    /// Comma-separated roles: operatore, consultazione, statistica, amministratore, dpo, anagrafe.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "operatore")]
    roles: Vec<RoleArg>,
}

#[derive(Args, Debug)]
pub struct OperatorIdArgs {
    #[command(flatten)]
    store: EdgeStoreArgs,
    /// The operator id.
    operator_id: String,
}

pub async fn run(c: OperatorCmd) -> Result<()> {
    match c {
        OperatorCmd::Add(a) => {
            let raw = match a.codice_fiscale {
                Some(cf) => cf,
                None => {
                    eprintln!("codice fiscale of the operator:");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the codice fiscale")?;
                    line
                }
            };
            let raw = raw.trim();
            let cf = CodiceFiscale::parse(raw.strip_prefix("TINIT-").unwrap_or(raw)).context("codice fiscale")?;
            let rec = a
                .store
                .open()
                .await?
                .insert_operator(&OperatorRecord {
                    operator_id: a.id,
                    codice_fiscale: cf.expose().to_string(),
                    ente: a.ente,
                    ufficio: a.ufficio,
                    roles: roles(&a.roles),
                    created_at: String::new(),
                    disabled: false,
                })
                .await
                .context("registering the operator")?;
            println!("operator {} registered ({}, {})", rec.operator_id, rec.ente, rec.ufficio.as_deref().unwrap_or("whole ente"));
        }
        OperatorCmd::Disable(a) => set_disabled(a, true).await?,
        OperatorCmd::Enable(a) => set_disabled(a, false).await?,
    }
    Ok(())
}

async fn set_disabled(a: OperatorIdArgs, disabled: bool) -> Result<()> {
    if !a.store.open().await?.set_operator_disabled(&a.operator_id, disabled).await.context("updating the operator")? {
        bail!("no operator {}", a.operator_id);
    }
    Ok(())
}

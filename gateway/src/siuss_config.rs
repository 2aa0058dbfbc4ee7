//! How the ente appears in SIUSS flows: the flags shared by `sigess up`, `sigess worker` and
//! `sigess siuss export`, the configuration of the SIUSS adapter built from them, and the
//! ente-wide system caller SIUSS reads core's records as.
use std::time::Duration;

use core_cartella::auth::{Caller, CallerKind, Role};
use siuss::from_core::EnteSiuss;

/// How the ente appears in SIUSS flows. Flags shared by `up`, `worker` and `siuss export`.
#[derive(clap::Args, Debug, Clone)]
pub struct SiussArgs {
    /// Codice ente in SIUSS flows (Belfiore code of the Comune).
    #[arg(long = "siuss-ente", env = "SIGESS_SIUSS_ENTE", default_value = "H501")]
    pub ente: String,
    /// Denominazione of the ente in flows and in GET /flussi entries.
    #[arg(long = "siuss-denominazione", env = "SIGESS_SIUSS_DENOMINAZIONE", default_value = "Roma Capitale")]
    pub denominazione: String,
    /// Belfiore code of the ente's seat (`Ente/@Indirizzo`).
    #[arg(long = "siuss-indirizzo", env = "SIGESS_SIUSS_INDIRIZZO", default_value = "H501")]
    pub indirizzo: String,
    /// Codice fiscale of the operator responsible for the flows (`Ente/@CFOperatore`).
    /// Without it every prestazione is held back with this as the missing item.
    #[arg(long = "siuss-cf-operatore", env = "SIGESS_SIUSS_CF_OPERATORE", default_value = "")]
    pub cf_operatore: String,
    /// Seconds between outbox polls when no change is signalled in-process.
    #[arg(long = "siuss-poll", env = "SIGESS_SIUSS_POLL", default_value_t = 5)]
    pub poll_secs: u64,
}

impl SiussArgs {
    pub fn ente(&self) -> EnteSiuss {
        EnteSiuss {
            codice: self.ente.clone(),
            denominazione: self.denominazione.clone(),
            indirizzo: self.indirizzo.clone(),
            cf_operatore: self.cf_operatore.trim().to_ascii_uppercase(),
        }
    }

    /// The adapter's configuration. With demo data and no operator codice fiscale given, a
    /// fake one is used so the demo produces flows.
    pub fn config(&self, demo: bool) -> SiussConfig {
        let mut ente = self.ente();
        if demo && ente.cf_operatore.is_empty() {
            ente.cf_operatore = core_cartella::domain::codice_fiscale::compose("Operatore", "Demo", 1980, 1, 1, false, "H501");
        }
        SiussConfig { ente, poll: Duration::from_secs(self.poll_secs.max(1)) }
    }
}

#[derive(Clone, Debug)]
pub struct SiussConfig {
    pub ente: EnteSiuss,
    pub poll: Duration,
}

/// The ente-wide system caller SIUSS reads core's records as.
pub fn system_caller(ente: &str) -> Caller {
    Caller {
        kind: CallerKind::Sistema,
        subject: "siuss-worker".into(),
        ente: ente.into(),
        ufficio: None,
        roles: vec![Role::Consultazione],
        purpose: "conferimento SIUSS a INPS".into(),
        request_id: "siuss-worker".into(),
    }
}

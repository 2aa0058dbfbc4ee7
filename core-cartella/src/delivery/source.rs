//! The adapters' [`Source`] port over core's store. Reads go through the store's audited
//! paths as an ente-wide system caller named after the adapter, with the adapter's purpose:
//! the audit trail shows which adapter read which record for which delivery.
use adapter_contract::{CartellaView, PrestazioneView, Source, SourceError, pb};
use futures::future::BoxFuture;

use crate::{
    auth::{Caller, CallerKind, Role},
    error::CoreError,
    record::Record,
    store::{ListFilter, MAX_PAGE, Page, Store},
};

/// Reads of one adapter for one ente.
#[derive(Debug, Clone)]
pub struct StoreSource {
    store: Store,
    caller: Caller,
}

impl StoreSource {
    pub fn new(store: Store, adapter: &str, ente: &str) -> Self {
        let caller = Caller {
            kind: CallerKind::Sistema,
            subject: format!("adapter:{adapter}"),
            ente: ente.to_string(),
            ufficio: None,
            roles: vec![Role::Consultazione],
            purpose: format!("consegna {adapter}"),
            request_id: format!("delivery:{adapter}"),
        };
        Self { store, caller }
    }
}

fn source_error(e: CoreError) -> SourceError {
    match e {
        CoreError::Store(_) | CoreError::Stale { .. } => SourceError::Unavailable("store unavailable".into()),
        CoreError::Internal(detail) => SourceError::Corrupt(detail),
        other => SourceError::Corrupt(other.to_string()),
    }
}

impl StoreSource {
    /// Every record of a kind matching `filter`, page after page.
    async fn all<R: Record>(&self, filter: ListFilter) -> Result<Vec<R>, SourceError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = Page { size: MAX_PAGE, token };
            let (rows, next) = self.store.list::<R>(&self.caller, &filter, &page, &self.caller.purpose).await.map_err(source_error)?;
            out.extend(rows);
            if next.is_empty() {
                return Ok(out);
            }
            token = next;
        }
    }

    async fn cartella_view(&self, id: &str) -> Result<Option<CartellaView>, SourceError> {
        let Some(c) = self.store.cartella_completa(&self.caller, id, &self.caller.purpose).await.map_err(source_error)? else {
            return Ok(None);
        };
        Ok(Some(CartellaView {
            persona: c.persona,
            cartella: c.cartella,
            nuclei: c.nuclei,
            accessi: c.accessi,
            valutazioni: c.valutazioni,
            pai: c.pai,
            prestazioni: c.prestazioni,
            condivisioni: c.condivisioni,
        }))
    }
}

impl Source for StoreSource {
    fn prestazione(&self, id: &str) -> BoxFuture<'_, Result<Option<PrestazioneView>, SourceError>> {
        let id = id.to_string();
        Box::pin(async move {
            let f = self.store.siuss_fonte(&self.caller, &id).await.map_err(source_error)?;
            Ok(f.map(|f| PrestazioneView {
                persona: f.persona,
                cartella: f.cartella,
                prestazione: f.prestazione,
                sina: f.sina,
                sinba: f.sinba,
            }))
        })
    }

    fn prestazioni_of_cartella(&self, cartella_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let id = cartella_id.to_string();
        Box::pin(async move { self.store.siuss_prestazioni_di(&self.caller.ente, &id, "").await.map_err(source_error) })
    }

    fn prestazioni_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let id = persona_id.to_string();
        Box::pin(async move { self.store.siuss_prestazioni_di(&self.caller.ente, "", &id).await.map_err(source_error) })
    }

    fn cartella(&self, id: &str) -> BoxFuture<'_, Result<Option<CartellaView>, SourceError>> {
        let id = id.to_string();
        Box::pin(async move { self.cartella_view(&id).await })
    }

    fn cartelle_of_persona(&self, persona_id: &str) -> BoxFuture<'_, Result<Vec<String>, SourceError>> {
        let id = persona_id.to_string();
        Box::pin(async move {
            let rows = self.all::<pb::Cartella>(ListFilter::default().eq_text("persona_id", &id)).await?;
            let mut ids: Vec<String> = rows.into_iter().filter_map(|c| c.meta.map(|m| m.id)).collect();
            ids.sort();
            Ok(ids)
        })
    }
}

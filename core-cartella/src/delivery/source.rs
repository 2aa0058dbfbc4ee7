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

    async fn get<R: Record>(&self, id: &str) -> Result<Option<R>, SourceError> {
        match self.store.get::<R>(&self.caller, id, &self.caller.purpose).await {
            Ok(r) => Ok(Some(r)),
            Err(CoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(source_error(e)),
        }
    }

    async fn cartella_view(&self, id: &str) -> Result<Option<CartellaView>, SourceError> {
        let Some(cartella) = self.get::<pb::Cartella>(id).await? else { return Ok(None) };
        let Some(persona) = self.get::<pb::Persona>(&cartella.persona_id).await? else { return Ok(None) };
        let mut nuclei = Vec::new();
        for n in self.all::<pb::Nucleo>(ListFilter::default().nucleo_of(&cartella.persona_id)).await? {
            let mut membri = Vec::new();
            for m in &n.membri {
                if let Some(p) = self.get::<pb::Persona>(&m.persona_id).await? {
                    membri.push(p);
                }
            }
            nuclei.push((n, membri));
        }
        let of_cartella = || ListFilter::default().eq_text("cartella_id", id);
        Ok(Some(CartellaView {
            accessi: self.all::<pb::Accesso>(ListFilter::default().eq_text("persona_id", &cartella.persona_id)).await?,
            valutazioni: self.all::<pb::Valutazione>(of_cartella()).await?,
            pai: self.all::<pb::Pai>(of_cartella()).await?,
            prestazioni: self.all::<pb::Prestazione>(of_cartella()).await?,
            condivisioni: self.all::<pb::Condivisione>(of_cartella()).await?,
            persona,
            cartella,
            nuclei,
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

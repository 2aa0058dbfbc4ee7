//! CartellaService: create, get, update and list of each record kind.
use cartella_proto::v1::{self as pb, cartella_service_server::CartellaService};
use tonic::{Request, Response, Status};

use super::{caller, required};
use crate::{
    auth::Caller,
    record::Record,
    store::{ListFilter, Page, PersonaSearch, Store},
};

#[derive(Clone, Debug)]
pub struct CartellaSvc {
    store: Store,
}

impl CartellaSvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn create<R: Record>(&self, c: Caller, rec: Option<R>, field: &str) -> Result<Response<R>, Status> {
        Ok(Response::new(self.store.create(&c, required(rec, field)?).await?))
    }

    async fn get<R: Record>(&self, c: Caller, req: pb::GetRequest) -> Result<Response<R>, Status> {
        Ok(Response::new(self.store.get(&c, &req.id, &req.purpose).await?))
    }

    async fn update<R: Record>(&self, c: Caller, rec: Option<R>, field: &str) -> Result<Response<R>, Status> {
        Ok(Response::new(self.store.update(&c, required(rec, field)?).await?))
    }

    async fn list<R: Record>(&self, c: &Caller, filter: ListFilter, page: Option<pb::Page>) -> Result<(Vec<R>, String), Status> {
        let page = page.map(|p| Page { size: u32::try_from(p.page_size).unwrap_or(0), token: p.page_token }).unwrap_or_default();
        Ok(self.store.list(c, &filter, &page, "").await?)
    }
}

#[tonic::async_trait]
impl CartellaService for CartellaSvc {
    async fn create_persona(&self, r: Request<pb::CreatePersonaRequest>) -> Result<Response<pb::Persona>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().persona, "persona").await
    }
    async fn get_persona(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Persona>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_persona(&self, r: Request<pb::UpdatePersonaRequest>) -> Result<Response<pb::Persona>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().persona, "persona").await
    }
    async fn list_persone(&self, r: Request<pb::ListPersoneRequest>) -> Result<Response<pb::ListPersoneResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        // Filtering by another ufficio's cartelle would tell this ufficio which of the people
        // it knows are in care elsewhere: an ufficio filters by its own.
        if let Some(own) = c.ufficio.as_deref()
            && !r.ufficio.is_empty()
            && r.ufficio != own
        {
            return Err(crate::CoreError::Denied("an ufficio lists the people with cartelle of its own ufficio only").into());
        }
        let filter = if r.ufficio.is_empty() { ListFilter::default() } else { ListFilter::default().in_ufficio_cartelle(&r.ufficio) };
        let (persone, next_page_token) = self.list(&c, filter, r.page).await?;
        Ok(Response::new(pb::ListPersoneResponse { persone, next_page_token }))
    }
    async fn search_persone(&self, r: Request<pb::SearchPersoneRequest>) -> Result<Response<pb::ListPersoneResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let page = r.page.map(|p| Page { size: u32::try_from(p.page_size).unwrap_or(0), token: p.page_token }).unwrap_or_default();
        let search = PersonaSearch {
            codice_fiscale: r.codice_fiscale,
            cognome: r.cognome,
            nome: r.nome,
            data_nascita: r.data_nascita,
            purpose: r.purpose,
        };
        let (persone, next_page_token) = self.store.search_persone(&c, &search, &page).await?;
        Ok(Response::new(pb::ListPersoneResponse { persone, next_page_token }))
    }

    async fn create_nucleo(&self, r: Request<pb::CreateNucleoRequest>) -> Result<Response<pb::Nucleo>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().nucleo, "nucleo").await
    }
    async fn get_nucleo(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Nucleo>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_nucleo(&self, r: Request<pb::UpdateNucleoRequest>) -> Result<Response<pb::Nucleo>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().nucleo, "nucleo").await
    }
    async fn list_nuclei(&self, r: Request<pb::ListNucleiRequest>) -> Result<Response<pb::ListNucleiResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let (nuclei, next_page_token) = self.list(&c, ListFilter::default().nucleo_of(&r.persona_id), r.page).await?;
        Ok(Response::new(pb::ListNucleiResponse { nuclei, next_page_token }))
    }

    async fn create_accesso(&self, r: Request<pb::CreateAccessoRequest>) -> Result<Response<pb::Accesso>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().accesso, "accesso").await
    }
    async fn get_accesso(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Accesso>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_accesso(&self, r: Request<pb::UpdateAccessoRequest>) -> Result<Response<pb::Accesso>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().accesso, "accesso").await
    }
    async fn list_accessi(&self, r: Request<pb::ListAccessiRequest>) -> Result<Response<pb::ListAccessiResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let filter = ListFilter::default()
            .eq_text("persona_id", &r.persona_id)
            .eq_text("ufficio", &r.ufficio)
            .from_date("data", &r.dal)
            .to_date("data", &r.al);
        let (accessi, next_page_token) = self.list(&c, filter, r.page).await?;
        Ok(Response::new(pb::ListAccessiResponse { accessi, next_page_token }))
    }

    async fn create_cartella(&self, r: Request<pb::CreateCartellaRequest>) -> Result<Response<pb::Cartella>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().cartella, "cartella").await
    }
    async fn get_cartella(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Cartella>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_cartella(&self, r: Request<pb::UpdateCartellaRequest>) -> Result<Response<pb::Cartella>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().cartella, "cartella").await
    }
    async fn list_cartelle(&self, r: Request<pb::ListCartelleRequest>) -> Result<Response<pb::ListCartelleResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let filter = ListFilter::default()
            .eq_text("persona_id", &r.persona_id)
            .eq_text("ufficio", &r.ufficio)
            .eq_int("area_utenza", r.area_utenza)
            .eq_int("stato", r.stato);
        let (cartelle, next_page_token) = self.list(&c, filter, r.page).await?;
        Ok(Response::new(pb::ListCartelleResponse { cartelle, next_page_token }))
    }

    async fn create_diario_entry(&self, r: Request<pb::CreateDiarioEntryRequest>) -> Result<Response<pb::DiarioEntry>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().entry, "entry").await
    }
    async fn get_diario_entry(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::DiarioEntry>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_diario_entry(&self, r: Request<pb::UpdateDiarioEntryRequest>) -> Result<Response<pb::DiarioEntry>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().entry, "entry").await
    }
    async fn list_diario(&self, r: Request<pb::ListByCartellaRequest>) -> Result<Response<pb::ListDiarioResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let (entries, next_page_token) = self.list(&c, ListFilter::default().eq_text("cartella_id", &r.cartella_id), r.page).await?;
        Ok(Response::new(pb::ListDiarioResponse { entries, next_page_token }))
    }

    async fn create_valutazione(&self, r: Request<pb::CreateValutazioneRequest>) -> Result<Response<pb::Valutazione>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().valutazione, "valutazione").await
    }
    async fn get_valutazione(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Valutazione>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_valutazione(&self, r: Request<pb::UpdateValutazioneRequest>) -> Result<Response<pb::Valutazione>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().valutazione, "valutazione").await
    }
    async fn list_valutazioni(&self, r: Request<pb::ListByCartellaRequest>) -> Result<Response<pb::ListValutazioniResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let (valutazioni, next_page_token) = self.list(&c, ListFilter::default().eq_text("cartella_id", &r.cartella_id), r.page).await?;
        Ok(Response::new(pb::ListValutazioniResponse { valutazioni, next_page_token }))
    }

    async fn create_pai(&self, r: Request<pb::CreatePaiRequest>) -> Result<Response<pb::Pai>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().pai, "pai").await
    }
    async fn get_pai(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Pai>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_pai(&self, r: Request<pb::UpdatePaiRequest>) -> Result<Response<pb::Pai>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().pai, "pai").await
    }
    async fn list_pai(&self, r: Request<pb::ListByCartellaRequest>) -> Result<Response<pb::ListPaiResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let (pai, next_page_token) = self.list(&c, ListFilter::default().eq_text("cartella_id", &r.cartella_id), r.page).await?;
        Ok(Response::new(pb::ListPaiResponse { pai, next_page_token }))
    }

    async fn create_prestazione(&self, r: Request<pb::CreatePrestazioneRequest>) -> Result<Response<pb::Prestazione>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().prestazione, "prestazione").await
    }
    async fn get_prestazione(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::Prestazione>, Status> {
        let c = caller(&r)?;
        self.get(c, r.into_inner()).await
    }
    async fn update_prestazione(&self, r: Request<pb::UpdatePrestazioneRequest>) -> Result<Response<pb::Prestazione>, Status> {
        let c = caller(&r)?;
        self.update(c, r.into_inner().prestazione, "prestazione").await
    }
    async fn list_prestazioni(&self, r: Request<pb::ListPrestazioniRequest>) -> Result<Response<pb::ListPrestazioniResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let filter = ListFilter::default()
            .eq_text("cartella_id", &r.cartella_id)
            .eq_text("codice_prestazione", &r.codice_prestazione.to_ascii_uppercase())
            .eq_text("ufficio", &r.ufficio);
        let (prestazioni, next_page_token) = self.list(&c, filter, r.page).await?;
        Ok(Response::new(pb::ListPrestazioniResponse { prestazioni, next_page_token }))
    }

    async fn revoke_condivisione(&self, r: Request<pb::RevokeCondivisioneRequest>) -> Result<Response<pb::Condivisione>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        Ok(Response::new(self.store.revoke_condivisione(&c, &r.id, &r.motivo).await?))
    }
    async fn record_segnalazione(
        &self,
        r: Request<pb::RecordSegnalazioneRequest>,
    ) -> Result<Response<pb::RecordSegnalazioneResponse>, Status> {
        let c = caller(&r)?;
        let done = self.store.record_segnalazione(&c, required(r.into_inner().segnalazione, "segnalazione")?).await?;
        Ok(Response::new(pb::RecordSegnalazioneResponse {
            accesso: Some(done.accesso),
            nuova_persona: done.nuova_persona,
            gia_registrata: done.gia_registrata,
        }))
    }
    async fn create_condivisione(&self, r: Request<pb::CreateCondivisioneRequest>) -> Result<Response<pb::Condivisione>, Status> {
        let c = caller(&r)?;
        self.create(c, r.into_inner().condivisione, "condivisione").await
    }
    async fn list_condivisioni(&self, r: Request<pb::ListByCartellaRequest>) -> Result<Response<pb::ListCondivisioniResponse>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let (condivisioni, next_page_token) = self.list(&c, ListFilter::default().eq_text("cartella_id", &r.cartella_id), r.page).await?;
        Ok(Response::new(pb::ListCondivisioniResponse { condivisioni, next_page_token }))
    }
}

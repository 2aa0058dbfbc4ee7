//! SiussService: the SIUSS state of a prestazione, read from the flow ledger.
use cartella_proto::v1::{self as pb, siuss_service_server::SiussService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::{error::CoreError, store::Store};

#[derive(Clone, Debug)]
pub struct SiussSvc {
    store: Store,
}

impl SiussSvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl SiussService for SiussSvc {
    async fn get_stato_siuss(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::StatoSiuss>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        if req.id.is_empty() {
            return Err(CoreError::invalid("id", "is required").into());
        }
        let s = self.store.siuss_stato(&c, &req.id, &req.purpose).await?;
        Ok(Response::new(pb::StatoSiuss {
            prestazione_id: req.id,
            valutata: s.valutata,
            versione_valutata: s.version,
            inviabile: s.valutata && s.mancanze.is_empty(),
            mancanti: s.mancanze.into_iter().map(|m| pb::MancanzaSiuss { path: m.path, regola: m.rule, messaggio: m.message }).collect(),
            flussi: s
                .flussi
                .into_iter()
                .map(|f| pb::FlussoSiuss {
                    id_flusso: f.id_flusso,
                    tipo: f.tipo,
                    operazione: f.operazione,
                    ts_flusso: f.ts_flusso,
                    stato: f.stato.as_str().to_string(),
                    prestazione_version: f.prestazione_version,
                    created_at: f.created_at,
                    served_at: f.served_at,
                    codice_esito: f.codice_esito,
                    descrizione_esito: f.descrizione_esito,
                    id_acquisizione_siuss: f.id_acquisizione_siuss,
                    ts_acquisizione: f.ts_acquisizione,
                })
                .collect(),
            nota: s.nota,
        }))
    }
}

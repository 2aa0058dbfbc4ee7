//! SiussService: the SIUSS state of a prestazione, read from the flow ledger, and what the
//! gateway's WaaS API needs from it (flows served with their XML, INPS's esiti, status).
use cartella_proto::v1::{self as pb, siuss_service_server::SiussService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    domain::Violation,
    error::CoreError,
    store::{
        Store,
        flussi::{EsitiError, Esito, Flusso, StatoFlusso, significato_esito},
    },
};

/// Most flows one `ServeFlussi` call returns (WaaS `limit` maximum).
const MAX_SERVE: u32 = 100;
/// Most esiti one `RegistraEsiti` call takes (WaaS `elenco_esiti` maximum).
const MAX_ESITI: usize = 100;

#[derive(Clone, Debug)]
pub struct SiussSvc {
    store: Store,
}

impl SiussSvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn flusso_pb(f: Flusso) -> pb::FlussoSiuss {
    pb::FlussoSiuss {
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
    }
}

/// Most flows one `ListFlussi` page holds.
const MAX_LIST: i32 = 200;

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
            flussi: s.flussi.into_iter().map(flusso_pb).collect(),
            nota: s.nota,
        }))
    }

    async fn serve_flussi(&self, r: Request<pb::ServeFlussiRequest>) -> Result<Response<pb::ServeFlussiResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        if req.since < 0 {
            v.push(Violation { field: "since".into(), description: "must not be negative".into() });
        }
        if req.limit == 0 || req.limit > MAX_SERVE {
            v.push(Violation { field: "limit".into(), description: format!("must be between 1 and {MAX_SERVE}") });
        }
        if !v.is_empty() {
            return Err(CoreError::Invalid(v).into());
        }
        let flussi = self.store.siuss_serve(&c, req.since, req.limit).await?;
        Ok(Response::new(pb::ServeFlussiResponse {
            flussi: flussi
                .into_iter()
                .map(|f| pb::FlussoServito {
                    id_flusso: f.id_flusso,
                    codice_ente: f.ente,
                    denominazione_ente: f.denominazione_ente,
                    tipo: f.tipo,
                    ts_flusso: f.ts_flusso,
                    xml: f.xml,
                })
                .collect(),
        }))
    }

    async fn registra_esiti(&self, r: Request<pb::RegistraEsitiRequest>) -> Result<Response<pb::RegistraEsitiResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        if req.esiti.len() > MAX_ESITI {
            return Err(CoreError::invalid("esiti", "at most 100 esiti per call").into());
        }
        let esiti: Vec<Esito> = req
            .esiti
            .into_iter()
            .map(|e| Esito {
                id_flusso: e.id_flusso,
                codice_esito: e.codice_esito,
                descrizione_esito: e.descrizione_esito,
                id_acquisizione_siuss: e.id_acquisizione_siuss,
                ts_acquisizione: e.ts_acquisizione,
            })
            .collect();
        match self.store.siuss_esiti(&c, &esiti).await {
            Ok(n) => Ok(Response::new(pb::RegistraEsitiResponse { registrati: u32::try_from(n).unwrap_or(u32::MAX) })),
            Err(EsitiError::Sconosciuti(idx)) => Err(CoreError::Invalid(
                idx.into_iter()
                    .map(|i| Violation { field: format!("esiti[{i}]"), description: "names a flow this ente never produced".into() })
                    .collect(),
            )
            .into()),
            Err(EsitiError::Core(e)) => Err(e.into()),
        }
    }

    async fn stato_servizio(&self, r: Request<pb::StatoServizioRequest>) -> Result<Response<pb::StatoServizioResponse>, Status> {
        caller(&r)?;
        let serving = self.store.ping().await.is_ok();
        Ok(Response::new(pb::StatoServizioResponse { serving }))
    }

    async fn list_flussi(&self, r: Request<pb::ListFlussiRequest>) -> Result<Response<pb::ListFlussiResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        let stato = match req.stato.as_str() {
            "" => None,
            s => StatoFlusso::from_name(s).or_else(|| {
                v.push(Violation { field: "stato".into(), description: "must be ready, served, acknowledged or rejected".into() });
                None
            }),
        };
        if !(0..=MAX_LIST).contains(&req.page_size) {
            v.push(Violation { field: "page_size".into(), description: format!("must be between 0 and {MAX_LIST}") });
        }
        let before = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse::<i64>().ok().filter(|n| *n > 0).unwrap_or_else(|| {
                v.push(Violation { field: "page_token".into(), description: "is not a token this service issued".into() });
                0
            })
        };
        if !v.is_empty() {
            return Err(CoreError::Invalid(v).into());
        }
        let size = if req.page_size == 0 { 50 } else { req.page_size.unsigned_abs() };
        let e = self.store.siuss_elenco(&c, stato, before, size).await?;
        Ok(Response::new(pb::ListFlussiResponse {
            per_stato: e.per_stato.into_iter().map(|(s, n)| pb::ConteggioFlussi { stato: s.as_str().to_string(), flussi: n }).collect(),
            flussi: e
                .flussi
                .into_iter()
                .map(|f| pb::FlussoRegistrato {
                    prestazione_id: f.flusso.prestazione_id.clone(),
                    significato_esito: significato_esito(&f.flusso.codice_esito).to_string(),
                    flusso: Some(flusso_pb(f.flusso)),
                    ufficio: f.ufficio,
                })
                .collect(),
            next_page_token: e.next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }
}

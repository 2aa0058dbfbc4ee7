//! StatsService: the conoscitivo aggregates.
use cartella_proto::v1::{self as pb, stats_service_server::StatsService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::store::{Store, stats_threshold};

#[derive(Clone, Debug)]
pub struct StatsSvc {
    store: Store,
}

impl StatsSvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl StatsService for StatsSvc {
    async fn get_riepilogo(&self, r: Request<pb::GetRiepilogoRequest>) -> Result<Response<pb::Riepilogo>, Status> {
        let c = caller(&r)?;
        let anno = r.into_inner().anno;
        let s = self.store.riepilogo(&c, anno).await?;
        Ok(Response::new(pb::Riepilogo {
            ente: s.ente,
            anno: s.anno,
            soglia_minima: i32::try_from(stats_threshold()).unwrap_or(i32::MAX),
            cartelle: s
                .cartelle
                .into_iter()
                .map(|x| pb::CellaCartelle {
                    ufficio: x.ufficio,
                    area_utenza: x.area_utenza,
                    cartelle_aperte: x.aperte,
                    cartelle_chiuse: x.chiuse,
                    soppressa: x.soppressa,
                })
                .collect(),
            prestazioni: s
                .prestazioni
                .into_iter()
                .map(|x| pb::CellaPrestazioni {
                    ufficio: x.ufficio,
                    codice_prestazione: x.codice_prestazione,
                    prestazioni: x.prestazioni,
                    beneficiari: x.beneficiari,
                    spesa_centesimi: x.spesa_centesimi,
                    soppressa: x.soppressa,
                })
                .collect(),
        }))
    }
}

//! StatsService: the conoscitivo aggregates.
use cartella_proto::v1::{self as pb, stats_service_server::StatsService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    stats::{BASE_ARROTONDAMENTO, Dim, Grana, Misura, Richiesta},
    store::{Store, now},
};

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
            soglia_minima: i32::try_from(self.store.stats_soglia()).unwrap_or(i32::MAX),
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

    async fn get_tabella(&self, r: Request<pb::GetTabellaRequest>) -> Result<Response<pb::Tabella>, Status> {
        let c = caller(&r)?;
        let q = r.into_inner();
        let anno = now().1.year();
        let req = Richiesta::parse(&q.misura, &q.righe, &q.colonne, &q.periodo, q.anno_da, q.anno_a, anno)?;
        let t = self.store.stats_tabella(&c, &req).await?;
        Ok(Response::new(pb::Tabella {
            ente: t.ente,
            misura: req.misura.as_str().into(),
            righe: req.righe.map(Dim::as_str).unwrap_or_default().into(),
            colonne: req.colonne.map(Dim::as_str).unwrap_or_default().into(),
            periodo: req.grana.as_str().into(),
            anno_da: req.anno_da,
            anno_a: req.anno_a,
            soglia_minima: i32::try_from(t.soglia).unwrap_or(i32::MAX),
            base_arrotondamento: i32::try_from(BASE_ARROTONDAMENTO).unwrap_or(i32::MAX),
            base_somma: t.base_somma,
            celle: t
                .celle
                .into_iter()
                .map(|x| pb::CellaStatistica {
                    periodo: x.periodo,
                    riga: x.riga,
                    colonna: x.colonna,
                    soppressa: x.soppressa,
                    valore: x.valore,
                    persone: x.persone,
                    somma: x.somma,
                    media: x.media,
                })
                .collect(),
            cursore: t.stato.cursore.to_string(),
            aggiornato_al: t.stato.aggiornato_al,
        }))
    }

    async fn get_catalogo(&self, r: Request<pb::GetCatalogoRequest>) -> Result<Response<pb::Catalogo>, Status> {
        let c = caller(&r)?;
        self.store.stats_check(&c)?;
        let stato = self.store.stats_stato().await?;
        let voce = |codice: &str, descrizione: &str| pb::VoceCatalogo { codice: codice.into(), descrizione: descrizione.into() };
        Ok(Response::new(pb::Catalogo {
            misure: Misura::ALL.iter().map(|m| voce(m.as_str(), m.descrizione())).collect(),
            dimensioni: Dim::ALL.iter().map(|d| voce(d.as_str(), d.descrizione())).collect(),
            periodi: Grana::ALL.iter().map(|g| voce(g.as_str(), g.descrizione())).collect(),
            soglia_minima: i32::try_from(self.store.stats_soglia()).unwrap_or(i32::MAX),
            base_arrotondamento: i32::try_from(BASE_ARROTONDAMENTO).unwrap_or(i32::MAX),
            base_somma: Misura::Prestazioni.base_somma(),
            cursore: stato.cursore.to_string(),
            aggiornato_al: stato.aggiornato_al,
        }))
    }
}

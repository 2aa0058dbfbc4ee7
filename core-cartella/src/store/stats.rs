//! Aggregates for the conoscitivo level. Cells about fewer people than the threshold are
//! suppressed so that nobody can be singled out from the figures.
use sqlx::Row;

use super::{Store, sql::Q};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
};

/// Smallest number of distinct people a published cell may describe.
pub const SOGLIA_MINIMA: i64 = 3;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellaCartelle {
    pub ufficio: String,
    pub area_utenza: i32,
    pub aperte: i64,
    pub chiuse: i64,
    pub soppressa: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellaPrestazioni {
    pub ufficio: String,
    pub codice_prestazione: String,
    pub prestazioni: i64,
    pub beneficiari: i64,
    pub spesa_centesimi: i64,
    pub soppressa: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Riepilogo {
    pub ente: String,
    pub anno: i32,
    pub cartelle: Vec<CellaCartelle>,
    pub prestazioni: Vec<CellaPrestazioni>,
}

impl Store {
    pub async fn riepilogo(&self, caller: &Caller, anno: i32) -> Result<Riepilogo> {
        if caller.roles.is_empty() {
            return Err(CoreError::Denied("the caller has no role"));
        }
        let scope = |q: &mut Q| {
            q.push(" WHERE ente = ").bind_text(&caller.ente);
            if let Some(u) = &caller.ufficio {
                q.push(" AND ufficio = ").bind_text(u);
            }
        };
        let mut q = Q::new(
            "SELECT ufficio, area_utenza, CAST(SUM(CASE WHEN stato = 1 THEN 1 ELSE 0 END) AS BIGINT) AS aperte, \
             CAST(SUM(CASE WHEN stato = 2 THEN 1 ELSE 0 END) AS BIGINT) AS chiuse, \
             CAST(COUNT(DISTINCT persona_id) AS BIGINT) AS persone FROM cartella",
        );
        scope(&mut q);
        q.push(" GROUP BY ufficio, area_utenza ORDER BY ufficio, area_utenza");
        let mut out = Riepilogo { ente: caller.ente.clone(), anno, ..Default::default() };
        for r in q.fetch_all(&self.pool).await? {
            let persone: i64 = r.try_get("persone")?;
            let soppressa = persone < self.stats_soglia;
            out.cartelle.push(CellaCartelle {
                ufficio: r.try_get("ufficio")?,
                area_utenza: i32::try_from(r.try_get::<i64, _>("area_utenza")?).unwrap_or(0),
                aperte: if soppressa { 0 } else { r.try_get("aperte")? },
                chiuse: if soppressa { 0 } else { r.try_get("chiuse")? },
                soppressa,
            });
        }
        let mut q = Q::new(
            "SELECT ufficio, codice_prestazione, CAST(COUNT(*) AS BIGINT) AS n, CAST(COUNT(DISTINCT persona_id) AS BIGINT) AS persone, \
             CAST(SUM(spesa_centesimi) AS BIGINT) AS spesa FROM prestazione",
        );
        scope(&mut q);
        q.push(" AND stato <> 3");
        if anno != 0 {
            q.push(" AND anno = ").bind_int(i64::from(anno));
        }
        q.push(" GROUP BY ufficio, codice_prestazione ORDER BY ufficio, codice_prestazione");
        for r in q.fetch_all(&self.pool).await? {
            let persone: i64 = r.try_get("persone")?;
            let soppressa = persone < self.stats_soglia;
            out.prestazioni.push(CellaPrestazioni {
                ufficio: r.try_get("ufficio")?,
                codice_prestazione: r.try_get("codice_prestazione")?,
                prestazioni: if soppressa { 0 } else { r.try_get("n")? },
                beneficiari: if soppressa { 0 } else { persone },
                spesa_centesimi: if soppressa { 0 } else { r.try_get("spesa")? },
                soppressa,
            });
        }
        Ok(out)
    }
}

//! RevisioneService: the review queue of possible duplicate personas, their merges and the
//! undoing of merges. Requests are checked here (every bad field at once); the store
//! decides roles, tenancy and audit.
use cartella_proto::v1::{self as pb, revisione_service_server::RevisioneService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    domain::Violation,
    error::CoreError,
    store::{
        Page, Store,
        fusione::Fusione,
        revisione::{self, Decisione, Dettaglio, Evidenza, PersonaConfrontata, Revisione},
    },
};

#[derive(Clone, Debug)]
pub struct RevisioneSvc {
    store: Store,
}

impl RevisioneSvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Ids are UUIDs the hub issued: anything else is refused before reaching the store.
fn check_id(v: &mut Vec<Violation>, field: &str, id: &str) {
    if id.is_empty() {
        v.push(Violation { field: field.into(), description: "is required".into() });
    } else if uuid::Uuid::try_parse(id).is_err() {
        v.push(Violation { field: field.into(), description: "is not an id this hub issued".into() });
    }
}

fn page_of(p: Option<pb::Page>, v: &mut Vec<Violation>) -> Page {
    let p = p.unwrap_or_default();
    let size = match u32::try_from(p.page_size) {
        Ok(n) if n <= crate::store::MAX_PAGE => n,
        _ => {
            v.push(Violation { field: "page.page_size".into(), description: format!("must be between 0 and {}", crate::store::MAX_PAGE) });
            0
        }
    };
    Page { size, token: p.page_token }
}

fn done(v: Vec<Violation>) -> Result<(), Status> {
    if v.is_empty() { Ok(()) } else { Err(CoreError::Invalid(v).into()) }
}

fn stato_pb(s: &str) -> pb::StatoRevisione {
    match s {
        revisione::APERTA => pb::StatoRevisione::Aperta,
        revisione::STESSA_PERSONA => pb::StatoRevisione::StessaPersona,
        revisione::PERSONE_DIVERSE => pb::StatoRevisione::PersoneDiverse,
        revisione::ASSORBITA => pb::StatoRevisione::Assorbita,
        _ => pb::StatoRevisione::Unspecified,
    }
}

fn evidenza_pb(e: Evidenza) -> pb::Evidenza {
    pb::Evidenza {
        confronti: e
            .confronti
            .into_iter()
            .map(|c| pb::Confronto { campo: c.campo, livello: c.livello, peso: c.peso, mancante: c.mancante })
            .collect(),
        nomi_scambiati: e.nomi_scambiati,
        peso_totale: e.peso_totale,
    }
}

fn revisione_pb(r: Revisione) -> pb::Revisione {
    pb::Revisione {
        stato: stato_pb(&r.stato) as i32,
        evidenza: Some(evidenza_pb(Evidenza::parse(&r.evidenza))),
        id: r.id,
        persona_a_id: r.persona_a,
        persona_b_id: r.persona_b,
        ufficio_a: r.ufficio_a.unwrap_or_default(),
        ufficio_b: r.ufficio_b.unwrap_or_default(),
        probabilita: r.probabilita,
        created_at: r.created_at,
        decided_at: r.decided_at.unwrap_or_default(),
        decided_by: r.decided_by.unwrap_or_default(),
        fusione_id: r.fusione_id.unwrap_or_default(),
    }
}

fn confrontata_pb(p: PersonaConfrontata) -> pb::PersonaConfrontata {
    pb::PersonaConfrontata { persona: p.persona, cartelle: p.cartelle, accessi: p.accessi, prestazioni: p.prestazioni, nuclei: p.nuclei }
}

fn fusione_pb(f: Fusione) -> pb::Fusione {
    pb::Fusione {
        id: f.id,
        superstite_id: f.superstite,
        fusa_id: f.fusa,
        ufficio_fusa: f.ufficio_fusa,
        spostati: i64::try_from(f.spostati).unwrap_or(i64::MAX),
        at: f.at,
        actor: f.actor,
        annullata_at: f.annullata_at.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl RevisioneService for RevisioneSvc {
    async fn list_revisioni(&self, r: Request<pb::ListRevisioniRequest>) -> Result<Response<pb::ListRevisioniResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        let stato = match pb::StatoRevisione::try_from(req.stato) {
            Ok(pb::StatoRevisione::Unspecified | pb::StatoRevisione::Aperta) => revisione::APERTA,
            Ok(pb::StatoRevisione::StessaPersona) => revisione::STESSA_PERSONA,
            Ok(pb::StatoRevisione::PersoneDiverse) => revisione::PERSONE_DIVERSE,
            Ok(pb::StatoRevisione::Assorbita) => revisione::ASSORBITA,
            Err(_) => {
                v.push(Violation { field: "stato".into(), description: "is not a state of a pair".into() });
                revisione::APERTA
            }
        };
        let page = page_of(req.page, &mut v);
        done(v)?;
        let (revisioni, next_page_token) = self.store.revisioni(&c, stato, &page).await?;
        Ok(Response::new(pb::ListRevisioniResponse { revisioni: revisioni.into_iter().map(revisione_pb).collect(), next_page_token }))
    }

    async fn get_revisione(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::RevisioneDettaglio>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        check_id(&mut v, "id", &req.id);
        done(v)?;
        let Dettaglio { revisione, a, b } = self.store.revisione(&c, &req.id, &req.purpose).await?;
        Ok(Response::new(pb::RevisioneDettaglio {
            revisione: Some(revisione_pb(revisione)),
            a: Some(confrontata_pb(a)),
            b: Some(confrontata_pb(b)),
        }))
    }

    async fn decide_revisione(&self, r: Request<pb::DecideRevisioneRequest>) -> Result<Response<pb::Revisione>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        check_id(&mut v, "id", &req.id);
        let d = req.decisione.unwrap_or_default();
        let decisione = match pb::Esito::try_from(d.esito) {
            Ok(pb::Esito::StessaPersona) => {
                check_id(&mut v, "decisione.superstite_id", &d.superstite_id);
                Some(Decisione::StessaPersona { superstite: d.superstite_id })
            }
            Ok(pb::Esito::PersoneDiverse) => {
                if !d.superstite_id.is_empty() {
                    v.push(Violation { field: "decisione.superstite_id".into(), description: "is only for ESITO_STESSA_PERSONA".into() });
                }
                Some(Decisione::PersoneDiverse)
            }
            _ => {
                v.push(Violation {
                    field: "decisione.esito".into(),
                    description: "is required: ESITO_STESSA_PERSONA or ESITO_PERSONE_DIVERSE".into(),
                });
                None
            }
        };
        done(v)?;
        let Some(decisione) = decisione else { return Err(CoreError::invalid("decisione.esito", "is required").into()) };
        Ok(Response::new(revisione_pb(self.store.decide_review(&c, &req.id, &decisione).await?)))
    }

    async fn create_fusione(&self, r: Request<pb::CreateFusioneRequest>) -> Result<Response<pb::Fusione>, Status> {
        let c = caller(&r)?;
        let f = r.into_inner().fusione.unwrap_or_default();
        let mut v = Vec::new();
        check_id(&mut v, "fusione.superstite_id", &f.superstite_id);
        check_id(&mut v, "fusione.fusa_id", &f.fusa_id);
        if !f.superstite_id.is_empty() && f.superstite_id == f.fusa_id {
            v.push(Violation { field: "fusione.fusa_id".into(), description: "is the survivor itself".into() });
        }
        done(v)?;
        Ok(Response::new(fusione_pb(self.store.merge_persone(&c, &f.superstite_id, &f.fusa_id).await?)))
    }

    async fn undo_fusione(&self, r: Request<pb::UndoFusioneRequest>) -> Result<Response<pb::Fusione>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        check_id(&mut v, "id", &req.id);
        done(v)?;
        Ok(Response::new(fusione_pb(self.store.unmerge_persone(&c, &req.id).await?)))
    }

    async fn list_fusioni(&self, r: Request<pb::ListFusioniRequest>) -> Result<Response<pb::ListFusioniResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        if !req.persona_id.is_empty() {
            check_id(&mut v, "persona_id", &req.persona_id);
        }
        let page = page_of(req.page, &mut v);
        done(v)?;
        let (fusioni, next_page_token) = self.store.fusioni(&c, &req.persona_id, &page).await?;
        Ok(Response::new(pb::ListFusioniResponse { fusioni: fusioni.into_iter().map(fusione_pb).collect(), next_page_token }))
    }
}

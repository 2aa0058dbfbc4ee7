//! AuditService: the registro degli accessi for the data protection officer.
use cartella_proto::v1::{self as pb, audit_service_server::AuditService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    domain::Violation,
    error::CoreError,
    store::{Store, registro::RegistroFilter},
};

/// Most rows one page holds.
const MAX_PAGE: i32 = 500;

#[derive(Clone, Debug)]
pub struct AuditSvc {
    store: Store,
}

impl AuditSvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl AuditService for AuditSvc {
    async fn list_registro_accessi(
        &self,
        r: Request<pb::ListRegistroAccessiRequest>,
    ) -> Result<Response<pb::ListRegistroAccessiResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut v = Vec::new();
        if !(0..=MAX_PAGE).contains(&req.page_size) {
            v.push(Violation { field: "page_size".into(), description: format!("must be between 0 and {MAX_PAGE}") });
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
        let size = if req.page_size == 0 { 100 } else { req.page_size.unsigned_abs() };
        let f =
            RegistroFilter { persona_id: req.persona_id, codice_fiscale: req.codice_fiscale, actor: req.actor, dal: req.dal, al: req.al };
        let p = self.store.registro_accessi(&c, &f, &req.purpose, before, size).await?;
        Ok(Response::new(pb::ListRegistroAccessiResponse {
            persona_id: p.persona_id,
            accessi: p
                .righe
                .into_iter()
                .map(|r| pb::AccessoRegistrato {
                    at: r.at,
                    actor_kind: r.actor_kind,
                    actor: r.actor,
                    ente: r.ente,
                    ufficio: r.ufficio,
                    action: r.action,
                    kind: r.kind,
                    record_id: r.record_id,
                    purpose: r.purpose,
                    request_id: r.request_id,
                })
                .collect(),
            next_page_token: p.next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }
}

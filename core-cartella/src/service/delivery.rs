//! DeliveryService: the delivery engine's state for the people who run the hub (adapters,
//! jobs, dead letters) and what they may do about it (retry, discard, replay).
use cartella_proto::v1::{self as pb, delivery_service_server::DeliveryService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    delivery::metrics::oldest_age,
    error::CoreError,
    store::{
        Cursor, Store,
        delivery::{Job, JobFilter, JobState},
    },
};

#[derive(Clone, Debug)]
pub struct DeliverySvc {
    store: Store,
}

impl DeliverySvc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn state_pb(s: JobState) -> pb::DeliveryState {
    match s {
        JobState::Pending => pb::DeliveryState::Pending,
        JobState::Inflight => pb::DeliveryState::Inflight,
        JobState::Delivered => pb::DeliveryState::Delivered,
        JobState::Dead => pb::DeliveryState::Dead,
        JobState::Discarded => pb::DeliveryState::Discarded,
    }
}

fn state_of(s: i32) -> Result<Option<JobState>, Status> {
    Ok(match pb::DeliveryState::try_from(s) {
        Ok(pb::DeliveryState::Unspecified) => None,
        Ok(pb::DeliveryState::Pending) => Some(JobState::Pending),
        Ok(pb::DeliveryState::Inflight) => Some(JobState::Inflight),
        Ok(pb::DeliveryState::Delivered) => Some(JobState::Delivered),
        Ok(pb::DeliveryState::Dead) => Some(JobState::Dead),
        Ok(pb::DeliveryState::Discarded) => Some(JobState::Discarded),
        Err(_) => return Err(CoreError::invalid("state", "is not a delivery state").into()),
    })
}

fn delivery_pb(j: Job) -> pb::Delivery {
    let due = match j.state {
        JobState::Pending => rfc3339_ms(j.due_at),
        JobState::Inflight => j.lease_until.map(rfc3339_ms).unwrap_or_default(),
        _ => String::new(),
    };
    pb::Delivery {
        id: j.id,
        adapter: j.adapter,
        subject: j.subject,
        state: state_pb(j.state) as i32,
        cursor: j.change.cursor,
        kind: j.change.kind,
        record_id: j.change.id,
        version: j.change.version,
        ente: j.change.ente,
        ufficio: j.change.ufficio,
        occurred_at: j.change.occurred_at,
        attempts: j.attempts,
        due_at: due,
        last_error_code: j.last_error_code,
        last_error: j.last_error,
        created_at: rfc3339_ms(j.created_at),
        finished_at: j.finished_at.map(rfc3339_ms).unwrap_or_default(),
        discard_reason: j.discard_reason,
        delivered_keys: j.delivered_keys,
        generation: j.generation,
        covered_by: j.covered_by.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl DeliveryService for DeliverySvc {
    async fn list_adapters(&self, r: Request<pb::ListAdaptersRequest>) -> Result<Response<pb::ListAdaptersResponse>, Status> {
        crate::store::delivery::check_admin(&caller(&r)?)?;
        let stats = self.store.delivery_stats().await?;
        Ok(Response::new(pb::ListAdaptersResponse {
            adapters: stats
                .into_iter()
                .map(|s| pb::AdapterState {
                    oldest_pending_ms: oldest_age(&s).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                    healthy: s.healthy.unwrap_or(false),
                    health_detail: s.health_detail.clone(),
                    checked_at: s.checked_at.map(rfc3339_ms).unwrap_or_default(),
                    pending: s.pending,
                    inflight: s.inflight,
                    dead: s.dead,
                    delivered: s.delivered,
                    cursor: s.cursor.to_string(),
                    generation: s.generation,
                    id: s.adapter,
                })
                .collect(),
        }))
    }

    async fn list_deliveries(&self, r: Request<pb::ListDeliveriesRequest>) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        let mut bad = Vec::new();
        if !(0..=500).contains(&req.page_size) {
            bad.push(crate::domain::Violation { field: "page_size".into(), description: "must be between 0 and 500".into() });
        }
        let after = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse::<i64>().ok().filter(|n| *n > 0).unwrap_or_else(|| {
                bad.push(crate::domain::Violation { field: "page_token".into(), description: "is not a token this service issued".into() });
                0
            })
        };
        let state = match state_of(req.state) {
            Ok(s) => s,
            Err(_) => {
                bad.push(crate::domain::Violation { field: "state".into(), description: "is not a delivery state".into() });
                None
            }
        };
        if !bad.is_empty() {
            return Err(CoreError::Invalid(bad).into());
        }
        let size = if req.page_size == 0 { 50 } else { u32::try_from(req.page_size).unwrap_or(50) };
        let f = JobFilter { adapter: req.adapter, state, subject: req.subject };
        let (jobs, next) = self.store.delivery_list(&c, &f, after, size).await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: jobs.into_iter().map(delivery_pb).collect(),
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_delivery(&self, r: Request<pb::DeliveryRef>) -> Result<Response<pb::Delivery>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(delivery_pb(self.store.delivery_get(&c, r.into_inner().id).await?)))
    }

    async fn retry_delivery(&self, r: Request<pb::DeliveryRef>) -> Result<Response<pb::Delivery>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(delivery_pb(self.store.delivery_retry(&c, r.into_inner().id).await?)))
    }

    async fn discard_delivery(&self, r: Request<pb::DiscardDeliveryRequest>) -> Result<Response<pb::Delivery>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        Ok(Response::new(delivery_pb(self.store.delivery_discard(&c, req.id, &req.reason).await?)))
    }

    async fn replay(&self, r: Request<pb::ReplayRequest>) -> Result<Response<pb::ReplayResponse>, Status> {
        let c = caller(&r)?;
        let req = r.into_inner();
        if req.adapter.is_empty() {
            return Err(CoreError::invalid("adapter", "is required").into());
        }
        let from = Cursor::parse(&req.cursor)?;
        let generation = self.store.delivery_replay(&c, &req.adapter, from).await?;
        Ok(Response::new(pb::ReplayResponse { adapter: req.adapter, generation, cursor: from.to_string() }))
    }
}

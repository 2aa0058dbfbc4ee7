//! The tonic services of `cartella.v1`. They only translate: the caller comes from the
//! request extensions (set by `server::Authenticate`), the work is done by the store.

mod audit;
mod cartella;
mod delivery;
mod feed;
mod import;
mod revisione;
mod siuss;
mod stats;

pub use audit::AuditSvc;
pub use cartella::CartellaSvc;
pub use delivery::DeliverySvc;
pub use feed::FeedSvc;
pub use import::ImportSvc;
pub use revisione::RevisioneSvc;
pub use siuss::SiussSvc;
pub use stats::StatsSvc;

use tonic::{Request, Status};

use crate::{auth::Caller, error::CoreError};

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions().get::<Caller>().cloned().ok_or_else(|| Status::unauthenticated("caller token missing"))
}

fn required<T>(x: Option<T>, field: &str) -> Result<T, Status> {
    x.ok_or_else(|| CoreError::invalid(field, "is required").into())
}

//! One error type for core, mapped once to a gRPC status (the gateway maps statuses to HTTP
//! once more). Messages never carry personal data.
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Violation;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid request: {} field(s) rejected", .0.len())]
    Invalid(Vec<Violation>),
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    #[error("a persona with this codice fiscale already exists")]
    PersonaExists { id: String },
    #[error("{kind} was changed by someone else: reload it and retry (current version {current})")]
    Stale { kind: &'static str, current: i64 },
    #[error("{0}")]
    Denied(&'static str),
    /// The record is not in a state that allows the operation.
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Unauthenticated(String),
    /// The store failed. Its text stays in the server log (it may quote SQL), never in the reply.
    #[error("storage unavailable")]
    Store(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(String),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e)
    }
}

impl From<crate::auth::PurposeError> for CoreError {
    fn from(e: crate::auth::PurposeError) -> Self {
        match e {
            crate::auth::PurposeError::NotRegistered => Self::Denied("a system client reads only for the purpose it was registered with"),
            shape => Self::invalid("purpose", &shape.to_string()),
        }
    }
}

impl CoreError {
    pub fn invalid(field: &str, description: &str) -> Self {
        Self::Invalid(vec![Violation { field: field.to_string(), description: description.to_string() }])
    }

    /// Whether the same call may succeed if retried unchanged.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Stale { .. })
    }
}

impl From<CoreError> for Status {
    fn from(e: CoreError) -> Self {
        match &e {
            CoreError::Invalid(v) => {
                let fields = v.iter().map(|x| tonic_types::FieldViolation::new(x.field.clone(), x.description.clone())).collect::<Vec<_>>();
                Status::with_error_details(Code::InvalidArgument, e.to_string(), ErrorDetails::with_bad_request(fields))
            }
            CoreError::NotFound { .. } => Status::not_found(e.to_string()),
            CoreError::PersonaExists { id } => Status::with_error_details(
                Code::AlreadyExists,
                e.to_string(),
                ErrorDetails::with_resource_info("cartella.v1.Persona", id.clone(), "", "existing persona id"),
            ),
            CoreError::Stale { .. } => Status::aborted(e.to_string()),
            CoreError::Denied(_) => Status::permission_denied(e.to_string()),
            CoreError::Conflict(_) => Status::failed_precondition(e.to_string()),
            CoreError::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
            CoreError::Store(inner) => {
                tracing::error!(error = %inner, "store error");
                Status::unavailable(e.to_string())
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal(e.to_string())
            }
        }
    }
}

//! RFC 9457 problem documents, and the one mapping from gRPC status codes to HTTP.
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 2;

/// A problem document; `extra` members are merged into the body.
pub fn problem_with(status: StatusCode, title: &str, detail: &str, extra: Value) -> Response {
    let mut body = json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    let mut r = (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_UNAVAILABLE));
    }
    r
}

pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    problem_with(status, title, detail, Value::Null)
}

/// HTTP status for a gRPC code. The one place this mapping lives.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::UNPROCESSABLE_ENTITY,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A gRPC status from core as a problem document: field violations become `invalid_params`
/// (name, reason), ALREADY_EXISTS names the existing resource.
pub fn from_status(s: &tonic::Status) -> Response {
    let status = http_status(s.code());
    let title = status.canonical_reason().unwrap_or("Error");
    let mut extra = serde_json::Map::new();
    extra.insert("grpc_code".into(), json!(format!("{:?}", s.code())));
    if let Some(br) = s.get_details_bad_request() {
        let params: Vec<Value> = br.field_violations.iter().map(|v| json!({ "name": v.field, "reason": v.description })).collect();
        extra.insert("invalid_params".into(), Value::Array(params));
    }
    if let Some(ri) = s.get_details_resource_info() {
        extra.insert("existing_id".into(), json!(ri.resource_name));
    }
    problem_with(status, title, s.message(), Value::Object(extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table() {
        let table = [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn unavailable_has_retry_after_and_violations_are_listed() {
        let r = from_status(&tonic::Status::unavailable("storage unavailable"));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let s = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "invalid",
            tonic_types::ErrorDetails::with_bad_request(vec![tonic_types::FieldViolation::new("persona.cognome", "is required")]),
        );
        let r = from_status(&s);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}

//! The REST mapping of [`Error`]: RFC 9457 `application/problem+json` with a stable `type`
//! and `code` per kind, the kind's HTTP status, and `Retry-After` where a retry may work.
//! The one place where error kinds become HTTP status codes, and where server errors are
//! logged (once, inside the request span).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{Error, ErrorKind, FieldError};

/// The media type of every error body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object, with the extension members `code` (stable, machine
/// readable) and `errors` (field errors for validation failures).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type, e.g. `/problems/validation-error`;
    /// documented in docs/API.md.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extra members for the kind (e.g. `current_status`, `order_id`, `available`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
}

/// The HTTP status of an error kind (RFC 9110 §15).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Malformed => StatusCode::BAD_REQUEST,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
        ErrorKind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The problem document for `e`. Server errors say only "internal error".
pub fn to_problem(e: &Error) -> Problem {
    let status = status_of(e.kind());
    let errors = match e {
        Error::Validation(errors) => errors.clone(),
        _ => Vec::new(),
    };
    Problem {
        type_uri: format!("/problems/{}", e.code()),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: e.to_string(),
        code: e.code().to_owned(),
        errors,
        extensions: e.extensions(),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let mut res = problem_response(status_of(self.kind()), &to_problem(&self));
        if let Some(secs) = self.retry_after_secs() {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.is_database_unreachable() {
            // For the route layer's breaker (http/limits.rs): stop sending requests for a moment.
            res.extensions_mut().insert(DatabaseUnreachable);
        }
        if !crate::idempotency::records(&self) {
            // For the idempotency layer (http/idempotency.rs): the request never started.
            res.extensions_mut().insert(NotRecorded);
        }
        if let Some(challenge) = www_authenticate(&self) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        res
    }
}

/// Marks a response whose request found the database unreachable.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnreachable;

/// Marks an error response whose request never started executing, so an `Idempotency-Key`
/// does not keep it (see [`crate::idempotency::records`]).
#[derive(Debug, Clone, Copy)]
pub struct NotRecorded;

/// The challenge of a 401 (RFC 9110 §11.6.1: a 401 must carry one): the Bearer scheme of
/// RFC 6750 §3, with `error="invalid_token"` when a token was sent and refused.
fn www_authenticate(e: &Error) -> Option<&'static str> {
    match e {
        Error::InvalidToken | Error::RefreshTokenReused => Some(r#"Bearer realm="orderly", error="invalid_token""#),
        e if e.kind() == ErrorKind::Unauthenticated => Some(r#"Bearer realm="orderly""#),
        _ => None,
    }
}

/// Serializes a problem with its media type.
pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_do_not_leak_their_cause() {
        let p = to_problem(&Error::Internal(anyhow::anyhow!("password=hunter2 at 10.0.0.1")));
        assert_eq!(p.status, 500);
        assert_eq!(p.detail, "internal error");
        assert_eq!(p.type_uri, "/problems/internal-error");
    }

    #[test]
    fn kinds_map_to_their_statuses() {
        assert_eq!(to_problem(&Error::InvalidTransition { from: "shipped", to: "cancelled" }).status, 409);
        assert_eq!(to_problem(&Error::InsufficientScope("orders:write")).status, 403);
        assert_eq!(to_problem(&Error::Validation(vec![])).status, 422);
        assert_eq!(to_problem(&Error::PreconditionFailed).status, 412);
        assert_eq!(to_problem(&Error::PreconditionRequired).status, 428);
    }
}

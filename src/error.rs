//! The one error type. Every failure a handler can return becomes an RFC 9457
//! `application/problem+json` response with a stable `type` and `code` per kind; client
//! errors carry safe text, server errors are opaque and logged once, here, inside the
//! request span.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The media type of every error body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input field: `field` is a JSON path such as `line_items[0].quantity`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("authentication is required")]
    Unauthenticated,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("the token is invalid or expired")]
    InvalidToken,
    #[error("this refresh token was already used; every session of its family is revoked")]
    RefreshTokenReused,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("an order that is {from} cannot become {to}")]
    InvalidTransition { from: &'static str, to: &'static str },
    #[error("not enough stock for {sku}: {requested} requested, {available} available")]
    InsufficientStock { sku: String, requested: i64, available: i64 },
    #[error("the payment was declined ({decline_code}); order {order_id} failed")]
    PaymentDeclined { order_id: uuid::Uuid, decline_code: String },
    #[error("the resource changed since it was read; fetch it again")]
    PreconditionFailed,
    /// A rate limit or the login lockout; `policy` names which (see docs/OPERATIONS.md).
    #[error("too many requests for the `{policy}` limit; retry after {retry_after_secs} s")]
    RateLimited { policy: &'static str, retry_after_secs: u64 },
    /// An API key without the scope the action needs (`"session"`: no API key may do it).
    #[error("{}", insufficient_scope_detail(.0))]
    InsufficientScope(&'static str),
    /// A dependency the request cannot go without is down (e.g. Redis for login).
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unauthenticated | Error::InvalidCredentials | Error::InvalidToken | Error::RefreshTokenReused => {
                StatusCode::UNAUTHORIZED
            }
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } | Error::InvalidTransition { .. } | Error::InsufficientStock { .. } => {
                StatusCode::CONFLICT
            }
            Error::PaymentDeclined { .. } => StatusCode::PAYMENT_REQUIRED,
            Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented code of this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation-error",
            Error::BadRequest(_) => "bad-request",
            Error::UnsupportedMediaType => "unsupported-media-type",
            Error::PayloadTooLarge => "payload-too-large",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidCredentials => "invalid-credentials",
            Error::InvalidToken => "invalid-token",
            Error::RefreshTokenReused => "refresh-token-reused",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not-found",
            Error::Conflict { code, .. } => code,
            Error::InvalidTransition { .. } => "invalid-transition",
            Error::InsufficientStock { .. } => "insufficient-stock",
            Error::PaymentDeclined { .. } => "payment-declined",
            Error::PreconditionFailed => "precondition-failed",
            Error::RateLimited { .. } => "rate-limited",
            Error::InsufficientScope(_) => "insufficient-scope",
            Error::Unavailable(_) => "unavailable",
            Error::Database(_) | Error::Internal(_) => "internal-error",
        }
    }

    fn extensions(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            Error::InvalidTransition { from, to } => {
                m.insert("current_status".into(), (*from).into());
                m.insert("requested_status".into(), (*to).into());
            }
            Error::InsufficientStock { sku, requested, available } => {
                m.insert("sku".into(), sku.clone().into());
                m.insert("requested".into(), (*requested).into());
                m.insert("available".into(), (*available).into());
            }
            Error::PaymentDeclined { order_id, decline_code } => {
                m.insert("order_id".into(), order_id.to_string().into());
                m.insert("decline_code".into(), decline_code.clone().into());
            }
            Error::RateLimited { policy, retry_after_secs } => {
                // `violated-policies` as in draft-ietf-httpapi-ratelimit-headers-10 §5.1.
                m.insert("violated-policies".into(), vec![Value::from(*policy)].into());
                m.insert("retry_after".into(), (*retry_after_secs).into());
            }
            Error::InsufficientScope(scope) => {
                m.insert("required_scope".into(), (*scope).into());
            }
            _ => {}
        }
        m
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let errors = match self {
            Error::Validation(errors) => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            type_uri: format!("/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
            errors,
            extensions: self.extensions(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            // Logged once, here, with the cause; the client sees only "internal error".
            Error::Database(e) => tracing::error!(error = %e, "database error"),
            Error::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
        let mut res = problem_response(self.status(), &self.to_problem());
        let retry_after = match &self {
            Error::RateLimited { retry_after_secs, .. } => Some((*retry_after_secs).max(1)),
            Error::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

fn insufficient_scope_detail(scope: &str) -> String {
    if scope == "session" {
        "API keys cannot do this; it needs a user logged in".to_owned()
    } else {
        format!("this API key lacks the `{scope}` scope")
    }
}

/// Serializes a problem with its media type.
pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

/// Runs each `field => parse` pair, collects every failure, and returns
/// `Error::Validation` with all of them if any failed; otherwise binds each name to its
/// parsed value. Each parse expression yields `Result<T, String>`.
#[macro_export]
macro_rules! validate {
    ($($var:ident <- $field:expr => $parse:expr;)+) => {
        let mut field_errors: Vec<$crate::error::FieldError> = Vec::new();
        $(
            let $var = match $parse {
                Ok(v) => Some(v),
                Err(message) => {
                    field_errors.push($crate::error::FieldError::new($field, message));
                    None
                }
            };
        )+
        if !field_errors.is_empty() {
            return Err($crate::error::Error::Validation(field_errors));
        }
        $( let Some($var) = $var else { unreachable!("validated above") }; )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_do_not_leak_their_cause() {
        let p = Error::Internal(anyhow::anyhow!("password=hunter2 at 10.0.0.1")).to_problem();
        assert_eq!(p.status, 500);
        assert_eq!(p.detail, "internal error");
        assert_eq!(p.type_uri, "/problems/internal-error");
    }

    #[test]
    fn an_invalid_transition_names_the_current_state() {
        let p = Error::InvalidTransition { from: "shipped", to: "cancelled" }.to_problem();
        assert_eq!(p.status, 409);
        assert_eq!(p.extensions["current_status"], "shipped");
    }
}

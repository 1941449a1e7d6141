//! The one error type, free of any transport. Each error has a [`ErrorKind`] (what class
//! of failure it is) and a stable, documented `code`; each transport maps kinds to its own
//! status codes in one place (REST: `http::problem`, RFC 9457 problem+json). Client errors
//! carry safe text; server errors (`Database`, `Internal`) are opaque to clients and logged
//! once, at the transport boundary, inside the request span.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

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

/// What class of failure an error is, independent of any transport. REST maps these to
/// HTTP status codes, gRPC to `Status` codes, GraphQL to `extensions.code` families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is well-formed but breaks a rule (REST 422, gRPC INVALID_ARGUMENT).
    InvalidInput,
    /// The input could not be read at all (REST 400, gRPC INVALID_ARGUMENT).
    Malformed,
    /// The body has a media type orderly does not read (REST 415).
    UnsupportedMediaType,
    /// The body is larger than allowed (REST 413, gRPC RESOURCE_EXHAUSTED).
    TooLarge,
    /// No valid credentials (REST 401, gRPC UNAUTHENTICATED).
    Unauthenticated,
    /// Authenticated, but the role or API-key scope does not allow it (REST 403, gRPC
    /// PERMISSION_DENIED).
    PermissionDenied,
    /// No such resource, or not the caller's to see (REST 404, gRPC NOT_FOUND).
    NotFound,
    /// The resource is in a state that does not allow it (REST 409, gRPC FAILED_PRECONDITION
    /// or ABORTED).
    Conflict,
    /// A conditional request's precondition (ETag) failed (REST 412, gRPC FAILED_PRECONDITION).
    PreconditionFailed,
    /// The operation must be conditional and was not (REST 428, RFC 6585 §3; gRPC
    /// FAILED_PRECONDITION).
    PreconditionRequired,
    /// The payment was declined (REST 402, gRPC FAILED_PRECONDITION).
    PaymentRequired,
    /// A rate limit or lockout (REST 429, gRPC RESOURCE_EXHAUSTED).
    RateLimited,
    /// A dependency is down; retrying later may work (REST 503, gRPC UNAVAILABLE).
    Unavailable,
    /// A bug or an unexpected failure (REST 500, gRPC INTERNAL).
    Internal,
}

/// Every failure a service can return, whatever the transport.
///
/// Each variant has a [`kind`](Error::kind) (what class of failure: REST maps it to a status
/// code in `http/problem.rs`), a stable [`code`](Error::code) (`validation-error`,
/// `insufficient-stock`, … documented in docs/API.md), a client-safe message (`Display`),
/// and kind-specific [`extensions`](Error::extensions) (e.g. `current_status`, `available`).
/// `Database` and `Internal` never show their cause to a client; a transport logs it once
/// with [`log_if_internal`](Error::log_if_internal). Validation failures list every bad
/// field at once (`Validation`, field paths like `line_items[0].quantity`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// An uploaded file whose sniffed content is not an allowed type, or not what its
    /// `Content-Type` claimed (REST 415, code `unsupported-media-type`); the text says which.
    #[error("{0}")]
    UnsupportedContent(String),
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
    /// The card was declined; the order stays `pending_payment` and may be paid with
    /// another card until its reservation expires (Stripe's `requires_payment_method`).
    /// `payment_rejected` (the gateway refused the request) fails the order instead.
    #[error("the payment for order {order_id} was declined ({decline_code})")]
    PaymentDeclined { order_id: uuid::Uuid, decline_code: String },
    /// The payment provider is not being called: its circuit breaker is open or too many
    /// calls are in flight (`payments.*`, docs/OPERATIONS.md). No money moved. `order_id`
    /// names the order a checkout created and compensated (`failed`, stock released); for
    /// `pay` it is the order, left payable.
    #[error("payments are unavailable right now; no payment was attempted; retry after {retry_after_secs} s")]
    PaymentsUnavailable { order_id: Option<uuid::Uuid>, retry_after_secs: u64 },
    #[error("the resource changed since it was read; fetch it again")]
    PreconditionFailed,
    /// The operation must be conditional (`If-Match`) and the request was not.
    #[error("this update must be conditional: send If-Match with the ETag you last read")]
    PreconditionRequired,
    /// A rate limit or the login lockout; `policy` names which (see docs/OPERATIONS.md).
    #[error("too many requests for the `{policy}` limit; retry after {retry_after_secs} s")]
    RateLimited { policy: &'static str, retry_after_secs: u64 },
    /// An API key without the scope the action needs (`"session"`: no API key may do it).
    #[error("{}", insufficient_scope_detail(.0))]
    InsufficientScope(&'static str),
    /// A dependency the request cannot go without is down (e.g. Redis for login).
    #[error("{0}")]
    Unavailable(&'static str),
    /// A database failure: `Unavailable` when the database cannot be reached (pool timeout,
    /// connection refused or lost), otherwise `Internal`. Clients never see the cause.
    #[error("{}", if is_unreachable(.0) { "the database is unavailable; try again shortly" } else { "internal error" })]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }

    /// The class of failure, for transports to map to their status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Validation(_) => ErrorKind::InvalidInput,
            Error::BadRequest(_) => ErrorKind::Malformed,
            Error::UnsupportedMediaType | Error::UnsupportedContent(_) => ErrorKind::UnsupportedMediaType,
            Error::PayloadTooLarge => ErrorKind::TooLarge,
            Error::Unauthenticated | Error::InvalidCredentials | Error::InvalidToken | Error::RefreshTokenReused => {
                ErrorKind::Unauthenticated
            }
            Error::Forbidden(_) | Error::InsufficientScope(_) => ErrorKind::PermissionDenied,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict { .. } | Error::InvalidTransition { .. } | Error::InsufficientStock { .. } => {
                ErrorKind::Conflict
            }
            Error::PaymentDeclined { .. } => ErrorKind::PaymentRequired,
            Error::PreconditionFailed => ErrorKind::PreconditionFailed,
            Error::PreconditionRequired => ErrorKind::PreconditionRequired,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Unavailable(_) | Error::PaymentsUnavailable { .. } => ErrorKind::Unavailable,
            Error::Database(e) if is_unreachable(e) => ErrorKind::Unavailable,
            Error::Database(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether the database could not be reached (pool timeout, connection refused or lost).
    pub fn is_database_unreachable(&self) -> bool {
        matches!(self, Error::Database(e) if is_unreachable(e))
    }

    /// Logs a server error with its cause; client errors are not logged. Transports call
    /// this once, at their boundary, inside the request's span.
    pub fn log_if_internal(&self) {
        match self {
            Error::Database(e) if is_unreachable(e) => tracing::error!(error = %e, "database unreachable"),
            Error::Database(e) => tracing::error!(error = %e, "database error"),
            Error::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
    }

    /// Seconds after which a retry may succeed, for rate limits and unavailability.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_secs, .. } => Some((*retry_after_secs).max(1)),
            Error::Unavailable(_) => Some(1),
            Error::PaymentsUnavailable { retry_after_secs, .. } => Some((*retry_after_secs).max(1)),
            Error::Database(e) if is_unreachable(e) => Some(1),
            _ => None,
        }
    }

    /// The stable, documented code of this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation-error",
            Error::BadRequest(_) => "bad-request",
            Error::UnsupportedMediaType | Error::UnsupportedContent(_) => "unsupported-media-type",
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
            Error::PreconditionRequired => "precondition-required",
            Error::RateLimited { .. } => "rate-limited",
            Error::InsufficientScope(_) => "insufficient-scope",
            Error::Unavailable(_) => "unavailable",
            Error::PaymentsUnavailable { .. } => "payments-unavailable",
            Error::Database(e) if is_unreachable(e) => "unavailable",
            Error::Database(_) | Error::Internal(_) => "internal-error",
        }
    }

    /// Kind-specific members for the client (e.g. `current_status`, `sku`, `available`),
    /// the same in every transport (problem+json members, GraphQL `extensions`).
    pub fn extensions(&self) -> Map<String, Value> {
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
            Error::PaymentsUnavailable { order_id, retry_after_secs } => {
                if let Some(id) = order_id {
                    m.insert("order_id".into(), id.to_string().into());
                }
                m.insert("retry_after".into(), (*retry_after_secs).into());
            }
            _ => {}
        }
        m
    }
}

/// Whether a database error means the database could not be reached (rather than a query
/// that failed): a retry later may succeed, so it is a 503, not a 500.
fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_))
}

fn insufficient_scope_detail(scope: &str) -> String {
    if scope == "session" {
        "API keys cannot do this; it needs a user logged in".to_owned()
    } else {
        format!("this API key lacks the `{scope}` scope")
    }
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
        let e = Error::Internal(anyhow::anyhow!("password=hunter2 at 10.0.0.1"));
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.code(), "internal-error");
    }

    #[test]
    fn an_unreachable_database_is_a_retryable_unavailability_without_internals() {
        let e = Error::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.code(), "unavailable");
        assert_eq!(e.retry_after_secs(), Some(1));
        assert!(!e.to_string().contains("pool"), "{e}");
        assert_eq!(Error::Database(sqlx::Error::RowNotFound).kind(), ErrorKind::Internal);
    }

    #[test]
    fn an_invalid_transition_names_the_current_state() {
        let e = Error::InvalidTransition { from: "shipped", to: "cancelled" };
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.extensions()["current_status"], "shipped");
    }
}

//! The one place that turns a [`crate::error::Error`] into a gRPC [`Status`], by its
//! [`ErrorKind`], following the status code guidance of the gRPC spec
//! (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>). The table is repeated in
//! docs/GRPC.md.
//!
//! Every status carries our stable code (`validation-error`, `insufficient-stock`, …) in
//! the `orderly-error-code` metadata entry (a trailer, or a header of a trailers-only
//! answer), `retry-after` (seconds) where the error has one, and the kind-specific members
//! REST sends (`current_status`, `available`, …) as JSON in `orderly-error-details`. The
//! message is the client-safe text; for invalid input it lists every bad field. Server
//! errors show no cause: they are logged here, once, inside the call's span.

use tonic::metadata::{AsciiMetadataValue, MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::error::{Error, ErrorKind};

/// Metadata key of our stable error code.
pub const ERROR_CODE: &str = "orderly-error-code";
/// Metadata key of the kind-specific members, as a JSON object.
pub const ERROR_DETAILS: &str = "orderly-error-details";
/// Metadata key of the seconds after which a retry may succeed.
pub const RETRY_AFTER: &str = "retry-after";

/// Conflicts that a concurrent request caused and that a retry of the whole operation
/// later may get past (the spec's ABORTED: "concurrency issue … retry at a higher level").
/// Every other conflict is FAILED_PRECONDITION: the resource's state must change first.
const RETRYABLE_CONFLICTS: &[&str] = &["idempotency-key-in-use", "payment-in-progress", "refund-in-progress"];

/// The gRPC code of an error: the spec's guidance applied to our kinds.
pub fn code_of(e: &Error) -> Code {
    match e.kind() {
        ErrorKind::InvalidInput | ErrorKind::Malformed | ErrorKind::UnsupportedMediaType => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict if RETRYABLE_CONFLICTS.contains(&e.code()) => Code::Aborted,
        ErrorKind::Conflict
        | ErrorKind::PreconditionFailed
        | ErrorKind::PreconditionRequired
        | ErrorKind::PaymentRequired => Code::FailedPrecondition,
        ErrorKind::TooLarge | ErrorKind::RateLimited => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// `e` as a `Status` (see the module docs). Logs server errors with their cause.
pub fn to_status(e: &Error) -> Status {
    e.log_if_internal();
    let mut message = e.to_string();
    if let Error::Validation(fields) = e {
        for (i, f) in fields.iter().enumerate() {
            message.push_str(if i == 0 { ": " } else { "; " });
            message.push_str(&f.field);
            message.push_str(": ");
            message.push_str(&f.message);
        }
    }
    let mut md = MetadataMap::new();
    md.insert(ERROR_CODE, MetadataValue::from_static(e.code()));
    if let Some(secs) = e.retry_after_secs() {
        md.insert(RETRY_AFTER, MetadataValue::from(secs));
    }
    let mut details = e.extensions();
    if let Error::Validation(fields) = e {
        let errors = fields.iter().map(|f| serde_json::json!({"field": f.field, "message": f.message})).collect();
        details.insert("errors".into(), serde_json::Value::Array(errors));
    }
    if !details.is_empty() {
        // JSON of our own values; metadata must be visible ASCII, so anything else is escaped.
        let json = serde_json::Value::Object(details).to_string();
        if let Ok(v) = AsciiMetadataValue::try_from(ascii_only(&json)) {
            md.insert(ERROR_DETAILS, v);
        }
    }
    Status::with_metadata(code_of(e), message, md)
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        to_status(&e)
    }
}

/// `json` with every character outside printable ASCII written as a JSON `\uXXXX` escape
/// (still the same JSON value).
fn ascii_only(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A request field that must be a UUID: INVALID_ARGUMENT naming `field` otherwise.
pub fn uuid(field: &str, raw: &str) -> Result<uuid::Uuid, Status> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| invalid(field, "must be a UUID"))
}

/// An optional UUID field: absent or empty is none.
pub fn opt_uuid(field: &str, raw: Option<&str>) -> Result<Option<uuid::Uuid>, Status> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => uuid(field, s).map(Some),
    }
}

/// INVALID_ARGUMENT for one bad field, shaped like every other validation error.
pub fn invalid(field: &str, message: &str) -> Status {
    to_status(&Error::Validation(vec![crate::error::FieldError::new(field, message)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_codes_the_spec_recommends() {
        let cases: Vec<(Error, Code)> = vec![
            (Error::Validation(vec![]), Code::InvalidArgument),
            (Error::BadRequest("x".into()), Code::InvalidArgument),
            (Error::Unauthenticated, Code::Unauthenticated),
            (Error::InvalidToken, Code::Unauthenticated),
            (Error::Forbidden("no"), Code::PermissionDenied),
            (Error::InsufficientScope("orders:write"), Code::PermissionDenied),
            (Error::NotFound("order"), Code::NotFound),
            (Error::InvalidTransition { from: "paid", to: "cancelled" }, Code::FailedPrecondition),
            (Error::conflict("sku-taken", "taken"), Code::FailedPrecondition),
            (Error::conflict("idempotency-key-in-use", "busy"), Code::Aborted),
            (Error::PreconditionFailed, Code::FailedPrecondition),
            (Error::PreconditionRequired, Code::FailedPrecondition),
            (Error::PayloadTooLarge, Code::ResourceExhausted),
            (Error::RateLimited { policy: "api", retry_after_secs: 3 }, Code::ResourceExhausted),
            (Error::Unavailable("redis"), Code::Unavailable),
            (Error::Internal(anyhow::anyhow!("boom")), Code::Internal),
        ];
        for (e, want) in cases {
            assert_eq!(to_status(&e).code(), want, "{e:?}");
        }
    }

    #[test]
    fn statuses_carry_the_stable_code_and_retry_after_but_never_an_internal_cause() {
        let s = to_status(&Error::RateLimited { policy: "api", retry_after_secs: 7 });
        assert_eq!(s.metadata().get(ERROR_CODE).unwrap(), "rate-limited");
        assert_eq!(s.metadata().get(RETRY_AFTER).unwrap(), "7");
        let s = to_status(&Error::Internal(anyhow::anyhow!("password=hunter2 at 10.0.0.1")));
        assert_eq!(s.message(), "internal error");
        assert!(s.metadata().get(ERROR_DETAILS).is_none());
    }

    #[test]
    fn validation_errors_name_every_field_in_the_message_and_details() {
        let e = Error::Validation(vec![
            crate::error::FieldError::new("sku", "must not be empty"),
            crate::error::FieldError::new("price_minor", "must be 0 or more"),
        ]);
        let s = to_status(&e);
        assert!(s.message().contains("sku: must not be empty; price_minor: must be 0 or more"), "{}", s.message());
        let details: serde_json::Value =
            serde_json::from_str(s.metadata().get(ERROR_DETAILS).unwrap().to_str().unwrap()).unwrap();
        assert_eq!(details["errors"][1]["field"], "price_minor");
    }

    #[test]
    fn non_ascii_details_stay_valid_json() {
        assert_eq!(ascii_only("{\"a\":\"é\"}"), "{\"a\":\"\\u00e9\"}");
        let v: serde_json::Value = serde_json::from_str(&ascii_only("\"€😀\"")).unwrap();
        assert_eq!(v, "€😀");
    }
}

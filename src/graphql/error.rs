//! The one place where [`crate::error::Error`] becomes a GraphQL error: `message` is the
//! error's client-safe text, `extensions.code` a stable family by [`ErrorKind`]
//! ([`code_of`]), `extensions.reason` our stable `code()` (`insufficient-stock`, …,
//! docs/API.md), `extensions.fields` the bad fields of a validation error (paths in the
//! schema's camelCase, e.g. `lineItems[0].quantity`), plus the kind's members
//! (`currentStatus`, `available`, `retryAfter`, …). Server errors say "internal error" and
//! are logged once, here.

use async_graphql::{ErrorExtensionValues, Value};

use crate::error::{Error, ErrorKind, Result};

/// The `extensions.code` of an error kind (Apollo's names where they exist).
pub fn code_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput | ErrorKind::Malformed | ErrorKind::UnsupportedMediaType | ErrorKind::TooLarge => {
            "BAD_USER_INPUT"
        }
        ErrorKind::Unauthenticated => "UNAUTHENTICATED",
        ErrorKind::PermissionDenied => "FORBIDDEN",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::Conflict => "CONFLICT",
        ErrorKind::PreconditionFailed | ErrorKind::PreconditionRequired => "PRECONDITION_FAILED",
        ErrorKind::PaymentRequired => "PAYMENT_REQUIRED",
        ErrorKind::RateLimited => "RATE_LIMITED",
        ErrorKind::Unavailable => "UNAVAILABLE",
        ErrorKind::Internal => "INTERNAL_SERVER_ERROR",
    }
}

/// `e` as a GraphQL error (see the module docs); logs it if it is a server error.
pub fn to_graphql(e: &Error) -> async_graphql::Error {
    e.log_if_internal();
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code_of(e.kind()));
    ext.set("reason", e.code());
    if let Error::Validation(fields) = e {
        let list: Vec<Value> = fields
            .iter()
            .map(|f| {
                let mut m = async_graphql::indexmap::IndexMap::new();
                m.insert(async_graphql::Name::new("field"), Value::from(camel_path(&f.field)));
                m.insert(async_graphql::Name::new("message"), Value::from(f.message.clone()));
                Value::Object(m)
            })
            .collect();
        ext.set("fields", Value::List(list));
    }
    for (k, v) in e.extensions() {
        if let Ok(v) = Value::from_json(v) {
            ext.set(camel_path(&k), v);
        }
    }
    if let Some(secs) = e.retry_after_secs() {
        ext.set("retryAfter", secs);
    }
    async_graphql::Error { message: e.to_string(), source: None, extensions: Some(ext) }
}

/// `Result<T, Error>` → `async_graphql::Result<T>` through [`to_graphql`]. Resolvers use
/// `.gql()?` on every service call (never a bare `?`, which would lose the code).
pub trait Gql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> Gql<T> for Result<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| to_graphql(&e))
    }
}

/// A 422-style error on one input field, for values the transport itself cannot read
/// (an `ID` that is not a UUID).
pub fn bad_input(field: &str, message: &str) -> async_graphql::Error {
    to_graphql(&Error::Validation(vec![crate::error::FieldError::new(field, message)]))
}

/// `e` with the service's names of some input fields replaced by the schema's (REST's
/// `limit`/`cursor` are `first`/`after` here); other errors unchanged.
pub fn rename_fields(e: Error, names: &[(&str, &str)]) -> Error {
    match e {
        Error::Validation(mut fields) => {
            for f in &mut fields {
                if let Some((_, to)) = names.iter().find(|(from, _)| *from == f.field) {
                    f.field = (*to).to_owned();
                }
            }
            Error::Validation(fields)
        }
        other => other,
    }
}

/// `line_items[0].unit_price_minor` → `lineItems[0].unitPriceMinor`; `violated-policies`
/// → `violatedPolicies`.
pub fn camel_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' || c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_become_camel_case() {
        assert_eq!(camel_path("line_items[0].quantity"), "lineItems[0].quantity");
        assert_eq!(camel_path("violated-policies"), "violatedPolicies");
        assert_eq!(camel_path("sku"), "sku");
    }

    #[test]
    fn server_errors_keep_their_cause_to_themselves() {
        let e = to_graphql(&Error::Internal(anyhow::anyhow!("secret connection string")));
        assert_eq!(e.message, "internal error");
        let ext = e.extensions.unwrap();
        assert_eq!(ext.get("code"), Some(&Value::from("INTERNAL_SERVER_ERROR")));
    }

    #[test]
    fn every_kind_has_a_code() {
        let e = to_graphql(&Error::InvalidTransition { from: "paid", to: "cancelled" });
        let ext = e.extensions.unwrap();
        assert_eq!(ext.get("code"), Some(&Value::from("CONFLICT")));
        assert_eq!(ext.get("reason"), Some(&Value::from("invalid-transition")));
        assert_eq!(ext.get("currentStatus"), Some(&Value::from("paid")));
    }
}

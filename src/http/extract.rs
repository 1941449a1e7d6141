//! Our own `Json` and `Query` extractors, so that malformed input is answered in our
//! problem+json format with the offending field named, never with axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, FieldError};

/// A JSON body. 415 if not `application/json`, 413 if over the body limit, 400 if not JSON
/// at all, 422 with `errors[].field` if JSON of the wrong shape (unknown fields included).
/// Nesting deeper than serde_json's recursion limit (128) is a 400, never a stack overflow.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("the request body could not be read".into())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Deserializes `bytes`, turning serde's error into a field error with a JSON path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_location(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            Error::BadRequest(format!("the body is not valid JSON: {message}"))
        } else {
            let field = if path == "." { "body".to_string() } else { path };
            Error::Validation(vec![FieldError::new(field, message)])
        }
    })
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query-string parameters; a wrong type or unknown value is a 422 naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded_deserializer(query);
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "query".to_string() } else { path };
            Error::Validation(vec![FieldError::new(field, e.into_inner().to_string())])
        })
    }
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn a_wrong_type_names_its_path() {
        let Err(Error::Validation(errs)) = parse_json::<Body>(br#"{"items":[{"quantity":1},{"quantity":"x"}]}"#) else {
            panic!("expected a validation error")
        };
        assert_eq!(errs[0].field, "items[1].quantity");
        assert!(!errs[0].message.contains("line"));
    }

    #[test]
    fn broken_json_is_a_bad_request_and_deep_nesting_is_refused() {
        assert!(matches!(parse_json::<Body>(b"{\"items\": ["), Err(Error::BadRequest(_))));
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_json::<serde_json::Value>(deep.as_bytes()), Err(Error::BadRequest(_))));
    }
}

//! Our own `Json` and `Query` extractors, so that malformed input is answered in our
//! problem+json format with the offending field named, never with axum's plain text.
//! JSON bodies are read as the OpenAPI document means them ([`schema_rules`]): `5.0` is an
//! integer, an array is not an object.

mod schema_rules;

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
        if !is_json(&req) {
            return Err(Error::UnsupportedMediaType);
        }
        parse_json(&read_body(req, state).await?).map(Json)
    }
}

/// An optional JSON body: none at all (or only white space) is `None`, as is `null`;
/// anything else is read as [`Json`] reads it (415, 413, 400, 422 alike).
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let json = is_json(&req);
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(Error::UnsupportedMediaType);
        }
        parse_json::<Option<T>>(&bytes).map(OptionalJson)
    }
}

/// Whether the request says its body is JSON (`application/json` or `…+json`).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
        })
        .unwrap_or(false)
}

/// The whole body, within the body limit (413 beyond it).
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge
        } else {
            Error::BadRequest("the request body could not be read".into())
        }
    })
}

/// Deserializes `bytes` under the [`schema_rules`], turning serde's error into a field error
/// with a JSON path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(schema_rules::SchemaRules(&mut *de)).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, e.into_inner())
    })?;
    // Anything after the value (`{} x`) makes the body invalid JSON, as in `from_slice`.
    de.end().map_err(|e| json_error(".", e))?;
    Ok(value)
}

/// A syntax error is a 400; a value of the wrong shape a 422 naming its JSON path.
fn json_error(path: &str, inner: serde_json::Error) -> Error {
    let message = plain_words(&strip_location(&inner.to_string()));
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        Error::BadRequest(format!("the body is not valid JSON: {message}"))
    } else {
        let field = if path == "." { "body".to_string() } else { path.to_owned() };
        Error::Validation(vec![FieldError::new(field, message)])
    }
}

/// What a Rust type name means to a client.
fn describe(expected: &str) -> Option<&'static str> {
    let e = expected.trim().trim_start_matches("a ").trim_start_matches("an ");
    Some(match e {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, zero or more",
        "f32" | "f64" => "a number",
        "boolean" | "bool" => "true or false",
        "string" | "a string" | "str" => "a string",
        "UUID" | "uuid" | "Uuid" => "a UUID such as 0192f0c1-7c5e-7d2a-9f5e-2b1c3d4e5f60",
        "sequence" => "a list",
        "map" | "struct" => "an object",
        _ if e.starts_with("struct ") => "an object",
        _ if e.contains("RFC 3339") || e.contains("datetime") || e.contains("DateTime") => {
            "a date and time in RFC 3339 (2026-01-31T12:00:00Z)"
        }
        _ => return None,
    })
}

/// serde's messages in words a client can act on: `invalid type: string "x", expected i64`
/// becomes `must be a whole number, not a string`; number parse failures (`invalid digit
/// found in string`) become `must be a whole number`. Messages that name no Rust type pass
/// through.
fn plain_words(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
        && let Some(want) = describe(expected)
    {
        let found = found.split_whitespace().next().unwrap_or(found);
        let found = match found {
            "integer" | "floating" => "a number",
            "string" => "a string",
            "boolean" => "true or false",
            "sequence" => "a list",
            "map" => "an object",
            "null" => "null",
            _ => "something else",
        };
        return format!("must be {want}, not {found}");
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ")
        && let Some((_, expected)) = rest.split_once(", expected ")
        && let Some(want) = describe(expected)
    {
        return format!("must be {want}");
    }
    if msg.contains("invalid digit found in string") || msg.contains("cannot parse integer") {
        return "must be a whole number".to_owned();
    }
    if msg.contains("number too large") || msg.contains("number too small") {
        return "is out of range".to_owned();
    }
    if msg.starts_with("UUID parsing failed") || msg.contains("invalid character: expected an optional prefix") {
        return "must be a UUID such as 0192f0c1-7c5e-7d2a-9f5e-2b1c3d4e5f60".to_owned();
    }
    if msg.contains("input contains invalid characters") || msg.contains("premature end of input") {
        return "must be a date and time in RFC 3339 (2026-01-31T12:00:00Z)".to_owned();
    }
    msg.to_owned()
}

/// Path parameters; a malformed one is a 422 naming the parameter (`id: must be a UUID`),
/// never axum's plain-text 400.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        use axum::extract::path::ErrorKind as PathError;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let (field, message) = match e.kind() {
                    PathError::ParseErrorAtKey { key, expected_type, .. } => {
                        (key.clone(), describe_type(expected_type))
                    }
                    PathError::ParseError { expected_type, .. } => {
                        // One parameter deserialized as a whole: name it from the route.
                        let names: Vec<String> = axum::extract::RawPathParams::from_request_parts(parts, state)
                            .await
                            .map(|p| p.iter().map(|(k, _)| k.to_owned()).collect())
                            .unwrap_or_default();
                        let field = if names.len() == 1 { names[0].clone() } else { "path".to_owned() };
                        (field, describe_type(expected_type))
                    }
                    PathError::ParseErrorAtIndex { index, expected_type, .. } => {
                        (format!("path[{index}]"), describe_type(expected_type))
                    }
                    PathError::DeserializeError { key, message, .. } => (key.clone(), must_be(&plain_words(message))),
                    other => ("path".to_owned(), plain_words(&other.to_string())),
                };
                Err(Error::Validation(vec![FieldError::new(field, message)]))
            }
            Err(_) => Err(Error::NotFound("route")),
        }
    }
}

/// A plain-words message as a rule (`must be …`), whatever serde's wording was.
fn must_be(plain: &str) -> String {
    if plain.starts_with("must ") || plain.starts_with("is ") {
        plain.to_owned()
    } else {
        "has the wrong format".to_owned()
    }
}

/// `must be …` for a Rust type name in a path parameter (`uuid::Uuid` → a UUID).
fn describe_type(type_name: &str) -> String {
    let short = type_name.rsplit("::").next().unwrap_or(type_name);
    match describe(short) {
        Some(want) => format!("must be {want}"),
        None => "has the wrong format".to_owned(),
    }
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
            Error::Validation(vec![FieldError::new(field, plain_words(&e.into_inner().to_string()))])
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
    fn type_errors_are_told_in_plain_words() {
        let Err(Error::Validation(errs)) = parse_json::<Body>(br#"{"items":[{"quantity":"x"}]}"#) else {
            panic!("expected a validation error")
        };
        assert_eq!(errs[0].message, "must be a whole number, zero or more, not a string");
        assert_eq!(plain_words("invalid digit found in string"), "must be a whole number");
        assert_eq!(plain_words("invalid type: string \"a\", expected i64"), "must be a whole number, not a string");
        assert!(plain_words("UUID parsing failed: invalid character").contains("UUID"));
        assert_eq!(describe_type("uuid::Uuid"), "must be a UUID such as 0192f0c1-7c5e-7d2a-9f5e-2b1c3d4e5f60");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Signed {
        delta: i64,
        limit: Option<u32>,
    }

    #[test]
    fn whole_numbers_written_as_floats_are_integers_as_json_schema_says() {
        for (body, delta) in
            [(r#"{"delta": -452979.0}"#, -452_979), (r#"{"delta": 5e2}"#, 500), (r#"{"delta": -0.0}"#, 0)]
        {
            let parsed = parse_json::<Signed>(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"));
            assert_eq!(parsed.delta, delta, "{body}");
        }
        let parsed = parse_json::<Signed>(br#"{"delta": 1, "limit": 20.0}"#).expect("an optional integer too");
        assert_eq!(parsed.limit, Some(20));
        let Ok(Body { items }) = parse_json::<Body>(br#"{"items": [{"quantity": 3.0}]}"#) else {
            panic!("nested integers too")
        };
        assert_eq!(items[0].quantity, 3);
    }

    #[test]
    fn fractions_and_floats_beyond_the_exact_range_are_not_integers() {
        for body in [r#"{"delta": 2.5}"#, r#"{"delta": 1e300}"#, r#"{"delta": 9007199254740992.0}"#] {
            let Err(Error::Validation(errs)) = parse_json::<Signed>(body.as_bytes()) else { panic!("{body} accepted") };
            assert_eq!(
                (errs[0].field.as_str(), errs[0].message.as_str()),
                ("delta", "must be a whole number, not a number")
            );
        }
        let Err(Error::Validation(errs)) = parse_json::<Signed>(br#"{"delta": 1, "limit": -1.0}"#) else {
            panic!("a negative u32 accepted")
        };
        assert_eq!(errs[0].field, "limit");
    }

    #[test]
    fn an_array_is_not_an_object_at_any_depth() {
        let Err(Error::Validation(errs)) = parse_json::<Signed>(b"[1, null]") else { panic!("array accepted") };
        assert_eq!((errs[0].field.as_str(), errs[0].message.as_str()), ("body", "must be an object, not a list"));
        let Err(Error::Validation(errs)) = parse_json::<Body>(br#"{"items": [[1]]}"#) else { panic!("array accepted") };
        assert_eq!((errs[0].field.as_str(), errs[0].message.as_str()), ("items[0]", "must be an object, not a list"));
    }

    #[test]
    fn characters_after_the_value_make_the_body_invalid_json() {
        assert!(matches!(parse_json::<Signed>(br#"{"delta": 1} {}"#), Err(Error::BadRequest(_))));
        assert!(parse_json::<Signed>(b"{\"delta\": 1}\n").is_ok());
    }

    #[test]
    fn broken_json_is_a_bad_request_and_deep_nesting_is_refused() {
        assert!(matches!(parse_json::<Body>(b"{\"items\": ["), Err(Error::BadRequest(_))));
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_json::<serde_json::Value>(deep.as_bytes()), Err(Error::BadRequest(_))));
    }
}

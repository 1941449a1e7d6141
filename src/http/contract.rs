//! Completes the generated OpenAPI document with what every operation can answer because of
//! the layers around it, in one place, so the contract states every status a client can get
//! (OpenAPI 3.1; checked by `openapi-spec-validator` and schemathesis in `.ci/run`):
//!
//! - every response has a `description` (required by OpenAPI);
//! - every error response is `application/problem+json` with the `Problem` schema (RFC 9457);
//! - each operation lists the errors its surroundings produce: 400 (unreadable input), 401
//!   and 403 where credentials may be sent, 404 where a path names a resource, 413/415 for
//!   bodies, 422 for invalid input, 429 (rate limits), 500 and 503 (timeouts, a database that
//!   cannot be reached);
//! - responses that can carry them declare `RateLimit`, `RateLimit-Policy`, `Retry-After`
//!   and `WWW-Authenticate`.
//!
//! What a handler documents itself (its success bodies, its domain errors with their
//! descriptions) is kept as it is.

use serde_json::{Map, Value, json};

use super::problem::PROBLEM_JSON;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No Content",
        "304" => "Not Modified: the representation matches `If-None-Match`",
        "400" => "The request could not be read (malformed JSON, an unreadable body)",
        "401" => "No valid credentials: missing, malformed, expired or revoked token or API key",
        "402" => "The payment was declined",
        "403" => "The caller's role or API-key scope does not allow this",
        "404" => "No such resource, or not the caller's to see",
        "409" => "The resource's state does not allow this",
        "412" => "The resource changed since the `If-Match` ETag was read",
        "413" => "The request body is too large",
        "415" => "The request body must be `application/json`",
        "422" => "Invalid input: `errors[]` names each field and the rule it breaks",
        "429" => "Too many requests: see `Retry-After` and `RateLimit`",
        "500" => "An internal error (its cause is logged, never sent)",
        "503" => {
            "Unavailable for a moment (timeout, database or payment provider unreachable, draining): see `Retry-After`"
        }
        _ => "Response",
    }
}

fn header(description: &str, schema: Value) -> Value {
    json!({ "description": description, "schema": schema })
}

fn problem_content() -> Value {
    json!({ PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } })
}

/// Adds what `openapi` leaves out; see the module docs. Infallible on documents utoipa
/// generates (anything unexpected is left alone).
pub fn complete(openapi: &mut Value) {
    let Some(paths) = openapi.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let limited = path.starts_with("/api/v1");
        let Some(item) = item.as_object_mut() else { continue };
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                complete_operation(op, method, limited);
                if method == "post" && super::idempotency::covers(path) {
                    document_idempotency(op);
                }
            }
        }
    }
}

fn complete_operation(op: &mut Map<String, Value>, method: &str, limited: bool) {
    let params = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let has_path_param = params.iter().any(|p| p["in"] == "path");
    let has_params = !params.is_empty();
    let has_body = op.contains_key("requestBody");
    let security = op.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
    // Credentials may be sent to any /api/v1 operation; a bad one is a 401 everywhere.
    let secured = !security.is_empty();

    let mut wanted: Vec<&str> = vec!["400"];
    if limited {
        wanted.push("401");
    }
    if secured {
        wanted.push("403");
    }
    if has_path_param {
        wanted.push("404");
    }
    if has_body {
        wanted.extend(["413", "415"]);
    }
    if has_body || has_params {
        wanted.push("422");
    }
    if limited {
        wanted.push("429");
    }
    wanted.extend(["500", "503"]);
    let _ = method;

    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    for status in wanted {
        responses.entry(status).or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else { continue };
        if response.contains_key("$ref") {
            continue;
        }
        let is_error = status.starts_with('4') || status.starts_with('5');
        let needs_description = response.get("description").and_then(Value::as_str).is_none_or(str::is_empty);
        if needs_description {
            response.insert("description".into(), default_description(status).into());
        }
        if is_error {
            // Error bodies are problem+json, whatever the handler's annotation said.
            response.insert("content".into(), problem_content());
        }
        let headers = response.entry("headers").or_insert_with(|| json!({}));
        let Some(headers) = headers.as_object_mut() else { continue };
        if limited {
            headers.entry("RateLimit").or_insert_with(|| {
                header(
                    "Requests left and seconds until more (draft-ietf-httpapi-ratelimit-headers-10)",
                    json!({ "type": "string" }),
                )
            });
            headers.entry("RateLimit-Policy").or_insert_with(|| {
                header("Quota and window of the operation's rate-limit class", json!({ "type": "string" }))
            });
        }
        if status == "429" || status == "503" {
            headers.entry("Retry-After").or_insert_with(|| {
                header("Seconds to wait before retrying (RFC 9110 §10.2.3)", json!({ "type": "integer", "minimum": 1 }))
            });
        }
        if status == "401" {
            headers.entry("WWW-Authenticate").or_insert_with(|| {
                header(
                    "The scheme to authenticate with: `Bearer` (RFC 9110 §11.6.1, RFC 6750 §3)",
                    json!({ "type": "string" }),
                )
            });
        }
        if headers.is_empty() {
            response.remove("headers");
        }
    }
}

/// A `POST` the idempotency layer covers (`http/idempotency.rs`): the `Idempotency-Key`
/// header, its 409 (still running) and 422 (reused for another request, or malformed), and
/// `Idempotent-Replayed` on every answer (a replay repeats errors too).
fn document_idempotency(op: &mut Map<String, Value>) {
    let params = op.entry("parameters").or_insert_with(|| json!([]));
    if let Some(params) = params.as_array_mut()
        && !params.iter().any(|p| {
            p["in"] == "header" && p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
        })
    {
        params.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "1 to 255 visible ASCII characters (e.g. a UUID): a retry with the same key and the \
                same request gets the first answer again (draft-ietf-httpapi-idempotency-key-header; docs/API.md)",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$" }
        }));
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { return };
    responses.entry("409").or_insert_with(|| {
        json!({ "description": "The first request with this `Idempotency-Key` is still running", "content": problem_content() })
    });
    responses
        .entry("422")
        .or_insert_with(|| json!({ "description": default_description("422"), "content": problem_content() }));
    for response in responses.values_mut() {
        let Some(response) = response.as_object_mut() else { continue };
        if response.contains_key("$ref") {
            continue;
        }
        let headers = response.entry("headers").or_insert_with(|| json!({}));
        if let Some(headers) = headers.as_object_mut() {
            headers.entry("Idempotent-Replayed").or_insert_with(|| {
                header(
                    "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`",
                    json!({ "type": "string", "enum": ["true"] }),
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_gain_the_errors_of_their_surroundings_as_problem_json() {
        let mut doc = json!({ "paths": { "/api/v1/orders/{id}": { "get": {
            "parameters": [{ "name": "id", "in": "path" }],
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "content": { "application/json": {} } },
                "404": { "description": "not yours", "content": { "application/json": {} } }
            }
        } } } });
        complete(&mut doc);
        let r = &doc["paths"]["/api/v1/orders/{id}"]["get"]["responses"];
        for s in ["200", "400", "401", "403", "404", "422", "429", "500", "503"] {
            assert!(r[s]["description"].is_string(), "{s} lacks a description: {r}");
        }
        assert_eq!(r["404"]["description"], "not yours", "a handler's own description stays");
        assert!(r["404"]["content"][PROBLEM_JSON].is_object());
        assert!(r["404"]["content"]["application/json"].is_null());
        assert!(r["401"]["headers"]["WWW-Authenticate"].is_object());
        assert!(r["429"]["headers"]["Retry-After"].is_object());
        assert!(r["413"].is_null(), "no body, no 413");
    }
}

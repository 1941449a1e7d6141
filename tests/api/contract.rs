//! The OpenAPI document is a complete contract: every response described, every error
//! problem+json, no reference to nothing; and what it says about 401s is what the server does.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.extend(v.as_str().map(str::to_owned));
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_operation_describes_every_response_and_errors_are_problem_json() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else { continue };
            operations += 1;
            for (code, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {code}: no description"
                );
                if code.starts_with('4') || code.starts_with('5') {
                    let content = r["content"].as_object().unwrap();
                    assert!(content.contains_key("application/problem+json"), "{method} {path} {code}: {content:?}");
                    assert!(!content.contains_key("application/json"), "{method} {path} {code}");
                }
            }
            if path.starts_with("/api/v1") {
                for code in ["401", "429", "500"] {
                    assert!(responses.contains_key(code), "{method} {path} does not document {code}");
                }
            }
        }
    }
    assert!(operations >= 36, "{operations} operations");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(doc["components"]["schemas"][name].is_object(), "dangling reference {r}");
    }
}

#[tokio::test]
async fn every_401_carries_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="orderly""#);
    let res = app.client.get(app.url("/api/v1/me")).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="orderly", error="invalid_token""#);
}

#[tokio::test]
async fn a_malformed_path_id_is_a_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/v1/products/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "id", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("must be a UUID"), "{body}");
}

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

/// The schema of `name` in component `component` (`$ref`s and `oneOf` with `null` are not
/// followed: the bounds sit on the property itself).
fn property<'a>(doc: &'a Value, component: &str, name: &str) -> &'a Value {
    let p = &doc["components"]["schemas"][component]["properties"][name];
    assert!(p.is_object(), "{component}.{name} is not documented");
    p
}

#[tokio::test]
async fn the_document_states_the_bounds_the_server_enforces() {
    use orderly::{inventory, money, orders::cart, pagination};
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json", None).await;

    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["name"] == "limit") {
                lists += 1;
                assert_eq!(p["schema"]["minimum"], 1, "{method} {path}");
                assert_eq!(p["schema"]["maximum"], pagination::MAX_PAGE_SIZE, "{method} {path}");
            }
        }
    }
    assert!(lists >= 4, "{lists} list operations");

    let price = property(&doc, "CreateProductRequest", "price_minor");
    assert_eq!((&price["minimum"], &price["maximum"]), (&Value::from(0), &Value::from(money::MAX_PRICE_MINOR)));
    assert_eq!(property(&doc, "CreateProductRequest", "initial_stock")["maximum"], inventory::MAX_STOCK);
    let delta = &property(&doc, "AdjustmentRequest", "delta")["oneOf"];
    assert_eq!(delta[0]["minimum"], -inventory::MAX_DELTA);
    assert_eq!(delta[1]["maximum"], inventory::MAX_DELTA);
    assert_eq!(property(&doc, "LineItemRequest", "quantity")["maximum"], cart::MAX_QUANTITY);
    assert_eq!(property(&doc, "PlaceOrderRequest", "line_items")["maxItems"], cart::MAX_LINES);
    assert_eq!(
        property(&doc, "RotateApiKeyRequest", "overlap_secs")["maximum"],
        orderly::auth::accounts::Overlap::MAX_SECS
    );
    let password = property(&doc, "RegisterRequest", "password");
    assert_eq!((&password["minLength"], &password["maxLength"]), (&Value::from(8), &Value::from(128)));
    assert_eq!(property(&doc, "RegisterRequest", "email")["format"], "email");
    for code in property(&doc, "CreateProductRequest", "currency")["enum"].as_array().unwrap() {
        assert!(money::Currency::parse(code.as_str().unwrap()).is_ok(), "{code} is documented but refused");
    }
}

#[tokio::test]
async fn limits_at_the_documented_bounds_are_accepted_and_beyond_them_refused() {
    let app = TestApp::spawn().await;
    for (limit, want) in [
        (1, StatusCode::OK),
        (100, StatusCode::OK),
        (0, StatusCode::UNPROCESSABLE_ENTITY),
        (101, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, _) = app.get(&format!("/api/v1/products?limit={limit}"), None).await;
        assert_eq!(status, want, "limit={limit}");
    }
}

#[tokio::test]
async fn a_price_range_with_its_minimum_above_its_maximum_is_empty_not_an_error() {
    let app = TestApp::spawn().await;
    let (status, page) = app.get("/api/v1/products?min_price=500&max_price=100", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"], Value::Array(vec![]));
}

#[tokio::test]
async fn a_json_array_is_not_an_object_even_when_every_field_is_optional() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app.register_customer("arrays@example.com").await;
    let (status, body) = app.patch("/api/v1/me", Some(&token), &serde_json::json!([null, null])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "body");
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer_as_json_schema_says() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "WHOLE-1", 250, 10).await;
    let (token, _, _) = app.register_customer("floats@example.com").await;
    let (status, order) = app
        .post("/api/v1/orders", Some(&token), &serde_json::json!({"line_items": [{"sku": "WHOLE-1", "quantity": 2.0}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["line_items"][0]["quantity"], 2);
    let (status, body) = app
        .post("/api/v1/orders", Some(&token), &serde_json::json!({"line_items": [{"sku": "WHOLE-1", "quantity": 2.5}]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "line_items[0].quantity");
}

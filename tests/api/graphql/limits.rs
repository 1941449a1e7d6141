//! Depth, complexity and alias limits: refused after parsing, before any resolver runs
//! (no SQL at all), and the body limit.

use serde_json::json;

use super::*;

/// `{ a0: me { id } a1: me { id } … }` with `n` aliases: each would cost a query.
fn aliased(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: me {{ id }}")).collect();
    format!("{{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn a_query_with_100_aliases_is_refused_before_any_resolver_runs() {
    let app = counting_app().await;
    let shop = shop(&app).await;
    let (status, body) = gql(&app, Some(&shop.customer), &aliased(100), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "too-many-aliases");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(body["extensions"]["sqlQueries"], 0, "no resolver ran");
    // Aliases hidden in a fragment spread many times count where they are spread.
    let fields: Vec<String> = (0..12).map(|i| format!("f{i}: me {{ id }}")).collect();
    let q = format!("{{ ...F ...F ...F }} fragment F on Query {{ {} }}", fields.join(" "));
    let (_, body) = gql(&app, Some(&shop.customer), &q, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["reason"], "too-many-aliases", "{body}");
    // 30 (the default limit) are fine.
    let (_, body) = gql(&app, Some(&shop.customer), &aliased(30), json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["a29"]["id"], shop.customer_id.as_str());
}

#[tokio::test]
async fn a_query_nested_past_the_depth_limit_is_refused_before_any_resolver_runs() {
    let app = TestApp::spawn_with(Options {
        config: vec![("graphql.max_depth", "4".into()), ("graphql.report_sql_queries", "true".into())],
        ..Default::default()
    })
    .await;
    let shop = shop(&app).await;
    // `me` alone would run a query; `orders … product … id` is 6 deep.
    let q = "{ me { id } orders { edges { node { lineItems { product { id } } } } } }";
    let (status, body) = gql(&app, Some(&shop.customer), q, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{body}");
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    assert!(body["data"].is_null());
    assert_eq!(body["extensions"]["sqlQueries"], 0, "no resolver ran");
    let (_, body) = gql(&app, Some(&shop.customer), "{ me { id } orders { edges { cursor } } }", json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn standard_introspection_passes_the_default_limits() {
    // As deep as graphql-js's `getIntrospectionQuery` TypeRef (what gql and GraphiQL send):
    // introspection is bounded by the schema, so the depth limit leaves it alone.
    let app = TestApp::spawn().await;
    let q = "{ __schema { types { name fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } } } }";
    let d = data(&app, None, q, json!({})).await;
    assert!(d["__schema"]["types"].as_array().unwrap().iter().any(|t| t["name"] == "Order"));
}

#[tokio::test]
async fn an_expensive_page_is_refused_by_complexity() {
    let app = counting_app().await;
    // 100 products × 8 fields > 500.
    let q =
        "{ products(first: 100) { edges { cursor node { id sku name description priceMinor currency available } } } }";
    let (_, body) = gql(&app, None, q, json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{body}");
    assert_eq!(body["extensions"]["sqlQueries"], 0);
    let (_, body) = gql(&app, None, "{ products(first: 20) { edges { node { id sku } } } }", json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let app =
        TestApp::spawn_with(Options { config: vec![("graphql.introspection", "false".into())], ..Default::default() })
            .await;
    let (_, body) = gql(&app, None, "{ __schema { queryType { name } } }", json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "the schema stays hidden: {body}");
    let on = TestApp::spawn().await;
    let d = data(&on, None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(d["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let app =
        TestApp::spawn_with(Options { config: vec![("http.max_body_bytes", "2048".into())], ..Default::default() })
            .await;
    let big = "x".repeat(4096);
    let (status, _) =
        gql(&app, None, &format!("{{ products(q: \"{big}\") {{ edges {{ cursor }} }} }}"), json!({})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

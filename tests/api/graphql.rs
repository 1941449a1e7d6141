//! GraphQL at `/graphql`: queries, mutations, authorization through the services, limits,
//! the DataLoader's query count, subscriptions over `graphql-transport-ws`, the committed
//! SDL, and GraphiQL served offline.

mod dataloader;
mod limits;
mod mutations;
mod page;
mod queries;
mod schema;
mod subscriptions;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{GOOD_CARD, Options, TestApp};

/// A shop: staff, one customer, one product in stock.
pub struct Shop {
    pub staff: String,
    pub customer: String,
    pub customer_id: String,
    pub sku: String,
    pub product_id: String,
}

pub async fn shop(app: &TestApp) -> Shop {
    let staff = app.staff().await;
    let email = format!("c-{}@example.com", uuid::Uuid::new_v4().simple());
    let (customer, customer_id, _) = app.register_customer(&email).await;
    let sku = format!("GQL-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let product = app.create_product(&staff, &sku, 1250, 100).await;
    let product_id = product["id"].as_str().unwrap().to_owned();
    Shop { staff, customer, customer_id, sku, product_id }
}

/// An app that reports `extensions.sqlQueries`.
pub async fn counting_app() -> TestApp {
    TestApp::spawn_with(Options { config: vec![("graphql.report_sql_queries", "true".into())], ..Default::default() })
        .await
}

/// POSTs one operation; returns the HTTP status and the response document.
pub async fn gql(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// The data of a successful operation; panics with the errors otherwise.
pub async fn data(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let (status, body) = gql(app, token, query, variables).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Places a paid order of one unit through GraphQL; returns its id.
pub async fn checkout(app: &TestApp, token: &str, sku: &str, card: Option<&str>) -> String {
    let mut input = json!({ "lineItems": [{ "sku": sku, "quantity": 1 }] });
    if let Some(c) = card {
        input["payment"] = json!({ "cardNumber": c });
    }
    let d = data(
        app,
        Some(token),
        "mutation($i: CheckoutInput!) { checkout(input: $i) { id status } }",
        json!({ "i": input }),
    )
    .await;
    d["checkout"]["id"].as_str().unwrap().to_owned()
}

pub const CARD: &str = GOOD_CARD;

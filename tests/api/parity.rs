//! One scenario through REST, GraphQL and gRPC, expecting the same outcome from each: log
//! in, browse, check out, read the order, cancel it, cancel it again, try another
//! customer's order, try a staff-only change. All three transports call the same service
//! functions with the same principal, so any difference here is a rule re-implemented (or
//! forgotten) in a transport.
//!
//! Outcomes are normalised to transport-free words: an order status in snake case, or an
//! error family (`not_found`, `conflict`, `forbidden`, `invalid`) from each protocol's own
//! code (HTTP status, GraphQL `extensions.code`, gRPC status code).

use orderly::grpc::pb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

use crate::graphql::gql;
use crate::grpc::{authed, order_of};
use crate::helpers::TestApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Rest,
    Graphql,
    Grpc,
}

/// What one step gave, in transport-free words.
type Outcome = String;

fn family_of_http(status: StatusCode) -> Outcome {
    match status.as_u16() {
        404 => "not_found",
        409 => "conflict",
        403 => "forbidden",
        401 => "unauthenticated",
        400 | 422 => "invalid",
        _ => return format!("http {status}"),
    }
    .to_owned()
}

fn family_of_graphql(body: &Value) -> Outcome {
    match body["errors"][0]["extensions"]["code"].as_str() {
        Some("NOT_FOUND") => "not_found",
        Some("CONFLICT") => "conflict",
        Some("FORBIDDEN") => "forbidden",
        Some("UNAUTHENTICATED") => "unauthenticated",
        Some("BAD_USER_INPUT") => "invalid",
        _ => return format!("graphql {body}"),
    }
    .to_owned()
}

fn family_of_grpc(status: &tonic::Status) -> Outcome {
    match status.code() {
        Code::NotFound => "not_found",
        Code::FailedPrecondition | Code::Aborted => "conflict",
        Code::PermissionDenied => "forbidden",
        Code::Unauthenticated => "unauthenticated",
        Code::InvalidArgument => "invalid",
        _ => return format!("grpc {status:?}"),
    }
    .to_owned()
}

/// `PENDING_PAYMENT`, `ORDER_STATUS_PENDING_PAYMENT` and `pending_payment` are one status.
fn status_word(raw: &str) -> Outcome {
    raw.trim_start_matches("ORDER_STATUS_").to_ascii_lowercase()
}

/// The order's id and outcome (`status total currency lines`) or the error family.
fn order_outcome(
    id: Option<&str>,
    status: &str,
    total: i64,
    currency: &str,
    lines: usize,
) -> (Option<String>, Outcome) {
    (id.map(str::to_owned), format!("{} {total} {currency} {lines}", status_word(status)))
}

struct Client<'a> {
    app: &'a TestApp,
    transport: Transport,
}

impl Client<'_> {
    /// Browses for `sku`: its price and currency as the catalog shows them.
    async fn browse(&self, sku: &str) -> Outcome {
        match self.transport {
            Transport::Rest => {
                let (status, page) = self.app.get(&format!("/api/v1/products?q={sku}"), None).await;
                assert_eq!(status, StatusCode::OK, "{page}");
                let p = &page["items"][0];
                format!(
                    "{} {} {}",
                    p["sku"].as_str().unwrap_or_default(),
                    p["price_minor"],
                    p["currency"].as_str().unwrap_or_default()
                )
            }
            Transport::Graphql => {
                let q =
                    "query($q: String) { products(first: 5, q: $q) { edges { node { sku priceMinor currency } } } }";
                let (_, body) = gql(self.app, None, q, json!({ "q": sku })).await;
                let p = &body["data"]["products"]["edges"][0]["node"];
                format!(
                    "{} {} {}",
                    p["sku"].as_str().unwrap_or_default(),
                    p["priceMinor"],
                    p["currency"].as_str().unwrap_or_default()
                )
            }
            Transport::Grpc => {
                let mut c = crate::grpc::catalog(self.app).await;
                let req = pb::ListProductsRequest { q: Some(sku.to_owned()), limit: 5, ..Default::default() };
                let page = c.list_products(req).await.expect("list products").into_inner();
                let p = &page.products[0];
                format!("{} {} {}", p.sku, p.price_minor, p.currency)
            }
        }
    }

    /// Checks out `quantity` units of `sku` without paying.
    async fn checkout(&self, token: &str, sku: &str, quantity: i64) -> (Option<String>, Outcome) {
        match self.transport {
            Transport::Rest => {
                let (status, o) = self.app.place_order(token, sku, quantity, None).await;
                if !status.is_success() {
                    return (None, family_of_http(status));
                }
                let lines = o["line_items"].as_array().map_or(0, Vec::len);
                let total = o["total_minor"].as_i64().unwrap_or_default();
                order_outcome(
                    o["id"].as_str(),
                    o["status"].as_str().unwrap_or_default(),
                    total,
                    o["currency"].as_str().unwrap_or_default(),
                    lines,
                )
            }
            Transport::Graphql => {
                let m = "mutation($i: CheckoutInput!) { checkout(input: $i) { id status totalMinor currency lineItems { sku } } }";
                let input = json!({ "lineItems": [{ "sku": sku, "quantity": quantity }] });
                let (_, body) = gql(self.app, Some(token), m, json!({ "i": input })).await;
                let o = &body["data"]["checkout"];
                if o.is_null() {
                    return (None, family_of_graphql(&body));
                }
                let lines = o["lineItems"].as_array().map_or(0, Vec::len);
                let total = o["totalMinor"].as_i64().unwrap_or_default();
                order_outcome(
                    o["id"].as_str(),
                    o["status"].as_str().unwrap_or_default(),
                    total,
                    o["currency"].as_str().unwrap_or_default(),
                    lines,
                )
            }
            Transport::Grpc => {
                let mut c = crate::grpc::orders(self.app).await;
                match c.place_order(authed(order_of(sku, quantity, None), token)).await {
                    Ok(o) => {
                        let o = o.into_inner();
                        let status = o.status().as_str_name().to_owned();
                        order_outcome(Some(&o.id), &status, o.total_minor, &o.currency, o.line_items.len())
                    }
                    Err(e) => (None, family_of_grpc(&e)),
                }
            }
        }
    }

    /// Reads an order: its status, or the error family.
    async fn read(&self, token: &str, id: &str) -> Outcome {
        match self.transport {
            Transport::Rest => match self.app.get(&format!("/api/v1/orders/{id}"), Some(token)).await {
                (StatusCode::OK, o) => status_word(o["status"].as_str().unwrap_or_default()),
                (status, _) => family_of_http(status),
            },
            Transport::Graphql => {
                let (_, body) =
                    gql(self.app, Some(token), "query($id: ID!) { order(id: $id) { status } }", json!({ "id": id }))
                        .await;
                match body["data"]["order"]["status"].as_str() {
                    Some(s) => status_word(s),
                    None => family_of_graphql(&body),
                }
            }
            Transport::Grpc => {
                let mut c = crate::grpc::orders(self.app).await;
                match c.get_order(authed(pb::GetOrderRequest { id: id.to_owned() }, token)).await {
                    Ok(o) => status_word(o.into_inner().status().as_str_name()),
                    Err(e) => family_of_grpc(&e),
                }
            }
        }
    }

    /// Cancels an order: the new status, or the error family.
    async fn cancel(&self, token: &str, id: &str) -> Outcome {
        match self.transport {
            Transport::Rest => {
                match self.app.post(&format!("/api/v1/orders/{id}/cancel"), Some(token), &json!({})).await {
                    (StatusCode::OK, o) => status_word(o["status"].as_str().unwrap_or_default()),
                    (status, _) => family_of_http(status),
                }
            }
            Transport::Graphql => {
                let (_, body) = gql(
                    self.app,
                    Some(token),
                    "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
                    json!({ "id": id }),
                )
                .await;
                match body["data"]["cancelOrder"]["status"].as_str() {
                    Some(s) => status_word(s),
                    None => family_of_graphql(&body),
                }
            }
            Transport::Grpc => {
                let mut c = crate::grpc::orders(self.app).await;
                match c.cancel_order(authed(pb::OrderActionRequest { id: id.to_owned() }, token)).await {
                    Ok(o) => status_word(o.into_inner().status().as_str_name()),
                    Err(e) => family_of_grpc(&e),
                }
            }
        }
    }

    /// A staff-only change (creating a product) attempted with `token`.
    async fn create_product(&self, token: &str, sku: &str) -> Outcome {
        match self.transport {
            Transport::Rest => {
                let body = json!({ "sku": sku, "name": "Parity", "price_minor": 100, "currency": "USD" });
                match self.app.post("/api/v1/products", Some(token), &body).await {
                    (status, _) if status.is_success() => "created".to_owned(),
                    (status, _) => family_of_http(status),
                }
            }
            Transport::Graphql => {
                let m = "mutation($i: CreateProductInput!) { createProduct(input: $i) { id } }";
                let input = json!({ "sku": sku, "name": "Parity", "priceMinor": 100, "currency": "USD" });
                let (_, body) = gql(self.app, Some(token), m, json!({ "i": input })).await;
                if body["data"]["createProduct"]["id"].is_string() {
                    "created".to_owned()
                } else {
                    family_of_graphql(&body)
                }
            }
            Transport::Grpc => {
                let mut c = crate::grpc::catalog(self.app).await;
                let req = pb::CreateProductRequest {
                    sku: sku.to_owned(),
                    name: "Parity".into(),
                    price_minor: 100,
                    currency: "USD".into(),
                    ..Default::default()
                };
                match c.create_product(authed(req, token)).await {
                    Ok(_) => "created".to_owned(),
                    Err(e) => family_of_grpc(&e),
                }
            }
        }
    }
}

/// The scenario, run through `transport` with its own customers and product; returns each
/// step's outcome, named.
async fn scenario(app: &TestApp, staff: &str, transport: Transport) -> Vec<(&'static str, Outcome)> {
    let tag = format!("{transport:?}").to_ascii_uppercase();
    let sku = format!("PAR-{tag}");
    let product = app.create_product(staff, &sku, 1250, 10).await;
    let product_id = product["id"].as_str().expect("product id").to_owned();
    app.register_customer(&format!("ann-{tag}@example.com").to_ascii_lowercase()).await;
    let ann = app.login(&format!("ann-{tag}@example.com").to_ascii_lowercase()).await;
    let (bob, _, _) = app.register_customer(&format!("bob-{tag}@example.com").to_ascii_lowercase()).await;
    let c = Client { app, transport };

    let mut out = vec![("browse", c.browse(&sku).await.replace(&sku, "<sku>"))];
    let (order, placed) = c.checkout(&ann, &sku, 2).await;
    out.push(("checkout", placed));
    let order = order.expect("the checkout made an order");
    out.push(("stock after checkout", format!("{:?}", app.stock(staff, &product_id).await)));
    out.push(("read own order", c.read(&ann, &order).await));
    out.push(("another customer reads it", c.read(&bob, &order).await));
    out.push(("another customer cancels it", c.cancel(&bob, &order).await));
    out.push(("cancel own order", c.cancel(&ann, &order).await));
    out.push(("cancel it again", c.cancel(&ann, &order).await));
    out.push(("stock after cancel", format!("{:?}", app.stock(staff, &product_id).await)));
    out.push(("a missing order", c.read(&ann, &uuid::Uuid::now_v7().to_string()).await));
    out.push(("more than in stock", c.checkout(&ann, &sku, 11).await.1));
    out.push(("a customer creates a product", c.create_product(&ann, &format!("{sku}-X")).await));
    out.push(("staff creates a product", c.create_product(staff, &format!("{sku}-Y")).await));
    out
}

#[tokio::test]
async fn rest_graphql_and_grpc_give_the_same_outcome_for_the_same_scenario() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let rest = scenario(&app, &staff, Transport::Rest).await;
    // The expected outcome, spelled out once so a change shows in review.
    let expected: Vec<(&str, Outcome)> = [
        ("browse", "<sku> 1250 USD"),
        ("checkout", "pending_payment 2500 USD 1"),
        ("stock after checkout", "(10, 2, 8)"),
        ("read own order", "pending_payment"),
        ("another customer reads it", "not_found"),
        ("another customer cancels it", "not_found"),
        ("cancel own order", "cancelled"),
        ("cancel it again", "conflict"),
        ("stock after cancel", "(10, 0, 10)"),
        ("a missing order", "not_found"),
        ("more than in stock", "conflict"),
        ("a customer creates a product", "forbidden"),
        ("staff creates a product", "created"),
    ]
    .into_iter()
    .map(|(step, outcome)| (step, outcome.to_owned()))
    .collect();
    assert_eq!(rest, expected, "REST");
    assert_eq!(scenario(&app, &staff, Transport::Graphql).await, expected, "GraphQL");
    assert_eq!(scenario(&app, &staff, Transport::Grpc).await, expected, "gRPC");
}

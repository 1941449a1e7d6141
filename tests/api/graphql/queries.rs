//! Queries: the product connection, categories, orders (own or all), me, dashboard.

use serde_json::json;

use super::*;

const PRODUCTS: &str = "query($first: Int, $after: String, $q: String, $min: Long, $sort: ProductSort) {
  products(first: $first, after: $after, q: $q, minPrice: $min, sort: $sort) {
    edges { cursor node { id sku priceMinor currency available status } }
    pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn products_page_forward_with_cursors_and_filter_like_rest() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    for (sku, price) in [("PA-1", 100), ("PA-2", 200), ("PB-3", 300)] {
        app.create_product(&staff, sku, price, 5).await;
    }
    let vars = json!({ "first": 2, "sort": "PRICE" });
    let first = data(&app, None, PRODUCTS, vars).await["products"].clone();
    let skus: Vec<&str> =
        first["edges"].as_array().unwrap().iter().map(|e| e["node"]["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, ["PA-1", "PA-2"]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["endCursor"], first["edges"][1]["cursor"]);
    assert_eq!(first["edges"][0]["node"]["priceMinor"], 100);

    let after = first["pageInfo"]["endCursor"].clone();
    let rest =
        data(&app, None, PRODUCTS, json!({ "first": 2, "after": after, "sort": "PRICE" })).await["products"].clone();
    assert_eq!(rest["edges"].as_array().unwrap().len(), 1);
    assert_eq!(rest["edges"][0]["node"]["sku"], "PB-3");
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    // An edge's own cursor continues right after it.
    let mid = first["edges"][0]["cursor"].clone();
    let next = data(&app, None, PRODUCTS, json!({ "first": 1, "after": mid, "sort": "PRICE" })).await;
    assert_eq!(next["products"]["edges"][0]["node"]["sku"], "PA-2");

    let filtered = data(&app, None, PRODUCTS, json!({ "q": "pa-", "min": 150 })).await;
    let edges = filtered["products"]["edges"].as_array().unwrap();
    assert_eq!((edges.len(), edges[0]["node"]["sku"].as_str()), (1, Some("PA-2")));

    // The service's page bounds, named as this schema names them.
    let (_, body) = gql(&app, None, PRODUCTS, json!({ "first": 0 })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["fields"][0]["field"], "first");
    // A cursor of another sort order is refused, as in REST.
    let (_, body) = gql(&app, None, PRODUCTS, json!({ "after": after, "sort": "NAME" })).await;
    assert_eq!(body["errors"][0]["extensions"]["fields"][0]["field"], "after");
}

#[tokio::test]
async fn customers_cannot_list_archived_products_and_unknown_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let (_, body) =
        gql(&app, Some(&shop.customer), "{ products(status: ARCHIVED) { edges { cursor } } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let q = "query($id: ID!) { product(id: $id) { sku } }";
    let (_, body) = gql(&app, None, q, json!({ "id": uuid::Uuid::now_v7().to_string() })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    let (_, body) = gql(&app, None, q, json!({ "id": "not-a-uuid" })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let d = data(&app, None, q, json!({ "id": shop.product_id })).await;
    assert_eq!(d["product"]["sku"], shop.sku);
}

#[tokio::test]
async fn customers_see_their_own_orders_and_staff_see_everyones() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let (other, _, _) = app.register_customer("other-gql@example.com").await;
    let mine = checkout(&app, &shop.customer, &shop.sku, Some(CARD)).await;
    let theirs = checkout(&app, &other, &shop.sku, None).await;
    let q =
        "{ orders { edges { node { id status customerId totalMinor lineItems { sku quantity unitPriceMinor } } } } }";

    let d = data(&app, Some(&shop.customer), q, json!({})).await;
    let ids: Vec<&str> =
        d["orders"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.as_str()]);
    let node = &d["orders"]["edges"][0]["node"];
    assert_eq!((node["status"].as_str(), node["totalMinor"].as_i64()), (Some("PAID"), Some(1250)));
    assert_eq!(node["lineItems"][0]["sku"], shop.sku);

    let d = data(&app, Some(&shop.staff), q, json!({})).await;
    let ids: Vec<&str> =
        d["orders"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [theirs.as_str(), mine.as_str()], "newest first");

    // A customer asking for another customer's orders: the service's 403.
    let (_, body) = gql(
        &app,
        Some(&other),
        "query($c: ID) { orders(customerId: $c) { edges { cursor } } }",
        json!({ "c": shop.customer_id }),
    )
    .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn another_customers_order_is_not_found_as_in_rest() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let (other, _, _) = app.register_customer("nosy-gql@example.com").await;
    let id = checkout(&app, &shop.customer, &shop.sku, None).await;
    let (status, body) =
        gql(&app, Some(&other), "query($id: ID!) { order(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "NOT_FOUND");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "not-found");
    assert_eq!(body["errors"][0]["path"], json!(["order"]));
    assert!(body["data"].is_null());
    // Nor can they cancel it: nothing changes.
    let (_, body) =
        gql(&app, Some(&other), "mutation($id: ID!) { cancelOrder(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    let d =
        data(&app, Some(&shop.customer), "query($id: ID!) { order(id: $id) { status } }", json!({ "id": id })).await;
    assert_eq!(d["order"]["status"], "PENDING_PAYMENT");
}

#[tokio::test]
async fn me_needs_credentials_and_a_bad_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let d = data(&app, Some(&shop.customer), "{ me { id role } }", json!({})).await;
    assert_eq!((d["me"]["id"].as_str(), d["me"]["role"].as_str()), (Some(shop.customer_id.as_str()), Some("customer")));
    let (_, body) = gql(&app, None, "{ me { id } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let (_, body) = gql(&app, Some("not-a-token"), "{ products { edges { cursor } } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "invalid-token");
}

#[tokio::test]
async fn the_dashboard_is_for_staff_only() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    checkout(&app, &shop.customer, &shop.sku, Some(CARD)).await;
    let q = "{ dashboard { ordersByStatus { status orders } missing } }";
    let d = data(&app, Some(&shop.staff), q, json!({})).await;
    let paid = d["dashboard"]["ordersByStatus"].as_array().unwrap().iter().find(|s| s["status"] == "paid").cloned();
    assert_eq!(paid.map(|p| p["orders"].clone()), Some(json!(1)));
    let (_, body) = gql(&app, Some(&shop.customer), q, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let (_, body) =
        gql(&app, Some(&shop.staff), "{ dashboard(from: \"2026-02-01\", to: \"2026-01-01\") { missing } }", json!({}))
            .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn categories_are_public() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let d =
        data(&app, Some(&shop.staff), "mutation { createCategory(name: \"Office Supplies\") { id slug } }", json!({}))
            .await;
    assert_eq!(d["createCategory"]["slug"], "office-supplies");
    let d = data(&app, None, "{ categories { id name parentId } }", json!({})).await;
    assert_eq!(d["categories"][0]["name"], "Office Supplies");
}

//! A page of orders with their lines and each line's product costs the same, small number
//! of SQL queries whatever the page size (DataLoader; counted per request by `db::counter`).

use serde_json::json;

use super::*;

const PAGE: &str = "{ orders(first: 50) { edges { node { id lineItems { sku product { id sku available } } } } } }";

/// The page's order count and the request's SQL query count.
async fn page(app: &TestApp, token: &str) -> (usize, u64) {
    let (_, body) = gql(app, Some(token), PAGE, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let orders = body["data"]["orders"]["edges"].as_array().unwrap();
    for o in orders {
        for line in o["node"]["lineItems"].as_array().unwrap() {
            assert_eq!(line["product"]["sku"], line["sku"], "each line has its product");
        }
    }
    (orders.len(), body["extensions"]["sqlQueries"].as_u64().expect("sqlQueries"))
}

#[tokio::test]
async fn a_page_of_orders_with_lines_and_products_costs_a_bounded_number_of_queries() {
    let app = counting_app().await;
    let shop = shop(&app).await;
    let second = app.create_product(&shop.staff, "DL-2", 300, 100).await;
    let cart = json!({ "line_items": [{ "sku": shop.sku, "quantity": 1 }, { "sku": "DL-2", "quantity": 2 }] });
    let place = |n: usize| {
        let app = &app;
        let cart = cart.clone();
        let token = shop.customer.clone();
        async move {
            for _ in 0..n {
                let (status, body) = app.post("/api/v1/orders", Some(&token), &cart).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
        }
    };
    place(2).await;
    let (small, small_queries) = page(&app, &shop.customer).await;
    place(10).await;
    let (large, large_queries) = page(&app, &shop.customer).await;
    assert_eq!((small, large), (2, 12));
    assert_eq!(small_queries, large_queries, "the count does not grow with the page");
    // The order page, its lines, and one batch of products.
    assert!(large_queries <= 3, "{large_queries} queries");
    assert!(second["id"].is_string());
}

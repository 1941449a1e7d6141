//! Mutations: checkout and order transitions, catalog and stock, each through the service
//! with the caller's principal (staff-only ones are FORBIDDEN to customers).

use serde_json::json;

use super::*;
use crate::helpers::DECLINED_CARD;

const ORDER: &str = "id status totalMinor lineItems { lineNo sku quantity lineTotalMinor product { sku } }";

#[tokio::test]
async fn checkout_pays_and_staff_ship_and_deliver() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let q = format!("mutation($i: CheckoutInput!) {{ checkout(input: $i) {{ {ORDER} }} }}");
    let input = json!({ "lineItems": [{ "sku": shop.sku, "quantity": 2 }], "payment": { "cardNumber": CARD } });
    let order = data(&app, Some(&shop.customer), &q, json!({ "i": input })).await["checkout"].clone();
    assert_eq!((order["status"].as_str(), order["totalMinor"].as_i64()), (Some("PAID"), Some(2500)));
    assert_eq!(order["lineItems"][0]["product"]["sku"], shop.sku);
    let id = order["id"].as_str().unwrap();
    assert_eq!(app.stock(&shop.staff, &shop.product_id).await, (100, 2, 98));

    let ship = "mutation($id: ID!) { shipOrder(id: $id, carrier: \"UPS\", trackingNumber: \"1Z999\") { status carrier trackingNumber } }";
    let (_, body) = gql(&app, Some(&shop.customer), ship, json!({ "id": id })).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let d = data(&app, Some(&shop.staff), ship, json!({ "id": id })).await;
    assert_eq!(d["shipOrder"], json!({ "status": "SHIPPED", "carrier": "UPS", "trackingNumber": "1Z999" }));
    let d =
        data(&app, Some(&shop.staff), "mutation($id: ID!) { deliverOrder(id: $id) { status } }", json!({ "id": id }))
            .await;
    assert_eq!(d["deliverOrder"]["status"], "DELIVERED");
    // Illegal transition: the state machine's 409, with the state the order is in.
    let (_, body) =
        gql(&app, Some(&shop.staff), "mutation($id: ID!) { refundOrder(id: $id) { status } }", json!({ "id": id }))
            .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(body["errors"][0]["extensions"]["currentStatus"], "delivered");
}

#[tokio::test]
async fn a_declined_card_is_payment_required_and_the_order_stays_payable() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let q = "mutation($i: CheckoutInput!) { checkout(input: $i) { id } }";
    let input =
        json!({ "lineItems": [{ "sku": shop.sku, "quantity": 1 }], "payment": { "cardNumber": DECLINED_CARD } });
    let (_, body) = gql(&app, Some(&shop.customer), q, json!({ "i": input })).await;
    assert_eq!(code(&body), "PAYMENT_REQUIRED");
    let id = body["errors"][0]["extensions"]["orderId"].as_str().unwrap().to_owned();
    let pay = "mutation($id: ID!, $p: PaymentInput!) { payOrder(id: $id, payment: $p) { status } }";
    let d = data(&app, Some(&shop.customer), pay, json!({ "id": id, "p": { "cardNumber": CARD } })).await;
    assert_eq!(d["payOrder"]["status"], "PAID");
    // Refund (staff): paid and unshipped.
    let d =
        data(&app, Some(&shop.staff), "mutation($id: ID!) { refundOrder(id: $id) { status } }", json!({ "id": id }))
            .await;
    assert_eq!(d["refundOrder"]["status"], "REFUNDED");
}

#[tokio::test]
async fn invalid_carts_are_bad_user_input_naming_each_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let q = "mutation($i: CheckoutInput!) { checkout(input: $i) { id } }";
    let input = json!({ "lineItems": [{ "sku": shop.sku, "quantity": 0 }, { "sku": "bad sku!", "quantity": 1 }] });
    let (_, body) = gql(&app, Some(&shop.customer), q, json!({ "i": input })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let fields: Vec<&str> = body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"lineItems[0].quantity") && fields.contains(&"lineItems[1].sku"), "{body}");
    assert_eq!(app.stock(&shop.staff, &shop.product_id).await, (100, 0, 100));
    let input = json!({ "lineItems": [{ "sku": shop.sku, "quantity": 101 }] });
    let (_, body) = gql(&app, Some(&shop.customer), q, json!({ "i": input })).await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "insufficient-stock");
}

#[tokio::test]
async fn a_customer_token_cannot_run_staff_catalog_mutations() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let create = "mutation { createProduct(input: { sku: \"NOPE-1\", name: \"Nope\", priceMinor: 1, currency: \"USD\" }) { id } }";
    let (_, body) = gql(&app, Some(&shop.customer), create, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let (_, body) = gql(&app, None, create, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let adjust = "mutation($id: ID!) { adjustStock(productId: $id, delta: 5, reason: \"restock\") { onHand } }";
    let (_, body) = gql(&app, Some(&shop.customer), adjust, json!({ "id": shop.product_id })).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let (_, body) = gql(&app, Some(&shop.customer), "mutation { createCategory(name: \"X\") { id } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");
    assert_eq!(app.stock(&shop.staff, &shop.product_id).await, (100, 0, 100));
}

#[tokio::test]
async fn staff_manage_the_catalog_and_stock_with_etags() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let create = "mutation { createProduct(input: { sku: \"BIG-1\", name: \"Big\", priceMinor: 1000000000000, currency: \"USD\", initialStock: 3 }) { id priceMinor available etag } }";
    let p = data(&app, Some(&shop.staff), create, json!({})).await["createProduct"].clone();
    assert_eq!((p["priceMinor"].as_i64(), p["available"].as_i64()), (Some(1_000_000_000_000), Some(3)));
    let (_, body) = gql(&app, Some(&shop.staff), create, json!({})).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["reason"].as_str()), ("CONFLICT", Some("sku-taken")));

    let update = "mutation($id: ID!, $m: String) { updateProduct(id: $id, input: { name: \"Bigger\" }, ifMatch: $m) { name etag } }";
    let d = data(&app, Some(&shop.staff), update, json!({ "id": p["id"], "m": p["etag"] })).await;
    assert_eq!(d["updateProduct"]["name"], "Bigger");
    // The old ETag no longer matches.
    let (_, body) = gql(&app, Some(&shop.staff), update, json!({ "id": p["id"], "m": p["etag"] })).await;
    assert_eq!(code(&body), "PRECONDITION_FAILED");

    let adjust = "mutation($id: ID!, $d: Long!) { adjustStock(productId: $id, delta: $d, reason: \"count\") { onHand reserved available } }";
    let d = data(&app, Some(&shop.staff), adjust, json!({ "id": p["id"], "d": 7 })).await;
    assert_eq!(d["adjustStock"], json!({ "onHand": 10, "reserved": 0, "available": 10 }));
    let (_, body) = gql(&app, Some(&shop.staff), adjust, json!({ "id": p["id"], "d": -11 })).await;
    assert_eq!(code(&body), "CONFLICT");
    let (_, body) = gql(&app, Some(&shop.staff), adjust, json!({ "id": p["id"], "d": 0 })).await;
    assert_eq!(
        (code(&body), body["errors"][0]["extensions"]["fields"][0]["field"].as_str()),
        ("BAD_USER_INPUT", Some("delta"))
    );
}

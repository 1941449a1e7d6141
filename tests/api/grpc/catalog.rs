//! CatalogService and InventoryService.

use orderly::grpc::pb;
use tonic::{Code, Request};

use super::{assert_status, authed, catalog, inventory};
use crate::helpers::TestApp;

#[tokio::test]
async fn anyone_can_browse_products_and_categories_and_sees_what_rest_shows() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let created = app.create_product(&staff, "GRPC-BROWSE-1", 1999, 5).await;
    app.create_product(&staff, "GRPC-BROWSE-2", 500, 1).await;
    let mut client = catalog(&app).await;

    let got = client
        .get_product(pb::GetProductRequest { id: created["id"].as_str().unwrap().into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.sku, "GRPC-BROWSE-1");
    assert_eq!(got.price_minor, 1999);
    assert_eq!(got.currency, "USD");
    assert_eq!(got.available, 5);
    assert_eq!(got.status(), pb::ProductStatus::Active);
    assert_eq!(
        got.created_at.unwrap().seconds,
        chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).unwrap().timestamp()
    );

    // Cursor pages in price order, one product per page.
    let req = pb::ListProductsRequest { sort: pb::ProductSort::Price.into(), limit: 1, ..Default::default() };
    let first = client.list_products(req.clone()).await.unwrap().into_inner();
    assert_eq!(first.products.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["GRPC-BROWSE-2"]);
    assert!(!first.next_cursor.is_empty());
    let second =
        client.list_products(pb::ListProductsRequest { cursor: first.next_cursor, ..req }).await.unwrap().into_inner();
    assert_eq!(second.products.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["GRPC-BROWSE-1"]);
    assert!(second.next_cursor.is_empty(), "the last page has no cursor");

    // Filters: a price range that only one product lies in.
    let cheap = client
        .list_products(pb::ListProductsRequest { max_price: Some(1000), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cheap.products.len(), 1);
    assert_eq!(cheap.products[0].sku, "GRPC-BROWSE-2");

    let categories = client.list_categories(pb::ListCategoriesRequest {}).await.unwrap().into_inner();
    let (_, rest) = app.get("/api/v1/categories", None).await;
    assert_eq!(categories.categories.len(), rest.as_array().unwrap().len());
}

#[tokio::test]
async fn staff_create_update_and_adjust_stock_and_customers_are_denied_without_any_change() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let (customer, _, _) = app.register_customer("grpc-denied@example.com").await;
    let mut client = catalog(&app).await;
    let new = pb::CreateProductRequest {
        sku: "GRPC-NEW".into(),
        name: "Made over gRPC".into(),
        price_minor: 250,
        currency: "EUR".into(),
        initial_stock: 3,
        ..Default::default()
    };

    let denied = client.create_product(authed(new.clone(), &customer)).await.unwrap_err();
    assert_status(&denied, Code::PermissionDenied, "forbidden");
    let anonymous = client.create_product(Request::new(new.clone())).await.unwrap_err();
    assert_status(&anonymous, Code::Unauthenticated, "unauthenticated");
    let (_, page) = app.get("/api/v1/products", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "nothing was created");

    let product = client.create_product(authed(new, &staff)).await.unwrap().into_inner();
    assert_eq!((product.sku.as_str(), product.available, product.currency.as_str()), ("GRPC-NEW", 3, "EUR"));
    let again = pb::CreateProductRequest {
        sku: "GRPC-NEW".into(),
        name: "x".into(),
        currency: "EUR".into(),
        ..Default::default()
    };
    assert_status(
        &client.create_product(authed(again, &staff)).await.unwrap_err(),
        Code::FailedPrecondition,
        "sku-taken",
    );

    let patch = pb::UpdateProductRequest { id: product.id.clone(), price_minor: Some(300), ..Default::default() };
    assert_status(
        &client.update_product(authed(patch.clone(), &customer)).await.unwrap_err(),
        Code::PermissionDenied,
        "forbidden",
    );
    let stale = pb::UpdateProductRequest { if_match: Some("\"0000\"".into()), ..patch.clone() };
    assert_status(
        &client.update_product(authed(stale, &staff)).await.unwrap_err(),
        Code::FailedPrecondition,
        "precondition-failed",
    );
    let updated = client.update_product(authed(patch, &staff)).await.unwrap().into_inner();
    assert_eq!(updated.price_minor, 300);
    assert_eq!(updated.name, "Made over gRPC", "absent fields stay");

    let mut stock = inventory(&app).await;
    let adjust =
        pb::AdjustStockRequest { product_id: product.id.clone(), delta: 7, reason: "restock".into(), if_match: None };
    assert_status(
        &stock.adjust_stock(authed(adjust.clone(), &customer)).await.unwrap_err(),
        Code::PermissionDenied,
        "forbidden",
    );
    let after = stock.adjust_stock(authed(adjust, &staff)).await.unwrap().into_inner();
    assert_eq!((after.on_hand, after.reserved, after.available), (10, 0, 10));
    let too_much =
        pb::AdjustStockRequest { product_id: product.id.clone(), delta: -11, reason: "damaged".into(), if_match: None };
    assert_status(
        &stock.adjust_stock(authed(too_much, &staff)).await.unwrap_err(),
        Code::FailedPrecondition,
        "insufficient-stock",
    );
    let read =
        stock.get_stock(authed(pb::GetStockRequest { product_id: product.id }, &staff)).await.unwrap().into_inner();
    assert_eq!(read.on_hand, 10, "the refused adjustment changed nothing");
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_every_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let mut client = catalog(&app).await;
    let bad = pb::CreateProductRequest {
        sku: "has space".into(),
        name: "Fine".into(),
        price_minor: -1,
        currency: "USD".into(),
        ..Default::default()
    };
    let err = client.create_product(authed(bad, &staff)).await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "validation-error");
    assert!(err.message().contains("sku") && err.message().contains("price_minor"), "{}", err.message());
    let details: serde_json::Value =
        serde_json::from_str(err.metadata().get("orderly-error-details").unwrap().to_str().unwrap()).unwrap();
    let fields: Vec<&str> =
        details["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["sku", "price_minor"]);
    let (_, page) = app.get("/api/v1/products", Some(&staff)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);

    let err = client.get_product(pb::GetProductRequest { id: "not-a-uuid".into() }).await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "validation-error");
    let err = client.get_product(pb::GetProductRequest { id: uuid::Uuid::now_v7().to_string() }).await.unwrap_err();
    assert_status(&err, Code::NotFound, "not-found");
    let err = client.list_products(pb::ListProductsRequest { limit: 1000, ..Default::default() }).await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "validation-error");
    let err = client.list_products(pb::ListProductsRequest { sort: 99, ..Default::default() }).await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "validation-error");
}

//! Support tooling for users (issue 10): staff find users by email or name, and
//! deactivate and reactivate customers' accounts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

fn emails(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn staff_find_users_by_part_of_their_email_or_name_page_by_page() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    for (email, name) in [
        ("maria.lopez@example.com", "Maria Lopez"),
        ("m.lopez@shop.example", "Miguel LÓPEZ"),
        ("anna@example.com", "Anna Lopezova"),
        ("zoe@example.com", "Zoe Ng"),
        ("pct_100%@example.com", "Percent"),
    ] {
        let (status, body) = app
            .post("/api/v1/auth/register", None, &json!({ "email": email, "password": PASSWORD, "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // By name, any case, newest first; one match by email only.
    let (status, page) = app.get("/api/v1/users/search?q=LOPEZ", Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(emails(&page), ["anna@example.com", "m.lopez@shop.example", "maria.lopez@example.com"]);
    let (_, page) = app.get("/api/v1/users/search?q=shop.example", Some(&staff)).await;
    assert_eq!(emails(&page), ["m.lopez@shop.example"]);
    // LIKE wildcards are plain characters.
    let (_, page) = app.get("/api/v1/users/search?q=%25", Some(&staff)).await;
    assert_eq!(emails(&page), ["pct_100%@example.com"]);
    let (_, page) = app.get("/api/v1/users/search?q=nobody-like-this", Some(&staff)).await;
    assert_eq!(emails(&page), Vec::<&str>::new());

    let (_, first) = app.get("/api/v1/users/search?q=lopez&limit=2", Some(&staff)).await;
    assert_eq!(emails(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (status, second) =
        app.get(&format!("/api/v1/users/search?q=lopez&limit=2&cursor={cursor}"), Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(emails(&second), ["maria.lopez@example.com"]);
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn user_search_is_refused_to_customers_anonymous_callers_and_empty_terms() {
    let app = TestApp::spawn().await;
    let (customer, _, _) = app.register_customer("cleo@example.com").await;
    let (status, body) = app.get("/api/v1/users/search?q=cleo", Some(&customer)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.get("/api/v1/users/search?q=cleo", None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let staff = app.staff().await;
    let (status, body) = app.get("/api/v1/users/search?q=%20%20&limit=0", Some(&staff)).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["q", "limit"]);
}

#[tokio::test]
async fn a_deactivated_user_cannot_log_in_and_their_tokens_and_keys_stop_until_reactivated() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let admin = app.admin().await;
    let (token, id, session) = app.register_customer("dina@example.com").await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let (status, created) = app
        .post("/api/v1/api-keys", Some(&admin), &json!({ "name": "dina's", "scopes": ["orders:read"], "owner_id": id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", Some(key)).await.0, StatusCode::OK);

    let (status, user) = app.post(&format!("/api/v1/users/{id}/deactivate"), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert!(user["deactivated_at"].is_string() && user["can_log_in"] == false, "{user}");
    for credential in [token.as_str(), key] {
        let (status, body) = app.get("/api/v1/me", Some(credential)).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    }
    let (status, body) = app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": refresh })).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    let (right, wrong) = (
        app.post("/api/v1/auth/login", None, &json!({ "email": "dina@example.com", "password": PASSWORD })).await,
        app.post("/api/v1/auth/login", None, &json!({ "email": "dina@example.com", "password": "not it" })).await,
    );
    assert_problem(right.0, &right.1, StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert_eq!(right, wrong, "a deactivated account answers like a wrong password");

    let (status, user) = app.post(&format!("/api/v1/users/{id}/reactivate"), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert!(user["deactivated_at"].is_null() && user["can_log_in"] == true, "{user}");
    assert_eq!(app.get("/api/v1/me", Some(key)).await.0, StatusCode::OK, "the key works again");
    let fresh = app.login("dina@example.com").await;
    assert_eq!(app.get("/api/v1/me", Some(&fresh)).await.0, StatusCode::OK);
    let (status, _) = app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": refresh })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "sessions ended by the deactivation stay ended");
}

#[tokio::test]
async fn staff_deactivate_only_customers_and_customers_nobody() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let (customer, customer_id, _) = app.register_customer("eli@example.com").await;
    let (_, me) = app.get("/api/v1/me", Some(&staff)).await;
    let staff_id = me["id"].as_str().unwrap();
    let (_, other_id, _) = app.register_customer("fay@example.com").await;
    let (status, body) = app.post(&format!("/api/v1/users/{other_id}/deactivate"), Some(&customer), &json!({})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.post(&format!("/api/v1/users/{staff_id}/deactivate"), Some(&staff), &json!({})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let admin = app.admin().await;
    let (status, _) = app.post(&format!("/api/v1/users/{staff_id}/deactivate"), Some(&admin), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get("/api/v1/me", Some(&staff)).await.0, StatusCode::UNAUTHORIZED);
    let missing = "/api/v1/users/00000000-0000-0000-0000-000000000000/deactivate";
    let (status, body) = app.post(missing, Some(&admin), &json!({})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let _ = customer_id;
}

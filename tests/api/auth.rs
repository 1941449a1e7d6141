//! Registration, sessions, refresh rotation and reuse detection, roles.

use orderly::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn a_registered_customer_can_log_in_and_read_their_account() {
    let app = TestApp::spawn().await;
    let (_, id, session) = app.register_customer("Ann@Example.com").await;
    assert_eq!(session["user"]["role"], "customer");
    assert_eq!(session["token_type"], "Bearer");
    assert!(session["user"].get("password_hash").is_none());

    let token = app.login("ann@example.com").await;
    let (status, me) = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["email"], "ann@example.com");
}

#[tokio::test]
async fn registering_the_same_email_twice_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.register_customer("bob@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({ "email": "BOB@example.com", "password": PASSWORD, "name": "Bob" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "email-taken");
}

#[tokio::test]
async fn invalid_registration_lists_every_bad_field() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post("/api/v1/auth/register", None, &json!({ "email": "not-an-email", "password": "short", "name": " " }))
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["email", "password", "name"]);
    let (_, users) = app.get("/api/v1/users", Some(&app.admin().await)).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "only the admin exists: {users}");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.register_customer("carol@example.com").await;
    let (s1, b1) = app
        .post("/api/v1/auth/login", None, &json!({ "email": "carol@example.com", "password": "wrong password" }))
        .await;
    let (s2, b2) =
        app.post("/api/v1/auth/login", None, &json!({ "email": "nobody@example.com", "password": PASSWORD })).await;
    assert_problem(s1, &b1, StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert_eq!((s1, &b1), (s2, &b2));
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let (_, _, session) = app.register_customer("dave@example.com").await;
    let first = session["refresh_token"].as_str().unwrap().to_owned();

    let (status, second) = app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": first })).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_token = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, first);
    let (status, _) = app.get("/api/v1/me", Some(second["access_token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);

    // The old token again: reuse. The family is revoked, so the newest token dies too.
    let (status, body) = app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": first })).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "refresh-token-reused");
    let (status, body) = app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": second_token })).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let (_, _, session) = app.register_customer("erin@example.com").await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let (status, _) = app.post("/api/v1/auth/logout", None, &json!({ "refresh_token": refresh })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": refresh })).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
}

#[tokio::test]
async fn requests_without_or_with_a_forged_token_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/v1/me", None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    // alg=none, and a token signed with another key.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkzMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJyb2xlIjoiYWRtaW4iLCJpc3MiOiJvcmRlcmx5IiwiYXVkIjoib3JkZXJseS1hcGkiLCJleHAiOjQxMDI0NDQ4MDB9.";
    let (status, body) = app.get("/api/v1/me", Some(none)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
}

#[tokio::test]
async fn a_user_cannot_set_their_own_role() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app.register_customer("frank@example.com").await;
    let (status, body) = app.patch("/api/v1/me", Some(&token), &json!({ "role": "admin" })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "role");
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({ "email": "g@example.com", "password": PASSWORD, "name": "G", "role": "admin" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let (_, me) = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(me["role"], "customer");

    // Not even an admin can change their own role.
    let admin = app.admin().await;
    let (_, me) = app.get("/api/v1/me", Some(&admin)).await;
    let (status, body) = app
        .patch(&format!("/api/v1/users/{}", me["id"].as_str().unwrap()), Some(&admin), &json!({ "role": "customer" }))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn only_admins_manage_users_and_roles() {
    let app = TestApp::spawn().await;
    let (customer, customer_id, _) = app.register_customer("gina@example.com").await;
    let staff = app.staff().await;
    let admin = app.admin().await;

    for token in [&customer, &staff] {
        let (status, body) = app.get("/api/v1/users", Some(token)).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) =
            app.patch(&format!("/api/v1/users/{customer_id}"), Some(token), &json!({ "role": "staff" })).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, user) =
        app.patch(&format!("/api/v1/users/{customer_id}"), Some(&admin), &json!({ "role": "staff" })).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["role"], "staff");
    // The new role applies from the next login.
    let token = app.login("gina@example.com").await;
    let (status, _) = app.get("/api/v1/products/00000000-0000-0000-0000-000000000000/inventory", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_account_without_a_password_logs_in_after_a_reset() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, user) = app
        .post(
            "/api/v1/users",
            Some(&admin),
            &json!({ "email": "imported@example.com", "name": "Imported", "role": "customer" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["can_log_in"], false);
    let (status, body) =
        app.post("/api/v1/auth/login", None, &json!({ "email": "imported@example.com", "password": PASSWORD })).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-credentials");

    let (status, reset) = app
        .post(&format!("/api/v1/users/{}/password-reset", user["id"].as_str().unwrap()), Some(&admin), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reset}");
    let token = reset["token"].as_str().unwrap();
    let (status, _) =
        app.post("/api/v1/auth/password-reset", None, &json!({ "token": token, "new_password": PASSWORD })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.login("imported@example.com").await;
    // Single use.
    let (status, body) =
        app.post("/api/v1/auth/password-reset", None, &json!({ "token": token, "new_password": PASSWORD })).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
}

#[tokio::test]
async fn staff_role_is_required_for_catalog_writes() {
    let app = TestApp::spawn().await;
    let (customer, _, _) = app.register_customer("hal@example.com").await;
    let body = json!({ "sku": "SKU-1", "name": "Thing", "price_minor": 100, "currency": "USD" });
    let (status, problem) = app.post("/api/v1/products", Some(&customer), &body).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
    let (status, problem) = app.post("/api/v1/products", None, &body).await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "unauthenticated");
    let staff = app.user_with_role("ivy@example.com", Role::Staff).await;
    let (status, _) = app.post("/api/v1/products", Some(&staff), &body).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_user_list_pages_through_every_user_exactly_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for i in 0..5 {
        app.register_customer(&format!("page{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/users?limit=2".to_owned();
    for _ in 0..10 {
        let (status, page) = app.get(&url, Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/users?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (6, 6), "{seen:?}");
    assert_eq!(seen[0], "page4@example.com", "newest first");
}

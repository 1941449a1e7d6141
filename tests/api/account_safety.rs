//! Account safety (issue 10): a password change needs the current password and ends every
//! other session; role changes, deactivation and ended sessions apply from the next
//! request; login throttling per account and address pair that does not let one address
//! lock other people out; staff unlock. In-process, and through the real Redis when
//! `ORDERLY_TEST_REDIS_URL` is set (that test prints a notice and passes without it).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, PASSWORD, TestApp, assert_problem};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn spawn(config: &[(&'static str, &str)]) -> TestApp {
    let config = config.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    TestApp::spawn_with(Options { config, ..Default::default() }).await
}

/// POST /auth/login from `forwarded_for` (as a trusted proxy would report it), if given.
async fn login_from(app: &TestApp, email: &str, password: &str, forwarded_for: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url("/api/v1/auth/login")).json(&json!({ "email": email, "password": password }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A full session (access and refresh token) for `email`.
async fn session(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let (status, body) = login_from(app, email, password, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.post("/api/v1/auth/refresh", None, &json!({ "refresh_token": token })).await
}

fn fields(body: &Value) -> Vec<&str> {
    body["errors"].as_array().map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn changing_the_password_without_the_current_one_is_422_naming_current_password() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app.register_customer("cora@example.com").await;
    let (status, body) = app.patch("/api/v1/me", Some(&token), &json!({ "password": NEW_PASSWORD })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(fields(&body), ["current_password"]);

    let wrong = json!({ "password": NEW_PASSWORD, "current_password": "not my password" });
    let (status, body) = app.patch("/api/v1/me", Some(&token), &wrong).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(fields(&body), ["current_password"]);
    assert_eq!(login_from(&app, "cora@example.com", PASSWORD, None).await.0, StatusCode::OK, "nothing changed");

    // A name alone needs nothing more, as before.
    let (status, me) = app.patch("/api/v1/me", Some(&token), &json!({ "name": "Cora B." })).await;
    assert_eq!((status, me["name"].as_str()), (StatusCode::OK, Some("Cora B.")), "{me}");
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_while_the_caller_keeps_working() {
    let app = TestApp::spawn().await;
    app.register_customer("pia@example.com").await;
    let (laptop, laptop_refresh) = session(&app, "pia@example.com", PASSWORD).await;
    let (phone, phone_refresh) = session(&app, "pia@example.com", PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", Some(&phone)).await.0, StatusCode::OK);

    let change = json!({ "password": NEW_PASSWORD, "current_password": PASSWORD });
    let (status, me) = app.patch("/api/v1/me", Some(&laptop), &change).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    let (status, body) = app.get("/api/v1/me", Some(&phone)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    let (status, body) = refresh(&app, &phone_refresh).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");

    assert_eq!(app.get("/api/v1/me", Some(&laptop)).await.0, StatusCode::OK, "the caller's access token");
    let (status, renewed) = refresh(&app, &laptop_refresh).await;
    assert_eq!(status, StatusCode::OK, "the caller's refresh token: {renewed}");
    assert_eq!(app.get("/api/v1/me", renewed["access_token"].as_str()).await.0, StatusCode::OK);
    assert_eq!(login_from(&app, "pia@example.com", PASSWORD, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "pia@example.com", NEW_PASSWORD, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_role_change_refuses_the_old_access_token_on_the_next_request() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, id, registered) = app.register_customer("rui@example.com").await;
    let (token, refresh_token) = session(&app, "rui@example.com", PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.0, StatusCode::OK);

    let (status, _) = app.patch(&format!("/api/v1/users/{id}"), Some(&admin), &json!({ "role": "staff" })).await;
    assert_eq!(status, StatusCode::OK);
    for old in [token.as_str(), registered["access_token"].as_str().unwrap()] {
        let (status, body) = app.get("/api/v1/me", Some(old)).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    }
    // The session itself goes on: a refresh brings the new role.
    let (status, renewed) = refresh(&app, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let (_, me) = app.get("/api/v1/me", renewed["access_token"].as_str()).await;
    assert_eq!(me["role"], "staff");
}

#[tokio::test]
async fn logout_and_refresh_token_reuse_refuse_the_sessions_access_token_on_the_next_request() {
    let app = TestApp::spawn().await;
    app.register_customer("lou@example.com").await;
    let (ended, ended_refresh) = session(&app, "lou@example.com", PASSWORD).await;
    let (kept, _) = session(&app, "lou@example.com", PASSWORD).await;
    let (status, _) = app.post("/api/v1/auth/logout", None, &json!({ "refresh_token": ended_refresh })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/me", Some(&ended)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/v1/me", Some(&kept)).await.0, StatusCode::OK, "only that session ended");

    let (stolen, stolen_refresh) = session(&app, "lou@example.com", PASSWORD).await;
    let (status, renewed) = refresh(&app, &stolen_refresh).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = refresh(&app, &stolen_refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "reuse");
    for token in [stolen.as_str(), renewed["access_token"].as_str().unwrap()] {
        assert_eq!(app.get("/api/v1/me", Some(token)).await.0, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn twenty_wrong_passwords_for_one_account_do_not_stop_another_from_the_same_address() {
    // The address limit is low enough that twenty counted failures would lock it: only the
    // pair's waits keep account A's guesses from spilling over to B.
    let app = spawn(&[("ratelimit.lockout_ip_failures", "10"), ("ratelimit.trusted_proxies", "127.0.0.1")]).await;
    app.register_customer("alice@example.com").await;
    app.register_customer("bruno@example.com").await;
    let office = Some("198.51.100.20");
    let mut refused = 0;
    for _ in 0..20 {
        let (status, body) = login_from(&app, "alice@example.com", "wrong password", office).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["violated-policies"], json!(["login-account-address"]), "{body}");
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
    }
    assert!(refused >= 10, "the pair is slowed down: {refused} of 20 refused");
    let (status, body) = login_from(&app, "bruno@example.com", PASSWORD, office).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A is slowed from that address only, not locked for everyone.
    let (status, body) = login_from(&app, "alice@example.com", PASSWORD, office).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(login_from(&app, "alice@example.com", PASSWORD, Some("203.0.113.5")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_pairs_wait_doubles_with_each_failure_and_a_success_clears_it() {
    let app = spawn(&[
        ("ratelimit.lockout_pair_failures", "2"),
        ("ratelimit.lockout_pair_delay_secs", "1"),
        ("ratelimit.trusted_proxies", "127.0.0.1"),
    ])
    .await;
    app.register_customer("dora@example.com").await;
    let home = Some("198.51.100.30");
    for _ in 0..2 {
        assert_eq!(login_from(&app, "dora@example.com", "wrong password", home).await.0, StatusCode::UNAUTHORIZED);
    }
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "198.51.100.30")
        .json(&json!({ "email": "dora@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(login_from(&app, "dora@example.com", "wrong password", home).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = login_from(&app, "dora@example.com", PASSWORD, home).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "now two seconds");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(login_from(&app, "dora@example.com", PASSWORD, home).await.0, StatusCode::OK);
    // The success cleared the pair: one more failure is not yet a wait.
    assert_eq!(login_from(&app, "dora@example.com", "wrong password", home).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "dora@example.com", PASSWORD, home).await.0, StatusCode::OK);
}

#[tokio::test]
async fn staff_unlock_an_account_and_customers_may_not() {
    let app = spawn(&[("ratelimit.lockout_account_failures", "3"), ("ratelimit.trusted_proxies", "127.0.0.1")]).await;
    let staff = app.staff().await;
    let (customer, id, _) = app.register_customer("ugo@example.com").await;
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(login_from(&app, "ugo@example.com", "wrong", Some(ip)).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = login_from(&app, "ugo@example.com", PASSWORD, Some("198.51.100.4")).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["login-account"]));

    let unlock = format!("/api/v1/users/{id}/unlock");
    let (status, body) = app.post(&unlock, Some(&customer), &json!({})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.post(&unlock, None, &json!({})).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, _) = app.post(&unlock, Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(login_from(&app, "ugo@example.com", PASSWORD, Some("198.51.100.4")).await.0, StatusCode::OK);
    let (status, body) = app.post("/api/v1/users/not-a-uuid/unlock", Some(&staff), &json!({})).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(fields(&body).len(), 1, "{body}");
}

#[tokio::test]
async fn through_redis_a_pairs_wait_is_shared_by_replicas_and_a_staff_unlock_clears_it() {
    let Some(url) = std::env::var("ORDERLY_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: set ORDERLY_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379) to run the Redis tests");
        return;
    };
    let prefix = format!("orderly-test-{}:", uuid::Uuid::new_v4().simple());
    let config = [
        ("redis.url", url.as_str()),
        ("redis.key_prefix", prefix.as_str()),
        ("redis.timeout_ms", "2000"),
        ("ratelimit.lockout_pair_failures", "2"),
        ("ratelimit.lockout_pair_delay_secs", "60"),
        ("ratelimit.trusted_proxies", "127.0.0.1"),
    ];
    let a = spawn(&config).await;
    let owned = config.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let b = TestApp::spawn_with(Options { config: owned, db: Some(a.db.clone()), ..Default::default() }).await;
    let (_, id, _) = a.register_customer("rosa@example.com").await;
    let staff = a.staff().await;
    let cafe = Some("198.51.100.40");
    for app in [&a, &b] {
        assert_eq!(login_from(app, "rosa@example.com", "wrong", cafe).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = login_from(&b, "rosa@example.com", PASSWORD, cafe).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["login-account-address"]));
    assert_eq!(login_from(&a, "rosa@example.com", PASSWORD, Some("198.51.100.41")).await.0, StatusCode::OK);

    let (status, _) = a.post(&format!("/api/v1/users/{id}/unlock"), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(login_from(&b, "rosa@example.com", PASSWORD, cafe).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_new_session_works_at_once_even_where_the_users_state_is_cached() {
    let app = TestApp::spawn().await;
    app.register_customer("nia@example.com").await;
    let (first, _) = session(&app, "nia@example.com", PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", Some(&first)).await.0, StatusCode::OK, "caches Nia's sessions");
    let (second, _) = session(&app, "nia@example.com", PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", Some(&second)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn another_replica_refuses_an_old_access_token_within_the_documented_second() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_with(Options { db: Some(a.db.clone()), ..Default::default() }).await;
    let admin = a.admin().await;
    let (_, id, _) = a.register_customer("omar@example.com").await;
    let (token, _) = session(&a, "omar@example.com", PASSWORD).await;
    assert_eq!(b.get("/api/v1/me", Some(&token)).await.0, StatusCode::OK, "b caches Omar's state");

    let (status, _) = a.post(&format!("/api/v1/users/{id}/deactivate"), Some(&admin), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a.get("/api/v1/me", Some(&token)).await.0, StatusCode::UNAUTHORIZED, "at once on a");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(b.get("/api/v1/me", Some(&token)).await.0, StatusCode::UNAUTHORIZED, "within 1 s on b");
}

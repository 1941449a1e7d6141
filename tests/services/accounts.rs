//! Accounts, API keys, feature flags and the dashboard called directly: who may do what (a
//! table over the whole cast), the validation errors REST answers, and the login lockout
//! without HTTP.

use std::net::IpAddr;
use std::time::Duration;

use chrono::NaiveDate;
use orderly::auth::Role;
use orderly::auth::accounts::support::UserSearchParams;
use orderly::auth::accounts::{
    CreateApiKeyRequest, CreateUserRequest, LoginRequest, RefreshRequest, RegisterRequest, ResetPasswordRequest,
    RotateApiKeyRequest, UpdateMeRequest,
};
use orderly::auth::api_keys;
use orderly::auth::scopes::Scope;
use orderly::auth::{Email, Principal, users};
use orderly::dashboard::{self, PeriodParams};
use orderly::error::Error;
use orderly::flags::REQUIRE_SHIPPING_ADDRESS;
use orderly::pagination::PageParams;
use serde_json::json;

use crate::cast::Outcome::{Allowed, Denied, Unauthenticated};
use crate::cast::{Cast, Outcome, outcome};
use crate::helpers::{Options, PASSWORD, TestApp};

/// The fields a validation error names, in order; empty for any other result.
fn invalid_fields<T>(r: &Result<T, Error>) -> Vec<String> {
    match r {
        Err(Error::Validation(errors)) => errors.iter().map(|e| e.field.clone()).collect(),
        _ => Vec::new(),
    }
}

fn register_request(email: &str) -> RegisterRequest {
    RegisterRequest { email: email.to_owned(), password: PASSWORD.to_owned(), name: "Registered".to_owned() }
}

fn key_request(name: &str) -> CreateApiKeyRequest {
    CreateApiKeyRequest { name: name.to_owned(), scopes: vec![Scope::CatalogRead], owner_id: None }
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const DEADLINE: Duration = Duration::from_secs(10);

/// Per principal: admin operations (users, API keys, flags: admin session), changing one's
/// own account (any session), the dashboard (staff, keys with `dashboard:read`),
/// registering (anyone), and the support tools on a customer's account (search,
/// deactivate, reactivate, unlock: staff or admin session).
const TABLE: &[(&str, Outcome, Outcome, Outcome, Outcome, Outcome)] = &[
    ("anonymous", Unauthenticated, Unauthenticated, Unauthenticated, Allowed, Unauthenticated),
    ("customer", Denied, Allowed, Denied, Allowed, Denied),
    ("other_customer", Denied, Allowed, Denied, Allowed, Denied),
    ("staff", Denied, Allowed, Allowed, Allowed, Allowed),
    ("admin", Allowed, Allowed, Allowed, Allowed, Allowed),
    ("staff_read_key", Denied, Denied, Allowed, Allowed, Denied),
    ("staff_write_key", Denied, Denied, Allowed, Allowed, Denied),
    ("admin_key", Denied, Denied, Allowed, Allowed, Denied),
    ("customer_key", Denied, Denied, Denied, Allowed, Denied),
];

#[tokio::test]
async fn account_keys_and_flags_need_an_admin_session_the_dashboard_staff_own_changes_and_support_tools_a_session() {
    let t = TestApp::spawn().await;
    let (db, accounts) = (&t.app.db, &t.app.accounts);
    let cast = Cast::new(db).await;
    let names: Vec<&str> = cast.all().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TABLE.iter().map(|row| row.0).collect::<Vec<_>>(), "the table covers the whole cast");
    let target_email = Email::parse("target@example.com").unwrap();
    let target = users::create(db, &target_email, None, "Target", Role::Customer).await.unwrap();
    let supported_email = Email::parse("supported@example.com").unwrap();
    let supported = users::create(db, &supported_email, None, "Supported", Role::Customer).await.unwrap();
    let search = UserSearchParams { q: "supported".into(), limit: None, cursor: None };
    let admin_id = cast.admin.actor.unwrap().id;
    let scopes = [Scope::CatalogRead].into_iter().collect();
    let key = api_keys::create(db, "to revoke and rotate", admin_id, scopes, admin_id).await.unwrap().api_key;
    let page = PageParams { limit: None, cursor: None };
    let period = PeriodParams::default();

    for ((name, p), (_, admin_op, own, dash, register, support)) in cast.all().into_iter().zip(TABLE) {
        let new_user = CreateUserRequest {
            email: format!("created-by-{name}@example.com"),
            password: None,
            name: "Created".into(),
            role: Role::Staff,
        };
        let admin_ops = [
            ("create_user", outcome(&accounts.create_user(p, &new_user).await)),
            ("list_users", outcome(&accounts.list_users(p, &page).await)),
            ("get_user", outcome(&accounts.get_user(p, target.id).await)),
            ("set_role", outcome(&accounts.set_role(p, target.id, Role::Staff).await)),
            ("issue_password_reset", outcome(&accounts.issue_password_reset(p, target.id).await)),
            ("create_api_key", outcome(&accounts.create_api_key(p, &key_request(name)).await)),
            ("list_api_keys", outcome(&accounts.list_api_keys(p, &page).await)),
            ("get_api_key", outcome(&accounts.get_api_key(p, key.id).await)),
            (
                "rotate_api_key",
                outcome(&accounts.rotate_api_key(p, key.id, &RotateApiKeyRequest { overlap_secs: 60 }).await),
            ),
            ("revoke_api_key", outcome(&accounts.revoke_api_key(p, key.id).await)),
            ("flags.list", outcome(&t.app.flags.list(p).await)),
            ("flags.set", outcome(&t.app.flags.set(p, db, REQUIRE_SHIPPING_ADDRESS, false).await)),
        ];
        for (op, got) in admin_ops {
            assert_eq!(got, *admin_op, "{op} as {name}");
        }
        let update = UpdateMeRequest { name: Some(format!("Renamed {name}")), ..Default::default() };
        assert_eq!(outcome(&accounts.update_me(p, &update).await), *own, "update_me as {name}");
        let report = dashboard::report(p, t.app.dashboard.as_ref(), &period, DEADLINE).await;
        assert_eq!(outcome(&report), *dash, "dashboard::report as {name}");
        let session = accounts.register(p, &register_request(&format!("registered-by-{name}@example.com"))).await;
        assert_eq!(outcome(&session), *register, "register as {name}");
        let support_ops = [
            ("search_users", outcome(&accounts.search_users(p, &search).await)),
            ("deactivate_user", outcome(&accounts.deactivate_user(p, supported.id).await)),
            ("reactivate_user", outcome(&accounts.reactivate_user(p, supported.id).await)),
            ("unlock_user", outcome(&accounts.unlock_user(p, supported.id).await)),
        ];
        for (op, got) in support_ops {
            assert_eq!(got, *support, "{op} as {name}");
        }
    }
    assert_eq!(users::get(db, target.id).await.unwrap().role, Role::Staff, "the admin changed the role");
    assert!(api_keys::get(db, key.id).await.unwrap().revoked_at.is_some(), "the admin revoked the key");
}

#[tokio::test]
async fn api_keys_are_refused_where_a_session_is_needed_even_an_admins_key_with_every_scope() {
    let t = TestApp::spawn().await;
    let cast = Cast::new(&t.app.db).await;
    let accounts = &t.app.accounts;
    let refused = accounts.create_api_key(&cast.admin_key, &key_request("minted by a key")).await;
    assert!(matches!(refused, Err(Error::InsufficientScope("session"))), "{refused:?}");
    let update = UpdateMeRequest { name: Some("Key".into()), ..Default::default() };
    assert!(matches!(accounts.update_me(&cast.admin_key, &update).await, Err(Error::InsufficientScope("session"))));
    // Reading one's own account is fine with a key: it reads as the key's owner.
    let me = accounts.me(&cast.customer_key).await.unwrap();
    assert_eq!(Some(me.id), cast.customer_key.actor.map(|a| a.id));
    assert!(matches!(accounts.me(&cast.anonymous).await, Err(Error::Unauthenticated)));
}

#[tokio::test]
async fn registration_always_creates_a_customer_whoever_calls() {
    let t = TestApp::spawn().await;
    let cast = Cast::new(&t.app.db).await;
    let session = t.app.accounts.register(&cast.admin, &register_request("by-admin@example.com")).await.unwrap();
    assert_eq!(session.user.role, Role::Customer);
}

#[tokio::test]
async fn a_direct_dashboard_call_with_a_bad_period_is_a_validation_error_on_from() {
    let t = TestApp::spawn().await;
    let cast = Cast::new(&t.app.db).await;
    let sources = t.app.dashboard.as_ref();
    let reversed = PeriodParams { from: Some(day("2020-02-01")), to: Some(day("2020-01-01")) };
    let r = dashboard::report(&cast.staff, sources, &reversed, DEADLINE).await;
    assert_eq!(invalid_fields(&r), ["from"]);
    let too_long = PeriodParams { from: Some(day("2000-01-01")), to: Some(day("2020-01-01")) };
    let r = dashboard::report(&cast.staff, sources, &too_long, DEADLINE).await;
    assert_eq!(invalid_fields(&r), ["from"]);
    // Authorization comes first: a customer learns nothing about the period rules.
    let r = dashboard::report(&cast.customer, sources, &reversed, DEADLINE).await;
    assert_eq!(outcome(&r), Denied);
    let fine = PeriodParams { from: Some(day("2020-01-01")), to: Some(day("2020-01-31")) };
    let d = dashboard::report(&cast.staff_read_key, sources, &fine, DEADLINE).await.unwrap();
    assert_eq!((d.from.date_naive(), d.to.date_naive()), (day("2020-01-01"), day("2020-02-01")));
}

#[tokio::test]
async fn direct_calls_get_the_field_errors_rest_answers() {
    let t = TestApp::spawn().await;
    let cast = Cast::new(&t.app.db).await;
    let accounts = &t.app.accounts;
    let bad = RegisterRequest { email: "nope".into(), password: "short".into(), name: " ".into() };
    assert_eq!(invalid_fields(&accounts.register(&cast.anonymous, &bad).await), ["email", "password", "name"]);

    let no_scopes = CreateApiKeyRequest { name: "".into(), scopes: vec![], owner_id: None };
    assert_eq!(invalid_fields(&accounts.create_api_key(&cast.admin, &no_scopes).await), ["name", "scopes"]);
    let orphan = CreateApiKeyRequest { owner_id: Some(uuid::Uuid::now_v7()), ..key_request("orphan") };
    assert_eq!(invalid_fields(&accounts.create_api_key(&cast.admin, &orphan).await), ["owner_id"]);

    let created = accounts.create_api_key(&cast.admin, &key_request("rotated")).await.unwrap();
    let too_long = RotateApiKeyRequest { overlap_secs: 30 * 24 * 3600 + 1 };
    let r = accounts.rotate_api_key(&cast.admin, created.api_key.id, &too_long).await;
    assert_eq!(invalid_fields(&r), ["overlap_secs"]);
    let longest = RotateApiKeyRequest { overlap_secs: 30 * 24 * 3600 };
    assert!(accounts.rotate_api_key(&cast.admin, created.api_key.id, &longest).await.is_ok());

    let bad_me = UpdateMeRequest {
        name: Some("".into()),
        password: Some("short".into()),
        current_password: Some(PASSWORD.into()),
    };
    assert_eq!(invalid_fields(&accounts.update_me(&cast.customer, &bad_me).await), ["name", "password"]);
    let no_current = UpdateMeRequest { password: Some("a new password".into()), ..Default::default() };
    assert_eq!(invalid_fields(&accounts.update_me(&cast.customer, &no_current).await), ["current_password"]);
    let wrong_current = UpdateMeRequest { current_password: Some("not it at all".into()), ..no_current };
    assert_eq!(invalid_fields(&accounts.update_me(&cast.customer, &wrong_current).await), ["current_password"]);
    let search = UserSearchParams { q: " ".into(), limit: Some(0), cursor: None };
    assert_eq!(invalid_fields(&accounts.search_users(&cast.staff, &search).await), ["q", "limit"]);
    let bad_user =
        CreateUserRequest { email: "x".into(), password: Some("short".into()), name: "ok".into(), role: Role::Staff };
    assert_eq!(invalid_fields(&accounts.create_user(&cast.admin, &bad_user).await), ["email", "password"]);
    let reset = ResetPasswordRequest { token: "whatever".into(), new_password: "short".into() };
    assert_eq!(invalid_fields(&accounts.reset_password(&cast.anonymous, &reset).await), ["new_password"]);
    let page = PageParams { limit: Some(0), cursor: None };
    assert_eq!(invalid_fields(&accounts.list_users(&cast.admin, &page).await), ["limit"]);
}

fn login(email: &str, password: &str) -> LoginRequest {
    LoginRequest { email: email.to_owned(), password: password.to_owned() }
}

#[tokio::test]
async fn the_login_service_locks_out_an_address_after_repeated_failures() {
    let config = vec![
        ("ratelimit.lockout_account_failures", "0".to_string()),
        ("ratelimit.lockout_ip_failures", "3".to_string()),
    ];
    let t = TestApp::spawn_with(Options { config, ..Options::default() }).await;
    let accounts = &t.app.accounts;
    accounts.register(&Principal::anonymous(), &register_request("dan@example.com")).await.unwrap();
    let attacker: IpAddr = "198.51.100.7".parse().unwrap();
    let from_attacker = Principal::anonymous().from_ip(attacker);
    for i in 0..3 {
        let r = accounts.login(&from_attacker, &login(&format!("guess{i}@example.com"), "wrong password")).await;
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    let locked = accounts.login(&from_attacker, &login("dan@example.com", PASSWORD)).await;
    assert!(matches!(locked, Err(Error::RateLimited { policy: "login-ip", .. })), "{locked:?}");
    let elsewhere = Principal::anonymous().from_ip("198.51.100.8".parse().unwrap());
    let session = accounts.login(&elsewhere, &login("dan@example.com", PASSWORD)).await.unwrap();
    assert_eq!(session.user.email, "dan@example.com");
}

#[tokio::test]
async fn the_login_service_locks_out_an_account_even_for_the_right_password() {
    let config = vec![
        ("ratelimit.lockout_account_failures", "2".to_string()),
        ("ratelimit.lockout_ip_failures", "0".to_string()),
    ];
    let t = TestApp::spawn_with(Options { config, ..Options::default() }).await;
    let accounts = &t.app.accounts;
    let anyone = Principal::anonymous();
    accounts.register(&anyone, &register_request("eve@example.com")).await.unwrap();
    for _ in 0..2 {
        let r = accounts.login(&anyone, &login("Eve@Example.com", "wrong password")).await;
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    let locked = accounts.login(&anyone, &login("eve@example.com", PASSWORD)).await;
    assert!(matches!(locked, Err(Error::RateLimited { policy: "login-account", .. })), "{locked:?}");
    // Failures were counted, not sessions: the refusal names its policy for REST's 429.
    assert_eq!(locked.unwrap_err().extensions()["violated-policies"], json!(["login-account"]));
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_keeps_the_callers() {
    let t = TestApp::spawn().await;
    let (accounts, auth) = (&t.app.accounts, &t.app.auth);
    let anyone = Principal::anonymous();
    accounts.register(&anyone, &register_request("pat@example.com")).await.unwrap();
    let mine = accounts.login(&anyone, &login("pat@example.com", PASSWORD)).await.unwrap();
    let other = accounts.login(&anyone, &login("pat@example.com", PASSWORD)).await.unwrap();
    assert!(auth.authenticate(&other.access_token).await.is_ok());
    let me = Principal::actor(auth.authenticate(&mine.access_token).await.unwrap());

    let change = UpdateMeRequest {
        password: Some("a brand new password".into()),
        current_password: Some(PASSWORD.into()),
        ..Default::default()
    };
    accounts.update_me(&me, &change).await.unwrap();
    assert!(matches!(auth.authenticate(&other.access_token).await, Err(Error::InvalidToken)));
    let other_refresh = RefreshRequest { refresh_token: other.refresh_token.clone() };
    assert!(matches!(accounts.refresh(&anyone, &other_refresh).await, Err(Error::InvalidToken)));
    assert!(auth.authenticate(&mine.access_token).await.is_ok(), "the caller's session goes on");
    let my_refresh = RefreshRequest { refresh_token: mine.refresh_token.clone() };
    assert!(accounts.refresh(&anyone, &my_refresh).await.is_ok());
    let old = accounts.login(&anyone, &login("pat@example.com", PASSWORD)).await;
    assert!(matches!(old, Err(Error::InvalidCredentials)), "{old:?}");
    assert!(accounts.login(&anyone, &login("pat@example.com", "a brand new password")).await.is_ok());
}

#[tokio::test]
async fn staff_deactivate_customers_admins_anyone_and_nobody_themselves() {
    let t = TestApp::spawn().await;
    let (db, accounts) = (&t.app.db, &t.app.accounts);
    let cast = Cast::new(db).await;
    let id = |p: &Principal| p.actor.unwrap().id;
    for (who, target) in [(&cast.staff, &cast.admin), (&cast.staff, &cast.staff), (&cast.admin, &cast.admin)] {
        assert_eq!(outcome(&accounts.deactivate_user(who, id(target)).await), Denied);
        assert_eq!(outcome(&accounts.reactivate_user(who, id(target)).await), Denied);
    }
    assert!(accounts.deactivate_user(&cast.admin, id(&cast.staff)).await.unwrap().deactivated_at.is_some());
    assert!(accounts.reactivate_user(&cast.admin, id(&cast.staff)).await.unwrap().deactivated_at.is_none());

    let owner = id(&cast.customer);
    let scopes = [Scope::OrdersRead].into_iter().collect();
    let key = api_keys::create(db, "shop sync", owner, scopes, id(&cast.admin)).await.unwrap().key;
    assert!(t.app.auth.authenticate(&key).await.is_ok());
    let user = accounts.deactivate_user(&cast.staff, owner).await.unwrap();
    assert!(!user.can_log_in && user.deactivated_at.is_some());
    assert!(matches!(t.app.auth.authenticate(&key).await, Err(Error::InvalidToken)), "the owner's keys stop too");
    let r = accounts.login(&Principal::anonymous(), &login("cast-customer@example.com", PASSWORD)).await;
    assert!(matches!(r, Err(Error::InvalidCredentials)), "the same answer as a wrong password: {r:?}");
    accounts.reactivate_user(&cast.staff, owner).await.unwrap();
    assert!(t.app.auth.authenticate(&key).await.is_ok());
    assert!(accounts.login(&Principal::anonymous(), &login("cast-customer@example.com", PASSWORD)).await.is_ok());
}

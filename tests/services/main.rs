//! Service-level tests: the service functions called directly, with transport-free
//! principals and no HTTP, against a fresh database per test (SQLite by default,
//! PostgreSQL when `ORDERLY_TEST_DATABASE_URL` is set). Whatever transport calls a service,
//! these rules hold.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

#[path = "../api/helpers.rs"]
mod helpers;

mod accounts;
mod cast;
mod catalog;
mod checkout_sql;
#[path = "../api/counting_gateway.rs"]
mod counting_gateway;
mod layering;
mod orders;

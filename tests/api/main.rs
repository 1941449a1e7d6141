//! Integration tests: the real app on port 0 against a fresh database per test, SQLite by
//! default, PostgreSQL when `ORDERLY_TEST_DATABASE_URL` is set (see `helpers`).

mod auth;
mod catalog;
mod checkout;
mod dashboard;
mod helpers;
mod http;
mod orders;

//! Integration tests: the real app on port 0 against a fresh database per test, SQLite by
//! default, PostgreSQL when `ORDERLY_TEST_DATABASE_URL` is set (see `helpers`).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod account_safety;
mod api_keys;
mod auth;
mod batch;
mod cache;
mod caching;
mod catalog;
mod checkout;
mod consumers;
mod contract;
mod counting_gateway;
mod dashboard;
mod edge;
mod events;
mod exports;
mod flags;
mod graphql;
mod grpc;
mod helpers;
mod http;
mod idempotency;
mod idempotent_posts;
mod images;
mod imports;
mod jobs;
mod observability;
mod orders;
mod outage;
mod parity;
mod payments;
mod ratelimit;
mod realtime;
mod round_trips;
mod support_orders;
mod support_users;
mod webhooks;

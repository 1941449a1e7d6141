//! orderly: a commerce backend. Customers, a product catalog with inventory, and orders with
//! a checkout saga, over a JSON REST API. See docs/ARCHITECTURE.md for the map.

pub mod admin;
pub mod app;
pub mod auth;
pub mod batch;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod conditional;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod exports;
pub mod files;
pub mod flags;
pub mod graphql;
pub mod grpc;
pub mod http;
pub mod idempotency;
pub mod imports;
pub mod inventory;
pub mod jobs;
pub mod metrics;
pub mod money;
pub mod orders;
pub mod outbound;
pub mod pagination;
pub mod payments;
pub mod ratelimit;
pub mod realtime;
pub mod redis_link;
pub mod services;
pub mod stock_alerts;
pub mod telemetry;
pub mod webhooks;

pub use app::{App, AppState, Application, Overrides};
pub use config::Config;
pub use error::{Error, Result};

//! The service layer's handles, as the transports see them: one [`App`] holding each
//! resource's service and the shared seams, behind one `Arc`.
//!
//! Layers (docs/ARCHITECTURE.md): **transports** (`http`, `admin`, later GraphQL, gRPC,
//! WebSocket, and the CLI) call **services** (`auth`, `catalog`, `inventory`, `orders`,
//! `dashboard`, `flags`), which call **stores** (their SQL). Services take only what they
//! use, never this struct; the composition root (`app`) builds it.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::accounts::Accounts;
use crate::auth::credentials::Authenticator;
use crate::auth::tokens::TokenKeys;
use crate::cache::CatalogCache;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::dashboard::DashboardSources;
use crate::db::Db;
use crate::events::bus::Hub;
use crate::events::consumers::Consumers;
use crate::files::storage::Storage;
use crate::flags::Flags;
use crate::idempotency::Idempotency;
use crate::imports::upload::Imports;
use crate::jobs::Jobs;
use crate::orders::Orders;
use crate::payments::PaymentGateway;
use crate::ratelimit::Limits;
use crate::realtime::Realtime;
use crate::stock_alerts::StockAlerts;
use crate::webhooks::Webhooks;
use tokio::sync::watch;

/// Everything a transport needs; shared behind one `Arc`.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub tokens: Arc<TokenKeys>,
    /// Resolves bearer tokens and API keys to a principal's actor.
    pub auth: Authenticator,
    pub payments: Arc<dyn PaymentGateway>,
    pub dashboard: Arc<dyn DashboardSources>,
    /// Runtime feature flags (shared by replicas through the database).
    pub flags: Arc<Flags>,
    /// Rate limits and the login lockout (in-process, or shared through Redis).
    pub limits: Limits,
    /// Checkout, order reads and transitions, and the saga's recovery.
    pub orders: Orders,
    /// Products, categories and stock adjustments, with the read cache.
    pub catalog: Catalog,
    /// Registration, sessions, the caller's profile, users and API keys.
    pub accounts: Accounts,
    /// Stored answers to requests with an `Idempotency-Key`, shared by replicas.
    pub idempotency: Idempotency,
    /// Published events, for this replica's live readers (SSE, WebSocket, consumers).
    pub hub: Hub,
    /// The durable event consumers of this process, and the dead-letter admin operations.
    pub consumers: Consumers,
    /// Low-stock alerts (also the `stock-alerts` consumer).
    pub stock_alerts: StockAlerts,
    /// Live streams (SSE, WebSocket): topics, their authorization, replay and delivery.
    pub realtime: Realtime,
    /// Webhook endpoints and the delivery log (the worker runs from `app.rs`).
    pub webhooks: Webhooks,
    /// NATS JetStream, when `nats.url` is set (the relay's sink and the fan-out's source).
    pub nats: Option<crate::events::nats::Nats>,
    /// File storage: a local directory, or S3-compatible (`storage.url`).
    pub storage: Storage,
    /// Product images over `storage` (src/files/images.rs).
    pub images: crate::files::images::Images,
    /// Background jobs: the handlers this process runs, and `/api/v1/jobs`.
    pub jobs: Jobs,
    /// Imports over the API (uploads that become import jobs).
    pub imports: Imports,
    draining: AtomicBool,
    /// Turns true with `draining`: live streams end (SSE) or close with 1001 (WebSocket).
    drain: watch::Sender<bool>,
}

impl App {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        db: Db,
        tokens: Arc<TokenKeys>,
        payments: Arc<dyn PaymentGateway>,
        dashboard: Arc<dyn DashboardSources>,
        flags: Arc<Flags>,
        limits: Limits,
        cache: CatalogCache,
        storage: Storage,
    ) -> Self {
        let auth = Authenticator::new(db.clone(), tokens.clone());
        let orders = Orders::new(db.clone(), payments.clone(), flags.clone(), cache.clone(), &config);
        let catalog = Catalog::new(db.clone(), cache.clone(), &config.catalog);
        let accounts = Accounts::new(db.clone(), tokens.clone(), limits.clone(), auth.session_states());
        let idempotency = Idempotency::new(db.clone(), &config, tokens.subkey("idempotency-fingerprint"));
        let hub = Hub::new(config.events.hub_capacity);
        let stock_alerts = StockAlerts::new(db.clone());
        let realtime = Realtime::new(db.clone(), hub.clone(), orders.clone());
        let webhooks = Webhooks::new(db.clone(), &config.webhooks);
        let images = crate::files::images::Images::new(db.clone(), storage.clone(), &config.storage);
        let consumers = Consumers::new(db.clone(), &config.events)
            .with(Arc::new(stock_alerts.clone()))
            .with(Arc::new(crate::webhooks::consumer::Fanout::new(webhooks.clone())));
        let mut jobs = Jobs::new(db.clone(), storage.clone(), &config.jobs);
        for handler in crate::imports::job::handlers(&db, &cache, config.imports.batch_rows) {
            jobs.register(handler);
        }
        for handler in crate::exports::jobs::handlers(db.clone()) {
            jobs.register(handler);
        }
        let imports = Imports::new(jobs.clone(), storage.clone(), &config.imports);
        Self {
            config,
            db,
            tokens,
            auth,
            payments,
            dashboard,
            flags,
            limits,
            orders,
            catalog,
            accounts,
            idempotency,
            hub,
            consumers,
            stock_alerts,
            realtime,
            webhooks,
            nats: None,
            storage,
            images,
            jobs,
            imports,
            draining: AtomicBool::new(false),
            drain: watch::Sender::new(false),
        }
    }

    /// True once shutdown has begun: `/readyz` turns unready so load balancers move on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the start of shutdown.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.drain.send_replace(true);
    }

    /// Turns true when shutdown begins, for work that must end before the HTTP drain (live
    /// streams: the drain would otherwise wait the whole grace period for them).
    pub fn drain_signal(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }
}

/// The transports' state: a cheap clone of the shared [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

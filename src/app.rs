//! The composition root: assembling and running orderly. `Application::build` connects, migrates and binds (port 0
//! works, and the bound address is reported); `run_until` serves until the shutdown future
//! completes, then drains in-flight requests within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::tokens::{TokenKeys, new_opaque_token};
use crate::config::Config;
use crate::dashboard::{DashboardSources, SqlSources};
use crate::db::Db;
use crate::payments::PaymentGateway;
use crate::payments::http::HttpGateway;
use crate::payments::instrumented::Instrumented;
use crate::payments::sandbox::SandboxGateway;
pub use crate::services::{App, AppState};

/// Replacements for the seams, for embedding and fault-injection tests.
#[derive(Default)]
pub struct Overrides {
    pub payments: Option<Arc<dyn PaymentGateway>>,
    pub dashboard: Option<Arc<dyn DashboardSources>>,
    /// More durable consumers (`events::consumers`); one named like a built-in replaces it.
    pub consumers: Vec<Arc<dyn crate::events::consumers::Handler>>,
    /// More background job handlers (`jobs`); one of a built-in kind replaces it.
    pub jobs: Vec<Arc<dyn crate::jobs::JobHandler>>,
}

pub struct Application {
    app: Arc<App>,
    listener: TcpListener,
    addr: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
    grpc: TcpListener,
    grpc_addr: SocketAddr,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Overrides::default()).await
    }

    pub async fn build_with(config: Config, overrides: Overrides) -> anyhow::Result<Self> {
        config.webhooks.check().map_err(anyhow::Error::msg)?;
        let db = Db::connect(&config).await?;
        db.migrate().await.context("applying migrations")?;
        let secret = jwt_secret(&config)?;
        let tokens = Arc::new(TokenKeys::new(&config.auth, secret.as_bytes()));
        crate::metrics::install();
        let payments: Arc<dyn PaymentGateway> = match overrides.payments {
            Some(p) => p,
            None if config.payments.url.is_empty() => Arc::new(SandboxGateway::new(db.clone())),
            None => Arc::new(HttpGateway::new(&config.payments.url, crate::payments::policy(&config.payments))?),
        };
        let payments = Arc::new(Instrumented::new(payments));
        let dashboard = overrides.dashboard.unwrap_or_else(|| Arc::new(SqlSources::new(db.clone())));
        let listener = TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("binding http.addr {}", config.http.addr))?;
        let addr = listener.local_addr()?;
        let admin = TcpListener::bind(config.admin.addr)
            .await
            .with_context(|| format!("binding admin.addr {}", config.admin.addr))?;
        let admin_addr = admin.local_addr()?;
        let grpc = TcpListener::bind(config.grpc.addr)
            .await
            .with_context(|| format!("binding grpc.addr {}", config.grpc.addr))?;
        let grpc_addr = grpc.local_addr()?;
        let flags = Arc::new(crate::flags::Flags::default());
        flags.refresh(&db).await.context("loading feature flags")?;
        let limits = crate::ratelimit::Limits::new(&config)?;
        let cache = crate::cache::CatalogCache::new(&config)?;
        // Connects in the background: start-up never waits for NATS.
        let nats = if config.nats.url.is_empty() {
            None
        } else {
            Some(crate::events::nats::Nats::connect(&config.nats, &config.events).await?)
        };
        let storage = crate::files::storage::Storage::from_config(&config)?;
        let mut app = App::new(config, db, tokens, payments, dashboard, flags, limits, cache, storage);
        app.nats = nats;
        for handler in overrides.consumers {
            app.consumers.register(handler);
        }
        for handler in overrides.jobs {
            app.jobs.register(handler);
        }
        app.consumers.create_offsets().await.context("creating the event consumers' offsets")?;
        let app = Arc::new(app);
        Ok(Self { app, listener, addr, admin, admin_addr, grpc, grpc_addr })
    }

    /// The address the HTTP listener is bound to (its real port when configured with 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the admin listener (`/metrics`, `/debug/pprof`) is bound to.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The address the gRPC listener (`orderly.v1`, health, reflection) is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves HTTP and gRPC and runs the background workers until `shutdown` completes; then stops
    /// accepting, lets in-flight requests finish for up to `http.shutdown_grace_ms`, stops
    /// the workers and closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { app, listener, addr, admin, admin_addr, grpc, grpc_addr } = self;
        let _admin = AbortOnDrop(tokio::spawn(crate::admin::serve(admin, AppState(app.clone()))));
        tracing::info!(admin.addr = %admin_addr, "admin listener: /metrics, /debug/pprof/profile");
        let (stop_tx, stop_rx) = watch::channel(false);
        let refresh = std::time::Duration::from_millis(app.config.flags.refresh_interval_ms.max(50));
        let refresher = crate::flags::run_refresher(app.flags.clone(), app.db.clone(), refresh, stop_rx.clone());
        let _flags = AbortOnDrop(tokio::spawn(refresher));
        let pruner = crate::idempotency::run_pruner(app.idempotency.clone(), stop_rx.clone());
        let _idempotency = AbortOnDrop(tokio::spawn(pruner));
        let _cache = AbortOnDrop(tokio::spawn(app.catalog.cache.clone().run_subscriber(stop_rx.clone())));
        let relay = crate::events::relay::Relay::new(app.db.clone(), app.hub.clone(), &app.config.events);
        let consumers = app.consumers.spawn_all(stop_rx.clone());
        let invalidation = crate::events::consumers::invalidation::run(
            app.hub.clone(),
            app.catalog.cache.clone(),
            app.db.clone(),
            stop_rx.clone(),
        );
        let _invalidation = AbortOnDrop(tokio::spawn(invalidation));
        let webhook_worker = tokio::spawn(crate::webhooks::delivery::run(app.webhooks.clone(), stop_rx.clone()));
        let relay = tokio::spawn(relay.with_nats(app.nats.clone()).run(stop_rx.clone()));
        let fanout = app.nats.clone().map(|n| tokio::spawn(n.run_fanout(app.hub.clone(), stop_rx.clone())));
        let delivery_retention = std::time::Duration::from_secs(app.config.webhooks.delivery_retention_secs);
        let prune =
            crate::events::prune::run(app.db.clone(), app.config.events.clone(), delivery_retention, stop_rx.clone());
        let prune = AbortOnDrop(tokio::spawn(prune));
        // Background jobs: aborted with the application if it is dropped (a crash leaves the
        // leases to expire); on shutdown they are handed back before the pool closes.
        let mut jobs = AbortOnDrop(app.jobs.spawn(stop_rx.clone()));
        let workers = AbortOnDrop(tokio::spawn(crate::orders::recovery::run_workers(app.orders.clone(), stop_rx)));
        // Stops by itself once draining begins (`App::drain_signal`), alongside HTTP.
        let grpc = tokio::spawn(crate::grpc::serve(grpc, app.clone()));
        tracing::info!(grpc.addr = %grpc_addr, "gRPC listener: orderly.v1, health, reflection");
        let router = crate::http::router_with(AppState(app.clone()), crate::graphql::router(AppState(app.clone())));
        tracing::info!(http.addr = %addr, db.backend = ?app.db.backend(), "orderly is serving");
        let draining = app.clone();
        crate::http::server::serve(listener, router, &app.config.http, async move {
            shutdown.await;
            draining.start_draining();
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        })
        .await;
        match grpc.await {
            Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "the gRPC server failed"),
            Err(e) => tracing::error!(error = %e, "the gRPC server task failed"),
            Ok(Ok(())) => {}
        }
        drop(workers);
        drop(prune);
        // The relay flushes what committed before the drain ended, then stops; the pool
        // closes only after that.
        let _ = relay.await;
        // Consumers finish the handler calls in flight and hand back what they did not start.
        for consumer in consumers {
            let _ = consumer.await;
        }
        // The webhook worker lets attempts in flight finish briefly, then hands its leases back.
        let _ = webhook_worker.await;
        if let Some(fanout) = fanout {
            let _ = fanout.await;
        }
        // Running jobs stop at their next progress report and are handed back (queued,
        // checkpoint kept) for any replica to resume.
        let _ = (&mut jobs.0).await;
        app.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Aborts a background task when dropped, so workers never outlive their application.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The configured JWT secret, or in development one generated once and kept in
/// `<data_dir>/jwt-secret` (mode 0600) so sessions survive restarts.
fn jwt_secret(config: &Config) -> anyhow::Result<String> {
    if !config.auth.jwt_secret.is_empty() {
        return Ok(config.auth.jwt_secret.expose().to_owned());
    }
    let path = config.data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path)
        && s.trim().len() >= 32
    {
        return Ok(s.trim().to_owned());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let secret = new_opaque_token()?;
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a development JWT secret");
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

//! Assembling and running orderly: `Application::build` connects, migrates and binds (port 0
//! works, and the bound address is reported); `run_until` serves until the shutdown future
//! completes, then drains in-flight requests within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::tokens::{TokenKeys, new_opaque_token};
use crate::config::Config;
use crate::dashboard::{DashboardSources, SqlSources};
use crate::db::Db;
use crate::payments::PaymentGateway;
use crate::payments::sandbox::SandboxGateway;

/// Everything a request handler or worker needs; shared behind one `Arc`.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub tokens: TokenKeys,
    pub payments: Arc<dyn PaymentGateway>,
    pub dashboard: Arc<dyn DashboardSources>,
    draining: AtomicBool,
}

impl App {
    /// True once shutdown has begun: `/readyz` turns unready so load balancers move on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// The axum state: a cheap clone of the shared [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Replacements for the seams, for embedding and fault-injection tests.
#[derive(Default)]
pub struct Overrides {
    pub payments: Option<Arc<dyn PaymentGateway>>,
    pub dashboard: Option<Arc<dyn DashboardSources>>,
}

pub struct Application {
    app: Arc<App>,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Overrides::default()).await
    }

    pub async fn build_with(config: Config, overrides: Overrides) -> anyhow::Result<Self> {
        let db = Db::connect(&config).await?;
        db.migrate().await.context("applying migrations")?;
        let secret = jwt_secret(&config)?;
        let tokens = TokenKeys::new(&config.auth, secret.as_bytes());
        let payments = overrides.payments.unwrap_or_else(|| Arc::new(SandboxGateway::new(db.clone())));
        let dashboard = overrides.dashboard.unwrap_or_else(|| Arc::new(SqlSources::new(db.clone())));
        let listener = TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("binding http.addr {}", config.http.addr))?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App { config, db, tokens, payments, dashboard, draining: AtomicBool::new(false) });
        Ok(Self { app, listener, addr })
    }

    /// The address the HTTP listener is bound to (its real port when configured with 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves HTTP and runs the background workers until `shutdown` completes; then stops
    /// accepting, lets in-flight requests finish for up to `http.shutdown_grace_ms`, stops
    /// the workers and closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { app, listener, addr } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let workers = AbortOnDrop(tokio::spawn(crate::orders::recovery::run_workers(app.clone(), stop_rx.clone())));
        let router = crate::http::router(AppState(app.clone()));
        let draining = app.clone();
        let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                draining.draining.store(true, Ordering::Relaxed);
                tracing::info!("shutting down: draining in-flight requests");
                let _ = stop_tx.send(true);
            });
        tracing::info!(http.addr = %addr, db.backend = ?app.db.backend(), "orderly is serving");
        let grace = Duration::from_millis(app.config.http.shutdown_grace_ms);
        let mut stopped = stop_rx;
        let deadline = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            r = server => r.context("http server")?,
            () = deadline => tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections"),
        }
        drop(workers);
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
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
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

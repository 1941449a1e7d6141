//! The database: one `AnyPool` over SQLite (default) or PostgreSQL, migrations, and the
//! portable-schema helpers (timestamps as fixed-width RFC 3339 text, ids as text).
//!
//! Why `AnyPool` and not two typed pools: every query is written once in the portable
//! subset (`$N` placeholders, `RETURNING`, `ON CONFLICT`), so both backends run the same
//! code and the same tests; a branch exists only where PostgreSQL needs its own SQL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

pub mod breaker;
pub mod counter;
pub use self::breaker::Breaker;

/// A write transaction, as [`Db::begin_write`] opens it.
pub type Tx = WriteTx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool and which backend it talks to. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Fails requests fast while the database cannot be reached (see [`breaker`]).
    pub breaker: Breaker,
    /// SQLite's single writer, taken in the process before `BEGIN IMMEDIATE` (see
    /// [`Db::write_permit`]).
    writer: Arc<Semaphore>,
}

/// How long a connection waits for SQLite's locks (`busy_timeout`): 10 s.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";

/// How long a writer waits for SQLite's write lock in the process: as long as SQLite's own
/// `busy_timeout`, after which it fails like a busy database would.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// A pooled connection for a step that writes ([`Db::acquire_for_write`]); derefs to the
/// connection.
pub struct WriteConn {
    conn: sqlx::pool::PoolConnection<Any>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.conn
    }
}

/// A write transaction ([`Db::begin_write`]): a sqlx `Transaction` that, on SQLite, holds
/// the process's write permit until it commits, rolls back or is dropped. It derefs to the
/// connection, as a `Transaction` does (`&mut *tx` is an executor).
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Connects with the pool settings in `config.database`; creates the data directory for
    /// the default SQLite file.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        install_default_drivers();
        let url = config.database_url();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        if backend == Backend::Sqlite && config.database.url.is_empty() {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", config.data_dir.display()))?;
        }
        let heap_limit_bytes = config.database.sqlite_heap_limit_mib.saturating_mul(1024 * 1024);
        let pool = AnyPoolOptions::new()
            .max_connections(config.database.max_connections)
            .min_connections(config.database.min_connections)
            .acquire_timeout(Duration::from_millis(config.database.acquire_timeout_ms))
            // No ping before handing out an idle connection: it costs a round trip per
            // acquisition (on SQLite a handoff to the worker thread) and proves little, since a
            // connection can die right after it. A dead connection fails its query instead,
            // which the caller sees as a database error (and the breaker counts). sqlx 0.9
            // still pings once on release (`PoolConnection::return_to_pool`, not
            // configurable): the hot paths therefore acquire once per step, not per query.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                        // WAL lets readers run beside the one writer; busy_timeout makes a
                        // second writer wait for the lock instead of failing at once.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            BUSY_TIMEOUT,
                            // No checkpoint inside a commit (by default the commit that takes
                            // the WAL past 1,000 pages copies them back and syncs twice, with
                            // the write permit held): `checkpoint_wal` runs them instead.
                            "PRAGMA wal_autocheckpoint = 0",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        // Process-wide: with 16 connections, each with SQLite's default
                        // 2 MB page cache, a long import grew RSS by 35 MiB. Past the
                        // limit, pages are recycled across all connections' caches.
                        let limit = format!("PRAGMA soft_heap_limit = {heap_limit_bytes}");
                        sqlx::query(sqlx::AssertSqlSafe(limit)).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
        let writer = Arc::new(Semaphore::new(1));
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_wal(pool.clone(), writer.clone()));
        }
        Ok(Self { pool, backend, breaker: Breaker::default(), writer })
    }

    pub fn pool(&self) -> &AnyPool {
        counter::note();
        &self.pool
    }

    /// One connection for a step of several queries (one pool acquisition, one release).
    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Any>, sqlx::Error> {
        counter::note();
        self.pool.acquire().await
    }

    /// One connection for a step that reads, then writes (checkout's price lookup and
    /// placement). On SQLite it holds the write permit, taken *before* the connection: every
    /// writer takes the permit first, so none can hold a connection while it waits for the
    /// permit and starve the permit's holder of connections.
    pub async fn acquire_for_write(&self) -> Result<WriteConn, sqlx::Error> {
        let permit = self.write_permit().await?;
        counter::note();
        Ok(WriteConn { conn: self.pool.acquire().await?, _permit: permit })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations. Safe to run from several processes at once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it first waits for the process's
    /// write permit ([`Db::write_permit`]), then takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a writer never fails with SQLITE_BUSY when it upgrades a read
    /// lock.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let permit = self.write_permit().await?;
        counter::note();
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _permit: permit })
    }

    /// On SQLite, the permit to write, to hold from before `BEGIN IMMEDIATE` until after
    /// `COMMIT`; `None` on PostgreSQL, whose writers lock rows, not the database. Take it
    /// before acquiring the connection that writes (never while holding a pooled
    /// connection), or writers waiting here could hold every connection the permit's holder
    /// needs.
    ///
    /// SQLite has one writer at a time. Without this, concurrent writers wait in SQLite's
    /// busy handler, which polls with sleeps of 1 to 100 ms: under load a writer sleeps long
    /// after the lock is free, and checkout's p99 reached hundreds of milliseconds. Waiting
    /// here instead hands the lock over in FIFO order the moment it is released. Writes that
    /// do not come through here (autocommit statements) still queue on `busy_timeout`.
    /// Errors: `PoolTimedOut` after 10 s (SQLite's `busy_timeout`), as a busy database would.
    pub async fn write_permit(&self) -> Result<Option<OwnedSemaphorePermit>, sqlx::Error> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        match tokio::time::timeout(WRITE_WAIT, self.writer.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_)) | Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// One round trip, for readiness probes.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How often [`checkpoint_wal`] copies SQLite's WAL back into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// WAL frames (pages, 4 KiB each by default: 16 MiB) past which [`checkpoint_wal`] also
/// truncates the WAL.
pub const WAL_TRUNCATE_FRAMES: i64 = 4_096;

/// How long the truncating checkpoint waits for readers to leave the WAL, while holding
/// the write permit: kept short, since every writer of the process waits meanwhile.
const TRUNCATE_BUSY_MS: i64 = 100;

/// SQLite's WAL checkpoints, off the writers' path: every [`CHECKPOINT_EVERY`], a `PASSIVE`
/// checkpoint (<https://sqlite.org/pragma.html#pragma_wal_checkpoint>) syncs the WAL, copies
/// the committed pages back into the database file and syncs it, without taking the write
/// lock, so writers go on committing meanwhile. SQLite's own automatic checkpoint (switched
/// off on every connection by `wal_autocheckpoint = 0`) ran inside the commit that took the
/// WAL past 1,000 pages, with the process's write permit held, so every writer queued
/// behind its two syncs.
///
/// A passive checkpoint never shrinks the WAL: a writer starts it over from its beginning
/// only if, at that moment, every frame is copied back and no reader is in the WAL. Under a
/// steady stream of writes that moment never comes (a 100 MB import grew the WAL to 6 GB,
/// and its index, mapped into the process, by 12 MiB). So once the WAL holds more than
/// [`WAL_TRUNCATE_FRAMES`], the task takes the process's write permit (no writer of this
/// process is in a transaction then) and runs a `TRUNCATE` checkpoint, which waits up to
/// [`TRUNCATE_BUSY_MS`] for readers, copies what the passive one left and empties the WAL
/// file. If readers stay, it gives up and tries again at the next tick.
///
/// Durability: the same guarantees as before (docs/OPERATIONS.md); the window a power loss
/// can take (commits since the last WAL sync) is now at most about one interval at any load,
/// where it was "until 1,000 pages were written", unbounded on an idle database. Ends when the
/// pool is closed; a failed checkpoint is logged and retried at the next tick.
async fn checkpoint_wal(pool: AnyPool, writer: Arc<Semaphore>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let passive = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await;
        let result = match passive {
            Ok(row) => match row.try_get::<i64, _>(1) {
                Ok(frames) if frames > WAL_TRUNCATE_FRAMES => truncate_wal(&pool, &writer).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying at the next interval");
        }
    }
}

/// The truncating checkpoint of [`checkpoint_wal`], under the write permit.
async fn truncate_wal(pool: &AnyPool, writer: &Arc<Semaphore>) -> Result<(), sqlx::Error> {
    let Ok(Ok(_permit)) = tokio::time::timeout(CHECKPOINT_EVERY, writer.clone().acquire_owned()).await else {
        return Ok(());
    };
    let mut conn = pool.acquire().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {TRUNCATE_BUSY_MS}"))).execute(&mut *conn).await?;
    let truncated = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await;
    let restored = sqlx::query(BUSY_TIMEOUT).execute(&mut *conn).await;
    if restored.is_err() {
        // A connection left with the short timeout would fail writers early: drop it.
        conn.close_on_drop();
    }
    truncated.map(|_| ())
}

/// Formats a timestamp the way every timestamp column stores it:
/// `2026-11-22T10:00:00.000000Z` (fixed width, so text order is time order).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time, formatted by [`ts`].
pub fn now() -> String {
    ts(Utc::now())
}

/// Parses a timestamp column written by [`ts`].
pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(format!("bad timestamp {s:?}: {e}").into()))
}

/// Parses an id column (UUID text).
pub fn parse_id(s: &str) -> Result<uuid::Uuid, sqlx::Error> {
    uuid::Uuid::from_str(s).map_err(|e| sqlx::Error::Decode(format!("bad id {s:?}: {e}").into()))
}

/// A new time-ordered id (UUID v7).
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Whether `err` is a unique-constraint violation on a constraint or column whose name
/// contains `hint` (PostgreSQL names the constraint, SQLite the column).
pub fn is_unique_violation(err: &sqlx::Error, hint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.constraint().is_some_and(|c| c.contains(hint)) || db.message().contains(hint)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip() {
        let t = DateTime::parse_from_rfc3339("2016-11-08T00:00:00Z").unwrap().with_timezone(&Utc);
        let s = ts(t);
        assert_eq!(s, "2016-11-08T00:00:00.000000Z");
        assert_eq!(parse_ts(&s).unwrap(), t);
    }

    #[tokio::test]
    async fn a_wal_past_its_bound_is_emptied_by_the_checkpoint_task() {
        let dir = std::env::temp_dir().join(format!("orderly-wal-{}", new_id()));
        let config = Config::from_pairs([("data_dir", dir.display().to_string())]).unwrap();
        let db = Db::connect(&config).await.unwrap();
        sqlx::query("CREATE TABLE blobs (b TEXT NOT NULL)").execute(db.pool()).await.unwrap();
        // 24 MiB in one transaction: about 6,000 pages, past WAL_TRUNCATE_FRAMES.
        let mut tx = db.begin_write().await.unwrap();
        for _ in 0..96 {
            sqlx::query("INSERT INTO blobs (b) VALUES ($1)")
                .bind("x".repeat(256 * 1024))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let wal = dir.join("orderly.db-wal");
        let written = std::fs::metadata(&wal).unwrap().len();
        assert!(written > 20 * 1024 * 1024, "the WAL holds the transaction: {written} bytes");
        let deadline = tokio::time::Instant::now() + CHECKPOINT_EVERY * 5;
        while std::fs::metadata(&wal).unwrap().len() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "a passive checkpoint alone never shrinks the WAL");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs").fetch_one(db.pool()).await.unwrap();
        assert_eq!(rows, 96, "every committed row is in the database file");
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A value bound into SQL assembled at run time.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// SQL assembled at run time from fixed fragments, with `$N` placeholders numbered as
/// values are added: user input only ever travels as bound values.
#[derive(Debug, Default)]
pub struct SqlBuilder {
    sql: String,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_owned(), args: Vec::new() }
    }

    /// Appends a fixed fragment.
    pub fn push(&mut self, fragment: &str) -> &mut Self {
        self.sql.push_str(fragment);
        self
    }

    /// Binds `arg` and returns its placeholder (`$3`), to be used in a fragment.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The query with every value bound.
    pub fn build(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

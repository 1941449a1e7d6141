//! Counting the database work of one request: a task-local counter that [`super::Db`]
//! bumps each time a statement or a connection is taken from the pool (`pool()`,
//! `acquire*`, `begin_write`). A read path runs one statement per `pool()` call, so there
//! the count is the number of SQL queries; a step that runs several statements on one
//! acquired connection counts once.
//!
//! Outside [`counting`] the hook is one thread-local lookup that finds nothing, so the hot
//! path pays ~nothing. Used by GraphQL to report (and its tests to bound) the queries per
//! request: the DataLoader's batches run in spawned tasks, which [`counting`] is wrapped
//! around as well (see `graphql::loaders`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    static QUERIES: QueryCount;
}

/// A shared count of pool uses; clones count into the same total.
#[derive(Debug, Clone, Default)]
pub struct QueryCount(Arc<AtomicU64>);

impl QueryCount {
    /// Pool uses counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `fut` with every pool use inside it (in this task) added to `count`.
pub async fn counting<F: Future>(count: QueryCount, fut: F) -> F::Output {
    QUERIES.scope(count, fut).await
}

/// The count of the current task, if it is [`counting`].
pub fn current() -> Option<QueryCount> {
    QUERIES.try_with(Clone::clone).ok()
}

/// Adds one to the current task's count, if any.
#[inline]
pub(super) fn note() {
    let _ = QUERIES.try_with(|c| c.0.fetch_add(1, Ordering::Relaxed));
}

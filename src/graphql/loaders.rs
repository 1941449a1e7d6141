//! DataLoaders, one set per request: a page of orders asks for the product of each line,
//! and the loader answers all of them with one `catalog::products::get_many` query (per
//! batch of up to 100 ids), under the caller's principal, whatever the page size.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use uuid::Uuid;

use crate::auth::resolve::Resolved;
use crate::catalog::products::{self, Product};
use crate::db::counter::{self, QueryCount};
use crate::error::Error;
use crate::services::AppState;

/// Loads products by id as the request's caller may see them (absent: not visible).
pub struct ProductLoader {
    app: AppState,
    caller: Resolved,
}

impl Loader<Uuid> for ProductLoader {
    type Value = Product;
    type Error = Arc<Error>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Product>, Arc<Error>> {
        let principal = self.caller.clone().into_result().map_err(Arc::new)?;
        let found = products::get_many(&self.app.catalog, &principal, keys).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|p| (p.id, p)).collect())
    }
}

/// The request's product loader. Its batches run in spawned tasks, which count their
/// queries into `count` like the request itself (`db::counter`).
pub fn products(app: AppState, caller: Resolved, count: Option<QueryCount>) -> DataLoader<ProductLoader> {
    DataLoader::new(ProductLoader { app, caller }, move |fut| {
        let count = count.clone().or_else(counter::current);
        tokio::spawn(async move {
            match count {
                Some(c) => counter::counting(c, fut).await,
                None => fut.await,
            }
        })
    })
    .max_batch_size(100)
}

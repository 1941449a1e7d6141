//! Catalog reads as the transports send them: [`Representation`]s (JSON and ETag) through
//! the read cache (`crate::cache`). The same rules as the typed reads in `products` and
//! `categories`, checked on every call, hit or miss: admission first, then `catalog:read`
//! for API keys; an archived product is found only by staff; a list page is kept per view
//! (staff or not) so one caller's view is never served to another.

use uuid::Uuid;

use super::{Catalog, ProductStatus, categories, products};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::cache::{Entry, Key};
use crate::conditional::Representation;
use crate::error::{Error, Result};
use crate::ratelimit::Class;

/// One product as JSON (`Product`) with its ETag. Errors as [`products::get`]: 403
/// `insufficient-scope` for an API key without `catalog:read`; 404 if there is no such
/// product, or it is archived and the caller is not staff.
pub async fn product(cat: &Catalog, principal: &Principal, id: Uuid) -> Result<Representation> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    let entry = cat
        .cache
        .get_or_load(Key::Product(id), || async {
            let p = products::fetch(&cat.db, id, true).await?;
            Ok(Entry { restricted: p.status == ProductStatus::Archived, rep: Representation::json(&p)? })
        })
        .await?;
    if entry.restricted && !principal.is_staff() {
        return Err(Error::NotFound("product"));
    }
    Ok(entry.rep)
}

/// A page of products as JSON (`Page<Product>`) with its ETag. Errors as
/// [`products::list`]: 403 `insufficient-scope`; 403 `forbidden` for archived products
/// asked for by non-staff; 422 on `limit`, `cursor` or `sort`.
pub async fn product_page(cat: &Catalog, principal: &Principal, f: &products::ProductFilter) -> Result<Representation> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    let staff = principal.is_staff();
    let key = cat.cache.list_key(staff, format!("{f:?}"));
    let entry = cat
        .cache
        .get_or_load(key, || async {
            let page = products::page_for(&cat.db, staff, f).await?;
            Ok(Entry { restricted: false, rep: Representation::json(&page)? })
        })
        .await?;
    Ok(entry.rep)
}

/// Every category as JSON (`[Category]`) with its ETag. 403 `insufficient-scope` for an API
/// key without `catalog:read`.
pub async fn category_list(cat: &Catalog, principal: &Principal) -> Result<Representation> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    let entry = cat
        .cache
        .get_or_load(Key::Categories, || async {
            let all = categories::load_all(&cat.db).await?;
            Ok(Entry { restricted: false, rep: Representation::json(&all)? })
        })
        .await?;
    Ok(entry.rep)
}

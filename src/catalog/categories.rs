//! Categories form a tree through `parent_id`; slugs are unique.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Catalog, Name, slugify};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::{self, Db};
use crate::error::{Error, FieldError, Result};
use crate::ratelimit::Class;

/// A node of the category tree. `slug` is unique and includes the parent's slug.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

fn from_row(row: &AnyRow) -> Result<Category, sqlx::Error> {
    let parent: Option<String> = row.try_get("parent_id")?;
    Ok(Category {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        parent_id: parent.as_deref().map(db::parse_id).transpose()?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
    })
}

/// Every category, root categories first, then by name. Public: anyone may list them; an
/// API key needs `catalog:read` (403 `insufficient-scope`).
pub async fn list(cat: &Catalog, principal: &Principal) -> Result<Vec<Category>> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    load_all(&cat.db).await
}

/// Every category, in [`list`]'s order, without any check (for the read cache's loader).
pub(super) async fn load_all(db: &Db) -> Result<Vec<Category>> {
    let rows = sqlx::query(
        "SELECT id, parent_id, name, slug, created_at FROM categories \
         ORDER BY CASE WHEN parent_id IS NULL THEN 0 ELSE 1 END, name",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

async fn get(db: &Db, id: Uuid) -> Result<Category> {
    let row = sqlx::query("SELECT id, parent_id, name, slug, created_at FROM categories WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("category"))?;
    Ok(from_row(&row)?)
}

/// Creates a category named `name` (raw: parsed as a [`Name`]) under `parent`, or at the
/// root. The slug is the parent's slug and the name's, so "Chairs" under "Furniture" is
/// `furniture-chairs`. Needs staff with `catalog:write`.
///
/// Errors: 422 on `name` (empty, over 200 characters, or without a letter or digit) and on
/// `parent_id` (no such category); 409 `slug-taken` if the slug exists.
pub async fn create(cat: &Catalog, principal: &Principal, name: &str, parent: Option<Uuid>) -> Result<Category> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    let db = &cat.db;
    let name = Name::parse(name).map_err(|m| Error::Validation(vec![FieldError::new("name", m)]))?;
    // Checked before the parent's slug is prepended: "!!!" under "Furniture" has no slug of
    // its own either.
    let own_slug = slugify(name.as_str());
    if own_slug.is_empty() {
        return Err(Error::Validation(vec![FieldError::new("name", "must contain a letter or digit")]));
    }
    let slug = match parent {
        Some(p) => match get(db, p).await {
            Ok(parent) => format!("{}-{own_slug}", parent.slug),
            Err(Error::NotFound(_)) => {
                return Err(Error::Validation(vec![FieldError::new("parent_id", "no such category")]));
            }
            Err(e) => return Err(e),
        },
        None => own_slug,
    };
    let row = sqlx::query(
        "INSERT INTO categories (id, parent_id, name, slug, created_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, parent_id, name, slug, created_at",
    )
    .bind(db::new_id().to_string())
    .bind(parent.map(|p| p.to_string()))
    .bind(name.as_str())
    .bind(&slug)
    .bind(db::now())
    .fetch_one(db.pool())
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e, "slug") {
            Error::conflict("slug-taken", format!("a category with slug {slug:?} exists already"))
        } else {
            e.into()
        }
    })?;
    let created = from_row(&row)?;
    cat.cache.categories_changed().await;
    Ok(created)
}

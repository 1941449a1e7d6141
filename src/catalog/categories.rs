//! Categories form a tree through `parent_id`; slugs are unique.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::slugify;
use crate::db::{self, Db};
use crate::error::{Error, FieldError, Result};

#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// Every category, parents before children, then by name.
pub async fn list(db: &Db) -> Result<Vec<Category>> {
    let rows = sqlx::query(
        "SELECT id, parent_id, name, slug, created_at FROM categories \
         ORDER BY CASE WHEN parent_id IS NULL THEN 0 ELSE 1 END, name",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

pub async fn get(db: &Db, id: Uuid) -> Result<Category> {
    let row = sqlx::query("SELECT id, parent_id, name, slug, created_at FROM categories WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("category"))?;
    Ok(from_row(&row)?)
}

/// Creates a category under `parent` (or at the root). The slug is the parent's slug and
/// the name's, so "Chairs" under "Furniture" is `furniture-chairs`. 409 `slug-taken` if it
/// exists; 422 if the parent does not.
pub async fn create(db: &Db, name: &str, parent: Option<Uuid>) -> Result<Category> {
    let parent_slug = match parent {
        Some(p) => Some(
            get(db, p)
                .await
                .map_err(|_| Error::Validation(vec![FieldError::new("parent_id", "no such category")]))?
                .slug,
        ),
        None => None,
    };
    let slug = match parent_slug {
        Some(ps) => format!("{ps}-{}", slugify(name)),
        None => slugify(name),
    };
    if slug.is_empty() {
        return Err(Error::Validation(vec![FieldError::new("name", "must contain a letter or digit")]));
    }
    let row = sqlx::query(
        "INSERT INTO categories (id, parent_id, name, slug, created_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, parent_id, name, slug, created_at",
    )
    .bind(db::new_id().to_string())
    .bind(parent.map(|p| p.to_string()))
    .bind(name)
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
    Ok(from_row(&row)?)
}

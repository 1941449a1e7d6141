//! Cursor (keyset) pagination. A cursor is an opaque base64url token holding the sort key and
//! id of the last row served, plus the sort it belongs to; the next page starts strictly
//! after it, so rows are never skipped or repeated while the list changes underneath.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, FieldError};

/// Page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorKey {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort this cursor was made for; a cursor is only valid with the same sort.
    #[serde(rename = "s", default)]
    pub sort: String,
    #[serde(rename = "k")]
    pub key: CursorKey,
    pub id: String,
}

impl Cursor {
    pub fn text(key: String, id: String) -> Self {
        Self { sort: String::new(), key: CursorKey::Text(key), id }
    }

    pub fn int(key: i64, id: String) -> Self {
        Self { sort: String::new(), key: CursorKey::Int(key), id }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(s: &str) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| "is not a cursor returned by this API".to_string())?;
        serde_json::from_slice(&bytes).map_err(|_| "is not a cursor returned by this API".to_string())
    }

    pub fn key_text(&self) -> Result<&str, Error> {
        match &self.key {
            CursorKey::Text(s) => Ok(s),
            CursorKey::Int(_) => Err(bad_cursor()),
        }
    }

    pub fn key_int(&self) -> Result<i64, Error> {
        match &self.key {
            CursorKey::Int(i) => Ok(*i),
            CursorKey::Text(_) => Err(bad_cursor()),
        }
    }
}

fn bad_cursor() -> Error {
    Error::Validation(vec![FieldError::new("cursor", "does not belong to this sort order")])
}

/// The `limit` and `cursor` query parameters of a list endpoint with no other filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque, base64url).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<Cursor>,
    pub sort: String,
}

impl PageRequest {
    /// Checks `limit` (1..=MAX_PAGE_SIZE) and `cursor` (must come from the same `sort`).
    pub fn parse(limit: Option<u32>, cursor: Option<&str>, sort: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")));
        }
        let cursor = match cursor.filter(|c| !c.is_empty()).map(Cursor::decode) {
            Some(Ok(c)) if c.sort == sort => Some(c),
            Some(Ok(_)) => {
                errors.push(FieldError::new("cursor", "belongs to another sort order"));
                None
            }
            Some(Err(m)) => {
                errors.push(FieldError::new("cursor", m));
                None
            }
            None => None,
        };
        if errors.is_empty() { Ok(Self { limit, cursor, sort: sort.to_owned() }) } else { Err(errors) }
    }

    /// How many rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts `rows` (fetched with `fetch_limit`) to the page and makes the next cursor.
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor =
            if more { rows.last().map(|r| Cursor { sort: self.sort.clone(), ..cursor_of(r) }.encode()) } else { None };
        Page { items: rows, next_cursor }
    }
}

/// Rows of `table` newest first (`created_at DESC, id DESC`), one page after `page.cursor`
/// (fetched with `fetch_limit`, for [`PageRequest::finish`] with a `created_at` text
/// cursor). `columns` and `table` are fixed fragments from the caller's code, never input.
pub async fn fetch_newest_first(
    db: &crate::db::Db,
    columns: &'static str,
    table: &'static str,
    page: &PageRequest,
) -> Result<Vec<sqlx::any::AnyRow>, Error> {
    let mut b = crate::db::SqlBuilder::new(&format!("SELECT {columns} FROM {table} WHERE 1 = 1"));
    push_newest_first(&mut b, page)?;
    Ok(b.build().fetch_all(db.pool()).await?)
}

/// Ends a query whose `WHERE` clause is open with the page's keyset condition (after
/// `page.cursor`), `ORDER BY created_at DESC, id DESC` and the fetch limit, for
/// [`PageRequest::finish`] with a `created_at` text cursor. Errors: a cursor of another
/// list (422).
pub fn push_newest_first(b: &mut crate::db::SqlBuilder, page: &PageRequest) -> Result<(), Error> {
    if let Some(c) = &page.cursor {
        let k = b.arg(crate::db::Arg::Text(c.key_text()?.to_owned()));
        let id = b.arg(crate::db::Arg::Text(c.id.clone()));
        b.push(&format!(" AND (created_at < {k} OR (created_at = {k} AND id < {id}))"));
    }
    let lim = b.arg(crate::db::Arg::Int(page.fetch_limit()));
    b.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {lim}"));
    Ok(())
}

/// One page of a list. Pass `next_cursor` as `cursor` to get the next page; it is `null` on
/// the last page.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { sort: "price".into(), ..Cursor::int(1299, "abc".into()) };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not-a-cursor!").is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert!(PageRequest::parse(Some(0), None, "").is_err());
        assert!(PageRequest::parse(Some(MAX_PAGE_SIZE + 1), None, "").is_err());
        assert_eq!(PageRequest::parse(None, None, "").unwrap().limit, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn a_cursor_from_another_sort_is_rejected() {
        let c = Cursor { sort: "price".into(), ..Cursor::int(1, "a".into()) }.encode();
        assert!(PageRequest::parse(None, Some(&c), "name").is_err());
        assert!(PageRequest::parse(None, Some(&c), "price").is_ok());
    }

    #[test]
    fn finish_reports_a_next_cursor_only_when_more_rows_exist() {
        let req = PageRequest::parse(Some(2), None, "").unwrap();
        let p = req.finish(vec![1, 2, 3], |i| Cursor::int(*i, i.to_string()));
        assert_eq!(p.items, vec![1, 2]);
        assert!(p.next_cursor.is_some());
        let p = req.finish(vec![1, 2], |i| Cursor::int(*i, i.to_string()));
        assert!(p.next_cursor.is_none());
    }
}

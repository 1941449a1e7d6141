//! User accounts: registration, password checks, roles, deactivation, search and password
//! resets. These are the store's operations and take no caller: transports call the
//! [`Accounts`](super::accounts::Accounts) service, which authorizes and validates first.
//! The CLI and tests use them directly to set up accounts. Sessions and tokens are in
//! [`super::sessions`].

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::tokens::{hash_token, new_opaque_token};
use super::{Email, Password, Role, password};
use crate::db::{self, Arg, Db, SqlBuilder};
use crate::error::{Error, Result};
use crate::pagination::{Cursor, Page, PageRequest};

/// A user as the API shows it. Never carries the password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// False for imported customers who have not set a password yet, and for deactivated
    /// accounts.
    pub can_log_in: bool,
    /// The id in the system this user was imported from (e.g. Superstore `CG-12520`).
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Set while the account is deactivated: it cannot log in, and its tokens and API keys
    /// are refused.
    pub deactivated_at: Option<DateTime<Utc>>,
}

/// A user with what only the server sees: the password hash and the token version.
pub(super) struct Account {
    pub user: User,
    pub password_hash: Option<String>,
    /// Copied into every access token; bumped to refuse them all (src/auth/credentials.rs).
    pub token_version: i64,
}

pub(super) const USER_COLUMNS: &str =
    "id, email, name, role, password_hash, external_ref, created_at, token_version, deactivated_at";

pub(super) fn account_from_row(row: &AnyRow) -> Result<Account, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let hash: Option<String> = row.try_get("password_hash")?;
    let deactivated_at =
        row.try_get::<Option<String>, _>("deactivated_at")?.as_deref().map(db::parse_ts).transpose()?;
    let user = User {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        can_log_in: hash.is_some() && deactivated_at.is_none(),
        external_ref: row.try_get("external_ref")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        deactivated_at,
    };
    Ok(Account { user, password_hash: hash, token_version: row.try_get("token_version")? })
}

/// Creates a user. Fails with 409 `email-taken` if the email is registered already.
pub async fn create(db: &Db, email: &Email, password: Option<&Password>, name: &str, role: Role) -> Result<User> {
    let hash = match password {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    let now = db::now();
    let id = db::new_id();
    let sql = format!(
        "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {USER_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(email.as_str())
        .bind(name)
        .bind(hash)
        .bind(role.as_str())
        .bind(&now)
        .fetch_one(db.pool())
        .await
        .map_err(|e| {
            if db::is_unique_violation(&e, "email") {
                Error::conflict("email-taken", "an account with this email exists already")
            } else {
                e.into()
            }
        })?;
    Ok(account_from_row(&row)?.user)
}

/// The user `id`. Errors: 404 `NotFound("user")`.
pub async fn get(db: &Db, id: Uuid) -> Result<User> {
    Ok(account(db, id).await?.user)
}

/// The user `id` with hash and token version. Errors: 404 `NotFound("user")`.
pub(super) async fn account(db: &Db, id: Uuid) -> Result<Account> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("user"))?;
    Ok(account_from_row(&row)?)
}

/// Checks an email and password. Every failure is the same 401 `InvalidCredentials`, and
/// costs the same time: unknown email, no password set, wrong password, deactivated account
/// (so a login reveals nothing about which accounts exist or are deactivated).
pub async fn authenticate(db: &Db, email: &str, password: &str) -> Result<User> {
    Ok(authenticate_account(db, email, password).await?.user)
}

pub(super) async fn authenticate_account(db: &Db, email: &str, password: &str) -> Result<Account> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(email.trim().to_lowercase()).fetch_optional(db.pool()).await?;
    let account = row.as_ref().map(account_from_row).transpose()?;
    let hash = account.as_ref().and_then(|a| a.password_hash.clone());
    if password::verify(password, hash).await {
        account.filter(|a| a.user.deactivated_at.is_none()).ok_or(Error::InvalidCredentials)
    } else {
        Err(Error::InvalidCredentials)
    }
}

/// Whether `password` is user `id`'s current password (equal time either way).
/// Errors: 401 `InvalidCredentials` when it is not, 404 `NotFound("user")`.
pub async fn verify_password(db: &Db, id: Uuid, password: &str) -> Result<()> {
    let account = account(db, id).await?;
    if password::verify(password, account.password_hash).await { Ok(()) } else { Err(Error::InvalidCredentials) }
}

/// Changes the user's own name. Never the role.
pub async fn rename(db: &Db, id: Uuid, name: &str) -> Result<User> {
    sqlx::query("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
        .bind(name)
        .bind(db::now())
        .bind(id.to_string())
        .execute(db.pool())
        .await?;
    get(db, id).await
}

/// An admin changes another user's role. Admins cannot change their own role, so the last
/// admin cannot lock everyone out by accident. Bumps the token version: the user's access
/// tokens are refused from the next request (their sessions refresh into the new role).
pub async fn set_role(db: &Db, actor: Uuid, target: Uuid, role: Role) -> Result<User> {
    if actor == target {
        return Err(Error::Forbidden("you cannot change your own role"));
    }
    let n = sqlx::query("UPDATE users SET role = $1, token_version = token_version + 1, updated_at = $2 WHERE id = $3")
        .bind(role.as_str())
        .bind(db::now())
        .bind(target.to_string())
        .execute(db.pool())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound("user"));
    }
    get(db, target).await
}

/// Deactivates user `id` (idempotent): it can no longer log in, every refresh token is
/// revoked and the token version bumped, so its access tokens are refused from the next
/// request; its API keys are refused too while it stays deactivated. Errors: 404.
pub async fn deactivate(db: &Db, id: Uuid) -> Result<User> {
    let now = db::now();
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE users SET deactivated_at = COALESCE(deactivated_at, $1), token_version = token_version + 1, \
         updated_at = $1 WHERE id = $2",
    )
    .bind(&now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound("user"));
    }
    super::sessions::revoke_all(&mut tx, id, None, &now).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Lets a deactivated user log in again (idempotent). Sessions revoked at deactivation
/// stay revoked. Errors: 404.
pub async fn reactivate(db: &Db, id: Uuid) -> Result<User> {
    let n = sqlx::query("UPDATE users SET deactivated_at = NULL, updated_at = $1 WHERE id = $2")
        .bind(db::now())
        .bind(id.to_string())
        .execute(db.pool())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound("user"));
    }
    get(db, id).await
}

/// Users newest first, `limit` per page.
pub async fn list(db: &Db, page: &PageRequest) -> Result<Page<User>> {
    let rows = crate::pagination::fetch_newest_first(db, USER_COLUMNS, "users", page).await?;
    finish(page, &rows)
}

/// Users whose email or name contains `term` (case-insensitive), newest first, `limit`
/// per page. A scan of `users`: fine for the thousands of accounts a shop has.
pub async fn search(db: &Db, term: &str, page: &PageRequest) -> Result<Page<User>> {
    let mut b = SqlBuilder::new(&format!("SELECT {USER_COLUMNS} FROM users WHERE "));
    let escaped = term.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let q = b.arg(Arg::Text(format!("%{escaped}%")));
    b.push(&format!("(email LIKE {q} ESCAPE '\\' OR LOWER(name) LIKE {q} ESCAPE '\\')"));
    crate::pagination::push_newest_first(&mut b, page)?;
    let rows = b.build().fetch_all(db.pool()).await?;
    finish(page, &rows)
}

fn finish(page: &PageRequest, rows: &[AnyRow]) -> Result<Page<User>> {
    let users = rows.iter().map(|r| account_from_row(r).map(|a| a.user)).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(users, |u| Cursor::text(db::ts(u.created_at), u.id.to_string())))
}

/// Issues a single-use password-reset token for `user` valid for 24 hours, for an admin to
/// hand over (imported customers have no password until they use one).
pub async fn create_password_reset(db: &Db, user: Uuid) -> Result<(String, DateTime<Utc>)> {
    get(db, user).await?;
    let token = new_opaque_token()?;
    let expires = Utc::now() + Duration::hours(24);
    sqlx::query("INSERT INTO password_resets (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(hash_token(&token))
        .bind(user.to_string())
        .bind(db::ts(expires))
        .bind(db::now())
        .execute(db.pool())
        .await?;
    Ok((token, expires))
}

/// Creates an admin, or makes an existing user admin with this password (for the CLI's
/// `user create-admin`, which is also how a locked-out admin recovers; a deactivated admin
/// is reactivated).
pub async fn upsert_admin(db: &Db, email: &Email, password: &Password, name: &str) -> Result<User> {
    match create(db, email, Some(password), name, Role::Admin).await {
        Err(Error::Conflict { code: "email-taken", .. }) => {
            let hash = password::hash(password).await?;
            sqlx::query(
                "UPDATE users SET role = 'admin', password_hash = $1, deactivated_at = NULL, \
                 token_version = token_version + 1, updated_at = $2 WHERE email = $3",
            )
            .bind(hash)
            .bind(db::now())
            .bind(email.as_str())
            .execute(db.pool())
            .await?;
            let id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
                .bind(email.as_str())
                .fetch_one(db.pool())
                .await?;
            get(db, db::parse_id(&id)?).await
        }
        other => other,
    }
}

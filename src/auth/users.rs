//! User accounts and sessions: registration, login, refresh-token rotation with reuse
//! detection (OAuth 2.0 Security BCP, RFC 9700 §4.14.2), logout, role management and
//! password resets. These are the store's operations and take no caller: transports call
//! the [`Accounts`](super::accounts::Accounts) service, which authorizes and validates
//! first. The CLI and tests use them directly to set up accounts.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::tokens::{TokenKeys, hash_token, new_opaque_token};
use super::{Email, Password, Role, password};
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::pagination::{Cursor, Page, PageRequest};

/// A user as the API shows it. Never carries the password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// False for imported customers who have not set a password yet.
    pub can_log_in: bool,
    /// The id in the system this user was imported from (e.g. Superstore `CG-12520`).
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "id, email, name, role, password_hash, external_ref, created_at";

fn user_from_row(row: &AnyRow) -> Result<(User, Option<String>), sqlx::Error> {
    let role: String = row.try_get("role")?;
    let hash: Option<String> = row.try_get("password_hash")?;
    let user = User {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        can_log_in: hash.is_some(),
        external_ref: row.try_get("external_ref")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
    };
    Ok((user, hash))
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one; presenting a used one revokes the session.
    pub refresh_token: String,
    pub user: User,
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
    Ok(user_from_row(&row)?.0)
}

/// The user `id`. Errors: 404 `NotFound("user")`.
pub async fn get(db: &Db, id: Uuid) -> Result<User> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("user"))?;
    Ok(user_from_row(&row)?.0)
}

/// Checks an email and password. Every failure is the same 401, and costs the same time.
pub async fn authenticate(db: &Db, email: &str, password: &str) -> Result<User> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(email.trim().to_lowercase()).fetch_optional(db.pool()).await?;
    let (user, hash) = match row {
        Some(r) => {
            let (u, h) = user_from_row(&r)?;
            (Some(u), h)
        }
        None => (None, None),
    };
    if password::verify(password, hash).await {
        user.ok_or(Error::InvalidCredentials)
    } else {
        Err(Error::InvalidCredentials)
    }
}

/// Starts a session: an access token and the first refresh token of a new family.
pub async fn start_session(db: &Db, keys: &TokenKeys, user: User) -> Result<Session> {
    let refresh = new_opaque_token()?;
    insert_refresh_token(db.pool(), keys, &refresh, db::new_id(), user.id).await?;
    session(keys, user, refresh)
}

fn session(keys: &TokenKeys, user: User, refresh_token: String) -> Result<Session> {
    Ok(Session {
        access_token: keys.issue_access(user.id, user.role)?,
        token_type: "Bearer",
        expires_in: keys.access_ttl_secs,
        refresh_token,
        user,
    })
}

async fn insert_refresh_token<'e, E>(exec: E, keys: &TokenKeys, token: &str, family: Uuid, user: Uuid) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let now = Utc::now();
    let expires = now + Duration::seconds(i64::try_from(keys.refresh_ttl_secs).unwrap_or(i64::MAX / 2));
    sqlx::query(
        "INSERT INTO refresh_tokens (id, token_hash, family_id, user_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(db::new_id().to_string())
    .bind(hash_token(token))
    .bind(family.to_string())
    .bind(user.to_string())
    .bind(db::ts(expires))
    .bind(db::ts(now))
    .execute(exec)
    .await?;
    Ok(())
}

/// Exchanges a refresh token for a new session of the same family. The presented token is
/// spent; presenting a spent token again revokes the whole family (every token issued
/// from the same login), since either the client or a thief holds a copy.
pub async fn refresh(db: &Db, keys: &TokenKeys, token: &str) -> Result<Session> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT t.id, t.family_id, t.expires_at, t.used_at, t.revoked_at, u.id AS user_id \
         FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
    )
    .bind(hash_token(token))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::InvalidToken)?;
    let id: String = row.try_get("id")?;
    let family: String = row.try_get("family_id")?;
    let revoked: Option<String> = row.try_get("revoked_at")?;
    let used: Option<String> = row.try_get("used_at")?;
    if revoked.is_some() {
        return Err(Error::InvalidToken);
    }
    let now = db::now();
    let spent = if used.is_none() {
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL")
            .bind(&now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1
    } else {
        false
    };
    if !spent {
        revoke_family(&mut tx, &family, &now).await?;
        tx.commit().await?;
        tracing::warn!(token.family = %family, "refresh token reuse detected; family revoked");
        return Err(Error::RefreshTokenReused);
    }
    if db::parse_ts(&row.try_get::<String, _>("expires_at")?)? < Utc::now() {
        return Err(Error::InvalidToken);
    }
    let user_id = db::parse_id(&row.try_get::<String, _>("user_id")?)?;
    let new_token = new_opaque_token()?;
    insert_refresh_token(&mut *tx, keys, &new_token, db::parse_id(&family)?, user_id).await?;
    tx.commit().await?;
    let user = get(db, user_id).await?;
    session(keys, user, new_token)
}

async fn revoke_family(tx: &mut db::Tx, family: &str, now: &str) -> Result<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends the session the refresh token belongs to (its whole family). Unknown tokens are
/// ignored, so logout is idempotent.
pub async fn logout(db: &Db, token: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash_token(token))
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(family) = family {
        revoke_family(&mut tx, &family, &db::now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Changes the caller's own name and/or password. Never the role.
pub async fn update_profile(db: &Db, id: Uuid, name: Option<&str>, password: Option<&Password>) -> Result<User> {
    let hash = match password {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    sqlx::query(
        "UPDATE users SET name = COALESCE($1, name), password_hash = COALESCE($2, password_hash), \
         updated_at = $3 WHERE id = $4",
    )
    .bind(name)
    .bind(hash)
    .bind(db::now())
    .bind(id.to_string())
    .execute(db.pool())
    .await?;
    get(db, id).await
}

/// An admin changes another user's role. Admins cannot change their own role, so the last
/// admin cannot lock everyone out by accident.
pub async fn set_role(db: &Db, actor: Uuid, target: Uuid, role: Role) -> Result<User> {
    if actor == target {
        return Err(Error::Forbidden("you cannot change your own role"));
    }
    let n = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
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

/// Users newest first, `limit` per page.
pub async fn list(db: &Db, page: &PageRequest) -> Result<Page<User>> {
    let rows = crate::pagination::fetch_newest_first(db, USER_COLUMNS, "users", page).await?;
    let users = rows.iter().map(|r| user_from_row(r).map(|(u, _)| u)).collect::<Result<Vec<_>, _>>()?;
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

/// Sets a new password with a reset token; the token is spent and every session of the
/// user is revoked.
pub async fn reset_password(db: &Db, token: &str, new_password: &Password) -> Result<()> {
    let hash = password::hash(new_password).await?;
    let now = db::now();
    let mut tx = db.begin_write().await?;
    let user: Option<String> = sqlx::query_scalar(
        "UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
         AND expires_at > $1 RETURNING user_id",
    )
    .bind(&now)
    .bind(hash_token(token))
    .fetch_optional(&mut *tx)
    .await?;
    let user = user.ok_or(Error::InvalidToken)?;
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(&now)
        .bind(&user)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(&now)
        .bind(&user)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates an admin, or makes an existing user admin with this password (for the CLI's
/// `user create-admin`, which is also how a locked-out admin recovers).
pub async fn upsert_admin(db: &Db, email: &Email, password: &Password, name: &str) -> Result<User> {
    match create(db, email, Some(password), name, Role::Admin).await {
        Err(Error::Conflict { code: "email-taken", .. }) => {
            let hash = password::hash(password).await?;
            sqlx::query("UPDATE users SET role = 'admin', password_hash = $1, updated_at = $2 WHERE email = $3")
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

//! Sessions: an access token (JWT, minutes) and a family of single-use refresh tokens
//! (days) that renews it, with reuse detection (OAuth 2.0 Security BCP, RFC 9700
//! §4.14.2). A session's id is its refresh-token family id; access tokens carry it (`sid`)
//! and the user's token version (`ver`), and the
//! [`Authenticator`](super::credentials::Authenticator) refuses them once the family is
//! revoked, the version moved on or the user is deactivated ([`state`]).
//!
//! These are the store's operations and take no caller; transports call the
//! [`Accounts`](super::accounts::Accounts) service.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::tokens::{AccessClaims, TokenKeys, hash_token, new_opaque_token};
use super::users::{self, Account, User};
use super::{Password, password};
use crate::db::{self, Db};
use crate::error::{Error, Result};

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

/// What the per-request check needs to know about a user: whether the account is active,
/// its token version, and its live sessions (refresh-token families with a token that is
/// neither revoked nor expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub active: bool,
    pub token_version: i64,
    pub sessions: HashSet<Uuid>,
}

/// Starts a session for user `id`: an access token and the first refresh token of a new
/// family. Errors: 401 `InvalidCredentials` if the account is deactivated, 404 if unknown.
pub async fn start_session(db: &Db, keys: &TokenKeys, id: Uuid) -> Result<Session> {
    let account = users::account(db, id).await?;
    if account.user.deactivated_at.is_some() {
        return Err(Error::InvalidCredentials);
    }
    let refresh = new_opaque_token()?;
    let family = db::new_id();
    insert_refresh_token(db.pool(), keys, &refresh, family, id).await?;
    session(keys, account, family, refresh)
}

fn session(keys: &TokenKeys, account: Account, family: Uuid, refresh_token: String) -> Result<Session> {
    let claims = AccessClaims {
        user_id: account.user.id,
        role: account.user.role,
        session_id: family,
        version: account.token_version,
    };
    Ok(Session {
        access_token: keys.issue_access(claims)?,
        token_type: "Bearer",
        expires_in: keys.access_ttl_secs,
        refresh_token,
        user: account.user,
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
/// from the same login), since either the client or a thief holds a copy: 401
/// `RefreshTokenReused`. Unknown, expired or revoked tokens, and tokens of a deactivated
/// user: 401 `InvalidToken`.
pub async fn refresh(db: &Db, keys: &TokenKeys, token: &str) -> Result<Session> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT t.id, t.family_id, t.expires_at, t.used_at, t.revoked_at, u.id AS user_id, u.deactivated_at \
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
    if revoked.is_some() || row.try_get::<Option<String>, _>("deactivated_at")?.is_some() {
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
    let family = db::parse_id(&family)?;
    let new_token = new_opaque_token()?;
    insert_refresh_token(&mut *tx, keys, &new_token, family, user_id).await?;
    tx.commit().await?;
    session(keys, users::account(db, user_id).await?, family, new_token)
}

async fn revoke_family(tx: &mut db::Tx, family: &str, now: &str) -> Result<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revokes every refresh token of `user`, except those of session `keep` if given.
pub(super) async fn revoke_all(tx: &mut db::Tx, user: Uuid, keep: Option<Uuid>, now: &str) -> Result<()> {
    // A session id nobody has (the nil UUID) keeps nothing.
    let keep = keep.unwrap_or(Uuid::nil()).to_string();
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND family_id <> $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user.to_string())
    .bind(keep)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends the session the refresh token belongs to (its whole family) and returns its user.
/// Unknown tokens are ignored (`None`), so logout is idempotent.
pub async fn logout(db: &Db, token: &str) -> Result<Option<Uuid>> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query("SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash_token(token))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let family: String = row.try_get("family_id")?;
    revoke_family(&mut tx, &family, &db::now()).await?;
    tx.commit().await?;
    Ok(Some(db::parse_id(&row.try_get::<String, _>("user_id")?)?))
}

/// Sets user `id`'s password and ends every other session: all refresh tokens except
/// those of session `keep` (the caller's) are revoked, and unused reset tokens are spent.
/// The access tokens of the ended sessions are refused from their next request.
pub async fn change_password(db: &Db, id: Uuid, new_password: &Password, keep: Option<Uuid>) -> Result<()> {
    let hash = password::hash(new_password).await?;
    let now = db::now();
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(&now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
        .bind(&now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    revoke_all(&mut tx, id, keep, &now).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a new password with a reset token; the token is spent and every session of the
/// user is revoked. Returns the user. Errors: 401 `InvalidToken` (unknown, used, expired).
pub async fn reset_password(db: &Db, token: &str, new_password: &Password) -> Result<Uuid> {
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
    let user = db::parse_id(&user.ok_or(Error::InvalidToken)?)?;
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(&now)
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
    revoke_all(&mut tx, user, None, &now).await?;
    tx.commit().await?;
    Ok(user)
}

/// User `id`'s [`SessionState`] in one query; `None` for an unknown user.
pub async fn state(db: &Db, id: Uuid) -> Result<Option<SessionState>> {
    let rows = sqlx::query(
        "SELECT u.token_version, u.deactivated_at, t.family_id FROM users u \
         LEFT JOIN refresh_tokens t ON t.user_id = u.id AND t.revoked_at IS NULL AND t.expires_at > $2 \
         WHERE u.id = $1",
    )
    .bind(id.to_string())
    .bind(db::now())
    .fetch_all(db.pool())
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let mut sessions = HashSet::new();
    for row in &rows {
        if let Some(family) = row.try_get::<Option<String>, _>("family_id")? {
            sessions.insert(db::parse_id(&family)?);
        }
    }
    Ok(Some(SessionState {
        active: first.try_get::<Option<String>, _>("deactivated_at")?.is_none(),
        token_version: first.try_get("token_version")?,
        sessions,
    }))
}

//! Who sent a request: the credentials it carries, checked once per request.
//!
//! Accepted: `Authorization: Bearer <access token>` (a user session), and
//! `Authorization: Bearer ok_…` or `X-Api-Key: ok_…` (an API key). When both headers are
//! sent, `Authorization` wins. The rate-limit middleware resolves the caller first (it
//! needs the identity) and stores the result in the request extensions, so the
//! `AuthUser` extractor never verifies a token or looks up a key a second time.

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderName};

use super::AuthUser;
use super::api_keys::{self, KEY_PREFIX};
use crate::app::App;
use crate::error::{Error, Result};

pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// No credentials at all.
    Anonymous,
    /// A valid user session or API key.
    Authenticated(AuthUser),
    /// `Authorization` with a scheme other than `Bearer` (401 `unauthenticated`).
    Unsupported,
    /// A token or key that is malformed, unknown, expired or revoked (401 `invalid-token`).
    Invalid,
}

impl Caller {
    /// `Ok(None)` for anonymous requests, the caller if authenticated, else the 401.
    pub fn into_result(self) -> Result<Option<AuthUser>> {
        match self {
            Caller::Anonymous => Ok(None),
            Caller::Authenticated(u) => Ok(Some(u)),
            Caller::Unsupported => Err(Error::Unauthenticated),
            Caller::Invalid => Err(Error::InvalidToken),
        }
    }
}

/// Checks the credentials in `headers`: at most one JWT verification or one key lookup.
/// Errors only when the database fails during a key lookup.
pub async fn resolve(headers: &HeaderMap, app: &App) -> Result<Caller> {
    let presented = if let Some(v) = headers.get(AUTHORIZATION) {
        let bearer = v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        match bearer {
            Some(token) => token.trim(),
            None => return Ok(Caller::Unsupported),
        }
    } else if let Some(v) = headers.get(X_API_KEY) {
        match v.to_str() {
            Ok(key) if key.trim().starts_with(KEY_PREFIX) => key.trim(),
            _ => return Ok(Caller::Invalid),
        }
    } else {
        return Ok(Caller::Anonymous);
    };
    if presented.starts_with(KEY_PREFIX) {
        let Some(key) = api_keys::authenticate(&app.db, presented).await? else {
            return Ok(Caller::Invalid);
        };
        app.api_key_usage.touch(&app.db, key.key_id);
        return Ok(Caller::Authenticated(AuthUser {
            id: key.owner_id,
            role: key.role,
            scopes: Some(key.scopes),
            api_key_id: Some(key.key_id),
        }));
    }
    Ok(match app.tokens.verify_access(presented) {
        Ok(claims) => {
            Caller::Authenticated(AuthUser { id: claims.user_id, role: claims.role, scopes: None, api_key_id: None })
        }
        Err(_) => Caller::Invalid,
    })
}

//! Turning a presented credential into a [`Principal`]'s actor, the same for every
//! transport: a bearer access token (a user session) or an API key string `ok_…` acting as
//! its owner. Transports only extract the string (REST from `Authorization: Bearer` or
//! `X-Api-Key`, gRPC from metadata, WebSocket from its first message).

use std::sync::Arc;

use super::api_keys::{self, KEY_PREFIX, UsageTracker};
use super::principal::Actor;
use super::tokens::TokenKeys;
use crate::db::Db;
use crate::error::{Error, Result};

/// Verifies credentials: at most one JWT verification or one indexed key lookup each.
#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    tokens: Arc<TokenKeys>,
    usage: Arc<UsageTracker>,
}

impl Authenticator {
    pub fn new(db: Db, tokens: Arc<TokenKeys>) -> Self {
        Self { db, tokens, usage: Arc::default() }
    }

    /// The actor `credential` stands for: an API key if it starts with `ok_`, else an access
    /// token. `InvalidToken` (401) if it is malformed, unknown, expired or revoked; a
    /// database failure during a key lookup is `Database`.
    pub async fn authenticate(&self, credential: &str) -> Result<Actor> {
        let credential = credential.trim();
        if credential.starts_with(KEY_PREFIX) {
            let key = api_keys::authenticate(&self.db, credential).await?.ok_or(Error::InvalidToken)?;
            self.usage.touch(&self.db, key.key_id);
            return Ok(Actor {
                id: key.owner_id,
                role: key.role,
                scopes: Some(key.scopes),
                api_key_id: Some(key.key_id),
            });
        }
        let claims = self.tokens.verify_access(credential).map_err(|_| Error::InvalidToken)?;
        Ok(Actor::session(claims.user_id, claims.role))
    }
}

//! Turning a presented credential into a [`Principal`](super::Principal)'s actor, the same
//! for every transport: a bearer access token (a user session) or an API key string `ok_…`
//! acting as its owner. Transports only extract the string (REST from `Authorization:
//! Bearer` or `X-Api-Key`, gRPC from metadata, WebSocket from its first message).
//!
//! An access token is accepted only while its session is live: the user is active, its
//! token version is the one in the token (a role change or deactivation bumps it), and its
//! session (refresh-token family) is not revoked (logout, reuse detection, a password
//! change elsewhere). That state is read once per user and kept for [`SESSION_STATE_TTL`]
//! in this process; a change made through this process forgets it at once, so the change
//! applies from the next request here and within the TTL on every other replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::api_keys::{self, KEY_PREFIX, UsageTracker};
use super::principal::Actor;
use super::sessions::{self, SessionState};
use super::tokens::TokenKeys;
use crate::db::Db;
use crate::error::{Error, Result};

/// How long a replica trusts what it read about a user's sessions: the bound, in seconds,
/// for a change made on another replica to reach this one.
pub const SESSION_STATE_TTL: Duration = Duration::from_secs(1);

/// At most this many users' states are kept; beyond it, stale ones are dropped.
const MAX_CACHED_USERS: usize = 100_000;

/// Verifies credentials: one JWT verification plus, at most once per user per
/// [`SESSION_STATE_TTL`], one query for the user's session state (and one more before
/// refusing a token on a cached state); or one indexed key lookup.
#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    tokens: Arc<TokenKeys>,
    usage: Arc<UsageTracker>,
    states: Arc<SessionStates>,
}

impl Authenticator {
    pub fn new(db: Db, tokens: Arc<TokenKeys>) -> Self {
        Self { db, tokens, usage: Arc::default(), states: Arc::default() }
    }

    /// The cache of users' session states, for the accounts service to forget a user whose
    /// sessions, role or status it changed.
    pub fn session_states(&self) -> Arc<SessionStates> {
        self.states.clone()
    }

    /// The actor `credential` stands for: an API key if it starts with `ok_`, else an access
    /// token. `InvalidToken` (401) if it is malformed, unknown, expired or revoked, or its
    /// user is deactivated; a database failure during a lookup is `Database`.
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
                session_id: None,
            });
        }
        let claims = self.tokens.verify_access(credential).map_err(|_| Error::InvalidToken)?;
        let live = |state: &SessionState| {
            state.active && state.token_version == claims.version && state.sessions.contains(&claims.session_id)
        };
        let (state, cached) = self.states.get(&self.db, claims.user_id).await?;
        let live_now = match state {
            Some(s) if live(&s) => true,
            // A cached state may predate the token (a login or a refresh into a new role
            // moments ago, maybe on another replica): read again before refusing.
            _ if cached => self.states.read(&self.db, claims.user_id).await?.is_some_and(|s| live(&s)),
            _ => false,
        };
        if !live_now {
            return Err(Error::InvalidToken);
        }
        Ok(Actor::session(claims.user_id, claims.role).in_session(claims.session_id))
    }
}

/// Users' [`SessionState`]s as last read, each trusted for [`SESSION_STATE_TTL`].
#[derive(Default)]
pub struct SessionStates {
    entries: Mutex<HashMap<Uuid, (Arc<SessionState>, Instant)>>,
    /// Bumped by every `forget`: a read that started before one is not cached, so a state
    /// read just before a change cannot outlive it.
    epoch: AtomicU64,
}

impl SessionStates {
    /// User `id`'s state (`None` for an unknown user), and whether it came from the cache:
    /// it does if read less than [`SESSION_STATE_TTL`] ago, else it is read from the
    /// database.
    pub async fn get(&self, db: &Db, id: Uuid) -> Result<(Option<Arc<SessionState>>, bool)> {
        let now = Instant::now();
        if let Ok(entries) = self.entries.lock()
            && let Some((state, read_at)) = entries.get(&id)
            && now.duration_since(*read_at) < SESSION_STATE_TTL
        {
            return Ok((Some(state.clone()), true));
        }
        Ok((self.read(db, id).await?, false))
    }

    /// User `id`'s state read from the database now (and cached). `None` for an unknown
    /// user.
    pub async fn read(&self, db: &Db, id: Uuid) -> Result<Option<Arc<SessionState>>> {
        let now = Instant::now();
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(state) = sessions::state(db, id).await? else { return Ok(None) };
        let state = Arc::new(state);
        if let Ok(mut entries) = self.entries.lock()
            && self.epoch.load(Ordering::Acquire) == epoch
        {
            if entries.len() >= MAX_CACHED_USERS {
                entries.retain(|_, (_, read_at)| now.duration_since(*read_at) < SESSION_STATE_TTL);
            }
            entries.insert(id, (state.clone(), now));
        }
        Ok(Some(state))
    }

    /// Forgets user `id`'s state: the next request reads it again.
    pub fn forget(&self, id: Uuid) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    /// Forgets every user's state (when the user a change concerns is not known).
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

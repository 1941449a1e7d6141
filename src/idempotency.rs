//! Idempotency keys for state-changing requests, free of any transport (REST applies them in
//! `http/idempotency.rs`; gRPC can reuse this as it is).
//!
//! Semantics are Stripe's (<https://docs.stripe.com/api/idempotent_requests>) and
//! draft-ietf-httpapi-idempotency-key-header: the first answer to a request carrying a key
//! (its status, the headers that matter and its body, errors included) is stored once the
//! request starts executing, and replayed to every retry with the same key by the same
//! caller; the same key with another request is refused, and so is a retry while the first
//! is still running. Requests that never started (refused input, credentials, permissions,
//! rate limits, an unavailable dependency: see [`records`]) store nothing, so a corrected
//! retry with the same key runs. Keys are scoped to their caller ([`Owner`]); they live in
//! the database (every replica sees them) for `idempotency.retention_secs`, then
//! [`run_pruner`] deletes them.

mod store;

use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::Actor;
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, ErrorKind, FieldError, Result};

/// The header a client sends its key in (draft-ietf-httpapi-idempotency-key-header §2).
pub const HEADER: &str = "Idempotency-Key";

/// A client's idempotency key: 1 to 255 visible ASCII characters (`!` to `~`), e.g. a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key in `raw` (a header value's bytes). Errors: 422 `Validation` naming the
    /// `Idempotency-Key` header when empty, longer than 255, or not visible ASCII.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let valid = (1..=255).contains(&raw.len()) && raw.iter().all(|b| (b'!'..=b'~').contains(b));
        match std::str::from_utf8(raw) {
            Ok(s) if valid => Ok(Self(s.to_owned())),
            _ => Err(Error::Validation(vec![FieldError::new(
                HEADER,
                "must be 1 to 255 visible ASCII characters (no spaces), e.g. a UUID",
            )])),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose key it is: a user's session, or one API key (an API key's owner and the key do
/// not share keys, as they do not share credentials). Never shared between callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub fn of(actor: &Actor) -> Self {
        match actor.api_key_id {
            Some(key) => Self(format!("api_key:{key}")),
            None => Self(format!("user:{}", actor.id)),
        }
    }
}

/// What identifies a request for its key: a keyed SHA-256 (hex) over its method, path,
/// query and body. Keyed (with a key derived from the JWT secret), because bodies may hold
/// guessable secrets (a card number): a plain hash of them could be brute-forced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Each part is length-prefixed, so no two different requests share the input.
    pub fn of(key: &[u8; 32], method: &str, path: &str, query: &str, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(key);
        for part in [method.as_bytes(), path.as_bytes(), query.as_bytes(), body] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self(hex::encode(h.finalize()))
    }
}

/// A stored answer: the status, the headers that describe the body or the created resource
/// (`Content-Type`, `Location`, `ETag`), and the body (UTF-8: every covered answer is JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A started request's hold on its key, to [`complete`](Idempotency::complete) or
/// [`release`](Idempotency::release).
#[derive(Debug)]
pub struct Claim {
    owner: Owner,
    key: IdempotencyKey,
    /// Who holds the lease: a replica that took over an expired one holds another token,
    /// and the first holder's late completion then changes nothing.
    token: Uuid,
}

/// What a request with a key should do.
#[derive(Debug)]
pub enum Begin {
    /// First of its key (or taking over a dead replica's): run it, then complete or release.
    Started(Claim),
    /// Answered before: send this again.
    Replay(StoredResponse),
    /// The key was used for another request: 422.
    Mismatch,
    /// The first request with this key is still running: 409, retry shortly.
    InProgress,
}

/// The idempotency store and its settings.
#[derive(Clone)]
pub struct Idempotency {
    db: Db,
    retention: Duration,
    lease: Duration,
    fingerprint_key: [u8; 32],
}

impl Idempotency {
    /// `fingerprint_key` must be the same on every replica (see [`Fingerprint`]). The lease
    /// of a running request is the request timeout (`http.request_timeout_ms`, after which
    /// the request is abandoned) plus 1 s.
    pub fn new(db: Db, config: &Config, fingerprint_key: [u8; 32]) -> Self {
        Self {
            db,
            retention: Duration::from_secs(config.idempotency.retention_secs),
            lease: Duration::from_millis(config.http.request_timeout_ms).saturating_add(Duration::from_secs(1)),
            fingerprint_key,
        }
    }

    /// The fingerprint of a request, keyed for this deployment.
    pub fn fingerprint(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Fingerprint {
        Fingerprint::of(&self.fingerprint_key, method, path, query, body)
    }

    /// Claims `key` for `owner`'s request `fingerprint`, or says why not (see [`Begin`]).
    /// A key older than the retention counts as unused. Errors: database failures.
    pub async fn begin(&self, owner: &Owner, key: &IdempotencyKey, fingerprint: &Fingerprint) -> Result<Begin> {
        // Each pass either decides or loses a race that changed the row; a few suffice.
        for _ in 0..4 {
            let now = Utc::now();
            let token = crate::db::new_id();
            let until = now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(35));
            if store::insert(&self.db, &owner.0, &key.0, &fingerprint.0, token, now, until).await? {
                return Ok(Begin::Started(Claim { owner: owner.clone(), key: key.clone(), token }));
            }
            let Some(row) = store::find(&self.db, &owner.0, &key.0).await? else { continue };
            let expired_at = now - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::days(1));
            if row.created_at < expired_at {
                // Past its retention, not yet pruned: the key is free again.
                store::delete_created(&self.db, &owner.0, &key.0, row.created_at).await?;
                continue;
            }
            if row.fingerprint != fingerprint.0 {
                return Ok(Begin::Mismatch);
            }
            if let Some(response) = row.response {
                return Ok(Begin::Replay(response));
            }
            if row.locked_until.is_some_and(|t| t > now) {
                return Ok(Begin::InProgress);
            }
            // The replica that held it stopped (crashed, or the request was abandoned).
            if store::take_over(&self.db, &owner.0, &key.0, row.lease_token.as_deref(), token, until).await? {
                return Ok(Begin::Started(Claim { owner: owner.clone(), key: key.clone(), token }));
            }
        }
        Ok(Begin::InProgress)
    }

    /// Stores the answer of a started request; retries replay it from now on.
    pub async fn complete(&self, claim: &Claim, response: &StoredResponse) -> Result<()> {
        store::complete(&self.db, &claim.owner.0, &claim.key.0, claim.token, response).await
    }

    /// Frees the key of a request whose answer is not stored (see [`records`]).
    pub async fn release(&self, claim: &Claim) -> Result<()> {
        store::release(&self.db, &claim.owner.0, &claim.key.0, claim.token).await
    }

    /// Deletes keys older than the retention; returns how many.
    pub async fn prune(&self) -> Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::days(1));
        store::delete_before(&self.db, cutoff).await
    }
}

/// Whether the answer `e` is stored for replay: it is when the request started executing
/// (its outcome, such as a 404, 409 or 402, is what a retry must see again). Not stored,
/// so a corrected retry with the same key runs: input refused before anything happened
/// (`InvalidInput`, `Malformed`, `UnsupportedMediaType`, `TooLarge`), credentials and
/// permissions, rate limits, a failed precondition (`If-Match`: RFC 9110 §13.2.1 evaluates
/// it before the method), a dependency that is down (`Unavailable`), and checkout's own
/// `idempotency-key-in-use` (the first request is still running). As Stripe does.
pub fn records(e: &Error) -> bool {
    let not_started = matches!(
        e.kind(),
        ErrorKind::InvalidInput
            | ErrorKind::Malformed
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::TooLarge
            | ErrorKind::Unauthenticated
            | ErrorKind::PermissionDenied
            | ErrorKind::RateLimited
            | ErrorKind::PreconditionFailed
            | ErrorKind::PreconditionRequired
            | ErrorKind::Unavailable
    );
    !not_started && e.code() != "idempotency-key-in-use"
}

/// Prunes expired keys every tenth of the retention (at least every second, at most every
/// 15 minutes) until `stop` turns true. Every replica may run it: a delete by age is safe
/// to repeat.
pub async fn run_pruner(idempotency: Idempotency, mut stop: watch::Receiver<bool>) {
    let every = (idempotency.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(15 * 60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match idempotency.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(idempotency.pruned = n, "pruned expired idempotency keys"),
            Err(e) => tracing::warn!(error = ?e, "pruning idempotency keys failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(b"0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        assert!(IdempotencyKey::parse("~!".repeat(127).as_bytes()).is_ok());
        for bad in [&b""[..], b"has space", b"tab\t", "é".as_bytes(), &[b'a'; 256]] {
            let Err(Error::Validation(errs)) = IdempotencyKey::parse(bad) else { panic!("{bad:?} accepted") };
            assert_eq!(errs[0].field, HEADER);
        }
    }

    #[test]
    fn the_fingerprint_tells_every_part_apart_and_depends_on_the_key() {
        let k = [7u8; 32];
        let base = Fingerprint::of(&k, "POST", "/a", "", b"{}");
        assert_eq!(base, Fingerprint::of(&k, "POST", "/a", "", b"{}"));
        assert_ne!(base, Fingerprint::of(&k, "POST", "/a", "x=1", b"{}"));
        assert_ne!(base, Fingerprint::of(&k, "POST", "/b", "", b"{}"));
        assert_ne!(base, Fingerprint::of(&k, "POST", "/a", "", b"{ }"));
        assert_ne!(Fingerprint::of(&k, "POST", "/a", "b", b""), Fingerprint::of(&k, "POST", "/ab", "", b""));
        assert_ne!(base, Fingerprint::of(&[8u8; 32], "POST", "/a", "", b"{}"));
    }

    #[test]
    fn outcomes_of_started_requests_are_recorded_and_refusals_are_not() {
        assert!(records(&Error::NotFound("order")));
        assert!(records(&Error::InvalidTransition { from: "paid", to: "cancelled" }));
        assert!(records(&Error::PaymentDeclined { order_id: Uuid::nil(), decline_code: "card_declined".into() }));
        assert!(records(&Error::Internal(anyhow::anyhow!("bug"))));
        assert!(!records(&Error::Validation(vec![])));
        assert!(!records(&Error::PayloadTooLarge));
        assert!(!records(&Error::InsufficientScope("orders:write")));
        assert!(!records(&Error::RateLimited { policy: "api", retry_after_secs: 1 }));
        assert!(!records(&Error::Unavailable("down")));
        assert!(!records(&Error::conflict("idempotency-key-in-use", "running")));
    }

    #[test]
    fn an_api_key_and_its_owner_have_separate_key_spaces() {
        let user = Actor::session(Uuid::nil(), crate::auth::Role::Customer);
        let key = Actor { api_key_id: Some(Uuid::max()), ..user };
        assert_ne!(Owner::of(&user), Owner::of(&key));
    }
}

//! Access tokens (JWT, HS256 pinned server-side; `exp`, `iss`, `aud`, `sub` required) and
//! opaque refresh tokens (256 random bits, stored only as their SHA-256).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use crate::config::AuthConfig;
use crate::error::Error;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    /// The session (refresh-token family) the token belongs to.
    sid: String,
    /// The user's token version when the token was issued.
    ver: i64,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// What an access token says: whom it is for, in which session, at which token version.
#[derive(Debug, Clone, Copy)]
pub struct AccessClaims {
    pub user_id: Uuid,
    pub role: Role,
    /// The session it belongs to: the id of its refresh-token family.
    pub session_id: Uuid,
    /// The user's token version at issue; the token is refused once the user's moves on.
    pub version: i64,
}

/// Issues and verifies access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// SHA-256 of the secret: the root of [`subkey`](Self::subkey)s, never the secret itself.
    derivation_root: [u8; 32],
}

impl TokenKeys {
    pub fn new(config: &AuthConfig, secret: &[u8]) -> Self {
        // The algorithm comes from here, never from the token's header.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl_secs: config.access_token_ttl_secs,
            refresh_ttl_secs: config.refresh_token_ttl_secs,
            derivation_root: Sha256::digest(secret).into(),
        }
    }

    /// A 256-bit key for `purpose` (e.g. `idempotency-fingerprint`), derived from the JWT
    /// secret, so every replica derives the same one and it changes when the secret does.
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.derivation_root);
        h.update(purpose.as_bytes());
        h.finalize().into()
    }

    /// A signed access token saying `access`, valid for `access_ttl_secs`.
    pub fn issue_access(&self, access: AccessClaims) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = Claims {
            sub: access.user_id.to_string(),
            role: access.role,
            sid: access.session_id.to_string(),
            ver: access.version,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.access_ttl_secs,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Verifies signature, algorithm, expiry, issuer and audience, and that the token names
    /// its session and token version (tokens issued before those claims existed are
    /// refused: their holders refresh). Whether the session is still live is the
    /// [`Authenticator`](super::credentials::Authenticator)'s check.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, Error> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|_| Error::InvalidToken)?;
        let user_id = Uuid::parse_str(&data.claims.sub).map_err(|_| Error::InvalidToken)?;
        let session_id = Uuid::parse_str(&data.claims.sid).map_err(|_| Error::InvalidToken)?;
        Ok(AccessClaims { user_id, role: data.claims.role, session_id, version: data.claims.ver })
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A new opaque token: 32 random bytes, base64url without padding.
pub fn new_opaque_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// How an opaque token is stored: its SHA-256, hex. The token itself is never stored.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        let cfg = crate::config::Config::default().auth;
        TokenKeys::new(&cfg, &[7u8; 32])
    }

    #[test]
    fn an_issued_token_verifies() {
        let k = keys();
        let (id, sid) = (Uuid::now_v7(), Uuid::now_v7());
        let t = k.issue_access(AccessClaims { user_id: id, role: Role::Staff, session_id: sid, version: 3 }).unwrap();
        let c = k.verify_access(&t).unwrap();
        assert_eq!((c.user_id, c.role, c.session_id, c.version), (id, Role::Staff, sid, 3));
    }

    #[test]
    fn tokens_with_another_algorithm_key_or_audience_are_rejected() {
        let k = keys();
        let now = unix_now();
        let claims = Claims {
            sub: Uuid::now_v7().to_string(),
            role: Role::Admin,
            sid: Uuid::now_v7().to_string(),
            ver: 0,
            iss: "orderly".into(),
            aud: "orderly-api".into(),
            iat: now,
            exp: now + 60,
        };
        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(&[7u8; 32]))
                .unwrap();
        assert!(k.verify_access(&hs512).is_err(), "algorithm must be pinned");
        let other_key =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&[8u8; 32]))
                .unwrap();
        assert!(k.verify_access(&other_key).is_err());
        let wrong_aud = Claims { aud: "someone-else".into(), ..claims };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &wrong_aud, &EncodingKey::from_secret(&[7u8; 32]))
            .unwrap();
        assert!(k.verify_access(&t).is_err());
        let expired = Claims { aud: "orderly-api".into(), exp: now - 3600, ..wrong_aud };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(&[7u8; 32]))
            .unwrap();
        assert!(k.verify_access(&t).is_err());
    }

    #[test]
    fn opaque_tokens_are_random_and_stored_hashed() {
        let a = new_opaque_token().unwrap();
        let b = new_opaque_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}

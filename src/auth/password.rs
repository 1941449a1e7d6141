//! Password hashing with Argon2id at OWASP's minimum (m = 19456 KiB, t = 2, p = 1: the
//! `argon2` crate's defaults), on the blocking pool so hashing never stalls the runtime.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::Password;

/// At most this many hashes run at once (one per core). Each Argon2id hash takes 19 MiB for
/// its duration: unbounded, 64 concurrent logins would hold 1.2 GiB and starve the runtime's
/// blocking pool, which is a cheap denial of service. Waiting callers queue here.
static HASHING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
});

/// Verified against when the account does not exist or has no password, so that a wrong
/// email costs as much time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default().hash_password(b"orderly-dummy-password").map(|h| h.to_string()).unwrap_or_default()
});

/// Hashes `password` to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: &Password) -> anyhow::Result<String> {
    let pw = password.expose().to_owned();
    let _permit = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// Whether `password` matches `hash`; `None` (no password set) never matches but costs the
/// same time.
pub async fn verify(password: &str, hash: Option<String>) -> bool {
    let pw = password.to_owned();
    let Ok(_permit) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        let (target, real) = match &hash {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH.as_str(), false),
        };
        let ok = Argon2::default().verify_password(pw.as_bytes(), target).is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let pw = Password::parse("correct horse battery").unwrap();
        let h = hash(&pw).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", Some(h.clone())).await);
        assert!(!verify("wrong horse battery", Some(h)).await);
        assert!(!verify("orderly-dummy-password", None).await);
    }
}

//! Password hashing with Argon2id at OWASP's minimum (m = 19456 KiB, t = 2, p = 1: the
//! `argon2` crate's defaults), on a small pool of dedicated threads so hashing never stalls
//! the async runtime.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::Password;

type Job = Box<dyn FnOnce() + Send>;

/// One hashing thread per core; callers queue for them. Each Argon2id hash takes a 19 MiB
/// block. Run on tokio's blocking pool (up to 512 threads, each with its own malloc arena
/// that keeps freed blocks), 64 concurrent logins held 1.2 GiB, and RSS only grew after
/// every new login thread (bench/, docs/PERFORMANCE.md). On a fixed set of threads the same
/// few blocks are reused: memory stays bounded and a login flood cannot starve the runtime.
static POOL: LazyLock<Option<std::sync::mpsc::Sender<Job>>> = LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("orderly-argon2-{i}")).spawn(move || {
            loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }
        });
        if spawned.is_err() {
            return None;
        }
    }
    Some(tx)
});

/// Runs `f` on the hashing pool and waits for its result.
async fn on_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let pool = POOL.as_ref().ok_or_else(|| anyhow::anyhow!("the password hashing threads could not start"))?;
    pool.send(Box::new(move || {
        let _ = tx.send(f());
    }))
    .map_err(|_| anyhow::anyhow!("the password hashing threads stopped"))?;
    Ok(rx.await?)
}

/// Verified against when the account does not exist or has no password, so that a wrong
/// email costs as much time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default().hash_password(b"orderly-dummy-password").map(|h| h.to_string()).unwrap_or_default()
});

/// Hashes `password` to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: &Password) -> anyhow::Result<String> {
    let pw = password.expose().to_owned();
    on_pool(move || {
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
    on_pool(move || {
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

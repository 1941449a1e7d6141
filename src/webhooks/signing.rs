//! Webhook signatures, as Stripe signs its webhooks ("Verify webhook signatures",
//! docs.stripe.com/webhooks#verify-manually): `Orderly-Signature: t=<unix seconds>,v1=<hex>`
//! where `<hex>` is the lowercase hex HMAC-SHA256 of `"<t>.<body>"` keyed with the
//! endpoint's whole secret string (`whsec_…`, as bytes). Signing the timestamp with the body
//! lets a receiver refuse replays older than its tolerance (docs/notes/webhooks.md).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Result;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "orderly-signature";
/// The event id header (the envelope's `id`): receivers deduplicate on it.
pub const EVENT_ID_HEADER: &str = "orderly-event-id";
/// The event type header (the envelope's `type`).
pub const EVENT_TYPE_HEADER: &str = "orderly-event-type";
/// What every endpoint secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret: `whsec_` and 64 hex digits (256 random bits).
/// Errors: `Internal` when the system has no randomness.
pub fn new_secret() -> Result<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("{SECRET_PREFIX}{}", hex::encode(buf)))
}

/// The `Orderly-Signature` value for `body` sent at `t` (unix seconds) with `secret`.
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

fn mac(secret: &str, t: i64, body: &str) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return Vec::new() };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() {
        // RFC 4231 has no "t.body" vector; this one was computed independently with
        // `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
        let sig = signature_header("whsec_test", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(sig, "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
    }

    #[test]
    fn secrets_are_prefixed_random_and_distinct() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64);
        assert_ne!(a, b);
    }
}

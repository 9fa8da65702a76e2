//! Server-provided DPoP nonces (RFC 9449 §9), without state: a nonce is the second it was
//! made and a MAC of that second under a secret, so any instance holding the secret can check
//! any instance's nonces, and a nonce expires by itself.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderValue;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::clock::Timestamp;

/// The MAC bytes kept in a nonce.
const TAG_BYTES: usize = 16;

#[derive(Clone)]
pub(super) struct Nonces {
    secret: Box<[u8]>,
    lifetime: Duration,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Nonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    pub(super) fn new(secret: Box<[u8]>, lifetime: Duration) -> Self {
        Self { secret, lifetime }
    }

    pub(super) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn tag(&self, secs: u64) -> [u8; TAG_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"palisade dpop nonce");
        mac.update(&secs.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// A fresh nonce, made at `now`: 32 base64url characters (RFC 9449 §8.1 `NQCHAR`s).
    pub(super) fn issue(&self, now: Timestamp) -> HeaderValue {
        let secs = now.as_unix_secs();
        let mut raw = [0u8; 8 + TAG_BYTES];
        raw[..8].copy_from_slice(&secs.to_be_bytes());
        raw[8..].copy_from_slice(&self.tag(secs));
        HeaderValue::try_from(URL_SAFE_NO_PAD.encode(raw))
            .unwrap_or_else(|_| unreachable!("base64url is a valid header value"))
    }

    /// When `nonce` was made, if it is one of ours and made within its lifetime before `now`
    /// (and at most `leeway` after it: another instance's clock).
    pub(super) fn check(&self, nonce: &str, now: Timestamp, leeway: Duration) -> Option<u64> {
        let mut raw = [0u8; 8 + TAG_BYTES];
        let n = URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw).ok()?;
        if n != raw.len() {
            return None;
        }
        let secs = u64::from_be_bytes(raw[..8].try_into().ok()?);
        if !bool::from(raw[8..].ct_eq(&self.tag(secs))) {
            return None;
        }
        let now = now.as_unix_secs();
        let fresh = secs.saturating_add(self.lifetime.as_secs()) >= now
            && secs <= now.saturating_add(leeway.as_secs());
        fresh.then_some(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9449_9_nonces_verify_until_they_expire_and_only_under_their_secret() {
        let nonces = Nonces::new(
            b"0123456789abcdef0123456789abcdef".to_vec().into(),
            Duration::from_secs(300),
        );
        let t = Timestamp::from_unix_secs(1_700_000_000);
        let leeway = Duration::from_secs(5);
        let nonce = nonces.issue(t);
        let text = nonce.to_str().unwrap();
        assert_eq!(text.len(), 32);
        assert_eq!(nonces.check(text, t, leeway), Some(1_700_000_000));
        let later = Timestamp::from_unix_secs(1_700_000_300);
        assert_eq!(nonces.check(text, later, leeway), Some(1_700_000_000));
        let too_late = Timestamp::from_unix_secs(1_700_000_301);
        assert_eq!(nonces.check(text, too_late, leeway), None);
        let before = Timestamp::from_unix_secs(1_699_999_990);
        assert_eq!(nonces.check(text, before, leeway), None, "from the future");
        let other = Nonces::new(
            b"another secret, 32 bytes long..!".to_vec().into(),
            Duration::from_secs(300),
        );
        assert_eq!(other.check(text, t, leeway), None);
        let mut forged = text.to_owned();
        forged.replace_range(31.., if text.ends_with('A') { "B" } else { "A" });
        assert_eq!(nonces.check(&forged, t, leeway), None);
        assert_eq!(nonces.check("short", t, leeway), None);
    }
}

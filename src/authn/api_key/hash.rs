//! Hashing keys for storage: SHA-256, or HMAC-SHA-256 keyed with a server-side secret.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ConfigError;

/// The hash version of a record that does not name one, and of the hasher of
/// [`ApiKeys::new`](super::ApiKeys::new): 1.
pub const DEFAULT_HASH_VERSION: u16 = 1;

/// The stored form of an API key: 32 bytes of SHA-256 or HMAC-SHA-256 output.
///
/// Comparison is constant-time ([`KeyHash::ct_eq`]); `==` is deliberately not implemented.
/// Its `Debug` prints `[redacted]` (a hash of a high-entropy key is not a secret, but nothing is
/// gained by logging it). In serde it is 64 lowercase hex digits.
#[derive(Clone, Copy)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Wraps 32 raw bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Parses 64 hex digits.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash([redacted])")
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a key hash is 64 hex digits"))
    }
}

/// Turns a presented key into its [`KeyHash`].
///
/// - [`KeyHasher::sha256`] (the default): `SHA-256(key)`. Right for keys with 256 bits of
///   randomness: no password-hashing work factor is needed, because nobody can guess such a key,
///   and the check stays a few hundred nanoseconds.
/// - [`KeyHasher::keyed`]: `HMAC-SHA-256(secret, key)` with a server-side secret ("pepper") kept
///   outside the key database. A stolen key table then cannot even be used to confirm a key
///   found elsewhere, because checking needs the secret too.
///
/// Each stored hash records the version of the scheme that made it
/// ([`KeyRecord::hash_version`](super::KeyRecord::hash_version)). To change the hasher (a new
/// pepper, or a pepper where there was none), give the new one a new version and keep the old
/// one as a previous hasher ([`ApiKeys::with_previous_hasher`](super::ApiKeys::with_previous_hasher)):
/// keys hashed under it keep working and are rehashed under the new scheme on their next
/// successful use. Without that, changing the hasher invalidates every stored hash.
#[derive(Clone, Default)]
pub struct KeyHasher {
    keyed: Option<Hmac<Sha256>>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("keyed", &self.keyed.is_some())
            .finish()
    }
}

impl KeyHasher {
    /// Plain SHA-256.
    #[must_use]
    pub fn sha256() -> Self {
        Self::default()
    }

    /// HMAC-SHA-256 keyed with `secret`, which must be at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::PepperTooShort`] for a shorter secret.
    pub fn keyed(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < 32 {
            return Err(ConfigError::PepperTooShort { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| ConfigError::PepperTooShort { len: secret.len() })?;
        Ok(Self { keyed: Some(mac) })
    }

    /// Whether a server-side secret keys the hash.
    #[must_use]
    pub fn is_keyed(&self) -> bool {
        self.keyed.is_some()
    }

    /// The hash of `key`.
    #[must_use]
    pub fn hash(&self, key: &str) -> KeyHash {
        match &self.keyed {
            None => KeyHash(Sha256::digest(key.as_bytes()).into()),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(key.as_bytes());
                KeyHash(mac.finalize().into_bytes().into())
            }
        }
    }
}

/// The current hasher and its version, and the previous ones by version.
#[derive(Debug, Clone)]
pub(crate) struct Hashers {
    pub(crate) current: KeyHasher,
    pub(crate) version: u16,
    /// At most a few: a linear search is the fastest lookup.
    pub(crate) previous: Vec<(u16, KeyHasher)>,
}

impl Default for Hashers {
    fn default() -> Self {
        Self {
            current: KeyHasher::default(),
            version: DEFAULT_HASH_VERSION,
            previous: Vec::new(),
        }
    }
}

impl Hashers {
    /// The hasher of `version`: the current one for its own version, else a previous one.
    pub(crate) fn of(&self, version: u16) -> Option<&KeyHasher> {
        if version == self.version {
            return Some(&self.current);
        }
        self.previous
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, h)| h)
    }

    /// Adds or replaces the previous hasher of `version`.
    pub(crate) fn add_previous(&mut self, version: u16, hasher: KeyHasher) {
        self.previous.retain(|(v, _)| *v != version);
        self.previous.push((version, hasher));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        // FIPS 180-2 example "abc".
        assert_eq!(
            KeyHasher::sha256().hash("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn keyed_hash_differs_and_depends_on_the_secret() {
        let a = KeyHasher::keyed(&[1; 32]).unwrap();
        let b = KeyHasher::keyed(&[2; 32]).unwrap();
        let plain = KeyHasher::sha256().hash("k");
        assert!(!a.hash("k").ct_eq(&plain));
        assert!(!a.hash("k").ct_eq(&b.hash("k")));
        assert!(a.hash("k").ct_eq(&a.hash("k")));
    }

    #[test]
    fn short_pepper_is_refused() {
        assert!(matches!(
            KeyHasher::keyed(&[0; 31]),
            Err(ConfigError::PepperTooShort { len: 31 })
        ));
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let h = KeyHasher::sha256().hash("x");
        assert!(KeyHash::from_hex(&h.to_hex()).unwrap().ct_eq(&h));
        assert!(
            KeyHash::from_hex(&h.to_hex().to_uppercase())
                .unwrap()
                .ct_eq(&h)
        );
        assert!(KeyHash::from_hex("zz").is_none());
        assert!(KeyHash::from_hex(&"g".repeat(64)).is_none());
        assert!(KeyHash::from_hex(&"é".repeat(32)).is_none());
        assert_eq!(format!("{h:?}"), "KeyHash([redacted])");
    }
}

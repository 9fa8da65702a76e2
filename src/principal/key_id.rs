//! [`KeyId`]: the public id of an API key.

use std::fmt;

/// Characters of an API key id.
pub(crate) const KEY_ID_LEN: usize = 16;

/// The public id of an API key: 16 base62 characters, the part of a key that names it.
///
/// Key ids are not secret (they appear in audit events and in [`Principal`](super::Principal)),
/// but they are random, so they reveal nothing about other keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// Parses a key id: exactly 16 base62 characters.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; KEY_ID_LEN] = s.as_bytes().try_into().ok()?;
        // base62 is exactly the ASCII letters and digits.
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Self(bytes))
    }

    /// An id from bytes the key format already checked to be base62.
    pub(crate) fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> Self {
        debug_assert!(bytes.iter().all(u8::is_ascii_alphanumeric));
        Self(bytes)
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only base62 ASCII ever gets in.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_str())
    }
}

impl std::str::FromStr for KeyId {
    type Err = crate::error::ConfigError;

    fn from_str(s: &str) -> Result<Self, crate::error::ConfigError> {
        Self::parse(s).ok_or_else(|| crate::error::ConfigError::KeyRecord {
            id: s.chars().take(32).collect(),
            message: "a key id is 16 characters of [0-9A-Za-z]".into(),
        })
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

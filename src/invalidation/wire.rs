//! The wire form of an [`Invalidation`]: one compact JSON object with a version,
//! `{"v":1,"t":"key","id":"3kTMd9Zq0vXbW1yN"}`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Invalidation;
use crate::clock::Timestamp;
use crate::principal::KeyId;

/// The wire version this release writes and reads.
pub const WIRE_VERSION: u32 = 1;

/// The largest message read (bytes); longer ones are refused unread.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Why a message could not be read. A receiver treats every one alike: messages may have been
/// missed, so its caches drop everything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("invalidation message over {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// Written by a version with another wire format.
    #[error("invalidation message of wire version {0}")]
    UnknownVersion(u32),
    /// A kind this version does not know.
    #[error("invalidation message of an unknown kind")]
    UnknownKind,
    /// Not an invalidation message.
    #[error("malformed invalidation message")]
    Malformed,
}

#[derive(Serialize, Deserialize, Default)]
struct Wire {
    v: u32,
    t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
}

impl Invalidation {
    /// The wire form: compact JSON with the wire version (`{"v":1,"t":"policy"}`).
    #[must_use]
    pub fn encode(&self) -> String {
        let s = |a: &Arc<str>| Some(a.to_string());
        let mut w = Wire {
            v: WIRE_VERSION,
            ..Wire::default()
        };
        match self {
            Self::ApiKeyRevoked { key_id } => {
                w.t = "key".into();
                w.id = Some(key_id.to_string());
            }
            Self::SubjectKeysRevoked { subject } => {
                w.t = "subject_keys".into();
                w.sub = s(subject);
            }
            Self::TokenRevoked { issuer, jti } => {
                w.t = "token".into();
                w.iss = s(issuer);
                w.jti = s(jti);
            }
            Self::SubjectTokensRevokedBefore { subject, before } => {
                w.t = "subject_tokens".into();
                w.sub = s(subject);
                w.before = Some(before.as_unix_secs());
            }
            Self::PolicyChanged => w.t = "policy".into(),
        }
        serde_json::to_string(&w).unwrap_or_else(|_| unreachable!("strings and numbers"))
    }

    /// Reads the wire form.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]; a receiver then drops every cache ([`Hub::deliver_unknown`](super::Hub::deliver_unknown)).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge);
        }
        let w: Wire = serde_json::from_slice(bytes).map_err(|_| DecodeError::Malformed)?;
        if w.v != WIRE_VERSION {
            return Err(DecodeError::UnknownVersion(w.v));
        }
        let text = |s: Option<String>| -> Result<Arc<str>, DecodeError> {
            s.filter(|s| !s.is_empty())
                .map(Arc::from)
                .ok_or(DecodeError::Malformed)
        };
        Ok(match w.t.as_str() {
            "key" => Self::ApiKeyRevoked {
                key_id: w
                    .id
                    .as_deref()
                    .and_then(KeyId::parse)
                    .ok_or(DecodeError::Malformed)?,
            },
            "subject_keys" => Self::SubjectKeysRevoked {
                subject: text(w.sub)?,
            },
            "token" => Self::TokenRevoked {
                issuer: Arc::from(w.iss.unwrap_or_default()),
                jti: text(w.jti)?,
            },
            "subject_tokens" => Self::SubjectTokensRevokedBefore {
                subject: text(w.sub)?,
                before: Timestamp::from_unix_secs(w.before.ok_or(DecodeError::Malformed)?),
            },
            "policy" => Self::PolicyChanged,
            _ => return Err(DecodeError::UnknownKind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_the_unknown_is_refused() {
        let all = [
            Invalidation::ApiKeyRevoked {
                key_id: KeyId::parse("3kTMd9Zq0vXbW1yN").unwrap(),
            },
            Invalidation::SubjectKeysRevoked {
                subject: "alice".into(),
            },
            Invalidation::TokenRevoked {
                issuer: "https://idp".into(),
                jti: "j1".into(),
            },
            Invalidation::SubjectTokensRevokedBefore {
                subject: "bob".into(),
                before: Timestamp::from_unix_secs(1_700_000_000),
            },
            Invalidation::PolicyChanged,
        ];
        for m in all {
            let text = m.encode();
            assert!(text.starts_with("{\"v\":1,"), "{text}");
            assert_eq!(Invalidation::decode(text.as_bytes()).unwrap(), m);
        }
        assert_eq!(
            Invalidation::PolicyChanged.encode(),
            r#"{"v":1,"t":"policy"}"#
        );
        let d = |s: &str| Invalidation::decode(s.as_bytes()).unwrap_err();
        assert_eq!(d(r#"{"v":2,"t":"policy"}"#), DecodeError::UnknownVersion(2));
        assert_eq!(d(r#"{"v":1,"t":"group"}"#), DecodeError::UnknownKind);
        assert_eq!(
            d(r#"{"v":1,"t":"key","id":"short"}"#),
            DecodeError::Malformed
        );
        assert_eq!(
            d(r#"{"v":1,"t":"subject_keys","sub":""}"#),
            DecodeError::Malformed
        );
        assert_eq!(d("not json"), DecodeError::Malformed);
        let big = format!(r#"{{"v":1,"t":"policy","x":"{}"}}"#, "a".repeat(5000));
        assert_eq!(d(&big), DecodeError::TooLarge);
    }
}

//! The key format: `{prefix}_{id}{secret}{checksum}`, base62, fixed length.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::ConfigError;
use crate::rejection::AuthnReason;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of the key id (16 base62 characters, about 95 bits: unique, not secret).
pub(crate) const ID_LEN: usize = crate::principal::KEY_ID_LEN;
/// Characters of the secret (43 base62 characters: 256 bits of entropy).
pub(crate) const SECRET_LEN: usize = 43;
/// Characters of the checksum (CRC-32 in 6 base62 characters).
pub(crate) const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;

fn base62_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

pub use crate::principal::KeyId;

/// The plaintext of a newly generated key. Shown to its owner once, never stored.
///
/// It has no `Display` and its `Debug` prints `[redacted]`; the memory is wiped on drop.
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// The key, to hand to its owner.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// The operating system's random number generator failed while generating a key.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct KeyGenError(#[source] getrandom::Error);

/// The key format: a prefix of the host's choosing, then `_`, a 16-character key id, a
/// 43-character secret (256 bits) and a 6-character CRC-32 checksum, all base62.
///
/// ```text
/// pal_ 3kTMd9Zq0vXbW1yN  h7Q…(43)…  0aB9cD
///      key id            secret     checksum
/// ```
///
/// The fixed prefix lets secret scanners (GitHub, GitLab, trufflehog) recognise leaked keys;
/// the checksum lets palisade refuse typos and random guesses without a store lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: Box<str>,
}

impl Default for KeyFormat {
    fn default() -> Self {
        Self {
            prefix: "pal".into(),
        }
    }
}

/// A key that passed the format and checksum checks (not yet the store).
#[derive(Debug, Clone, Copy)]
pub struct ParsedKey {
    id: KeyId,
}

impl ParsedKey {
    /// The key id.
    #[must_use]
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl KeyFormat {
    /// A format with `prefix`: 2 to 16 characters of `[a-z0-9]`, starting with a letter.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyPrefix`] for any other prefix.
    pub fn new(prefix: &str) -> Result<Self, ConfigError> {
        let ok = (2..=16).contains(&prefix.len())
            && prefix.as_bytes()[0].is_ascii_lowercase()
            && prefix
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            return Err(ConfigError::KeyPrefix {
                prefix: prefix.chars().take(32).collect(),
            });
        }
        Ok(Self {
            prefix: prefix.into(),
        })
    }

    /// The prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The length of every key of this format.
    #[must_use]
    pub fn key_len(&self) -> usize {
        self.prefix.len() + 1 + BODY_LEN
    }

    /// Checks the shape and checksum of `key` without any lookup.
    ///
    /// # Errors
    ///
    /// [`AuthnReason::MalformedKey`] for a wrong prefix, length or alphabet;
    /// [`AuthnReason::BadChecksum`] when the checksum does not match.
    pub fn parse(&self, key: &str) -> Result<ParsedKey, AuthnReason> {
        let body = key
            .strip_prefix(&*self.prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .ok_or(AuthnReason::MalformedKey)?;
        let body = body.as_bytes();
        if body.len() != BODY_LEN || !body.iter().all(|&c| base62_value(c).is_some()) {
            return Err(AuthnReason::MalformedKey);
        }
        let (signed, checksum) = key.as_bytes().split_at(key.len() - CHECKSUM_LEN);
        let mut claimed: u64 = 0;
        for &c in checksum {
            claimed = claimed * 62 + u64::from(base62_value(c).unwrap_or(0));
        }
        if claimed != u64::from(crc32fast::hash(signed)) {
            return Err(AuthnReason::BadChecksum);
        }
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&body[..ID_LEN]);
        Ok(ParsedKey {
            id: KeyId::from_bytes(id),
        })
    }

    /// Generates a fresh key from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`KeyGenError`] when the random number generator fails.
    pub fn generate(&self) -> Result<(KeyId, SecretKey), KeyGenError> {
        let mut key = Zeroizing::new(String::with_capacity(self.key_len()));
        key.push_str(&self.prefix);
        key.push('_');
        let mut random = Zeroizing::new([0u8; ID_LEN + SECRET_LEN]);
        fill_base62(&mut random[..])?;
        for &c in random.iter() {
            key.push(char::from(c));
        }
        let mut checksum = u64::from(crc32fast::hash(key.as_bytes()));
        let mut digits = [0u8; CHECKSUM_LEN];
        for d in digits.iter_mut().rev() {
            *d = ALPHABET[(checksum % 62) as usize];
            checksum /= 62;
        }
        for &c in &digits {
            key.push(char::from(c));
        }
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&random[..ID_LEN]);
        Ok((KeyId::from_bytes(id), SecretKey(key)))
    }
}

/// Fills `out` with uniformly random base62 characters (rejection sampling: no modulo bias).
fn fill_base62(out: &mut [u8]) -> Result<(), KeyGenError> {
    let mut buf = Zeroizing::new([0u8; 64]);
    let mut filled = 0;
    while filled < out.len() {
        getrandom::fill(&mut buf[..]).map_err(KeyGenError)?;
        for &b in buf.iter() {
            // 248 = 4 * 62: bytes at or above it would bias the low characters.
            if b < 248 && filled < out.len() {
                out[filled] = ALPHABET[usize::from(b % 62)];
                filled += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fresh() -> String {
        KeyFormat::default()
            .generate()
            .unwrap()
            .1
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let f = KeyFormat::default();
        let key = fresh();
        assert_eq!(key.len(), f.key_len());
        assert_eq!(key.len(), 4 + 16 + 43 + 6);
        assert!(key.starts_with("pal_"));
        let id = f.parse(&key).unwrap();
        assert_eq!(id.id().as_str(), &key[4..20]);
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(fresh(), fresh());
    }

    #[test]
    fn prefixes_are_validated() {
        for bad in ["", "a", "Pal", "1ab", "pal_x", "abcdefghijklmnopq", "pä"] {
            assert!(KeyFormat::new(bad).is_err(), "{bad}");
        }
        for good in ["ab", "acme", "acme2live"] {
            assert!(KeyFormat::new(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn wrong_prefix_length_or_alphabet_is_malformed() {
        let key = fresh();
        let f = KeyFormat::default();
        let other = KeyFormat::new("acme").unwrap();
        assert_eq!(other.parse(&key).unwrap_err(), AuthnReason::MalformedKey);
        assert_eq!(
            f.parse(&key[..key.len() - 1]).unwrap_err(),
            AuthnReason::MalformedKey
        );
        assert_eq!(
            f.parse(&format!("{key}0")).unwrap_err(),
            AuthnReason::MalformedKey
        );
        let dashed = key.replacen(&key[10..11], "-", 1);
        assert_eq!(f.parse(&dashed).unwrap_err(), AuthnReason::MalformedKey);
        assert_eq!(f.parse("").unwrap_err(), AuthnReason::MalformedKey);
        assert_eq!(f.parse("pal_").unwrap_err(), AuthnReason::MalformedKey);
    }

    #[test]
    fn checksum_above_u32_is_a_bad_checksum() {
        let key = fresh();
        let forged = format!("{}zzzzzz", &key[..key.len() - CHECKSUM_LEN]);
        assert_eq!(
            KeyFormat::default().parse(&forged).unwrap_err(),
            AuthnReason::BadChecksum
        );
    }

    #[test]
    fn key_id_parse_and_serde() {
        assert!(KeyId::parse("0123456789abcdef").is_some());
        assert!(KeyId::parse("0123456789abcde").is_none());
        assert!(KeyId::parse("0123456789abcde_").is_none());
        let id = KeyId::parse("0123456789abcdef").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"short\"").is_err());
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let (_, secret) = KeyFormat::default().generate().unwrap();
        let debug = format!("{secret:?}");
        assert!(!debug.contains(&secret.expose_secret()[4..]), "{debug}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = KeyFormat::default().parse(&s);
        }

        #[test]
        fn every_single_character_substitution_is_refused(pos in 0usize..69, c in "[0-9A-Za-z_-]") {
            // CRC-32 detects every error within 32 consecutive bits, so any one changed
            // character is refused without a store lookup.
            let key = fresh();
            let c = c.as_bytes()[0];
            prop_assume!(key.as_bytes()[pos] != c);
            let mut bytes = key.into_bytes();
            bytes[pos] = c;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(KeyFormat::default().parse(&changed).is_err());
        }

        #[test]
        fn transposed_neighbours_are_refused(pos in 4usize..68) {
            let key = fresh();
            let mut bytes = key.into_bytes();
            prop_assume!(bytes[pos] != bytes[pos + 1]);
            bytes.swap(pos, pos + 1);
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(KeyFormat::default().parse(&changed).is_err());
        }
    }
}

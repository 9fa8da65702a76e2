//! Tamper evidence: each event carries `prev` (the previous event's hash) and `hash`, an
//! HMAC-SHA256 under a host secret over the event's JSON line without `hash`. [`verify`]
//! reads a JSON-lines log and names the first edited, missing or reordered line.

use std::io::BufRead;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::AuditEvent;

type HmacSha256 = Hmac<Sha256>;

/// The separator before `hash`, always the last member of a line.
const HASH_MEMBER: &str = ",\"hash\":\"";

/// The HMAC of a line's canonical bytes (the line without its `hash` member).
pub(crate) fn mac(key: &[u8], canonical: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(canonical);
    hex(&m.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Appends `,"hash":"<mac>"}` to a line serialized without `hash` (which ends in `}`).
pub(crate) fn seal(line: &mut String, key: &[u8]) -> String {
    let h = mac(key, line.as_bytes());
    line.pop(); // the closing brace
    line.push_str(HASH_MEMBER);
    line.push_str(&h);
    line.push_str("\"}");
    h
}

/// What is wrong with a log, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A line is not an audit event, or has no `hash`.
    #[error("line {line}: not a sealed audit event")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A line's content does not match its hash: it was edited.
    #[error("line {line} (seq {seq}): edited (its hash does not match)")]
    Edited {
        /// 1-based line number.
        line: usize,
        /// The line's sequence number, as written.
        seq: u64,
    },
    /// A line does not follow the one before it: something was deleted, inserted or
    /// reordered there.
    #[error(
        "line {line} (seq {seq}): does not follow the line before (an event is missing or out of place)"
    )]
    Broken {
        /// 1-based line number.
        line: usize,
        /// The line's sequence number.
        seq: u64,
    },
    /// The log could not be read.
    #[error("read error at line {line}: {message}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// What failed.
        message: String,
    },
}

/// Checks a JSON-lines audit log sealed with `key`: every line's hash, and that each line's
/// `prev` is the previous line's `hash`. Returns the number of events.
///
/// # Errors
///
/// The first problem, naming its line.
pub fn verify(log: impl BufRead, key: &[u8]) -> Result<usize, ChainError> {
    let mut previous: Option<String> = None;
    let mut count = 0;
    for (i, line) in log.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| ChainError::Io {
            line: n,
            message: e.to_string(),
        })?;
        if line.is_empty() {
            continue;
        }
        let event: AuditEvent =
            serde_json::from_str(&line).map_err(|_| ChainError::Malformed { line: n })?;
        let (Some(hash), Some(pos)) = (&event.hash, line.rfind(HASH_MEMBER)) else {
            return Err(ChainError::Malformed { line: n });
        };
        let canonical = format!("{}}}", &line[..pos]);
        let expected = mac(key, canonical.as_bytes());
        if !bool::from(expected.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(ChainError::Edited {
                line: n,
                seq: event.seq,
            });
        }
        if let Some(prev) = &previous {
            if event.prev.as_deref() != Some(prev.as_str()) {
                return Err(ChainError::Broken {
                    line: n,
                    seq: event.seq,
                });
            }
        }
        previous = Some(hash.clone());
        count += 1;
    }
    Ok(count)
}

//! The Lua scripts of [`RedisStore`](super::RedisStore), the decoding of their replies, and
//! the keyed hash that names an identity's keys.

use std::fmt;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use siphasher::sip128::SipHasher24;

use super::limit::{LimitState, MAX_LIMITS, Verdict};
use crate::error::{StoreError, StoreErrorKind};

/// The checks of one request, in one script so that they are atomic: the GCRA cells and
/// window counters of every check, all tested (each check seeing what the checks before it
/// would take, as one script per check in order would), then all written, or none when a
/// binding check refuses. Times are Unix microseconds (exact in a Lua double).
///
/// KEYS: one per limit, check after check. ARGV: now, the number of checks, commit (1/0: 0
/// tests without consuming anything), then per check `cost consume shadow limits` (1/0 for
/// the flags) followed by that many `kind a b c`: `r T burst 0` for a rate (T = emission
/// interval), `q max 0 end` for a window quota whose key already names the window. Returns,
/// per check, `allowed, retry` then `remaining, reset, exceeded` per limit.
pub(super) const SCRIPT: &str = include_str!("redis.lua");

/// The refund of one check's units, key by key (a key gone meanwhile owes nothing). KEYS as
/// for [`SCRIPT`]; ARGV: cost, then per limit `r T` or `q 0`. The keys keep their TTLs.
pub(super) const REFUND: &str = include_str!("redis_refund.lua");

/// The SipHash key of the identity tags, from a secret of any length.
pub(super) fn tag_key(secret: &[u8]) -> [u8; 16] {
    let digest = Sha256::new_with_prefix(b"palisade quota key tag\0")
        .chain_update(secret)
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Feeds formatted text into a hasher.
pub(super) struct HashWriter<'a>(pub(super) &'a mut SipHasher24);

impl fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        std::hash::Hasher::write(self.0, s.as_bytes());
        Ok(())
    }
}

/// The verdicts of a batch whose checks have `limits` limits each, in order.
pub(super) fn decode_batch(
    reply: &[i64],
    limits: impl IntoIterator<Item = usize>,
) -> Result<Vec<Verdict>, StoreError> {
    let mut at = 0;
    let mut verdicts = Vec::new();
    for n in limits {
        let end = at + 2 + 3 * n.min(MAX_LIMITS);
        let part = reply.get(at..end).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::InvalidData,
                format!("quota script returned {} values, too few", reply.len()),
            )
        })?;
        verdicts.push(decode(part, n)?);
        at = end;
    }
    if at != reply.len() {
        return Err(StoreError::new(
            StoreErrorKind::InvalidData,
            format!("quota script returned {} values, too many", reply.len()),
        ));
    }
    Ok(verdicts)
}

pub(super) fn decode(reply: &[i64], n: usize) -> Result<Verdict, StoreError> {
    if reply.len() != 2 + 3 * n || n > MAX_LIMITS {
        return Err(StoreError::new(
            StoreErrorKind::InvalidData,
            format!(
                "quota script returned {} values for {n} limits",
                reply.len()
            ),
        ));
    }
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let mut states = [LimitState::default(); MAX_LIMITS];
    for (i, s) in states.iter_mut().take(n).enumerate() {
        let base = 2 + 3 * i;
        *s = LimitState::new(
            u64::try_from(reply[base]).unwrap_or(0),
            us(reply[base + 1]),
            reply[base + 2] != 0,
        );
    }
    let verdict = Verdict::new(
        &states[..n],
        if reply[0] == 1 {
            Duration::ZERO
        } else {
            us(reply[1])
        },
    );
    if verdict.is_allowed() != (reply[0] == 1) {
        return Err(StoreError::new(
            StoreErrorKind::InvalidData,
            "quota script verdict disagrees with its limit states",
        ));
    }
    Ok(verdict)
}

//! The replay cache of DPoP proofs (RFC 9449 §11.1): each proof's `jti` is remembered for as
//! long as the proof could be accepted, and a second use is refused. In memory (bounded, no
//! scan ever) for one instance; in Redis for many.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::authn::bearer::BuildPrehashed;
use crate::clock::Timestamp;

/// Why a proof could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// The `jti` was seen before.
    Replayed,
    /// The store cannot say (full, failed, timed out): retry after this long.
    Unavailable(Duration),
}

const SHARDS: usize = 16;

/// An in-memory replay cache of at most `capacity` ids recorded per window.
///
/// Every id is kept for at least one `window` (the longest a proof stays acceptable) and at
/// most two: each shard holds the ids of the current window and of the one before, and
/// starting a new window drops the older set whole. When the current window's ids reach the
/// capacity, new proofs are refused with 503 until the next window starts: forgetting an id
/// early would let its proof be replayed.
#[derive(Debug)]
pub(crate) struct MemoryReplay {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    window: Duration,
}

#[derive(Debug, Default)]
struct Shard {
    /// Start of the current window, in nanoseconds since the epoch.
    started: u64,
    current: HashSet<u128, BuildPrehashed>,
    previous: HashSet<u128, BuildPrehashed>,
}

impl MemoryReplay {
    pub(crate) fn new(capacity: usize, window: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            window,
        }
    }

    /// Records `id` at `now`: `Replayed` if it is known.
    pub(crate) fn record(&self, id: u128, now: Timestamp) -> Result<(), ReplayError> {
        // The id is a uniform hash: its top bits pick the shard, its low bits the bucket.
        #[allow(clippy::cast_possible_truncation)]
        let shard = (id >> 124) as usize % SHARDS;
        let mut s = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = now.as_unix_nanos();
        let window = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        let elapsed = now.saturating_sub(s.started);
        if elapsed >= window {
            s.previous = if elapsed >= window.saturating_mul(2) {
                HashSet::default()
            } else {
                std::mem::take(&mut s.current)
            };
            s.current.clear();
            s.started = now;
        }
        if s.current.contains(&id) || s.previous.contains(&id) {
            return Err(ReplayError::Replayed);
        }
        if s.current.len() >= self.per_shard {
            let left = window.saturating_sub(now.saturating_sub(s.started));
            return Err(ReplayError::Unavailable(Duration::from_nanos(left)));
        }
        s.current.insert(id);
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.current.len() + s.previous.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> u128 {
        // Spread over the shards as a hash would.
        u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
    }

    #[test]
    fn rfc9449_11_1_an_id_is_refused_for_at_least_one_window() {
        let replay = MemoryReplay::new(1_000, Duration::from_secs(60));
        let t = |s: u64| Timestamp::from_unix_secs(1_000 + s);
        assert_eq!(replay.record(id(1), t(0)), Ok(()));
        for s in [0, 30, 59, 60, 119] {
            assert_eq!(
                replay.record(id(1), t(s)),
                Err(ReplayError::Replayed),
                "at {s}"
            );
        }
        // Two windows on, the id is gone (its proof is too old to be accepted anyway).
        assert_eq!(replay.record(id(1), t(240)), Ok(()));
    }

    #[test]
    fn a_full_window_refuses_new_proofs_until_the_next_one() {
        let replay = MemoryReplay::new(160, Duration::from_secs(60));
        let t = |s: u64| Timestamp::from_unix_secs(1_000 + s);
        let mut refused = 0;
        for n in 0..1_000 {
            match replay.record(id(n), t(1)) {
                Ok(()) => {}
                Err(ReplayError::Unavailable(wait)) => {
                    assert!(wait <= Duration::from_secs(60));
                    refused += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused >= 840, "{refused}");
        assert!(replay.len() <= 160 + SHARDS, "{}", replay.len());
        // The next window takes new proofs again, and still knows the last window's.
        assert_eq!(replay.record(id(5_000), t(70)), Ok(()));
    }
}

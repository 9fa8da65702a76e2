//! Writes the authenticator makes to its key store off the request path: rehashes of keys that
//! proved themselves against a previous hasher, and last-used times, in batches.
//!
//! A request only ever puts an entry into a bounded queue (rehashes) or a bounded coalescing
//! map (uses) and goes on; one background task per authenticator, started on the first
//! successful check inside a tokio runtime, makes the store calls, each bounded by a timeout.
//! A full queue or map drops the entry and counts it. The task ends when the authenticator is
//! dropped, after a last flush.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::MissedTickBehavior;

use super::format::KeyId;
use super::store::{KeyStore, LastUsed, Rehash};
use crate::clock::Timestamp;
use crate::error::StoreErrorKind;

/// How often recorded uses are written to the store, at the latest (default 60 s).
pub const DEFAULT_LAST_USED_INTERVAL: Duration = Duration::from_secs(60);
/// How many keys' uses are written in one batch, at most (default 1000): reaching it writes
/// at once, and while a write is under way at most this many more keys are remembered.
pub const DEFAULT_LAST_USED_BATCH: usize = 1000;
/// How many rehashes may wait for the store (default 1024).
pub const DEFAULT_REHASH_QUEUE: usize = 1024;
/// The bound on each background store call (default 5 s).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the background writes of an [`ApiKeyAuthenticator`](super::ApiKeyAuthenticator) have
/// done so far (counters since it was built).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpkeepStats {
    /// Rehashes the store accepted.
    pub rehashed: u64,
    /// Rehashes the store failed or did not finish in time, or said it does not support (after
    /// which none is asked for again).
    pub rehash_failed: u64,
    /// Rehashes dropped because the queue was full (or no runtime ran the task).
    pub rehash_dropped: u64,
    /// Batches of last-used times the store accepted.
    pub last_used_batches: u64,
    /// Keys' last-used times in those batches.
    pub last_used_written: u64,
    /// Batches the store failed or did not finish in time (their times are not retried).
    pub last_used_failed: u64,
    /// Uses dropped because the map was full.
    pub last_used_dropped: u64,
}

#[derive(Default)]
struct Counters {
    rehashed: AtomicU64,
    rehash_failed: AtomicU64,
    rehash_dropped: AtomicU64,
    last_used_batches: AtomicU64,
    last_used_written: AtomicU64,
    last_used_failed: AtomicU64,
    last_used_dropped: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the request path and the task share.
struct State {
    /// One entry per key: its latest use.
    uses: Mutex<HashMap<KeyId, Timestamp>>,
    /// Keys with a rehash queued or under way (one per key at a time).
    pending: Mutex<HashSet<KeyId>>,
    flush: Notify,
    counters: Counters,
    unsupported: AtomicBool,
    /// The store said it does not record uses: none are collected any more.
    uses_unsupported: AtomicBool,
}

/// The pacing and bounds of the background writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpkeepSettings {
    pub(crate) interval: Duration,
    pub(crate) batch: usize,
    pub(crate) queue: usize,
    pub(crate) timeout: Duration,
}

impl Default for UpkeepSettings {
    fn default() -> Self {
        Self {
            interval: DEFAULT_LAST_USED_INTERVAL,
            batch: DEFAULT_LAST_USED_BATCH,
            queue: DEFAULT_REHASH_QUEUE,
            timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// The authenticator's side: records, and starts the task once.
pub(crate) struct Upkeep {
    pub(crate) settings: UpkeepSettings,
    state: Arc<State>,
    rehashes: OnceLock<mpsc::Sender<Rehash>>,
}

impl Upkeep {
    pub(crate) fn new(settings: UpkeepSettings) -> Self {
        let settings = UpkeepSettings {
            interval: settings.interval.max(Duration::from_millis(1)),
            batch: settings.batch.max(1),
            queue: settings.queue.max(1),
            timeout: settings.timeout,
        };
        Self {
            settings,
            state: Arc::new(State {
                uses: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashSet::new()),
                flush: Notify::new(),
                counters: Counters::default(),
                unsupported: AtomicBool::new(false),
                uses_unsupported: AtomicBool::new(false),
            }),
            rehashes: OnceLock::new(),
        }
    }

    /// The queue to the task, starting the task on first call inside a tokio runtime.
    fn sender<S: KeyStore>(&self, store: &Arc<S>) -> Option<&mpsc::Sender<Rehash>> {
        if let Some(tx) = self.rehashes.get() {
            return Some(tx);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.rehashes.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.settings.queue);
            let task = run(store.clone(), self.state.clone(), rx, self.settings);
            drop(runtime.spawn(task));
            tx
        }))
    }

    /// A key proved itself: remember its use at `at` (never waits on the store).
    pub(crate) fn used<S: KeyStore>(&self, store: &Arc<S>, id: KeyId, at: Timestamp) {
        if self.state.uses_unsupported.load(Ordering::Relaxed) {
            return; // the store does not record uses
        }
        if self.sender(store).is_none() {
            // No runtime to write it from: nothing would ever read the map.
            bump(&self.state.counters.last_used_dropped, 1);
            return;
        }
        let mut uses = lock(&self.state.uses);
        let len = uses.len();
        match uses.entry(id) {
            Entry::Occupied(mut e) => {
                if at > *e.get() {
                    e.insert(at);
                }
            }
            Entry::Vacant(_) if len >= self.settings.batch => {
                bump(&self.state.counters.last_used_dropped, 1);
            }
            Entry::Vacant(e) => {
                e.insert(at);
                if len + 1 >= self.settings.batch {
                    self.state.flush.notify_one();
                }
            }
        }
    }

    /// A key proved itself against an older hasher: queue its new hash (never waits).
    pub(crate) fn rehash<S: KeyStore>(&self, store: &Arc<S>, rehash: Rehash) {
        if self.state.unsupported.load(Ordering::Relaxed) {
            return; // the store said once that it cannot: not asked on every use
        }
        let Some(tx) = self.sender(store) else {
            bump(&self.state.counters.rehash_dropped, 1);
            return;
        };
        if !lock(&self.state.pending).insert(rehash.id) {
            return; // already on its way
        }
        if tx.try_send(rehash).is_err() {
            lock(&self.state.pending).remove(&rehash.id);
            bump(&self.state.counters.rehash_dropped, 1);
            tracing::debug!(layer = "authn", key_id = %rehash.id, "api key rehash queue full: dropped");
        }
    }

    /// Whether the store said it does not record uses.
    #[cfg(test)]
    pub(crate) fn state_says_uses_unsupported(&self) -> bool {
        self.state.uses_unsupported.load(Ordering::Relaxed)
    }

    /// Keys whose use waits to be written.
    #[cfg(test)]
    pub(crate) fn collected(&self) -> usize {
        lock(&self.state.uses).len()
    }

    pub(crate) fn stats(&self) -> UpkeepStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UpkeepStats {
            rehashed: get(&c.rehashed),
            rehash_failed: get(&c.rehash_failed),
            rehash_dropped: get(&c.rehash_dropped),
            last_used_batches: get(&c.last_used_batches),
            last_used_written: get(&c.last_used_written),
            last_used_failed: get(&c.last_used_failed),
            last_used_dropped: get(&c.last_used_dropped),
        }
    }
}

/// The task: rehashes as they come, uses every `interval` or when the map is full; a last
/// flush when the authenticator is gone.
async fn run<S: KeyStore>(
    store: Arc<S>,
    state: Arc<State>,
    mut rx: mpsc::Receiver<Rehash>,
    settings: UpkeepSettings,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.interval,
        settings.interval,
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            rehash = rx.recv() => match rehash {
                Some(rehash) => write_rehash(&*store, &state, rehash, settings.timeout).await,
                None => break,
            },
            _ = tick.tick() => flush(&*store, &state, settings.timeout).await,
            () = state.flush.notified() => flush(&*store, &state, settings.timeout).await,
        }
    }
    flush(&*store, &state, settings.timeout).await;
}

async fn write_rehash<S: KeyStore>(store: &S, state: &State, rehash: Rehash, timeout: Duration) {
    let result = tokio::time::timeout(timeout, store.update_hash(rehash)).await;
    lock(&state.pending).remove(&rehash.id);
    let c = &state.counters;
    match result {
        Ok(Ok(())) => {
            bump(&c.rehashed, 1);
            tracing::debug!(layer = "authn", key_id = %rehash.id, from = rehash.from_version, to = rehash.version, "api key rehashed");
        }
        Ok(Err(e)) if e.kind() == StoreErrorKind::Unsupported => {
            let first = !state.unsupported.swap(true, Ordering::Relaxed);
            bump(&c.rehash_failed, 1);
            if first {
                tracing::warn!(
                    layer = "authn",
                    "the api key store does not implement update_hash: keys under previous hashers are not migrated"
                );
            }
        }
        Ok(Err(e)) => {
            bump(&c.rehash_failed, 1);
            tracing::warn!(layer = "authn", key_id = %rehash.id, error = %crate::error::Chain(&e), "api key rehash failed");
        }
        Err(_) => {
            bump(&c.rehash_failed, 1);
            tracing::warn!(layer = "authn", key_id = %rehash.id, ?timeout, "api key rehash timed out");
        }
    }
}

async fn flush<S: KeyStore>(store: &S, state: &State, timeout: Duration) {
    let batch: Vec<LastUsed> = lock(&state.uses).drain().collect();
    if batch.is_empty() {
        return;
    }
    let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
    let c = &state.counters;
    match tokio::time::timeout(timeout, store.record_last_used(&batch)).await {
        Ok(Ok(())) => {
            bump(&c.last_used_batches, 1);
            bump(&c.last_used_written, n);
        }
        Ok(Err(e)) if e.kind() == StoreErrorKind::Unsupported => {
            state.uses_unsupported.store(true, Ordering::Relaxed);
            lock(&state.uses).clear();
            tracing::debug!(
                layer = "authn",
                "the api key store does not implement record_last_used: uses are not collected"
            );
        }
        Ok(Err(e)) => {
            bump(&c.last_used_failed, 1);
            tracing::warn!(layer = "authn", keys = n, error = %crate::error::Chain(&e), "recording api key uses failed");
        }
        Err(_) => {
            bump(&c.last_used_failed, 1);
            tracing::warn!(
                layer = "authn",
                keys = n,
                ?timeout,
                "recording api key uses timed out"
            );
        }
    }
}

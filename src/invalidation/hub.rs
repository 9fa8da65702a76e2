//! [`Hub`]: where a bus hands its messages and its link state to this instance's caches.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::Invalidation;

/// How long a cache serves an entry while the bus is not confirmed live (default 5 s).
pub const DEFAULT_SAFE_LIFETIME: Duration = Duration::from_secs(5);

/// A cache that a bus invalidates. Both calls run on the bus's task: they must be quick (drop
/// entries, wake a task) and must not block.
pub trait InvalidationListener: Send + Sync + 'static {
    /// Drops what `message` invalidates.
    fn invalidate(&self, message: &Invalidation);

    /// Drops everything: messages may have been missed (the bus reconnected, or a message of a
    /// kind this version does not know arrived).
    fn resync(&self);

    /// The bus may be missing messages from now on (its link broke). The default does
    /// nothing: caches that ask [`Hub::lifetime`] on each lookup need nothing more; a cache
    /// whose entries carry their own expiry drops them here.
    fn bus_down(&self) {}
}

/// This instance's end of an [`InvalidationBus`](super::InvalidationBus): the caches listening,
/// whether the subscription is confirmed live, and an epoch that moves on every message.
///
/// Cheap to clone (clones share it). Caches keep the hub and ask it, on each lookup, how long
/// an entry may be served ([`lifetime`](Self::lifetime)); they check the [`epoch`](Self::epoch)
/// before and after a backend read so that an answer read before an invalidation is not cached
/// after it.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    live: AtomicBool,
    epoch: AtomicU64,
    delivered: AtomicU64,
    resyncs: AtomicU64,
    safe_lifetime: Duration,
    listeners: Mutex<Vec<Weak<dyn InvalidationListener>>>,
    live_tx: tokio::sync::watch::Sender<bool>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("live", &self.is_live())
            .field("epoch", &self.epoch())
            .field("safe_lifetime", &self.inner.safe_lifetime)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub not yet live, whose caches serve entries for at most `safe_lifetime` until the
    /// transport confirms its subscription.
    #[must_use]
    pub fn new(safe_lifetime: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                live: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                resyncs: AtomicU64::new(0),
                safe_lifetime,
                listeners: Mutex::new(Vec::new()),
                live_tx: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Registers `listener` (held weakly: it stops listening when its last `Arc` is dropped).
    pub fn listen(&self, listener: &Arc<dyn InvalidationListener>) {
        let mut listeners = self.lock();
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(Arc::downgrade(listener));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<dyn InvalidationListener>>> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn each(&self, f: impl Fn(&dyn InvalidationListener)) {
        // Out of the lock: a listener may register another.
        let listeners: Vec<_> = self.lock().iter().filter_map(Weak::upgrade).collect();
        for l in listeners {
            f(&*l);
        }
    }

    /// Hands a received `message` to every listener.
    pub fn deliver(&self, message: &Invalidation) {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.delivered.fetch_add(1, Ordering::Relaxed);
        self.each(|l| l.invalidate(message));
    }

    /// A message arrived that this version cannot read (a newer kind or wire version): every
    /// cache drops everything, the safe answer to "something was invalidated".
    pub fn deliver_unknown(&self) {
        tracing::warn!(
            layer = "invalidation",
            "an invalidation message this version cannot read: every cache is dropped"
        );
        self.resync();
    }

    fn resync(&self) {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.resyncs.fetch_add(1, Ordering::Relaxed);
        self.each(InvalidationListener::resync);
    }

    /// The transport's subscription is confirmed (`true`) or may be missing messages
    /// (`false`). Becoming live again drops every cache first: what was missed cannot be
    /// replayed.
    pub fn set_live(&self, live: bool) {
        if live {
            if !self.inner.live.load(Ordering::SeqCst) {
                self.resync();
                self.inner.live.store(true, Ordering::SeqCst);
                tracing::info!(layer = "invalidation", "invalidation bus live");
            }
        } else if self.inner.live.swap(false, Ordering::SeqCst) {
            self.inner.epoch.fetch_add(1, Ordering::SeqCst);
            self.each(InvalidationListener::bus_down);
            tracing::warn!(
                layer = "invalidation",
                safe_lifetime = ?self.inner.safe_lifetime,
                "invalidation bus down: caches serve entries for at most the safe lifetime"
            );
        }
        self.inner.live_tx.send_replace(live);
    }

    /// Whether the subscription is confirmed live.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Waits until the subscription is live, at most `timeout`; whether it is.
    pub async fn wait_live(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.live_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|live| *live))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How long a cache with lifetime `ttl` may serve an entry now: `ttl` while live, at most
    /// the safe lifetime otherwise.
    #[must_use]
    pub fn lifetime(&self, ttl: Duration) -> Duration {
        if self.is_live() {
            ttl
        } else {
            ttl.min(self.inner.safe_lifetime)
        }
    }

    /// The safe lifetime.
    #[must_use]
    pub fn safe_lifetime(&self) -> Duration {
        self.inner.safe_lifetime
    }

    /// A counter that moves on every message, every resync and every loss of the link. A
    /// cache reads it before a backend read and stores the answer only if it has not moved.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    /// How many messages were delivered.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// How many times every cache was dropped (reconnections, unreadable messages).
    #[must_use]
    pub fn resyncs(&self) -> u64 {
        self.inner.resyncs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count(AtomicUsize, AtomicUsize);

    impl InvalidationListener for Count {
        fn invalidate(&self, _: &Invalidation) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn resync(&self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn going_live_resyncs_and_down_shortens_the_lifetime() {
        let hub = Hub::new(Duration::from_secs(2));
        let count = Arc::new(Count::default());
        let l: Arc<dyn InvalidationListener> = count.clone();
        hub.listen(&l);
        assert_eq!(
            hub.lifetime(Duration::from_secs(60)),
            Duration::from_secs(2)
        );
        hub.set_live(true);
        assert_eq!(count.1.load(Ordering::SeqCst), 1, "dropped on going live");
        assert_eq!(
            hub.lifetime(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        let e = hub.epoch();
        hub.deliver(&Invalidation::PolicyChanged);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(hub.epoch() > e);
        hub.set_live(true);
        assert_eq!(
            count.1.load(Ordering::SeqCst),
            1,
            "no resync while staying live"
        );
        hub.set_live(false);
        assert_eq!(
            hub.lifetime(Duration::from_secs(60)),
            Duration::from_secs(2)
        );
        drop(l);
        drop(count);
        hub.deliver(&Invalidation::PolicyChanged);
        assert_eq!(
            hub.lock().iter().filter(|l| l.strong_count() > 0).count(),
            0
        );
    }
}

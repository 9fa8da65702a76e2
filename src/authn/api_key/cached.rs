//! [`CachedKeyStore`]: a bounded, time-limited cache in front of a slower [`KeyStore`],
//! invalidated by an [`InvalidationBus`].

use std::collections::hash_map::RandomState;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::record::KeyRecord;
use super::store::{KeyStore, LastUsed, Rehash};
use crate::error::StoreError;
use crate::invalidation::{Hub, Invalidation, InvalidationBus, InvalidationListener};
use crate::principal::KeyId;

/// The default lifetime of a cached answer.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// The default number of key ids remembered.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 10_000;

type Map = quick_cache::sync::Cache<KeyId, Entry, quick_cache::UnitWeighter, RandomState>;

/// One answer of the backing store: a record, or `None` for an unknown id.
#[derive(Clone)]
struct Entry {
    record: Option<KeyRecord>,
    at: Instant,
}

/// Key records from a slower store (a database), remembered for a bounded time in a bounded
/// cache, and dropped at once when a bus says a key or a subject's keys were revoked.
///
/// - **Bounded**: at most `capacity` ids (S3-FIFO-like eviction, O(1), never a scan).
/// - **Time-limited**: an answer is served for `ttl` (default 60 s) while the bus is live, and
///   for at most the bus's safe lifetime while it is not; without a bus, for `ttl`.
/// - **Negative caching**: an unknown id is remembered like a known one and answered on the
///   same path ([`KeyStore::get_now`]), so the authenticator then compares the presented key
///   against its dummy hash exactly as it compares a wrong secret against the stored hash:
///   "unknown id" and "wrong secret" cannot be told apart by path or time, and probing ids
///   does not reach the database more than once per id and lifetime.
/// - **Invalidated**: [`Invalidation::ApiKeyRevoked`] drops that id,
///   [`Invalidation::SubjectKeysRevoked`] drops every key of the subject, a reconnection of
///   the bus drops everything. An answer read from the store while an invalidation arrived is
///   not cached.
/// - Errors of the store are never cached (each lookup tries again; palisade answers 503).
///
/// ```
/// use palisade::authn::api_key::{CachedKeyStore, MemoryKeyStore};
/// use palisade::invalidation::InProcessBus;
/// use std::time::Duration;
///
/// let bus = InProcessBus::new();
/// let store = CachedKeyStore::builder(MemoryKeyStore::new())
///     .ttl(Duration::from_secs(30))
///     .capacity(50_000)
///     .bus(&bus)
///     .build();
/// # let _ = store;
/// ```
///
/// Clones share the cache.
pub struct CachedKeyStore<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for CachedKeyStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    store: S,
    map: Map,
    ttl: Duration,
    capacity: usize,
    hub: Option<Hub>,
}

impl<S> fmt::Debug for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStore")
            .field("ttl", &self.inner.ttl)
            .field("capacity", &self.inner.capacity)
            .field("len", &self.inner.map.len())
            .field("bus", &self.inner.hub)
            .finish_non_exhaustive()
    }
}

/// Builds a [`CachedKeyStore`]; see [`CachedKeyStore::builder`].
#[must_use]
pub struct CachedKeyStoreBuilder<S> {
    store: S,
    ttl: Duration,
    capacity: usize,
    hub: Option<Hub>,
}

impl<S> fmt::Debug for CachedKeyStoreBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStoreBuilder")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("bus", &self.hub)
            .finish_non_exhaustive()
    }
}

impl<S: KeyStore> CachedKeyStoreBuilder<S> {
    /// How long an answer is served (default 60 s; at most the bus's safe lifetime while the
    /// bus is down). Zero caches nothing.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many key ids are remembered (default 10 000). Zero caches nothing.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Listens to `bus`: revocations published on it drop the cached answers at once.
    pub fn bus(mut self, bus: &impl InvalidationBus) -> Self {
        self.hub = Some(bus.hub().clone());
        self
    }

    /// The store.
    pub fn build(self) -> CachedKeyStore<S> {
        let inner = Arc::new(Inner {
            store: self.store,
            map: Map::with(
                self.capacity.clamp(1, 1024),
                self.capacity.max(1) as u64,
                quick_cache::UnitWeighter,
                RandomState::new(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            ttl: self.ttl,
            capacity: self.capacity,
            hub: self.hub,
        });
        if let Some(hub) = &inner.hub {
            let listener: Arc<dyn InvalidationListener> = inner.clone();
            hub.listen(&listener);
        }
        CachedKeyStore { inner }
    }
}

impl<S: KeyStore> CachedKeyStore<S> {
    /// A cache in front of `store`, with the default lifetime and capacity and no bus.
    pub fn builder(store: S) -> CachedKeyStoreBuilder<S> {
        CachedKeyStoreBuilder {
            store,
            ttl: DEFAULT_KEY_CACHE_TTL,
            capacity: DEFAULT_KEY_CACHE_CAPACITY,
            hub: None,
        }
    }

    /// The store behind the cache.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner.store
    }

    /// How many ids are cached now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// Drops the answer for `id` (after changing it in the store, on a single instance).
    pub fn forget(&self, id: &KeyId) {
        self.inner.map.remove(id);
    }

    /// Drops every answer.
    pub fn clear(&self) {
        self.inner.map.clear();
    }

    /// The lifetime that applies now.
    fn lifetime(&self) -> Duration {
        match &self.inner.hub {
            Some(hub) => hub.lifetime(self.inner.ttl),
            None => self.inner.ttl,
        }
    }

    fn cached(&self, id: &KeyId) -> Option<Option<KeyRecord>> {
        let entry = self.inner.map.get(id)?;
        if entry.at.elapsed() < self.lifetime() {
            return Some(entry.record);
        }
        let at = entry.at;
        self.inner.map.remove_if(id, |e| e.at == at);
        None
    }

    async fn fetch(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let epoch = self.inner.hub.as_ref().map(Hub::epoch);
        let record = self.inner.store.get(id).await?;
        let unchanged = epoch == self.inner.hub.as_ref().map(Hub::epoch);
        if unchanged && self.inner.capacity > 0 && !self.inner.ttl.is_zero() {
            // A store that answers with another id's record is not remembered under this id.
            let record = record.clone().filter(|r| r.id() == id);
            self.inner.map.insert(
                *id,
                Entry {
                    record,
                    at: Instant::now(),
                },
            );
        }
        Ok(record)
    }
}

impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        if let Some(answer) = self.cached(id) {
            return Ok(answer);
        }
        self.fetch(id).await
    }

    /// A fresh cached answer, a record or a remembered "unknown", at once; otherwise the
    /// backing store's own immediate answer, if it has one.
    fn get_now(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        if let Some(answer) = self.cached(id) {
            return Some(Ok(answer));
        }
        self.inner.store.get_now(id)
    }

    /// Forwards to the backing store, then drops the cached answer for the key, so that the
    /// next lookup reads the new hash (a failed update drops it too: the store may have
    /// changed; one that does not support updates keeps it).
    async fn update_hash(&self, rehash: Rehash) -> Result<(), StoreError> {
        let result = self.inner.store.update_hash(rehash).await;
        if !matches!(&result, Err(e) if e.kind() == crate::error::StoreErrorKind::Unsupported) {
            self.inner.map.remove(&rehash.id);
        }
        result
    }

    /// Forwards to the backing store; cached records keep their `last_used_at` until they
    /// expire.
    async fn record_last_used(&self, uses: &[LastUsed]) -> Result<(), StoreError> {
        self.inner.store.record_last_used(uses).await
    }
}

impl<S: KeyStore> InvalidationListener for Inner<S> {
    fn invalidate(&self, message: &Invalidation) {
        match message {
            Invalidation::ApiKeyRevoked { key_id } => {
                self.map.remove(key_id);
            }
            Invalidation::SubjectKeysRevoked { subject } => {
                // A scan of at most `capacity` entries, on a rare message.
                self.map.retain(|_, e| {
                    e.record
                        .as_ref()
                        .is_none_or(|r| r.principal().subject() != &**subject)
                });
            }
            _ => {}
        }
    }

    fn resync(&self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::authn::api_key::{KeyHasher, KeySpec, MemoryKeyStore};
    use crate::invalidation::InProcessBus;

    /// A memory store that counts its lookups and must be awaited (as a database is).
    #[derive(Clone, Default)]
    struct Counting(MemoryKeyStore, Arc<AtomicUsize>);

    impl KeyStore for Counting {
        async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.get(id).await
        }
    }

    fn record(id: &str, subject: &str) -> KeyRecord {
        KeySpec::new(subject).into_record(KeyId::parse(id).unwrap(), KeyHasher::sha256().hash(id))
    }

    fn id(s: &str) -> KeyId {
        KeyId::parse(s).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn hits_and_misses_are_cached_alike_until_the_ttl() {
        let backing = Counting::default();
        backing.0.insert(record("aaaaaaaaaaaaaaaa", "alice"));
        let cache = CachedKeyStore::builder(backing.clone())
            .ttl(Duration::from_secs(10))
            .build();
        let (known, unknown) = (id("aaaaaaaaaaaaaaaa"), id("zzzzzzzzzzzzzzzz"));
        assert!(
            cache.get_now(&known).is_none(),
            "nothing cached yet: awaited"
        );
        assert!(cache.get(&known).await.unwrap().is_some());
        assert!(cache.get(&unknown).await.unwrap().is_none());
        assert_eq!(backing.1.load(Ordering::SeqCst), 2);
        // Both answered at once, on the same path, without the backing store.
        assert!(matches!(cache.get_now(&known), Some(Ok(Some(_)))));
        assert!(matches!(cache.get_now(&unknown), Some(Ok(None))));
        assert_eq!(backing.1.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(cache.get_now(&known).is_none(), "expired");
        assert!(cache.get(&unknown).await.unwrap().is_none());
        assert_eq!(backing.1.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bus_drops_a_key_and_a_subjects_keys() {
        let bus = InProcessBus::new();
        let backing = Counting::default();
        for (k, s) in [
            ("aaaaaaaaaaaaaaaa", "alice"),
            ("bbbbbbbbbbbbbbbb", "alice"),
            ("cccccccccccccccc", "bob"),
        ] {
            backing.0.insert(record(k, s));
        }
        let cache = CachedKeyStore::builder(backing.clone()).bus(&bus).build();
        for k in ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"] {
            cache.get(&id(k)).await.unwrap();
        }
        assert_eq!(cache.len(), 3);
        let a = id("aaaaaaaaaaaaaaaa");
        backing
            .0
            .revoke(&a, crate::clock::Timestamp::from_unix_secs(1));
        bus.publish(&Invalidation::ApiKeyRevoked { key_id: a })
            .await
            .unwrap();
        assert!(cache.get_now(&a).is_none());
        assert!(cache.get(&a).await.unwrap().unwrap().is_revoked());
        bus.publish(&Invalidation::SubjectKeysRevoked {
            subject: "alice".into(),
        })
        .await
        .unwrap();
        assert!(cache.get_now(&id("bbbbbbbbbbbbbbbb")).is_none());
        assert!(
            cache.get_now(&id("cccccccccccccccc")).is_some(),
            "bob's stays"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_bus_is_down_entries_live_the_safe_lifetime_and_reconnection_drops_them() {
        let hub_bus = InProcessBus::new();
        let backing = Counting::default();
        backing.0.insert(record("aaaaaaaaaaaaaaaa", "alice"));
        let cache = CachedKeyStore::builder(backing.clone())
            .ttl(Duration::from_secs(600))
            .bus(&hub_bus)
            .build();
        let a = id("aaaaaaaaaaaaaaaa");
        cache.get(&a).await.unwrap();
        let hub = hub_bus.hub();
        hub.set_live(false);
        tokio::time::advance(hub.safe_lifetime() - Duration::from_millis(1)).await;
        assert!(cache.get_now(&a).is_some(), "within the safe lifetime");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(cache.get_now(&a).is_none(), "past the safe lifetime");
        cache.get(&a).await.unwrap();
        assert!(!cache.is_empty());
        hub.set_live(true);
        assert!(cache.is_empty(), "dropped on reconnection");
        cache.get(&a).await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(cache.get_now(&a).is_some(), "live again: the full ttl");
    }

    #[tokio::test]
    async fn an_answer_read_across_an_invalidation_is_not_cached() {
        let bus = InProcessBus::new();
        /// Publishes a revocation of the key while reading it.
        struct Racing(MemoryKeyStore, InProcessBus);
        impl KeyStore for Racing {
            async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
                let answer = self.0.get(id).await;
                self.1
                    .publish(&Invalidation::ApiKeyRevoked { key_id: *id })
                    .await?;
                answer
            }
        }
        let memory = MemoryKeyStore::new();
        memory.insert(record("aaaaaaaaaaaaaaaa", "alice"));
        let cache = CachedKeyStore::builder(Racing(memory, bus.clone()))
            .bus(&bus)
            .build();
        assert!(cache.get(&id("aaaaaaaaaaaaaaaa")).await.unwrap().is_some());
        assert!(
            cache.is_empty(),
            "read before the revocation: not remembered"
        );
    }

    #[tokio::test]
    async fn a_rehash_is_forwarded_and_drops_the_cached_answer_unless_unsupported() {
        use crate::authn::api_key::Rehash;
        let backing = Counting::default();
        backing.0.insert(record("aaaaaaaaaaaaaaaa", "alice"));
        let cache = CachedKeyStore::builder(backing.clone()).build();
        let a = id("aaaaaaaaaaaaaaaa");
        let new = KeyHasher::keyed(&[5; 32]).unwrap().hash("k");
        let rehash = Rehash {
            id: a,
            from_version: 1,
            hash: new,
            version: 2,
        };
        // `Counting` keeps the default: unsupported, and the cached answer stays.
        cache.get(&a).await.unwrap();
        let e = cache.update_hash(rehash).await.unwrap_err();
        assert_eq!(e.kind(), crate::error::StoreErrorKind::Unsupported);
        assert!(cache.get_now(&a).is_some());
        // A memory store behind the cache: stored, and the next lookup reads it.
        let memory = MemoryKeyStore::new();
        memory.insert(record("aaaaaaaaaaaaaaaa", "alice"));
        let cache = CachedKeyStore::builder(memory.clone()).build();
        assert_eq!(cache.get(&a).await.unwrap().unwrap().hash_version(), 1);
        cache.update_hash(rehash).await.unwrap();
        assert_eq!(cache.get(&a).await.unwrap().unwrap().hash_version(), 2);
        let at = crate::clock::Timestamp::from_unix_secs(9);
        cache.record_last_used(&[(a, at)]).await.unwrap();
        assert_eq!(
            memory.get(&a).await.unwrap().unwrap().last_used_at(),
            Some(at)
        );
    }
}

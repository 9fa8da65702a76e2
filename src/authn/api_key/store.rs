//! Where key records are kept: [`KeyStore`], [`DynKeyStore`], [`MemoryKeyStore`].

use std::future::Future;
use std::sync::Arc;

use dashmap::DashMap;

use super::format::KeyId;
use super::hash::KeyHash;
use super::record::KeyRecord;
use crate::BoxFuture;
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::principal::Shared;

/// A key's hash under the current scheme, made when the key proved itself against an older
/// one: what [`KeyStore::update_hash`] stores.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Rehash {
    /// The key.
    pub id: KeyId,
    /// The hash version the record had when the key was checked.
    pub from_version: u16,
    /// The key's hash under the current scheme.
    pub hash: KeyHash,
    /// The current scheme's version.
    pub version: u16,
}

/// One key's last successful use, as [`KeyStore::record_last_used`] receives it in batches.
pub type LastUsed = (KeyId, Timestamp);

/// Where API key records live. Looked up by key id on every API-key request.
///
/// # Contract
///
/// - `get` returns the record whose id is `id`, or `Ok(None)` if there is none. Revoked and
///   expired records should still be returned (palisade then tells their owner why the key
///   stopped working, and audit records it).
/// - Never log, return in an error, or otherwise expose the hash or anything a caller sent.
/// - An `Err` refuses the request with 503 (fail closed). palisade bounds each call with a
///   timeout, so a hung backend also ends in 503; implementations should still set their own
///   connection and query timeouts.
/// - The time `get` takes should not depend on whether the id exists, so that key ids cannot be
///   probed by timing (an indexed primary-key lookup is fine; a cache of only hits is not).
///
/// - [`update_hash`](Self::update_hash) and [`record_last_used`](Self::record_last_used) are
///   called by a background task, never on a request's path, each bounded by a timeout; a
///   failure is logged and counted and changes no answer. Their defaults store nothing.
///
/// Implementations write `async fn get`; `Arc<T>` and `Arc<dyn DynKeyStore>` are key stores too.
pub trait KeyStore: Send + Sync + 'static {
    /// The record of key `id`, `Ok(None)` if unknown.
    fn get(&self, id: &KeyId)
    -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// The same lookup answered at once, or `None` if this store must wait for I/O (then
    /// [`get`](Self::get) is awaited). A store in memory implements it so that the
    /// authentication layer needs no boxed future. The default is `None`.
    fn get_now(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        let _ = id;
        None
    }

    /// Stores `rehash.hash` and `rehash.version` for key `rehash.id` if its record still has
    /// hash version `rehash.from_version` (another instance may have moved it already; a
    /// conditional `UPDATE ... WHERE id = ? AND hash_version = ?` fits). Called after the key
    /// proved itself against a previous hasher. The default answers
    /// [`StoreErrorKind::Unsupported`]: the record keeps its old hash (and the previous hasher
    /// stays needed).
    fn update_hash(&self, rehash: Rehash) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = rehash;
        std::future::ready(Err(StoreError::from_kind(StoreErrorKind::Unsupported)))
    }

    /// Records the last successful use of each key in `uses` (one entry per key, its latest
    /// time), in one batch: a time earlier than the stored one should not replace it. The
    /// default answers [`StoreErrorKind::Unsupported`]: after the first batch the
    /// authenticator stops collecting uses (a request then pays one atomic load for them).
    fn record_last_used(
        &self,
        uses: &[LastUsed],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = uses;
        std::future::ready(Err(StoreError::from_kind(StoreErrorKind::Unsupported)))
    }
}

impl<T: KeyStore> KeyStore for Arc<T> {
    fn get(
        &self,
        id: &KeyId,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        (**self).get(id)
    }

    fn get_now(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        (**self).get_now(id)
    }

    fn update_hash(&self, rehash: Rehash) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).update_hash(rehash)
    }

    fn record_last_used(
        &self,
        uses: &[LastUsed],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_last_used(uses)
    }
}

impl std::fmt::Debug for dyn DynKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynKeyStore")
    }
}

/// The object-safe companion of [`KeyStore`]: `Arc<dyn DynKeyStore>` is a [`KeyStore`], for
/// hosts that choose the backend at run time (one boxed future per lookup).
pub trait DynKeyStore: Send + Sync + 'static {
    /// [`KeyStore::get`], boxed.
    fn get_boxed<'a>(
        &'a self,
        id: &'a KeyId,
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>>;

    /// [`KeyStore::update_hash`], boxed.
    fn update_hash_boxed(&self, rehash: Rehash) -> BoxFuture<'_, Result<(), StoreError>>;

    /// [`KeyStore::record_last_used`], boxed.
    fn record_last_used_boxed<'a>(
        &'a self,
        uses: &'a [LastUsed],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<T: KeyStore> DynKeyStore for T {
    fn get_boxed<'a>(
        &'a self,
        id: &'a KeyId,
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        Box::pin(self.get(id))
    }

    fn update_hash_boxed(&self, rehash: Rehash) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.update_hash(rehash))
    }

    fn record_last_used_boxed<'a>(
        &'a self,
        uses: &'a [LastUsed],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record_last_used(uses))
    }
}

impl KeyStore for Arc<dyn DynKeyStore> {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        // `(**self)`: the Arc is a DynKeyStore too (blanket impl); calling it would recurse.
        (**self).get_boxed(id).await
    }

    async fn update_hash(&self, rehash: Rehash) -> Result<(), StoreError> {
        (**self).update_hash_boxed(rehash).await
    }

    async fn record_last_used(&self, uses: &[LastUsed]) -> Result<(), StoreError> {
        (**self).record_last_used_boxed(uses).await
    }
}

/// An in-memory [`KeyStore`] on a sharded concurrent map; clones share the same keys.
///
/// Lookups take a shard read lock for a few nanoseconds and clone the record (no allocation).
/// Records are held behind one pointer each (the table's spare slots stay small), and the role
/// and scope sets, tenants and tiers that keys have in common are held once: about 230 bytes
/// per key for the typical key of `tests/key_store_memory.rs`.
#[derive(Debug, Clone, Default)]
pub struct MemoryKeyStore {
    keys: Arc<DashMap<KeyId, Arc<KeyRecord>>>,
    shared: Arc<Shared>,
}

impl MemoryKeyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a record; returns the one it replaced.
    pub fn insert(&self, record: KeyRecord) -> Option<KeyRecord> {
        let record = KeyRecord {
            principal: self.shared.principal(&record.principal),
            ..record
        };
        let replaced = self.keys.insert(record.id, Arc::new(record))?;
        Some(self.released(replaced))
    }

    /// A record that left the table, its shared values let go of where it was their last user.
    fn released(&self, record: Arc<KeyRecord>) -> KeyRecord {
        self.shared.release(&record.principal);
        Arc::unwrap_or_clone(record)
    }

    /// Revokes key `id` at `at`; `false` if there is no such key. A revoked key stays in the
    /// store so its owner is told it was revoked.
    pub fn revoke(&self, id: &KeyId, at: Timestamp) -> bool {
        match self.keys.get_mut(id) {
            Some(mut r) => {
                Arc::make_mut(&mut r).revoked_at = Some(at);
                true
            }
            None => false,
        }
    }

    /// Removes key `id` entirely.
    pub fn remove(&self, id: &KeyId) -> Option<KeyRecord> {
        self.keys.remove(id).map(|(_, r)| self.released(r))
    }

    /// The records of every key of `subject` (a scan: for administration, not the hot path).
    #[must_use]
    pub fn keys_of(&self, subject: &str) -> Vec<KeyRecord> {
        self.keys
            .iter()
            .filter(|r| r.principal.subject() == subject)
            .map(|r| KeyRecord::clone(r.value()))
            .collect()
    }

    /// The number of records.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyStore for MemoryKeyStore {
    fn get(
        &self,
        id: &KeyId,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        std::future::ready(self.lookup(id))
    }

    fn get_now(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        Some(self.lookup(id))
    }

    fn update_hash(&self, rehash: Rehash) -> impl Future<Output = Result<(), StoreError>> + Send {
        if let Some(mut r) = self.keys.get_mut(&rehash.id)
            && r.hash_version == rehash.from_version
        {
            let r = Arc::make_mut(&mut r);
            r.hash = rehash.hash;
            r.hash_version = rehash.version;
        }
        std::future::ready(Ok(()))
    }

    fn record_last_used(
        &self,
        uses: &[LastUsed],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        for (id, at) in uses {
            if let Some(mut r) = self.keys.get_mut(id) {
                Arc::make_mut(&mut r).note_use(*at);
            }
        }
        std::future::ready(Ok(()))
    }
}

impl MemoryKeyStore {
    fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        // Copy out under the shard lock and release it before returning.
        Ok(self.keys.get(id).map(|r| KeyRecord::clone(r.value())))
    }
}

impl FromIterator<KeyRecord> for MemoryKeyStore {
    fn from_iter<I: IntoIterator<Item = KeyRecord>>(iter: I) -> Self {
        let store = Self::new();
        for r in iter {
            store.insert(r);
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::api_key::{KeyHasher, KeySpec};

    fn record(id: &str, subject: &str) -> KeyRecord {
        KeySpec::new(subject)
            .role("reader")
            .into_record(KeyId::parse(id).unwrap(), KeyHasher::sha256().hash(id))
    }

    #[tokio::test]
    async fn memory_store_get_insert_revoke_remove() {
        let store = MemoryKeyStore::new();
        let a = record("aaaaaaaaaaaaaaaa", "alice");
        let b = record("bbbbbbbbbbbbbbbb", "alice");
        store.insert(a.clone());
        store.insert(b.clone());
        assert_eq!(store.keys_of("alice").len(), 2);
        assert!(store.get(a.id()).await.unwrap().is_some());
        assert!(store.revoke(a.id(), Timestamp::from_unix_secs(5)));
        assert!(store.get(a.id()).await.unwrap().unwrap().is_revoked());
        assert!(!store.get(b.id()).await.unwrap().unwrap().is_revoked());
        assert!(store.remove(a.id()).is_some());
        assert!(store.get(a.id()).await.unwrap().is_none());
        assert!(!store.revoke(a.id(), Timestamp::UNIX_EPOCH));
    }

    #[tokio::test]
    async fn common_sets_are_held_once_and_let_go_with_their_last_key() {
        let store = MemoryKeyStore::new();
        let a = record("aaaaaaaaaaaaaaaa", "alice");
        let b = record("bbbbbbbbbbbbbbbb", "bob");
        store.insert(a.clone());
        store.insert(b.clone());
        let roles = |id: &KeyRecord| store.lookup(id.id()).unwrap().unwrap();
        let (ra, rb) = (roles(&a), roles(&b));
        let first = |r: &KeyRecord| r.principal().roles().next().unwrap().as_ptr();
        assert_eq!(first(&ra), first(&rb), "one `reader` set for both keys");
        assert_eq!(
            ra.principal(),
            a.principal(),
            "sharing changes nothing visible"
        );
        // `reader`, and the empty scope set.
        assert_eq!(store.shared.len(), (2, 0));
        drop((ra, rb));
        assert!(store.remove(a.id()).is_some());
        assert_eq!(store.shared.len(), (2, 0), "bob still uses them");
        assert!(store.remove(b.id()).is_some());
        assert_eq!(store.shared.len(), (0, 0), "let go with the last key");
        // Replacing a record lets go of what the old one alone used.
        store.insert(a.clone());
        let other = KeySpec::new("alice")
            .role("writer")
            .tenant("acme")
            .into_record(*a.id(), *a.hash());
        assert!(store.insert(other).is_some());
        assert_eq!(
            store.shared.len(),
            (2, 1),
            "`writer`, the empty set and `acme`"
        );
    }

    #[tokio::test]
    async fn arc_and_dyn_stores_are_key_stores() {
        let store = MemoryKeyStore::new();
        let a = record("aaaaaaaaaaaaaaaa", "alice");
        store.insert(a.clone());
        let arc = Arc::new(store.clone());
        assert!(arc.get(a.id()).await.unwrap().is_some());
        let dynamic: Arc<dyn DynKeyStore> = Arc::new(store);
        assert!(KeyStore::get(&dynamic, a.id()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn memory_store_rehashes_once_and_keeps_the_latest_use() {
        let store = MemoryKeyStore::new();
        let a = record("aaaaaaaaaaaaaaaa", "alice");
        store.insert(a.clone());
        let new = KeyHasher::keyed(&[3; 32]).unwrap().hash("k");
        let rehash = |from_version, version| Rehash {
            id: *a.id(),
            from_version,
            hash: new,
            version,
        };
        store.update_hash(rehash(1, 2)).await.unwrap();
        let got = store.lookup(a.id()).unwrap().unwrap();
        assert_eq!(got.hash_version(), 2);
        assert!(got.hash().ct_eq(&new));
        // Another instance's stale rehash (from version 1) changes nothing now.
        store.update_hash(rehash(1, 5)).await.unwrap();
        assert_eq!(store.lookup(a.id()).unwrap().unwrap().hash_version(), 2);
        let (t1, t2) = (Timestamp::from_unix_secs(10), Timestamp::from_unix_secs(20));
        store.record_last_used(&[(*a.id(), t2)]).await.unwrap();
        store.record_last_used(&[(*a.id(), t1)]).await.unwrap();
        let unknown = KeyId::parse("zzzzzzzzzzzzzzzz").unwrap();
        store.record_last_used(&[(unknown, t1)]).await.unwrap();
        assert_eq!(
            store.lookup(a.id()).unwrap().unwrap().last_used_at(),
            Some(t2)
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn record_serde_round_trip_and_unknown_fields_refused() {
        let r = record("aaaaaaaaaaaaaaaa", "alice").revoked(Timestamp::from_unix_secs(7));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["subject"], "alice");
        assert_eq!(json["roles"][0], "reader");
        let back: KeyRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.principal(), r.principal());
        assert!(back.hash().ct_eq(r.hash()));
        assert_eq!(back.revoked_at(), r.revoked_at());
        let mut bad = json;
        bad["secret"] = "oops".into();
        assert!(serde_json::from_value::<KeyRecord>(bad).is_err());
    }

    #[test]
    fn expiry_is_exclusive() {
        let r = KeySpec::new("a")
            .expires_at(Timestamp::from_unix_secs(100))
            .into_record(
                KeyId::parse("aaaaaaaaaaaaaaaa").unwrap(),
                KeyHasher::sha256().hash(""),
            );
        assert!(!r.is_expired_at(Timestamp::from_unix_secs(99)));
        assert!(r.is_expired_at(Timestamp::from_unix_secs(100)));
    }
}

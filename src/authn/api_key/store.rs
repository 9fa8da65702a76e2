//! Key records and where they are kept: [`KeyRecord`], [`KeyStore`], [`MemoryKeyStore`].

use std::future::Future;
use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use super::format::KeyId;
use super::hash::KeyHash;
use crate::BoxFuture;
use crate::clock::Timestamp;
use crate::error::{ConfigError, StoreError};
use crate::principal::{AuthMethod, Principal, PrincipalBuilder, Shared};

/// What a host stores for one API key: its id, the hash of the key, who it belongs to and
/// what it grants, and its lifetime. Never the key itself.
///
/// A subject may hold several live keys, so a key can be rotated without downtime: issue the
/// new key, move clients over, then revoke the old one.
///
/// Cloning is cheap (the identity sits behind an `Arc`). In serde it is a flat object:
///
/// ```json
/// { "id": "3kTMd9Zq0vXbW1yN", "hash": "9f86d0…", "subject": "alice",
///   "roles": ["admin"], "scopes": ["orders:read"], "tenant": "acme", "tier": "pro",
///   "name": "ci deploy key", "created_at": "2026-01-01T00:00:00Z",
///   "expires_at": "2027-01-01T00:00:00Z", "revoked_at": null }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "KeyRecordRepr", into = "KeyRecordRepr")]
pub struct KeyRecord {
    id: KeyId,
    hash: KeyHash,
    principal: Principal,
    name: Option<Arc<str>>,
    created_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

impl KeyRecord {
    /// The key id.
    #[must_use]
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The stored hash.
    #[must_use]
    pub fn hash(&self) -> &KeyHash {
        &self.hash
    }

    /// The principal a request authenticated by this key gets.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// A human label ("ci deploy key").
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// When the key was created.
    #[must_use]
    pub fn created_at(&self) -> Option<Timestamp> {
        self.created_at
    }

    /// When the key stops working, if ever.
    #[must_use]
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// When the key was revoked, if it was.
    #[must_use]
    pub fn revoked_at(&self) -> Option<Timestamp> {
        self.revoked_at
    }

    /// Whether the key is revoked.
    #[must_use]
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the key is expired at `now` (expiry is exclusive: at `expires_at` it is expired).
    #[must_use]
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// This record, revoked at `at`.
    #[must_use]
    pub fn revoked(mut self, at: Timestamp) -> Self {
        self.revoked_at = Some(at);
        self
    }

    /// This record, expiring at `at` at the latest (an earlier expiry stays).
    #[must_use]
    pub fn expiring_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(self.expires_at.map_or(at, |e| e.min(at)));
        self
    }
}

/// Everything about a key but its id and hash: who it is for and what it grants.
///
/// [`ApiKeys::generate`](super::ApiKeys::generate) turns a spec into a fresh key and its
/// record; [`KeySpec::into_record`] attaches an existing id and hash.
#[derive(Debug, Clone)]
#[must_use]
pub struct KeySpec {
    identity: PrincipalBuilder,
    name: Option<String>,
    created_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
}

impl KeySpec {
    /// A key for `subject`, with no roles, no scopes and no expiry.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            // The method is set to the key's id in `into_record`.
            identity: Principal::builder(subject, AuthMethod::Anonymous),
            name: None,
            created_at: None,
            expires_at: None,
        }
    }

    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.identity = self.identity.role(role);
        self
    }

    /// Adds a scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.identity = self.identity.scope(scope);
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.identity = self.identity.tenant(tenant);
        self
    }

    /// Sets the quota tier.
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.identity = self.identity.tier(tier);
        self
    }

    /// Sets a human label.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records the creation time.
    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.created_at = Some(at);
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The spec of an existing record: its subject, roles, scopes, tenant, tier, label and
    /// expiry (not its creation time), to issue another key for the same caller.
    pub fn from_record(record: &KeyRecord) -> Self {
        let p = &record.principal;
        let mut identity = Principal::builder(p.subject(), AuthMethod::Anonymous)
            .roles(p.roles())
            .scopes(p.scopes());
        if let Some(tenant) = p.tenant() {
            identity = identity.tenant(tenant);
        }
        if let Some(tier) = p.tier() {
            identity = identity.tier(tier);
        }
        Self {
            identity,
            name: record.name.as_deref().map(str::to_owned),
            created_at: None,
            expires_at: record.expires_at,
        }
    }

    /// The record for the key `id` whose hash is `hash`.
    pub fn into_record(self, id: KeyId, hash: KeyHash) -> KeyRecord {
        KeyRecord {
            id,
            hash,
            principal: self
                .identity
                .method(AuthMethod::ApiKey { key_id: id })
                .build(),
            name: self.name.map(Arc::from),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecordRepr {
    id: KeyId,
    hash: KeyHash,
    subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<Timestamp>,
}

impl TryFrom<KeyRecordRepr> for KeyRecord {
    type Error = ConfigError;

    fn try_from(r: KeyRecordRepr) -> Result<Self, ConfigError> {
        if r.subject.is_empty() {
            return Err(ConfigError::KeyRecord {
                id: r.id.to_string(),
                message: "the subject is empty".into(),
            });
        }
        let mut identity = Principal::builder(r.subject, AuthMethod::Anonymous)
            .roles(r.roles)
            .scopes(r.scopes);
        if let Some(t) = r.tenant {
            identity = identity.tenant(t);
        }
        if let Some(t) = r.tier {
            identity = identity.tier(t);
        }
        let mut spec = KeySpec {
            identity,
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
        .into_record(r.id, r.hash);
        spec.revoked_at = r.revoked_at;
        Ok(spec)
    }
}

impl From<KeyRecord> for KeyRecordRepr {
    fn from(r: KeyRecord) -> Self {
        let p = &r.principal;
        Self {
            id: r.id,
            hash: r.hash,
            subject: p.subject().to_owned(),
            roles: p.roles().map(str::to_owned).collect(),
            scopes: p.scopes().map(str::to_owned).collect(),
            tenant: p.tenant().map(str::to_owned),
            tier: p.tier().map(str::to_owned),
            name: r.name.as_deref().map(str::to_owned),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

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
}

impl<T: KeyStore> DynKeyStore for T {
    fn get_boxed<'a>(
        &'a self,
        id: &'a KeyId,
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, StoreError>> {
        Box::pin(self.get(id))
    }
}

impl KeyStore for Arc<dyn DynKeyStore> {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        // `(**self)`: the Arc is a DynKeyStore too (blanket impl); calling it would recurse.
        (**self).get_boxed(id).await
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
    use crate::authn::api_key::KeyHasher;

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

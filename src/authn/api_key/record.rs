//! What is stored of one key: [`KeyRecord`], and [`KeySpec`] to make one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::format::KeyId;
use super::hash::{DEFAULT_HASH_VERSION, KeyHash};
use crate::clock::Timestamp;
use crate::error::ConfigError;
use crate::principal::{AuthMethod, Principal, PrincipalBuilder};

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
///   "expires_at": "2027-01-01T00:00:00Z", "revoked_at": null,
///   "hash_version": 2, "last_used_at": "2026-03-01T12:00:00Z" }
/// ```
///
/// `hash_version` names the hashing scheme that made `hash` (see
/// [`ApiKeys::with_previous_hasher`](super::ApiKeys::with_previous_hasher)); absent, it is
/// [`DEFAULT_HASH_VERSION`](super::DEFAULT_HASH_VERSION). `last_used_at` is the last
/// successful use a store recorded ([`KeyStore::record_last_used`](super::KeyStore::record_last_used)).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "KeyRecordRepr", into = "KeyRecordRepr")]
pub struct KeyRecord {
    pub(super) id: KeyId,
    pub(super) hash: KeyHash,
    pub(super) principal: Principal,
    pub(super) name: Option<Arc<str>>,
    pub(super) created_at: Option<Timestamp>,
    pub(super) expires_at: Option<Timestamp>,
    pub(super) revoked_at: Option<Timestamp>,
    /// Unix nanoseconds of the last recorded use, 0 for none (8 bytes where an `Option` takes
    /// 16: the record is held once per key).
    pub(super) last_used: u64,
    pub(super) hash_version: u16,
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

    /// The version of the hashing scheme that made [`hash`](Self::hash).
    #[must_use]
    pub fn hash_version(&self) -> u16 {
        self.hash_version
    }

    /// This record with `hash`, made by the hashing scheme of `version` (what a store does
    /// with a [`Rehash`](super::Rehash)).
    #[must_use]
    pub fn rehashed(mut self, hash: KeyHash, version: u16) -> Self {
        self.hash = hash;
        self.hash_version = version;
        self
    }

    /// The last successful use a store recorded, if any.
    #[must_use]
    pub fn last_used_at(&self) -> Option<Timestamp> {
        (self.last_used != 0).then(|| Timestamp::from_unix_nanos(self.last_used))
    }

    /// This record, last used at `at` (a later time already recorded stays).
    #[must_use]
    pub fn used_at(mut self, at: Timestamp) -> Self {
        self.note_use(at);
        self
    }

    /// Records a use at `at` unless a later one is recorded already.
    pub(super) fn note_use(&mut self, at: Timestamp) {
        self.last_used = self.last_used.max(at.as_unix_nanos());
    }

    /// Sets the last recorded use.
    pub(super) fn set_last_used(&mut self, at: Option<Timestamp>) {
        self.last_used = at.map_or(0, Timestamp::as_unix_nanos);
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
            last_used: 0,
            hash_version: DEFAULT_HASH_VERSION,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used_at: Option<Timestamp>,
    #[serde(
        default = "default_version",
        skip_serializing_if = "is_default_version"
    )]
    hash_version: u16,
}

const fn default_version() -> u16 {
    DEFAULT_HASH_VERSION
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
const fn is_default_version(v: &u16) -> bool {
    *v == DEFAULT_HASH_VERSION
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
        spec.set_last_used(r.last_used_at);
        spec.hash_version = r.hash_version;
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
            last_used_at: r.last_used_at(),
            hash_version: r.hash_version,
        }
    }
}

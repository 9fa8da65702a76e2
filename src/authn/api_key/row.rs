//! [`KeyRecordBuilder`]: a [`KeyRecord`] from a database row's columns.

use super::format::KeyId;
use super::hash::DEFAULT_HASH_VERSION;
use super::hash::KeyHash;
use super::record::{KeyRecord, KeySpec};
use crate::clock::Timestamp;
use crate::error::ConfigError;

impl KeyRecord {
    /// Starts a record from the columns of a database row: its id, stored hash and subject;
    /// the nullable columns follow as `Option`s, lists as iterators. No JSON needed.
    ///
    /// ```
    /// use palisade::authn::api_key::{KeyHasher, KeyId, KeyRecord};
    /// use palisade::clock::Timestamp;
    ///
    /// let id = KeyId::parse("3kTMd9Zq0vXbW1yN").unwrap();
    /// let hash = KeyHasher::sha256().hash("pal_...");
    /// let roles = "admin,reader";
    /// let record = KeyRecord::builder(id, hash, "alice")
    ///     .roles(roles.split(','))
    ///     .tenant(Some("acme"))
    ///     .revoked_at(None::<Timestamp>)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(record.principal().subject(), "alice");
    /// ```
    pub fn builder(id: KeyId, hash: KeyHash, subject: impl Into<String>) -> KeyRecordBuilder {
        let subject = subject.into();
        KeyRecordBuilder {
            id,
            hash,
            empty_subject: subject.is_empty(),
            spec: KeySpec::new(subject),
            revoked_at: None,
            last_used_at: None,
            hash_version: DEFAULT_HASH_VERSION,
        }
    }
}

/// Builds a [`KeyRecord`] from a row's columns; see [`KeyRecord::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct KeyRecordBuilder {
    id: KeyId,
    hash: KeyHash,
    empty_subject: bool,
    spec: KeySpec,
    revoked_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    hash_version: u16,
}

impl KeyRecordBuilder {
    /// Adds these roles (empty items are skipped).
    pub fn roles<R: Into<String>>(mut self, roles: impl IntoIterator<Item = R>) -> Self {
        for r in roles.into_iter().map(Into::into).filter(|r| !r.is_empty()) {
            self.spec = self.spec.role(r);
        }
        self
    }

    /// Adds these scopes (empty items are skipped).
    pub fn scopes<R: Into<String>>(mut self, scopes: impl IntoIterator<Item = R>) -> Self {
        for r in scopes.into_iter().map(Into::into).filter(|r| !r.is_empty()) {
            self.spec = self.spec.scope(r);
        }
        self
    }

    /// Sets the tenant, if any.
    pub fn tenant(mut self, tenant: Option<impl Into<String>>) -> Self {
        if let Some(t) = tenant {
            self.spec = self.spec.tenant(t);
        }
        self
    }

    /// Sets the quota tier, if any.
    pub fn tier(mut self, tier: Option<impl Into<String>>) -> Self {
        if let Some(t) = tier {
            self.spec = self.spec.tier(t);
        }
        self
    }

    /// Sets the human label, if any.
    pub fn name(mut self, name: Option<impl Into<String>>) -> Self {
        if let Some(n) = name {
            self.spec = self.spec.name(n);
        }
        self
    }

    /// Sets the creation time, if known.
    pub fn created_at(mut self, at: Option<Timestamp>) -> Self {
        if let Some(at) = at {
            self.spec = self.spec.created_at(at);
        }
        self
    }

    /// Sets the expiry, if any.
    pub fn expires_at(mut self, at: Option<Timestamp>) -> Self {
        if let Some(at) = at {
            self.spec = self.spec.expires_at(at);
        }
        self
    }

    /// Sets the revocation time, if revoked.
    pub fn revoked_at(mut self, at: Option<Timestamp>) -> Self {
        self.revoked_at = at;
        self
    }

    /// Sets the version of the hashing scheme that made the hash (default
    /// [`DEFAULT_HASH_VERSION`](super::DEFAULT_HASH_VERSION)).
    pub fn hash_version(mut self, version: u16) -> Self {
        self.hash_version = version;
        self
    }

    /// Sets the last recorded use, if any.
    pub fn last_used_at(mut self, at: Option<Timestamp>) -> Self {
        self.last_used_at = at;
        self
    }

    /// The record.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyRecord`] when the subject is empty.
    pub fn build(self) -> Result<KeyRecord, ConfigError> {
        if self.empty_subject {
            return Err(ConfigError::KeyRecord {
                id: self.id.to_string(),
                message: "the subject is empty".into(),
            });
        }
        let mut record = self
            .spec
            .into_record(self.id, self.hash)
            .rehashed(self.hash, self.hash_version);
        record.revoked_at = self.revoked_at;
        record.set_last_used(self.last_used_at);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::api_key::KeyHasher;

    #[test]
    fn a_row_becomes_the_record_serde_would_make() {
        let id = KeyId::parse("aaaaaaaaaaaaaaaa").unwrap();
        let hash = KeyHasher::sha256().hash("k");
        let at = Timestamp::from_unix_secs(100);
        let record = KeyRecord::builder(id, hash, "alice")
            .roles("admin,,reader".split(','))
            .scopes(["orders:read"])
            .tenant(Some("acme"))
            .tier(None::<String>)
            .name(Some("ci"))
            .created_at(Some(at))
            .expires_at(None)
            .revoked_at(Some(at))
            .hash_version(3)
            .last_used_at(Some(at))
            .build()
            .unwrap();
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["roles"], serde_json::json!(["admin", "reader"]));
        assert_eq!(json["tenant"], "acme");
        assert!(json.get("tier").is_none());
        assert_eq!(record.revoked_at(), Some(at));
        assert_eq!(record.created_at(), Some(at));
        assert_eq!(json["hash_version"], 3);
        assert_eq!(record.last_used_at(), Some(at));
        let back: KeyRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.principal(), record.principal());
        assert_eq!(back.hash_version(), 3);
        assert_eq!(back.last_used_at(), Some(at));
        let empty = KeyRecord::builder(id, hash, "").build().unwrap_err();
        assert!(empty.to_string().contains("aaaaaaaaaaaaaaaa"), "{empty}");
    }
}

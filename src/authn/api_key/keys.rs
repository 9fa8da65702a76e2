//! [`ApiKeys`]: the key format and hashers of one key population.

use super::ApiKeyAuthenticator;
use super::format::{KeyFormat, KeyGenError, KeyId, SecretKey};
use super::hash::{Hashers, KeyHash, KeyHasher};
use super::record::{KeyRecord, KeySpec};
use super::store::KeyStore;
use crate::clock::Timestamp;
use crate::error::ConfigError;
use crate::rejection::AuthnReason;

/// A freshly generated key: the plaintext, to show its owner once, and the record to store.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The key. Not stored anywhere by palisade.
    pub plaintext: SecretKey,
    /// What to store.
    pub record: KeyRecord,
}

/// The key format and hasher of one key population: generates keys and builds authenticators
/// that check them.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    pub(super) format: KeyFormat,
    pub(super) hashers: Hashers,
}

impl ApiKeys {
    /// The default format (`pal_` prefix) and plain SHA-256 hashing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `format` (for a prefix of your own, e.g. `KeyFormat::new("acme")`).
    #[must_use]
    pub fn with_format(mut self, format: KeyFormat) -> Self {
        self.format = format;
        self
    }

    /// Uses `hasher` (e.g. [`KeyHasher::keyed`] with a server-side secret) for new keys and
    /// for records of the current hash version.
    #[must_use]
    pub fn with_hasher(mut self, hasher: KeyHasher) -> Self {
        self.hashers.current = hasher;
        self
    }

    /// Numbers the current hasher `version` (default [`DEFAULT_HASH_VERSION`](super::DEFAULT_HASH_VERSION)): new keys are
    /// stored with it, and records of this version are checked with the current hasher.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when a previous hasher was given this version: records of it
    /// could be checked by only one of the two.
    pub fn with_hash_version(mut self, version: u16) -> Result<Self, ConfigError> {
        if self.previous_versions().any(|v| v == version) {
            return Err(invalid_version(
                "ApiKeys::with_hash_version",
                "a previous hasher has this version; the current one needs its own",
            ));
        }
        self.hashers.version = version;
        Ok(self)
    }

    /// Also checks records of hash version `version` with `hasher`: a scheme used before the
    /// current one (an old pepper, or plain SHA-256 before a pepper was introduced). A key
    /// that proves itself against an older version is rehashed under the current scheme and
    /// handed to the store ([`KeyStore::update_hash`]) off the request path; once every key
    /// has moved, the previous hasher can go. A record of a version neither current nor
    /// previous is refused (`unknown_hash_version`).
    ///
    /// Each version is given once, and never the current one (the configuration file refuses
    /// both too).
    ///
    /// ```
    /// use palisade::authn::api_key::{ApiKeys, KeyHasher};
    ///
    /// # let (old_pepper, new_pepper) = ([1u8; 32], [2u8; 32]);
    /// let keys = ApiKeys::new()
    ///     .with_hasher(KeyHasher::keyed(&new_pepper)?)
    ///     .with_hash_version(3)?
    ///     .with_previous_hasher(2, KeyHasher::keyed(&old_pepper)?)?
    ///     .with_previous_hasher(1, KeyHasher::sha256())?;
    /// assert_eq!(keys.hash_version(), 3);
    /// # Ok::<(), palisade::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `version` is the current hasher's, or was given to a
    /// previous hasher already: records of it could be checked by only one of the two.
    pub fn with_previous_hasher(
        mut self,
        version: u16,
        hasher: KeyHasher,
    ) -> Result<Self, ConfigError> {
        const FIELD: &str = "ApiKeys::with_previous_hasher";
        if version == self.hashers.version {
            return Err(invalid_version(
                FIELD,
                "the current `hash_version` has this version; a previous hasher needs its own",
            ));
        }
        if self.previous_versions().any(|v| v == version) {
            return Err(invalid_version(FIELD, "this version is given twice"));
        }
        self.hashers.add_previous(version, hasher);
        Ok(self)
    }

    /// The version of the current hasher.
    #[must_use]
    pub fn hash_version(&self) -> u16 {
        self.hashers.version
    }

    /// The hasher that checks records of hash version `version`: the current one for its own
    /// version, else the previous one of that version, if any.
    #[must_use]
    pub fn hasher_of(&self, version: u16) -> Option<&KeyHasher> {
        self.hashers.of(version)
    }

    /// The versions of the previous hashers, in the order they were given.
    pub fn previous_versions(&self) -> impl Iterator<Item = u16> + '_ {
        self.hashers.previous.iter().map(|(v, _)| *v)
    }

    /// The key format.
    #[must_use]
    pub fn format(&self) -> &KeyFormat {
        &self.format
    }

    /// The current hasher.
    #[must_use]
    pub fn hasher(&self) -> &KeyHasher {
        &self.hashers.current
    }

    /// Generates a key for `spec`.
    ///
    /// # Errors
    ///
    /// [`KeyGenError`] when the operating system's random number generator fails.
    pub fn generate(&self, spec: KeySpec) -> Result<IssuedKey, KeyGenError> {
        let (id, plaintext) = self.format.generate()?;
        let hash = self.hashers.current.hash(plaintext.expose_secret());
        Ok(IssuedKey {
            plaintext,
            record: spec
                .into_record(id, hash)
                .rehashed(hash, self.hashers.version),
        })
    }

    /// Rolls a key: a new key for the same caller (subject, roles, scopes, tenant, tier, label,
    /// expiry), created at `now`, and the old record expiring at `overlap_until` at the latest,
    /// so clients can move to the new key while the old one still works. Store both; the old
    /// key stops working at `overlap_until` without anyone revoking it.
    ///
    /// ```
    /// use palisade::authn::api_key::{ApiKeys, KeySpec};
    /// use palisade::clock::Timestamp;
    ///
    /// let keys = ApiKeys::new();
    /// let old = keys.generate(KeySpec::new("ci").role("deployer"))?.record;
    /// let now = Timestamp::from_unix_secs(1_800_000_000);
    /// let week = Timestamp::from_unix_secs(1_800_000_000 + 7 * 86_400);
    /// let (new, old) = keys.reroll(&old, now, week)?;
    /// assert_eq!(new.record.principal().subject(), "ci");
    /// assert!(new.record.principal().has_role("deployer"));
    /// assert_eq!(old.expires_at(), Some(week));
    /// # Ok::<(), palisade::authn::api_key::KeyGenError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`KeyGenError`] when the operating system's random source fails.
    pub fn reroll(
        &self,
        old: &KeyRecord,
        now: Timestamp,
        overlap_until: Timestamp,
    ) -> Result<(IssuedKey, KeyRecord), KeyGenError> {
        let issued = self.generate(KeySpec::from_record(old).created_at(now))?;
        Ok((issued, old.clone().expiring_at(overlap_until)))
    }

    /// The id and stored hash of an existing key (to import keys, or to check one by hand).
    ///
    /// # Errors
    ///
    /// [`AuthnReason::MalformedKey`] or [`AuthnReason::BadChecksum`].
    pub fn hash(&self, key: &str) -> Result<(KeyId, KeyHash), AuthnReason> {
        let parsed = self.format.parse(key)?;
        Ok((*parsed.id(), self.hashers.current.hash(key)))
    }

    /// An authenticator for these keys, looking records up in `store`.
    pub fn authenticator<S: KeyStore>(&self, store: S) -> ApiKeyAuthenticator<S> {
        ApiKeyAuthenticator::new(self.clone(), store)
    }
}

/// The error of a hash version that would leave a hasher unused.
fn invalid_version(field: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

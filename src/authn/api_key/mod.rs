//! API keys: a recognisable format, hashed storage, constant-time checks.
//!
//! - [`ApiKeys`] bundles the [`KeyFormat`] and the [`KeyHasher`], so keys are generated and
//!   checked the same way: [`ApiKeys::generate`] returns the plaintext (once) and the
//!   [`KeyRecord`] to store.
//! - [`KeyStore`] is where records live ([`MemoryKeyStore`] built in); [`CachedKeyStore`]
//!   remembers a slower store's answers, invalidated across instances by a bus.
//! - [`ApiKeyAuthenticator`] reads the key from the request and checks it.
//!
//! # How a key is checked
//!
//! 1. Read it from `x-api-key` (configurable) or `Authorization: ApiKey <key>`; from the query
//!    string only if the host opted in. Two keys in one request are refused (400).
//! 2. Check prefix, length, alphabet and checksum: typos and guesses are refused here, with no
//!    store lookup.
//! 3. Look its id up in the store (bounded by a timeout; an error or a timeout refuses with
//!    503), hash the whole key with the hasher of the record's hash version, and compare
//!    hashes in constant time. An unknown id (or a version no hasher has) is compared against
//!    a dummy hash, so "unknown id" and "wrong secret" take the same steps and give the same
//!    answer (`invalid_key`): key ids cannot be probed.
//! 4. Only once the secret is proved does the client learn that its key is revoked or expired.
//! 5. A key proved against a previous hasher is rehashed under the current one, and every
//!    successful use is recorded; both reach the store later, in the background
//!    ([`KeyStore::update_hash`], [`KeyStore::record_last_used`]), never on the request path.
//!
//! # Example
//!
//! ```
//! use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
//!
//! let keys = ApiKeys::new();
//! let issued = keys.generate(KeySpec::new("alice").role("admin")).unwrap();
//! let store = MemoryKeyStore::new();
//! store.insert(issued.record.clone());
//! // Hand `issued.plaintext.expose_secret()` to alice, once. Then:
//! let authenticator = keys.authenticator(store);
//! # let _ = authenticator;
//! ```

mod cache_config;
mod cached;
mod format;
mod hash;
mod keys;
mod record;
mod row;
mod store;
mod upkeep;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tokio::time::error::Elapsed;

pub use cache_config::KeyCacheConfig;
pub use cached::{
    CachedKeyStore, CachedKeyStoreBuilder, DEFAULT_KEY_CACHE_CAPACITY, DEFAULT_KEY_CACHE_TTL,
};
pub use format::{KeyFormat, KeyGenError, KeyId, ParsedKey, SecretKey};
pub use hash::{DEFAULT_HASH_VERSION, KeyHash, KeyHasher};
pub use keys::{ApiKeys, IssuedKey};
pub use record::{KeyRecord, KeySpec};
pub use row::KeyRecordBuilder;
pub use store::{DynKeyStore, KeyStore, LastUsed, MemoryKeyStore, Rehash};
pub use upkeep::{
    DEFAULT_LAST_USED_BATCH, DEFAULT_LAST_USED_INTERVAL, DEFAULT_REHASH_QUEUE,
    DEFAULT_WRITE_TIMEOUT, UpkeepStats,
};

use super::{Authentication, Authenticator};
use crate::clock::{Clock, SystemClock};
use crate::rejection::{
    AuthnFailure, AuthnReason, ChallengeSet, Realm, Rejection, Scheme, UnavailableReason,
};
use upkeep::{Upkeep, UpkeepSettings};

/// The default header: `x-api-key`.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// The `Authorization` scheme for API keys: `Authorization: ApiKey <key>`.
pub const AUTHORIZATION_SCHEME: &str = "ApiKey";
/// The default store lookup timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where an [`ApiKeyAuthenticator`] looks for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Header(HeaderName),
    Authorization,
    Query(Box<str>),
}

/// Authenticates requests that carry an API key. See the [module docs](self).
pub struct ApiKeyAuthenticator<S, C = SystemClock> {
    keys: ApiKeys,
    store: Arc<S>,
    upkeep: Upkeep,
    clock: C,
    sources: Vec<Source>,
    timeout: Duration,
    realm: Box<str>,
    challenges: ChallengeSet,
    /// Compared against when the id is unknown, so both paths do the same work.
    dummy_hash: KeyHash,
}

impl<S, C> fmt::Debug for ApiKeyAuthenticator<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("keys", &self.keys)
            .field("sources", &self.sources)
            .field("timeout", &self.timeout)
            .field("realm", &self.realm)
            .field("upkeep", &self.upkeep.settings)
            .finish_non_exhaustive()
    }
}

impl<S: KeyStore> ApiKeyAuthenticator<S> {
    /// Checks keys of `keys` against `store`, reading them from `x-api-key` and
    /// `Authorization: ApiKey`, with a one-second store timeout and the system clock.
    pub fn new(keys: ApiKeys, store: S) -> Self {
        let dummy_hash = keys
            .hashers
            .current
            .hash("palisade dummy key: never matches a stored hash");
        let realm: Box<str> = "api".into();
        Self {
            challenges: ChallengeSet::new(Scheme::ApiKey, &realm)
                .unwrap_or_else(|_| unreachable!("the default realm is valid")),
            keys,
            store: Arc::new(store),
            upkeep: Upkeep::new(UpkeepSettings::default()),
            clock: SystemClock,
            sources: vec![Source::Header(DEFAULT_HEADER), Source::Authorization],
            timeout: DEFAULT_TIMEOUT,
            realm,
            dummy_hash,
        }
    }
}

impl<S: KeyStore, C: Clock> ApiKeyAuthenticator<S, C> {
    /// Reads keys from header `name` instead of `x-api-key` (`Authorization: ApiKey` stays).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.sources.retain(|s| !matches!(s, Source::Header(_)));
        self.sources.insert(0, Source::Header(name));
        self
    }

    /// Stops reading a dedicated header: only `Authorization: ApiKey` (and an opted-in query
    /// parameter) remain.
    #[must_use]
    pub fn without_header(mut self) -> Self {
        self.sources.retain(|s| !matches!(s, Source::Header(_)));
        self
    }

    /// Stops accepting `Authorization: ApiKey <key>` (leaving `Authorization` to bearer tokens).
    #[must_use]
    pub fn without_authorization_scheme(mut self) -> Self {
        self.sources.retain(|s| *s != Source::Authorization);
        self
    }

    /// Also accepts the key in query parameter `name`.
    ///
    /// # Security
    ///
    /// Query strings end up in access logs, browser history and `Referer` headers, so a key
    /// sent this way leaks easily (RFC 6750 §2.3 says the same of bearer tokens). Only for
    /// clients that cannot set headers.
    #[must_use]
    pub fn allow_query_param(mut self, name: &str) -> Self {
        self.sources.push(Source::Query(name.into()));
        self
    }

    /// Bounds each store lookup to `timeout` (default one second); past it the request is
    /// refused with 503.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the `realm` of the `WWW-Authenticate` challenge (default `api`), checked when
    /// the [`Realm`] was made: `.with_realm(Realm::from_static("orders"))`, or
    /// `Realm::new(text)?` for one read at run time.
    #[must_use]
    pub fn with_realm(mut self, realm: Realm) -> Self {
        self.challenges = ChallengeSet::for_realm(Scheme::ApiKey, &realm);
        self.realm = realm.into_boxed_str();
        self
    }

    /// Reads time from `clock` (for key expiry).
    pub fn with_clock<C2: Clock>(self, clock: C2) -> ApiKeyAuthenticator<S, C2> {
        ApiKeyAuthenticator {
            keys: self.keys,
            store: self.store,
            upkeep: self.upkeep,
            clock,
            sources: self.sources,
            timeout: self.timeout,
            realm: self.realm,
            challenges: self.challenges,
            dummy_hash: self.dummy_hash,
        }
    }

    /// Writes the last-used times recorded since the previous write every `interval` at the
    /// latest (default [`DEFAULT_LAST_USED_INTERVAL`], at least a millisecond), through
    /// [`KeyStore::record_last_used`].
    #[must_use]
    pub fn with_last_used_interval(mut self, interval: Duration) -> Self {
        self.upkeep = Upkeep::new(UpkeepSettings {
            interval,
            ..self.upkeep.settings
        });
        self
    }

    /// Writes the recorded last-used times as soon as `batch` keys have one (default
    /// [`DEFAULT_LAST_USED_BATCH`], at least 1); while a write is under way, uses of more than
    /// `batch` other keys are dropped and counted ([`UpkeepStats::last_used_dropped`]).
    #[must_use]
    pub fn with_last_used_batch(mut self, batch: usize) -> Self {
        self.upkeep = Upkeep::new(UpkeepSettings {
            batch,
            ..self.upkeep.settings
        });
        self
    }

    /// Lets at most `queue` rehashes wait for the store (default [`DEFAULT_REHASH_QUEUE`], at
    /// least 1); more are dropped and counted, and those keys are rehashed on a later use.
    #[must_use]
    pub fn with_rehash_queue(mut self, queue: usize) -> Self {
        self.upkeep = Upkeep::new(UpkeepSettings {
            queue,
            ..self.upkeep.settings
        });
        self
    }

    /// Bounds each background store write ([`KeyStore::update_hash`],
    /// [`KeyStore::record_last_used`]) to `timeout` (default [`DEFAULT_WRITE_TIMEOUT`]).
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.upkeep = Upkeep::new(UpkeepSettings {
            timeout,
            ..self.upkeep.settings
        });
        self
    }

    /// What the background writes (rehashes, last-used times) have done so far.
    #[must_use]
    pub fn upkeep_stats(&self) -> UpkeepStats {
        self.upkeep.stats()
    }

    /// The key store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key format and hasher.
    #[must_use]
    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    /// Finds the one key in the request: `Ok(None)` if there is none.
    fn extract<'a>(&self, parts: &'a Parts) -> Result<Option<&'a str>, AuthnReason> {
        let mut found: Option<&'a str> = None;
        let mut take = |value: &'a [u8]| -> Result<(), AuthnReason> {
            if found.is_some() {
                return Err(AuthnReason::MultipleCredentials);
            }
            found = Some(std::str::from_utf8(value).map_err(|_| AuthnReason::MalformedKey)?);
            Ok(())
        };
        for source in &self.sources {
            match source {
                Source::Header(name) => {
                    for v in parts.headers.get_all(name) {
                        take(v.as_bytes())?;
                    }
                }
                Source::Authorization => {
                    for v in parts.headers.get_all(AUTHORIZATION) {
                        if let Some(key) = strip_scheme(v.as_bytes()) {
                            take(key)?;
                        }
                    }
                }
                Source::Query(name) => {
                    let query = parts.uri.query().unwrap_or_default();
                    for pair in query.split('&') {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        if k == &**name {
                            take(v.as_bytes())?;
                        }
                    }
                }
            }
        }
        // RFC 9110 §5.6.3: optional whitespace is space and tab only; a Unicode space such as
        // U+00A0 is part of the value (and makes it a wrong key), never trimmed away.
        Ok(found.map(|k| k.trim_matches([' ', '\t'])))
    }

    fn refuse(&self, reason: AuthnReason) -> Authentication {
        Authentication::Refused(Rejection::Unauthenticated(AuthnFailure::new(
            reason,
            self.challenges.for_reason(reason),
        )))
    }
}

/// `future`, bounded by `timeout`. A store that answers at once (in memory) is polled once and
/// never arms a timer; a slower one gets the tokio timeout.
async fn bounded<F: Future>(timeout: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(timeout, future).await,
    }
}

/// `ApiKey <key>` → `<key>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn strip_scheme(value: &[u8]) -> Option<&[u8]> {
    let n = AUTHORIZATION_SCHEME.len();
    if value.len() > n
        && value[..n].eq_ignore_ascii_case(AUTHORIZATION_SCHEME.as_bytes())
        && value[n] == b' '
    {
        Some(&value[n + 1..])
    } else {
        None
    }
}

impl<S: KeyStore, C: Clock> ApiKeyAuthenticator<S, C> {
    /// The key presented, parsed: `Err` holds the answer when there is nothing to look up.
    fn presented<'p>(&self, parts: &'p Parts) -> Result<(&'p str, ParsedKey), Authentication> {
        let key = match self.extract(parts) {
            Ok(Some(key)) => key,
            Ok(None) => return Err(Authentication::Absent),
            Err(reason) => return Err(self.refuse(reason)),
        };
        match self.keys.format.parse(key) {
            Ok(parsed) => Ok((key, parsed)),
            Err(reason) => Err(self.refuse(reason)),
        }
    }

    /// The answer once the store answered `found` for the presented key's id (`Err(())`: it
    /// timed out).
    fn decide(
        &self,
        key: &str,
        parsed: &ParsedKey,
        found: Result<Result<Option<KeyRecord>, crate::error::StoreError>, ()>,
    ) -> Authentication {
        let record = match found {
            Ok(Ok(record)) => record,
            Ok(Err(error)) => {
                crate::telemetry::backend_error("key_store", "error");
                tracing::warn!(layer = "authn", key_id = %parsed.id(), error = %crate::error::Chain(&error), "api key store failed");
                return Authentication::Refused(Rejection::unavailable(
                    "authn",
                    UnavailableReason::KeyStoreError,
                ));
            }
            Err(()) => {
                crate::telemetry::backend_error("key_store", "timeout");
                tracing::warn!(layer = "authn", key_id = %parsed.id(), timeout = ?self.timeout, "api key store timed out");
                return Authentication::Refused(Rejection::unavailable(
                    "authn",
                    UnavailableReason::KeyStoreTimeout,
                ));
            }
        };
        let record = match self.verify(key, parsed.id(), record) {
            Ok(record) => record,
            Err(reason) => return self.refuse(reason),
        };
        if record.is_revoked() {
            return self.refuse(AuthnReason::KeyRevoked);
        }
        let now = self.clock.now();
        if record.is_expired_at(now) {
            return self.refuse(AuthnReason::KeyExpired);
        }
        let hashers = &self.keys.hashers;
        if record.hash_version() != hashers.version {
            let rehash = Rehash {
                id: *record.id(),
                from_version: record.hash_version(),
                hash: hashers.current.hash(key),
                version: hashers.version,
            };
            self.upkeep.rehash(&self.store, rehash);
        }
        self.upkeep.used(&self.store, *record.id(), now);
        Authentication::Authenticated(record.principal().clone())
    }

    /// The record, if `key` proves itself against it with the hasher of its hash version.
    fn verify(
        &self,
        key: &str,
        id: &KeyId,
        record: Option<KeyRecord>,
    ) -> Result<KeyRecord, AuthnReason> {
        // A store that answers with another id's record is treated as not knowing the id.
        let record = record.filter(|r| r.id() == id);
        let hashers = &self.keys.hashers;
        let hasher = match &record {
            Some(r) => hashers.of(r.hash_version()),
            None => Some(&hashers.current),
        };
        // Hashed and compared on every path (unknown id, unknown version: against the dummy
        // hash), so that all of them do the same work.
        let presented = hasher.unwrap_or(&hashers.current).hash(key);
        let expected = match (&record, hasher) {
            (Some(r), Some(_)) => r.hash(),
            _ => &self.dummy_hash,
        };
        let matches = presented.ct_eq(expected);
        match record {
            None => Err(AuthnReason::UnknownKey),
            Some(_) if hasher.is_none() => Err(AuthnReason::UnknownHashVersion),
            Some(record) if matches => Ok(record),
            Some(_) => Err(AuthnReason::WrongSecret),
        }
    }
}

impl<S: KeyStore, C: Clock> Authenticator for ApiKeyAuthenticator<S, C> {
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        (!matches!(self.extract(parts), Ok(None))).then_some("api_key")
    }

    async fn authenticate(&self, parts: &Parts) -> Authentication {
        let (key, parsed) = match self.presented(parts) {
            Ok(presented) => presented,
            Err(answer) => return answer,
        };
        let found = bounded(self.timeout, self.store.get(parsed.id()))
            .await
            .map_err(|_| ());
        self.decide(key, &parsed, found)
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        let (key, parsed) = match self.presented(parts) {
            Ok(presented) => presented,
            Err(answer) => return Some(answer),
        };
        let found = self.store.get_now(parsed.id())?;
        Some(self.decide(key, &parsed, Ok(found)))
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        out.push(self.challenges.plain().clone());
    }
}

#[cfg(test)]
mod tests;

//! The `api_keys.cache` section of a configuration file: a [`CachedKeyStore`] in front of the
//! host's key store.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::cached::{CachedKeyStore, DEFAULT_KEY_CACHE_CAPACITY, DEFAULT_KEY_CACHE_TTL};
use super::store::KeyStore;
use crate::invalidation::InvalidationBus;

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration such as `60s`")))
}

/// A bounded, time-limited cache in front of the key store, as
/// [`CachedKeyStore::builder`] builds it: the same settings in code and in a file.
///
/// ```yaml
/// api_keys:
///   cache:
///     ttl: 60s          # how long an answer (found or not) is served; default 60s
///     capacity: 10000   # how many key ids are remembered; default 10000
/// ```
///
/// In a stack built from a file, the cache sits in front of the host's store (given to
/// `Config::builder().key_store(...)`) or the file's own keys, and listens to the stack's
/// invalidation bus when there is one: revocations published by any instance drop its
/// answers at once, and while the bus is down answers live at most its safe lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct KeyCacheConfig {
    /// How long an answer is served.
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// How many key ids are remembered.
    pub capacity: usize,
}

impl Default for KeyCacheConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_KEY_CACHE_TTL,
            capacity: DEFAULT_KEY_CACHE_CAPACITY,
        }
    }
}

impl KeyCacheConfig {
    /// The cache these settings describe, in front of `store`, listening to `bus` if given.
    pub fn wrap<S: KeyStore, B: InvalidationBus>(
        &self,
        store: S,
        bus: Option<&B>,
    ) -> CachedKeyStore<S> {
        let mut builder = CachedKeyStore::builder(store)
            .ttl(self.ttl)
            .capacity(self.capacity);
        if let Some(bus) = bus {
            builder = builder.bus(bus);
        }
        builder.build()
    }
}

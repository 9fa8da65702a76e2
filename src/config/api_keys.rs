//! The `api_keys` section: the key format, hashers (current and previous), where keys are
//! read from, the background writes, and the stored records.

use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Deserializer};

use super::Config;
use crate::authn::api_key::{
    ApiKeyAuthenticator, ApiKeys, DEFAULT_HASH_VERSION, DEFAULT_LAST_USED_BATCH,
    DEFAULT_LAST_USED_INTERVAL, DEFAULT_REHASH_QUEUE, DEFAULT_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
    KeyCacheConfig, KeyFormat, KeyHasher, KeyRecord, KeyStore, MemoryKeyStore,
};
use crate::error::ConfigError;
use crate::rejection::Realm;

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration such as `60s`")))
}

/// The value of environment variable `var`, wiped from memory on drop.
fn env_secret(var: &str) -> Result<zeroize::Zeroizing<String>, std::env::VarError> {
    std::env::var(var).map(zeroize::Zeroizing::new)
}

/// A count or a duration that must not be zero.
fn positive<T: Default + PartialEq + std::fmt::Debug>(
    field: &'static str,
    value: T,
) -> Result<T, ConfigError> {
    if value == T::default() {
        return Err(ConfigError::Invalid {
            field,
            message: "must be more than zero".into(),
        });
    }
    Ok(value)
}

/// One item of `api_keys.previous_hashers`: a hashing scheme used before the current one.
///
/// ```yaml
/// api_keys:
///   pepper_env: PALISADE_PEPPER_2024      # the current scheme
///   hash_version: 3
///   previous_hashers:
///     - {version: 2, pepper_env: PALISADE_PEPPER_2023}
///     - {version: 1}                      # plain SHA-256, before any pepper
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PreviousHasherConfig {
    /// The hash version its records carry.
    pub version: u16,
    /// The environment variable holding its secret; absent: plain SHA-256.
    #[serde(default)]
    pub pepper_env: Option<String>,
}

impl PreviousHasherConfig {
    /// `keys` with item `i` of `previous_hashers` added; its errors name the item.
    fn add_to(&self, i: usize, keys: ApiKeys) -> Result<ApiKeys, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "api_keys.previous_hashers",
            message: format!("[{i}] (version {}): {message}", self.version),
        };
        let hasher = match &self.pepper_env {
            None => KeyHasher::sha256(),
            Some(var) => {
                let secret = env_secret(var).map_err(|_| {
                    invalid(format!(
                        "`pepper_env`: environment variable `{var}` is not set or not valid UTF-8"
                    ))
                })?;
                KeyHasher::keyed(secret.as_bytes())
                    .map_err(|e| invalid(format!("`pepper_env` (`{var}`): {e}")))?
            }
        };
        keys.with_previous_hasher(self.version, hasher)
            .map_err(|e| match e {
                ConfigError::Invalid { message, .. } => invalid(message),
                e => e,
            })
    }
}

/// The `api_keys` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// Whether API keys are accepted at all (default `true`); `false` for a service that takes
    /// bearer tokens only.
    pub enabled: bool,
    /// The key prefix (default `pal`).
    pub prefix: String,
    /// The header keys are read from (default `x-api-key`); `null` for none.
    pub header: Option<String>,
    /// Whether `Authorization: ApiKey <key>` is accepted (default `true`).
    pub authorization_scheme: bool,
    /// A query parameter keys are also read from. Off by default: query strings leak.
    pub query_param: Option<String>,
    /// The key store timeout in milliseconds (default 1000).
    pub timeout_ms: u64,
    /// The `WWW-Authenticate` realm (default `api`).
    pub realm: String,
    /// The environment variable holding the server-side hashing secret (at least 32 bytes).
    /// Unset: plain SHA-256.
    pub pepper_env: Option<String>,
    /// The version of the current hashing scheme (default 1): new keys are stored with it,
    /// and records of this version are checked with the current hasher.
    pub hash_version: u16,
    /// The hashing schemes used before the current one, each with its version: a key that
    /// proves itself against one of them is rehashed under the current scheme in the store.
    pub previous_hashers: Vec<PreviousHasherConfig>,
    /// How often last-used times are written to the store at the latest (default `60s`).
    #[serde(deserialize_with = "duration")]
    pub last_used_interval: Duration,
    /// How many keys' last-used times make a batch written at once (default 1000).
    pub last_used_batch: usize,
    /// How many rehashes may wait for the store (default 1024).
    pub rehash_queue: usize,
    /// The bound on each background store write (default `5s`).
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    /// The stored key records (hashes, never plaintext keys).
    pub keys: Vec<KeyRecord>,
    /// A cache in front of the key store (the host's, or these `keys`), invalidated by the
    /// stack's bus. Unset: every lookup asks the store.
    pub cache: Option<KeyCacheConfig>,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: "pal".into(),
            header: Some("x-api-key".into()),
            authorization_scheme: true,
            query_param: None,
            timeout_ms: u64::try_from(DEFAULT_TIMEOUT.as_millis()).unwrap_or(1000),
            realm: "api".into(),
            pepper_env: None,
            hash_version: DEFAULT_HASH_VERSION,
            previous_hashers: Vec::new(),
            last_used_interval: DEFAULT_LAST_USED_INTERVAL,
            last_used_batch: DEFAULT_LAST_USED_BATCH,
            rehash_queue: DEFAULT_REHASH_QUEUE,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            keys: Vec::new(),
            cache: None,
        }
    }
}

impl Config {
    /// The key format and hasher (reading the hashing secret from its environment variable).
    ///
    /// # Errors
    ///
    /// A bad prefix, a missing environment variable or a secret under 32 bytes, and in
    /// `previous_hashers` the same, or a version given twice or equal to `hash_version`.
    pub fn api_keys(&self) -> Result<ApiKeys, ConfigError> {
        let c = &self.api_keys;
        let mut keys = ApiKeys::new()
            .with_format(KeyFormat::new(&c.prefix)?)
            .with_hash_version(c.hash_version)?;
        if let Some(var) = &c.pepper_env {
            let secret = env_secret(var).map_err(|_| ConfigError::Env {
                field: "api_keys.pepper_env",
                name: var.clone(),
            })?;
            keys = keys.with_hasher(KeyHasher::keyed(secret.as_bytes())?);
        }
        for (i, previous) in c.previous_hashers.iter().enumerate() {
            keys = previous.add_to(i, keys)?;
        }
        Ok(keys)
    }

    /// An in-memory key store holding the configured records.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyRecord`] when two records share an id.
    pub fn key_store(&self) -> Result<MemoryKeyStore, ConfigError> {
        let store = MemoryKeyStore::new();
        for record in &self.api_keys.keys {
            if store.insert(record.clone()).is_some() {
                return Err(ConfigError::KeyRecord {
                    id: record.id().to_string(),
                    message: "the id is used twice".into(),
                });
            }
        }
        Ok(store)
    }

    /// The API-key authenticator of this configuration, over `store`.
    ///
    /// # Errors
    ///
    /// As [`api_keys`](Self::api_keys), plus invalid header names, realm, or no key source.
    pub fn authenticator<S: KeyStore>(
        &self,
        store: S,
    ) -> Result<ApiKeyAuthenticator<S>, ConfigError> {
        let c = &self.api_keys;
        let mut auth = self
            .api_keys()?
            .authenticator(store)
            .with_timeout(Duration::from_millis(c.timeout_ms))
            .with_last_used_interval(positive(
                "api_keys.last_used_interval",
                c.last_used_interval,
            )?)
            .with_last_used_batch(positive("api_keys.last_used_batch", c.last_used_batch)?)
            .with_rehash_queue(positive("api_keys.rehash_queue", c.rehash_queue)?)
            .with_write_timeout(positive("api_keys.write_timeout", c.write_timeout)?)
            .with_realm(Realm::new(&c.realm).map_err(|_| ConfigError::Invalid {
                field: "api_keys.realm",
                message: format!(
                    "`{}`: a realm is 1-64 visible ASCII characters without quotes or backslashes",
                    c.realm
                ),
            })?);
        auth = match &c.header {
            Some(name) => {
                auth.with_header(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    ConfigError::Invalid {
                        field: "api_keys.header",
                        message: format!("`{name}` is not a valid header name"),
                    }
                })?)
            }
            None => auth.without_header(),
        };
        if !c.authorization_scheme {
            auth = auth.without_authorization_scheme();
        }
        if let Some(param) = &c.query_param {
            auth = auth.allow_query_param(param);
        }
        if c.header.is_none() && !c.authorization_scheme && c.query_param.is_none() {
            return Err(ConfigError::Invalid {
                field: "api_keys",
                message: "no api key source: `header` is null, `authorization_scheme` is false \
                          and no `query_param` is set"
                    .into(),
            });
        }
        Ok(auth)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authn::api_key::KeySpec;
    use crate::authn::{Authentication, Authenticator};
    use crate::config::Format;

    #[tokio::test]
    async fn every_lifecycle_item_of_the_file_takes_effect() {
        let c = Config::parse(
            "api_keys:\n  hash_version: 2\n  previous_hashers: [{version: 1}]\n  \
             last_used_interval: 2s\n  last_used_batch: 7\n  rehash_queue: 3\n  write_timeout: 4s\n",
            Format::Yaml,
        )
        .unwrap();
        let keys = c.api_keys().unwrap();
        assert_eq!(keys.hash_version(), 2);
        assert_eq!(keys.previous_versions().collect::<Vec<_>>(), [1]);
        // A key stored before: plain SHA-256, version 1.
        let issued = ApiKeys::new().generate(KeySpec::new("alice")).unwrap();
        let id = *issued.record.id();
        let store = MemoryKeyStore::new();
        store.insert(issued.record);
        let auth = c.authenticator(store.clone()).unwrap();
        let settings = format!("{auth:?}");
        for item in ["interval: 2s", "batch: 7", "queue: 3", "timeout: 4s"] {
            assert!(settings.contains(item), "{item} in {settings}");
        }
        let parts = http::Request::get("/")
            .header("x-api-key", issued.plaintext.expose_secret())
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(matches!(
            auth.authenticate(&parts).await,
            Authentication::Authenticated(_)
        ));
        tokio::time::timeout(Duration::from_secs(5), async {
            while store.get_now(&id).unwrap().unwrap().unwrap().hash_version() != 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("rehashed under version 2");
    }
}

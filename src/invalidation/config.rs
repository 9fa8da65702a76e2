//! The `invalidation` section of a configuration file: the Redis bus every instance shares.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{DEFAULT_SAFE_LIFETIME, DynInvalidationBus};
use crate::error::ConfigError;
use crate::redis_spec::RedisConnection;

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration such as `5s`")))
}

fn default_channel() -> String {
    "palisade:invalidation".into()
}

const fn default_safe_lifetime() -> Duration {
    DEFAULT_SAFE_LIFETIME
}

const fn default_log_length() -> usize {
    super::DEFAULT_LOG_LENGTH
}

const fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

/// The `invalidation` section: revocations and policy changes published once on Redis
/// pub/sub, applied by every instance (feature `redis`).
///
/// ```yaml
/// invalidation:
///   redis:                              # the same items as a Redis quota.store
///     mode: cluster                     # single (default) | cluster | sentinel
///     url_env: PALISADE_REDIS_NODES     # the URLs (they may hold a password) stay out of the file
///   channel: myapp:invalidation         # default palisade:invalidation
///   safe_lifetime: 5s                   # cache lifetime while the bus is down
///   timeout: 1s
///   log_length: 10000                 # messages kept for instances that reconnect or start
/// ```
///
/// A host's own bus given to `ConfiguredBuilder::invalidation` replaces the section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InvalidationConfig {
    /// How to reach Redis: one server, a Cluster or Sentinel, TLS.
    pub redis: RedisConnection,
    /// The pub/sub channel every instance shares.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// How long caches serve an entry while the subscription is not confirmed.
    #[serde(default = "default_safe_lifetime", deserialize_with = "duration")]
    pub safe_lifetime: Duration,
    /// Bounds each publish, connection and ping.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How many messages the bus's log keeps for instances that reconnect or start
    /// (`RedisBusBuilder::log_length`); 0 keeps none.
    #[serde(default = "default_log_length")]
    pub log_length: usize,
}

/// The names of the `redis` items, for errors.
#[cfg(feature = "redis")]
const NAMES: crate::redis_spec::Names = crate::redis_spec::Names {
    items: crate::redis_spec::Items {
        url_env: "invalidation.redis.url_env",
        service: "invalidation.redis.service",
    },
    primary_url_env: "invalidation.redis.primary_url_env",
    tls_ca_file: "invalidation.redis.tls_ca_file",
    tls_client_cert_file: "invalidation.redis.tls_client_cert_file",
    tls_client_key_file: "invalidation.redis.tls_client_key_file",
};

impl InvalidationConfig {
    /// The section for `redis`, with the defaults.
    #[must_use]
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            channel: default_channel(),
            safe_lifetime: DEFAULT_SAFE_LIFETIME,
            timeout: default_timeout(),
            log_length: super::DEFAULT_LOG_LENGTH,
        }
    }

    /// Builds the bus the section describes (inside a tokio runtime), reading TLS files
    /// relative to the working directory; [`bus_in`](Self::bus_in) reads them beside the
    /// configuration file.
    ///
    /// # Errors
    ///
    /// As [`bus_in`](Self::bus_in).
    pub fn bus(&self) -> Result<Arc<dyn DynInvalidationBus>, ConfigError> {
        self.bus_in(None)
    }

    /// Builds the bus the section describes (inside a tokio runtime), reading TLS files
    /// relative to `base` (the configuration file's directory, `Config::base_dir`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] naming `invalidation.redis.url_env` (or `primary_url_env`) when
    /// the variable is unset; [`ConfigError::Invalid`] naming the `invalidation.redis` item
    /// the mode, the URLs or the other items contradict (several URLs for one server, Sentinel
    /// without `service`, a `service` or `primary_url_env` outside Sentinel, TLS files without
    /// `rediss://` URLs or with Sentinel, half a client certificate), or naming
    /// `invalidation.redis` as [`RedisBusBuilder::build`] does, or `invalidation` without the
    /// `redis` feature; [`ConfigError::OtherFile`] for a TLS file that cannot be read.
    ///
    /// [`RedisBusBuilder::build`]: super::RedisBusBuilder::build
    pub fn bus_in(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<Arc<dyn DynInvalidationBus>, ConfigError> {
        self.redis(base)
    }

    #[cfg(feature = "redis")]
    fn redis(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<Arc<dyn DynInvalidationBus>, ConfigError> {
        let resolved = self.redis.resolve(base, &NAMES)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::Invalid {
                field: "invalidation",
                message: "the bus's subscribing task needs a tokio runtime: build the stack \
                          inside one"
                    .into(),
            });
        }
        let bus = super::RedisBus::with_topology(resolved.topology, resolved.tls)
            .channel(self.channel.clone())
            .safe_lifetime(self.safe_lifetime)
            .timeout(self.timeout)
            .log_length(self.log_length)
            .build()?;
        Ok(Arc::new(bus))
    }

    #[cfg(not(feature = "redis"))]
    fn redis(
        &self,
        _: Option<&std::path::Path>,
    ) -> Result<Arc<dyn DynInvalidationBus>, ConfigError> {
        Err(ConfigError::Invalid {
            field: "invalidation",
            message: "a Redis bus needs palisade's `redis` feature".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_durations_and_defaults() {
        let c: InvalidationConfig = serde_json::from_str(
            r#"{"redis": {"url_env": "URL"}, "safe_lifetime": "2s", "timeout": "250ms"}"#,
        )
        .unwrap();
        assert_eq!(c.channel, "palisade:invalidation");
        assert_eq!(c.safe_lifetime, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(
            InvalidationConfig::new(RedisConnection::new("URL")).safe_lifetime,
            DEFAULT_SAFE_LIFETIME
        );
        let bad = serde_json::from_str::<InvalidationConfig>(
            r#"{"redis": {"url_env": "URL"}, "safe_lifetime": "soon"}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("soon"));
    }

    #[cfg(feature = "config")]
    #[test]
    fn the_invalidation_reference_in_docs_config_md_parses() {
        use crate::config::{Config, Format};
        let doc = include_str!("../../docs/config.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(5)
            .and_then(|rest| rest.split("```").next())
            .expect("a fifth yaml block in docs/config.md");
        let c = Config::parse(yaml, Format::Yaml).unwrap();
        let section = c.invalidation.expect("the section");
        assert_eq!(section.redis.url_env, "PALISADE_REDIS_URL");
        assert_eq!(section.channel, "orders-api:invalidation");
        // The variable is not set here: building names it.
        let err = section.bus().unwrap_err().to_string();
        assert!(err.contains("invalidation.redis.url_env"), "{err}");
    }
}

//! The `dpop` subsection of the `jwt` and `introspection` sections: the file form of
//! [`Dpop`](crate::authn::dpop::Dpop), one field per setter.

use std::time::Duration;

use serde::Deserialize;

use super::issuer::decode_secret;
use super::{SecretEncoding, env_secret, opt_duration};
use crate::authn::dpop::Dpop;
use crate::authn::jwt::Algorithm;
use crate::error::ConfigError;
use crate::redis_spec::RedisMode;

/// `dpop:` — DPoP-bound tokens (RFC 9449) are accepted with their proofs.
///
/// ```yaml
/// dpop:
///   public_origin: https://api.example.com
///   algorithms: [ES256, EdDSA]
///   max_age: 60s
///   leeway: 5s
///   replay_capacity: 1000000
///   replay_redis_url_env: DPOP_REDIS_URL   # share the replay cache between instances
///   replay_redis_mode: single              # or cluster (seed URLs), sentinel (sentinels' URLs)
///   # replay_redis_tls_ca_file: redis-ca.pem  # rediss:// signed by a private CA
///   # replay_redis_tls_client_cert_file: client.pem  # with replay_redis_tls_client_key_file
///   nonce_lifetime: 5m                     # require server nonces
///   nonce_secret_env: DPOP_NONCE_SECRET    # shared by the instances
///   nonce_secret_encoding: hex
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DpopConfig {
    /// The URI clients reach the API at (proofs name it in `htu`).
    pub public_origin: String,
    /// Proof algorithms accepted (default: every asymmetric one).
    #[serde(default)]
    pub algorithms: Option<Vec<Algorithm>>,
    /// How long after its `iat` a proof is accepted (default `60s`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_age: Option<Duration>,
    /// Clock skew tolerated on `iat` and nonces (default `5s`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub leeway: Option<Duration>,
    /// Proofs remembered per window in memory (default 1,000,000).
    #[serde(default)]
    pub replay_capacity: Option<usize>,
    /// The variable holding a `redis://` URL: proofs are remembered there (feature `redis`).
    #[serde(default)]
    pub replay_redis_url_env: Option<String>,
    /// How that Redis is reached: `single` (default), `cluster` (the variable lists seed
    /// nodes' URLs) or `sentinel` (it lists the sentinels' URLs, separated by commas).
    #[serde(default)]
    pub replay_redis_mode: Option<RedisMode>,
    /// For `replay_redis_mode: sentinel`: the name the sentinels monitor the primary under.
    #[serde(default)]
    pub replay_redis_service: Option<String>,
    /// For `replay_redis_mode: sentinel`: the variable holding
    /// `redis://[user:]password@any/db`, how to log in to the primary.
    #[serde(default)]
    pub replay_redis_primary_url_env: Option<String>,
    /// For `rediss://` servers signed by a private CA: the CA certificates (PEM), read relative
    /// to the configuration file's directory (feature `redis-tls`; not with `sentinel`).
    #[serde(default)]
    pub replay_redis_tls_ca_file: Option<std::path::PathBuf>,
    /// A client certificate chain (PEM) for `rediss://` servers that ask for one, with
    /// [`replay_redis_tls_client_key_file`](Self::replay_redis_tls_client_key_file).
    #[serde(default)]
    pub replay_redis_tls_client_cert_file: Option<std::path::PathBuf>,
    /// The private key (PEM) of
    /// [`replay_redis_tls_client_cert_file`](Self::replay_redis_tls_client_cert_file).
    #[serde(default)]
    pub replay_redis_tls_client_key_file: Option<std::path::PathBuf>,
    /// Requires server nonces, each accepted this long.
    #[serde(default, deserialize_with = "opt_duration")]
    pub nonce_lifetime: Option<Duration>,
    /// The variable holding the nonce secret (at least 32 bytes once decoded).
    #[serde(default)]
    pub nonce_secret_env: Option<String>,
    /// How the nonce secret is written: `text` (default), `base64`, `base64url` or `hex`.
    #[serde(default)]
    pub nonce_secret_encoding: SecretEncoding,
    /// Only sender-constrained tokens pass: a token bound to neither a key nor a certificate
    /// is refused.
    #[serde(default)]
    pub require_bound_tokens: bool,
}

impl DpopConfig {
    /// The names of the proof algorithms accepted.
    pub(crate) fn algorithm_names(&self) -> Vec<String> {
        match &self.algorithms {
            Some(algs) => algs.iter().map(|a| a.name().to_owned()).collect(),
            None => crate::authn::dpop::ASYMMETRIC
                .iter()
                .map(|a| a.name().to_owned())
                .collect(),
        }
    }

    /// The [`Dpop`] these settings describe.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] for a variable that is not set; [`ConfigError::Invalid`] for a
    /// secret that does not decode, a Redis URL without the `redis` feature or one the `redis`
    /// crate refuses.
    pub fn dpop(&self) -> Result<Dpop, ConfigError> {
        self.dpop_in(None)
    }

    /// [`dpop`](Self::dpop), reading the replay Redis's TLS files relative to `base` (the
    /// configuration file's directory, `Config::base_dir`).
    ///
    /// # Errors
    ///
    /// As [`dpop`](Self::dpop); and [`ConfigError::OtherFile`] for a TLS file that cannot be
    /// read, [`ConfigError::Invalid`] for TLS files without `rediss://` URLs, with `sentinel`,
    /// or half a client certificate.
    pub fn dpop_in(&self, base: Option<&std::path::Path>) -> Result<Dpop, ConfigError> {
        let mut d = Dpop::new(&self.public_origin);
        if let Some(v) = &self.algorithms {
            d = d.algorithms(v.iter().copied());
        }
        if let Some(v) = self.max_age {
            d = d.max_age(v);
        }
        if let Some(v) = self.leeway {
            d = d.leeway(v);
        }
        if let Some(v) = self.replay_capacity {
            d = d.replay_capacity(v);
        }
        if let Some(var) = &self.replay_redis_url_env {
            if self.replay_capacity.is_some() {
                return Err(ConfigError::Invalid {
                    field: "dpop.replay_capacity",
                    message: "the replay cache is in Redis (replay_redis_url_env), not in memory"
                        .into(),
                });
            }
            d = self.redis_replay(d, var, base)?;
        } else if self.replay_redis_mode.is_some()
            || self.replay_redis_service.is_some()
            || self.replay_redis_primary_url_env.is_some()
            || self.replay_redis_tls_ca_file.is_some()
            || self.replay_redis_tls_client_cert_file.is_some()
            || self.replay_redis_tls_client_key_file.is_some()
        {
            return Err(ConfigError::Invalid {
                field: "dpop.replay_redis_url_env",
                message: "replay_redis_mode, replay_redis_service, replay_redis_primary_url_env and the replay_redis_tls files need the Redis URLs' variable"
                    .into(),
            });
        }
        if let Some(v) = self.nonce_lifetime {
            d = d.require_nonce(v);
        }
        if let Some(var) = &self.nonce_secret_env {
            let secret = env_secret("dpop.nonce_secret_env", var)?;
            let bytes = decode_secret(
                "dpop.nonce_secret_encoding",
                var,
                &secret,
                self.nonce_secret_encoding,
            )?;
            d = d.nonce_secret(bytes.to_vec());
        }
        if self.require_bound_tokens {
            d = d.require_bound_tokens();
        }
        Ok(d)
    }
}

impl DpopConfig {
    /// The Redis replay store: its variables and TLS files (relative to `base`) read and
    /// checked as `invalidation.redis`'s are, every error naming its `dpop` item.
    #[cfg(feature = "redis")]
    fn redis_replay(
        &self,
        d: Dpop,
        var: &str,
        base: Option<&std::path::Path>,
    ) -> Result<Dpop, ConfigError> {
        use crate::authn::dpop::RedisReplayStore;
        use crate::redis_spec::{Items, Names, RedisConnection};
        const NAMES: Names = Names {
            items: Items {
                url_env: "dpop.replay_redis_url_env",
                service: "dpop.replay_redis_service",
            },
            primary_url_env: "dpop.replay_redis_primary_url_env",
            tls_ca_file: "dpop.replay_redis_tls_ca_file",
            tls_client_cert_file: "dpop.replay_redis_tls_client_cert_file",
            tls_client_key_file: "dpop.replay_redis_tls_client_key_file",
        };
        let mode = self.replay_redis_mode.unwrap_or_default();
        if self.replay_redis_primary_url_env.is_some() && mode != RedisMode::Sentinel {
            return Err(ConfigError::Invalid {
                field: "dpop.replay_redis_primary_url_env",
                message: "the primary's login is for `replay_redis_mode: sentinel` only".into(),
            });
        }
        let mut c = RedisConnection::new(var);
        c.mode = mode;
        c.service.clone_from(&self.replay_redis_service);
        c.primary_url_env
            .clone_from(&self.replay_redis_primary_url_env);
        c.tls_ca_file.clone_from(&self.replay_redis_tls_ca_file);
        c.tls_client_cert_file
            .clone_from(&self.replay_redis_tls_client_cert_file);
        c.tls_client_key_file
            .clone_from(&self.replay_redis_tls_client_key_file);
        let store = RedisReplayStore::with_resolved(c.resolve(base, &NAMES)?)?;
        Ok(d.replay_store(store))
    }

    #[cfg(not(feature = "redis"))]
    #[allow(clippy::unused_self)]
    fn redis_replay(
        &self,
        _: Dpop,
        _: &str,
        _: Option<&std::path::Path>,
    ) -> Result<Dpop, ConfigError> {
        Err(ConfigError::Invalid {
            field: "dpop.replay_redis_url_env",
            message: "a Redis replay cache needs palisade's `redis` feature".into(),
        })
    }
}

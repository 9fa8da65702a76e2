//! The `quota` section of a configuration file (feature `config`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::layer::{QuotaLayer, RateLimitHeaders};
use super::limit::Limit;
use super::memory::{DEFAULT_MAX_KEYS, MemoryStore};
use super::policy::QuotaPolicy;
use super::rule::{Counting, KeyBy, QuotaRule, TierBy};
use super::store::{AnyQuotaStore, OnOutage};
use crate::error::ConfigError;
use crate::redis_spec::RedisMode;

/// The `quota` section: named policies, the rules of the two stages, route costs, the fields
/// sent and the store. See `docs/config.md`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Where counters live (default: memory).
    #[serde(default)]
    pub store: StoreConfig,
    /// More stores by name, for the rules that choose one with `store: <name>`.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
    /// Named policies: each a list of limits.
    #[serde(default)]
    pub policies: BTreeMap<String, Vec<Limit>>,
    /// Rules checked before authentication (per client address, route or failed
    /// authentication).
    #[serde(default)]
    pub clients: Vec<RuleConfig>,
    /// Rules checked after authentication (per key, subject or tenant, with tiers).
    #[serde(default)]
    pub principals: Vec<RuleConfig>,
    /// Routes that cost more than one unit.
    #[serde(default)]
    pub costs: Vec<CostConfig>,
    /// Which rate-limit fields to send.
    #[serde(default)]
    pub headers: RateLimitHeaders,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleConfig {
    /// What the rule keys by.
    pub key: KeyBy,
    /// The policy (a name from `policies`) of callers without a tier.
    pub policy: String,
    /// Tier name → policy name.
    #[serde(default)]
    pub tiers: BTreeMap<String, String>,
    /// How tiers are chosen.
    #[serde(default)]
    pub tier_by: TierBy,
    /// What the rule counts (default: every request).
    #[serde(default)]
    pub count: Counting,
    /// Limits the rule to these route templates (default: every route).
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Report only: count and report would-be refusals, never refuse (default false).
    #[serde(default)]
    pub shadow: bool,
    /// The store the rule counts in: a name from `stores` (default: `store`).
    #[serde(default)]
    pub store: Option<String>,
    /// Client networks the rule does not apply to.
    #[serde(default, deserialize_with = "crate::client_ip::deserialize_nets")]
    pub exempt: Vec<ipnet::IpNet>,
    /// IPv4 prefix length for `client_ip` keys (default 32).
    #[serde(default)]
    pub ipv4_prefix: Option<u8>,
    /// IPv6 prefix length for `client_ip` keys (default 64).
    #[serde(default)]
    pub ipv6_prefix: Option<u8>,
}

/// A route cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CostConfig {
    /// The route template.
    pub path: String,
    /// Its cost in units.
    pub cost: u64,
}

/// The `store` subsection: `{type: memory, max_keys: 100000}` or `{type: redis, url_env: …}`.
// Read once at startup: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields, rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoreConfig {
    /// In memory, bounded.
    Memory {
        /// The most keys held (default 100,000).
        #[serde(default = "max_keys")]
        max_keys: usize,
    },
    /// Redis (feature `redis`).
    Redis(RedisConfig),
}

const fn max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::Memory {
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// The Redis store settings. The URL comes from an environment variable: it may hold a
/// password, and secrets never sit in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    /// How Redis is reached: `single` (default), `cluster` or `sentinel`.
    #[serde(default)]
    pub mode: RedisMode,
    /// The environment variable holding the `redis://` URL; for `cluster`, the seed nodes'
    /// URLs and for `sentinel` the sentinels' URLs, separated by commas.
    pub url_env: String,
    /// For `mode: sentinel`: the name the sentinels monitor the primary under.
    #[serde(default)]
    pub service: Option<String>,
    /// For `mode: sentinel`: the variable holding `redis://[user:]password@any/db`, how to
    /// log in to the primary (its host is not used: the sentinels name the primary).
    #[serde(default)]
    pub primary_url_env: Option<String>,
    /// Key prefix (default `palisade:`).
    #[serde(default = "prefix")]
    pub prefix: String,
    /// Timeout per check in milliseconds (default 100).
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// `fail-closed` (default), `fail-open` or `{local: {instances: N}}`.
    #[serde(default)]
    pub on_outage: OnOutage,
    /// For a `rediss://` URL signed by a private CA: the CA certificates (PEM), read relative
    /// to the configuration file's directory (feature `redis-tls`). Without it the Mozilla
    /// roots are trusted.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// A client certificate chain (PEM) to present to `rediss://` servers that ask for one
    /// (`tls-auth-clients yes`), with [`tls_client_key_file`](Self::tls_client_key_file); read
    /// relative to the configuration file's directory (feature `redis-tls`).
    #[serde(default)]
    pub tls_client_cert_file: Option<std::path::PathBuf>,
    /// The private key (PEM) of [`tls_client_cert_file`](Self::tls_client_cert_file).
    #[serde(default)]
    pub tls_client_key_file: Option<std::path::PathBuf>,
    /// With `on_outage: {local: …}`: the most keys the local fallback holds (default
    /// 100,000).
    #[serde(default)]
    pub local_max_keys: Option<usize>,
    /// The environment variable holding the secret (at least 32 bytes, the same on every
    /// instance) that keys the hash naming each identity's Redis keys, so listing the keys
    /// reveals no subject or address even to someone who can guess them.
    #[serde(default)]
    pub key_secret_env: Option<String>,
}

fn prefix() -> String {
    "palisade:".into()
}

const fn timeout_ms() -> u64 {
    100
}

/// The two quota stages a configuration builds.
pub(crate) struct Stages {
    pub(crate) clients: QuotaLayer<AnyQuotaStore>,
    pub(crate) principals: QuotaLayer<AnyQuotaStore>,
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid {
        field: "quota",
        message,
    }
}

impl QuotaConfig {
    /// The configured store. A Redis store must be built inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// A missing URL variable, bad Redis settings, or Redis without the `redis` feature.
    pub fn store(&self) -> Result<AnyQuotaStore, ConfigError> {
        self.store_in(None)
    }

    /// The configured store, with files named relative to `base` (the configuration file's
    /// directory).
    pub(crate) fn store_in(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<AnyQuotaStore, ConfigError> {
        store_of(&self.store, base)
    }

    /// The named policies, compiled.
    ///
    /// # Errors
    ///
    /// Any invalid limit or policy.
    pub fn policies(&self) -> Result<BTreeMap<String, QuotaPolicy>, ConfigError> {
        self.policies
            .iter()
            .map(|(name, limits)| {
                Ok((
                    name.clone(),
                    QuotaPolicy::try_new(name.as_str(), limits.iter().cloned())?,
                ))
            })
            .collect()
    }

    /// Builds both stages on the section's stores.
    #[cfg(test)]
    pub(crate) fn stages(&self, base: Option<&std::path::Path>) -> Result<Stages, ConfigError> {
        self.stages_with(base, None, Vec::new())
    }

    /// Both stages, over `store` when the host gives one (else the section's own), and over
    /// the named stores of `stores:` and of the host (`named`, which take precedence).
    pub(crate) fn stages_with(
        &self,
        base: Option<&std::path::Path>,
        store: Option<AnyQuotaStore>,
        named: Vec<(String, AnyQuotaStore)>,
    ) -> Result<Stages, ConfigError> {
        let store = match store {
            Some(store) => store,
            None => self.store_in(base)?,
        };
        let named = self.named_stores(base, named)?;
        let policies = self.policies()?;
        let stage = |rules: &[RuleConfig], before_authn: bool| {
            if rules.is_empty() {
                return Ok(QuotaLayer::empty(store.clone()));
            }
            let mut b = QuotaLayer::builder(store.clone()).headers(self.headers);
            for c in &self.costs {
                b = b.cost(c.path.clone(), c.cost);
            }
            for r in rules {
                let rule = rule(r, &policies)?;
                if before_authn && rule.key().needs_principal() {
                    return Err(invalid(format!(
                        "rule `{}` keys by the principal: put it under `principals`",
                        r.policy
                    )));
                }
                b = b.rule(rule);
            }
            // The named stores this stage's rules choose (each store may serve both stages).
            for (name, s) in &named {
                if rules.iter().any(|r| r.store.as_deref() == Some(name)) {
                    b = b.store(name.as_str(), s.clone());
                }
            }
            b.build()
        };
        Ok(Stages {
            clients: stage(&self.clients, true)?,
            principals: stage(&self.principals, false)?,
        })
    }

    /// The named stores: the file's `stores`, replaced or joined by the host's. Each must be
    /// chosen by a rule, and each rule's choice must exist.
    fn named_stores(
        &self,
        base: Option<&std::path::Path>,
        host: Vec<(String, AnyQuotaStore)>,
    ) -> Result<Vec<(String, AnyQuotaStore)>, ConfigError> {
        let mut named: Vec<(String, AnyQuotaStore)> = Vec::new();
        for (name, config) in &self.stores {
            if host.iter().any(|(n, _)| n == name) {
                continue;
            }
            let store = store_of(config, base).map_err(|e| match e {
                ConfigError::Invalid { message, .. } => {
                    invalid(format!("stores.{name}: {message}"))
                }
                e => e,
            })?;
            named.push((name.clone(), store));
        }
        named.extend(host);
        let rules = self.clients.iter().chain(&self.principals);
        for (name, _) in &named {
            if !rules.clone().any(|r| r.store.as_deref() == Some(name)) {
                return Err(invalid(format!("store `{name}` is chosen by no rule")));
            }
        }
        for r in rules {
            if let Some(name) = &r.store
                && !named.iter().any(|(n, _)| n == name)
            {
                return Err(invalid(format!(
                    "rule of policy `{}` chooses store `{name}`, which `stores` does not name",
                    r.policy
                )));
            }
        }
        Ok(named)
    }
}

/// The store `config` describes, with files named relative to `base`.
fn store_of(
    config: &StoreConfig,
    base: Option<&std::path::Path>,
) -> Result<AnyQuotaStore, ConfigError> {
    match config {
        StoreConfig::Memory { max_keys } => {
            Ok(AnyQuotaStore::Memory(MemoryStore::with_max_keys(*max_keys)))
        }
        StoreConfig::Redis(r) => redis_store(r, base),
    }
}

fn rule(
    r: &RuleConfig,
    policies: &BTreeMap<String, QuotaPolicy>,
) -> Result<QuotaRule, ConfigError> {
    let policy = |name: &str| {
        policies
            .get(name)
            .cloned()
            .ok_or_else(|| invalid(format!("unknown policy `{name}`")))
    };
    let key = match (&r.key, r.ipv4_prefix, r.ipv6_prefix) {
        // The prefixes are the rule's own fields in the file.
        (KeyBy::ClientIp { .. }, v4, v6) => KeyBy::ClientIp {
            v4_prefix: v4.unwrap_or(32),
            v6_prefix: v6.unwrap_or(64),
        },
        (key, None, None) => key.clone(),
        (_, _, _) => {
            return Err(invalid(format!(
                "rule of policy `{}`: `ipv4_prefix` and `ipv6_prefix` apply to `key: client_ip` only",
                r.policy
            )));
        }
    };
    let mut rule = QuotaRule::new(key, policy(&r.policy)?).tier_by(r.tier_by);
    for (tier, name) in &r.tiers {
        rule = rule.tier(tier.as_str(), policy(name)?);
    }
    if let Some(routes) = &r.routes {
        rule = rule.on_routes(routes.iter().map(String::as_str));
    }
    if r.shadow {
        rule = rule.shadow();
    }
    if let Some(store) = &r.store {
        rule = rule.in_store(store.as_str());
    }
    if !r.exempt.is_empty() {
        rule = rule.exempt(r.exempt.iter().copied());
    }
    rule = rule.counting(r.count.clone());
    Ok(rule)
}

/// The names of the `quota.store` items, for errors.
#[cfg(feature = "redis")]
const NAMES: crate::redis_spec::Names = crate::redis_spec::Names {
    items: crate::redis_spec::Items {
        url_env: "quota.store.url_env",
        service: "quota.store.service",
    },
    primary_url_env: "quota.store.primary_url_env",
    tls_ca_file: "quota.store.tls_ca_file",
    tls_client_cert_file: "quota.store.tls_client_cert_file",
    tls_client_key_file: "quota.store.tls_client_key_file",
};

#[cfg(feature = "redis")]
impl RedisConfig {
    /// How the store reaches Redis: the items it shares with `invalidation.redis`.
    fn connection(&self) -> crate::redis_spec::RedisConnection {
        let mut c = crate::redis_spec::RedisConnection::new(self.url_env.clone());
        c.mode = self.mode;
        c.service.clone_from(&self.service);
        c.primary_url_env.clone_from(&self.primary_url_env);
        c.tls_ca_file.clone_from(&self.tls_ca_file);
        c.tls_client_cert_file
            .clone_from(&self.tls_client_cert_file);
        c.tls_client_key_file.clone_from(&self.tls_client_key_file);
        c
    }
}

/// The Redis store of `r`: its variables and TLS files (relative to `base`) read and checked
/// as `invalidation.redis`'s are, every error naming its `quota.store` item.
#[cfg(feature = "redis")]
fn redis_store(
    r: &RedisConfig,
    base: Option<&std::path::Path>,
) -> Result<AnyQuotaStore, ConfigError> {
    let resolved = r.connection().resolve(base, &NAMES)?;
    let mut builder = super::redis::RedisStore::with_resolved(resolved)
        .prefix(r.prefix.clone())
        .timeout(std::time::Duration::from_millis(r.timeout_ms))
        .on_outage(r.on_outage);
    if let Some(n) = r.local_max_keys {
        builder = builder.local_max_keys(n);
    }
    if let Some(var) = &r.key_secret_env {
        let secret = std::env::var(var).map_err(|_| ConfigError::Env {
            field: "quota.store.key_secret_env",
            name: var.clone(),
        })?;
        builder = builder.key_secret(zeroize::Zeroizing::new(secret).as_bytes());
    }
    Ok(AnyQuotaStore::Redis(builder.build()?))
}

#[cfg(not(feature = "redis"))]
fn redis_store(_: &RedisConfig, _: Option<&std::path::Path>) -> Result<AnyQuotaStore, ConfigError> {
    Err(invalid(
        "the redis store needs palisade's `redis` feature".into(),
    ))
}

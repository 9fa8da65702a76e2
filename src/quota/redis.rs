//! [`RedisStore`]: quotas shared by every instance through Redis (feature `redis`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::limit::{Kind, LimitState, MAX_LIMITS, Verdict};
use super::memory::MemoryStore;
use super::policy::QuotaKey;
use super::store::{OnOutage, QuotaMode, QuotaStore, StoreStats};
use crate::clock::Timestamp;
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::redis_link::{Link, Topology};

/// The check, in one script so that it is atomic: GCRA cells and window counters of one key,
/// all tested, then all written or none. Times are Unix microseconds (exact in a Lua double).
///
/// KEYS: one per limit. ARGV: now, cost, consume (1/0), then per limit `kind a b c`:
/// `r T burst 0` for a rate (T = emission interval), `q max 0 end` for a window quota whose
/// key already names the window. Returns `allowed, retry` then `remaining, reset, exceeded`
/// per limit.
const SCRIPT: &str = include_str!("redis.lua");

/// Counters in Redis, shared by every instance: one atomic Lua script per check (GCRA and
/// windows of a key together), keys expiring as soon as their state equals a fresh one, and
/// every key of one identity under one hash tag, so it works on Redis Cluster.
///
/// The connection reconnects by itself; every check is bounded by the
/// [`timeout`](RedisStoreBuilder::timeout) and, past it, [`OnOutage`] decides.
///
/// Instances compute time from their own clocks (keep them NTP-synchronised): a skew of `d`
/// between two instances lets a caller who alternates between them gain at most `d` worth of
/// rate.
///
/// ```no_run
/// use std::time::Duration;
/// use palisade::quota::{OnOutage, RedisStore};
///
/// # async fn run() -> Result<(), palisade::ConfigError> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .timeout(Duration::from_millis(50))
///     .on_outage(OnOutage::Local { instances: 4 })
///     .build()?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    script: redis::Script,
    prefix: Box<str>,
    timeout: Duration,
    on_outage: OnOutage,
    local: MemoryStore,
    down: AtomicBool,
    failures: AtomicU64,
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    topology: Topology,
    sentinel_primary: Option<String>,
    prefix: String,
    timeout: Duration,
    on_outage: OnOutage,
    local_max_keys: usize,
    #[cfg(feature = "redis-tls")]
    tls: Option<redis::TlsCertificates>,
}

impl fmt::Debug for RedisStoreBuilder {
    // The URL may hold a password, and a client key is a secret: neither is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RedisStoreBuilder");
        d.field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_outage", &self.on_outage)
            .field("local_max_keys", &self.local_max_keys);
        #[cfg(feature = "redis-tls")]
        d.field("custom_tls", &self.tls.is_some());
        d.finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Trusts the CA certificates in `pem` (PEM) for a `rediss://` server, instead of the
    /// Mozilla roots: for a Redis whose certificate a private CA signed. Feature `redis-tls`.
    #[cfg(feature = "redis-tls")]
    pub fn tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls
            .get_or_insert(redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            })
            .root_cert = Some(pem.into());
        self
    }

    /// Presents this client certificate chain and key (PEM) to a `rediss://` server that asks
    /// for one (`tls-auth-clients yes`). Feature `redis-tls`.
    #[cfg(feature = "redis-tls")]
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls
            .get_or_insert(redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            })
            .client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// For a store built with [`RedisStore::sentinel`]: logs in to the primary with the
    /// username, password and database of `url` (`redis://[user:]password@any/db`; the host is
    /// not used, the sentinels name the primary), over TLS when it is `rediss://`. Without it
    /// the primary is reached without credentials, on database 0. Any other store refuses it at
    /// `build()`.
    pub fn sentinel_primary_url(mut self, url: impl Into<String>) -> Self {
        self.sentinel_primary = Some(url.into());
        self
    }

    /// Prefixes every key (default `palisade:`), to share a Redis with other data.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds each check, reconnection included (default 100 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis does not answer in time (default [`OnOutage::FailClosed`]).
    pub fn on_outage(mut self, on_outage: OnOutage) -> Self {
        self.on_outage = on_outage;
        self
    }

    /// The key bound of the local fallback store of [`OnOutage::Local`].
    pub fn local_max_keys(mut self, max_keys: usize) -> Self {
        self.local_max_keys = max_keys;
        self
    }

    /// Builds the store. It connects on first use, so it can start while Redis is down (the
    /// outage policy then applies). Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a URL the `redis` crate refuses, a zero timeout or
    /// `Local { instances: 0 }`.
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "quota.store.redis",
            message,
        };
        if self.timeout.is_zero() {
            return Err(invalid("the timeout must be positive".into()));
        }
        if self.on_outage == (OnOutage::Local { instances: 0 }) {
            return Err(invalid("local fallback needs at least one instance".into()));
        }
        let mut topology = self.topology.clone();
        match (&mut topology, &self.sentinel_primary) {
            (Topology::Sentinel { primary, .. }, Some(url)) => *primary = Some(url.clone()),
            (_, Some(_)) => {
                return Err(invalid(
                    "sentinel_primary_url is for a store built with RedisStore::sentinel".into(),
                ));
            }
            _ => {}
        }
        #[cfg(feature = "redis-tls")]
        let tls = self.tls.clone();
        #[cfg(not(feature = "redis-tls"))]
        let tls = None;
        let link = Link::new(&topology, tls, self.timeout, "quota.store.redis")?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                link,
                script: redis::Script::new(SCRIPT),
                prefix: self.prefix.into(),
                timeout: self.timeout,
                on_outage: self.on_outage,
                local: MemoryStore::with_max_keys(self.local_max_keys),
                down: AtomicBool::new(false),
                failures: AtomicU64::new(0),
            }),
        })
    }
}

impl RedisStore {
    /// Starts a builder for the Redis at `url` (`redis://[user:password@]host:port/db`, or
    /// `rediss://` for TLS with the `redis-tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        Self::with_topology(Topology::Single(url.into()))
    }

    /// Starts a builder for a Redis Cluster (or Valkey cluster) reached through these seed
    /// nodes (`redis://host:port`, or `rediss://`): the client learns the other nodes and the
    /// slot map from them, follows `MOVED`/`ASK` redirections and refreshes the map after a
    /// failover or a slot migration.
    pub fn cluster<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_topology(Topology::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    /// Starts a builder for the primary that the sentinels at these URLs monitor under
    /// `service`: the sentinels name the primary, and after a failover the store asks them
    /// again. The primary is reached with the credentials and database of
    /// [`sentinel_primary_url`](RedisStoreBuilder::sentinel_primary_url), or without any
    /// (database 0), over TLS when the sentinels' URLs are `rediss://`.
    pub fn sentinel<I, S>(service: impl Into<String>, sentinels: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_topology(Topology::Sentinel {
            service: service.into(),
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            primary: None,
        })
    }

    fn with_topology(topology: Topology) -> RedisStoreBuilder {
        RedisStoreBuilder {
            topology,
            sentinel_primary: None,
            prefix: "palisade:".into(),
            timeout: Duration::from_millis(100),
            on_outage: OnOutage::FailClosed,
            local_max_keys: super::memory::DEFAULT_MAX_KEYS,
            #[cfg(feature = "redis-tls")]
            tls: None,
        }
    }

    /// How many checks Redis failed to answer (each decided by the outage policy).
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Whether the last check found Redis unreachable.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Relaxed)
    }

    /// The Redis key of limit `i` of `key`: `{prefix}{<policy>:<kind>:<value>}:<i>`, plus
    /// `:<window number>` for a window. The braces are the Redis Cluster hash tag, so all keys
    /// of one identity live on one shard; `}` and `%` in the value are percent-encoded so the
    /// tag always ends where the identity does.
    fn redis_key(&self, key: &QuotaKey, i: usize, window: Option<u32>) -> String {
        let ident = key.to_string();
        let mut out = String::with_capacity(self.inner.prefix.len() + ident.len() + 16);
        out.push_str(&self.inner.prefix);
        out.push('{');
        for ch in ident.chars() {
            match ch {
                '}' => out.push_str("%7D"),
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
        out.push_str("}:");
        out.push_str(&i.to_string());
        if let Some(w) = window {
            out.push(':');
            out.push_str(&w.to_string());
        }
        out
    }

    async fn eval(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Result<Verdict, StoreError> {
        let limits = key.policy().limits();
        let now_us = now.as_unix_nanos() / 1_000;
        let mut inv = self.inner.script.prepare_invoke();
        inv.arg(now_us).arg(cost).arg(u8::from(consume));
        for (i, limit) in limits.iter().enumerate() {
            match limit.kind() {
                Kind::Rate { .. } => {
                    let (t, burst) = limit.gcra();
                    inv.key(self.redis_key(key, i, None));
                    inv.arg("r").arg(t.div_ceil(1_000).max(1)).arg(burst).arg(0);
                }
                Kind::Quota { max, window } => {
                    let (index, end) = window.locate(now);
                    inv.key(self.redis_key(key, i, Some(index)));
                    inv.arg("q")
                        .arg(max)
                        .arg(0)
                        .arg(end.as_unix_nanos() / 1_000);
                }
            }
        }
        let call = async {
            let mut conn = self.inner.link.conn().await?;
            inv.invoke_async(&mut conn).await
        };
        let reply: Vec<i64> = match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(StoreError::new(StoreErrorKind::Unavailable, e)),
            Err(elapsed) => return Err(StoreError::new(StoreErrorKind::Unavailable, elapsed)),
        };
        decode(&reply, limits.len())
    }

    fn outage(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
        e: StoreError,
    ) -> Result<Verdict, StoreError> {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::backend_error("redis", "error");
        if !self.inner.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                layer = "quota",
                error = %crate::error::Chain(&e),
                on_outage = ?self.inner.on_outage,
                "redis quota store unreachable"
            );
        }
        match self.inner.on_outage {
            OnOutage::FailClosed => Err(e),
            OnOutage::FailOpen => Ok(Verdict::unlimited().with_mode(QuotaMode::FailOpen)),
            OnOutage::Local { instances } => {
                let shared: Vec<_> = key
                    .policy()
                    .limits()
                    .iter()
                    .map(|l| l.share(instances))
                    .collect();
                Ok(self
                    .inner
                    .local
                    .check_limits(key, &shared, cost, now, consume)
                    .with_mode(QuotaMode::Degraded))
            }
        }
    }
}

fn decode(reply: &[i64], n: usize) -> Result<Verdict, StoreError> {
    if reply.len() != 2 + 3 * n || n > MAX_LIMITS {
        return Err(StoreError::new(
            StoreErrorKind::InvalidData,
            format!(
                "quota script returned {} values for {n} limits",
                reply.len()
            ),
        ));
    }
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let mut states = [LimitState::default(); MAX_LIMITS];
    for (i, s) in states.iter_mut().take(n).enumerate() {
        let base = 2 + 3 * i;
        *s = LimitState::new(
            u64::try_from(reply[base]).unwrap_or(0),
            us(reply[base + 1]),
            reply[base + 2] != 0,
        );
    }
    let verdict = Verdict::new(
        &states[..n],
        if reply[0] == 1 {
            Duration::ZERO
        } else {
            us(reply[1])
        },
    );
    if verdict.is_allowed() != (reply[0] == 1) {
        return Err(StoreError::new(
            StoreErrorKind::InvalidData,
            "quota script verdict disagrees with its limit states",
        ));
    }
    Ok(verdict)
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("on_outage", &self.inner.on_outage)
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}

impl QuotaStore for RedisStore {
    async fn check(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Result<Verdict, StoreError> {
        // Never "fail open" on a policy that cannot be checked.
        key.policy().usable()?;
        match self.eval(key, cost, now, consume).await {
            Ok(v) => {
                if self.inner.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(layer = "quota", "redis quota store is back");
                }
                Ok(v)
            }
            Err(e) => self.outage(key, cost, now, consume, e),
        }
    }

    fn stats(&self) -> StoreStats {
        // The figures of the local fallback's memory, and Redis's own.
        let mut stats = self.inner.local.stats();
        stats.failures = Some(self.failures());
        stats.down = Some(self.is_down());
        stats
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::quota::{Limit, QuotaPolicy, Window};

    proptest! {
        /// Distinct identities never share a Redis key, and the Cluster hash tag (from the first
        /// `{` to the next `}`) is exactly the whole identity, whatever bytes a caller sends.
        #[test]
        fn redis_keys_are_injective_and_tagged_by_the_whole_identity(
            a in ".{0,24}",
            b in ".{0,24}",
            i in 0usize..4,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _guard = rt.enter();
            let store = RedisStore::builder("redis://127.0.0.1:1/").build().unwrap();
            let p = QuotaPolicy::new("p", [Limit::per_second(1)]);
            let ka = store.redis_key(&QuotaKey::custom(p.clone(), a.as_str()), i, Some(7));
            let kb = store.redis_key(&QuotaKey::custom(p, b.as_str()), i, Some(7));
            prop_assert_eq!(ka == kb, a == b);
            let open = ka.find('{').unwrap();
            let close = open + ka[open..].find('}').unwrap();
            let suffix = format!("}}:{i}:7");
            prop_assert_eq!(&ka[close..], suffix.as_str());
        }
    }

    #[tokio::test]
    async fn keys_share_one_hash_tag_and_escape_braces() {
        let store = RedisStore::builder("redis://127.0.0.1:1/").build().unwrap();
        let p = QuotaPolicy::new("free", [Limit::per_second(1), Limit::quota(5, Window::Day)]);
        let key = QuotaKey::custom(p, "a}b%c");
        assert_eq!(
            store.redis_key(&key, 0, None),
            "palisade:{free:custom:a%7Db%25c}:0"
        );
        assert_eq!(
            store.redis_key(&key, 1, Some(7)),
            "palisade:{free:custom:a%7Db%25c}:1:7"
        );
    }

    #[test]
    fn bad_urls_and_settings_are_config_errors_without_secrets() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let e = RedisStore::builder("http://user:hunter2@host/")
                .build()
                .unwrap_err();
            assert!(!e.to_string().contains("hunter2"));
            assert!(
                RedisStore::builder("redis://127.0.0.1/")
                    .timeout(Duration::ZERO)
                    .build()
                    .is_err()
            );
            assert!(
                RedisStore::builder("redis://127.0.0.1/")
                    .on_outage(OnOutage::Local { instances: 0 })
                    .build()
                    .is_err()
            );
            // The primary's login is for Sentinel only; nothing set is ignored.
            let e = RedisStore::cluster(["redis://127.0.0.1:7000/"])
                .sentinel_primary_url("redis://:hunter2@any/0")
                .build()
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("sentinel_primary_url") && !e.contains("hunter2"),
                "{e}"
            );
            assert!(
                RedisStore::sentinel("m", ["redis://127.0.0.1:26379/"])
                    .sentinel_primary_url("redis://:pw@any/0")
                    .build()
                    .is_ok()
            );
            assert!(
                RedisStore::sentinel(" ", ["redis://127.0.0.1:26379/"])
                    .build()
                    .is_err()
            );
            let none: [&str; 0] = [];
            assert!(RedisStore::cluster(none).build().is_err());
            assert!(
                RedisStore::cluster(["rediss://127.0.0.1:7000/#insecure"])
                    .build()
                    .is_err()
            );
        });
    }

    #[test]
    fn malformed_replies_are_invalid_data() {
        assert!(decode(&[1, 0, 5], 1).is_err());
        assert!(decode(&[1, 0, 5, 0, 1], 1).is_err(), "allowed but exceeded");
        let v = decode(&[0, 1_500_000, 0, 1_500_000, 1], 1).unwrap();
        assert!(!v.is_allowed());
        assert_eq!(v.retry_after(), Duration::from_millis(1_500));
    }
}

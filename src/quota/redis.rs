//! [`RedisStore`]: quotas shared by every instance through Redis (feature `redis`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use siphasher::sip128::{Hasher128 as _, SipHasher24};

use super::batch::QuotaCheck;
use super::limit::{Kind, Verdict};
use super::memory::MemoryStore;
use super::policy::QuotaKey;
use super::redis_script::{HashWriter, REFUND, SCRIPT, tag_key};
use super::store::{OnOutage, QuotaMode, QuotaStore, StoreStats};
use crate::clock::Timestamp;
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::redis_link::{Link, Topology};

mod batch;

/// Counters in Redis, shared by every instance: one atomic Lua script per request (the GCRA
/// cells and windows of all its rules together, consumed only if all admit; one script per
/// identity on a Cluster, see [`QuotaStore::check_all`]), keys expiring as soon as their state equals a fresh one, and
/// every key of one identity under one hash tag, so it works on Redis Cluster.
///
/// Key names never hold the identity: each is `{prefix}{<tag>}:<limit>[:<window>]`, where
/// `<tag>` is 32 hex digits of a keyed 128-bit hash (SipHash-2-4) of the policy and identity,
/// so a 4 KiB subject makes a key of the same length as any other (at most
/// [`MAX_KEY_LEN`](Self::MAX_KEY_LEN) bytes) and listing the keys reveals no subject or
/// address. Give every instance the same [`key_secret`](RedisStoreBuilder::key_secret) so the
/// hash cannot be inverted by guessing identities (an IPv4 address, a known user name): without
/// one, the hash is keyed by a fixed label and only hides identities from a casual reader.
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
    refund: redis::Script,
    prefix: Box<str>,
    /// The SipHash key of the identity tags.
    tag_key: [u8; 16],
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
    local_max_keys: Option<usize>,
    key_secret: Option<zeroize::Zeroizing<Vec<u8>>>,
    #[cfg(feature = "redis-tls")]
    tls: Option<redis::TlsCertificates>,
}

const MAX_PREFIX_LEN: usize = RedisStore::MAX_PREFIX_LEN;
const MIN_KEY_SECRET_LEN: usize = RedisStore::MIN_KEY_SECRET_LEN;

impl fmt::Debug for RedisStoreBuilder {
    // The URL may hold a password, and a client key is a secret: neither is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RedisStoreBuilder");
        d.field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_outage", &self.on_outage)
            .field("local_max_keys", &self.local_max_keys)
            .field("key_secret", &self.key_secret.is_some());
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

    /// Prefixes every key (default `palisade:`, at most [`RedisStore::MAX_PREFIX_LEN`] bytes), to share a
    /// Redis with other data.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Keys the hash that names each identity's Redis keys (at least
    /// [`RedisStore::MIN_KEY_SECRET_LEN`] bytes, the same on every instance that shares the counters), so
    /// someone who can list the keys cannot recover a subject or an address by hashing guesses.
    /// Changing it starts every counter afresh.
    pub fn key_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.key_secret = Some(zeroize::Zeroizing::new(secret.as_ref().to_vec()));
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

    /// The key bound of the local fallback store of [`OnOutage::Local`] (default 100,000);
    /// [`build`](Self::build) refuses it with another outage policy, and a bound of zero.
    pub fn local_max_keys(mut self, max_keys: usize) -> Self {
        self.local_max_keys = Some(max_keys);
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
        match (self.local_max_keys, self.on_outage) {
            (Some(_), OnOutage::FailClosed | OnOutage::FailOpen) => {
                return Err(ConfigError::Invalid {
                    field: "quota.store.local_max_keys",
                    message: "the local fallback's bound is for `on_outage: {local: …}` only"
                        .into(),
                });
            }
            (Some(0), _) => {
                return Err(ConfigError::Invalid {
                    field: "quota.store.local_max_keys",
                    message: "the local fallback must hold at least one key".into(),
                });
            }
            _ => {}
        }
        if self.prefix.len() > MAX_PREFIX_LEN {
            return Err(invalid(format!(
                "the key prefix is at most {MAX_PREFIX_LEN} bytes, not {}",
                self.prefix.len()
            )));
        }
        let tag_key = match &self.key_secret {
            Some(secret) if secret.len() < MIN_KEY_SECRET_LEN => {
                return Err(invalid(format!(
                    "the key secret must be at least {MIN_KEY_SECRET_LEN} bytes, got {}",
                    secret.len()
                )));
            }
            Some(secret) => tag_key(secret),
            None => tag_key(b"palisade quota identity tag, v1"),
        };
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
                refund: redis::Script::new(REFUND),
                prefix: self.prefix.into(),
                tag_key,
                timeout: self.timeout,
                on_outage: self.on_outage,
                local: MemoryStore::with_max_keys(
                    self.local_max_keys
                        .unwrap_or(super::memory::DEFAULT_MAX_KEYS),
                ),
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

    /// Starts a builder for what a configuration file's items resolved to: where Redis is,
    /// and the TLS files read.
    #[cfg(feature = "config")]
    pub(crate) fn with_resolved(resolved: crate::redis_spec::Resolved) -> RedisStoreBuilder {
        #[allow(unused_mut)]
        let mut builder = Self::with_topology(resolved.topology);
        #[cfg(feature = "redis-tls")]
        {
            builder.tls = resolved.tls;
        }
        builder
    }

    fn with_topology(topology: Topology) -> RedisStoreBuilder {
        RedisStoreBuilder {
            topology,
            sentinel_primary: None,
            prefix: "palisade:".into(),
            timeout: Duration::from_millis(100),
            on_outage: OnOutage::FailClosed,
            local_max_keys: None,
            key_secret: None,
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

    /// The longest key prefix [`RedisStoreBuilder::prefix`] accepts, in bytes.
    pub const MAX_PREFIX_LEN: usize = 64;

    /// The shortest [`RedisStoreBuilder::key_secret`], in bytes.
    pub const MIN_KEY_SECRET_LEN: usize = 32;

    /// The longest key this store writes: the longest prefix, the hash tag `{<32 hex>}`, the
    /// limit's index and a window number.
    pub const MAX_KEY_LEN: usize = Self::MAX_PREFIX_LEN + 34 + ":3".len() + ":4294967295".len();

    /// The Redis key of limit `i` of `key`: `{prefix}{<tag>}:<i>`, plus `:<window number>` for
    /// a window. The tag (the keyed hash of the policy and identity, in braces) is the Redis
    /// Cluster hash tag, so all keys of one identity live on one shard.
    fn redis_key(&self, key: &QuotaKey, i: usize, window: Option<u32>) -> String {
        use std::fmt::Write as _;
        let hex = self.tag(key);
        let tag = std::str::from_utf8(&hex).unwrap_or_default();
        let mut out = String::with_capacity(Self::MAX_KEY_LEN);
        out.push_str(&self.inner.prefix);
        out.push('{');
        out.push_str(tag);
        out.push_str("}:");
        let _ = write!(out, "{i}");
        if let Some(w) = window {
            let _ = write!(out, ":{w}");
        }
        out
    }

    /// The hash tag of `key`'s Redis keys: 32 lowercase hex digits of the keyed hash of its
    /// policy and identity.
    fn tag(&self, key: &QuotaKey) -> [u8; 32] {
        use std::fmt::Write as _;
        let mut hasher = SipHasher24::new_with_key(&self.inner.tag_key);
        // Fed without an intermediate string: the identity may be long.
        let _ = write!(HashWriter(&mut hasher), "{key}");
        let mut hex = [0u8; 32];
        let _ = base16ct::lower::encode(&hasher.finish128().as_bytes(), &mut hex);
        hex
    }

    /// Gives back `cost` units that a check at `now` took for `key`.
    async fn give_back(&self, key: &QuotaKey, cost: u64, now: Timestamp) -> Result<(), StoreError> {
        let mut inv = self.inner.refund.prepare_invoke();
        inv.arg(cost);
        for (i, limit) in key.policy().limits().iter().enumerate() {
            match limit.kind() {
                Kind::Rate { .. } => {
                    let (t, _) = limit.gcra();
                    inv.key(self.redis_key(key, i, None));
                    inv.arg("r").arg(t.div_ceil(1_000).max(1));
                }
                Kind::Quota { window, .. } => {
                    let (index, _) = window.locate(now);
                    inv.key(self.redis_key(key, i, Some(index)));
                    inv.arg("q").arg(0);
                }
            }
        }
        let call = async {
            let mut conn = self.inner.link.conn().await?;
            inv.invoke_async::<i64>(&mut conn).await
        };
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::new(StoreErrorKind::Unavailable, e)),
            Err(elapsed) => Err(StoreError::new(StoreErrorKind::Unavailable, elapsed)),
        }
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
        let checks = [QuotaCheck::new(key, cost).consume(consume)];
        let mut verdicts = self.check_batch(&checks, now).await;
        verdicts
            .pop()
            .unwrap_or_else(|| Err(StoreError::from_kind(StoreErrorKind::InvalidData)))
    }

    async fn check_all(
        &self,
        checks: &[QuotaCheck<'_>],
        now: Timestamp,
    ) -> Vec<Result<Verdict, StoreError>> {
        self.check_batch(checks, now).await
    }

    async fn refund(&self, key: &QuotaKey, cost: u64, now: Timestamp) -> Result<(), StoreError> {
        self.give_back(key, cost, now).await
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

    use super::super::redis_script::{decode, decode_batch};
    use super::*;
    use crate::quota::{Limit, QuotaPolicy, Window};

    proptest! {
        /// Distinct identities never share a Redis key (128-bit tags), the Cluster hash tag is
        /// 32 hex digits in one pair of braces whatever bytes a caller sends, and no key holds
        /// the identity.
        #[test]
        fn redis_keys_are_distinct_fixed_length_and_hide_the_identity(
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
            prop_assert_eq!(ka.len(), "palisade:{}:0:7".len() + 32);
            let tag = &ka["palisade:{".len().."palisade:{".len() + 32];
            prop_assert!(tag.bytes().all(|c| c.is_ascii_hexdigit()));
            let suffix = format!("}}:{i}:7");
            prop_assert_eq!(&ka["palisade:{".len() + 32..], suffix.as_str());
        }
    }

    #[tokio::test]
    async fn the_local_fallbacks_bound_takes_effect_or_is_refused() {
        let b = || RedisStore::builder("redis://127.0.0.1:1/");
        let local = OnOutage::Local { instances: 2 };
        assert!(b().on_outage(local).local_max_keys(10).build().is_ok());
        for builder in [
            b().local_max_keys(10),
            b().on_outage(OnOutage::FailOpen).local_max_keys(10),
            b().on_outage(local).local_max_keys(0),
        ] {
            let err = builder.build().unwrap_err().to_string();
            assert!(err.contains("quota.store.local_max_keys"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_4_kib_subject_makes_a_key_of_the_fixed_bound_that_does_not_hold_it() {
        let store = RedisStore::builder("redis://127.0.0.1:1/")
            .prefix("p".repeat(MAX_PREFIX_LEN))
            .build()
            .unwrap();
        let p = QuotaPolicy::new("free", [Limit::per_second(1), Limit::quota(5, Window::Day)]);
        let subject = "s".repeat(4096);
        let key = QuotaKey::custom(p, subject.as_str());
        let rate = store.redis_key(&key, 0, None);
        let window = store.redis_key(&key, 3, Some(u32::MAX));
        assert_eq!(window.len(), RedisStore::MAX_KEY_LEN);
        assert!(rate.len() < RedisStore::MAX_KEY_LEN);
        assert!(!window.contains("sss") && !window.contains("free"));
        // Both limits of the identity share its hash tag (one Cluster slot).
        let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
        assert_eq!(tag(&rate), tag(&window));
    }

    #[tokio::test]
    async fn the_key_secret_changes_every_tag_and_must_be_long_enough() {
        let p = QuotaPolicy::new("free", [Limit::per_second(1)]);
        let key = QuotaKey::custom(p, "alice");
        let plain = RedisStore::builder("redis://127.0.0.1:1/").build().unwrap();
        let keyed = RedisStore::builder("redis://127.0.0.1:1/")
            .key_secret([7u8; 32])
            .build()
            .unwrap();
        assert_ne!(
            plain.redis_key(&key, 0, None),
            keyed.redis_key(&key, 0, None)
        );
        let short = RedisStore::builder("redis://127.0.0.1:1/")
            .key_secret([7u8; 31])
            .build()
            .unwrap_err();
        assert!(short.to_string().contains("at least 32 bytes"), "{short}");
        let long_prefix = RedisStore::builder("redis://127.0.0.1:1/")
            .prefix("p".repeat(MAX_PREFIX_LEN + 1))
            .build()
            .unwrap_err();
        assert!(long_prefix.to_string().contains("prefix"), "{long_prefix}");
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
        // A batch: one check of one limit, one of two.
        let both = [1, 0, 4, 0, 0, 1, 0, 3, 0, 0, 9, 0, 0];
        let v = decode_batch(&both, [1, 2]).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].states()[1].remaining(), 9);
        assert!(decode_batch(&both, [1]).is_err(), "too many values");
        assert!(decode_batch(&both, [2, 2]).is_err(), "too few values");
    }
}

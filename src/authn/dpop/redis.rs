//! [`RedisReplayStore`]: DPoP proof ids remembered in Redis, shared by every instance.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::replay::ReplayError;
use crate::error::ConfigError;
use crate::redis_link::{Link, Tls, Topology};

/// Remembers DPoP proofs' ids in Redis (`SET key 1 NX PX ttl`: one round trip, atomic), so a
/// proof used at one instance is refused at every other. A Redis that fails or does not answer
/// within the timeout makes the request 503 with `Retry-After` (fail closed: a proof that
/// cannot be remembered could be replayed). Keys hold a hash of the proof's `jti`, never the
/// proof, and expire when the proof would be too old anyway.
///
/// ```no_run
/// use palisade::authn::dpop::{Dpop, RedisReplayStore};
///
/// # fn main() -> Result<(), palisade::ConfigError> {
/// let store = RedisReplayStore::new("redis://127.0.0.1:6379/")?;
/// let dpop = Dpop::new("https://api.example.com").replay_store(store);
/// # let _ = dpop; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    link: Link,
    /// Where the link goes and with which TLS settings, to rebuild it when they change.
    #[cfg_attr(not(feature = "redis-tls"), allow(dead_code))]
    topology: Arc<Topology>,
    #[cfg_attr(not(feature = "redis-tls"), allow(dead_code))]
    tls: Tls,
    prefix: Arc<str>,
    timeout: Duration,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// A store at `url` (`redis://`, or `rediss://` with feature `redis-tls`), keys under
    /// `palisade:dpop:`, a 100 ms timeout. Connects on first use; call inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a URL the `redis` crate refuses (the URL is not echoed: it
    /// may hold a password).
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Self::with_topology(&Topology::Single(url.to_owned()))
    }

    /// A store on a Redis Cluster (or Valkey cluster) reached through these seed nodes: the
    /// client learns the other nodes and the slot map, follows `MOVED`/`ASK` redirections and
    /// refreshes the map after a failover or a slot migration. Each proof id is one key.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), for any of the URLs.
    pub fn cluster<I, S>(nodes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_topology(&Topology::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    /// A store on the primary that the sentinels at these URLs monitor under `service`; after
    /// a failover it asks them again. The primary is reached with the username, password and
    /// database of `primary_url` (`redis://[user:]password@any/db`; its host is not used, the
    /// sentinels name the primary), or without credentials on database 0; over TLS when that
    /// URL (or else the sentinels' URLs) is `rediss://`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), for any of the URLs, and for an empty service name.
    pub fn sentinel<I, S>(
        service: impl Into<String>,
        sentinels: I,
        primary_url: Option<&str>,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_topology(&Topology::Sentinel {
            service: service.into(),
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            primary: primary_url.map(str::to_owned),
        })
    }

    fn with_topology(topology: &Topology) -> Result<Self, ConfigError> {
        Self::linked(topology.clone(), None)
    }

    fn linked(topology: Topology, tls: Tls) -> Result<Self, ConfigError> {
        let timeout = Duration::from_millis(100);
        let link = Link::new(&topology, tls.clone(), timeout, "dpop.replay.redis")?;
        Ok(Self {
            link,
            topology: Arc::new(topology),
            tls,
            prefix: "palisade:dpop:".into(),
            timeout,
        })
    }

    /// The store a configuration file's items resolved to: where Redis is, and the TLS files
    /// read.
    #[cfg(feature = "config")]
    pub(crate) fn with_resolved(
        resolved: crate::redis_spec::Resolved,
    ) -> Result<Self, ConfigError> {
        Self::linked(resolved.topology, resolved.tls)
    }

    /// Trusts the CA certificates in `pem` (PEM) for `rediss://` servers, instead of the
    /// Mozilla roots: for a Redis whose certificate a private CA signed. Feature `redis-tls`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); and for a store made with [`sentinel`](Self::sentinel), whose
    /// servers must present certificates the Mozilla roots trust.
    #[cfg(feature = "redis-tls")]
    pub fn tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        crate::redis_link::tls_settings(&mut self.tls).root_cert = Some(pem.into());
        self.relink()
    }

    /// Presents this client certificate chain and key (PEM) to `rediss://` servers that ask
    /// for one (`tls-auth-clients yes`). Feature `redis-tls`.
    ///
    /// # Errors
    ///
    /// As [`tls_ca`](Self::tls_ca).
    #[cfg(feature = "redis-tls")]
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Result<Self, ConfigError> {
        crate::redis_link::tls_settings(&mut self.tls).client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self.relink()
    }

    /// The link again, with the TLS settings as they are now.
    #[cfg(feature = "redis-tls")]
    fn relink(mut self) -> Result<Self, ConfigError> {
        self.link = Link::new(
            &self.topology,
            self.tls.clone(),
            self.timeout,
            "dpop.replay.redis",
        )?;
        Ok(self)
    }

    /// Puts the keys under `prefix` instead of `palisade:dpop:`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// How long a request waits for Redis before it gets 503 (default 100 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Records `id` for `ttl`: `Replayed` if Redis knows it already.
    pub(super) async fn record(&self, id: u128, ttl: Duration) -> Result<(), ReplayError> {
        let key = format!("{}{id:032x}", self.prefix);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(1).arg("NX").arg("PX").arg(ms);
        let set = async {
            let mut conn = self.link.conn().await?;
            cmd.query_async::<Option<String>>(&mut conn).await
        };
        match tokio::time::timeout(self.timeout, set).await {
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => Err(ReplayError::Replayed),
            Ok(Err(error)) => {
                crate::telemetry::backend_error("dpop_replay", "error");
                tracing::warn!(layer = "authn", error = %crate::error::Chain(&error), "DPoP replay store failed");
                Err(ReplayError::Unavailable(Duration::from_secs(1)))
            }
            Err(_) => {
                crate::telemetry::backend_error("dpop_replay", "timeout");
                tracing::warn!(layer = "authn", "DPoP replay store timed out");
                Err(ReplayError::Unavailable(Duration::from_secs(1)))
            }
        }
    }
}

//! [`RedisBus`]: invalidations over Redis pub/sub (feature `redis`).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;

use super::redis_log::{EntryId, Log, split};
use super::{DEFAULT_LOG_LENGTH, DEFAULT_SAFE_LIFETIME, Hub, Invalidation, InvalidationBus};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::redis_link::{Link, Tls, Topology};
use crate::redis_pubsub::Subscriber;

/// The default channel.
const DEFAULT_CHANNEL: &str = "palisade:invalidation";
/// The first wait before a reconnection, doubled on each failure up to [`MAX_BACKOFF`], each
/// wait jittered.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an idle subscription is checked with a `PING`.
const PING_EVERY: Duration = Duration::from_secs(2);
/// The item builder errors name.
const FIELD: &str = "invalidation.redis";

/// Invalidations over Redis pub/sub: `PUBLISH` on a shared connection, and a dedicated
/// subscribing connection on a background task that reconnects with backoff. The hub is live
/// only while the subscription is confirmed; on reconnection the bus's log replays what was
/// missed ([`log_length`](RedisBusBuilder::log_length)) and every cache is dropped.
///
/// One server ([`builder`](Self::builder)), a Redis Cluster ([`cluster`](Self::cluster): a
/// `PUBLISH` reaches every node, so the subscription sits on any reachable node and moves to
/// the next one when it loses its own) or a primary that Sentinel watches
/// ([`sentinel`](Self::sentinel): the subscription follows the primary the sentinels name after
/// a failover), over TLS with `rediss://` URLs, a private CA and a client certificate (feature
/// `redis-tls`), as `RedisStore`.
///
/// ```no_run
/// # async fn run() -> Result<(), palisade::ConfigError> {
/// use palisade::invalidation::RedisBus;
/// let bus = RedisBus::builder("redis://127.0.0.1:6379/")
///     .channel("myapp:invalidation")
///     .build()?;
/// let clustered = RedisBus::cluster(["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"])
///     .build()?;
/// # let _ = (bus, clustered); Ok(()) }
/// ```
///
/// Clones share the connections; the subscription stops when the last clone is dropped.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    channel: Box<str>,
    publisher: Link,
    log: Option<Log>,
    timeout: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisBus")
            .field("channel", &self.inner.channel)
            .field("hub", &self.inner.hub)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisBus`]; see [`RedisBus::builder`], [`RedisBus::cluster`] and
/// [`RedisBus::sentinel`].
#[derive(Clone)]
#[must_use]
pub struct RedisBusBuilder {
    topology: Topology,
    sentinel_primary: Option<String>,
    tls: Tls,
    channel: String,
    safe_lifetime: Duration,
    timeout: Duration,
    log_length: usize,
}

impl fmt::Debug for RedisBusBuilder {
    // The URL may hold a password, and a client key is a secret: neither is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBusBuilder")
            .field("channel", &self.channel)
            .field("safe_lifetime", &self.safe_lifetime)
            .field("timeout", &self.timeout)
            .field("log_length", &self.log_length)
            .field("custom_tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Starts a builder for the Redis at `url` (`redis://[user:password@]host:port/db`, or
    /// `rediss://` for TLS with the `redis-tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisBusBuilder {
        Self::with_topology(Topology::Single(url.into()), None)
    }

    /// Starts a builder for a Redis Cluster (or Valkey cluster) reached through these seed
    /// nodes (`redis://host:port`, or `rediss://`). Messages are published through the
    /// cluster client; the subscription sits on one node at a time (a `PUBLISH` reaches every
    /// node of a cluster), learns the cluster's other nodes from it, and moves to the next
    /// node, listed or learned, when it loses its own.
    pub fn cluster<I, S>(nodes: I) -> RedisBusBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes = nodes.into_iter().map(Into::into).collect();
        Self::with_topology(Topology::Cluster(nodes), None)
    }

    /// Starts a builder for the primary that the sentinels at these URLs monitor under
    /// `service`: publishing and the subscription go to the primary the sentinels name, asked
    /// again after a failover. The primary is reached with the credentials and database of
    /// [`sentinel_primary_url`](RedisBusBuilder::sentinel_primary_url), or without any
    /// (database 0), over TLS when the sentinels' URLs are `rediss://`.
    pub fn sentinel<I, S>(service: impl Into<String>, sentinels: I) -> RedisBusBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_topology(
            Topology::Sentinel {
                service: service.into(),
                sentinels: sentinels.into_iter().map(Into::into).collect(),
                primary: None,
            },
            None,
        )
    }

    /// A builder for `topology` with these TLS settings (the file's `invalidation.redis`).
    pub(super) fn with_topology(topology: Topology, tls: Tls) -> RedisBusBuilder {
        RedisBusBuilder {
            topology,
            sentinel_primary: None,
            tls,
            channel: DEFAULT_CHANNEL.into(),
            safe_lifetime: DEFAULT_SAFE_LIFETIME,
            timeout: Duration::from_secs(1),
            log_length: DEFAULT_LOG_LENGTH,
        }
    }

    /// The channel.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }
}

impl RedisBusBuilder {
    /// The pub/sub channel (default `palisade:invalidation`); every instance must use the same.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How long caches serve an entry while the subscription is not confirmed (default 5 s).
    pub fn safe_lifetime(mut self, lifetime: Duration) -> Self {
        self.safe_lifetime = lifetime;
        self
    }

    /// Bounds each publish, connection and ping (default one second).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many messages the bus's log keeps (default [`DEFAULT_LOG_LENGTH`]; about: Redis
    /// trims a stream a node at a time). Each message is appended to a Redis stream
    /// (`<channel>:log`) as it is published, in one script; an instance whose subscription
    /// broke replays what it missed from there when it is back, and an instance that starts
    /// replays the whole log, so a token revoked before it started is refused there too.
    /// What was trimmed before an instance came back cannot be replayed (a warning says so;
    /// every cache is dropped as always). Zero keeps no log: plain `PUBLISH`, nothing
    /// replayed.
    pub fn log_length(mut self, length: usize) -> Self {
        self.log_length = length;
        self
    }

    /// For a bus built with [`RedisBus::sentinel`]: logs in to the primary with the username,
    /// password and database of `url` (`redis://[user:]password@any/db`; the host is not used,
    /// the sentinels name the primary), over TLS when it is `rediss://`. Any other bus refuses
    /// it at `build()`.
    pub fn sentinel_primary_url(mut self, url: impl Into<String>) -> Self {
        self.sentinel_primary = Some(url.into());
        self
    }

    /// Trusts the CA certificates in `pem` (PEM) for `rediss://` servers, instead of the
    /// Mozilla roots: for a Redis whose certificate a private CA signed. Not with Sentinel.
    /// Feature `redis-tls`.
    #[cfg(feature = "redis-tls")]
    pub fn tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        crate::redis_link::tls_settings(&mut self.tls).root_cert = Some(pem.into());
        self
    }

    /// Presents this client certificate chain and key (PEM) to `rediss://` servers that ask
    /// for one (`tls-auth-clients yes`). Not with Sentinel. Feature `redis-tls`.
    #[cfg(feature = "redis-tls")]
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        crate::redis_link::tls_settings(&mut self.tls).client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// Builds the bus and starts subscribing on a tokio task (call it inside a runtime). It
    /// connects in the background: until then the hub is not live.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `invalidation.redis` for no URL or a URL the `redis`
    /// crate refuses, an empty channel or Sentinel service, a zero timeout or safe lifetime,
    /// a Sentinel primary URL for another topology, or TLS settings without `rediss://` URLs
    /// or with Sentinel.
    pub fn build(self) -> Result<RedisBus, ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            field: FIELD,
            message: message.into(),
        };
        if self.channel.is_empty() {
            return Err(invalid("the channel is empty"));
        }
        if self.timeout.is_zero() || self.safe_lifetime.is_zero() {
            return Err(invalid(
                "the timeout and the safe lifetime must be positive",
            ));
        }
        let mut topology = self.topology;
        match (&mut topology, self.sentinel_primary) {
            (Topology::Sentinel { primary, .. }, Some(url)) => *primary = Some(url),
            (_, Some(_)) => {
                return Err(invalid(
                    "sentinel_primary_url is for a bus built with RedisBus::sentinel",
                ));
            }
            _ => {}
        }
        if self.tls.is_some() && !topology.any_tls() {
            return Err(invalid("TLS settings need `rediss://` URLs"));
        }
        let publisher = Link::new(&topology, self.tls.clone(), self.timeout, FIELD)?;
        let subscriber = Subscriber::new(&topology, self.tls, FIELD)?;
        let hub = Hub::new(self.safe_lifetime);
        let log = (self.log_length > 0).then(|| Log::new(&self.channel, self.log_length));
        let task = tokio::spawn(subscribe(
            subscriber,
            log.clone().map(|log| (log, publisher.clone())),
            self.channel.clone(),
            hub.clone(),
            self.timeout,
        ));
        Ok(RedisBus {
            inner: Arc::new(Inner {
                hub,
                channel: self.channel.into(),
                publisher,
                log,
                timeout: self.timeout,
                task,
            }),
        })
    }
}

impl InvalidationBus for RedisBus {
    async fn publish(&self, message: &Invalidation) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let payload = message.encode();
        let sent = async {
            if let Some(log) = &inner.log {
                return log
                    .publish(&inner.publisher, &inner.channel, &payload)
                    .await;
            }
            let mut conn = inner.publisher.conn().await?;
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(&*inner.channel).arg(&payload);
            cmd.query_async::<i64>(&mut conn).await.map(drop)
        };
        match tokio::time::timeout(self.inner.timeout, sent).await {
            Ok(Ok(_)) => {
                // Applied here at once too (the echo through Redis is harmless: idempotent).
                self.inner.hub.deliver(message);
                Ok(())
            }
            Ok(Err(e)) => Err(StoreError::new(StoreErrorKind::Unavailable, e)),
            Err(e) => Err(StoreError::new(StoreErrorKind::Unavailable, e)),
        }
    }

    fn hub(&self) -> &Hub {
        &self.inner.hub
    }
}

/// The subscribing task: connect, subscribe, deliver until the link breaks, then back off and
/// start again. The hub is live exactly between a confirmed `SUBSCRIBE` and the break.
/// Each connection goes where the topology says now (the next node of a cluster, the primary
/// the sentinels name).
async fn subscribe(
    mut subscriber: Subscriber,
    log: Option<(Log, Link)>,
    channel: String,
    hub: Hub,
    timeout: Duration,
) {
    let mut backoff = MIN_BACKOFF;
    // The last log entry delivered: a reconnection replays what follows it.
    let mut last = None;
    loop {
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = subscriber.connect().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                // Subscribed first, then the log: nothing published in between is missed
                // (what both deliver is delivered twice, which is harmless).
                if let Some((log, link)) = &log {
                    match log.replay(link, last, &hub, timeout).await {
                        Ok(newest) => last = newest,
                        Err(e) => {
                            tracing::warn!(layer = "invalidation", error_kind = ?e.kind(), "the bus's log could not be read: reconnecting");
                            sleep_backoff(&mut backoff).await;
                            continue;
                        }
                    }
                }
                backoff = MIN_BACKOFF;
                hub.set_live(true);
                // On a cluster, learn its nodes now, to have somewhere to go when this one is
                // lost (messages published meanwhile wait in the subscription).
                if let Ok(Err(e)) = tokio::time::timeout(timeout, subscriber.learn()).await {
                    tracing::debug!(layer = "invalidation", error_kind = ?e.kind(), "redis cluster nodes not learned");
                }
                listen(pubsub, &hub, timeout, &mut last).await;
                hub.set_live(false);
            }
            Ok(Err(e)) => {
                tracing::debug!(layer = "invalidation", error_kind = ?e.kind(), "redis subscription failed");
            }
            Err(_) => {
                tracing::debug!(layer = "invalidation", "redis subscription timed out");
            }
        }
        sleep_backoff(&mut backoff).await;
    }
}

/// Waits `backoff`, jittered (half to all of it) so that instances cut off together do not
/// all reconnect at the same instant, and doubles it for next time.
async fn sleep_backoff(backoff: &mut Duration) {
    let spread = getrandom::u32().unwrap_or(u32::MAX);
    let jitter = 0.5 + 0.5 * f64::from(spread) / f64::from(u32::MAX);
    tokio::time::sleep(backoff.mul_f64(jitter)).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// Delivers messages until the stream ends or a `PING` goes unanswered.
async fn listen(
    pubsub: redis::aio::PubSub,
    hub: &Hub,
    timeout: Duration,
    last: &mut Option<EntryId>,
) {
    let (mut sink, stream) = pubsub.split();
    let mut stream = std::pin::pin!(stream);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let next = std::future::poll_fn(|cx| Pin::as_mut(&mut stream).poll_next(cx));
        tokio::select! {
            message = next => {
                let Some(message) = message else { return };
                let (id, payload) = split(message.get_payload_bytes());
                match Invalidation::decode(payload) {
                    Ok(m) => hub.deliver(&m),
                    Err(_) => hub.deliver_unknown(),
                }
                *last = (*last).max(id);
            }
            _ = ping.tick() => {
                let answered = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    tracing::warn!(layer = "invalidation", "redis subscription did not answer a ping");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(builder: RedisBusBuilder, needle: &str) {
        let err = builder.build().unwrap_err().to_string();
        assert!(
            err.contains("invalidation.redis") && err.contains(needle),
            "{err}"
        );
        assert!(!err.contains("secret"), "no URL echoed: {err}");
    }

    #[tokio::test]
    async fn what_a_topology_would_ignore_is_refused_at_build() {
        refused(
            RedisBus::builder("redis://:secret@127.0.0.1:1/").sentinel_primary_url("redis://x/"),
            "RedisBus::sentinel",
        );
        refused(RedisBus::cluster(Vec::<String>::new()), "no Redis URL");
        refused(
            RedisBus::sentinel(" ", ["redis://:secret@127.0.0.1:1/"]),
            "service name is empty",
        );
        refused(
            RedisBus::builder("redis://:secret@127.0.0.1:1/#insecure"),
            "#insecure",
        );
        refused(
            RedisBus::builder("redis://127.0.0.1:1/").channel(""),
            "channel",
        );
        #[cfg(feature = "redis-tls")]
        {
            refused(
                RedisBus::builder("redis://:secret@127.0.0.1:1/").tls_ca(b"pem".to_vec()),
                "rediss://",
            );
            refused(
                RedisBus::sentinel("m", ["rediss://127.0.0.1:1/"]).tls_ca(b"pem".to_vec()),
                "not supported with Sentinel",
            );
        }
        // Each topology builds without connecting; the hub is not live until it subscribes.
        for builder in [
            RedisBus::builder("redis://127.0.0.1:1/"),
            RedisBus::cluster(["redis://127.0.0.1:1/", "redis://127.0.0.1:2/"]),
            RedisBus::sentinel("m", ["redis://127.0.0.1:1/"])
                .sentinel_primary_url("redis://:p@x/1"),
        ] {
            let bus = builder.build().unwrap();
            assert!(!bus.hub().is_live());
        }
    }
}

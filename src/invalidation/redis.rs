//! [`RedisBus`]: invalidations over Redis pub/sub (feature `redis`).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{DEFAULT_SAFE_LIFETIME, Hub, Invalidation, InvalidationBus};
use crate::error::{ConfigError, StoreError, StoreErrorKind};

/// The default channel.
const DEFAULT_CHANNEL: &str = "palisade:invalidation";
/// The first wait before a reconnection, doubled on each failure up to [`MAX_BACKOFF`], each
/// wait jittered.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an idle subscription is checked with a `PING`.
const PING_EVERY: Duration = Duration::from_secs(2);

/// Invalidations over Redis pub/sub: `PUBLISH` on a shared connection, and a dedicated
/// subscribing connection on a background task that reconnects with backoff. The hub is live
/// only while the subscription is confirmed; on reconnection every cache is dropped (Redis
/// pub/sub does not replay what was missed).
///
/// ```no_run
/// # async fn run() -> Result<(), palisade::ConfigError> {
/// use palisade::invalidation::RedisBus;
/// let bus = RedisBus::builder("redis://127.0.0.1:6379/")
///     .channel("myapp:invalidation")
///     .build()?;
/// # let _ = bus; Ok(()) }
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
    publisher: ConnectionManager,
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

/// Builds a [`RedisBus`]; see [`RedisBus::builder`].
#[derive(Clone)]
#[must_use]
pub struct RedisBusBuilder {
    url: String,
    channel: String,
    safe_lifetime: Duration,
    timeout: Duration,
}

impl fmt::Debug for RedisBusBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBusBuilder")
            .field("channel", &self.channel)
            .field("safe_lifetime", &self.safe_lifetime)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Starts a builder for the Redis at `url` (`redis://[user:password@]host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisBusBuilder {
        RedisBusBuilder {
            url: url.into(),
            channel: DEFAULT_CHANNEL.into(),
            safe_lifetime: DEFAULT_SAFE_LIFETIME,
            timeout: Duration::from_secs(1),
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

    /// Builds the bus and starts subscribing on a tokio task (call it inside a runtime). It
    /// connects in the background: until then the hub is not live.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `invalidation.redis` for a URL the `redis` crate
    /// refuses, an empty channel, or a zero timeout or safe lifetime.
    pub fn build(self) -> Result<RedisBus, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "invalidation.redis",
            message,
        };
        if self.channel.is_empty() {
            return Err(invalid("the channel is empty".into()));
        }
        if self.timeout.is_zero() || self.safe_lifetime.is_zero() {
            return Err(invalid(
                "the timeout and the safe lifetime must be positive".into(),
            ));
        }
        let client = client(&self.url)
            .map_err(|e| invalid(format!("invalid redis url ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| invalid(format!("redis connection manager ({:?})", e.kind())))?;
        let hub = Hub::new(self.safe_lifetime);
        let task = tokio::spawn(subscribe(
            client,
            self.channel.clone(),
            hub.clone(),
            self.timeout,
        ));
        Ok(RedisBus {
            inner: Arc::new(Inner {
                hub,
                channel: self.channel.into(),
                publisher,
                timeout: self.timeout,
                task,
            }),
        })
    }
}

fn client(url: &str) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "redis-tls")]
    if url.starts_with("rediss://") && rustls::crypto::CryptoProvider::get_default().is_none() {
        // As `RedisStore`: rustls needs a process-wide provider for the `redis` crate's TLS.
        let _ = crate::tls::provider().install_default();
    }
    redis::Client::open(url)
}

impl InvalidationBus for RedisBus {
    async fn publish(&self, message: &Invalidation) -> Result<(), StoreError> {
        let mut conn = self.inner.publisher.clone();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&*self.inner.channel).arg(message.encode());
        match tokio::time::timeout(self.inner.timeout, cmd.query_async::<i64>(&mut conn)).await {
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
async fn subscribe(client: redis::Client, channel: String, hub: Hub, timeout: Duration) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                backoff = MIN_BACKOFF;
                hub.set_live(true);
                listen(pubsub, &hub, timeout).await;
                hub.set_live(false);
            }
            Ok(Err(e)) => {
                tracing::debug!(layer = "invalidation", error_kind = ?e.kind(), "redis subscription failed");
            }
            Err(_) => {
                tracing::debug!(layer = "invalidation", "redis subscription timed out");
            }
        }
        // Jittered (half to all of the backoff), so that instances cut off together do not
        // all reconnect at the same instant.
        let spread = getrandom::u32().unwrap_or(u32::MAX);
        let jitter = 0.5 + 0.5 * f64::from(spread) / f64::from(u32::MAX);
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Delivers messages until the stream ends or a `PING` goes unanswered.
async fn listen(pubsub: redis::aio::PubSub, hub: &Hub, timeout: Duration) {
    let (mut sink, stream) = pubsub.split();
    let mut stream = std::pin::pin!(stream);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let next = std::future::poll_fn(|cx| Pin::as_mut(&mut stream).poll_next(cx));
        tokio::select! {
            message = next => {
                let Some(message) = message else { return };
                match Invalidation::decode(message.get_payload_bytes()) {
                    Ok(m) => hub.deliver(&m),
                    Err(_) => hub.deliver_unknown(),
                }
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

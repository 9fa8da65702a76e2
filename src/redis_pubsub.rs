//! A pub/sub subscription on any topology of [`Topology`] (feature `redis`): on one server, on
//! any node of a Cluster (a `PUBLISH` reaches every node, so a subscription anywhere hears
//! all), or on the primary the sentinels name. Each connection goes where the topology says
//! now: the next node of a cluster in turn, the primary the sentinels name at that moment.

use redis::aio::PubSub;
use redis::sentinel::SentinelClient;
use redis::{RedisError, RedisResult};

use crate::error::ConfigError;
use crate::redis_link::{Tls, Topology, check, sentinel_client, single_client};

/// Where a subscription connects, one attempt at a time.
pub(crate) struct Subscriber {
    source: Source,
    /// The node the next attempt tries (clusters): every attempt moves on, so the loss of a
    /// node (or a failed attempt) sends the next one elsewhere.
    next: usize,
}

enum Source {
    /// One server, or the nodes of a cluster (any of them hears every message).
    Nodes(Vec<redis::Client>),
    /// The primary the sentinels name.
    Sentinel(Box<SentinelClient>),
}

impl Subscriber {
    /// Prepares the subscriptions to `topology`; nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `field`, as [`Link::new`](crate::redis_link::Link::new).
    pub(crate) fn new(
        topology: &Topology,
        tls: Tls,
        field: &'static str,
    ) -> Result<Self, ConfigError> {
        check(topology, field)?;
        let bad_url = |e: RedisError| ConfigError::Invalid {
            field,
            message: format!("invalid redis url ({:?})", e.kind()),
        };
        let source = match topology {
            Topology::Single(url) => Source::Nodes(vec![single_client(url, tls).map_err(bad_url)?]),
            Topology::Cluster(nodes) => Source::Nodes(
                nodes
                    .iter()
                    .map(|url| single_client(url, tls.clone()))
                    .collect::<RedisResult<_>>()
                    .map_err(bad_url)?,
            ),
            Topology::Sentinel {
                service,
                sentinels,
                primary,
            } => Source::Sentinel(Box::new(sentinel_client(
                service,
                sentinels,
                primary.as_deref(),
                &tls,
                field,
            )?)),
        };
        Ok(Self { source, next: 0 })
    }

    /// A pub/sub connection for one attempt (bound it with a timeout): to the server, to the
    /// next node of the cluster, or to the primary the sentinels name now.
    pub(crate) async fn connect(&mut self) -> RedisResult<PubSub> {
        match &mut self.source {
            Source::Nodes(clients) => {
                let client = &clients[self.next % clients.len()];
                self.next = self.next.wrapping_add(1);
                client.get_async_pubsub().await
            }
            Source::Sentinel(sentinels) => {
                let primary = sentinels.async_get_client().await?;
                primary.get_async_pubsub().await
            }
        }
    }
}

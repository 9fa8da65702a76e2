//! A pub/sub subscription on any topology of [`Topology`] (feature `redis`): on one server, on
//! any node of a Cluster (a `PUBLISH` reaches every node, so a subscription anywhere hears
//! all), or on the primary the sentinels name. Each connection goes where the topology says
//! now: the next node of a cluster in turn (the listed ones, and those the cluster named when
//! last asked), the primary the sentinels name at that moment.

use redis::aio::PubSub;
use redis::sentinel::SentinelClient;
use redis::{RedisError, RedisResult};

use crate::error::ConfigError;
use crate::redis_link::{Tls, Topology, check, sentinel_client, single_client};

/// Where a subscription connects, one attempt at a time.
pub(crate) struct Subscriber {
    source: Source,
    /// For a cluster: how to reach the nodes it names.
    cluster: Option<Cluster>,
    /// The node the next attempt tries (clusters): every attempt moves on, so the loss of a
    /// node (or a failed attempt) sends the next one elsewhere.
    next: usize,
}

/// What a subscription to a cluster needs to reach a node it was not given.
struct Cluster {
    /// The first seed's URL: its scheme, login and database serve every node.
    template: String,
    tls: Tls,
    /// `host:port` of each listed node.
    listed: Vec<String>,
    /// How many nodes were listed: the first clients.
    seeds: usize,
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
        let cluster_tls = tls.clone();
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
        let cluster = match topology {
            Topology::Cluster(nodes) => Some(Cluster {
                template: nodes[0].clone(),
                tls: cluster_tls,
                listed: nodes.iter().filter_map(|u| addr_of(u)).collect(),
                seeds: nodes.len(),
            }),
            _ => None,
        };
        Ok(Self {
            source,
            cluster,
            next: 0,
        })
    }

    /// For a cluster, asks the node the last attempt reached for the others (`CLUSTER NODES`),
    /// so that a subscription can move to a node that was not listed; does nothing otherwise.
    /// Bound it with a timeout; a failure leaves the nodes known as they were.
    pub(crate) async fn learn(&mut self) -> RedisResult<()> {
        let (Some(cluster), Source::Nodes(clients)) = (&self.cluster, &mut self.source) else {
            return Ok(());
        };
        let last = self.next.wrapping_sub(1) % clients.len();
        let mut conn = clients[last].get_multiplexed_async_connection().await?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await?;
        let mut learned = Vec::new();
        for addr in live_nodes(&nodes) {
            if learned.len() == MAX_LEARNED || cluster.listed.iter().any(|l| l == addr) {
                continue;
            }
            if let Some(url) = with_addr(&cluster.template, addr) {
                learned.push(single_client(&url, cluster.tls.clone())?);
            }
        }
        // The listed nodes first, always; the learned ones replace those learned before.
        clients.truncate(cluster.seeds);
        clients.extend(learned);
        Ok(())
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

/// The most nodes learned from a cluster (besides the listed ones).
const MAX_LEARNED: usize = 64;

/// The `host:port` of `url`.
fn addr_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let addr = authority
        .rfind('@')
        .map_or(authority, |i| &authority[i + 1..]);
    Some(addr.to_owned())
}

/// The `host:port` of every node `CLUSTER NODES` lists as reachable.
fn live_nodes(nodes: &str) -> impl Iterator<Item = &str> {
    nodes.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let addr = fields.nth(1)?.split(['@', ',']).next()?;
        let flags = fields.next()?;
        let down = flags
            .split(',')
            .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"));
        (!down && !addr.starts_with(':')).then_some(addr)
    })
}

/// `url` with its host and port replaced by `addr` (`host:port`): the same scheme, login and
/// database, on another node.
fn with_addr(url: &str, addr: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let login = authority.rfind('@').map_or("", |i| &authority[..=i]);
    Some(format!("{scheme}://{login}{addr}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_a_cluster_names_are_reached_with_the_seeds_login() {
        let nodes = "\
07c3 127.0.0.1:30004@40004 myself,master - 0 0 1 connected 0-5460
67ed 127.0.0.1:30002@40002,node-2.example master - 0 0 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 0 3 connected
6ec2 :0@0 slave,noaddr 292f 0 0 3 disconnected
824f 127.0.0.1:30005@40005 slave,fail? 07c3 0 0 1 connected
";
        assert_eq!(
            live_nodes(nodes).collect::<Vec<_>>(),
            ["127.0.0.1:30004", "127.0.0.1:30002"]
        );
        assert_eq!(
            with_addr("rediss://user:p@ss@10.0.0.1:6379/0", "10.0.0.2:6380").unwrap(),
            "rediss://user:p@ss@10.0.0.2:6380/0"
        );
        assert_eq!(
            with_addr("redis://10.0.0.1:6379", "10.0.0.2:6380").unwrap(),
            "redis://10.0.0.2:6380"
        );
        assert_eq!(
            addr_of("redis://:pw@10.0.0.1:6379/?protocol=resp3").unwrap(),
            "10.0.0.1:6379"
        );
        assert!(with_addr("10.0.0.1:6379", "x:1").is_none());
    }
}

//! One way to Redis for the stores that keep state there (feature `redis`): a single server, a
//! primary that Sentinel watches, or a Cluster. Scripts and commands run alike on the three
//! through [`Conn`], which implements the `redis` crate's async `ConnectionLike`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, RedisError, RedisFuture, RedisResult, Value};

use crate::error::ConfigError;

/// Where the Redis of a store is.
#[derive(Clone)]
pub(crate) enum Topology {
    /// One server (`redis://` or `rediss://` URL).
    Single(String),
    /// The seed nodes of a Cluster; the crate discovers the rest and follows its slot map.
    Cluster(Vec<String>),
    /// The primary of `service`, as the sentinels at these URLs name it.
    Sentinel {
        /// The name the sentinels monitor (`sentinel monitor <name> …`).
        service: String,
        /// The sentinels' URLs.
        sentinels: Vec<String>,
        /// How to log in to the primary: the username, password and database of this URL
        /// (its host is not used), and TLS when it is `rediss://`.
        primary: Option<String>,
    },
}

impl Topology {
    fn urls(&self) -> Vec<&str> {
        match self {
            Self::Single(url) => vec![url.as_str()],
            Self::Cluster(nodes) => nodes.iter().map(String::as_str).collect(),
            Self::Sentinel {
                sentinels, primary, ..
            } => sentinels
                .iter()
                .chain(primary)
                .map(String::as_str)
                .collect(),
        }
    }

    /// Whether any URL is `rediss://` (TLS).
    pub(crate) fn any_tls(&self) -> bool {
        self.urls().iter().any(|u| u.starts_with("rediss://"))
    }
}

/// TLS settings from the store's builder (feature `redis-tls`), `None` otherwise.
#[cfg(feature = "redis-tls")]
pub(crate) type Tls = Option<redis::TlsCertificates>;
/// TLS settings from the store's builder (feature `redis-tls`), `None` otherwise.
#[cfg(not(feature = "redis-tls"))]
pub(crate) type Tls = Option<std::convert::Infallible>;

/// The custom TLS settings of a builder, created empty on first use.
#[cfg(feature = "redis-tls")]
pub(crate) fn tls_settings(tls: &mut Tls) -> &mut redis::TlsCertificates {
    tls.get_or_insert(redis::TlsCertificates {
        client_tls: None,
        root_cert: None,
    })
}

/// A connection handle shared by every request of a store: cheap to clone.
#[derive(Clone)]
pub(crate) enum Link {
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
    Sentinel(Arc<SentinelLink>),
}

pub(crate) struct LazyCluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

pub(crate) struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    config: AsyncConnectionConfig,
}

fn kind_name(e: &RedisError) -> String {
    format!("{:?}", e.kind())
}

impl Link {
    /// Builds the handle; nothing connects before the first call.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `field` for no URL, a URL the `redis` crate refuses (never
    /// echoed: it may hold a password), `#insecure`, or an empty Sentinel service name.
    pub(crate) fn new(
        topology: &Topology,
        tls: Tls,
        timeout: Duration,
        field: &'static str,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { field, message };
        check(topology, field)?;
        let bad_url = |e: RedisError| invalid(format!("invalid redis url ({})", kind_name(&e)));
        match topology {
            Topology::Single(url) => {
                let client = single_client(url, tls).map_err(bad_url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(500));
                let conn = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| invalid(format!("redis connection manager: {}", kind_name(&e))))?;
                Ok(Self::Single(conn))
            }
            Topology::Cluster(nodes) => {
                let builder =
                    redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                        .connection_timeout(timeout)
                        .response_timeout(timeout)
                        .retries(3)
                        .min_retry_wait(10)
                        .max_retry_wait(200);
                #[cfg(feature = "redis-tls")]
                let builder = match tls {
                    Some(certs) => builder.certs(certs),
                    None => builder,
                };
                #[cfg(not(feature = "redis-tls"))]
                let _ = tls;
                let client = builder.build().map_err(bad_url)?;
                Ok(Self::Cluster(Arc::new(LazyCluster {
                    client,
                    conn: tokio::sync::OnceCell::new(),
                })))
            }
            Topology::Sentinel {
                service,
                sentinels,
                primary,
            } => {
                let client = sentinel_client(service, sentinels, primary.as_deref(), &tls, field)?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                Ok(Self::Sentinel(Arc::new(SentinelLink {
                    client: tokio::sync::Mutex::new(client),
                    current: Mutex::new(None),
                    config,
                })))
            }
        }
    }

    /// A connection for one call: connects first if needed (bound it with a timeout).
    pub(crate) async fn conn(&self) -> RedisResult<Conn> {
        match self {
            Self::Single(c) => Ok(Conn::Single(c.clone())),
            Self::Cluster(lazy) => {
                let conn = lazy
                    .conn
                    .get_or_try_init(|| lazy.client.get_async_connection())
                    .await?;
                Ok(Conn::Cluster(conn.clone()))
            }
            Self::Sentinel(link) => {
                let (generation, conn) = link.current().await?;
                Ok(Conn::Sentinel {
                    conn,
                    generation,
                    link: Arc::clone(link),
                })
            }
        }
    }
}

/// Checks what every connection to `topology` needs: a URL, no `#insecure`, and with TLS a
/// rustls provider (installed when the host chose none).
pub(crate) fn check(topology: &Topology, field: &'static str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { field, message };
    let urls = topology.urls();
    if urls.is_empty() {
        return Err(invalid("no Redis URL given".into()));
    }
    if urls.iter().any(|u| u.contains("#insecure")) {
        return Err(invalid(
            "`#insecure` (no certificate verification) is refused; trust the server's CA instead"
                .into(),
        ));
    }
    #[cfg(feature = "redis-tls")]
    if urls.iter().any(|u| u.starts_with("rediss://")) {
        // The `redis` crate builds its TLS configuration on rustls' process-wide provider.
        // With none installed and both of rustls' back ends compiled in (the host's
        // dependencies can ask for either), rustls would panic there: install the one
        // palisade uses everywhere, unless the host chose one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = crate::tls::provider().install_default();
        }
    }
    Ok(())
}

/// The client that asks the `sentinels` for the primary of `service`, logging in to it as
/// `primary` says.
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming `field` for an empty service, custom TLS settings (not
/// supported with Sentinel) or a URL the `redis` crate refuses (never echoed).
#[allow(clippy::unnecessary_to_owned)] // see the call: the signature depends on the features
pub(crate) fn sentinel_client(
    service: &str,
    sentinels: &[String],
    primary: Option<&str>,
    tls: &Tls,
    field: &'static str,
) -> Result<SentinelClient, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { field, message };
    let bad_url = |e: RedisError| invalid(format!("invalid redis url ({})", kind_name(&e)));
    if service.trim().is_empty() {
        return Err(invalid("the Sentinel service name is empty".into()));
    }
    if tls.is_some() {
        return Err(invalid(
            "a custom CA or client certificate is not supported with Sentinel; its servers must present certificates the Mozilla roots trust".into(),
        ));
    }
    let mut node = SentinelNodeConnectionInfo::default();
    let tls_url = primary.map_or_else(
        || sentinels.iter().any(|u| u.starts_with("rediss://")),
        |p| p.starts_with("rediss://"),
    );
    if tls_url {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    if let Some(url) = primary {
        use redis::IntoConnectionInfo as _;
        let info = url.into_connection_info().map_err(bad_url)?;
        node = node.set_redis_connection_info(info.redis_settings().clone());
    }
    SentinelClient::build(
        sentinels.iter().map(String::as_str).collect(),
        // A `String`: the `redis` crate takes one without TLS, `impl AsRef<str>` with it.
        service.to_owned(),
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(bad_url)
}

/// A client for one server (`url`), with the custom TLS settings if any.
#[cfg(feature = "redis-tls")]
pub(crate) fn single_client(url: &str, tls: Tls) -> RedisResult<redis::Client> {
    match tls {
        Some(certs) => redis::Client::build_with_tls(url, certs),
        None => redis::Client::open(url),
    }
}

/// A client for one server (`url`).
#[cfg(not(feature = "redis-tls"))]
pub(crate) fn single_client(url: &str, _: Tls) -> RedisResult<redis::Client> {
    redis::Client::open(url)
}

impl SentinelLink {
    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection to the primary the sentinels name now, asking them when none is known.
    async fn current(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(found) = self.cached() {
            return Ok(found);
        }
        let mut client = self.client.lock().await;
        // Another call may have found the primary while this one waited.
        if let Some(found) = self.cached() {
            return Ok(found);
        }
        let primary = client.async_get_client().await?;
        let conn = primary
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = current.as_ref().map_or(0, |(g, _)| g + 1);
        *current = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Forgets connection `generation` (unless a newer one replaced it already): the next call
    /// asks the sentinels again.
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            // Keep the generation counting up: a stale handle never forgets a newer one.
            *current = None;
        }
    }
}

/// Whether `e` says the server is no longer (or not) the primary, or the connection is gone:
/// time to ask the sentinels again.
fn primary_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.code()
            .is_some_and(|c| c == "READONLY" || c == "MASTERDOWN" || c == "LOADING")
}

/// Whether the command certainly did not run (safe to send again to the new primary).
fn not_run(e: &RedisError) -> bool {
    e.is_connection_refusal()
        || e.code()
            .is_some_and(|c| c == "READONLY" || c == "MASTERDOWN" || c == "LOADING")
}

/// One call's connection.
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel {
        conn: MultiplexedConnection,
        generation: u64,
        link: Arc<SentinelLink>,
    },
}

impl Conn {
    /// Runs `cmd` on the Sentinel primary; when the server says it is no longer the primary,
    /// asks the sentinels again and sends it once more to the new one.
    async fn sentinel_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let Self::Sentinel {
            conn,
            generation,
            link,
        } = self
        else {
            unreachable!("called on a Sentinel connection only")
        };
        match conn.req_packed_command(cmd).await {
            Err(e) if primary_lost(&e) => {
                link.forget(*generation);
                if !not_run(&e) {
                    return Err(e);
                }
                let (g, c) = link.current().await?;
                *generation = g;
                *conn = c;
                conn.req_packed_command(cmd).await.inspect_err(|e| {
                    if primary_lost(e) {
                        link.forget(g);
                    }
                })
            }
            other => other,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel { .. } => Box::pin(self.sentinel_command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel {
                conn,
                generation,
                link,
            } => {
                let (generation, link) = (*generation, Arc::clone(link));
                Box::pin(async move {
                    conn.req_packed_commands(pipeline, offset, count)
                        .await
                        .inspect_err(|e| {
                            if primary_lost(e) {
                                link.forget(generation);
                            }
                        })
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel { conn, .. } => conn.get_db(),
        }
    }
}

//! The Redis invalidation bus on a real Redis Cluster (three primaries, three replicas), behind
//! a real Sentinel set, and over TLS with a private CA and a client certificate, all on
//! loopback ports: instances sharing the deployment refuse a key revoked through any of them;
//! when the server an instance is subscribed to dies, the instance marks its bus down (caches
//! fall back to the safe lifetime), resubscribes elsewhere (a node the cluster named, the
//! promoted primary), drops its caches, and hears the next revocation. Some revocations are published by
//! `palisade keys revoke` from a configuration file, so the file's `invalidation.redis` items
//! (`mode`, `service`, TLS files) are shown to take effect.
//!
//! The tests start `redis-server` and set it up with `redis-cli` themselves. When either is
//! not installed they print a loud SKIPPED line and pass, unless `PALISADE_REQUIRE_REDIS` is
//! set (CI sets it), in which case they fail. Every wait is bounded by a tokio timeout.

#[path = "../support/redis_cluster.rs"]
mod redis_cluster;
#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use palisade::Palisade;
use palisade::authn::api_key::{
    ApiKeys, CachedKeyStore, KeyId, KeyRecord, KeySpec, KeyStore, MemoryKeyStore,
};
use palisade::clock::{Clock, SystemClock};
use palisade::error::StoreError;
use palisade::invalidation::{
    Invalidation, InvalidationBus, InvalidationListener, RedisBus, RedisBusBuilder,
};
use redis_cluster::{Cluster, Sentinels, wait_until, waited};
use redis_server::Redis;
use support::TestServer;

/// Long enough that only the bus (or the safe lifetime) can make an instance forget.
const TTL: Duration = Duration::from_secs(600);
/// How long a change may take to reach every instance before the test gives up.
const BOUND: Duration = Duration::from_secs(3);

/// The key "database" every instance reads, answering only when awaited.
#[derive(Clone)]
struct Db(MemoryKeyStore);

impl KeyStore for Db {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(id).await
    }
}

/// What one instance's hub told its caches: bus down (safe lifetime) and resyncs.
#[derive(Default)]
struct Seen {
    down: AtomicUsize,
    resyncs: AtomicUsize,
}

impl InvalidationListener for Seen {
    fn invalidate(&self, _: &Invalidation) {}
    fn resync(&self) {
        self.resyncs.fetch_add(1, Ordering::SeqCst);
    }
    fn bus_down(&self) {
        self.down.fetch_add(1, Ordering::SeqCst);
    }
}

/// One instance: its server, its bus, its key cache, what its hub told it.
struct Instance {
    server: TestServer,
    bus: RedisBus,
    cache: CachedKeyStore<Db>,
    seen: Arc<Seen>,
    _listener: Arc<dyn InvalidationListener>,
}

/// The keys and the key "database" the instances share.
struct World {
    keys: ApiKeys,
    store: MemoryKeyStore,
}

impl World {
    fn new() -> Self {
        Self {
            keys: ApiKeys::new(),
            store: MemoryKeyStore::new(),
        }
    }

    async fn instance(&self, bus: RedisBusBuilder) -> Instance {
        let bus = bus
            .channel("palisade-test:topologies")
            .safe_lifetime(Duration::from_secs(2))
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        assert!(
            bus.hub().wait_live(Duration::from_secs(10)).await,
            "subscribed"
        );
        let seen = Arc::new(Seen::default());
        let listener: Arc<dyn InvalidationListener> = seen.clone();
        bus.hub().listen(&listener);
        let cache = CachedKeyStore::builder(Db(self.store.clone()))
            .ttl(TTL)
            .bus(&bus)
            .build();
        let guard = Palisade::builder()
            .authenticate(self.keys.authenticator(cache.clone()))
            .build()
            .unwrap();
        Instance {
            server: TestServer::start(guard).await,
            bus,
            cache,
            seen,
            _listener: listener,
        }
    }

    /// Issues a key, stores it; its id and plaintext.
    fn issue(&self, subject: &str) -> (KeyId, String) {
        let issued = self.keys.generate(KeySpec::new(subject)).unwrap();
        self.store.insert(issued.record.clone());
        (
            *issued.record.id(),
            issued.plaintext.expose_secret().to_owned(),
        )
    }

    /// Revokes `id` in the "database" (no message: the caller publishes one).
    fn revoke(&self, id: &KeyId) {
        self.store.revoke(id, SystemClock.now());
    }
}

async fn status(i: &Instance, key: &str) -> u16 {
    i.server
        .get("/orders/1", &[("x-api-key", key)])
        .await
        .status
        .as_u16()
}

/// Polls until `key` answers `want` on every instance; fails past [`BOUND`].
async fn everywhere(instances: &[Instance], key: &str, want: u16, what: &str) {
    for (n, i) in instances.iter().enumerate() {
        let ok = tokio::time::timeout(BOUND, async {
            while status(i, key).await != want {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok();
        assert!(ok, "instance {n}: {what}: not {want} within {BOUND:?}");
    }
}

/// Publishes `message` through `i`, retrying (bounded) while the deployment fails over: a
/// publish that fails is the caller's to send again, per the bus's contract.
async fn publish(i: &Instance, message: &Invalidation) {
    let sent = tokio::time::timeout(Duration::from_secs(20), async {
        while i.bus.publish(message).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(sent.is_ok(), "published within 20 s");
}

/// `palisade keys revoke --config <file> --id <id>` with `env`; whether it published.
fn revoke_with_cli(file: &Path, id: &KeyId, env: &[(&str, &str)]) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["keys", "revoke", "--config"])
        .arg(file)
        .args(["--id", &id.to_string()])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    out.status.success()
}

/// Runs [`revoke_with_cli`] off the async workers, retrying (bounded) during a failover.
async fn revoke_from_file(file: &Path, id: &KeyId, env: &[(&str, &str)]) {
    let (file, id) = (file.to_owned(), *id);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sent = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        (0..20).any(|_| {
            revoke_with_cli(&file, &id, &env) || {
                std::thread::sleep(Duration::from_millis(250));
                false
            }
        })
    })
    .await
    .unwrap();
    assert!(sent, "palisade keys revoke published");
}

/// A configuration file holding `invalidation` (and the key file the CLI needs), in a
/// directory of its own; its path.
fn config_file(name: &str, invalidation: &str, extra: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("palisade-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in extra {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    let path = dir.join("palisade.yaml");
    let text =
        format!("invalidation:\n  channel: palisade-test:topologies\n  redis: {invalidation}\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// How many subscribed clients the node on `port` serves (`CLIENT LIST`, `sub=1`).
fn subscribers(cluster: &Cluster, port: u16) -> usize {
    let node = cluster.nodes.iter().find(|n| n.port == port).unwrap();
    node.cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.contains(" sub=1 "))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_revocation_reaches_every_instance_and_a_lost_node_is_left_for_another() {
    let Some(cluster) = Cluster::start("invalidation_on_a_cluster").await else {
        return;
    };
    let world = World::new();
    let urls = cluster.urls();
    let mut instances = Vec::new();
    // One seed node only: the bus learns the others from the cluster.
    for _ in 0..3 {
        instances.push(world.instance(RedisBus::cluster([urls[0].clone()])).await);
    }
    // Every subscription starts on the seed node.
    let first = cluster.nodes[0].port;
    wait_until("three subscriptions on the first node", 5, || {
        subscribers(&cluster, first) >= 3
    })
    .await;

    let (id, key) = world.issue("ada");
    everywhere(&instances, &key, 200, "cached").await;
    assert!(instances.iter().all(|i| i.cache.len() == 1));
    world.revoke(&id);
    publish(&instances[0], &Invalidation::ApiKeyRevoked { key_id: id }).await;
    everywhere(&instances, &key, 401, "revoked through instance 0").await;

    // The node every instance listens on, the only one listed, crashes (a primary: the
    // cluster fails over too): each moves to a node it learned from the cluster.
    let (id, key) = world.issue("bo");
    everywhere(&instances, &key, 200, "cached").await;
    let resyncs: Vec<usize> = instances
        .iter()
        .map(|i| i.seen.resyncs.load(Ordering::SeqCst))
        .collect();
    cluster.nodes[0].crash();
    for (n, i) in instances.iter().enumerate() {
        let seen = &i.seen;
        let moved = waited(10, || {
            seen.down.load(Ordering::SeqCst) >= 1
                && seen.resyncs.load(Ordering::SeqCst) > resyncs[n]
                && i.bus.hub().is_live()
        })
        .await;
        assert!(
            moved,
            "instance {n}: down (safe lifetime), then resubscribed"
        );
        assert!(i.cache.is_empty(), "instance {n}: caches dropped");
    }
    let elsewhere: usize = cluster.nodes[1..]
        .iter()
        .map(|n| subscribers(&cluster, n.port))
        .sum();
    assert!(elsewhere >= 3, "resubscribed on other nodes: {elsewhere}");

    // The next revocation is heard, published from a file's `mode: cluster` section.
    everywhere(&instances, &key, 200, "cached again").await;
    world.revoke(&id);
    let file = config_file(
        "invalidation-cluster",
        "{mode: cluster, url_env: PALISADE_TEST_NODES}",
        &[],
    );
    let nodes = urls[1..].join(",");
    revoke_from_file(&file, &id, &[("PALISADE_TEST_NODES", &nodes)]).await;
    everywhere(&instances, &key, 401, "revoked from the file").await;
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_a_revocation_reaches_every_instance_across_a_primary_failover() {
    let Some(set) = Sentinels::start("invalidation_behind_sentinel").await else {
        return;
    };
    let world = World::new();
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(
            world
                .instance(RedisBus::sentinel(set.service, set.urls()))
                .await,
        );
    }
    let (id, key) = world.issue("ada");
    everywhere(&instances, &key, 200, "cached").await;
    world.revoke(&id);
    publish(&instances[1], &Invalidation::ApiKeyRevoked { key_id: id }).await;
    everywhere(&instances, &key, 401, "revoked through instance 1").await;

    // The primary crashes; the sentinels promote the replica.
    let (id, key) = world.issue("bo");
    everywhere(&instances, &key, 200, "cached").await;
    let resyncs: Vec<usize> = instances
        .iter()
        .map(|i| i.seen.resyncs.load(Ordering::SeqCst))
        .collect();
    let old = set.primary_port();
    set.server(old).crash();
    wait_until("the sentinels name a new primary", 30, || {
        set.primary_port() != old
    })
    .await;
    for (n, i) in instances.iter().enumerate() {
        let seen = &i.seen;
        let moved = waited(15, || {
            seen.down.load(Ordering::SeqCst) >= 1
                && seen.resyncs.load(Ordering::SeqCst) > resyncs[n]
                && i.bus.hub().is_live()
        })
        .await;
        assert!(
            moved,
            "instance {n}: down (safe lifetime), then on the new primary"
        );
        assert!(i.cache.is_empty(), "instance {n}: caches dropped");
    }

    // The next revocation is heard, published from a file's `mode: sentinel` section.
    everywhere(&instances, &key, 200, "cached again").await;
    world.revoke(&id);
    let file = config_file(
        "invalidation-sentinel",
        &format!(
            "{{mode: sentinel, service: {}, url_env: PALISADE_TEST_SENTINELS}}",
            set.service
        ),
        &[],
    );
    let sentinels = set.urls().join(",");
    revoke_from_file(&file, &id, &[("PALISADE_TEST_SENTINELS", &sentinels)]).await;
    everywhere(&instances, &key, 401, "revoked from the file").await;
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_private_ca_and_a_client_certificate_a_revocation_reaches_every_instance() {
    let Some(redis) = Redis::start_tls_verifying_clients("invalidation_over_tls").await else {
        return;
    };
    let fixture = |name: &str| std::fs::read(Redis::fixture(name)).unwrap();
    let (ca, cert, key_pem) = (fixture("ca.crt"), fixture("node.crt"), fixture("node.key"));
    let world = World::new();
    let tls = || {
        RedisBus::builder(redis.url())
            .tls_ca(ca.clone())
            .tls_client_cert(cert.clone(), key_pem.clone())
    };
    let instances = [world.instance(tls()).await, world.instance(tls()).await];

    // Without the client certificate, or trusting another CA, the server is never reached:
    // the hub stays down.
    for bus in [
        RedisBus::builder(redis.url()).tls_ca(ca.clone()),
        RedisBus::builder(redis.url())
            .tls_ca(fixture("other-ca.crt"))
            .tls_client_cert(cert.clone(), key_pem.clone()),
    ] {
        let bus = bus.timeout(Duration::from_millis(300)).build().unwrap();
        assert!(!bus.hub().wait_live(Duration::from_secs(1)).await);
        assert!(bus.publish(&Invalidation::PolicyChanged).await.is_err());
    }

    let (id, key) = world.issue("ada");
    everywhere(&instances, &key, 200, "cached").await;
    world.revoke(&id);
    publish(&instances[0], &Invalidation::ApiKeyRevoked { key_id: id }).await;
    everywhere(&instances, &key, 401, "revoked through instance 0").await;

    // From a file whose TLS items name files beside it.
    let (id, key) = world.issue("bo");
    everywhere(&instances, &key, 200, "cached").await;
    world.revoke(&id);
    let file = config_file(
        "invalidation-tls",
        "{url_env: PALISADE_TEST_REDIS, tls_ca_file: ca.pem, \
         tls_client_cert_file: client.pem, tls_client_key_file: client.key}",
        &[
            ("ca.pem", &ca),
            ("client.pem", &cert),
            ("client.key", &key_pem),
        ],
    );
    revoke_from_file(&file, &id, &[("PALISADE_TEST_REDIS", &redis.url())]).await;
    everywhere(&instances, &key, 401, "revoked from the file").await;
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

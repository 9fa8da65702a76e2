//! Invalidation across instances over a real `redis-server` on loopback: three stacks (three
//! instances) share one Redis; a key, a token or a policy changed through one is refused by
//! every other within a bounded wait; with Redis stopped, caches fall back to the safe
//! lifetime, and once it is back they were dropped. Each wait polls with a short sleep and
//! gives up after a bound (no assertion on wall time).

#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../support/mod.rs"]
mod support;

mod file_policy;
mod replay;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use jsonwebtoken::{EncodingKey, Header};
use palisade::Palisade;
use palisade::authn::Chain;
use palisade::authn::api_key::{
    ApiKeys, CachedKeyStore, KeyId, KeyRecord, KeySpec, KeyStore, MemoryKeyStore,
};
use palisade::authn::bearer::{ClaimMap, ClaimPath};
use palisade::authn::jwt::{Algorithm, Issuer, JwtAuthenticator, Key};
use palisade::authz::{AuthzLayer, LivePolicy, PolicySource, PolicySpec, WatchHandle};
use palisade::clock::{Clock, SystemClock, Timestamp};
use palisade::error::StoreError;
use palisade::invalidation::{Invalidation, InvalidationBus, RedisBus};
use redis_server::Redis;
use serde_json::json;
use support::{Reply, TestServer};

const ISS: &str = "https://idp.palisade.test";
const AUD: &str = "orders-api";
const SECRET: &[u8] = b"a-test-hmac-secret-of-32-bytes!!";
/// Long enough that only the bus (or the safe lifetime) can make an instance forget.
const TTL: Duration = Duration::from_secs(600);
/// How long a change may take to reach every instance before the test gives up.
const BOUND: Duration = Duration::from_secs(2);

/// The policy "database" every instance reads.
#[derive(Clone)]
struct Source(Arc<Mutex<PolicySpec>>);

impl PolicySource for Source {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn policy(readers_see_reports: bool) -> PolicySpec {
    let reports = if readers_see_reports {
        "reader"
    } else {
        "admin"
    };
    PolicySpec::builder()
        .role("reader", [])
        .role("admin", [])
        .allow([Method::GET], "/orders/{id}", ["reader"])
        .allow([Method::GET], "/reports/{name}", [reports])
        .build()
}

/// The key "database": answers only when awaited, as a real one does (a memory store answers
/// at once, which a cache in front of it would not need to remember).
#[derive(Clone)]
struct Db(MemoryKeyStore);

impl KeyStore for Db {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(id).await
    }
}

/// What the instances share: the key "database", the policy source, the Redis.
struct World {
    redis: Redis,
    keys: ApiKeys,
    store: MemoryKeyStore,
    source: Source,
}

/// One instance: its server, its bus, its key cache.
struct Instance {
    server: TestServer,
    bus: RedisBus,
    cache: CachedKeyStore<Db>,
    jwt: JwtAuthenticator,
    _watch: WatchHandle,
}

impl World {
    async fn start(test: &str) -> Option<Self> {
        Some(Self {
            redis: Redis::start(test).await?,
            keys: ApiKeys::new(),
            store: MemoryKeyStore::new(),
            source: Source(Arc::new(Mutex::new(policy(true)))),
        })
    }

    async fn instance(&self, safe_lifetime: Duration) -> Instance {
        self.instance_at(&self.redis.url(), safe_lifetime).await
    }

    /// An instance whose bus reaches Redis at `url` (for instance as another Redis user).
    async fn instance_at(&self, url: &str, safe_lifetime: Duration) -> Instance {
        let bus = RedisBus::builder(url)
            .channel("palisade-test:invalidation")
            .safe_lifetime(safe_lifetime)
            .build()
            .unwrap();
        let cache = CachedKeyStore::builder(Db(self.store.clone()))
            .ttl(TTL)
            .bus(&bus)
            .build();
        let jwt = JwtAuthenticator::builder()
            .issuer(
                Issuer::new(ISS)
                    .key(Key::hmac(SECRET, Algorithm::HS256).unwrap())
                    .audience(AUD),
            )
            .claims(ClaimMap::new().roles(ClaimPath::parse("roles")))
            .invalidation(&bus)
            .build()
            .unwrap();
        let live = LivePolicy::from_spec(&policy(true)).unwrap();
        let watch = live.watch_with_bus(self.source.clone(), TTL, &bus);
        // Wired before the bus goes live: what the bus's log replays reaches every cache.
        assert!(
            bus.hub().wait_live(Duration::from_secs(5)).await,
            "subscribed"
        );
        let chain = Chain::new(self.keys.authenticator(cache.clone()), jwt.clone());
        let guard = Palisade::builder()
            .authenticate(chain)
            .authorize(AuthzLayer::new(live))
            .build()
            .unwrap();
        Instance {
            server: TestServer::start(guard).await,
            bus,
            cache,
            jwt,
            _watch: watch,
        }
    }

    async fn three(&self) -> [Instance; 3] {
        let safe = Duration::from_secs(5);
        [
            self.instance(safe).await,
            self.instance(safe).await,
            self.instance(safe).await,
        ]
    }
}

fn token(sub: &str, jti: &str, iat: u64) -> String {
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "jti": jti, "iat": iat,
        "exp": SystemClock.now().as_unix_secs() + 600, "roles": ["reader"],
    });
    let header = Header::new(jsonwebtoken::Algorithm::HS256);
    let token =
        support::encode_jwt(&header, &claims, &EncodingKey::from_secret(SECRET).unwrap()).unwrap();
    format!("Bearer {token}")
}

async fn with(i: &Instance, path: &str, header: (&str, &str)) -> Reply {
    i.server.get(path, &[header]).await
}

/// Polls `instance` until `path` with `header` answers `status`; false past [`BOUND`].
async fn becomes(i: &Instance, path: &str, header: (&str, &str), status: u16) -> bool {
    server_becomes(&i.server, path, header, status).await
}

/// Polls `server` until `path` with `header` answers `status`; false past [`BOUND`].
async fn server_becomes(
    server: &TestServer,
    path: &str,
    header: (&str, &str),
    status: u16,
) -> bool {
    tokio::time::timeout(BOUND, async {
        while server.get(path, &[header]).await.status != status {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

fn reason(i: &Instance) -> &'static str {
    i.server.last_refusal().unwrap().reason()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_instance_is_refused_by_the_others() {
    let Some(world) = World::start("a_key_revoked_through_one_instance").await else {
        return;
    };
    let instances = world.three().await;
    let issued = world
        .keys
        .generate(KeySpec::new("ada").role("reader"))
        .unwrap();
    let other = world
        .keys
        .generate(KeySpec::new("ada").role("reader"))
        .unwrap();
    world.store.insert(issued.record.clone());
    world.store.insert(other.record.clone());
    let key = ("x-api-key", issued.plaintext.expose_secret());
    let other_key = ("x-api-key", other.plaintext.expose_secret());
    for i in &instances {
        assert_eq!(with(i, "/orders/1", key).await.status, 200);
        assert_eq!(i.cache.len(), 1, "cached on each instance");
    }
    // Revoked in the "database" and published once, through the first instance.
    let id: KeyId = *issued.record.id();
    world.store.revoke(&id, SystemClock.now());
    instances[0]
        .bus
        .publish(&Invalidation::ApiKeyRevoked { key_id: id })
        .await
        .unwrap();
    for i in &instances {
        assert!(
            becomes(i, "/orders/1", key, 401).await,
            "refused within the bound"
        );
        assert_eq!(reason(i), "key_revoked");
    }
    // Every key of a subject: the second key goes too.
    for i in &instances {
        assert_eq!(with(i, "/orders/1", other_key).await.status, 200);
    }
    world.store.revoke(other.record.id(), SystemClock.now());
    instances[2]
        .bus
        .publish(&Invalidation::SubjectKeysRevoked {
            subject: "ada".into(),
        })
        .await
        .unwrap();
    for i in &instances {
        assert!(becomes(i, "/orders/1", other_key, 401).await);
        assert_eq!(reason(i), "key_revoked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7519_4_1_7_a_revoked_jti_is_refused_by_every_instance() {
    let Some(world) = World::start("a_revoked_jti_is_refused_by_every_instance").await else {
        return;
    };
    let instances = world.three().await;
    let now = SystemClock.now().as_unix_secs();
    let revoked = token("bob", "jti-1", now);
    let kept = token("bob", "jti-2", now);
    for i in &instances {
        assert_eq!(
            with(i, "/orders/1", ("authorization", &revoked))
                .await
                .status,
            200
        );
    }
    instances[1]
        .bus
        .publish(&Invalidation::TokenRevoked {
            issuer: ISS.into(),
            jti: "jti-1".into(),
        })
        .await
        .unwrap();
    for i in &instances {
        let reply = with(i, "/orders/1", ("authorization", &revoked)).await;
        let refused =
            reply.status == 401 || becomes(i, "/orders/1", ("authorization", &revoked), 401).await;
        assert!(refused, "refused within the bound");
        assert_eq!(reason(i), "token_revoked");
        let reply = with(i, "/orders/1", ("authorization", &revoked)).await;
        assert_eq!(reply.json()["code"], "invalid_token");
        assert_eq!(
            with(i, "/orders/1", ("authorization", &kept)).await.status,
            200
        );
    }
    // Every token of carol issued before T: cached ones and fresh ones alike; one issued
    // after T passes.
    let old = token("carol", "c-1", now - 10);
    let unseen = token("carol", "c-2", now - 5);
    for i in &instances {
        assert_eq!(
            with(i, "/orders/1", ("authorization", &old)).await.status,
            200
        );
    }
    instances[0]
        .bus
        .publish(&Invalidation::SubjectTokensRevokedBefore {
            subject: "carol".into(),
            before: Timestamp::from_unix_secs(now),
        })
        .await
        .unwrap();
    let newer = token("carol", "c-3", now + 1);
    for i in &instances {
        assert!(becomes(i, "/orders/1", ("authorization", &old), 401).await);
        assert_eq!(reason(i), "token_revoked");
        assert_eq!(
            with(i, "/orders/1", ("authorization", &unseen))
                .await
                .status,
            401
        );
        assert_eq!(
            with(i, "/orders/1", ("authorization", &newer)).await.status,
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tightened_policy_applies_on_every_instance() {
    let Some(world) = World::start("a_tightened_policy_applies_on_every_instance").await else {
        return;
    };
    let instances = world.three().await;
    let issued = world
        .keys
        .generate(KeySpec::new("ada").role("reader"))
        .unwrap();
    world.store.insert(issued.record.clone());
    let key = ("x-api-key", issued.plaintext.expose_secret());
    for i in &instances {
        let ok = becomes(i, "/reports/daily", key, 200).await;
        assert!(ok, "{:?}", with(i, "/reports/daily", key).await);
    }
    *world.source.0.lock().unwrap() = policy(false);
    instances[0]
        .bus
        .publish(&Invalidation::PolicyChanged)
        .await
        .unwrap();
    for i in &instances {
        let ok = becomes(i, "/reports/daily", key, 403).await;
        assert!(
            ok,
            "withdrawn within the bound: {:?}",
            with(i, "/reports/daily", key).await
        );
        assert_eq!(
            with(i, "/orders/1", key).await.status,
            200,
            "the rest stays"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_caches_fall_back_to_the_safe_lifetime_then_are_dropped() {
    let Some(mut world) = World::start("with_redis_stopped_caches_fall_back").await else {
        return;
    };
    let safe = Duration::from_millis(300);
    let instance = world.instance(safe).await;
    let issued = world
        .keys
        .generate(KeySpec::new("ada").role("reader"))
        .unwrap();
    world.store.insert(issued.record.clone());
    let key = ("x-api-key", issued.plaintext.expose_secret());
    assert_eq!(with(&instance, "/orders/1", key).await.status, 200);
    let now = SystemClock.now().as_unix_secs();
    let bearer = token("bob", "b-1", now);
    assert_eq!(
        with(&instance, "/orders/1", ("authorization", &bearer))
            .await
            .status,
        200
    );
    assert_eq!(instance.jwt.cached_tokens(), 1);
    let hub = instance.bus.hub().clone();
    let resyncs = hub.resyncs();

    world.redis.kill();
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        while hub.is_live() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(down.is_ok(), "the bus noticed Redis going away");
    assert_eq!(
        instance.jwt.cached_tokens(),
        0,
        "verified tokens dropped on the outage"
    );
    // Revoked where no message can carry it: the cache (ttl ten minutes) forgets the key
    // within the safe lifetime.
    world.store.revoke(issued.record.id(), SystemClock.now());
    assert!(
        becomes(&instance, "/orders/1", key, 401).await,
        "the safe lifetime applied"
    );
    assert_eq!(reason(&instance), "key_revoked");

    // Cached while down, then Redis is back: every cache was dropped on reconnection.
    let other = world
        .keys
        .generate(KeySpec::new("bo").role("reader"))
        .unwrap();
    world.store.insert(other.record.clone());
    let other_key = ("x-api-key", other.plaintext.expose_secret());
    assert_eq!(with(&instance, "/orders/1", other_key).await.status, 200);
    assert!(!instance.cache.is_empty());
    world.redis.restart().await;
    assert!(hub.wait_live(Duration::from_secs(10)).await, "reconnected");
    assert!(hub.resyncs() > resyncs, "caches dropped on reconnection");
    assert!(
        instance.cache.is_empty(),
        "nothing cached survived the outage"
    );
    // And the bus carries messages again.
    instance
        .bus
        .publish(&Invalidation::PolicyChanged)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_stack_takes_a_bus_and_hands_it_back() {
    use palisade::config::{Config, Format};
    let Some(world) = World::start("a_configured_stack_takes_a_bus").await else {
        return;
    };
    let bus = RedisBus::builder(world.redis.url())
        .safe_lifetime(Duration::from_secs(2))
        .build()
        .unwrap();
    // The host's bus replaces the file's section.
    let yaml = "api_keys: {keys: []}\ninvalidation: {redis: {url_env: PALISADE_TEST_UNSET_URL}}\n";
    let config = Config::parse(yaml, Format::Yaml).unwrap();
    let layer = config.builder().invalidation(bus.clone()).build().unwrap();
    let handed = layer.handles().invalidation().expect("the bus").clone();
    assert!(handed.hub().wait_live(Duration::from_secs(5)).await);
    assert_eq!(handed.hub().safe_lifetime(), Duration::from_secs(2));
    handed.publish(&Invalidation::PolicyChanged).await.unwrap();

    // Without one, the section's variable must be set: an error naming the item.
    let err = config.builder().build().unwrap_err().to_string();
    assert!(err.contains("invalidation.redis.url_env"), "{err}");
    assert!(err.contains("PALISADE_TEST_UNSET_URL"), "{err}");
    // A typo in the section stops the parse.
    let typo = "invalidation: {redis: {url_env: X}, chanel: y}\n";
    let err = Config::parse(typo, Format::Yaml).unwrap_err().to_string();
    assert!(err.contains("chanel"), "{err}");
}

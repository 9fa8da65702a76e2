//! Soak and faults, bounded in time and loopback only: the whole authentication and quota stack
//! under sustained concurrent load with rotating API keys, bearer JWTs, opaque tokens and
//! client addresses, while its backends fail one after the other. Resident memory is sampled
//! and must level off; each failure must have the outcome the documentation promises: fail
//! closed with 503 (never the handler), other credentials unaffected, recovery without a
//! restart, and audit losses counted, never silent.
//!
//! Stack: audit (a sink that can be made to fail) → quota per client address (memory store
//! bounded below the number of addresses) → API keys, then JWTs from a local JWKS endpoint,
//! then opaque tokens through a local introspection endpoint → quota per principal on a real
//! `redis-server` (fail closed) → handler.
//!
//! The length of the steady phase is `PALISADE_SOAK_SECONDS` (default 60; the whole test takes
//! about that plus 10 s).

#[allow(dead_code)]
#[path = "../bearer/idp.rs"]
mod idp;
#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use idp::{CLIENT_ID, CLIENT_SECRET, Idp, Mode};
use jsonwebtoken::{EncodingKey, Header};
use palisade::audit::{AuditLayer, AuditRecord, AuditSink};
use palisade::authn::Chain;
use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authn::bearer::{ClaimMap, ClaimPath};
use palisade::authn::introspection::IntrospectionAuthenticator;
use palisade::authn::jwt::{Issuer, JwtAuthenticator};
use palisade::clock::{Clock, SystemClock};
use palisade::quota::{KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule, RedisStore};
use palisade::{BoxError, Palisade};
use redis_server::Redis;
use serde_json::{Value, json};
use tokio::time::Instant;

const ISS: &str = "https://idp.palisade.test/realms/acme";
const AUD: &str = "orders-api";
const KEYS: usize = 2_000;
const JWTS: usize = 600;
const OPAQUE: usize = 300;
const ADDRESSES: u32 = 50_000;
const ADDRESS_BOUND: usize = 2_000;
const CLIENTS: usize = 12;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn jwks(kids: &[&str]) -> Value {
    let all: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap_or_default()))
        .cloned()
        .collect();
    json!({ "keys": keys })
}

fn now() -> u64 {
    SystemClock.now().as_unix_secs()
}

fn mint(kid: &str, subject: &str) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": subject, "exp": now() + 3_600, "iat": now(),
        "realm_access": {"roles": ["reader"]},
    });
    let key = EncodingKey::from_ec_der(&fixture(&format!("{kid}.key.der")));
    support::encode_jwt(&header, &claims, &key).unwrap()
}

/// An audit sink that discards what it is given, or fails when told to.
#[derive(Clone, Default)]
struct FlakySink(Arc<AtomicBool>);

impl AuditSink for FlakySink {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        if self.0.load(Ordering::Relaxed) {
            return Err("the audit disk is full".into());
        }
        std::hint::black_box(batch);
        Ok(())
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Which credential the load sends: API keys always rotate; the bearer kinds can be switched.
#[derive(Default)]
struct Credentials {
    keys: Vec<String>,
    jwts: Mutex<Vec<String>>,
    opaque: Vec<String>,
}

/// Statuses by credential kind, for the current phase.
type Tally = BTreeMap<(&'static str, u16), usize>;

struct Load {
    tally: Mutex<Tally>,
    requests: AtomicU64,
    slowest_ms: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    /// The tally so far, emptied for the next phase.
    fn take(&self) -> Tally {
        self.slowest_ms.store(0, Ordering::Relaxed);
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

fn count(t: &Tally, kind: &str, status: u16) -> usize {
    t.get(&(kind, status)).copied().unwrap_or(0)
}

fn total(t: &Tally, kind: &str) -> usize {
    t.iter()
        .filter(|((k, _), _)| *k == kind)
        .map(|(_, n)| n)
        .sum()
}

async fn client_loop(
    id: usize,
    addr: SocketAddr,
    creds: Arc<Credentials>,
    load: Arc<Load>,
    next: Arc<AtomicUsize>,
) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    while !load.stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let (kind, header, value) = match i % 3 {
            0 => ("key", "x-api-key", creds.keys[i % creds.keys.len()].clone()),
            1 => {
                let jwts = creds.jwts.lock().unwrap();
                (
                    "jwt",
                    "authorization",
                    format!("Bearer {}", jwts[i % jwts.len()]),
                )
            }
            _ => (
                "opaque",
                "authorization",
                format!("Bearer {}", creds.opaque[i % creds.opaque.len()]),
            ),
        };
        let ip = 0x0a00_0000 + (i as u32 % ADDRESSES);
        let req = http::Request::get(format!("http://{addr}/v1/orders/{id}"))
            .header(header, value)
            .header("x-forwarded-for", std::net::Ipv4Addr::from(ip).to_string())
            .body(Empty::new())
            .unwrap();
        let start = Instant::now();
        let status = match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await
        {
            Ok(Ok(res)) => {
                let status = res.status().as_u16();
                let _ = res.into_body().collect().await;
                status
            }
            // A hung request is a failure of the test, counted as status 0.
            _ => 0,
        };
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        load.slowest_ms.fetch_max(ms, Ordering::Relaxed);
        load.requests.fetch_add(1, Ordering::Relaxed);
        *load
            .tally
            .lock()
            .unwrap()
            .entry((kind, status))
            .or_default() += 1;
    }
}

/// Waits until `check` holds on a fresh tally (polling every 100 ms, at most `limit`); returns
/// how long it took.
async fn until(load: &Load, limit: Duration, check: impl Fn(&Tally) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        load.take();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = load.take();
        if check(&t) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not within {limit:?}; last tally {t:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_rotating_callers_and_failing_backends() {
    let Some(mut redis) = Redis::start("soak_with_rotating_callers_and_failing_backends").await
    else {
        return;
    };
    let steady = Duration::from_secs(
        std::env::var("PALISADE_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );

    // The identity provider: es256 published; es256-next signs the tokens of a later phase.
    let idp = Idp::start(jwks(&["es256"])).await;
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let mut creds = Credentials::default();
    for i in 0..KEYS {
        let issued = keys.generate(KeySpec::new(format!("key-{i}"))).unwrap();
        store.insert(issued.record);
        creds.keys.push(issued.plaintext.expose_secret().to_owned());
    }
    *creds.jwts.lock().unwrap() = (0..JWTS)
        .map(|i| mint("es256", &format!("jwt-{i}")))
        .collect();
    for i in 0..OPAQUE {
        let token = format!("opaque-{i}-{}", "x".repeat(24));
        idp.add_token(
            &token,
            json!({"active": true, "sub": format!("opaque-{i}"), "aud": AUD, "exp": now() + 3_600}),
        );
        creds.opaque.push(token);
    }
    let creds = Arc::new(creds);

    let jwt = JwtAuthenticator::builder()
        .issuer(Issuer::new(ISS).jwks_url(idp.jwks_url()).audience(AUD))
        .claims(ClaimMap::keycloak())
        .fetch_timeout(Duration::from_millis(300))
        .retry_after_failure(Duration::from_millis(200))
        .unknown_kid_refetch_interval(Duration::from_millis(200))
        // Fewer than the tokens in rotation: the cache evicts all along.
        .cache_capacity(JWTS / 2)
        .pass_opaque_tokens()
        .build()
        .unwrap();
    let introspection = IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .audience(AUD)
        .claims(ClaimMap::new().roles(ClaimPath::parse("roles")))
        .timeout(Duration::from_millis(300))
        // Short, so that an endpoint failure shows within the phase, and recovery too.
        .positive_ttl(Duration::from_millis(200))
        .circuit_breaker(5, Duration::from_millis(500))
        .build()
        .unwrap();
    let per_ip = MemoryStore::with_max_keys(ADDRESS_BOUND);
    let guard = Palisade::builder()
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .limit_clients(
            QuotaLayer::builder(per_ip.clone())
                .rule(QuotaRule::new(
                    KeyBy::client_ip(),
                    QuotaPolicy::new("per-ip", [Limit::per_second(100_000)]),
                ))
                .build()
                .unwrap(),
        )
        .authenticate(Chain::new(keys.authenticator(store), jwt).or(introspection))
        .limit_principals(
            QuotaLayer::builder(RedisStore::builder(redis.url()).build().unwrap())
                .rule(QuotaRule::new(
                    KeyBy::Subject,
                    QuotaPolicy::new("per-user", [Limit::per_second(100_000)]),
                ))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let sink = FlakySink::default();
    let (audit, audit_handle) = AuditLayer::builder(sink.clone())
        .capacity(65_536)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/v1/orders/{id}", get(|| async { "ok" }))
        .layer(guard)
        .layer(audit);
    let addr = support::serve(app).await;

    let load = Arc::new(Load {
        tally: Mutex::default(),
        requests: AtomicU64::new(0),
        slowest_ms: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client_loop(
                id,
                addr,
                creds.clone(),
                load.clone(),
                next.clone(),
            ))
        })
        .collect();

    // --- Steady load: everything answered 200; memory levels off. -----------------------------
    let mut samples = Vec::new();
    let start = Instant::now();
    load.take();
    while start.elapsed() < steady {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib());
    }
    let t = load.take();
    let served: usize = t.values().sum();
    eprintln!(
        "steady: {served} requests in {steady:?} ({:.0}/s), RSS KiB {samples:?}, tally {t:?}",
        served as f64 / steady.as_secs_f64()
    );
    for kind in ["key", "jwt", "opaque"] {
        assert!(count(&t, kind, 200) > 0, "{kind}: {t:?}");
        assert_eq!(count(&t, kind, 200), total(&t, kind), "{kind}: {t:?}");
    }
    // Level: the peak of the last third is within 16 MiB (and 25%) of the middle third's.
    let third = samples.len() / 3;
    let middle = *samples[third..2 * third].iter().max().unwrap();
    let last = *samples[2 * third..].iter().max().unwrap();
    assert!(
        last <= middle + 16 * 1024 && last <= middle + middle / 4,
        "resident memory still growing: {samples:?}"
    );
    // The per-address store stayed at its bound while 50,000 addresses went by.
    assert!(
        per_ip.len() <= ADDRESS_BOUND,
        "{} addresses held",
        per_ip.len()
    );

    // --- Redis dies: the per-principal stage fails closed, for every credential. ---------------
    redis.kill();
    let took = until(&load, Duration::from_secs(5), |t| {
        t.iter().all(|((_, s), _)| *s == 503) && !t.is_empty()
    })
    .await;
    eprintln!("redis down: every answer 503 after {took:?}");
    redis.restart().await;
    let took = until(&load, Duration::from_secs(10), |t| {
        ["key", "jwt", "opaque"]
            .iter()
            .all(|k| count(t, k, 200) > 0 && count(t, k, 200) == total(t, k))
    })
    .await;
    eprintln!("redis back: all 200 again after {took:?}, without a restart of the service");

    // --- The JWKS endpoint fails, then hangs, while tokens of a new key arrive: they cannot be
    // checked, so 503 (the kept key set does not hold their key); other credentials are served.
    idp.set_jwks(jwks(&["es256", "es256-next"]));
    for mode in [Mode::Failing, Mode::Hanging] {
        idp.set_jwks_mode(mode);
        *creds.jwts.lock().unwrap() = (0..50)
            .map(|i| mint("es256-next", &format!("next-{i}")))
            .collect();
        until(&load, Duration::from_secs(5), |t| {
            count(t, "jwt", 503) > 0
                && count(t, "jwt", 200) == 0
                && count(t, "key", 200) == total(t, "key")
                && count(t, "opaque", 200) == total(t, "opaque")
        })
        .await;
        // Fail closed within the fetch timeout: no request waits for the hung endpoint.
        assert!(
            load.slowest_ms.load(Ordering::Relaxed) < 3_000,
            "{mode:?}: a request took {} ms",
            load.slowest_ms.load(Ordering::Relaxed)
        );
        eprintln!("jwks {mode:?}: new-key tokens 503, other credentials 200");
    }
    idp.set_jwks_mode(Mode::Up);
    until(&load, Duration::from_secs(5), |t| {
        count(t, "jwt", 200) > 0 && count(t, "jwt", 200) == total(t, "jwt")
    })
    .await;
    eprintln!("jwks back: the new key's tokens are accepted");

    // --- The introspection endpoint fails, then hangs. -----------------------------------------
    for mode in [Mode::Failing, Mode::Hanging] {
        idp.set_introspection_mode(mode);
        until(&load, Duration::from_secs(5), |t| {
            count(t, "opaque", 503) > 0
                && count(t, "opaque", 200) == 0
                && count(t, "key", 200) == total(t, "key")
                && count(t, "jwt", 200) == total(t, "jwt")
        })
        .await;
        assert!(
            load.slowest_ms.load(Ordering::Relaxed) < 3_000,
            "{mode:?}: a request took {} ms",
            load.slowest_ms.load(Ordering::Relaxed)
        );
        eprintln!("introspection {mode:?}: opaque tokens 503, other credentials 200");
    }
    idp.set_introspection_mode(Mode::Up);
    until(&load, Duration::from_secs(5), |t| {
        count(t, "opaque", 200) > 0 && count(t, "opaque", 200) == total(t, "opaque")
    })
    .await;

    // --- The audit sink fails: requests are served, failures are counted, and the sink's ------
    // batches are written again (with backoff, up to 5 s apart) once it recovers. -------------
    let failed_before = audit_handle.failed();
    sink.0.store(true, Ordering::Relaxed);
    until(&load, Duration::from_secs(5), |t| {
        !t.is_empty() && t.iter().all(|((_, s), _)| *s == 200)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        audit_handle.failed() > failed_before,
        "sink failures not counted"
    );
    sink.0.store(false, Ordering::Relaxed);
    let written_before = audit_handle.written();
    let recovering = Instant::now();
    while audit_handle.written() <= written_before {
        assert!(
            recovering.elapsed() < Duration::from_secs(8),
            "the sink did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // --- Stop: every request is accounted for in the audit counters. ---------------------------
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    audit_handle.shutdown().await;
    let requests = load.requests.load(Ordering::Relaxed);
    let (written, failed, dropped) = (
        audit_handle.written(),
        audit_handle.failed(),
        audit_handle.dropped(),
    );
    eprintln!(
        "{requests} requests; audit: {written} written, {failed} failed, {dropped} dropped; \
         {} address evictions",
        per_ip.evictions()
    );
    // Each request is written, failed or dropped (loss reports are extra written events).
    assert!(
        written + failed + dropped >= requests,
        "an audit event vanished uncounted"
    );
    // More addresses went by than the store may hold (it made room by dropping idle buckets).
    assert!(requests > ADDRESS_BOUND as u64 * 3);
    assert!(per_ip.len() <= ADDRESS_BOUND);
}

//! Measures how long a revocation takes to be enforced by the other instances: three guarded
//! axum servers on loopback share one Redis through their `RedisBus`; for each change, the
//! first instance publishes it, and the other two are asked over HTTP, again and again, until
//! they refuse. The time from `publish` to each instance's first refusal is recorded, for three
//! kinds of change:
//!
//! - a revoked API key (cached by each instance's `CachedKeyStore`, TTL one hour);
//! - a revoked JWT (`jti`, verified tokens cached until their `exp`);
//! - a tightened policy (`PolicyChanged`; each instance reloads its policy source).
//!
//! Prints p50, p99 and the maximum per kind.
//!
//! ```sh
//! redis-server --port 6390 --save '' --appendonly no &
//! cargo run --release --example invalidation_latency --features jwt,redis -- \
//!     --redis redis://127.0.0.1:6390/ --count 200
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Method;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use palisade::Palisade;
use palisade::authn::Chain;
use palisade::authn::api_key::{ApiKeys, CachedKeyStore, KeySpec, MemoryKeyStore};
use palisade::authn::bearer::{ClaimMap, ClaimPath};
use palisade::authn::jwt::{Algorithm, Issuer, JwtAuthenticator, Key};
use palisade::authz::{AuthzLayer, LivePolicy, PolicySource, PolicySpec, WatchHandle};
use palisade::clock::{Clock, SystemClock};
use palisade::error::StoreError;
use palisade::invalidation::{Invalidation, InvalidationBus, RedisBus};
use palisade::transport::ConnectionScheme;
use tokio::time::Instant;

const ISS: &str = "https://idp.example";
const AUD: &str = "orders-api";
const SECRET: &[u8] = b"an-example-hmac-secret-of-32-b!!";
/// Long, so that only the bus can make an instance forget.
const TTL: Duration = Duration::from_secs(3600);

/// The policy "database" every instance reads.
#[derive(Clone)]
struct Source(Arc<Mutex<PolicySpec>>);

impl PolicySource for Source {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }
}

/// Roles `r0` to `r{total - 1}`; those below `granted` (and `admin`) may read
/// `/reports/{n}`.
fn policy(total: usize, granted: usize) -> PolicySpec {
    let roles: Vec<String> = (0..total).map(|n| format!("r{n}")).collect();
    let mut b = PolicySpec::builder().role("reader", []).role("admin", []);
    for role in &roles {
        b = b.role(role, []);
    }
    b.allow([Method::GET], "/orders/{id}", ["reader"])
        .allow(
            [Method::GET],
            "/reports/{n}",
            roles[..granted].iter().map(String::as_str).chain(["admin"]),
        )
        .build()
}

struct Instance {
    addr: SocketAddr,
    bus: RedisBus,
    _watch: WatchHandle,
}

async fn instance(
    url: &str,
    channel: &str,
    db: &MemoryKeyStore,
    source: &Source,
) -> Result<Instance, Box<dyn std::error::Error>> {
    let bus = RedisBus::builder(url).channel(channel).build()?;
    let keys = CachedKeyStore::builder(db.clone())
        .ttl(TTL)
        .bus(&bus)
        .build();
    let jwt = JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .key(Key::hmac(SECRET, Algorithm::HS256)?)
                .audience(AUD),
        )
        .claims(ClaimMap::new().roles(ClaimPath::parse("roles")))
        .invalidation(&bus)
        .build()?;
    let live = LivePolicy::from_source(source).await?;
    let watch = live.watch_with_bus(source.clone(), TTL, &bus);
    if !bus.hub().wait_live(Duration::from_secs(5)).await {
        return Err(format!("no Redis at {url}").into());
    }
    let guard = Palisade::builder()
        .authenticate(Chain::new(ApiKeys::new().authenticator(keys), jwt))
        .authorize(AuthzLayer::new(live))
        .build()?;
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/reports/{n}", get(|| async { "report" }))
        .layer(guard)
        // What the host's TLS acceptor would say: the credentials came over TLS.
        .layer(axum::Extension(ConnectionScheme::Https));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Instance {
        addr,
        bus,
        _watch: watch,
    })
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn status(client: &HttpClient, addr: SocketAddr, path: &str, auth: &(&str, String)) -> u16 {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header(auth.0, &auth.1)
        .body(Empty::new())
        .expect("a valid request");
    client
        .request(req)
        .await
        .map_or(0, |res| res.status().as_u16())
}

/// Asks `addr` until it answers `want`; the time since `start`.
async fn until(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    auth: &(&str, String),
    want: u16,
    start: Instant,
) -> Result<Duration, String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while status(client, addr, path, auth).await != want {
            tokio::task::yield_now().await;
        }
        start.elapsed()
    })
    .await
    .map_err(|_| format!("{path} did not answer {want} within 5 s"))
}

fn jwt(jti: &str) -> Result<String, jsonwebtoken::errors::Error> {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let claims = serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": "bob", "jti": jti, "roles": ["reader"],
        "iat": SystemClock.now().as_unix_secs(),
        "exp": SystemClock.now().as_unix_secs() + 3600,
    });
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET)?,
    )
}

fn report(kind: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |p: f64| {
        // Nearest rank.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[rank]
    };
    println!(
        "{kind:<22} {:>5} × 2   p50 {:>10.3?}   p99 {:>10.3?}   max {:>10.3?}",
        latencies.len() / 2,
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "redis://127.0.0.1:6379/".to_owned();
    let mut count = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => url = args.next().ok_or("--redis needs a URL")?,
            "--count" => count = args.next().ok_or("--count needs a number")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let channel = format!("palisade-latency:{}", std::process::id());
    let db = MemoryKeyStore::new();
    let source = Source(Arc::new(Mutex::new(policy(count, count))));
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(instance(&url, &channel, &db, &source).await?);
    }
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (publisher, others) = (&instances[0], &instances[1..]);

    // API keys: each is cached by the other instances, then revoked in the database and
    // announced.
    let issuer = ApiKeys::new();
    let mut keys = Vec::new();
    for _ in 0..count {
        let issued = issuer.generate(KeySpec::new("ada").role("reader"))?;
        db.insert(issued.record.clone());
        let auth = ("x-api-key", issued.plaintext.expose_secret().to_owned());
        for i in others {
            until(&client, i.addr, "/orders/1", &auth, 200, Instant::now()).await?;
        }
        keys.push((issued.record, auth));
    }
    let mut latencies = Vec::new();
    for (record, auth) in &keys {
        db.revoke(record.id(), SystemClock.now());
        let start = Instant::now();
        publisher
            .bus
            .publish(&Invalidation::ApiKeyRevoked {
                key_id: *record.id(),
            })
            .await?;
        for i in others {
            latencies.push(until(&client, i.addr, "/orders/1", auth, 401, start).await?);
        }
    }
    report("API key revoked", latencies);

    // JWTs: each is verified and cached by the other instances, then its `jti` revoked.
    let mut tokens = Vec::new();
    for n in 0..count {
        let jti = format!("jti-{n}");
        let auth = ("authorization", format!("Bearer {}", jwt(&jti)?));
        for i in others {
            until(&client, i.addr, "/orders/1", &auth, 200, Instant::now()).await?;
        }
        tokens.push((jti, auth));
    }
    let mut latencies = Vec::new();
    for (jti, auth) in &tokens {
        let start = Instant::now();
        publisher
            .bus
            .publish(&Invalidation::TokenRevoked {
                issuer: ISS.into(),
                jti: jti.as_str().into(),
            })
            .await?;
        for i in others {
            latencies.push(until(&client, i.addr, "/orders/1", auth, 401, start).await?);
        }
    }
    report("JWT revoked (jti)", latencies);

    // The policy: one role at a time loses the reports; each round asks as a key of that role.
    let mut latencies = Vec::new();
    for n in (0..count).rev() {
        let issued = issuer.generate(KeySpec::new("rita").role(format!("r{n}")))?;
        db.insert(issued.record.clone());
        let auth = ("x-api-key", issued.plaintext.expose_secret().to_owned());
        for i in others {
            until(&client, i.addr, "/reports/1", &auth, 200, Instant::now()).await?;
        }
        *source
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = policy(count, n);
        let start = Instant::now();
        publisher.bus.publish(&Invalidation::PolicyChanged).await?;
        for i in others {
            latencies.push(until(&client, i.addr, "/reports/1", &auth, 403, start).await?);
        }
    }
    report("policy tightened", latencies);
    Ok(())
}

//! `examples/sqlite_key_store.rs` against a real SQLite database file, over real HTTP on
//! loopback: keys and grants read from the database, revocation and withdrawn grants taking
//! effect within the caches' bounds without a restart, unknown keys refused, and a broken
//! database failing closed (503).

mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/sqlite_key_store.rs"]
mod example;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use example::{Database, SqliteKeyStore, SqlitePolicySource};
use palisade::authn::api_key::{ApiKeys, KeySpec};
use palisade::authz::{AuthzLayer, LivePolicy, PolicySource};
use palisade::clock::{Clock, SystemClock};
use palisade::invalidation::InProcessBus;
use palisade::{Palisade, Principal};
use tokio::time::Instant;

const KEY_TTL: Duration = Duration::from_millis(300);
const POLICY_POLL: Duration = Duration::from_millis(100);

/// `GET path` with `key`: the status and the problem `code`, if any.
async fn get_with(addr: SocketAddr, path: &str, key: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("x-api-key", key)
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

/// Polls `check` until it returns true, and returns how long that took (panics after 5 s).
async fn within<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> Duration {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(5), "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_grants_from_a_database_file_with_bounded_revocation() {
    let dir = std::env::temp_dir().join(format!("palisade-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.db");
    let _ = std::fs::remove_file(&path);
    let db = Database::open(&path).unwrap();

    // Two keys and one grant, written to the file.
    let keys = ApiKeys::new();
    let ada = keys.generate(KeySpec::new("ada").role("reader")).unwrap();
    let bob = keys.generate(KeySpec::new("bob").role("reader")).unwrap();
    let cy = keys.generate(KeySpec::new("cy").role("reader")).unwrap();
    db.insert_key(&ada.record).await.unwrap();
    db.insert_key(&bob.record).await.unwrap();
    db.add_role("reader", &[]).await.unwrap();
    db.grant("reader", "GET", "/v1/orders/{id}").await.unwrap();
    db.grant("reader", "*", "/v1/reports/*").await.unwrap();

    let bus = InProcessBus::new();
    let source = SqlitePolicySource(db.clone());
    let policy = LivePolicy::from_spec(&source.load().await.unwrap()).unwrap();
    let _watch = policy.watch(source, POLICY_POLL);
    let app = Router::new()
        .route(
            "/v1/orders/{id}",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .route("/v1/reports/{name}", get(|| async { "report" }))
        .layer(
            Palisade::builder()
                .authenticate(keys.authenticator(SqliteKeyStore::cached(db.clone(), KEY_TTL, &bus)))
                .authorize(AuthzLayer::new(policy))
                .build()
                .unwrap(),
        );
    let addr = support::serve(app).await;
    let ada_key = ada.plaintext.expose_secret();
    let bob_key = bob.plaintext.expose_secret();

    // Both keys work, from the file.
    assert_eq!(get_with(addr, "/v1/orders/1", ada_key).await.0, 200);
    assert_eq!(get_with(addr, "/v1/orders/1", bob_key).await.0, 200);
    assert_eq!(get_with(addr, "/v1/reports/daily", bob_key).await.0, 200);

    // A key of the right format that the database does not hold: 401, unknown key.
    let stranger = keys.generate(KeySpec::new("eve")).unwrap();
    let (status, code) = get_with(addr, "/v1/orders/1", stranger.plaintext.expose_secret()).await;
    assert_eq!((status, code.as_str()), (401, "invalid_key"));

    // Revoked in the database: refused within the key cache's lifetime, without a restart.
    db.revoke_key(*ada.record.id(), SystemClock.now())
        .await
        .unwrap();
    let took = within(|| async {
        get_with(addr, "/v1/orders/1", ada_key).await == (401, "key_revoked".to_owned())
    })
    .await;
    assert!(
        took <= KEY_TTL + Duration::from_millis(500),
        "revocation took {took:?}"
    );
    // The other key is untouched.
    assert_eq!(get_with(addr, "/v1/orders/1", bob_key).await.0, 200);

    // Revoked and published on the bus: refused on the very next request, cache or not.
    db.insert_key(&cy.record).await.unwrap();
    let cy_key = cy.plaintext.expose_secret();
    assert_eq!(get_with(addr, "/v1/orders/1", cy_key).await.0, 200);
    db.revoke_key_everywhere(*cy.record.id(), SystemClock.now(), &bus)
        .await
        .unwrap();
    let (status, code) = get_with(addr, "/v1/orders/1", cy_key).await;
    assert_eq!((status, code.as_str()), (401, "key_revoked"));

    // A grant withdrawn in the database: refused within the policy's poll interval.
    db.revoke_grants("reader", "/v1/reports/*").await.unwrap();
    let took =
        within(|| async { get_with(addr, "/v1/reports/daily", bob_key).await.0 == 403 }).await;
    assert!(
        took <= POLICY_POLL + Duration::from_millis(500),
        "withdrawal took {took:?}"
    );
    assert_eq!(get_with(addr, "/v1/orders/1", bob_key).await.0, 200);

    // The database breaks (its key table gone): a key not in the cache fails closed, 503.
    let carol = keys.generate(KeySpec::new("carol").role("reader")).unwrap();
    db.insert_key(&carol.record).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE api_keys").unwrap();
    let (status, code) = get_with(addr, "/v1/orders/1", carol.plaintext.expose_secret()).await;
    // The client learns only that it may retry; the cause stays in the logs and the audit.
    assert_eq!((status, code.as_str()), (503, "temporarily_unavailable"));

    std::fs::remove_dir_all(&dir).unwrap();
}

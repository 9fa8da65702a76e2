//! The `Authorizer`'s three answers over loopback, with object ownership read from a real
//! SQLite database file: allowed, denied (403) and, when that database is gone, unavailable
//! (503 with `Retry-After`, the handler never reached, the cause in the audit event only).
//! Authorizers and policy sources chosen at run time serve through `Box<dyn Dyn…>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use palisade::Palisade;
use palisade::audit::{AuditLayer, Outcome};
use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authz::{
    Authorizer, AuthzLayer, AuthzRequest, DynAuthorizer, DynPolicySource, LivePolicy, PolicySource,
    PolicySpec, Refusal,
};
use palisade::rejection::{Rejection, UnavailableReason};

use super::support::{MemorySink, TestServer};

/// Who owns each order, read from the `orders` table of a SQLite file on every request.
struct OrderOwners {
    db: PathBuf,
}

/// The owner of order `id`: `Ok(None)` when there is no such order, `Err` when the database
/// cannot be read (gone, locked, corrupt).
fn owner_of(db: &Path, id: &str) -> rusqlite::Result<Option<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT owner FROM orders WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    rows.next()?.map(|row| row.get(0)).transpose()
}

impl Authorizer for OrderOwners {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        let Some(id) = request.params.get("id") else {
            return Ok(());
        };
        let (db, id) = (self.db.clone(), id.to_owned());
        let owner = tokio::task::spawn_blocking(move || owner_of(&db, &id)).await;
        match owner {
            Ok(Ok(Some(owner))) if owner == request.principal.subject() => Ok(()),
            Ok(Ok(Some(_))) => Err(Refusal::deny("not_owner")),
            Ok(Ok(None)) => Err(Refusal::deny("no_such_order")),
            // The database's own words go to the host's log, never into the answer.
            Ok(Err(_)) | Err(_) => {
                Err(Refusal::unavailable("orders_db").retry_after(Duration::from_secs(7)))
            }
        }
    }
}

/// Only callers of the tenant named in the path.
struct SameTenant;

impl Authorizer for SameTenant {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        match request.params.get("id") {
            Some(id) if Some(id) == request.principal.tenant() => Ok(()),
            _ => Err(Refusal::deny("tenant_mismatch")),
        }
    }
}

/// The authorizer a deployment names in its settings, chosen at run time.
fn authorizer_named(name: &str, db: &Path) -> Box<dyn DynAuthorizer> {
    match name {
        "owners" => Box::new(OrderOwners { db: db.to_owned() }),
        "tenant" => Box::new(SameTenant),
        _ => Box::new(()),
    }
}

fn orders_db(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "palisade-authz-{tag}-{}.sqlite",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id TEXT PRIMARY KEY, owner TEXT NOT NULL);
         INSERT INTO orders VALUES ('1', 'alice'), ('2', 'bob');",
    )
    .unwrap();
    path
}

fn policy() -> PolicySpec {
    PolicySpec::builder()
        .role("customer", [])
        .allow([Method::GET], "/orders/{id}", ["customer"])
        .build()
}

/// A server whose orders are guarded by `authorizer`, audited into the returned sink; the key
/// of alice (tenant `1`).
async fn start<Az: Authorizer>(authorizer: Az) -> (TestServer, MemorySink, String) {
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let alice = keys
        .generate(KeySpec::new("alice").role("customer").tenant("1"))
        .unwrap();
    store.insert(alice.record);
    let sink = MemorySink::default();
    let live = LivePolicy::from_spec(&policy()).unwrap();
    let guard = Palisade::builder()
        .authenticate(keys.authenticator(store))
        .authorize(AuthzLayer::new(live).with_authorizer(authorizer))
        .audit(AuditLayer::builder(sink.clone()))
        .build()
        .unwrap();
    let key = alice.plaintext.expose_secret().to_owned();
    (TestServer::start(guard).await, sink, key)
}

#[tokio::test]
async fn rfc9110_10_2_3_an_authorizer_whose_database_is_down_answers_503_with_retry_after() {
    let db = orders_db("down");
    let (server, sink, key) = start(OrderOwners { db: db.clone() }).await;
    let auth = [("x-api-key", key.as_str())];
    let get = |path: &'static str| server.get(path, &auth);

    assert_eq!(get("/orders/1").await.status, StatusCode::OK);
    let theirs = get("/orders/2").await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    assert_eq!(theirs.json()["code"], "not_owner");
    assert_eq!(get("/orders/9").await.json()["code"], "no_such_order");
    assert_eq!(server.hits(), 1);

    std::fs::remove_file(&db).unwrap();
    let down = get("/orders/1").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.headers["retry-after"], "7");
    assert_eq!(down.json()["code"], "temporarily_unavailable");
    assert_eq!(down.headers["content-type"], "application/problem+json");
    // Neither the host's cause nor the database's error text reaches the client.
    let body = down.visible_text();
    for secret in ["orders_db", "sqlite", "unable to open", "database"] {
        assert!(!body.to_lowercase().contains(secret), "{secret} in {body}");
    }
    assert_eq!(server.hits(), 1, "the handler was reached");
    match server.last_refusal() {
        Some(Rejection::Unavailable(u)) => {
            assert_eq!(u.reason(), UnavailableReason::AuthorizerUnavailable);
            assert_eq!(u.cause(), Some("orders_db"));
        }
        other => panic!("{other:?}"),
    }

    // Audit records the precise reason and the host's cause.
    let events = sink.wait_for(4).await;
    let last = events.last().unwrap();
    assert_eq!(last.status, Some(503));
    match &last.outcome {
        Some(Outcome::Refused {
            layer,
            reason,
            cause,
            ..
        }) => {
            assert_eq!(layer, "authz");
            assert_eq!(reason, "authorizer_unavailable");
            assert_eq!(cause.as_deref(), Some("orders_db"));
        }
        other => panic!("{other:?}"),
    }
    assert!(sink.lines().contains(r#""cause":"orders_db""#));
}

#[tokio::test]
async fn an_outage_without_a_hint_says_retry_after_one_second() {
    let db = orders_db("nohint");
    std::fs::remove_file(&db).unwrap();
    struct Down(PathBuf);
    impl Authorizer for Down {
        async fn authorize(&self, r: &AuthzRequest<'_>) -> Result<(), Refusal> {
            let id = r.params.get("id").unwrap_or_default();
            owner_of(&self.0, id).map_err(|_| Refusal::unavailable("orders_db"))?;
            Ok(())
        }
    }
    let (server, _sink, key) = start(Down(db)).await;
    let down = server.get("/orders/1", &[("x-api-key", &key)]).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.headers["retry-after"], "1");
    assert_eq!(server.hits(), 0);
}

/// An authorizer that never answers: its database accepted the connection and went silent.
struct Hung;

impl Authorizer for Hung {
    async fn authorize(&self, _: &AuthzRequest<'_>) -> Result<(), Refusal> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_hung_authorizer_is_cut_off_at_its_timeout_with_503_and_retry_after() {
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let alice = keys
        .generate(KeySpec::new("alice").role("customer").tenant("1"))
        .unwrap();
    store.insert(alice.record);
    let sink = MemorySink::default();
    let live = LivePolicy::from_spec(&policy()).unwrap();
    let authz = AuthzLayer::new(live)
        .with_authorizer(Hung)
        .with_authorizer_timeout(Duration::from_millis(200));
    let guard = Palisade::builder()
        .authenticate(keys.authenticator(store))
        .authorize(authz)
        .audit(AuditLayer::builder(sink.clone()))
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;
    let key = alice.plaintext.expose_secret().to_owned();

    // Only the timeout can answer: the authorizer itself never does.
    let down = server.get("/orders/1", &[("x-api-key", &key)]).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.headers["retry-after"], "1");
    assert_eq!(down.json()["code"], "temporarily_unavailable");
    assert_eq!(server.hits(), 0, "the handler was reached");
    let events = sink.wait_for(1).await;
    match &events[0].outcome {
        Some(Outcome::Refused { reason, cause, .. }) => {
            assert_eq!(reason, "authorizer_unavailable");
            assert_eq!(cause.as_deref(), Some("authorizer_timeout"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_authorizer_chosen_at_run_time_serves_through_a_box_dyn() {
    let db = orders_db("dyn");
    for (name, own, other_tenant) in [
        ("owners", StatusCode::OK, StatusCode::FORBIDDEN),
        ("tenant", StatusCode::OK, StatusCode::FORBIDDEN),
        ("none", StatusCode::OK, StatusCode::OK),
    ] {
        let (server, _sink, key) = start(authorizer_named(name, &db)).await;
        let auth = [("x-api-key", key.as_str())];
        let get = |path: &'static str| server.get(path, &auth);
        // Order 1 is alice's, and `1` is her tenant; order 2 is neither.
        assert_eq!(get("/orders/1").await.status, own, "{name}");
        assert_eq!(get("/orders/2").await.status, other_tenant, "{name}");
    }
    let (server, _sink, key) = start(authorizer_named("tenant", &db)).await;
    let r = server.get("/orders/2", &[("x-api-key", &key)]).await;
    assert_eq!(r.json()["code"], "tenant_mismatch");
    let _ = std::fs::remove_file(&db);
}

#[tokio::test]
async fn a_policy_source_chosen_at_run_time_reloads_through_a_box_dyn() {
    let dir = std::env::temp_dir().join(format!("palisade-dyn-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.yaml");
    std::fs::write(
        &file,
        "roles: [{name: customer}]\nroutes: [{path: \"/orders/{id}\", roles: [customer]}]\n",
    )
    .unwrap();
    let live = LivePolicy::from_spec(&PolicySpec::builder().build()).unwrap();
    for name in ["file", "code"] {
        let source: Box<dyn DynPolicySource> = match name {
            "file" => Box::new(palisade::authz::FileSource::new(&file)),
            _ => Box::new(policy()),
        };
        assert!(source.load().await.is_ok(), "{name}");
        live.reload(&source).await.unwrap();
        let (server, _sink, key) = start_with(live.clone()).await;
        let r = server.get("/orders/1", &[("x-api-key", &key)]).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// As [`start`], enforcing `live` with no authorizer.
async fn start_with(live: LivePolicy) -> (TestServer, MemorySink, String) {
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let alice = keys
        .generate(KeySpec::new("alice").role("customer"))
        .unwrap();
    store.insert(alice.record);
    let guard = Palisade::builder()
        .authenticate(keys.authenticator(store))
        .authorize(AuthzLayer::new(live))
        .build()
        .unwrap();
    let key = alice.plaintext.expose_secret().to_owned();
    (TestServer::start(guard).await, MemorySink::default(), key)
}

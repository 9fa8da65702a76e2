//! API keys and the authorization policy kept in a database: a [`KeyStore`] and a
//! [`PolicySource`] on SQLite (through `rusqlite`), each with a short in-memory cache, so that a
//! revoked key or a withdrawn grant stops working within a bounded time without a restart.
//!
//! ```sh
//! cargo run --example sqlite_key_store -- --db palisade.db
//! ```
//!
//! On first run it creates the tables, issues a demo key (printed once) and grants the `reader`
//! role `GET /v1/orders/{id}`. Then try, from another shell:
//!
//! ```sh
//! sqlite3 palisade.db "UPDATE api_keys SET revoked_at = '2026-01-01T00:00:00Z'"
//! ```
//!
//! and the key is refused (401, `key_revoked`) within the cache's lifetime (5 s here);
//! `DELETE FROM grants` withdraws the grant within the policy's poll interval (2 s here).
//!
//! Design notes, for a store of your own:
//!
//! - **One indexed lookup by key id**, answered from the cache when fresh. Misses are cached
//!   too (an unknown id costs the same as a known one, so ids cannot be probed by timing), and
//!   the cache is bounded.
//! - **Revocation within `ttl`**: a cached record is served for at most `ttl`, then read again.
//! - **Fail closed**: a database error is a `StoreError`, which palisade answers with 503, never
//!   with the handler.
//! - **Blocking calls off the runtime**: `rusqlite` blocks, so queries run in
//!   `spawn_blocking`; palisade's own timeout bounds each lookup.
//! - The table holds the key's hash (SHA-256, or HMAC with a pepper), never the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::Method;
use palisade::authn::api_key::{KeyHash, KeyId};
use palisade::authz::PolicySource;
use palisade::error::StoreErrorKind;
use palisade::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::time::Instant;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,          -- hex SHA-256 (or HMAC) of the key, never the key
    subject     TEXT NOT NULL,
    roles       TEXT NOT NULL DEFAULT '',   -- comma-separated
    scopes      TEXT NOT NULL DEFAULT '',
    tenant      TEXT,
    tier        TEXT,
    name        TEXT,
    created_at  TEXT,                   -- RFC 3339
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE TABLE IF NOT EXISTS roles (
    name        TEXT PRIMARY KEY,
    inherits    TEXT NOT NULL DEFAULT ''    -- comma-separated role names
);
CREATE TABLE IF NOT EXISTS grants (
    role        TEXT NOT NULL,
    method      TEXT NOT NULL,          -- GET, POST... or * for every method
    path        TEXT NOT NULL           -- a route template: /v1/orders/{id}, /admin/*
);
";

/// An error of the database, as palisade's `StoreError` (its message names no key).
fn store_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, e)
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn time(s: Option<String>) -> Result<Option<Timestamp>, StoreError> {
    s.map(|s| Timestamp::parse_rfc3339(&s).map_err(store_error))
        .transpose()
}

/// The shared connection. SQLite serializes writers anyway; one connection behind a mutex
/// keeps the example short (a pool such as `r2d2_sqlite` fits the same shape).
#[derive(Clone, Debug)]
pub struct Database(Arc<Mutex<Connection>>);

impl Database {
    /// Opens (or creates) the database file and its tables.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(store_error)?;
        conn.execute_batch(SCHEMA).map_err(store_error)?;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(store_error)?
    }

    /// Stores a key record (as `palisade keys generate` prints it, or `ApiKeys::generate`
    /// returns it).
    pub async fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let p = record.principal();
        let row = (
            record.id().to_string(),
            record.hash().to_hex(),
            p.subject().to_owned(),
            p.roles().collect::<Vec<_>>().join(","),
            p.scopes().collect::<Vec<_>>().join(","),
            p.tenant().map(str::to_owned),
            p.tier().map(str::to_owned),
            record.name().map(str::to_owned),
            record.created_at().map(|t| t.to_string()),
            record.expires_at().map(|t| t.to_string()),
            record.revoked_at().map(|t| t.to_string()),
        );
        self.run(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, hash, subject, roles, scopes, tenant, tier, name,
                     created_at, expires_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10
                ],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    /// Marks key `id` revoked at `at`. Takes effect within the key store's cache lifetime.
    pub async fn revoke_key(&self, id: KeyId, at: Timestamp) -> Result<bool, StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2",
                params![at.to_string(), id.to_string()],
            )
            .map(|n| n > 0)
            .map_err(store_error)
        })
        .await
    }

    /// Declares `role`, inheriting `inherits`.
    pub async fn add_role(&self, role: &str, inherits: &[&str]) -> Result<(), StoreError> {
        let (role, inherits) = (role.to_owned(), inherits.join(","));
        self.run(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO roles (name, inherits) VALUES (?1, ?2)",
                params![role, inherits],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    /// Grants `method` (or `*`) on the route template `path` to `role`.
    pub async fn grant(&self, role: &str, method: &str, path: &str) -> Result<(), StoreError> {
        let row = (role.to_owned(), method.to_owned(), path.to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT INTO grants (role, method, path) VALUES (?1, ?2, ?3)",
                params![row.0, row.1, row.2],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    /// Withdraws every grant of `role` on `path`.
    pub async fn revoke_grants(&self, role: &str, path: &str) -> Result<(), StoreError> {
        let (role, path) = (role.to_owned(), path.to_owned());
        self.run(move |c| {
            c.execute(
                "DELETE FROM grants WHERE role = ?1 AND path = ?2",
                params![role, path],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    fn read_key(conn: &Connection, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = conn
            .query_row(
                "SELECT hash, subject, roles, scopes, tenant, tier, name, created_at,
                        expires_at, revoked_at
                 FROM api_keys WHERE id = ?1",
                params![id.to_string()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                },
            )
            .optional()
            .map_err(store_error)?;
        let Some((hash, subject, roles, scopes, tenant, tier, name, created, expires, revoked)) =
            row
        else {
            return Ok(None);
        };
        let hash = KeyHash::from_hex(&hash).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::InvalidData,
                "a stored hash is not 64 hex digits",
            )
        })?;
        let mut spec = KeySpec::new(subject);
        for r in list(&roles) {
            spec = spec.role(r);
        }
        for s in list(&scopes) {
            spec = spec.scope(s);
        }
        if let Some(t) = tenant {
            spec = spec.tenant(t);
        }
        if let Some(t) = tier {
            spec = spec.tier(t);
        }
        if let Some(n) = name {
            spec = spec.name(n);
        }
        if let Some(t) = time(created)? {
            spec = spec.created_at(t);
        }
        if let Some(t) = time(expires)? {
            spec = spec.expires_at(t);
        }
        let record = spec.into_record(id, hash);
        Ok(Some(match time(revoked)? {
            Some(at) => record.revoked(at),
            None => record,
        }))
    }

    fn read_policy(conn: &Connection) -> Result<PolicySpec, StoreError> {
        let mut b = PolicySpec::builder();
        let mut roles = conn
            .prepare("SELECT name, inherits FROM roles ORDER BY name")
            .map_err(store_error)?;
        let roles = roles
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(store_error)?;
        for row in roles {
            let (name, inherits) = row.map_err(store_error)?;
            b = b.role(&name, list(&inherits));
        }
        let mut grants = conn
            .prepare("SELECT role, method, path FROM grants ORDER BY path, method, role")
            .map_err(store_error)?;
        let grants = grants
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(store_error)?;
        for row in grants {
            let (role, method, path) = row.map_err(store_error)?;
            b = if method == "*" {
                b.allow_any_method(&path, [role.as_str()])
            } else {
                let method = Method::from_bytes(method.as_bytes()).map_err(store_error)?;
                b.allow([method], &path, [role.as_str()])
            };
        }
        Ok(b.build())
    }
}

/// Answers by key id (a record, or none), with when they were read.
type Cache = HashMap<KeyId, (Option<KeyRecord>, Instant)>;

/// Key records from the database, cached for `ttl` (hits and misses alike, at most
/// `max_cached` ids).
#[derive(Clone, Debug)]
pub struct SqliteKeyStore {
    db: Database,
    cache: Arc<Mutex<Cache>>,
    ttl: Duration,
    max_cached: usize,
}

impl SqliteKeyStore {
    /// A store reading `db`, remembering each answer for `ttl`.
    pub fn new(db: Database, ttl: Duration) -> Self {
        Self {
            db,
            cache: Arc::default(),
            ttl,
            max_cached: 10_000,
        }
    }

    fn cached(&self, id: &KeyId) -> Option<Option<KeyRecord>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (record, at) = cache.get(id)?;
        (at.elapsed() < self.ttl).then(|| record.clone())
    }
}

impl KeyStore for SqliteKeyStore {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        if let Some(hit) = self.cached(id) {
            return Ok(hit);
        }
        let id = *id;
        let record = self.db.run(move |c| Database::read_key(c, id)).await?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.max_cached {
            // Bounded: drop what has expired, and everything if that is not enough.
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= self.max_cached {
                cache.clear();
            }
        }
        cache.insert(id, (record.clone(), Instant::now()));
        Ok(record)
    }

    /// A fresh cached answer at once (no boxed future, no blocking thread).
    fn get_now(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        self.cached(id).map(Ok)
    }
}

/// The policy's roles and grants from the database, read on every poll of
/// [`LivePolicy::watch`].
#[derive(Clone, Debug)]
pub struct SqlitePolicySource(pub Database);

impl PolicySource for SqlitePolicySource {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        self.0.run(Database::read_policy).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut db_path = std::path::PathBuf::from("palisade.db");
    let mut listen: SocketAddr = "127.0.0.1:8083".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db_path = args.next().ok_or("--db needs a path")?.into(),
            "--listen" => listen = args.next().ok_or("--listen needs an address")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }

    let db = Database::open(&db_path)?;
    let keys = ApiKeys::new();
    let source = SqlitePolicySource(db.clone());
    if source.load().await?.roles.is_empty() {
        db.add_role("reader", &[]).await?;
        db.grant("reader", "GET", "/v1/orders/{id}").await?;
    }
    let issued = keys.generate(KeySpec::new("demo").role("reader").name("demo key"))?;
    db.insert_key(&issued.record).await?;

    let policy = LivePolicy::from_spec(&source.load().await?)?;
    let _watch = policy.watch(source, Duration::from_secs(2));
    let store = SqliteKeyStore::new(db, Duration::from_secs(5));
    let app = Router::new()
        .route(
            "/v1/orders/{id}",
            get(|p: Principal| async move { format!("order for {}\n", p.subject()) }),
        )
        .layer(
            Palisade::builder()
                // Plain HTTP from this machine only: a development setting.
                .allow_plain_http_from_loopback()
                .authenticate(keys.authenticator(store))
                .authorize(AuthzLayer::new(policy))
                .build()?,
        );

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("keys and policy in {}", db_path.display());
    println!("palisade sqlite example listening on http://{addr}");
    println!(
        "curl -i -H 'x-api-key: {}' http://{addr}/v1/orders/42",
        issued.plaintext.expose_secret()
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

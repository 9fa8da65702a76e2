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
//! - **One indexed lookup by key id**, behind palisade's `CachedKeyStore`: misses are cached
//!   too (an unknown id costs the same as a known one, so ids cannot be probed by timing), and
//!   the cache is bounded.
//! - **Revocation within `ttl`**, or at once when published on an invalidation bus
//!   (`Database::revoke_key_everywhere`).
//! - **Rows to records** with `KeyRecord::builder`, column by column.
//! - **Fail closed**: a database error is a `StoreError`, which palisade answers with 503, never
//!   with the handler.
//! - **Blocking calls off the runtime**: `rusqlite` blocks, so queries run in
//!   `spawn_blocking`; palisade's own timeout bounds each lookup.
//! - The table holds the key's hash (SHA-256, or HMAC with a pepper), never the key, and the
//!   version of the scheme that made it: after a pepper change, a key that proves itself
//!   against the previous scheme is rehashed (`KeyStore::update_hash`, a conditional
//!   `UPDATE`), off the request path.
//! - **Last use in batches**: palisade coalesces uses per key and hands them over every
//!   interval (`KeyStore::record_last_used`); one transaction writes the batch.
//! - A database made by an earlier version of this example lacks the `hash_version` and
//!   `last_used_at` columns: add them with `ALTER TABLE api_keys ADD COLUMN ...` as below.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::Method;
use palisade::authn::api_key::{CachedKeyStore, KeyHash, KeyId, LastUsed, Rehash};
use palisade::authz::PolicySource;
use palisade::error::StoreErrorKind;
use palisade::invalidation::{InProcessBus, Invalidation, InvalidationBus};
use palisade::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};

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
    revoked_at  TEXT,
    hash_version INTEGER NOT NULL DEFAULT 1,  -- the hashing scheme that made `hash`
    last_used_at INTEGER                      -- Unix seconds of the last recorded use
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
            record.hash_version(),
        );
        self.run(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, hash, subject, roles, scopes, tenant, tier, name,
                     created_at, expires_at, revoked_at, hash_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10,
                    row.11
                ],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    /// Marks key `id` revoked at `at`. Takes effect within the key store's cache lifetime, or
    /// at once with [`revoke_key_everywhere`](Self::revoke_key_everywhere).
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

    /// Marks key `id` revoked at `at` and publishes the revocation on `bus`: every instance's
    /// cache drops the key at once.
    pub async fn revoke_key_everywhere(
        &self,
        id: KeyId,
        at: Timestamp,
        bus: &impl InvalidationBus,
    ) -> Result<bool, StoreError> {
        let found = self.revoke_key(id, at).await?;
        bus.publish(&Invalidation::ApiKeyRevoked { key_id: id })
            .await?;
        Ok(found)
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

    /// Stores a key's new hash if its row still has the version it was checked under.
    fn rehash(conn: &Connection, r: Rehash) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE api_keys SET hash = ?1, hash_version = ?2 WHERE id = ?3 AND hash_version = ?4",
            params![r.hash.to_hex(), r.version, r.id.to_string(), r.from_version],
        )
        .map_err(store_error)?;
        Ok(())
    }

    /// Writes a batch of last uses in one transaction, never moving a time backwards.
    fn record_uses(conn: &Connection, uses: &[LastUsed]) -> Result<(), StoreError> {
        let tx = conn.unchecked_transaction().map_err(store_error)?;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?1)
                     WHERE id = ?2",
                )
                .map_err(store_error)?;
            for (id, at) in uses {
                let secs = i64::try_from(at.as_unix_secs()).unwrap_or(i64::MAX);
                update
                    .execute(params![secs, id.to_string()])
                    .map_err(store_error)?;
            }
        }
        tx.commit().map_err(store_error)
    }

    fn read_key(conn: &Connection, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        type Row = (
            u16,
            Option<i64>,
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
                "SELECT hash_version, last_used_at, hash, subject, roles, scopes, tenant, tier,
                        name, created_at, expires_at, revoked_at
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
                        r.get(10)?,
                        r.get(11)?,
                    ))
                },
            )
            .optional()
            .map_err(store_error)?;
        let Some((
            version,
            last_used,
            hash,
            subject,
            roles,
            scopes,
            tenant,
            tier,
            name,
            created,
            expires,
            revoked,
        )) = row
        else {
            return Ok(None);
        };
        let last_used = last_used.map(|s| Timestamp::from_unix_secs(u64::try_from(s).unwrap_or(0)));
        let hash = KeyHash::from_hex(&hash).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::InvalidData,
                "a stored hash is not 64 hex digits",
            )
        })?;
        // The row's columns as they are: no JSON blob.
        KeyRecord::builder(id, hash, subject)
            .roles(list(&roles))
            .scopes(list(&scopes))
            .tenant(tenant)
            .tier(tier)
            .name(name)
            .created_at(time(created)?)
            .expires_at(time(expires)?)
            .revoked_at(time(revoked)?)
            .hash_version(version)
            .last_used_at(last_used)
            .build()
            .map(Some)
            .map_err(|e| StoreError::new(StoreErrorKind::InvalidData, e))
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

/// Key records from the database, one indexed lookup by id. Put behind palisade's
/// [`CachedKeyStore`] (bounded, time-limited, negative caching, invalidated by a bus): see
/// [`SqliteKeyStore::cached`].
#[derive(Clone, Debug)]
pub struct SqliteKeyStore(pub Database);

impl SqliteKeyStore {
    /// The store reading `db`, behind a cache that remembers each answer (hits and misses
    /// alike) for `ttl`, at most 10 000 ids, and drops it at once on a revocation published on
    /// `bus`.
    pub fn cached(db: Database, ttl: Duration, bus: &impl InvalidationBus) -> CachedKeyStore<Self> {
        CachedKeyStore::builder(Self(db))
            .ttl(ttl)
            .capacity(10_000)
            .bus(bus)
            .build()
    }
}

impl KeyStore for SqliteKeyStore {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let id = *id;
        self.0.run(move |c| Database::read_key(c, id)).await
    }

    async fn update_hash(&self, rehash: Rehash) -> Result<(), StoreError> {
        self.0.run(move |c| Database::rehash(c, rehash)).await
    }

    async fn record_last_used(&self, uses: &[LastUsed]) -> Result<(), StoreError> {
        let uses = uses.to_vec();
        self.0.run(move |c| Database::record_uses(c, &uses)).await
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
    // One instance here. Several instances share a `RedisBus` (feature `redis`) instead, so
    // that a key revoked through one is dropped by every cache at once.
    let bus = InProcessBus::new();
    let store = SqliteKeyStore::cached(db, Duration::from_secs(5), &bus);
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

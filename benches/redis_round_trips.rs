//! `RedisStore` against a real `redis-server` on loopback: how many Redis commands and round
//! trips one request costs, and how many checks per second one Redis answers with the
//! multiplexed (pipelined) connection. Not a criterion bench: it counts what Redis itself
//! reports (`INFO commandstats`) and prints a table.
//!
//! Run with: `cargo bench --bench redis_round_trips --features redis`
//! (needs `redis-server`; pin it with `taskset` for stable rates).

// A bench binary: nothing public to document.
#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::Request;
use palisade::clock::{Clock, SystemClock};
use palisade::quota::{
    KeyBy, Limit, QuotaKey, QuotaLayer, QuotaPolicy, QuotaRule, QuotaStore, RedisStore, Window,
};
use tower::ServiceExt;

const REQUESTS: u64 = 2_000;
const CHECKS: u64 = 50_000;
const CONCURRENCY: u64 = 64;

/// A `redis-server` on a free port, killed on drop.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Option<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    Some(Server(child, port))
}

/// Redis's own count of the script calls it ran (`EVALSHA`, and `EVAL` for a script it did not
/// know yet).
async fn script_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn generous(name: &str) -> QuotaPolicy {
    QuotaPolicy::new(
        name,
        [
            Limit::per_second(1_000_000),
            Limit::quota(1_000_000_000, Window::Day),
        ],
    )
}

fn request(peer: SocketAddr) -> Request<Body> {
    let mut req = Request::get("/v1/items").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

/// Script calls and mean latency per request through a layer of `rules` rules, sequentially.
async fn per_request(
    store: &RedisStore,
    rules: usize,
    conn: &mut redis::aio::MultiplexedConnection,
) -> (f64, Duration) {
    let mut b = QuotaLayer::builder(store.clone());
    for i in 0..rules {
        let key = KeyBy::custom(move |_| Some(format!("caller-{i}")));
        b = b.rule(QuotaRule::new(key, generous(&format!("rule-{i}"))));
    }
    let app = Router::new()
        .route("/v1/items", get(|| async { "ok" }))
        .layer(b.build().unwrap());
    let peer: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let before = script_calls(conn).await;
    let started = tokio::time::Instant::now();
    for _ in 0..REQUESTS {
        let res = app.clone().oneshot(request(peer)).await.unwrap();
        assert!(res.status().is_success());
    }
    let took = started.elapsed();
    let calls = script_calls(conn).await - before;
    #[allow(clippy::cast_precision_loss)]
    let per = calls as f64 / REQUESTS as f64;
    (per, took / u32::try_from(REQUESTS).unwrap())
}

/// Checks per second with `CONCURRENCY` checks in flight on the one multiplexed connection.
async fn throughput(store: &RedisStore) -> f64 {
    let store = Arc::new(store.clone());
    let policy = generous("throughput");
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENCY {
        let (store, policy) = (store.clone(), policy.clone());
        tasks.spawn(async move {
            for i in 0..CHECKS / CONCURRENCY {
                let ip = IpAddr::V4(Ipv4Addr::from(
                    0x0a00_0000 + u32::try_from(t * 10_000 + i).unwrap(),
                ));
                let key = QuotaKey::ip(policy.clone(), ip, 32);
                let v = store.check(&key, 1, SystemClock.now(), true).await.unwrap();
                assert!(v.is_allowed());
            }
        });
    }
    tasks.join_all().await;
    #[allow(clippy::cast_precision_loss)]
    let rate = (CHECKS / CONCURRENCY * CONCURRENCY) as f64 / started.elapsed().as_secs_f64();
    rate
}

fn main() {
    let Some(server) = start() else {
        eprintln!("*** SKIPPED redis_round_trips: redis-server is not installed ***");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("redis://127.0.0.1:{}/", server.1);
        let store = RedisStore::builder(url.as_str())
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = loop {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!(
            "{:<44} {:>16} {:>14}",
            "case", "scripts/request", "µs/request"
        );
        for rules in [1, 2, 3] {
            let (per, latency) = per_request(&store, rules, &mut conn).await;
            println!(
                "{:<44} {:>16.2} {:>14.1}",
                format!("a layer of {rules} rule(s), 2 limits each"),
                per,
                latency.as_secs_f64() * 1e6
            );
        }
        let rate = throughput(&store).await;
        println!(
            "{:<44} {:>16} {:>14}",
            format!("{CONCURRENCY} checks in flight, one connection"),
            "",
            ""
        );
        println!("  checks per second: {rate:.0}");
    });
    drop(server);
}

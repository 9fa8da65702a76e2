//! `RedisStore` against a real `redis-server` on loopback: how many script calls and network
//! round trips one request costs, and how many checks per second one Redis, and a Redis
//! Cluster of three primaries, answer with the multiplexed (pipelined) connection. Not a
//! criterion bench: it counts what Redis itself reports (`INFO commandstats`) and what a
//! counting proxy sees on the wire, and prints a table.
//!
//! Run with: `cargo bench --bench redis_round_trips --features redis`
//! (needs `redis-server`, and `redis-cli` for the Cluster rows; pin it with `taskset` for
//! stable rates).

// A bench binary: nothing public to document.
#![allow(missing_docs)]

#[path = "../tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::Request;
use palisade::clock::{Clock, SystemClock};
use palisade::quota::{
    KeyBy, Limit, QuotaCheck, QuotaKey, QuotaLayer, QuotaPolicy, QuotaRule, QuotaStore, RedisStore,
    Window,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const REQUESTS: u64 = 2_000;
const CHECKS: u64 = 30_000;
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

/// The script calls (`EVALSHA`, and `EVAL` for a script the server did not know yet) in an
/// `INFO commandstats` answer.
fn script_calls_in(info: &str) -> u64 {
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

/// Where the script calls are counted: one server, or every node of a Cluster.
enum Counter<'a> {
    Single(redis::aio::MultiplexedConnection),
    Cluster(&'a redis_cluster::Cluster),
}

impl Counter<'_> {
    async fn script_calls(&mut self) -> u64 {
        match self {
            Self::Single(conn) => {
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query_async(conn)
                    .await
                    .unwrap();
                script_calls_in(&info)
            }
            Self::Cluster(cluster) => cluster
                .nodes
                .iter()
                .map(|n| script_calls_in(&n.cli(&["INFO", "commandstats"])))
                .sum(),
        }
    }
}

/// A TCP proxy in front of `upstream` that counts round trips: each time the client sends
/// after the server last spoke (or first) starts one.
async fn counting_proxy(upstream: u16) -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let turns = Arc::new(AtomicU64::new(0));
    let counted = turns.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            // Whether the server spoke last on this connection (a new turn when the client
            // speaks next).
            let server_spoke = Arc::new(AtomicBool::new(true));
            let (spoke, turns) = (server_spoke.clone(), counted.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    if spoke.swap(false, Ordering::SeqCst) {
                        turns.fetch_add(1, Ordering::Relaxed);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = sr.read(&mut buf).await {
                    server_spoke.store(true, Ordering::SeqCst);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, turns)
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

/// What one request cost, through a layer of `rules` rules, sequentially: script calls,
/// round trips (when `turns` counts them) and mean latency.
struct PerRequest {
    scripts: f64,
    round_trips: Option<f64>,
    latency: Duration,
}

#[allow(clippy::cast_precision_loss)]
async fn per_request(
    store: &RedisStore,
    rules: usize,
    counter: &mut Counter<'_>,
    turns: Option<&AtomicU64>,
) -> PerRequest {
    let mut b = QuotaLayer::builder(store.clone());
    for i in 0..rules {
        let key = KeyBy::custom(move |_| Some(format!("caller-{i}")));
        b = b.rule(QuotaRule::new(key, generous(&format!("rule-{i}"))));
    }
    let app = Router::new()
        .route("/v1/items", get(|| async { "ok" }))
        .layer(b.build().unwrap());
    let peer: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    // The first request connects and loads the script: counted from the second.
    let res = app.clone().oneshot(request(peer)).await.unwrap();
    assert!(res.status().is_success());
    let before = counter.script_calls().await;
    let turns_before = turns.map(|t| t.load(Ordering::Relaxed));
    let started = tokio::time::Instant::now();
    for _ in 0..REQUESTS {
        let res = app.clone().oneshot(request(peer)).await.unwrap();
        assert!(res.status().is_success());
    }
    let took = started.elapsed();
    let calls = counter.script_calls().await - before;
    let round_trips = turns
        .zip(turns_before)
        .map(|(t, before)| (t.load(Ordering::Relaxed) - before) as f64 / REQUESTS as f64);
    PerRequest {
        scripts: calls as f64 / REQUESTS as f64,
        round_trips,
        latency: took / u32::try_from(REQUESTS).unwrap(),
    }
}

/// Checks per second with `CONCURRENCY` requests in flight on the store's multiplexed
/// connection(s), each request checking `rules` identities at once (one batch).
async fn throughput(store: &RedisStore, rules: usize) -> f64 {
    let store = Arc::new(store.clone());
    let policy = generous("throughput");
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENCY {
        let (store, policy) = (store.clone(), policy.clone());
        tasks.spawn(async move {
            for i in 0..CHECKS / CONCURRENCY / rules as u64 {
                let keys: Vec<QuotaKey> = (0..rules as u64)
                    .map(|r| {
                        let n = (t * 100_000 + i) * 4 + r;
                        let ip =
                            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + u32::try_from(n).unwrap()));
                        QuotaKey::ip(policy.clone(), ip, 32)
                    })
                    .collect();
                let checks: Vec<_> = keys.iter().map(|k| QuotaCheck::new(k, 1)).collect();
                for v in store.check_all(&checks, SystemClock.now()).await {
                    assert!(v.unwrap().is_allowed());
                }
            }
        });
    }
    tasks.join_all().await;
    let done = CHECKS / CONCURRENCY / rules as u64 * CONCURRENCY * rules as u64;
    #[allow(clippy::cast_precision_loss)]
    let rate = done as f64 / started.elapsed().as_secs_f64();
    rate
}

fn row(case: &str, p: &PerRequest) {
    let trips = p
        .round_trips
        .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
    println!(
        "{case:<40} {:>10.2} {trips:>12} {:>12.1}",
        p.scripts,
        p.latency.as_secs_f64() * 1e6
    );
}

async fn single(server: &Server) -> [f64; 2] {
    let url = format!("redis://127.0.0.1:{}/", server.1);
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = loop {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut counter = Counter::Single(conn);
    // The store speaks through the counting proxy; INFO goes straight to the server.
    let (proxy, turns) = counting_proxy(server.1).await;
    let proxied = RedisStore::builder(format!("redis://127.0.0.1:{proxy}/"))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for rules in [1, 2, 3] {
        let p = per_request(&proxied, rules, &mut counter, Some(&turns)).await;
        row(&format!("single node, {rules} rule(s)"), &p);
    }
    let direct = RedisStore::builder(url.as_str())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    [throughput(&direct, 1).await, throughput(&direct, 3).await]
}

async fn cluster() -> Option<[f64; 2]> {
    let cluster = redis_cluster::Cluster::start("redis_round_trips (cluster rows)").await?;
    let store = RedisStore::cluster(cluster.urls())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut counter = Counter::Cluster(&cluster);
    for rules in [1, 3] {
        let p = per_request(&store, rules, &mut counter, None).await;
        row(&format!("cluster, {rules} rule(s)"), &p);
    }
    Some([throughput(&store, 1).await, throughput(&store, 3).await])
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
        println!(
            "{:<40} {:>10} {:>12} {:>12}",
            "case (2 limits a rule)", "scripts/req", "round trips", "µs/request"
        );
        let single = single(&server).await;
        let cluster = cluster().await;
        println!("\n{CONCURRENCY} requests in flight, checks per second:");
        println!("{:<40} {:>14} {:>14}", "", "single node", "cluster (3)");
        for (i, what) in ["1 check a request", "3 checks a request (one batch)"]
            .iter()
            .enumerate()
        {
            let c = cluster.map_or_else(|| "skipped".to_owned(), |c| format!("{:.0}", c[i]));
            println!("{what:<40} {:>14.0} {c:>14}", single[i]);
        }
    });
    drop(server);
}

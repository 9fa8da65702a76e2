//! Measures how long a revocation takes to reach the other instances over Redis pub/sub:
//! three `RedisBus` instances on one Redis, each revocation published by the first, timed
//! until the other two have applied it (their key caches dropped the key). Prints p50, p99 and
//! the maximum over the revocations.
//!
//! ```sh
//! redis-server --port 6390 --save '' --appendonly no &
//! cargo run --release --example invalidation_latency --features redis -- \
//!     --redis redis://127.0.0.1:6390/ --count 1000
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade::authn::api_key::KeyId;
use palisade::invalidation::{Hub, Invalidation, InvalidationBus, InvalidationListener, RedisBus};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Records when each key's revocation arrived on one instance.
#[derive(Default)]
struct Arrivals {
    seen: Mutex<Vec<(KeyId, Instant)>>,
    notify: Notify,
}

impl InvalidationListener for Arrivals {
    fn invalidate(&self, message: &Invalidation) {
        if let Invalidation::ApiKeyRevoked { key_id } = message {
            let now = Instant::now();
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((*key_id, now));
            self.notify.notify_waiters();
        }
    }

    fn resync(&self) {}
}

impl Arrivals {
    fn arrival(&self, id: &KeyId) -> Option<Instant> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.iter().find(|(k, _)| k == id).map(|(_, t)| *t)
    }
}

fn key_id(n: usize) -> KeyId {
    KeyId::parse(&format!("{n:0>16}")).expect("16 digits are a key id")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "redis://127.0.0.1:6379/".to_owned();
    let mut count = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => url = args.next().ok_or("--redis needs a URL")?,
            "--count" => count = args.next().ok_or("--count needs a number")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let channel = format!("palisade-latency:{}", std::process::id());
    let mut instances = Vec::new();
    for _ in 0..3 {
        let bus = RedisBus::builder(url.as_str())
            .channel(channel.as_str())
            .build()?;
        if !bus.hub().wait_live(Duration::from_secs(5)).await {
            return Err(format!("no Redis at {url}").into());
        }
        let arrivals = Arc::new(Arrivals::default());
        let listener: Arc<dyn InvalidationListener> = arrivals.clone();
        bus.hub().listen(&listener);
        instances.push((bus, arrivals, listener));
    }
    let publisher = instances[0].0.clone();
    let mut latencies = Vec::with_capacity(count * 2);
    for n in 0..count {
        let id = key_id(n);
        let start = Instant::now();
        publisher
            .publish(&Invalidation::ApiKeyRevoked { key_id: id })
            .await?;
        for (_, arrivals, _) in &instances[1..] {
            let arrived = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let notified = arrivals.notify.notified();
                    if let Some(at) = arrivals.arrival(&id) {
                        return at;
                    }
                    notified.await;
                }
            })
            .await
            .map_err(|_| format!("revocation {n} not received within 2 s"))?;
            latencies.push(arrived.saturating_duration_since(start));
        }
    }
    latencies.sort();
    let hub: &Hub = publisher.hub();
    println!(
        "{count} revocations × 2 receiving instances over {url}: p50 {:?}, p99 {:?}, max {:?} \
         (resyncs {})",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        hub.resyncs(),
    );
    Ok(())
}

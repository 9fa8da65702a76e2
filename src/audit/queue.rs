//! The bounded queue between the request path and the sinks, and its background task: events
//! are formatted, redacted, sealed and written there, never on the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, oneshot};

use super::AuditRecord;
use super::chain;
use super::event::{AuditEvent, EventKind, SCHEMA_VERSION};
use super::layer::RawEvent;
use super::redact::Redaction;
use super::sinks::AuditSink;
use crate::clock::{Clock, SystemClock};

/// Counters shared by the layer, the task and the handle.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) seq: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// The newest sealed event the sink accepted: its `seq` and `hash`. Written once per batch.
    pub(crate) head: std::sync::Mutex<Option<ChainHead>>,
}

/// The newest event of a chained log that the sink accepted: an anchor for the log's end.
///
/// A hash chain shows an edited, deleted or reordered event anywhere but at the end: events cut
/// from the end of a log leave a shorter, valid chain. Publishing the head now and then
/// somewhere the log's writer cannot reach (another system's log, a metrics label, a ticket)
/// closes that gap: a log whose last verified event is older than a published head was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainHead {
    /// The event's sequence number.
    pub seq: u64,
    /// The event's `hash`.
    pub hash: String,
}

/// Controls a running audit queue: its counters, and shutdown.
#[derive(Debug)]
pub struct AuditHandle {
    pub(crate) stats: Arc<Stats>,
    pub(crate) shutdown: Arc<Notify>,
    pub(crate) done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl AuditHandle {
    /// Events dropped because the queue was full (or arrived after shutdown). Each loss is
    /// also reported to the sinks as a `loss` event, and shows as a gap in `seq`.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Events the sink accepted.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Relaxed)
    }

    /// Events the sink failed to write.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    /// The newest sealed event the sink accepted, when events are chained: compare it with a
    /// log's last line ([`Verified::last_hash`](super::Verified)) to show that nothing was cut
    /// from the log's end.
    #[must_use]
    pub fn chain_head(&self) -> Option<ChainHead> {
        self.stats
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting events, writes every queued one, flushes the sink, and returns when
    /// done. Events of requests that end later are dropped and counted.
    pub async fn shutdown(&self) {
        self.stats.closed.store(true, Ordering::Release);
        self.shutdown.notify_one();
        if let Some(done) = self.done.lock().await.take() {
            let _ = done.await;
        }
    }
}

pub(crate) struct Drain<S> {
    pub(crate) rx: mpsc::Receiver<RawEvent>,
    /// Woken by the request path only when the queue is half full; otherwise the task
    /// drains on a short tick, so a request does not pay for waking a parked thread.
    pub(crate) wake: Arc<Notify>,
    pub(crate) sink: S,
    pub(crate) stats: Arc<Stats>,
    pub(crate) shutdown: Arc<Notify>,
    pub(crate) done: oneshot::Sender<()>,
    pub(crate) redaction: Redaction,
    pub(crate) chain_key: Option<zeroize::Zeroizing<Vec<u8>>>,
}

const BATCH: usize = 256;

/// How often the task drains the queue when nobody wakes it.
const TICK: std::time::Duration = std::time::Duration::from_millis(5);

impl<S: AuditSink> Drain<S> {
    pub(crate) async fn run(mut self) {
        // A sink that already holds a sealed log (a file from an earlier run) continues its
        // chain, so the log is one chain across restarts.
        let mut prev: Option<String> = if self.chain_key.is_some() {
            self.sink.last_hash()
        } else {
            None
        };
        let mut reported = 0u64;
        let mut buf = Vec::with_capacity(BATCH);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut closing = tokio::select! {
                biased;
                () = self.shutdown.notified() => true,
                () = self.wake.notified() => false,
                _ = tick.tick() => false,
            };
            // Never `recv`: a receiver that waits registers a waker, and every send would then
            // pay for waking this task's thread.
            loop {
                match self.rx.try_recv() {
                    Ok(e) => buf.push(e),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    // Every layer is gone: write what is left and stop.
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closing = true;
                        break;
                    }
                }
            }
            let anchor = (SystemClock.now(), tokio::time::Instant::now());
            let mut records: Vec<AuditRecord> = buf
                .drain(..)
                .map(|raw| self.record(raw.into_event(&self.redaction, anchor), &mut prev))
                .collect();
            // Report losses since the last report, in the log itself.
            let dropped = self.stats.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                tracing::warn!(target: "palisade::audit", dropped = dropped - reported, "audit events dropped: the queue was full");
                let loss = loss_event(
                    self.stats.seq.fetch_add(1, Ordering::Relaxed),
                    dropped - reported,
                );
                records.push(self.record(loss, &mut prev));
                reported = dropped;
            }
            if !records.is_empty() {
                match self.sink.write(&records).await {
                    Ok(()) => {
                        if let Some(last) = records.last() {
                            if let Some(hash) = &last.event.hash {
                                *self
                                    .stats
                                    .head
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                    Some(ChainHead {
                                        seq: last.event.seq,
                                        hash: hash.clone(),
                                    });
                            }
                        }
                        self.stats
                            .written
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        crate::telemetry::audit_events("written", records.len() as u64);
                    }
                    Err(e) => {
                        self.stats
                            .failed
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        crate::telemetry::audit_events("failed", records.len() as u64);
                        tracing::warn!(target: "palisade::audit", events = records.len(), error = %crate::error::Chain(&*e), "audit sink failed");
                    }
                }
            }
            if closing {
                if let Err(e) = self.sink.flush().await {
                    tracing::warn!(target: "palisade::audit", error = %crate::error::Chain(&*e), "audit sink flush failed");
                }
                let _ = self.done.send(());
                return;
            }
        }
    }

    /// Serializes (and seals, with a chain key) one event.
    fn record(&self, mut event: AuditEvent, prev: &mut Option<String>) -> AuditRecord {
        event.prev = None;
        event.hash = None;
        if let Some(key) = &self.chain_key {
            event.prev.clone_from(prev);
            let mut line = serde_json::to_string(&event).unwrap_or_default();
            let hash = chain::seal(&mut line, key);
            event.hash = Some(hash.clone());
            *prev = Some(hash);
            return AuditRecord {
                event,
                json: line.into(),
            };
        }
        let line = serde_json::to_string(&event).unwrap_or_default();
        AuditRecord {
            event,
            json: line.into(),
        }
    }
}

pub(crate) fn loss_event(seq: u64, dropped: u64) -> AuditEvent {
    AuditEvent {
        version: SCHEMA_VERSION,
        kind: EventKind::Loss,
        seq,
        time: SystemClock.now().to_string(),
        request_id: None,
        principal: None,
        tenant: None,
        client_ip: None,
        method: None,
        route: None,
        path: None,
        status: None,
        outcome: None,
        quota: None,
        latency_us: None,
        user_agent: None,
        headers: Default::default(),
        fields: Default::default(),
        dropped: Some(dropped),
        prev: None,
        hash: None,
    }
}

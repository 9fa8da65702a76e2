//! The bounded queue between the request path and the sinks, and its background task: events
//! are formatted, redacted, sealed and written there, never on the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, oneshot};

use super::AuditRecord;
use super::chain;
use super::event::{AuditEvent, EventKind, SCHEMA_VERSION};
use super::raw::RawEvent;
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

/// Controls a running audit queue: its counters, and shutdown. Cloning is cheap.
///
/// The queue is flushed when the last holder goes away: when this handle and every
/// [`AuditLayer`](super::AuditLayer) (and service) built with it are dropped, queued events are
/// written and the sink flushed. On a multi-threaded tokio runtime, or outside any runtime,
/// that last drop waits for it (at most [`DROP_FLUSH_WAIT`]); on a current-thread runtime it
/// cannot wait (the queue's task would never run), so call [`shutdown`](Self::shutdown) there.
#[derive(Debug, Clone)]
pub struct AuditHandle {
    pub(crate) guard: Arc<Guard>,
}

/// How long the last drop of an audit queue's holders waits for queued events to be written.
pub const DROP_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Shared by the handle and the layer: shuts the queue down when the last of them is dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) stats: Arc<Stats>,
    pub(crate) shutdown: Arc<Notify>,
    pub(crate) done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    /// Told (without a runtime) when the queue's task has written everything and stopped.
    pub(crate) finished: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.stats.closed.swap(true, Ordering::AcqRel) {
            return; // shut down already
        }
        self.shutdown.notify_one();
        let Some(finished) = self
            .finished
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let wait = || {
            let _ = finished.recv_timeout(DROP_FLUSH_WAIT);
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => {
                tracing::debug!(target: "palisade::audit", "audit queue dropped on a current-thread runtime: flushing in the background");
            }
            Ok(_) => tokio::task::block_in_place(wait),
            Err(_) => wait(),
        }
    }
}

impl AuditHandle {
    /// Events dropped because the queue was full (or arrived after shutdown). Each loss is
    /// also reported to the sinks as a `loss` event, and shows as a gap in `seq`.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.guard.stats.dropped.load(Ordering::Relaxed)
    }

    /// Events the sink accepted.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.guard.stats.written.load(Ordering::Relaxed)
    }

    /// Events in write attempts that failed (a batch the sink refuses is kept and written
    /// again with backoff, so one event may count more than once here and then in
    /// [`written`](Self::written); only what overflows the retry buffer is
    /// [`dropped`](Self::dropped)).
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.guard.stats.failed.load(Ordering::Relaxed)
    }

    /// The newest sealed event the sink accepted, when events are chained: compare it with a
    /// log's last line ([`Verified::last_hash`](super::Verified)) to show that nothing was cut
    /// from the log's end.
    #[must_use]
    pub fn chain_head(&self) -> Option<ChainHead> {
        self.guard
            .stats
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting events, writes every queued one, flushes the sink, and returns when
    /// done. Events of requests that end later are dropped and counted.
    pub async fn shutdown(&self) {
        let guard = &self.guard;
        guard.stats.closed.store(true, Ordering::Release);
        guard.shutdown.notify_one();
        if let Some(done) = guard.done.lock().await.take() {
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
    pub(crate) finished: std::sync::mpsc::SyncSender<()>,
    pub(crate) redaction: Redaction,
    /// How many sealed records wait for a failing sink before the oldest are dropped.
    pub(crate) retry_capacity: usize,
    pub(crate) chain_key: Option<zeroize::Zeroizing<Vec<u8>>>,
}

const BATCH: usize = 256;

/// Sealed records the sink has not accepted yet, when to try it again (and the backoff), and
/// how many drops the log has reported.
#[derive(Default)]
struct Backlog {
    pending: Vec<AuditRecord>,
    retry: Option<(tokio::time::Instant, std::time::Duration)>,
    reported: u64,
}

/// The first wait before a failed batch is written again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(50);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

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
        let mut buf = Vec::with_capacity(BATCH);
        // Each line is written here, then copied once into its record: no growth per line.
        let mut line = String::with_capacity(LINE_CAPACITY);
        let mut backlog = Backlog::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signalled = tokio::select! {
                biased;
                () = self.shutdown.notified() => true,
                () = self.wake.notified() => false,
                _ = tick.tick() => false,
            };
            let closing = self.take_queued(&mut buf) || signalled;
            let anchor = (SystemClock.now(), tokio::time::Instant::now());
            let mut records: Vec<AuditRecord> = buf
                .drain(..)
                .map(|raw| self.record_raw(raw, anchor, &mut prev, &mut line))
                .collect();
            self.report_loss(&mut backlog, &mut records, &mut prev, closing);
            backlog.pending.extend(records);
            self.trim(&mut backlog);
            self.write_due(&mut backlog, closing).await;
            if closing {
                if let Err(e) = self.sink.flush().await {
                    tracing::warn!(target: "palisade::audit", error = %crate::error::Chain(&*e), "audit sink flush failed");
                }
                let _ = self.done.send(());
                let _ = self.finished.try_send(());
                return;
            }
        }
    }

    /// Moves what the queue holds into `buf`; whether every layer is gone (write what is left
    /// and stop). Never `recv`: a receiver that waits registers a waker, and every send would
    /// then pay for waking this task's thread.
    fn take_queued(&mut self, buf: &mut Vec<RawEvent>) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(e) => buf.push(e),
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Reports losses since the last report, in the log itself: only while the sink is taking
    /// writes (or at the end), so a failing sink's retry buffer is not filled with reports of
    /// its own overflow.
    fn report_loss(
        &self,
        backlog: &mut Backlog,
        records: &mut Vec<AuditRecord>,
        prev: &mut Option<String>,
        closing: bool,
    ) {
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        if dropped > backlog.reported && (backlog.retry.is_none() || closing) {
            let lost = dropped - backlog.reported;
            tracing::warn!(target: "palisade::audit", dropped = lost, "audit events dropped");
            let loss = loss_event(self.stats.seq.fetch_add(1, Ordering::Relaxed), lost);
            records.push(self.record(loss, prev));
            backlog.reported = dropped;
        }
    }

    /// While the sink is failing, drops the oldest records past the retry buffer's bound
    /// (counted; an unwritten loss report's count is reported again).
    fn trim(&self, backlog: &mut Backlog) {
        if backlog.retry.is_none() {
            return;
        }
        let overflow = backlog.pending.len().saturating_sub(self.retry_capacity);
        let mut lost = 0u64;
        for r in backlog.pending.drain(..overflow) {
            match r.dropped {
                Some(n) => backlog.reported -= n,
                None => lost += 1,
            }
        }
        if lost > 0 {
            self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
            crate::telemetry::audit_events("dropped", lost);
        }
    }

    /// Writes the backlog when it is due (at once, or when the backoff has passed, or at the
    /// end); a failed write keeps it and doubles the backoff.
    async fn write_due(&self, backlog: &mut Backlog, closing: bool) {
        let now = tokio::time::Instant::now();
        let due = closing || backlog.retry.is_none_or(|(at, _)| now >= at);
        if backlog.pending.is_empty() || !due {
            return;
        }
        match self.sink.write(&backlog.pending).await {
            Ok(()) => {
                self.accepted(&backlog.pending);
                backlog.pending.clear();
                backlog.retry = None;
            }
            Err(e) => {
                let n = backlog.pending.len() as u64;
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                crate::telemetry::audit_events("failed", n);
                let backoff = backlog
                    .retry
                    .map_or(RETRY_FIRST, |(_, b)| (b * 2).min(RETRY_MAX));
                tracing::warn!(target: "palisade::audit", events = n, retry_in_ms = backoff.as_millis() as u64, error = %crate::error::Chain(&*e), "audit sink failed: the batch is kept and retried");
                backlog.retry = Some((tokio::time::Instant::now() + backoff, backoff));
            }
        }
    }

    /// Counts records the sink accepted and remembers the newest sealed one as the chain head.
    fn accepted(&self, records: &[AuditRecord]) {
        if let Some(hash) = records.last().and_then(|last| {
            let hash = last.hash.clone()?;
            Some((last.seq, hash))
        }) {
            *self
                .stats
                .head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ChainHead {
                seq: hash.0,
                hash: hash.1,
            });
        }
        self.stats
            .written
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        crate::telemetry::audit_events("written", records.len() as u64);
    }

    /// Serializes (and seals, with a chain key) one event built as a struct.
    fn record(&self, mut event: AuditEvent, prev: &mut Option<String>) -> AuditRecord {
        event.prev = None;
        event.hash = None;
        if let Some(key) = &self.chain_key {
            event.prev.clone_from(prev);
            let mut line = serde_json::to_string(&event).unwrap_or_default();
            let hash = chain::seal(&mut line, key);
            event.hash = Some(hash.clone());
            *prev = Some(hash);
            return AuditRecord::of_event(event, line);
        }
        let line = serde_json::to_string(&event).unwrap_or_default();
        AuditRecord::of_event(event, line)
    }

    /// Writes (and seals, with a chain key) one request's line, straight from what the
    /// request captured.
    fn record_raw(
        &self,
        raw: RawEvent,
        anchor: (crate::clock::Timestamp, tokio::time::Instant),
        prev: &mut Option<String>,
        line: &mut String,
    ) -> AuditRecord {
        let seq = raw.seq;
        if line.capacity() > MAX_KEPT_CAPACITY {
            *line = String::with_capacity(LINE_CAPACITY);
        }
        line.clear();
        raw.write_json(&self.redaction, anchor, line);
        let Some(key) = &self.chain_key else {
            line.push('}');
            return AuditRecord::of_line(seq, line, None);
        };
        if let Some(p) = prev.as_deref() {
            line.push_str(",\"prev\":");
            super::json::escaped(line, p);
        }
        line.push('}');
        let hash = chain::seal(line, key);
        *prev = Some(hash.clone());
        AuditRecord::of_line(seq, line, Some(hash))
    }
}

/// Room reserved for the line being written: a typical event fits (a longer one grows it,
/// once, for the lines after it).
const LINE_CAPACITY: usize = 1024;

/// A line buffer grown past this by a rare long event is given back after it.
const MAX_KEPT_CAPACITY: usize = 64 * 1024;

/// What [`AuditRecord::event`] answers for a line that does not read back (never written).
pub(crate) fn unreadable_event(seq: u64) -> AuditEvent {
    AuditEvent {
        kind: EventKind::Request,
        time: String::new(),
        ..loss_event(seq, 0)
    }
}

pub(crate) fn loss_event(seq: u64, dropped: u64) -> AuditEvent {
    AuditEvent {
        version: SCHEMA_VERSION,
        kind: EventKind::Loss,
        seq,
        time: SystemClock.now().to_string(),
        request_id: None,
        trace_id: None,
        parent_id: None,
        principal: None,
        tenant: None,
        client_ip: None,
        method: None,
        route: None,
        path: None,
        status: None,
        outcome: None,
        authz_shadow: None,
        response_check: None,
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

#![doc = include_str!("../../docs/audit.md")]

mod chain;
#[cfg(feature = "config")]
mod config;
mod event;
mod json;
mod layer;
mod queue;
mod raw;
mod redact;
mod sinks;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderName;
use serde_json::Value;

pub use crate::telemetry::{MakeRequestId, UuidV4};
pub use chain::{ChainError, Verified, Verifier, verify};
#[cfg(feature = "config")]
pub use config::{AuditConfig, FileSinkConfig, NamedSink, SinkConfig};
pub use event::{
    AuditEvent, AuditPrincipal, AuthzShadow, EventKind, Outcome, QuotaLimit, QuotaState,
    ResponseCheckState, ResponseError, SCHEMA_VERSION,
};
pub use layer::{Audit, AuditLayer, RequestId, ResponseFuture, X_REQUEST_ID};
pub use queue::{AuditHandle, ChainHead, DROP_FLUSH_WAIT};
pub use redact::REDACTED;
pub use sinks::{AuditSink, ChannelSink, DynAuditSink, FanOut, JsonLinesSink, TracingSink};

use crate::client_ip::ClientIpResolver;
use crate::error::ConfigError;

/// An event as a sink receives it: its JSON line (sealed when chained), and the event.
///
/// The line is written first, straight from what the request captured; the [`AuditEvent`] is
/// read back from it the first time a sink asks for [`event`](Self::event) (the built-in sinks
/// only write the line).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    event: std::sync::OnceLock<AuditEvent>,
    json: Arc<str>,
    seq: u64,
    /// A loss report's count.
    dropped: Option<u64>,
    /// The seal, when chained.
    hash: Option<String>,
}

impl AuditRecord {
    /// A record of an event built as a struct (loss reports).
    pub(crate) fn of_event(event: AuditEvent, json: String) -> Self {
        Self {
            seq: event.seq,
            dropped: event.dropped,
            hash: event.hash.clone(),
            event: std::sync::OnceLock::from(event),
            json: json.into(),
        }
    }

    /// A record of a line written directly.
    pub(crate) fn of_line(seq: u64, json: &str, hash: Option<String>) -> Self {
        Self {
            event: std::sync::OnceLock::new(),
            json: json.into(),
            seq,
            dropped: None,
            hash,
        }
    }

    /// The event (read from the line on first use).
    #[must_use]
    pub fn event(&self) -> &AuditEvent {
        self.event.get_or_init(|| {
            serde_json::from_str(&self.json).unwrap_or_else(|_| {
                // Unreachable: every line palisade writes reads back (tested per shape).
                queue::unreadable_event(self.seq)
            })
        })
    }

    /// The event's sequence number.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Its JSON form, one line, exactly as hashed.
    #[must_use]
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// Fields a handler (or a layer) adds to its request's audit event: put it in the response
/// extensions.
///
/// ```
/// use palisade::audit::AuditFields;
///
/// let mut res = http::Response::new(());
/// res.extensions_mut().insert(AuditFields::new().with("order_id", "ord_42"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct AuditFields(pub(crate) BTreeMap<String, Value>);

impl AuditFields {
    /// No fields.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

/// Builds an [`AuditLayer`] and the [`AuditHandle`] of its queue.
#[must_use]
pub struct AuditBuilder<S> {
    sink: S,
    capacity: usize,
    chain_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    redaction: redact::Redaction,
    resolver: ClientIpResolver,
    request_id_header: HeaderName,
    make_id: Option<Arc<dyn MakeRequestId>>,
    /// The first mistake a chained method met, reported by `build`.
    error: Option<ConfigError>,
}

impl<S> std::fmt::Debug for AuditBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditBuilder")
            .field("capacity", &self.capacity)
            .field("chained", &self.chain_key.is_some())
            .field("request_id_header", &self.request_id_header)
            .finish_non_exhaustive()
    }
}

impl AuditLayer {
    /// Starts a builder writing to `sink`, with a queue of 4,096 events.
    pub fn builder<S: AuditSink>(sink: S) -> AuditBuilder<S> {
        AuditBuilder {
            sink,
            capacity: 4096,
            chain_key: None,
            redaction: redact::Redaction::default(),
            resolver: ClientIpResolver::default(),
            request_id_header: X_REQUEST_ID.clone(),
            make_id: None,
            error: None,
        }
    }
}

impl<S: AuditSink> AuditBuilder<S> {
    /// The queue's capacity: past it, events are dropped and counted, never waited for. It
    /// also bounds the events kept for a failing sink, to be written again with backoff.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Seals each event with an HMAC-SHA256 chained over the previous one, under `key` (32
    /// bytes or more); [`verify`] checks a log.
    ///
    /// A key shorter than 32 bytes makes [`build`](Self::build) fail with
    /// [`ConfigError::Invalid`] (field `audit.chain_key`).
    pub fn chain_key(mut self, key: &[u8]) -> Self {
        if key.len() < 32 {
            self.error.get_or_insert(ConfigError::Invalid {
                field: "audit.chain_key",
                message: format!("the chain key must be at least 32 bytes, got {}", key.len()),
            });
            return self;
        }
        self.chain_key = Some(zeroize::Zeroizing::new(key.to_vec()));
        self
    }

    /// Records this request header (besides `User-Agent`). Sensitive headers are recorded
    /// as `[redacted]`.
    pub fn record_header(mut self, name: HeaderName) -> Self {
        self.redaction.record.push(name);
        self
    }

    /// Never records this header in clear (`Authorization`, `Proxy-Authorization`, `Cookie`,
    /// `Set-Cookie` and `X-API-Key` are already hidden): the API-key header of a host that
    /// renamed it, for instance.
    pub fn redact_header(mut self, name: HeaderName) -> Self {
        self.redaction.secret_headers.insert(name);
        self
    }

    /// Records this query parameter's values in clear (all values are redacted by default).
    pub fn keep_query_param(mut self, name: &str) -> Self {
        self.redaction.keep_params.insert(name.to_ascii_lowercase());
        self
    }

    /// Never records this query parameter's values in clear, even if kept.
    pub fn redact_query_param(mut self, name: &str) -> Self {
        self.redaction
            .secret_params
            .insert(name.to_ascii_lowercase());
        self
    }

    /// How the client address is found (the stack's own resolver, with its trusted proxies).
    pub fn client_ip(mut self, resolver: ClientIpResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The request id's header (default `x-request-id`): an acceptable id the request carries
    /// there is kept (a malformed one is replaced there), and the id is set there on the
    /// response. Name the header a tower-http `SetRequestIdLayer` outside palisade uses, so
    /// both agree (with feature `tower-http`, palisade also reads and leaves that layer's
    /// `RequestId` extension, whatever its header).
    pub fn request_id_header(mut self, name: HeaderName) -> Self {
        self.request_id_header = name;
        self
    }

    /// Makes the ids of requests that come without an acceptable one (default [`UuidV4`]).
    /// An id it makes that is not 1–128 characters of `[A-Za-z0-9._:-]` is replaced by a
    /// UUID.
    pub fn make_request_id(mut self, make: impl MakeRequestId) -> Self {
        self.make_id = Some(Arc::new(make));
        self
    }

    /// Starts the queue's task and builds the layer.
    ///
    /// # Errors
    ///
    /// The first mistake of a chained method (a short [`chain_key`](Self::chain_key)), then
    /// [`ConfigError::Invalid`] outside a tokio runtime (the queue's task needs one).
    pub fn build(self) -> Result<(AuditLayer, AuditHandle), ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::Invalid {
            field: "audit",
            message: "the audit queue's task needs a tokio runtime: build it inside one".into(),
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(self.capacity);
        let wake = Arc::new(tokio::sync::Notify::new());
        let stats = Arc::new(queue::Stats::default());
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (finished_tx, finished_rx) = std::sync::mpsc::sync_channel(1);
        let record = self.redaction.record.clone();
        runtime.spawn(
            queue::Drain {
                rx,
                wake: wake.clone(),
                sink: self.sink,
                stats: stats.clone(),
                shutdown: shutdown.clone(),
                done: done_tx,
                finished: finished_tx,
                redaction: self.redaction,
                retry_capacity: self.capacity,
                chain_key: self.chain_key,
            }
            .run(),
        );
        let guard = Arc::new(queue::Guard {
            stats: stats.clone(),
            shutdown,
            done: tokio::sync::Mutex::new(Some(done_rx)),
            finished: std::sync::Mutex::new(Some(finished_rx)),
        });
        let layer = AuditLayer {
            shared: Some(Arc::new(layer::Shared {
                guard: guard.clone(),
                tx,
                wake,
                capacity: self.capacity,
                stats: stats.clone(),
                resolver: self.resolver,
                record,
                header: self.request_id_header,
                make_id: self.make_id,
            })),
        };
        let handle = AuditHandle { guard };
        Ok((layer, handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_chain_key_fails_the_build_not_the_chain() {
        let err = AuditLayer::builder(TracingSink)
            .chain_key(b"too short")
            .capacity(8)
            .build()
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "audit.chain_key",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "`audit.chain_key`: the chain key must be at least 32 bytes, got 9"
        );
    }
}

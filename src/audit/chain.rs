//! Tamper evidence: each event carries `prev` (the previous event's hash) and `hash`, an
//! HMAC-SHA256 under a host secret over the event's JSON line without `hash`. [`verify`]
//! reads a JSON-lines log and names the first edited, missing or reordered line.

use std::io::BufRead;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::AuditEvent;

type HmacSha256 = Hmac<Sha256>;

/// The separator before `hash`, always the last member of a line.
const HASH_MEMBER: &str = ",\"hash\":\"";

/// The HMAC of a line's canonical bytes (the line without its `hash` member).
pub(crate) fn mac(key: &[u8], canonical: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(canonical);
    hex(&m.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Appends `,"hash":"<mac>"}` to a line serialized without `hash` (which ends in `}`).
pub(crate) fn seal(line: &mut String, key: &[u8]) -> String {
    let h = mac(key, line.as_bytes());
    line.pop(); // the closing brace
    line.push_str(HASH_MEMBER);
    line.push_str(&h);
    line.push_str("\"}");
    h
}

/// What is wrong with a log, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A line is not an audit event, or has no `hash`.
    #[error("line {line}: not a sealed audit event")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A line's content does not match its hash: it was edited.
    #[error("line {line} (seq {seq}): edited (its hash does not match)")]
    Edited {
        /// 1-based line number.
        line: usize,
        /// The line's sequence number, as written.
        seq: u64,
    },
    /// A line does not follow the one before it: something was deleted, inserted or
    /// reordered there.
    #[error(
        "line {line} (seq {seq}): does not follow the line before (an event is missing or out of place)"
    )]
    Broken {
        /// 1-based line number.
        line: usize,
        /// The line's sequence number.
        seq: u64,
    },
    /// The log's first event continues a chain from an earlier one: lines before it are
    /// missing, or the log continues an older file (verify it with [`Verifier::after`] or
    /// [`Verifier::from_anywhere`]).
    #[error(
        "line {line} (seq {seq}): the log does not begin at the start of its chain (events before it are missing)"
    )]
    MissingStart {
        /// 1-based line number.
        line: usize,
        /// The line's sequence number.
        seq: u64,
    },
    /// A new chain starts after the first line: events just before it may have been cut
    /// (a writer that restarted without continuing the chain needs
    /// [`Verifier::allow_restarts`]).
    #[error(
        "line {line} (seq {seq}): the chain starts again here (events before it may be missing)"
    )]
    Restarted {
        /// 1-based line number.
        line: usize,
        /// The line's sequence number.
        seq: u64,
    },
    /// The log does not hold the published chain head it was checked against
    /// ([`Verifier::expect_head`]): events were cut from its end.
    #[error(
        "the log ends (last seq {last_seq:?}) without the published chain head: events were cut from its end"
    )]
    Cut {
        /// The last event's sequence number, if any.
        last_seq: Option<u64>,
    },
    /// The log could not be read.
    #[error("read error at line {line}: {message}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// What failed.
        message: String,
    },
}

/// Where a log must begin.
#[derive(Debug, Clone)]
enum Start {
    /// At the start of a chain: the first event has no `prev`.
    Fresh,
    /// After the event whose `hash` this is (the end of the file before it).
    After(String),
    /// Anywhere.
    Anywhere,
}

/// Checks a JSON-lines audit log sealed with a key: every line's HMAC, that each line's
/// `prev` is the line before's `hash`, and where the log begins.
///
/// By default the log must begin at the start of a chain and hold one chain: lines cut from
/// its start, or from before a point where a chain starts again, are reported. A file sink
/// continues the chain of the file it opens, so one file holds one chain across restarts and
/// rotations.
///
/// ```
/// use palisade::audit::Verifier;
///
/// let key = b"an audit chain key of 32 bytes!!";
/// // Rotated files, oldest first: the oldest one kept may begin mid-chain (older ones were
/// // deleted); each later one must continue the one before.
/// # let (oldest, newer): (&[u8], &[u8]) = (b"", b"");
/// let first = Verifier::new(key).from_anywhere().verify(oldest)?;
/// let mut next = Verifier::new(key);
/// if let Some(hash) = first.last_hash {
///     next = next.after(hash);
/// }
/// let second = next.verify(newer)?;
/// println!("{} events", first.events + second.events);
/// # Ok::<(), palisade::audit::ChainError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verifier<'k> {
    key: &'k [u8],
    start: Start,
    allow_restarts: bool,
    /// A published chain head the log must hold.
    head: Option<String>,
}

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Verified {
    /// Events read.
    pub events: usize,
    /// Points after the first line where a chain starts again (only with
    /// [`Verifier::allow_restarts`]).
    pub restarts: usize,
    /// The last event's sequence number.
    pub last_seq: Option<u64>,
    /// The last event's `hash`: the next file of a rotated log continues from it, and it can
    /// be compared with a published [`ChainHead`](super::ChainHead) to show that nothing was
    /// cut from the end.
    pub last_hash: Option<String>,
}

impl<'k> Verifier<'k> {
    /// A verifier for logs sealed with `key`, which must begin at the start of a chain.
    #[must_use]
    pub fn new(key: &'k [u8]) -> Self {
        Self {
            key,
            start: Start::Fresh,
            allow_restarts: false,
            head: None,
        }
    }

    /// The log continues another whose last event's `hash` is `hash` (a rotated file after
    /// the older one, [`Verified::last_hash`]): its first event must follow that one.
    #[must_use]
    pub fn after(mut self, hash: impl Into<String>) -> Self {
        self.start = Start::After(hash.into());
        self
    }

    /// The log may begin anywhere in a chain: for the oldest file kept once rotation deleted
    /// those before it. Lines cut from its start then go unnoticed.
    #[must_use]
    pub fn from_anywhere(mut self) -> Self {
        self.start = Start::Anywhere;
        self
    }

    /// A chain may start again after the first line, as it does when a sink that holds no
    /// earlier log (standard output, `tracing`) is written by several processes in turn. Each
    /// restart is counted in [`Verified::restarts`]; lines cut just before one go unnoticed.
    #[must_use]
    pub fn allow_restarts(mut self) -> Self {
        self.allow_restarts = true;
        self
    }

    /// The log must hold the event whose `hash` is `hash`: a chain head published earlier
    /// ([`AuditHandle::chain_head`](super::AuditHandle::chain_head)). A log cut before it
    /// fails with [`ChainError::Cut`] — the one cut a chain cannot show on its own.
    #[must_use]
    pub fn expect_head(mut self, hash: impl Into<String>) -> Self {
        self.head = Some(hash.into());
        self
    }

    /// Reads and checks `log`.
    ///
    /// # Errors
    ///
    /// The first problem, naming its line.
    pub fn verify(&self, log: impl BufRead) -> Result<Verified, ChainError> {
        let mut previous: Option<String> = match &self.start {
            Start::After(h) => Some(h.clone()),
            Start::Fresh | Start::Anywhere => None,
        };
        let mut out = Verified::default();
        let mut head_seen = self.head.is_none();
        for (i, line) in log.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| ChainError::Io {
                line: n,
                message: e.to_string(),
            })?;
            if line.is_empty() {
                continue;
            }
            let event: AuditEvent =
                serde_json::from_str(&line).map_err(|_| ChainError::Malformed { line: n })?;
            let (Some(hash), Some(pos)) = (&event.hash, line.rfind(HASH_MEMBER)) else {
                return Err(ChainError::Malformed { line: n });
            };
            let canonical = format!("{}}}", &line[..pos]);
            let expected = mac(self.key, canonical.as_bytes());
            if !bool::from(expected.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(ChainError::Edited {
                    line: n,
                    seq: event.seq,
                });
            }
            let seq = event.seq;
            let first = out.events == 0;
            match (&previous, event.prev.as_deref()) {
                (Some(p), Some(prev)) if p == prev => {}
                // The first line, where the log may begin anywhere.
                (None, Some(_)) if first && matches!(self.start, Start::Anywhere) => {}
                (None, None) if first => {}
                (None, Some(_)) if first => return Err(ChainError::MissingStart { line: n, seq }),
                (Some(_), None) if self.allow_restarts && !first => out.restarts += 1,
                (Some(_), None) if !first => {
                    return Err(ChainError::Restarted { line: n, seq });
                }
                _ => return Err(ChainError::Broken { line: n, seq }),
            }
            if !head_seen {
                head_seen = self
                    .head
                    .as_deref()
                    .is_some_and(|h| bool::from(h.as_bytes().ct_eq(hash.as_bytes())));
            }
            previous = Some(hash.clone());
            out.events += 1;
            out.last_seq = Some(seq);
            out.last_hash = Some(hash.clone());
        }
        if !head_seen {
            return Err(ChainError::Cut {
                last_seq: out.last_seq,
            });
        }
        Ok(out)
    }
}

/// Checks a JSON-lines audit log sealed with `key`: every line's hash, that each line's
/// `prev` is the previous line's `hash`, and that the log begins at the start of a chain.
/// Returns the number of events. [`Verifier`] has the options (rotated files, restarts).
///
/// # Errors
///
/// The first problem, naming its line.
pub fn verify(log: impl BufRead, key: &[u8]) -> Result<usize, ChainError> {
    Verifier::new(key).verify(log).map(|v| v.events)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &[u8] = b"an audit chain key of 32 bytes!!";

    /// `n` sealed lines of one chain, continuing from `prev`.
    fn chain(n: u64, mut prev: Option<String>) -> Vec<String> {
        (0..n)
            .map(|seq| {
                let mut event = crate::audit::queue::loss_event(seq, 1);
                event.prev = prev.take();
                let mut line = serde_json::to_string(&event).unwrap();
                prev = Some(seal(&mut line, KEY));
                line
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_reports_its_count_and_last_event() {
        let lines = chain(4, None);
        let v = Verifier::new(KEY)
            .verify(lines.join("\n").as_bytes())
            .unwrap();
        assert_eq!((v.events, v.restarts, v.last_seq), (4, 0, Some(3)));
        let last: AuditEvent = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(v.last_hash, last.hash);
        // An empty log is an empty chain; a continuation must name its predecessor.
        assert_eq!(Verifier::new(KEY).verify(&b""[..]).unwrap().events, 0);
        let next = chain(2, v.last_hash.clone());
        let after = Verifier::new(KEY).after(v.last_hash.unwrap());
        assert_eq!(after.verify(next.join("\n").as_bytes()).unwrap().events, 2);
        assert!(matches!(
            after.verify(lines.join("\n").as_bytes()),
            Err(ChainError::Broken { line: 1, seq: 0 })
        ));
    }

    #[test]
    fn a_log_cut_before_a_published_head_is_named() {
        let lines = chain(5, None);
        let head: AuditEvent = serde_json::from_str(&lines[3]).unwrap();
        let head = head.hash.unwrap();
        let v = Verifier::new(KEY).expect_head(head.clone());
        assert_eq!(v.verify(lines.join("\n").as_bytes()).unwrap().events, 5);
        assert_eq!(
            v.verify(lines[..4].join("\n").as_bytes()).unwrap().events,
            4
        );
        assert_eq!(
            v.verify(lines[..3].join("\n").as_bytes()),
            Err(ChainError::Cut { last_seq: Some(2) })
        );
        assert_eq!(v.verify(&b""[..]), Err(ChainError::Cut { last_seq: None }));
    }

    proptest! {
        /// Deleting any one event but the last is named at the line where it was, as a
        /// missing start (the first) or a break (any other); the last is what a published
        /// chain head is for.
        #[test]
        fn any_deleted_event_but_the_last_is_named(n in 2u64..12, cut in 0u64..12) {
            let cut = usize::try_from(cut % n).unwrap();
            let mut lines = chain(n, None);
            lines.remove(cut);
            let got = Verifier::new(KEY).verify(lines.join("\n").as_bytes());
            let line = cut + 1;
            let seq = cut as u64 + 1;
            match got {
                Err(ChainError::MissingStart { line: l, seq: s }) => {
                    prop_assert_eq!(cut, 0);
                    prop_assert_eq!((l, s), (1, 1));
                }
                Err(ChainError::Broken { line: l, seq: s }) => {
                    prop_assert!(cut > 0);
                    prop_assert_eq!((l, s), (line, seq));
                }
                Ok(v) => {
                    prop_assert_eq!(cut, usize::try_from(n).unwrap() - 1);
                    prop_assert_eq!(v.last_seq, Some(n - 2));
                }
                Err(e) => prop_assert!(false, "{}", e),
            }
        }

        /// Two chains one after the other: a restart, named unless allowed.
        #[test]
        fn a_second_chain_is_a_restart(a in 1u64..6, b in 1u64..6) {
            let mut lines = chain(a, None);
            lines.extend(chain(b, None));
            let text = lines.join("\n");
            let strict = Verifier::new(KEY).verify(text.as_bytes());
            prop_assert_eq!(
                strict,
                Err(ChainError::Restarted { line: usize::try_from(a).unwrap() + 1, seq: 0 })
            );
            let lenient = Verifier::new(KEY).allow_restarts().verify(text.as_bytes()).unwrap();
            prop_assert_eq!((lenient.events, lenient.restarts), (usize::try_from(a + b).unwrap(), 1));
        }
    }
}

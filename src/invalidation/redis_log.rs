//! The Redis bus's log: each message is also appended to a capped Redis stream, so that an
//! instance that was cut off replays what it missed when it reconnects, and an instance that
//! starts learns the revocations still in the log.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisResult, Script};

use super::{Hub, Invalidation};
use crate::redis_link::Link;

/// Appends the message to the log and publishes it with its entry id, in one step: no
/// instance can hear a message that is not in the log.
static APPEND_AND_PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1])\n\
         redis.call('PUBLISH', ARGV[3], id .. ' ' .. ARGV[1])\n\
         return id",
    )
});

/// Entries read per call while replaying.
const PAGE: usize = 500;

/// The log of one channel: its stream key and how many entries it keeps (about: Redis trims
/// whole nodes of the stream).
#[derive(Clone)]
pub(super) struct Log {
    key: String,
    length: usize,
}

impl Log {
    /// The log of `channel`, keeping about `length` entries.
    pub(super) fn new(channel: &str, length: usize) -> Self {
        Self {
            key: format!("{channel}:log"),
            length,
        }
    }

    /// Appends `payload` and publishes it on `channel` as `<entry id> <payload>`.
    pub(super) async fn publish(
        &self,
        link: &Link,
        channel: &str,
        payload: &str,
    ) -> RedisResult<()> {
        let mut conn = link.conn().await?;
        APPEND_AND_PUBLISH
            .key(&self.key)
            .arg(payload)
            .arg(self.length)
            .arg(channel)
            .invoke_async::<String>(&mut conn)
            .await
            .map(drop)
    }

    /// Delivers to `hub` every entry after `last` (every entry the log holds when `last` is
    /// `None`: an instance that starts), each call bounded by `timeout`; returns the last entry
    /// delivered. When the log was trimmed past `last`, what was lost cannot be replayed: a
    /// warning says so (the hub drops every cache as it goes live).
    pub(super) async fn replay(
        &self,
        link: &Link,
        last: Option<EntryId>,
        hub: &Hub,
        timeout: Duration,
    ) -> RedisResult<Option<EntryId>> {
        let mut conn = tokio::time::timeout(timeout, link.conn())
            .await
            .map_err(timed_out)??;
        if let Some(last) = last {
            let oldest = self.read(&mut conn, "-".into(), 1, timeout).await?;
            if oldest.first().and_then(|e| EntryId::parse(&e.0)) > Some(last.next()) {
                tracing::warn!(
                    layer = "invalidation",
                    "the bus's log no longer holds every message since this instance was cut \
                     off: what it missed cannot be replayed (raise log_length)"
                );
            }
        }
        let mut newest = last;
        loop {
            let start = newest.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
            let page = self.read(&mut conn, start, PAGE, timeout).await?;
            for (id, fields) in &page {
                match fields.chunks_exact(2).find(|f| f[0] == b"m") {
                    Some(f) => match Invalidation::decode(&f[1]) {
                        Ok(message) => hub.deliver(&message),
                        Err(_) => hub.deliver_unknown(),
                    },
                    None => hub.deliver_unknown(),
                }
                newest = EntryId::parse(id).or(newest);
            }
            if page.len() < PAGE {
                return Ok(newest);
            }
        }
    }
}

impl Log {
    /// Up to `count` entries from `start` (`XRANGE`), bounded by `timeout`.
    async fn read(
        &self,
        conn: &mut crate::redis_link::Conn,
        start: String,
        count: usize,
        timeout: Duration,
    ) -> RedisResult<Vec<Entry>> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&self.key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count);
        tokio::time::timeout(timeout, cmd.query_async(conn))
            .await
            .map_err(timed_out)?
    }
}

/// One stream entry as `XRANGE` answers it: its id, then its fields and values in turn.
type Entry = (String, Vec<Vec<u8>>);

fn timed_out(_: tokio::time::error::Elapsed) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// A stream entry id: milliseconds, then a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct EntryId(u64, u64);

impl EntryId {
    pub(super) fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The id right after this one.
    fn next(self) -> Self {
        match self.1.checked_add(1) {
            Some(seq) => Self(self.0, seq),
            None => Self(self.0.saturating_add(1), 0),
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A published payload's entry id, if it has one (`<id> <message>`), and its message.
pub(super) fn split(payload: &[u8]) -> (Option<EntryId>, &[u8]) {
    if payload.first().is_some_and(u8::is_ascii_digit)
        && let Some(space) = payload.iter().position(|&b| b == b' ')
        && let Some(id) = std::str::from_utf8(&payload[..space])
            .ok()
            .and_then(EntryId::parse)
    {
        return (Some(id), &payload[space + 1..]);
    }
    (None, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_by_time_then_sequence_and_split_from_payloads() {
        let a = EntryId::parse("1700000000000-0").unwrap();
        let b = EntryId::parse("1700000000000-1").unwrap();
        let c = EntryId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.next(), b);
        assert_eq!(a.to_string(), "1700000000000-0");
        assert_eq!(EntryId::parse("x-1"), None);
        assert_eq!(
            split(b"1700000000000-1 {\"v\":1,\"t\":\"policy\"}"),
            (Some(b), &b"{\"v\":1,\"t\":\"policy\"}"[..])
        );
        assert_eq!(split(b"{\"v\":1}"), (None, &b"{\"v\":1}"[..]));
        assert_eq!(split(b"12 nonsense"), (None, &b"12 nonsense"[..]));
    }
}

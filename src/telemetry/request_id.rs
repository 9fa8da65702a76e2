//! [`RequestId`]: the one id a request is known by, in the audit event, in every span palisade
//! opens and in the response. An id the request already has (from the client, or from tower-http's
//! `SetRequestIdLayer` outside palisade) is kept when it is 1–128 characters of
//! `[A-Za-z0-9._:-]`; otherwise one is made, by default a random (version 4) UUID.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Extensions, HeaderMap, HeaderName, HeaderValue};

/// The default request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request extensions for handlers (and their logs). Its value is
/// always 1–128 characters of `[A-Za-z0-9._:-]` when palisade put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id as text (empty if someone else inserted a value that is not text).
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// Whether `id` is kept as a request id: 1–128 characters of `[A-Za-z0-9._:-]`, so that it
/// cannot forge a log line, a JSON member or a header.
pub(crate) fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
}

/// The acceptable id the request already carries: palisade's [`RequestId`] extension, else
/// tower-http's `RequestId` extension (feature `tower-http`), else the `header` field (only
/// when the request has exactly one).
pub(crate) fn incoming(
    headers: &HeaderMap,
    ext: &Extensions,
    header: &HeaderName,
) -> Option<HeaderValue> {
    let ours = ext.get::<RequestId>().map(|r| &r.0);
    #[cfg(feature = "tower-http")]
    let ours = ours.or_else(|| {
        ext.get::<tower_http::request_id::RequestId>()
            .map(tower_http::request_id::RequestId::header_value)
    });
    if let Some(id) = ours.filter(|v| acceptable(v.as_bytes())) {
        return Some(id.clone());
    }
    let mut values = headers.get_all(header).iter();
    let value = values.next()?;
    (values.next().is_none() && acceptable(value.as_bytes())).then(|| value.clone())
}

/// Makes the id of a request that comes without an acceptable one. A closure
/// `Fn() -> HeaderValue` is one.
///
/// An id made here is checked like a client's: one that is not 1–128 characters of
/// `[A-Za-z0-9._:-]` is replaced by a UUID.
///
/// ```
/// use http::HeaderValue;
/// use palisade::telemetry::MakeRequestId;
///
/// fn check(m: impl MakeRequestId) -> HeaderValue {
///     m.make_request_id()
/// }
/// // A host's own scheme (a time-ordered UUID v7, a snowflake...).
/// assert_eq!(check(|| HeaderValue::from_static("req-1")), "req-1");
/// ```
pub trait MakeRequestId: Send + Sync + 'static {
    /// A fresh id.
    fn make_request_id(&self) -> HeaderValue;
}

impl<F> MakeRequestId for F
where
    F: Fn() -> HeaderValue + Send + Sync + 'static,
{
    fn make_request_id(&self) -> HeaderValue {
        self()
    }
}

/// The default [`MakeRequestId`]: random (version 4) UUIDs in their hyphenated lowercase form,
/// as tower-http's `MakeRequestUuid` makes them. The random bytes come from the operating
/// system once per 64 ids per thread, written into one shared buffer, so an id costs a
/// reference count, not an allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV4;

impl MakeRequestId for UuidV4 {
    fn make_request_id(&self) -> HeaderValue {
        IDS.with(|cell| {
            let mut ids = cell.borrow_mut();
            if ids.next == BLOCK {
                *ids = IdBlock {
                    bytes: uuid_block(),
                    next: 0,
                };
            }
            let at = ids.next * LEN;
            ids.next += 1;
            HeaderValue::from_maybe_shared(ids.bytes.slice(at..at + LEN))
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        })
    }
}

/// Ids written per block, and the length of one (a hyphenated UUID).
const BLOCK: usize = 64;
const LEN: usize = 36;

/// This thread's current block of fresh ids.
struct IdBlock {
    bytes: bytes::Bytes,
    next: usize,
}

thread_local! {
    static IDS: RefCell<IdBlock> = const {
        RefCell::new(IdBlock { bytes: bytes::Bytes::new(), next: BLOCK })
    };
}

/// Ids handed out since the process started, mixed in when the system has no randomness to
/// give, so that ids stay unique even then.
static MADE: AtomicU64 = AtomicU64::new(0);

fn uuid_block() -> bytes::Bytes {
    let mut random = [0u8; BLOCK * 16];
    let failed = getrandom::fill(&mut random).is_err();
    let first = MADE.fetch_add(BLOCK as u64, Ordering::Relaxed);
    let mut out = vec![0u8; BLOCK * LEN];
    for (i, (bytes, text)) in random
        .chunks_exact_mut(16)
        .zip(out.chunks_exact_mut(LEN))
        .enumerate()
    {
        if failed {
            bytes[..8].copy_from_slice(&(first + i as u64).to_be_bytes());
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(bytes);
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .hyphenated()
            .encode_lower(text);
    }
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn fresh_ids_are_distinct_version_4_uuids() {
        let ids: HashSet<_> = (0..BLOCK * 3 + 5)
            .map(|_| UuidV4.make_request_id())
            .collect();
        assert_eq!(ids.len(), BLOCK * 3 + 5);
        for id in &ids {
            let u = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id:?}");
            assert_eq!(u.hyphenated().to_string(), id.to_str().unwrap());
            assert!(acceptable(id.as_bytes()));
        }
    }

    #[test]
    fn only_short_plain_ids_are_acceptable() {
        assert!(acceptable(b"a.b_c:d-9"));
        assert!(acceptable(&[b'a'; 128]));
        assert!(!acceptable(&[b'a'; 129]));
        assert!(!acceptable(b""));
        for bad in ["a b", "a\"b", "a\\b", "a/b", "é", "a\tb", "{x}"] {
            assert!(!acceptable(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn the_extension_wins_over_the_header_and_a_bad_one_is_skipped() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("from-header"));
        let mut ext = Extensions::new();
        assert_eq!(
            incoming(&headers, &ext, &X_REQUEST_ID).unwrap(),
            "from-header"
        );
        ext.insert(RequestId(HeaderValue::from_static("bad id")));
        assert_eq!(
            incoming(&headers, &ext, &X_REQUEST_ID).unwrap(),
            "from-header"
        );
        ext.insert(RequestId(HeaderValue::from_static("from-ext")));
        assert_eq!(incoming(&headers, &ext, &X_REQUEST_ID).unwrap(), "from-ext");
        headers.append(&X_REQUEST_ID, HeaderValue::from_static("second"));
        assert_eq!(
            incoming(&headers, &Extensions::new(), &X_REQUEST_ID),
            None,
            "two ids are none"
        );
    }
}

//! The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-12) and the legacy
//! `X-RateLimit-*` fields, rendered here and nowhere else.

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// The `RateLimit-Policy` field (IETF RateLimit fields draft §3).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` field (IETF RateLimit fields draft §4).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The legacy `X-RateLimit-Limit` field.
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// The legacy `X-RateLimit-Remaining` field.
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// The legacy `X-RateLimit-Reset` field (seconds).
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `d` in whole seconds, rounded up (as `t`, `Retry-After` and `X-RateLimit-Reset` say it).
#[must_use]
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Appends one `RateLimit` item, `"item";r=remaining;t=reset` (draft §4), after a `, ` when
/// `out` holds items already. Runs on every admitted request: `itoa`, not `fmt`.
pub(crate) fn write_item(out: &mut String, item: &str, remaining: u64, reset: Duration) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    let mut num = itoa::Buffer::new();
    out.push('"');
    out.push_str(item);
    out.push_str("\";r=");
    out.push_str(num.format(remaining));
    out.push_str(";t=");
    out.push_str(num.format(ceil_secs(reset)));
}

/// The `RateLimit-Policy` value of a policy: one `"item";q=quota;w=window` per limit (draft
/// §3), from `(item, quota, window seconds)`.
pub(crate) fn policy_value<'a>(
    items: impl Iterator<Item = (&'a str, u64, u64)>,
) -> Option<HeaderValue> {
    let mut out = String::new();
    for (item, q, w) in items {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{item}\";q={q};w={w}");
    }
    HeaderValue::try_from(out).ok()
}

/// The legacy fields for one limit: `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds).
pub(crate) fn legacy_fields(
    capacity: u64,
    remaining: u64,
    reset: Duration,
) -> [(&'static HeaderName, HeaderValue); 3] {
    [
        (&X_RATELIMIT_LIMIT, capacity.into()),
        (&X_RATELIMIT_REMAINING, remaining.into()),
        (&X_RATELIMIT_RESET, ceil_secs(reset).into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_policies_render_as_the_draft_says() {
        let mut out = String::new();
        write_item(&mut out, "per-ip", 39, Duration::from_millis(500));
        write_item(&mut out, "per-user", 0, Duration::from_secs(3600));
        assert_eq!(out, r#""per-ip";r=39;t=1, "per-user";r=0;t=3600"#);
        let p = policy_value([("free-rate", 5, 1), ("free-day", 10_000, 86_400)].into_iter());
        assert_eq!(
            p.unwrap(),
            r#""free-rate";q=5;w=1, "free-day";q=10000;w=86400"#
        );
        let legacy = legacy_fields(10, 3, Duration::from_millis(1001));
        assert_eq!(legacy[2].1, "2");
    }
}

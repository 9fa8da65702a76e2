//! [`TraceParent`]: a request's W3C Trace Context `traceparent` header (Level 1, §3.2), parsed
//! strictly. A malformed header is ignored (the request is not refused, and nothing from it is
//! recorded): §3.2.2.3 and §3.2.2.4 say to ignore it, and a value that reaches the audit log or
//! a span is only ever lowercase hex.

use std::fmt;

use http::{HeaderMap, HeaderName};

/// The `traceparent` header's name.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The length of a version `00` `traceparent`: `00-` 32 hex digits `-` 16 hex digits `-` 2.
const LEN: usize = 55;

/// A request's trace context, from its `traceparent` header (W3C Trace Context Level 1 §3.2):
/// the trace id, the caller's span id (the header's `parent-id`) and the trace flags.
///
/// ```
/// use palisade::telemetry::TraceParent;
///
/// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
/// assert!(tp.sampled());
/// // Upper-case hex, an all-zero id or version ff: ignored.
/// assert!(TraceParent::parse(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    trace_id: [u8; 32],
    /// 16 lowercase hex digits, not all zero.
    parent_id: [u8; 16],
    flags: u8,
}

impl TraceParent {
    /// The request's `traceparent`, when it sent exactly one and it is valid. A request with
    /// several `traceparent` fields has none (their combined value is not a `traceparent`).
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(value.as_bytes())
    }

    /// Parses a `traceparent` value; `None` when it is not valid.
    ///
    /// Version `00` is exactly `00-{trace-id}-{parent-id}-{trace-flags}` in lowercase hex
    /// (§3.2.2), with neither id all zeros (§3.2.2.3, §3.2.2.4). Version `ff` is invalid
    /// (§3.2.2.1). A later version is read as §3.2.4 says: its first 55 characters as version
    /// `00`, followed by nothing or by a `-`.
    #[must_use]
    pub fn parse(value: &[u8]) -> Option<Self> {
        let version = value.get(..2)?;
        if !is_lower_hex(version) || version == b"ff" {
            return None;
        }
        let known = match value.len() {
            LEN => value,
            // §3.2.4: a later version may append fields after a dash; version 00 may not.
            n if n > LEN && version != b"00" && value[LEN] == b'-' => &value[..LEN],
            _ => return None,
        };
        if known[2] != b'-' || known[35] != b'-' || known[52] != b'-' {
            return None;
        }
        let (trace_id, parent_id, flags) = (&known[3..35], &known[36..52], &known[53..55]);
        if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags) {
            return None;
        }
        if trace_id.iter().all(|&b| b == b'0') || parent_id.iter().all(|&b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: trace_id.try_into().ok()?,
            parent_id: parent_id.try_into().ok()?,
            flags: (nibble(flags[0]) << 4) | nibble(flags[1]),
        })
    }

    /// The trace id: 32 lowercase hex digits.
    #[must_use]
    pub fn trace_id(&self) -> &str {
        // Checked to be ASCII hex when parsed.
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    /// The caller's span id (the header's `parent-id`): 16 lowercase hex digits.
    #[must_use]
    pub fn parent_id(&self) -> &str {
        std::str::from_utf8(&self.parent_id).unwrap_or_default()
    }

    /// The trace flags (§3.2.2.5).
    #[must_use]
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller may have recorded its trace (the `sampled` flag, §3.2.2.5.1).
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TraceParent(00-{}-{}-{:02x})",
            self.trace_id(),
            self.parent_id(),
            self.flags
        )
    }
}

/// `HEXDIGLC`: `0-9` and `a-f`, never upper case (§3.2.2).
fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn nibble(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(s: &str) -> Option<TraceParent> {
        TraceParent::parse(s.as_bytes())
    }

    #[test]
    fn w3c_trace_context_3_2_2_the_specifications_example_is_read() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
        assert_eq!(tp.flags(), 1);
        assert!(tp.sampled());
        let unsampled = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
        // §3.2.2.5: flags other than `sampled` are kept as sent, not refused.
        let other = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe").unwrap();
        assert_eq!(other.flags(), 0xfe);
        assert!(!other.sampled());
    }

    #[test]
    fn w3c_trace_context_3_2_2_only_lowercase_hex_and_exact_dashes() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "",
            "00",
            "00-",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn w3c_trace_context_3_2_2_3_an_all_zero_trace_id_is_ignored() {
        assert_eq!(
            parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn w3c_trace_context_3_2_2_4_an_all_zero_parent_id_is_ignored() {
        assert_eq!(
            parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            None
        );
    }

    #[test]
    fn w3c_trace_context_3_2_2_1_version_ff_is_invalid() {
        assert_eq!(
            parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn w3c_trace_context_3_2_4_a_later_version_is_read_by_its_first_fields() {
        let tp = parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let longer =
            parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next")
                .unwrap();
        assert_eq!(longer.parent_id(), "00f067aa0ba902b7");
        // ...but only past a dash, and never for version 00, whose format is exact.
        assert_eq!(
            parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            None
        );
        assert_eq!(
            parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
            None
        );
    }

    #[test]
    fn several_traceparent_fields_are_none() {
        let mut headers = HeaderMap::new();
        headers.append(&TRACEPARENT, http::HeaderValue::from_static("x"));
        assert_eq!(TraceParent::from_headers(&headers), None);
        let mut headers = HeaderMap::new();
        let valid = http::HeaderValue::from_bytes(VALID).unwrap();
        headers.append(&TRACEPARENT, valid.clone());
        assert!(TraceParent::from_headers(&headers).is_some());
        headers.append(&TRACEPARENT, valid);
        assert_eq!(TraceParent::from_headers(&headers), None);
        assert_eq!(TraceParent::from_headers(&HeaderMap::new()), None);
    }

    fn hex(n: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(b"0123456789abcdef".to_vec()), n)
            .prop_map(|v| String::from_utf8(v).unwrap())
    }

    proptest! {
        /// Every well-formed version 00 value is read back exactly, unless an id is all zeros.
        #[test]
        fn w3c_trace_context_3_2_2_well_formed_values_round_trip(
            trace in hex(32), parent in hex(16), flags in hex(2),
        ) {
            let value = format!("00-{trace}-{parent}-{flags}");
            let zero = trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0');
            match parse(&value) {
                Some(tp) => {
                    prop_assert!(!zero);
                    prop_assert_eq!(tp.trace_id(), trace.as_str());
                    prop_assert_eq!(tp.parent_id(), parent.as_str());
                    prop_assert_eq!(format!("{:02x}", tp.flags()), flags);
                }
                None => prop_assert!(zero),
            }
        }

        /// Whatever bytes arrive, parsing never panics, and what it accepts is lowercase hex
        /// of the right lengths taken from the value itself.
        #[test]
        fn w3c_trace_context_3_2_any_bytes_are_read_or_ignored(
            value in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            if let Some(tp) = TraceParent::parse(&value) {
                prop_assert_eq!(tp.trace_id().len(), 32);
                prop_assert_eq!(tp.parent_id().len(), 16);
                prop_assert!(is_lower_hex(tp.trace_id().as_bytes()));
                prop_assert!(is_lower_hex(tp.parent_id().as_bytes()));
                prop_assert_eq!(&value[3..35], tp.trace_id().as_bytes());
                prop_assert_eq!(&value[36..52], tp.parent_id().as_bytes());
            }
        }

        /// One changed character of a valid value: still read only when it stays lowercase
        /// hex in a hex position (and the version stays readable), else ignored.
        #[test]
        fn w3c_trace_context_3_2_2_one_changed_byte_is_caught(at in 0usize..55, b in any::<u8>()) {
            let mut value = VALID.to_vec();
            value[at] = b;
            let dash = matches!(at, 2 | 35 | 52);
            let still_valid = if dash {
                b == b'-'
            } else {
                is_lower_hex(&[b]) && !(at < 2 && value[..2] == *b"ff")
            };
            prop_assert_eq!(TraceParent::parse(&value).is_some(), still_valid, "{:?}", value);
        }
    }
}

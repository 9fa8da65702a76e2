//! The audit line written straight from what the request path captured, in the queue's task:
//! no [`AuditEvent`](super::AuditEvent) in between, keys written as constants, strings escaped
//! as they are copied. The line is the JSON form of the event (schema version 1, the fields in
//! the struct's order); [`AuditRecord::event`](super::AuditRecord::event) reads it back when a
//! sink asks.

use std::fmt::Write as _;

use tokio::time::Instant;

use super::raw::{End, RawEvent, route_str, truncate_chars};
use super::redact::{REDACTED, Redaction};
use crate::clock::Timestamp;
use crate::outcome::{Decision, QuotaOutcome, ResponseDivergence, ShadowDivergence};
use crate::principal::{AuthMethod, Principal};
use crate::rejection::Rejection;

/// Appends `s` as a JSON string: quote, backslash and the C0 controls escaped (as serde_json
/// escapes them), everything else copied.
pub(super) fn escaped(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    loop {
        // Plain bytes are skipped eight at a time; `i` is a quote, a backslash or a control.
        let i = crate::json_text::plain_until(bytes, run);
        let Some(&b) = bytes.get(i) else { break };
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        out.push_str(&s[run..i]);
        if short.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(short);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// The members of one JSON object being written.
struct Obj<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    /// `"key":` (keys are constants that need no escaping).
    fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    /// `"key":` for a key from elsewhere (escaped).
    fn any_key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        escaped(self.out, key);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        escaped(self.key(key), value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn num(&mut self, key: &str, value: u64) {
        let mut b = itoa::Buffer::new();
        let digits = b.format(value);
        self.key(key).push_str(digits);
    }

    fn object(&mut self, key: &str) -> Obj<'_> {
        Obj::open(self.key(key))
    }

    fn close(self) {
        self.out.push('}');
    }
}

impl RawEvent {
    /// Writes the event's JSON object into `out` without its closing brace (the chain's
    /// `prev` may follow).
    pub(crate) fn write_json(
        self,
        redaction: &Redaction,
        anchor: (Timestamp, Instant),
        out: &mut String,
    ) {
        let (wall, mono) = anchor;
        let ago = u64::try_from(
            mono.saturating_duration_since(self.request.start)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let time = Timestamp::from_unix_nanos(wall.as_unix_nanos().saturating_sub(ago));
        let r = &self.request;
        let mut o = Obj::open(out);
        o.num("version", u64::from(super::SCHEMA_VERSION));
        o.str("kind", "request");
        o.num("seq", self.seq);
        let out = o.key("time");
        out.push('"');
        time.write_rfc3339(out);
        out.push('"');
        o.opt_str("request_id", r.request_id.to_str().ok());
        if let Some(t) = &r.trace {
            o.str("trace_id", t.trace_id());
            o.str("parent_id", t.parent_id());
        }
        let (status, principal) = match &self.end {
            End::Response {
                status, principal, ..
            } => (Some(*status), principal.as_ref()),
            _ => (None, None),
        };
        if let Some(p) = principal {
            write_principal(&mut o, p);
            o.opt_str("tenant", p.tenant());
        }
        if let Some(ip) = r.client_ip {
            write_ip(o.key("client_ip"), ip);
        }
        o.str("method", r.method.as_str());
        o.opt_str("route", r.route.as_ref().map(route_str));
        o.str("path", &redaction.path(r.uri.path(), r.uri.query()));
        if let Some(s) = status {
            o.num("status", u64::from(s.as_u16()));
        }
        write_end(&mut o, &self.end);
        o.num(
            "latency_us",
            u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
        );
        if let Some(ua) = &r.user_agent {
            let ua = String::from_utf8_lossy(ua.as_bytes());
            o.str("user_agent", truncate_chars(&ua, 256));
        }
        write_headers(&mut o, &self, redaction);
        if let End::Response {
            fields: Some(f), ..
        } = &self.end
            && !f.0.is_empty()
        {
            let mut fields = o.object("fields");
            for (k, v) in &f.0 {
                let _ = write!(fields.any_key(k), "{v}");
            }
            fields.close();
        }
    }
}

/// `ip` as a JSON string; an IPv4 address octet by octet (the formatter's path costs about a
/// thousand instructions per event), an IPv6 one as `Display` writes it.
fn write_ip(out: &mut String, ip: std::net::IpAddr) {
    out.push('"');
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(b.format(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push('"');
}

/// How the request ended: the outcome, and what the layers reported beside it.
fn write_end(o: &mut Obj<'_>, end: &End) {
    match end {
        End::Error | End::Cancelled => {
            let mut w = o.object("outcome");
            let ended = if matches!(end, End::Error) {
                "error"
            } else {
                "cancelled"
            };
            w.str("decision", ended);
            w.close();
        }
        End::Response {
            rejection,
            decision,
            divergence,
            response,
            quota,
            ..
        } => {
            write_outcome(o, rejection.as_ref(), decision.as_ref());
            if let Some(d) = divergence {
                write_shadow(o, d);
            }
            if let Some(d) = response {
                write_response_check(o, d);
            }
            if let Some(q) = quota.as_ref().filter(|q| !q.is_empty()) {
                write_quota(o, q);
            }
        }
    }
}

fn write_principal(o: &mut Obj<'_>, p: &Principal) {
    let mut w = o.object("principal");
    w.str("subject", p.subject());
    match p.method() {
        AuthMethod::ApiKey { key_id } => {
            w.str("credential", "api_key");
            w.str("key_id", key_id.as_str());
        }
        AuthMethod::Bearer { issuer } => {
            w.str("credential", "bearer");
            w.str("issuer", issuer);
        }
        _ => w.str("credential", "anonymous"),
    }
    if let Some(c) = p.confirmation() {
        w.str("confirmation", c.as_str());
    }
    w.close();
}

fn write_outcome(o: &mut Obj<'_>, rejection: Option<&Rejection>, decision: Option<&Decision>) {
    let mut w = o.object("outcome");
    match rejection {
        Some(r) => {
            w.str("decision", "refused");
            w.str("layer", r.layer());
            w.str("reason", r.reason());
            match r {
                Rejection::Forbidden(f) => w.opt_str("rule", f.rule().map(|x| x.description())),
                Rejection::TooManyRequests(t) => {
                    w.str("rule", &format!("quota policy {}", t.policy()));
                }
                Rejection::Unavailable(u) => w.opt_str("cause", u.cause()),
                Rejection::Transport(t) => w.opt_str("cause", t.credential()),
                _ => {}
            }
        }
        None => {
            w.str("decision", "allowed");
            w.opt_str(
                "rule",
                decision.and_then(Decision::rule).map(|r| r.description()),
            );
        }
    }
    w.close();
}

fn write_shadow(o: &mut Obj<'_>, d: &ShadowDivergence) {
    let mut w = o.object("authz_shadow");
    w.str("enforced", d.enforced.outcome().code());
    w.opt_str("enforced_rule", d.enforced.rule().map(|r| r.description()));
    w.str("shadow", d.shadow.outcome().code());
    w.opt_str("shadow_rule", d.shadow.rule().map(|r| r.description()));
    w.close();
}

fn write_response_check(o: &mut Obj<'_>, d: &ResponseDivergence) {
    let mut w = o.object("response_check");
    w.str("mode", d.mode);
    w.str("action", d.action);
    w.num("status", u64::from(d.status));
    let out = w.key("errors");
    out.push('[');
    for (i, v) in d.errors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut e = Obj::open(out);
        e.str("pointer", &v.pointer);
        e.str("keyword", &v.keyword);
        e.close();
    }
    out.push(']');
    w.close();
}

fn write_quota(o: &mut Obj<'_>, q: &QuotaOutcome) {
    let mut w = o.object("quota");
    w.str("mode", q.mode().code());
    w.opt_str("shadow_policy", q.shadow().map(|s| &*s.policy));
    if !q.limits().is_empty() {
        let out = w.key("limits");
        out.push('[');
        for (i, l) in q.limits().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut e = Obj::open(out);
            e.str("policy", &l.item);
            e.num("remaining", l.remaining);
            e.num("reset_s", l.reset_secs());
            e.close();
        }
        out.push(']');
    }
    w.close();
}

/// The recorded headers, by name (the last of a repeated one), secret ones redacted, long
/// ones cut.
fn write_headers(o: &mut Obj<'_>, e: &RawEvent, redaction: &Redaction) {
    let headers = &e.request.headers;
    if headers.is_empty() {
        return;
    }
    let mut order: smallvec::SmallVec<[usize; 8]> = (0..headers.len()).collect();
    order.sort_by(|a, b| headers[*a].0.as_str().cmp(headers[*b].0.as_str()));
    let mut w = o.object("headers");
    for (n, &i) in order.iter().enumerate() {
        let (k, v) = &headers[i];
        if order
            .get(n + 1)
            .is_some_and(|&j| headers[j].0.as_str() == k.as_str())
        {
            continue;
        }
        if redaction.secret_headers.contains(k) {
            w.str(k.as_str(), REDACTED);
        } else {
            let v = String::from_utf8_lossy(v.as_bytes());
            w.str(k.as_str(), truncate_chars(&v, 256));
        }
    }
    w.close();
}

#[cfg(test)]
mod tests {
    use crate::principal::Confirmation;
    use std::sync::Arc;
    use std::time::Duration;

    use http::{HeaderName, HeaderValue, Method, StatusCode};
    use serde_json::json;

    use super::*;
    use crate::audit::AuditFields;
    use crate::audit::raw::RawRequest;
    use crate::outcome::{LimitOutcome, Outcome, QuotaMode, QuotaShadow, RuleRef};
    use crate::rejection::{Forbidden, InvalidInput, InvalidReason, TooManyRequests, Violation};

    fn request(start: Instant) -> RawRequest {
        RawRequest {
            start,
            request_id: HeaderValue::from_static("req-1"),
            client_ip: Some("2001:db8::1".parse().unwrap()),
            method: Method::POST,
            uri: "/v1/orders?limit=10&token=abc".parse().unwrap(),
            route: None,
            trace: crate::telemetry::TraceParent::parse(
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            user_agent: Some(HeaderValue::from_bytes("cli \"q\" \\ \t é".as_bytes()).unwrap()),
            headers: vec![
                (
                    HeaderName::from_static("x-tenant"),
                    HeaderValue::from_static("acme"),
                ),
                (
                    HeaderName::from_static("authorization"),
                    HeaderValue::from_static("Bearer x"),
                ),
                (
                    HeaderName::from_static("x-tenant"),
                    HeaderValue::from_static("acme-2"),
                ),
                (
                    HeaderName::from_static("accept"),
                    HeaderValue::from_static("*/*"),
                ),
            ],
        }
    }

    proptest::proptest! {
        /// The client IP is written as `Display` writes it, IPv4 and IPv6.
        #[test]
        fn an_ip_is_written_as_display_writes_it(v4: u32, v6: u128) {
            for ip in [
                std::net::IpAddr::from(v4.to_be_bytes()),
                std::net::IpAddr::from(v6.to_be_bytes()),
            ] {
                let mut out = String::new();
                write_ip(&mut out, ip);
                proptest::prop_assert_eq!(out, format!("\"{ip}\""));
            }
        }
    }

    fn rule() -> RuleRef {
        RuleRef::new(3, "POST /v1/orders \"clerk\"".into(), "".into())
    }

    /// Every shape of event: the line written directly is the one serde_json writes for the
    /// event the reference conversion builds, byte for byte, and reads back as that event.
    #[test]
    fn the_line_is_the_events_json_byte_for_byte() {
        let start = Instant::now();
        let anchor = (Timestamp::from_unix_nanos(1_767_225_600_123_456_789), start);
        let principal = Principal::builder(
            "alice\n",
            AuthMethod::ApiKey {
                key_id: "0123456789abcdef".parse().unwrap(),
            },
        )
        .tenant("acme")
        .build();
        let bearer = Principal::builder(
            "bob",
            AuthMethod::Bearer {
                issuer: "https://idp.test/\"x\"".into(),
            },
        )
        .confirmation(Confirmation::Dpop)
        .build();
        let mut quota = QuotaOutcome::default();
        quota.note_mode(QuotaMode::Degraded);
        quota.note_shadow(QuotaShadow {
            policy: "burst".into(),
            retry_after: Duration::from_secs(3),
        });
        quota.push_limit(LimitOutcome::new("user", 100, 42, Duration::from_secs(7)));
        let response = |principal: Option<Principal>, rejection: Option<Rejection>| End::Response {
            status: StatusCode::OK,
            principal,
            rejection,
            decision: Some(Decision::new(Outcome::Granted, Some(rule()))),
            divergence: Some(ShadowDivergence {
                enforced: Decision::new(Outcome::Granted, Some(rule())),
                shadow: Decision::new(Outcome::MissingRole, None),
            }),
            response: Some(ResponseDivergence {
                mode: "shadow",
                action: "reported",
                status: 200,
                errors: Arc::from(vec![Violation {
                    part: crate::rejection::InputPart::Response,
                    pointer: "#/password".into(),
                    keyword: "undeclared".into(),
                    detail: "x".into(),
                }]),
            }),
            quota: Some(quota.clone()),
            fields: Some(
                AuditFields::new()
                    .with("order_id", "ord_\"42\"")
                    .with("n", json!([1, {"a": null}])),
            ),
        };
        let ends = [
            response(Some(principal.clone()), None),
            response(
                Some(bearer),
                Some(Rejection::Forbidden(Forbidden::new(
                    "missing_role",
                    Some(rule()),
                ))),
            ),
            response(
                None,
                Some(Rejection::TooManyRequests(TooManyRequests::new(
                    "user".into(),
                    Arc::from(vec![Box::from("user")]),
                    Duration::from_secs(1),
                    Arc::from(vec![]),
                ))),
            ),
            response(
                Some(principal),
                Some(Rejection::Invalid(InvalidInput::new(
                    InvalidReason::SchemaViolation,
                    vec![],
                ))),
            ),
            End::Response {
                status: StatusCode::NO_CONTENT,
                principal: None,
                rejection: None,
                decision: None,
                divergence: None,
                response: None,
                quota: None,
                fields: None,
            },
            End::Error,
            End::Cancelled,
        ];
        let mut redaction = Redaction {
            record: vec![
                HeaderName::from_static("x-tenant"),
                HeaderName::from_static("authorization"),
            ],
            ..Redaction::default()
        };
        redaction.keep_params.insert("limit".into());
        for (i, end) in ends.into_iter().enumerate() {
            let mk = |end| {
                let mut request = request(start);
                if i % 2 == 1 {
                    request.trace = None;
                }
                RawEvent {
                    seq: 7,
                    request,
                    latency: Duration::from_micros(1234),
                    end,
                }
            };
            let reference = mk(end.clone()).into_event(&redaction, anchor);
            let mut line = String::new();
            mk(end).write_json(&redaction, anchor, &mut line);
            line.push('}');
            assert_eq!(
                line,
                serde_json::to_string(&reference).unwrap(),
                "shape {i}"
            );
            let back: crate::audit::AuditEvent = serde_json::from_str(&line).unwrap();
            assert_eq!(back, reference, "shape {i}");
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "q\"b\\s",
            "\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}",
            "é𝄞\u{2028}",
            "",
        ] {
            let mut out = String::new();
            escaped(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }
}

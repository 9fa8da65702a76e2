//! Hostile clients against the whole stack, over real HTTP on loopback, with a raw TCP client
//! so that paths such as `/a/../b` and `%2e%2e` reach the server exactly as sent. The stack is
//! the one the documentation recommends: audit → quota per client address → authentication
//! (API keys, then ES256 bearer JWTs) → quota per principal → authorization (RBAC and an
//! object-level `Authorizer`) → validation → handlers that count their calls.
//!
//! Each case names the OWASP API Security Top 10 (2023) item it belongs to, and checks: the
//! status (and the problem `code`), that no handler the caller may not reach ran, that exactly
//! one audit event was written for the request with the deciding layer, and that no secret the
//! client sent appears in the response or in the audit output.

mod client;
mod stack;
#[path = "../support/mod.rs"]
mod support;

use client::{Reply, send};
use stack::{Stack, Tokens};

/// Request head lines for a reader's API key.
fn reader(stack: &Stack) -> String {
    format!("x-api-key: {}\r\n", stack.reader_key)
}

/// A whole `GET target` request with a reader's API key.
fn reader_get(stack: &Stack, target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nhost: t\r\n{}connection: close\r\n\r\n",
        reader(stack)
    )
}

/// Runs `raw` (a whole request) against the stack and checks the common promises: exactly one
/// audit event, no secret in the response or the event. Returns the reply and the event.
async fn attack(stack: &Stack, raw: &str) -> (Reply, serde_json::Value) {
    stack.mark();
    let reply = send(stack.addr, raw.as_bytes()).await;
    let event = stack.one_event().await;
    for secret in stack.secrets() {
        assert!(
            !reply.raw.contains(&secret),
            "a secret in the response: {}",
            reply.raw
        );
        assert!(
            !event.to_string().contains(&secret),
            "a secret in the audit event: {event}"
        );
    }
    assert_eq!(
        event["status"].as_u64(),
        Some(u64::from(reply.status)),
        "the audit event records the status sent: {event}"
    );
    (reply, event)
}

fn refused_by(event: &serde_json::Value) -> (&str, &str) {
    let outcome = &event["outcome"];
    (
        outcome["layer"].as_str().unwrap_or("-"),
        outcome["reason"].as_str().unwrap_or("-"),
    )
}

// ----- API2:2023 Broken Authentication -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api2_forged_and_confused_tokens_are_refused() {
    let stack = Stack::start().await;
    let t = Tokens::new();
    let cases = [
        ("signature altered", t.tampered_signature()),
        ("claims altered, signature kept", t.tampered_claims()),
        ("alg none (RFC 8725 §3.1)", t.alg_none()),
        (
            "HS256 signed with the public key (algorithm confusion, RFC 8725 §3.1)",
            t.hs256_with_public_key(),
        ),
        ("expired (RFC 7519 §4.1.4)", t.expired()),
        ("another audience (RFC 7519 §4.1.3)", t.wrong_audience()),
        ("another issuer (RFC 7519 §4.1.1)", t.wrong_issuer()),
        ("signed by an unknown key", t.unknown_key()),
        (
            "jku pointing at an attacker's key set (RFC 8725 §3.10)",
            t.with_jku(),
        ),
        ("not a JWT at all", "not.a.jwt".to_owned()),
    ];
    for (name, token) in cases {
        let (reply, event) = attack(
            &stack,
            &format!("GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(reply.status, 401, "{name}: {}", reply.raw);
        // RFC 6750 §3: the challenge names the error, never the token.
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{name}: {challenge}"
        );
        assert!(!challenge.contains(&token), "{name}");
        assert!(!reply.raw.contains(&token), "{name}: the token echoed");
        assert_eq!(refused_by(&event).0, "authn", "{name}: {event}");
        stack.assert_no_handler_ran(name);
    }
    // The genuine token passes (the refusals above are about the tokens, not the set-up).
    let (reply, _) = attack(
        &stack,
        &format!("GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n", t.valid()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api2_duplicate_and_mixed_credentials_are_refused() {
    let stack = Stack::start().await;
    let key = &stack.reader_key;
    let t = Tokens::new();
    let cases = [
        (
            "the same key twice",
            format!("x-api-key: {key}\r\nx-api-key: {key}\r\n"),
        ),
        (
            "a key in the header and in Authorization",
            format!("x-api-key: {key}\r\nauthorization: ApiKey {key}\r\n"),
        ),
        (
            "an API key and a bearer token",
            format!(
                "x-api-key: {key}\r\nauthorization: Bearer {}\r\n",
                t.valid()
            ),
        ),
        (
            "two bearer tokens",
            format!(
                "authorization: Bearer {}\r\nauthorization: Bearer {}\r\n",
                t.valid(),
                t.valid()
            ),
        ),
    ];
    for (name, headers) in cases {
        let (reply, event) = attack(
            &stack,
            &format!(
                "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\n{headers}connection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(
            reply.status == 400 || reply.status == 401,
            "{name}: {}",
            reply.raw
        );
        assert_eq!(refused_by(&event).0, "authn", "{name}: {event}");
        stack.assert_no_handler_ran(name);
    }
}

/// RFC 9110 §5.3 (a singleton field appears once), RFC 9112 §3.2 (two `Host` lines: 400):
/// a second `Authorization` of another scheme, or a second `Host`, is what a reader behind
/// palisade might take instead; refused before any credential is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_5_3_a_second_authorization_or_host_line_is_400_before_authentication() {
    let stack = Stack::start().await;
    let t = Tokens::new();
    // (case, head lines, the problem's code)
    let cases = [
        (
            "a bearer token and a Basic credential",
            format!(
                "host: t\r\nauthorization: Bearer {}\r\nauthorization: Basic YTpi\r\n",
                t.valid()
            ),
            "multiple_credentials",
        ),
        (
            "two Host lines",
            format!(
                "host: t\r\nhost: evil.example\r\nx-api-key: {}\r\n",
                stack.reader_key
            ),
            "duplicate_header",
        ),
    ];
    for (name, headers, code) in cases {
        let (reply, event) = attack(
            &stack,
            &format!("GET /v1/orders/acme-1 HTTP/1.1\r\n{headers}connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.raw);
        assert!(reply.raw.contains(code), "{name}: {}", reply.raw);
        if code == "multiple_credentials" {
            // RFC 6750 §3.1: the challenge says `invalid_request`.
            assert!(
                reply.raw.to_ascii_lowercase().contains("www-authenticate")
                    && reply.raw.contains("error=\"invalid_request\""),
                "{name}: {}",
                reply.raw
            );
        }
        assert_eq!(refused_by(&event).0, "authn", "{name}: {event}");
        stack.assert_no_handler_ran(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api2_wrong_secret_key_in_query_and_no_credential_are_refused() {
    let stack = Stack::start().await;
    let key = stack.reader_key.clone();
    let mut wrong = key.clone().into_bytes();
    let i = wrong.len() - 10;
    wrong[i] = if wrong[i] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    let cases = [
        (
            "a typo in the secret",
            format!(
                "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nx-api-key: {wrong}\r\nconnection: close\r\n\r\n"
            ),
        ),
        (
            "the key in the query string (not enabled)",
            format!(
                "GET /v1/orders/acme-1?api_key={key} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
            ),
        ),
        (
            "no credential",
            "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_owned(),
        ),
        (
            "no credential on an unknown route (deny by default)",
            "GET /v1/nothing/here HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_owned(),
        ),
    ];
    for (name, raw) in cases {
        let (reply, event) = attack(&stack, &raw).await;
        assert_eq!(reply.status, 401, "{name}: {}", reply.raw);
        assert!(reply.raw.contains("application/problem+json"), "{name}");
        assert_eq!(refused_by(&event).0, "authn", "{name}: {event}");
        stack.assert_no_handler_ran(name);
    }
    // The query string with the key is redacted in the audit event as well.
    let (_, event) = attack(
        &stack,
        &format!("GET /v1/orders/acme-1?api_key={key}&page=2 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert!(!event["path"].as_str().unwrap_or_default().contains(&key));
}

// ----- API1:2023 Broken Object Level Authorization --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api1_another_tenants_object_is_refused_by_the_authorizer() {
    let stack = Stack::start().await;
    // The reader belongs to tenant `acme`: `acme-7` is theirs, `globex-7` is not.
    let (reply, _) = attack(&stack, &reader_get(&stack, "/v1/orders/acme-7")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(stack.calls("get_order"), 1);
    for path in [
        "/v1/orders/globex-7",
        "/v1/orders/globex%2d7",
        "/v1/orders/ACME-7",
    ] {
        let (reply, event) = attack(&stack, &reader_get(&stack, path)).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.raw);
        assert_eq!(
            refused_by(&event),
            ("authz", "tenant_mismatch"),
            "{path}: {event}"
        );
    }
    assert_eq!(stack.calls("get_order"), 1, "no further handler call");
}

// ----- API5:2023 Broken Function Level Authorization ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api5_override_headers_do_not_change_the_authorized_route() {
    let stack = Stack::start().await;
    let cases = [
        (
            "X-HTTP-Method-Override",
            "GET /v1/orders/acme-1 HTTP/1.1\r\nx-http-method-override: DELETE\r\n",
        ),
        (
            "X-HTTP-Method",
            "GET /v1/orders/acme-1 HTTP/1.1\r\nx-http-method: DELETE\r\n",
        ),
        (
            "X-Method-Override",
            "GET /v1/orders/acme-1 HTTP/1.1\r\nx-method-override: DELETE\r\n",
        ),
        (
            "X-Original-URL",
            "GET /v1/orders/acme-1 HTTP/1.1\r\nx-original-url: /v1/admin/users\r\n",
        ),
        (
            "X-Rewrite-URL",
            "GET /v1/orders/acme-1 HTTP/1.1\r\nx-rewrite-url: /v1/admin/users\r\n",
        ),
    ];
    for (name, head) in cases {
        let (reply, event) = attack(
            &stack,
            &format!(
                "{head}host: t\r\n{}connection: close\r\n\r\n",
                reader(&stack)
            ),
        )
        .await;
        // Served as what it is: a GET of the reader's own order, nothing more.
        assert_eq!(reply.status, 200, "{name}: {}", reply.raw);
        assert_eq!(event["method"].as_str(), Some("GET"), "{name}");
        assert_eq!(event["route"].as_str(), Some("/v1/orders/{id}"), "{name}");
        assert_eq!(stack.calls("delete_order"), 0, "{name}");
        assert_eq!(stack.calls("admin"), 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api5_other_methods_need_their_own_grant_and_head_is_decided_as_get() {
    let stack = Stack::start().await;
    let request = |method: &str, path: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: t\r\n{}connection: close\r\n\r\n",
            reader(&stack)
        )
    };
    // DELETE has a rule (admins): 403; the others have none on this route: 405.
    for (method, status, reason) in [
        ("DELETE", 403, "missing_role"),
        ("PUT", 405, "method_not_allowed"),
        ("PATCH", 405, "method_not_allowed"),
        ("OPTIONS", 405, "method_not_allowed"),
        ("TRACE", 405, "method_not_allowed"),
    ] {
        let (reply, event) = attack(&stack, &request(method, "/v1/orders/acme-1")).await;
        assert_eq!(reply.status, status, "{method}: {}", reply.raw);
        assert_eq!(refused_by(&event), ("authz", reason), "{method}: {event}");
        stack.assert_no_handler_ran(method);
    }
    // RFC 9110 §9.3.2: HEAD is GET without the body; the GET rule and the GET operation's
    // validation decide it.
    let (reply, event) = attack(&stack, &request("HEAD", "/v1/orders/acme-1?page=0")).await;
    assert_eq!(reply.status, 422, "{}", reply.raw);
    assert_eq!(refused_by(&event).0, "validate", "{event}");
    stack.assert_no_handler_ran("HEAD with a bad page");
    let (reply, _) = attack(&stack, &request("HEAD", "/v1/orders/acme-1?page=2")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(reply.body.is_empty(), "{}", reply.raw);
    assert_eq!(stack.calls("get_order"), 1);
    // The admin's key may delete.
    let (reply, _) = attack(
        &stack,
        &format!("DELETE /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nx-api-key: {}\r\nconnection: close\r\n\r\n", stack.admin_key),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(stack.calls("delete_order"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api5_path_tricks_do_not_reach_the_admin_handler() {
    let stack = Stack::start().await;
    let paths = [
        "/v1/orders/../admin/users",
        "/v1/orders/%2e%2e/admin/users",
        "/v1/orders/%2E%2E/admin/users",
        "/v1/orders/..%2fadmin/users",
        "/v1/orders/acme-1/../../admin/users",
        "//v1/admin/users",
        "/v1/admin/users/",
        "/v1/admin//users",
        "/v1/ADMIN/users",
        "/v1/admin%2fusers",
        "/v1/admin/users;a=b",
        "/v1/admin/users%00",
        "/./v1/admin/users",
        "/v1/./admin/users",
    ];
    for path in paths {
        let (reply, event) = attack(&stack, &reader_get(&stack, path)).await;
        assert!(
            matches!(reply.status, 400 | 403 | 404),
            "{path}: {}",
            reply.raw
        );
        assert_eq!(
            stack.calls("admin"),
            0,
            "{path} reached the admin handler: {event}"
        );
    }
    // The admin route itself: refused for a reader, served to an admin.
    let (reply, event) = attack(&stack, &reader_get(&stack, "/v1/admin/users")).await;
    assert_eq!(reply.status, 403, "{}", reply.raw);
    assert_eq!(refused_by(&event).0, "authz");
    let (reply, _) = attack(
        &stack,
        &format!(
            "GET /v1/admin/users HTTP/1.1\r\nhost: t\r\nx-api-key: {}\r\nconnection: close\r\n\r\n",
            stack.admin_key
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(stack.calls("admin"), 1);
}

// ----- API4:2023 Unrestricted Resource Consumption --------------------------------------------

fn post(stack: &Stack, extra: &str, body: &str) -> String {
    format!(
        "POST /v1/orders HTTP/1.1\r\nhost: t\r\n{}content-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        reader(stack),
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api4_huge_and_hostile_bodies_are_refused_before_the_handler() {
    let stack = Stack::start().await;
    let limit = stack::BODY_LIMIT;

    // Declared too large: refused from the header, before the body is sent.
    let (reply, event) = attack(
        &stack,
        &format!(
            "POST /v1/orders HTTP/1.1\r\nhost: t\r\n{}content-type: application/json\r\ncontent-length: 1000000000\r\nconnection: close\r\n\r\n",
            reader(&stack)
        ),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.raw);
    assert_eq!(refused_by(&event).0, "validate");

    // Chunked past the limit: cut off while streaming.
    let chunk = "a".repeat(4096);
    let mut raw = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: t\r\n{}content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        reader(&stack)
    );
    for _ in 0..(limit / 4096 + 2) {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let (reply, _) = attack(&stack, &raw).await;
    assert_eq!(reply.status, 413, "{}", reply.raw);

    // 100,000-deep nesting: refused where it passes the depth limit, no stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (reply, event) = attack(&stack, &post(&stack, "", &deep[..limit.min(deep.len())])).await;
    assert_eq!(reply.status, 422, "{}", reply.raw);
    assert_eq!(refused_by(&event), ("validate", "hostile_input"));

    // Very wide: more members than allowed.
    let wide = format!("[{}0]", "0,".repeat(20_000));
    let (reply, _) = attack(&stack, &post(&stack, "", &wide)).await;
    assert_eq!(reply.status, 422, "{}", reply.raw);

    // A NUL byte in a string.
    let (reply, event) = attack(&stack, &post(&stack, "", r#"{"item":"ab\u0000c","qty":1}"#)).await;
    assert_eq!(reply.status, 422, "{}", reply.raw);
    assert_eq!(refused_by(&event).0, "validate");

    // The same control characters written with JSON's short escapes (`\b` is U+0008, `\f`
    // U+000C): canonicalised, then refused like the raw ones (OWASP Input Validation).
    for body in [r#"{"item":"ab\bc","qty":1}"#, r#"{"item\f":"abc","qty":1}"#] {
        let (reply, event) = attack(&stack, &post(&stack, "", body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.raw);
        assert_eq!(refused_by(&event), ("validate", "hostile_input"), "{body}");
    }

    // Catastrophic-backtracking input for the schema's pattern: answered at once (linear-time
    // regex engines), refused.
    let evil = format!(r#"{{"item":"{}!","qty":1}}"#, "a".repeat(30_000));
    let (reply, _) = attack(&stack, &post(&stack, "", &evil)).await;
    assert_eq!(reply.status, 422, "{}", reply.raw);

    stack.assert_no_handler_ran("hostile bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api4_duplicate_json_keys_are_refused() {
    let stack = Stack::start().await;
    // RFC 8259 §4: parsers disagree on which duplicate wins, so a body that names a member
    // twice could pass the checks as one value and reach a system behind the handler as
    // another. Refused, whichever order the values come in.
    for body in [
        r#"{"item":"ab","qty":1,"qty":100000}"#,
        r#"{"item":"ab","qty":100000,"qty":2}"#,
        r#"{"item":"ab","qty":2,"\u0071ty":3}"#,
    ] {
        let (reply, event) = attack(&stack, &post(&stack, "", body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.raw);
        assert_eq!(refused_by(&event), ("validate", "hostile_input"), "{body}");
        assert!(reply.body.contains("uniqueKeys"), "{}", reply.body);
    }
    assert_eq!(stack.calls("create_order"), 0);
    // The same order without the duplicate is served.
    let (reply, _) = attack(&stack, &post(&stack, "", r#"{"item":"ab","qty":2}"#)).await;
    assert_eq!(reply.status, 201, "{}", reply.raw);
    assert!(reply.body.contains(r#""qty":2"#), "{}", reply.body);
    assert_eq!(stack.calls("create_order"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_input_validation_hostile_parameters_are_refused_before_the_handler() {
    let stack = Stack::start().await;
    // Injection through parameters, refused by the string guards once decoded: CRLF in a path
    // parameter (header or log injection behind the handler), an encoded NUL in a query value
    // (C-string truncation), and bytes that are not UTF-8 once decoded (an overlong `/`).
    for (target, part) in [
        ("/v1/orders/acme-1%0d%0aSet-Cookie:%20admin=1", "path"),
        ("/v1/orders/acme-1?page=1%00", "query"),
        ("/v1/orders/acme-1?page=%C0%AF", "query"),
        ("/v1/orders/acme-1?x%00y=1", "query"),
    ] {
        let (reply, event) = attack(&stack, &reader_get(&stack, target)).await;
        assert_eq!(reply.status, 422, "{target}: {}", reply.raw);
        assert_eq!(
            refused_by(&event),
            ("validate", "hostile_input"),
            "{target}"
        );
        assert!(
            reply.body.contains(&format!(r#""in":"{part}""#)),
            "{}",
            reply.body
        );
        assert!(
            !reply.raw.contains("Set-Cookie: admin"),
            "not echoed: {}",
            reply.raw
        );
        assert!(
            !reply.raw.to_ascii_lowercase().contains("set-cookie"),
            "no header injected: {}",
            reply.raw
        );
    }
    stack.assert_no_handler_ran("hostile parameters");
    // The same read with clean parameters is served.
    let (reply, _) = attack(&stack, &reader_get(&stack, "/v1/orders/acme-1?page=2")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api4_a_flood_from_one_address_is_limited_with_retry_after() {
    let stack = Stack::start().await;
    let mut limited = None;
    for i in 0..(stack::PER_IP_BURST + 5) {
        let reply = send(
            stack.addr,
            format!(
                "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\n{}connection: close\r\n\r\n",
                reader(&stack)
            )
            .as_bytes(),
        )
        .await;
        stack.one_event().await;
        if reply.status == 429 {
            limited = Some((i, reply));
            break;
        }
    }
    let (i, reply) = limited.expect("the per-address limit never answered 429");
    assert!(i + 1 >= stack::PER_IP_BURST, "limited after {i}");
    // IETF RateLimit fields draft, RFC 9110 §10.2.3: when to come back.
    assert!(reply.header("retry-after").is_some(), "{}", reply.raw);
    assert!(reply.raw.contains("application/problem+json"));
}

// ----- API8:2023 Security Misconfiguration: spoofed client addresses --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owasp_api8_spoofed_forwarding_headers_do_not_move_the_client_address() {
    let stack = Stack::start().await;
    // The loopback peer is not a trusted proxy: whatever it claims, it stays 127.0.0.1, for
    // the audit record and for the per-address limit alike.
    let mut limited = false;
    for i in 0..(stack::PER_IP_BURST + 5) {
        let raw = format!(
            "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\n{}x-forwarded-for: 203.0.113.{i}\r\nforwarded: for=198.51.100.{i}\r\nx-real-ip: 192.0.2.{i}\r\nconnection: close\r\n\r\n",
            reader(&stack)
        );
        let (reply, event) = attack(&stack, &raw).await;
        assert_eq!(event["client_ip"].as_str(), Some("127.0.0.1"), "{event}");
        if reply.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "rotating forwarded addresses escaped the per-address limit"
    );
}

// ----- Transport-level oddities ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_reach_a_handler_or_crash_the_server() {
    let stack = Stack::start().await;
    // Bytes HTTP forbids in a field value: hyper refuses the request itself (400) before any
    // service sees it, so there is no request to audit and no handler to reach.
    stack.mark();
    let reply = send(
        stack.addr,
        b"GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nx-api-key: \x01\x02\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.raw);
    stack.assert_no_handler_ran("a control byte in a header");

    let raws = [
        "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer\r\nconnection: close\r\n\r\n",
        "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer a b c\r\nconnection: close\r\n\r\n",
        "GET /v1/orders/acme-1 HTTP/1.1\r\nhost: t\r\nauthorization: Basic YWxpY2U6c2VjcmV0\r\nconnection: close\r\n\r\n",
    ];
    for raw in raws {
        let (reply, event) = attack(&stack, raw).await;
        assert!(matches!(reply.status, 400 | 401), "{raw:?}: {}", reply.raw);
        assert_eq!(refused_by(&event).0, "authn", "{raw:?}: {event}");
        stack.assert_no_handler_ran(raw);
    }
    // And the server still answers.
    let (reply, _) = attack(&stack, &reader_get(&stack, "/v1/orders/acme-1")).await;
    assert_eq!(reply.status, 200);
}

//! The transport guard and the security response headers over real HTTP on loopback: a
//! credential over plain HTTP is refused before any key store lookup, a trusted proxy's
//! `https` is believed and a stranger's is not, the loopback development switch, and the
//! OWASP headers (a handler's own kept).

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use palisade::authn::api_key::{KeyId, KeyRecord, KeySpec, KeyStore, MemoryKeyStore};
use palisade::client_ip::ForwardedHeader;
use palisade::config::{Config, Format};
use palisade::error::StoreError;
use palisade::transport::{NoStore, SecurityHeaders, TransportPolicy};
use palisade::{Palisade, PalisadeBuilder};
use support::{Keys, Reply, TestServer};

/// A key store that counts its lookups.
#[derive(Clone)]
struct Counting {
    inner: MemoryKeyStore,
    calls: Arc<AtomicUsize>,
}

impl KeyStore for Counting {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
}

/// A key, and a stack builder over a store that counts lookups.
struct Setup {
    key: String,
    calls: Arc<AtomicUsize>,
    builder: PalisadeBuilder<Arc<palisade::authn::api_key::ApiKeyAuthenticator<Counting>>>,
}

fn setup() -> Setup {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Counting {
        inner: k.store.clone(),
        calls: calls.clone(),
    };
    let builder = Palisade::builder().authenticate(Arc::new(k.keys.authenticator(store)));
    Setup {
        key,
        calls,
        builder,
    }
}

/// A 403 `insecure_transport` that echoes nothing, and the handler not run beyond `served`
/// times.
fn assert_insecure_after(server: &TestServer, served: usize, reply: &Reply, key: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{}",
        reply.visible_text()
    );
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let body = reply.json();
    assert_eq!(body["code"], "insecure_transport");
    assert!(body["detail"].as_str().unwrap().contains("rotate"));
    // No challenge: nothing invites the client to send a credential again.
    assert!(!reply.headers.contains_key("www-authenticate"));
    assert!(!reply.visible_text().contains(key), "the key is echoed");
    assert_eq!(server.hits(), served, "the handler ran");
    let refusal = server.last_refusal().expect("a refusal");
    assert_eq!(
        (refusal.layer(), refusal.reason()),
        ("transport", "insecure_transport")
    );
}

fn assert_insecure(server: &TestServer, reply: &Reply, key: &str) {
    assert_insecure_after(server, 0, reply, key);
}

#[tokio::test]
async fn rfc9110_15_5_4_an_api_key_over_plain_http_is_refused_before_any_store_lookup() {
    let s = setup();
    let server = TestServer::start_plain(s.builder.clone().build().unwrap()).await;
    for headers in [
        vec![("x-api-key", s.key.as_str())],
        vec![("authorization", &*format!("ApiKey {}", s.key))],
        // Any Authorization scheme is a credential, one this API knows or not.
        vec![("authorization", "Basic YWxpY2U6c2VjcmV0")],
    ] {
        let reply = server.get("/v1/orders", &headers).await;
        assert_insecure(&server, &reply, &s.key);
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "the key store was asked");
    // A TLS connection (the acceptor says so): the same key is looked up and served.
    let tls = TestServer::start(s.builder.build().unwrap()).await;
    let reply = tls.get("/v1/orders", &[("x-api-key", &s.key)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.visible_text());
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_audit_event_of_a_plain_http_credential_names_its_kind_never_the_credential() {
    let s = setup();
    let sink = support::MemorySink::default();
    let guard = s
        .builder
        .audit(palisade::audit::AuditLayer::builder(sink.clone()))
        .build()
        .unwrap();
    let server = TestServer::start_plain(guard).await;
    let basic = "Basic YWxpY2U6c2VjcmV0";
    for (headers, kind) in [
        (vec![("x-api-key", s.key.as_str())], "api_key"),
        (vec![("authorization", basic)], "authorization"),
    ] {
        let reply = server.get("/v1/orders", &headers).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let events = sink.wait_for(1).await;
        let last = events.last().unwrap();
        match &last.outcome {
            Some(palisade::audit::Outcome::Refused {
                layer,
                reason,
                cause,
                ..
            }) => {
                assert_eq!(
                    (layer.as_str(), reason.as_str()),
                    ("transport", "insecure_transport")
                );
                assert_eq!(cause.as_deref(), Some(kind));
            }
            other => panic!("{other:?}"),
        }
        let lines = sink.lines();
        assert!(lines.contains(&format!(r#""cause":"{kind}""#)), "{lines}");
        assert!(!lines.contains(&s.key) && !lines.contains(basic), "{lines}");
        sink.0.lock().unwrap().clear();
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "the key store was asked");
}

#[tokio::test]
async fn rfc7239_5_4_a_trusted_proxy_that_says_https_is_believed() {
    let s = setup();
    // The test client plays the proxy: loopback is trusted.
    let guard = s
        .builder
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .build()
        .unwrap();
    let server = TestServer::start_plain(guard).await;
    let reply = server
        .get(
            "/",
            &[("x-api-key", &s.key), ("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.visible_text());
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
    // The proxy says the client came over plain HTTP (case-insensitive), or says nothing.
    for proto in [&[("x-forwarded-proto", "HTTP")][..], &[]] {
        let mut headers = vec![("x-api-key", s.key.as_str())];
        headers.extend_from_slice(proto);
        let reply = server.get("/", &headers).await;
        assert_insecure_after(&server, 1, &reply, &s.key);
    }
    // A proxy that appends: the client's own `https` on the left does not count.
    let reply = server
        .get(
            "/",
            &[("x-api-key", &s.key), ("x-forwarded-proto", "https, http")],
        )
        .await;
    assert_insecure_after(&server, 1, &reply, &s.key);
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rfc7239_5_4_forwarded_proto_of_the_clients_element_decides() {
    let s = setup();
    let guard = s
        .builder
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .trust_proxy("10.0.0.0/8".parse().unwrap())
        .with_forwarded_header(ForwardedHeader::Forwarded)
        .build()
        .unwrap();
    let server = TestServer::start_plain(guard).await;
    let key = s.key.as_str();
    // The client's hop was TLS; the hop between our proxies was not, and does not matter.
    let ok = "for=198.51.100.7;proto=https, for=10.0.0.5;proto=http";
    let reply = server
        .get("/", &[("x-api-key", key), ("forwarded", ok)])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.visible_text());
    // The client's hop was plain; a forged element to its left says `https` in vain.
    let bad = "for=1.1.1.1;proto=https, for=198.51.100.7;proto=http";
    let reply = server
        .get("/", &[("x-api-key", key), ("forwarded", bad)])
        .await;
    assert_insecure_after(&server, 1, &reply, key);
    // In this mode `X-Forwarded-Proto` is not read.
    let reply = server
        .get("/", &[("x-api-key", key), ("x-forwarded-proto", "https")])
        .await;
    assert_insecure_after(&server, 1, &reply, key);
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rfc7239_8_1_a_forged_forwarded_proto_from_an_untrusted_peer_is_ignored() {
    let s = setup();
    // Only 10.0.0.0/8 is trusted: the loopback client is a stranger.
    let guard = s
        .builder
        .trust_proxy("10.0.0.0/8".parse().unwrap())
        .build()
        .unwrap();
    let server = TestServer::start_plain(guard).await;
    for forged in [
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=10.0.0.1;proto=https"),
    ] {
        let reply = server.get("/", &[("x-api-key", &s.key), forged]).await;
        assert_insecure(&server, &reply, &s.key);
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn loopback_development_switch_admits_plain_http_from_this_machine_only() {
    let s = setup();
    let guard = s.builder.allow_plain_http_from_loopback().build().unwrap();
    let server = TestServer::start_plain(guard).await;
    let reply = server.get("/", &[("x-api-key", &s.key)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.visible_text());
    // Behind a trusted proxy on this machine, the client is the one the proxy names: remote.
    let s = setup();
    let guard = s
        .builder
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .allow_plain_http_from_loopback()
        .build()
        .unwrap();
    let server = TestServer::start_plain(guard).await;
    let reply = server
        .get(
            "/",
            &[
                ("x-api-key", &s.key),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "http"),
            ],
        )
        .await;
    assert_insecure(&server, &reply, &s.key);
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn owasp_api8_2023_requests_without_credentials_pass_unless_tls_is_required_for_all() {
    let s = setup();
    let server = TestServer::start_plain(s.builder.build().unwrap()).await;
    // No credential: not the guard's business; authentication answers 401 as ever.
    let reply = server.get("/", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let s = setup();
    let guard = s
        .builder
        .transport(TransportPolicy::new().require_tls_for_all_requests())
        .build()
        .unwrap();
    let server = TestServer::start_plain(guard).await;
    let reply = server.get("/", &[]).await;
    assert_insecure(&server, &reply, &s.key);
}

#[tokio::test]
async fn the_insecure_switch_turns_the_guard_off() {
    let s = setup();
    let guard = s.builder.with_insecure_plain_http().build().unwrap();
    let server = TestServer::start_plain(guard).await;
    let reply = server.get("/", &[("x-api-key", &s.key)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Over plain HTTP, no HSTS (RFC 6797 §7.2); the rest is sent.
    assert!(!reply.headers.contains_key("strict-transport-security"));
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
}

fn owasp_headers(h: &HeaderMap, cache: &str) {
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(h["cache-control"], cache);
}

#[tokio::test]
async fn owasp_rest_security_headers_are_sent_and_a_handlers_own_are_kept() {
    let s = setup();
    let server = TestServer::start(s.builder.clone().build().unwrap()).await;
    let reply = server.get("/", &[("x-api-key", &s.key)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    owasp_headers(&reply.headers, "no-store");
    // A refusal gets them too.
    let reply = server.get("/", &[("x-api-key", "pal_nope")]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    owasp_headers(&reply.headers, "no-store");

    // A handler that sets its own caching and framing policy keeps it.
    let own = || async {
        (
            [
                ("cache-control", "private, max-age=60"),
                ("x-frame-options", "SAMEORIGIN"),
            ],
            "mine",
        )
    };
    let app = Router::new().route("/own", get(own));
    let addr = support::serve(app.clone().layer(s.builder.clone().build().unwrap())).await;
    let reply = support::send(addr, request("/own", &s.key)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["cache-control"], "private, max-age=60");
    assert_eq!(reply.headers["x-frame-options"], "SAMEORIGIN");
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    // Unless the stack is told to replace them; `no-store` on every response, HSTS off.
    let headers = SecurityHeaders::new()
        .replace_handler_headers()
        .no_store(NoStore::AllResponses)
        .without_hsts();
    let guard = s.builder.response_headers(headers).build().unwrap();
    let addr = support::serve(app.layer(guard)).await;
    let reply = support::send(addr, request("/own", &s.key)).await;
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["x-frame-options"], "DENY");
    assert!(!reply.headers.contains_key("strict-transport-security"));
}

fn request(path: &str, key: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(path)
        .header("host", "api.test")
        .header("x-api-key", key)
        .body(Default::default())
        .unwrap()
}

#[tokio::test]
async fn the_file_configures_the_guard_and_the_headers() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    let yaml = "
transport: {credential_headers: [X-Session]}
response_headers: {strict_transport_security: 'max-age=60; includeSubDomains', deny_framing: false}
routes: [{path: /, methods: [GET]}]
";
    let config = Config::parse(yaml, Format::Yaml).unwrap();
    let server = TestServer::start(config.palisade(k.store.clone()).unwrap()).await;
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.visible_text());
    assert_eq!(
        reply.headers["strict-transport-security"],
        "max-age=60; includeSubDomains"
    );
    assert!(!reply.headers.contains_key("x-frame-options"));
    // Over plain HTTP, the API key and the header the file names are refused.
    let plain = TestServer::start_plain(config.palisade(k.store.clone()).unwrap()).await;
    for credential in [("x-api-key", key.as_str()), ("x-session", "s3cr3t")] {
        let reply = plain.get("/", &[credential]).await;
        assert_insecure(&plain, &reply, credential.1);
    }
    // The development switch, from the file.
    let dev = Config::parse(
        &format!(
            "{yaml}\n{}",
            "transport: {allow_plain_http_from_loopback: true}"
        )
        .replace("transport: {credential_headers: [X-Session]}\n", ""),
        Format::Yaml,
    )
    .unwrap();
    let server = TestServer::start_plain(dev.palisade(k.store.clone()).unwrap()).await;
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.visible_text());
    // Nothing configured is ignored: a typo, or an HSTS value without max-age, stops startup.
    for bad in [
        "transport: {require_tsl: all_requests}",
        "transport: {require_tls: sometimes}",
        "response_headers: {strict_transport_security: 'includeSubDomains'}",
        "response_headers: {nosnif: true}",
    ] {
        let err = Config::parse(bad, Format::Yaml).unwrap_err().to_string();
        assert!(
            err.contains("transport") || err.contains("response_headers"),
            "{bad}: {err}"
        );
    }
}

/// A handler whose response headers already fill `http`'s map (32,768 entries): every layer
/// that adds response headers (the security headers, the quota's `RateLimit` fields, the
/// audit's request id) leaves it as it is, and the response goes out, never a panic.
#[tokio::test]
async fn a_handler_response_with_a_full_header_map_passes_every_layer() {
    use palisade::audit::AuditLayer;
    use palisade::quota::{KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule};
    use tower::ServiceExt;

    fn full() -> axum::response::Response {
        let mut res = axum::response::Response::new(axum::body::Body::empty());
        for i in 0.. {
            let name = http::HeaderName::try_from(format!("x-h-{i}")).unwrap();
            let value = http::HeaderValue::from_static("v");
            if res.headers_mut().try_insert(name, value).is_err() {
                break;
            }
        }
        res
    }
    let s = setup();
    let quota = QuotaLayer::builder(MemoryStore::new())
        .rule(QuotaRule::new(
            KeyBy::Subject,
            QuotaPolicy::new("roomy", [Limit::per_second(100)]),
        ))
        .build()
        .unwrap();
    let guard = s
        .builder
        .with_insecure_plain_http()
        .limit_principals(quota)
        .audit(AuditLayer::builder(support::MemorySink::default()))
        .build()
        .unwrap();
    let handle = guard.handles().audit().cloned().expect("the audit handle");
    // A plain service, not axum's router: axum's own `content-length` would not fit either.
    let app = tower::Layer::layer(
        &guard,
        tower::service_fn(|req: http::Request<_>| async move {
            let _: &http_body_util::Full<bytes::Bytes> = req.body();
            Ok::<_, std::convert::Infallible>(if req.uri().path() == "/full" {
                full()
            } else {
                axum::response::Response::new(axum::body::Body::from("ok"))
            })
        }),
    );
    let at_limit = full().headers().len();
    let res = app.clone().oneshot(request("/full", &s.key)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().len(), at_limit);
    assert!(!res.headers().contains_key("ratelimit"));
    // The same stack adds every header to a response with room for them.
    let res = app.oneshot(request("/roomy", &s.key)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for name in [
        "ratelimit",
        "ratelimit-policy",
        "x-request-id",
        "x-content-type-options",
    ] {
        assert!(
            res.headers().contains_key(name),
            "{name}: {:?}",
            res.headers()
        );
    }
    handle.shutdown().await;
}

//! HTTP semantics that match the router, over real HTTP with palisade inside an axum router
//! (`Router::layer`, the usual placement): 405 with `Allow` for a method the route does not
//! serve, HEAD authorized as GET, 404 for an unknown path (403 when the policy hides routes),
//! CORS preflights answered by tower-http's `CorsLayer` outside palisade, and policies under
//! `Router::nest`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use palisade::authz::{AuthzLayer, LivePolicy, PolicySpec};
use tower_http::cors::CorsLayer;

use super::Keys;
use super::support::{Reply, send, serve};

/// Readers read documents; `/internal` is served by the router but named by no rule.
fn docs_policy() -> palisade::authz::PolicyBuilder {
    PolicySpec::builder()
        .role("reader", [])
        .role("auditor", [])
        .allow([Method::GET], "/docs/{id}", ["reader"])
        .allow([Method::DELETE], "/docs/{id}", ["auditor"])
        .public([Method::GET], "/health")
}

/// The routes of `docs_policy`, each counting its calls in `hits`; `/docs/{id}` serves GET
/// and DELETE only.
fn docs_routes(hits: &Arc<AtomicUsize>) -> Router {
    let h = hits.clone();
    let doc = move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "the document"
        }
    };
    Router::new()
        .route("/docs/{id}", get(doc.clone()).delete(doc.clone()))
        .route("/internal", get(doc.clone()))
        .route("/health", get(doc))
}

async fn call(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(addr, b.body(Full::new(Bytes::new())).unwrap()).await
}

/// Serves `docs_routes` guarded by `policy` through `Router::layer`.
async fn docs_server(k: &Keys, policy: &PolicySpec) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let live = LivePolicy::from_spec(policy).unwrap();
    let app = docs_routes(&hits).layer(k.guard(AuthzLayer::new(live)));
    (serve(app).await, hits)
}

#[tokio::test]
async fn rfc9110_15_5_6_a_method_the_route_does_not_serve_is_405_with_allow_10_2_1() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let both = k.issue("bo", &["reader", "auditor"]);
    let nobody = k.issue("nia", &[]);
    let (addr, hits) = docs_server(&k, &docs_policy().build()).await;

    let r = call(addr, Method::PUT, "/docs/1", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{r:?}");
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.json()["code"], "method_not_allowed");
    // The methods this caller may use there: never DELETE, which palisade would refuse it,
    // and HEAD with GET (axum serves HEAD with the GET handler).
    assert_eq!(r.headers.get_all("allow").iter().count(), 1);
    assert_eq!(r.headers["allow"], "GET, HEAD");
    let r = call(addr, Method::PUT, "/docs/1", &[("x-api-key", &both)]).await;
    assert_eq!(r.headers["allow"], "GET, HEAD, DELETE");
    // A caller granted nothing there learns of no method (RFC 9110 §10.2.1: an empty Allow).
    let r = call(addr, Method::PATCH, "/docs/1", &[("x-api-key", &nobody)]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "");
    // A method that is served but the caller may not use stays a 403.
    let r = call(addr, Method::DELETE, "/docs/1", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["code"], "missing_role");
    // Without a credential: 401 first, as for every other request.
    let r = call(addr, Method::PUT, "/docs/1", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the handler was reached");
}

#[tokio::test]
async fn rfc9110_9_3_2_head_is_authorized_as_get_unless_switched_off() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let auditor = k.issue("al", &["auditor"]);
    let (addr, hits) = docs_server(&k, &docs_policy().build()).await;

    let r = call(addr, Method::HEAD, "/docs/1", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        r.body.is_empty(),
        "a HEAD response has no body: {:?}",
        r.body
    );
    assert_eq!(r.headers["content-length"], "12", "the GET body's length");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The GET rule decides HEAD, refusals included.
    let r = call(addr, Method::HEAD, "/docs/1", &[("x-api-key", &auditor)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(addr, Method::HEAD, "/health", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "a public GET is a public HEAD");

    // head_as_get: false: HEAD needs its own rule, and is not offered in Allow.
    let strict = docs_policy().head_as_get(false).build();
    let (addr, hits) = docs_server(&k, &strict).await;
    let r = call(addr, Method::HEAD, "/docs/1", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET");
    let with_head = docs_policy()
        .head_as_get(false)
        .allow([Method::HEAD], "/docs/{id}", ["auditor"])
        .build();
    let (addr2, _) = docs_server(&k, &with_head).await;
    let r = call(addr2, Method::HEAD, "/docs/1", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the HEAD rule decides");
    let r = call(addr2, Method::HEAD, "/docs/1", &[("x-api-key", &auditor)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rfc9110_15_5_5_an_unknown_path_is_404_or_403_when_routes_are_hidden() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let (addr, hits) = docs_server(&k, &docs_policy().build()).await;

    let r = call(addr, Method::GET, "/nope", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.json()["code"], "route_not_found");
    // Anonymous callers learn nothing: 401 for every path that is not public.
    let r = call(addr, Method::GET, "/nope", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Deny by default: a route the router serves and no rule names is refused, not 404.
    let r = call(addr, Method::GET, "/internal", &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["code"], "no_matching_rule");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // hide_routes: 403 `no_matching_rule` for unknown paths and unserved methods alike, the
    // same answer as for a served route without a rule.
    let (addr, hits) = docs_server(&k, &docs_policy().hide_routes(true).build()).await;
    let unknown = call(addr, Method::GET, "/nope", &[("x-api-key", &reader)]).await;
    let unserved = call(addr, Method::PUT, "/docs/1", &[("x-api-key", &reader)]).await;
    let unnamed = call(addr, Method::GET, "/internal", &[("x-api-key", &reader)]).await;
    for r in [&unknown, &unserved, &unnamed] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert_eq!(r.json()["code"], "no_matching_rule");
    }
    assert_eq!(unknown.body, unnamed.body);
    // Inside the router, axum's method router adds its own `Allow` to whatever answers a
    // method the route does not serve (this 403, a 401): around the router it cannot.
    assert_eq!(unserved.headers["allow"], "GET,HEAD,DELETE");
    assert!(unknown.headers.get("allow").is_none());
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let live = LivePolicy::from_spec(&docs_policy().hide_routes(true).build()).unwrap();
    let around = tower::ServiceBuilder::new()
        .map_response(|r: http::Response<_>| r.map(axum::body::Body::new))
        .layer(k.guard(AuthzLayer::new(live)))
        .service(docs_routes(&hits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(around);
    tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });
    for key in [Some(reader.as_str()), None] {
        let headers: Vec<_> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        let unserved = call(addr, Method::PUT, "/docs/1", &headers).await;
        let unknown = call(addr, Method::PUT, "/nope", &headers).await;
        assert_eq!(unserved.status, unknown.status);
        assert_eq!(unserved.headers.get("allow"), None, "{unserved:?}");
        assert_eq!(unserved.body, unknown.body);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(HeaderValue::from_static("https://app.example"))
        .allow_methods([Method::GET, Method::DELETE])
        .allow_headers([http::HeaderName::from_static("x-api-key")])
}

const PREFLIGHT: &[(&str, &str)] = &[
    ("origin", "https://app.example"),
    ("access-control-request-method", "DELETE"),
    ("access-control-request-headers", "x-api-key"),
];

#[tokio::test]
async fn fetch_cors_preflight_is_answered_by_cors_layer_outside_palisade() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let hits = Arc::new(AtomicUsize::new(0));
    let live = LivePolicy::from_spec(&docs_policy().build()).unwrap();
    // The last layer added is the outermost: CORS before palisade.
    let app = docs_routes(&hits)
        .layer(k.guard(AuthzLayer::new(live.clone())))
        .layer(cors());
    let addr = serve(app).await;

    let r = call(addr, Method::OPTIONS, "/docs/1", PREFLIGHT).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers["access-control-allow-methods"], "GET,DELETE");
    assert_eq!(r.headers["access-control-allow-headers"], "x-api-key");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the handler answered a preflight"
    );
    // The actual request is authenticated and authorized as usual, with CORS headers on the
    // answer (a refusal's too, so the browser can show it).
    let origin = ("origin", "https://app.example");
    let r = call(
        addr,
        Method::GET,
        "/docs/1",
        &[origin, ("x-api-key", &reader)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let r = call(addr, Method::DELETE, "/docs/1", &[origin]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.contains_key("access-control-allow-origin"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The other order fails: palisade sees the preflight first and, as a preflight carries
    // no credential, refuses it; still never the handler.
    let inside = docs_routes(&hits)
        .layer(cors())
        .layer(k.guard(AuthzLayer::new(live)));
    let addr = serve(inside).await;
    let r = call(addr, Method::OPTIONS, "/docs/1", PREFLIGHT).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// Under `Router::nest("/api/{tenant}", inner)`: a guard on the inner router names the inner
/// templates, a guard on the outer router the full ones.
#[tokio::test]
async fn nested_router_policies_name_the_templates_where_the_guard_is_mounted() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let key = [("x-api-key", reader.as_str())];
    let hits = Arc::new(AtomicUsize::new(0));

    // Guard on the inner router: inner templates.
    let live = LivePolicy::from_spec(&docs_policy().build()).unwrap();
    let inner = docs_routes(&hits).layer(k.guard(AuthzLayer::new(live)));
    let addr = serve(Router::new().nest("/api/{tenant}", inner)).await;
    assert_eq!(
        call(addr, Method::GET, "/api/t1/docs/1", &key).await.status,
        200
    );
    let r = call(addr, Method::PUT, "/api/t1/docs/1", &key).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, HEAD");
    let r = call(addr, Method::GET, "/api/t1/nope", &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Guard on the outer router: full templates; the inner ones match nothing there.
    let full = PolicySpec::builder()
        .role("reader", [])
        .allow([Method::GET], "/api/{tenant}/docs/{id}", ["reader"])
        .build();
    for (policy, status) in [(full, 200), (docs_policy().build(), 403)] {
        let live = LivePolicy::from_spec(&policy).unwrap();
        let app = Router::new()
            .nest("/api/{tenant}", docs_routes(&hits))
            .layer(k.guard(AuthzLayer::new(live)));
        let addr = serve(app).await;
        let r = call(addr, Method::GET, "/api/t1/docs/1", &key).await;
        assert_eq!(r.status, status, "{r:?}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

//! RBAC authorization over real HTTP on loopback: deny by default, inheritance, scopes, public
//! routes, the `Authorizer` hook, hot reload, shadow mode and path tricks.

#[path = "../support/mod.rs"]
mod support;

mod hooks;
mod semantics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authn::{Authentication, Authenticator, Chain};
use palisade::authz::{
    Authorizer, AuthzLayer, AuthzRequest, FileSource, LivePolicy, PolicySpec, Refusal,
};
use palisade::{AuthMethod, Palisade, Principal};
use support::{TestServer, raw, serve};

/// Test-only bearer tokens: `Bearer subject;role,role;scope scope`.
struct TestBearer;

impl Authenticator for TestBearer {
    async fn authenticate(&self, parts: &Parts) -> Authentication {
        let Some(token) = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Authentication::Absent;
        };
        let mut fields = token.split(';');
        let subject = fields.next().unwrap_or_default();
        let roles = fields
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|r| !r.is_empty());
        let scopes = fields
            .next()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty());
        Authentication::Authenticated(
            Principal::builder(subject, AuthMethod::Anonymous)
                .method(AuthMethod::Bearer {
                    issuer: "https://issuer.test".into(),
                })
                .roles(roles)
                .scopes(scopes)
                .build(),
        )
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        out.push(HeaderValue::from_static(r#"Bearer realm="test""#));
    }
}

struct Keys {
    keys: ApiKeys,
    store: MemoryKeyStore,
}

impl Keys {
    fn new() -> Self {
        Self {
            keys: ApiKeys::new(),
            store: MemoryKeyStore::new(),
        }
    }

    fn issue(&self, subject: &str, roles: &[&str]) -> String {
        let mut spec = KeySpec::new(subject);
        for r in roles {
            spec = spec.role(*r);
        }
        let issued = self.keys.generate(spec).unwrap();
        self.store.insert(issued.record);
        issued.plaintext.expose_secret().to_owned()
    }

    fn guard<Az: Authorizer>(
        &self,
        authz: AuthzLayer<Az>,
    ) -> palisade::PalisadeLayer<
        Chain<palisade::authn::api_key::ApiKeyAuthenticator<MemoryKeyStore>, TestBearer>,
        AuthzLayer<Az>,
    > {
        Palisade::builder()
            .authenticate(Chain::new(
                self.keys.authenticator(self.store.clone()),
                TestBearer,
            ))
            .authorize(authz)
            .build()
            .unwrap()
    }
}

fn policy() -> PolicySpec {
    PolicySpec::builder()
        .role("viewer", [])
        .role("editor", ["viewer"])
        .role("admin", ["editor"])
        .allow([Method::GET], "/docs/{id}", ["viewer"])
        .allow([Method::PUT], "/docs/{id}", ["editor"])
        .allow_any_method("/admin/*", ["admin"])
        .rule(
            "/orders",
            palisade::authz::Methods::Some(vec![Method::GET]),
            [],
            ["orders:read"],
        )
        .public([Method::GET], "/health")
        .build()
}

#[tokio::test]
async fn public_route_is_served_without_credentials_but_a_bad_credential_is_still_refused() {
    let k = Keys::new();
    let live = LivePolicy::from_spec(&policy()).unwrap();
    let server = TestServer::start(k.guard(AuthzLayer::new(live))).await;
    let reply = server.get("/health", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["subject"], "anonymous");
    assert_eq!(reply.json()["rule"], "routes[4]: GET /health public");
    // A present-but-bad key on a public route is refused, not downgraded to anonymous.
    let reply = server.get("/health", &[("x-api-key", "pal_nope")]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // No credential on a non-public route: 401, not 403.
    let reply = server.get("/docs/1", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn inheritance_deny_by_default_and_missing_role_over_http() {
    let k = Keys::new();
    let admin = k.issue("ada", &["admin"]);
    let viewer = k.issue("vic", &["viewer"]);
    let live = LivePolicy::from_spec(&policy()).unwrap();
    let server = TestServer::start(k.guard(AuthzLayer::new(live))).await;

    // admin inherits editor inherits viewer: three levels.
    let r = server
        .request(Method::PUT, "/docs/7", &[("x-api-key", &admin)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rule"], "routes[1]: PUT /docs/{id} roles=[editor]");
    assert_eq!(
        server
            .get("/admin/users", &[("x-api-key", &admin)])
            .await
            .status,
        200
    );

    let hits = server.hits();
    for (method, path, code) in [
        (Method::PUT, "/docs/7", "missing_role"),
        (Method::GET, "/admin/users", "missing_role"),
    ] {
        let r = server
            .request(method.clone(), path, &[("x-api-key", &viewer)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.json()["code"], code, "{method} {path}");
        assert!(r.headers.get("www-authenticate").is_none());
    }
    // No rule for the method on a route the policy describes: 405, offering only what the
    // viewer may use; a path nothing knows: 404 (tests/authz/semantics.rs has the details).
    let r = server
        .request(Method::DELETE, "/docs/7", &[("x-api-key", &viewer)])
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, HEAD");
    // Unlisted routes are refused for every caller, admin included.
    for key in [&viewer, &admin] {
        let r = server.get("/unlisted", &[("x-api-key", key)]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.json()["code"], "route_not_found");
    }
    assert_eq!(server.hits(), hits, "the handler was reached");
    let rejection = server.last_refusal().unwrap();
    assert_eq!(rejection.layer(), "authz");
}

#[tokio::test]
async fn rfc6750_3_1_missing_scope_is_403_with_insufficient_scope_for_bearer_tokens() {
    let k = Keys::new();
    let key = k.issue("kim", &["viewer"]);
    let live = LivePolicy::from_spec(&policy()).unwrap();
    let server = TestServer::start(k.guard(AuthzLayer::new(live))).await;

    let r = server
        .get("/orders", &[("authorization", "Bearer bob;viewer;profile")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["code"], "missing_scope");
    assert_eq!(
        r.headers["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="orders:read""#
    );
    let r = server
        .get(
            "/orders",
            &[("authorization", "Bearer bob;viewer;profile orders:read")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // API keys are not bearer tokens: 403 without a Bearer challenge.
    let r = server.get("/orders", &[("x-api-key", &key)]).await;
    assert_eq!(r.json()["code"], "missing_scope");
    assert!(r.headers.get("www-authenticate").is_none());
}

/// OWASP API1: callers may only read their own orders.
struct OwnOrdersOnly {
    asked: AtomicUsize,
}

impl Authorizer for OwnOrdersOnly {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if request.route.template() != "/users/{user}/orders" {
            return Ok(());
        }
        match request.params.get("user") {
            Some(user) if user == request.principal.subject() => Ok(()),
            _ => Err(Refusal::deny("not_owner")),
        }
    }
}

#[tokio::test]
async fn the_authorizer_refuses_another_users_object() {
    let k = Keys::new();
    let alice = k.issue("alice", &["viewer"]);
    let spec = PolicySpec::builder()
        .role("viewer", [])
        .allow([Method::GET], "/users/{user}/orders", ["viewer"])
        .build();
    let authorizer = Arc::new(OwnOrdersOnly {
        asked: AtomicUsize::new(0),
    });
    let layer =
        AuthzLayer::new(LivePolicy::from_spec(&spec).unwrap()).with_authorizer(authorizer.clone());
    let guard = k.guard(layer);
    // A router with the real template, so the authorizer sees it and its parameters.
    let app = Router::new()
        .route(
            "/users/{user}/orders",
            get(|p: Principal| async move { format!("orders of {}", p.subject()) }),
        )
        .layer(guard);
    let addr = serve(app).await;
    let own = support::send(addr, get_req(addr, "/users/alice/orders", &alice)).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body, "orders of alice");
    let other = support::send(addr, get_req(addr, "/users/bob/orders", &alice)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.json()["code"], "not_owner");
    assert!(
        !String::from_utf8_lossy(&other.body).contains("orders of"),
        "handler reached"
    );
    // Percent-encoding does not smuggle another user past the check (axum decodes first).
    let other = support::send(addr, get_req(addr, "/users/b%6Fb/orders", &alice)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(authorizer.asked.load(Ordering::SeqCst), 3);
}

fn get_req(
    addr: SocketAddr,
    path: &str,
    key: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(path)
        .header("host", addr.to_string())
        .header("x-api-key", key)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Policy A lets `reader` read /x; policy B lets `admin` read it. The roles are declared in
/// opposite orders, so a request mixing A's role bits with B's rules would let the reader in.
const POLICY_A: &str =
    "roles: [{name: reader}, {name: admin}]\nroutes: [{path: /x, roles: [reader]}]\n";
const POLICY_B: &str =
    "roles: [{name: admin}, {name: reader}]\nroutes: [{path: /x, roles: [admin]}]\n";

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_concurrent_requests_never_applies_half_a_policy() {
    let dir = tempdir("reload");
    let path = dir.join("policy.yaml");
    write_atomically(&path, POLICY_A);
    let live = LivePolicy::from_source(&FileSource::new(&path))
        .await
        .unwrap();
    let _watch = live.watch(FileSource::new(&path), Duration::from_millis(5));
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let admin = k.issue("adam", &["admin"]);
    let server = Arc::new(TestServer::start(k.guard(AuthzLayer::new(live.clone()))).await);

    let mut clients = Vec::new();
    for c in 0..4 {
        let server = server.clone();
        let (reader, admin) = (reader.clone(), admin.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = [0usize; 2];
            for i in 0..60 {
                let (key, who) = if (c + i) % 2 == 0 {
                    (&reader, "reader")
                } else {
                    (&admin, "admin")
                };
                let r = server.get("/x", &[("x-api-key", key)]).await;
                match r.status.as_u16() {
                    // Allowed: by the rule of the policy that allows exactly this caller.
                    200 => {
                        assert_eq!(r.json()["rule"], format!("routes[0]: GET /x roles=[{who}]"));
                        seen[0] += 1;
                    }
                    403 => {
                        assert_eq!(r.json()["code"], "missing_role");
                        seen[1] += 1;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            seen
        }));
    }
    for flip in 0..10 {
        write_atomically(&path, if flip % 2 == 0 { POLICY_B } else { POLICY_A });
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    // Settle on B and check it is fully in force.
    write_atomically(&path, POLICY_B);
    let admin_principal = Principal::builder("a", AuthMethod::Anonymous)
        .method(AuthMethod::Bearer { issuer: "i".into() })
        .role("admin")
        .build();
    wait_for(|| {
        live.current()
            .decide(Some(&admin_principal), &Method::GET, None, "/x")
            .is_allowed()
    })
    .await;
    assert_eq!(
        server.get("/x", &[("x-api-key", &reader)]).await.status,
        403
    );
    assert_eq!(server.get("/x", &[("x-api-key", &admin)]).await.status, 200);
    assert!(live.reloads() >= 1, "{live:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_broken_policy_file_leaves_the_old_policy_in_force() {
    let dir = tempdir("broken");
    let path = dir.join("policy.yaml");
    write_atomically(&path, POLICY_A);
    let live = LivePolicy::from_source(&FileSource::new(&path))
        .await
        .unwrap();
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let server = TestServer::start(k.guard(AuthzLayer::new(live.clone()))).await;
    let before = live.current().generation();

    // Unknown role, an inheritance cycle, then unparseable text: each refused, A stays.
    for broken in [
        "roles: [{name: reader}]\nroutes: [{path: /x, roles: [ghost]}]\n",
        "roles: [{name: a, inherits: [b]}, {name: b, inherits: [a]}]\n",
        "roles: [{name: reader\n",
    ] {
        write_atomically(&path, broken);
        assert!(live.reload(&FileSource::new(&path)).await.is_err());
        assert_eq!(live.current().generation(), before);
        let r = server.get("/x", &[("x-api-key", &reader)]).await;
        assert_eq!(
            r.status, 200,
            "old policy no longer in force after {broken:?}"
        );
    }
    assert_eq!(live.reload_errors(), 3);
    let last = live.last_error().unwrap();
    assert!(last.contains("policy source failed"), "{last}");
    // A good file is taken again.
    write_atomically(&path, POLICY_B);
    live.reload(&FileSource::new(&path)).await.unwrap();
    assert_eq!(
        server.get("/x", &[("x-api-key", &reader)]).await.status,
        403
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shadow_mode_records_differences_but_does_not_enforce_them() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let admin = k.issue("adam", &["admin"]);
    let enforced = LivePolicy::from_spec(&serde_yaml_ng::from_str(POLICY_A).unwrap()).unwrap();
    let candidate = LivePolicy::from_spec(&serde_yaml_ng::from_str(POLICY_B).unwrap()).unwrap();
    let layer = AuthzLayer::new(enforced).with_shadow(candidate);
    let server = TestServer::start(k.guard(layer.clone())).await;

    // The candidate would deny the reader and allow the admin: neither is enforced.
    assert_eq!(
        server.get("/x", &[("x-api-key", &reader)]).await.status,
        200
    );
    assert_eq!(server.get("/x", &[("x-api-key", &admin)]).await.status, 403);
    assert_eq!(server.hits(), 1, "the enforced refusal reached the handler");
    assert_eq!(layer.shadow_divergences(), 2);
    let recorded = server.divergences.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2);
    assert!(recorded[0].enforced.is_allowed() && !recorded[0].shadow.is_allowed());
    assert!(!recorded[1].enforced.is_allowed() && recorded[1].shadow.is_allowed());
    // Where both agree, nothing is recorded (a path neither policy knows: 404 for both).
    assert_eq!(server.get("/y", &[("x-api-key", &admin)]).await.status, 404);
    assert_eq!(layer.shadow_divergences(), 2);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("palisade-authz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The path tricks of the issue: each must reach exactly the route axum dispatches to, or be
/// refused; never the admin handler through a rule meant for another route.
const TRICKS: [&str; 10] = [
    "/admin/../public",
    "//admin",
    "/ADMIN",
    "/admin/",
    "/admin;x",
    "/%61dmin",
    "/admin%2Fusers",
    "/public/%2e%2e/admin",
    "/public/../admin",
    "/./admin",
];

#[tokio::test]
async fn path_tricks_never_reach_a_protected_handler() {
    let k = Keys::new();
    let reader = k.issue("rita", &["reader"]);
    let admin = k.issue("adam", &["admin"]);
    let spec = PolicySpec::builder()
        .role("reader", [])
        .role("admin", [])
        .public([Method::GET], "/public")
        .public([Method::GET], "/public/{*rest}")
        .allow_any_method("/admin/*", ["admin"])
        .build();
    let admin_hits = Arc::new(AtomicUsize::new(0));
    let router = |hits: Arc<AtomicUsize>| {
        let h2 = hits.clone();
        Router::new()
            .route("/public", get(|| async { "public" }))
            .route("/public/{*rest}", get(|| async { "public-rest" }))
            .route(
                "/admin",
                get(move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    "admin"
                }),
            )
            .route(
                "/admin/users",
                get(move || async move {
                    h2.fetch_add(1, Ordering::SeqCst);
                    "admin-users"
                }),
            )
    };
    let live = LivePolicy::from_spec(&spec).unwrap();
    // Inside the router (decides on axum's MatchedPath) and around it (on the raw path).
    let inside =
        serve(router(admin_hits.clone()).layer(k.guard(AuthzLayer::new(live.clone())))).await;
    let around = {
        let svc = tower::ServiceBuilder::new()
            .map_response(|r: http::Response<_>| r.map(axum::body::Body::new))
            // As a TLS listener marks each request (the transport guard refuses keys otherwise).
            .layer(axum::Extension(
                palisade::transport::ConnectionScheme::Https,
            ))
            .layer(k.guard(AuthzLayer::new(live)))
            .service(router(admin_hits.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                    SocketAddr,
                >(svc),
            )
            .await
            .unwrap();
        });
        addr
    };
    for addr in [inside, around] {
        // Controls: the admin handler is reachable, and only by an admin.
        let req = |path: &str, key: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n"
            )
        };
        assert_eq!(
            raw(addr, &req("/admin", &admin)).await,
            (200, "admin".into())
        );
        assert_eq!(raw(addr, &req("/admin", &reader)).await.0, 403);
        let before = admin_hits.load(Ordering::SeqCst);
        for trick in TRICKS {
            for key in [reader.as_str(), ""] {
                let (status, body) = raw(addr, &req(trick, key)).await;
                match status {
                    200 => assert!(
                        body == "public" || body == "public-rest",
                        "{trick} reached {body:?}"
                    ),
                    401 | 403 | 404 => {}
                    other => panic!("{trick}: unexpected {other} {body}"),
                }
            }
        }
        assert_eq!(
            admin_hits.load(Ordering::SeqCst),
            before,
            "an admin handler was reached"
        );
    }
}

//! One route resolution per request: a stack that wraps a router from outside (as a host with
//! a router other than axum's does) resolves each request's route once, from the table the
//! host gives `PalisadeBuilder::routes`, and authorization, quotas and validation all use that
//! one match. Real HTTP over loopback.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Extension;
use axum::routing::any;
use http::Method;
use palisade::authn::api_key::{ApiKeyAuthenticator, ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authz::{Authorizer, AuthzLayer, AuthzRequest, LivePolicy, PolicySpec, Refusal};
use palisade::quota::{KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule, Window};
use palisade::route::{RouteMatch, RouteTable};
use palisade::validate::{Operation, SchemaSet, ValidateLayer};
use palisade::{Palisade, PalisadeLayer};
use serde_json::json;
use tokio::net::TcpListener;

/// One request's path parameters, as the authorizer saw them.
type Params = Vec<(String, String)>;

/// Records the path parameters it was given, and allows.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Params>>>);

impl Authorizer for Recorder {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        let params = request
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        self.0.lock().unwrap().push(params);
        Ok(())
    }
}

type Guard = PalisadeLayer<
    ApiKeyAuthenticator<MemoryKeyStore>,
    AuthzLayer<Recorder>,
    tower::layer::util::Identity,
    QuotaLayer<MemoryStore>,
    ValidateLayer,
>;

fn guard(store: MemoryKeyStore, keys: &ApiKeys, recorder: Recorder, table: bool) -> Guard {
    let policy = PolicySpec::builder()
        .role("reader", [])
        .allow([Method::GET], "/orders/{id}/lines/{line}", ["reader"])
        .build()
        .compile()
        .unwrap();
    let authz = AuthzLayer::new(LivePolicy::new(policy)).with_authorizer(recorder);
    // Each route costs 4 of 10 per minute, one bucket per route: the third request refused.
    let per_route = QuotaPolicy::new("per-route", [Limit::quota(10, Window::Minute)]);
    let quota = QuotaLayer::builder(MemoryStore::new())
        .rule(QuotaRule::new(KeyBy::Route, per_route))
        .cost("/orders/{id}/lines/{line}", 4)
        .build()
        .unwrap();
    let path_schema = json!({
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": "^[0-9]+$"}},
        "required": ["id"]
    });
    let validate = ValidateLayer::builder()
        .operation(
            Method::GET,
            "/orders/{id}/lines/{line}",
            Operation::new().path(&SchemaSet::new(), &path_schema),
        )
        .build()
        .unwrap();
    let mut b = Palisade::builder()
        .authenticate(keys.authenticator(store))
        .authorize(authz)
        .limit_principals(quota)
        .validate(validate);
    if table {
        b = b.routes(
            RouteTable::new()
                .with_route("/orders/{id}/lines/{line}")
                .unwrap(),
        );
    }
    b.build().unwrap()
}

/// Serves a catch-all router with `guard` wrapped around it from outside: the router's
/// `MatchedPath` never reaches the guard. The handler answers with the stack's route match.
async fn start(guard: Guard) -> std::net::SocketAddr {
    let handler = |m: Option<Extension<RouteMatch>>| async move {
        axum::Json(json!({
            "template": m.as_ref().map(|Extension(m)| m.template().to_owned()),
            "params": m.map(|Extension(m)| m.params().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()),
        }))
    };
    let service = tower::ServiceBuilder::new()
        .map_response(|res: http::Response<_>| res.map(axum::body::Body::new))
        // As a TLS listener marks each request (the transport guard refuses keys otherwise).
        .layer(Extension(palisade::transport::ConnectionScheme::Https))
        .layer(guard)
        .service(Router::new().route("/{*path}", any(handler)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(service);
        axum::serve(listener, make).await.unwrap();
    });
    addr
}

fn key(keys: &ApiKeys, store: &MemoryKeyStore) -> String {
    let issued = keys.generate(KeySpec::new("ada").role("reader")).unwrap();
    store.insert(issued.record);
    issued.plaintext.expose_secret().to_owned()
}

async fn get(addr: std::net::SocketAddr, path: &str, key: &str) -> support::Reply {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("x-api-key", key)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    support::send(addr, req).await
}

#[tokio::test]
async fn a_stack_outside_the_router_resolves_the_route_once_for_every_layer() {
    let (keys, store, recorder) = (ApiKeys::new(), MemoryKeyStore::new(), Recorder::default());
    let key = key(&keys, &store);
    let addr = start(guard(store, &keys, recorder.clone(), true)).await;

    let ok = get(addr, "/orders/42/lines/7", &key).await;
    assert_eq!(ok.status, 200, "{}", ok.visible_text());
    // The handler sees the one match every layer used: template and raw parameters.
    assert_eq!(ok.json()["template"], "/orders/{id}/lines/{line}");
    assert_eq!(ok.json()["params"], json!(["id=42", "line=7"]));
    // Authorization decided by the template and gave the authorizer the parameters.
    assert_eq!(
        recorder.0.lock().unwrap().last().unwrap(),
        &[
            ("id".to_owned(), "42".to_owned()),
            ("line".to_owned(), "7".to_owned())
        ]
    );
    // Quota charged the route's cost (4 of 10).
    let fields = ok.headers["ratelimit"].to_str().unwrap();
    assert!(fields.starts_with(r#""per-route";r=6;"#), "{fields}");

    // Validation read `id` from the same match.
    let bad = get(addr, "/orders/abc/lines/7", &key).await;
    assert_eq!(bad.status, 422, "{}", bad.visible_text());
    assert_eq!(bad.json()["errors"][0]["in"], "path");

    // One bucket for the route whatever the id (the quota runs before validation, so the
    // refused request was charged too): 4 + 4 used, the next 4 exceed 10.
    let over = get(addr, "/orders/43/lines/1", &key).await;
    assert_eq!(over.status, 429, "{}", over.visible_text());
}

#[tokio::test]
async fn without_a_table_each_layer_matches_the_path_itself_with_the_same_answers() {
    let (keys, store, recorder) = (ApiKeys::new(), MemoryKeyStore::new(), Recorder::default());
    let key = key(&keys, &store);
    let addr = start(guard(store, &keys, recorder.clone(), false)).await;

    let ok = get(addr, "/orders/42/lines/7", &key).await;
    assert_eq!(ok.status, 200, "{}", ok.visible_text());
    assert_eq!(ok.json()["template"], serde_json::Value::Null);
    assert_eq!(
        recorder.0.lock().unwrap().last().unwrap(),
        &[
            ("id".to_owned(), "42".to_owned()),
            ("line".to_owned(), "7".to_owned())
        ]
    );
    assert_eq!(get(addr, "/orders/abc/lines/7", &key).await.status, 422);
    assert_eq!(get(addr, "/orders/43/lines/1", &key).await.status, 429);
}

#[tokio::test]
async fn a_path_outside_the_table_is_left_to_each_layer() {
    let (keys, store, recorder) = (ApiKeys::new(), MemoryKeyStore::new(), Recorder::default());
    let key = key(&keys, &store);
    let addr = start(guard(store, &keys, recorder, true)).await;
    // No template in the table or the policy: a route palisade does not know, answered 404
    // by the authz layer itself (the router's catch-all handler is never reached: deny by
    // default).
    let res = get(addr, "/elsewhere", &key).await;
    assert_eq!(res.status, 404, "{}", res.visible_text());
    assert_eq!(res.json()["code"], "route_not_found");
}

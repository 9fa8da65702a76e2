//! What palisade tells operators. The `tracing` spans it opens per layer decision: one
//! `palisade.decision` span per layer a request passes, with the outcome, the reason of a
//! refusal and the subject as fields, the request id and W3C trace context in every one, and
//! never a credential. Request ids shared with tower-http's request-id layers. The Grafana
//! dashboard against the metric names the library emits.

#[path = "../support/mod.rs"]
mod support;

mod dashboard;
mod request_ids;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authz::{AuthzLayer, LivePolicy, PolicySpec};
use palisade::{Palisade, Principal};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span's fields by name.
type SpanFields = BTreeMap<String, String>;

/// Every span palisade opens (target `palisade…`): its fields, the span's name as `name`, in
/// the order the spans were opened.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(Id, SpanFields)>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().target().starts_with("palisade") {
            let mut fields = BTreeMap::new();
            fields.insert("name".into(), attrs.metadata().name().into());
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push((id.clone(), fields));
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, fields)) = spans.iter_mut().find(|(i, _)| i == id) {
            values.record(&mut Fields(fields));
        }
    }
}

impl Spans {
    fn take(&self) -> Vec<BTreeMap<String, String>> {
        self.0.lock().unwrap().drain(..).map(|(_, f)| f).collect()
    }
}

fn field<'a>(span: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    span.get(name).map(String::as_str)
}

#[tokio::test(flavor = "current_thread")]
async fn one_span_per_layer_decision_with_outcome_and_subject_and_no_secret() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _guard = tracing::subscriber::set_default(subscriber);

    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let issued = keys.generate(KeySpec::new("ada").role("reader")).unwrap();
    store.insert(issued.record);
    let policy = LivePolicy::from_spec(
        &PolicySpec::builder()
            .role("reader", [])
            .allow([http::Method::GET], "/v1/orders/{id}", ["reader"])
            .build(),
    )
    .unwrap();
    let app = Router::new()
        .route(
            "/v1/orders/{id}",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .route("/v1/admin", get(|| async { "admin" }))
        .layer(
            Palisade::builder()
                .authenticate(keys.authenticator(store))
                .authorize(AuthzLayer::new(policy))
                .build()
                .unwrap(),
        );
    let key = issued.plaintext.expose_secret().to_owned();
    let get = |path: &str, key: Option<&str>| {
        // As a TLS listener marks it (the transport guard refuses keys otherwise).
        let mut b = Request::get(path).extension(palisade::transport::ConnectionScheme::Https);
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        b.body(Body::empty()).unwrap()
    };

    // Allowed: authn and authz each open a span, allowed, with the subject.
    let res = app
        .clone()
        .oneshot(get("/v1/orders/7", Some(&key)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let allowed = spans.take();
    let layers: Vec<_> = allowed.iter().filter_map(|s| field(s, "layer")).collect();
    assert_eq!(layers, ["authn", "authz"]);
    for span in &allowed {
        assert_eq!(field(span, "outcome"), Some("allowed"), "{span:?}");
        assert_eq!(field(span, "subject"), Some("ada"), "{span:?}");
    }

    // Refused by authn: one span, refused, with the reason; authz never decides.
    let res = app
        .clone()
        .oneshot(get("/v1/orders/7", None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let refused = spans.take();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(field(&refused[0], "layer"), Some("authn"));
    assert_eq!(field(&refused[0], "outcome"), Some("refused"));
    assert_eq!(field(&refused[0], "reason"), Some("missing_credentials"));

    // Refused by authz (deny by default): authn allowed, authz refused with its reason.
    let res = app
        .clone()
        .oneshot(get("/v1/admin", Some(&key)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let denied = spans.take();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(field(&denied[1], "layer"), Some("authz"));
    assert_eq!(field(&denied[1], "outcome"), Some("refused"));
    assert_eq!(field(&denied[1], "reason"), Some("no_matching_rule"));

    // No span field anywhere carries the key or its secret.
    for span in allowed.iter().chain(&refused).chain(&denied) {
        for value in span.values() {
            assert!(!value.contains(&key[4..20]), "{span:?}");
        }
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Every span palisade opens for a request (quota, authn, authz, validate) names the request by
/// its id and, when the client sent a valid `traceparent`, by its trace id and the caller's span
/// id: the id the client sent, or the one palisade made and sent back.
#[tokio::test(flavor = "current_thread")]
async fn every_span_carries_the_request_id_and_the_w3c_trace_context() {
    use http::Method;
    use palisade::audit::{AuditLayer, ChannelSink};
    use palisade::quota::{KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule};
    use palisade::validate::{Operation, SchemaSet, ValidateLayer};

    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _guard = tracing::subscriber::set_default(subscriber);

    let keys = support::Keys::new();
    let key = keys.issue(KeySpec::new("ada").role("reader"));
    let policy = PolicySpec::builder()
        .role("reader", [])
        .allow([Method::GET], "/v1/orders", ["reader"])
        .build();
    let list = Operation::new().query(
        &SchemaSet::new(),
        &serde_json::json!({"type": "object", "properties": {"limit": {"type": "integer"}}}),
    );
    let guard = Palisade::builder()
        .limit_clients(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(
                    KeyBy::client_ip(),
                    QuotaPolicy::new("per-ip", [Limit::per_second(100).burst(100)]),
                ))
                .build()
                .unwrap(),
        )
        .authenticate(keys.authenticator())
        .authorize(AuthzLayer::new(LivePolicy::from_spec(&policy).unwrap()))
        .validate(
            ValidateLayer::builder()
                .operation(Method::GET, "/v1/orders", list)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let (sink, _events) = ChannelSink::new(64);
    let (audit, _handle) = AuditLayer::builder(sink).build().unwrap();
    let app = Router::new()
        .route("/v1/orders", get(|| async { "[]" }))
        .layer(guard)
        .layer(audit);
    let addr = support::serve(app).await;
    let send = |headers: Vec<(&'static str, String)>, path: &'static str| {
        let mut b = Request::get(path);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        support::send(addr, b.body(Default::default()).unwrap())
    };

    // The client's id and trace context, in all four decisions.
    let reply = send(
        vec![
            ("x-api-key", key.clone()),
            ("x-request-id", "client-id-7".into()),
            ("traceparent", TRACEPARENT.into()),
        ],
        "/v1/orders?limit=2",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let allowed = spans.take();
    let layers: Vec<_> = allowed.iter().filter_map(|s| field(s, "layer")).collect();
    assert_eq!(layers, ["quota", "authn", "authz", "validate"]);
    for span in &allowed {
        assert_eq!(field(span, "request_id"), Some("client-id-7"), "{span:?}");
        assert_eq!(
            field(span, "trace_id"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{span:?}"
        );
        assert_eq!(
            field(span, "parent_id"),
            Some("00f067aa0ba902b7"),
            "{span:?}"
        );
    }

    // No id, a malformed traceparent: the id palisade made (the one sent back) in every span
    // of a refused request too, and no trace fields.
    let reply = send(
        vec![("traceparent", TRACEPARENT.to_uppercase())],
        "/v1/orders",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let made = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let refused = spans.take();
    assert_eq!(refused.len(), 2, "quota and authn: {refused:?}");
    for span in &refused {
        assert_eq!(field(span, "request_id"), Some(made.as_str()), "{span:?}");
        assert_eq!(field(span, "trace_id"), None, "{span:?}");
        assert_eq!(field(span, "parent_id"), None, "{span:?}");
    }

    // A client id that could forge a log line is not what the spans carry.
    let reply = send(
        vec![
            ("x-api-key", key.clone()),
            ("x-request-id", "x\" outcome=allowed".into()),
        ],
        "/v1/orders",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let made = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made, "x\" outcome=allowed");
    for span in spans.take() {
        assert_eq!(field(&span, "request_id"), Some(made.as_str()), "{span:?}");
    }
}

//! Request ids with tower-http's `SetRequestIdLayer` and `PropagateRequestIdLayer` outside
//! palisade, over loopback: one id per request, made by one side only, the same in the
//! response, in the audit event and in what the handler sees. And the W3C `traceparent` in the
//! audit event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::routing::get;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use palisade::audit::{AuditEvent, AuditHandle, AuditLayer, RequestId};
use serde_json::{Value, json};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::support::{self, MemorySink, Reply};

/// tower-http's id maker: `tower-1`, `tower-2`...
#[derive(Clone, Default)]
struct TowerIds(Arc<AtomicUsize>);

impl MakeRequestId for TowerIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Some(tower_http::request_id::RequestId::new(
            HeaderValue::from_str(&format!("tower-{n}")).unwrap(),
        ))
    }
}

struct Server {
    addr: SocketAddr,
    sink: MemorySink,
    _handle: AuditHandle,
    tower_made: Arc<AtomicUsize>,
    palisade_made: Arc<AtomicUsize>,
}

/// tower-http's layers (on `tower_header`) around palisade's audit (on `palisade_header`),
/// around a handler that answers with the ids it sees.
async fn start(tower_header: &'static str, palisade_header: &'static str) -> Server {
    let sink = MemorySink::default();
    let palisade_made = Arc::new(AtomicUsize::new(0));
    let counter = palisade_made.clone();
    let (audit, handle) = AuditLayer::builder(sink.clone())
        .request_id_header(HeaderName::from_static(palisade_header))
        .make_request_id(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            HeaderValue::from_str(&format!("palisade-{n}")).unwrap()
        })
        .build()
        .unwrap();
    let handler = move |req: AxumRequest| async move {
        let text = |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).map(str::to_owned);
        axum::Json(json!({
            "header": text(req.headers().get(palisade_header)),
            "palisade": req.extensions().get::<RequestId>().map(|r| r.as_str().to_owned()),
            "tower_http": text(req
                .extensions()
                .get::<tower_http::request_id::RequestId>()
                .map(|r| r.header_value())),
        }))
    };
    let tower = TowerIds::default();
    let tower_made = tower.0.clone();
    let name = HeaderName::from_static(tower_header);
    let app = Router::new()
        .route("/", get(handler))
        .layer(audit)
        .layer(PropagateRequestIdLayer::new(name.clone()))
        .layer(SetRequestIdLayer::new(name, tower));
    Server {
        addr: support::serve(app).await,
        sink,
        _handle: handle,
        tower_made,
        palisade_made,
    }
}

impl Server {
    async fn get(&self, headers: &[(&str, &str)]) -> Reply {
        let mut b = Request::get("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let reply = support::send(self.addr, b.body(Default::default()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK);
        reply
    }

    async fn last_event(&self, n: usize) -> AuditEvent {
        self.sink.wait_for(n).await.pop().unwrap()
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.headers[name].to_str().unwrap()
}

/// The one id of a request, checked everywhere it shows: the response, the audit event,
/// palisade's extension and the handler's header when the request has one (palisade replaces
/// a malformed one, and adds none).
fn one_id(reply: &Reply, header_name: &str, event: &AuditEvent) -> String {
    let id = header(reply, header_name).to_owned();
    assert_eq!(event.request_id.as_deref(), Some(id.as_str()));
    let seen: Value = reply.json();
    assert!(
        seen["header"] == id.as_str() || seen["header"].is_null(),
        "{seen}"
    );
    assert_eq!(seen["palisade"], id.as_str(), "{seen}");
    id
}

#[tokio::test]
async fn tower_http_makes_the_id_and_palisade_keeps_it() {
    let s = start("x-request-id", "x-request-id").await;
    let reply = s.get(&[]).await;
    let id = one_id(&reply, "x-request-id", &s.last_event(1).await);
    assert_eq!(id, "tower-1");
    assert_eq!(reply.json()["header"], "tower-1");
    assert_eq!(reply.json()["tower_http"], "tower-1");
    assert_eq!(reply.headers.get_all("x-request-id").iter().count(), 1);
    assert_eq!(s.tower_made.load(Ordering::SeqCst), 1);
    assert_eq!(s.palisade_made.load(Ordering::SeqCst), 0, "never both");
}

#[tokio::test]
async fn a_clients_well_formed_id_is_kept_by_both() {
    let s = start("x-request-id", "x-request-id").await;
    let reply = s.get(&[("x-request-id", "client.id:42_a-b")]).await;
    let id = one_id(&reply, "x-request-id", &s.last_event(1).await);
    assert_eq!(id, "client.id:42_a-b");
    assert_eq!(s.tower_made.load(Ordering::SeqCst), 0);
    assert_eq!(s.palisade_made.load(Ordering::SeqCst), 0);
}

/// tower-http keeps whatever id the client sent; palisade replaces one that could inject into
/// a log, and the replacement is the one id everywhere (the response too: tower-http's
/// propagation leaves a response's id alone).
#[tokio::test]
async fn a_clients_malformed_id_is_replaced_once_and_everywhere() {
    let s = start("x-request-id", "x-request-id").await;
    for (n, bad) in [
        "two words",
        "x\"}{\"forged\":1",
        &"a".repeat(129),
        "a/b",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let reply = s.get(&[("x-request-id", bad)]).await;
        let id = one_id(&reply, "x-request-id", &s.last_event(n + 1).await);
        assert_eq!(id, format!("palisade-{}", n + 1), "{bad:?}");
        assert_eq!(reply.json()["header"], id.as_str(), "the client's is gone");
        #[cfg(feature = "tower-http")]
        assert_eq!(reply.json()["tower_http"], id.as_str());
    }
    assert_eq!(s.tower_made.load(Ordering::SeqCst), 0);
}

/// Each side on its own header, named alike in code: palisade reads the id tower-http made
/// under its header when told that header, and answers under it.
#[tokio::test]
async fn palisade_told_tower_https_header_uses_its_id() {
    let s = start("x-correlation-id", "x-correlation-id").await;
    let reply = s.get(&[]).await;
    let id = one_id(&reply, "x-correlation-id", &s.last_event(1).await);
    assert_eq!(id, "tower-1");
    assert_eq!(s.palisade_made.load(Ordering::SeqCst), 0);
}

/// Each side on its own header, not told of the other: with feature `tower-http` palisade
/// reads tower-http's `RequestId` extension, so both headers carry the one id.
#[cfg(feature = "tower-http")]
#[tokio::test]
async fn with_feature_tower_http_the_extension_is_the_id_whatever_the_headers() {
    let s = start("x-correlation-id", "x-request-id").await;
    let reply = s.get(&[]).await;
    let id = one_id(&reply, "x-request-id", &s.last_event(1).await);
    assert_eq!(id, "tower-1");
    assert_eq!(header(&reply, "x-correlation-id"), "tower-1");
    assert!(reply.json()["header"].is_null(), "no header added inside");
    assert_eq!(s.palisade_made.load(Ordering::SeqCst), 0, "never both");
}

/// Without any outer layer palisade makes version 4 UUIDs, distinct per request.
#[tokio::test]
async fn alone_palisade_makes_uuids() {
    let sink = MemorySink::default();
    let (audit, _handle) = AuditLayer::builder(sink.clone()).build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(audit);
    let addr = support::serve(app).await;
    let mut seen = std::collections::HashSet::new();
    for n in 1..=3 {
        let reply = support::send(addr, Request::get("/").body(Default::default()).unwrap()).await;
        let id = header(&reply, "x-request-id").to_owned();
        let u = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(
            sink.wait_for(n).await[n - 1].request_id.as_deref(),
            Some(id.as_str())
        );
        assert!(seen.insert(id));
    }
}

/// W3C Trace Context Level 1 §3.2: a valid `traceparent`'s trace id and parent id are in the
/// audit event; a malformed one is ignored (recorded nowhere, the request served).
#[tokio::test]
async fn w3c_trace_context_3_2_traceparent_reaches_the_audit_event_and_a_bad_one_is_ignored() {
    let s = start("x-request-id", "x-request-id").await;
    s.get(&[("traceparent", super::TRACEPARENT)]).await;
    let e = s.last_event(1).await;
    assert_eq!(
        e.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(e.parent_id.as_deref(), Some("00f067aa0ba902b7"));
    let line = s.sink.lines();
    assert!(
        line.contains(
            r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","parent_id":"00f067aa0ba902b7""#
        ),
        "{line}"
    );
    for (n, bad) in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"x",
        "garbage",
    ]
    .into_iter()
    .enumerate()
    {
        s.get(&[("traceparent", bad)]).await;
        let e = s.last_event(n + 2).await;
        assert_eq!((e.trace_id, e.parent_id), (None, None), "{bad:?}");
    }
}

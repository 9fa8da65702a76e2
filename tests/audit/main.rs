//! The audit layer over real HTTP on loopback, outermost around the whole palisade stack:
//! exactly one event per request, with the layer and reason of each refusal kind; handler
//! errors and dropped clients recorded; no secret in any event; a slow sink never slows
//! requests and loses events only with the loss counted; shutdown flushes; a chained log
//! reveals an edited or deleted line, lines cut from its start or before a restart, and
//! (against the published chain head) lines cut from its end.

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use palisade::audit::{
    AuditEvent, AuditHandle, AuditLayer, AuditRecord, AuditSink, ChainError, EventKind,
    JsonLinesSink, Outcome, Verifier,
};
use palisade::authn::api_key::{KeyId, KeyRecord, KeySpec, KeyStore};
use palisade::authz::{AuthzLayer, LivePolicy, PolicySpec};
use palisade::quota::{KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule};
use palisade::validate::{Operation, SchemaSet, ValidateLayer};
use palisade::{BoxError, Palisade, StoreError};
use serde_json::json;
use support::{Keys, MemorySink as Memory, Reply, send, serve};

/// Sends a GET for each path through `audit` around a handler that answers 200.
async fn through(audit: &AuditLayer, paths: impl Iterator<Item = String>) {
    use tower::{Layer, ServiceExt};
    let svc = audit.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    }));
    for path in paths {
        svc.clone()
            .oneshot(Request::get(path).body(()).unwrap())
            .await
            .unwrap();
    }
}

/// A key store that always fails (for the 503 case).
struct Failing;

impl KeyStore for Failing {
    async fn get(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(StoreError::new(
            palisade::error::StoreErrorKind::Unavailable,
            "connection refused",
        ))
    }
}

struct Stack {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    key: String,
    sink: Memory,
    handle: AuditHandle,
}

async fn start() -> Stack {
    let keys = Keys::new();
    let key = keys.issue(KeySpec::new("alice").role("clerk").tenant("acme"));
    let policy = PolicySpec::builder()
        .role("clerk", [])
        .role("admin", [])
        .allow([Method::GET, Method::POST], "/orders", ["clerk"])
        .allow([Method::GET], "/slow", ["clerk"])
        .allow([Method::DELETE], "/orders", ["admin"])
        .build();
    let once = QuotaPolicy::new("once", [Limit::per_second(1).burst(1)]);
    let roomy = QuotaPolicy::new("roomy", [Limit::per_hour(1000).burst(100)]);
    let validate = ValidateLayer::builder()
        .operation(
            Method::POST,
            "/orders",
            Operation::new()
                .json_body(
                    SchemaSet::new()
                        .compile(&json!({"type": "object", "required": ["sku"]}))
                        .unwrap(),
                )
                .max_body_bytes(64),
        )
        .build()
        .unwrap();
    let guard = Palisade::builder()
        .authenticate(palisade::authn::Chain::new(
            keys.keys.authenticator(keys.store.clone()),
            palisade::authn::api_key::ApiKeys::new()
                .authenticator(Failing)
                .without_header()
                .with_header(http::HeaderName::from_static("x-failing-key")),
        ))
        .limit_principals(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(KeyBy::Subject, once).on_routes(["/slow"]))
                .rule(QuotaRule::new(KeyBy::Subject, roomy).on_routes(["/orders"]))
                .build()
                .unwrap(),
        )
        .authorize(AuthzLayer::new(LivePolicy::from_spec(&policy).unwrap()))
        .validate(validate)
        .build()
        .unwrap();
    let sink = Memory::default();
    let (audit, handle) = AuditLayer::builder(sink.clone()).build().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = Router::new()
        .route(
            "/orders",
            get(move || async move {
                h1.fetch_add(1, Ordering::SeqCst);
                "orders"
            })
            .post(|| async { "created" })
            .delete(|| async { "deleted" }),
        )
        .route(
            "/slow",
            get(move || async move {
                h2.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .layer(guard)
        .layer(audit);
    let addr = serve(app).await;
    Stack {
        addr,
        hits,
        key,
        sink,
        handle,
    }
}

impl Stack {
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "t");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(
            self.addr,
            b.body(Full::new(Bytes::from(body.to_owned()))).unwrap(),
        )
        .await
    }
}

/// Method, path, headers, body, status, and the (layer, reason) of a refusal.
type Case<'a> = (
    Method,
    &'a str,
    Vec<(&'a str, &'a str)>,
    &'a str,
    u16,
    Option<(&'a str, &'a str)>,
);

fn refused(e: &AuditEvent) -> (&str, &str) {
    match e.outcome.as_ref().unwrap() {
        Outcome::Refused { layer, reason, .. } => (layer, reason),
        other => panic!("not a refusal: {other:?}"),
    }
}

#[tokio::test]
async fn each_outcome_produces_exactly_one_event_with_its_layer_and_reason() {
    let s = start().await;
    let key = s.key.clone();
    // The last character changed (never to itself: a key may end in `x`).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    let too_large = "x".repeat(100);
    let unreachable = palisade::authn::api_key::ApiKeys::new()
        .generate(KeySpec::new("nobody"))
        .unwrap()
        .plaintext
        .expose_secret()
        .to_owned();
    let cases: Vec<Case<'_>> = vec![
        (
            Method::GET,
            "/orders?page=2",
            vec![("x-api-key", &key)],
            "",
            200,
            None,
        ),
        (
            Method::GET,
            "/orders",
            vec![
                (
                    "authorization",
                    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.c2VjcmV0LXRva2Vu",
                ),
                ("cookie", "session=cookie-secret-value"),
            ],
            "",
            401,
            Some(("authn", "missing_credentials")),
        ),
        (
            Method::GET,
            "/orders",
            vec![("x-api-key", &wrong)],
            "",
            401,
            Some(("authn", "bad_checksum")),
        ),
        (
            Method::DELETE,
            "/orders",
            vec![("x-api-key", &key)],
            "",
            403,
            Some(("authz", "missing_role")),
        ),
        (
            Method::POST,
            "/orders",
            vec![("x-api-key", &key), ("content-type", "application/json")],
            &too_large,
            413,
            Some(("validate", "body_too_large")),
        ),
        (
            Method::POST,
            "/orders",
            vec![("x-api-key", &key), ("content-type", "text/plain")],
            "sku",
            415,
            Some(("validate", "unsupported_media_type")),
        ),
        (
            Method::POST,
            "/orders",
            vec![("x-api-key", &key), ("content-type", "application/json")],
            "{}",
            422,
            Some(("validate", "schema_violation")),
        ),
        (
            Method::GET,
            "/orders",
            vec![("x-failing-key", &unreachable)],
            "",
            503,
            None,
        ),
    ];
    let n = cases.len();
    for (i, (method, path, headers, body, status, expected)) in cases.into_iter().enumerate() {
        let reply = s.call(method.clone(), path, &headers, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.body);
        // The request id is set on every response.
        assert!(reply.headers.contains_key("x-request-id"));
        let events = s.sink.wait_for(i + 1).await;
        assert_eq!(events.len(), i + 1, "exactly one event per request");
        let e = &events[i];
        assert_eq!(e.status, Some(status));
        assert_eq!(e.method.as_deref(), Some(method.as_str()));
        assert_eq!(
            e.request_id.as_deref(),
            reply.headers["x-request-id"].to_str().ok()
        );
        match expected {
            None if status == 200 => {
                assert!(
                    matches!(e.outcome, Some(Outcome::Allowed { rule: Some(_) })),
                    "{e:?}"
                );
                let p = e.principal.as_ref().unwrap();
                assert_eq!(
                    (p.subject.as_str(), p.credential.as_str()),
                    ("alice", "api_key")
                );
                assert!(p.key_id.is_some());
                assert_eq!(e.tenant.as_deref(), Some("acme"));
                assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
                // The query string's values are redacted by default.
                assert_eq!(e.path.as_deref(), Some("/orders?page=[redacted]"));
                // What the `RateLimit` field told the client is recorded.
                let q = e.quota.as_ref().expect("quota state of an allowed request");
                assert_eq!(q.mode, "enforced");
                assert_eq!(q.limits.len(), 1, "{q:?}");
                assert_eq!(
                    (q.limits[0].policy.as_str(), q.limits[0].remaining),
                    ("roomy", 99)
                );
            }
            None => assert_eq!(refused(e), ("authn", "key_store_error")),
            Some(expected) => assert_eq!(refused(e), expected, "{e:?}"),
        }
    }
    // 429: the second call within the second on /slow (the first one is cancelled below).
    assert_eq!(s.sink.wait_for(n).await.len(), n);
    let all = s.sink.lines();
    assert!(!all.contains(&key), "the API key reached a sink");
    assert!(
        !all.contains(&key[key.len() - 20..]),
        "part of the API key reached a sink"
    );
    assert!(!all.contains(&wrong));
    assert!(!all.contains(&unreachable));
    assert!(
        !all.contains("c2VjcmV0LXRva2Vu"),
        "a bearer token reached a sink"
    );
    assert!(!all.contains("eyJzdWIiOiJtYWxsb3J5In0"));
    assert!(!all.contains("cookie-secret-value"));
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    assert_eq!(s.handle.dropped(), 0);
}

#[tokio::test]
async fn quota_refusals_and_dropped_clients_are_recorded_once() {
    use tokio::io::AsyncWriteExt;
    let s = start().await;
    // The client sends a request to a slow handler and goes away.
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /slow HTTP/1.1\r\nhost: t\r\nx-api-key: {}\r\n\r\n",
                s.key
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    while s.hits.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stream);
    let events = s.sink.wait_for(1).await;
    assert_eq!(events[0].outcome, Some(Outcome::Cancelled));
    assert_eq!(events[0].status, None);
    assert_eq!(events[0].route.as_deref(), Some("/slow"));
    // The quota of /slow (one per second) was spent by that request: 429.
    let reply = s
        .call(Method::GET, "/slow", &[("x-api-key", &s.key)], "")
        .await;
    assert_eq!(reply.status, 429);
    let events = s.sink.wait_for(2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(refused(&events[1]), ("quota", "quota_exceeded"));
    let q = events[1].quota.as_ref().expect("the 429's quota state");
    assert_eq!(q.mode, "enforced");
    assert_eq!(
        (q.limits[0].policy.as_str(), q.limits[0].remaining),
        ("once", 0)
    );
    assert!(q.limits[0].reset_s >= 1, "{q:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        s.sink.events().len(),
        2,
        "no second event for the dropped client"
    );
}

#[tokio::test]
async fn a_failing_inner_service_is_recorded_as_an_error() {
    use tower::{Layer, ServiceExt};
    let sink = Memory::default();
    let (audit, _handle) = AuditLayer::builder(sink.clone()).build().unwrap();
    let svc = audit.layer(tower::service_fn(|_req: Request<()>| async {
        Err::<http::Response<()>, _>(std::io::Error::other("the handler failed"))
    }));
    let res = svc.oneshot(Request::get("/x").body(()).unwrap()).await;
    assert!(res.is_err());
    let events = sink.wait_for(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Some(Outcome::Error));
}

/// A sink that takes a second per event.
#[derive(Clone, Default)]
struct Slow(Memory);

impl AuditSink for Slow {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        tokio::time::sleep(Duration::from_secs(1) * u32::try_from(batch.len()).unwrap()).await;
        self.0.write(batch).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_never_slows_requests_and_every_loss_is_counted() {
    use tower::{Layer, Service, ServiceExt};
    let sink = Slow::default();
    let (audit, handle) = AuditLayer::builder(sink.clone())
        .capacity(2)
        .build()
        .unwrap();
    let mut svc = audit.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    }));
    // As many requests as complete in a bounded window: with the sink taking a second per
    // event, a stalled request path would complete about one.
    let window = tokio::time::Instant::now() + Duration::from_millis(500);
    let mut completed = 0u64;
    while tokio::time::Instant::now() < window {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::get("/").body(()).unwrap())
            .await;
        assert!(res.is_ok());
        completed += 1;
    }
    assert!(
        completed > 1_000,
        "only {completed} requests completed in 500 ms"
    );
    assert!(handle.dropped() > 0);
    handle.shutdown().await;
    let events = sink.0.events();
    let requests = events
        .iter()
        .filter(|e| e.kind == EventKind::Request)
        .count() as u64;
    let reported: u64 = events.iter().filter_map(|e| e.dropped).sum();
    // Every request is either written or counted as dropped, and every drop was reported.
    assert_eq!(requests + handle.dropped(), completed);
    assert_eq!(reported, handle.dropped());
}

#[tokio::test]
async fn shutdown_flushes_what_is_queued_to_the_file() {
    let dir = std::env::temp_dir().join(format!("palisade-audit-flush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let (audit, handle) = AuditLayer::builder(JsonLinesSink::file(&path).unwrap())
        .build()
        .unwrap();
    through(&audit, (0..50).map(|_| String::from("/"))).await;
    handle.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 50);
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<AuditEvent>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "consecutive: no gap");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn editing_or_deleting_a_line_of_a_chained_log_is_detected() {
    let key = b"an audit chain key of 32 bytes!!";
    let sink = Memory::default();
    let (audit, handle) = AuditLayer::builder(sink.clone())
        .chain_key(key)
        .build()
        .unwrap();
    through(&audit, (0..10).map(|i| format!("/item/{i}"))).await;
    handle.shutdown().await;
    let log = sink.lines();
    assert_eq!(palisade::audit::verify(log.as_bytes(), key), Ok(10));
    // The wrong key fails at once.
    assert!(matches!(
        palisade::audit::verify(log.as_bytes(), b"another key of thirty-two bytes!"),
        Err(ChainError::Edited { line: 1, .. })
    ));
    let lines: Vec<&str> = log.lines().collect();
    // Edit line 4: its hash no longer matches.
    let mut edited = lines.clone();
    let changed = edited[3].replace("/item/3", "/item/9");
    edited[3] = &changed;
    assert!(matches!(
        palisade::audit::verify(edited.join("\n").as_bytes(), key),
        Err(ChainError::Edited { line: 4, seq: 3 })
    ));
    // Delete line 6: line 7 (once 6) no longer follows.
    let mut deleted = lines.clone();
    deleted.remove(5);
    assert!(matches!(
        palisade::audit::verify(deleted.join("\n").as_bytes(), key),
        Err(ChainError::Broken { line: 6, seq: 6 })
    ));
}

/// One run of a process writing `n` requests through a chained audit file sink; returns the
/// handle after shutdown.
async fn chained_run(
    path: &std::path::Path,
    key: &[u8],
    n: usize,
    max_bytes: Option<u64>,
) -> AuditHandle {
    let sink = JsonLinesSink::rotating(path, max_bytes, 10).unwrap();
    let (audit, handle) = AuditLayer::builder(sink).chain_key(key).build().unwrap();
    through(&audit, (0..n).map(|i| format!("/item/{i}"))).await;
    handle.shutdown().await;
    handle
}

fn temp_log(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("palisade-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    (dir, path)
}

#[tokio::test]
async fn a_chained_file_is_one_chain_across_restarts_and_cuts_anywhere_are_detected() {
    let key = b"an audit chain key of 32 bytes!!";
    let (dir, path) = temp_log("restarts");
    chained_run(&path, key, 5, None).await;
    // A second process appends to the same file and continues its chain.
    let handle = chained_run(&path, key, 5, None).await;
    let log = std::fs::read_to_string(&path).unwrap();
    let verified = Verifier::new(key).verify(log.as_bytes()).unwrap();
    assert_eq!((verified.events, verified.restarts), (10, 0));
    // The published head is the log's last event: nothing was cut from its end.
    let head = handle.chain_head().expect("a chained log has a head");
    assert_eq!(Some(head.hash.clone()), verified.last_hash);
    assert_eq!(Some(head.seq), verified.last_seq);
    let lines: Vec<&str> = log.lines().collect();
    // Lines cut from the start: the first one left names an event before it.
    assert!(matches!(
        palisade::audit::verify(lines[2..].join("\n").as_bytes(), key),
        Err(ChainError::MissingStart { line: 1, seq: 2 })
    ));
    // The last events of the first run cut, just before the second run's first event.
    let mut cut = lines.clone();
    cut.drain(3..5);
    assert!(matches!(
        palisade::audit::verify(cut.join("\n").as_bytes(), key),
        Err(ChainError::Broken { line: 4, seq: 0 })
    ));
    // Lines cut from the end leave a valid but shorter chain, which the head exposes.
    let short = Verifier::new(key)
        .verify(lines[..8].join("\n").as_bytes())
        .unwrap();
    assert_ne!(short.last_hash, Some(head.hash.clone()));
    assert!(matches!(
        Verifier::new(key)
            .expect_head(head.hash.clone())
            .verify(lines[..8].join("\n").as_bytes()),
        Err(ChainError::Cut { last_seq: Some(2) })
    ));
    assert!(
        Verifier::new(key)
            .expect_head(head.hash)
            .verify(log.as_bytes())
            .is_ok()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_writer_that_starts_a_new_chain_mid_log_is_named_unless_restarts_are_allowed() {
    let key = b"an audit chain key of 32 bytes!!";
    let (dir, path) = temp_log("writer-restarts");
    // Two runs writing to a plain `Write` (as standard output would): no earlier log to
    // continue, so the second run starts a new chain.
    for _ in 0..2 {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let (audit, handle) = AuditLayer::builder(JsonLinesSink::writer(file))
            .chain_key(key)
            .build()
            .unwrap();
        through(&audit, (0..3).map(|_| String::from("/"))).await;
        handle.shutdown().await;
    }
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(matches!(
        palisade::audit::verify(log.as_bytes(), key),
        Err(ChainError::Restarted { line: 4, seq: 0 })
    ));
    let verified = Verifier::new(key)
        .allow_restarts()
        .verify(log.as_bytes())
        .unwrap();
    assert_eq!((verified.events, verified.restarts), (6, 1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn rotated_files_verify_oldest_first_each_continuing_the_one_before() {
    let key = b"an audit chain key of 32 bytes!!";
    let (dir, path) = temp_log("rotation");
    // About 450 bytes per sealed event: a few events per file.
    chained_run(&path, key, 30, Some(2_000)).await;
    chained_run(&path, key, 10, Some(2_000)).await;
    let mut files: Vec<std::path::PathBuf> = (1..=10)
        .rev()
        .map(|i| dir.join(format!("audit.jsonl.{i}")))
        .filter(|p| p.exists())
        .collect();
    files.push(path.clone());
    assert!(files.len() > 3, "rotated: {files:?}");
    let mut total = 0;
    let mut last: Option<String> = None;
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let verifier = match &last {
            Some(hash) => Verifier::new(key).after(hash.clone()),
            // The oldest kept file begins at the very first event here (none was deleted).
            None => Verifier::new(key),
        };
        let v = verifier
            .verify(text.as_bytes())
            .unwrap_or_else(|e| panic!("file {i} ({file:?}): {e}"));
        total += v.events;
        last = v.last_hash;
    }
    assert_eq!(total, 40);
    // A file verified out of order does not follow.
    let newest = std::fs::read_to_string(&path).unwrap();
    let oldest_end = {
        let text = std::fs::read_to_string(&files[0]).unwrap();
        Verifier::new(key)
            .verify(text.as_bytes())
            .unwrap()
            .last_hash
            .unwrap()
    };
    assert!(matches!(
        Verifier::new(key)
            .after(oldest_end)
            .verify(newest.as_bytes()),
        Err(ChainError::Broken { line: 1, .. })
    ));
    // Without its predecessor, a rotated file begins mid-chain: named, unless allowed.
    assert!(matches!(
        Verifier::new(key).verify(newest.as_bytes()),
        Err(ChainError::MissingStart { line: 1, .. })
    ));
    assert!(
        Verifier::new(key)
            .from_anywhere()
            .verify(newest.as_bytes())
            .is_ok()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_line_cut_short_by_a_crash_is_named_and_the_next_run_starts_on_a_new_line() {
    let key = b"an audit chain key of 32 bytes!!";
    let (dir, path) = temp_log("crash");
    chained_run(&path, key, 3, None).await;
    // A crash mid-write leaves half a line with no newline.
    let mut text = std::fs::read_to_string(&path).unwrap();
    let half = text.lines().last().unwrap()[..40].to_owned();
    text.push_str(&half);
    std::fs::write(&path, &text).unwrap();
    chained_run(&path, key, 2, None).await;
    let log = std::fs::read_to_string(&path).unwrap();
    assert_eq!(log.lines().count(), 6, "the half line stands alone");
    assert!(matches!(
        palisade::audit::verify(log.as_bytes(), key),
        Err(ChainError::Malformed { line: 4 })
    ));
    // Without the half line the chain is whole: the second run continued from line 3.
    let lines: Vec<&str> = log.lines().filter(|l| *l != half).collect();
    assert_eq!(
        palisade::audit::verify(lines.join("\n").as_bytes(), key),
        Ok(5)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Audit inside the builder (outermost, with the stack's own resolver): the deciding rule and
/// a shadow policy's disagreement are in the event, and the quota figures come from the quota
/// layer's typed outcome, the same whether or not the `RateLimit` fields are sent.
#[tokio::test]
async fn the_builders_audit_records_the_rule_the_shadow_and_quota_with_or_without_headers() {
    use palisade::quota::RateLimitHeaders;
    let mut seen = Vec::new();
    for send_headers in [true, false] {
        let keys = Keys::new();
        let key = keys.issue(KeySpec::new("alice").role("clerk"));
        let enforced = PolicySpec::builder()
            .role("clerk", [])
            .allow([Method::GET], "/orders", ["clerk"])
            .build();
        let candidate = PolicySpec::builder()
            .role("clerk", [])
            .role("admin", [])
            .allow([Method::GET], "/orders", ["admin"])
            .build();
        let roomy = QuotaPolicy::new("roomy", [Limit::per_hour(1000).burst(100)]);
        let mut quota =
            QuotaLayer::builder(MemoryStore::new()).rule(QuotaRule::new(KeyBy::Subject, roomy));
        if !send_headers {
            quota = quota.headers(RateLimitHeaders::new().only_on_refusals());
        }
        let sink = Memory::default();
        let guard = Palisade::builder()
            .authenticate(keys.authenticator())
            .limit_principals(quota.build().unwrap())
            .authorize(
                AuthzLayer::new(LivePolicy::from_spec(&enforced).unwrap())
                    .with_shadow(LivePolicy::from_spec(&candidate).unwrap()),
            )
            .audit(AuditLayer::builder(sink.clone()))
            .build()
            .unwrap();
        let handle = guard.handles().audit().cloned().expect("the audit handle");
        assert!(guard.handles().shadow_policy().is_some());
        let addr = serve(
            Router::new()
                .route("/orders", get(|| async { "orders" }))
                .layer(guard),
        )
        .await;
        let reply = send(
            addr,
            Request::get("/orders")
                .header("host", "t")
                .header("x-api-key", &key)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers.contains_key("ratelimit"), send_headers);
        assert!(reply.headers.contains_key("x-request-id"));
        let e = &sink.wait_for(1).await[0];
        // The deciding rule.
        match &e.outcome {
            Some(Outcome::Allowed { rule: Some(rule) }) => {
                assert!(rule.starts_with("routes[0]: GET /orders"), "{rule}");
            }
            other => panic!("not allowed by a rule: {other:?}"),
        }
        // The shadow policy's disagreement.
        let shadow = e.authz_shadow.as_ref().expect("the shadow divergence");
        assert_eq!(
            (shadow.enforced.as_str(), shadow.shadow.as_str()),
            ("granted", "missing_role")
        );
        assert!(
            shadow
                .shadow_rule
                .as_deref()
                .is_some_and(|r| r.contains("admin")),
            "{shadow:?}"
        );
        // The client address, from the stack's resolver.
        assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
        let q = e.quota.as_ref().expect("quota state");
        seen.push(
            q.limits
                .iter()
                .map(|l| (l.policy.clone(), l.remaining, l.reset_s))
                .collect::<Vec<_>>(),
        );
        handle.shutdown().await;
    }
    // 100 of burst, one unit back every 3.6 s.
    assert_eq!(seen[0], [("roomy".to_owned(), 99, 4)]);
    assert_eq!(seen[0], seen[1], "quota figures depend on the headers");
}

/// The stack's audit queue is flushed when its last holder is dropped: no `shutdown` call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stack_flushes_the_audit_queue() {
    use tower::{Layer, ServiceExt};
    let keys = Keys::new();
    let key = keys.issue(KeySpec::new("alice"));
    let sink = Memory::default();
    let guard = Palisade::builder()
        .authenticate(keys.authenticator())
        .audit(AuditLayer::builder(sink.clone()))
        .build()
        .unwrap();
    let svc = guard.layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
    }));
    for k in [key.as_str(), "pal_wrong"] {
        svc.clone()
            .oneshot(
                Request::get("/x")
                    .header("x-api-key", k)
                    // As a TLS listener marks it (the transport guard refuses keys otherwise).
                    .extension(palisade::transport::ConnectionScheme::Https)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    // Well within the queue's 5 ms tick: nothing drained yet is the usual case, and the drop
    // must wait for the write.
    drop(svc);
    drop(guard);
    let events: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Request)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].status, Some(401));
}

/// A sink that refuses its first writes.
#[derive(Clone, Default)]
struct Flaky {
    inner: Memory,
    failures_left: Arc<AtomicUsize>,
}

impl AuditSink for Flaky {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("disk full".into());
        }
        self.inner.write(batch).await
    }
}

/// A failing sink gets its batch again with backoff; nothing is lost while the retry buffer
/// holds, and what overflows it is dropped, counted and reported as a loss.
#[tokio::test]
async fn a_failing_sink_gets_its_batch_again_and_only_overflow_is_dropped() {
    let sink = Flaky {
        failures_left: Arc::new(AtomicUsize::new(3)),
        ..Flaky::default()
    };
    let (audit, handle) = AuditLayer::builder(sink.clone()).build().unwrap();
    through(&audit, (0..10).map(|i| format!("/r{i}"))).await;
    let events = sink.inner.wait_for(10).await;
    assert_eq!(events.len(), 10);
    assert!(handle.failed() >= 10, "failed attempts are counted");
    assert_eq!(handle.dropped(), 0);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    handle.shutdown().await;

    // A retry buffer of 4 events: of 10 events written while the sink is down, the oldest 6
    // are dropped and the loss is reported once the sink is back.
    let sink = Flaky {
        failures_left: Arc::new(AtomicUsize::new(usize::MAX)),
        ..Flaky::default()
    };
    let (audit, handle) = AuditLayer::builder(sink.clone())
        .capacity(4)
        .build()
        .unwrap();
    for i in 0..10 {
        through(&audit, std::iter::once(format!("/d{i}"))).await;
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.failures_left.store(0, Ordering::SeqCst);
    let kept = sink.inner.wait_for(4).await;
    assert_eq!(kept.len(), 4);
    assert_eq!(handle.dropped(), 6);
    handle.shutdown().await;
    let loss: u64 = sink
        .inner
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Loss)
        .filter_map(|e| e.dropped)
        .sum();
    assert_eq!(loss, 6, "the loss is reported in the log");
}

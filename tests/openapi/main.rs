//! The Petstore (OpenAPI 3.0, `tests/openapi/petstore.yaml`) validating its operations end to
//! end over real HTTP: the document's rules alone decide, and the handler never sees a request
//! they refuse.

#[path = "../support/mod.rs"]
mod support;

mod responses;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::{MethodFilter, get};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use palisade::Route;
use palisade::validate::openapi::OpenApi;
use serde_json::{Value, json};
use support::{Reply, send};
use tokio::net::TcpListener;

const UUID: &str = "0b3c1a8e-5d2f-4c6b-9a7e-1f2e3d4c5b6a";

fn petstore() -> OpenApi {
    OpenApi::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/openapi/petstore.yaml"
    ))
    .unwrap()
}

async fn start() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let ok = move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    };
    let app = Router::new()
        .route("/pets", get(ok.clone()).post(ok.clone()))
        .route("/pets/{petId}", get(ok.clone()).put(ok))
        .layer(petstore().layer().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "pets");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    send(addr, b.body(Full::new(body)).unwrap()).await
}

/// Method, path, headers, body, expected status.
type Case<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>, Option<Value>, u16);

#[test]
fn the_document_and_the_served_routes_agree() {
    let served = [
        Route::new(Method::GET, "/pets"),
        Route::new(Method::POST, "/pets"),
        Route::new(Method::GET, "/pets/{petId}"),
        Route::new(Method::PUT, "/pets/{petId}"),
    ];
    petstore().check_routes(&served).unwrap();
    // A route the service serves but the document does not describe is reported at start-up.
    let mut more = served.to_vec();
    more.push(Route::new(Method::DELETE, "/pets/{petId}"));
    let err = petstore().check_routes(&more).unwrap_err().to_string();
    assert!(err.contains("DELETE /pets/{petId}"), "{err}");
}

#[tokio::test]
async fn petstore_operations_validate_end_to_end() {
    let (addr, hits) = start().await;
    let mut expected_hits = 0;
    let cases: Vec<Case<'_>> = vec![
        (Method::GET, "/pets", vec![], None, 200),
        (
            Method::GET,
            "/pets?limit=20&tags=cat&tags=dog",
            vec![],
            None,
            200,
        ),
        (Method::GET, "/pets?limit=101", vec![], None, 422),
        (Method::GET, "/pets?limit=ten", vec![], None, 422),
        (
            Method::POST,
            "/pets",
            vec![("x-request-id", UUID)],
            Some(json!({"name": "Rex", "tag": null})),
            200,
        ),
        (
            Method::POST,
            "/pets",
            vec![("x-request-id", UUID)],
            Some(json!({"name": "Rex", "tag": "dog", "status": "sold"})),
            200,
        ),
        (
            Method::POST,
            "/pets",
            vec![],
            Some(json!({"name": "Rex"})),
            422,
        ),
        (
            Method::POST,
            "/pets",
            vec![("x-request-id", UUID)],
            Some(json!({"name": ""})),
            422,
        ),
        (
            Method::POST,
            "/pets",
            vec![("x-request-id", UUID)],
            Some(json!({"name": "Rex", "owner": "me"})),
            422,
        ),
        (
            Method::POST,
            "/pets",
            vec![("x-request-id", UUID)],
            Some(json!({"name": "Rex", "status": "lost"})),
            422,
        ),
        (
            Method::POST,
            "/pets",
            vec![("x-request-id", UUID)],
            None,
            422,
        ),
        (Method::GET, "/pets/7", vec![], None, 200),
        // exclusiveMinimum: true with minimum 0 (OpenAPI 3.0) means > 0.
        (Method::GET, "/pets/0", vec![], None, 422),
        (Method::GET, "/pets/seven", vec![], None, 422),
        (
            Method::PUT,
            "/pets/7",
            vec![],
            Some(json!({"id": 7, "name": "Rex"})),
            200,
        ),
        (
            Method::PUT,
            "/pets/7",
            vec![],
            Some(json!({"name": "Rex"})),
            422,
        ),
    ];
    for (method, path, headers, body, status) in cases {
        let before = hits.load(Ordering::SeqCst);
        let reply = call(addr, method.clone(), path, &headers, body.clone()).await;
        assert_eq!(
            reply.status, status,
            "{method} {path} {body:?}: {:?}",
            reply.body
        );
        if status == 200 {
            expected_hits += 1;
        } else {
            assert_eq!(
                hits.load(Ordering::SeqCst),
                before,
                "{method} {path}: the handler ran"
            );
            assert_eq!(reply.headers["content-type"], "application/problem+json");
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), expected_hits);
    // A media type of the shared request body other than JSON, with its own schema.
    let req = Request::put("/pets/7")
        .header("host", "pets")
        .header("content-type", "application/merge-patch+json")
        .body(Full::new(Bytes::from(json!({"name": "Rex"}).to_string())))
        .unwrap();
    assert_eq!(send(addr, req).await.status, 200);
    let req = Request::put("/pets/7")
        .header("host", "pets")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from("Rex")))
        .unwrap();
    assert_eq!(send(addr, req).await.status, 415);
}

#[test]
fn a_configuration_reads_the_document_beside_it_and_reports_unknown_routes() {
    use palisade::config::{Config, Format};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/palisade.yaml");
    let config = Config::from_path(path).unwrap();
    config.validate_layer().unwrap();
    config.palisade(config.key_store().unwrap()).unwrap();
    // A granted route the document does not describe is a start-up error.
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("methods: [GET, PUT]", "methods: [GET, PUT, DELETE]");
    let mut config = Config::parse(&text, Format::Yaml).unwrap();
    config.base_dir = Some(std::path::Path::new(path).parent().unwrap().to_owned());
    let err = config.validate_layer().unwrap_err().to_string();
    assert!(err.contains("DELETE /pets/{petId}"), "{err}");
}

/// OpenAPI 3.1 §4.8.12.4 (Style Values): arrays and objects spelled in each style, and cookie
/// parameters, read from a document and checked over HTTP; the handler sees the coerced query.
#[tokio::test]
async fn openapi_parameter_styles_and_cookies_are_read() {
    let doc = OpenApi::from_yaml(
        r#"
openapi: 3.1.0
info: {title: styles, version: "1"}
paths:
  /search:
    get:
      parameters:
        - {name: ids, in: query, style: form, explode: false,
           schema: {type: array, items: {type: integer}, maxItems: 3}}
        - {name: colors, in: query, style: pipeDelimited,
           schema: {type: array, items: {type: string, enum: [red, green, blue]}}}
        - {name: words, in: query, style: spaceDelimited,
           schema: {type: array, items: {type: string}}}
        - {name: filter, in: query, style: deepObject,
           schema: {type: object, additionalProperties: false,
                    properties: {min: {type: integer}, max: {type: integer, maximum: 100}}}}
        - {name: X-Trace-Ids, in: header, schema: {type: array, items: {type: integer}}}
        - {name: session, in: cookie, required: true,
           schema: {type: string, pattern: "^[a-f0-9]{8}$"}}
      responses: {"200": {description: ok}}
  /login:
    post:
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [user, remember]
              additionalProperties: false
              properties:
                user: {type: string, minLength: 1}
                remember: {type: boolean}
                scopes: {type: array, items: {type: string, enum: [read, write]}}
            encoding:
              scopes: {style: form, explode: false}
      responses: {"200": {description: ok}}
  /items/{ids}:
    get:
      parameters:
        - {name: ids, in: path, required: true,
           schema: {type: array, items: {type: integer, minimum: 1}}}
      responses: {"200": {description: ok}}
"#,
    )
    .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = Router::new()
        .route(
            "/search",
            get(
                move |palisade::validate::ValidatedQuery(q): palisade::validate::ValidatedQuery<
                    Value,
                >| async move {
                    h1.fetch_add(1, Ordering::SeqCst);
                    axum::Json(q)
                },
            ),
        )
        .route(
            "/login",
            axum::routing::post(
                |palisade::validate::Validated(form): palisade::validate::Validated<Value>| async move {
                    axum::Json(form)
                },
            ),
        )
        .route(
            "/items/{ids}",
            get(move || async move {
                h2.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        )
        .layer(doc.layer().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cookie = [("cookie", "theme=dark; session=0a1b2c3d")];
    let get = |path: &'static str, headers: Vec<(&'static str, &'static str)>| async move {
        call(addr, Method::GET, path, &headers, None).await
    };
    let reply = get(
        "/search?ids=1,2,3&colors=red|blue&words=big%20red+dog&filter[min]=5&filter[max]=9",
        vec![cookie[0], ("x-trace-ids", "7,8")],
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"ids": [1, 2, 3], "colors": ["red", "blue"], "words": ["big", "red", "dog"],
               "filter": {"min": 5, "max": 9}})
    );
    // Each style's items are checked as items.
    for (path, pointer) in [
        ("/search?ids=1,2,3,4", "#/ids"),
        ("/search?ids=1,x", "#/ids/1"),
        ("/search?colors=red%7Cpurple", "#/colors/1"),
        ("/search?filter[max]=500", "#/filter/max"),
        ("/search?filter[other]=1", "#/filter"),
    ] {
        let reply = get(path, vec![cookie[0]]).await;
        assert_eq!(reply.status, 422, "{path}: {:?}", reply.body);
        assert_eq!(reply.json()["errors"][0]["pointer"], pointer, "{path}");
    }
    // An encoded comma stays inside its item.
    let reply = get("/search?words=a%2Cb", vec![cookie[0]]).await;
    assert_eq!(reply.json()["words"], json!(["a,b"]));
    // OpenAPI 3.1 §4.8.12.4: `ids=` (form, explode: false) is the empty array, not `[""]`.
    let reply = get("/search?ids=", vec![cookie[0]]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["ids"], json!([]));
    // Headers are comma-separated lists; cookies come from the Cookie header.
    let reply = get("/search", vec![cookie[0], ("x-trace-ids", "7,x")]).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json()["errors"][0]["in"], "header");
    let reply = get("/search", vec![]).await;
    assert_eq!(reply.status, 422, "the session cookie is required");
    assert_eq!(reply.json()["errors"][0]["in"], "cookie");
    let reply = get("/search", vec![("cookie", "session=nothex!!")]).await;
    assert_eq!(reply.status, 422);
    // Path arrays are comma-separated too.
    assert_eq!(get("/items/1,2,3", vec![]).await.status, 200);
    let reply = get("/items/1,0", vec![]).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json()["errors"][0]["pointer"], "#/ids/1");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "only the valid requests ran"
    );
    // A form body, read with its `encoding` styles and checked by the document's schema.
    let login = |body: &'static str| {
        let req = Request::post("/login")
            .header("host", "styles")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(addr, req)
    };
    let reply = login("user=ada&remember=true&scopes=read,write").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"user": "ada", "remember": true, "scopes": ["read", "write"]})
    );
    let reply = login("user=ada&remember=maybe").await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json()["errors"][0]["pointer"], "#/remember");
    let reply = login("user=ada&remember=true&scopes=read,admin").await;
    assert_eq!(reply.json()["errors"][0]["pointer"], "#/scopes/1");
}

#[tokio::test]
async fn openapi_3_1_4_2_integer_formats_are_ranges_and_ecma_patterns_with_braces_load() {
    let doc = OpenApi::new(json!({
        "openapi": "3.1.0",
        "info": {"title": "formats", "version": "1"},
        "paths": {"/accounts/{id}": {"get": {"parameters": [
            {"name": "id", "in": "path", "required": true,
             "schema": {"type": "integer", "format": "int64"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int32"}},
            // ECMA-262 reads a brace that starts no quantifier as itself.
            {"name": "tag", "in": "query", "schema": {"type": "string", "pattern": "^{[a-z]+}$"}}
        ]}}}
    }))
    .expect("a pattern with a literal brace loads");
    let (addr, hits) = serve_counted(&doc, "/accounts/{id}", MethodFilter::GET).await;
    let get = |path: &'static str| call(addr, Method::GET, path, &[], None);
    assert_eq!(
        get("/accounts/9223372036854775807?limit=2147483647")
            .await
            .status,
        200
    );
    for (path, pointer) in [
        ("/accounts/9223372036854775808", "#/id"),
        ("/accounts/-9223372036854775809", "#/id"),
        ("/accounts/1?limit=2147483648", "#/limit"),
        ("/accounts/1?limit=-2147483649", "#/limit"),
    ] {
        let reply = get(path).await;
        assert_eq!(reply.status, 422, "{path}: {:?}", reply.body);
        assert_eq!(reply.json()["errors"][0]["pointer"], pointer, "{path}");
    }
    assert_eq!(get("/accounts/1?tag=%7Babc%7D").await.status, 200);
    assert_eq!(get("/accounts/1?tag=abc").await.status, 422);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn media_types_palisade_cannot_check_are_415_unless_the_host_passes_them() {
    let doc = || {
        OpenApi::new(json!({
            "openapi": "3.1.0",
            "info": {"title": "media", "version": "1"},
            "paths": {"/upload": {"post": {"requestBody": {"content": {
                "application/json": {"schema": {"type": "object", "required": ["name"]}},
                "application/xml": {"schema": {"type": "object"}},
                "multipart/form-data": {"schema": {"type": "object"}}
            }}}}}
        }))
        .unwrap()
    };
    let stored = Arc::new(AtomicUsize::new(0));
    let serve_doc = |doc: OpenApi| {
        let stored = stored.clone();
        async move {
            let app = Router::new()
                .route(
                    "/upload",
                    axum::routing::post(move || async move {
                        stored.fetch_add(1, Ordering::SeqCst);
                        "stored"
                    }),
                )
                .layer(doc.layer().unwrap());
            support::serve(app).await
        }
    };
    let post = |addr: SocketAddr, content_type: &'static str, body: &'static str| {
        let req = Request::post("/upload")
            .header("host", "media")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(addr, req)
    };
    let strict = serve_doc(doc()).await;
    assert_eq!(
        post(strict, "application/json", r#"{"name": "a"}"#)
            .await
            .status,
        200
    );
    for media in ["application/xml", "multipart/form-data; boundary=x"] {
        let reply = post(strict, media, "<a/>").await;
        assert_eq!(reply.status, 415, "{media}: {:?}", reply.body);
        assert_eq!(reply.json()["code"], "unsupported_media_type");
    }
    assert_eq!(
        stored.load(Ordering::SeqCst),
        1,
        "only the JSON body was stored"
    );
    let passing = serve_doc(doc().pass_unchecked_media_types()).await;
    assert_eq!(post(passing, "application/xml", "<a/>").await.status, 200);
    // JSON is checked either way.
    assert_eq!(post(passing, "application/json", "{}").await.status, 422);
}

/// `doc`'s validation in front of one route, `template` for `methods`, whose handler counts
/// its calls: the address and the count.
async fn serve_counted(
    doc: &OpenApi,
    template: &str,
    methods: MethodFilter,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let handler = move || async move {
        counter.fetch_add(1, Ordering::SeqCst);
        "ok"
    };
    let app = Router::new()
        .route(template, axum::routing::on(methods, handler))
        .layer(doc.layer().unwrap());
    (support::serve(app).await, hits)
}

/// A document whose paths are `/orders/{id}`, served under `/v1` by `servers`.
fn orders_under_v1(servers: bool) -> OpenApi {
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "orders", "version": "1"},
        "paths": {"/orders/{id}": {"get": {"parameters": [
            {"name": "id", "in": "path", "required": true,
             "schema": {"type": "integer", "minimum": 1}}
        ]}}}
    });
    if servers {
        doc["servers"] = json!([{"url": "https://api.example.com/v1"}]);
    }
    OpenApi::new(doc).unwrap()
}

#[tokio::test]
async fn cve_2021_42574_the_hostile_input_policy_is_set_per_parameter() {
    // `note` is free text that may hold a right-to-left mark; `q` keeps the default policy;
    // the path `code` is held to 4 characters.
    let doc = OpenApi::new(json!({
        "openapi": "3.1.0",
        "info": {"title": "notes", "version": "1"},
        "paths": {"/notes/{code}": {"get": {"parameters": [
            {"name": "code", "in": "path", "required": true, "schema": {"type": "string"},
             "x-palisade-limits": {"max_string_chars": 4}},
            {"name": "note", "in": "query", "schema": {"type": "string"},
             "x-palisade-limits": {"allow_bidi_controls": true, "allow_control_characters": true}},
            {"name": "q", "in": "query", "schema": {"type": "string"}}
        ]}}}
    }))
    .unwrap();
    let (addr, hits) = serve_counted(&doc, "/notes/{code}", MethodFilter::GET).await;
    let get = |path: &'static str| call(addr, Method::GET, path, &[], None);
    assert_eq!(get("/notes/ab?note=%D7%A9%E2%80%AEx%09y").await.status, 200);
    let reply = get("/notes/ab?q=%E2%80%AEx").await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(reply.json()["errors"][0]["keyword"], "bidiControls");
    let reply = get("/notes/abcde").await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(reply.json()["errors"][0]["keyword"], "maxStringChars");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "only the allowed note ran");
    // A limit on a header is refused when the document loads: nothing reads it.
    let err = OpenApi::new(json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"parameters": [{"name": "x-note", "in": "header",
            "schema": {"type": "string"}, "x-palisade-limits": {"max_depth": 2}}]}}}
    }))
    .unwrap()
    .layer()
    .unwrap_err()
    .to_string();
    assert!(err.contains("x-palisade-limits"), "{err}");
}

#[tokio::test]
async fn a_nested_router_is_validated_not_skipped() {
    // `Router::nest("/v1", ...)`: the matched template is `/v1/orders/{id}`, the path the
    // layer sees `/orders/2`. It used to validate nothing.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let inner = Router::new()
        .route(
            "/orders/{id}",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        )
        .layer(orders_under_v1(false).layer().unwrap());
    let addr = support::serve(Router::new().nest("/v1", inner)).await;
    assert_eq!(
        call(addr, Method::GET, "/v1/orders/2", &[], None)
            .await
            .status,
        200
    );
    let reply = call(addr, Method::GET, "/v1/orders/0", &[], None).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(reply.json()["errors"][0]["pointer"], "#/id");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn openapi_3_1_4_8_5_a_servers_base_path_is_where_the_operations_are_validated() {
    // `servers: [{url: https://api.example.com/v1}]` and the layer on the router that serves
    // `/v1/orders/{id}`.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let api = orders_under_v1(true);
    assert_eq!(api.base_paths(), ["/v1"]);
    let app = Router::new()
        .route(
            "/v1/orders/{id}",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        )
        .layer(api.layer().unwrap());
    let addr = support::serve(app).await;
    assert_eq!(
        call(addr, Method::GET, "/v1/orders/2", &[], None)
            .await
            .status,
        200
    );
    let reply = call(addr, Method::GET, "/v1/orders/x", &[], None).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_operation_whose_only_media_type_is_unchecked_refuses_every_body() {
    // Found by Schemathesis on the published Petstore: `uploadImage` takes only
    // `application/octet-stream`, and a multipart body used to pass unread.
    let doc = OpenApi::new(json!({
        "openapi": "3.1.0",
        "info": {"title": "upload", "version": "1"},
        "paths": {"/pets/{id}/image": {"post": {
            "parameters": [{"name": "id", "in": "path", "required": true,
                            "schema": {"type": "integer"}}],
            "requestBody": {"content": {"application/octet-stream": {}}}
        }}}
    }))
    .unwrap();
    let (addr, hits) = serve_counted(&doc, "/pets/{id}/image", MethodFilter::POST).await;
    for media in [
        "multipart/form-data; boundary=x",
        "application/json",
        "application/octet-stream",
    ] {
        let req = Request::post("/pets/1/image")
            .header("host", "upload")
            .header("content-type", media)
            .body(Full::new(Bytes::from_static(b"--x--")))
            .unwrap();
        let reply = send(addr, req).await;
        assert_eq!(reply.status, 415, "{media}: {:?}", reply.body);
    }
    // The body is optional: without one the request passes.
    assert_eq!(
        call(addr, Method::POST, "/pets/1/image", &[], None)
            .await
            .status,
        200
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn openapi_3_1_4_2_int64_is_exact_in_a_body_beyond_what_a_float_can_tell() {
    // `-9223372036854775809` reads as the float -2^63, equal to `i64::MIN`: a plain
    // `minimum` lets it through (found by Schemathesis on the published Petstore).
    let doc = OpenApi::new(json!({
        "openapi": "3.0.3",
        "info": {"title": "orders", "version": "1"},
        "paths": {"/orders": {"post": {"requestBody": {"required": true, "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "id": {"type": "integer", "format": "int64"}}}}
        }}}}}
    }))
    .unwrap();
    let (addr, hits) = serve_counted(&doc, "/orders", MethodFilter::POST).await;
    let post = |body: &'static str| {
        let req = Request::post("/orders")
            .header("host", "orders")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        send(addr, req)
    };
    for ok in [
        r#"{"id": -9223372036854775808}"#,
        r#"{"id": 9223372036854775807}"#,
        r#"{"id": 2.0}"#,
    ] {
        assert_eq!(post(ok).await.status, 200, "{ok}");
    }
    for bad in [
        r#"{"id": -9223372036854775809}"#,
        r#"{"id": 9223372036854775808}"#,
        r#"{"id": 1e19}"#,
    ] {
        let reply = post(bad).await;
        assert_eq!(reply.status, 422, "{bad}: {:?}", reply.body);
        assert_eq!(reply.json()["errors"][0]["pointer"], "#/id", "{bad}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "only the three valid bodies ran"
    );
}

#[tokio::test]
async fn a_header_object_in_simple_style_is_read_as_an_object() {
    let doc = OpenApi::new(json!({
        "openapi": "3.1.0",
        "info": {"title": "headers", "version": "1"},
        "paths": {"/paint": {"get": {"parameters": [
            {"name": "X-Color", "in": "header", "required": true, "style": "simple",
             "explode": true,
             "schema": {"type": "object", "required": ["R"], "additionalProperties": false,
                        "properties": {"R": {"type": "integer", "maximum": 255},
                                       "G": {"type": "integer", "maximum": 255}}}}
        ]}}}
    }))
    .unwrap();
    let painted = Arc::new(AtomicUsize::new(0));
    let counter = painted.clone();
    let app = Router::new()
        .route(
            "/paint",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "painted"
            }),
        )
        .layer(doc.layer().unwrap());
    let addr = support::serve(app).await;
    let paint = |color: &'static str| async move {
        call(addr, Method::GET, "/paint", &[("x-color", color)], None).await
    };
    assert_eq!(paint("R=100,G=200").await.status, 200);
    for (color, pointer) in [
        ("R=300,G=1", "#/x-color/R"),
        ("G=1", "#/x-color"),
        ("R=1,B=2", "#/x-color"),
    ] {
        let reply = paint(color).await;
        assert_eq!(reply.status, 422, "{color}: {:?}", reply.body);
        assert_eq!(reply.json()["errors"][0]["in"], "header", "{color}");
        assert_eq!(reply.json()["errors"][0]["pointer"], pointer, "{color}");
    }
    assert_eq!(
        painted.load(Ordering::SeqCst),
        1,
        "only the valid colour was painted"
    );
}

#[tokio::test]
async fn openapi_3_1_4_8_25_the_discriminator_selects_the_one_schema() {
    let doc = OpenApi::new(json!({
        "openapi": "3.1.0",
        "info": {"title": "pets", "version": "1"},
        "paths": {"/pets": {"post": {"requestBody": {"required": true, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
        }}}}},
        "components": {"schemas": {
            "Pet": {
                "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                "discriminator": {"propertyName": "petType", "mapping": {"doggo": "Dog"}}
            },
            "Cat": {"type": "object", "required": ["petType"],
                    "properties": {"petType": {"type": "string"}, "hunts": {"type": "boolean"}}},
            "Dog": {"type": "object", "required": ["petType", "breed"],
                    "properties": {"petType": {"type": "string"},
                                   "breed": {"enum": ["Dingo", "Husky"]}}}
        }}
    }))
    .unwrap();
    let adopted = Arc::new(AtomicUsize::new(0));
    let counter = adopted.clone();
    let app = Router::new()
        .route(
            "/pets",
            axum::routing::post(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "adopted"
            }),
        )
        .layer(doc.layer().unwrap());
    let addr = support::serve(app).await;
    let post = |pet: Value| async move { call(addr, Method::POST, "/pets", &[], Some(pet)).await };
    // A Cat that would also pass as a Dog's shape is still one Cat (a plain oneOf refused it).
    assert_eq!(
        post(json!({"petType": "Cat", "hunts": true})).await.status,
        200
    );
    assert_eq!(
        post(json!({"petType": "Dog", "breed": "Husky"}))
            .await
            .status,
        200
    );
    assert_eq!(
        post(json!({"petType": "doggo", "breed": "Dingo"}))
            .await
            .status,
        200
    );
    for (pet, pointer) in [
        (json!({"petType": "Dog", "breed": "Poodle"}), "#/breed"),
        (json!({"petType": "Dog"}), "#"),
        (json!({"petType": "Parrot"}), "#/petType"),
        (json!({"hunts": true}), "#"),
    ] {
        let reply = post(pet.clone()).await;
        assert_eq!(reply.status, 422, "{pet}: {:?}", reply.body);
        let body = reply.json();
        let pointers: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["pointer"].as_str())
            .collect();
        assert!(pointers.contains(&pointer), "{pet}: {pointers:?}");
    }
    assert_eq!(
        adopted.load(Ordering::SeqCst),
        3,
        "only the valid pets were adopted"
    );
}

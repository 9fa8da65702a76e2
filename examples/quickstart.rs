//! An axum service guarded by palisade on in-memory defaults.
//!
//! Run with: `cargo run --example quickstart`
//!
//! It prints a freshly generated demo API key and a ready `curl` line. Options:
//!
//! - `--listen ADDR`: where to listen (default `127.0.0.1:8080`; port 0 picks a free port);
//! - `--config PATH`: a YAML, TOML or JSON configuration (see `docs/config.md`). Every route it
//!   declares is served by a JSON echo handler, so a config file alone describes a test API.
//!
//! With no `--config`, it serves a small API with a policy: `/v1/hello` for any key,
//! `/v1/orders` for readers, `DELETE /v1/orders/{id}` for admins, `/v1/status` public, and
//! quotas: 50/s per client address, 20 failed authentications per address per 15 minutes,
//! 10/s and 10,000 a day per user (the `RateLimit` fields show them). The demo key is an
//! admin. Refusals are logged at debug level (`RUST_LOG` overrides the filter).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::routing::{MethodFilter, get, on};
use axum::{Extension, Router};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Limited};
use palisade::prelude::*;
use serde_json::{Value, json};

/// The API served when the configuration declares no routes: who may call what.
const DEFAULT_POLICY: &str = r#"
roles:
  - name: reader
  - name: admin
    inherits: [reader]
routes:
  - path: /v1/hello             # any authenticated caller
  - path: /v1/orders
    methods: [GET, POST]
    roles: [reader]
  - path: /v1/orders/{id}
    methods: [GET]
    roles: [reader]
  - path: /v1/orders/{id}
    methods: [DELETE]
    roles: [admin]
  - path: /v1/status
    public: true                # no key needed
quota:
  policies:
    per-ip: [{rate: 50, per: 1s, burst: 100}]
    auth-failures: [{quota: 20, window: 15m}]
    per-user: [{rate: 10, per: 1s, burst: 20}, {quota: 10000, window: day}]
  clients:                      # before authentication
    - {key: client_ip, policy: per-ip}
    - {key: client_ip, policy: auth-failures, count: failed-authentication}
  principals:                   # after authentication
    - {key: subject, policy: per-user}
validation:
  operations:
    - path: /v1/orders
      method: POST
      body:
        type: object
        required: [sku, qty]
        additionalProperties: false
        properties:
          sku: {type: string, pattern: "^[A-Z]{3}-[0-9]{4}$"}
          qty: {type: integer, minimum: 1, maximum: 100}
    - path: /v1/orders
      method: GET
      query:
        type: object
        additionalProperties: false
        properties: {limit: {type: integer, minimum: 1, maximum: 100}}
audit:
  sink: tracing                 # one JSON event per request on stderr (target palisade::audit)
"#;

/// Request bodies larger than this are refused by the echo handler (413).
const MAX_ECHO_BODY: usize = 64 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,palisade=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut listen: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?.parse()?,
            "--config" => config = Config::from_path(args.next().ok_or("--config needs a path")?)?,
            "-h" | "--help" => {
                println!("usage: quickstart [--listen ADDR] [--config PATH]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    if config.routes.is_empty() {
        let default = Config::parse(DEFAULT_POLICY, palisade::config::Format::Yaml)?;
        config.routes = default.routes;
        if config.roles.is_empty() {
            config.roles = default.roles;
        }
        if config.quota.clients.is_empty() && config.quota.principals.is_empty() {
            config.quota = default.quota;
        }
        if config.validation.operations.is_empty() && config.validation.openapi.is_none() {
            config.validation = default.validation;
        }
        if config.audit.is_none() {
            config.audit = default.audit;
        }
    }

    // A demo served over plain HTTP: clients on this machine may send keys without TLS (in
    // production, terminate TLS or trust the proxy that does, and leave this off).
    config.transport = config.transport.clone().allow_plain_http_from_loopback();

    // Keys from the config, plus one demo key generated now and shown once.
    let store = config.key_store()?;
    let issued = config.api_keys()?.generate(
        KeySpec::new("demo")
            .role("admin")
            .name("quickstart demo key"),
    )?;
    store.insert(issued.record);
    // Every section of the file takes effect: API keys, JWT issuers and introspection in one
    // chain, authorization, both quota stages, validation and audit (outermost).
    let guard = config.builder().key_store(store).build()?;
    let handles = guard.handles().clone();

    // Every declared route answers with the echo handler; all of them sit behind palisade.
    let mut by_path: BTreeMap<&str, MethodFilter> = BTreeMap::new();
    const ALL: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    // Prefix wildcards (`/admin/*`) are policy rules, not routes: only templates are served.
    for route in config.routes.iter().filter(|r| !r.path.ends_with("/*")) {
        let methods = match &route.methods {
            Methods::Any => &ALL[..],
            Methods::Some(m) => &m[..],
        };
        for method in methods {
            let filter = MethodFilter::try_from(method.clone())
                .map_err(|_| format!("method {method} cannot be routed"))?;
            by_path
                .entry(route.path.as_str())
                .and_modify(|f| *f = f.or(filter))
                .or_insert(filter);
        }
    }
    let mut api = Router::new();
    for (path, filter) in &by_path {
        api = api.route(path, on(*filter, echo));
    }
    let api = api.layer(guard);
    // Outside the guard: public on purpose.
    let app = api.route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (first_path, first_filter) = by_path.iter().next().ok_or("no routes")?;
    println!("palisade quickstart listening on http://{addr}");
    println!("demo API key for subject \"demo\" (shown once, not stored):");
    println!("  {}", issued.plaintext.expose_secret());
    println!("try it:");
    println!(
        "{}",
        curl_line(
            first_path,
            *first_filter,
            addr,
            &key_header(&config, issued.plaintext.expose_secret())?
        )
    );

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // Write what the audit queue still holds before exiting.
    if let Some(audit) = handles.audit() {
        audit.shutdown().await;
    }
    Ok(())
}

/// The `name: value` header that carries `key` under this configuration.
fn key_header(config: &Config, key: &str) -> Result<String, &'static str> {
    match (
        &config.api_keys.header,
        config.api_keys.authorization_scheme,
    ) {
        (Some(name), _) => Ok(format!("{name}: {key}")),
        (None, true) => Ok(format!("authorization: ApiKey {key}")),
        (None, false) => Err("the quickstart sends keys in a header; enable one in the config"),
    }
}

/// A `curl` command for `path` (parameters filled with `1`).
fn curl_line(path: &str, filter: MethodFilter, addr: SocketAddr, header: &str) -> String {
    let concrete: String = path
        .split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let get = MethodFilter::GET;
    let method = if filter.or(get) == filter {
        String::new()
    } else {
        // Not GET-able: use POST with an empty JSON body.
        "-X POST -H 'content-type: application/json' -d '{}' ".to_owned()
    };
    format!("curl -i {method}-H '{header}' http://{addr}{concrete}")
}

/// Echoes the method, matched route, principal, client address and body as JSON.
async fn echo(
    method: Method,
    route: MatchedPath,
    principal: Principal,
    client: Option<Extension<ClientIp>>,
    request: Request,
) -> Result<Json<Value>, (http::StatusCode, &'static str)> {
    let body: Bytes = Limited::new(request.into_body(), MAX_ECHO_BODY)
        .collect()
        .await
        .map_err(|_| (http::StatusCode::PAYLOAD_TOO_LARGE, "body too large"))?
        .to_bytes();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok(Json(json!({
        "method": method.as_str(),
        "route": route.as_str(),
        "subject": principal.subject(),
        "key_id": principal.key_id().map(ToString::to_string),
        "roles": principal.roles().collect::<Vec<_>>(),
        "client_ip": client.map(|Extension(ip)| ip.to_string()),
        "body": body,
    })))
}

//! Any OpenAPI 3.0 / 3.1 document served behind palisade's validation: every operation of the
//! document answers `200 {}` (another path or method gets axum's 404 or 405), and each request
//! that reaches the handler is written as one JSON line to a record file. `.ci/schemathesis` fuzzes published documents through it; it is also
//! a quick way to see what palisade makes of a document of your own.
//!
//! Run with:
//! `cargo run --features axum,openapi --example openapi_guard -- --doc api.yaml --listen 127.0.0.1:8081`
//!
//! Options:
//!
//! - `--doc PATH`: the document (`.json`, `.yaml` or `.yml`), required;
//! - `--listen ADDR`: where to listen (default `127.0.0.1:8081`; port 0 picks a free port, and
//!   the address is printed as `listening on ADDR`);
//! - `--record PATH`: a file that receives one JSON line per request the handler saw
//!   (`method`, `path`, `query`, `headers`, `body`);
//! - `--hostile-strings allow`: turns off palisade's hostile-input policy (control and
//!   bidirectional characters), for fuzzing a document's own rules alone;
//! - `--pass-unchecked-media-types`: bodies palisade cannot check (XML, multipart) pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::routing::{MethodFilter, MethodRouter};
use http_body_util::{BodyExt, Limited};
use palisade::validate::openapi::OpenApi;
use palisade::validate::{JsonLimits, Operation};
use serde_json::{Map, Value, json};

struct Args {
    doc: String,
    listen: SocketAddr,
    record: Option<String>,
    permissive_strings: bool,
    pass_unchecked: bool,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        doc: String::new(),
        listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
        record: None,
        permissive_strings: false,
        pass_unchecked: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--doc" => out.doc = value()?,
            "--listen" => out.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--record" => out.record = Some(value()?),
            "--hostile-strings" => match value()?.as_str() {
                "allow" => out.permissive_strings = true,
                "refuse" => out.permissive_strings = false,
                other => return Err(format!("--hostile-strings: `{other}` (allow or refuse)")),
            },
            "--pass-unchecked-media-types" => out.pass_unchecked = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if out.doc.is_empty() {
        return Err("--doc PATH is required".into());
    }
    Ok(out)
}

/// What the handler received, as one JSON object.
async fn describe(req: Request) -> Value {
    let (parts, body) = req.into_parts();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.as_str().to_owned(), Value::String(value));
    }
    let body = match Limited::new(body, 16 << 20).collect().await {
        Ok(b) => Value::String(String::from_utf8_lossy(&b.to_bytes()).into_owned()),
        Err(e) => json!({ "unreadable": e.to_string() }),
    };
    json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": body,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args().map_err(|e| format!("openapi_guard: {e}"))?;
    let mut api = OpenApi::from_path(&args.doc)?;
    if args.permissive_strings {
        let limits = JsonLimits {
            allow_control_characters: true,
            allow_bidi_controls: true,
            ..JsonLimits::default()
        };
        api = api.with_defaults(Operation::new().json_limits(limits));
    }
    if args.pass_unchecked {
        api = api.pass_unchecked_media_types();
    }
    let layer = api.layer()?;
    let record = match &args.record {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    let record = Arc::new(Mutex::new(record));
    let handler = move |req: Request| {
        let record = record.clone();
        async move {
            let seen = describe(req).await;
            if let Some(file) = record.lock().expect("record lock").as_mut() {
                // One line per request; a failed write is reported, not hidden.
                if let Err(e) = writeln!(file, "{seen}") {
                    eprintln!("openapi_guard: writing the record: {e}");
                }
            }
            axum::Json(json!({}))
        }
    };
    // The document's operations and nothing else: another path is axum's 404, another method
    // its 405, and neither reaches the handler.
    let mut by_template: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for route in api.operations() {
        let filter = MethodFilter::try_from(route.method().clone())
            .map_err(|e| format!("{} {}: {e}", route.method(), route.template()))?;
        let entry = by_template.remove(route.template()).unwrap_or_default();
        by_template.insert(
            route.template().to_owned(),
            entry.on(filter, handler.clone()),
        );
    }
    let mut app = Router::new();
    for (template, methods) in by_template {
        app = app.route(&template, methods);
    }
    let app = app.layer(layer);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

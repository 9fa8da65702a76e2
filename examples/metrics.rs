//! palisade's metrics in Prometheus form: an axum service guarded by palisade (per-IP quota,
//! API keys, RBAC, audit), with `metrics-exporter-prometheus` installed as the `metrics`
//! recorder and its text exposition served on `/metrics`.
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! curl -H 'x-api-key: <printed key>' http://127.0.0.1:8082/v1/orders/42
//! curl http://127.0.0.1:8082/v1/orders/42           # refused: 401
//! curl -H 'x-api-key: <printed key>' -H 'content-type: application/json' \
//!   -d '{"sku":"ABC-1234","qty":2}' http://127.0.0.1:8082/v1/orders
//! curl http://127.0.0.1:8082/metrics | grep palisade_
//! ```
//!
//! `docs/grafana-dashboard.json` charts what `/metrics` serves: point a Prometheus at it and
//! import the dashboard (docs/observability.md).
//!
//! `/metrics` is added after the guard, so palisade does not guard it; in production serve it
//! on an address only the scraper reaches (or guard it too).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use palisade::prelude::*;
use palisade::telemetry::{DECISION_SECONDS_BUCKETS, names};
use palisade::validate::{Operation, SchemaSet, ValidateLayer, Validated};
use serde::Deserialize;

/// The body of `POST /v1/orders`.
#[derive(Deserialize)]
struct NewOrder {
    sku: String,
    qty: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:8082".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }

    // The recorder every `metrics::counter!` in palisade reports to, with buckets for the
    // decision time histogram (without them it is a summary: per-instance quantiles that
    // cannot be aggregated, and docs/grafana-dashboard.json charts buckets). Histograms need
    // their upkeep run now and then.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::DECISION_SECONDS.into()),
            DECISION_SECONDS_BUCKETS,
        )?
        .install_recorder()?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let issued = keys.generate(KeySpec::new("demo").role("reader"))?;
    store.insert(issued.record);
    let policy = LivePolicy::from_spec(
        &PolicySpec::builder()
            .role("reader", [])
            .allow([http::Method::GET], "/v1/orders/{id}", ["reader"])
            .allow([http::Method::POST], "/v1/orders", ["reader"])
            .build(),
    )?;
    let order = SchemaSet::new().compile(&serde_json::json!({
        "type": "object", "required": ["sku", "qty"], "additionalProperties": false,
        "properties": {
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "qty": {"type": "integer", "minimum": 1, "maximum": 999}
        }
    }))?;
    let validate = ValidateLayer::builder()
        .operation(
            http::Method::POST,
            "/v1/orders",
            Operation::new().json_body(order),
        )
        .build()?;
    let guard = Palisade::builder()
        // Plain HTTP from this machine only: a development setting (see docs/SECURITY.md, TLS).
        .allow_plain_http_from_loopback()
        .limit_clients(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(
                    KeyBy::client_ip(),
                    QuotaPolicy::new("per-ip", [Limit::per_second(50).burst(100)]),
                ))
                .build()?,
        )
        .authenticate(keys.authenticator(store))
        .authorize(AuthzLayer::new(policy))
        .validate(validate)
        .build()?;
    let (audit, audit_handle) = AuditLayer::builder(TracingSink).build()?;

    let app =
        Router::new()
            .route(
                "/v1/orders/{id}",
                get(|p: Principal| async move { format!("order for {}\n", p.subject()) }),
            )
            .route(
                "/v1/orders",
                post(|Validated(o): Validated<NewOrder>| async move {
                    format!("{} x {}\n", o.qty, o.sku)
                }),
            )
            .layer(guard)
            .layer(audit)
            .route(
                "/metrics",
                get(move || {
                    let prometheus = prometheus.clone();
                    async move { prometheus.render() }
                }),
            );

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("palisade metrics example listening on http://{addr}");
    println!("metrics: curl http://{addr}/metrics");
    println!(
        "curl -H 'x-api-key: {}' http://{addr}/v1/orders/42",
        issued.plaintext.expose_secret()
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    audit_handle.shutdown().await;
    Ok(())
}

//! Serves `POST /v1/orders` behind one of the stacks of `benches/stack.rs`, for the loopback
//! load test (`benches/load/run.sh`): `bare`, `bare-json` (the bare handler taking axum's
//! `Json<Order>`), `palisade` (API key), `palisade-jwt` (repeated ES256 token), `peer` (the same
//! guard assembled from public crates, casbin matching the route template), `peer-keymatch2`
//! (casbin's `keyMatch2` on the path) or `peer-jwt`. Pinned to one core (`taskset -c 0`), the
//! runtime has one worker.
//!
//! ```sh
//! cargo run --release --features jwt --example load_server -- palisade 127.0.0.1:0
//! ```
//!
//! Prints `listening on ADDR` and then `header NAME: VALUE`, the credential to send;
//! `load_server body` prints the order to send.

#[path = "../benches/support/order.rs"]
mod order;
#[path = "../benches/support/runtime.rs"]
mod runtime;
#[path = "../benches/support/stacks.rs"]
mod stacks;

use std::net::SocketAddr;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "palisade".into());
    if mode == "body" {
        // The order the benches send, for the load generator.
        println!("{}", String::from_utf8_lossy(&order::body()));
        return Ok(());
    }
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("the load server listens on loopback only".into());
    }
    // The peer logs one JSON event per request through a non-blocking writer, as it would in
    // production; here it writes to nothing.
    let _guard = runtime::json_events_to_nothing();
    let st = stacks::Stacks::new();
    let (router, header) = match mode.as_str() {
        "bare" => (st.bare, format!("x-api-key: {}", st.api_key)),
        "bare-json" => (st.bare_json, format!("x-api-key: {}", st.api_key)),
        "palisade" => (st.palisade_key, format!("x-api-key: {}", st.api_key)),
        "palisade-jwt" => (st.palisade_jwt, format!("authorization: {}", st.bearer)),
        "peer" => (st.peer, format!("x-api-key: {}", st.api_key)),
        "peer-keymatch2" => (st.peer_keymatch2, format!("x-api-key: {}", st.api_key)),
        "peer-jwt" => (st.peer, format!("authorization: {}", st.bearer)),
        other => return Err(format!("unknown mode `{other}`").into()),
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    println!("header {header}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

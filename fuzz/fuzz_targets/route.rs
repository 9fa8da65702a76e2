//! Route matching and path handling: a policy's decision and the route table's match for
//! arbitrary methods and paths. Deny by default must hold for every path outside the grants.
#![no_main]

use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use palisade::authz::{Policy, PolicySpec};
use palisade::route::RouteTable;

fn policy() -> &'static (Policy, RouteTable) {
    static P: OnceLock<(Policy, RouteTable)> = OnceLock::new();
    P.get_or_init(|| {
        let policy = PolicySpec::builder()
            .role("reader", [])
            .role("admin", ["reader"])
            .allow([Method::GET], "/v1/orders/{id}", ["reader"])
            .allow_any_method("/v1/admin/*", ["admin"])
            .public([Method::GET], "/health")
            .build()
            .compile()
            .unwrap();
        let table = RouteTable::new()
            .with_route("/v1/orders/{id}")
            .unwrap()
            .with_route("/v1/files/{*path}")
            .unwrap();
        (policy, table)
    })
}

fuzz_target!(|data: &[u8]| {
    let (policy, table) = policy();
    let (method, path) = match data.iter().position(|&b| b == b' ') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"GET"[..], data),
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let decision = policy.decide(None, &method, None, path);
    // An anonymous caller is allowed only the public route, by GET or by HEAD (decided as GET).
    if decision.is_allowed() {
        assert!(
            path == "/health" && (method == Method::GET || method == Method::HEAD),
            "{method} {path} allowed"
        );
    }
    if let Ok(req) = http::Request::builder().method(method).uri(path).body(()) {
        let _ = table.resolve(&req);
    }
});

//! A compiled policy decides without allocating once a principal's role set is cached.
//! Its own test binary: it installs a counting global allocator (dhat, testing mode).

use http::Method;
use palisade::authz::PolicySpec;
use palisade::{AuthMethod, Principal};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let policy = PolicySpec::builder()
        .role("viewer", [])
        .role("editor", ["viewer"])
        .role("admin", ["editor"])
        .allow([Method::GET], "/docs/{id}", ["viewer"])
        .allow_any_method("/admin/*", ["admin"])
        .rule(
            "/orders",
            palisade::authz::Methods::Any,
            ["viewer"],
            ["orders:read"],
        )
        .build()
        .compile()
        .unwrap();
    let principal = Principal::builder("u", AuthMethod::Anonymous)
        .method(AuthMethod::Bearer { issuer: "i".into() })
        .roles(["admin", "unrelated"])
        .scope("orders:read")
        .build();
    let cases = [
        (Method::GET, Some("/docs/{id}"), "/docs/1", true),
        (Method::GET, None, "/docs/1", true),
        (Method::DELETE, None, "/admin/users/7", true),
        (Method::POST, None, "/orders", true),
        (Method::GET, None, "/nowhere", false),
    ];
    // The first decision fills the principal's role-set cache (one allocation, once).
    let _ = policy.decide(Some(&principal), &Method::GET, None, "/docs/1");
    let before = dhat::HeapStats::get();
    for _ in 0..1000 {
        for (method, template, path, allowed) in &cases {
            let d = policy.decide(Some(&principal), method, *template, path);
            assert_eq!(d.is_allowed(), *allowed, "{method} {path}");
        }
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
    println!("5000 decisions, 0 allocations");
    println!("1 passed, 0 failed");
}

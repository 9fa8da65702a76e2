//! Policy documents (roles and routes, as policy files and `PolicySource`s deliver them):
//! compile or refuse, never panic; a compiled policy decides any request.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use palisade::authz::PolicySpec;
use palisade::principal::{AuthMethod, Principal};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<PolicySpec>(data) else {
        return;
    };
    let Ok(policy) = spec.compile() else {
        return;
    };
    let admin = Principal::builder("fuzz", AuthMethod::Anonymous)
        .roles(["admin", "reader"])
        .build();
    for path in ["/", "/v1/orders/1", "/v1/admin/users", "/v1/a/../b", "//x"] {
        for method in [Method::GET, Method::DELETE] {
            let _ = policy.decide(Some(&admin), &method, None, path);
            let _ = policy.decide(None, &method, None, path);
        }
    }
});

//! One authorization decision with 50 roles, 500 route rules and a 5-level role hierarchy:
//! palisade's compiled policy next to casbin's RBAC model, in the same run.
//!
//! Run with: `cargo bench --bench authz`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

#[path = "support/policy.rs"]
mod policy;

use std::hint::black_box;

use casbin::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use palisade::{AuthMethod, Principal};

/// casbin's RBAC model with the given matcher on the object.
fn model(object_matcher: &str) -> String {
    format!(
        "
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && {object_matcher} && r.act == p.act
"
    )
}

/// A casbin enforcer holding the same roles, hierarchy and rules (templates in `:id` form for
/// keyMatch2).
fn casbin_enforcer(model: &str, colon_params: bool) -> Enforcer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = DefaultModel::from_str(model).await.unwrap();
        let mut e = Enforcer::new(m, MemoryAdapter::default()).await.unwrap();
        e.enable_auto_save(false);
        let mut grouping = Vec::new();
        for level in 0..policy::LEVELS {
            for i in 0..policy::PER_LEVEL {
                for parent in policy::inherits(level, i) {
                    grouping.push(vec![policy::role(level, i), parent]);
                }
            }
        }
        for r in policy::caller_roles() {
            grouping.push(vec!["caller".to_owned(), r]);
        }
        e.add_grouping_policies(grouping).await.unwrap();
        let rules = (0..policy::RULES)
            .map(|n| {
                let (template, method, role) = policy::rule(n);
                let obj = if colon_params {
                    template.replace("{id}", ":id")
                } else {
                    template
                };
                vec![role, obj, method.to_owned()]
            })
            .collect();
        e.add_policies(rules).await.unwrap();
        e
    })
}

fn bench(c: &mut Criterion) {
    let compiled = policy::spec().compile().unwrap();
    let caller = Principal::builder("caller", AuthMethod::Anonymous)
        .method(AuthMethod::Bearer { issuer: "i".into() })
        .roles(policy::caller_roles())
        .build();
    // Rule 250 is granted to `l0r0`, which the caller reaches through four levels of
    // inheritance; rule 259 to `l4r1`, which the caller neither holds nor inherits.
    let (allowed_template, allowed_method, _) = policy::rule(250);
    let (denied_template, denied_method, _) = policy::rule(259);
    let allowed_path = allowed_template.replace("{id}", "42");
    let denied_path = denied_template.replace("{id}", "42");
    let allowed_method = Method::from_bytes(allowed_method.as_bytes()).unwrap();
    let denied_method_h = Method::from_bytes(denied_method.as_bytes()).unwrap();
    assert!(
        compiled
            .decide(
                Some(&caller),
                &allowed_method,
                Some(&allowed_template),
                &allowed_path
            )
            .is_allowed()
    );
    assert!(
        !compiled
            .decide(
                Some(&caller),
                &denied_method_h,
                Some(&denied_template),
                &denied_path
            )
            .is_allowed()
    );

    let exact = casbin_enforcer(&model("r.obj == p.obj"), false);
    let keymatch = casbin_enforcer(&model("keyMatch2(r.obj, p.obj)"), true);
    let (am, dm) = (allowed_method.as_str(), denied_method);
    assert!(
        exact
            .enforce(("caller", allowed_template.as_str(), am))
            .unwrap()
    );
    assert!(
        !exact
            .enforce(("caller", denied_template.as_str(), dm))
            .unwrap()
    );
    assert!(
        keymatch
            .enforce(("caller", allowed_path.as_str(), am))
            .unwrap()
    );
    assert!(
        !keymatch
            .enforce(("caller", denied_path.as_str(), dm))
            .unwrap()
    );

    let mut g = c.benchmark_group("authz");
    let palisade_cases = [
        (
            "palisade/template/allow",
            &allowed_method,
            Some(allowed_template.as_str()),
            allowed_path.as_str(),
        ),
        (
            "palisade/template/deny",
            &denied_method_h,
            Some(denied_template.as_str()),
            denied_path.as_str(),
        ),
        (
            "palisade/path/allow",
            &allowed_method,
            None,
            allowed_path.as_str(),
        ),
    ];
    for (name, method, template, path) in palisade_cases {
        g.bench_function(name, |b| {
            b.iter(|| black_box(compiled.decide(Some(&caller), method, black_box(template), path)));
        });
    }
    let casbin_cases = [
        ("casbin/exact/allow", &exact, allowed_template.as_str(), am),
        ("casbin/exact/deny", &exact, denied_template.as_str(), dm),
        (
            "casbin/keymatch2/allow",
            &keymatch,
            allowed_path.as_str(),
            am,
        ),
    ];
    for (name, enforcer, object, action) in casbin_cases {
        g.bench_function(name, |b| {
            b.iter(|| black_box(enforcer.enforce(("caller", black_box(object), action))));
        });
    }
    g.finish();
}

/// Compiling a policy of `n` roles and `n` rules, and one decision in it (issue: performance;
/// compiling was O(rules × roles²): 78 s at 5,000 × 5,000).
fn large(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy_compile");
    g.sample_size(10);
    for n in [500, 5_000] {
        let spec = policy::large_spec(n, n);
        g.bench_function(format!("{n}_roles_x_{n}_rules"), |b| {
            b.iter(|| black_box(spec.compile().unwrap()));
        });
    }
    g.finish();
    let n = 5_000;
    let compiled = policy::large_spec(n, n).compile().unwrap();
    // A leaf role inherits `r0` through its ancestors; rule 0 is granted to `r0`.
    let caller = Principal::builder("caller", AuthMethod::Anonymous)
        .method(AuthMethod::Bearer { issuer: "i".into() })
        .roles([format!("r{}", n - 1)])
        .build();
    let template = "/api/r0/{id}";
    assert!(
        compiled
            .decide(Some(&caller), &Method::GET, Some(template), "/api/r0/1")
            .is_allowed()
    );
    c.bench_function("authz/palisade/5000_roles/template/allow", |b| {
        b.iter(|| {
            black_box(compiled.decide(
                Some(&caller),
                &Method::GET,
                black_box(Some(template)),
                "/api/r0/1",
            ))
        });
    });
}

criterion_group!(benches, bench, large);
criterion_main!(benches);

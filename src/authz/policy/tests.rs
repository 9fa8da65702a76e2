use http::Method;
use proptest::prelude::*;

use super::*;
use crate::principal::AuthMethod;

fn who(roles: &[&str], scopes: &[&str]) -> Principal {
    Principal::builder("u", AuthMethod::Anonymous)
        .method(AuthMethod::Bearer {
            issuer: "test".into(),
        })
        .roles(roles.iter().copied())
        .scopes(scopes.iter().copied())
        .build()
}

fn outcome(p: &Policy, principal: Option<&Principal>, method: &Method, path: &str) -> Outcome {
    p.decide(principal, method, None, path).outcome()
}

fn three_levels() -> Policy {
    PolicySpec::builder()
        .role("viewer", [])
        .role("editor", ["viewer"])
        .role("admin", ["editor"])
        .role("root", ["admin"])
        .allow([Method::GET], "/docs/{id}", ["viewer"])
        .allow([Method::PUT], "/docs/{id}", ["editor"])
        .allow([Method::DELETE], "/docs/{id}", ["admin"])
        .public([Method::GET], "/health")
        .build()
        .compile()
        .unwrap()
}

#[test]
fn inheritance_three_levels_deep() {
    let p = three_levels();
    let root = who(&["root"], &[]);
    for m in [Method::GET, Method::PUT, Method::DELETE] {
        assert_eq!(outcome(&p, Some(&root), &m, "/docs/1"), Outcome::Granted);
    }
    let viewer = who(&["viewer"], &[]);
    assert_eq!(
        outcome(&p, Some(&viewer), &Method::GET, "/docs/1"),
        Outcome::Granted
    );
    assert_eq!(
        outcome(&p, Some(&viewer), &Method::PUT, "/docs/1"),
        Outcome::MissingRole
    );
    let editor = who(&["editor"], &[]);
    assert_eq!(
        outcome(&p, Some(&editor), &Method::DELETE, "/docs/1"),
        Outcome::MissingRole
    );
}

#[test]
fn unlisted_route_and_unlisted_method_are_denied_by_default() {
    let p = three_levels();
    let root = who(&["root"], &[]);
    // A raw path neither the router (no template) nor the policy knows: 404.
    assert_eq!(
        outcome(&p, Some(&root), &Method::GET, "/secret"),
        Outcome::NoRoute
    );
    // A route the router matched (a template) that no rule names: 403, deny by default.
    assert_eq!(
        p.decide(Some(&root), &Method::GET, Some("/secret"), "/secret")
            .outcome(),
        Outcome::NoRule
    );
    // A method the policy does not name on a route it describes: 405.
    assert_eq!(
        outcome(&p, Some(&root), &Method::POST, "/docs/1"),
        Outcome::MethodNotAllowed
    );
    // RFC 9110 §9.3.2: HEAD is decided by the GET rule, unless switched off.
    assert_eq!(
        outcome(&p, Some(&root), &Method::HEAD, "/docs/1"),
        Outcome::Granted
    );
    assert_eq!(outcome(&p, None, &Method::HEAD, "/health"), Outcome::Public);
    let strict = PolicySpec::builder()
        .role("viewer", [])
        .allow([Method::GET], "/docs/{id}", ["viewer"])
        .head_as_get(false)
        .build()
        .compile()
        .unwrap();
    let viewer = who(&["viewer"], &[]);
    assert_eq!(
        outcome(&strict, Some(&viewer), &Method::HEAD, "/docs/1"),
        Outcome::MethodNotAllowed
    );
    // Hidden routes: every miss is the same 403.
    let hidden = PolicySpec::builder()
        .role("viewer", [])
        .allow([Method::GET], "/docs/{id}", ["viewer"])
        .hide_routes(true)
        .build()
        .compile()
        .unwrap();
    for (m, path) in [(Method::GET, "/secret"), (Method::POST, "/docs/1")] {
        assert_eq!(outcome(&hidden, Some(&viewer), &m, path), Outcome::NoRule);
    }
    assert!(
        p.decide(Some(&root), &Method::GET, None, "/secret")
            .rule()
            .is_none()
    );
}

#[test]
fn public_routes_need_no_principal_and_others_do() {
    let p = three_levels();
    assert_eq!(outcome(&p, None, &Method::GET, "/health"), Outcome::Public);
    assert!(p.is_public(&Method::GET, None, "/health"));
    assert!(!p.is_public(&Method::POST, None, "/health"));
    assert_eq!(
        outcome(&p, None, &Method::GET, "/docs/1"),
        Outcome::NotAuthenticated
    );
    let anon = Principal::anonymous();
    assert_eq!(
        outcome(&p, Some(&anon), &Method::GET, "/docs/1"),
        Outcome::NotAuthenticated
    );
}

#[test]
fn scopes_are_all_required() {
    let p = PolicySpec::builder()
        .role("reader", [])
        .rule(
            "/orders",
            Methods::Any,
            ["reader"],
            ["orders:read", "orders:list"],
        )
        .build()
        .compile()
        .unwrap();
    let partial = who(&["reader"], &["orders:read"]);
    let full = who(&["reader"], &["orders:read", "orders:list"]);
    let d = p.decide(Some(&partial), &Method::GET, None, "/orders");
    assert_eq!(d.outcome(), Outcome::MissingScope);
    assert_eq!(d.rule().unwrap().scopes(), "orders:read orders:list");
    assert_eq!(
        outcome(&p, Some(&full), &Method::GET, "/orders"),
        Outcome::Granted
    );
    assert_eq!(
        outcome(
            &p,
            Some(&who(&[], &["orders:read", "orders:list"])),
            &Method::GET,
            "/orders"
        ),
        Outcome::MissingRole
    );
}

#[test]
fn the_most_specific_rule_wins() {
    let p = PolicySpec::builder()
        .role("admin", [])
        .role("ops", [])
        .role("reader", [])
        .allow_any_method("/admin/*", ["admin"])
        .allow([Method::GET], "/admin/metrics/*", ["ops"])
        .allow([Method::GET], "/admin/metrics/cpu", ["reader"])
        .allow_any_method("/admin/metrics/disk", ["ops"])
        .build()
        .compile()
        .unwrap();
    let (admin, ops, reader) = (
        who(&["admin"], &[]),
        who(&["ops"], &[]),
        who(&["reader"], &[]),
    );
    // Exact template beats every wildcard.
    assert_eq!(
        outcome(&p, Some(&reader), &Method::GET, "/admin/metrics/cpu"),
        Outcome::Granted
    );
    assert_eq!(
        outcome(&p, Some(&admin), &Method::GET, "/admin/metrics/cpu"),
        Outcome::MissingRole
    );
    // An unlisted method on the exact template falls back to the wildcards covering it.
    assert_eq!(
        outcome(&p, Some(&admin), &Method::DELETE, "/admin/metrics/cpu"),
        Outcome::Granted
    );
    // A listed method beats `*` on the same template.
    assert_eq!(
        outcome(&p, Some(&ops), &Method::PUT, "/admin/metrics/disk"),
        Outcome::Granted
    );
    // The longer wildcard beats the shorter; its unlisted methods fall back to the shorter.
    assert_eq!(
        outcome(&p, Some(&ops), &Method::GET, "/admin/metrics/mem"),
        Outcome::Granted
    );
    assert_eq!(
        outcome(&p, Some(&admin), &Method::GET, "/admin/metrics/mem"),
        Outcome::MissingRole
    );
    assert_eq!(
        outcome(&p, Some(&admin), &Method::POST, "/admin/metrics/mem"),
        Outcome::Granted
    );
    // A wildcard covers its own prefix, not a longer word.
    assert_eq!(
        outcome(&p, Some(&admin), &Method::GET, "/admin"),
        Outcome::Granted
    );
    assert_eq!(
        outcome(&p, Some(&admin), &Method::GET, "/administrator"),
        Outcome::NoRoute
    );
    let d = p.decide(Some(&ops), &Method::GET, None, "/admin/metrics/mem");
    assert_eq!(
        d.rule().unwrap().description(),
        "routes[1]: GET /admin/metrics/* roles=[ops]"
    );
}

#[test]
fn a_template_is_matched_as_text_never_as_a_path() {
    // axum's MatchedPath `/files/{*path}` must not pick up a rule written for `/files/{id}`.
    let p = PolicySpec::builder()
        .allow([Method::GET], "/files/{id}", [])
        .build()
        .compile()
        .unwrap();
    let u = who(&[], &[]);
    let g = Method::GET;
    assert!(
        p.decide(Some(&u), &g, Some("/files/{id}"), "/files/1")
            .is_allowed()
    );
    assert_eq!(
        p.decide(Some(&u), &g, Some("/files/{*path}"), "/files/a/b")
            .outcome(),
        Outcome::NoRule
    );
}

#[test]
fn compile_errors_name_the_problem() {
    let err = |spec: PolicySpec| spec.compile().unwrap_err().to_string();
    let cycle = PolicySpec::builder()
        .role("a", ["c"])
        .role("b", ["a"])
        .role("c", ["b"])
        .build();
    let msg = err(cycle);
    assert!(
        msg.contains("cycle") && msg.contains("a -> c -> b -> a"),
        "{msg}"
    );
    let msg = err(PolicySpec::builder().role("a", ["ghost"]).build());
    assert!(msg.contains("`ghost`"), "{msg}");
    let msg = err(PolicySpec::builder()
        .allow([Method::GET], "/x", ["ghost"])
        .build());
    assert!(
        msg.contains("routes[0]") && msg.contains("`ghost`"),
        "{msg}"
    );
    let msg = err(PolicySpec::builder().role("a", []).role("a", []).build());
    assert!(msg.contains("declared twice"), "{msg}");
    let twice = PolicySpec::builder()
        .allow([Method::GET], "/x", [])
        .allow([Method::GET, Method::POST], "/x", [])
        .build();
    assert!(err(twice).contains("routes[1]: GET /x"));
    let mut public_with_roles = PolicySpec::builder()
        .role("a", [])
        .public([Method::GET], "/p")
        .build();
    public_with_roles.routes[0].roles.push("a".into());
    assert!(err(public_with_roles).contains("public"));
    for bad in ["/a*", "/{x}/*", "nope"] {
        let spec = PolicySpec::builder().allow([Method::GET], bad, []).build();
        assert!(spec.compile().is_err(), "{bad}");
    }
    let empty = PolicySpec::builder()
        .rule("/x", Methods::Some(vec![]), [], [])
        .build();
    assert!(err(empty).contains("empty"));
}

#[test]
fn unknown_roles_held_by_a_principal_are_ignored() {
    let p = three_levels();
    let u = who(&["viewer", "not-in-policy"], &[]);
    assert_eq!(
        outcome(&p, Some(&u), &Method::GET, "/docs/1"),
        Outcome::Granted
    );
    assert_eq!(
        outcome(
            &p,
            Some(&who(&["not-in-policy"], &[])),
            &Method::GET,
            "/docs/1"
        ),
        Outcome::MissingRole
    );
}

#[test]
fn a_cached_role_set_never_leaks_into_another_policy() {
    // The same role names with other bit positions: a stale cache would grant wrongly.
    let a = PolicySpec::builder()
        .role("reader", [])
        .role("admin", [])
        .allow([Method::GET], "/x", ["reader"])
        .build()
        .compile()
        .unwrap();
    let b = PolicySpec::builder()
        .role("admin", [])
        .role("reader", [])
        .allow([Method::GET], "/x", ["admin"])
        .build()
        .compile()
        .unwrap();
    let reader = who(&["reader"], &[]);
    for _ in 0..3 {
        assert_eq!(
            outcome(&a, Some(&reader), &Method::GET, "/x"),
            Outcome::Granted
        );
        assert_eq!(
            outcome(&b, Some(&reader), &Method::GET, "/x"),
            Outcome::MissingRole
        );
    }
}

#[test]
fn policy_spec_reads_from_yaml() {
    let spec: PolicySpec = serde_json::from_value(serde_json::json!({
        "roles": [{"name": "reader"}, {"name": "admin", "inherits": ["reader"]}],
        "routes": [
            {"path": "/admin/*", "methods": ["*"], "roles": ["admin"]},
            {"path": "/v1/orders", "methods": ["get", "POST"], "roles": ["reader"], "scopes": ["orders"]},
            {"path": "/health", "public": true}
        ]
    }))
    .unwrap();
    assert_eq!(spec.routes[0].methods, Methods::Any);
    assert_eq!(spec.routes[2].methods, Methods::Some(vec![Method::GET]));
    spec.compile().unwrap();
    let bad = serde_json::json!({"routes": [{"path": "/x", "methods": ["*", "GET"]}]});
    assert!(serde_json::from_value::<PolicySpec>(bad).is_err());
}

const ROLES: [&str; 6] = ["r0", "r1", "r2", "r3", "r4", "r5"];
const PATHS: [&str; 6] = ["/a", "/a/{id}", "/b", "/b/*", "/c/*", "/"];
const REQUESTS: [&str; 7] = ["/a", "/a/1", "/b", "/b/x/y", "/c", "/c/1", "/d"];

fn arb_spec() -> impl Strategy<Value = PolicySpec> {
    let roles = proptest::collection::vec(proptest::collection::vec(0usize..6, 0..2), 6);
    let rule = (
        0usize..6,
        0usize..3,
        proptest::collection::vec(0usize..6, 0..3),
        any::<bool>(),
    );
    (roles, proptest::collection::vec(rule, 0..10)).prop_map(|(parents, rules)| {
        let mut b = PolicySpec::builder();
        // Inherit only from lower-numbered roles: never a cycle.
        for (i, ps) in parents.iter().enumerate() {
            let inherits: Vec<&str> = ps.iter().filter(|&&p| p < i).map(|&p| ROLES[p]).collect();
            b = b.role(ROLES[i], inherits);
        }
        let mut spec = b.build();
        let mut seen = std::collections::HashSet::new();
        for (path, method, roles, public) in rules {
            let methods = match method {
                0 => Methods::Some(vec![Method::GET]),
                1 => Methods::Some(vec![Method::POST]),
                _ => Methods::Any,
            };
            if !seen.insert((path, method)) {
                continue;
            }
            let mut r = RuleSpec::new(PATHS[path], methods);
            if public {
                r.public = true;
            } else {
                r.roles = roles.iter().map(|&i| ROLES[i].to_owned()).collect();
            }
            spec.routes.push(r);
        }
        spec
    })
}

fn all_requests() -> impl Iterator<Item = (Method, &'static str)> {
    [Method::GET, Method::POST, Method::DELETE]
        .into_iter()
        .flat_map(|m| REQUESTS.iter().map(move |p| (m.clone(), *p)))
}

proptest! {
    #[test]
    fn granting_a_role_more_permissions_never_denies_what_was_allowed(
        spec in arb_spec(),
        held in proptest::collection::vec(0usize..6, 0..3),
        grant_to in 0usize..6,
        grants in proptest::collection::vec(any::<bool>(), 10),
    ) {
        let before = spec.compile();
        prop_assume!(before.is_ok());
        let before = before.unwrap();
        // More permissions for one role: it is added to some rules' role lists.
        let mut wider = spec.clone();
        for (rule, add) in wider.routes.iter_mut().zip(grants) {
            if add && !rule.public && !rule.roles.is_empty() && !rule.roles.iter().any(|r| r == ROLES[grant_to]) {
                rule.roles.push(ROLES[grant_to].to_owned());
            }
        }
        let after = wider.compile().unwrap();
        let principal = who(&held.iter().map(|&i| ROLES[i]).collect::<Vec<_>>(), &[]);
        for (m, path) in all_requests() {
            if before.decide(Some(&principal), &m, None, path).is_allowed() {
                prop_assert!(after.decide(Some(&principal), &m, None, path).is_allowed(), "{m} {path}");
            }
        }
    }

    #[test]
    fn removing_every_rule_denies_everything_but_public_routes(
        spec in arb_spec(),
        held in proptest::collection::vec(0usize..6, 0..4),
    ) {
        let mut stripped = spec.clone();
        stripped.routes.retain(|r| r.public);
        prop_assume!(spec.compile().is_ok());
        let stripped = stripped.compile().unwrap();
        let principal = who(&held.iter().map(|&i| ROLES[i]).collect::<Vec<_>>(), &[]);
        for (m, path) in all_requests() {
            let d = stripped.decide(Some(&principal), &m, None, path);
            prop_assert!(!d.is_allowed() || d.outcome() == Outcome::Public, "{m} {path}: {d}");
        }
    }
}

/// Found by the `policy` fuzz target: a template with more parameters than `matchit` can name
/// made it panic while compiling. It is refused, naming the template.
#[test]
fn fuzz_policy_a_template_with_too_many_parameters_is_refused_not_a_panic() {
    let path: String = (0..27).map(|i| format!("/x{i}/{{p{i}}}")).collect();
    let spec = PolicySpec::builder()
        .role("reader", [])
        .allow([Method::GET], &path, ["reader"])
        .build();
    let err = spec.compile().map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("at most 16 parameters"), "{err}");
}

/// A 20,000-role inheritance chain: compiling walks it without recursion (no stack to
/// exhaust), and the last role inherits the first role's grant through every link.
#[test]
fn a_twenty_thousand_role_chain_compiles_and_inherits_end_to_end() {
    let n = 20_000;
    let mut b = PolicySpec::builder().role("r0", []);
    for i in 1..n {
        b = b.role(&format!("r{i}"), [format!("r{}", i - 1).as_str()]);
    }
    let spec = b.allow([Method::GET], "/root", ["r0"]).build();
    let policy = spec.compile().unwrap();
    let leaf = who(&[&format!("r{}", n - 1)], &[]);
    assert_eq!(
        outcome(&policy, Some(&leaf), &Method::GET, "/root"),
        Outcome::Granted
    );
    // And a cycle that long is still named.
    let mut b = PolicySpec::builder().role("r0", ["r2999"]);
    for i in 1..3_000 {
        b = b.role(&format!("r{i}"), [format!("r{}", i - 1).as_str()]);
    }
    let err = b.build().compile().map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("cycle") && err.contains("r0 -> "), "{err}");
}

#[test]
fn rfc9470_3_a_step_up_rule_needs_the_acr_and_a_recent_authentication() {
    use std::time::Duration;

    use crate::clock::Timestamp;

    let p = PolicySpec::builder()
        .role("customer", [])
        .route(
            RuleSpec::new("/v1/payments", Methods::Some(vec![Method::POST]))
                .roles(["customer"])
                .acr_values(["urn:example:mfa", "phr"])
                .max_auth_age(Duration::from_secs(300)),
        )
        .route(RuleSpec::new("/v1/profile", Methods::Some(vec![Method::GET])).acr_values(["phr"]))
        .build()
        .compile()
        .unwrap();
    let now = Timestamp::from_unix_secs(1_800_000_000);
    let user = |acr: Option<&str>, ago: Option<i64>| {
        let mut b =
            Principal::builder("u", AuthMethod::Bearer { issuer: "i".into() }).role("customer");
        if let Some(acr) = acr {
            b = b.acr(acr);
        }
        if let Some(ago) = ago {
            b = b.auth_time(Timestamp::from_unix_secs(
                1_800_000_000u64.checked_add_signed(-ago).unwrap(),
            ));
        }
        b.build()
    };
    let pay = |u: &Principal| p.decide_at(Some(u), &Method::POST, None, "/v1/payments", now);
    assert_eq!(
        pay(&user(Some("urn:example:mfa"), Some(100))).outcome(),
        Outcome::Granted
    );
    assert_eq!(
        pay(&user(Some("phr"), Some(300))).outcome(),
        Outcome::Granted
    );
    for (acr, ago) in [
        (Some("pwd"), Some(100)),             // a weaker method
        (None, Some(100)),                    // no acr at all
        (Some("urn:example:mfa"), Some(301)), // too long ago
        (Some("urn:example:mfa"), None),      // no auth_time: its age cannot be known
        (Some("urn:example:mfa"), Some(-60)), // in the future
    ] {
        let d = pay(&user(acr, ago));
        assert_eq!(
            d.outcome(),
            Outcome::InsufficientUserAuthentication,
            "{acr:?} {ago:?}"
        );
        let challenge = d
            .rule()
            .unwrap()
            .step_up()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            challenge,
            "Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required.\", acr_values=\"urn:example:mfa phr\", max_age=300"
        );
    }
    // A rule without a maximum age does not look at auth_time.
    let d = p.decide_at(
        Some(&user(Some("phr"), None)),
        &Method::GET,
        None,
        "/v1/profile",
        now,
    );
    assert_eq!(d.outcome(), Outcome::Granted);
    // Role and scope refusals come first: the step-up is only asked of who may do it at all.
    let stranger = Principal::builder("s", AuthMethod::Bearer { issuer: "i".into() }).build();
    assert_eq!(pay(&stranger).outcome(), Outcome::MissingRole);
}

#[test]
fn a_step_up_on_a_public_rule_or_an_unsendable_acr_is_a_policy_error() {
    let public = PolicySpec {
        routes: vec![{
            let mut r =
                RuleSpec::new("/health", Methods::Some(vec![Method::GET])).acr_values(["mfa"]);
            r.public = true;
            r
        }],
        ..PolicySpec::default()
    };
    let err = public.compile().unwrap_err().to_string();
    assert!(err.contains("step-up"), "{err}");
    for bad in ["two words", "quo\"te", ""] {
        let spec = PolicySpec::builder()
            .route(RuleSpec::new("/x", Methods::Any).acr_values([bad]))
            .build();
        let err = spec.compile().unwrap_err().to_string();
        assert!(err.contains("acr value"), "{bad:?}: {err}");
    }
    // The file form reads a duration.
    let spec: PolicySpec = serde_json::from_str(
        r#"{"routes": [{"path": "/x", "acr_values": ["mfa"], "max_auth_age": "5m"}]}"#,
    )
    .unwrap();
    assert_eq!(
        spec.routes[0].max_auth_age,
        Some(std::time::Duration::from_secs(300))
    );
    spec.compile().unwrap();
}

#[test]
fn head_listed_beats_get_and_get_beats_any_method() {
    let p = PolicySpec::builder()
        .role("reader", [])
        .role("prober", [])
        .role("admin", [])
        .allow([Method::GET], "/a", ["reader"])
        .allow_any_method("/a", ["admin"])
        .allow([Method::GET], "/b", ["reader"])
        .allow([Method::HEAD], "/b", ["prober"])
        .build()
        .compile()
        .unwrap();
    let (reader, prober) = (who(&["reader"], &[]), who(&["prober"], &[]));
    let head = Method::HEAD;
    assert_eq!(outcome(&p, Some(&reader), &head, "/a"), Outcome::Granted);
    assert_eq!(
        outcome(&p, Some(&reader), &head, "/b"),
        Outcome::MissingRole
    );
    assert_eq!(outcome(&p, Some(&prober), &head, "/b"), Outcome::Granted);
}

#[test]
fn the_allow_field_lists_only_what_the_caller_may_use() {
    let p = three_levels();
    let now = Timestamp::from_unix_secs(0);
    let allow = |roles: &[&str]| {
        let w = who(roles, &[]);
        p.allow_field(Some(&w), None, "/docs/1", now)
    };
    assert_eq!(allow(&["viewer"]), "GET, HEAD");
    assert_eq!(allow(&["editor"]), "GET, HEAD, PUT");
    assert_eq!(allow(&["root"]), "GET, HEAD, PUT, DELETE");
    assert_eq!(allow(&[]), "");
    assert_eq!(p.allow_field(None, None, "/health", now), "GET, HEAD");
}

//! The bench policy: 50 roles in a 5-level hierarchy and 500 route rules.

use http::Method;
use palisade::authz::{Methods, PolicySpec, RuleSpec};

pub(crate) const LEVELS: usize = 5;
pub(crate) const PER_LEVEL: usize = 10;
pub(crate) const RULES: usize = 500;

pub(crate) fn role(level: usize, i: usize) -> String {
    format!("l{level}r{i}")
}

/// `(parent roles)` of each role: a role at level L inherits two roles at level L-1.
pub(crate) fn inherits(level: usize, i: usize) -> Vec<String> {
    if level == 0 {
        Vec::new()
    } else {
        vec![role(level - 1, i), role(level - 1, (i + 1) % PER_LEVEL)]
    }
}

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// Rule `n`: one of 125 templates, one method, granted to one role at level `n % 5`.
pub(crate) fn rule(n: usize) -> (String, &'static str, String) {
    let template = format!("/api/v1/resource{}/{{id}}", n / 4);
    (
        template,
        METHODS[n % 4],
        role(n % LEVELS, (n / 5) % PER_LEVEL),
    )
}

pub(crate) fn spec() -> PolicySpec {
    let mut b = PolicySpec::builder();
    for level in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let parents = inherits(level, i);
            b = b.role(&role(level, i), parents.iter().map(String::as_str));
        }
    }
    let mut spec = b.build();
    for n in 0..RULES {
        let (template, method, role) = rule(n);
        let mut r = RuleSpec::new(
            template,
            Methods::Some(vec![Method::from_bytes(method.as_bytes()).unwrap()]),
        );
        r.roles = vec![role];
        spec.routes.push(r);
    }
    spec
}

/// The caller: three roles at the most derived level.
pub(crate) fn caller_roles() -> [String; 3] {
    [role(4, 0), role(4, 3), role(4, 7)]
}

/// A large policy: `roles` roles in a binary tree (role `i` inherits role `(i - 1) / 2`, so
/// every role inherits `r0`), and `rules` rules `GET /api/r{j}/{id}`, each granted to two
/// roles.
#[allow(dead_code)] // used by the authz bench, not by every bench that includes this file
pub(crate) fn large_spec(roles: usize, rules: usize) -> PolicySpec {
    let mut b = PolicySpec::builder();
    for i in 0..roles {
        let parent = (i > 0).then(|| format!("r{}", (i - 1) / 2));
        b = b.role(&format!("r{i}"), parent.iter().map(String::as_str));
    }
    let mut spec = b.build();
    for j in 0..rules {
        let mut r = RuleSpec::new(
            format!("/api/r{j}/{{id}}"),
            Methods::Some(vec![Method::GET]),
        );
        r.roles = vec![
            format!("r{}", j % roles),
            format!("r{}", (j * 7 + 3) % roles),
        ];
        spec.routes.push(r);
    }
    spec
}

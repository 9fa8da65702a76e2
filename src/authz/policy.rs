//! The RBAC policy: its written form ([`PolicySpec`]), its compiled form ([`Policy`]) and the
//! answer it gives ([`Decision`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;

use http::Method;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::ConfigError;
pub use crate::outcome::{Decision, Outcome, RuleRef};
use crate::principal::Principal;

mod compile;
mod spec;

pub use spec::{Methods, PolicyBuilder, PolicySpec, RoleSpec, RuleSpec};

/// A set of roles as bits, one per role of a compiled policy.
pub(crate) type RoleBits = Box<[u64]>;

fn intersects(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

struct Rule {
    reference: RuleRef,
    public: bool,
    /// Held roles that grant this rule (a role grants it when it or an ancestor is listed).
    grant: RoleBits,
    /// No role listed: any authenticated caller.
    any_role: bool,
    scopes: Box<[Box<str>]>,
    /// Step-up (RFC 9470): what the user's authentication must be.
    step_up: Option<StepUp>,
}

/// A rule's step-up requirement (RFC 9470): one of `acr` values, and at most `max_age` since
/// the user authenticated.
pub(crate) struct StepUp {
    pub(crate) acr: Box<[Box<str>]>,
    pub(crate) max_age: Option<std::time::Duration>,
}

impl StepUp {
    /// Whether `p`'s authentication meets it at `now`: its `acr` one of those listed, its
    /// `auth_time` present, not in the future, and recent enough.
    fn met(&self, p: &Principal, now: Timestamp) -> bool {
        let acr =
            self.acr.is_empty() || p.acr().is_some_and(|a| self.acr.iter().any(|v| **v == *a));
        let recent = self.max_age.is_none_or(|max| {
            p.auth_time()
                .is_some_and(|at| at <= now && now.saturating_duration_since(at) <= max)
        });
        acr && recent
    }
}

/// A path pattern of the policy: an exact template or a prefix wildcard, with its rules.
struct Entry {
    by_method: Vec<(Method, usize)>,
    any_method: Option<usize>,
    /// The next less specific wildcard entry covering this one.
    parent: Option<usize>,
    /// A prefix wildcard (`/admin/*`): a rule, not a route.
    wildcard: bool,
}

impl Entry {
    /// This entry's own rule for `method`: the method listed, else (for HEAD, when HEAD is
    /// decided as GET) GET listed, else `*`.
    fn rule_for(&self, method: &Method, head_as_get: bool) -> Option<usize> {
        let listed = |m: &Method| self.by_method.iter().find(|(x, _)| x == m).map(|(_, r)| *r);
        listed(method)
            .or_else(|| (head_as_get && method == Method::HEAD).then(|| listed(&Method::GET))?)
            .or(self.any_method)
    }
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// A compiled policy: answers [`decide`](Self::decide) without allocating, in time independent
/// of the number of roles a caller holds (after the first request of a principal, whose
/// role set is cached on it).
pub struct Policy {
    generation: u64,
    role_index: HashMap<Box<str>, usize>,
    words: usize,
    entries: Vec<Entry>,
    rules: Vec<Rule>,
    /// Exact templates by their text (for axum's `MatchedPath`).
    exact: HashMap<Box<str>, usize>,
    /// Exact templates matched against a raw path (no `MatchedPath`), as axum matches.
    exact_paths: matchit::Router<usize>,
    /// Prefix wildcards.
    prefixes: matchit::Router<usize>,
    /// HEAD is decided by the GET rule when no rule lists HEAD (RFC 9110 §9.3.2).
    head_as_get: bool,
    /// Unknown paths and unserved methods are answered 403 `no_matching_rule`, like any
    /// other refusal, instead of 404 and 405.
    hide_routes: bool,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("generation", &self.generation)
            .field("roles", &self.role_index.len())
            .field("rules", &self.rules.len())
            .finish()
    }
}

fn policy_error(message: impl Into<String>) -> ConfigError {
    ConfigError::Policy {
        message: message.into(),
    }
}

/// `/admin/*` → `Some("/admin")`, `/*` → `Some("")`; `None` for an exact template.
fn wildcard_prefix(path: &str) -> Option<&str> {
    path.strip_suffix("/*")
}

impl Policy {
    /// A number unique to this compiled policy.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a rule covers `method` on route `template` (an exact template or a prefix
    /// wildcard): the startup check that validation and quota settings name declared routes.
    #[must_use]
    pub fn covers(&self, method: Option<&Method>, template: &str) -> bool {
        match method {
            Some(m) => self.winning_rule(m, Some(template), template).is_some(),
            None => self
                .exact
                .get(template)
                .copied()
                .or_else(|| self.prefixes.at(template).ok().map(|m| *m.value))
                .is_some(),
        }
    }

    /// The entry of a request whose route template is `template` (axum's `MatchedPath`, when
    /// known) and whose raw path is `path`: its exact template, else the longest prefix
    /// wildcard covering it.
    fn entry_of(&self, template: Option<&str>, path: &str) -> Option<usize> {
        match template {
            // Exact template text only: a template is never matched as if it were a path
            // against another template's parameters.
            Some(t) => self
                .exact
                .get(t)
                .copied()
                .or_else(|| self.prefixes.at(t).ok().map(|m| *m.value)),
            None => self
                .exact_paths
                .at(path)
                .ok()
                .or_else(|| self.prefixes.at(path).ok())
                .map(|m| *m.value),
        }
    }

    /// The rule that decides `method` on a request whose route template is `template` (axum's
    /// `MatchedPath`, when known) and whose raw path is `path`.
    fn winning_rule(&self, method: &Method, template: Option<&str>, path: &str) -> Option<&Rule> {
        self.rule_from(self.entry_of(template, path), method)
    }

    /// The rule for `method` on `entry` or the wildcards covering it, most specific first.
    fn rule_from(&self, entry: Option<usize>, method: &Method) -> Option<&Rule> {
        let mut entry = entry.map(|e| &self.entries[e]);
        while let Some(e) = entry {
            if let Some(rule) = e.rule_for(method, self.head_as_get) {
                return Some(&self.rules[rule]);
            }
            entry = e.parent.map(|p| &self.entries[p]);
        }
        None
    }

    /// Why no rule decides a request on `entry`: the route is unknown to the router and to
    /// the policy (404), the policy describes the route but not the method (405), or the
    /// route is known but no rule covers it (403, deny by default).
    fn miss(&self, entry: Option<usize>, template: Option<&str>) -> Outcome {
        match entry {
            _ if self.hide_routes => Outcome::NoRule,
            None if template.is_none() => Outcome::NoRoute,
            Some(e) if !self.entries[e].wildcard => Outcome::MethodNotAllowed,
            _ => Outcome::NoRule,
        }
    }

    /// Whether HEAD is decided by the GET rule when no rule lists HEAD.
    #[must_use]
    pub fn head_as_get(&self) -> bool {
        self.head_as_get
    }

    /// Whether unknown paths and unserved methods get 403 instead of 404 and 405.
    #[must_use]
    pub fn hides_routes(&self) -> bool {
        self.hide_routes
    }

    /// Whether `method` on this route is public (no credentials needed).
    #[must_use]
    pub fn is_public(&self, method: &Method, template: Option<&str>, path: &str) -> bool {
        self.winning_rule(method, template, path)
            .is_some_and(|r| r.public)
    }

    /// Decides a request. `principal` is `None` for an anonymous caller.
    ///
    /// The most specific rule wins: an exact template before a wildcard, a longer wildcard
    /// before a shorter one, a listed method before `*`. Nothing is allocated. A step-up
    /// rule's maximum authentication age is judged against the system clock
    /// ([`decide_at`](Self::decide_at) takes the time).
    #[must_use]
    pub fn decide(
        &self,
        principal: Option<&Principal>,
        method: &Method,
        template: Option<&str>,
        path: &str,
    ) -> Decision {
        self.decide_with(principal, method, template, path, 0, || SystemClock.now())
    }

    /// As [`decide`](Self::decide), at `now`.
    #[must_use]
    pub fn decide_at(
        &self,
        principal: Option<&Principal>,
        method: &Method,
        template: Option<&str>,
        path: &str,
        now: Timestamp,
    ) -> Decision {
        self.decide_with(principal, method, template, path, 0, || now)
    }

    /// `now` is called only for a step-up rule with a maximum age.
    pub(crate) fn decide_with(
        &self,
        principal: Option<&Principal>,
        method: &Method,
        template: Option<&str>,
        path: &str,
        cache_slot: usize,
        now: impl FnOnce() -> Timestamp,
    ) -> Decision {
        let entry = self.entry_of(template, path);
        let Some(rule) = self.rule_from(entry, method) else {
            return Decision::new(self.miss(entry, template), None);
        };
        let outcome = if rule.public {
            Outcome::Public
        } else {
            match principal.filter(|p| !p.is_anonymous()) {
                None => Outcome::NotAuthenticated,
                Some(p) => {
                    let has_role = rule.any_role
                        || p.with_role_bits(
                            self.generation(),
                            cache_slot,
                            |p| self.role_bits(p.roles()),
                            |bits| intersects(bits, &rule.grant),
                        );
                    if !has_role {
                        Outcome::MissingRole
                    } else if !rule.scopes.iter().all(|s| p.has_scope(s)) {
                        Outcome::MissingScope
                    } else if rule.step_up.as_ref().is_some_and(|s| {
                        let now = if s.max_age.is_some() {
                            now()
                        } else {
                            Timestamp::from_unix_secs(0)
                        };
                        !s.met(p, now)
                    }) {
                        Outcome::InsufficientUserAuthentication
                    } else {
                        Outcome::Granted
                    }
                }
            }
        };
        Decision::new(outcome, Some(rule.reference.clone()))
    }

    /// The `Allow` field of a 405 (RFC 9110 §10.2.1): the methods the rules on this route
    /// (its exact template and the wildcards covering it) grant `principal`, or would grant
    /// after a step-up, in a fixed order (`GET, HEAD, POST, ...`), HEAD with GET when HEAD is
    /// decided as GET. A method the caller would be refused is never listed, so the field says
    /// nothing about rules the caller cannot use.
    pub(crate) fn allow_field(
        &self,
        principal: Option<&Principal>,
        template: Option<&str>,
        path: &str,
        now: Timestamp,
    ) -> http::HeaderValue {
        let mut methods: Vec<Method> = Vec::new();
        let mut entry = self.entry_of(template, path).map(|e| &self.entries[e]);
        while let Some(e) = entry {
            for (m, _) in &e.by_method {
                if !methods.contains(m) {
                    methods.push(m.clone());
                }
            }
            entry = e.parent.map(|p| &self.entries[p]);
        }
        if self.head_as_get && methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            methods.push(Method::HEAD);
        }
        methods.retain(|m| {
            matches!(
                self.decide_at(principal, m, template, path, now).outcome(),
                Outcome::Granted | Outcome::Public | Outcome::InsufficientUserAuthentication
            )
        });
        methods.sort_by_key(method_rank);
        let list = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        // Method names are tokens, so the list is always a valid field value.
        http::HeaderValue::from_str(&list).unwrap_or(http::HeaderValue::from_static(""))
    }

    /// The parameters of `path` against the policy's exact templates (raw, not decoded).
    pub(crate) fn path_params(&self, path: &str) -> Vec<(Box<str>, Box<str>)> {
        self.exact_paths
            .at(path)
            .map(|m| m.params.iter().map(|(k, v)| (k.into(), v.into())).collect())
            .unwrap_or_default()
    }

    /// The bits of the roles in `roles` that this policy knows (others are ignored).
    pub(crate) fn role_bits<'a>(&self, roles: impl Iterator<Item = &'a str>) -> RoleBits {
        let mut bits = vec![0u64; self.words].into_boxed_slice();
        for r in roles {
            if let Some(&i) = self.role_index.get(r) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    }
}

/// The place of `m` in an `Allow` field: the standard methods in a fixed order, then the
/// extension methods.
fn method_rank(m: &Method) -> usize {
    const ORDER: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    ORDER.iter().position(|x| x == m).unwrap_or(ORDER.len())
}

/// The methods of RFC 9110 §9 and PATCH (RFC 5789).
pub(crate) fn is_standard_method(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::CONNECT
            | Method::OPTIONS
            | Method::TRACE
            | Method::PATCH
    )
}
#[cfg(test)]
mod tests;

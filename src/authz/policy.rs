//! The RBAC policy: its written form ([`PolicySpec`]), its compiled form ([`Policy`]) and the
//! answer it gives ([`Decision`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Method;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ConfigError;
pub use crate::outcome::{Decision, Outcome, RuleRef};
use crate::principal::Principal;

/// A role: a name and the roles whose permissions it inherits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RoleSpec {
    /// The role's name.
    pub name: String,
    /// Roles whose permissions this role also has (`admin` inherits `editor`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
}

/// The methods a rule covers: some, or all (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Methods {
    /// Every method.
    Any,
    /// These methods.
    Some(Vec<Method>),
}

impl Default for Methods {
    fn default() -> Self {
        Self::Some(vec![Method::GET])
    }
}

impl Serialize for Methods {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Any => ["*"].serialize(s),
            Self::Some(m) => s.collect_seq(m.iter().map(Method::as_str)),
        }
    }
}

impl<'de> Deserialize<'de> for Methods {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        if names.iter().any(|n| n == "*") {
            return if names.len() == 1 {
                Ok(Self::Any)
            } else {
                Err(serde::de::Error::custom(
                    "`*` stands alone in a method list",
                ))
            };
        }
        names
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| serde::de::Error::custom(format!("`{m}` is not an HTTP method")))
            })
            .collect::<Result<_, _>>()
            .map(Self::Some)
    }
}

/// One route rule: which methods on which path template (or prefix), for whom.
///
/// - `public: true`: anyone, even without credentials.
/// - otherwise: an authenticated caller holding **one of** `roles` (directly or by inheritance;
///   an empty list means any authenticated caller) and **all of** `scopes`.
///
/// `path` is an axum route template (`/v1/orders/{id}`) or a prefix wildcard (`/admin/*`, which
/// covers `/admin` and everything below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSpec {
    /// The route template or prefix wildcard.
    pub path: String,
    /// The methods (default `[GET]`; `["*"]` for all).
    #[serde(default)]
    pub methods: Methods,
    /// Roles allowed (any of them); empty: any authenticated caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Scopes required (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Open to everyone, without credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

impl RuleSpec {
    /// A rule for `methods` on `path`, open to any authenticated caller until narrowed.
    pub fn new(path: impl Into<String>, methods: Methods) -> Self {
        Self {
            path: path.into(),
            methods,
            roles: Vec::new(),
            scopes: Vec::new(),
            public: false,
        }
    }
}

/// A whole policy as written: roles and route rules. The `roles` and `routes` sections of a
/// configuration file, or built in code with [`PolicySpec::builder`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicySpec {
    /// The roles.
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    /// The route rules.
    #[serde(default)]
    pub routes: Vec<RuleSpec>,
    /// Methods beyond RFC 9110's and PATCH that rules may name (`PURGE`, `PROPFIND`...).
    /// Any other method is refused when the policy compiles, so a typo such as `DELET` never
    /// loads as a rule that nothing matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_methods: Vec<String>,
}

impl PolicySpec {
    /// Starts a policy in code.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            spec: Self::default(),
        }
    }

    /// Compiles the policy; see [`Policy::compile`].
    ///
    /// # Errors
    ///
    /// As [`Policy::compile`].
    pub fn compile(&self) -> Result<Policy, ConfigError> {
        Policy::compile(self)
    }
}

/// Builds a [`PolicySpec`] in code.
///
/// ```
/// use http::Method;
/// use palisade::authz::PolicySpec;
///
/// let policy = PolicySpec::builder()
///     .role("reader", [])
///     .role("editor", ["reader"])
///     .allow([Method::GET], "/v1/orders/{id}", ["reader"])
///     .allow_any_method("/admin/*", ["admin"])
///     .public([Method::GET], "/health")
///     .role("admin", ["editor"])
///     .build()
///     .compile()
///     .unwrap();
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PolicyBuilder {
    spec: PolicySpec,
}

impl PolicyBuilder {
    /// Declares `name`, inheriting the permissions of `inherits`.
    pub fn role<'a>(mut self, name: &str, inherits: impl IntoIterator<Item = &'a str>) -> Self {
        self.spec.roles.push(RoleSpec {
            name: name.to_owned(),
            inherits: inherits.into_iter().map(str::to_owned).collect(),
        });
        self
    }

    /// Allows `methods` on `path` to holders of any of `roles` (empty: any authenticated caller).
    pub fn allow<'a>(
        self,
        methods: impl IntoIterator<Item = Method>,
        path: &str,
        roles: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.rule(
            path,
            Methods::Some(methods.into_iter().collect()),
            roles,
            [],
        )
    }

    /// Allows every method on `path` to holders of any of `roles`.
    pub fn allow_any_method<'a>(
        self,
        path: &str,
        roles: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.rule(path, Methods::Any, roles, [])
    }

    /// Adds a rule that also requires every scope in `scopes`.
    pub fn rule<'a, 'b>(
        mut self,
        path: &str,
        methods: Methods,
        roles: impl IntoIterator<Item = &'a str>,
        scopes: impl IntoIterator<Item = &'b str>,
    ) -> Self {
        let mut rule = RuleSpec::new(path, methods);
        rule.roles = roles.into_iter().map(str::to_owned).collect();
        rule.scopes = scopes.into_iter().map(str::to_owned).collect();
        self.spec.routes.push(rule);
        self
    }

    /// Opens `methods` on `path` to everyone, without credentials.
    pub fn public(mut self, methods: impl IntoIterator<Item = Method>, path: &str) -> Self {
        let mut rule = RuleSpec::new(path, Methods::Some(methods.into_iter().collect()));
        rule.public = true;
        self.spec.routes.push(rule);
        self
    }

    /// The written policy.
    pub fn build(self) -> PolicySpec {
        self.spec
    }
}

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
}

/// A path pattern of the policy: an exact template or a prefix wildcard, with its rules.
struct Entry {
    by_method: Vec<(Method, usize)>,
    any_method: Option<usize>,
    /// The next less specific wildcard entry covering this one.
    parent: Option<usize>,
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
    /// Compiles `spec`: resolves role inheritance, checks every name, builds the route tables.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Policy`] naming the problem: a role declared twice, an unknown role (in
    /// `inherits` or a rule), an inheritance cycle (`a -> b -> a`), an invalid or conflicting
    /// path, a method declared twice for one path, an empty method list, or a public rule that
    /// also lists roles or scopes.
    pub fn compile(spec: &PolicySpec) -> Result<Self, ConfigError> {
        check_methods(spec)?;
        let role_index = index_roles(spec)?;
        let closure = role_closure(spec, &role_index)?;
        let mut policy = Self {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            words: role_index.len().div_ceil(64).max(1),
            role_index,
            entries: Vec::new(),
            rules: Vec::new(),
            exact: HashMap::new(),
            exact_paths: matchit::Router::new(),
            prefixes: matchit::Router::new(),
        };
        let patterns = policy.add_rules(spec, &closure)?;
        policy.link_parents(patterns);
        Ok(policy)
    }

    /// Compiles every rule into its path pattern's entry; returns the patterns and entries.
    fn add_rules(
        &mut self,
        spec: &PolicySpec,
        closure: &[Vec<bool>],
    ) -> Result<HashMap<String, usize>, ConfigError> {
        let mut patterns: HashMap<String, usize> = HashMap::new();
        for (i, spec_rule) in spec.routes.iter().enumerate() {
            let rule = self.compile_rule(i, spec_rule, closure)?;
            let entry = match patterns.get(&spec_rule.path) {
                Some(&e) => e,
                None => {
                    let e = self.add_entry(&spec_rule.path)?;
                    patterns.insert(spec_rule.path.clone(), e);
                    e
                }
            };
            let rule_index = self.rules.len();
            self.rules.push(rule);
            let entry_ref = &mut self.entries[entry];
            let clash = |m: &str| {
                policy_error(format!(
                    "routes[{i}]: {m} {} is already covered by an earlier rule",
                    spec_rule.path
                ))
            };
            match &spec_rule.methods {
                Methods::Any => {
                    if entry_ref.any_method.replace(rule_index).is_some() {
                        return Err(clash("*"));
                    }
                }
                Methods::Some(methods) => {
                    if methods.is_empty() {
                        return Err(policy_error(format!(
                            "routes[{i}]: the method list is empty"
                        )));
                    }
                    for m in methods {
                        if entry_ref.by_method.iter().any(|(x, _)| x == m) {
                            return Err(clash(m.as_str()));
                        }
                        entry_ref.by_method.push((m.clone(), rule_index));
                    }
                }
            }
        }
        Ok(patterns)
    }

    /// Each entry's parent: the longest other wildcard prefix covering it.
    fn link_parents(&mut self, patterns: HashMap<String, usize>) {
        let all: Vec<(String, usize)> = patterns.into_iter().collect();
        for (pattern, entry) in &all {
            let own = wildcard_prefix(pattern).unwrap_or(pattern);
            self.entries[*entry].parent = all
                .iter()
                .filter(|(p, e)| e != entry && wildcard_prefix(p).is_some())
                .filter_map(|(p, e)| {
                    let prefix = wildcard_prefix(p)?;
                    let covers = own == prefix
                        || own.starts_with(prefix) && own[prefix.len()..].starts_with('/');
                    // A wildcard does not parent itself or a shorter wildcard.
                    (covers && (own.len() > prefix.len() || wildcard_prefix(pattern).is_none()))
                        .then_some((prefix.len(), *e))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, e)| e);
        }
    }

    fn compile_rule(
        &self,
        i: usize,
        spec: &RuleSpec,
        closure: &[Vec<bool>],
    ) -> Result<Rule, ConfigError> {
        if spec.public && (!spec.roles.is_empty() || !spec.scopes.is_empty()) {
            return Err(policy_error(format!(
                "routes[{i}]: a public rule cannot also require roles or scopes"
            )));
        }
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), so a scope can be
        // named in a `WWW-Authenticate` challenge.
        if let Some(bad) = spec.scopes.iter().find(|s| {
            s.is_empty()
                || !s
                    .bytes()
                    .all(|c| c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c))
        }) {
            return Err(policy_error(format!(
                "routes[{i}]: scope {bad:?} is not an RFC 6749 scope token (visible ASCII, no space, quote or backslash)"
            )));
        }
        let mut listed = vec![false; self.role_index.len()];
        for role in &spec.roles {
            let idx = self.role_index.get(role.as_str()).ok_or_else(|| {
                policy_error(format!(
                    "routes[{i}] ({}) names role `{role}`, which is not a declared role",
                    spec.path
                ))
            })?;
            listed[*idx] = true;
        }
        let mut grant = vec![0u64; self.words].into_boxed_slice();
        for (held, ancestors) in closure.iter().enumerate() {
            if ancestors.iter().zip(&listed).any(|(a, l)| *a && *l) {
                grant[held / 64] |= 1 << (held % 64);
            }
        }
        let methods = match &spec.methods {
            Methods::Any => "*".to_owned(),
            Methods::Some(m) => m.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        };
        let who = if spec.public {
            "public".to_owned()
        } else if spec.roles.is_empty() {
            "any authenticated".to_owned()
        } else {
            format!("roles=[{}]", spec.roles.join(","))
        };
        let scopes_text = if spec.scopes.is_empty() {
            String::new()
        } else {
            format!(" scopes=[{}]", spec.scopes.join(","))
        };
        Ok(Rule {
            reference: RuleRef::new(
                i,
                format!("routes[{i}]: {methods} {} {who}{scopes_text}", spec.path).into(),
                spec.scopes.join(" ").into(),
            ),
            public: spec.public,
            grant,
            any_role: spec.roles.is_empty(),
            scopes: spec.scopes.iter().map(|s| s.as_str().into()).collect(),
        })
    }

    fn add_entry(&mut self, path: &str) -> Result<usize, ConfigError> {
        let e = self.entries.len();
        let invalid = |message: String| ConfigError::Route {
            template: path.to_owned(),
            message,
        };
        if !path.starts_with('/') {
            return Err(invalid("a path starts with `/`".into()));
        }
        match wildcard_prefix(path) {
            Some(prefix) => {
                if prefix.contains(['{', '}', '*']) {
                    return Err(invalid(
                        "a wildcard prefix is a plain path followed by `/*`".into(),
                    ));
                }
                let exact = if prefix.is_empty() { "/" } else { prefix };
                self.prefixes
                    .insert(exact, e)
                    .map_err(|err| invalid(err.to_string()))?;
                self.prefixes
                    .insert(format!("{prefix}/{{*palisade_rest}}"), e)
                    .map_err(|err| invalid(err.to_string()))?;
            }
            None => {
                if path.contains('*') && !path.contains("{*") {
                    return Err(invalid(
                        "`*` is only allowed as a trailing `/*` wildcard or in `{*name}`".into(),
                    ));
                }
                self.exact_paths
                    .insert(path, e)
                    .map_err(|err| invalid(err.to_string()))?;
                self.exact.insert(path.into(), e);
            }
        }
        self.entries.push(Entry {
            by_method: Vec::new(),
            any_method: None,
            parent: None,
        });
        Ok(e)
    }

    /// A number unique to this compiled policy.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The rule that decides `method` on a request whose route template is `template` (axum's
    /// `MatchedPath`, when known) and whose raw path is `path`.
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

    fn winning_rule(&self, method: &Method, template: Option<&str>, path: &str) -> Option<&Rule> {
        let entry = match template {
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
        };
        let mut entry = entry.map(|e| &self.entries[e]);
        while let Some(e) = entry {
            let by_method = e
                .by_method
                .iter()
                .find(|(m, _)| m == method)
                .map(|(_, r)| *r);
            if let Some(rule) = by_method.or(e.any_method) {
                return Some(&self.rules[rule]);
            }
            entry = e.parent.map(|p| &self.entries[p]);
        }
        None
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
    /// before a shorter one, a listed method before `*`. Nothing is allocated.
    #[must_use]
    pub fn decide(
        &self,
        principal: Option<&Principal>,
        method: &Method,
        template: Option<&str>,
        path: &str,
    ) -> Decision {
        self.decide_with(principal, method, template, path, 0)
    }

    pub(crate) fn decide_with(
        &self,
        principal: Option<&Principal>,
        method: &Method,
        template: Option<&str>,
        path: &str,
        cache_slot: usize,
    ) -> Decision {
        let Some(rule) = self.winning_rule(method, template, path) else {
            return Decision::new(Outcome::NoRule, None);
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
                    } else if rule.scopes.iter().all(|s| p.has_scope(s)) {
                        Outcome::Granted
                    } else {
                        Outcome::MissingScope
                    }
                }
            }
        };
        Decision::new(outcome, Some(rule.reference.clone()))
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

/// Each role's bit position, refusing empty and duplicated names.
fn index_roles(spec: &PolicySpec) -> Result<HashMap<Box<str>, usize>, ConfigError> {
    let mut role_index: HashMap<Box<str>, usize> = HashMap::new();
    for r in &spec.roles {
        if r.name.is_empty() {
            return Err(policy_error("a role has an empty name"));
        }
        let next = role_index.len();
        if role_index.insert(r.name.as_str().into(), next).is_some() {
            return Err(policy_error(format!("role `{}` is declared twice", r.name)));
        }
    }
    Ok(role_index)
}

/// For each role, itself and every role it inherits from, transitively; refuses unknown parents
/// and cycles.
fn role_closure(
    spec: &PolicySpec,
    role_index: &HashMap<Box<str>, usize>,
) -> Result<Vec<Vec<bool>>, ConfigError> {
    let n = role_index.len();
    let parents: Vec<Vec<usize>> = spec
        .roles
        .iter()
        .map(|r| {
            r.inherits
                .iter()
                .map(|p| {
                    role_index.get(p.as_str()).copied().ok_or_else(|| {
                        policy_error(format!(
                            "role `{}` inherits `{p}`, which is not a declared role",
                            r.name
                        ))
                    })
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    check_cycles(spec, &parents)?;
    Ok((0..n)
        .map(|r| {
            let mut seen = vec![false; n];
            let mut stack = vec![r];
            while let Some(x) = stack.pop() {
                if !std::mem::replace(&mut seen[x], true) {
                    stack.extend(&parents[x]);
                }
            }
            seen
        })
        .collect())
}

/// Refuses a rule naming a method that is neither standard nor a declared extension method.
fn check_methods(spec: &PolicySpec) -> Result<(), ConfigError> {
    for (i, rule) in spec.routes.iter().enumerate() {
        let Methods::Some(methods) = &rule.methods else {
            continue;
        };
        for m in methods {
            if !is_standard_method(m)
                && !spec
                    .extension_methods
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(m.as_str()))
            {
                return Err(policy_error(format!(
                    "routes[{i}] ({}): `{m}` is not a standard HTTP method; list it in \
                     `extension_methods` if the service serves it",
                    rule.path
                )));
            }
        }
    }
    Ok(())
}

/// Refuses inheritance cycles, naming one (`a -> b -> a`).
fn check_cycles(spec: &PolicySpec, parents: &[Vec<usize>]) -> Result<(), ConfigError> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(
        r: usize,
        parents: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[r] = 1;
        path.push(r);
        for &p in &parents[r] {
            match state[p] {
                1 => {
                    let start = path.iter().position(|&x| x == p).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(p);
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(p, parents, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state[r] = 2;
        None
    }
    let mut state = vec![0u8; parents.len()];
    for r in 0..parents.len() {
        if state[r] == 0 {
            if let Some(cycle) = visit(r, parents, &mut state, &mut Vec::new()) {
                let names: Vec<&str> = cycle.iter().map(|&i| spec.roles[i].name.as_str()).collect();
                return Err(policy_error(format!(
                    "roles inherit in a cycle: {}",
                    names.join(" -> ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Compiling a [`PolicySpec`] into a [`Policy`]: role indices, the inheritance closure, the
//! route tables.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::error::ConfigError;
use crate::rejection::AuthnReason;

use http::{HeaderValue, Method};

use super::{
    Entry, GENERATIONS, Methods, Policy, PolicySpec, Rule, RuleRef, RuleSpec, StepUp,
    is_standard_method, policy_error, wildcard_prefix,
};

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
        let heirs = role_heirs(spec, &role_index)?;
        let mut policy = Self {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            words: role_index.len().div_ceil(64).max(1),
            role_index,
            entries: Vec::new(),
            rules: Vec::new(),
            exact: HashMap::new(),
            exact_paths: matchit::Router::new(),
            prefixes: matchit::Router::new(),
            head_as_get: spec.head_as_get,
            hide_routes: spec.hide_routes,
        };
        let patterns = policy.add_rules(spec, &heirs)?;
        policy.link_parents(patterns);
        Ok(policy)
    }

    /// Compiles every rule into its path pattern's entry; returns the patterns and entries.
    fn add_rules(
        &mut self,
        spec: &PolicySpec,
        heirs: &[Box<[u64]>],
    ) -> Result<HashMap<String, usize>, ConfigError> {
        let mut patterns: HashMap<String, usize> = HashMap::new();
        for (i, spec_rule) in spec.routes.iter().enumerate() {
            let rule = self.compile_rule(i, spec_rule, heirs)?;
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
        heirs: &[Box<[u64]>],
    ) -> Result<Rule, ConfigError> {
        let step_up = !spec.acr_values.is_empty() || spec.max_auth_age.is_some();
        if spec.public && (!spec.roles.is_empty() || !spec.scopes.is_empty() || step_up) {
            return Err(policy_error(format!(
                "routes[{i}]: a public rule cannot also require roles, scopes or a step-up"
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
        // A role grants the rule to itself and to every role that inherits it: the union of
        // the listed roles' heirs, a word at a time.
        let mut grant = vec![0u64; self.words].into_boxed_slice();
        for role in &spec.roles {
            let idx = self.role_index.get(role.as_str()).ok_or_else(|| {
                policy_error(format!(
                    "routes[{i}] ({}) names role `{role}`, which is not a declared role",
                    spec.path
                ))
            })?;
            for (g, h) in grant.iter_mut().zip(heirs[*idx].iter()) {
                *g |= h;
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
        let (step_up, challenge) = step_up_of(i, spec)?;
        let mut reference = RuleRef::new(
            i,
            format!("routes[{i}]: {methods} {} {who}{scopes_text}", spec.path).into(),
            spec.scopes.join(" ").into(),
        );
        if let Some(c) = challenge {
            reference = reference.with_step_up(c);
        }
        Ok(Rule {
            reference,
            public: spec.public,
            grant,
            any_role: spec.roles.is_empty(),
            scopes: spec.scopes.iter().map(|s| s.as_str().into()).collect(),
            step_up,
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
        crate::route::check_template(path).map_err(|e| invalid(e.to_string()))?;
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
            wildcard: wildcard_prefix(path).is_some(),
        });
        Ok(e)
    }
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

/// For each role, the bit set of itself and every role that inherits from it, transitively
/// (its heirs); refuses unknown parents and cycles. One pass in inheritance order, a word at a
/// time: O(inheritance links × roles / 64), so that a rule then costs O(listed roles × roles /
/// 64). (It was O(rules × roles²): 78 s for 5,000 roles and 5,000 rules.)
fn role_heirs(
    spec: &PolicySpec,
    role_index: &HashMap<Box<str>, usize>,
) -> Result<Vec<Box<[u64]>>, ConfigError> {
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
    // Each role after every role it inherits (a cycle is refused here).
    let order = inheritance_order(spec, &parents)?;
    let mut children = vec![Vec::new(); n];
    for (r, ps) in parents.iter().enumerate() {
        for &p in ps {
            children[p].push(r);
        }
    }
    let words = n.div_ceil(64).max(1);
    let mut heirs = vec![vec![0u64; words].into_boxed_slice(); n];
    // Heirs before their ancestors: a role's heirs are itself and its children's heirs.
    for &r in order.iter().rev() {
        let mut own = std::mem::take(&mut heirs[r]);
        own[r / 64] |= 1 << (r % 64);
        for &c in &children[r] {
            for (w, h) in own.iter_mut().zip(heirs[c].iter()) {
                *w |= h;
            }
        }
        heirs[r] = own;
    }
    Ok(heirs)
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

/// Every role after the roles it inherits; refuses an inheritance cycle, naming it
/// (`a -> b -> a`).
fn inheritance_order(spec: &PolicySpec, parents: &[Vec<usize>]) -> Result<Vec<usize>, ConfigError> {
    // 0 = unvisited, 1 = on the current path, 2 = done. Iterative: a long inheritance chain
    // must not exhaust the stack.
    let mut state = vec![0u8; parents.len()];
    let mut order = Vec::with_capacity(parents.len());
    let mut path: Vec<(usize, usize)> = Vec::new();
    for start in 0..parents.len() {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        path.push((start, 0));
        while let Some((r, next)) = path.last_mut() {
            let r = *r;
            let Some(&p) = parents[r].get(*next) else {
                state[r] = 2;
                order.push(r);
                path.pop();
                continue;
            };
            *next += 1;
            match state[p] {
                1 => {
                    let from = path.iter().position(|&(x, _)| x == p).unwrap_or(0);
                    let mut names: Vec<&str> = path[from..]
                        .iter()
                        .map(|&(x, _)| spec.roles[x].name.as_str())
                        .collect();
                    names.push(spec.roles[p].name.as_str());
                    return Err(policy_error(format!(
                        "roles inherit in a cycle: {}",
                        names.join(" -> ")
                    )));
                }
                0 => {
                    state[p] = 1;
                    path.push((p, 0));
                }
                _ => {}
            }
        }
    }
    Ok(order)
}

/// A rule's step-up requirement and its RFC 9470 §3 challenge: `Bearer
/// error="insufficient_user_authentication", error_description="…", acr_values="…",
/// max_age=…`. The `acr` values must fit the challenge: visible ASCII, no space, quote or
/// backslash (they are space-separated there).
fn step_up_of(
    i: usize,
    spec: &RuleSpec,
) -> Result<(Option<StepUp>, Option<HeaderValue>), ConfigError> {
    if spec.acr_values.is_empty() && spec.max_auth_age.is_none() {
        return Ok((None, None));
    }
    if let Some(bad) = spec.acr_values.iter().find(|v| {
        v.is_empty()
            || !v
                .bytes()
                .all(|c| (0x21..=0x7E).contains(&c) && c != b'"' && c != b'\\')
    }) {
        return Err(policy_error(format!(
            "routes[{i}]: acr value {bad:?} is not visible ASCII without spaces, quotes or backslashes"
        )));
    }
    let mut text = format!(
        "Bearer error=\"insufficient_user_authentication\", error_description=\"{}\"",
        AuthnReason::InsufficientUserAuthentication.detail()
    );
    if !spec.acr_values.is_empty() {
        text.push_str(&format!(", acr_values=\"{}\"", spec.acr_values.join(" ")));
    }
    if let Some(age) = spec.max_auth_age {
        text.push_str(&format!(", max_age={}", age.as_secs()));
    }
    let challenge = HeaderValue::try_from(text).map_err(|_| {
        policy_error(format!(
            "routes[{i}]: the step-up challenge is not a header value"
        ))
    })?;
    let step_up = StepUp {
        acr: spec.acr_values.iter().map(|v| v.as_str().into()).collect(),
        max_age: spec.max_auth_age,
    };
    Ok((Some(step_up), Some(challenge)))
}

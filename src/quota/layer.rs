//! [`QuotaLayer`], its builder and its service [`Quota`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::rule::{Counting, KeyBy, QuotaRule};
use super::store::{QuotaStore, StoreStats};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;

/// Which rate-limit fields the layer sends.
///
/// By default the IETF `RateLimit-Policy` and `RateLimit` fields go on every response of a
/// limited request, admitted or refused, and a 429 also carries `Retry-After`. The legacy
/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) fields are off unless asked for.
/// In a configuration file: `headers: {on_allowed: true, legacy: false}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitHeaders {
    pub(super) on_allowed: bool,
    pub(super) legacy: bool,
    #[serde(rename = "partition_key")]
    pub(super) partition_keys: bool,
}

impl Default for RateLimitHeaders {
    fn default() -> Self {
        Self {
            on_allowed: true,
            legacy: false,
            partition_keys: false,
        }
    }
}

impl RateLimitHeaders {
    /// The defaults: IETF fields on every response, no legacy fields.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the fields only on 429 responses (they still carry `Retry-After`).
    #[must_use]
    pub fn only_on_refusals(mut self) -> Self {
        self.on_allowed = false;
        self
    }

    /// Also sends `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` for the
    /// most constrained limit, for clients written against them.
    #[must_use]
    pub fn with_legacy(mut self) -> Self {
        self.legacy = true;
        self
    }

    /// Adds the partition key (`pk`, RateLimit fields draft-12 §4.1.3) to every `RateLimit`
    /// item: the first 12 bytes of SHA-256 of `<policy>:<key kind>:<identity>` (for example
    /// `free:subject:alice` or `per-ip:ip:203.0.113.0/24`), so a client can tell its
    /// partitions apart and predict them. The identity is hashed, never sent; but a hash of a
    /// guessable identity (an address) can be recovered by hashing guesses, so it is off by
    /// default. In a configuration file: `headers: {partition_key: true}`.
    #[must_use]
    pub fn with_partition_keys(mut self) -> Self {
        self.partition_keys = true;
        self
    }
}

/// A live view of a quota layer's stores, for operators: [`QuotaLayer::stats`], or the stack's
/// `Handles::quota`. Cheap to clone and keep.
#[derive(Clone)]
pub struct QuotaStats(Arc<dyn StoreList>);

impl QuotaStats {
    /// Each store's name ([`DEFAULT_STORE`] for the layer's own) and its figures now.
    #[must_use]
    pub fn stores(&self) -> Vec<(Arc<str>, StoreStats)> {
        self.0.stores()
    }
}

impl fmt::Debug for QuotaStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.stores()).finish()
    }
}

trait StoreList: Send + Sync + 'static {
    fn stores(&self) -> Vec<(Arc<str>, StoreStats)>;
}

impl<St: QuotaStore> StoreList for Shared<St> {
    fn stores(&self) -> Vec<(Arc<str>, StoreStats)> {
        self.stores
            .iter()
            .map(|(name, store)| (name.clone(), store.stats()))
            .collect()
    }
}

/// The name of a layer's own store in [`QuotaStats`].
pub const DEFAULT_STORE: &str = "default";

/// Each rule's store index (0: the layer's own), checking that every name a rule chooses
/// exists and that every named store is chosen by a rule.
fn rule_stores<St>(
    rules: &[QuotaRule],
    stores: &[(Arc<str>, St)],
) -> Result<Box<[usize]>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        field: "quota",
        message,
    };
    for (i, (name, _)) in stores.iter().enumerate() {
        if &**name == DEFAULT_STORE || stores[..i].iter().any(|(n, _)| n == name) {
            return Err(invalid(format!("store `{name}` is named twice")));
        }
        if !rules.iter().any(|r| r.store.as_deref() == Some(&**name)) {
            return Err(invalid(format!("store `{name}` is chosen by no rule")));
        }
    }
    rules
        .iter()
        .map(|rule| match rule.store.as_deref() {
            None | Some(DEFAULT_STORE) => Ok(0),
            Some(name) => stores
                .iter()
                .position(|(n, _)| &**n == name)
                .map(|i| i + 1)
                .ok_or_else(|| {
                    invalid(format!(
                        "rule of policy `{}`: no store is named `{name}`",
                        rule.default.name()
                    ))
                }),
        })
        .collect()
}

/// A layer's route templates and their costs: matched against a raw path, and by their text.
type CostTable = (
    matchit::Router<(Arc<str>, u64)>,
    HashMap<Arc<str>, (Arc<str>, u64)>,
);

/// The route templates a layer must recognise, with their costs: the costed ones, then those
/// rules are limited to (at cost 1 unless costed).
fn cost_table(costs: &[(String, u64)], rules: &[QuotaRule]) -> Result<CostTable, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        field: "quota",
        message,
    };
    let mut templates: Vec<(Arc<str>, u64)> = Vec::new();
    for (template, cost) in costs {
        if *cost == 0 {
            return Err(invalid(format!("route `{template}`: a cost is at least 1")));
        }
        templates.push((template.as_str().into(), *cost));
    }
    for template in rules.iter().filter_map(|r| r.routes.as_deref()).flatten() {
        if !templates.iter().any(|(t, _)| t == template) {
            templates.push((template.clone(), 1));
        }
    }
    let mut router = matchit::Router::new();
    let mut exact = HashMap::new();
    for (template, cost) in templates {
        crate::route::check_template(&template)?;
        router
            .insert(&*template, (template.clone(), cost))
            .map_err(|e| ConfigError::Route {
                template: template.to_string(),
                message: e.to_string(),
            })?;
        exact.insert(template.clone(), (template, cost));
    }
    Ok((router, exact))
}

/// The one check of prefix lengths, for rules built in code and from a file alike.
fn check_prefixes(rules: &[QuotaRule]) -> Result<(), ConfigError> {
    for (i, rule) in rules.iter().enumerate() {
        if let KeyBy::ClientIp {
            v4_prefix,
            v6_prefix,
        } = rule.key
            && (v4_prefix > 32 || v6_prefix > 128)
        {
            return Err(ConfigError::Invalid {
                field: "quota",
                message: format!(
                    "rule {i} (policy `{}`): prefix lengths are at most 32 (IPv4) and 128 \
                         (IPv6), not /{v4_prefix} and /{v6_prefix}",
                    rule.default.name()
                ),
            });
        }
    }
    Ok(())
}

/// Builds a [`QuotaLayer`]; see [`QuotaLayer::builder`].
#[must_use]
pub struct QuotaBuilder<St> {
    store: St,
    /// Named stores rules may choose with [`QuotaRule::in_store`].
    stores: Vec<(Arc<str>, St)>,
    rules: Vec<QuotaRule>,
    costs: Vec<(String, u64)>,
    clock: Arc<dyn Clock>,
    headers: RateLimitHeaders,
}

impl<St> fmt::Debug for QuotaBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaBuilder")
            .field("rules", &self.rules)
            .field("costs", &self.costs)
            .finish_non_exhaustive()
    }
}

impl<St: QuotaStore> QuotaBuilder<St> {
    /// Adds a rule. Each rule is one atomic check of its key; a store that must wait for I/O
    /// (Redis) gets all of a request's checks at once, so they cost one round trip of latency.
    /// A request refused by one rule stays charged by the others, as it would be by separate
    /// limiters; the first refusing rule, in the order added, answers.
    pub fn rule(mut self, rule: QuotaRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds a store under `name`, for the rules that choose it with [`QuotaRule::in_store`]
    /// (the others count in the layer's store). Each named store must be chosen by a rule.
    pub fn store(mut self, name: impl Into<Arc<str>>, store: St) -> Self {
        self.stores.push((name.into(), store));
        self
    }

    /// Requests to the route `template` (axum syntax, such as `/v1/reports/{id}`) cost `cost`
    /// units instead of 1 in the rules that count every request.
    pub fn cost(mut self, template: impl Into<String>, cost: u64) -> Self {
        self.costs.push((template.into(), cost));
        self
    }

    /// Reads time from `clock` (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Which rate-limit fields to send (default [`RateLimitHeaders::new`]).
    pub fn headers(mut self, headers: RateLimitHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] without rules, for a zero cost or one larger than a policy of
    /// a rule can ever admit, and [`ConfigError::Route`] for a bad or duplicate template.
    pub fn build(self) -> Result<QuotaLayer<St>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "quota",
            message,
        };
        if self.rules.is_empty() {
            return Err(invalid("a quota layer needs at least one rule".into()));
        }
        // The first policy `QuotaPolicy::new` could not build, with `try_new`'s error.
        if let Some(e) = self
            .rules
            .iter()
            .flat_map(QuotaRule::policies)
            .find_map(|p| p.error())
        {
            return Err(e.clone());
        }
        check_prefixes(&self.rules)?;
        let (router, exact) = cost_table(&self.costs, &self.rules)?;
        let max_cost = exact.values().map(|(_, c)| *c).max().unwrap_or(1);
        for rule in &self.rules {
            if rule.routes.as_ref().is_some_and(|r| r.is_empty()) {
                return Err(invalid(
                    "a rule limited to routes needs at least one".into(),
                ));
            }
            // The dearest route the rule sees: every costed route, or those it is limited to.
            let cost = match (&rule.counting, &rule.routes) {
                (Counting::Responses(_), _) => 1,
                (Counting::Every, None) => max_cost,
                (Counting::Every, Some(routes)) => routes
                    .iter()
                    .filter_map(|r| exact.get(r).map(|(_, c)| *c))
                    .max()
                    .unwrap_or(1),
            };
            for policy in rule.policies() {
                if policy.capacity() < cost {
                    return Err(invalid(format!(
                        "policy `{}` admits at most {} at once, less than the cost {cost} of a route",
                        policy.name(),
                        policy.capacity()
                    )));
                }
            }
        }
        let rule_store = rule_stores(&self.rules, &self.stores)?;
        let mut stores = vec![(Arc::<str>::from(DEFAULT_STORE), self.store)];
        stores.extend(self.stores);
        Ok(QuotaLayer {
            shared: Arc::new(Shared {
                stores: stores.into(),
                rule_store,
                keyed_by_route: self.rules.iter().any(|r| matches!(r.key, KeyBy::Route)),
                rules: self.rules.into(),
                router,
                exact,
                clock: self.clock,
                headers: self.headers,
                refund_warned: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

/// Limits how many requests each caller may make: see the [module docs](crate::quota).
///
/// Put one before authentication for per-address limits (floods, failed-authentication
/// limits) and one after it for per-key, per-user and per-tenant limits; the
/// [`Palisade`](crate::Palisade) builder does so with `limit_clients` and `limit_principals`.
pub struct QuotaLayer<St> {
    shared: Arc<Shared<St>>,
}

pub(super) struct Shared<St> {
    /// The layer's store first (named [`DEFAULT_STORE`]), then the named ones.
    pub(super) stores: Box<[(Arc<str>, St)]>,
    /// Each rule's store: an index into `stores`.
    pub(super) rule_store: Box<[usize]>,
    pub(super) rules: Box<[QuotaRule]>,
    /// Whether a rule keys by route (then an unknown template still needs its name).
    pub(super) keyed_by_route: bool,
    pub(super) router: matchit::Router<(Arc<str>, u64)>,
    pub(super) exact: HashMap<Arc<str>, (Arc<str>, u64)>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) headers: RateLimitHeaders,
    /// Whether a failed refund was logged at `warn` already.
    pub(super) refund_warned: std::sync::atomic::AtomicBool,
}

impl<St: QuotaStore> QuotaLayer<St> {
    /// Starts a layer counting in `store`.
    pub fn builder(store: St) -> QuotaBuilder<St> {
        QuotaBuilder {
            store,
            stores: Vec::new(),
            rules: Vec::new(),
            costs: Vec::new(),
            clock: Arc::new(SystemClock),
            headers: RateLimitHeaders::default(),
        }
    }

    /// A layer without rules, which admits everything (what a configuration without a quota
    /// stage builds, so that its stack has one type).
    #[cfg_attr(not(feature = "config"), allow(dead_code))]
    pub(crate) fn empty(store: St) -> Self {
        Self {
            shared: Arc::new(Shared {
                stores: Box::new([(Arc::from(DEFAULT_STORE), store)]),
                rule_store: Box::new([]),
                rules: Box::new([]),
                keyed_by_route: false,
                router: matchit::Router::new(),
                exact: HashMap::new(),
                clock: Arc::new(SystemClock),
                headers: RateLimitHeaders::default(),
                refund_warned: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The layer's store (the one rules count in unless they choose a named one).
    #[must_use]
    pub fn store(&self) -> &St {
        &self.shared.stores[0].1
    }

    /// A live view of the layer's stores' figures (keys held, evictions, failures), for
    /// operators: see [`QuotaStats`].
    #[must_use]
    pub fn stats(&self) -> QuotaStats {
        QuotaStats(self.shared.clone())
    }

    /// Whether the layer has a rule (one a configuration builds for an empty stage has none).
    #[must_use]
    pub fn has_rules(&self) -> bool {
        !self.shared.rules.is_empty()
    }

    /// Whether a rule keys by the principal (so the layer belongs after authentication).
    #[must_use]
    pub fn needs_principal(&self) -> bool {
        self.shared.rules.iter().any(|r| r.key.needs_principal())
    }
}

impl<St> Clone for QuotaLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<St> fmt::Debug for QuotaLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaLayer")
            .field("rules", &self.shared.rules)
            .field("store", &std::any::type_name::<St>())
            .finish_non_exhaustive()
    }
}

impl<S, St> Layer<S> for QuotaLayer<St> {
    type Service = Quota<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Quota {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`QuotaLayer`].
pub struct Quota<S, St> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared<St>>,
}

impl<S, St> Quota<S, St> {
    crate::macros::define_inner_service_accessors!();
}

impl<S: Clone, St> Clone for Quota<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for Quota<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{KeyBy, Limit, MemoryStore, QuotaPolicy};

    fn rule() -> QuotaRule {
        let policy = QuotaPolicy::new("p", [Limit::per_second(1)]);
        QuotaRule::new(KeyBy::client_ip(), policy)
    }

    fn error(b: QuotaBuilder<MemoryStore>) -> String {
        b.build().map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn named_stores_are_chosen_by_rules_and_every_name_exists() {
        let layer = QuotaLayer::builder(MemoryStore::new())
            .store("edge", MemoryStore::with_max_keys(10))
            .rule(rule().in_store("edge"))
            .rule(rule())
            .build()
            .unwrap();
        let names: Vec<_> = layer.stats().stores().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [Arc::from(DEFAULT_STORE), Arc::from("edge")]);
        assert_eq!(&*layer.shared.rule_store, [1, 0]);

        let unknown = QuotaLayer::builder(MemoryStore::new()).rule(rule().in_store("edge"));
        assert!(error(unknown).contains("no store is named `edge`"));
        let unused = QuotaLayer::builder(MemoryStore::new())
            .store("edge", MemoryStore::new())
            .rule(rule());
        assert!(error(unused).contains("store `edge` is chosen by no rule"));
        let twice = QuotaLayer::builder(MemoryStore::new())
            .store("edge", MemoryStore::new())
            .store("edge", MemoryStore::new())
            .rule(rule().in_store("edge"));
        assert!(error(twice).contains("store `edge` is named twice"));
        let reserved = QuotaLayer::builder(MemoryStore::new())
            .store(DEFAULT_STORE, MemoryStore::new())
            .rule(rule().in_store(DEFAULT_STORE));
        assert!(error(reserved).contains("store `default` is named twice"));
    }

    #[test]
    fn a_policy_new_could_not_build_fails_the_build_with_the_same_error() {
        let limits = [Limit::per_second(1), Limit::per_minute(100)];
        let expected = QuotaPolicy::try_new("p", limits.clone())
            .unwrap_err()
            .to_string();
        let b = QuotaLayer::builder(MemoryStore::new())
            .rule(rule())
            .rule(QuotaRule::new(
                KeyBy::Subject,
                QuotaPolicy::new("p", limits),
            ))
            .rule(QuotaRule::new(KeyBy::Subject, QuotaPolicy::new("", [])));
        assert_eq!(error(b), expected);
        assert!(expected.contains("`quota policy`") && expected.contains("Limit::named"));
    }
}

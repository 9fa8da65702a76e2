//! [`QuotaLayer`], its rules ([`QuotaRule`], [`KeyBy`], [`TierBy`], [`Counting`]) and its
//! service [`Quota`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::HeaderValue;
use http::request::Parts;
use http::{Extensions, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::limit::{LimitState, Verdict};
use super::policy::{KeyPart, QuotaKey, QuotaPolicy, mask};
use super::store::{QuotaMode, QuotaStore};
use crate::body::{ResponseBody, refusal as refusal_response};
use crate::client_ip::{ClientIp, peer_addr_of};
use crate::clock::{Clock, SystemClock};
use crate::error::{Chain, ConfigError};
use crate::outcome::{LimitOutcome, QuotaOutcome};
use crate::principal::Principal;
use crate::rejection::{AuthnReason, Rejection, TooManyRequests, UnavailableReason};
use crate::route::matched_template;
use crate::telemetry::{self, DecisionTrace};

pub use crate::rejection::ratelimit::{RATELIMIT, RATELIMIT_POLICY};
use crate::rejection::ratelimit::{legacy_fields, write_item};

/// Whose bucket a request counts against.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client address from [`ClientIp`] (so forwarded headers count only from trusted
    /// proxies), grouped by prefix: IPv4 by `v4_prefix` bits, IPv6 by `v6_prefix` bits (one
    /// customer usually holds a whole /64, and an attacker as many addresses in it as they
    /// like). Without a `ClientIp` the peer address is used; without that, one shared bucket.
    ClientIp {
        /// Prefix length for IPv4 (default 32).
        v4_prefix: u8,
        /// Prefix length for IPv6 (default 64).
        v6_prefix: u8,
    },
    /// The API key id of the principal.
    KeyId,
    /// The principal's subject.
    Subject,
    /// The principal's tenant.
    Tenant,
    /// The route template: one bucket per route shared by every caller (protects an
    /// expensive endpoint as a whole). Requests whose route is unknown share one bucket.
    Route,
    /// A host function of the request head; `None` falls back to the client address.
    Custom(KeyFn),
}

impl KeyBy {
    /// The client address, IPv4 per address and IPv6 per /64.
    #[must_use]
    pub const fn client_ip() -> Self {
        Self::ClientIp {
            v4_prefix: 32,
            v6_prefix: 64,
        }
    }

    /// A key computed by `f` from the request head.
    pub fn custom(f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Custom(KeyFn(Arc::new(f)))
    }

    /// Whether the key comes from the authenticated principal (so the rule belongs after
    /// authentication).
    #[must_use]
    pub fn needs_principal(&self) -> bool {
        matches!(self, Self::KeyId | Self::Subject | Self::Tenant)
    }

    fn name(&self) -> &'static str {
        match self {
            Self::ClientIp { .. } => "client_ip",
            Self::KeyId => "key_id",
            Self::Subject => "subject",
            Self::Tenant => "tenant",
            Self::Route => "route",
            Self::Custom(_) => "custom",
        }
    }
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp {
                v4_prefix,
                v6_prefix,
            } => write!(f, "ClientIp(/{v4_prefix}, /{v6_prefix})"),
            other => f.write_str(other.name()),
        }
    }
}

/// A host function that keys requests (see [`KeyBy::custom`]).
#[derive(Clone)]
pub struct KeyFn(Arc<KeyFnInner>);

type KeyFnInner = dyn Fn(&Parts) -> Option<String> + Send + Sync;

impl fmt::Debug for KeyFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFn")
    }
}

/// How a rule picks the principal's tier among its [`QuotaRule::tier`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TierBy {
    /// The principal's [`tier`](Principal::tier) (default).
    #[default]
    Tier,
    /// The first tier, in the order they were added, named like one of the principal's roles.
    Role,
}

/// Which requests a rule counts.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Counting {
    /// Every request, charged (with its route's cost) before it runs (default).
    #[default]
    Every,
    /// Only requests whose response matches: checked before the request runs (a caller over
    /// the limit is refused) and charged one unit after the response, when it matches. For
    /// limits on outcomes, such as failed authentications per client address.
    Responses(ResponseFilter),
}

impl Counting {
    /// Counts failed authentications: responses refused by the authn layer for a bad
    /// credential (not for a missing one). Put the rule before authentication, keyed by client
    /// address: after `n` failures the next attempt is refused even with a valid credential,
    /// which stops credential stuffing and key guessing.
    #[must_use]
    pub fn failed_authentication() -> Self {
        Self::Responses(ResponseFilter(Arc::new(|_, ext| {
            matches!(
                ext.get::<Rejection>(),
                Some(Rejection::Unauthenticated(f))
                    if !matches!(f.reason(), AuthnReason::MissingCredentials)
            )
        })))
    }

    /// Counts responses for which `f(status, extensions)` is true.
    pub fn responses(f: impl Fn(StatusCode, &Extensions) -> bool + Send + Sync + 'static) -> Self {
        Self::Responses(ResponseFilter(Arc::new(f)))
    }
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every => f.write_str("Every"),
            Self::Responses(_) => f.write_str("Responses"),
        }
    }
}

pub use crate::outcome::QuotaShadow;

/// A predicate on a response (see [`Counting::responses`]).
#[derive(Clone)]
pub struct ResponseFilter(Arc<FilterFn>);

type FilterFn = dyn Fn(StatusCode, &Extensions) -> bool + Send + Sync;

impl fmt::Debug for ResponseFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFilter")
    }
}

/// One limit rule: a key, a policy (or one per tier), and what it counts.
///
/// Buckets belong to a policy and a caller (see [`QuotaKey`]): two rules with the same policy
/// and the same kind of key count into the same buckets. Give a rule its own policy when it
/// must count apart.
///
/// ```
/// use palisade::quota::{KeyBy, Limit, QuotaPolicy, QuotaRule, TierBy, Window};
///
/// let free = QuotaPolicy::new("free", [Limit::per_second(5), Limit::quota(10_000, Window::Day)])?;
/// let pro = QuotaPolicy::new("pro", [Limit::per_second(100), Limit::quota(1_000_000, Window::Day)])?;
/// let per_user = QuotaRule::new(KeyBy::Subject, free) // the default tier
///     .tier("pro", pro)
///     .tier_by(TierBy::Tier);
/// # let _ = per_user;
/// # Ok::<(), palisade::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct QuotaRule {
    key: KeyBy,
    default: QuotaPolicy,
    tiers: Vec<(Arc<str>, QuotaPolicy)>,
    tier_by: TierBy,
    counting: Counting,
    /// The route templates the rule is limited to (`None`: every route).
    routes: Option<Box<[Arc<str>]>>,
    /// Report only: count, and report would-be refusals, but never refuse.
    shadow: bool,
    /// Client networks the rule does not apply to.
    exempt: Box<[ipnet::IpNet]>,
    /// Whether the rule has logged a request without a client address (logged once).
    no_address_logged: Arc<std::sync::atomic::AtomicBool>,
}

impl QuotaRule {
    /// A rule keying requests by `key` under `policy` (the policy of every principal when no
    /// tier is added, else of those without a known tier, and of anonymous callers).
    #[must_use]
    pub fn new(key: KeyBy, policy: QuotaPolicy) -> Self {
        Self {
            key,
            default: policy,
            tiers: Vec::new(),
            tier_by: TierBy::Tier,
            counting: Counting::Every,
            routes: None,
            shadow: false,
            exempt: Box::new([]),
            no_address_logged: Arc::default(),
        }
    }

    /// Exempts clients in these networks from the rule (your own monitoring, a partner's
    /// fixed addresses). The address is the one [`ClientIp`] resolved, so a forwarded header
    /// counts only from a trusted proxy and a client cannot claim to be exempt.
    #[must_use]
    pub fn exempt(mut self, networks: impl IntoIterator<Item = ipnet::IpNet>) -> Self {
        self.exempt = networks.into_iter().collect();
        self
    }

    /// Report only: the rule counts as usual, but a request it would refuse goes through, with
    /// a [`QuotaShadow`] in the response extensions (for audit) and an `info` log line. For
    /// trying a new limit on live traffic before enforcing it; its fields are not sent.
    #[must_use]
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }

    /// Applies the rule only to requests for these route templates (axum syntax, such as
    /// `/v1/login` or `/v1/orders/{id}`), for a stricter limit on some endpoints: a login
    /// route at 5 a minute per address beside 50 a second for everything else.
    #[must_use]
    pub fn on_routes<I, T>(mut self, templates: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Arc<str>>,
    {
        self.routes = Some(templates.into_iter().map(Into::into).collect());
        self
    }

    fn applies_to(&self, route: Option<&Arc<str>>, parts: &Parts) -> bool {
        let on_route = match &self.routes {
            None => true,
            Some(filter) => route.is_some_and(|r| filter.iter().any(|t| **t == **r)),
        };
        on_route
            && (self.exempt.is_empty()
                || !client_addr(parts)
                    .is_some_and(|ip| self.exempt.iter().any(|n| n.contains(&ip))))
    }

    /// Applies `policy` to principals of tier `name` (see [`tier_by`](Self::tier_by)).
    #[must_use]
    pub fn tier(mut self, name: impl Into<Arc<str>>, policy: QuotaPolicy) -> Self {
        self.tiers.push((name.into(), policy));
        self
    }

    /// How the tier is chosen (default [`TierBy::Tier`]).
    #[must_use]
    pub fn tier_by(mut self, by: TierBy) -> Self {
        self.tier_by = by;
        self
    }

    /// What the rule counts (default [`Counting::Every`]).
    #[must_use]
    pub fn counting(mut self, counting: Counting) -> Self {
        self.counting = counting;
        self
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &KeyBy {
        &self.key
    }

    fn policies(&self) -> impl Iterator<Item = &QuotaPolicy> {
        std::iter::once(&self.default).chain(self.tiers.iter().map(|(_, p)| p))
    }

    fn policy_for(&self, ext: &Extensions) -> &QuotaPolicy {
        if self.tiers.is_empty() {
            return &self.default;
        }
        let Some(p) = ext.get::<Principal>().filter(|p| !p.is_anonymous()) else {
            return &self.default;
        };
        let found = match self.tier_by {
            TierBy::Tier => p
                .tier()
                .and_then(|t| self.tiers.iter().find(|(n, _)| **n == *t)),
            TierBy::Role => self.tiers.iter().find(|(n, _)| p.has_role(n)),
        };
        found.map_or(&self.default, |(_, policy)| policy)
    }

    fn key_for(&self, parts: &Parts, policy: &QuotaPolicy, route: Option<&Arc<str>>) -> QuotaKey {
        let principal = || {
            parts
                .extensions
                .get::<Principal>()
                .filter(|p| !p.is_anonymous())
        };
        let part = match &self.key {
            KeyBy::ClientIp { .. } => None,
            KeyBy::KeyId => principal()
                .filter(|p| p.key_id().is_some())
                .map(|p| KeyPart::KeyId(p.clone())),
            KeyBy::Subject => principal().map(|p| KeyPart::Subject(p.clone())),
            KeyBy::Tenant => principal()
                .filter(|p| p.tenant().is_some())
                .map(|p| KeyPart::Tenant(p.clone())),
            KeyBy::Route => Some(match route {
                Some(r) => KeyPart::Route(r.clone()),
                None => KeyPart::Unknown,
            }),
            KeyBy::Custom(f) => (f.0)(parts).map(|s| KeyPart::Custom(s.into())),
        };
        let part = part.unwrap_or_else(|| self.ip_part(parts));
        QuotaKey::new(policy.clone(), part)
    }

    /// The client address part of a key: the rule's prefixes, or /32 and /64 when the rule is
    /// keyed otherwise and falls back to the address.
    fn ip_part(&self, parts: &Parts) -> KeyPart {
        let (v4, v6) = match self.key {
            KeyBy::ClientIp {
                v4_prefix,
                v6_prefix,
            } => (v4_prefix, v6_prefix),
            _ => (32, 64),
        };
        match client_addr(parts) {
            Some(ip) => {
                let prefix = if ip.is_ipv4() { v4 } else { v6 };
                KeyPart::Ip(mask(ip, prefix), prefix)
            }
            None => {
                if !self
                    .no_address_logged
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(
                        layer = "quota",
                        policy = self.default.name(),
                        "a request has no client address, so every caller shares one bucket of \
                         this per-address rule: serve axum with \
                         `into_make_service_with_connect_info::<SocketAddr>()`, or give hyper \
                         requests a `ConnectInfo` or `ClientIp` (docs/client-ip.md); logged once"
                    );
                }
                KeyPart::Unknown
            }
        }
    }
}

/// The client address: [`ClientIp`] when the stack resolved it, else the peer address
/// (never a forwarded header), IPv4-mapped IPv6 addresses as IPv4.
fn client_addr(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ClientIp>()
        .map(|c| c.ip())
        .or_else(|| peer_addr_of(&parts.extensions).map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// Which rate-limit fields the layer sends.
///
/// By default the IETF `RateLimit-Policy` and `RateLimit` fields go on every response of a
/// limited request, admitted or refused, and a 429 also carries `Retry-After`. The legacy
/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) fields are off unless asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    on_allowed: bool,
    legacy: bool,
}

impl Default for RateLimitHeaders {
    fn default() -> Self {
        Self {
            on_allowed: true,
            legacy: false,
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
}

/// Builds a [`QuotaLayer`]; see [`QuotaLayer::builder`].
#[must_use]
pub struct QuotaBuilder<St> {
    store: St,
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
        // Every template the layer must recognise: the costed ones, then those rules are
        // limited to (at cost 1 unless costed).
        let mut templates: Vec<(Arc<str>, u64)> = Vec::new();
        for (template, cost) in &self.costs {
            if *cost == 0 {
                return Err(invalid(format!("route `{template}`: a cost is at least 1")));
            }
            templates.push((template.as_str().into(), *cost));
        }
        for template in self
            .rules
            .iter()
            .filter_map(|r| r.routes.as_deref())
            .flatten()
        {
            if !templates.iter().any(|(t, _)| t == template) {
                templates.push((template.clone(), 1));
            }
        }
        let mut router = matchit::Router::new();
        let mut exact = HashMap::new();
        for (template, cost) in templates {
            router
                .insert(&*template, (template.clone(), cost))
                .map_err(|e| ConfigError::Route {
                    template: template.to_string(),
                    message: e.to_string(),
                })?;
            exact.insert(template.clone(), (template, cost));
        }
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
        Ok(QuotaLayer {
            shared: Arc::new(Shared {
                store: self.store,
                keyed_by_route: self.rules.iter().any(|r| matches!(r.key, KeyBy::Route)),
                rules: self.rules.into(),
                router,
                exact,
                clock: self.clock,
                headers: self.headers,
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

struct Shared<St> {
    store: St,
    rules: Box<[QuotaRule]>,
    /// Whether a rule keys by route (then an unknown template still needs its name).
    keyed_by_route: bool,
    router: matchit::Router<(Arc<str>, u64)>,
    exact: HashMap<Arc<str>, (Arc<str>, u64)>,
    clock: Arc<dyn Clock>,
    headers: RateLimitHeaders,
}

impl<St: QuotaStore> QuotaLayer<St> {
    /// Starts a layer counting in `store`.
    pub fn builder(store: St) -> QuotaBuilder<St> {
        QuotaBuilder {
            store,
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
                store,
                rules: Box::new([]),
                keyed_by_route: false,
                router: matchit::Router::new(),
                exact: HashMap::new(),
                clock: Arc::new(SystemClock),
                headers: RateLimitHeaders::default(),
            }),
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.shared.store
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
    inner: S,
    shared: Arc<Shared<St>>,
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

const INLINE_POLICIES: usize = 4;

/// What the rules said about one request so far.
struct Tally {
    /// Items of the `RateLimit` field for the rules that count every request.
    ratelimit: String,
    /// The `RateLimit-Policy` values of those rules (inline for the usual few).
    policies: [Option<HeaderValue>; INLINE_POLICIES],
    more_policies: Vec<HeaderValue>,
    /// What this stage decided, typed: mode, shadow refusal, each limit's state. Merged into
    /// the response's [`QuotaOutcome`] whether or not the headers are sent.
    outcome: QuotaOutcome,
    /// Keys to charge when the response matches their rule's filter.
    first_charge: Option<(usize, QuotaKey)>,
    charges: Vec<(usize, QuotaKey)>,
}

impl Tally {
    const fn new() -> Self {
        Self {
            ratelimit: String::new(),
            policies: [const { None }; INLINE_POLICIES],
            more_policies: Vec::new(),
            outcome: QuotaOutcome::new(),
            first_charge: None,
            charges: Vec::new(),
        }
    }

    fn record(&mut self, policy: &QuotaPolicy, verdict: &Verdict, headers: RateLimitHeaders) {
        self.outcome.note_mode(verdict.mode());
        if verdict.mode() == QuotaMode::FailOpen {
            return;
        }
        record_limits(&mut self.outcome, policy, verdict);
        if !headers.on_allowed {
            return;
        }
        match self.policies.iter_mut().find(|p| p.is_none()) {
            Some(slot) => *slot = Some(policy.header().clone()),
            None => self.more_policies.push(policy.header().clone()),
        }
        if self.ratelimit.capacity() == 0 {
            self.ratelimit.reserve(64);
        }
        write_items(&mut self.ratelimit, policy, verdict.states());
    }

    /// Whether the tally has nothing to add to the response.
    fn is_trivial(&self) -> bool {
        self.outcome.is_empty()
            && self.ratelimit.is_empty()
            && self.first_charge.is_none()
            && self.charges.is_empty()
    }

    fn apply<B>(&mut self, res: &mut Response<B>, headers: RateLimitHeaders) {
        let part = mem::take(&mut self.outcome);
        let tightest = if part.is_empty() {
            None
        } else {
            // The legacy fields name the tightest limit of every stage so far, read from the
            // typed outcome (never from another stage's header).
            QuotaOutcome::merge_into(res.extensions_mut(), part)
                .tightest()
                .map(|l| (l.capacity, l.remaining, l.reset))
        };
        if !headers.on_allowed || self.ratelimit.is_empty() {
            return;
        }
        let h = res.headers_mut();
        for p in self.policies.iter_mut().filter_map(Option::take) {
            h.append(&RATELIMIT_POLICY, p);
        }
        for p in self.more_policies.drain(..) {
            h.append(&RATELIMIT_POLICY, p);
        }
        if let Ok(v) = HeaderValue::try_from(mem::take(&mut self.ratelimit)) {
            h.append(&RATELIMIT, v);
        }
        if headers.legacy {
            if let Some((cap, remaining, reset)) = tightest {
                for (name, value) in legacy_fields(cap, remaining, reset) {
                    h.insert(name, value);
                }
            }
        }
    }
}

/// Adds each limit's state of `verdict` to `outcome`.
fn record_limits(outcome: &mut QuotaOutcome, policy: &QuotaPolicy, verdict: &Verdict) {
    for ((limit, item), state) in policy
        .limits()
        .iter()
        .zip(policy.items())
        .zip(verdict.states())
    {
        outcome.push_limit(LimitOutcome::new(
            item.clone(),
            limit.capacity(),
            state.remaining(),
            state.reset(),
        ));
    }
}

/// Appends the `RateLimit` items of `policy`'s limits.
fn write_items(out: &mut String, policy: &QuotaPolicy, states: &[LimitState]) {
    for (item, state) in policy.item_names().zip(states) {
        write_item(out, item, state.remaining(), state.reset());
    }
}

fn too_many(policy: &QuotaPolicy, verdict: &Verdict, headers: RateLimitHeaders) -> Rejection {
    let violated: Arc<[Box<str>]> = policy
        .item_names()
        .zip(verdict.states())
        .filter(|(_, s)| s.exceeded())
        .map(|(n, _)| n.into())
        .collect();
    let mut items = String::new();
    write_items(&mut items, policy, verdict.states());
    let mut fields = vec![(RATELIMIT_POLICY.clone(), policy.header().clone())];
    if let Ok(v) = HeaderValue::try_from(items) {
        fields.push((RATELIMIT.clone(), v));
    }
    if headers.legacy {
        if let Some((limit, state)) = policy
            .limits()
            .iter()
            .zip(verdict.states())
            .find(|(_, s)| s.exceeded())
        {
            fields.extend(
                legacy_fields(limit.capacity(), state.remaining(), verdict.retry_after())
                    .map(|(name, value)| (name.clone(), value)),
            );
        }
    }
    Rejection::TooManyRequests(TooManyRequests::new(
        policy.name_arc().clone(),
        violated,
        verdict.retry_after(),
        fields.into(),
    ))
}

fn refuse<B>(
    rejection: &Rejection,
    outcome: QuotaOutcome,
    trace: DecisionTrace,
    extensions: &http::Extensions,
) -> Response<ResponseBody<B>> {
    let mut res = refusal_response("quota", rejection, trace, extensions);
    if !outcome.is_empty() {
        QuotaOutcome::merge_into(res.extensions_mut(), outcome);
    }
    res
}

impl<St> Shared<St> {
    /// The route template of a request and its cost: axum's matched template when present,
    /// else the cost table's own match of the path.
    fn route(&self, parts: &Parts) -> (Option<Arc<str>>, u64) {
        let keyed_by_route = self.keyed_by_route;
        if self.exact.is_empty() && !keyed_by_route {
            return (None, 1);
        }
        if let Some(t) = matched_template(&parts.extensions) {
            return match self.exact.get(t) {
                Some((t, cost)) => (Some(t.clone()), *cost),
                // A template no cost or rule names: only a route key needs its name.
                None if keyed_by_route => (Some(t.into()), 1),
                None => (None, 1),
            };
        }
        match self.router.at(parts.uri.path()) {
            Ok(m) => (Some(m.value.0.clone()), m.value.1),
            Err(_) => (None, 1),
        }
    }
}

/// Where the synchronous pass stopped.
enum Pass {
    /// Every rule admitted the request.
    Admitted,
    /// A rule refused it, or the store failed.
    Refused(Rejection, QuotaOutcome),
    /// Rule `i` needs the store's asynchronous check.
    Pending(usize),
}

impl<St: QuotaStore> Shared<St> {
    /// One rule's check inputs: its policy, key, cost and whether it consumes now.
    fn prepare(
        &self,
        i: usize,
        parts: &Parts,
        route: Option<&Arc<str>>,
        cost: u64,
    ) -> (QuotaKey, u64, bool) {
        let rule = &self.rules[i];
        let policy = rule.policy_for(&parts.extensions);
        let key = rule.key_for(parts, policy, route);
        match rule.counting {
            Counting::Every => (key, cost, true),
            Counting::Responses(_) => (key, 1, false),
        }
    }

    /// Folds one rule's verdict into the tally, or returns the refusal.
    fn settle(
        &self,
        i: usize,
        key: QuotaKey,
        result: Result<Verdict, crate::StoreError>,
        tally: &mut Tally,
    ) -> Result<(), Rejection> {
        let verdict = match result {
            Ok(v) => v,
            Err(e) => {
                telemetry::backend_error("quota_store", "error");
                tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed: refusing");
                return Err(Rejection::unavailable(
                    "quota",
                    UnavailableReason::QuotaStore,
                ));
            }
        };
        if verdict.mode() != QuotaMode::Enforced {
            telemetry::quota_degraded(verdict.mode().code());
        }
        let rule = &self.rules[i];
        if !verdict.is_allowed() {
            tally.outcome.note_mode(verdict.mode());
            if !rule.shadow {
                // The refusal tells the client of this policy's limits alone.
                let mut told = QuotaOutcome::new();
                told.note_mode(tally.outcome.mode());
                record_limits(&mut told, key.policy(), &verdict);
                tally.outcome = told;
                return Err(too_many(key.policy(), &verdict, self.headers));
            }
            tracing::info!(
                layer = "quota",
                policy = key.policy().name(),
                key = key.kind(),
                "shadow quota rule would refuse"
            );
            tally.outcome.note_shadow(QuotaShadow {
                policy: key.policy().name_arc().clone(),
                retry_after: verdict.retry_after(),
            });
            return Ok(());
        }
        match rule.counting {
            Counting::Every if rule.shadow => tally.outcome.note_mode(verdict.mode()),
            Counting::Every => tally.record(key.policy(), &verdict, self.headers),
            Counting::Responses(_) => {
                tally.outcome.note_mode(verdict.mode());
                // The usual single charge (a failed-authentication rule) needs no vector.
                if tally.first_charge.is_none() {
                    tally.first_charge = Some((i, key));
                } else {
                    tally.charges.push((i, key));
                }
            }
        }
        Ok(())
    }

    fn sync_pass(
        &self,
        parts: &Parts,
        route: Option<&Arc<str>>,
        cost: u64,
        tally: &mut Tally,
    ) -> Pass {
        let now = self.clock.now();
        for i in 0..self.rules.len() {
            if !self.rules[i].applies_to(route, parts) {
                continue;
            }
            let (key, cost, consume) = self.prepare(i, parts, route, cost);
            let Some(result) = self.store.check_now(&key, cost, now, consume) else {
                return Pass::Pending(i);
            };
            if let Err(r) = self.settle(i, key, result, tally) {
                return Pass::Refused(r, mem::take(&mut tally.outcome));
            }
        }
        Pass::Admitted
    }

    /// Whether rule `i` counts `res`.
    fn counts<B>(&self, i: usize, res: &Response<B>) -> bool {
        match &self.rules[i].counting {
            Counting::Responses(f) => (f.0)(res.status(), res.extensions()),
            Counting::Every => false,
        }
    }

    /// The charges due for a response: the keys whose rule's filter matches it.
    fn due<B>(&self, res: &Response<B>, tally: &mut Tally) -> Vec<QuotaKey> {
        let first = tally.first_charge.take();
        first
            .into_iter()
            .chain(tally.charges.drain(..))
            .filter(|(i, _)| self.counts(*i, res))
            .map(|(_, key)| key)
            .collect()
    }

    /// Charges `key` one unit now, with a store that answers at once.
    fn charge_now(&self, key: &QuotaKey) {
        if let Some(Err(e)) = self.store.check_now(key, 1, self.clock.now(), true) {
            tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed to count a response");
        }
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Quota<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    St: QuotaStore,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let (parts, body) = req.into_parts();
        let (route, cost) = shared.route(&parts);
        let mut tally = Tally::new();
        let trace = DecisionTrace::start("quota");
        let pass = trace
            .span()
            .in_scope(|| shared.sync_pass(&parts, route.as_ref(), cost, &mut tally));
        let start = match pass {
            Pass::Admitted => {
                trace.allowed(parts.extensions.get::<Principal>());
                let future = self.inner.call(Request::from_parts(parts, body));
                let charge = tally.first_charge.take();
                return ResponseFuture {
                    kind: Kind::Inner {
                        future,
                        charge,
                        // Nothing to add to the response: carry nothing (no allocation).
                        tally: (!tally.is_trivial()).then(|| Box::new(tally)),
                        shared: shared.clone(),
                    },
                };
            }
            Pass::Refused(rejection, outcome) => {
                return ResponseFuture {
                    kind: Kind::Refused {
                        response: Some(refuse(&rejection, outcome, trace, &parts.extensions)),
                    },
                };
            }
            Pass::Pending(i) => i,
        };
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let shared = shared.clone();
        ResponseFuture {
            kind: Kind::Boxed {
                future: Box::pin(async move {
                    // The remaining rules go to the store at once: one round trip of latency
                    // for all of them, not one each.
                    let now = shared.clock.now();
                    let checks: Vec<_> = (start..shared.rules.len())
                        .filter(|&i| shared.rules[i].applies_to(route.as_ref(), &parts))
                        .map(|i| (i, shared.prepare(i, &parts, route.as_ref(), cost)))
                        .collect();
                    let results = join_all(checks.iter().map(|(_, (key, cost, consume))| {
                        shared.store.check(key, *cost, now, *consume)
                    }))
                    .instrument(trace.span().clone())
                    .await;
                    for ((i, (key, _, _)), result) in checks.into_iter().zip(results) {
                        if let Err(r) = shared.settle(i, key, result, &mut tally) {
                            return Ok(refuse(
                                &r,
                                mem::take(&mut tally.outcome),
                                trace,
                                &parts.extensions,
                            ));
                        }
                    }
                    trace.allowed(parts.extensions.get::<Principal>());
                    let mut res = inner
                        .call(Request::from_parts(parts, body))
                        .await?
                        .map(ResponseBody::inner);
                    let due = shared.due(&res, &mut tally);
                    let now = shared.clock.now();
                    let charged =
                        join_all(due.iter().map(|key| shared.store.check(key, 1, now, true)));
                    for e in charged.await.into_iter().filter_map(Result::err) {
                        tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed to count a response");
                    }
                    tally.apply(&mut res, shared.headers);
                    Ok(res)
                }),
            },
        }
    }
}

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

/// Runs `futures` concurrently and returns their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut ready_all = true;
        for (fut, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => ready_all = false,
                }
            }
        }
        if ready_all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

pin_project! {
    /// The response future of [`Quota`].
    pub struct ResponseFuture<F, B, E, St> {
        #[pin]
        kind: Kind<F, B, E, St>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E, St> {
        Refused { response: Option<Response<ResponseBody<B>>> },
        Inner {
            #[pin] future: F,
            charge: Option<(usize, QuotaKey)>,
            tally: Option<Box<Tally>>,
            shared: Arc<Shared<St>>,
        },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E, St> Future for ResponseFuture<F, B, E, St>
where
    F: Future<Output = Result<Response<B>, E>>,
    St: QuotaStore,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Inner {
                future,
                charge,
                tally,
                shared,
            } => {
                let mut res = ready!(future.poll(cx))?.map(ResponseBody::inner);
                // A synchronous store answered the checks; it answers the charges too.
                if let Some((i, key)) = charge.take() {
                    if shared.counts(i, &res) {
                        shared.charge_now(&key);
                    }
                }
                if let Some(mut tally) = tally.take() {
                    if !tally.charges.is_empty() {
                        for key in shared.due(&res, &mut tally) {
                            shared.charge_now(&key);
                        }
                    }
                    tally.apply(&mut res, shared.headers);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E, St> fmt::Debug for ResponseFuture<F, B, E, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

//! The rules of a [`QuotaLayer`](super::QuotaLayer): whose bucket a request counts against
//! ([`KeyBy`]), which tier's policy applies ([`TierBy`]), which requests count ([`Counting`]).

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{Extensions, StatusCode};

use super::policy::{KeyPart, QuotaKey, QuotaPolicy, mask};
use crate::client_ip::{ClientIp, peer_addr_of};
use crate::principal::Principal;
use crate::rejection::{AuthnReason, Rejection};

pub use crate::outcome::QuotaShadow;

/// Whose bucket a request counts against. In a configuration file a rule's `key` is one of
/// `client_ip` (with the rule's `ipv4_prefix` and `ipv6_prefix`), `key_id`, `subject`,
/// `tenant` or `route`.
#[derive(Clone, serde::Deserialize)]
#[serde(try_from = "String")]
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

    pub(super) fn name(&self) -> &'static str {
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

impl TryFrom<String> for KeyBy {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Ok(match name.as_str() {
            "client_ip" => Self::client_ip(),
            "key_id" => Self::KeyId,
            "subject" => Self::Subject,
            "tenant" => Self::Tenant,
            "route" => Self::Route,
            other => {
                return Err(format!(
                    "`{other}` is not a key: expected client_ip, key_id, subject, tenant or route"
                ));
            }
        })
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

/// How a rule picks the principal's tier among its [`QuotaRule::tier`]s (in a configuration
/// file: `tier_by: tier` or `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TierBy {
    /// The principal's [`tier`](Principal::tier) (default).
    #[default]
    Tier,
    /// The first tier, in the order they were added, named like one of the principal's roles.
    Role,
}

/// Which requests a rule counts. In a configuration file a rule's `count` is `every` (the
/// default) or `failed-authentication`.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(try_from = "String")]
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
        let filter: Arc<FilterFn> = Arc::new(|_, ext| {
            matches!(
                ext.get::<Rejection>(),
                Some(Rejection::Unauthenticated(f))
                    if !matches!(f.reason(), AuthnReason::MissingCredentials)
            )
        });
        // Its refusals are abnormal usage (RateLimit fields draft-12 §5.3).
        Self::Responses(ResponseFilter(filter, true))
    }

    /// Counts responses for which `f(status, extensions)` is true.
    pub fn responses(f: impl Fn(StatusCode, &Extensions) -> bool + Send + Sync + 'static) -> Self {
        Self::Responses(ResponseFilter(Arc::new(f), false))
    }
}

impl TryFrom<String> for Counting {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "every" => Ok(Self::Every),
            "failed-authentication" => Ok(Self::failed_authentication()),
            other => Err(format!(
                "`{other}` is not a counting: expected every or failed-authentication"
            )),
        }
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

/// A predicate on a response (see [`Counting::responses`]).
#[derive(Clone)]
pub struct ResponseFilter(pub(super) Arc<FilterFn>, pub(super) bool);

impl ResponseFilter {
    /// Whether what this filter counts is abnormal usage (failed authentications), so that a
    /// refusal is `abnormal-usage-detected` rather than `quota-exceeded`.
    pub(super) fn abnormal_usage(&self) -> bool {
        self.1
    }
}

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
/// let free = QuotaPolicy::new("free", [Limit::per_second(5), Limit::quota(10_000, Window::Day)]);
/// let pro = QuotaPolicy::new("pro", [Limit::per_second(100), Limit::quota(1_000_000, Window::Day)]);
/// let per_user = QuotaRule::new(KeyBy::Subject, free) // the default tier
///     .tier("pro", pro)
///     .tier_by(TierBy::Tier);
/// # let _ = per_user;
/// # Ok::<(), palisade::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct QuotaRule {
    pub(super) key: KeyBy,
    pub(super) default: QuotaPolicy,
    pub(super) tiers: Vec<(Arc<str>, QuotaPolicy)>,
    pub(super) tier_by: TierBy,
    pub(super) counting: Counting,
    /// The route templates the rule is limited to (`None`: every route).
    pub(super) routes: Option<Box<[Arc<str>]>>,
    /// Report only: count, and report would-be refusals, but never refuse.
    pub(super) shadow: bool,
    /// Client networks the rule does not apply to.
    pub(super) exempt: Box<[ipnet::IpNet]>,
    /// Whether the rule has logged a request without a client address (logged once).
    pub(super) no_address_logged: Arc<std::sync::atomic::AtomicBool>,
    /// The named store the rule counts in (`None`: the layer's store).
    pub(super) store: Option<Arc<str>>,
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
            store: None,
        }
    }

    /// Counts in the store added to the layer as `name` ([`QuotaBuilder::store`]) instead of
    /// the layer's own: per-address limits in memory on each instance, say, and per-tenant
    /// quotas in Redis for the whole fleet. A name the layer does not have stops `build()`.
    ///
    /// [`QuotaBuilder::store`]: super::QuotaBuilder::store
    #[must_use]
    pub fn in_store(mut self, name: impl Into<Arc<str>>) -> Self {
        self.store = Some(name.into());
        self
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

    pub(super) fn applies_to(&self, route: Option<&Arc<str>>, parts: &Parts) -> bool {
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

    pub(super) fn policies(&self) -> impl Iterator<Item = &QuotaPolicy> {
        std::iter::once(&self.default).chain(self.tiers.iter().map(|(_, p)| p))
    }

    pub(super) fn policy_for(&self, ext: &Extensions) -> &QuotaPolicy {
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

    pub(super) fn key_for(
        &self,
        parts: &Parts,
        policy: &QuotaPolicy,
        route: Option<&Arc<str>>,
    ) -> QuotaKey {
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
    pub(super) fn ip_part(&self, parts: &Parts) -> KeyPart {
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

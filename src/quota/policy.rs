//! [`QuotaPolicy`] (a named set of limits checked together) and [`QuotaKey`] (whose bucket).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;

use super::limit::{Kind, Limit, MAX_LIMITS};
use crate::error::ConfigError;
use crate::principal::Principal;

/// A named set of limits (at most [`MAX_LIMITS`]) that apply to one key together: every check
/// tests all of them and consumes from all of them, or from none.
///
/// The name identifies the policy in the `RateLimit-Policy` field and in shared store keys, so
/// it must be the same on every instance: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
///
/// ```
/// use palisade::quota::{Limit, QuotaPolicy, Window};
///
/// let free = QuotaPolicy::try_new("free", [
///     Limit::per_second(5).burst(10),
///     Limit::quota(10_000, Window::Day),
/// ])?;
/// assert_eq!(
///     free.header().to_str()?,
///     r#""free-rate";q=10;w=2, "free-day";q=10000;w=86400"#,
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct QuotaPolicy(Arc<PolicyInner>);

struct PolicyInner {
    name: Arc<str>,
    /// A stable digest of the name, hashed into memory-store keys instead of the name.
    name_digest: u64,
    limits: Box<[Limit]>,
    /// The item name of each limit in the rate-limit fields.
    items: Box<[Arc<str>]>,
    /// The `RateLimit-Policy` value, computed once.
    header: HeaderValue,
    /// Why the policy is unusable, if it is: reported by the quota layer's `build`, and by
    /// every store check (never admitted unchecked).
    error: Option<ConfigError>,
}

impl QuotaPolicy {
    /// A policy named `name` enforcing `limits`, checked when the quota layer is built: a
    /// mistake makes [`QuotaBuilder::build`](super::QuotaBuilder::build) fail with the
    /// [`ConfigError`] that [`try_new`](Self::try_new) gives at once. A store asked to check
    /// an invalid policy answers an error (503 in a layer, fail closed).
    #[must_use]
    pub fn new(name: impl Into<Arc<str>>, limits: impl IntoIterator<Item = Limit>) -> Self {
        let name = name.into();
        let limits: Box<[Limit]> = limits.into_iter().collect();
        match Self::compile(name.clone(), limits.clone()) {
            Ok(policy) => policy,
            Err(e) => Self(Arc::new(PolicyInner {
                name_digest: digest(&name),
                name,
                limits,
                items: Box::default(),
                header: HeaderValue::from_static(""),
                error: Some(e),
            })),
        }
    }

    /// A policy named `name` enforcing `limits`, checked now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError::Invalid`] for a bad name, no limit or more than [`MAX_LIMITS`], a limit
    /// that could never admit a request, or two limits with the same item name (name them with
    /// [`Limit::named`]).
    pub fn try_new(
        name: impl Into<Arc<str>>,
        limits: impl IntoIterator<Item = Limit>,
    ) -> Result<Self, ConfigError> {
        Self::compile(name.into(), limits.into_iter().collect())
    }

    /// Why this policy cannot be used (see [`new`](Self::new)); `None` when it can.
    #[must_use]
    pub fn error(&self) -> Option<&ConfigError> {
        self.0.error.as_ref()
    }

    /// `Ok` for a usable policy; a store's error for one [`new`](Self::new) could not build.
    pub(crate) fn usable(&self) -> Result<(), crate::error::StoreError> {
        match self.0.error {
            None => Ok(()),
            Some(_) => Err(crate::error::StoreError::new(
                crate::error::StoreErrorKind::InvalidData,
                format!("quota policy `{}` is invalid", self.0.name),
            )),
        }
    }

    fn compile(name: Arc<str>, limits: Box<[Limit]>) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "quota policy",
            message,
        };
        if !is_name(&name) {
            return Err(invalid(format!(
                "`{name}`: a policy name is 1-64 characters of [A-Za-z0-9_.-]"
            )));
        }
        if limits.is_empty() || limits.len() > MAX_LIMITS {
            return Err(invalid(format!(
                "`{name}`: a policy has 1 to {MAX_LIMITS} limits, not {}",
                limits.len()
            )));
        }
        let mut items: Vec<Arc<str>> = Vec::with_capacity(limits.len());
        for limit in limits.iter() {
            limit
                .validate()
                .map_err(|m| invalid(format!("`{name}`: {limit}: {m}")))?;
            let item: Arc<str> = match limit.name() {
                Some(n) if is_name(n) => n.into(),
                Some(n) => {
                    return Err(invalid(format!(
                        "`{name}`: limit name `{n}` is not 1-64 characters of [A-Za-z0-9_.-]"
                    )));
                }
                None if limits.len() == 1 => name.as_ref().into(),
                None => match limit.kind() {
                    Kind::Rate { .. } => format!("{name}-rate").into(),
                    Kind::Quota { window, .. } => format!("{name}-{window}").into(),
                },
            };
            if items.contains(&item) {
                return Err(invalid(format!(
                    "`{name}`: two limits are both called `{item}`; name them with Limit::named"
                )));
            }
            items.push(item);
        }
        let header = crate::rejection::ratelimit::policy_value(limits.iter().zip(&items).map(
            |(limit, item)| {
                let (q, w) = limit.policy_params();
                (&**item, q, w)
            },
        ))
        .ok_or_else(|| invalid(format!("`{name}`: not a valid header value")))?;
        Ok(Self(Arc::new(PolicyInner {
            name_digest: digest(&name),
            name,
            limits,
            items: items.into(),
            header,
            error: None,
        })))
    }

    /// The policy's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The limits, in order.
    #[must_use]
    pub fn limits(&self) -> &[Limit] {
        &self.0.limits
    }

    /// The item name of each limit in the `RateLimit-Policy` and `RateLimit` fields.
    pub fn item_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.items.iter().map(AsRef::as_ref)
    }

    /// The item names, shared (for the typed [`QuotaOutcome`](crate::outcome::QuotaOutcome)).
    pub(crate) fn items(&self) -> &[Arc<str>] {
        &self.0.items
    }

    /// The `RateLimit-Policy` field value (IETF RateLimit fields draft §3): one item per limit,
    /// with its quota `q` and window `w` in seconds.
    #[must_use]
    pub fn header(&self) -> &HeaderValue {
        &self.0.header
    }

    /// The smallest capacity among the limits: the largest cost one request may have.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.0.limits.iter().map(Limit::capacity).min().unwrap_or(0)
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.0.name
    }
}

impl fmt::Debug for QuotaPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaPolicy")
            .field("name", &self.0.name)
            .field("limits", &self.0.limits)
            .finish()
    }
}

/// FNV-1a of a policy name: stable, and only ever hashed again under the store's random seed.
fn digest(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whose bucket a request counts against: a policy and the identity of the caller under it
/// (an address block, an API key, a subject, a tenant, a route, or a host-chosen string).
///
/// Cheap to clone (reference counts only). Its [`Display`](fmt::Display) form is the canonical
/// text a shared store uses as its key, such as `free:subject:alice` or `ip:ip:2001:db8::/64`.
#[derive(Clone)]
pub struct QuotaKey {
    policy: QuotaPolicy,
    part: KeyPart,
}

#[derive(Clone)]
pub(crate) enum KeyPart {
    /// A client address, masked to its prefix length.
    Ip(IpAddr, u8),
    KeyId(Principal),
    Subject(Principal),
    Tenant(Principal),
    Route(Arc<str>),
    Custom(Arc<str>),
    /// No identity could be found: one shared bucket.
    Unknown,
}

impl KeyPart {
    fn tag(&self) -> u8 {
        match self {
            Self::Ip(..) => 0,
            Self::KeyId(_) => 1,
            Self::Subject(_) => 2,
            Self::Tenant(_) => 3,
            Self::Route(_) => 4,
            Self::Custom(_) => 5,
            Self::Unknown => 6,
        }
    }
}

impl QuotaKey {
    pub(crate) fn new(policy: QuotaPolicy, part: KeyPart) -> Self {
        Self { policy, part }
    }

    /// A key for a host-chosen identity `value` under `policy` (for custom stores and tests).
    #[must_use]
    pub fn custom(policy: QuotaPolicy, value: impl Into<Arc<str>>) -> Self {
        Self::new(policy, KeyPart::Custom(value.into()))
    }

    /// A key for the address block of `ip` (masked to `prefix` bits) under `policy`.
    #[must_use]
    pub fn ip(policy: QuotaPolicy, ip: IpAddr, prefix: u8) -> Self {
        Self::new(policy, KeyPart::Ip(mask(ip, prefix), prefix))
    }

    /// The policy whose limits apply.
    #[must_use]
    pub fn policy(&self) -> &QuotaPolicy {
        &self.policy
    }

    /// What identifies the caller: `ip`, `key`, `subject`, `tenant`, `route`, `custom` or
    /// `unknown`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.part {
            KeyPart::Ip(..) => "ip",
            KeyPart::KeyId(_) => "key",
            KeyPart::Subject(_) => "subject",
            KeyPart::Tenant(_) => "tenant",
            KeyPart::Route(_) => "route",
            KeyPart::Custom(_) => "custom",
            KeyPart::Unknown => "unknown",
        }
    }

    fn text(&self) -> &str {
        match &self.part {
            KeyPart::KeyId(p) => p.key_id().map_or("", |k| k.as_str()),
            KeyPart::Subject(p) => p.subject(),
            KeyPart::Tenant(p) => p.tenant().unwrap_or(""),
            KeyPart::Route(s) | KeyPart::Custom(s) => s,
            KeyPart::Ip(..) | KeyPart::Unknown => "",
        }
    }
}

impl Hash for QuotaKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As few writes as possible (each costs a SipHash round trip in the memory store).
        // Equal keys have equal names, so equal digests; `eq` compares the names themselves.
        let digest = self.policy.0.name_digest;
        match self.part {
            KeyPart::Ip(IpAddr::V4(ip), prefix) => {
                let material = u64::from(u32::from(ip)) << 8 | u64::from(prefix);
                state.write_u128(u128::from(digest) << 64 | u128::from(material));
            }
            KeyPart::Ip(IpAddr::V6(ip), prefix) => {
                state.write_u128(u128::from(ip));
                state.write_u64(digest ^ u64::from(prefix) << 56 | 1 << 63);
            }
            _ => {
                state.write_u64(digest ^ u64::from(self.part.tag()) << 56);
                self.text().hash(state);
            }
        }
    }
}

impl PartialEq for QuotaKey {
    fn eq(&self, other: &Self) -> bool {
        self.policy.name() == other.policy.name()
            && self.kind() == other.kind()
            && match (&self.part, &other.part) {
                (KeyPart::Ip(a, p), KeyPart::Ip(b, q)) => a == b && p == q,
                _ => self.text() == other.text(),
            }
    }
}

impl Eq for QuotaKey {}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.policy.name(), self.kind())?;
        match self.part {
            KeyPart::Ip(ip, prefix) => write!(f, "{ip}/{prefix}"),
            _ => f.write_str(self.text()),
        }
    }
}

impl fmt::Debug for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuotaKey({self})")
    }
}

/// `ip` with all but its first `prefix` bits cleared (IPv4-mapped IPv6 addresses count as
/// IPv4; a prefix longer than the address keeps all of it).
pub(crate) fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::quota::Window;

    fn policy() -> QuotaPolicy {
        QuotaPolicy::try_new("p", [Limit::per_second(1)]).unwrap()
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_key() {
        let a = QuotaKey::ip(policy(), "2001:db8:1:2:aaaa::1".parse().unwrap(), 64);
        let b = QuotaKey::ip(policy(), "2001:db8:1:2:ffff::9".parse().unwrap(), 64);
        let c = QuotaKey::ip(policy(), "2001:db8:1:3::1".parse().unwrap(), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "p:ip:2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_masks_and_edges() {
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(mask(ip, 32), ip);
        assert_eq!(mask(ip, 24).to_string(), "203.0.113.0");
        assert_eq!(mask(ip, 0).to_string(), "0.0.0.0");
        assert_eq!(mask(ip, 200), ip);
    }

    #[test]
    fn keys_of_different_policies_or_kinds_differ() {
        let other = QuotaPolicy::try_new("q", [Limit::per_second(1)]).unwrap();
        let a = QuotaKey::custom(policy(), "x");
        assert_ne!(a, QuotaKey::custom(other, "x"));
        assert_eq!(a, QuotaKey::custom(policy(), "x"));
        assert_eq!(a.to_string(), "p:custom:x");
    }

    #[test]
    fn policies_validate_names_and_limits() {
        assert!(QuotaPolicy::try_new("", [Limit::per_second(1)]).is_err());
        assert!(QuotaPolicy::try_new("a b", [Limit::per_second(1)]).is_err());
        assert!(QuotaPolicy::try_new("a{b}", [Limit::per_second(1)]).is_err());
        assert!(QuotaPolicy::try_new("p", []).is_err());
        assert!(QuotaPolicy::try_new("p", vec![Limit::per_second(1); MAX_LIMITS + 1]).is_err());
        assert!(QuotaPolicy::try_new("p", [Limit::per_second(0)]).is_err());
        let dup = QuotaPolicy::try_new("p", [Limit::per_second(1), Limit::per_minute(100)]);
        assert!(dup.unwrap_err().to_string().contains("Limit::named"));
        let named = QuotaPolicy::try_new(
            "p",
            [
                Limit::per_second(1),
                Limit::per_minute(100).named("p-minute"),
            ],
        )
        .unwrap();
        assert_eq!(
            named.item_names().collect::<Vec<_>>(),
            ["p-rate", "p-minute"]
        );
    }

    #[test]
    fn ratelimit_policy_field_has_one_item_per_limit() {
        // IETF RateLimit fields draft §3: a List of Items, the policy id a String, with q and w.
        let p = QuotaPolicy::try_new(
            "pro",
            [
                Limit::rate(100, Duration::from_secs(60)),
                Limit::quota(5_000, Window::Hour),
            ],
        )
        .unwrap();
        assert_eq!(
            p.header(),
            r#""pro-rate";q=100;w=60, "pro-hour";q=5000;w=3600"#
        );
        assert_eq!(p.capacity(), 100);
        let single = QuotaPolicy::try_new("ip", [Limit::per_second(10)]).unwrap();
        assert_eq!(single.header(), r#""ip";q=10;w=1"#);
    }

    #[test]
    fn new_keeps_the_mistake_of_try_new_and_no_store_admits_it() {
        use crate::quota::{MemoryStore, QuotaStore};
        let bad = QuotaPolicy::new("a b", [Limit::per_second(1)]);
        let expected = QuotaPolicy::try_new("a b", [Limit::per_second(1)]).unwrap_err();
        assert_eq!(
            bad.error().map(ToString::to_string),
            Some(expected.to_string())
        );
        assert!(policy().error().is_none());
        let key = QuotaKey::custom(bad, "x");
        let now = crate::clock::Timestamp::UNIX_EPOCH;
        let checked = MemoryStore::new().check_now(&key, 1, now, true).unwrap();
        assert_eq!(
            checked.unwrap_err().kind(),
            crate::error::StoreErrorKind::InvalidData
        );
    }
}

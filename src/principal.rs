//! [`Principal`]: who is calling, as established by the authentication layer.
//!
//! The authn layer puts a `Principal` into the request extensions; later layers (quota, authz)
//! and the handler read it from there. With the `axum` feature it is an extractor:
//!
//! ```
//! use palisade::Principal;
//!
//! async fn handler(principal: Principal) -> String {
//!     format!("hello {}", principal.subject())
//! }
//! # let _: axum::routing::MethodRouter = axum::routing::get(handler);
//! ```
//!
//! Cloning is a reference-count bump: the data sits behind one `Arc`.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::clock::Timestamp;

mod key_id;
mod shared;

pub(crate) use key_id::KEY_ID_LEN;
pub use key_id::KeyId;
pub(crate) use shared::Shared;

/// How a [`Principal`] was authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// An API key; the key id is public (it names the key, it does not prove anything).
    ApiKey {
        /// The id of the key that was presented.
        key_id: KeyId,
    },
    /// A bearer token from an issuer.
    Bearer {
        /// The token's issuer (`iss`).
        issuer: Arc<str>,
    },
    /// No credential: a route the policy declares public.
    Anonymous,
}

/// What a caller's bearer token is bound to (its `cnf` claim, RFC 7800), proven by the request
/// that brought it: the authz layer answers a refusal in the scheme this implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Confirmation {
    /// A client certificate (RFC 8705 §3): the token comes under the `Bearer` scheme.
    ClientCertificate,
    /// A DPoP key (RFC 9449): the token comes under the `DPoP` scheme, with a proof.
    Dpop,
}

impl Confirmation {
    /// Its name in the audit event: `dpop` or `client_certificate`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCertificate => "client_certificate",
            Self::Dpop => "dpop",
        }
    }
}

/// The authenticated caller: subject, how it authenticated, roles, scopes, tenant and quota tier.
///
/// Build one with [`Principal::builder`]. All fields are read-only once built.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(Arc<Inner>);

#[derive(Serialize)]
struct Inner {
    subject: Box<str>,
    method: AuthMethod,
    roles: Names,
    scopes: Names,
    tenant: Option<Arc<str>>,
    tier: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmation: Option<Confirmation>,
    /// What most principals (API keys) do not have, boxed: how and when the user
    /// authenticated, and the next DPoP nonce.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    auth: Option<Box<AuthContext>>,
    #[serde(skip)]
    role_cache: RoleCache,
}

/// Who the caller is: every field but the role cache and the next DPoP nonce, which are not.
impl PartialEq for Inner {
    fn eq(&self, other: &Self) -> bool {
        let auth = |i: &Self| i.auth.as_ref().map(|a| (a.acr.clone(), a.auth_time));
        self.subject == other.subject
            && self.method == other.method
            && self.roles == other.roles
            && self.scopes == other.scopes
            && self.tenant == other.tenant
            && self.tier == other.tier
            && self.confirmation == other.confirmation
            && auth(self).unwrap_or_default() == auth(other).unwrap_or_default()
    }
}

impl Eq for Inner {}

/// The OIDC `acr` and `auth_time` of a principal (for step-up rules, RFC 9470), and the
/// fresh DPoP nonce the response to this request carries (RFC 9449 §8.2).
#[derive(Debug, Serialize)]
struct AuthContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<Arc<str>>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
    #[serde(skip)]
    dpop_nonce: Option<http::HeaderValue>,
}

/// A sorted set of role or scope names; shared between the principals that have it in common
/// (see [`Shared`]).
type Names = Arc<[Box<str>]>;

/// The principal's roles as a compiled policy's bit set, cached per policy generation, so
/// authorization does not look role names up on every request. Two slots: the enforced policy
/// and a shadow one.
#[derive(Default)]
struct RoleCache {
    slots: [ArcSwapOption<CachedBits>; 2],
}

struct CachedBits {
    generation: u64,
    bits: Box<[u64]>,
}

impl Principal {
    /// Starts a principal for `subject`, authenticated by `method`.
    pub fn builder(subject: impl Into<String>, method: AuthMethod) -> PrincipalBuilder {
        PrincipalBuilder {
            subject: subject.into(),
            method,
            roles: Vec::new(),
            scopes: Vec::new(),
            tenant: None,
            tier: None,
            confirmation: None,
            acr: None,
            auth_time: None,
        }
    }

    /// The anonymous principal (subject `"anonymous"`, no roles, no scopes). One shared
    /// instance: cloning it does not allocate.
    #[must_use]
    pub fn anonymous() -> Self {
        static ANONYMOUS: std::sync::OnceLock<Principal> = std::sync::OnceLock::new();
        ANONYMOUS
            .get_or_init(|| Self::builder("anonymous", AuthMethod::Anonymous).build())
            .clone()
    }

    /// The subject: a user id, a service name, whatever the credential names.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// How the caller authenticated.
    #[must_use]
    pub fn method(&self) -> &AuthMethod {
        &self.0.method
    }

    /// The API key id when the caller used an API key.
    #[must_use]
    pub fn key_id(&self) -> Option<&KeyId> {
        match &self.0.method {
            AuthMethod::ApiKey { key_id } => Some(key_id),
            _ => None,
        }
    }

    /// Whether this is the anonymous principal.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        matches!(self.0.method, AuthMethod::Anonymous)
    }

    /// The roles granted to the caller.
    pub fn roles(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.roles.iter().map(|r| &**r)
    }

    /// Whether the caller holds `role` directly (role inheritance is the authz layer's business).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| &**r == role)
    }

    /// The scopes granted to the caller.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.scopes.iter().map(|s| &**s)
    }

    /// Whether the caller holds `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| &**s == scope)
    }

    /// The caller's tenant, in multi-tenant APIs.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// The caller's quota tier (`"free"`, `"pro"`...).
    #[must_use]
    pub fn tier(&self) -> Option<&str> {
        self.0.tier.as_deref()
    }

    /// What the caller's token is bound to, proven on this request (`None`: an unbound
    /// token, or no token at all).
    #[must_use]
    pub fn confirmation(&self) -> Option<Confirmation> {
        self.0.confirmation
    }

    /// The fresh DPoP nonce the response to this request carries in `DPoP-Nonce` (RFC 9449
    /// §8.2): set when the request's proof used a nonce past half its lifetime.
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<&http::HeaderValue> {
        self.0.auth.as_ref()?.dpop_nonce.as_ref()
    }

    /// This principal, carrying `nonce` back to its client in `DPoP-Nonce`.
    #[cfg(feature = "jwt")]
    pub(crate) fn with_dpop_nonce(self, nonce: http::HeaderValue) -> Self {
        let i = &*self.0;
        Self(Arc::new(Inner {
            subject: i.subject.clone(),
            method: i.method.clone(),
            roles: i.roles.clone(),
            scopes: i.scopes.clone(),
            tenant: i.tenant.clone(),
            tier: i.tier.clone(),
            confirmation: i.confirmation,
            auth: Some(Box::new(AuthContext {
                acr: i.auth.as_ref().and_then(|a| a.acr.clone()),
                auth_time: i.auth.as_ref().and_then(|a| a.auth_time),
                dpop_nonce: Some(nonce),
            })),
            role_cache: RoleCache::default(),
        }))
    }

    /// How the user authenticated: the token's `acr` (Authentication Context Class Reference,
    /// OpenID Connect Core §2, RFC 9068 §2.2.1), read by step-up rules (RFC 9470).
    #[must_use]
    pub fn acr(&self) -> Option<&str> {
        self.0.auth.as_ref()?.acr.as_deref()
    }

    /// When the user last authenticated: the token's `auth_time`, read by step-up rules with
    /// a maximum authentication age (RFC 9470).
    #[must_use]
    pub fn auth_time(&self) -> Option<Timestamp> {
        self.0
            .auth
            .as_ref()?
            .auth_time
            .map(Timestamp::from_unix_secs)
    }

    /// Runs `f` on this principal's roles as a compiled policy's bit set: the one cached in
    /// `slot` (0 or 1) when it belongs to policy `generation`, else `compute(roles)`, which is
    /// then cached.
    pub(crate) fn with_role_bits<R>(
        &self,
        generation: u64,
        slot: usize,
        compute: impl FnOnce(&Self) -> Box<[u64]>,
        f: impl FnOnce(&[u64]) -> R,
    ) -> R {
        let slot = &self.0.role_cache.slots[slot.min(1)];
        if let Some(cached) = slot.load().as_ref()
            && cached.generation == generation
        {
            return f(&cached.bits);
        }
        let bits = compute(self);
        let result = f(&bits);
        slot.store(Some(Arc::new(CachedBits { generation, bits })));
        result
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("method", &self.0.method)
            .field("roles", &self.0.roles)
            .field("scopes", &self.0.scopes)
            .field("tenant", &self.0.tenant)
            .field("tier", &self.0.tier)
            .field("confirmation", &self.0.confirmation)
            .field("auth", &self.0.auth)
            .finish()
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Builds a [`Principal`]; see [`Principal::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PrincipalBuilder {
    subject: String,
    method: AuthMethod,
    roles: Vec<String>,
    scopes: Vec<String>,
    tenant: Option<String>,
    tier: Option<String>,
    confirmation: Option<Confirmation>,
    acr: Option<String>,
    auth_time: Option<u64>,
}

impl PrincipalBuilder {
    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Adds roles.
    pub fn roles<I: IntoIterator<Item = T>, T: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Adds a scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Adds scopes.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the quota tier.
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = Some(tier.into());
        self
    }

    /// Sets what the caller's token is bound to (proven on the request).
    pub fn confirmation(mut self, confirmation: Confirmation) -> Self {
        self.confirmation = Some(confirmation);
        self
    }

    /// Sets how the user authenticated (the token's `acr`).
    pub fn acr(mut self, acr: impl Into<String>) -> Self {
        self.acr = Some(acr.into());
        self
    }

    /// Sets when the user authenticated (the token's `auth_time`).
    pub fn auth_time(mut self, at: Timestamp) -> Self {
        self.auth_time = Some(at.as_unix_secs());
        self
    }

    /// Sets how the principal authenticated.
    pub fn method(mut self, method: AuthMethod) -> Self {
        self.method = method;
        self
    }

    /// Builds the principal. Duplicate roles and scopes are kept once.
    pub fn build(self) -> Principal {
        fn boxed(mut v: Vec<String>) -> Names {
            v.sort_unstable();
            v.dedup();
            v.into_iter().map(String::into_boxed_str).collect()
        }
        Principal(Arc::new(Inner {
            subject: self.subject.into_boxed_str(),
            method: self.method,
            roles: boxed(self.roles),
            scopes: boxed(self.scopes),
            tenant: self.tenant.map(Arc::from),
            tier: self.tier.map(Arc::from),
            confirmation: self.confirmation,
            auth: (self.acr.is_some() || self.auth_time.is_some()).then(|| {
                Box::new(AuthContext {
                    acr: self.acr.map(Arc::from),
                    auth_time: self.auth_time,
                    dpop_nonce: None,
                })
            }),
            role_cache: RoleCache::default(),
        }))
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::{FromRequestParts, OptionalFromRequestParts};
    use http::request::Parts;

    use super::Principal;
    use crate::rejection::MissingPrincipal;

    /// Reads the [`Principal`] the authn layer stored. Refuses with 500 when there is none: the
    /// route is then not behind palisade's authn layer, which is a wiring mistake, and failing
    /// loudly beats serving the handler without an identity.
    impl<S: Send + Sync> FromRequestParts<S> for Principal {
        type Rejection = MissingPrincipal;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Self>()
                .cloned()
                .ok_or(MissingPrincipal)
        }
    }

    /// `Option<Principal>`: `None` when no layer authenticated the request.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Self>().cloned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_dedups_and_reads_back() {
        let p = Principal::builder("alice", AuthMethod::Anonymous)
            .roles(["admin", "reader", "admin"])
            .scope("orders:read")
            .tenant("acme")
            .tier("pro")
            .build();
        assert_eq!(p.subject(), "alice");
        assert_eq!(p.roles().collect::<Vec<_>>(), ["admin", "reader"]);
        assert!(p.has_role("reader") && !p.has_role("root"));
        assert!(p.has_scope("orders:read"));
        assert_eq!(p.tenant(), Some("acme"));
        assert_eq!(p.tier(), Some("pro"));
        assert!(p.is_anonymous());
        assert!(p.key_id().is_none());
    }

    #[test]
    fn acr_and_auth_time_are_kept_and_serialized_only_when_present() {
        let at = Timestamp::from_unix_secs(1_800_000_000);
        let p = Principal::builder("alice", AuthMethod::Anonymous)
            .acr("urn:example:mfa")
            .auth_time(at)
            .build();
        assert_eq!(p.acr(), Some("urn:example:mfa"));
        assert_eq!(p.auth_time(), Some(at));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["acr"], "urn:example:mfa");
        assert_eq!(json["auth_time"], 1_800_000_000u64);
        let plain = Principal::builder("bob", AuthMethod::Anonymous).build();
        assert_eq!((plain.acr(), plain.auth_time()), (None, None));
        let json = serde_json::to_value(&plain).unwrap();
        assert!(
            json.get("acr").is_none() && json.get("auth_time").is_none(),
            "{json}"
        );
    }

    #[test]
    fn principal_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Principal>();
        let p = Principal::anonymous();
        let q = p.clone();
        assert!(Arc::ptr_eq(&p.0, &q.0));
    }
}

//! [`JwtAuthenticator`]: OAuth 2.0 bearer tokens that are JWTs (RFC 6750, RFC 7519, RFC 9068),
//! verified against an issuer's JWKS URL or static keys. Feature `jwt`.
//!
//! ```no_run
//! use std::time::Duration;
//! use palisade::authn::bearer::ClaimMap;
//! use palisade::authn::jwt::{Issuer, JwtAuthenticator};
//!
//! # fn main() -> Result<(), palisade::ConfigError> {
//! let jwt = JwtAuthenticator::builder()
//!     .issuer(
//!         Issuer::new("https://sso.example.com/realms/acme")
//!             .jwks_url("https://sso.example.com/realms/acme/protocol/openid-connect/certs")
//!             .audience("orders-api"),
//!     )
//!     .claims(ClaimMap::keycloak())
//!     .token_type("at+jwt")
//!     .leeway(Duration::from_secs(30))
//!     .build()?;
//! # let _ = jwt; Ok(()) }
//! ```
//!
//! What is checked, in order: the token's size and syntax; the header (`alg` known and not
//! `none`, no `crit`); the issuer (`iss` names a configured issuer, whose keys are the only
//! ones tried); the key (by `kid`, and the header's `alg` must be one the key allows — the key
//! decides, RFC 8725 §3.1); the signature; then `typ`, `exp`, `nbf`, `iat`, `aud` and the
//! required claims. A token that passes is remembered (by a keyed hash) until its `exp`, so a
//! client repeating it costs a hash and a map lookup.

mod builder;
mod issuer;
mod jwks;
pub(crate) mod keys;
pub(crate) mod token;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::request::Parts;

pub use keys::{Algorithm, Key, MAX_RSA_BITS, MIN_RSA_BITS};

use self::jwks::{Jwks, Lookup};
use self::keys::AlgSet;
use self::token::{ClaimRules, Parsed};
use crate::authn::bearer::{
    self, Admission, Binding, ClaimMap, Possession, Presented, Revocations, TokenCache, TokenFacts,
    TokenSource,
};
use crate::authn::{Authentication, Authenticator};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::principal::{AuthMethod, Principal};
use crate::rejection::ChallengeSet;
use crate::rejection::{AuthnReason, Rejection, UnavailableReason};

pub use builder::JwtBuilder;
pub use issuer::Issuer;

/// The default key-set lifetime without `max-age`, and the default bounds on `max-age`
/// (see [`JwtBuilder::jwks_lifetime`]).
pub(crate) const JWKS_LIFETIME: (Duration, Duration, Duration) = (
    Duration::from_secs(300),
    Duration::from_secs(30),
    Duration::from_secs(24 * 3600),
);

/// Authenticates `Authorization: Bearer <JWT>` requests. Cloning shares the key sets and the
/// cache. See the [module documentation](self).
#[derive(Debug)]
pub struct JwtAuthenticator<C = SystemClock> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for JwtAuthenticator<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<C> {
    issuers: Box<[IssuerState]>,
    claims: ClaimMap,
    source: TokenSource,
    cache: Arc<TokenCache<Verified>>,
    /// The revocations heard on the invalidation bus, if one is configured.
    revocations: Option<Revocations<Verified>>,
    challenges: ChallengeSet,
    /// How bound tokens prove possession (client certificates, DPoP).
    possession: Possession,
    pass_opaque: bool,
    clock: C,
}

#[derive(Debug)]
struct IssuerState {
    iss: Box<str>,
    method: AuthMethod,
    keys: Keys,
    audiences: Option<Box<[Box<str>]>>,
    /// The claim checks for this issuer's tokens (the builder's, with the issuer's own).
    rules: ClaimRules,
    /// The algorithms this issuer's tokens may use.
    algorithms: AlgSet,
    /// The `Retry-After` of a 503 when its keys cannot be trusted: its failure back-off.
    retry_after: Duration,
}

#[derive(Debug)]
enum Keys {
    Static(Box<[Arc<Key>]>),
    Jwks(Box<Jwks>),
}

/// Why a token was not accepted.
enum Failure {
    Refused(AuthnReason),
    /// No key can be trusted now; retry after this long (the issuer's failure back-off).
    Unavailable(Duration),
}

impl From<AuthnReason> for Failure {
    fn from(r: AuthnReason) -> Self {
        Self::Refused(r)
    }
}

/// One step of verification: done, or a JWKS fetch is needed first.
enum Step {
    Done(Result<(Verified, Timestamp), Failure>),
    Fetch { issuer: usize, seen: u64 },
}

/// A token that passed: its principal, its issuer (by index), and what it is bound to (RFC
/// 8705 §3, RFC 9449 §6), checked on every request that brings it.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    issuer: usize,
    /// Boxed: most tokens are bound to nothing, and every cached entry holds one.
    bound: Option<Arc<Binding>>,
    /// `iss`, `jti` and `iat`, kept only when revocations are heard.
    facts: Option<Arc<TokenFacts>>,
}

/// The key for a token: by `kid` when it has one; without one, the only key of the set that
/// allows its algorithm.
fn pick(keys: &[Arc<Key>], kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
    match kid {
        Some(kid) => {
            let mut named = keys.iter().filter(|k| k.kid() == Some(kid));
            let first = named.clone().next()?;
            // Several keys with this kid: the one that allows the algorithm, if any.
            Some(
                named
                    .find(|k| k.algs().contains(alg))
                    .unwrap_or(first)
                    .clone(),
            )
        }
        None => {
            let mut fit = keys.iter().filter(|k| k.algs().contains(alg));
            let one = fit.next()?;
            fit.next().is_none().then(|| one.clone())
        }
    }
}

impl<C: Clock> Inner<C> {
    fn step(self: &Arc<Self>, token: &str, now: Timestamp, may_fetch: bool) -> Step {
        let parsed = match token::parse(token) {
            Ok(p) => p,
            Err(r) => return Step::Done(Err(r.into())),
        };
        let iss = parsed.claims.get("iss").and_then(serde_json::Value::as_str);
        let Some(index) = iss.and_then(|iss| self.issuers.iter().position(|i| &*i.iss == iss))
        else {
            return Step::Done(Err(AuthnReason::WrongIssuer.into()));
        };
        let issuer = &self.issuers[index];
        let choose = |keys: &[Arc<Key>]| pick(keys, parsed.kid.as_deref(), parsed.alg);
        let key = match &issuer.keys {
            Keys::Static(keys) => choose(keys).ok_or(AuthnReason::UnknownKeyId),
            Keys::Jwks(jwks) => {
                self.refresh_if_due(index, now);
                match jwks.lookup(now, choose, may_fetch) {
                    Lookup::Found(key) => Ok(key),
                    Lookup::Unknown => Err(AuthnReason::UnknownKeyId),
                    Lookup::Fetch(seen) => {
                        return Step::Fetch {
                            issuer: index,
                            seen,
                        };
                    }
                    Lookup::Unavailable => {
                        return Step::Done(Err(Failure::Unavailable(issuer.retry_after)));
                    }
                }
            }
        };
        Step::Done(key.map_err(Failure::from).and_then(|key| {
            self.finish(token, &parsed, &key, issuer, now)
                .map(|(principal, exp, bound)| {
                    let facts = self
                        .revocations
                        .as_ref()
                        .map(|_| Arc::new(TokenFacts::from_claims(&parsed.claims)));
                    let verified = Verified {
                        principal,
                        issuer: index,
                        bound,
                        facts,
                    };
                    (verified, exp)
                })
        }))
    }

    fn finish(
        &self,
        token: &str,
        parsed: &Parsed<'_>,
        key: &Key,
        issuer: &IssuerState,
        now: Timestamp,
    ) -> Result<(Principal, Timestamp, Option<Arc<Binding>>), Failure> {
        // RFC 8725 §3.1: the key decides the algorithm; the header only has to agree (and
        // the issuer may narrow it further).
        if !key.algs().contains(parsed.alg) || !issuer.algorithms.contains(parsed.alg) {
            return Err(AuthnReason::UnsupportedAlgorithm.into());
        }
        if !keys::verify(
            parsed.alg,
            key,
            parsed.signing_input.as_bytes(),
            &parsed.signature,
        ) {
            return Err(AuthnReason::BadSignature.into());
        }
        let exp = issuer.rules.check(parsed, now)?;
        if let Some(audiences) = &issuer.audiences
            && !token::audience_matches(&parsed.claims, audiences)
        {
            return Err(AuthnReason::WrongAudience.into());
        }
        let bound = bearer::binding(&parsed.claims, token.as_bytes())?.map(Arc::new);
        let principal =
            self.claims
                .principal(&parsed.claims, issuer.method.clone(), bound.as_deref())?;
        Ok((principal, exp, bound))
    }

    /// Refreshes issuer `index`'s key set in the background if its lifetime is over: requests
    /// go on with the current keys meanwhile. One refresh at a time per issuer.
    /// Whether issuer `index`'s key set is past its `max_stale`.
    fn stale(&self, index: usize, now: Timestamp) -> bool {
        matches!(&self.issuers[index].keys, Keys::Jwks(jwks) if jwks.is_stale(now))
    }

    fn refresh_if_due(self: &Arc<Self>, index: usize, now: Timestamp) {
        let Keys::Jwks(jwks) = &self.issuers[index].keys else {
            return;
        };
        if !jwks.claim_refresh(now) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            jwks.release_refresh();
            return;
        };
        let inner = Arc::clone(self);
        runtime.spawn(async move {
            if let Keys::Jwks(jwks) = &inner.issuers[index].keys {
                let now = inner.clock.now();
                if let Ok(true) = jwks.fetch(jwks.completed(), now).await {
                    inner.cache.clear();
                }
            }
        });
    }
}

impl<C: Clock> JwtAuthenticator<C> {
    /// Fetches every issuer's JWKS now. Call it at start-up to fail early when a provider is
    /// unreachable; afterwards key sets refresh themselves.
    ///
    /// # Errors
    ///
    /// A message naming the JWKS URL that could not be fetched.
    pub async fn refresh(&self) -> Result<(), String> {
        let now = self.inner.clock.now();
        for issuer in self.inner.issuers.iter() {
            if let Keys::Jwks(jwks) = &issuer.keys {
                let withdrawn = jwks
                    .fetch(jwks.completed(), now)
                    .await
                    .map_err(|e| format!("{}: {e}", jwks.url()))?;
                if withdrawn {
                    self.inner.cache.clear();
                }
            }
        }
        Ok(())
    }

    /// How many times the JWKS of issuer `iss` was fetched (successfully or not).
    #[must_use]
    pub fn jwks_fetches(&self, iss: &str) -> Option<u64> {
        self.inner
            .issuers
            .iter()
            .find(|i| &*i.iss == iss)
            .and_then(|i| match &i.keys {
                Keys::Jwks(j) => Some(j.fetches()),
                Keys::Static(_) => None,
            })
    }

    /// How many verified tokens are cached now.
    #[must_use]
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    fn answer(
        &self,
        key: u128,
        now: Timestamp,
        result: Result<(Verified, Timestamp), Failure>,
        presented: Presented<'_>,
        parts: &Parts,
    ) -> Admission {
        match result {
            Ok((verified, exp)) => {
                // Cached until exp, never past it (no leeway added); while the bus is down, for
                // at most its safe lifetime.
                let until = self
                    .inner
                    .revocations
                    .as_ref()
                    .map_or(exp, |r| r.cache_until(exp, now));
                self.inner.cache.insert(key, verified.clone(), until, now);
                self.admit(verified, presented, parts, now)
            }
            Err(Failure::Refused(reason)) => {
                tracing::debug!(
                    layer = "authn",
                    reason = reason.code(),
                    "bearer token refused"
                );
                Admission::Done(self.refuse(reason, presented, now))
            }
            Err(Failure::Unavailable(retry_after)) => {
                Admission::Done(Authentication::Refused(Rejection::unavailable_for(
                    "authn",
                    UnavailableReason::JwksUnavailable,
                    retry_after,
                )))
            }
        }
    }

    fn refuse(
        &self,
        reason: AuthnReason,
        presented: Presented<'_>,
        now: Timestamp,
    ) -> Authentication {
        let inner = &self.inner;
        inner
            .possession
            .refuse(reason, presented, &inner.challenges, now)
    }

    /// The token as presented (syntax not checked yet: see [`TokenSource::extract_raw`]),
    /// or the answer without one.
    fn token<'p>(&self, parts: &'p Parts) -> Result<Presented<'p>, Authentication> {
        match self.inner.source.extract_raw(parts) {
            Ok(Some(p)) if self.inner.pass_opaque && !looks_like_jws(p.token) => {
                Err(Authentication::Absent)
            }
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Authentication::Absent),
            Err(reason) => Err(Authentication::Refused(
                self.inner.challenges.refuse(reason),
            )),
        }
    }

    /// A verified token, for this request: refused when it is bound to a certificate or a
    /// key the request does not prove it holds (RFC 8705 §3, RFC 9449 §7).
    fn admit(
        &self,
        verified: Verified,
        presented: Presented<'_>,
        parts: &Parts,
        now: Timestamp,
    ) -> Admission {
        let inner = &self.inner;
        if let (Some(revocations), Some(facts)) = (&inner.revocations, &verified.facts)
            && revocations.revoked(facts, verified.principal.subject(), now)
        {
            return Admission::Done(self.refuse(AuthnReason::TokenRevoked, presented, now));
        }
        let bound = verified.bound.as_deref();
        inner.possession.admit(
            verified.principal,
            bound,
            presented,
            parts,
            &inner.challenges,
            now,
        )
    }

    /// The cached answer for the token, or its checked text.
    fn cached<'t>(
        &self,
        presented: Presented<'t>,
        key: u128,
        now: Timestamp,
        parts: &Parts,
    ) -> Result<&'t str, Admission> {
        if let Some(verified) = self.inner.cache.get(key, now) {
            // Key sets refresh on schedule even when every request is answered from the cache,
            // so a key withdrawn by the provider empties the cache within one key-set lifetime.
            self.inner.refresh_if_due(verified.issuer, now);
            // Past `max_stale` the token is checked again: its key may be gone by now.
            if !self.inner.stale(verified.issuer, now) {
                return Err(self.admit(verified, presented, parts, now));
            }
        }
        bearer::validate(presented.token)
            .map_err(|reason| Admission::Done(self.refuse(reason, presented, now)))
    }
}

/// Three dot-separated parts: the shape of a compact JWS.
fn looks_like_jws(token: &[u8]) -> bool {
    token.iter().filter(|&&b| b == b'.').count() == 2
}

impl<C: Clock> Authenticator for JwtAuthenticator<C> {
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        match self.inner.source.extract_raw(parts) {
            Ok(None) => None,
            Ok(Some(p)) if p.dpop => Some("dpop"),
            _ => Some("bearer"),
        }
    }

    async fn authenticate(&self, parts: &Parts) -> Authentication {
        let presented = match self.token(parts) {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        let now = self.inner.clock.now();
        let key = self.inner.cache.key(presented.token);
        let token = match self.cached(presented, key, now, parts) {
            Ok(token) => token,
            Err(admission) => return self.inner.possession.finish(admission, now).await,
        };
        let mut may_fetch = true;
        loop {
            match self.inner.step(token, now, may_fetch) {
                Step::Done(result) => {
                    let admission = self.answer(key, now, result, presented, parts);
                    return self.inner.possession.finish(admission, now).await;
                }
                Step::Fetch { issuer, seen } => {
                    may_fetch = false;
                    if let Keys::Jwks(jwks) = &self.inner.issuers[issuer].keys
                        && let Ok(true) = jwks.fetch(seen, now).await
                    {
                        self.inner.cache.clear();
                    }
                }
            }
        }
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        let presented = match self.token(parts) {
            Ok(p) => p,
            Err(answer) => return Some(answer),
        };
        let now = self.inner.clock.now();
        let key = self.inner.cache.key(presented.token);
        let token = match self.cached(presented, key, now, parts) {
            Ok(token) => token,
            Err(admission) => return self.inner.possession.finish_now(admission, now),
        };
        // Without fetching: an unknown kid or a key set not loaded yet is left to the async
        // path, which may fetch (and claims the refetch budget only then).
        match self.inner.step(token, now, false) {
            Step::Done(Err(
                Failure::Refused(AuthnReason::UnknownKeyId) | Failure::Unavailable(_),
            ))
            | Step::Fetch { .. } => None,
            Step::Done(result) => {
                let admission = self.answer(key, now, result, presented, parts);
                self.inner.possession.finish_now(admission, now)
            }
        }
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        self.inner
            .possession
            .challenges(&self.inner.challenges, out);
    }
}

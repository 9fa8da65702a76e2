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

mod jwks;
mod keys;
mod token;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::request::Parts;

pub use keys::{Algorithm, Key, MAX_RSA_BITS, MIN_RSA_BITS};

use self::jwks::{Jwks, JwksTiming, Lookup};
use self::keys::AlgSet;
use self::token::{ClaimRules, Parsed};
use crate::authn::bearer::{self, ClaimMap, TokenCache, TokenSource};
use crate::authn::{Authentication, Authenticator};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::ConfigError;
use crate::fetch::{HttpClient, check_url};
use crate::principal::{AuthMethod, Principal};
use crate::rejection::{AuthnReason, Rejection, UnavailableReason};
use crate::rejection::{ChallengeSet, Scheme, check_realm};

/// A token issuer: its `iss` value, where its keys are, and the audiences its tokens must name.
#[derive(Debug, Clone)]
pub struct Issuer {
    iss: Box<str>,
    jwks_url: Option<String>,
    discovery_url: Option<String>,
    keys: Vec<Key>,
    audiences: Vec<Box<str>>,
    any_audience: bool,
    rsa_algorithms: Vec<Algorithm>,
}

impl Issuer {
    /// The issuer whose tokens carry `iss` (compared exactly, RFC 7519 §4.1.1).
    pub fn new(iss: impl Into<String>) -> Self {
        Self {
            iss: iss.into().into_boxed_str(),
            jwks_url: None,
            discovery_url: None,
            keys: Vec::new(),
            audiences: Vec::new(),
            any_audience: false,
            rsa_algorithms: vec![Algorithm::RS256],
        }
    }

    /// Takes the issuer's keys from this JWKS URL (`https`, or `http` to a loopback host).
    #[must_use]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Takes the issuer's JWKS URL from its OpenID Connect discovery document,
    /// `{iss}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4), read on
    /// the first key fetch and again after a failed one. The document's `issuer` must be this
    /// issuer's `iss` exactly (§4.3), and its `jwks_uri` must be `https` (or `http` to a
    /// loopback host): a document that fails either check yields no keys (503), never
    /// another issuer's.
    #[must_use]
    pub fn discover(self) -> Self {
        let url = jwks::Source::openid_configuration(&self.iss);
        self.discovery_url(url)
    }

    /// Like [`discover`](Self::discover), with the document at `url`: an RFC 8414
    /// `/.well-known/oauth-authorization-server` document, or one a provider serves elsewhere.
    #[must_use]
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.discovery_url = Some(url.into());
        self
    }

    /// Adds a static key (PEM, JWK or HMAC secret: see [`Key`]).
    #[must_use]
    pub fn key(mut self, key: Key) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts tokens whose `aud` names `audience` (call again for more). At least one
    /// audience is required unless [`any_audience`](Self::any_audience) is called: a token
    /// minted for another API of the same provider must not work here (RFC 8725 §3.9).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into().into_boxed_str());
        self
    }

    /// Accepts any `aud`, for providers whose access tokens carry none. Prefer
    /// [`audience`](Self::audience).
    #[must_use]
    pub fn any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// The algorithms an RSA key from the JWKS verifies when the JWK has no `alg` (default
    /// RS256 only).
    #[must_use]
    pub fn rsa_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.rsa_algorithms = algs.into_iter().collect();
        self
    }
}

/// Builds a [`JwtAuthenticator`].
#[derive(Debug)]
#[must_use]
pub struct JwtBuilder<C = SystemClock> {
    issuers: Vec<Issuer>,
    claims: ClaimMap,
    rules: ClaimRules,
    source: TokenSource,
    cache_capacity: usize,
    realm: String,
    timeout: Duration,
    allow_http: bool,
    timing: JwksTiming,
    pass_opaque: bool,
    clock: C,
}

impl JwtAuthenticator {
    /// Starts a builder: no issuer yet, [`ClaimMap::new`], 60 s leeway, header tokens only,
    /// 8 KiB tokens at most, a cache of 100,000 verified tokens, realm `api`, 5 s JWKS timeout.
    pub fn builder() -> JwtBuilder {
        JwtBuilder {
            issuers: Vec::new(),
            claims: ClaimMap::new(),
            rules: ClaimRules {
                leeway: Duration::from_secs(60),
                max_age: None,
                required: Vec::new(),
                typ: None,
            },
            source: TokenSource::default(),
            cache_capacity: 100_000,
            realm: "api".into(),
            timeout: Duration::from_secs(5),
            allow_http: false,
            timing: JwksTiming::default(),
            pass_opaque: false,
            clock: SystemClock,
        }
    }
}

impl<C: Clock> JwtBuilder<C> {
    /// Accepts tokens of `issuer` (call again for more issuers).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// How claims become the [`Principal`].
    pub fn claims(mut self, claims: ClaimMap) -> Self {
        self.claims = claims;
        self
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway = leeway;
        self
    }

    /// Refuses tokens issued (`iat`) longer than `max_age` ago; `iat` becomes required.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.rules.max_age = Some(max_age);
        self
    }

    /// Refuses tokens without the claim `name`.
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.rules.required.push(name.into().into_boxed_str());
        self
    }

    /// Requires the `typ` header to be `typ` (e.g. `at+jwt` for RFC 9068 access tokens, so an
    /// ID token cannot be used as an access token: RFC 8725 §3.11).
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.rules.typ = Some(typ.into().into_boxed_str());
        self
    }

    /// Also reads the token from the `access_token` query parameter (RFC 6750 §2.3). Off by
    /// default: URLs end up in logs and browser history (RFC 6750 §5.3); while off, a token
    /// in the query string is refused.
    pub fn allow_query_parameter(mut self) -> Self {
        self.source.allow_query = true;
        self
    }

    /// The longest token accepted, in bytes (default 8 KiB); longer ones are refused unparsed.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.source.max_bytes = max;
        self
    }

    /// How many verified tokens are remembered (default 100,000; 0 disables the cache). An
    /// entry takes about 300 bytes for a principal with a few scopes and roles
    /// (`tests/token_cache_allocations.rs`), so the default bounds the cache near 30 MB.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The `realm` of the `WWW-Authenticate: Bearer` challenge (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The timeout of one JWKS fetch (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allows `http://` JWKS URLs to non-loopback hosts (TLS ends in a sidecar, say).
    pub fn allow_plain_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// How long a key set is kept when the answer has no `Cache-Control: max-age` (default
    /// 5 min), and the bounds put on `max-age` (default 30 s to 24 h).
    pub fn jwks_lifetime(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.timing.default_ttl = default;
        self.timing.min_ttl = min.min(max);
        self.timing.max_ttl = max.max(min);
        self
    }

    /// At most one refetch per `interval` for tokens that name an unknown `kid` (default
    /// 30 s): a new key is picked up at once, a flood of forged kids costs the provider one
    /// request per interval.
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.timing.unknown_kid_interval = interval;
        self
    }

    /// After a failed JWKS fetch, no retry for `delay` (default 5 s).
    pub fn retry_after_failure(mut self, delay: Duration) -> Self {
        self.timing.retry_after_failure = delay;
        self
    }

    /// Leaves bearer tokens that are not shaped like a JWT (three dot-separated parts) to the
    /// next authenticator of a [`Chain`](crate::authn::Chain) — typically an
    /// introspection one, for providers that issue both kinds. Off by default: a malformed
    /// token is refused.
    pub fn pass_opaque_tokens(mut self) -> Self {
        self.pass_opaque = true;
        self
    }

    /// Uses `clock` for token times (tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> JwtBuilder<C2> {
        JwtBuilder {
            issuers: self.issuers,
            claims: self.claims,
            rules: self.rules,
            source: self.source,
            cache_capacity: self.cache_capacity,
            realm: self.realm,
            timeout: self.timeout,
            allow_http: self.allow_http,
            timing: self.timing,
            pass_opaque: self.pass_opaque,
            clock,
        }
    }

    /// Checks the configuration and builds the authenticator. No key set is fetched yet:
    /// call [`JwtAuthenticator::refresh`] at start-up to fail early if a provider is down.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] with no issuer, an issuer with none of static keys, a JWKS URL
    /// and discovery (or more than one), no audience and no [`Issuer::any_audience`], two issuers with the same `iss`,
    /// a bad URL or realm.
    pub fn build(self) -> Result<JwtAuthenticator<C>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "jwt",
            message,
        };
        if self.issuers.is_empty() {
            return Err(invalid("no issuer is configured".into()));
        }
        check_realm(&self.realm)?;
        let client = HttpClient::new(self.timeout, 1024 * 1024);
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            let name = &issuer.iss;
            if issuers.iter().any(|i: &IssuerState| i.iss == *name) {
                return Err(invalid(format!("issuer `{name}` is configured twice")));
            }
            if issuer.audiences.is_empty() && !issuer.any_audience {
                return Err(invalid(format!(
                    "issuer `{name}` has no audience: name this API's audience, or call any_audience()"
                )));
            }
            let rsa = AlgSet::of(issuer.rsa_algorithms.iter().copied());
            let keys = match (
                issuer.jwks_url,
                issuer.discovery_url,
                issuer.keys.is_empty(),
            ) {
                (Some(url), None, true) => {
                    let url = check_url("jwks_url", &url, self.allow_http)?;
                    Keys::Jwks(Box::new(Jwks::new(
                        jwks::Source::Url(url),
                        client.clone(),
                        rsa,
                        self.timing,
                    )))
                }
                (None, Some(document), true) => {
                    let document = check_url("discovery_url", &document, self.allow_http)?;
                    Keys::Jwks(Box::new(Jwks::new(
                        jwks::Source::Discover {
                            document,
                            issuer: issuer.iss.clone(),
                            allow_http: self.allow_http,
                            found: arc_swap::ArcSwapOption::empty(),
                        },
                        client.clone(),
                        rsa,
                        self.timing,
                    )))
                }
                (None, None, false) => {
                    Keys::Static(issuer.keys.into_iter().map(Arc::new).collect())
                }
                (None, None, true) => {
                    return Err(invalid(format!(
                        "issuer `{name}` has no key, no JWKS URL and no discovery"
                    )));
                }
                _ => {
                    return Err(invalid(format!(
                        "issuer `{name}` has more than one of static keys, a JWKS URL and discovery"
                    )));
                }
            };
            issuers.push(IssuerState {
                method: AuthMethod::Bearer {
                    issuer: Arc::from(&*issuer.iss),
                },
                iss: issuer.iss,
                keys,
                audiences: if issuer.any_audience {
                    None
                } else {
                    Some(issuer.audiences.into_boxed_slice())
                },
            });
        }
        Ok(JwtAuthenticator {
            inner: Arc::new(Inner {
                issuers: issuers.into_boxed_slice(),
                claims: self.claims,
                rules: self.rules,
                source: self.source,
                cache: TokenCache::new("jwt", self.cache_capacity),
                challenges: ChallengeSet::new(Scheme::Bearer, &self.realm)?,
                pass_opaque: self.pass_opaque,
                retry_after: self.timing.retry_after_failure,
                clock: self.clock,
            }),
        })
    }
}

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
    rules: ClaimRules,
    source: TokenSource,
    cache: TokenCache<(Principal, usize)>,
    challenges: ChallengeSet,
    pass_opaque: bool,
    /// How long after a failed fetch the next one may go out: the `Retry-After` of a 503.
    retry_after: Duration,
    clock: C,
}

#[derive(Debug)]
struct IssuerState {
    iss: Box<str>,
    method: AuthMethod,
    keys: Keys,
    audiences: Option<Box<[Box<str>]>>,
}

#[derive(Debug)]
enum Keys {
    Static(Box<[Arc<Key>]>),
    Jwks(Box<Jwks>),
}

/// Why a token was not accepted.
enum Failure {
    Refused(AuthnReason),
    Unavailable,
}

impl From<AuthnReason> for Failure {
    fn from(r: AuthnReason) -> Self {
        Self::Refused(r)
    }
}

/// One step of verification: done, or a JWKS fetch is needed first.
enum Step {
    Done(Result<(Principal, Timestamp, usize), Failure>),
    Fetch { issuer: usize, seen: u64 },
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
                    Lookup::Unavailable => return Step::Done(Err(Failure::Unavailable)),
                }
            }
        };
        Step::Done(key.map_err(Failure::from).and_then(|key| {
            self.finish(&parsed, &key, issuer, now)
                .map(|(p, exp)| (p, exp, index))
        }))
    }

    fn finish(
        &self,
        parsed: &Parsed<'_>,
        key: &Key,
        issuer: &IssuerState,
        now: Timestamp,
    ) -> Result<(Principal, Timestamp), Failure> {
        // RFC 8725 §3.1: the key decides the algorithm; the header only has to agree.
        if !key.algs().contains(parsed.alg) {
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
        let exp = self.rules.check(parsed, now)?;
        if let Some(audiences) = &issuer.audiences {
            if !token::audience_matches(&parsed.claims, audiences) {
                return Err(AuthnReason::WrongAudience.into());
            }
        }
        let principal = self
            .claims
            .principal(&parsed.claims, issuer.method.clone())?;
        Ok((principal, exp))
    }

    /// Refreshes issuer `index`'s key set in the background if its lifetime is over: requests
    /// go on with the current keys meanwhile. One refresh at a time per issuer.
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
        result: Result<(Principal, Timestamp, usize), Failure>,
    ) -> Authentication {
        match result {
            Ok((principal, exp, issuer)) => {
                // Cached until exp, never past it (no leeway added).
                self.inner
                    .cache
                    .insert(key, (principal.clone(), issuer), exp, now);
                Authentication::Authenticated(principal)
            }
            Err(Failure::Refused(reason)) => {
                tracing::debug!(
                    layer = "authn",
                    reason = reason.code(),
                    "bearer token refused"
                );
                Authentication::Refused(self.inner.challenges.refuse(reason))
            }
            Err(Failure::Unavailable) => Authentication::Refused(Rejection::unavailable_for(
                "authn",
                UnavailableReason::JwksUnavailable,
                self.inner.retry_after,
            )),
        }
    }

    /// The token's bytes (syntax not checked yet: see [`TokenSource::extract_raw`]), or the
    /// answer without one.
    fn token<'p>(&self, parts: &'p Parts) -> Result<&'p [u8], Authentication> {
        match self.inner.source.extract_raw(parts) {
            Ok(Some(token)) if self.inner.pass_opaque && !looks_like_jws(token) => {
                Err(Authentication::Absent)
            }
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err(Authentication::Absent),
            Err(reason) => Err(Authentication::Refused(
                self.inner.challenges.refuse(reason),
            )),
        }
    }

    /// The cached answer for `raw`, or its checked text.
    fn cached<'t>(
        &self,
        raw: &'t [u8],
        key: u128,
        now: Timestamp,
    ) -> Result<&'t str, Authentication> {
        if let Some((principal, issuer)) = self.inner.cache.get(key, now) {
            // Key sets refresh on schedule even when every request is answered from the cache,
            // so a key withdrawn by the provider empties the cache within one key-set lifetime.
            self.inner.refresh_if_due(issuer, now);
            return Err(Authentication::Authenticated(principal));
        }
        bearer::validate(raw)
            .map_err(|reason| Authentication::Refused(self.inner.challenges.refuse(reason)))
    }
}

/// Three dot-separated parts: the shape of a compact JWS.
fn looks_like_jws(token: &[u8]) -> bool {
    token.iter().filter(|&&b| b == b'.').count() == 2
}

impl<C: Clock> Authenticator for JwtAuthenticator<C> {
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        (!matches!(self.inner.source.extract_raw(parts), Ok(None))).then_some("bearer")
    }

    async fn authenticate(&self, parts: &Parts) -> Authentication {
        let raw = match self.token(parts) {
            Ok(raw) => raw,
            Err(answer) => return answer,
        };
        let now = self.inner.clock.now();
        let key = self.inner.cache.key(raw);
        let token = match self.cached(raw, key, now) {
            Ok(token) => token,
            Err(answer) => return answer,
        };
        let mut may_fetch = true;
        loop {
            match self.inner.step(token, now, may_fetch) {
                Step::Done(result) => return self.answer(key, now, result),
                Step::Fetch { issuer, seen } => {
                    may_fetch = false;
                    if let Keys::Jwks(jwks) = &self.inner.issuers[issuer].keys {
                        if let Ok(true) = jwks.fetch(seen, now).await {
                            self.inner.cache.clear();
                        }
                    }
                }
            }
        }
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        let raw = match self.token(parts) {
            Ok(raw) => raw,
            Err(answer) => return Some(answer),
        };
        let now = self.inner.clock.now();
        let key = self.inner.cache.key(raw);
        let token = match self.cached(raw, key, now) {
            Ok(token) => token,
            Err(answer) => return Some(answer),
        };
        // Without fetching: an unknown kid or a key set not loaded yet is left to the async
        // path, which may fetch (and claims the refetch budget only then).
        match self.inner.step(token, now, false) {
            Step::Done(Err(Failure::Refused(AuthnReason::UnknownKeyId) | Failure::Unavailable))
            | Step::Fetch { .. } => None,
            Step::Done(result) => Some(self.answer(key, now, result)),
        }
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        out.push(self.inner.challenges.plain().clone());
    }
}

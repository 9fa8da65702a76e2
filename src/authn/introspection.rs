//! [`IntrospectionAuthenticator`]: opaque OAuth 2.0 bearer tokens checked by asking the
//! authorization server (RFC 7662 token introspection, through the `oauth2` crate). Feature
//! `introspection`.
//!
//! ```no_run
//! use std::time::Duration;
//! use palisade::authn::bearer::ClaimMap;
//! use palisade::authn::introspection::IntrospectionAuthenticator;
//!
//! # fn main() -> Result<(), palisade::ConfigError> {
//! let introspection = IntrospectionAuthenticator::builder(
//!     "https://sso.example.com/oauth2/introspect",
//!     "orders-api",
//! )
//! .client_secret(std::env::var("INTROSPECTION_SECRET").unwrap_or_default())
//! .audience("orders-api")
//! .claims(ClaimMap::new())
//! .timeout(Duration::from_secs(2))
//! .build()?;
//! # let _ = introspection; Ok(()) }
//! ```
//!
//! Answers are cached by a keyed hash of the token: an active token until
//! `min(exp, now + positive_ttl)`, an inactive one for `negative_ttl`. When the endpoint fails
//! or times out the request is refused with 503 (fail closed); failures are not cached.
//! Concurrent requests that bring the same uncached token share one call to the endpoint
//! (and its answer, or its failure).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;
use http_body_util::Full;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AsyncHttpClient, AuthType, Client, ClientId, ClientSecret, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, IntrospectionUrl, RequestTokenError,
    StandardRevocableToken, StandardTokenIntrospectionResponse, TokenIntrospectionResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authn::bearer::{self, ClaimMap, TokenCache, TokenSource};
use crate::authn::{Authentication, Authenticator};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::ConfigError;
use crate::fetch::{FetchError, HttpClient, check_url};
use crate::principal::{AuthMethod, Principal};
use crate::rejection::{AuthnReason, Rejection, UnavailableReason};
use crate::rejection::{ChallengeSet, Scheme, check_realm};

/// The members of an introspection answer beyond RFC 7662's, kept for the [`ClaimMap`]
/// (roles, tenant, tier).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims(Map<String, Value>);

impl ExtraTokenFields for ExtraClaims {}

type Answer = StandardTokenIntrospectionResponse<ExtraClaims, BasicTokenType>;

type OAuthClient = Client<
    BasicErrorResponse,
    BasicTokenResponse,
    Answer,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
>;

/// Builds an [`IntrospectionAuthenticator`].
#[derive(Debug)]
#[must_use]
pub struct IntrospectionBuilder<C = SystemClock> {
    url: String,
    client_id: String,
    client_secret: Option<String>,
    auth_in_body: bool,
    issuer: Option<String>,
    audiences: Vec<Box<str>>,
    claims: ClaimMap,
    source: TokenSource,
    cache_capacity: usize,
    positive_ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    breaker: (u32, Duration),
    realm: String,
    allow_http: bool,
    clock: C,
}

impl IntrospectionAuthenticator {
    /// Starts a builder for the endpoint at `url`, authenticating as `client_id` (RFC 7662 §2.1
    /// requires the caller to be authorized). Defaults: HTTP Basic client authentication, a
    /// 2 s timeout, active answers cached up to 60 s, inactive ones 5 s, 100,000 entries, and
    /// a circuit breaker that holds calls back for 2 s after 5 failures in a row.
    pub fn builder(url: impl Into<String>, client_id: impl Into<String>) -> IntrospectionBuilder {
        IntrospectionBuilder {
            url: url.into(),
            client_id: client_id.into(),
            client_secret: None,
            auth_in_body: false,
            issuer: None,
            audiences: Vec::new(),
            claims: ClaimMap::new(),
            source: TokenSource::default(),
            cache_capacity: 100_000,
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            breaker: (5, Duration::from_secs(2)),
            realm: "api".into(),
            allow_http: false,
            clock: SystemClock,
        }
    }
}

impl<C: Clock> IntrospectionBuilder<C> {
    /// The client secret, sent with HTTP Basic authentication (RFC 6749 §2.3.1).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sends the client credentials in the request body instead of HTTP Basic.
    pub fn client_auth_in_body(mut self) -> Self {
        self.auth_in_body = true;
        self
    }

    /// Requires the answer's `iss` to be `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires the answer's `aud` to name `audience` (call again for more).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into().into_boxed_str());
        self
    }

    /// How the answer becomes the [`Principal`]: the subject is `sub`, else `username`, else
    /// `client_id`; scopes from `scope`; roles, tenant and tier from the map's paths.
    pub fn claims(mut self, claims: ClaimMap) -> Self {
        self.claims = claims;
        self
    }

    /// How long an active answer is trusted at most (never past the token's `exp`).
    pub fn positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl;
        self
    }

    /// How long an inactive answer is remembered.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How many answers are cached (0 disables the cache).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The timeout of one introspection call (default 2 s); past it the request gets 503.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also reads the token from the `access_token` query parameter (RFC 6750 §2.3).
    pub fn allow_query_parameter(mut self) -> Self {
        self.source.allow_query = true;
        self
    }

    /// The longest token accepted, in bytes (default 8 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.source.max_bytes = max;
        self
    }

    /// The `realm` of the `WWW-Authenticate: Bearer` challenge (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The circuit breaker: after `failures` failed calls in a row (errors or timeouts), the
    /// endpoint is left alone for `cool_down`, and requests whose token is not cached get 503
    /// at once, with `Retry-After`, instead of each waiting for the timeout. Then one request
    /// probes the endpoint: an answer closes the circuit, a failure opens it again. `0`
    /// failures turns the breaker off. Default: 5 failures, 2 s.
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker = (failures, cool_down);
        self
    }

    /// Allows an `http://` endpoint on a non-loopback host.
    pub fn allow_plain_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Uses `clock` for cache lifetimes and `exp` checks (tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> IntrospectionBuilder<C2> {
        IntrospectionBuilder {
            url: self.url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            auth_in_body: self.auth_in_body,
            issuer: self.issuer,
            audiences: self.audiences,
            claims: self.claims,
            source: self.source,
            cache_capacity: self.cache_capacity,
            positive_ttl: self.positive_ttl,
            negative_ttl: self.negative_ttl,
            timeout: self.timeout,
            breaker: self.breaker,
            realm: self.realm,
            allow_http: self.allow_http,
            clock,
        }
    }

    /// Builds the authenticator.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a bad URL or realm.
    pub fn build(self) -> Result<IntrospectionAuthenticator<C>, ConfigError> {
        check_realm(&self.realm)?;
        check_url("introspection_url", &self.url, self.allow_http)?;
        let url = IntrospectionUrl::new(self.url.clone()).map_err(|e| ConfigError::Invalid {
            field: "introspection_url",
            message: e.to_string(),
        })?;
        let mut client = Client::new(ClientId::new(self.client_id))
            .set_introspection_url(url)
            .set_auth_type(if self.auth_in_body {
                AuthType::RequestBody
            } else {
                AuthType::BasicAuth
            });
        if let Some(secret) = self.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret));
        }
        Ok(IntrospectionAuthenticator {
            inner: Arc::new(Inner {
                client,
                http: Http(HttpClient::new(self.timeout, 256 * 1024)),
                issuer: self.issuer,
                audiences: self.audiences,
                claims: self.claims,
                source: self.source,
                cache: TokenCache::new("introspection", self.cache_capacity),
                inflight: Mutex::new(HashMap::new()),
                breaker: Breaker {
                    threshold: self.breaker.0,
                    cool_down: self.breaker.1,
                    // A probe that outlives this was lost (its request went away): another
                    // request may probe.
                    probe_for: self.timeout.saturating_mul(2),
                    failures: AtomicU32::new(0),
                    open_until: AtomicU64::new(0),
                    probe_at: AtomicU64::new(0),
                },
                positive_ttl: self.positive_ttl,
                negative_ttl: self.negative_ttl,
                challenges: ChallengeSet::new(Scheme::Bearer, &self.realm)?,
                method: AuthMethod::Bearer {
                    issuer: Arc::from(self.url.as_str()),
                },
                clock: self.clock,
            }),
        })
    }
}

/// Authenticates `Authorization: Bearer <opaque token>` requests by RFC 7662 introspection.
/// Cloning shares the cache and the connection pool.
#[derive(Debug)]
pub struct IntrospectionAuthenticator<C = SystemClock> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for IntrospectionAuthenticator<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<C> {
    client: OAuthClient,
    http: Http,
    issuer: Option<String>,
    audiences: Vec<Box<str>>,
    claims: ClaimMap,
    source: TokenSource,
    cache: TokenCache<Result<Principal, AuthnReason>>,
    /// Calls to the endpoint in flight, by the token's cache key: requests that bring a token
    /// already being introspected wait for that call's answer instead of making their own.
    inflight: Mutex<HashMap<u128, Arc<Flight>>>,
    breaker: Breaker,
    positive_ttl: Duration,
    negative_ttl: Duration,
    challenges: ChallengeSet,
    method: AuthMethod,
    clock: C,
}

/// A circuit breaker in front of the endpoint. Times are Unix nanoseconds of the
/// authenticator's clock; `open_until` is 0 while the circuit is closed.
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    cool_down: Duration,
    probe_for: Duration,
    failures: AtomicU32,
    open_until: AtomicU64,
    probe_at: AtomicU64,
}

impl Breaker {
    /// `None` when a call may go out now; otherwise how long the circuit stays open.
    fn hold(&self, now: Timestamp) -> Option<Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if self.threshold == 0 || until == 0 {
            return None;
        }
        let now = now.as_unix_nanos();
        if now < until {
            return Some(Duration::from_nanos(until - now));
        }
        // Half open: one request probes; the others wait for its answer, or until the probe
        // is presumed lost.
        let probe = self.probe_at.load(Ordering::Acquire);
        let lost = probe == 0 || now.saturating_sub(probe) > nanos(self.probe_for);
        if lost
            && self
                .probe_at
                .compare_exchange(probe, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return None;
        }
        Some(self.cool_down.min(self.probe_for))
    }

    /// Records a call's outcome: an answer closes the circuit, the `threshold`-th failure in
    /// a row (or a failed probe) opens it for `cool_down`.
    fn record(&self, answered: bool, now: Timestamp) {
        if self.threshold == 0 {
            return;
        }
        if answered {
            self.failures.store(0, Ordering::Release);
            self.open_until.store(0, Ordering::Release);
            self.probe_at.store(0, Ordering::Release);
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let probing = self.open_until.load(Ordering::Acquire) != 0;
        if failures >= self.threshold || probing {
            let until = now
                .as_unix_nanos()
                .saturating_add(nanos(self.cool_down))
                .max(1);
            self.open_until.store(until, Ordering::Release);
            self.probe_at.store(0, Ordering::Release);
            tracing::warn!(layer = "authn", failures, cool_down = ?self.cool_down, "introspection circuit open: the endpoint failed repeatedly");
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One call to the endpoint, shared by the requests that wait for it: the verdict, or why
/// there is none.
type Flight = tokio::sync::OnceCell<Result<Result<Principal, AuthnReason>, UnavailableReason>>;

/// At most this many distinct tokens are introspected at once with sharing; past it, a
/// request calls the endpoint on its own (the map of flights stays bounded).
const MAX_FLIGHTS: usize = 4096;

/// A request's part in a flight. The call's runner retires the flight when it answers; if every
/// request of the flight goes away first, the last one to leave removes it.
struct Joined<'a> {
    map: &'a Mutex<HashMap<u128, Arc<Flight>>>,
    key: u128,
    flight: Arc<Flight>,
    shared: bool,
}

impl Joined<'_> {
    /// Takes the flight out of the map (once its call has answered): later requests start
    /// their own.
    fn retire(&self) {
        if !self.shared {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
    }
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        if !self.shared {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference and this one: nobody else is waiting (every request of the
        // flight went away before its call answered). Clones are taken under the same lock,
        // so the count cannot grow meanwhile.
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            && Arc::strong_count(&self.flight) <= 2
        {
            map.remove(&self.key);
        }
    }
}

/// The `oauth2` crate's HTTP client interface over palisade's client (timeout, body cap).
#[derive(Debug)]
struct Http(HttpClient);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self
                .0
                .send(request.map(|b| Full::new(Bytes::from(b))))
                .await?;
            Ok(response.map(|b| b.to_vec()))
        })
    }
}

/// Unix seconds (a NumericDate) as a timestamp; dates before 1970 become the epoch.
fn secs(unix: i64) -> Timestamp {
    Timestamp::from_unix_secs(u64::try_from(unix).unwrap_or(0))
}

impl<C: Clock> Inner<C> {
    /// Joins the flight for `key`, or starts one; past `MAX_FLIGHTS` a private one.
    fn join(&self, key: u128) -> Joined<'_> {
        let mut map = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let (flight, shared) = match map.get(&key) {
            Some(f) => (f.clone(), true),
            None if map.len() < MAX_FLIGHTS => {
                let f = Arc::new(Flight::new());
                map.insert(key, f.clone());
                (f, true)
            }
            None => (Arc::new(Flight::new()), false),
        };
        Joined {
            map: &self.inflight,
            key,
            flight,
            shared,
        }
    }

    /// Asks the endpoint about `token`: the verdict and until when it holds, or why there is
    /// no answer (503).
    async fn introspect(
        &self,
        token: &str,
    ) -> Result<(Result<Principal, AuthnReason>, Timestamp), UnavailableReason> {
        let access = AccessToken::new(token.to_owned());
        let result = self
            .client
            .introspect(&access)
            .request_async(&self.http)
            .await;
        match result {
            Ok(answer) => Ok(self.judge(&answer, self.clock.now())),
            Err(error) => {
                let reason = match &error {
                    RequestTokenError::Request(FetchError::Timeout(_)) => {
                        UnavailableReason::IntrospectionTimeout
                    }
                    _ => UnavailableReason::IntrospectionError,
                };
                crate::telemetry::backend_error(
                    "introspection",
                    if reason == UnavailableReason::IntrospectionTimeout {
                        "timeout"
                    } else {
                        "error"
                    },
                );
                tracing::warn!(layer = "authn", reason = reason.code(), error = %crate::error::Chain(&error), "token introspection failed");
                Err(reason)
            }
        }
    }

    /// What the answer means: a principal valid until an instant, or a refusal.
    fn judge(
        &self,
        answer: &Answer,
        now: Timestamp,
    ) -> (Result<Principal, AuthnReason>, Timestamp) {
        let negative = |r| (Err(r), now.saturating_add(self.negative_ttl));
        // RFC 7662 §2.2: active is the one member that matters; the rest is checked too.
        if !answer.active() {
            return negative(AuthnReason::TokenInactive);
        }
        let exp = answer.exp().map(|t| secs(t.timestamp()));
        if exp.is_some_and(|exp| exp <= now) {
            return negative(AuthnReason::TokenExpired);
        }
        if answer
            .nbf()
            .map(|t| secs(t.timestamp()))
            .is_some_and(|nbf| nbf > now)
        {
            return negative(AuthnReason::TokenNotYetValid);
        }
        if let Some(issuer) = &self.issuer {
            if answer.iss() != Some(issuer.as_str()) {
                return negative(AuthnReason::WrongIssuer);
            }
        }
        if !self.audiences.is_empty() {
            let ok = answer.aud().is_some_and(|aud| {
                aud.iter()
                    .any(|a| self.audiences.iter().any(|x| **x == **a))
            });
            if !ok {
                return negative(AuthnReason::WrongAudience);
            }
        }
        let mut claims = answer.extra_fields().0.clone();
        let subject = answer
            .sub()
            .or(answer.username())
            .or(answer.client_id().map(|c| c.as_str()));
        if let Some(subject) = subject {
            claims.insert("sub".into(), Value::String(subject.into()));
        }
        if let Some(scopes) = answer.scopes() {
            let joined: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            claims.insert("scope".into(), Value::String(joined.join(" ")));
        }
        let until = now.saturating_add(self.positive_ttl);
        let until = exp.map_or(until, |exp| exp.min(until));
        match self.claims.principal(&claims, self.method.clone()) {
            Ok(p) => (Ok(p), until),
            Err(r) => negative(r),
        }
    }
}

impl<C: Clock> IntrospectionAuthenticator<C> {
    /// How many answers are cached now.
    #[must_use]
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    fn token<'p>(&self, parts: &'p Parts) -> Result<&'p [u8], Authentication> {
        match self.inner.source.extract_raw(parts) {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err(Authentication::Absent),
            Err(reason) => Err(Authentication::Refused(
                self.inner.challenges.refuse(reason),
            )),
        }
    }

    fn answer(&self, verdict: Result<Principal, AuthnReason>) -> Authentication {
        match verdict {
            Ok(p) => Authentication::Authenticated(p),
            Err(reason) => Authentication::Refused(self.inner.challenges.refuse(reason)),
        }
    }
}

impl<C: Clock> Authenticator for IntrospectionAuthenticator<C> {
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        (!matches!(self.inner.source.extract_raw(parts), Ok(None))).then_some("bearer")
    }

    async fn authenticate(&self, parts: &Parts) -> Authentication {
        let token = match self.token(parts) {
            Ok(token) => token,
            Err(answer) => return answer,
        };
        let inner = &*self.inner;
        let now = inner.clock.now();
        let key = inner.cache.key(token);
        if let Some(verdict) = inner.cache.get(key, now) {
            return self.answer(verdict);
        }
        let token = match bearer::validate(token) {
            Ok(token) => token,
            Err(reason) => return Authentication::Refused(inner.challenges.refuse(reason)),
        };
        if let Some(wait) = inner.breaker.hold(now) {
            return Authentication::Refused(Rejection::unavailable_for(
                "authn",
                UnavailableReason::IntrospectionCircuitOpen,
                wait,
            ));
        }
        let joined = inner.join(key);
        // Whoever runs the call (the first request, or the next one if it goes away first)
        // caches the answer and retires the flight before handing the answer to every request
        // that joined it: a request arriving later finds the cache, or (after a failure, which
        // is never cached) makes a new call. A flight never outlives its call.
        let outcome = joined
            .flight
            .get_or_init(|| async {
                let verdict = inner.introspect(token).await;
                inner.breaker.record(verdict.is_ok(), inner.clock.now());
                if let Ok((verdict, until)) = &verdict {
                    inner
                        .cache
                        .insert(key, verdict.clone(), *until, inner.clock.now());
                }
                joined.retire();
                verdict.map(|(v, _)| v)
            })
            .await
            .clone();
        drop(joined);
        match outcome {
            Ok(verdict) => self.answer(verdict),
            Err(reason) => Authentication::Refused(Rejection::unavailable("authn", reason)),
        }
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        let token = match self.token(parts) {
            Ok(token) => token,
            Err(answer) => return Some(answer),
        };
        let now = self.inner.clock.now();
        let verdict = self.inner.cache.get(self.inner.cache.key(token), now)?;
        Some(self.answer(verdict))
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        out.push(self.inner.challenges.plain().clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker {
            threshold,
            cool_down: Duration::from_secs(2),
            probe_for: Duration::from_secs(4),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
        }
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + ms * 1_000_000)
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_one_probe_closes_it() {
        let b = breaker(3);
        b.record(false, at(0));
        b.record(false, at(10));
        assert_eq!(b.hold(at(20)), None, "two failures: still closed");
        b.record(true, at(30));
        b.record(false, at(40));
        b.record(false, at(50));
        assert_eq!(b.hold(at(60)), None, "an answer reset the count");
        b.record(false, at(70));
        assert_eq!(b.hold(at(80)), Some(Duration::from_millis(1_990)), "open");
        // Cool-down over: one request probes, the others are held while it is out.
        assert_eq!(b.hold(at(2_100)), None);
        assert!(b.hold(at(2_110)).is_some());
        // The probe fails: open again for a whole cool-down.
        b.record(false, at(2_200));
        assert_eq!(b.hold(at(2_300)), Some(Duration::from_millis(1_900)));
        // Next probe answers: closed for everyone.
        assert_eq!(b.hold(at(4_300)), None);
        b.record(true, at(4_400));
        assert_eq!(b.hold(at(4_410)), None);
        assert_eq!(b.hold(at(4_420)), None);
    }

    #[test]
    fn a_lost_probe_lets_another_request_probe() {
        let b = breaker(1);
        b.record(false, at(0));
        assert_eq!(b.hold(at(2_000)), None, "the probe");
        // Its request went away: no answer is ever recorded.
        assert!(b.hold(at(3_000)).is_some());
        assert_eq!(b.hold(at(6_001)), None, "presumed lost after probe_for");
    }

    #[test]
    fn zero_failures_turns_the_breaker_off() {
        let b = breaker(0);
        for ms in 0..10 {
            b.record(false, at(ms));
        }
        assert_eq!(b.hold(at(20)), None);
    }
}

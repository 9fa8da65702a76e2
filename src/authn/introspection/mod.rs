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

mod breaker;
mod builder;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
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
    AccessToken, AsyncHttpClient, Client, EndpointNotSet, EndpointSet, ExtraTokenFields,
    HttpRequest, HttpResponse, RequestTokenError, StandardRevocableToken,
    StandardTokenIntrospectionResponse, TokenIntrospectionResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authn::bearer::{
    self, Admission, Binding, ClaimMap, Possession, Presented, Revocations, TokenCache, TokenFacts,
    TokenSource,
};
use crate::authn::{Authentication, Authenticator};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::fetch::{FetchError, HttpClient};
use crate::principal::{AuthMethod, Principal};
use crate::rejection::ChallengeSet;
use crate::rejection::{AuthnReason, Rejection, UnavailableReason};

use self::breaker::Breaker;

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

pub use builder::IntrospectionBuilder;

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
    cache: Arc<TokenCache<Verdict>>,
    /// The revocations heard on the invalidation bus, if one is configured.
    revocations: Option<Revocations<Verdict>>,
    /// Calls to the endpoint in flight, by the token's cache key: requests that bring a token
    /// already being introspected wait for that call's answer instead of making their own.
    inflight: Mutex<HashMap<u128, Arc<Flight>>>,
    breaker: Breaker,
    positive_ttl: Duration,
    negative_ttl: Duration,
    challenges: ChallengeSet,
    /// How bound tokens prove possession (client certificates, DPoP).
    possession: Possession,
    method: AuthMethod,
    clock: C,
}

/// What an answer concluded: the principal and the certificate the token is bound to (RFC
/// 8705 §3.2, checked on every request that brings it), or the refusal.
type Verdict = Result<(Principal, Option<Arc<Binding>>, Option<Arc<TokenFacts>>), AuthnReason>;

/// One call to the endpoint, shared by the requests that wait for it: the verdict, or why
/// there is none.
type Flight = tokio::sync::OnceCell<Result<Verdict, UnavailableReason>>;

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

/// Why an active answer is not an access token's, if it is not: RFC 7662 §2.2 `token_type`
/// other than `Bearer`, or `DPoP` (RFC 9449 §6.2) for a token not bound to a key
/// (`dpop_key`), or
/// Keycloak's `typ` naming a refresh, offline, ID or logout token (it may say `Bearer` in
/// `token_type` for all of them).
fn not_an_access_token(answer: &Answer, dpop_key: bool) -> Option<AuthnReason> {
    match answer.token_type() {
        None | Some(BasicTokenType::Bearer) => {}
        Some(BasicTokenType::Extension(t)) if t.eq_ignore_ascii_case("dpop") => {
            if !dpop_key {
                return Some(AuthnReason::TokenBound);
            }
        }
        Some(_) => return Some(AuthnReason::WrongTokenType),
    }
    match answer.extra_fields().0.get("typ") {
        Some(Value::String(typ))
            if ["refresh", "offline", "id", "logout"]
                .iter()
                .any(|t| typ.eq_ignore_ascii_case(t)) =>
        {
            Some(AuthnReason::WrongTokenType)
        }
        _ => None,
    }
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
    async fn introspect(&self, token: &str) -> Result<(Verdict, Timestamp), UnavailableReason> {
        let access = AccessToken::new(token.to_owned());
        let result = self
            .client
            .introspect(&access)
            .request_async(&self.http)
            .await;
        match result {
            Ok(answer) => Ok(self.judge(token, &answer, self.clock.now())),
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
    fn judge(&self, token: &str, answer: &Answer, now: Timestamp) -> (Verdict, Timestamp) {
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
        if let Some(issuer) = &self.issuer
            && answer.iss() != Some(issuer.as_str())
        {
            return negative(AuthnReason::WrongIssuer);
        }
        // RFC 8705 §3.2 and RFC 9449 §6.2: a token bound to a certificate or a DPoP key is
        // checked against the request's certificate or proof. RFC 7662 §2.2 `token_type`: only
        // access tokens pass (a refresh token is `active` too, and never an access token).
        let bound = match bearer::binding(&answer.extra_fields().0, token.as_bytes()) {
            Ok(bound) => bound,
            Err(reason) => return negative(reason),
        };
        let dpop_key = matches!(bound, Some(Binding::Key { .. }));
        if let Some(reason) = not_an_access_token(answer, dpop_key) {
            return negative(reason);
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
        // The principal's issuer is the one the server names (`iss`), the configured one
        // otherwise, else the endpoint.
        let method = match answer.iss() {
            Some(iss) if self.issuer.as_deref() != Some(iss) => AuthMethod::Bearer {
                issuer: Arc::from(iss),
            },
            _ => self.method.clone(),
        };
        let facts = self.revocations.as_ref().map(|r| {
            let facts = TokenFacts {
                issuer: answer.iss().map(Arc::from),
                jti: answer.jti().map(Arc::from),
                iat: answer.iat().map(|t| secs(t.timestamp())),
            };
            (Arc::new(facts), r.cache_until(until, now))
        });
        let until = facts.as_ref().map_or(until, |f| f.1);
        match self.claims.principal(&claims, method, bound.as_ref()) {
            Ok(p) => (Ok((p, bound.map(Arc::new), facts.map(|f| f.0))), until),
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

    fn token<'p>(&self, parts: &'p Parts) -> Result<Presented<'p>, Authentication> {
        match self.inner.source.extract_raw(parts) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Authentication::Absent),
            Err(reason) => Err(Authentication::Refused(
                self.inner.challenges.refuse(reason),
            )),
        }
    }

    /// What the verdict makes of this request: the token's binding is checked on every
    /// request (RFC 8705 §3, RFC 9449 §7).
    fn answer(
        &self,
        verdict: Verdict,
        presented: Presented<'_>,
        parts: &Parts,
        now: Timestamp,
    ) -> Admission {
        let inner = &*self.inner;
        match verdict {
            Ok((p, _, Some(facts)))
                if inner
                    .revocations
                    .as_ref()
                    .is_some_and(|r| r.revoked(&facts, p.subject(), now)) =>
            {
                Admission::Done(inner.possession.refuse(
                    AuthnReason::TokenRevoked,
                    presented,
                    &inner.challenges,
                    now,
                ))
            }
            Ok((p, bound, _)) => {
                let bound = bound.as_deref();
                inner
                    .possession
                    .admit(p, bound, presented, parts, &inner.challenges, now)
            }
            Err(reason) => Admission::Done(inner.possession.refuse(
                reason,
                presented,
                &inner.challenges,
                now,
            )),
        }
    }
}

impl<C: Clock> Authenticator for IntrospectionAuthenticator<C> {
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
        let inner = &*self.inner;
        let now = inner.clock.now();
        let key = inner.cache.key(presented.token);
        if let Some(verdict) = inner.cache.get(key, now) {
            let admission = self.answer(verdict, presented, parts, now);
            return inner.possession.finish(admission, now).await;
        }
        let token = match bearer::validate(presented.token) {
            Ok(token) => token,
            Err(reason) => {
                return inner
                    .possession
                    .refuse(reason, presented, &inner.challenges, now);
            }
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
            Ok(verdict) => {
                let now = inner.clock.now();
                let admission = self.answer(verdict, presented, parts, now);
                inner.possession.finish(admission, now).await
            }
            Err(reason) => Authentication::Refused(Rejection::unavailable("authn", reason)),
        }
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        let presented = match self.token(parts) {
            Ok(p) => p,
            Err(answer) => return Some(answer),
        };
        let inner = &*self.inner;
        let now = inner.clock.now();
        let verdict = inner.cache.get(inner.cache.key(presented.token), now)?;
        let admission = self.answer(verdict, presented, parts, now);
        inner.possession.finish_now(admission, now)
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        self.inner
            .possession
            .challenges(&self.inner.challenges, out);
    }
}

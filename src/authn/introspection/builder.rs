//! [`IntrospectionBuilder`]: the endpoint, the client's credentials and the cache, checked at
//! `build()`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::{AuthType, Client, ClientId, ClientSecret, IntrospectionUrl};

use super::breaker::Breaker;
use super::{Http, Inner, IntrospectionAuthenticator};
use crate::authn::bearer::{ClaimMap, Possession, Revocations, TokenCache, TokenSource};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::fetch::{HttpClient, check_url};
use crate::invalidation::{Hub, InvalidationBus};
use crate::principal::AuthMethod;
use crate::rejection::{ChallengeSet, Scheme, check_realm};

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
    #[cfg(feature = "jwt")]
    dpop: Option<crate::authn::dpop::Dpop>,
    /// The bus whose token revocations apply.
    bus: Option<Hub>,
    revocation_horizon: Option<Duration>,
    revocation_capacity: Option<usize>,
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
            #[cfg(feature = "jwt")]
            dpop: None,
            bus: None,
            revocation_horizon: None,
            revocation_capacity: None,
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

    /// How the answer becomes the [`Principal`](crate::Principal): the subject is `sub`, else `username`, else
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

    /// Honours the token revocations published on `bus`: a token whose `jti` (with the
    /// answer's `iss`, or any issuer) was revoked, or whose subject's tokens issued before a
    /// time were, is refused (401 `invalid_token`, audit reason `token_revoked`), cached or
    /// not. While the bus is down, answers are cached for at most its safe lifetime, and
    /// dropped when it reconnects.
    pub fn invalidation(mut self, bus: &impl InvalidationBus) -> Self {
        self.bus = Some(bus.hub().clone());
        self
    }

    /// How long a revocation heard on the bus is remembered (default 24 hours): set it to the
    /// longest lifetime of the provider's tokens. [`build`](Self::build) refuses it without
    /// [`invalidation`](Self::invalidation), and a zero horizon.
    pub fn revocation_horizon(mut self, horizon: Duration) -> Self {
        self.revocation_horizon = Some(horizon);
        self
    }

    /// How many revocations of each kind (`jti`s, subjects) are remembered (default 65,536,
    /// at most 4,194,304); past it, every token issued before a revocation that had to be
    /// forgotten is refused. [`build`](Self::build) refuses it without
    /// [`invalidation`](Self::invalidation).
    pub fn revocation_capacity(mut self, capacity: usize) -> Self {
        self.revocation_capacity = Some(capacity);
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

    /// Accepts DPoP-bound tokens (RFC 9449 §6.2: the answer's `token_type` is `DPoP` and it
    /// carries `cnf.jkt`), sent as `Authorization: DPoP <token>` with a proof of possession
    /// checked as [`Dpop`](crate::authn::dpop::Dpop) says (feature `jwt`: a proof is a JWT).
    /// Without it, a token bound to a key is refused.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn dpop(mut self, dpop: crate::authn::dpop::Dpop) -> Self {
        self.source.dpop = true;
        self.dpop = Some(dpop);
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
            #[cfg(feature = "jwt")]
            dpop: self.dpop,
            bus: self.bus,
            revocation_horizon: self.revocation_horizon,
            revocation_capacity: self.revocation_capacity,
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
        // Until an answer names its `iss`: the configured issuer, else the endpoint.
        let method = AuthMethod::Bearer {
            issuer: Arc::from(self.issuer.as_deref().unwrap_or(self.url.as_str())),
        };
        let cache = Arc::new(TokenCache::new("introspection", self.cache_capacity));
        let revocations = Revocations::of(
            self.bus.as_ref(),
            &cache,
            (self.revocation_horizon, self.revocation_capacity),
            [
                "introspection.revocation_horizon",
                "introspection.revocation_capacity",
            ],
        )?;
        Ok(IntrospectionAuthenticator {
            inner: Arc::new(Inner {
                client,
                http: Http(HttpClient::new(self.timeout, 256 * 1024)),
                issuer: self.issuer,
                audiences: self.audiences,
                claims: self.claims,
                source: self.source,
                cache,
                revocations,
                inflight: Mutex::new(HashMap::new()),
                // A probe that outlives twice the timeout was lost (its request went away):
                // another request may probe.
                breaker: Breaker::new(
                    self.breaker.0,
                    self.breaker.1,
                    self.timeout.saturating_mul(2),
                ),
                positive_ttl: self.positive_ttl,
                negative_ttl: self.negative_ttl,
                challenges: ChallengeSet::new(Scheme::Bearer, &self.realm)?,
                possession: Possession {
                    #[cfg(feature = "jwt")]
                    dpop: self.dpop.map(|d| d.build(&self.realm)).transpose()?,
                },
                method,
                clock: self.clock,
            }),
        })
    }
}

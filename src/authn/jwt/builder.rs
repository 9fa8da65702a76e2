//! [`JwtBuilder`] and [`Issuer`]: what a [`JwtAuthenticator`] accepts, checked at `build()`.

use std::sync::Arc;
use std::time::Duration;

use super::issuer::Issuer;
use super::jwks::JwksTiming;
use super::token::ClaimRules;
use super::{Inner, IssuerState, JwtAuthenticator};
use crate::authn::bearer::{ClaimMap, Possession, Revocations, TokenCache, TokenSource};
use crate::authn::dpop::Dpop;
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::fetch::HttpClient;
use crate::invalidation::{Hub, InvalidationBus};
use crate::rejection::{ChallengeSet, Scheme, check_realm};

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
    dpop: Option<Dpop>,
    /// The bus whose token revocations apply.
    bus: Option<Hub>,
    revocation_horizon: Option<Duration>,
    revocation_capacity: Option<usize>,
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
                max_lifetime: None,
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
            dpop: None,
            bus: None,
            revocation_horizon: None,
            revocation_capacity: None,
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

    /// How claims become the [`Principal`](crate::Principal).
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

    /// Refuses tokens whose lifetime is longer than `max`: `exp - iat`, or `exp - now` for a
    /// token without `iat` (`lifetime_too_long`). Each [`Issuer`] may set its own.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.rules.max_lifetime = Some(max);
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
    /// entry takes about 370 bytes for a principal with a few scopes and roles
    /// (`tests/token_cache_allocations.rs`), so the default bounds the cache near 37 MB.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Honours the token revocations published on `bus`: a token whose `jti` (with its `iss`)
    /// was revoked, or whose subject's tokens issued before a time were, is refused (401
    /// `invalid_token`, audit reason `token_revoked`), cached or not. Each revocation is
    /// remembered for 24 hours (see [`revocation_horizon`](Self::revocation_horizon)) and at
    /// most 65,536 of each kind; past that, every token issued before a revocation that had to
    /// be forgotten is refused (fail closed; `docs/invalidation.md`). While the bus is down,
    /// verified tokens are cached for at most its safe lifetime.
    pub fn invalidation(mut self, bus: &impl InvalidationBus) -> Self {
        self.bus = Some(bus.hub().clone());
        self
    }

    /// How long a revocation heard on the bus is remembered (default 24 hours): set it to the
    /// longest lifetime of the issuers' tokens. [`build`](Self::build) refuses it without
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
    /// 5 min), and the bounds put on `max-age` (default 30 s to 24 h). [`build`](Self::build)
    /// fails unless `min <= default <= max`.
    pub fn jwks_lifetime(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.timing.default_ttl = default;
        self.timing.min_ttl = min;
        self.timing.max_ttl = max;
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

    /// How long after its last successful fetch a key set still verifies tokens while its
    /// provider does not answer (default 24 h). Past it, every token of the issuer, cached
    /// or not, gets 503 with `Retry-After` until a fetch succeeds: a key the provider withdrew
    /// during the outage is trusted for at most this long.
    pub fn jwks_max_stale(mut self, max: Duration) -> Self {
        self.timing.max_stale = max;
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

    /// Accepts DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with a proof of
    /// possession, checked as [`Dpop`] says. Without it, a token bound to a key is refused.
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.source.dpop = true;
        self.dpop = Some(dpop);
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
            dpop: self.dpop,
            bus: self.bus,
            revocation_horizon: self.revocation_horizon,
            revocation_capacity: self.revocation_capacity,
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
        if self.issuers.is_empty() {
            return Err(invalid("no issuer is configured".into()));
        }
        check_realm(&self.realm)?;
        let client = HttpClient::new(self.timeout, 1024 * 1024);
        let mut issuers: Vec<IssuerState> = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            if issuers.iter().any(|i| i.iss == issuer.iss) {
                let name = &issuer.iss;
                return Err(invalid(format!("issuer `{name}` is configured twice")));
            }
            issuers.push(issuer.into_state(&client, self.allow_http, self.timing, &self.rules)?);
        }
        let cache = Arc::new(TokenCache::new("jwt", self.cache_capacity));
        let revocations = Revocations::of(
            self.bus.as_ref(),
            &cache,
            (self.revocation_horizon, self.revocation_capacity),
            ["jwt.revocation_horizon", "jwt.revocation_capacity"],
        )?;
        Ok(JwtAuthenticator {
            inner: Arc::new(Inner {
                issuers: issuers.into_boxed_slice(),
                claims: self.claims,
                source: self.source,
                cache,
                revocations,
                challenges: ChallengeSet::new(Scheme::Bearer, &self.realm)?,
                possession: Possession {
                    dpop: self.dpop.map(|d| d.build(&self.realm)).transpose()?,
                },
                pass_opaque: self.pass_opaque,
                clock: self.clock,
            }),
        })
    }
}

pub(super) fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid {
        field: "jwt",
        message,
    }
}

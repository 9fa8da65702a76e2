//! [`JwtBuilder`] and [`Issuer`]: what a [`JwtAuthenticator`] accepts, checked at `build()`.

use std::sync::Arc;
use std::time::Duration;

use super::jwks::{self, Jwks, JwksTiming};
use super::keys::{AlgSet, Algorithm, Key};
use super::token::ClaimRules;
use super::{Inner, IssuerState, JwtAuthenticator, Keys};
use crate::authn::bearer::{ClaimMap, TokenCache, TokenSource};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::fetch::{HttpClient, check_url};
use crate::principal::AuthMethod;
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
        if self.issuers.is_empty() {
            return Err(invalid("no issuer is configured".into()));
        }
        check_realm(&self.realm)?;
        let t = &self.timing;
        if !(t.min_ttl <= t.default_ttl && t.default_ttl <= t.max_ttl) {
            return Err(invalid(format!(
                "jwks lifetime: the default ({:?}) must lie between the minimum ({:?}) and the maximum ({:?})",
                t.default_ttl, t.min_ttl, t.max_ttl
            )));
        }
        let client = HttpClient::new(self.timeout, 1024 * 1024);
        let mut issuers: Vec<IssuerState> = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            if issuers.iter().any(|i| i.iss == issuer.iss) {
                let name = &issuer.iss;
                return Err(invalid(format!("issuer `{name}` is configured twice")));
            }
            issuers.push(issuer.into_state(&client, self.allow_http, self.timing)?);
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

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid {
        field: "jwt",
        message,
    }
}

impl Issuer {
    /// Checks this issuer's settings and makes its run-time state: its audiences and its keys.
    fn into_state(
        self,
        client: &HttpClient,
        allow_http: bool,
        timing: JwksTiming,
    ) -> Result<IssuerState, ConfigError> {
        let name = &self.iss;
        if self.audiences.is_empty() && !self.any_audience {
            return Err(invalid(format!(
                "issuer `{name}` has no audience: name this API's audience, or call any_audience()"
            )));
        }
        let rsa = AlgSet::of(self.rsa_algorithms.iter().copied());
        let source = match (self.jwks_url, self.discovery_url, self.keys.is_empty()) {
            (Some(url), None, true) => jwks::Source::Url(check_url("jwks_url", &url, allow_http)?),
            (None, Some(document), true) => jwks::Source::Discover {
                document: check_url("discovery_url", &document, allow_http)?,
                issuer: self.iss.clone(),
                allow_http,
                found: arc_swap::ArcSwapOption::empty(),
            },
            (None, None, false) => {
                return Ok(IssuerState::new(
                    self.iss,
                    Keys::Static(self.keys.into_iter().map(Arc::new).collect()),
                    self.any_audience,
                    self.audiences,
                ));
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
        let keys = Keys::Jwks(Box::new(Jwks::new(source, client.clone(), rsa, timing)));
        Ok(IssuerState::new(
            self.iss,
            keys,
            self.any_audience,
            self.audiences,
        ))
    }
}

impl IssuerState {
    fn new(iss: Box<str>, keys: Keys, any_audience: bool, audiences: Vec<Box<str>>) -> Self {
        Self {
            method: AuthMethod::Bearer {
                issuer: Arc::from(&*iss),
            },
            iss,
            keys,
            audiences: (!any_audience).then(|| audiences.into_boxed_slice()),
        }
    }
}

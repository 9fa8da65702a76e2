//! [`Issuer`]: one token issuer — its `iss`, its keys, its audiences — and the rules its tokens
//! are held to where they differ from the [`JwtBuilder`](super::JwtBuilder)'s.

use std::sync::Arc;
use std::time::Duration;

use super::builder::invalid;
use super::jwks::{self, Jwks, JwksTiming};
use super::keys::{AlgSet, Algorithm, Key};
use super::token::ClaimRules;
use super::{IssuerState, Keys};
use crate::error::ConfigError;
use crate::fetch::{HttpClient, check_url};
use crate::principal::AuthMethod;

/// A token issuer: its `iss` value, where its keys are, the audiences its tokens must name,
/// and the rules its tokens are held to where they differ from the
/// [`JwtBuilder`](super::JwtBuilder)'s (leeway, ages, required claims, `typ`, algorithms, key-set
/// timing).
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(super) iss: Box<str>,
    jwks_url: Option<String>,
    discovery_url: Option<String>,
    keys: Vec<Key>,
    audiences: Vec<Box<str>>,
    any_audience: bool,
    rsa_algorithms: Vec<Algorithm>,
    rules: Overrides,
}

/// What an issuer sets for itself; `None` takes the builder's.
#[derive(Debug, Clone, Default)]
struct Overrides {
    leeway: Option<Duration>,
    max_age: Option<Duration>,
    max_lifetime: Option<Duration>,
    required: Vec<Box<str>>,
    typ: Option<Box<str>>,
    algorithms: Option<Vec<Algorithm>>,
    lifetime: Option<(Duration, Duration, Duration)>,
    unknown_kid_interval: Option<Duration>,
    retry_after_failure: Option<Duration>,
    max_stale: Option<Duration>,
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
            rules: Overrides::default(),
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

    /// The only algorithms this issuer's tokens may use (default: whatever its keys allow).
    /// A token of another algorithm is refused with `unsupported_algorithm` before any
    /// signature check, whatever key it names.
    #[must_use]
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.rules.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Clock skew tolerated on this issuer's `exp`, `nbf` and `iat`.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway = Some(leeway);
        self
    }

    /// The oldest `iat` accepted from this issuer (makes `iat` required).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.rules.max_age = Some(max_age);
        self
    }

    /// The longest lifetime of this issuer's tokens: `exp - iat`, or `exp - now` for a token
    /// without `iat`. A provider misconfigured to mint year-long tokens is caught here.
    #[must_use]
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.rules.max_lifetime = Some(max);
        self
    }

    /// A claim this issuer's tokens must carry, besides the builder's.
    #[must_use]
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.rules.required.push(name.into().into_boxed_str());
        self
    }

    /// The `typ` header this issuer's tokens must carry (RFC 9068 §4: `at+jwt`).
    #[must_use]
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.rules.typ = Some(typ.into().into_boxed_str());
        self
    }

    /// This issuer's key-set lifetimes (see
    /// [`JwtBuilder::jwks_lifetime`](super::JwtBuilder::jwks_lifetime)).
    #[must_use]
    pub fn jwks_lifetime(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.rules.lifetime = Some((default, min, max));
        self
    }

    /// This issuer's refetch interval for unknown `kid`s.
    #[must_use]
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.rules.unknown_kid_interval = Some(interval);
        self
    }

    /// This issuer's back-off after a failed key-set fetch.
    #[must_use]
    pub fn retry_after_failure(mut self, delay: Duration) -> Self {
        self.rules.retry_after_failure = Some(delay);
        self
    }

    /// How long this issuer's last good key set is trusted while its provider does not answer
    /// (see [`JwtBuilder::jwks_max_stale`](super::JwtBuilder::jwks_max_stale)).
    #[must_use]
    pub fn jwks_max_stale(mut self, max: Duration) -> Self {
        self.rules.max_stale = Some(max);
        self
    }
}

impl Issuer {
    /// Checks this issuer's settings and makes its run-time state: its audiences, its keys,
    /// and its rules (the builder's `base` and `timing` with this issuer's own on top).
    pub(super) fn into_state(
        self,
        client: &HttpClient,
        allow_http: bool,
        timing: JwksTiming,
        base: &ClaimRules,
    ) -> Result<IssuerState, ConfigError> {
        let name = &self.iss;
        if self.audiences.is_empty() && !self.any_audience {
            return Err(invalid(format!(
                "issuer `{name}` has no audience: name this API's audience, or call any_audience()"
            )));
        }
        let (rules, timing, algorithms) = self.rules.apply(name, base, timing)?;
        let rsa = AlgSet::of(self.rsa_algorithms.iter().copied());
        let jwks = |source| Keys::Jwks(Box::new(Jwks::new(source, client.clone(), rsa, timing)));
        let keys = match (self.jwks_url, self.discovery_url, self.keys.is_empty()) {
            (Some(url), None, true) => {
                jwks(jwks::Source::Url(check_url("jwks_url", &url, allow_http)?))
            }
            (None, Some(document), true) => jwks(jwks::Source::Discover {
                document: check_url("discovery_url", &document, allow_http)?,
                issuer: self.iss.clone(),
                allow_http,
                found: arc_swap::ArcSwapOption::empty(),
            }),
            (None, None, false) => {
                if let Some(mistake) = self.keys.iter().find_map(Key::mistake) {
                    return Err(invalid(format!("issuer `{name}`: {mistake}")));
                }
                Keys::Static(self.keys.into_iter().map(Arc::new).collect())
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
        Ok(IssuerState {
            method: AuthMethod::Bearer {
                issuer: Arc::from(&*self.iss),
            },
            iss: self.iss,
            keys,
            audiences: (!self.any_audience).then(|| self.audiences.into_boxed_slice()),
            rules,
            algorithms,
            retry_after: timing.retry_after_failure,
        })
    }
}

impl Overrides {
    /// `base` and `timing` with these settings on top, checked; and the algorithms allowed.
    fn apply(
        self,
        name: &str,
        base: &ClaimRules,
        mut timing: JwksTiming,
    ) -> Result<(ClaimRules, JwksTiming, AlgSet), ConfigError> {
        let mut rules = base.clone();
        rules.leeway = self.leeway.unwrap_or(rules.leeway);
        rules.max_age = self.max_age.or(rules.max_age);
        rules.max_lifetime = self.max_lifetime.or(rules.max_lifetime);
        rules.required.extend(self.required);
        rules.typ = self.typ.or(rules.typ);
        if let Some((default, min, max)) = self.lifetime {
            (timing.default_ttl, timing.min_ttl, timing.max_ttl) = (default, min, max);
        }
        timing.unknown_kid_interval = self
            .unknown_kid_interval
            .unwrap_or(timing.unknown_kid_interval);
        timing.retry_after_failure = self
            .retry_after_failure
            .unwrap_or(timing.retry_after_failure);
        timing.max_stale = self.max_stale.unwrap_or(timing.max_stale);
        let t = &timing;
        if !(t.min_ttl <= t.default_ttl && t.default_ttl <= t.max_ttl) {
            return Err(invalid(format!(
                "issuer `{name}`: jwks lifetime: the default ({:?}) must lie between the minimum ({:?}) and the maximum ({:?})",
                t.default_ttl, t.min_ttl, t.max_ttl
            )));
        }
        let algorithms = match self.algorithms {
            None => AlgSet::all(),
            Some(algs) if algs.is_empty() => {
                return Err(invalid(format!(
                    "issuer `{name}`: an empty list of algorithms would accept no token"
                )));
            }
            Some(algs) => AlgSet::of(algs),
        };
        Ok((rules, timing, algorithms))
    }
}

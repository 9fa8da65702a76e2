//! The `jwt` and `introspection` sections of a configuration file (features `config` with
//! `jwt` / `introspection`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::authn::bearer::ClaimMap;
use crate::error::ConfigError;

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration such as `30s`")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(feature = "jwt")]
mod dpop;
#[cfg(feature = "jwt")]
pub use dpop::DpopConfig;
#[cfg(feature = "jwt")]
mod issuer;
#[cfg(feature = "jwt")]
use issuer::lifetimes;
#[cfg(feature = "jwt")]
pub use issuer::{IssuerConfig, JwtKeyConfig, SecretEncoding};

/// The secret in environment variable `var`, which configuration item `field` names.
fn env_secret(field: &'static str, var: &str) -> Result<zeroize::Zeroizing<String>, ConfigError> {
    std::env::var(var)
        .map(zeroize::Zeroizing::new)
        .map_err(|_| ConfigError::Env {
            field,
            name: var.into(),
        })
}

/// The `jwt` section: issuers, their keys and audiences, and how claims map to the principal.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The accepted issuers.
    pub issuers: Vec<IssuerConfig>,
    /// Claim paths for subject, roles, tenant and tier.
    #[serde(default)]
    pub claims: ClaimMap,
    /// Clock skew tolerated on `exp`, `nbf`, `iat` (default `60s`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub leeway: Option<Duration>,
    /// Maximum age from `iat`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_age: Option<Duration>,
    /// Maximum lifetime, `exp - iat` (`exp - now` without `iat`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_lifetime: Option<Duration>,
    /// Claims every token must carry.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// The required `typ` header (e.g. `at+jwt`).
    #[serde(default)]
    pub token_type: Option<String>,
    /// Accept `?access_token=` (RFC 6750 §2.3); default false.
    #[serde(default)]
    pub allow_query_parameter: bool,
    /// Longest token accepted, in bytes.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Verified tokens remembered.
    #[serde(default)]
    pub cache_capacity: Option<usize>,
    /// How long a token revocation heard on the invalidation bus is remembered (default 24h;
    /// only with an `invalidation` section or a host bus).
    #[serde(default, deserialize_with = "opt_duration")]
    pub revocation_horizon: Option<Duration>,
    /// How many token revocations of each kind are remembered (default 65,536; only with an
    /// `invalidation` section or a host bus).
    #[serde(default)]
    pub revocation_capacity: Option<usize>,
    /// Challenge realm.
    #[serde(default)]
    pub realm: Option<String>,
    /// JWKS fetch timeout.
    #[serde(default, deserialize_with = "opt_duration")]
    pub fetch_timeout: Option<Duration>,
    /// Minimum interval between refetches for unknown `kid`s.
    #[serde(default, deserialize_with = "opt_duration")]
    pub unknown_kid_refetch_interval: Option<Duration>,
    /// Key-set lifetime when the answer has no `Cache-Control: max-age` (default `5m`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_default_lifetime: Option<Duration>,
    /// Shortest key-set lifetime taken from `max-age` (default `30s`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_min_lifetime: Option<Duration>,
    /// Longest key-set lifetime taken from `max-age` (default `24h`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_max_lifetime: Option<Duration>,
    /// After a failed JWKS fetch, no other for this long (default `5s`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_retry_after_failure: Option<Duration>,
    /// How long the last good key set serves while its provider does not answer (default
    /// `24h`); then every token of the issuer gets 503 until a fetch succeeds.
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_max_stale: Option<Duration>,
    /// Allow `http://` JWKS URLs to non-loopback hosts.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Leave tokens that are not JWTs to the next authenticator (an introspection one).
    #[serde(default)]
    pub pass_opaque_tokens: bool,
    /// DPoP-bound tokens (RFC 9449) with their proofs.
    #[serde(default)]
    pub dpop: Option<DpopConfig>,
}

#[cfg(feature = "jwt")]
impl JwtConfig {
    /// Builds the authenticator.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`] of the builder or the keys.
    pub fn authenticator(&self) -> Result<crate::authn::jwt::JwtAuthenticator, ConfigError> {
        self.authenticator_in(None)
    }

    /// [`authenticator`](Self::authenticator), reading files the section names (the DPoP
    /// replay Redis's TLS files) relative to `base` (the configuration file's directory).
    ///
    /// # Errors
    ///
    /// As [`authenticator`](Self::authenticator).
    pub fn authenticator_in(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<crate::authn::jwt::JwtAuthenticator, ConfigError> {
        self.builder(base)?.build()
    }

    /// The builder the section describes, for what the file cannot say (an invalidation bus),
    /// its files read relative to `base`.
    pub(crate) fn builder(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<crate::authn::jwt::JwtBuilder, ConfigError> {
        use crate::authn::jwt::JwtAuthenticator;
        let mut b = JwtAuthenticator::builder().claims(self.claims.clone());
        for i in &self.issuers {
            b = b.issuer(i.issuer(self)?);
        }
        if let Some(v) = self.leeway {
            b = b.leeway(v);
        }
        if let Some(v) = self.max_age {
            b = b.max_age(v);
        }
        if let Some(v) = self.max_lifetime {
            b = b.max_lifetime(v);
        }
        for c in &self.required_claims {
            b = b.require_claim(c);
        }
        if let Some(v) = &self.token_type {
            b = b.token_type(v);
        }
        if self.allow_query_parameter {
            b = b.allow_query_parameter();
        }
        if let Some(v) = self.max_token_bytes {
            b = b.max_token_bytes(v);
        }
        if let Some(v) = self.cache_capacity {
            b = b.cache_capacity(v);
        }
        if let Some(v) = self.revocation_horizon {
            b = b.revocation_horizon(v);
        }
        if let Some(v) = self.revocation_capacity {
            b = b.revocation_capacity(v);
        }
        if let Some(v) = &self.realm {
            b = b.realm(v);
        }
        if let Some(v) = self.fetch_timeout {
            b = b.fetch_timeout(v);
        }
        b = self.jwks_timing(b);
        if self.allow_plain_http {
            b = b.allow_plain_http();
        }
        if self.pass_opaque_tokens {
            b = b.pass_opaque_tokens();
        }
        if let Some(d) = &self.dpop {
            b = b.dpop(d.dpop_in(base)?);
        }
        Ok(b)
    }

    /// The key sets' refetch interval, lifetimes, failure back-off and staleness bound.
    fn jwks_timing(&self, mut b: crate::authn::jwt::JwtBuilder) -> crate::authn::jwt::JwtBuilder {
        if let Some(v) = self.unknown_kid_refetch_interval {
            b = b.unknown_kid_refetch_interval(v);
        }
        if self.jwks_default_lifetime.is_some()
            || self.jwks_min_lifetime.is_some()
            || self.jwks_max_lifetime.is_some()
        {
            let (default, min, max) = lifetimes(
                self.jwks_default_lifetime,
                self.jwks_min_lifetime,
                self.jwks_max_lifetime,
            );
            b = b.jwks_lifetime(default, min, max);
        }
        if let Some(v) = self.jwks_retry_after_failure {
            b = b.retry_after_failure(v);
        }
        if let Some(v) = self.jwks_max_stale {
            b = b.jwks_max_stale(v);
        }
        b
    }
}

/// The `introspection` section.
#[cfg(feature = "introspection")]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IntrospectionConfig {
    /// The endpoint.
    pub url: String,
    /// This API's client id at the authorization server.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Send client credentials in the body instead of HTTP Basic.
    #[serde(default)]
    pub client_auth_in_body: bool,
    /// Required `iss` of answers.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required audiences of answers.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Claim paths.
    #[serde(default)]
    pub claims: ClaimMap,
    /// Longest trust in an active answer.
    #[serde(default, deserialize_with = "opt_duration")]
    pub positive_ttl: Option<Duration>,
    /// How long an inactive answer is remembered.
    #[serde(default, deserialize_with = "opt_duration")]
    pub negative_ttl: Option<Duration>,
    /// Timeout of one call.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Failed calls in a row that open the circuit breaker (default 5; 0 turns it off).
    #[serde(default)]
    pub breaker_failures: Option<u32>,
    /// How long an open circuit holds calls back (default 2s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub breaker_cool_down: Option<Duration>,
    /// Longest token accepted, in bytes (default 8 KiB): longer ones are refused unsent.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Answers remembered.
    #[serde(default)]
    pub cache_capacity: Option<usize>,
    /// How long a token revocation heard on the invalidation bus is remembered (default 24h;
    /// only with an `invalidation` section or a host bus).
    #[serde(default, deserialize_with = "opt_duration")]
    pub revocation_horizon: Option<Duration>,
    /// How many token revocations of each kind are remembered (default 65,536; only with an
    /// `invalidation` section or a host bus).
    #[serde(default)]
    pub revocation_capacity: Option<usize>,
    /// Challenge realm.
    #[serde(default)]
    pub realm: Option<String>,
    /// Accept `?access_token=`.
    #[serde(default)]
    pub allow_query_parameter: bool,
    /// Allow an `http://` endpoint on a non-loopback host.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// DPoP-bound tokens (RFC 9449) with their proofs (needs the `jwt` feature too).
    #[cfg(feature = "jwt")]
    #[serde(default)]
    pub dpop: Option<DpopConfig>,
}

#[cfg(feature = "introspection")]
impl IntrospectionConfig {
    /// Builds the authenticator (reading the client secret from its environment variable).
    ///
    /// # Errors
    ///
    /// A missing environment variable, a bad URL or realm.
    pub fn authenticator(
        &self,
    ) -> Result<crate::authn::introspection::IntrospectionAuthenticator, ConfigError> {
        self.authenticator_in(None)
    }

    /// [`authenticator`](Self::authenticator), reading files the section names (the DPoP
    /// replay Redis's TLS files) relative to `base` (the configuration file's directory).
    ///
    /// # Errors
    ///
    /// As [`authenticator`](Self::authenticator).
    pub fn authenticator_in(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<crate::authn::introspection::IntrospectionAuthenticator, ConfigError> {
        self.builder(base)?.build()
    }

    /// The builder the section describes, for what the file cannot say (an invalidation bus),
    /// its files read relative to `base`.
    pub(crate) fn builder(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<crate::authn::introspection::IntrospectionBuilder, ConfigError> {
        #[cfg(not(feature = "jwt"))]
        let _ = base;
        use crate::authn::introspection::IntrospectionAuthenticator;
        let mut b = IntrospectionAuthenticator::builder(&self.url, &self.client_id)
            .claims(self.claims.clone());
        if let Some(var) = &self.client_secret_env {
            b = b.client_secret(env_secret("introspection.client_secret_env", var)?.as_str());
        }
        if self.client_auth_in_body {
            b = b.client_auth_in_body();
        }
        if let Some(v) = &self.issuer {
            b = b.issuer(v);
        }
        for a in &self.audiences {
            b = b.audience(a);
        }
        if let Some(v) = self.positive_ttl {
            b = b.positive_ttl(v);
        }
        if let Some(v) = self.negative_ttl {
            b = b.negative_ttl(v);
        }
        if let Some(v) = self.timeout {
            b = b.timeout(v);
        }
        if self.breaker_failures.is_some() || self.breaker_cool_down.is_some() {
            b = b.circuit_breaker(
                self.breaker_failures.unwrap_or(5),
                self.breaker_cool_down.unwrap_or(Duration::from_secs(2)),
            );
        }
        if let Some(v) = self.max_token_bytes {
            b = b.max_token_bytes(v);
        }
        if let Some(v) = self.cache_capacity {
            b = b.cache_capacity(v);
        }
        if let Some(v) = self.revocation_horizon {
            b = b.revocation_horizon(v);
        }
        if let Some(v) = self.revocation_capacity {
            b = b.revocation_capacity(v);
        }
        if let Some(v) = &self.realm {
            b = b.realm(v);
        }
        if self.allow_query_parameter {
            b = b.allow_query_parameter();
        }
        if self.allow_plain_http {
            b = b.allow_plain_http();
        }
        #[cfg(feature = "jwt")]
        if let Some(d) = &self.dpop {
            b = b.dpop(d.dpop_in(base)?);
        }
        Ok(b)
    }
}

#[cfg(all(test, feature = "jwt", feature = "introspection"))]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, Format};

    #[test]
    fn the_bearer_reference_in_docs_config_md_builds() {
        let doc = include_str!("../../docs/config.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(2)
            .and_then(|rest| rest.split("```").next())
            .expect("a second yaml block in docs/config.md");
        let c = Config::parse(yaml, Format::Yaml).unwrap();
        let jwt = c.jwt.as_ref().unwrap();
        assert_eq!(jwt.issuers.len(), 4);
        let metadata = c.resource_metadata.clone().unwrap().build().unwrap();
        assert_eq!(
            metadata.path(),
            "/.well-known/oauth-protected-resource/orders"
        );
        assert!(jwt.issuers[2].discover);
        assert!(jwt.issuers[3].discovery_url.is_some());
        // The HMAC secret's variable is not set here: building says which one is missing.
        let err = jwt.authenticator().unwrap_err();
        assert!(err.to_string().contains("LEGACY_JWT_SECRET"), "{err}");
        let err = c
            .introspection
            .as_ref()
            .unwrap()
            .authenticator()
            .unwrap_err();
        assert!(err.to_string().contains("INTROSPECTION_SECRET"), "{err}");
        // Without the HMAC key, the rest builds.
        let mut jwt = jwt.clone();
        jwt.issuers[1].keys.pop();
        jwt.authenticator().unwrap();
    }

    #[test]
    fn the_dpop_subsection_builds_or_names_what_is_wrong() {
        let jwt = |dpop: &str| {
            let yaml = format!(
                "jwt: {{issuers: [{{issuer: i, jwks_url: 'https://i.example/certs', audiences: [a]}}], dpop: {dpop}}}"
            );
            Config::parse(&yaml, Format::Yaml).map(|c| c.jwt.unwrap())
        };
        let c = jwt("{public_origin: 'https://api.example.com', algorithms: [ES256], max_age: 30s, leeway: 2s, replay_capacity: 1000, nonce_lifetime: 5m}").unwrap();
        let d = c.dpop.as_ref().unwrap();
        assert_eq!(d.max_age, Some(Duration::from_secs(30)));
        assert_eq!(d.nonce_lifetime, Some(Duration::from_secs(300)));
        c.authenticator().unwrap();
        // A misspelt setting is an error, never ignored.
        assert!(jwt("{public_origin: 'https://api.example.com', nonce_lifetme: 5m}").is_err());
        // What the builder refuses stops the start-up, naming the subsection.
        for (bad, says) in [
            ("{public_origin: 'api.example.com'}", "public origin"),
            (
                "{public_origin: 'https://a.example', algorithms: [HS256]}",
                "asymmetric",
            ),
            (
                "{public_origin: 'https://a.example', algorithms: []}",
                "no proof algorithm",
            ),
            (
                "{public_origin: 'https://a.example', replay_capacity: 0}",
                "capacity",
            ),
            (
                "{public_origin: 'https://a.example', nonce_secret_env: PALISADE_TEST_UNSET_VAR}",
                "PALISADE_TEST_UNSET_VAR",
            ),
        ] {
            let err = jwt(bad).unwrap().authenticator().unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
        let err = jwt(
            "{public_origin: 'https://a.example', replay_capacity: 10, replay_redis_url_env: R}",
        )
        .unwrap()
        .authenticator()
        .unwrap_err();
        assert!(err.to_string().contains("dpop.replay_capacity"), "{err}");
    }

    #[test]
    fn an_issuer_takes_exactly_one_source_of_keys() {
        let c = Config::parse(
            "jwt: {issuers: [{issuer: i, jwks_url: 'https://i.example/certs', discover: true, audiences: [a]}]}",
            Format::Yaml,
        )
        .unwrap();
        let err = c.jwt.unwrap().authenticator().unwrap_err();
        assert!(err.to_string().contains("more than one"), "{err}");
        let c = Config::parse(
            "jwt: {issuers: [{issuer: i, discovery_url: 'http://i.example/.well-known/oauth-authorization-server', audiences: [a]}]}",
            Format::Yaml,
        )
        .unwrap();
        let err = c.jwt.unwrap().authenticator().unwrap_err();
        assert!(
            err.to_string().contains("https"),
            "plain http refused: {err}"
        );
    }

    #[test]
    fn jwks_lifetimes_and_staleness_are_read_from_the_file() {
        let jwt = |extra: &str| {
            let yaml = format!(
                "jwt: {{issuers: [{{issuer: i, jwks_url: 'https://i.example/certs', audiences: [a]}}], {extra}}}"
            );
            Config::parse(&yaml, Format::Yaml).unwrap().jwt.unwrap()
        };
        let c = jwt(
            "jwks_min_lifetime: 10m, jwks_max_lifetime: 2h, jwks_retry_after_failure: 1s, jwks_max_stale: 1h",
        );
        assert_eq!(c.jwks_min_lifetime, Some(Duration::from_secs(600)));
        assert_eq!(c.jwks_max_stale, Some(Duration::from_secs(3600)));
        // Without a default lifetime, the default follows the bounds (5 min is below 10 min).
        c.authenticator().unwrap();
        // Bounds that contradict each other stop the start-up, naming the setting.
        let err = jwt("jwks_min_lifetime: 1h, jwks_max_lifetime: 1m")
            .authenticator()
            .unwrap_err();
        assert!(err.to_string().contains("jwks lifetime"), "{err}");
        let err = jwt("jwks_default_lifetime: 1s")
            .authenticator()
            .unwrap_err();
        assert!(err.to_string().contains("jwks lifetime"), "{err}");
        // A misspelt setting is an error, never ignored.
        let yaml = "jwt: {issuers: [{issuer: i, jwks_url: 'https://i.example/certs', audiences: [a]}], jwks_max_stail: 1h}";
        assert!(Config::parse(yaml, Format::Yaml).is_err());
    }

    #[test]
    fn each_issuer_may_set_its_own_rules_and_key_set_timing() {
        let yaml = "jwt:
  leeway: 30s
  max_lifetime: 1h
  issuers:
    - {issuer: a, jwks_url: 'https://a.example/certs', audiences: [x], algorithms: [RS256],
       leeway: 0s, max_age: 10m, max_lifetime: 15m, required_claims: [jti], token_type: at+jwt,
       unknown_kid_refetch_interval: 1m, jwks_min_lifetime: 10m, jwks_retry_after_failure: 1s,
       jwks_max_stale: 1h}
    - {issuer: b, jwks_url: 'https://b.example/certs', audiences: [x]}
";
        let c = Config::parse(yaml, Format::Yaml).unwrap().jwt.unwrap();
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
        let a = &c.issuers[0];
        assert_eq!(a.leeway, Some(Duration::ZERO));
        assert_eq!(a.required_claims, ["jti"]);
        assert_eq!(a.jwks_min_lifetime, Some(Duration::from_secs(600)));
        c.authenticator().unwrap();
        // An issuer's contradictory bounds stop the start-up, naming the issuer.
        let bad = yaml.replace("jwks_min_lifetime: 10m", "jwks_min_lifetime: 2d");
        let err = Config::parse(&bad, Format::Yaml)
            .unwrap()
            .jwt
            .unwrap()
            .authenticator()
            .unwrap_err();
        assert!(
            err.to_string().contains("issuer `a`: jwks lifetime"),
            "{err}"
        );
        let empty = yaml.replace("algorithms: [RS256]", "algorithms: []");
        let err = Config::parse(&empty, Format::Yaml)
            .unwrap()
            .jwt
            .unwrap()
            .authenticator()
            .unwrap_err();
        assert!(err.to_string().contains("issuer `a`"), "{err}");
    }

    #[test]
    fn hmac_secrets_may_be_text_base64_base64url_or_hex() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

        use super::SecretEncoding as E;
        use super::issuer::decode_secret;
        // A random-looking 32-byte secret: not valid UTF-8, so not writable as text.
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        for (value, encoding) in [
            (STANDARD.encode(&bytes), E::Base64),
            (URL_SAFE_NO_PAD.encode(&bytes), E::Base64url),
            (format!("{hex}\n"), E::Hex),
            (hex.to_lowercase(), E::Hex),
        ] {
            let decoded = decode_secret("f", "VAR", &value, encoding).unwrap();
            assert_eq!(*decoded, bytes, "{encoding:?}");
        }
        // Text is taken as it is, spaces included.
        let text = decode_secret("f", "VAR", " a secret ", E::Text).unwrap();
        assert_eq!(&**text, b" a secret ");
        // Not valid in its encoding: the error names the variable, never the secret.
        let err = decode_secret("f", "HMAC_VAR", "zz-not-hex-secret", E::Hex).unwrap_err();
        assert!(err.to_string().contains("HMAC_VAR"), "{err}");
        assert!(!err.to_string().contains("zz-not-hex-secret"), "{err}");
        // And the file names the encoding.
        let yaml = "jwt: {issuers: [{issuer: i, audiences: [a], keys: [{hmac_secret_env: K, hmac_secret_encoding: hex, algorithms: [HS256]}]}]}";
        let c = Config::parse(yaml, Format::Yaml).unwrap().jwt.unwrap();
        assert_eq!(c.issuers[0].keys[0].hmac_secret_encoding, E::Hex);
    }

    #[test]
    fn a_jwt_issuer_without_audience_is_refused() {
        let c = Config::parse(
            "jwt: {issuers: [{issuer: i, jwks_url: 'https://i.example/certs'}]}",
            Format::Yaml,
        )
        .unwrap();
        let err = c.jwt.unwrap().authenticator().unwrap_err();
        assert!(err.to_string().contains("no audience"), "{err}");
    }

    #[test]
    fn plain_http_to_a_remote_jwks_is_refused() {
        let c = Config::parse(
            "jwt: {issuers: [{issuer: i, jwks_url: 'http://i.example/certs', audiences: [a]}]}",
            Format::Yaml,
        )
        .unwrap();
        assert!(c.jwt.unwrap().authenticator().is_err());
    }
}

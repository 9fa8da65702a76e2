//! The issuers of the `jwt` section and their static keys.

use std::time::Duration;

use serde::Deserialize;

use super::{JwtConfig, env_secret, opt_duration};
use crate::error::ConfigError;

/// The bytes of a secret read from `var`, decoded as `encoding` says. The error names the
/// variable, never the secret.
pub(super) fn decode_secret(
    field: &'static str,
    var: &str,
    secret: &str,
    encoding: SecretEncoding,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    // Encoded forms may end with a newline (`openssl rand -hex 32 > file`); text is taken as
    // it is.
    let encoded = secret.trim();
    let bytes = match encoding {
        SecretEncoding::Text => Some(secret.as_bytes().to_vec()),
        SecretEncoding::Base64 => STANDARD.decode(encoded).ok(),
        SecretEncoding::Base64url => URL_SAFE_NO_PAD.decode(encoded).ok(),
        SecretEncoding::Hex => base16ct::mixed::decode_vec(encoded).ok(),
    };
    bytes
        .map(zeroize::Zeroizing::new)
        .ok_or_else(|| ConfigError::Invalid {
            field,
            message: format!("the secret in `{var}` is not valid {encoding:?}"),
        })
}

/// One issuer of the `jwt` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// The `iss` value.
    pub issuer: String,
    /// Where its key set is.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Take the key set's URL from the issuer's OpenID Connect discovery document
    /// (`{issuer}/.well-known/openid-configuration`).
    #[serde(default)]
    pub discover: bool,
    /// Take the key set's URL from the discovery document at this URL (RFC 8414, or elsewhere).
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Static keys instead of a JWKS URL.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// The audiences its tokens must name (one at least, unless `any_audience`).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accept any `aud`.
    #[serde(default)]
    pub any_audience: bool,
    /// Algorithms of RSA keys whose JWK has no `alg` (default `[RS256]`).
    #[serde(default)]
    pub rsa_algorithms: Option<Vec<crate::authn::jwt::Algorithm>>,
    /// The only algorithms its tokens may use (default: whatever its keys allow).
    #[serde(default)]
    pub algorithms: Option<Vec<crate::authn::jwt::Algorithm>>,
    /// Its own clock skew tolerance (default: the section's `leeway`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub leeway: Option<Duration>,
    /// Its own maximum age from `iat` (default: the section's).
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_age: Option<Duration>,
    /// Its own maximum lifetime, `exp - iat` (default: the section's).
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_lifetime: Option<Duration>,
    /// Claims its tokens must carry, besides the section's.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Its own required `typ` header (default: the section's).
    #[serde(default)]
    pub token_type: Option<String>,
    /// Its key set's settings, each defaulting to the section's.
    #[serde(default, deserialize_with = "opt_duration")]
    pub unknown_kid_refetch_interval: Option<Duration>,
    /// See the section's `jwks_default_lifetime`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_default_lifetime: Option<Duration>,
    /// See the section's `jwks_min_lifetime`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_min_lifetime: Option<Duration>,
    /// See the section's `jwks_max_lifetime`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_max_lifetime: Option<Duration>,
    /// See the section's `jwks_retry_after_failure`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_retry_after_failure: Option<Duration>,
    /// See the section's `jwks_max_stale`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub jwks_max_stale: Option<Duration>,
}

/// How an HMAC secret's environment variable holds its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SecretEncoding {
    /// The bytes of the text as it is (the default).
    #[default]
    Text,
    /// Base64 with padding (RFC 4648 §4).
    Base64,
    /// URL-safe base64 without padding (RFC 4648 §5; a JWK's `k`).
    Base64url,
    /// Hexadecimal, either case.
    Hex,
}

impl IssuerConfig {
    /// The issuer, its settings over the section's where it sets its own.
    pub(super) fn issuer(
        &self,
        section: &JwtConfig,
    ) -> Result<crate::authn::jwt::Issuer, ConfigError> {
        use crate::authn::jwt::Issuer;
        let mut issuer = Issuer::new(&self.issuer);
        if let Some(url) = &self.jwks_url {
            issuer = issuer.jwks_url(url);
        }
        if self.discover {
            issuer = issuer.discover();
        }
        if let Some(url) = &self.discovery_url {
            issuer = issuer.discovery_url(url);
        }
        for k in &self.keys {
            issuer = issuer.key(k.key()?);
        }
        for a in &self.audiences {
            issuer = issuer.audience(a);
        }
        if self.any_audience {
            issuer = issuer.any_audience();
        }
        if let Some(algs) = &self.rsa_algorithms {
            issuer = issuer.rsa_algorithms(algs.iter().copied());
        }
        if let Some(algs) = &self.algorithms {
            issuer = issuer.algorithms(algs.iter().copied());
        }
        if let Some(v) = self.leeway {
            issuer = issuer.leeway(v);
        }
        if let Some(v) = self.max_age {
            issuer = issuer.max_age(v);
        }
        if let Some(v) = self.max_lifetime {
            issuer = issuer.max_lifetime(v);
        }
        for c in &self.required_claims {
            issuer = issuer.require_claim(c);
        }
        if let Some(v) = &self.token_type {
            issuer = issuer.token_type(v);
        }
        if let Some(v) = self.unknown_kid_refetch_interval {
            issuer = issuer.unknown_kid_refetch_interval(v);
        }
        if self.jwks_default_lifetime.is_some()
            || self.jwks_min_lifetime.is_some()
            || self.jwks_max_lifetime.is_some()
        {
            let (default, min, max) = lifetimes(
                self.jwks_default_lifetime.or(section.jwks_default_lifetime),
                self.jwks_min_lifetime.or(section.jwks_min_lifetime),
                self.jwks_max_lifetime.or(section.jwks_max_lifetime),
            );
            issuer = issuer.jwks_lifetime(default, min, max);
        }
        if let Some(v) = self.jwks_retry_after_failure {
            issuer = issuer.retry_after_failure(v);
        }
        if let Some(v) = self.jwks_max_stale {
            issuer = issuer.jwks_max_stale(v);
        }
        Ok(issuer)
    }
}

/// Key-set lifetimes from the settings given, the defaults for the others; an unset default
/// follows the bounds that were set.
pub(super) fn lifetimes(
    default: Option<Duration>,
    min: Option<Duration>,
    max: Option<Duration>,
) -> (Duration, Duration, Duration) {
    let (d, lo, hi) = crate::authn::jwt::JWKS_LIFETIME;
    let (min, max) = (min.unwrap_or(lo), max.unwrap_or(hi));
    (default.unwrap_or_else(|| d.max(min).min(max)), min, max)
}

/// A static key: a PEM public key, a JWK, or an HMAC secret read from an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtKeyConfig {
    /// The key id tokens name.
    #[serde(default)]
    pub kid: Option<String>,
    /// A PEM public key (RSA, P-256, P-384, Ed25519).
    #[serde(default)]
    pub pem: Option<String>,
    /// A public JWK.
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
    /// The environment variable holding an HMAC secret (never the secret in the file).
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// How the HMAC secret's variable holds its bytes: `text` (default), `base64`,
    /// `base64url` or `hex` (a random 32-byte secret is not valid text).
    #[serde(default)]
    pub hmac_secret_encoding: SecretEncoding,
    /// The algorithm(s): required with an HMAC secret; for RSA keys, which RS/PS ones.
    #[serde(default)]
    pub algorithms: Vec<crate::authn::jwt::Algorithm>,
}

impl JwtKeyConfig {
    fn key(&self) -> Result<crate::authn::jwt::Key, ConfigError> {
        use crate::authn::jwt::Key;
        let invalid = |message: &str| ConfigError::Invalid {
            field: "jwt.issuers.keys",
            message: message.into(),
        };
        let mut key = match (&self.pem, &self.jwk, &self.hmac_secret_env) {
            (Some(pem), None, None) => Key::from_pem(pem)?,
            (None, Some(jwk), None) => Key::from_jwk(&jwk.to_string())?,
            (None, None, Some(var)) => {
                let secret = env_secret("jwt.issuers.keys.hmac_secret_env", var)?;
                let [alg] = self.algorithms[..] else {
                    return Err(invalid("an HMAC key names exactly one algorithm"));
                };
                Key::hmac(
                    &decode_secret(
                        "jwt.issuers.keys.hmac_secret_encoding",
                        var,
                        &secret,
                        self.hmac_secret_encoding,
                    )?,
                    alg,
                )?
            }
            _ => {
                return Err(invalid(
                    "a key is exactly one of `pem`, `jwk`, `hmac_secret_env`",
                ));
            }
        };
        if self.hmac_secret_env.is_none() && !self.algorithms.is_empty() {
            key = key
                .try_with_algorithms(self.algorithms.iter().copied())
                .map_err(|mistake| match mistake {
                    ConfigError::Invalid { message, .. } => invalid(&message),
                    other => other,
                })?;
        }
        if let Some(kid) = &self.kid {
            key = key.with_kid(kid);
        }
        Ok(key)
    }
}

//! Keys from a JSON Web Key Set (RFC 7517, RFC 7518 §6).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::{AlgSet, Algorithm, Family, Key, invalid};
use crate::error::ConfigError;

impl Key {
    /// A JWK from a key set: `rsa_algs` are the algorithms of an RSA key without `alg`.
    pub(crate) fn from_jwk_value(jwk: &Value, rsa_algs: AlgSet) -> Result<Self, ConfigError> {
        let jwk = Jwk::deserialize(jwk).map_err(|e| invalid(format!("not a JWK: {e}")))?;
        jwk.check_use()?;
        let alg = match jwk.alg {
            None => None,
            Some(name) => Some(
                Algorithm::from_name(name)
                    .ok_or_else(|| invalid(format!("unsupported JWK `alg` {name}")))?,
            ),
        };
        let mut key = match (jwk.kty, jwk.crv) {
            ("RSA", _) => {
                let algs = alg.map_or(rsa_algs, |a| AlgSet::of([a]));
                Self::rsa(&b64("n", jwk.n)?, &b64("e", jwk.e)?, Some(algs))?
            }
            ("EC", Some("P-256")) => Self::ec(Family::P256, &jwk.ec_point(32)?)?,
            ("EC", Some("P-384")) => Self::ec(Family::P384, &jwk.ec_point(48)?)?,
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] = b64("x", jwk.x)?
                    .try_into()
                    .map_err(|_| invalid("an Ed25519 JWK's `x` is 32 bytes"))?;
                Self::ed25519(&x)?
            }
            ("oct", _) => {
                return Err(invalid(
                    "symmetric (oct) keys are never taken from a key set",
                ));
            }
            (kty, crv) => {
                return Err(invalid(format!(
                    "unsupported key type {kty} (curve {crv:?})"
                )));
            }
        };
        if let Some(alg) = alg {
            if !key.family.allows(alg) {
                return Err(invalid(format!("`alg` {alg} does not fit the key type")));
            }
            key.algs = AlgSet::of([alg]);
        }
        key.kid = jwk.kid.map(String::into_boxed_str);
        Ok(key)
    }
}

/// The members of a JWK (RFC 7517 §4, RFC 7518 §6) palisade reads.
#[derive(Deserialize)]
struct Jwk<'a> {
    kty: &'a str,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<&'a str>,
    #[serde(default, rename = "use")]
    use_: Option<&'a str>,
    #[serde(default)]
    key_ops: Option<Vec<&'a str>>,
    #[serde(default)]
    crv: Option<&'a str>,
    #[serde(default)]
    n: Option<&'a str>,
    #[serde(default)]
    e: Option<&'a str>,
    #[serde(default)]
    x: Option<&'a str>,
    #[serde(default)]
    y: Option<&'a str>,
}

impl Jwk<'_> {
    /// RFC 7517 §4.2, §4.3: a key meant for encryption is not a signature key.
    fn check_use(&self) -> Result<(), ConfigError> {
        if self.use_.is_some_and(|u| u != "sig") {
            return Err(invalid("the JWK's `use` is not `sig`"));
        }
        if self
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.contains(&"verify"))
        {
            return Err(invalid("the JWK's `key_ops` do not include `verify`"));
        }
        Ok(())
    }

    /// The uncompressed SEC1 point (`04 || x || y`) of an EC key whose coordinates are `len`
    /// bytes.
    fn ec_point(&self, len: usize) -> Result<Vec<u8>, ConfigError> {
        let (x, y) = (b64("x", self.x)?, b64("y", self.y)?);
        if x.len() != len || y.len() != len {
            return Err(invalid("the JWK's EC coordinates have the wrong length"));
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        Ok(point)
    }
}

/// The base64url member `field` of a JWK, decoded.
fn b64(field: &str, v: Option<&str>) -> Result<Vec<u8>, ConfigError> {
    let v = v.ok_or_else(|| invalid(format!("the JWK has no `{field}`")))?;
    URL_SAFE_NO_PAD
        .decode(v)
        .map_err(|_| invalid(format!("the JWK's `{field}` is not base64url")))
}

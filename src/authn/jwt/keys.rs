//! Verification keys: the [`Algorithm`]s palisade accepts, keys from PEM, JWK or an HMAC
//! secret ([`Key`]), and the checks that make a key usable (RFC 8725 §3.1, §3.5).

#[cfg(feature = "aws-lc")]
mod aws_lc;
mod jwk;

use std::fmt;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ConfigError;

/// A JWS signature algorithm (RFC 7518 §3.1, RFC 8037). `none` is not one: it is always
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256: only with a configured secret, never from a JWKS.
    HS256,
    /// HMAC with SHA-384: only with a configured secret.
    HS384,
    /// HMAC with SHA-512: only with a configured secret.
    HS512,
}

const ALL: [Algorithm; 12] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

const RSA: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl Algorithm {
    /// The JOSE name (`"ES256"`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// The algorithm named `name` (exact, case-sensitive as RFC 7515 §4.1.1 requires).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|a| a.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    fn is_rsa(self) -> bool {
        RSA.contains(&self)
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
            Self::HS256 => J::HS256,
            Self::HS384 => J::HS384,
            Self::HS512 => J::HS512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of algorithms, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgSet(u16);

impl AlgSet {
    pub(crate) fn of(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        Self(algs.into_iter().fold(0, |m, a| m | a.bit()))
    }
    pub(crate) fn all() -> Self {
        Self::of(ALL)
    }
    pub(crate) fn contains(self, a: Algorithm) -> bool {
        self.0 & a.bit() != 0
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(ALL.iter().filter(|a| self.contains(**a)))
            .finish()
    }
}

/// The smallest RSA modulus accepted (NIST SP 800-57: 2048 bits).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, so that a hostile key set cannot make every
/// verification slow.
pub const MAX_RSA_BITS: usize = 8192;

/// A key that verifies tokens: its material, its `kid`, and the algorithms it may be used
/// with — fixed by the key, never by a token (RFC 8725 §3.1).
#[derive(Clone)]
pub struct Key {
    kid: Option<Box<str>>,
    algs: AlgSet,
    /// Which family the material is; the algorithms are restricted to it.
    family: Family,
    material: DecodingKey,
    /// Bytes that identify the material, to notice a key withdrawn from a key set.
    fingerprint: Box<[u8]>,
    /// A mistake made while configuring the key, reported by the issuer's `build()`.
    mistake: Option<ConfigError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
    Hmac,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the material: for HMAC it is the secret.
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algs)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: "key",
        message: message.into(),
    }
}

impl Key {
    /// An RSA (SPKI or PKCS#1), P-256, P-384 or Ed25519 (SPKI) public key in PEM. RSA keys
    /// verify RS256 unless [`with_algorithms`](Self::with_algorithms) says otherwise; EC and
    /// Ed25519 keys verify their one algorithm.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the PEM holds no supported public key, or an RSA key
    /// outside 2048–8192 bits.
    pub fn from_pem(pem: &str) -> Result<Self, ConfigError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        use p256::elliptic_curve::sec1::ToSec1Point as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        use rsa::traits::PublicKeyParts as _;

        let rsa = rsa::PublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::PublicKey::from_pkcs1_pem(pem));
        if let Ok(key) = rsa {
            // Public values: the variable-time trimmed encoding leaks nothing.
            let n = key.n().as_ref().to_be_bytes_trimmed_vartime();
            let e = key.e().to_be_bytes_trimmed_vartime();
            return Self::rsa(&n, &e, None);
        }
        if let Ok(key) = p256::PublicKey::from_public_key_pem(pem) {
            return Self::ec(Family::P256, key.to_sec1_point(false).as_bytes());
        }
        if let Ok(key) = p384::PublicKey::from_public_key_pem(pem) {
            return Self::ec(Family::P384, key.to_sec1_point(false).as_bytes());
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Self::ed25519(key.as_bytes());
        }
        Err(invalid(
            "no RSA, P-256, P-384 or Ed25519 public key in this PEM",
        ))
    }

    /// A public key as a JWK (RFC 7517), e.g. one entry of a provider's key set. Symmetric
    /// (`oct`) JWKs are refused: an HMAC secret is configured with [`hmac`](Self::hmac).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming what is wrong with the JWK.
    pub fn from_jwk(jwk: &str) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_str(jwk).map_err(|e| invalid(format!("not a JWK: {e}")))?;
        Self::from_jwk_value(&value, AlgSet::of([Algorithm::RS256]))
    }

    /// An HMAC secret for `alg` (HS256, HS384 or HS512). RFC 7518 §3.2: the secret is at least
    /// as long as the hash output (32, 48 or 64 bytes).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `alg` is not an HMAC algorithm or the secret is short.
    pub fn hmac(secret: &[u8], alg: Algorithm) -> Result<Self, ConfigError> {
        let min = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            other => return Err(invalid(format!("{other} is not an HMAC algorithm"))),
        };
        if secret.len() < min {
            return Err(invalid(format!(
                "an {alg} secret must be at least {min} bytes (RFC 7518 §3.2), got {}",
                secret.len()
            )));
        }
        Ok(Self {
            kid: None,
            algs: AlgSet::of([alg]),
            family: Family::Hmac,
            // Never empty here: the length was checked above.
            material: DecodingKey::from_secret(secret)
                .map_err(|e| invalid(format!("unusable {alg} secret: {e}")))?,
            fingerprint: Box::new([]),
            mistake: None,
        })
    }

    /// Sets the key id that tokens name in their `kid` header.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into().into_boxed_str());
        self
    }

    /// Sets the algorithms this key verifies. Only algorithms of the key's own family are
    /// kept (an RSA key never verifies HS256: RFC 8725 §2.1's confusion attack). When none of
    /// `algs` fits the key, the [`JwtBuilder`](super::JwtBuilder)'s `build()` fails with
    /// [`ConfigError::Invalid`] naming the issuer.
    #[must_use]
    pub fn with_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        match self.fitting(algs) {
            Ok(fitting) => self.algs = fitting,
            Err(mistake) => {
                self.mistake.get_or_insert(mistake);
            }
        }
        self
    }

    /// [`with_algorithms`](Self::with_algorithms), failing at once (the configuration file's
    /// path, which names the item).
    #[cfg(feature = "config")]
    pub(crate) fn try_with_algorithms(
        mut self,
        algs: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        self.algs = self.fitting(algs)?;
        Ok(self)
    }

    /// The algorithms of `algs` that fit this key's family; none is a mistake.
    fn fitting(&self, algs: impl IntoIterator<Item = Algorithm>) -> Result<AlgSet, ConfigError> {
        let fitting = AlgSet::of(algs.into_iter().filter(|a| self.family.allows(*a)));
        if fitting.is_empty() {
            return Err(invalid(format!(
                "none of the algorithms fits this {:?} key",
                self.family
            )));
        }
        Ok(fitting)
    }

    /// The mistake made while configuring this key, if any.
    pub(crate) fn mistake(&self) -> Option<&ConfigError> {
        self.mistake.as_ref()
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub(crate) fn algs(&self) -> AlgSet {
        self.algs
    }

    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.kid == other.kid && self.fingerprint == other.fingerprint
    }

    fn rsa(n: &[u8], e: &[u8], algs: Option<AlgSet>) -> Result<Self, ConfigError> {
        let n = strip_zeros(n);
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(invalid(format!(
                "an RSA key of {bits} bits is outside {MIN_RSA_BITS}-{MAX_RSA_BITS}"
            )));
        }
        let e = strip_zeros(e);
        if e.is_empty() || e.len() > 8 {
            return Err(invalid("the RSA exponent is out of range"));
        }
        let mut fingerprint = n.to_vec();
        fingerprint.extend_from_slice(e);
        Self::checked(
            Family::Rsa,
            algs.unwrap_or(AlgSet::of([Algorithm::RS256])),
            DecodingKey::from_rsa_raw_components(n, e),
            fingerprint,
        )
    }

    fn ec(family: Family, point: &[u8]) -> Result<Self, ConfigError> {
        let alg = if family == Family::P256 {
            Algorithm::ES256
        } else {
            Algorithm::ES384
        };
        Self::checked(
            family,
            AlgSet::of([alg]),
            DecodingKey::from_ec_der(point),
            point.to_vec(),
        )
    }

    fn ed25519(x: &[u8; 32]) -> Result<Self, ConfigError> {
        Self::checked(
            Family::Ed25519,
            AlgSet::of([Algorithm::EdDSA]),
            DecodingKey::from_ed_der(x),
            x.to_vec(),
        )
    }

    /// A key whose material the crypto backend accepts (an EC point on its curve, an RSA key
    /// it can use), so that a bad key fails here and not per request.
    fn checked(
        family: Family,
        algs: AlgSet,
        material: DecodingKey,
        fingerprint: Vec<u8>,
    ) -> Result<Self, ConfigError> {
        let algs = AlgSet::of(
            ALL.into_iter()
                .filter(|a| algs.contains(*a) && family.allows(*a)),
        );
        let Some(probe) = ALL.into_iter().find(|a| algs.contains(*a)) else {
            return Err(invalid("no algorithm fits the key"));
        };
        verifier(probe, &material).map_err(|_| invalid("the key material is not valid"))?;
        Ok(Self {
            kid: None,
            algs,
            family,
            material,
            fingerprint: fingerprint.into_boxed_slice(),
            mistake: None,
        })
    }
}

impl Family {
    fn allows(self, alg: Algorithm) -> bool {
        match self {
            Self::Rsa => alg.is_rsa(),
            Self::P256 => alg == Algorithm::ES256,
            Self::P384 => alg == Algorithm::ES384,
            Self::Ed25519 => alg == Algorithm::EdDSA,
            Self::Hmac => matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512),
        }
    }
}

fn strip_zeros(mut v: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = v {
        v = rest;
    }
    v
}

/// The RustCrypto verifier for `alg` over `key`. Called on the provider directly rather than
/// through jsonwebtoken's process-wide provider selection, which panics when a host's
/// dependency graph enables both of its crypto backends.
pub(crate) fn verifier(
    alg: Algorithm,
    key: &DecodingKey,
) -> Result<Box<dyn jsonwebtoken::crypto::JwtVerifier>, jsonwebtoken::errors::Error> {
    (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&alg.to_jwt(), key)
}

/// Whether `signature` is `key`'s signature of `message` under `alg`: by AWS-LC with the
/// `aws-lc` feature (HMAC excepted), by RustCrypto otherwise.
pub(crate) fn verify(alg: Algorithm, key: &Key, message: &[u8], signature: &[u8]) -> bool {
    #[cfg(feature = "aws-lc")]
    if let Some(ok) = aws_lc::verify(alg, &key.material, message, signature) {
        return ok;
    }
    verify_rust_crypto(alg, key, message, signature)
}

/// Whether `signature` is `key`'s signature of `message` under `alg`, by RustCrypto.
pub(crate) fn verify_rust_crypto(
    alg: Algorithm,
    key: &Key,
    message: &[u8],
    signature: &[u8],
) -> bool {
    verifier(alg, &key.material).is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    // Test keys generated for these tests only (tests/fixtures/jwt/README.md).
    const P256_PEM: &str = include_str!("../../../tests/fixtures/jwt/es256.pub.pem");
    const RSA_PEM: &str = include_str!("../../../tests/fixtures/jwt/rs256.pub.pem");
    const ED_PEM: &str = include_str!("../../../tests/fixtures/jwt/eddsa.pub.pem");

    #[test]
    fn pem_keys_of_each_family_load_with_their_algorithm() {
        let ec = Key::from_pem(P256_PEM).unwrap();
        assert!(ec.algs().contains(Algorithm::ES256));
        assert!(!ec.algs().contains(Algorithm::HS256));
        let rsa = Key::from_pem(RSA_PEM).unwrap();
        assert!(rsa.algs().contains(Algorithm::RS256));
        assert!(!rsa.algs().contains(Algorithm::PS256));
        let ed = Key::from_pem(ED_PEM).unwrap();
        assert!(ed.algs().contains(Algorithm::EdDSA));
        assert!(
            Key::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err()
        );
    }

    #[test]
    fn rfc8725_2_1_an_rsa_key_never_verifies_hmac() {
        let rsa = Key::from_pem(RSA_PEM).unwrap();
        assert!(
            rsa.clone()
                .with_algorithms([Algorithm::HS256])
                .mistake()
                .is_some()
        );
        let both = rsa.with_algorithms([Algorithm::HS256, Algorithm::PS256]);
        assert!(both.mistake().is_none());
        assert!(both.algs().contains(Algorithm::PS256));
        assert!(!both.algs().contains(Algorithm::HS256));
    }

    #[test]
    fn rfc7518_3_2_short_hmac_secrets_are_refused() {
        assert!(Key::hmac(&[7; 31], Algorithm::HS256).is_err());
        assert!(Key::hmac(&[7; 32], Algorithm::HS256).is_ok());
        assert!(Key::hmac(&[7; 48], Algorithm::HS512).is_err());
        assert!(Key::hmac(&[7; 64], Algorithm::ES256).is_err());
    }

    #[test]
    fn jwks_entries_are_checked() {
        let rs = AlgSet::of([Algorithm::RS256]);
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(
            Key::from_jwk_value(&oct, rs).is_err(),
            "no symmetric key from a key set"
        );
        let enc = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "use": "enc",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(Key::from_jwk_value(&enc, rs).is_err(), "encryption key");
        // A short Ed25519 `x` is refused, not passed on to the backend.
        let short = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"});
        assert!(Key::from_jwk_value(&short, rs).is_err());
        let ok = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = Key::from_jwk_value(&ok, rs).unwrap();
        assert_eq!(key.kid(), Some("k1"));
        // An EC point that is not on the curve.
        let off = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])});
        assert!(Key::from_jwk_value(&off, rs).is_err());
        // alg that contradicts the key type.
        let wrong = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "HS256",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(Key::from_jwk_value(&wrong, rs).is_err());
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        let n = URL_SAFE_NO_PAD.encode([0xffu8; 128]); // 1024 bits
        let jwk = serde_json::json!({"kty": "RSA", "n": n, "e": "AQAB"});
        let err = Key::from_jwk_value(&jwk, AlgSet::of([Algorithm::RS256])).unwrap_err();
        assert!(err.to_string().contains("1024 bits"), "{err}");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = Key::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::HS256).unwrap();
        assert!(!format!("{k:?}").contains("0123456789"));
    }
}

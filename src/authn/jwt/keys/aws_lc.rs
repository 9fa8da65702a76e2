//! Signature verification by AWS-LC (feature `aws-lc`): the same checks as RustCrypto's, in
//! fewer instructions. The key bytes are what jsonwebtoken's `DecodingKey` holds: a SEC1
//! uncompressed point (ECDSA), the 32-byte public key (Ed25519), a PKCS#1 `RSAPublicKey`
//! document or the modulus and exponent (RSA).

use aws_lc_rs::signature::{self as sig, RsaParameters, VerificationAlgorithm};
use jsonwebtoken::{AlgorithmFamily, DecodingKey, DecodingKeyKind};

use super::Algorithm;

/// Whether `signature` is `key`'s signature of `message` under `alg`; `None` for the HMAC
/// algorithms, which stay with RustCrypto.
pub(super) fn verify(
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &[u8],
) -> Option<bool> {
    let ok = match alg {
        Algorithm::ES256 => plain(
            &sig::ECDSA_P256_SHA256_FIXED,
            key,
            AlgorithmFamily::Ec,
            message,
            signature,
        ),
        Algorithm::ES384 => plain(
            &sig::ECDSA_P384_SHA384_FIXED,
            key,
            AlgorithmFamily::Ec,
            message,
            signature,
        ),
        Algorithm::EdDSA => plain(&sig::ED25519, key, AlgorithmFamily::Ed, message, signature),
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256, key, message, signature),
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384, key, message, signature),
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512, key, message, signature),
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256, key, message, signature),
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384, key, message, signature),
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512, key, message, signature),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    };
    Some(ok)
}

fn plain(
    alg: &'static dyn VerificationAlgorithm,
    key: &DecodingKey,
    family: AlgorithmFamily,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) if key.family() == family => {
            sig::UnparsedPublicKey::new(alg, bytes)
                .verify(message, signature)
                .is_ok()
        }
        _ => false,
    }
}

fn rsa(alg: &'static RsaParameters, key: &DecodingKey, message: &[u8], signature: &[u8]) -> bool {
    if key.family() != AlgorithmFamily::Rsa {
        return false;
    }
    match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(alg, der)
            .verify(message, signature)
            .is_ok(),
        DecodingKeyKind::RsaModulusExponent { n, e } => sig::RsaPublicKeyComponents { n, e }
            .verify(alg, message, signature)
            .is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::EncodingKey;

    use super::super::{Key, verify_rust_crypto};
    use super::*;

    // Test keys generated for these tests only (tests/fixtures/jwt/README.md).
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    fn pem(name: &str) -> Key {
        Key::from_pem(&String::from_utf8(fixture(name)).unwrap()).unwrap()
    }

    fn jwk(kid: &str) -> Key {
        let set: serde_json::Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
        let jwk = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap();
        Key::from_jwk(&jwk.to_string()).unwrap()
    }

    /// Both backends' answer, which must be the same.
    fn both(alg: Algorithm, key: &Key, message: &[u8], signature: &[u8]) -> bool {
        let lc = verify(alg, &key.material, message, signature).unwrap();
        let rc = verify_rust_crypto(alg, key, message, signature);
        assert_eq!(lc, rc, "{alg:?}: aws-lc {lc}, RustCrypto {rc}");
        lc
    }

    #[test]
    fn rfc7518_3_3_to_3_5_and_rfc8037_3_1_aws_lc_and_rust_crypto_agree() {
        let rsa = EncodingKey::from_rsa_der(&fixture("rs256.key.der"));
        let mut cases = vec![
            (
                Algorithm::ES256,
                EncodingKey::from_ec_der(&fixture("es256.key.der")),
                pem("es256.pub.pem"),
                jwk("es256"),
            ),
            (
                Algorithm::EdDSA,
                EncodingKey::from_ed_der(&fixture("eddsa.key.der")),
                pem("eddsa.pub.pem"),
                jwk("eddsa"),
            ),
            (
                Algorithm::RS256,
                rsa.clone(),
                pem("rs256.pub.pem"),
                jwk("rs256"),
            ),
            (
                Algorithm::RS384,
                rsa.clone(),
                pem("rs256.pub.pem"),
                jwk("rs256"),
            ),
            (
                Algorithm::RS512,
                rsa.clone(),
                pem("rs256.pub.pem"),
                jwk("rs256"),
            ),
            (
                Algorithm::PS256,
                rsa.clone(),
                pem("rs256.pub.pem"),
                jwk("rs256"),
            ),
            (
                Algorithm::PS384,
                rsa.clone(),
                pem("rs256.pub.pem"),
                jwk("rs256"),
            ),
            (Algorithm::PS512, rsa, pem("rs256.pub.pem"), jwk("rs256")),
        ];
        // P-384: a key made here (no fixture), from a fixed scalar.
        let (p384_signer, p384_key) = p384_pair();
        cases.push((Algorithm::ES384, p384_signer, p384_key.clone(), p384_key));
        let other = pem("es256-next.pub.pem");
        for (alg, signer, from_pem, from_jwk) in cases {
            let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
            let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
            let signature = jsonwebtoken::crypto::sign(message, &signer, alg.to_jwt()).unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            // A PEM key is a DER document or a point; a JWK RSA key is its modulus and exponent.
            for key in [&from_pem, &from_jwk] {
                assert!(both(alg, key, message, &signature), "{alg:?} valid");
                assert!(!both(
                    alg,
                    key,
                    b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ",
                    &signature
                ));
                let mut flipped = signature.clone();
                flipped[signature.len() / 2] ^= 1;
                assert!(!both(alg, key, message, &flipped), "{alg:?} flipped bit");
                assert!(!both(alg, key, message, &signature[..signature.len() - 1]));
                assert!(!both(alg, key, message, &[]), "{alg:?} empty signature");
            }
            // A key of another family or another key of the same family.
            let stranger = if alg == Algorithm::ES256 {
                &other
            } else {
                &pem("es256.pub.pem")
            };
            assert!(
                !both(alg, stranger, message, &signature),
                "{alg:?} wrong key"
            );
        }
    }

    /// A P-384 signing key and its public key, from a fixed scalar.
    fn p384_pair() -> (EncodingKey, Key) {
        use p384::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
        let secret = p384::SecretKey::from_slice(&[7; 48]).unwrap();
        let der = secret.to_pkcs8_der().unwrap();
        let public = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (
            EncodingKey::from_ec_der(der.as_bytes()),
            Key::from_pem(&public).unwrap(),
        )
    }

    #[test]
    fn hmac_stays_with_rust_crypto() {
        let key = Key::hmac(&[7; 32], Algorithm::HS256).unwrap();
        assert_eq!(
            verify(Algorithm::HS256, &key.material, b"m", &[0; 32]),
            None
        );
    }
}

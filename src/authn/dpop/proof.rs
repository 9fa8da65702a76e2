//! One DPoP proof (RFC 9449 §4.2) taken apart and checked (§4.3): the JWT, its key, its
//! claims, and the RFC 7638 thumbprint of its key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::authn::jwt::keys::{self, AlgSet, Algorithm, Key};
use crate::authn::jwt::token::unique_object;
use crate::rejection::AuthnReason;

/// The longest proof read, in bytes: an RSA-4096 `jwk` and its signature fit with room.
pub(super) const MAX_PROOF_BYTES: usize = 4 * 1024;

/// The longest `jti` accepted, in bytes (RFC 9449 §4.2 asks for 96 bits of randomness).
const MAX_JTI_BYTES: usize = 256;

/// The JOSE header members of a proof (RFC 9449 §4.2).
#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: String,
    jwk: Option<Value>,
    crit: Option<IgnoredAny>,
}

/// A proof whose signature verified: what the request-level checks read.
pub(super) struct Signed {
    pub(super) claims: Map<String, Value>,
    /// `base64url(SHA-256(canonical jwk))` (RFC 7638), what `cnf.jkt` names.
    pub(super) thumbprint: String,
}

/// The private members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2): a proof's key
/// holding any of them is refused (RFC 9449 §4.3 check 7).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks 2 to 7 of RFC 9449 §4.3: a well-formed JWT of type `dpop+jwt`, an allowed asymmetric
/// algorithm, a public `jwk` that fits it, and a signature by that key.
pub(super) fn verify(proof: &[u8], algs: AlgSet) -> Result<Signed, AuthnReason> {
    let malformed = AuthnReason::DpopProofMalformed;
    if proof.len() > MAX_PROOF_BYTES {
        return Err(malformed);
    }
    let proof = std::str::from_utf8(proof).map_err(|_| malformed)?;
    let (signing_input, signature) = proof.rsplit_once('.').ok_or(malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(malformed)?;
    if payload.contains('.') {
        return Err(malformed);
    }
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed)?;
    let header = unique_object(&header).map_err(|_| malformed)?;
    let header = Header::deserialize(Value::Object(header)).map_err(|_| malformed)?;
    if header.crit.is_some() {
        return Err(malformed);
    }
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(AuthnReason::DpopProofType);
    }
    // Check 5: never `none`, never HMAC (a shared secret proves nothing), only those allowed.
    let alg = Algorithm::from_name(&header.alg)
        .filter(|a| algs.contains(*a))
        .ok_or(AuthnReason::DpopProofAlgorithm)?;
    let jwk = header.jwk.ok_or(malformed)?;
    let key = public_key(&jwk, alg)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed)?;
    if signature.is_empty() || !keys::verify(alg, &key, signing_input.as_bytes(), &signature) {
        return Err(AuthnReason::DpopProofSignature);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed)?;
    let claims = unique_object(&payload).map_err(|_| malformed)?;
    Ok(Signed {
        claims,
        thumbprint: thumbprint(&jwk).ok_or(AuthnReason::DpopProofKey)?,
    })
}

/// The proof's key: a public JWK (check 7) of a family that allows `alg` (check 5).
fn public_key(jwk: &Value, alg: Algorithm) -> Result<Key, AuthnReason> {
    let Some(members) = jwk.as_object() else {
        return Err(AuthnReason::DpopProofKey);
    };
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(AuthnReason::DpopProofKey);
    }
    let key = Key::from_jwk_value(jwk, AlgSet::of([alg])).map_err(|_| AuthnReason::DpopProofKey)?;
    if key.algs().contains(alg) {
        Ok(key)
    } else {
        Err(AuthnReason::DpopProofAlgorithm)
    }
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members, in
/// lexicographic order, without whitespace; base64url without padding.
pub(crate) fn thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let required: &[&str] = match member("kty")? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for name in required {
        canonical.insert((*name).into(), Value::String(member(name)?.into()));
    }
    // serde_json's map keeps keys sorted (no `preserve_order` here) and writes no whitespace.
    let text = serde_json::to_vec(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(text)))
}

/// `base64url(SHA-256(token))`: the proof's `ath` for an access token (RFC 9449 §4.2).
pub(super) fn token_hash(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token))
}

/// The string claim `name`, `DpopProofMalformed` if absent or not a string.
pub(super) fn string_claim<'c>(
    claims: &'c Map<String, Value>,
    name: &str,
) -> Result<&'c str, AuthnReason> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(AuthnReason::DpopProofMalformed)
}

/// The `jti`: a non-empty string of at most [`MAX_JTI_BYTES`].
pub(super) fn jti(claims: &Map<String, Value>) -> Result<&str, AuthnReason> {
    let jti = string_claim(claims, "jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(AuthnReason::DpopProofMalformed);
    }
    Ok(jti)
}

/// The `iat` in whole seconds (a NumericDate may have a fraction; it is dropped).
pub(super) fn iat(claims: &Map<String, Value>) -> Result<u64, AuthnReason> {
    match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
                    .map(|f| {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let secs = f as u64;
                        secs
                    })
            })
            .ok_or(AuthnReason::DpopProofMalformed),
        _ => Err(AuthnReason::DpopProofMalformed),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc7638_3_1_thumbprint_of_the_rfcs_example_key() {
        // RFC 7638 §3.1: this RSA key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "x"})), None);
        assert_eq!(
            thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": "a"})),
            None
        );
    }

    #[test]
    fn rfc9449_4_2_ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1's example access token and its ath.
        assert_eq!(
            token_hash(b"Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn iat_reads_integers_and_fractions() {
        let c = |v: Value| json!({ "iat": v }).as_object().unwrap().clone();
        assert_eq!(iat(&c(json!(1_700_000_000))), Ok(1_700_000_000));
        assert_eq!(iat(&c(json!(1_700_000_000.7))), Ok(1_700_000_000));
        for bad in [json!(-1), json!("1"), json!(null), json!(1e300)] {
            assert_eq!(iat(&c(bad)), Err(AuthnReason::DpopProofMalformed));
        }
    }
}

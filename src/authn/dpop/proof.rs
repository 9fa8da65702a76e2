//! One DPoP proof (RFC 9449 §4.2) taken apart and checked (§4.3): the JWT, its key, its
//! claims, and the RFC 7638 thumbprint of its key.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::authn::bearer::TokenCache;
use crate::authn::jwt::keys::{self, AlgSet, Algorithm, Key};
use crate::authn::jwt::token::unique_object;
use crate::clock::Timestamp;
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
    pub(super) thumbprint: Arc<str>,
}

/// What a proof's header says once checked: its algorithm, its key, the key's thumbprint.
/// A client signs every proof with one key, so its proofs' headers are the same bytes: they
/// are checked once and then found in [`HeaderCache`].
#[derive(Debug)]
pub(super) struct ProofKey {
    alg: Algorithm,
    key: Key,
    thumbprint: Arc<str>,
}

/// Checked proof headers, by a keyed hash of their base64url text (never trusted on a
/// collision: 128-bit SipHash under a per-process random key); re-checked after an hour.
pub(super) type HeaderCache = TokenCache<Arc<ProofKey>>;

/// How long a checked header is trusted before it is checked again.
const HEADER_TTL: Duration = Duration::from_secs(3600);

/// The header's key, from the cache or checked now (checks 2 to 5 and 7); with the cache
/// key to remember it under once a signature by it verified (`None` if it came from there).
fn header_key(
    header: &str,
    algs: AlgSet,
    cache: &HeaderCache,
    now: Timestamp,
) -> Result<(Arc<ProofKey>, Option<u128>), AuthnReason> {
    let malformed = AuthnReason::DpopProofMalformed;
    let id = cache.key(header.as_bytes());
    if let Some(known) = cache.get(id, now) {
        return Ok((known, None));
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
    let thumbprint = thumbprint(&jwk).ok_or(AuthnReason::DpopProofKey)?.into();
    let known = Arc::new(ProofKey {
        alg,
        key,
        thumbprint,
    });
    Ok((known, Some(id)))
}

/// Checks 2 to 7 of RFC 9449 §4.3: a well-formed JWT of type `dpop+jwt`, an allowed asymmetric
/// algorithm, a public `jwk` that fits it, and a signature by that key.
pub(super) fn verify(
    proof: &[u8],
    algs: AlgSet,
    cache: &HeaderCache,
    now: Timestamp,
) -> Result<Signed, AuthnReason> {
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
    let (known, new) = header_key(header, algs, cache, now)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed)?;
    let signed = signing_input.as_bytes();
    if signature.is_empty() || !keys::verify(known.alg, &known.key, signed, &signature) {
        return Err(AuthnReason::DpopProofSignature);
    }
    // Only a header whose key signed something is remembered: a flood of made-up keys
    // costs the cache nothing.
    if let Some(id) = new {
        cache.insert(id, known.clone(), now.saturating_add(HEADER_TTL), now);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed)?;
    let claims = unique_object(&payload).map_err(|_| malformed)?;
    Ok(Signed {
        claims,
        thumbprint: known.thumbprint.clone(),
    })
}

/// The private members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2): a proof's key
/// holding any of them is refused (RFC 9449 §4.3 check 7).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

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
    // Written out directly: every value is a key type, a curve name or base64url, none of
    // which JSON escapes (anything else has no thumbprint).
    let mut text = String::with_capacity(512);
    for (i, name) in required.iter().enumerate() {
        let value = member(name)?;
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        text.push(if i == 0 { '{' } else { ',' });
        text.push('"');
        text.push_str(name);
        text.push_str("\":\"");
        text.push_str(value);
        text.push('"');
    }
    text.push('}');
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(text)))
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
    use crate::authn::possession::token_hash;

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
            thumbprint(&json!({"kty": "OKP", "crv": "Ed25519", "x": "a\"b"})),
            None
        );
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

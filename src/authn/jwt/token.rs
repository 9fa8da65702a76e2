//! A compact JWS (RFC 7515 §7.1) taken apart, and the claim checks of RFC 7519 §4.1 and
//! RFC 8725.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::keys::Algorithm;
use crate::clock::Timestamp;
use crate::rejection::AuthnReason;

/// The JOSE header fields palisade reads. Key-pointing fields (`jku`, `x5u`, `jwk`, `x5c`)
/// are deliberately not read: keys come from configuration only (RFC 8725 §3.10).
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// A token taken apart, signature not yet checked.
pub(crate) struct Parsed<'t> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `base64url(header) . base64url(payload)`: what was signed.
    pub(crate) signing_input: &'t str,
    pub(crate) signature: Vec<u8>,
}

/// Takes a compact JWS apart. Refuses `alg: none` and any algorithm palisade does not know,
/// any `crit` header (palisade understands no extension: RFC 7515 §4.1.11), and anything that
/// is not exactly three base64url segments (a JWE has five).
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, AuthnReason> {
    let malformed = AuthnReason::MalformedToken;
    let (signing_input, signature) = token.rsplit_once('.').ok_or(malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(malformed)?;
    if payload.contains('.') {
        return Err(malformed);
    }
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed)?;
    let header: Header =
        serde_json::from_value(unique_object(&header)?.into()).map_err(|_| malformed)?;
    if header.crit.is_some() {
        return Err(AuthnReason::UnknownCriticalHeader);
    }
    // RFC 8725 §3.1: `none` and unknown names are refused outright.
    let alg = Algorithm::from_name(&header.alg).ok_or(AuthnReason::UnsupportedAlgorithm)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed)?;
    if signature.is_empty() {
        return Err(AuthnReason::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed)?;
    let claims = unique_object(&payload)?;
    Ok(Parsed {
        alg,
        kid: header.kid,
        typ: header.typ,
        claims,
        signing_input,
        signature,
    })
}

/// A JSON object whose member names are unique, in it and in every object inside it. RFC 7515
/// §5.2 and RFC 7519 §4 let a parser either refuse duplicate names or keep the last one;
/// palisade refuses them, so that no two readers of a token (the provider's, a gateway's,
/// this one) can see different claims in it.
pub(crate) fn unique_object(json: &[u8]) -> Result<Map<String, Value>, AuthnReason> {
    match serde_json::from_slice::<Unique>(json) {
        Ok(Unique(Value::Object(map))) => Ok(map),
        Ok(_) => Err(AuthnReason::MalformedToken),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(AuthnReason::DuplicateMember),
        Err(_) => Err(AuthnReason::MalformedToken),
    }
}

/// How [`Unique`] words its error, to tell it from a syntax error.
const DUPLICATE: &str = "duplicate member name";

/// A JSON value read by [`UniqueVisitor`].
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

/// Builds a [`Value`] as serde_json does, but fails on a member name seen before in the same
/// object.
struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Unique(value) = map.next_value()?;
            if members.contains_key(&name) {
                return Err(A::Error::custom(DUPLICATE));
            }
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

/// The claim checks, as configured.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) leeway: Duration,
    pub(crate) max_age: Option<Duration>,
    /// The longest `exp - iat` (`exp - now` without `iat`).
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) required: Vec<Box<str>>,
    /// RFC 9068 §4 / RFC 8725 §3.11: the `typ` header required, compared case-insensitively
    /// and with or without the `application/` prefix.
    pub(crate) typ: Option<Box<str>>,
}

/// A NumericDate claim (RFC 7519 §2) as a timestamp: `None` when absent, `Err` when present
/// but not a non-negative number.
fn date(claims: &Map<String, Value>, name: &str) -> Result<Option<Timestamp>, AuthnReason> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => {
            let secs = v.as_f64().filter(|s| s.is_finite() && *s >= 0.0);
            let secs = secs.ok_or(AuthnReason::MissingClaim)?;
            // Saturating float-to-int cast: dates past 2554 become "far future".
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let nanos = (secs * 1e9) as u64;
            Ok(Some(Timestamp::from_unix_nanos(nanos)))
        }
    }
}

impl ClaimRules {
    /// Checks the time claims, `typ` and the required claims; returns the token's `exp`.
    /// `aud` and `iss` are the issuer's business.
    pub(crate) fn check(
        &self,
        parsed: &Parsed<'_>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthnReason> {
        if let Some(want) = &self.typ {
            let got = parsed.typ.as_deref().unwrap_or("");
            let got = strip_prefix_ci(got, "application/").unwrap_or(got);
            if !got.eq_ignore_ascii_case(want) {
                return Err(AuthnReason::WrongTokenType);
            }
        }
        let claims = &parsed.claims;
        // RFC 7519 §4.1.4: exp is optional there, but a token that never expires is not
        // accepted here (RFC 9068 §2.2 requires it of access tokens).
        let exp = date(claims, "exp")?.ok_or(AuthnReason::MissingClaim)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthnReason::TokenExpired);
        }
        if let Some(nbf) = date(claims, "nbf")?
            && now.saturating_add(self.leeway) < nbf
        {
            return Err(AuthnReason::TokenNotYetValid);
        }
        let iat = date(claims, "iat")?;
        if let Some(max_age) = self.max_age {
            let iat = iat.ok_or(AuthnReason::MissingClaim)?;
            if now.saturating_duration_since(iat) > max_age + self.leeway {
                return Err(AuthnReason::TokenTooOld);
            }
        }
        if let Some(iat) = iat {
            // Issued in the future: a clock far off, or a forged date.
            if iat > now.saturating_add(self.leeway) {
                return Err(AuthnReason::TokenNotYetValid);
            }
        }
        if let Some(max) = self.max_lifetime
            && exp.saturating_duration_since(iat.unwrap_or(now)) > max + self.leeway
        {
            return Err(AuthnReason::LifetimeTooLong);
        }
        if self.required.iter().any(|c| !claims.contains_key(&**c)) {
            return Err(AuthnReason::MissingClaim);
        }
        Ok(exp)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// RFC 7519 §4.1.3: `aud` is a string or an array of strings; one of them must be ours.
pub(crate) fn audience_matches(claims: &Map<String, Value>, audiences: &[Box<str>]) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => audiences.iter().any(|x| **x == **a),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| &**x == a)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(claims), b64("sig"))
    }

    const NOW: u64 = 1_767_225_600;

    fn rules() -> ClaimRules {
        ClaimRules {
            leeway: Duration::from_secs(30),
            max_age: None,
            max_lifetime: None,
            required: Vec::new(),
            typ: None,
        }
    }

    fn check(rules: &ClaimRules, claims: &str) -> Result<Timestamp, AuthnReason> {
        let t = token(r#"{"alg":"ES256"}"#, claims);
        rules.check(&parse(&t).unwrap(), Timestamp::from_unix_secs(NOW))
    }

    #[test]
    fn rfc8725_3_1_alg_none_and_unknown_algorithms_are_refused() {
        for alg in ["none", "None", "NONE", "es256", "HS1", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                parse(&t).err(),
                Some(AuthnReason::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn rfc7515_4_1_11_crit_headers_are_refused() {
        let t = token(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, "{}");
        assert_eq!(parse(&t).err(), Some(AuthnReason::UnknownCriticalHeader));
    }

    #[test]
    fn rfc7515_5_2_duplicate_header_names_are_refused() {
        // Known names (the second `alg` would have won with serde_json's last-wins reading)
        // and names palisade does not read alike.
        for header in [
            r#"{"alg":"ES256","alg":"none"}"#,
            r#"{"alg":"ES256","kid":"a","kid":"b"}"#,
            r#"{"alg":"ES256","x5u":"https://a","x5u":"https://b"}"#,
            r#"{"alg":"ES256","x":{"y":1,"y":2}}"#,
        ] {
            let t = token(header, "{}");
            assert_eq!(
                parse(&t).err(),
                Some(AuthnReason::DuplicateMember),
                "{header}"
            );
        }
    }

    #[test]
    fn rfc7519_4_duplicate_claim_names_are_refused() {
        for claims in [
            r#"{"sub":"alice","sub":"admin"}"#,
            r#"{"sub":"alice","exp":1,"iss":"i","exp":2}"#,
            r#"{"sub":"alice","realm_access":{"roles":["a"],"roles":["admin"]}}"#,
            r#"{"sub":"alice","x":[{"a":1},{"b":1,"b":1}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let t = token(r#"{"alg":"ES256"}"#, claims);
            assert_eq!(
                parse(&t).err(),
                Some(AuthnReason::DuplicateMember),
                "{claims}"
            );
        }
        // The same name in different objects is fine, and values read as serde_json reads
        // them.
        let claims = r#"{"sub":"alice","a":{"n":1},"b":{"n":-2.5},"c":[true,null,"x",18446744073709551615]}"#;
        let t = token(r#"{"alg":"ES256"}"#, claims);
        let parsed = parse(&t).unwrap();
        assert_eq!(
            Value::Object(parsed.claims),
            serde_json::from_str::<Value>(claims).unwrap()
        );
        // Syntax errors stay syntax errors.
        let t = token(r#"{"alg":"ES256"}"#, r#"{"sub":"alice",}"#);
        assert_eq!(parse(&t).err(), Some(AuthnReason::MalformedToken));
    }

    #[test]
    fn rfc7515_7_1_only_three_segment_tokens_parse() {
        assert!(parse("a.b").is_err());
        assert!(parse("a.b.c.d.e").is_err(), "a JWE is not a JWS");
        let t = token(r#"{"alg":"ES256"}"#, "{}");
        assert!(parse(&t).is_ok());
        assert!(parse(&format!("{t}=")).is_err(), "padding is not base64url");
        let empty_sig = format!("{}.{}.", b64(r#"{"alg":"ES256"}"#), b64("{}"));
        assert_eq!(parse(&empty_sig).err(), Some(AuthnReason::BadSignature));
        let not_object = format!("{}.{}.{}", b64(r#"{"alg":"ES256"}"#), b64("[1]"), b64("s"));
        assert_eq!(parse(&not_object).err(), Some(AuthnReason::MalformedToken));
    }

    #[test]
    fn rfc7519_4_1_4_exp_is_required_and_enforced_with_leeway() {
        let r = rules();
        assert_eq!(check(&r, "{}").err(), Some(AuthnReason::MissingClaim));
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{}}}"#, NOW - 31)).err(),
            Some(AuthnReason::TokenExpired)
        );
        assert!(check(&r, &format!(r#"{{"exp":{}}}"#, NOW - 29)).is_ok());
        assert_eq!(
            check(&r, r#"{"exp":"tomorrow"}"#).err(),
            Some(AuthnReason::MissingClaim)
        );
    }

    #[test]
    fn rfc7519_4_1_5_nbf_in_the_future_is_refused() {
        let r = rules();
        let exp = NOW + 3600;
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 31)).err(),
            Some(AuthnReason::TokenNotYetValid)
        );
        assert!(check(&r, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 29)).is_ok());
    }

    #[test]
    fn rfc7519_4_1_6_iat_max_age_and_future_iat() {
        let r = ClaimRules {
            max_age: Some(Duration::from_secs(600)),
            ..rules()
        };
        let exp = NOW + 3600;
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp}}}"#)).err(),
            Some(AuthnReason::MissingClaim)
        );
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 700)).err(),
            Some(AuthnReason::TokenTooOld)
        );
        assert!(check(&r, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 100)).is_ok());
        assert_eq!(
            check(
                &rules(),
                &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW + 3000)
            )
            .err(),
            Some(AuthnReason::TokenNotYetValid)
        );
    }

    #[test]
    fn the_lifetime_is_bounded_from_iat_or_from_now() {
        let r = ClaimRules {
            max_lifetime: Some(Duration::from_secs(3600)),
            leeway: Duration::ZERO,
            ..rules()
        };
        let (iat, exp) = (NOW - 10, NOW + 3590);
        assert!(check(&r, &format!(r#"{{"iat":{iat},"exp":{exp}}}"#)).is_ok());
        let exp = NOW + 3591;
        assert_eq!(
            check(&r, &format!(r#"{{"iat":{iat},"exp":{exp}}}"#)).err(),
            Some(AuthnReason::LifetimeTooLong)
        );
        // Without `iat`: what is left of it from now.
        let exp = NOW + 3600;
        assert!(check(&r, &format!(r#"{{"exp":{exp}}}"#)).is_ok());
        let exp = NOW + 365 * 86_400;
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp}}}"#)).err(),
            Some(AuthnReason::LifetimeTooLong)
        );
    }

    #[test]
    fn rfc9068_4_typ_is_checked_when_required() {
        let r = ClaimRules {
            typ: Some("at+jwt".into()),
            ..rules()
        };
        let claims = format!(r#"{{"exp":{}}}"#, NOW + 60);
        for (typ, ok) in [
            ("at+jwt", true),
            ("AT+JWT", true),
            ("application/at+jwt", true),
            ("JWT", false),
        ] {
            let t = token(&format!(r#"{{"alg":"ES256","typ":"{typ}"}}"#), &claims);
            let got = r.check(&parse(&t).unwrap(), Timestamp::from_unix_secs(NOW));
            assert_eq!(got.is_ok(), ok, "{typ}");
        }
        let t = token(r#"{"alg":"ES256"}"#, &claims);
        assert_eq!(
            r.check(&parse(&t).unwrap(), Timestamp::from_unix_secs(NOW))
                .err(),
            Some(AuthnReason::WrongTokenType)
        );
    }

    #[test]
    fn rfc7519_4_1_3_aud_string_or_array() {
        let ours: Vec<Box<str>> = vec!["api".into()];
        let m = |s: &str| serde_json::from_str::<Map<String, Value>>(s).unwrap();
        assert!(audience_matches(&m(r#"{"aud":"api"}"#), &ours));
        assert!(audience_matches(&m(r#"{"aud":["x","api"]}"#), &ours));
        assert!(!audience_matches(&m(r#"{"aud":["x"]}"#), &ours));
        assert!(!audience_matches(&m(r#"{"aud":"apix"}"#), &ours));
        assert!(!audience_matches(&m("{}"), &ours));
    }

    #[test]
    fn required_claims_must_be_present() {
        let r = ClaimRules {
            required: vec!["jti".into()],
            ..rules()
        };
        let exp = NOW + 60;
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp}}}"#)).err(),
            Some(AuthnReason::MissingClaim)
        );
        assert!(check(&r, &format!(r#"{{"exp":{exp},"jti":"1"}}"#)).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[A-Za-z0-9_.=-]{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_any_header_json(header in any::<String>(), claims in any::<String>()) {
            let _ = parse(&token(&header, &claims));
        }
    }
}

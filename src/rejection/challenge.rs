//! [`ChallengeSet`]: every `WWW-Authenticate` value palisade sends, rendered here once per
//! scheme and realm (RFC 9110 §11.6.1; RFC 6750 §3 for bearer tokens), so a refusal allocates
//! none and no layer writes challenge text of its own.

use std::sync::Arc;

use http::HeaderValue;

use super::reasons::{AuthnReason, Scheme};
use super::{AuthnFailure, Rejection};
use crate::error::ConfigError;

/// The `WWW-Authenticate` values of one scheme and realm: the plain challenge (no credential)
/// and one per reason of the scheme. Cheap to clone.
///
/// - `ApiKey`: `ApiKey realm="api"`, and `ApiKey realm="api", error="invalid_key"` (the
///   reason's public code) for a refused key;
/// - `Bearer` (RFC 6750 §3): `Bearer realm="api"`, and `Bearer realm="api",
///   error="invalid_token", error_description="…"` (the reason's fixed detail, never the
///   token), or `error="invalid_request"` for a request with two credentials (§3.1).
///
/// ```
/// use palisade::rejection::{AuthnReason, ChallengeSet, Rejection, Scheme};
///
/// let set = ChallengeSet::new(Scheme::Bearer, "api")?;
/// assert_eq!(set.plain(), r#"Bearer realm="api""#);
/// let Rejection::Unauthenticated(f) = set.refuse(AuthnReason::TokenExpired) else { panic!() };
/// assert_eq!(
///     f.challenges()[0],
///     r#"Bearer realm="api", error="invalid_token", error_description="The access token has expired.""#
/// );
/// # Ok::<(), palisade::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChallengeSet {
    plain: HeaderValue,
    by_reason: Arc<[(AuthnReason, Arc<[HeaderValue]>)]>,
    fallback: Arc<[HeaderValue]>,
}

impl ChallengeSet {
    /// The challenges of `scheme` ([`Scheme::ApiKey`] or [`Scheme::Bearer`]) in `realm`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the realm is empty, longer than 64 bytes, or holds
    /// anything but visible ASCII (and spaces) other than `"` and `\`.
    pub fn new(scheme: Scheme, realm: &str) -> Result<Self, ConfigError> {
        Self::build(scheme, realm, "")
    }

    /// The challenges of `scheme` in a [`Realm`] already checked.
    #[must_use]
    pub fn for_realm(scheme: Scheme, realm: &Realm) -> Self {
        Self::build(scheme, realm.as_str(), "")
            .unwrap_or_else(|_| unreachable!("a Realm is always valid"))
    }

    /// The challenges of the `DPoP` scheme (RFC 9449 §7.1) in `realm`, naming the proof
    /// algorithms accepted (`algs`, space-separated JWS names): `DPoP realm="api",
    /// algs="ES256 EdDSA"`, and with `error="invalid_dpop_proof"`, `"use_dpop_nonce"` or
    /// `"invalid_token"` for a refusal.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a realm [`new`](Self::new) refuses, or `algs` that are not
    /// space-separated alphanumeric names.
    pub fn dpop(realm: &str, algs: &str) -> Result<Self, ConfigError> {
        let ok = !algs.is_empty()
            && algs.len() <= 256
            && algs
                .split(' ')
                .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ok {
            return Err(ConfigError::Invalid {
                field: "algs",
                message: "DPoP algorithms are space-separated JWS algorithm names".into(),
            });
        }
        Self::build(Scheme::Dpop, realm, &format!(", algs=\"{algs}\""))
    }

    fn build(scheme: Scheme, realm: &str, params: &str) -> Result<Self, ConfigError> {
        check_realm(realm)?;
        let name = scheme.name();
        let head = format!("{name} realm=\"{realm}\"{params}");
        let value = |s: String| HeaderValue::try_from(s).ok();
        let plain = value(head.clone()).unwrap_or_else(|| HeaderValue::from_static("Bearer"));
        let token = matches!(scheme, Scheme::Bearer | Scheme::Dpop);
        let by_reason = AuthnReason::ALL
            .iter()
            .filter_map(|&reason| {
                let text = match (scheme, reason) {
                    (_, AuthnReason::MultipleCredentials) if token => format!(
                        "{head}, error=\"invalid_request\", error_description=\"{}\"",
                        reason.detail()
                    ),
                    // A DPoP request refused for its token is answered in the DPoP scheme
                    // (RFC 9449 §7.1), with the token's error.
                    (Scheme::Bearer, r) if r.scheme() == Scheme::Bearer => with_error(&head, r),
                    (Scheme::Dpop, r) if matches!(r.scheme(), Scheme::Bearer | Scheme::Dpop) => {
                        with_error(&head, r)
                    }
                    (Scheme::ApiKey, r) if r.scheme() == Scheme::ApiKey => {
                        format!("{head}, error=\"{}\"", r.public_code())
                    }
                    _ => return None,
                };
                Some((reason, Arc::from([value(text)?])))
            })
            .collect();
        // A reason of no scheme of its own: the plain challenge for bearer tokens (RFC 6750
        // §3.1 asks for one on every 401), none for API keys.
        let fallback: Arc<[HeaderValue]> = if token {
            Arc::from([plain.clone()])
        } else {
            Arc::from([])
        };
        Ok(Self {
            plain,
            by_reason,
            fallback,
        })
    }

    /// The challenge without an error, sent when no credential was found.
    #[must_use]
    pub fn plain(&self) -> &HeaderValue {
        &self.plain
    }

    /// The challenges sent with a refusal for `reason`.
    #[must_use]
    pub fn for_reason(&self, reason: AuthnReason) -> Arc<[HeaderValue]> {
        self.by_reason
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or_else(|| self.fallback.clone(), |(_, c)| c.clone())
    }

    /// The refusal for `reason`, with its challenges.
    #[must_use]
    pub fn refuse(&self, reason: AuthnReason) -> Rejection {
        Rejection::Unauthenticated(AuthnFailure::new(reason, self.for_reason(reason)))
    }
}

/// `head` with the reason's public code and detail (RFC 6750 §3, RFC 9449 §7.1).
fn with_error(head: &str, reason: AuthnReason) -> String {
    format!(
        "{head}, error=\"{}\", error_description=\"{}\"",
        reason.public_code(),
        reason.detail()
    )
}

/// `<scheme> error="insufficient_scope", scope="…"` (RFC 6750 §3.1; under `DPoP`, RFC 9449
/// §7.1), for a 403.
pub(crate) fn insufficient_scope(scheme: Scheme, scopes: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{} error=\"insufficient_scope\", scope=\"{scopes}\"",
        scheme.name()
    ))
    .ok()
}

/// `challenge` (a `Bearer` challenge) under the `DPoP` scheme when `scheme` is `DPoP` (RFC
/// 9449 §7.1: a DPoP-bound token is challenged in the scheme it came in), else as it is.
pub(crate) fn in_scheme(challenge: &HeaderValue, scheme: Scheme) -> HeaderValue {
    let bytes = challenge.as_bytes();
    match bytes.strip_prefix(b"Bearer ") {
        Some(rest) if scheme == Scheme::Dpop => {
            let mut out = Vec::with_capacity(rest.len() + 5);
            out.extend_from_slice(b"DPoP ");
            out.extend_from_slice(rest);
            HeaderValue::from_bytes(&out).unwrap_or_else(|_| challenge.clone())
        }
        _ => challenge.clone(),
    }
}

/// Checks a `realm` for a challenge: 1 to 64 visible ASCII characters or spaces, no quote or
/// backslash.
/// A checked `realm` for a `WWW-Authenticate` challenge (RFC 9110 §11.6.1): 1 to 64 visible
/// ASCII characters (spaces allowed) without `"` or `\`, so it can be quoted as is.
///
/// Checked when made, so the authenticators that take one never fail in the middle of a
/// chain:
///
/// ```
/// use palisade::rejection::Realm;
///
/// let realm = Realm::new("orders")?;
/// assert_eq!(realm.as_str(), "orders");
/// assert!(Realm::new("bad\"realm").is_err());
/// assert_eq!(Realm::from_static("api").as_str(), "api");
/// # Ok::<(), palisade::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Realm(Box<str>);

impl Realm {
    /// `realm`, checked.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] (field `realm`) when it is empty, longer than 64 bytes, or
    /// holds anything but visible ASCII and spaces other than `"` and `\`.
    pub fn new(realm: &str) -> Result<Self, ConfigError> {
        check_realm(realm)?;
        Ok(Self(realm.into()))
    }

    /// A realm written in the code, like [`http::HeaderName::from_static`].
    ///
    /// # Panics
    ///
    /// When `realm` is not one [`new`](Self::new) accepts: a mistake in the code, not in
    /// input.
    #[must_use]
    pub fn from_static(realm: &'static str) -> Self {
        match Self::new(realm) {
            Ok(realm) => realm,
            Err(e) => panic!("invalid realm {realm:?}: {e}"),
        }
    }

    /// The realm's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_boxed_str(self) -> Box<str> {
        self.0
    }
}

impl std::fmt::Display for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn check_realm(realm: &str) -> Result<(), ConfigError> {
    let ok = !realm.is_empty()
        && realm.len() <= 64
        && realm
            .bytes()
            .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: "realm",
            message: "a realm is 1-64 visible ASCII characters without quotes or backslashes"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9449_7_1_authorization_challenges_follow_the_tokens_scheme() {
        assert_eq!(
            insufficient_scope(Scheme::Dpop, "a b").unwrap(),
            "DPoP error=\"insufficient_scope\", scope=\"a b\""
        );
        assert_eq!(
            insufficient_scope(Scheme::Bearer, "a").unwrap(),
            "Bearer error=\"insufficient_scope\", scope=\"a\""
        );
        let step_up = HeaderValue::from_static("Bearer error=\"insufficient_user_authentication\"");
        assert_eq!(
            in_scheme(&step_up, Scheme::Dpop),
            "DPoP error=\"insufficient_user_authentication\""
        );
        assert_eq!(in_scheme(&step_up, Scheme::Bearer), step_up);
        // Only a `Bearer` challenge is rewritten.
        let other = HeaderValue::from_static("ApiKey realm=\"api\"");
        assert_eq!(in_scheme(&other, Scheme::Dpop), other);
    }

    #[test]
    fn rfc6750_3_challenges_name_the_error_and_never_the_token() {
        let c = ChallengeSet::new(Scheme::Bearer, "api").unwrap();
        assert_eq!(c.plain(), "Bearer realm=\"api\"");
        for r in AuthnReason::ALL.iter().filter(|r| r.is_bearer()) {
            let v = c.for_reason(*r);
            let text = v[0].to_str().unwrap();
            assert!(text.contains("error=\"invalid_token\""), "{text}");
            assert!(text.contains(r.detail()), "{text}");
        }
        assert!(
            c.for_reason(AuthnReason::MultipleCredentials)[0]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_request\"")
        );
        // A reason of another scheme gets the plain challenge.
        assert_eq!(c.for_reason(AuthnReason::WrongSecret)[0], c.plain().clone());
    }

    #[test]
    fn api_key_challenges_carry_the_public_code_only() {
        let c = ChallengeSet::new(Scheme::ApiKey, "orders").unwrap();
        assert_eq!(c.plain(), "ApiKey realm=\"orders\"");
        // Unknown id and wrong secret render identically: no enumeration.
        assert_eq!(
            c.for_reason(AuthnReason::UnknownKey),
            c.for_reason(AuthnReason::WrongSecret)
        );
        assert_eq!(
            c.for_reason(AuthnReason::WrongSecret)[0],
            "ApiKey realm=\"orders\", error=\"invalid_key\""
        );
        assert!(c.for_reason(AuthnReason::MultipleCredentials).is_empty());
    }

    #[test]
    fn rfc9449_7_1_dpop_challenges_carry_algs_and_the_error() {
        let c = ChallengeSet::dpop("api", "ES256 EdDSA").unwrap();
        assert_eq!(c.plain(), r#"DPoP realm="api", algs="ES256 EdDSA""#);
        let text = |r| c.for_reason(r)[0].to_str().unwrap().to_owned();
        assert_eq!(
            text(AuthnReason::DpopProofReplayed),
            r#"DPoP realm="api", algs="ES256 EdDSA", error="invalid_dpop_proof", error_description="The DPoP proof was already used.""#
        );
        assert!(text(AuthnReason::DpopNonceRequired).contains(r#"error="use_dpop_nonce""#));
        // A token's own refusal, when it came with DPoP: in the DPoP scheme.
        assert!(text(AuthnReason::TokenExpired).starts_with("DPoP realm"));
        assert!(text(AuthnReason::TokenExpired).contains(r#"error="invalid_token""#));
        assert!(text(AuthnReason::DpopKeyMismatch).contains(r#"error="invalid_token""#));
        // Bearer challenges never carry DPoP errors.
        let b = ChallengeSet::new(Scheme::Bearer, "api").unwrap();
        assert_eq!(
            b.for_reason(AuthnReason::DpopProofReplayed)[0],
            b.plain().clone()
        );
        for bad in ["", "ES256,EdDSA", "ES256  EdDSA", "a\"b"] {
            assert!(ChallengeSet::dpop("api", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn realms_that_would_break_the_header_are_refused() {
        for bad in ["", "a\"b", "a\\b", "é", &"x".repeat(65), "a\nb"] {
            assert!(ChallengeSet::new(Scheme::Bearer, bad).is_err(), "{bad:?}");
        }
        assert!(ChallengeSet::new(Scheme::ApiKey, "my api").is_ok());
    }
}

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
        check_realm(realm)?;
        let name = scheme.name();
        let value = |s: String| HeaderValue::try_from(s).ok();
        let plain = value(format!("{name} realm=\"{realm}\""))
            .unwrap_or_else(|| HeaderValue::from_static("Bearer"));
        let by_reason = AuthnReason::ALL
            .iter()
            .filter_map(|&reason| {
                let text = match (scheme, reason) {
                    (Scheme::Bearer, AuthnReason::MultipleCredentials) => format!(
                        "{name} realm=\"{realm}\", error=\"invalid_request\", \
                         error_description=\"{}\"",
                        reason.detail()
                    ),
                    (Scheme::Bearer, r) if r.scheme() == Scheme::Bearer => format!(
                        "{name} realm=\"{realm}\", error=\"{}\", error_description=\"{}\"",
                        r.public_code(),
                        r.detail()
                    ),
                    (Scheme::ApiKey, r) if r.scheme() == Scheme::ApiKey => {
                        format!("{name} realm=\"{realm}\", error=\"{}\"", r.public_code())
                    }
                    _ => return None,
                };
                Some((reason, Arc::from([value(text)?])))
            })
            .collect();
        // A reason of no scheme of its own: the plain challenge for bearer tokens (RFC 6750
        // §3.1 asks for one on every 401), none for API keys.
        let fallback: Arc<[HeaderValue]> = match scheme {
            Scheme::Bearer => Arc::from([plain.clone()]),
            _ => Arc::from([]),
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

/// `Bearer error="insufficient_scope", scope="…"` (RFC 6750 §3.1), for a 403.
pub(crate) fn insufficient_scope(scopes: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scopes}\""
    ))
    .ok()
}

/// Checks a `realm` for a challenge: 1 to 64 visible ASCII characters or spaces, no quote or
/// backslash.
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
    fn realms_that_would_break_the_header_are_refused() {
        for bad in ["", "a\"b", "a\\b", "é", &"x".repeat(65), "a\nb"] {
            assert!(ChallengeSet::new(Scheme::Bearer, bad).is_err(), "{bad:?}");
        }
        assert!(ChallengeSet::new(Scheme::ApiKey, "my api").is_ok());
    }
}

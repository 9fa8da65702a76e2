//! What bearer-token authenticators share: reading the token from the request (RFC 6750 §2),
//! the `WWW-Authenticate: Bearer` challenges (RFC 6750 §3), mapping claims to a [`Principal`]
//! ([`ClaimMap`]), and the bounded cache of checked tokens.

use http::header::AUTHORIZATION;
use http::request::Parts;
use serde::Deserialize;
use serde_json::{Map, Value};

#[cfg(feature = "jwt")]
pub(crate) use self::cache::BuildPrehashed;
pub(crate) use self::cache::TokenCache;
pub(crate) use super::possession::{Admission, Binding, Possession, binding};

mod cache;
mod revocations;
pub use self::revocations::{DEFAULT_REVOCATION_CAPACITY, DEFAULT_REVOCATION_HORIZON};
pub(crate) use self::revocations::{Revocations, TokenFacts};
use crate::clock::Timestamp;
use crate::principal::{AuthMethod, Principal};
use crate::rejection::AuthnReason;

/// The default maximum length of a bearer token, in bytes: longer ones are refused before any
/// parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where bearer tokens are read from, and how large they may be.
#[derive(Debug, Clone)]
pub(crate) struct TokenSource {
    /// RFC 6750 §2.3: the `access_token` query parameter, off by default.
    pub(crate) allow_query: bool,
    pub(crate) max_bytes: usize,
    /// RFC 9449 §7.1: `Authorization: DPoP <token>` is read too (DPoP is configured).
    pub(crate) dpop: bool,
}

impl Default for TokenSource {
    fn default() -> Self {
        Self {
            allow_query: false,
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            dpop: false,
        }
    }
}

/// A token as the request presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Presented<'a> {
    pub(crate) token: &'a [u8],
    /// Under the `DPoP` scheme (RFC 9449 §7.1), with a proof to check.
    pub(crate) dpop: bool,
}

const SCHEME: &[u8] = b"Bearer";
const DPOP_SCHEME: &[u8] = b"DPoP";

/// The rest of `v` after `scheme` and a space, if `v` starts with them (case-insensitive).
fn after_scheme<'a>(v: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let n = scheme.len();
    (v.len() > n && v[..n].eq_ignore_ascii_case(scheme) && v[n] == b' ').then(|| &v[n + 1..])
}

impl TokenSource {
    /// The one bearer token of the request: `Ok(None)` if there is none.
    ///
    /// `Authorization` values of other schemes are left to other authenticators. A token in
    /// the query string is refused unless allowed (RFC 6750 §5.3: URLs are logged), even when a
    /// header token is present too.
    #[cfg(test)]
    pub(crate) fn extract<'a>(&self, parts: &'a Parts) -> Result<Option<&'a str>, AuthnReason> {
        match self.extract_raw(parts)? {
            Some(raw) => validate(raw.token).map(Some),
            None => Ok(None),
        }
    }

    /// As [`extract`](Self::extract), without the RFC 6750 §2.1 syntax check: for looking the
    /// token up in a cache of tokens that passed it (a token that would fail it cannot be
    /// there), so a cached token is read once, by the hash. Call [`validate`] on a miss.
    pub(crate) fn extract_raw<'a>(
        &self,
        parts: &'a Parts,
    ) -> Result<Option<Presented<'a>>, AuthnReason> {
        let mut found: Option<Presented<'a>> = None;
        for value in parts.headers.get_all(AUTHORIZATION) {
            let v = value.as_bytes();
            let (token, dpop) = match after_scheme(v, SCHEME) {
                Some(token) => (token, false),
                None => match after_scheme(v, DPOP_SCHEME) {
                    Some(token) if self.dpop => (token, true),
                    _ => continue,
                },
            };
            if found.is_some() {
                // RFC 6750 §3.1 invalid_request: more than one token.
                return Err(AuthnReason::MultipleCredentials);
            }
            found = Some(Presented {
                token: trim_spaces(token),
                dpop,
            });
        }
        if let Some(query) = parts.uri.query() {
            for pair in query.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k == "access_token" {
                    if !self.allow_query {
                        return Err(AuthnReason::TokenInQuery);
                    }
                    if found.is_some() {
                        // RFC 6750 §2: a client must not use more than one method.
                        return Err(AuthnReason::MultipleCredentials);
                    }
                    found = Some(Presented {
                        token: v.as_bytes(),
                        dpop: false,
                    });
                }
            }
        }
        match found {
            Some(p) if p.token.len() > self.max_bytes => Err(AuthnReason::TokenTooLarge),
            found => Ok(found),
        }
    }
}

/// The token as text if it has the RFC 6750 §2.1 `b64token` syntax.
pub(crate) fn validate(token: &[u8]) -> Result<&str, AuthnReason> {
    if !is_b64token(token) {
        return Err(AuthnReason::MalformedToken);
    }
    // is_b64token admits ASCII only.
    std::str::from_utf8(token).map_err(|_| AuthnReason::MalformedToken)
}

fn trim_spaces(mut v: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' '] = v {
        v = rest;
    }
    v
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    /// Lane-wise comparisons only, so the loop vectorizes.
    fn allowed(b: u8) -> bool {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        letter
            | digit
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
    }
    let body_end = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_end > 0
        && token[..body_end]
            .iter()
            .fold(true, |ok, &b| ok & allowed(b))
}

/// A path to a claim inside a token's claims or an introspection answer: `realm_access.roles`
/// is the `roles` member of the `realm_access` object.
///
/// [`ClaimPath::parse`] splits on dots, except for a name that starts with `http://` or
/// `https://` (Auth0-style namespaced claims such as `https://example.com/roles`), which is one
/// member. [`ClaimPath::segments`] takes the members as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Box<[Box<str>]>);

impl ClaimPath {
    /// Parses a dotted path (see the type's documentation).
    #[must_use]
    pub fn parse(path: &str) -> Self {
        if path.starts_with("https://") || path.starts_with("http://") {
            return Self(Box::new([path.into()]));
        }
        Self(path.split('.').map(Into::into).collect())
    }

    /// A path of the given members, none of them split.
    pub fn segments<S: Into<Box<str>>>(segments: impl IntoIterator<Item = S>) -> Self {
        Self(segments.into_iter().map(Into::into).collect())
    }

    /// The value at this path in `claims`.
    #[must_use]
    pub fn find<'v>(&self, claims: &'v Map<String, Value>) -> Option<&'v Value> {
        let (first, rest) = self.0.split_first()?;
        let mut value = claims.get(&**first)?;
        for segment in rest {
            value = value.as_object()?.get(&**segment)?;
        }
        Some(value)
    }
}

impl<'de> Deserialize<'de> for ClaimPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Dotted(String),
            Segments(Vec<String>),
        }
        Ok(match Form::deserialize(d)? {
            Form::Dotted(s) => Self::parse(&s),
            Form::Segments(v) => Self::segments(v),
        })
    }
}

/// How a token's claims (or an introspection answer) become a [`Principal`]: which claim is the
/// subject, where the roles, tenant and quota tier are. Scopes are read from `scope` (a
/// space-separated string, RFC 8693 §4.2 / RFC 9068 §2.2.3) and `scp` (an array or a string,
/// as Okta and Entra ID send them).
///
/// ```
/// use palisade::authn::bearer::{ClaimMap, ClaimPath};
///
/// let keycloak = ClaimMap::keycloak();
/// let custom = ClaimMap::new()
///     .roles(ClaimPath::parse("https://example.com/roles"))
///     .tenant(ClaimPath::parse("org_id"))
///     .tier(ClaimPath::parse("plan"));
/// # let _ = (keycloak, custom);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimMap {
    subject: ClaimPath,
    #[serde(deserialize_with = "one_or_many")]
    roles: Vec<ClaimPath>,
    tenant: Option<ClaimPath>,
    tier: Option<ClaimPath>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ClaimPath>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<ClaimPath>),
    }
    Ok(match Form::deserialize(d)? {
        Form::One(s) => vec![ClaimPath::parse(&s)],
        Form::Many(v) => v,
    })
}

impl Default for ClaimMap {
    fn default() -> Self {
        Self::new()
    }
}

/// At most this many roles and scopes are taken from a token: the rest are ignored (and
/// logged), so a huge claim cannot make a huge principal.
const MAX_NAMES: usize = 256;

impl ClaimMap {
    /// Subject from `sub`, scopes from `scope`/`scp`, no roles, tenant or tier.
    #[must_use]
    pub fn new() -> Self {
        Self {
            subject: ClaimPath::parse("sub"),
            roles: Vec::new(),
            tenant: None,
            tier: None,
        }
    }

    /// Keycloak: realm roles from `realm_access.roles`.
    #[must_use]
    pub fn keycloak() -> Self {
        Self::new().roles(ClaimPath::parse("realm_access.roles"))
    }

    /// Microsoft Entra ID: app roles from `roles`, tenant from `tid`, scopes from `scp`
    /// (a space-separated string there). The subject stays `sub`; hosts that want the
    /// stable object id use `.subject(ClaimPath::parse("oid"))`.
    #[must_use]
    pub fn entra_id() -> Self {
        Self::new()
            .roles(ClaimPath::parse("roles"))
            .tenant(ClaimPath::parse("tid"))
    }

    /// Auth0: roles from the namespaced custom claim an Auth0 Action adds (Auth0 only allows
    /// namespaced custom claims, e.g. `https://example.com/roles`); scopes from `scope`.
    #[must_use]
    pub fn auth0(roles_claim: &str) -> Self {
        Self::new().roles(ClaimPath::parse(roles_claim))
    }

    /// Reads the subject from `path` instead of `sub`.
    #[must_use]
    pub fn subject(mut self, path: ClaimPath) -> Self {
        self.subject = path;
        self
    }

    /// Also reads roles from `path` (an array of strings, or one string).
    #[must_use]
    pub fn roles(mut self, path: ClaimPath) -> Self {
        self.roles.push(path);
        self
    }

    /// Reads the tenant from `path` (a string).
    #[must_use]
    pub fn tenant(mut self, path: ClaimPath) -> Self {
        self.tenant = Some(path);
        self
    }

    /// Reads the quota tier from `path` (a string).
    #[must_use]
    pub fn tier(mut self, path: ClaimPath) -> Self {
        self.tier = Some(path);
        self
    }

    /// The principal these claims describe, its token bound to `bound`; `MissingClaim` when
    /// there is no string subject.
    pub(crate) fn principal(
        &self,
        claims: &Map<String, Value>,
        method: AuthMethod,
        bound: Option<&Binding>,
    ) -> Result<Principal, AuthnReason> {
        let subject = self
            .subject
            .find(claims)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthnReason::MissingClaim)?;
        let mut builder = Principal::builder(subject, method);
        let mut roles = Vec::new();
        for path in &self.roles {
            for_each_name(path.find(claims), false, |r| roles.push(r));
        }
        let mut scopes = Vec::new();
        for claim in ["scope", "scp"] {
            for_each_name(claims.get(claim), true, |s| scopes.push(s));
        }
        if roles.len() > MAX_NAMES || scopes.len() > MAX_NAMES {
            tracing::warn!(
                layer = "authn",
                subject,
                roles = roles.len(),
                scopes = scopes.len(),
                "token grants more than {MAX_NAMES} roles or scopes; the rest are ignored"
            );
        }
        for role in roles.into_iter().take(MAX_NAMES) {
            builder = builder.role(role);
        }
        for scope in scopes.into_iter().take(MAX_NAMES) {
            builder = builder.scope(scope);
        }
        if let Some(t) = self.tenant.as_ref().and_then(|p| p.find(claims)?.as_str()) {
            builder = builder.tenant(t);
        }
        if let Some(t) = self.tier.as_ref().and_then(|p| p.find(claims)?.as_str()) {
            builder = builder.tier(t);
        }
        // OpenID Connect Core §2, RFC 9068 §2.2.1: how and when the user authenticated, for
        // step-up rules (RFC 9470).
        if let Some(acr) = claims.get("acr").and_then(Value::as_str) {
            builder = builder.acr(acr);
        }
        if let Some(at) = claims.get("auth_time").and_then(Value::as_u64) {
            builder = builder.auth_time(Timestamp::from_unix_secs(at));
        }
        if let Some(bound) = bound {
            builder = builder.confirmation(bound.confirmation());
        }
        Ok(builder.build())
    }
}

/// Calls `f` on the strings of a claim: an array's string items, or a string (split on spaces
/// when `split`, the RFC 6749 §3.3 scope syntax). Empty strings are skipped.
fn for_each_name<'v>(value: Option<&'v Value>, split: bool, mut f: impl FnMut(&'v str)) {
    let mut each = |s: &'v str| {
        if !s.is_empty() {
            f(s);
        }
    };
    match value {
        Some(Value::String(s)) if split => s.split(' ').for_each(&mut each),
        Some(Value::String(s)) => each(s),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(each),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};
    use proptest::prelude::*;

    use super::*;

    fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    fn source() -> TokenSource {
        TokenSource::default()
    }

    #[test]
    fn rfc6750_2_1_authorization_header_is_read() {
        let p = parts(Request::get("/").header("authorization", "Bearer abc.def-_~+/=="));
        assert_eq!(source().extract(&p), Ok(Some("abc.def-_~+/==")));
        let p = parts(Request::get("/").header("authorization", "bearer   abc  "));
        assert_eq!(
            source().extract(&p),
            Ok(Some("abc")),
            "scheme is case-insensitive"
        );
        let p = parts(Request::get("/").header("authorization", "ApiKey abc"));
        assert_eq!(source().extract(&p), Ok(None), "other schemes are not ours");
    }

    #[test]
    fn rfc6750_2_1_b64token_syntax_is_enforced() {
        for bad in [
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ==",
            "Bearer a,b",
            "Bearer  ",
        ] {
            let p = parts(Request::get("/").header("authorization", bad));
            assert_eq!(
                source().extract(&p),
                Err(AuthnReason::MalformedToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn rfc6750_3_1_two_tokens_are_an_invalid_request() {
        let p = parts(
            Request::get("/")
                .header("authorization", "Bearer a")
                .header("authorization", "Bearer b"),
        );
        assert_eq!(source().extract(&p), Err(AuthnReason::MultipleCredentials));
        let allow = TokenSource {
            allow_query: true,
            ..source()
        };
        let p = parts(Request::get("/?access_token=b").header("authorization", "Bearer a"));
        assert_eq!(allow.extract(&p), Err(AuthnReason::MultipleCredentials));
    }

    #[test]
    fn rfc6750_2_3_query_tokens_are_refused_unless_allowed() {
        let p = parts(Request::get("/x?a=1&access_token=abc"));
        assert_eq!(source().extract(&p), Err(AuthnReason::TokenInQuery));
        let allow = TokenSource {
            allow_query: true,
            ..source()
        };
        assert_eq!(allow.extract(&p), Ok(Some("abc")));
    }

    #[test]
    fn b64token_table_matches_the_grammar() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token(&[b]), expected, "{b}");
        }
        assert!(is_b64token(b"a=="));
        assert!(!is_b64token(b"=a"));
    }

    #[test]
    fn oversized_tokens_are_refused_before_parsing() {
        let long = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1));
        let p = parts(Request::get("/").header("authorization", long));
        assert_eq!(source().extract(&p), Err(AuthnReason::TokenTooLarge));
    }

    #[test]
    fn claims_map_to_a_principal() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"sub": "u1", "scope": "orders:read  orders:write", "scp": ["extra"],
                "realm_access": {"roles": ["admin", "user", 7]}, "tid": "t1", "plan": "pro"}"#,
        )
        .unwrap();
        let map = ClaimMap::keycloak()
            .tenant(ClaimPath::parse("tid"))
            .tier(ClaimPath::parse("plan"));
        let p = map
            .principal(&claims, AuthMethod::Bearer { issuer: "i".into() }, None)
            .unwrap();
        assert_eq!(p.subject(), "u1");
        assert_eq!(p.roles().collect::<Vec<_>>(), ["admin", "user"]);
        assert_eq!(
            p.scopes().collect::<Vec<_>>(),
            ["extra", "orders:read", "orders:write"]
        );
        assert_eq!(p.tenant(), Some("t1"));
        assert_eq!(p.tier(), Some("pro"));
        let no_sub: Map<String, Value> = serde_json::from_str(r#"{"sub": 5}"#).unwrap();
        assert_eq!(
            map.principal(&no_sub, AuthMethod::Anonymous, None)
                .unwrap_err(),
            AuthnReason::MissingClaim
        );
    }

    #[test]
    fn namespaced_claim_paths_are_one_member() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"https://example.com/roles": ["a"]}"#).unwrap();
        let path = ClaimPath::parse("https://example.com/roles");
        assert_eq!(path.find(&claims), Some(&serde_json::json!(["a"])));
    }

    proptest! {
        #[test]
        fn extract_never_panics_and_only_returns_b64tokens(value in "[ -~]{0,64}", query in "[ -~]{0,32}") {
            let Ok(uri) = format!("/p?{}", query.replace(' ', "+").replace('#', "")).parse::<http::Uri>() else {
                return Ok(());
            };
            let Ok(v) = HeaderValue::from_str(&value) else { return Ok(()) };
            let mut p = parts(Request::get(uri));
            p.headers.insert(AUTHORIZATION, v);
            let allow = TokenSource { allow_query: true, ..source() };
            if let Ok(Some(token)) = allow.extract(&p) {
                prop_assert!(is_b64token(token.as_bytes()));
            }
        }
    }
}

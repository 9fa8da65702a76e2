//! Every refusal reason, declared once: its stable code, what the client is told, the status,
//! the challenge scheme it belongs to, the human detail and (for 503s) the retry hint. The
//! `match`es that answer each fact are generated from these tables, the way axum's
//! `define_rejection!` declares each rejection once.

use std::time::Duration;

use http::StatusCode;

/// The authentication scheme a reason belongs to, which decides its `WWW-Authenticate`
/// challenge (see [`ChallengeSet`](super::ChallengeSet)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `ApiKey` (palisade's scheme for API keys: `Authorization: ApiKey <key>`).
    ApiKey,
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): a key-bound access token with a proof of possession.
    Dpop,
    /// No scheme of its own: the challenges are those of every configured scheme.
    Any,
}

impl Scheme {
    /// The scheme's name in `WWW-Authenticate` (`ApiKey`, `Bearer`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ApiKey => "ApiKey",
            Self::Dpop => "DPoP",
            Self::Bearer | Self::Any => "Bearer",
        }
    }
}

/// Declares [`AuthnReason`]: each variant with its code, public code, status, scheme and
/// detail.
macro_rules! authn_reasons {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            code: $code:literal,
            public: $public:literal,
            status: $status:ident,
            scheme: $scheme:ident,
            detail: $detail:literal $(,)?
        }
    )*) => {
        /// Why authentication failed. Codes are stable; new reasons may be added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AuthnReason {
            $( $(#[$doc])* $variant, )*
        }

        impl AuthnReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The precise code (`"wrong_secret"`), for audit.
            #[must_use]
            pub fn code(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The code the client sees: unknown id and wrong secret are both `invalid_key`;
            /// every bearer-token reason is `invalid_token` (RFC 6750 §3.1).
            #[must_use]
            pub fn public_code(self) -> &'static str {
                match self { $(Self::$variant => $public,)* }
            }

            /// The HTTP status: 400 for
            /// [`MultipleCredentials`](Self::MultipleCredentials), else 401.
            #[must_use]
            pub fn status(self) -> StatusCode {
                match self { $(Self::$variant => StatusCode::$status,)* }
            }

            /// The scheme whose challenge answers this reason.
            #[must_use]
            pub fn scheme(self) -> Scheme {
                match self { $(Self::$variant => Scheme::$scheme,)* }
            }

            /// A short human description, also sent as the RFC 6750 `error_description`: it
            /// never holds the credential, and for bearer tokens only tells expired or
            /// not-yet-valid tokens apart from invalid ones.
            #[must_use]
            pub fn detail(self) -> &'static str {
                match self { $(Self::$variant => $detail,)* }
            }
        }
    };
}

authn_reasons! {
    /// No credential any authenticator recognises.
    MissingCredentials {
        code: "missing_credentials", public: "missing_credentials", status: UNAUTHORIZED,
        scheme: Any, detail: "This resource requires authentication.",
    }
    /// More than one credential (several key headers, or a key in two places): refused as an
    /// invalid request, as RFC 6750 §3.1 does for bearer tokens (400).
    MultipleCredentials {
        code: "multiple_credentials", public: "multiple_credentials", status: BAD_REQUEST,
        scheme: Any,
        detail: "The request carries more than one credential; send exactly one.",
    }
    /// The API key is not of the key format (prefix, length, alphabet).
    MalformedKey {
        code: "malformed_key", public: "malformed_key", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key is not in the expected format.",
    }
    /// The API key's checksum does not match: a typo or a truncated key. No store lookup is
    /// made.
    BadChecksum {
        code: "bad_checksum", public: "bad_checksum", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key's checksum does not match; check for a typo.",
    }
    /// No key with this id exists. Publicly `invalid_key`, like
    /// [`WrongSecret`](Self::WrongSecret).
    UnknownKey {
        code: "unknown_key", public: "invalid_key", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key is not valid.",
    }
    /// The key id exists but the secret is wrong. Publicly `invalid_key`.
    WrongSecret {
        code: "wrong_secret", public: "invalid_key", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key is not valid.",
    }
    /// The key's record names a hash version that no configured hasher has, so the key cannot
    /// be checked. Publicly `invalid_key`; audit names the cause.
    UnknownHashVersion {
        code: "unknown_hash_version", public: "invalid_key", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key is not valid.",
    }
    /// The key was valid but is past its expiry (only said once the secret was proved).
    KeyExpired {
        code: "key_expired", public: "key_expired", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key has expired.",
    }
    /// The key was revoked (only said once the secret was proved).
    KeyRevoked {
        code: "key_revoked", public: "key_revoked", status: UNAUTHORIZED,
        scheme: ApiKey, detail: "The API key has been revoked.",
    }
    /// The bearer token is not a well-formed token (RFC 6750 §2.1 syntax, or not a compact
    /// JWS with a readable header and claims). Publicly `invalid_token`, like every bearer
    /// reason below.
    MalformedToken {
        code: "malformed_token", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The bearer token is longer than the configured maximum; refused before parsing.
    TokenTooLarge {
        code: "token_too_large", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is too large.",
    }
    /// A bearer token was sent in the query string, which this API does not accept
    /// (RFC 6750 §2.3, §5.3: URLs end up in logs).
    TokenInQuery {
        code: "token_in_query", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "Access tokens are not accepted in the query string.",
    }
    /// The token's `alg` is not one the verifying key allows (`none`, or an algorithm of
    /// another family: RFC 8725 §3.1).
    UnsupportedAlgorithm {
        code: "unsupported_algorithm", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token names a key (`kid`) that its issuer's key set does not hold.
    UnknownKeyId {
        code: "unknown_kid", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The signature does not verify.
    BadSignature {
        code: "bad_signature", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token is past its `exp` (RFC 7519 §4.1.4), leeway included.
    TokenExpired {
        code: "token_expired", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token has expired.",
    }
    /// The token's `nbf` is in the future (RFC 7519 §4.1.5), leeway included.
    TokenNotYetValid {
        code: "token_not_yet_valid", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid yet.",
    }
    /// The token's `iat` is older than the configured maximum age.
    TokenTooOld {
        code: "token_too_old", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token's lifetime (`exp - iat`, or `exp - now` without `iat`) is longer than its
    /// issuer's maximum.
    LifetimeTooLong {
        code: "lifetime_too_long", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token's `iss` is not a configured issuer (RFC 7519 §4.1.1).
    WrongIssuer {
        code: "wrong_issuer", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token's `aud` names none of the configured audiences (RFC 7519 §4.1.3).
    WrongAudience {
        code: "wrong_audience", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token's `typ` header is not the one required (RFC 8725 §3.11, RFC 9068 §4), or
    /// introspection says it is not an access token (a `token_type` such as `refresh_token`,
    /// RFC 7662 §2.2).
    WrongTokenType {
        code: "wrong_token_type", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not of the required type.",
    }
    /// A required claim is missing or of the wrong type.
    MissingClaim {
        code: "missing_claim", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token lists a critical header extension (`crit`) that palisade does not
    /// understand (RFC 7515 §4.1.11).
    UnknownCriticalHeader {
        code: "unknown_crit", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The introspection endpoint says the token is not active (RFC 7662 §2.2).
    TokenInactive {
        code: "token_inactive", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not active.",
    }
    /// The token was revoked: its `jti` was published revoked on the invalidation bus, or every
    /// token of its subject issued before a time was (`palisade::invalidation`).
    TokenRevoked {
        code: "token_revoked", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not active.",
    }
    /// The JOSE header or the claims set names a member twice (RFC 7515 §5.2, RFC 7519 §4):
    /// refused rather than read with the last one winning.
    DuplicateMember {
        code: "duplicate_member", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is not valid.",
    }
    /// The token is bound to a key or a certificate (a `cnf` claim: RFC 9449 §6, RFC 8705 §3)
    /// and came without a proof of possession this API checks (RFC 9449 §7.2).
    TokenBound {
        code: "token_bound", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Bearer, detail: "The access token is bound to a key and needs proof of possession.",
    }
    /// The token is valid, but the user's authentication is not strong enough or not recent
    /// enough for the route (RFC 9470 §3): its `acr` is none of the route's `acr_values`, or
    /// its `auth_time` is older than the route's maximum age. The challenge names what is
    /// needed, so the client can send the user back to the authorization server.
    InsufficientUserAuthentication {
        code: "insufficient_user_authentication", public: "insufficient_user_authentication",
        status: UNAUTHORIZED, scheme: Any,
        detail: "A different authentication level is required.",
    }
    /// The request uses the `DPoP` scheme without exactly one `DPoP` proof header (RFC 9449
    /// §4.3 check 1).
    DpopProofMissing {
        code: "dpop_proof_missing", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The request needs exactly one DPoP proof.",
    }
    /// The DPoP proof is not a well-formed JWT with the members RFC 9449 §4.2 requires, names
    /// a member twice, or lists a `crit` header (§4.3 checks 2 and 3).
    DpopProofMalformed {
        code: "dpop_proof_malformed", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof is not a well-formed DPoP proof JWT.",
    }
    /// The proof's `typ` is not `dpop+jwt` (RFC 9449 §4.3 check 4).
    DpopProofType {
        code: "dpop_proof_type", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's typ is not dpop+jwt.",
    }
    /// The proof's `alg` is not an asymmetric algorithm this API accepts, or does not fit its
    /// key (RFC 9449 §4.3 check 5).
    DpopProofAlgorithm {
        code: "dpop_proof_algorithm", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's algorithm is not accepted.",
    }
    /// The proof's `jwk` is not a usable public key, or holds private key material (RFC 9449
    /// §4.3 check 7).
    DpopProofKey {
        code: "dpop_proof_key", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's jwk is not a public key this API accepts.",
    }
    /// The proof's signature does not verify with its `jwk` (RFC 9449 §4.3 check 6).
    DpopProofSignature {
        code: "dpop_proof_signature", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's signature does not verify.",
    }
    /// The proof's `htm` is not the request's method (RFC 9449 §4.3 check 8).
    DpopProofMethod {
        code: "dpop_proof_method", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's htm is not the request's method.",
    }
    /// The proof's `htu` is not the request's URI (RFC 9449 §4.3 check 9).
    DpopProofUri {
        code: "dpop_proof_uri", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's htu is not the request's URI.",
    }
    /// The proof was created outside the accepted window (RFC 9449 §4.3 check 11).
    DpopProofTime {
        code: "dpop_proof_time", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof is too old or dated in the future.",
    }
    /// The proof's `jti` was seen before: a replayed proof (RFC 9449 §11.1).
    DpopProofReplayed {
        code: "dpop_proof_replayed", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof was already used.",
    }
    /// The proof's `ath` is not the hash of the access token it came with (RFC 9449 §4.3
    /// check 12).
    DpopProofTokenHash {
        code: "dpop_proof_ath", public: "invalid_dpop_proof", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The DPoP proof's ath is not the access token's hash.",
    }
    /// The proof carries no valid server nonce, and this API requires one: the refusal
    /// carries a fresh one in `DPoP-Nonce` (RFC 9449 §9).
    DpopNonceRequired {
        code: "dpop_nonce_required", public: "use_dpop_nonce", status: UNAUTHORIZED,
        scheme: Dpop, detail: "Resource server requires nonce in DPoP proof.",
    }
    /// The access token is bound to another key than the proof's (`cnf.jkt` is not the
    /// proof key's RFC 7638 thumbprint: RFC 9449 §4.3 check 12, §6.1).
    DpopKeyMismatch {
        code: "dpop_key_mismatch", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The access token is not bound to the DPoP proof's key.",
    }
    /// An access token without a key binding came with the `DPoP` scheme (RFC 9449 §7.1).
    DpopTokenNotBound {
        code: "dpop_token_not_bound", public: "invalid_token", status: UNAUTHORIZED,
        scheme: Dpop, detail: "The access token is not bound to a DPoP key.",
    }
}

impl AuthnReason {
    /// Whether this is a bearer-token reason (answered with RFC 6750 `invalid_token`).
    #[must_use]
    pub fn is_bearer(self) -> bool {
        self.scheme() == Scheme::Bearer
    }
}

/// Declares [`InvalidReason`]: each variant with its code, status and detail.
macro_rules! invalid_reasons {
    ($(
        $(#[$doc:meta])*
        $variant:ident { code: $code:literal, status: $status:ident, detail: $detail:literal $(,)? }
    )*) => {
        /// Why input was refused. Codes are stable; new reasons may be added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum InvalidReason {
            $( $(#[$doc])* $variant, )*
        }

        impl InvalidReason {
            /// The stable code (`"schema_violation"`).
            #[must_use]
            pub fn code(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The HTTP status.
            #[must_use]
            pub fn status(self) -> StatusCode {
                match self { $(Self::$variant => StatusCode::$status,)* }
            }

            /// A short human description (the problem's `detail`).
            #[must_use]
            pub fn detail(self) -> &'static str {
                match self { $(Self::$variant => $detail,)* }
            }
        }
    };
}

invalid_reasons! {
    /// The body is not well-formed JSON (400), with the line and column in the error.
    MalformedBody {
        code: "malformed_body", status: BAD_REQUEST,
        detail: "The request body is not well-formed.",
    }
    /// The body did not arrive within the operation's read timeout (408; the connection is
    /// closed).
    BodyTimeout {
        code: "body_timeout", status: REQUEST_TIMEOUT,
        detail: "The request body was not received in time.",
    }
    /// The body (declared by `Content-Length` or streamed) is over the route's limit (413).
    BodyTooLarge {
        code: "body_too_large", status: PAYLOAD_TOO_LARGE,
        detail: "The request body is larger than this operation accepts.",
    }
    /// The `Content-Type` is not one the route accepts (415).
    UnsupportedMediaType {
        code: "unsupported_media_type", status: UNSUPPORTED_MEDIA_TYPE,
        detail: "This operation does not accept this content type.",
    }
    /// The body is encoded (`Content-Encoding` other than `identity`), which the route does
    /// not decode (415, with `Accept-Encoding: identity`).
    UnsupportedEncoding {
        code: "unsupported_encoding", status: UNSUPPORTED_MEDIA_TYPE,
        detail: "This operation does not accept the request body's content coding.",
    }
    /// A header that may appear once (`Content-Type`, `Content-Length`) appears more than
    /// once, so readers of the request could disagree about it (400).
    DuplicateHeader {
        code: "duplicate_header", status: BAD_REQUEST,
        detail: "A header that may appear once appears more than once.",
    }
    /// The handler's response breaks what its operation declares, and response validation
    /// enforces (500; what diverged goes to the audit event, never to the client).
    InvalidResponse {
        code: "invalid_response", status: INTERNAL_SERVER_ERROR,
        detail: "The server produced a response its API does not declare.",
    }
    /// The body breaks the route's schema (422).
    SchemaViolation {
        code: "schema_violation", status: UNPROCESSABLE_ENTITY,
        detail: "The request body does not match the operation's schema.",
    }
    /// A body, query or path value breaks an input guard: nesting depth, members per object
    /// or array, string length, control or bidirectional characters, or a deny pattern (422).
    HostileInput {
        code: "hostile_input", status: UNPROCESSABLE_ENTITY,
        detail: "A request value breaks an input limit; `errors` says which and where.",
    }
    /// A query or header parameter is missing, or breaks its schema (422).
    InvalidParameter {
        code: "invalid_parameter", status: UNPROCESSABLE_ENTITY,
        detail: "A request parameter is missing or invalid.",
    }
}

/// Declares [`UnavailableReason`]: each variant with its code and the `Retry-After` a 503 for
/// it carries when the layer knows no better (RFC 9110 §10.2.3: every 503 says when to retry).
macro_rules! unavailable_reasons {
    ($(
        $(#[$doc:meta])*
        $variant:ident { code: $code:literal, retry_after_secs: $secs:literal $(,)? }
    )*) => {
        /// Which backend failed, and how.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum UnavailableReason {
            $( $(#[$doc])* $variant, )*
        }

        impl UnavailableReason {
            /// The precise code, for audit.
            #[must_use]
            pub fn code(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The retry hint of a 503 for this reason when the layer gives none.
            #[must_use]
            pub fn default_retry_after(self) -> Duration {
                match self { $(Self::$variant => Duration::from_secs($secs),)* }
            }
        }
    };
}

unavailable_reasons! {
    /// The key store returned an error.
    KeyStoreError { code: "key_store_error", retry_after_secs: 1 }
    /// The key store did not answer within the configured timeout.
    KeyStoreTimeout { code: "key_store_timeout", retry_after_secs: 1 }
    /// The quota store failed or timed out, and its outage policy is to fail closed.
    QuotaStore { code: "quota_store_unavailable", retry_after_secs: 1 }
    /// No key set could be fetched from an issuer's JWKS URL (and none was fetched before).
    JwksUnavailable { code: "jwks_unavailable", retry_after_secs: 5 }
    /// The token introspection endpoint failed (connection, status, or an unreadable answer).
    IntrospectionError { code: "introspection_error", retry_after_secs: 1 }
    /// The token introspection endpoint did not answer within the configured timeout.
    IntrospectionTimeout { code: "introspection_timeout", retry_after_secs: 1 }
    /// The token introspection endpoint failed several times in a row: calls are held back
    /// for a cool-down (a circuit breaker), and requests are refused at once.
    IntrospectionCircuitOpen { code: "introspection_circuit_open", retry_after_secs: 2 }
    /// The DPoP replay cache could not record a proof: its Redis store failed or timed out,
    /// or the in-memory one is full (a proof that cannot be remembered could be replayed).
    DpopReplayUnavailable { code: "dpop_replay_unavailable", retry_after_secs: 1 }
    /// The host's authorizer could not decide: what it asks (a database, a permission
    /// service) failed. Audit records the host's own cause beside this code.
    AuthorizerUnavailable { code: "authorizer_unavailable", retry_after_secs: 1 }
}

/// The reason codes of authorization refusals palisade makes itself (403, and the 404 and 405
/// of requests no route serves), with their details. A host authorizer's own codes get the
/// generic detail.
pub(crate) fn forbidden_detail(code: &str) -> &'static str {
    match code {
        "missing_scope" => "The credential lacks a scope this operation requires.",
        "missing_role" => "The caller's roles do not allow this operation.",
        "no_matching_rule" => "No rule allows this operation.",
        "route_not_found" => "No route matches this path.",
        "method_not_allowed" => {
            "This route does not serve this method; the Allow field lists those it does."
        }
        _ => "The caller is not allowed to perform this operation.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bearer_reason_is_publicly_invalid_token_and_401() {
        for r in AuthnReason::ALL {
            if r.is_bearer() {
                assert_eq!(r.public_code(), "invalid_token", "{r:?}");
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{r:?}");
            }
        }
    }

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in AuthnReason::ALL {
            assert!(seen.insert(r.code()), "{} twice", r.code());
            assert!(
                r.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                r.code()
            );
        }
    }
}

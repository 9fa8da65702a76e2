//! [`Dpop`]: access tokens bound to a client's key, presented with a proof of possession
//! (RFC 9449, "DPoP"). Feature `jwt` (a proof is a JWT).
//!
//! A client that holds a DPoP-bound token (one whose claims, or introspection answer, carry
//! `cnf.jkt`) sends it as `Authorization: DPoP <token>`, with a fresh proof in the `DPoP`
//! header: a JWT signed by its private key, naming the request's method and URI, the time,
//! a unique id and the hash of the token. A stolen token is useless without the key.
//!
//! ```
//! use std::time::Duration;
//! use palisade::authn::dpop::Dpop;
//! use palisade::authn::jwt::{Issuer, JwtAuthenticator};
//!
//! # fn main() -> Result<(), palisade::ConfigError> {
//! let jwt = JwtAuthenticator::builder()
//!     .issuer(Issuer::new("https://sso.example.com").jwks_url("https://sso.example.com/certs").audience("orders-api"))
//!     // The URI clients send requests to: proofs name it in `htu`.
//!     .dpop(Dpop::new("https://api.example.com").require_nonce(Duration::from_secs(300)))
//!     .build()?;
//! # let _ = jwt; Ok(()) }
//! ```
//!
//! What is checked (RFC 9449 §4.3), in order: exactly one `DPoP` header (check 1); a JWT of
//! at most 4 KiB, no member named twice, no `crit` (2, 3); `typ` `dpop+jwt` (4); an asymmetric
//! `alg` from the allowed list (5); the `jwk` header a public key that fits it (7); the
//! signature (6); `htm` the request's method (8); `htu` the public origin and the request's
//! path, compared after RFC 3986 normalization, query and fragment ignored (9); with nonces
//! required, a valid server nonce, else `iat` within the window (10, 11); `ath` the token's
//! hash (12); then the token's `cnf.jkt` the RFC 7638 thumbprint of the proof's key; and last
//! the `jti` never seen before (§11.1), in a bounded replay cache.

mod nonce;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod uri;

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use self::nonce::Nonces;
use self::replay::{MemoryReplay, ReplayError};
use crate::authn::jwt::Algorithm;
use crate::authn::jwt::keys::AlgSet;
use crate::clock::Timestamp;
use crate::error::ConfigError;
use crate::rejection::{AuthnReason, ChallengeSet, Rejection, UnavailableReason};

#[cfg(feature = "redis")]
pub use self::redis::RedisReplayStore;

/// The `DPoP` request header (RFC 9449 §4.1).
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The asymmetric algorithms palisade verifies: the default list of proof algorithms.
pub(crate) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// How many checked proof headers (one per client key) are remembered.
const HEADER_CACHE: usize = 10_000;

/// The default number of proofs remembered per window by the in-memory replay cache.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

/// How DPoP proofs are checked: the public origin, the proof algorithms, the time window,
/// server nonces and the replay cache. Give it to
/// [`JwtBuilder::dpop`](crate::authn::jwt::JwtBuilder::dpop) or
/// `IntrospectionBuilder::dpop`; see the [module documentation](self).
#[derive(Clone)]
pub struct Dpop {
    origin: String,
    algorithms: Vec<Algorithm>,
    max_age: Duration,
    leeway: Duration,
    replay: Replay,
    nonce_lifetime: Option<Duration>,
    nonce_secret: Option<Arc<Zeroizing<Vec<u8>>>>,
    require_bound: bool,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the nonce secret.
        f.debug_struct("Dpop")
            .field("origin", &self.origin)
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("leeway", &self.leeway)
            .field("replay", &self.replay)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field(
                "nonce_secret",
                &self.nonce_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("require_bound", &self.require_bound)
            .finish()
    }
}

/// Where proofs' ids are remembered.
#[derive(Clone, Debug)]
enum Replay {
    Memory(usize),
    #[cfg(feature = "redis")]
    Redis(RedisReplayStore),
}

impl Dpop {
    /// DPoP for an API whose clients reach it at `public_origin` (`https://api.example.com`,
    /// or with the path prefix a proxy strips: `https://example.com/api`): a proof's `htu`
    /// must be this followed by the request's path. Proofs by any asymmetric algorithm,
    /// accepted for 60 s after their `iat` (5 s of clock skew either way), ids remembered in
    /// memory ([`DEFAULT_REPLAY_CAPACITY`] per window), no server nonce.
    #[must_use]
    pub fn new(public_origin: impl Into<String>) -> Self {
        Self {
            origin: public_origin.into(),
            algorithms: ASYMMETRIC.to_vec(),
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            replay: Replay::Memory(DEFAULT_REPLAY_CAPACITY),
            nonce_lifetime: None,
            nonce_secret: None,
            require_bound: false,
        }
    }

    /// Accepts proofs signed with these algorithms only (RFC 9449 §4.3 check 5); named in the
    /// `algs` of the `DPoP` challenge. [`build`](crate::authn::jwt::JwtBuilder::build) fails
    /// for an empty list or an HMAC algorithm.
    #[must_use]
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How long after its `iat` a proof is accepted (default 60 s; check 11).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The clock skew tolerated on a proof's `iat` and a nonce's time (default 5 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Remembers at most `capacity` proofs per window in memory (default
    /// [`DEFAULT_REPLAY_CAPACITY`], about 40 MB when full; a window is the longest a proof
    /// stays acceptable). Past it, new proofs get 503 with `Retry-After` until the window ends:
    /// a proof that cannot be remembered could be replayed.
    #[must_use]
    pub fn replay_capacity(mut self, capacity: usize) -> Self {
        self.replay = Replay::Memory(capacity);
        self
    }

    /// Remembers proofs in Redis, so that a proof used at one instance is refused at every
    /// other (feature `redis`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[must_use]
    pub fn replay_store(mut self, store: RedisReplayStore) -> Self {
        self.replay = Replay::Redis(store);
        self
    }

    /// Requires a server nonce in every proof (RFC 9449 §9): a proof without a valid one gets
    /// 401 `use_dpop_nonce` with a fresh nonce in `DPoP-Nonce`. A nonce is accepted for
    /// `lifetime` after it was made, and then stands in for `iat` as the proof's time (§4.3
    /// check 11), which spares clients with a wrong clock. Nonces count whole seconds: a
    /// lifetime under one second is refused at build. A proof whose nonce is past half
    /// its lifetime is served, and the response carries a fresh nonce in `DPoP-Nonce` (§8.2),
    /// so a client that takes the newest nonce it was given never has a proof refused for an
    /// expired one.
    #[must_use]
    pub fn require_nonce(mut self, lifetime: Duration) -> Self {
        self.nonce_lifetime = Some(lifetime);
        self
    }

    /// The secret nonces are made with (at least 32 bytes), for instances that must accept
    /// each other's nonces; without it each process draws its own at start.
    #[must_use]
    pub fn nonce_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.nonce_secret = Some(Arc::new(Zeroizing::new(secret.into())));
        self
    }

    /// Accepts sender-constrained tokens only (RFC 9700 §2.2.1): a token bound to neither a
    /// DPoP key nor a client certificate is refused (`dpop_token_not_bound`), whatever the
    /// scheme it comes in. The resource metadata then says `dpop_bound_access_tokens_required`.
    #[must_use]
    pub fn require_bound_tokens(mut self) -> Self {
        self.require_bound = true;
        self
    }

    /// Checks the settings and builds the checker, with `realm` in its challenges.
    pub(crate) fn build(self, realm: &str) -> Result<DpopCheck, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "dpop",
            message,
        };
        let origin = uri::normalize(&self.origin)
            .filter(|_| !self.origin.contains(['?', '#']))
            .ok_or_else(|| {
                invalid(format!(
                    "public origin `{}` is not an absolute http(s) URI without query or user",
                    self.origin
                ))
            })?;
        let origin = origin.trim_end_matches('/').to_owned();
        if self.algorithms.is_empty() {
            return Err(invalid("no proof algorithm is allowed".into()));
        }
        if let Some(a) = self.algorithms.iter().find(|a| !ASYMMETRIC.contains(a)) {
            return Err(invalid(format!(
                "{a} is not an asymmetric algorithm: a proof must be signed by a private key"
            )));
        }
        let algs_text = self
            .algorithms
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" ");
        let nonces = match (self.nonce_lifetime, self.nonce_secret) {
            (None, Some(_)) => {
                return Err(invalid(
                    "a nonce secret is set but nonces are not required".into(),
                ));
            }
            (None, None) => None,
            // Nonces count whole seconds: under one, a nonce would expire when the clock's
            // second turns, and clients would be refused at random.
            (Some(lifetime), _) if lifetime < Duration::from_secs(1) => {
                return Err(invalid(format!(
                    "a nonce lifetime of {lifetime:?} is under a second: nonces count whole seconds"
                )));
            }
            (Some(lifetime), secret) => Some(Nonces::new(nonce_key(secret)?, lifetime)),
        };
        let skew = self.leeway.saturating_mul(2);
        let lifetime = nonces.as_ref().map_or(self.max_age, Nonces::lifetime);
        let window = lifetime
            .saturating_add(skew)
            .saturating_add(Duration::from_secs(1));
        let replay = match self.replay {
            Replay::Memory(0) => return Err(invalid("the replay cache capacity is 0".into())),
            Replay::Memory(capacity) => Store::Memory(MemoryReplay::new(capacity, window)),
            #[cfg(feature = "redis")]
            Replay::Redis(store) => Store::Redis(store),
        };
        Ok(DpopCheck {
            challenges: ChallengeSet::dpop(realm, &algs_text)?,
            origin,
            algs: AlgSet::of(self.algorithms),
            max_age: self.max_age,
            leeway: self.leeway,
            replay,
            nonces,
            require_bound: self.require_bound,
            headers: proof::HeaderCache::new("dpop_headers", HEADER_CACHE),
        })
    }
}

/// The nonce key: the configured secret (at least 32 bytes), or 32 random bytes.
fn nonce_key(secret: Option<Arc<Zeroizing<Vec<u8>>>>) -> Result<Box<[u8]>, ConfigError> {
    match secret {
        Some(s) if s.len() < 32 => Err(ConfigError::Invalid {
            field: "dpop",
            message: "the nonce secret is shorter than 32 bytes".into(),
        }),
        Some(s) => Ok(s.as_slice().into()),
        None => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| ConfigError::Invalid {
                field: "dpop",
                message: format!("no random nonce secret: {e}"),
            })?;
            Ok(key.into())
        }
    }
}

#[derive(Debug)]
enum Store {
    Memory(MemoryReplay),
    #[cfg(feature = "redis")]
    Redis(RedisReplayStore),
}

/// The built DPoP checks of one authenticator.
#[derive(Debug)]
pub(crate) struct DpopCheck {
    /// Normalized, without a trailing `/`.
    origin: String,
    algs: AlgSet,
    max_age: Duration,
    leeway: Duration,
    replay: Store,
    nonces: Option<Nonces>,
    /// Unbound tokens are refused.
    pub(crate) require_bound: bool,
    /// Proof headers already checked (a client's proofs share one).
    headers: proof::HeaderCache,
    pub(crate) challenges: ChallengeSet,
}

/// A proof that passed every check but the replay cache.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of its key, base64url.
    pub(crate) thumbprint: Arc<str>,
    /// The first 128 bits of SHA-256 of its `jti`.
    id: u128,
    /// Until when it could be accepted: how long its id must be remembered.
    until: Timestamp,
    /// A fresh nonce for the client, when the proof's nonce is past half its lifetime (RFC
    /// 9449 §8.2: sent with the successful response, so the client moves on before its nonce
    /// expires and never pays a refused round trip for it).
    pub(crate) next_nonce: Option<HeaderValue>,
}

impl DpopCheck {
    /// Checks the request's proof for a token whose hash is `ath` (RFC 9449 §4.3, every
    /// check but replay).
    pub(crate) fn verify(
        &self,
        parts: &Parts,
        token_ath: &str,
        now: Timestamp,
    ) -> Result<Proof, AuthnReason> {
        let mut values = parts.headers.get_all(DPOP).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(AuthnReason::DpopProofMissing);
        };
        let signed = proof::verify(value.as_bytes(), self.algs, &self.headers, now)?;
        let claims = &signed.claims;
        let jti = proof::jti(claims)?;
        let htm = proof::string_claim(claims, "htm")?;
        let htu = proof::string_claim(claims, "htu")?;
        let iat = proof::iat(claims)?;
        let ath = proof::string_claim(claims, "ath")?;
        if htm != parts.method.as_str() {
            return Err(AuthnReason::DpopProofMethod);
        }
        let expected = uri::normalize(&format!("{}{}", self.origin, parts.uri.path()));
        if expected.is_none() || uri::normalize(htu) != expected {
            return Err(AuthnReason::DpopProofUri);
        }
        let mut next_nonce = None;
        let (made, lifetime) = match &self.nonces {
            Some(nonces) => {
                let nonce = claims.get("nonce").and_then(serde_json::Value::as_str);
                let made = nonce.and_then(|n| nonces.check(n, now, self.leeway));
                let made = made.ok_or(AuthnReason::DpopNonceRequired)?;
                let half = nonces.lifetime().as_secs() / 2;
                if made.saturating_add(half) <= now.as_unix_secs() {
                    next_nonce = Some(nonces.issue(now));
                }
                (made, nonces.lifetime())
            }
            None => {
                let now_secs = now.as_unix_secs();
                let oldest = now_secs.saturating_sub((self.max_age + self.leeway).as_secs());
                if iat < oldest || iat > now_secs.saturating_add(self.leeway.as_secs()) {
                    return Err(AuthnReason::DpopProofTime);
                }
                (iat, self.max_age)
            }
        };
        if !bool::from(ath.as_bytes().ct_eq(token_ath.as_bytes())) {
            return Err(AuthnReason::DpopProofTokenHash);
        }
        let digest = Sha256::digest(jti.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        let until = Timestamp::from_unix_secs(made)
            .saturating_add(lifetime)
            .saturating_add(self.leeway)
            .saturating_add(Duration::from_secs(1));
        Ok(Proof {
            thumbprint: signed.thumbprint,
            id: u128::from_be_bytes(id),
            until,
            next_nonce,
        })
    }

    /// The refusal for `reason`, in the `DPoP` scheme; with a fresh nonce when the proof
    /// lacked one (RFC 9449 §9).
    pub(crate) fn refuse(&self, reason: AuthnReason, now: Timestamp) -> Rejection {
        match (self.challenges.refuse(reason), &self.nonces) {
            (Rejection::Unauthenticated(f), Some(nonces))
                if reason == AuthnReason::DpopNonceRequired =>
            {
                Rejection::Unauthenticated(f.with_dpop_nonce(nonces.issue(now)))
            }
            (rejection, _) => rejection,
        }
    }

    /// Records the proof against replay, when the store answers at once (in memory).
    pub(crate) fn remember_now(
        &self,
        proof: &Proof,
        now: Timestamp,
    ) -> Option<Result<(), Rejection>> {
        match &self.replay {
            Store::Memory(m) => Some(self.recorded(m.record(proof.id, now), now)),
            #[cfg(feature = "redis")]
            Store::Redis(_) => None,
        }
    }

    /// Records the proof against replay (RFC 9449 §11.1).
    pub(crate) async fn remember(&self, proof: &Proof, now: Timestamp) -> Result<(), Rejection> {
        let result = match &self.replay {
            Store::Memory(m) => m.record(proof.id, now),
            #[cfg(feature = "redis")]
            Store::Redis(r) => {
                r.record(proof.id, proof.until.saturating_duration_since(now))
                    .await
            }
        };
        let _ = proof.until;
        self.recorded(result, now)
    }

    fn recorded(&self, result: Result<(), ReplayError>, now: Timestamp) -> Result<(), Rejection> {
        match result {
            Ok(()) => Ok(()),
            Err(ReplayError::Replayed) => Err(self.refuse(AuthnReason::DpopProofReplayed, now)),
            Err(ReplayError::Unavailable(wait)) => Err(Rejection::unavailable_for(
                "authn",
                UnavailableReason::DpopReplayUnavailable,
                wait.max(Duration::from_secs(1)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_nonce_secret() {
        let d = Dpop::new("https://api.example.com")
            .nonce_secret(b"super-secret-nonce-key-0123456789".to_vec());
        let text = format!("{d:?}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn build_refuses_what_cannot_work() {
        let err = |d: Dpop| d.build("api").unwrap_err().to_string();
        assert!(err(Dpop::new("api.example.com")).contains("public origin"));
        assert!(err(Dpop::new("https://a.example/?q")).contains("public origin"));
        assert!(
            err(Dpop::new("https://a.example").algorithms([Algorithm::HS256]))
                .contains("asymmetric")
        );
        assert!(
            err(Dpop::new("https://a.example").nonce_secret(b"x".to_vec()))
                .contains("not required")
        );
        let short = Dpop::new("https://a.example")
            .require_nonce(Duration::from_secs(60))
            .nonce_secret(b"short".to_vec());
        assert!(err(short).contains("32 bytes"));
        for lifetime in [Duration::ZERO, Duration::from_millis(999)] {
            let d = Dpop::new("https://a.example").require_nonce(lifetime);
            assert!(err(d).contains("under a second"));
        }
        // A trailing slash or a path prefix is fine.
        Dpop::new("https://a.example/").build("api").unwrap();
        Dpop::new("https://a.example/api").build("api").unwrap();
    }
}

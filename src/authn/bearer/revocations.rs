//! Revoked tokens, as the invalidation bus announced them: by `jti`, and by subject issued
//! before a time. Bounded in number and in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::cache::{BuildPrehashed, TokenCache};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::invalidation::{Hub, Invalidation, InvalidationListener};

/// How long a revocation is remembered by default: tokens live less than this.
pub const DEFAULT_REVOCATION_HORIZON: Duration = Duration::from_secs(24 * 3600);
/// How many revoked `jti`s (and as many subjects) are remembered by default.
pub const DEFAULT_REVOCATION_CAPACITY: usize = 65_536;

type Map<V> = quick_cache::sync::Cache<u128, V, quick_cache::UnitWeighter, BuildPrehashed>;

/// The revocations an authenticator heard, and the token cache they invalidate.
pub(crate) struct Revocations<V: Clone + Send + Sync + 'static> {
    inner: Arc<Inner<V>>,
}

impl<V: Clone + Send + Sync + 'static> Clone for Revocations<V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> std::fmt::Debug for Revocations<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("jtis", &self.inner.jtis.len())
            .field("subjects", &self.inner.subjects.len())
            .field("horizon", &self.inner.horizon)
            .finish_non_exhaustive()
    }
}

struct Inner<V: Clone + Send + Sync + 'static> {
    hub: Hub,
    /// Whether any revocation was ever heard: the request path skips the lookups until then.
    any: AtomicBool,
    /// `hash(iss, jti)` → forgotten after.
    jtis: Map<Timestamp>,
    /// `hash(sub)` → (tokens issued before this are refused, forgotten after).
    subjects: Map<(Timestamp, Timestamp)>,
    horizon: Duration,
    /// Hashes the keys (the token cache's keyed SipHash).
    cache: Arc<TokenCache<V>>,
}

/// What a verified token says about itself, for the revocation checks.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenFacts {
    pub(crate) issuer: Option<Arc<str>>,
    pub(crate) jti: Option<Arc<str>>,
    pub(crate) iat: Option<Timestamp>,
}

impl TokenFacts {
    /// `iss`, `jti` and `iat` of a claims set.
    #[cfg(feature = "jwt")]
    pub(crate) fn from_claims(claims: &serde_json::Map<String, serde_json::Value>) -> Self {
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(Arc::from);
        Self {
            issuer: text("iss"),
            jti: text("jti"),
            iat: claims
                .get("iat")
                .and_then(serde_json::Value::as_u64)
                .map(Timestamp::from_unix_secs),
        }
    }
}

fn map<T: Clone>(n: usize) -> Map<T> {
    Map::with(
        n.clamp(1, 1024),
        n.max(1) as u64,
        quick_cache::UnitWeighter,
        BuildPrehashed,
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

fn pair_key<V: Clone>(cache: &TokenCache<V>, iss: &str, jti: &str) -> u128 {
    // A separator no text holds, so ("ab", "c") and ("a", "bc") differ.
    let mut bytes = Vec::with_capacity(iss.len() + jti.len() + 1);
    bytes.extend_from_slice(iss.as_bytes());
    bytes.push(0xff);
    bytes.extend_from_slice(jti.as_bytes());
    cache.key(&bytes)
}

impl<V: Clone + Send + Sync + 'static> Revocations<V> {
    /// Listens on `hub` for the revocations of tokens and invalidates `cache`.
    pub(crate) fn new(
        hub: &Hub,
        cache: Arc<TokenCache<V>>,
        horizon: Duration,
        capacity: usize,
    ) -> Self {
        let inner = Arc::new(Inner {
            hub: hub.clone(),
            any: AtomicBool::new(false),
            jtis: map(capacity),
            subjects: map(capacity),
            horizon,
            cache,
        });
        let listener: Arc<dyn InvalidationListener> = inner.clone();
        hub.listen(&listener);
        Self { inner }
    }

    /// Whether the token `facts` describe, of `subject`, was revoked.
    pub(crate) fn revoked(&self, facts: &TokenFacts, subject: &str, now: Timestamp) -> bool {
        let inner = &*self.inner;
        if !inner.any.load(Ordering::Relaxed) {
            return false;
        }
        if let Some(jti) = &facts.jti {
            let iss = facts.issuer.as_deref().unwrap_or("");
            // A revocation without an issuer names the `jti` of any issuer.
            for issuer in [iss, ""] {
                let key = pair_key(&inner.cache, issuer, jti);
                if inner.jtis.get(&key).is_some_and(|until| until > now) {
                    return true;
                }
            }
        }
        let key = inner.cache.key(subject.as_bytes());
        // A token without `iat` cannot show it was issued after: refused while it matters.
        inner
            .subjects
            .get(&key)
            .is_some_and(|(before, until)| until > now && facts.iat.is_none_or(|iat| iat < before))
    }

    /// The latest a token verified now may be cached until: its own expiry, or the bus's safe
    /// lifetime while the bus is not live.
    pub(crate) fn cache_until(&self, exp: Timestamp, now: Timestamp) -> Timestamp {
        let hub = &self.inner.hub;
        if hub.is_live() {
            exp
        } else {
            exp.min(now.saturating_add(hub.safe_lifetime()))
        }
    }
}

impl<V: Clone + Send + Sync + 'static> InvalidationListener for Inner<V> {
    fn invalidate(&self, message: &Invalidation) {
        // System time: a revocation is remembered for the horizon from when it was heard.
        let now = SystemClock.now();
        match message {
            Invalidation::TokenRevoked { issuer, jti } => {
                let key = pair_key(&self.cache, issuer, jti);
                self.jtis.insert(key, now.saturating_add(self.horizon));
            }
            Invalidation::SubjectTokensRevokedBefore { subject, before } => {
                let key = self.cache.key(subject.as_bytes());
                let until = before.saturating_add(self.horizon);
                if until <= now {
                    return;
                }
                // The latest revocation of a subject covers the earlier ones.
                let before = match self.subjects.get(&key) {
                    Some((b, _)) if b > *before => b,
                    _ => *before,
                };
                self.subjects
                    .insert(key, (before, before.saturating_add(self.horizon)));
            }
            _ => return,
        }
        self.any.store(true, Ordering::Relaxed);
    }

    fn resync(&self) {
        self.cache.clear();
    }

    fn bus_down(&self) {
        // Entries cached while live would outlive the safe lifetime: dropped.
        self.cache.clear();
    }
}

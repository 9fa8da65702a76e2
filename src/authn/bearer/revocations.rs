//! Revoked tokens, as the invalidation bus announced them: by `jti`, and by subject issued
//! before a time. Bounded in number and in time; a revocation that has to be forgotten while
//! it still matters becomes a floor (every token of its issuer issued before it is refused),
//! never a token accepted again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::cache::{BuildPrehashed, TokenCache};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::invalidation::{Hub, Invalidation, InvalidationListener};

/// How long a revocation is remembered by default: tokens live less than this.
pub const DEFAULT_REVOCATION_HORIZON: Duration = Duration::from_secs(24 * 3600);
/// How many revoked `jti`s (and as many subjects) are remembered by default.
pub const DEFAULT_REVOCATION_CAPACITY: usize = 65_536;

/// The revocation horizon a builder was given (`set`), checked: it takes effect only with an
/// invalidation bus, and a zero horizon would forget each revocation as it is heard.
fn checked_horizon(
    set: Option<Duration>,
    bus: bool,
    field: &'static str,
) -> Result<Duration, crate::error::ConfigError> {
    let invalid = |message: &str| crate::error::ConfigError::Invalid {
        field,
        message: message.into(),
    };
    match set {
        Some(_) if !bus => Err(invalid(
            "revocations come from an invalidation bus (`invalidation`); without one the horizon would be ignored",
        )),
        Some(h) if h.is_zero() => Err(invalid(
            "a zero horizon forgets every revocation as it is heard",
        )),
        set => Ok(set.unwrap_or(DEFAULT_REVOCATION_HORIZON)),
    }
}

/// The most revocations of each kind a builder may be asked to remember.
pub(crate) const MAX_REVOCATION_CAPACITY: usize = 1 << 22;

/// The revocation capacity a builder was given (`set`), checked: it takes effect only with an
/// invalidation bus, and must be between 1 and [`MAX_REVOCATION_CAPACITY`].
fn checked_capacity(
    set: Option<usize>,
    bus: bool,
    field: &'static str,
) -> Result<usize, crate::error::ConfigError> {
    let invalid = |message: String| crate::error::ConfigError::Invalid { field, message };
    match set {
        Some(_) if !bus => Err(invalid(
            "revocations come from an invalidation bus (`invalidation`); without one the capacity would be ignored".into(),
        )),
        Some(n) if n == 0 || n > MAX_REVOCATION_CAPACITY => Err(invalid(format!(
            "the capacity is between 1 and {MAX_REVOCATION_CAPACITY} revocations of each kind, not {n}"
        ))),
        set => Ok(set.unwrap_or(DEFAULT_REVOCATION_CAPACITY)),
    }
}

/// A revocation: tokens issued before the first time are refused until the second; the third
/// is the issuer whose tokens it names ([`Scope`]).
type Revoked = (Timestamp, Timestamp, Scope);

/// The issuer a revocation names, as a hash of its `iss`; [`EVERY_ISSUER`] for a subject's
/// revocation and a `jti`'s without an issuer, which name the tokens of any issuer.
type Scope = u64;

/// The scope of a revocation that names the tokens of any issuer.
const EVERY_ISSUER: Scope = 0;

/// How many issuers may have a floor of their own; a revocation of one more issuer forgotten
/// while all of them matter raises the floor of every issuer.
const MAX_ISSUER_FLOORS: usize = 16;

type Map = quick_cache::sync::Cache<u128, Revoked, quick_cache::UnitWeighter, BuildPrehashed, Keep>;

/// How much later than a `jti` revocation was heard its token may say it was issued (the
/// issuer's clock ahead of ours), when the revocation has to be forgotten.
const ISSUER_CLOCK_AHEAD: Duration = Duration::from_secs(60);

/// Revocations evicted while they still mattered, as one floor: tokens issued before
/// `before` are refused until `until` (Unix nanoseconds, each the greatest evicted so far).
#[derive(Debug, Default)]
struct Floor {
    before: AtomicU64,
    until: AtomicU64,
}

impl Floor {
    /// Raises the floor to cover `before` until `until`; whether it was down until now.
    fn raise(&self, before: Timestamp, until: Timestamp, now: Timestamp) -> bool {
        self.before
            .fetch_max(before.as_unix_nanos(), Ordering::Relaxed);
        let was = self
            .until
            .fetch_max(until.as_unix_nanos(), Ordering::Relaxed);
        was <= now.as_unix_nanos()
    }

    /// Whether a token issued at `iat` falls under the floor (one without `iat` cannot show
    /// it does not).
    fn covers(&self, iat: Option<Timestamp>, now: Timestamp) -> bool {
        self.until.load(Ordering::Relaxed) > now.as_unix_nanos()
            && iat.is_none_or(|iat| iat.as_unix_nanos() < self.before.load(Ordering::Relaxed))
    }

    fn is_down(&self, now: Timestamp) -> bool {
        self.until.load(Ordering::Relaxed) <= now.as_unix_nanos()
    }
}

/// What the two maps had to forget while it still mattered: a floor for the tokens of every
/// issuer, and one for each of up to [`MAX_ISSUER_FLOORS`] issuers whose `jti`s were
/// forgotten, so that a flood of revocations from one issuer refuses the older tokens of that
/// issuer only.
#[derive(Debug, Default)]
struct Forgotten {
    every: Floor,
    /// Until when any floor of `issuers` is up (Unix nanoseconds): the request path takes no
    /// lock but then.
    scoped_until: AtomicU64,
    issuers: RwLock<Vec<(Scope, Floor)>>,
}

impl Forgotten {
    fn note(&self, (before, until, scope): Revoked) {
        let now = SystemClock.now();
        if until <= now {
            return; // it no longer mattered
        }
        // Whether a floor went up, and whether it was every issuer's.
        let (raised, every) = if scope == EVERY_ISSUER {
            (self.every.raise(before, until, now), true)
        } else {
            let mut issuers = self.issuers.write().unwrap_or_else(|e| e.into_inner());
            let slot = match issuers.iter().position(|(s, _)| *s == scope) {
                Some(i) => Some(i),
                None if issuers.len() < MAX_ISSUER_FLOORS => {
                    issuers.push((scope, Floor::default()));
                    Some(issuers.len() - 1)
                }
                // A floor that is down again is given to this issuer.
                None => issuers
                    .iter()
                    .position(|(_, f)| f.is_down(now))
                    .inspect(|&i| {
                        issuers[i] = (scope, Floor::default());
                    }),
            };
            self.scoped_until
                .fetch_max(until.as_unix_nanos(), Ordering::Release);
            match slot {
                Some(i) => (issuers[i].1.raise(before, until, now), false),
                // Too many issuers at once: the floor of every issuer, never forgetting.
                None => (self.every.raise(before, until, now), true),
            }
        };
        if raised {
            tracing::warn!(
                layer = "authn",
                every_issuer = every,
                "more token revocations than can be remembered: every token issued before the \
                 forgotten ones (of their issuer, or of every issuer for subjects) is refused \
                 until they would have expired; revoke subjects or rotate the signing key to \
                 cut off many tokens at once"
            );
        }
    }

    /// Whether a token of the issuer `scope` gives, issued at `iat`, falls under a floor.
    fn covers(
        &self,
        scope: impl FnOnce() -> Scope,
        iat: Option<Timestamp>,
        now: Timestamp,
    ) -> bool {
        if self.every.covers(iat, now) {
            return true;
        }
        if self.scoped_until.load(Ordering::Acquire) <= now.as_unix_nanos() {
            return false;
        }
        let scope = scope();
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        scope != EVERY_ISSUER
            && issuers
                .iter()
                .any(|(s, floor)| *s == scope && floor.covers(iat, now))
    }
}

/// Collects what an insertion pushed out of a map: evicted revocations, and the value an
/// insertion replaced (quick_cache reports both the same way).
#[derive(Debug, Clone, Copy, Default)]
struct Keep;

impl quick_cache::Lifecycle<u128, Revoked> for Keep {
    type RequestState = Vec<(u128, Revoked)>;

    fn on_evict(&self, out: &mut Self::RequestState, key: u128, revoked: Revoked) {
        out.push((key, revoked));
    }
}

impl Forgotten {
    /// Inserts `revoked` under `key` into `map`; whatever that evicts (not the value it
    /// replaces under `key`) goes under the floor, and so does `revoked` if the map did not
    /// keep it.
    fn remember(&self, map: &Map, key: u128, revoked: Revoked) {
        let mut out = Vec::new();
        map.insert_with_lifecycle(key, revoked, &mut out);
        for (k, r) in out {
            if k != key {
                self.note(r);
            }
        }
        if map.peek(&key).is_none() {
            self.note(revoked);
        }
    }
}

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
    /// `hash(iss, jti)` → (when heard, with the issuer's clock ahead; forgotten after).
    jtis: Map,
    /// `hash(sub)` → (tokens issued before this are refused, forgotten after).
    subjects: Map,
    /// What the two maps had to forget while it still mattered.
    forgotten: Forgotten,
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

fn map(n: usize) -> Map {
    Map::with(
        n.clamp(1, 1024),
        n.max(1) as u64,
        quick_cache::UnitWeighter,
        BuildPrehashed,
        Keep,
    )
}

/// The scope of revocations naming the tokens of `iss` (every issuer's when empty).
fn scope_of<V: Clone>(cache: &TokenCache<V>, iss: &str) -> Scope {
    if iss.is_empty() {
        EVERY_ISSUER
    } else {
        // Never `EVERY_ISSUER`, whatever the hash.
        (cache.key(iss.as_bytes()) as u64).max(1)
    }
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
            forgotten: Forgotten::default(),
            horizon,
            cache,
        });
        let listener: Arc<dyn InvalidationListener> = inner.clone();
        hub.listen(&listener);
        Self { inner }
    }

    /// The revocations a builder's settings describe: none without a bus (`hub`); the
    /// `(horizon, capacity)` given are checked, their errors naming `fields`.
    pub(crate) fn of(
        hub: Option<&Hub>,
        cache: &Arc<TokenCache<V>>,
        (horizon, capacity): (Option<Duration>, Option<usize>),
        fields: [&'static str; 2],
    ) -> Result<Option<Self>, crate::error::ConfigError> {
        let horizon = checked_horizon(horizon, hub.is_some(), fields[0])?;
        let capacity = checked_capacity(capacity, hub.is_some(), fields[1])?;
        Ok(hub.map(|hub| Self::new(hub, cache.clone(), horizon, capacity)))
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
                if inner
                    .jtis
                    .get(&key)
                    .is_some_and(|(_, until, _)| until > now)
                {
                    return true;
                }
            }
        }
        let iss = facts.issuer.as_deref().unwrap_or("");
        if inner
            .forgotten
            .covers(|| scope_of(&inner.cache, iss), facts.iat, now)
        {
            return true;
        }
        let key = inner.cache.key(subject.as_bytes());
        // A token without `iat` cannot show it was issued after: refused while it matters.
        inner.subjects.get(&key).is_some_and(|(before, until, _)| {
            until > now && facts.iat.is_none_or(|iat| iat < before)
        })
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
                let heard = now.saturating_add(ISSUER_CLOCK_AHEAD);
                let scope = scope_of(&self.cache, issuer);
                let revoked = (heard, now.saturating_add(self.horizon), scope);
                self.forgotten.remember(&self.jtis, key, revoked);
            }
            Invalidation::SubjectTokensRevokedBefore { subject, before } => {
                let key = self.cache.key(subject.as_bytes());
                let until = before.saturating_add(self.horizon);
                if until <= now {
                    return;
                }
                // The latest revocation of a subject covers the earlier ones.
                let before = match self.subjects.get(&key) {
                    Some((b, _, _)) if b > *before => b,
                    _ => *before,
                };
                let revoked = (before, before.saturating_add(self.horizon), EVERY_ISSUER);
                self.forgotten.remember(&self.subjects, key, revoked);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn revocations(capacity: usize) -> (Hub, Revocations<()>) {
        let hub = Hub::new(Duration::from_secs(5));
        hub.set_live(true);
        let cache = Arc::new(TokenCache::new("test", 16));
        let r = Revocations::new(&hub, cache, Duration::from_secs(3600), capacity);
        (hub, r)
    }

    fn token(jti: &str, iat: Option<Timestamp>) -> TokenFacts {
        TokenFacts {
            issuer: Some("https://issuer.test".into()),
            jti: Some(jti.into()),
            iat,
        }
    }

    fn revoke(hub: &Hub, jti: &str) {
        hub.deliver(&Invalidation::TokenRevoked {
            issuer: "https://issuer.test".into(),
            jti: jti.into(),
        });
    }

    /// Fail closed: a flood of revocations past the capacity never makes a revoked token
    /// valid again; what had to be forgotten becomes a floor under which every token issued
    /// before it is refused, and tokens issued after it pass.
    #[test]
    fn revocations_past_the_capacity_refuse_every_older_token_instead_of_forgetting() {
        let now = SystemClock.now();
        let before = Some(Timestamp::from_unix_secs(now.as_unix_secs() - 600));
        let after = Some(now.saturating_add(Duration::from_secs(600)));
        let (hub, r) = revocations(64);
        for i in 0..8 {
            revoke(&hub, &format!("few-{i}"));
        }
        assert!(r.revoked(&token("few-3", before), "alice", now));
        // The same revocations again (a bus replays its log): a replaced entry is not evicted.
        for i in 0..8 {
            revoke(&hub, &format!("few-{i}"));
        }
        hub.deliver(&Invalidation::SubjectTokensRevokedBefore {
            subject: "bob".into(),
            before: now,
        });
        hub.deliver(&Invalidation::SubjectTokensRevokedBefore {
            subject: "bob".into(),
            before: now,
        });
        assert!(r.revoked(&token("x", before), "bob", now));
        assert!(
            !r.revoked(&token("other", before), "alice", now),
            "within the capacity, only what was revoked is refused"
        );
        for i in 0..10_000 {
            revoke(&hub, &format!("flood-{i}"));
        }
        for i in 0..10_000 {
            let jti = format!("flood-{i}");
            assert!(
                r.revoked(&token(&jti, before), "alice", now),
                "{jti} is valid again"
            );
        }
        assert!(r.revoked(&token("never-revoked", before), "alice", now));
        assert!(r.revoked(&token("never-revoked", None), "alice", now));
        assert!(!r.revoked(&token("never-revoked", after), "alice", now));
        // The floor lasts as long as the forgotten revocations would have.
        let later = now.saturating_add(Duration::from_secs(3601));
        assert!(!r.revoked(&token("never-revoked", before), "alice", later));
    }

    fn revoke_of(hub: &Hub, issuer: &str, jti: &str) {
        hub.deliver(&Invalidation::TokenRevoked {
            issuer: issuer.into(),
            jti: jti.into(),
        });
    }

    fn token_of(issuer: Option<&str>, jti: &str, iat: Option<Timestamp>) -> TokenFacts {
        TokenFacts {
            issuer: issuer.map(Arc::from),
            jti: Some(jti.into()),
            iat,
        }
    }

    /// The floor of a flood of one issuer's `jti` revocations refuses that issuer's older
    /// tokens, and leaves the tokens of every other issuer alone.
    #[test]
    fn a_flood_of_one_issuers_revocations_refuses_only_that_issuers_older_tokens() {
        let now = SystemClock.now();
        let old = Some(Timestamp::from_unix_secs(now.as_unix_secs() - 600));
        let (hub, r) = revocations(16);
        for i in 0..2_000 {
            revoke_of(&hub, "https://noisy.test", &format!("flood-{i}"));
        }
        for i in 0..2_000 {
            let t = token_of(Some("https://noisy.test"), &format!("flood-{i}"), old);
            assert!(r.revoked(&t, "alice", now), "flood-{i} is valid again");
        }
        let noisy = token_of(Some("https://noisy.test"), "never-revoked", old);
        assert!(r.revoked(&noisy, "alice", now));
        let quiet = token_of(Some("https://quiet.test"), "never-revoked", old);
        assert!(!r.revoked(&quiet, "alice", now), "another issuer's token");
        assert!(!r.revoked(
            &token_of(Some("https://quiet.test"), "j", None),
            "alice",
            now
        ));
        assert!(
            !r.revoked(&token_of(None, "j", old), "alice", now),
            "a token without `iss`"
        );
        // The quiet issuer's own revocations are still remembered.
        revoke_of(&hub, "https://quiet.test", "revoked");
        let revoked = token_of(Some("https://quiet.test"), "revoked", old);
        assert!(r.revoked(&revoked, "alice", now));
    }

    /// Revocations that name no issuer, and revocations of more issuers at once than have a
    /// floor of their own, raise the floor of every issuer: never a revoked token accepted.
    #[test]
    fn revocations_of_any_issuer_or_of_too_many_issuers_raise_every_issuers_floor() {
        let now = SystemClock.now();
        let old = Some(Timestamp::from_unix_secs(now.as_unix_secs() - 600));
        let quiet = token_of(Some("https://quiet.test"), "never-revoked", old);
        let (hub, r) = revocations(16);
        for i in 0..500 {
            revoke_of(&hub, "", &format!("any-{i}"));
        }
        assert!(r.revoked(&token_of(Some("https://a.test"), "any-1", old), "x", now));
        assert!(
            r.revoked(&quiet, "alice", now),
            "no issuer named: every issuer"
        );

        let (hub, r) = revocations(16);
        let issuers: Vec<String> = (0..MAX_ISSUER_FLOORS + 4)
            .map(|n| format!("https://issuer-{n}.test"))
            .collect();
        for i in 0..200 {
            for issuer in &issuers {
                revoke_of(&hub, issuer, &format!("flood-{i}"));
            }
        }
        for issuer in &issuers {
            for i in 0..200 {
                let t = token_of(Some(issuer), &format!("flood-{i}"), old);
                assert!(
                    r.revoked(&t, "alice", now),
                    "{issuer} flood-{i} is valid again"
                );
            }
        }
        assert!(
            r.revoked(&quiet, "alice", now),
            "past the issuers' floors: every issuer"
        );
    }

    #[test]
    fn a_horizon_takes_effect_or_is_refused() {
        let h = Duration::from_secs(7 * 24 * 3600);
        let ok = |set, bus| checked_horizon(set, bus, "jwt.revocation_horizon").unwrap();
        assert_eq!(ok(Some(h), true), h);
        assert_eq!(ok(None, true), DEFAULT_REVOCATION_HORIZON);
        assert_eq!(ok(None, false), DEFAULT_REVOCATION_HORIZON);
        for (set, bus) in [(Some(h), false), (Some(Duration::ZERO), true)] {
            let err = checked_horizon(set, bus, "jwt.revocation_horizon").unwrap_err();
            assert!(err.to_string().contains("jwt.revocation_horizon"), "{err}");
        }
    }

    #[test]
    fn a_capacity_takes_effect_or_is_refused() {
        let ok = |set, bus| checked_capacity(set, bus, "jwt.revocation_capacity").unwrap();
        assert_eq!(ok(Some(1_000_000), true), 1_000_000);
        assert_eq!(ok(None, true), DEFAULT_REVOCATION_CAPACITY);
        assert_eq!(ok(None, false), DEFAULT_REVOCATION_CAPACITY);
        for (set, bus) in [
            (Some(1_000), false),
            (Some(0), true),
            (Some(MAX_REVOCATION_CAPACITY + 1), true),
        ] {
            let err = checked_capacity(set, bus, "jwt.revocation_capacity").unwrap_err();
            assert!(err.to_string().contains("jwt.revocation_capacity"), "{err}");
        }
    }

    #[test]
    fn a_forgotten_subject_revocation_refuses_what_it_covered() {
        let now = SystemClock.now();
        let cut = Timestamp::from_unix_secs(now.as_unix_secs() - 60);
        let (hub, r) = revocations(16);
        for i in 0..2_000 {
            hub.deliver(&Invalidation::SubjectTokensRevokedBefore {
                subject: format!("user-{i}").into(),
                before: cut,
            });
        }
        let old = Some(Timestamp::from_unix_secs(cut.as_unix_secs() - 1));
        for i in 0..2_000 {
            let t = token("j", old);
            assert!(r.revoked(&t, &format!("user-{i}"), now), "user-{i}");
        }
        let fresh = Some(Timestamp::from_unix_secs(cut.as_unix_secs() + 1));
        assert!(!r.revoked(&token("j", fresh), "user-7", now));
    }
}

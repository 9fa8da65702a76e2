//! The [`QuotaStore`] trait: atomic check-and-consume of a key's limits.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::batch::QuotaCheck;
use super::limit::Verdict;
use super::policy::QuotaKey;
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};

/// Where counters live. Implementations must check and consume **atomically**: two concurrent
/// checks of one key never both take the last unit, and the limits of one key are consumed all
/// together or not at all ([`MemoryStore`](super::MemoryStore) and the Redis store do this).
///
/// A store that answers without waiting (memory) also implements
/// [`check_now`](Self::check_now), which lets the layer skip boxing a future.
pub trait QuotaStore: Send + Sync + 'static {
    /// Checks `cost` units for `key` at `now` against the limits of `key.policy()`. When all
    /// admit it and `consume` is set, consumes them; with `consume` unset only reports whether
    /// they would be admitted.
    ///
    /// An `Err` means the store could not decide: the layer refuses with 503 (fail closed).
    /// Stores with another outage policy (fail open, local limits) decide inside and report it
    /// with [`Verdict::with_mode`].
    fn check(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> impl Future<Output = Result<Verdict, StoreError>> + Send;

    /// The same check, answered at once, or `None` if this store must wait for I/O (then the
    /// layer awaits [`check`](Self::check)). The default is `None`.
    fn check_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Option<Result<Verdict, StoreError>> {
        let _ = (key, cost, now, consume);
        None
    }

    /// Gives back `cost` units that a consuming [`check`](Self::check) at `now` took for
    /// `key`: another rule refused the request, and a refused request costs nothing anywhere.
    /// A rate's TAT moves back by `cost` emission intervals, the count of `now`'s window drops
    /// by `cost`; units consumed since by other requests stay consumed.
    ///
    /// The default answers [`StoreErrorKind::Unsupported`]: with such a store, a request
    /// refused by another rule keeps the units it took here, and the layer says so once in
    /// its log.
    fn refund(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (key, cost, now);
        std::future::ready(Err(StoreError::from_kind(StoreErrorKind::Unsupported)))
    }

    /// The same refund, done at once, or `None` if this store must wait for I/O (then the
    /// layer awaits [`refund`](Self::refund)). The default is `None`.
    fn refund_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> Option<Result<(), StoreError>> {
        let _ = (key, cost, now);
        None
    }

    /// Checks all of one request's `checks` at `now`, all or nothing, and answers one verdict
    /// per check, in order, each what [`check`](Self::check) would answer for it alone after
    /// the checks before it. When a binding check refuses, or any check fails, no unit stays
    /// consumed anywhere; otherwise every consuming check that admits has consumed (a
    /// [`shadow`](QuotaCheck::shadow) check that refuses consumes nothing and refuses
    /// nothing).
    ///
    /// The quota layer calls it with every rule of a request that shares this store, and
    /// with the response charges, when [`check_now`](Self::check_now) cannot answer at once.
    /// The default runs [`check`](Self::check) for every check at once and, when the batch
    /// refuses, gives back with [`refund`](Self::refund) what the admitted ones took (so a
    /// store without refunds keeps those units, and says so once in its log). The Redis
    /// store answers it with one script on a single node or Sentinel: it tests every check,
    /// then consumes only if all admit, atomically.
    fn check_all(
        &self,
        checks: &[QuotaCheck<'_>],
        now: Timestamp,
    ) -> impl Future<Output = Vec<Result<Verdict, StoreError>>> + Send {
        super::batch::check_each_of(self, checks, now)
    }

    /// The store's figures now, for operators ([`QuotaStats`](super::QuotaStats)). The
    /// default knows none.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

/// A quota store's figures at one moment, for operators; `None` where a store does not keep
/// one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Keys held now (memory).
    pub keys: Option<usize>,
    /// The most keys the store holds (memory).
    pub max_keys: Option<usize>,
    /// Keys evicted to stay within `max_keys`, since start (memory).
    pub evictions: Option<u64>,
    /// Checks the backend failed to answer, since start (Redis).
    pub failures: Option<u64>,
    /// Whether the last check found the backend unreachable (Redis).
    pub down: Option<bool>,
}

impl<T: QuotaStore + ?Sized> QuotaStore for Arc<T> {
    fn check(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> impl Future<Output = Result<Verdict, StoreError>> + Send {
        (**self).check(key, cost, now, consume)
    }

    fn check_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Option<Result<Verdict, StoreError>> {
        (**self).check_now(key, cost, now, consume)
    }

    fn refund(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).refund(key, cost, now)
    }

    fn refund_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> Option<Result<(), StoreError>> {
        (**self).refund_now(key, cost, now)
    }

    fn check_all(
        &self,
        checks: &[QuotaCheck<'_>],
        now: Timestamp,
    ) -> impl Future<Output = Vec<Result<Verdict, StoreError>>> + Send {
        (**self).check_all(checks, now)
    }

    fn stats(&self) -> StoreStats {
        (**self).stats()
    }
}

pub use crate::outcome::QuotaMode;

/// What a shared store (`RedisStore`, feature `redis`) does when its backend cannot answer in
/// time. In a configuration file: `on_outage: fail-closed`, `fail-open`, or
/// `{local: {instances: 4}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "RawOutage")]
#[non_exhaustive]
pub enum OnOutage {
    /// Refuse with 503 (the default: no limit is ever silently lifted).
    #[default]
    FailClosed,
    /// Admit the request unchecked, marked [`QuotaMode::FailOpen`] for audit.
    FailOpen,
    /// Enforce `1 / instances` of every limit in this process's memory (at least one request
    /// per limit) until Redis answers again, marked [`QuotaMode::Degraded`]. With `instances`
    /// set to the number of instances, the fleet as a whole keeps about the configured limit.
    Local {
        /// How many instances share the limits.
        instances: u64,
    },
}

/// The file forms of [`OnOutage`].
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RawOutage {
    Name(String),
    Local { local: RawLocal },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    instances: u64,
}

impl TryFrom<RawOutage> for OnOutage {
    type Error = String;

    fn try_from(raw: RawOutage) -> Result<Self, String> {
        match raw {
            RawOutage::Name(name) => match name.as_str() {
                "fail-closed" => Ok(Self::FailClosed),
                "fail-open" => Ok(Self::FailOpen),
                "local" => Err("`local` needs the number of instances sharing the limits: \
                     `on_outage: {local: {instances: 4}}`"
                    .into()),
                other => Err(format!(
                    "`{other}` is not an outage policy: expected `fail-closed`, `fail-open` or \
                     `{{local: {{instances: N}}}}`"
                )),
            },
            RawOutage::Local {
                local: RawLocal { instances },
            } => Ok(Self::Local { instances }),
        }
    }
}

/// The object-safe companion of [`QuotaStore`], for a store chosen at run time:
/// `Box<dyn DynQuotaStore>` and `Arc<dyn DynQuotaStore>` are [`QuotaStore`]s (one boxed future
/// per check that must wait; [`check_now`](QuotaStore::check_now) still answers at once), and
/// so is [`AnyQuotaStore::Custom`]. Every `QuotaStore` is one.
pub trait DynQuotaStore: Send + Sync + 'static {
    /// [`QuotaStore::check`], boxed.
    fn check_boxed<'a>(
        &'a self,
        key: &'a QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> crate::BoxFuture<'a, Result<Verdict, StoreError>>;

    /// [`QuotaStore::check_now`].
    fn check_now_dyn(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Option<Result<Verdict, StoreError>>;

    /// [`QuotaStore::refund`], boxed.
    fn refund_boxed<'a>(
        &'a self,
        key: &'a QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> crate::BoxFuture<'a, Result<(), StoreError>>;

    /// [`QuotaStore::refund_now`].
    fn refund_now_dyn(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> Option<Result<(), StoreError>>;

    /// [`QuotaStore::check_all`], boxed. The default checks one by one with
    /// [`check_boxed`](Self::check_boxed) and gives back with
    /// [`refund_boxed`](Self::refund_boxed), as [`QuotaStore::check_all`]'s default does.
    fn check_all_boxed<'a>(
        &'a self,
        checks: &'a [QuotaCheck<'a>],
        now: Timestamp,
    ) -> crate::BoxFuture<'a, Vec<Result<Verdict, StoreError>>> {
        Box::pin(super::batch::check_each(
            checks,
            move |c| self.check_boxed(c.key, c.cost, now, c.consume),
            move |c| self.refund_boxed(c.key, c.cost, now),
        ))
    }

    /// [`QuotaStore::stats`].
    fn stats_dyn(&self) -> StoreStats;
}

impl<T: QuotaStore> DynQuotaStore for T {
    fn check_boxed<'a>(
        &'a self,
        key: &'a QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> crate::BoxFuture<'a, Result<Verdict, StoreError>> {
        Box::pin(self.check(key, cost, now, consume))
    }

    fn check_now_dyn(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Option<Result<Verdict, StoreError>> {
        self.check_now(key, cost, now, consume)
    }

    fn refund_boxed<'a>(
        &'a self,
        key: &'a QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> crate::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.refund(key, cost, now))
    }

    fn refund_now_dyn(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> Option<Result<(), StoreError>> {
        self.refund_now(key, cost, now)
    }

    fn check_all_boxed<'a>(
        &'a self,
        checks: &'a [QuotaCheck<'a>],
        now: Timestamp,
    ) -> crate::BoxFuture<'a, Vec<Result<Verdict, StoreError>>> {
        Box::pin(self.check_all(checks, now))
    }

    fn stats_dyn(&self) -> StoreStats {
        self.stats()
    }
}

macro_rules! dyn_quota_store {
    ($($ptr:ident),*) => {$(
        impl QuotaStore for $ptr<dyn DynQuotaStore> {
            async fn check(
                &self,
                key: &QuotaKey,
                cost: u64,
                now: Timestamp,
                consume: bool,
            ) -> Result<Verdict, StoreError> {
                // `(**self)`: the pointer is a DynQuotaStore too (blanket impl); calling it
                // would recurse.
                (**self).check_boxed(key, cost, now, consume).await
            }

            fn check_now(
                &self,
                key: &QuotaKey,
                cost: u64,
                now: Timestamp,
                consume: bool,
            ) -> Option<Result<Verdict, StoreError>> {
                (**self).check_now_dyn(key, cost, now, consume)
            }

            async fn refund(&self, key: &QuotaKey, cost: u64, now: Timestamp) -> Result<(), StoreError> {
                (**self).refund_boxed(key, cost, now).await
            }

            fn refund_now(&self, key: &QuotaKey, cost: u64, now: Timestamp) -> Option<Result<(), StoreError>> {
                (**self).refund_now_dyn(key, cost, now)
            }

            async fn check_all(
                &self,
                checks: &[QuotaCheck<'_>],
                now: Timestamp,
            ) -> Vec<Result<Verdict, StoreError>> {
                (**self).check_all_boxed(checks, now).await
            }

            fn stats(&self) -> StoreStats {
                (**self).stats_dyn()
            }
        }
    )*};
}

dyn_quota_store!(Box, Arc);

/// A store chosen at run time (by a configuration file): in memory, or Redis with the `redis`
/// feature. Memory checks still answer at once, without a boxed future.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyQuotaStore {
    /// Counters in this process.
    Memory(super::MemoryStore),
    /// Counters in Redis, shared by every instance.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(super::RedisStore),
    /// A host's own store.
    Custom(Arc<dyn DynQuotaStore>),
}

impl fmt::Debug for dyn DynQuotaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DynQuotaStore")
    }
}

impl QuotaStore for AnyQuotaStore {
    async fn check(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Result<Verdict, StoreError> {
        match self {
            Self::Memory(m) => m.check(key, cost, now, consume).await,
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.check(key, cost, now, consume).await,
            Self::Custom(c) => c.check_boxed(key, cost, now, consume).await,
        }
    }

    fn check_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Option<Result<Verdict, StoreError>> {
        match self {
            Self::Memory(m) => m.check_now(key, cost, now, consume),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.check_now(key, cost, now, consume),
            Self::Custom(c) => c.check_now_dyn(key, cost, now, consume),
        }
    }

    async fn refund(&self, key: &QuotaKey, cost: u64, now: Timestamp) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => m.refund(key, cost, now).await,
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.refund(key, cost, now).await,
            Self::Custom(c) => c.refund_boxed(key, cost, now).await,
        }
    }

    fn refund_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> Option<Result<(), StoreError>> {
        match self {
            Self::Memory(m) => m.refund_now(key, cost, now),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.refund_now(key, cost, now),
            Self::Custom(c) => c.refund_now_dyn(key, cost, now),
        }
    }

    async fn check_all(
        &self,
        checks: &[QuotaCheck<'_>],
        now: Timestamp,
    ) -> Vec<Result<Verdict, StoreError>> {
        match self {
            Self::Memory(m) => m.check_all(checks, now).await,
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.check_all(checks, now).await,
            Self::Custom(c) => c.check_all_boxed(checks, now).await,
        }
    }

    fn stats(&self) -> StoreStats {
        match self {
            Self::Memory(m) => m.stats(),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.stats(),
            Self::Custom(c) => c.stats_dyn(),
        }
    }
}

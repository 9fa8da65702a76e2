#![doc = include_str!("../../docs/quota.md")]

#[cfg(feature = "config")]
pub(crate) mod config;
mod layer;
mod limit;
mod memory;
mod policy;
#[cfg(feature = "redis")]
mod redis;
mod store;

pub use layer::{
    Counting, KeyBy, KeyFn, Quota, QuotaBuilder, QuotaLayer, QuotaRule, QuotaShadow, RATELIMIT,
    RATELIMIT_POLICY, RateLimitHeaders, ResponseFilter, ResponseFuture, TierBy,
};
pub use limit::{Limit, LimitState, MAX_LIMITS, Verdict, Window};
pub use memory::{DEFAULT_MAX_KEYS, MemoryStore};
pub use policy::{QuotaKey, QuotaPolicy};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{OnOutage, RedisStore, RedisStoreBuilder};
pub use store::{AnyQuotaStore, DynQuotaStore, QuotaMode, QuotaStore};

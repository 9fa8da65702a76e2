#![doc = include_str!("../../docs/quota.md")]

mod batch;
#[cfg(feature = "config")]
pub(crate) mod config;
mod future;
mod layer;
mod limit;
mod memory;
mod policy;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_script;
mod refund;
mod rule;
mod service;
mod shards;
mod store;
mod tally;

pub use crate::rejection::ratelimit::{RATELIMIT, RATELIMIT_POLICY};
pub use batch::QuotaCheck;
pub use future::{ResponseFuture, Settle};
pub use layer::{DEFAULT_STORE, Quota, QuotaBuilder, QuotaLayer, QuotaStats, RateLimitHeaders};
pub use limit::{Limit, LimitState, MAX_LIMITS, Verdict, Window};
pub use memory::{DEFAULT_MAX_KEYS, MemoryStore};
pub use policy::{QuotaKey, QuotaPolicy};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisStore, RedisStoreBuilder};
pub use rule::{Counting, KeyBy, KeyFn, QuotaRule, QuotaShadow, ResponseFilter, TierBy};
pub use store::{AnyQuotaStore, DynQuotaStore, OnOutage, QuotaMode, QuotaStore, StoreStats};

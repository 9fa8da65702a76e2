#![doc = include_str!("../../docs/invalidation.md")]

mod config;
mod hub;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_log;
mod wire;

use std::future::Future;
use std::sync::Arc;

pub use crate::redis_spec::{RedisConnection, RedisMode};
pub use config::InvalidationConfig;
pub use hub::{DEFAULT_SAFE_LIFETIME, Hub, InvalidationListener};
pub use memory::InProcessBus;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisBus, RedisBusBuilder};
pub use wire::{DecodeError, MAX_MESSAGE_BYTES, WIRE_VERSION};

/// How many messages a Redis bus's log keeps by default (`RedisBusBuilder::log_length`, file
/// `invalidation.log_length`).
pub const DEFAULT_LOG_LENGTH: usize = 10_000;

use crate::BoxFuture;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::principal::KeyId;

/// What every instance must forget. Published once on an [`InvalidationBus`], applied by each
/// instance's caches. New kinds may be added: an instance that receives a kind it does not
/// know drops all its cached answers (see [`Hub::deliver_unknown`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// The API key `key_id` was revoked (or changed): its cached record is dropped.
    ApiKeyRevoked {
        /// The key's id.
        key_id: KeyId,
    },
    /// Every API key of `subject` was revoked (or changed).
    SubjectKeysRevoked {
        /// The keys' owner.
        subject: Arc<str>,
    },
    /// The token whose `jti` claim is `jti`, from `issuer`, was revoked.
    TokenRevoked {
        /// The token's `iss` (empty for tokens without one, such as opaque tokens).
        issuer: Arc<str>,
        /// The token's `jti`.
        jti: Arc<str>,
    },
    /// Every token of `subject` issued before `before` is refused.
    SubjectTokensRevokedBefore {
        /// The tokens' `sub`.
        subject: Arc<str>,
        /// Tokens whose `iat` is earlier are refused.
        before: Timestamp,
    },
    /// The authorization policy changed at its source: reload it now.
    PolicyChanged,
}

/// A channel on which every instance hears every [`Invalidation`], this one included.
///
/// # Contract
///
/// - [`publish`](Self::publish) sends `message` to every instance subscribed, this one included,
///   or returns an error (the caller should retry or fall back to waiting out the caches).
/// - Each received message is handed to [`Hub::deliver`] of this bus's [`hub`](Self::hub).
/// - The transport marks the hub live ([`Hub::set_live`]) only while its subscription is
///   confirmed, and not live as soon as it may have missed a message. Caches then serve entries
///   for at most the hub's safe lifetime, and drop everything when it is live again.
///
/// Implementations write `async fn publish`; `Arc<T>` and `Arc<dyn DynInvalidationBus>` are
/// buses too. The docs show a transport of one's own.
pub trait InvalidationBus: Send + Sync + 'static {
    /// Sends `message` to every instance.
    fn publish(
        &self,
        message: &Invalidation,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Where this instance's caches listen.
    fn hub(&self) -> &Hub;
}

impl<T: InvalidationBus> InvalidationBus for Arc<T> {
    fn publish(
        &self,
        message: &Invalidation,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).publish(message)
    }

    fn hub(&self) -> &Hub {
        (**self).hub()
    }
}

/// The object-safe companion of [`InvalidationBus`]: `Arc<dyn DynInvalidationBus>` is an
/// [`InvalidationBus`], for hosts that choose the transport at run time.
pub trait DynInvalidationBus: Send + Sync + 'static {
    /// [`InvalidationBus::publish`], boxed.
    fn publish_boxed<'a>(
        &'a self,
        message: &'a Invalidation,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// [`InvalidationBus::hub`].
    fn hub_dyn(&self) -> &Hub;
}

impl<T: InvalidationBus> DynInvalidationBus for T {
    fn publish_boxed<'a>(
        &'a self,
        message: &'a Invalidation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.publish(message))
    }

    fn hub_dyn(&self) -> &Hub {
        self.hub()
    }
}

impl std::fmt::Debug for dyn DynInvalidationBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynInvalidationBus")
    }
}

impl InvalidationBus for Arc<dyn DynInvalidationBus> {
    async fn publish(&self, message: &Invalidation) -> Result<(), StoreError> {
        // `(**self)`: the Arc is a DynInvalidationBus too (blanket impl); calling it would recurse.
        (**self).publish_boxed(message).await
    }

    fn hub(&self) -> &Hub {
        (**self).hub_dyn()
    }
}

//! The stages a stack may have or not (authorization, audit, quotas), and the [`Handles`] a
//! built stack gives back.

use std::sync::Arc;

use tower_layer::Identity;

use crate::audit::{AuditBuilder, AuditHandle, AuditLayer, AuditSink};
use crate::authz::{AuthzLayer, LivePolicy};
use crate::client_ip::ClientIpResolver;
use crate::error::ConfigError;
use crate::invalidation::DynInvalidationBus;
use crate::quota::{QuotaLayer, QuotaStats, QuotaStore};

/// The authorization stage of a stack: none ([`Identity`]) or an [`AuthzLayer`].
pub trait AuthzStage: Clone + Send + Sync + 'static {
    /// The policy whose public routes admit requests without credentials.
    fn public_routes(&self) -> Option<LivePolicy>;

    /// The shadow policy, if any.
    fn shadow_policy(&self) -> Option<LivePolicy> {
        None
    }
}

impl AuthzStage for Identity {
    fn public_routes(&self) -> Option<LivePolicy> {
        None
    }
}

impl<Az: Send + Sync + 'static> AuthzStage for AuthzLayer<Az> {
    fn public_routes(&self) -> Option<LivePolicy> {
        Some(self.policy().clone())
    }

    fn shadow_policy(&self) -> Option<LivePolicy> {
        Self::shadow_policy(self).cloned()
    }
}

/// The audit stage of a stack: none ([`Identity`]), or an [`AuditBuilder`] that
/// [`build`](super::PalisadeBuilder::build) finishes with the stack's own client address resolver.
pub trait AuditStage {
    /// The layer it becomes.
    type Layer: Clone;

    /// Builds the layer (and the queue's handle) with the stack's `resolver`.
    ///
    /// # Errors
    ///
    /// As [`AuditBuilder::build`].
    fn finish(
        self,
        resolver: &ClientIpResolver,
    ) -> Result<(Self::Layer, Option<AuditHandle>), ConfigError>;
}

impl AuditStage for Identity {
    type Layer = Self;

    fn finish(self, _: &ClientIpResolver) -> Result<(Self, Option<AuditHandle>), ConfigError> {
        Ok((self, None))
    }
}

impl<S: AuditSink> AuditStage for AuditBuilder<S> {
    type Layer = AuditLayer;

    fn finish(
        self,
        resolver: &ClientIpResolver,
    ) -> Result<(AuditLayer, Option<AuditHandle>), ConfigError> {
        let (layer, handle) = self.client_ip(resolver.clone()).build()?;
        Ok((layer, Some(handle)))
    }
}

/// An audit stage that may be off: the stack's type stays the same whether or not a
/// configuration file has an `audit` section ([`AuditLayer::off`] passes requests through).
impl<S: AuditSink> AuditStage for Option<AuditBuilder<S>> {
    type Layer = AuditLayer;

    fn finish(
        self,
        resolver: &ClientIpResolver,
    ) -> Result<(AuditLayer, Option<AuditHandle>), ConfigError> {
        match self {
            Some(builder) => builder.finish(resolver),
            None => Ok((AuditLayer::off(), None)),
        }
    }
}

/// What a built stack hands back to the host: the audit queue (counters, chain head, flush at
/// shutdown), and the live authorization policy and its shadow (reload, replace, watch).
/// Cloning is cheap; every clone of a [`PalisadeLayer`](super::PalisadeLayer) carries the same handles.
#[derive(Debug, Clone, Default)]
pub struct Handles {
    pub(super) audit: Option<AuditHandle>,
    pub(super) policy: Option<LivePolicy>,
    pub(super) shadow: Option<LivePolicy>,
    pub(super) quota: Vec<QuotaStats>,
    pub(super) invalidation: Option<Arc<dyn DynInvalidationBus>>,
}

impl Handles {
    /// The audit queue, when the stack audits. The queue is flushed when its last holder (this
    /// handle, or the stack's layers and services) is dropped, and by
    /// [`AuditHandle::shutdown`].
    #[must_use]
    pub fn audit(&self) -> Option<&AuditHandle> {
        self.audit.as_ref()
    }

    /// The enforced authorization policy, when the stack authorizes: reload it from its
    /// source ([`LivePolicy::reload`]), replace it or watch a source.
    #[must_use]
    pub fn policy(&self) -> Option<&LivePolicy> {
        self.policy.as_ref()
    }

    /// The shadow (candidate) policy, when one is set.
    #[must_use]
    pub fn shadow_policy(&self) -> Option<&LivePolicy> {
        self.shadow.as_ref()
    }

    /// The invalidation bus the stack was given, to publish revocations and policy changes on
    /// (every instance applies them): `handles.invalidation().unwrap().publish(&message)`.
    #[must_use]
    pub fn invalidation(&self) -> Option<&Arc<dyn DynInvalidationBus>> {
        self.invalidation.as_ref()
    }

    /// The quota stages' stores (keys held, evictions, Redis failures), one view per stage
    /// that has rules: the per-client stage first, then the per-principal one.
    #[must_use]
    pub fn quota(&self) -> &[QuotaStats] {
        &self.quota
    }
}

/// A quota stage of a stack: none ([`Identity`]) or a [`QuotaLayer`].
pub trait QuotaStage: Clone + Send + Sync + 'static {
    /// Whether a rule of the stage keys requests by the principal.
    fn needs_principal(&self) -> bool;

    /// A live view of the stage's stores, when it has rules.
    fn stats(&self) -> Option<QuotaStats>;
}

impl QuotaStage for Identity {
    fn needs_principal(&self) -> bool {
        false
    }

    fn stats(&self) -> Option<QuotaStats> {
        None
    }
}

impl<St: QuotaStore> QuotaStage for QuotaLayer<St> {
    fn needs_principal(&self) -> bool {
        Self::needs_principal(self)
    }

    fn stats(&self) -> Option<QuotaStats> {
        self.has_rules().then(|| Self::stats(self))
    }
}

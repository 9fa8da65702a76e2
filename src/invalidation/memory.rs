//! [`InProcessBus`]: every listener in this process, at once.

use super::{Hub, Invalidation, InvalidationBus};
use crate::error::StoreError;

/// A bus within one process: for a single instance, and for tests. Live from the start (it
/// cannot miss a message); clones share it, so several stacks built from clones hear the same
/// messages.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    hub: Hub,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    /// A live bus.
    #[must_use]
    pub fn new() -> Self {
        let hub = Hub::new(super::DEFAULT_SAFE_LIFETIME);
        hub.set_live(true);
        Self { hub }
    }
}

impl InvalidationBus for InProcessBus {
    async fn publish(&self, message: &Invalidation) -> Result<(), StoreError> {
        self.hub.deliver(message);
        Ok(())
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

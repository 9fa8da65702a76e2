//! Teaching the layer the handler's type: an operation's [`Slot`] holds the fused function of
//! the `T` its `Validated<T>` extractor asked for, and a [`Prebuilt`] carries the `T` the
//! layer built to the extractor (inside the `ValidatedBody`).

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::de::DeserializeOwned;

use super::Plan;
use super::de::Pass;
use crate::validate::JsonLimits;

/// A fused function: checks `bytes` against the plan and the limits while deserializing its
/// `T`; `None` when the pass gave up.
type Fused = fn(&Plan, &JsonLimits, &[u8]) -> Option<Prebuilt>;

/// Fused passes of one operation that may give up in a row (each then costs the tape path
/// too) before the operation puts them on probation.
const MAX_MISSES: u32 = 16;

/// On probation, one body in this many still tries the fused pass; the first one it builds
/// ends the probation. A client that sends bodies the pass gives up on therefore slows its
/// operation only while it keeps sending them, and a type the pass never builds costs one
/// wasted pass per this many bodies.
const PROBATION: u32 = 256;

/// What one operation learned of its handler's type.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    fused: OnceLock<Fused>,
    /// Fused passes that gave up on bodies the tape path then accepted, in a row.
    misses: AtomicU32,
    /// Bodies seen on probation (the fused pass is tried on every `PROBATION`th).
    probation: AtomicU32,
}

impl Slot {
    /// Records `T` as the operation's body type (the first one recorded stays).
    pub(crate) fn learn<T: DeserializeOwned + Send + 'static>(&self) {
        let _ = self.fused.set(fused::<T>);
    }

    /// The fused pass over `bytes`: `None` when the operation has no type yet (or is on
    /// probation and this body is not one it tries), else the `T` it built, or `Some(None)`
    /// when it gave up.
    pub(crate) fn run(
        &self,
        plan: &Plan,
        limits: &JsonLimits,
        bytes: &[u8],
    ) -> Option<Option<Prebuilt>> {
        let f = self.fused.get()?;
        if self.misses.load(Ordering::Relaxed) >= MAX_MISSES
            && self.probation.fetch_add(1, Ordering::Relaxed) % PROBATION != PROBATION - 1
        {
            return None;
        }
        let built = f(plan, limits, bytes);
        if built.is_some() && self.misses.load(Ordering::Relaxed) != 0 {
            self.misses.store(0, Ordering::Relaxed);
        }
        Some(built)
    }

    /// A fused pass gave up on a body the tape path accepted.
    pub(crate) fn missed(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the operation's fused passes are on probation.
    #[cfg(test)]
    pub(crate) fn on_probation(&self) -> bool {
        self.misses.load(Ordering::Relaxed) >= MAX_MISSES
    }
}

fn fused<T: DeserializeOwned + Send + 'static>(
    plan: &Plan,
    limits: &JsonLimits,
    bytes: &[u8],
) -> Option<Prebuilt> {
    let text = std::str::from_utf8(bytes).ok()?;
    let t = Pass::new(plan, limits, bytes).run::<T>(text)?;
    Some(Prebuilt(Arc::new(Mutex::new(Some(t)))))
}

/// A `T` the layer built, waiting for the extractor (taken once, by the extractor of that
/// `T`).
#[derive(Clone)]
pub(crate) struct Prebuilt(Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for Prebuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prebuilt")
    }
}

impl Prebuilt {
    /// The `T`, if it is one and was not taken yet.
    pub(crate) fn take<T: Send + 'static>(&self) -> Option<T> {
        let slot = self.0.downcast_ref::<Mutex<Option<T>>>()?;
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

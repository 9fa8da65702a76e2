//! What the validation layer leaves in the request extensions for the extractors.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::validate::fused::{Prebuilt, Slot};
use crate::validate::tape::Tape;

/// The parsed, validated JSON body, put in the request extensions for
/// [`Validated`](crate::validate::Validated) (taken out, not cloned). It is kept as the validation layer
/// read it (parsed, or as the bytes its fused path checked); [`value`](Self::value) builds a
/// `serde_json::Value` of it on first use.
#[derive(Debug, Clone)]
pub struct ValidatedBody {
    repr: Repr,
    value: OnceLock<Value>,
    /// Where the extractor records its type for the operation's fused path.
    slot: Option<Arc<Slot>>,
    /// The handler's `T`, built by the fused path.
    prebuilt: Option<Prebuilt>,
}

#[derive(Debug, Clone)]
enum Repr {
    /// Parsed by the tape path.
    Tape(Tape),
    /// Checked by the fused path, which built the handler's type from it.
    Text(Bytes),
}

impl ValidatedBody {
    pub(crate) fn new(tape: Tape, slot: Option<Arc<Slot>>) -> Self {
        Self {
            repr: Repr::Tape(tape),
            value: OnceLock::new(),
            slot,
            prebuilt: None,
        }
    }

    pub(crate) fn fused(bytes: Bytes, slot: Arc<Slot>, prebuilt: Prebuilt) -> Self {
        Self {
            repr: Repr::Text(bytes),
            value: OnceLock::new(),
            slot: Some(slot),
            prebuilt: Some(prebuilt),
        }
    }

    /// The `T` the fused path built, if it built one of this type (taken once).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn take_prebuilt<T: Send + 'static>(&self) -> Option<T> {
        self.prebuilt.as_ref()?.take()
    }

    fn build_value(&self) -> Value {
        match &self.repr {
            Repr::Tape(tape) => tape.to_value(),
            // Checked already: it parses.
            Repr::Text(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        }
    }

    /// The parsed body.
    #[must_use]
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| self.build_value())
    }

    /// The parsed body, owned.
    #[must_use]
    pub fn into_value(self) -> Value {
        match self.value.into_inner() {
            Some(value) => value,
            None => match self.repr {
                Repr::Tape(tape) => tape.to_value(),
                Repr::Text(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            },
        }
    }

    /// `T` deserialized from the body.
    ///
    /// # Errors
    ///
    /// When `T` cannot be built from it.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.repr {
            Repr::Tape(tape) => T::deserialize(tape.root()),
            Repr::Text(bytes) => serde_json::from_slice(bytes),
        }
    }

    /// Records `T` as the operation's body type, for its fused path.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn learn<T: serde::de::DeserializeOwned + Send + 'static>(&self) {
        if let Some(slot) = &self.slot {
            slot.learn::<T>();
        }
    }
}

/// The validated query parameters, coerced to their schema types, for
/// [`ValidatedQuery`](crate::validate::ValidatedQuery).
#[derive(Debug, Clone)]
pub struct ValidatedParams(pub(crate) Map<String, Value>);

impl ValidatedParams {
    /// The query parameters, coerced.
    #[must_use]
    pub fn params(&self) -> &Map<String, Value> {
        &self.0
    }
}

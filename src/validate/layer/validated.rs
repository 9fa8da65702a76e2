//! What the validation layer leaves in the request extensions for the extractors.

use serde_json::{Map, Value};

use crate::validate::tape::Tape;

/// The parsed, validated JSON body, put in the request extensions for
/// [`Validated`](crate::validate::Validated) (taken out, not cloned). It is kept as the validation layer
/// parsed it; [`value`](Self::value) builds a `serde_json::Value` of it on first use.
#[derive(Debug, Clone)]
pub struct ValidatedBody {
    pub(crate) tape: Tape,
    value: std::sync::OnceLock<Value>,
}

impl ValidatedBody {
    pub(crate) fn new(tape: Tape) -> Self {
        Self {
            tape,
            value: std::sync::OnceLock::new(),
        }
    }

    /// The parsed body.
    #[must_use]
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| self.tape.to_value())
    }

    /// The parsed body, owned.
    #[must_use]
    pub fn into_value(self) -> Value {
        match self.value.into_inner() {
            Some(value) => value,
            None => self.tape.to_value(),
        }
    }

    /// `T` deserialized from the body.
    ///
    /// # Errors
    ///
    /// When `T` cannot be built from it.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(self.tape.root())
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

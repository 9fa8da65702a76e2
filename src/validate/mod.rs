#![doc = include_str!("../../docs/validate.md")]

#[cfg(feature = "config")]
mod config;
mod layer;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
mod operation;
mod params;
mod schema;
mod strings;

#[cfg(feature = "config")]
pub use config::{OperationConfig, ValidationConfig};
pub use layer::{
    ResponseFuture, Validate, ValidateBuilder, ValidateLayer, ValidatedBody, ValidatedParams,
};
pub use operation::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ERRORS, Operation};
pub use schema::{Draft, Schema, SchemaSet};
pub use strings::{DenyPattern, JsonLimits};

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::FromRequestParts;
    use axum::response::{IntoResponse, Response};

    use http::request::Parts;
    use serde::de::DeserializeOwned;

    use super::{ValidatedBody, ValidatedParams};

    /// The body the validation layer parsed and validated, deserialized into `T` from that
    /// value (the bytes are not parsed again).
    ///
    /// ```
    /// use palisade::validate::Validated;
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct NewOrder { items: Vec<String> }
    ///
    /// async fn create(Validated(order): Validated<NewOrder>) -> String {
    ///     format!("{} items", order.items.len())
    /// }
    /// # let _: axum::routing::MethodRouter = axum::routing::post(create);
    /// ```
    ///
    /// Without a validation layer (or with a route it has no body rule for) the extractor
    /// answers 500: a wiring mistake, not the client's.
    #[derive(Debug, Clone)]
    pub struct Validated<T>(pub T);

    /// The query parameters the validation layer validated, coerced to their schema types
    /// (`?limit=10` is a number), deserialized into `T`.
    #[derive(Debug, Clone)]
    pub struct ValidatedQuery<T>(pub T);

    /// Why a [`Validated`] or [`ValidatedQuery`] extractor failed.
    #[derive(Debug)]
    pub enum ValidatedRejection {
        /// No validated value: the route has no validation rule for it.
        Missing,
        /// The validated value does not fit `T` (the schema and the type disagree).
        Mismatch(serde_json::Error),
    }

    impl IntoResponse for ValidatedRejection {
        fn into_response(self) -> Response {
            let detail = match &self {
                Self::Missing => {
                    "The server is misconfigured: this route's input is not validated."
                }
                Self::Mismatch(_) => {
                    "The server is misconfigured: the validated input does not fit its type."
                }
            };
            if let Self::Mismatch(e) = &self {
                tracing::error!(layer = "validate", error = %e, "a validated value does not fit the handler's type");
            } else {
                tracing::error!(
                    layer = "validate",
                    "a handler asked for a validated value but no rule validated it"
                );
            }
            crate::rejection::misconfigured("validation_missing", detail).map(axum::body::Body::new)
        }
    }

    impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Validated<T> {
        type Rejection = ValidatedRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            // Taken, not cloned: the value moves into `T`.
            let ValidatedBody(value) = parts
                .extensions
                .remove::<ValidatedBody>()
                .ok_or(ValidatedRejection::Missing)?;
            serde_json::from_value(value)
                .map(Validated)
                .map_err(ValidatedRejection::Mismatch)
        }
    }

    impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidatedQuery<T> {
        type Rejection = ValidatedRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            let ValidatedParams(map) = parts
                .extensions
                .remove::<ValidatedParams>()
                .ok_or(ValidatedRejection::Missing)?;
            serde_json::from_value(serde_json::Value::Object(map))
                .map(ValidatedQuery)
                .map_err(ValidatedRejection::Mismatch)
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::{Validated, ValidatedQuery, ValidatedRejection};

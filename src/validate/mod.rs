#![doc = include_str!("../../docs/validate.md")]

#[cfg(feature = "config")]
mod config;
mod decode;
mod fused;
mod layer;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
mod operation;
mod params;
mod response;
mod schema;
mod strings;
mod tape;

#[cfg(feature = "config")]
pub use config::{OperationConfig, ValidationConfig};
pub use decode::{Coding, DEFAULT_MAX_RATIO, Decoding};
pub use layer::{
    ResponseFuture, Validate, ValidateBuilder, ValidateLayer, ValidatedBody, ValidatedParams,
};
pub use operation::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ERRORS, Operation};
pub use response::ResponseCheck;
pub use schema::{Draft, Schema, SchemaSet};
pub use strings::{DenyPattern, JsonLimits, ParamLimits};

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::{FromRequest, FromRequestParts, Request};
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
    #[non_exhaustive]
    pub enum ValidatedRejection {
        /// No validated value: the route has no validation rule for it (500: a wiring
        /// mistake, not the client's).
        Missing,
        /// The validated value does not fit `T` at `pointer` (a number the schema allows but
        /// the field's type cannot hold, say): 422 naming the pointer, and an error logged,
        /// since the schema and the type disagree.
        Mismatch {
            /// Where in the value, as an RFC 6901 pointer in URI-fragment form (`#/items/0/qty`).
            pointer: String,
            /// What serde said.
            error: serde_json::Error,
        },
    }

    impl IntoResponse for ValidatedRejection {
        fn into_response(self) -> Response {
            match self {
                Self::Missing => {
                    tracing::error!(
                        layer = "validate",
                        "a handler asked for a validated value but no rule validated it"
                    );
                    crate::rejection::misconfigured(
                        "validation_missing",
                        "The server is misconfigured: this route's input is not validated.",
                    )
                    .map(axum::body::Body::new)
                }
                Self::Mismatch { pointer, error } => {
                    tracing::error!(layer = "validate", %pointer, %error, "a validated value does not fit the handler's type");
                    crate::Rejection::Invalid(crate::rejection::InvalidInput::new(
                        crate::rejection::InvalidReason::SchemaViolation,
                        vec![crate::rejection::Violation {
                            part: crate::rejection::InputPart::Body,
                            pointer: pointer.into(),
                            keyword: "type".into(),
                            detail: "the value is out of the range this operation handles".into(),
                        }],
                    ))
                    .to_response()
                    .map(axum::body::Body::new)
                }
            }
        }
    }

    /// Where `T` cannot be built from a valid `value`, as a JSON pointer (the error path only:
    /// the path is tracked here, never on the way into `T`).
    fn mismatch_pointer<T: DeserializeOwned>(value: &serde_json::Value) -> String {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(_) => "#".into(),
            Err(e) => {
                let segments: Vec<String> = e
                    .path()
                    .iter()
                    .filter_map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                        serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                        _ => None,
                    })
                    .collect();
                super::strings::pointer(&segments)
            }
        }
    }

    /// Turns every whole-number float of `value` into an integer (those within `i64`/`u64`).
    fn integral_numbers(value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                    // Exact conversions only: within ±2^63 (i64) or [0, 2^64) (u64).
                    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                        #[allow(clippy::cast_possible_truncation)]
                        let i = f as i64;
                        *value = Value::from(i);
                    } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let u = f as u64;
                        *value = Value::from(u);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(integral_numbers),
            Value::Object(map) => map.values_mut().for_each(integral_numbers),
            _ => {}
        }
    }

    /// A body extractor, like axum's `Json`: put it last among a handler's arguments. `T` is
    /// read from the body as the layer parsed it (strings and numbers already read, never the
    /// bytes again); a `serde_json::Value` is built only when `T` cannot be (to name where).
    impl<T: DeserializeOwned + Send + 'static, S: Send + Sync> FromRequest<S> for Validated<T> {
        type Rejection = ValidatedRejection;

        async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
            let body = req
                .extensions()
                .get::<ValidatedBody>()
                .ok_or(ValidatedRejection::Missing)?;
            // Built by the layer's fused path, in the pass that checked the body.
            if let Some(t) = body.take_prebuilt::<T>() {
                return Ok(Self(t));
            }
            let error = match body.deserialize::<T>() {
                Ok(t) => {
                    // The operation's later bodies are checked and built in one pass.
                    body.learn::<T>();
                    return Ok(Self(t));
                }
                Err(error) => error,
            };
            // Rare: a whole number written `2.0` or `1e2` for an integer field, or a schema
            // and a type that disagree.
            let mut value = body.value().clone();
            integral_numbers(&mut value);
            T::deserialize(&value)
                .map(Validated)
                .map_err(|_| ValidatedRejection::Mismatch {
                    pointer: mismatch_pointer::<T>(&value),
                    error,
                })
        }
    }

    impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidatedQuery<T> {
        type Rejection = ValidatedRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            let ValidatedParams(map) = parts
                .extensions
                .remove::<ValidatedParams>()
                .ok_or(ValidatedRejection::Missing)?;
            let mut value = serde_json::Value::Object(map);
            // Borrowed (a query is small), so it can be tried again and the pointer found.
            if let Ok(t) = T::deserialize(&value) {
                return Ok(Self(t));
            }
            integral_numbers(&mut value);
            T::deserialize(&value).map(ValidatedQuery).map_err(|error| {
                ValidatedRejection::Mismatch {
                    pointer: mismatch_pointer::<T>(&value),
                    error,
                }
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use serde_json::{Value, json};

        use super::integral_numbers;

        #[test]
        fn whole_numbers_become_integers_and_nothing_else_changes() {
            let mut v =
                json!({"a": 2.0, "b": [1e2, -3.0, -0.0], "c": 2.5, "d": 1e30, "e": "2.0", "f": 7});
            integral_numbers(&mut v);
            assert_eq!(
                v,
                json!({"a": 2, "b": [100, -3, 0], "c": 2.5, "d": 1e30, "e": "2.0", "f": 7})
            );
            assert!(v["a"].is_u64() && v["b"][0].is_u64(), "{v}");
            assert!(v["b"][1].is_i64() && v["b"][2].is_i64(), "{v}");
            // 2^63 is beyond i64 but a u64; 2^64 is beyond both and stays a float.
            let mut big = json!([9.223_372_036_854_776e18, 1.844_674_407_370_955_2e19]);
            integral_numbers(&mut big);
            assert_eq!(big[0], Value::from(9_223_372_036_854_775_808_u64));
            assert!(big[1].is_f64());
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::{Validated, ValidatedQuery, ValidatedRejection};

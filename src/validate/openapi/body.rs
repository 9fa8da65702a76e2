//! The Request Body Object of an operation: its media types and their schemas.

use serde_json::Value;

use super::{DOC, OpenApi, escape, fragment};
use crate::error::ConfigError;
use crate::validate::{Operation, SchemaSet};

impl OpenApi {
    /// `operation` with the Request Body Object `body` of the operation at `op_ptr`.
    pub(super) fn with_body(
        &self,
        mut operation: Operation,
        set: &SchemaSet,
        body: &Value,
        op_ptr: &str,
    ) -> Result<Operation, ConfigError> {
        let (body, body_ptr) = self.deref(body, format!("{op_ptr}/requestBody"))?;
        // A body in media types none of which is accepted is still a declared body: without
        // this, an operation whose only media type is XML would hand any body on unread.
        operation = operation.body_declared();
        if let Some(content) = body.get("content").and_then(Value::as_object) {
            for (media, m) in content {
                let schema_ptr = format!("{body_ptr}/content/{}/schema", escape(media));
                let schema = match m.get("schema") {
                    Some(_) => Some(set.compile_ref(&format!("{DOC}#{}", fragment(&schema_ptr)))?),
                    None => None,
                };
                operation = match (schema, m.get("schema")) {
                    (Some(compiled), Some(schema))
                        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") =>
                    {
                        // Checked by the document's schema; read (types, and the styles of its
                        // `encoding`) from the resolved one.
                        let (resolved, _) = self.deref(schema, schema_ptr.clone())?;
                        operation.form_body_with(compiled, &form_shapes(resolved, m))
                    }
                    (schema, _) if checkable(media) => operation.body(media, schema),
                    (_, _) if self.pass_unchecked => operation.body(media, None),
                    (_, _) => {
                        tracing::warn!(target: "palisade::validate", operation = %op_ptr, media = %media, "a request body of a media type palisade cannot check is refused (415); OpenApi::pass_unchecked_media_types hands it on unchecked");
                        operation
                    }
                };
            }
        }
        // OpenAPI: a request body is optional unless `required: true`.
        Ok(operation.body_required(body.get("required").and_then(Value::as_bool) == Some(true)))
    }
}

/// Whether palisade checks bodies of `media`: JSON (`application/json`, `+json`) and HTML
/// forms.
fn checkable(media: &str) -> bool {
    let essence = crate::validate::operation::essence(media);
    crate::validate::operation::is_json(&essence) || essence == "application/x-www-form-urlencoded"
}

/// The schema a form body's fields are read by: `resolved` with the `style` and `explode` of
/// the Media Type Object's `encoding` set on each property.
fn form_shapes(resolved: &Value, media: &Value) -> Value {
    let mut shapes_from = resolved.clone();
    if let (Some(props), Some(enc)) = (
        shapes_from
            .get_mut("properties")
            .and_then(Value::as_object_mut),
        media.get("encoding").and_then(Value::as_object),
    ) {
        for (name, e) in enc {
            if let Some(Value::Object(p)) = props.get_mut(name) {
                for key in ["style", "explode"] {
                    if let Some(v) = e.get(key) {
                        p.insert(key.to_owned(), v.clone());
                    }
                }
            }
        }
    }
    shapes_from
}

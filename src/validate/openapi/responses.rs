//! The Responses Object of an operation, read for response validation.

use serde_json::{Value, json};

use super::{DOC, OpenApi, escape, fragment};
use crate::error::ConfigError;
use crate::validate::SchemaSet;
use crate::validate::response::{Declaration, Declared, Responses};

impl OpenApi {
    /// The responses of the operation `op` at `op_ptr`, for the layer to check.
    pub(super) fn responses_of(
        &self,
        set: &SchemaSet,
        op: &Value,
        op_ptr: &str,
    ) -> Result<Responses, ConfigError> {
        let mut by_status = Vec::new();
        let declared = op.get("responses").and_then(Value::as_object);
        for (status, response) in declared.into_iter().flatten() {
            let ptr = format!("{op_ptr}/responses/{}", escape(status));
            let (response, ptr) = self.deref(response, ptr)?;
            let mut media = Vec::new();
            let mut json_schema = None;
            let content = response.get("content").and_then(Value::as_object);
            for (name, m) in content.into_iter().flatten() {
                let essence = crate::validate::operation::essence(name);
                if json_schema.is_none()
                    && crate::validate::operation::is_json(&essence)
                    && m.get("schema").is_some()
                {
                    let schema_ptr = format!("{ptr}/content/{}/schema", escape(name));
                    let compiled =
                        set.compile(&json!({"$ref": format!("{DOC}#{}", fragment(&schema_ptr))}))?;
                    let raw = m.get("schema").cloned().unwrap_or(Value::Bool(true));
                    json_schema = Some((compiled, Declared::new(self.doc.clone(), raw)));
                }
                media.push(essence);
            }
            by_status.push((status.clone(), Declaration::new(json_schema, media)));
        }
        Ok(Responses::new(self.responses, by_status))
    }
}

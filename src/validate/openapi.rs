//! [`OpenApi`]: a [`ValidateLayer`] built from an OpenAPI 3.0 or 3.1 document (feature
//! `openapi`): request bodies per content type, path / query / header parameters with their
//! `required` flags and schemas, `$ref`s into `components`.
//!
//! OpenAPI 3.0's schema dialect is translated to JSON Schema 2020-12 first: `nullable: true`
//! adds `"null"` to `type` (and to `enum`), and boolean `exclusiveMinimum` / `exclusiveMaximum`
//! become the numeric forms. OpenAPI 3.1 schemas are JSON Schema 2020-12 already.
//!
//! ```
//! use palisade::validate::openapi::OpenApi;
//!
//! let api = OpenApi::from_yaml(r#"
//! openapi: 3.0.3
//! info: {title: Orders, version: "1"}
//! paths:
//!   /orders/{id}:
//!     get:
//!       parameters:
//!         - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
//!       responses: {"200": {description: ok}}
//! "#)?;
//! let layer = api.layer()?;
//! assert_eq!(api.operations().len(), 1);
//! # let _ = layer;
//! # Ok::<(), palisade::ConfigError>(())
//! ```

mod body;
mod dialect;
mod hardening;
mod responses;
mod servers;

use std::collections::BTreeSet;
use std::sync::Arc;

use http::Method;
use serde_json::{Map, Value, json};

use super::{Operation, ResponseCheck, SchemaSet, ValidateBuilder, ValidateLayer};
use crate::error::ConfigError;
use crate::rejection::InputPart;
use crate::route::Route;

/// The URI the document is registered under, for `$ref`s into it.
const DOC: &str = "urn:palisade:openapi";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// An OpenAPI 3.0 or 3.1 document, checked and (for 3.0) translated to JSON Schema 2020-12.
#[derive(Debug, Clone)]
pub struct OpenApi {
    doc: Arc<Value>,
    operation: Option<Operation>,
    pass_unchecked: bool,
    responses: ResponseCheck,
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: "openapi",
        message: message.into(),
    }
}

impl OpenApi {
    /// Reads a JSON document.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when it does not parse or is not OpenAPI 3.0 / 3.1.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::new(serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?)
    }

    /// Reads a YAML document.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::new(serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?)
    }

    /// Reads a `.json`, `.yaml` or `.yml` file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OtherFile`] when it cannot be read; as [`from_json`](Self::from_json).
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::OtherFile {
            what: "OpenAPI document",
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json(&text),
            _ => Self::from_yaml(&text),
        }
    }

    /// A document already parsed.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when it is not OpenAPI 3.0 or 3.1.
    pub fn new(mut doc: Value) -> Result<Self, ConfigError> {
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no `openapi` version field"))?
            .to_owned();
        if version.starts_with("3.0") {
            dialect::translate_30(&mut doc);
        } else if !version.starts_with("3.1") {
            return Err(invalid(format!(
                "OpenAPI {version} is not supported (3.0 and 3.1 are)"
            )));
        }
        if !doc.get("paths").is_none_or(Value::is_object) {
            return Err(invalid("`paths` is not an object"));
        }
        // `format: int32` is a range and an ECMA-262 pattern may hold a literal `{`.
        hardening::harden(&mut doc);
        Ok(Self {
            doc: Arc::new(doc),
            operation: None,
            pass_unchecked: false,
            responses: ResponseCheck::Off,
        })
    }

    /// The defaults every operation starts from (body limit, JSON guards...).
    #[must_use]
    pub fn with_defaults(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Accepts bodies of the media types palisade cannot check (XML, `multipart/*`,
    /// `application/octet-stream`...) and hands them on unchecked. By default an operation
    /// refuses them (415): a body the document describes but nothing checked would pass for
    /// a validated one.
    #[must_use]
    pub fn pass_unchecked_media_types(mut self) -> Self {
        self.pass_unchecked = true;
        self
    }

    /// Checks the handlers' responses against the document's (OWASP API3:2023): in
    /// [`ResponseCheck::Shadow`] a divergence is reported (audit event `response_check`, a
    /// warning, a counter) and the response leaves unchanged; [`ResponseCheck::Strip`] removes
    /// the properties the document does not declare and refuses (500) what is still invalid;
    /// [`ResponseCheck::Refuse`] answers 500 for any divergence. An undeclared status or
    /// `Content-Type` is a divergence; only JSON bodies are read (up to 1 MiB).
    #[must_use]
    pub fn check_responses(mut self, mode: ResponseCheck) -> Self {
        self.responses = mode;
        self
    }

    /// The document's operations, as routes.
    #[must_use]
    pub fn operations(&self) -> Vec<Route> {
        let mut out = Vec::new();
        if let Some(paths) = self.doc.get("paths").and_then(Value::as_object) {
            for (template, item) in paths {
                for m in METHODS {
                    if item.get(m).is_some() {
                        let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                            .unwrap_or(Method::GET);
                        out.push(Route::new(method, template.as_str()));
                    }
                }
            }
        }
        out
    }

    /// Compares the document with the routes the service serves: an operation nobody serves,
    /// or a served route the document does not describe, is an error naming them all.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Route`] listing the mismatches.
    pub fn check_routes<'r>(
        &self,
        served: impl IntoIterator<Item = &'r Route>,
    ) -> Result<(), ConfigError> {
        let key = |r: &Route| format!("{} {}", r.method(), r.template());
        let documented: BTreeSet<String> = self.operations().iter().map(key).collect();
        let served: BTreeSet<String> = served.into_iter().map(key).collect();
        let undocumented: Vec<_> = served.difference(&documented).cloned().collect();
        let unserved: Vec<_> = documented.difference(&served).cloned().collect();
        if undocumented.is_empty() && unserved.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Route {
            template: undocumented
                .first()
                .or(unserved.first())
                .cloned()
                .unwrap_or_default(),
            message: format!(
                "routes not in the OpenAPI document: [{}]; operations of the document not served: [{}]",
                undocumented.join(", "),
                unserved.join(", ")
            ),
        })
    }

    /// Builds the validation layer: one [`Operation`] per operation of the document.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Schema`] when a schema does not compile or a `$ref` does not resolve;
    /// [`ConfigError::Route`] for a bad path template.
    pub fn layer(&self) -> Result<ValidateLayer, ConfigError> {
        self.builder()?.build()
    }

    /// The rules as a builder, for hosts that add operations of their own.
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn builder(&self) -> Result<ValidateBuilder, ConfigError> {
        let set = SchemaSet::new()
            .register(DOC, (*self.doc).clone())
            .checked()?;
        let mut builder = ValidateLayer::builder();
        let Some(paths) = self.doc.get("paths").and_then(Value::as_object) else {
            return Ok(builder);
        };
        let bases = self.base_paths();
        for (template, item) in paths {
            let item_ptr = format!("/paths/{}", escape(template));
            let (item, item_ptr) = self.deref(item, item_ptr)?;
            let shared = item.get("parameters").and_then(Value::as_array);
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let op_ptr = format!("{item_ptr}/{m}");
                let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|e| invalid(e.to_string()))?;
                // A document that does not load names the operation and where in the document.
                let operation = self
                    .operation(&set, shared, &item_ptr, op, &op_ptr)
                    .map_err(|e| {
                        invalid(format!("{method} {template} (#{}): {e}", fragment(&op_ptr)))
                    })?;
                for based in bases.iter().map(|b| format!("{b}{template}")) {
                    // A path the document also lists as written is that path's operation.
                    if !paths.contains_key(&based) {
                        builder = builder.operation(method.clone(), &based, operation.clone());
                    }
                }
                builder = builder.operation(method, template, operation);
            }
        }
        Ok(builder)
    }

    /// The path parts of the document's `servers` URLs (`https://api.example.com/v1` and
    /// `/v1` give `/v1`; `{variables}` take their `default`), other than `/`. Each operation
    /// is validated under its path as written and under each of these before it, so a layer
    /// placed on the router that serves `/v1/orders` validates the document's `/orders`.
    #[must_use]
    pub fn base_paths(&self) -> Vec<String> {
        servers::base_paths(&self.doc)
    }

    /// Follows a local `$ref` (`#/components/...`) to its target and pointer.
    fn deref<'a>(
        &'a self,
        value: &'a Value,
        ptr: String,
    ) -> Result<(&'a Value, String), ConfigError> {
        let mut value = value;
        let mut ptr = ptr;
        for _ in 0..16 {
            let Some(r) = value.get("$ref").and_then(Value::as_str) else {
                return Ok((value, ptr));
            };
            let target = r
                .strip_prefix('#')
                .ok_or_else(|| invalid(format!("`{r}`: only local `$ref`s are followed")))?;
            value = self
                .doc
                .pointer(target)
                .ok_or_else(|| invalid(format!("`{r}` does not resolve")))?;
            ptr = target.to_owned();
        }
        Err(invalid("a `$ref` chain is longer than 16"))
    }

    fn operation(
        &self,
        set: &SchemaSet,
        shared: Option<&Vec<Value>>,
        item_ptr: &str,
        op: &Value,
        op_ptr: &str,
    ) -> Result<Operation, ConfigError> {
        let mut operation = self.operation.clone().unwrap_or_default();
        let params = self.params(shared, item_ptr, op, op_ptr)?;
        for p in &params {
            if let Some(limits) = p.limits {
                let part = if p.place == "path" {
                    InputPart::Path
                } else {
                    InputPart::Query
                };
                operation = operation.param_limits(part, &p.name, limits);
            }
        }
        for place in ["query", "header", "path", "cookie"] {
            let mine: Vec<_> = params.iter().filter(|p| p.place == place).collect();
            if mine.is_empty() {
                continue;
            }
            let mut properties = Map::new();
            let mut required = Vec::new();
            for p in mine {
                properties.insert(p.name.clone(), p.property());
                if p.required {
                    required.push(Value::String(p.name.clone()));
                }
            }
            let schema = json!({"type": "object", "properties": properties, "required": required});
            operation = match place {
                "query" => operation.query(set, &schema).checked()?,
                "header" => operation.headers(set, &schema).checked()?,
                "cookie" => operation.cookies(set, &schema).checked()?,
                _ => operation.path(set, &schema).checked()?,
            };
        }
        if self.responses != ResponseCheck::Off {
            operation = operation.with_responses(self.responses_of(set, op, op_ptr)?);
        }
        match op.get("requestBody") {
            Some(body) => self.with_body(operation, set, body, op_ptr),
            None => Ok(operation),
        }
    }

    /// The parameters of an operation: the path item's (`shared`), overridden by the
    /// operation's with the same name and location (OpenAPI 3.x, Path Item Object).
    fn params(
        &self,
        shared: Option<&Vec<Value>>,
        item_ptr: &str,
        op: &Value,
        op_ptr: &str,
    ) -> Result<Vec<Param>, ConfigError> {
        let mut params: Vec<Param> = Vec::new();
        let lists = [
            (shared, format!("{item_ptr}/parameters")),
            (
                op.get("parameters").and_then(Value::as_array),
                format!("{op_ptr}/parameters"),
            ),
        ];
        for (list, base) in lists {
            for (i, p) in list.into_iter().flatten().enumerate() {
                if let Some(param) = self.param(p, format!("{base}/{i}"))? {
                    params.retain(|p| !(p.name == param.name && p.place == param.place));
                    params.push(param);
                }
            }
        }
        Ok(params)
    }

    /// One Parameter Object at `ptr`; `None` for one palisade does not read (it is logged).
    fn param(&self, p: &Value, ptr: String) -> Result<Option<Param>, ConfigError> {
        let (p, ptr) = self.deref(p, ptr)?;
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let place = p.get("in").and_then(Value::as_str).unwrap_or_default();
        let required = place == "path" || p.get("required").and_then(Value::as_bool) == Some(true);
        let name = if place == "header" {
            name.to_ascii_lowercase()
        } else {
            name.to_owned()
        };
        let Some(schema) = p.get("schema") else {
            // `content` instead of `schema`: a serialized document in one parameter.
            tracing::warn!(target: "palisade::validate", parameter = %ptr, "an OpenAPI parameter described by `content` is not validated");
            return Ok(None);
        };
        let style = p.get("style").and_then(Value::as_str);
        if let Some(name) = style.filter(|s| super::params::Style::parse(s).is_none()) {
            return Err(invalid(format!(
                "{ptr}: `{name}` is not an OpenAPI parameter style"
            )));
        }
        let (resolved, _) = self.deref(schema, format!("{ptr}/schema"))?;
        // palisade's extension: this parameter's own hostile-input limits.
        let limits = match p.get("x-palisade-limits") {
            None => None,
            Some(_) if !matches!(place, "query" | "path") => {
                return Err(invalid(format!(
                    "{ptr}/x-palisade-limits: hostile-input limits apply to query and path parameters"
                )));
            }
            Some(l) => Some(
                serde_json::from_value(l.clone())
                    .map_err(|e| invalid(format!("{ptr}/x-palisade-limits: {e}")))?,
            ),
        };
        Ok(Some(Param {
            name,
            place: place.to_owned(),
            required,
            ptr: format!("{ptr}/schema"),
            resolved: resolved.clone(),
            style: style.map(str::to_owned),
            explode: p.get("explode").and_then(Value::as_bool),
            limits,
        }))
    }
}

impl Param {
    /// The parameter's property in the parameters' object schema. The `$ref` validates; `type`
    /// (and `items.type`, `properties.*.type`) beside it tell the coercion what to read the
    /// string as, and `style` / `explode` how an array or object is spelled.
    fn property(&self) -> Value {
        let mut prop = json!({ "$ref": format!("{DOC}#{}", fragment(&self.ptr)) });
        if let Some(t) = self.resolved.get("type") {
            prop["type"] = t.clone();
        }
        if let Some(t) = self.resolved.get("items").and_then(|i| i.get("type")) {
            prop["items"] = json!({ "type": t });
        }
        if let Some(members) = self.resolved.get("properties").and_then(Value::as_object) {
            let types: Map<String, Value> = members
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json!({"type": v.get("type")?}))))
                .collect();
            prop["properties"] = Value::Object(types);
        }
        if let Some(style) = &self.style {
            prop["style"] = json!(style);
        }
        if let Some(explode) = self.explode {
            prop["explode"] = json!(explode);
        }
        prop
    }
}

/// One parameter of an operation.
struct Param {
    name: String,
    place: String,
    required: bool,
    /// The pointer to its schema in the document.
    ptr: String,
    resolved: Value,
    style: Option<String>,
    explode: Option<bool>,
    /// `x-palisade-limits`: the parameter's own hostile-input limits.
    limits: Option<super::JsonLimits>,
}

/// RFC 6901 escaping of one pointer segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer as a URI fragment (RFC 6901 §6): characters a fragment cannot hold, such as
/// the braces of `/pets/{petId}`, are percent-encoded.
fn fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for b in pointer.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_3_0_nullable_and_boolean_exclusive_bounds_are_translated() {
        let mut v = json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"type": "integer", "minimum": 0, "exclusiveMinimum": true,
                      "maximum": 9, "exclusiveMaximum": false},
                "c": {"enum": ["x"], "nullable": true, "type": "string"}
            }
        });
        dialect::translate_30(&mut v);
        assert_eq!(v["properties"]["a"], json!({"type": ["string", "null"]}));
        assert_eq!(
            v["properties"]["b"],
            json!({"type": "integer", "exclusiveMinimum": 0, "maximum": 9})
        );
        assert_eq!(v["properties"]["c"]["enum"], json!(["x", null]));
    }

    #[test]
    fn a_document_that_does_not_load_names_the_operation_and_the_pointer() {
        let doc = OpenApi::new(json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/things/{id}": {"get": {"parameters": [
                {"name": "id", "in": "path", "required": true,
                 "schema": {"type": "integer", "exclusiveMinimum": true}}
            ]}}}
        }))
        .unwrap();
        let err = doc.builder().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("GET /things/{id}"), "{err}");
        assert!(err.contains("#/paths/~1things~1%7Bid%7D/get"), "{err}");
    }

    #[test]
    fn unsupported_versions_are_refused() {
        assert!(OpenApi::from_json(r#"{"swagger": "2.0"}"#).is_err());
        assert!(OpenApi::from_json(r#"{"openapi": "4.0.0", "paths": {}}"#).is_err());
    }

    #[test]
    fn routes_are_checked_both_ways() {
        let api = OpenApi::from_json(
            r#"{"openapi": "3.1.0", "paths": {"/a": {"get": {}}, "/b/{id}": {"delete": {}}}}"#,
        )
        .unwrap();
        let served = [
            Route::new(Method::GET, "/a"),
            Route::new(Method::DELETE, "/b/{id}"),
        ];
        api.check_routes(&served).unwrap();
        let err = api.check_routes(&served[..1]).unwrap_err().to_string();
        assert!(err.contains("DELETE /b/{id}"), "{err}");
        let extra = [
            served[0].clone(),
            served[1].clone(),
            Route::new(Method::POST, "/a"),
        ];
        let err = api.check_routes(&extra).unwrap_err().to_string();
        assert!(err.contains("POST /a"), "{err}");
    }
}

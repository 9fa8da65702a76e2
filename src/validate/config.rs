//! The `validation` section of a configuration file (feature `config`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Decoding, DenyPattern, Draft, JsonLimits, Operation, ParamLimits, ResponseCheck, SchemaSet,
    ValidateBuilder, ValidateLayer,
};
use crate::error::ConfigError;

/// A duration as a file writes it (`10s`, `500ms`).
fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{s}` is not a duration: expected a number and a unit, such as 10s or 500ms"
        ))
    })
}

/// The `validation` section: schemas for `$ref`s, an OpenAPI document, and rules per operation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidationConfig {
    /// An OpenAPI 3.0 / 3.1 document (`.json`, `.yaml`) whose operations become rules
    /// (feature `openapi`); a relative path is read from the configuration file's directory.
    #[serde(default)]
    pub openapi: Option<PathBuf>,
    /// Hand on, unchecked, bodies of the document's media types palisade cannot check (XML,
    /// `multipart/*`...), instead of refusing them with 415 (default false).
    #[serde(default)]
    pub pass_unchecked_media_types: bool,
    /// Response validation against the `openapi` document: `off` (default), `shadow`,
    /// `strip` or `refuse` ([`ResponseCheck`]).
    #[serde(default)]
    pub responses: ResponseCheck,
    /// The dialect of schemas without `$schema` (default `draft2020-12`).
    #[serde(default)]
    pub default_draft: Draft,
    /// Schemas that rules may `$ref`, by URI.
    #[serde(default)]
    pub schemas: BTreeMap<String, Value>,
    /// Body limit of every operation unless it sets its own (default 64 KiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// How long reading a body may take, for every operation unless it sets its own (default
    /// `10s`); then 408 and the connection is closed.
    #[serde(default, deserialize_with = "opt_duration")]
    pub body_timeout: Option<Duration>,
    /// JSON guards of every operation (each field defaults as in [`JsonLimits::default`]).
    #[serde(default)]
    pub limits: Option<JsonLimits>,
    /// Content codings every operation decodes unless it sets its own:
    /// `{codings: [gzip, br], max_ratio: 100}` (feature `decompression`; default none, a
    /// coded body is refused with 415).
    #[serde(default)]
    pub decode: Option<Decoding>,
    /// Rules per operation.
    #[serde(default)]
    pub operations: Vec<OperationConfig>,
}

/// Rules of one operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OperationConfig {
    /// The route template (`/v1/orders/{id}`).
    pub path: String,
    /// The method.
    pub method: String,
    /// The JSON body's schema (inline, or `{"$ref": "<registered uri>"}`).
    #[serde(default)]
    pub body: Option<Value>,
    /// Accepted content types (default `[application/json]` with a body schema).
    #[serde(default)]
    pub content_types: Vec<String>,
    /// The query parameters' object schema.
    #[serde(default)]
    pub query: Option<Value>,
    /// The headers' object schema (lowercase names).
    #[serde(default)]
    pub headers: Option<Value>,
    /// The path parameters' object schema.
    #[serde(default)]
    pub path_params: Option<Value>,
    /// The cookies' object schema.
    #[serde(default)]
    pub cookies: Option<Value>,
    /// This operation's body limit.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// This operation's body read timeout.
    #[serde(default, deserialize_with = "opt_duration")]
    pub body_timeout: Option<Duration>,
    /// The content codings this operation decodes (as `validation.decode`).
    #[serde(default)]
    pub decode: Option<Decoding>,
    /// Hostile-input limits of single query or path parameters:
    /// `[{in: query, name: note, limits: {allow_control_characters: true}}]`.
    #[serde(default)]
    pub param_limits: Vec<ParamLimits>,
    /// Deny patterns: `{field: /note, pattern: "(?i)<script"}`.
    #[serde(default)]
    pub deny: Vec<DenyPattern>,
}

impl ValidationConfig {
    /// The defaults every operation starts from.
    fn defaults(&self) -> Operation {
        let mut op = Operation::new();
        if let Some(max) = self.max_body_bytes {
            op = op.max_body_bytes(max);
        }
        if let Some(timeout) = self.body_timeout {
            op = op.body_timeout(timeout);
        }
        if let Some(limits) = self.limits {
            op = op.json_limits(limits);
        }
        if let Some(decoding) = &self.decode {
            op = op.decode(decoding.clone());
        }
        op
    }

    /// Builds the layer; `base` is the configuration file's directory.
    ///
    /// # Errors
    ///
    /// Schemas that do not compile, bad templates or methods, an unreadable OpenAPI document.
    pub fn layer(&self, base: Option<&std::path::Path>) -> Result<ValidateLayer, ConfigError> {
        self.builder(base)?.build()
    }

    pub(crate) fn builder(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<ValidateBuilder, ConfigError> {
        let mut set = SchemaSet::new().default_draft(self.default_draft);
        for (uri, schema) in &self.schemas {
            set = set.register(uri, schema.clone()).checked()?;
        }
        if self.pass_unchecked_media_types && self.openapi.is_none() {
            return Err(ConfigError::Invalid {
                field: "validation.pass_unchecked_media_types",
                message:
                    "it applies to the `openapi` document's media types, and no document is named"
                        .into(),
            });
        }
        if self.responses != ResponseCheck::Off && self.openapi.is_none() {
            return Err(ConfigError::Invalid {
                field: "validation.responses",
                message:
                    "responses are checked against the `openapi` document, and no document is named"
                        .into(),
            });
        }
        let mut builder = match &self.openapi {
            None => ValidateLayer::builder(),
            Some(path) => self.openapi_builder(base, path)?,
        };
        for (i, o) in self.operations.iter().enumerate() {
            builder = self
                .operation(&set, o, builder)
                .map_err(|e| operation_error(i, o, &e))?;
        }
        Ok(builder)
    }

    /// Adds operation `o` to `builder`.
    fn operation(
        &self,
        set: &SchemaSet,
        o: &OperationConfig,
        mut builder: ValidateBuilder,
    ) -> Result<ValidateBuilder, ConfigError> {
        {
            let mut op = self.defaults();
            if let Some(max) = o.max_body_bytes {
                op = op.max_body_bytes(max);
            }
            if let Some(timeout) = o.body_timeout {
                op = op.body_timeout(timeout);
            }
            if let Some(decoding) = &o.decode {
                op = op.decode(decoding.clone());
            }
            for p in &o.param_limits {
                op = op.param_limits(p.part, &p.name, p.limits);
            }
            if let Some(body) = &o.body {
                let schema = set.compile(body).map_err(|e| in_part("body", e))?;
                let types = if o.content_types.is_empty() {
                    vec!["application/json".to_owned()]
                } else {
                    o.content_types.clone()
                };
                for t in &types {
                    op = op.body(t, Some(schema.clone()));
                }
            } else {
                for t in &o.content_types {
                    op = op.accept(t);
                }
            }
            if let Some(q) = &o.query {
                op = op
                    .query(set, q)
                    .checked()
                    .map_err(|e| in_part("query", e))?;
            }
            if let Some(h) = &o.headers {
                op = op
                    .headers(set, h)
                    .checked()
                    .map_err(|e| in_part("headers", e))?;
            }
            if let Some(p) = &o.path_params {
                op = op
                    .path(set, p)
                    .checked()
                    .map_err(|e| in_part("path_params", e))?;
            }
            if let Some(c) = &o.cookies {
                op = op
                    .cookies(set, c)
                    .checked()
                    .map_err(|e| in_part("cookies", e))?;
            }
            for d in &o.deny {
                op = op.deny(d.clone());
            }
            let method =
                Method::from_bytes(o.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    ConfigError::Invalid {
                        field: "validation.operations.method",
                        message: format!("`{}` is not a method", o.method),
                    }
                })?;
            builder = builder.operation(method, &o.path, op);
        }
        Ok(builder)
    }

    #[cfg(feature = "openapi")]
    fn openapi_builder(
        &self,
        base: Option<&std::path::Path>,
        path: &std::path::Path,
    ) -> Result<ValidateBuilder, ConfigError> {
        let path = match base {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        };
        let mut doc = super::openapi::OpenApi::from_path(path)?.with_defaults(self.defaults());
        doc = doc.check_responses(self.responses);
        if self.pass_unchecked_media_types {
            doc = doc.pass_unchecked_media_types();
        }
        doc.builder()
    }

    #[cfg(not(feature = "openapi"))]
    fn openapi_builder(
        &self,
        _: Option<&std::path::Path>,
        _: &std::path::Path,
    ) -> Result<ValidateBuilder, ConfigError> {
        Err(ConfigError::Invalid {
            field: "validation.openapi",
            message: "reading an OpenAPI document needs palisade's `openapi` feature".into(),
        })
    }

    /// The OpenAPI document, if one is configured (feature `openapi`).
    ///
    /// # Errors
    ///
    /// An unreadable or invalid document.
    #[cfg(feature = "openapi")]
    pub fn openapi(
        &self,
        base: Option<&std::path::Path>,
    ) -> Result<Option<super::openapi::OpenApi>, ConfigError> {
        let Some(path) = &self.openapi else {
            return Ok(None);
        };
        let path = match base {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.clone(),
        };
        super::openapi::OpenApi::from_path(path).map(Some)
    }
}

/// A schema error, naming the part of the operation it is in (`body`, `query`...).
fn in_part(part: &str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Schema { message } => ConfigError::Schema {
            message: format!("{part} schema {message}"),
        },
        other => other,
    }
}

/// An error of `validation.operations[i]`, naming the operation.
fn operation_error(i: usize, o: &OperationConfig, e: &ConfigError) -> ConfigError {
    ConfigError::Invalid {
        field: "validation.operations",
        message: format!("[{i}] ({} {}): {e}", o.method.to_ascii_uppercase(), o.path),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Format};

    #[test]
    fn param_limits_are_read_per_operation_and_a_header_is_refused() {
        let parsed = |text: &str| Config::parse(text, Format::Yaml).map(|c| c.validation);
        let ok = parsed(
            "validation: {operations: [{path: /a, method: GET, param_limits: [{in: query, name: note, limits: {allow_bidi_controls: true}}]}]}",
        )
        .unwrap();
        assert!(ok.operations[0].param_limits[0].limits.allow_bidi_controls);
        assert!(ok.layer(None).is_ok());
        let header = parsed(
            "validation: {operations: [{path: /a, method: GET, param_limits: [{in: header, name: x, limits: {}}]}]}",
        )
        .unwrap();
        let err = header.layer(None).unwrap_err().to_string();
        assert!(err.contains("param_limits"), "{err}");
    }

    #[test]
    fn the_validation_reference_in_docs_config_md_builds() {
        let doc = include_str!("../../docs/config.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(3)
            .and_then(|rest| rest.split("```").next())
            .expect("a third yaml block in docs/config.md");
        let mut c = Config::parse(yaml, Format::Yaml).unwrap();
        assert_eq!(c.validation.operations.len(), 3);
        // Without the OpenAPI file (not here), the rest builds.
        c.validation.openapi = None;
        c.validation.layer(None).unwrap();
    }

    #[test]
    fn the_limits_and_deny_patterns_are_the_builders_own_types() {
        let c = Config::parse(
            "validation: {limits: {allow_control_characters: true, max_depth: 4}, operations: \
             [{path: /a, method: POST, deny: [{field: /note, pattern: '(?i)<script'}]}]}",
            Format::Yaml,
        )
        .unwrap();
        let limits = c.validation.limits.unwrap();
        let timed = Config::parse(
            "validation: {body_timeout: 2s, operations: [{path: /a, method: POST, body_timeout: 500ms}]}",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(
            timed.validation.body_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            timed.validation.operations[0].body_timeout,
            Some(std::time::Duration::from_millis(500))
        );
        let err = Config::parse("validation: {body_timeout: soon}", Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`soon` is not a duration"), "{err}");
        assert!(limits.allow_control_characters);
        assert_eq!(limits.max_depth, 4);
        // The fields the file leaves out keep the builder's defaults.
        assert_eq!(limits.max_members, super::JsonLimits::default().max_members);
        assert_eq!(c.validation.operations[0].deny.len(), 1);
        let err = Config::parse(
            "validation: {operations: [{path: /a, method: POST, deny: [{field: /n, pattern: '('}]}]}",
            Format::Yaml,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("deny pattern for `/n`"), "{err}");
        let err = Config::parse("validation: {limits: {max_dept: 4}}", Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_dept"), "{err}");
    }

    #[test]
    fn a_schema_that_does_not_compile_is_a_start_up_error() {
        let c = Config::parse(
            "validation: {operations: [{path: /a, method: POST, body: {type: 7}}]}",
            Format::Yaml,
        )
        .unwrap();
        let err = c.validation.layer(None).unwrap_err().to_string();
        // The section, the operation, the part, the pointer into the schema and the reason.
        assert!(
            err.starts_with("`validation.operations`: [0] (POST /a): "),
            "{err}"
        );
        assert!(err.contains("body schema at `/type`"), "{err}");
        assert!(err.contains("is not valid"), "{err}");
    }
}

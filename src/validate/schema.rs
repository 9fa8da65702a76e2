//! JSON Schema through the `jsonschema` crate: a [`SchemaSet`] of registered schemas that
//! `$ref`s resolve against (never fetched from the network or the disk), compiled once into
//! [`Schema`]s whose errors become [`Violation`]s.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::fused::Plan;
use super::tape::schema::TapeJson;
use super::tape::{Node, Tape, Tok};

use crate::error::ConfigError;
use crate::rejection::{InputPart, Violation};

/// A JSON Schema dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[non_exhaustive]
pub enum Draft {
    /// Draft 4.
    #[serde(rename = "draft4")]
    Draft4,
    /// Draft 6.
    #[serde(rename = "draft6")]
    Draft6,
    /// Draft 7.
    #[serde(rename = "draft7")]
    Draft7,
    /// Draft 2019-09.
    #[serde(rename = "draft2019-09")]
    Draft201909,
    /// Draft 2020-12 (the default, and OpenAPI 3.1's dialect).
    #[default]
    #[serde(rename = "draft2020-12")]
    Draft202012,
}

impl Draft {
    fn to_jsonschema(self) -> jsonschema::Draft {
        match self {
            Self::Draft4 => jsonschema::Draft::Draft4,
            Self::Draft6 => jsonschema::Draft::Draft6,
            Self::Draft7 => jsonschema::Draft::Draft7,
            Self::Draft201909 => jsonschema::Draft::Draft201909,
            Self::Draft202012 => jsonschema::Draft::Draft202012,
        }
    }
}

/// Schemas that others may `$ref` by URI, and how schemas are compiled.
///
/// ```
/// use palisade::validate::SchemaSet;
/// use serde_json::json;
///
/// let set = SchemaSet::new()
///     .register("https://schemas.example.com/money", json!({
///         "type": "object",
///         "required": ["amount", "currency"],
///         "properties": {"amount": {"type": "integer"}, "currency": {"enum": ["EUR", "USD"]}}
///     }));
/// let order = set.compile(&json!({
///     "type": "object",
///     "properties": {"total": {"$ref": "https://schemas.example.com/money"}}
/// }))?;
/// assert!(order.is_valid(&json!({"total": {"amount": 5, "currency": "EUR"}})));
/// assert!(!order.is_valid(&json!({"total": {"amount": "5"}})));
/// # Ok::<(), palisade::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct SchemaSet {
    resources: Arc<HashMap<String, Value>>,
    draft: Draft,
    formats: Option<bool>,
    /// The first mistake of [`register`](Self::register), reported by every compile.
    error: Option<ConfigError>,
}

impl fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaSet")
            .field("resources", &self.resources.keys().collect::<Vec<_>>())
            .field("draft", &self.draft)
            .finish_non_exhaustive()
    }
}

impl SchemaSet {
    /// An empty set; schemas without `$schema` are draft 2020-12, and `format` is asserted.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The dialect of schemas that do not name one with `$schema`.
    #[must_use]
    pub fn default_draft(mut self, draft: Draft) -> Self {
        self.draft = draft;
        self
    }

    /// Whether `format` (`email`, `date-time`, `uuid`...) is asserted (default true: request
    /// input is checked, not annotated). JSON Schema 2019-09 and later make it an annotation
    /// unless asked; palisade asks.
    #[must_use]
    pub fn validate_formats(mut self, yes: bool) -> Self {
        self.formats = Some(yes);
        self
    }

    /// Registers `schema` under `uri` for `$ref`s, and under its `$id` too unless another
    /// schema holds that id already.
    ///
    /// Another schema registered under `uri` makes every [`compile`](Self::compile) of this
    /// set fail with [`ConfigError::Invalid`] (field `schema`).
    #[must_use]
    pub fn register(mut self, uri: &str, schema: Value) -> Self {
        let map = Arc::make_mut(&mut self.resources);
        let uri = uri.trim_end_matches('#').to_owned();
        if map.get(&uri).is_some_and(|existing| *existing != schema) {
            self.error.get_or_insert(ConfigError::Invalid {
                field: "schema",
                message: format!("schema `{uri}` is registered twice"),
            });
            return self;
        }
        let id = schema
            .get("$id")
            .or_else(|| schema.get("id"))
            .and_then(Value::as_str)
            .map(|id| id.trim_end_matches('#').to_owned())
            .filter(|id| *id != uri && !map.contains_key(id));
        if let Some(id) = id {
            map.insert(id, schema.clone());
        }
        map.insert(uri, schema);
        self
    }

    /// `self`, or the mistake of a [`register`](Self::register) call.
    #[cfg_attr(not(any(feature = "config", feature = "openapi")), allow(dead_code))]
    pub(crate) fn checked(self) -> Result<Self, ConfigError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }

    /// The schema a `$ref` names: `#/pointer` inside `root`, or a registered schema's URI with
    /// an optional `#/pointer` fragment. Follows up to 8 `$ref`s in a row; `None` when one does
    /// not resolve (compiling then says why).
    pub(crate) fn resolve<'a>(&'a self, root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
        let mut current = schema;
        for _ in 0..8 {
            let Some(r) = current.get("$ref").and_then(Value::as_str) else {
                return Some(current);
            };
            let (base, fragment) = r.split_once('#').unwrap_or((r, ""));
            let doc = if base.is_empty() {
                root
            } else {
                self.resources.get(base)?
            };
            current = if fragment.is_empty() {
                doc
            } else {
                doc.pointer(fragment)?
            };
        }
        None
    }

    /// The registered schema at `uri`.
    pub(crate) fn resource(&self, uri: &str) -> Option<&Value> {
        self.resources.get(uri)
    }

    /// Compiles `schema` (its `$ref`s resolve against the registered schemas only).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Schema`] when it is not a valid schema or a `$ref` does not resolve:
    /// a start-up error, never a per-request one; first, the mistake of a
    /// [`register`](Self::register) call.
    pub fn compile(&self, schema: &Value) -> Result<Schema, ConfigError> {
        let validator = self.validator(schema)?;
        Ok(Schema {
            validator: Arc::new(validator),
            plan: Plan::compile(self, schema),
        })
    }

    /// `schema`'s validator alone (no fused plan).
    pub(crate) fn validator(&self, schema: &Value) -> Result<TapeValidator, ConfigError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let mut options = jsonschema::options_for::<TapeJson>()
            .with_retriever(Registered(self.resources.clone()))
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .should_validate_formats(self.formats.unwrap_or(true))
            .with_keyword(INT64_KEYWORD, |_, _, _| Ok(Box::new(Int64)));
        if schema.get("$schema").is_none() {
            options = options.with_draft(self.draft.to_jsonschema());
        }
        options.build(schema).map_err(|e| {
            // The pointer into the schema where it breaks the meta-schema (RFC 6901).
            let at = e.instance_path().as_str();
            ConfigError::Schema {
                message: if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{at}`: {e}")
                },
            }
        })
    }

    /// Compiles the registered schema at `uri` (a fragment may point inside it).
    ///
    /// # Errors
    ///
    /// As [`compile`](Self::compile).
    pub fn compile_ref(&self, uri: &str) -> Result<Schema, ConfigError> {
        self.compile(&serde_json::json!({ "$ref": uri }))
    }
}

/// The keyword the OpenAPI reader puts beside `format: int64`: an exact range check.
pub(crate) const INT64_KEYWORD: &str = "x-palisade-int64";

/// `format: int64` exactly. `minimum`/`maximum` alone cannot tell `-9223372036854775809` from
/// `i64::MIN`: an integer literal outside 64 bits is read as a float, and the nearest float is
/// the bound itself. A literal inside the range is always read as an integer, so a float at or
/// beyond ±2^63 is out of range (a caller writing `-9223372036854775808.0` is refused too).
struct Int64;

impl Int64 {
    fn fits(value: Node<'_>) -> bool {
        const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
        match value.tok() {
            Tok::U64(u) => i64::try_from(u).is_ok(),
            Tok::F64(f) => f > -LIMIT && f < LIMIT,
            _ => true,
        }
    }
}

impl<'i> jsonschema::Keyword<'i, TapeJson> for Int64 {
    fn validate(&self, instance: Node<'i>) -> Result<(), jsonschema::ValidationError<'i>> {
        if Self::fits(instance) {
            Ok(())
        } else {
            Err(jsonschema::ValidationError::custom(
                "the number is outside the int64 range",
            ))
        }
    }

    fn is_valid(&self, instance: Node<'i>) -> bool {
        Self::fits(instance)
    }
}

/// The retriever: the registered schemas, and nothing else (no network, no files).
struct Registered(Arc<HashMap<String, Value>>);

impl jsonschema::Retrieve for Registered {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let key = uri.as_str().trim_end_matches('#');
        self.0.get(key).cloned().ok_or_else(|| {
            format!("`{key}` is not a registered schema (palisade never fetches schemas)").into()
        })
    }
}

/// A validator over the tape.
pub(crate) type TapeValidator = jsonschema::Validator<TapeJson>;

/// A compiled schema. Cloning shares it.
#[derive(Clone)]
pub struct Schema {
    validator: Arc<TapeValidator>,
    /// The same schema for the fused body path.
    plan: Arc<Plan>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

impl Schema {
    /// The fused plan of the schema.
    pub(crate) fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Whether `value` is valid.
    #[must_use]
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(Tape::from_value(value).root())
    }

    /// What is wrong with `value`, at most `max` violations, each with a JSON pointer, the
    /// failing keyword and a message that does not repeat the value.
    #[must_use]
    pub fn violations(&self, value: &Value, part: InputPart, max: usize) -> Vec<Violation> {
        self.violations_at(Tape::from_value(value).root(), part, max)
    }

    /// [`violations`](Self::violations) of a parsed body, read in place.
    pub(crate) fn violations_at(
        &self,
        node: Node<'_>,
        part: InputPart,
        max: usize,
    ) -> Vec<Violation> {
        // The common case, valid input, takes the validator's fast path (no error building).
        if self.validator.is_valid(node) {
            return Vec::new();
        }
        self.validator
            .iter_errors(node)
            .take(max)
            .map(|e| Violation {
                part,
                pointer: format!("#{}", e.instance_path().as_str()).into(),
                keyword: match e.kind().keyword() {
                    INT64_KEYWORD => "format".into(),
                    other => other.into(),
                },
                detail: e.masked().to_string().into(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_error_is_listed_with_pointer_keyword_and_no_value() {
        let schema = SchemaSet::new()
            .compile(&json!({
                "type": "object",
                "required": ["id"],
                "properties": {
                    "qty": {"type": "integer", "minimum": 1},
                    "email": {"type": "string", "format": "email"}
                }
            }))
            .unwrap();
        let v = json!({"qty": 0, "email": "secret-value-not-an-email"});
        let errs = schema.violations(&v, InputPart::Body, 10);
        let mut got: Vec<(&str, &str)> = errs.iter().map(|e| (&*e.pointer, &*e.keyword)).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                ("#", "required"),
                ("#/email", "format"),
                ("#/qty", "minimum")
            ]
        );
        for e in &errs {
            assert!(!e.detail.contains("secret-value"), "{}", e.detail);
        }
        assert_eq!(schema.violations(&v, InputPart::Body, 1).len(), 1);
    }

    #[test]
    fn drafts_are_honoured() {
        // Draft 4: exclusiveMaximum is a boolean.
        let d4 = SchemaSet::new()
            .default_draft(Draft::Draft4)
            .compile(&json!({"maximum": 5, "exclusiveMaximum": true}))
            .unwrap();
        assert!(!d4.is_valid(&json!(5)));
        // $schema wins over the default.
        let d7 = SchemaSet::new()
            .default_draft(Draft::Draft4)
            .compile(&json!({"$schema": "http://json-schema.org/draft-07/schema#", "exclusiveMaximum": 5}))
            .unwrap();
        assert!(!d7.is_valid(&json!(5)));
        assert!(d7.is_valid(&json!(4)));
    }

    #[test]
    fn refs_resolve_against_registered_schemas_only() {
        let set = SchemaSet::new().register("urn:x:item", json!({"type": "integer"}));
        assert!(
            set.compile(&json!({"$ref": "urn:x:item"}))
                .unwrap()
                .is_valid(&json!(1))
        );
        let err = set
            .compile(&json!({"$ref": "https://example.com/elsewhere.json"}))
            .unwrap_err();
        assert!(matches!(err, ConfigError::Schema { .. }), "{err}");
        assert!(
            SchemaSet::new().compile(&json!({"type": 7})).is_err(),
            "a bad schema is a start-up error"
        );
    }

    #[test]
    fn patterns_use_a_linear_time_engine() {
        // (a+)+$ backtracks exponentially in a backtracking engine; here it is linear.
        let s = SchemaSet::new()
            .compile(&json!({"pattern": "^(a+)+$"}))
            .unwrap();
        let hostile = format!("{}!", "a".repeat(50_000));
        assert!(!s.is_valid(&json!(hostile)));
    }

    #[test]
    fn a_uri_registered_twice_fails_every_compile() {
        let set = SchemaSet::new()
            .register("urn:x", json!({"type": "integer"}))
            .register("urn:x", json!({"type": "string"}))
            .register("urn:y", json!({"type": "string"}));
        let err = set
            .compile(&json!({"type": "object"}))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`schema`: schema `urn:x` is registered twice"
        );
        assert!(set.checked().is_err());
        // The same schema again is no mistake.
        let same = SchemaSet::new()
            .register("urn:x", json!({"type": "integer"}))
            .register("urn:x", json!({"type": "integer"}));
        assert!(same.compile(&json!({"$ref": "urn:x"})).is_ok());
    }
}

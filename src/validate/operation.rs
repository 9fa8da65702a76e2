//! [`Operation`]: what one (method, route) accepts, and the checks of a request against it.

mod check;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::params::{self, Location, ParamShape};
use super::schema::Schema;
use super::strings::{DenyPattern, JsonLimits};
use crate::error::ConfigError;
use crate::rejection::{InputPart, InvalidReason, Violation};

/// A refusal's reason and what is wrong.
pub(crate) type Refusal = (InvalidReason, Vec<Violation>);

/// The default body limit of an operation: 64 KiB, which API requests fit. Validating costs
/// CPU in proportion to the body (about 70 MB/s), so a default of 1 MiB let one request buy
/// some 12 ms; raise it per operation that takes larger bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The default number of violations listed in one refusal.
pub const DEFAULT_MAX_ERRORS: usize = 32;

/// How long reading a body may take unless an operation says otherwise: a 1 MiB body at
/// about 1 Mbit/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A media type an operation accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MediaRange {
    /// `type/subtype`, compared without parameters and case-insensitively.
    Exact(Box<str>),
    /// `application/*+json`: any type with the `+json` structured suffix (RFC 6839 §3.1).
    JsonSuffix,
    /// `type/*`: any subtype of a type.
    AnySubtype(Box<str>),
    /// `*/*`: anything.
    Any,
}

impl MediaRange {
    fn parse(s: &str) -> Self {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "*/*" => Self::Any,
            "application/*+json" => Self::JsonSuffix,
            _ => match s.strip_suffix("/*") {
                Some(t) => Self::AnySubtype(format!("{t}/").into()),
                None => Self::Exact(s.into()),
            },
        }
    }

    fn matches(&self, essence: &str) -> bool {
        match self {
            Self::Exact(e) => **e == *essence,
            Self::JsonSuffix => essence.starts_with("application/") && essence.ends_with("+json"),
            Self::AnySubtype(prefix) => essence.starts_with(&**prefix),
            Self::Any => true,
        }
    }
}

/// `type/subtype` of a `Content-Type`, lowercased, without parameters (RFC 9110 §8.3.1).
pub(crate) fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether the media range `range` (`application/json`, `image/*`, `*/*`) admits `essence`.
pub(crate) fn media_matches(range: &str, essence: &str) -> bool {
    MediaRange::parse(range).matches(essence)
}

pub(crate) fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// What one operation (method and route template) accepts. Without any rule an operation
/// still applies the body limit and the JSON guards to JSON bodies.
///
/// ```
/// use palisade::validate::{Operation, SchemaSet};
/// use serde_json::json;
///
/// let set = SchemaSet::new();
/// let create_order = Operation::new()
///     .json_body(set.compile(&json!({"type": "object", "required": ["items"]}))?)
///     .max_body_bytes(64 * 1024)
///     .query(&set, &json!({
///         "type": "object",
///         "properties": {"dry_run": {"type": "boolean"}},
///         "additionalProperties": false
///     }));
/// # let _ = create_order;
/// # Ok::<(), palisade::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Operation {
    media: Vec<MediaRange>,
    /// Schemas by media type essence; `None` key data is matched by the first JSON range.
    bodies: Vec<(MediaRange, Option<Schema>)>,
    body_required: bool,
    max_body: usize,
    body_timeout: Duration,
    limits: JsonLimits,
    /// Hostile-input limits of single query or path parameters, in place of `limits`.
    param_limits: Vec<(InputPart, Box<str>, JsonLimits)>,
    deny: Vec<DenyPattern>,
    query: Option<ParamRules>,
    headers: Option<ParamRules>,
    path: Option<ParamRules>,
    cookies: Option<ParamRules>,
    /// The schema of an `application/x-www-form-urlencoded` body.
    form: Option<ParamRules>,
    /// A body was declared in media types none of which is accepted: every body is refused
    /// (415), never handed on unread.
    body_declared: bool,
    /// The content codings decoded before the body is checked (none: refused, 415).
    decoding: Option<super::Decoding>,
    /// The declared responses, when they are checked.
    responses: Option<Arc<super::response::Responses>>,
    max_errors: usize,
    /// The first schema of a chained method that did not compile, reported by
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build).
    error: Option<ConfigError>,
    /// The handler's body type, once learned (the fused body path); one per route.
    slot: Arc<super::fused::Slot>,
    /// The fused plan of a JSON body without a schema.
    any_plan: Arc<super::fused::Plan>,
}

#[derive(Debug, Clone)]
struct ParamRules {
    schema: Schema,
    shapes: Arc<[ParamShape]>,
}

impl Default for Operation {
    fn default() -> Self {
        Self::new()
    }
}

impl Operation {
    /// An operation that accepts no body content type yet, with a 64 KiB body limit and the
    /// default [`JsonLimits`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            media: Vec::new(),
            bodies: Vec::new(),
            body_required: false,
            max_body: DEFAULT_MAX_BODY_BYTES,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            limits: JsonLimits::default(),
            param_limits: Vec::new(),
            deny: Vec::new(),
            query: None,
            headers: None,
            path: None,
            cookies: None,
            form: None,
            body_declared: false,
            decoding: None,
            responses: None,
            max_errors: DEFAULT_MAX_ERRORS,
            error: None,
            slot: Arc::default(),
            any_plan: super::fused::Plan::any(),
        }
    }

    /// `self` with a slot of its own for the handler's body type (each route learns its own).
    pub(crate) fn with_own_slot(mut self) -> Self {
        self.slot = Arc::default();
        self
    }

    /// The first mistake a chained method met.
    pub(crate) fn take_error(&mut self) -> Option<ConfigError> {
        self.error.take()
    }

    /// `self`, or the first mistake a chained method met (for readers of files and documents
    /// that name where it was).
    #[cfg_attr(not(any(feature = "config", feature = "openapi")), allow(dead_code))]
    pub(crate) fn checked(mut self) -> Result<Self, ConfigError> {
        self.take_error().map_or(Ok(self), Err)
    }

    /// `rules` in place, or its mistake remembered (the first one wins).
    fn rules(
        &mut self,
        rules: Result<ParamRules, ConfigError>,
        slot: fn(&mut Self) -> &mut Option<ParamRules>,
    ) {
        match rules {
            Ok(rules) => *slot(self) = Some(rules),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    /// Accepts `application/json` bodies (and, with [`accept`](Self::accept), others) that
    /// `schema` validates; the body becomes required.
    #[must_use]
    pub fn json_body(self, schema: Schema) -> Self {
        self.body("application/json", Some(schema))
    }

    /// Accepts bodies of `media_type` (`application/json`, `application/*+json`,
    /// `text/plain`...), validated by `schema` when it is JSON; the body becomes required.
    #[must_use]
    pub fn body(mut self, media_type: &str, schema: Option<Schema>) -> Self {
        let range = MediaRange::parse(media_type);
        self.media.push(range.clone());
        self.bodies.push((range, schema));
        self.body_required = true;
        self
    }

    /// Accepts an `application/x-www-form-urlencoded` body (an HTML form) and validates it as
    /// an object against `schema`, its values decoded and coerced like query parameters
    /// (`qty=2` is the integer 2, repeated names are arrays, OpenAPI `style` and `explode`
    /// read the same way). The string guards apply to every name and value. The object is
    /// handed on like a JSON body: `Validated<T>` deserializes it.
    ///
    /// A schema that does not compile makes
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build) fail with
    /// [`ConfigError::Schema`].
    #[must_use]
    pub fn form_body(mut self, set: &super::SchemaSet, schema: &Value) -> Self {
        match set.compile(schema) {
            Ok(compiled) => self.form_body_with(compiled, schema),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    /// A form body checked by `schema`, read in the shapes of `shapes_from`'s properties.
    pub(crate) fn form_body_with(mut self, schema: Schema, shapes_from: &Value) -> Self {
        let range = MediaRange::parse(FORM);
        self.media.push(range.clone());
        self.bodies.push((range, None));
        self.body_required = true;
        self.form = Some(ParamRules {
            schema,
            shapes: params::shapes(shapes_from, Location::Query).into(),
        });
        self
    }

    /// Also accepts `media_type` with no schema (raw bytes, or unchecked JSON).
    #[must_use]
    pub fn accept(mut self, media_type: &str) -> Self {
        self.media.push(MediaRange::parse(media_type));
        self
    }

    /// Whether a request without a body is refused (default: true once a body is declared).
    #[must_use]
    pub fn body_required(mut self, required: bool) -> Self {
        self.body_required = required;
        self
    }

    /// The largest body accepted, in bytes: checked on `Content-Length` and while reading.
    #[must_use]
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// How long reading the whole body may take (default 10 s, [`DEFAULT_BODY_TIMEOUT`]).
    /// A body still arriving then is refused with 408 and the connection closed: a client
    /// trickling a byte a second holds no task and no connection for longer than this.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Decodes bodies in these content codings (gzip, deflate, br, zstd) before checking
    /// them, within `max_body_bytes` and the ratio limit, and hands the handler the decoded
    /// body (feature `decompression`; [`ValidateBuilder::build`](super::ValidateBuilder::build)
    /// fails without it). By default a coded body is refused (415).
    #[must_use]
    pub fn decode(mut self, decoding: super::Decoding) -> Self {
        self.decoding = Some(decoding);
        self
    }

    pub(crate) fn decoding(&self) -> Option<&super::Decoding> {
        self.decoding.as_ref()
    }

    /// Checks responses against `responses` (the OpenAPI reader builds them).
    #[cfg_attr(not(feature = "openapi"), allow(dead_code))]
    pub(crate) fn with_responses(mut self, responses: super::response::Responses) -> Self {
        self.responses = (responses.mode != super::ResponseCheck::Off).then(|| Arc::new(responses));
        self
    }

    pub(crate) fn responses(&self) -> Option<&Arc<super::response::Responses>> {
        self.responses.as_ref()
    }

    pub(crate) fn error_limit(&self) -> usize {
        self.max_errors
    }

    /// The JSON guards (depth, members, string length, control characters).
    #[must_use]
    pub fn json_limits(mut self, limits: JsonLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The hostile-input limits of one query or path parameter, in place of the operation's
    /// ([`json_limits`](Self::json_limits)): a free-text `note` that may hold a tab or a
    /// right-to-left mark, an `id` held to 36 characters. `part` is [`InputPart::Query`] or
    /// [`InputPart::Path`] (the parts whose strings the guards read; another part makes
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build) fail); `name` is as decoded.
    #[must_use]
    pub fn param_limits(mut self, part: InputPart, name: &str, limits: JsonLimits) -> Self {
        self.param_limits
            .retain(|(p, n, _)| !(*p == part && **n == *name));
        self.param_limits.push((part, name.into(), limits));
        self
    }

    /// A parameter limit set for a part the guards do not read (headers, cookies, body).
    pub(crate) fn misplaced_param_limits(&self) -> Option<(InputPart, &str)> {
        self.param_limits
            .iter()
            .find(|(p, _, _)| !matches!(p, InputPart::Query | InputPart::Path))
            .map(|(p, n, _)| (*p, &**n))
    }

    /// The limits of the `part` parameter `raw_name` (as sent): its own, or the operation's.
    pub(crate) fn limits_for(&self, part: InputPart, raw_name: &str) -> &JsonLimits {
        if self.param_limits.is_empty() {
            return &self.limits;
        }
        let name = percent_encoding::percent_decode_str(&raw_name.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        self.param_limits
            .iter()
            .find(|(p, n, _)| *p == part && **n == *name)
            .map_or(&self.limits, |(_, _, l)| l)
    }

    /// Refuses string values at a field that match a pattern (opt-in).
    #[must_use]
    pub fn deny(mut self, pattern: DenyPattern) -> Self {
        self.deny.push(pattern);
        self
    }

    /// At most this many violations in one refusal (default 32).
    #[must_use]
    pub fn max_errors(mut self, max: usize) -> Self {
        self.max_errors = max.max(1);
        self
    }

    /// Validates the query string as an object against `schema` (an object schema whose
    /// properties are the parameters), each value coerced to its property's type.
    ///
    /// A schema that does not compile makes
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build) fail with
    /// [`ConfigError::Schema`].
    #[must_use]
    pub fn query(mut self, set: &super::SchemaSet, schema: &Value) -> Self {
        self.rules(ParamRules::new(set, schema, Location::Query), |o| {
            &mut o.query
        });
        self
    }

    /// Validates headers as an object against `schema` (property names in lowercase).
    ///
    /// A schema that does not compile makes
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build) fail with
    /// [`ConfigError::Schema`].
    #[must_use]
    pub fn headers(mut self, set: &super::SchemaSet, schema: &Value) -> Self {
        self.rules(ParamRules::new(set, schema, Location::Header), |o| {
            &mut o.headers
        });
        self
    }

    /// Validates the path parameters (`{id}`) as an object against `schema`.
    ///
    /// A schema that does not compile makes
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build) fail with
    /// [`ConfigError::Schema`].
    #[must_use]
    pub fn path(mut self, set: &super::SchemaSet, schema: &Value) -> Self {
        self.rules(ParamRules::new(set, schema, Location::Path), |o| {
            &mut o.path
        });
        self
    }

    /// Validates the cookies of the `Cookie` header (RFC 6265 §4.2.1) as an object against
    /// `schema`.
    ///
    /// A schema that does not compile makes
    /// [`ValidateBuilder::build`](super::ValidateBuilder::build) fail with
    /// [`ConfigError::Schema`].
    #[must_use]
    pub fn cookies(mut self, set: &super::SchemaSet, schema: &Value) -> Self {
        self.rules(ParamRules::new(set, schema, Location::Cookie), |o| {
            &mut o.cookies
        });
        self
    }

    pub(crate) fn has_body_rules(&self) -> bool {
        self.body_declared || !self.media.is_empty()
    }

    /// Marks the body as declared: with no media type accepted, every body gets 415.
    #[cfg(feature = "openapi")]
    pub(crate) fn body_declared(mut self) -> Self {
        self.body_declared = true;
        self
    }

    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        self.body_timeout
    }

    pub(crate) fn wants_query(&self) -> bool {
        self.query.is_some()
    }
}

impl ParamRules {
    fn new(
        set: &super::SchemaSet,
        schema: &Value,
        location: Location,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            schema: set.compile(schema)?,
            shapes: params::shapes_resolved(schema, location, |s| {
                set.resolve(schema, s).unwrap_or(s)
            })
            .into(),
        })
    }

    /// The object of `pairs` as this rule's shapes coerce it; its violations of the schema are
    /// appended to `errors`.
    fn check<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
        location: Location,
        max_errors: usize,
        errors: &mut Vec<Violation>,
    ) -> Map<String, Value> {
        let value = Value::Object(params::object(pairs, &self.shapes, location));
        errors.extend(self.schema.violations(&value, location.part(), max_errors));
        let Value::Object(object) = value else {
            return Map::new(); // built as an object just above
        };
        object
    }
}

/// How a body will be checked.
#[derive(Debug, Clone)]
pub(crate) struct BodyKind {
    /// The content coding to decode first, if any.
    pub(crate) coding: Option<super::Coding>,
    json: bool,
    /// An `application/x-www-form-urlencoded` body with a form schema.
    form: bool,
    schema: Option<Schema>,
}

impl BodyKind {
    /// Whether the body is JSON (not a form), with a body to check.
    pub(crate) fn is_json(&self) -> bool {
        self.json && !self.form
    }
}

/// The media type of HTML form bodies.
const FORM: &str = "application/x-www-form-urlencoded";

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn rfc6839_json_suffix_and_parameters_match() {
        let json = MediaRange::parse("application/json");
        assert!(json.matches(&essence("application/json; charset=utf-8")));
        assert!(json.matches(&essence("Application/JSON")));
        assert!(!json.matches(&essence("application/jsonx")));
        let suffix = MediaRange::parse("application/*+json");
        assert!(suffix.matches(&essence("application/merge-patch+json")));
        assert!(!suffix.matches(&essence("text/x+json")));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn parameters_whose_type_is_behind_a_ref_are_coerced() {
        let set = super::super::SchemaSet::new().register(
            "urn:test:limit",
            serde_json::json!({"type": "integer", "maximum": 50}),
        );
        let op = Operation::new().query(
            &set,
            &serde_json::json!({
                "type": "object",
                "$defs": {"id": {"type": "integer", "minimum": 1}},
                "properties": {
                    "limit": {"$ref": "urn:test:limit"},
                    "ids": {"type": "array", "items": {"$ref": "#/$defs/id"}, "explode": false}
                }
            }),
        );
        let headers = HeaderMap::new();
        let query = op
            .check_params(Some("limit=5&ids=1,2"), &headers, std::iter::empty())
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(query),
            serde_json::json!({"limit": 5, "ids": [1, 2]})
        );
        // The referenced schemas still judge: 51 is over the maximum, 0 under the minimum.
        let (_, errors) = op
            .check_params(Some("limit=51&ids=0"), &headers, std::iter::empty())
            .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn a_schema_that_does_not_compile_fails_the_build_not_the_chain() {
        let set = super::super::SchemaSet::new();
        let bad = serde_json::json!({"type": "object", "properties": {"n": {"type": 5}}});
        let expected = set.compile(&bad).map(|_| ()).unwrap_err().to_string();
        let err = super::super::ValidateLayer::builder()
            .operation(http::Method::GET, "/a", Operation::new().query(&set, &bad))
            .operation(
                http::Method::GET,
                "/b",
                Operation::new().headers(&set, &bad),
            )
            .build()
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(matches!(err, ConfigError::Schema { .. }));
        // An operation declared twice: the route and the method, as before.
        let err = super::super::ValidateLayer::builder()
            .operation(http::Method::GET, "/a", Operation::new())
            .operation(
                http::Method::GET,
                "/a",
                Operation::new().form_body(&set, &bad),
            )
            .build()
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("schema"), "{err}");
        let err = super::super::ValidateLayer::builder()
            .operation(http::Method::GET, "/a", Operation::new())
            .operation(http::Method::GET, "/a", Operation::new())
            .build()
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "route template `/a`: GET is validated twice"
        );
    }
}

//! Response validation (OWASP API3:2023, Broken Object Property Level Authorization): the
//! handler's status and JSON body checked against what the operation declares, so that a
//! property the document does not promise (a password hash, an internal flag) is seen, and,
//! as the host chooses, removed or refused, before it leaves.

// The OpenAPI reader builds the declarations; without it only the types remain.
#![cfg_attr(not(feature = "openapi"), allow(dead_code))]

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::Value;

use super::Schema;
use crate::body::ResponseBody;
use crate::outcome::ResponseDivergence;
use crate::rejection::{InputPart, InvalidInput, InvalidReason, Rejection, Violation};

/// What the validation layer does with a response that breaks its operation's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResponseCheck {
    /// Responses are not read (the default).
    #[default]
    Off,
    /// Checked and reported (audit event `response_check`, a `tracing` warning and the
    /// `palisade_response_divergences_total` counter); the response leaves unchanged.
    Shadow,
    /// Properties the schema does not declare are removed (and reported); a response still
    /// invalid after that is replaced by a 500 problem document.
    Strip,
    /// Any divergence replaces the response with a 500 problem document.
    Refuse,
}

impl ResponseCheck {
    /// A stable name: `off`, `shadow`, `strip` or `refuse`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Shadow => "shadow",
            Self::Strip => "strip",
            Self::Refuse => "refuse",
        }
    }
}

/// The property names a schema declares at each place of an instance: the union over its
/// `allOf` / `anyOf` / `oneOf` branches and `$ref` targets, read while walking the instance
/// (so a recursive or widely shared schema costs what the instance holds, not more). A place
/// is open, and nothing is removed there, when any branch admits other names
/// (`additionalProperties` other than `false`, `patternProperties`, `unevaluatedProperties`,
/// a `true` schema) or the branches are more than [`MAX_BRANCHES`].
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    /// The document the schema's `$ref`s (`#/components/...`) point into.
    doc: Arc<Value>,
    schema: Value,
}

/// Most schemas gathered for one place of an instance; past it the place is open.
const MAX_BRANCHES: usize = 64;

impl Declared {
    pub(crate) fn new(doc: Arc<Value>, schema: Value) -> Self {
        Self { doc, schema }
    }

    /// Removes from `value` the properties not declared, recording each removal's pointer.
    pub(crate) fn strip(&self, value: &mut Value, removed: &mut Vec<String>) {
        let mut at = String::new();
        strip(&[&self.schema], &self.doc, value, &mut at, removed, 0);
    }
}

/// The object schemas that apply at one place, `$ref`s and applicators flattened; `None`
/// when the place is open.
fn gather<'a>(
    schemas: &[&'a Value],
    doc: &'a Value,
) -> Option<Vec<&'a serde_json::Map<String, Value>>> {
    let mut out = Vec::new();
    let mut todo: Vec<&'a Value> = schemas.to_vec();
    while let Some(schema) = todo.pop() {
        let Value::Object(map) = schema else {
            if schema == &Value::Bool(true) {
                return None;
            }
            continue;
        };
        if out.len() + todo.len() > MAX_BRANCHES
            || map.contains_key("patternProperties")
            || map.contains_key("unevaluatedProperties")
            || map
                .get("additionalProperties")
                .is_some_and(|a| a != &Value::Bool(false))
        {
            return None;
        }
        if let Some(r) = map.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
                Some(target) => todo.push(target),
                // A reference that cannot be followed here: declare everything.
                None => return None,
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            todo.extend(map.get(key).and_then(Value::as_array).into_iter().flatten());
        }
        for key in ["then", "else"] {
            todo.extend(map.get(key));
        }
        out.push(map);
    }
    Some(out)
}

fn strip(
    schemas: &[&Value],
    doc: &Value,
    value: &mut Value,
    at: &mut String,
    removed: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 || !(value.is_object() || value.is_array()) {
        return;
    }
    let Some(maps) = gather(schemas, doc) else {
        return;
    };
    match value {
        Value::Object(members) => {
            let declared = |name: &str| {
                maps.iter()
                    .filter_map(|m| m.get("properties").and_then(Value::as_object))
                    .filter_map(|p| p.get(name))
                    .collect::<Vec<_>>()
            };
            members.retain(|name, _| {
                let keep = !declared(name).is_empty();
                if !keep {
                    removed.push(format!("{at}/{}", escape(name)));
                }
                keep
            });
            for (name, member) in members.iter_mut() {
                let len = at.len();
                at.push('/');
                at.push_str(&escape(name));
                strip(&declared(name), doc, member, at, removed, depth + 1);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            let item_schemas: Vec<&Value> = maps.iter().filter_map(|m| m.get("items")).collect();
            if item_schemas.is_empty() {
                return;
            }
            for (i, item) in items.iter_mut().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                strip(&item_schemas, doc, item, at, removed, depth + 1);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// What one status of an operation may answer with.
#[derive(Debug, Clone)]
pub(crate) struct Declaration {
    /// The JSON schema and its declared names, when the status has a JSON media type.
    json: Option<(Schema, Declared)>,
    /// The media type essences declared (empty: no content).
    media: Vec<String>,
}

impl Declaration {
    pub(crate) fn new(json: Option<(Schema, Declared)>, media: Vec<String>) -> Self {
        Self { json, media }
    }
}

/// An operation's responses: by status (`200`), range (`2XX`) or `default`.
#[derive(Debug, Clone)]
pub(crate) struct Responses {
    pub(crate) mode: ResponseCheck,
    by_status: Vec<(String, Declaration)>,
    /// The largest response body read to check it.
    pub(crate) max_bytes: usize,
}

/// The default [`Responses::max_bytes`]: 1 MiB.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A checked response: what to send and what diverged.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The body to send instead (stripped), if it changed.
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) errors: Vec<Violation>,
    /// Whether the response must be replaced by a 500.
    pub(crate) refuse: bool,
}

fn violation(pointer: String, keyword: &str, detail: String) -> Violation {
    Violation {
        part: InputPart::Response,
        pointer: pointer.into(),
        keyword: keyword.into(),
        detail: detail.into(),
    }
}

impl Responses {
    pub(crate) fn new(mode: ResponseCheck, by_status: Vec<(String, Declaration)>) -> Self {
        Self {
            mode,
            by_status,
            max_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The declaration of `status`: exact, then its range (`2XX`), then `default`.
    fn declared(&self, status: u16) -> Option<&Declaration> {
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        [exact.as_str(), range.as_str(), "default"]
            .into_iter()
            .find_map(|key| {
                self.by_status
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, d)| d)
            })
    }

    /// Whether a response of `status` and media type `essence` has a body to read and check.
    pub(crate) fn reads_body(&self, status: u16, essence: &str) -> bool {
        super::operation::is_json(essence)
            && self
                .declared(status)
                .is_some_and(|d| d.json.is_some() && d.admits(essence))
    }

    /// Checks a response of `status` with media type `essence` (empty: none) and, when it
    /// was read, `body`.
    pub(crate) fn check(
        &self,
        status: u16,
        essence: &str,
        body: Option<&[u8]>,
        max_errors: usize,
    ) -> Checked {
        let enforce = self.mode != ResponseCheck::Shadow;
        let mut out = Checked {
            body: None,
            errors: Vec::new(),
            refuse: false,
        };
        // One divergence that settles it: the response as a whole is not what was declared.
        let whole = |keyword: &str, detail: String| Checked {
            body: None,
            errors: vec![violation("#".into(), keyword, detail)],
            refuse: enforce,
        };
        let Some(declared) = self.declared(status) else {
            return whole("status", format!("the status {status} is not declared"));
        };
        if !essence.is_empty() && !declared.admits(essence) {
            return whole(
                "contentType",
                "the response's Content-Type is not declared".into(),
            );
        }
        let (Some((schema, names)), Some(body)) = (&declared.json, body) else {
            return out;
        };
        let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
            return whole("json", "the response body is not JSON".into());
        };
        let original = (self.mode != ResponseCheck::Strip).then(|| value.clone());
        let mut removed = Vec::new();
        names.strip(&mut value, &mut removed);
        for pointer in &removed {
            out.errors.push(violation(
                format!("#{pointer}"),
                "undeclared",
                "a property the operation's response does not declare".into(),
            ));
        }
        // Strip checks what it would send; the others what the handler wrote.
        let checked = original.as_ref().unwrap_or(&value);
        let invalid = schema.violations(checked, InputPart::Response, max_errors);
        if self.mode == ResponseCheck::Strip && !removed.is_empty() {
            out.body = serde_json::to_vec(&value).ok();
        }
        out.refuse = match self.mode {
            ResponseCheck::Shadow | ResponseCheck::Off => false,
            ResponseCheck::Strip => !invalid.is_empty(),
            ResponseCheck::Refuse => !invalid.is_empty() || !removed.is_empty(),
        };
        out.errors.extend(invalid);
        out.errors.truncate(max_errors);
        out
    }
}

impl Declaration {
    /// Whether the declared media types admit `essence` (none declared: anything).
    fn admits(&self, essence: &str) -> bool {
        self.media.is_empty()
            || self
                .media
                .iter()
                .any(|m| super::operation::media_matches(m, essence))
    }
}

/// Reads the body when it is to be checked, and checks: the verdict and the body to send on.
async fn read_and_check<B>(
    rules: &Responses,
    status: u16,
    essence: &str,
    body: B,
    max_errors: usize,
) -> (Checked, ResponseBody<B>)
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    if !rules.reads_body(status, essence) {
        return (
            rules.check(status, essence, None, max_errors),
            ResponseBody::inner(body),
        );
    }
    if body
        .size_hint()
        .upper()
        .is_some_and(|n| n > rules.max_bytes as u64)
    {
        let mut checked = rules.check(status, essence, None, max_errors);
        checked.errors.push(violation(
            "#".into(),
            "maxResponseBytes",
            format!(
                "the body is larger than {} bytes and was not checked",
                rules.max_bytes
            ),
        ));
        checked.refuse |= rules.mode != ResponseCheck::Shadow;
        return (checked, ResponseBody::inner(body));
    }
    match Limited::new(body, rules.max_bytes).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let checked = rules.check(status, essence, Some(&bytes), max_errors);
            (checked, ResponseBody::refused(Full::new(bytes)))
        }
        Err(_) => {
            // Read in part and no further: the response cannot be sent as it was.
            let checked = Checked {
                body: None,
                errors: vec![violation(
                    "#".into(),
                    "maxResponseBytes",
                    format!(
                        "the body is larger than {} bytes, or unreadable",
                        rules.max_bytes
                    ),
                )],
                refuse: true,
            };
            (checked, ResponseBody::refused(Full::new(Bytes::new())))
        }
    }
}

/// The handler's `response` checked against `rules`: sent as it is, stripped, or replaced by
/// a 500 problem document (in the request's refusal `format`), with a [`ResponseDivergence`]
/// in its extensions for the audit event whenever something diverged.
///
/// Only a JSON body whose status declares a JSON schema is read, up to the rules' limit; a
/// body announced larger (by its size hint) is not read and the divergence says so.
pub(crate) async fn checked<B>(
    response: http::Response<B>,
    rules: &Responses,
    max_errors: usize,
    format: Option<crate::rejection::Formatter>,
    names: crate::telemetry::RequestNames,
) -> http::Response<ResponseBody<B>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    let essence = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(super::operation::essence)
        .unwrap_or_default();
    let (checked, body) = read_and_check(rules, status, &essence, body, max_errors).await;
    if checked.errors.is_empty() {
        return http::Response::from_parts(parts, body);
    }
    let action = if checked.refuse {
        "refused"
    } else if checked.body.is_some() {
        "stripped"
    } else {
        "reported"
    };
    tracing::warn!(
        target: "palisade::validate",
        status,
        action,
        errors = checked.errors.len(),
        "a response breaks what its operation declares"
    );
    crate::telemetry::response_divergence(action);
    let divergence = ResponseDivergence {
        mode: rules.mode.name(),
        action,
        status,
        errors: checked.errors.into(),
    };
    if checked.refuse {
        let mut ext = http::Extensions::new();
        if let Some(f) = format {
            ext.insert(f);
        }
        let refusal = Rejection::Invalid(InvalidInput::new(
            InvalidReason::InvalidResponse,
            Vec::new(),
        ));
        let mut res = crate::body::refusal(
            "validate",
            &refusal,
            crate::telemetry::DecisionTrace::start_for("validate", &names),
            &ext,
        );
        res.extensions_mut().insert(divergence);
        return res;
    }
    let body = match checked.body {
        Some(stripped) => {
            // Without one (a map already at `http`'s size limit), the length goes by the
            // body's own size hint.
            let _ = parts
                .headers
                .try_insert(CONTENT_LENGTH, HeaderValue::from(stripped.len()));
            ResponseBody::refused(Full::new(Bytes::from(stripped)))
        }
        None => body,
    };
    parts.extensions.insert(divergence);
    http::Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stripped(doc: Value, schema: Value, mut value: Value) -> (Value, Vec<String>) {
        let mut removed = Vec::new();
        Declared::new(Arc::new(doc), schema).strip(&mut value, &mut removed);
        (value, removed)
    }

    #[test]
    fn owasp_api3_declared_names_are_the_union_of_branches_and_refs() {
        let doc = json!({"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}});
        let schema = json!({
            "allOf": [{"$ref": "#/Pet"}, {"properties": {"owner": {
                "type": "object", "properties": {"id": {"type": "integer"}}}}}]
        });
        let value = json!({"name": "rex", "owner": {"id": 1, "ssn": "x"}, "password_hash": "h"});
        let (value, removed) = stripped(doc, schema, value);
        assert_eq!(value, json!({"name": "rex", "owner": {"id": 1}}));
        assert_eq!(removed, ["/password_hash", "/owner/ssn"]);
    }

    #[test]
    fn open_schemas_and_arrays_are_walked_as_declared() {
        let schema = json!({"type": "array", "items": {"type": "object",
            "properties": {"id": {"type": "integer"},
                           "meta": {"type": "object", "additionalProperties": true}}}});
        let (value, removed) = stripped(
            json!({}),
            schema,
            json!([{"id": 1, "meta": {"any": 1}, "x": 2}]),
        );
        assert_eq!(value, json!([{"id": 1, "meta": {"any": 1}}]));
        assert_eq!(removed, ["/0/x"]);
    }

    #[test]
    fn a_recursive_schema_costs_what_the_instance_holds() {
        let doc = json!({"Node": {"type": "object", "properties": {"next": {"$ref": "#/Node"}}}});
        let (_, removed) = stripped(
            doc,
            json!({"$ref": "#/Node"}),
            json!({"next": {"next": {"extra": 1}}}),
        );
        assert_eq!(removed, ["/next/next/extra"]);
    }
}

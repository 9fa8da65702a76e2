//! The checks of a request against an [`Operation`]: parameters, content type, body.

use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use serde_json::{Map, Value};

use super::{BodyKind, FORM, Operation, Refusal, essence, is_json};
use crate::rejection::{InputPart, InvalidInput, InvalidReason, Violation};

/// The headers a request may send once only, checked before the body is read.
const SINGLETONS: &[http::HeaderName] = &[CONTENT_TYPE, CONTENT_LENGTH, HOST, AUTHORIZATION];
use crate::validate::params::{self, Location};
use crate::validate::strings;
use crate::validate::tape::{BuildError, Tape};

impl Operation {
    /// The fused body path over `bytes` (a JSON body of `kind`, not yet checked): the
    /// handler's `T` when it accepted them, `Some(None)` when it gave up; `None` when it does
    /// not apply (no type learned yet, deny patterns, not JSON) or has stopped trying.
    pub(crate) fn fused(
        &self,
        kind: &BodyKind,
        bytes: &[u8],
    ) -> Option<Option<crate::validate::fused::Prebuilt>> {
        // Deny patterns are matched by path, which the fused pass does not keep.
        if !kind.json || kind.form || !self.deny.is_empty() || bytes.is_empty() {
            return None;
        }
        let plan = match &kind.schema {
            Some(schema) => schema.plan(),
            None => &self.any_plan,
        };
        self.slot.run(plan, &self.limits, bytes)
    }

    /// The operation's slot (for the extractor to record its type in).
    pub(crate) fn slot(&self) -> &std::sync::Arc<crate::validate::fused::Slot> {
        &self.slot
    }

    /// Checks the parameters; returns the coerced query object (for the extractor).
    pub(crate) fn check_params<'a>(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        path: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Map<String, Value>>, Refusal> {
        // The string guards first, with or without a schema: every query name and value and
        // every path parameter, decoded, within the length limit, UTF-8, and free of control
        // characters (OWASP Input Validation: canonicalise, then check).
        let mut errors = match query {
            Some(q) => strings::check_query(
                q,
                |name| self.limits_for(InputPart::Query, name),
                self.max_errors,
            ),
            None => Vec::new(),
        };
        // Kept for the path schema only, when there is one.
        let mut path_params = Vec::new();
        for (name, raw) in path {
            let limits = self.limits_for(InputPart::Path, name);
            match strings::check_param(InputPart::Path, name, raw, limits) {
                Ok(()) if self.path.is_some() => path_params.push((name, raw)),
                Ok(()) => {}
                Err(v) => errors.push(v),
            }
        }
        if !errors.is_empty() {
            errors.truncate(self.max_errors);
            return Err((InvalidReason::HostileInput, errors));
        }
        let coerced_query = self.query.as_ref().map(|rules| {
            let pairs = params::query_pairs(query.unwrap_or(""));
            rules.check(pairs, Location::Query, self.max_errors, &mut errors)
        });
        if let Some(rules) = &self.headers {
            // A header that is not visible ASCII is left out, and then fails `required` or its
            // pattern like a missing one.
            let pairs = headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
            rules.check(pairs, Location::Header, self.max_errors, &mut errors);
        }
        if let Some(rules) = &self.path {
            let pairs = path_params.into_iter();
            rules.check(pairs, Location::Path, self.max_errors, &mut errors);
        }
        if let Some(rules) = &self.cookies {
            let pairs = headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(params::cookie_pairs);
            rules.check(pairs, Location::Cookie, self.max_errors, &mut errors);
        }
        if errors.is_empty() {
            Ok(coerced_query)
        } else {
            errors.truncate(self.max_errors);
            Err((InvalidReason::InvalidParameter, errors))
        }
    }

    /// The content type's verdict: `Ok(Some(json))` if the body is to be read (and whether it
    /// is JSON), `Ok(None)` if there is no body to check.
    pub(crate) fn check_content_type(
        &self,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<Option<BodyKind>, Refusal> {
        // RFC 9110 §5.3: a field that is not a list appears once; two `Content-Type` lines
        // would let palisade read one and a reader behind it the other.
        if let Some(refusal) = InvalidInput::duplicate_header(headers, SINGLETONS) {
            return Err((refusal.reason(), refusal.errors().to_vec()));
        }
        // RFC 9110 §8.4, §15.5.16: a coding the operation does not decode is refused, so a
        // body labelled `gzip` is never checked as if it were plain (nor plain JSON as if gzip).
        let coding = if has_body {
            match crate::validate::decode::content_coding(headers) {
                Ok(None) => None,
                Ok(Some(c)) if self.decoding().is_some_and(|d| d.accepts(c)) => Some(c),
                _ => {
                    return Err((
                        InvalidReason::UnsupportedEncoding,
                        vec![header_violation(
                            "content-encoding",
                            "contentEncoding",
                            "this operation does not accept a body in this content coding",
                        )],
                    ));
                }
            }
        } else {
            None
        };
        let Some(value) = headers.get(CONTENT_TYPE) else {
            if !has_body {
                return if self.body_required {
                    Err(body_missing())
                } else {
                    Ok(None)
                };
            }
            return Err(unsupported("the request has a body but no Content-Type"));
        };
        let e = essence(value.to_str().unwrap_or(""));
        if !self.media.iter().any(|m| m.matches(&e)) {
            return Err(unsupported("this Content-Type is not accepted"));
        }
        let schema = self
            .bodies
            .iter()
            .find(|(m, _)| m.matches(&e))
            .and_then(|(_, s)| s.clone());
        Ok(Some(BodyKind {
            coding,
            json: is_json(&e),
            form: e == FORM && self.form.is_some(),
            schema,
        }))
    }

    /// Checks a read body: parse within the limits, string guards, schema. Returns the parsed
    /// body of JSON and forms.
    pub(crate) fn check_body(
        &self,
        kind: &BodyKind,
        bytes: &[u8],
    ) -> Result<Option<Tape>, Refusal> {
        // An empty form is still a form (`{}`, which its schema may refuse); only for other
        // media types is an empty body the absent one.
        if bytes.is_empty() && !kind.form {
            if self.body_required {
                return Err(body_missing());
            }
            return Ok(None);
        }
        if kind.form {
            return self.check_form(bytes).map(|v| Some(Tape::from_value(&v)));
        }
        if !kind.json {
            return Ok(None);
        }
        // UTF-8 checked once over the whole body (fast), then parsed from `str`, which spares
        // the parser a check per string.
        let text = std::str::from_utf8(bytes).map_err(|e| {
            (
                InvalidReason::MalformedBody,
                vec![Violation {
                    part: InputPart::Body,
                    pointer: "#".into(),
                    keyword: "json".into(),
                    detail: format!("the body is not UTF-8 ({e})").into(),
                }],
            )
        })?;
        let tape = Tape::parse(text, &self.limits).map_err(|e| {
            let body = |keyword: &str, detail: String| Violation {
                part: InputPart::Body,
                pointer: "#".into(),
                keyword: keyword.into(),
                detail: detail.into(),
            };
            match e {
                // serde_json's message names the line and column, never the input.
                BuildError::Syntax(e) => (InvalidReason::MalformedBody, vec![body("json", e)]),
                // Over a limit, or a member named twice (its message quotes the name, which
                // the client sent): hostile input, 422.
                BuildError::Limit(keyword, detail) => {
                    (InvalidReason::HostileInput, vec![body(keyword, detail)])
                }
                BuildError::Duplicate(e) => {
                    (InvalidReason::HostileInput, vec![body("uniqueKeys", e)])
                }
            }
        })?;
        let hostile = strings::check_tape(&tape, bytes, &self.limits, &self.deny, self.max_errors);
        if !hostile.is_empty() {
            return Err((InvalidReason::HostileInput, hostile));
        }
        if let Some(schema) = &kind.schema {
            let errors = schema.violations_at(tape.root(), InputPart::Body, self.max_errors);
            if !errors.is_empty() {
                return Err((InvalidReason::SchemaViolation, errors));
            }
        }
        Ok(Some(tape))
    }
}

impl Operation {
    /// Checks a form body: UTF-8, the string guards on every name and value, at most
    /// `max_members` fields, then the form schema over the coerced object.
    fn check_form(&self, bytes: &[u8]) -> Result<Value, Refusal> {
        let body = |keyword: &str, detail: String| Violation {
            part: InputPart::Body,
            pointer: "#".into(),
            keyword: keyword.into(),
            detail: detail.into(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            (
                InvalidReason::MalformedBody,
                vec![body("form", "the form body is not UTF-8".into())],
            )
        })?;
        if params::query_pairs(text)
            .nth(self.limits.max_members)
            .is_some()
        {
            return Err((
                InvalidReason::HostileInput,
                vec![body(
                    "maxMembers",
                    format!("the form has more than {} fields", self.limits.max_members),
                )],
            ));
        }
        let mut hostile = strings::check_query(text, |_| &self.limits, self.max_errors);
        if !hostile.is_empty() {
            for v in &mut hostile {
                v.part = InputPart::Body;
            }
            return Err((InvalidReason::HostileInput, hostile));
        }
        let Some(rules) = &self.form else {
            return Ok(Value::Null);
        };
        let value = Value::Object(params::object(
            params::query_pairs(text),
            &rules.shapes,
            Location::Query,
        ));
        let errors = rules
            .schema
            .violations(&value, InputPart::Body, self.max_errors);
        if errors.is_empty() {
            Ok(value)
        } else {
            Err((InvalidReason::SchemaViolation, errors))
        }
    }
}

fn unsupported(detail: &str) -> Refusal {
    (
        InvalidReason::UnsupportedMediaType,
        vec![header_violation("content-type", "contentType", detail)],
    )
}

/// A violation of the header `name`.
fn header_violation(name: &str, keyword: &str, detail: &str) -> Violation {
    Violation {
        part: InputPart::Header,
        pointer: format!("#/{name}").into(),
        keyword: keyword.into(),
        detail: detail.into(),
    }
}

/// The refusal of a request without the body its operation requires.
fn body_missing() -> Refusal {
    (
        InvalidReason::SchemaViolation,
        vec![Violation {
            part: InputPart::Body,
            pointer: "#".into(),
            keyword: "required".into(),
            detail: "a request body is required".into(),
        }],
    )
}

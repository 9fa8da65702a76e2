//! Query-string, header, path and cookie parameters as a JSON object, with each value coerced
//! to the type its schema asks for (`?limit=10` is the integer 10), ready for the parameters'
//! schema. Arrays and objects are read in the OpenAPI serialization styles: `form` (repeated
//! keys, or comma-separated with `explode: false`), `spaceDelimited`, `pipeDelimited`,
//! `deepObject` (`?filter[color]=red`), and `simple` (comma-separated) for headers and paths.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::rejection::InputPart;

/// The JSON type a parameter's schema asks for, read from its `type` (or, for an array, its
/// `items.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
}

/// Where parameters come from, which sets their default style and how they are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// Form-encoded (`+` is a space), style `form` by default.
    Query,
    /// Taken as sent, style `simple`.
    Header,
    /// Percent-encoded, style `simple`.
    Path,
    /// Taken as sent, style `form`.
    Cookie,
}

impl Location {
    /// The part of the request a refusal names.
    pub(crate) fn part(self) -> InputPart {
        match self {
            Self::Query => InputPart::Query,
            Self::Header => InputPart::Header,
            Self::Path => InputPart::Path,
            Self::Cookie => InputPart::Cookie,
        }
    }
}

/// An OpenAPI serialization style (OpenAPI 3.1 §4.8.12.4, "Style Values").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
    Simple,
    /// Path only: `.blue`, `.blue,black` (`.blue.black` exploded), `.R,100` (`.R=100`).
    Label,
    /// Path only: `;color=blue`, `;color=blue,black` (`;color=blue;color=black` exploded),
    /// `;color=R,100` (`;R=100` exploded).
    Matrix,
}

impl Style {
    /// A style name, or `None` for one OpenAPI does not define.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "form" => Self::Form,
            "spaceDelimited" => Self::SpaceDelimited,
            "pipeDelimited" => Self::PipeDelimited,
            "deepObject" => Self::DeepObject,
            "simple" => Self::Simple,
            "label" => Self::Label,
            "matrix" => Self::Matrix,
            _ => return None,
        })
    }

    fn default_for(location: Location) -> Self {
        match location {
            Location::Query | Location::Cookie => Self::Form,
            Location::Header | Location::Path => Self::Simple,
        }
    }
}

/// How one parameter is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamShape {
    pub(crate) name: Box<str>,
    pub(crate) scalar: Scalar,
    pub(crate) array: bool,
    /// Whether the parameter is an object (read from one value in `simple` style, or `form`
    /// without `explode`).
    pub(crate) object: bool,
    pub(crate) style: Style,
    /// Whether an array comes as repeated keys (`form` with `explode`, the query default)
    /// rather than as one delimited value.
    pub(crate) explode: bool,
    /// For `deepObject`: the types of the object's properties.
    pub(crate) fields: Vec<(Box<str>, Scalar)>,
}

fn scalar_of(t: Option<&Value>) -> Scalar {
    let names: Vec<&str> = match t {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    // The first non-null type decides ("type": ["integer", "null"] reads integers).
    match names.into_iter().find(|n| *n != "null") {
        Some("integer") => Scalar::Integer,
        Some("number") => Scalar::Number,
        Some("boolean") => Scalar::Boolean,
        _ => Scalar::String,
    }
}

/// The shapes of the properties of an object schema (`properties.*.type`, and the OpenAPI
/// `style` and `explode` keywords beside them, which JSON Schema ignores).
pub(crate) fn shapes(object_schema: &Value, location: Location) -> Vec<ParamShape> {
    shapes_resolved(object_schema, location, |s| s)
}

/// Like [`shapes`], reading a property that has no `type` of its own through `resolve` (which
/// follows its `$ref`).
pub(crate) fn shapes_resolved<'a>(
    object_schema: &'a Value,
    location: Location,
    resolve: impl Fn(&'a Value) -> &'a Value,
) -> Vec<ParamShape> {
    let Some(props) = object_schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    // A schema with a `type`, or its `$ref`'s target.
    let typed = |v: &'a Value| {
        if v.get("type").is_some() {
            v
        } else {
            resolve(v)
        }
    };
    props
        .iter()
        .map(|(name, s)| {
            // `style` / `explode` sit beside the `$ref`; the type may come from its target.
            let typed_s = typed(s);
            let array = typed_s.get("type").and_then(Value::as_str) == Some("array");
            let object = typed_s.get("type").and_then(Value::as_str) == Some("object");
            let scalar = if array {
                scalar_of(typed_s.get("items").map(typed).and_then(|i| i.get("type")))
            } else {
                scalar_of(typed_s.get("type"))
            };
            let style = s
                .get("style")
                .and_then(Value::as_str)
                .and_then(Style::parse)
                .unwrap_or(Style::default_for(location));
            let explode = s
                .get("explode")
                .and_then(Value::as_bool)
                .unwrap_or(style == Style::Form);
            let fields = typed_s
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.as_str().into(), scalar_of(typed(v).get("type"))))
                        .collect()
                })
                .unwrap_or_default();
            ParamShape {
                name: name.as_str().into(),
                scalar,
                array,
                object,
                style,
                explode,
                fields,
            }
        })
        .collect()
}

/// `raw` as the scalar asked for, or as a string when it does not read as one (the schema
/// then names the type error).
fn coerce(raw: &str, scalar: Scalar) -> Value {
    match scalar {
        Scalar::String => Value::String(raw.to_owned()),
        // An integer parameter is an integer literal: `2.0` and `1e2` stay strings (refused),
        // so that what passes is what the handler's own integer parse (`Path<u64>`) reads.
        Scalar::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<u64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Scalar::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(raw.to_owned()), Value::Number),
        Scalar::Boolean => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
    }
}

/// Decodes a name or value as sent from `location`: form decoding for the query, percent
/// decoding for a path, nothing for headers and cookies. Invalid UTF-8 is replaced (the string
/// guards refused it before this runs).
fn decode(raw: &str, location: Location) -> Cow<'_, str> {
    match location {
        Location::Query if raw.contains(['+', '%']) => Cow::Owned(
            percent_encoding::percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned(),
        ),
        Location::Path => percent_encoding::percent_decode_str(raw).decode_utf8_lossy(),
        _ => Cow::Borrowed(raw),
    }
}

/// The delimiters of a non-exploded array in `style`, as sent (a delimiter percent-encoded in
/// an item, such as `%2C`, stays in the item).
fn delimiters(style: Style) -> &'static [&'static str] {
    match style {
        Style::SpaceDelimited => &["%20", "+", " "],
        Style::PipeDelimited => &["|", "%7C", "%7c"],
        Style::Form | Style::Simple | Style::DeepObject | Style::Label | Style::Matrix => &[","],
    }
}

/// Splits `raw` at any of `delims`.
fn split_raw<'a>(raw: &'a str, delims: &'static [&'static str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < raw.len() {
        if let Some(d) = delims.iter().find(|d| raw[i..].starts_with(**d)) {
            out.push(&raw[start..i]);
            i += d.len();
            start = i;
        } else {
            i += raw[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push(&raw[start..]);
    out
}

/// Adds `value` under `key`: a repeated key (or an array parameter) becomes an array.
fn merge(out: &mut Map<String, Value>, key: Cow<'_, str>, value: Value, array: bool) {
    match out.get_mut(&*key) {
        Some(Value::Array(items)) if array || items.len() > 1 => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None if array => {
            out.insert(key.into_owned(), Value::Array(vec![value]));
        }
        None => {
            out.insert(key.into_owned(), value);
        }
    }
}

/// Builds the object of parameters from `(name, value)` pairs as sent from `location`: values
/// of a known parameter are decoded and coerced in its style; unknown names are kept as
/// strings, for the schema's `additionalProperties` to judge.
pub(crate) fn object<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    shapes: &[ParamShape],
    location: Location,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (raw_name, raw_value) in pairs {
        let name = decode(raw_name, location);
        if deep_member(&mut out, &name, raw_value, shapes, location) {
            continue;
        }
        let shape = shapes.iter().find(|s| *s.name == *name);
        if let Some(s) = shape.filter(|s| matches!(s.style, Style::Label | Style::Matrix)) {
            // A value without its prefix (`.`, `;name=`) is left out, and then fails
            // `required` like a missing one.
            if let Some(value) = prefixed(raw_value, s, location) {
                out.insert(name.into_owned(), value);
            }
            continue;
        }
        match shape {
            // An empty value of a delimited array is the empty array (OpenAPI 3.1 §4.8.12.4,
            // Style Examples: `color=` for `[]`), never `[""]`. Exploded, an empty array is no
            // pair at all, so `color=` is one empty item.
            Some(s) if s.array && !s.explode && raw_value.is_empty() => {
                out.entry(name.into_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
            }
            // An object in one value (OpenAPI 3.1 §4.8.12.4): `R,100,G,200` (`simple`, or
            // `form` without `explode`) or `R=100,G=200` (`simple` with `explode`).
            Some(s)
                if s.object
                    && s.style != Style::DeepObject
                    && !(s.style == Style::Form && s.explode) =>
            {
                let members = object_members(raw_value, s, location);
                out.insert(name.into_owned(), Value::Object(members));
            }
            // An exploded form object sent under its own name (`object=R=100,G=200`, as
            // some clients write a cookie) reads as the named members it spells.
            Some(s) if s.object && s.style == Style::Form => {
                let items = split_raw(raw_value, &[","]);
                let members = members(&items, true, s, location);
                out.insert(name.into_owned(), Value::Object(members));
            }
            Some(s) if s.array && !(s.style == Style::Form && s.explode) => {
                for item in split_raw(raw_value, delimiters(s.style)) {
                    merge(
                        &mut out,
                        name.clone(),
                        coerce(&decode(item, location), s.scalar),
                        true,
                    );
                }
            }
            _ => {
                let scalar = shape.map_or(Scalar::String, |s| s.scalar);
                let value = coerce(&decode(raw_value, location), scalar);
                merge(&mut out, name, value, shape.is_some_and(|s| s.array));
            }
        }
    }
    gather_exploded(&mut out, shapes);
    out
}

/// deepObject: `filter[color]=red` is the member `color` of the object `filter`. Whether
/// `name` was one.
fn deep_member(
    out: &mut Map<String, Value>,
    name: &str,
    raw_value: &str,
    shapes: &[ParamShape],
    location: Location,
) -> bool {
    if let Some((base, member)) = name
        .strip_suffix(']')
        .and_then(|n| n.split_once('['))
        .filter(|(base, _)| {
            shapes
                .iter()
                .any(|s| *s.name == **base && s.style == Style::DeepObject)
        })
    {
        let shape = shapes.iter().find(|s| *s.name == *base);
        let scalar = shape
            .and_then(|s| s.fields.iter().find(|(f, _)| **f == *member))
            .map_or(Scalar::String, |(_, t)| *t);
        let value = coerce(&decode(raw_value, location), scalar);
        let entry = out
            .entry(base.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(members) = entry {
            merge(members, Cow::Borrowed(member), value, false);
        }
        return true;
    }
    false
}

/// An object in `form` style with `explode` (the query's default) is sent as its members
/// (`?R=100&G=200` for `color: {R: 100, G: 200}`): the members named by its properties are
/// gathered back under its name and coerced to their types.
fn gather_exploded(out: &mut Map<String, Value>, shapes: &[ParamShape]) {
    for s in shapes {
        if !(s.object && s.style == Style::Form && s.explode) || out.contains_key(&*s.name) {
            continue;
        }
        let mut members = Map::new();
        for (field, scalar) in &s.fields {
            if let Some(value) = out.remove(&**field) {
                let value = match value {
                    Value::String(raw) => coerce(&raw, *scalar),
                    other => other,
                };
                members.insert(field.to_string(), value);
            }
        }
        if !members.is_empty() {
            out.insert(s.name.to_string(), Value::Object(members));
        }
    }
}

/// A `label` or `matrix` path value (OpenAPI 3.1 §4.8.12.4, after RFC 6570 §3.2.5 and
/// §3.2.7), or `None` when it lacks its prefix.
fn prefixed(raw: &str, shape: &ParamShape, location: Location) -> Option<Value> {
    let (rest, sep) = if shape.style == Style::Label {
        (raw.strip_prefix('.')?, ".")
    } else {
        let rest = raw.strip_prefix(';')?;
        // `;R=100;G=200`: an exploded object names its members, not itself.
        if shape.object && shape.explode {
            (rest, ";")
        } else {
            let rest = rest.strip_prefix(&*shape.name)?;
            match rest.strip_prefix('=') {
                Some(value) => (value, ";"),
                None if rest.is_empty() => ("", ";"),
                None => return None,
            }
        }
    };
    let coerce_item = |item: &str| coerce(&decode(item, location), shape.scalar);
    if shape.object {
        let items = if shape.explode {
            split_raw(rest, if sep == "." { &["."] } else { &[";"] })
        } else {
            split_raw(rest, &[","])
        };
        return Some(Value::Object(members(
            &items,
            shape.explode,
            shape,
            location,
        )));
    }
    if !shape.array {
        return Some(coerce_item(rest));
    }
    if rest.is_empty() {
        return Some(Value::Array(Vec::new()));
    }
    let items = if !shape.explode {
        split_raw(rest, &[","])
    } else if shape.style == Style::Label {
        split_raw(rest, &["."])
    } else {
        // `;color=blue;color=black`: each item repeats the name.
        let again = format!(";{}=", shape.name);
        rest.split(again.as_str()).collect()
    };
    Some(Value::Array(items.into_iter().map(coerce_item).collect()))
}

/// The members of an object parameter sent in one value, each coerced to its property's type.
fn object_members(raw: &str, shape: &ParamShape, location: Location) -> Map<String, Value> {
    if raw.is_empty() {
        return Map::new();
    }
    let items = split_raw(raw, delimiters(shape.style));
    let named = shape.style == Style::Simple && shape.explode;
    members(&items, named, shape, location)
}

/// An object's members from its items: `k=v` each when `named`, else `k, v` in turn.
fn members(
    items: &[&str],
    named: bool,
    shape: &ParamShape,
    location: Location,
) -> Map<String, Value> {
    let scalar_of_member = |name: &str| {
        shape
            .fields
            .iter()
            .find(|(f, _)| **f == *name)
            .map_or(Scalar::String, |(_, t)| *t)
    };
    let mut members = Map::new();
    if items.iter().all(|i| i.is_empty()) {
        return members;
    }
    let mut add = |key: &str, value: &str| {
        let key = decode(key, location).into_owned();
        let value = coerce(&decode(value, location), scalar_of_member(&key));
        members.insert(key, value);
    };
    if named {
        for item in items {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            add(k, v);
        }
    } else {
        for pair in items.chunks(2) {
            add(pair[0], pair.get(1).copied().unwrap_or(""));
        }
    }
    members
}

/// The query string's pairs, as sent (`a=1&b` is `(a, 1), (b, "")`).
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// The `Cookie` header's pairs (RFC 6265 §4.2.1: `a=1; b=2`), as sent.
pub(crate) fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "limit": {"type": "integer"}, "ratio": {"type": "number"},
            "draft": {"type": "boolean"}, "tag": {"type": "array", "items": {"type": "string"}},
            "id": {"type": "array", "items": {"type": "integer"}}, "q": {"type": "string"}
        }})
    }

    #[test]
    fn values_are_coerced_to_their_schema_types() {
        let shapes = shapes(&schema(), Location::Query);
        let o = object(
            query_pairs("limit=10&ratio=0.5&draft=true&tag=a&q=x%20y+z&id=1&id=2&other=3"),
            &shapes,
            Location::Query,
        );
        assert_eq!(
            Value::Object(o),
            json!({"limit": 10, "ratio": 0.5, "draft": true, "tag": ["a"], "q": "x y z",
                   "id": [1, 2], "other": "3"})
        );
    }

    #[test]
    fn values_that_do_not_read_stay_strings_for_the_schema_to_refuse() {
        let o = object(
            query_pairs("limit=abc&draft=yes"),
            &shapes(&schema(), Location::Query),
            Location::Query,
        );
        assert_eq!(Value::Object(o), json!({"limit": "abc", "draft": "yes"}));
    }

    #[test]
    fn repeated_scalar_keys_become_arrays() {
        let o = object(
            query_pairs("q=a&q=b&q=c"),
            &shapes(&schema(), Location::Query),
            Location::Query,
        );
        assert_eq!(Value::Object(o), json!({"q": ["a", "b", "c"]}));
    }

    fn styled() -> Value {
        json!({"type": "object", "properties": {
            "csv": {"type": "array", "items": {"type": "integer"}, "explode": false},
            "pipes": {"type": "array", "items": {"type": "integer"}, "style": "pipeDelimited"},
            "spaces": {"type": "array", "items": {"type": "string"}, "style": "spaceDelimited"},
            "f": {"type": "object", "style": "deepObject",
                  "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}}
        }})
    }

    #[test]
    fn openapi_3_1_4_8_12_4_an_empty_delimited_array_is_empty_and_an_exploded_one_holds_one_empty_item()
     {
        let query = shapes(&styled(), Location::Query);
        let o = object(query_pairs("csv=&pipes=&spaces="), &query, Location::Query);
        assert_eq!(
            Value::Object(o),
            json!({"csv": [], "pipes": [], "spaces": []})
        );
        let exploded = shapes(&schema(), Location::Query);
        // Exploded, an empty array is no pair at all: `tag=` is one empty item.
        let o = object(query_pairs("tag="), &exploded, Location::Query);
        assert_eq!(Value::Object(o), json!({"tag": [""]}));
        // A value after all: the array holds it.
        let o = object(query_pairs("csv=&csv=3"), &query, Location::Query);
        assert_eq!(Value::Object(o), json!({"csv": [3]}));
    }

    fn path_styles(style: &str, explode: bool) -> Vec<ParamShape> {
        shapes(
            &json!({"type": "object", "properties": {
                "p": {"type": "integer", "style": style, "explode": explode},
                "a": {"type": "array", "items": {"type": "integer"}, "style": style, "explode": explode},
                "o": {"type": "object", "style": style, "explode": explode,
                      "properties": {"R": {"type": "integer"}, "G": {"type": "integer"}}}
            }}),
            Location::Path,
        )
    }

    #[test]
    fn openapi_3_1_4_8_12_4_label_style_path_values_are_read() {
        let read = |explode, pairs: &[(&'static str, &'static str)]| {
            Value::Object(object(
                pairs.iter().copied(),
                &path_styles("label", explode),
                Location::Path,
            ))
        };
        let expected = json!({"p": 5, "a": [3, 4], "o": {"R": 100, "G": 200}});
        let flat = [("p", ".5"), ("a", ".3,4"), ("o", ".R,100,G,200")];
        assert_eq!(read(false, &flat), expected);
        let exploded = [("p", ".5"), ("a", ".3.4"), ("o", ".R=100.G=200")];
        assert_eq!(read(true, &exploded), expected);
        assert_eq!(read(false, &[("a", ".")]), json!({"a": []}));
        // Without its prefix a value is left out, and its `required` refuses it.
        assert_eq!(read(false, &[("p", "5")]), json!({}));
    }

    #[test]
    fn openapi_3_1_4_8_12_4_matrix_style_path_values_are_read() {
        let read = |explode, pairs: &[(&'static str, &'static str)]| {
            Value::Object(object(
                pairs.iter().copied(),
                &path_styles("matrix", explode),
                Location::Path,
            ))
        };
        let expected = json!({"p": 5, "a": [3, 4], "o": {"R": 100, "G": 200}});
        let flat = [("p", ";p=5"), ("a", ";a=3,4"), ("o", ";o=R,100,G,200")];
        assert_eq!(read(false, &flat), expected);
        let exploded = [("p", ";p=5"), ("a", ";a=3;a=4"), ("o", ";R=100;G=200")];
        assert_eq!(read(true, &exploded), expected);
        assert_eq!(read(false, &[("a", ";a")]), json!({"a": []}));
        // Another parameter's name is not this one's prefix.
        assert_eq!(read(false, &[("p", ";q=5")]), json!({}));
    }

    #[test]
    fn openapi_3_1_4_8_12_4_an_exploded_form_object_is_gathered_from_its_members() {
        let query = shapes(
            &json!({"type": "object", "properties": {
                "color": {"type": "object",
                          "properties": {"R": {"type": "integer"}, "G": {"type": "integer"}}},
                "q": {"type": "string"}
            }}),
            Location::Query,
        );
        let o = object(query_pairs("R=100&G=200&q=x"), &query, Location::Query);
        assert_eq!(
            Value::Object(o),
            json!({"color": {"R": 100, "G": 200}, "q": "x"})
        );
    }

    #[test]
    fn openapi_3_1_4_8_12_4_objects_in_one_value_are_read_in_simple_and_form_styles() {
        let color = |style: &str, explode: bool| {
            json!({"type": "object", "properties": {"color": {
                "type": "object", "style": style, "explode": explode,
                "properties": {"R": {"type": "integer"}, "G": {"type": "integer"}}
            }}})
        };
        let read = |schema: Value, location: Location, raw: &'static str| {
            let shapes = shapes(&schema, location);
            Value::Object(object([("color", raw)].into_iter(), &shapes, location))
        };
        let rgb = json!({"color": {"R": 100, "G": 200}});
        assert_eq!(
            read(color("simple", false), Location::Header, "R,100,G,200"),
            rgb
        );
        assert_eq!(
            read(color("simple", true), Location::Header, "R=100,G=200"),
            rgb
        );
        assert_eq!(
            read(color("simple", false), Location::Path, "R,100,G,200"),
            rgb
        );
        assert_eq!(
            read(color("form", false), Location::Query, "R,100,G,200"),
            rgb
        );
        assert_eq!(
            read(color("simple", false), Location::Header, ""),
            json!({"color": {}})
        );
    }

    #[test]
    fn openapi_styles_spell_arrays_and_objects() {
        let query = shapes(&styled(), Location::Query);
        let o = object(
            query_pairs("csv=1,2&pipes=3|4%7C5&spaces=a%20b+c&f[n]=6&f[s]=x%20y&csv=9"),
            &query,
            Location::Query,
        );
        assert_eq!(
            Value::Object(o),
            json!({"csv": [1, 2, 9], "pipes": [3, 4, 5], "spaces": ["a", "b", "c"],
                   "f": {"n": 6, "s": "x y"}})
        );
        // Headers and paths are `simple`: comma-separated.
        let h = json!({"type": "object", "properties": {"x-ids": {"type": "array", "items": {"type": "integer"}}}});
        let o = object(
            [("x-ids", "1,2,3")].into_iter(),
            &shapes(&h, Location::Header),
            Location::Header,
        );
        assert_eq!(Value::Object(o), json!({"x-ids": [1, 2, 3]}));
        let o = object(
            [("x-ids", "1%2C2,3")].into_iter(),
            &shapes(&h, Location::Path),
            Location::Path,
        );
        assert_eq!(
            Value::Object(o),
            json!({"x-ids": ["1,2", 3]}),
            "an encoded comma stays"
        );
        let o = object(cookie_pairs("a=1; b=two;c"), &[], Location::Cookie);
        assert_eq!(Value::Object(o), json!({"a": "1", "b": "two", "c": ""}));
    }

    proptest! {
        /// Integers written in each array style read back as the same integers.
        #[test]
        fn arrays_in_every_style_read_back(items in proptest::collection::vec(any::<i64>(), 1..6)) {
            let shapes = shapes(&styled(), Location::Query);
            let join = |sep: &str| items.iter().map(i64::to_string).collect::<Vec<_>>().join(sep);
            let q = format!("csv={}&pipes={}", join(","), join("|"));
            let o = object(query_pairs(&q), &shapes, Location::Query);
            prop_assert_eq!(&o["csv"], &json!(items));
            prop_assert_eq!(&o["pipes"], &json!(items));
        }

        #[test]
        fn any_query_string_makes_an_object(q in "[ -~]{0,64}") {
            let _ = object(query_pairs(&q), &shapes(&schema(), Location::Query), Location::Query);
        }
    }
}

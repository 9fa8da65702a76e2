//! Query-string and header parameters as a JSON object, with each value coerced to the type
//! its schema asks for (`?limit=10` is the integer 10, repeated keys are arrays), ready for the
//! parameters' schema.

use serde_json::{Map, Number, Value};

/// The JSON type a parameter's schema asks for, read from its `type` (or, for an array, its
/// `items.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
}

/// How one parameter is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamShape {
    pub(crate) name: Box<str>,
    pub(crate) scalar: Scalar,
    pub(crate) array: bool,
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

/// The shapes of the properties of an object schema (`properties.*.type`).
pub(crate) fn shapes(object_schema: &Value) -> Vec<ParamShape> {
    let Some(props) = object_schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, s)| {
            let array = s.get("type").and_then(Value::as_str) == Some("array");
            let scalar = if array {
                scalar_of(s.get("items").and_then(|i| i.get("type")))
            } else {
                scalar_of(s.get("type"))
            };
            ParamShape {
                name: name.as_str().into(),
                scalar,
                array,
            }
        })
        .collect()
}

/// `raw` as the scalar asked for, or as a string when it does not read as one (the schema
/// then names the type error).
fn coerce(raw: &str, scalar: Scalar) -> Value {
    match scalar {
        Scalar::String => Value::String(raw.to_owned()),
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

/// Builds the object of parameters from `(name, value)` pairs: values of a known parameter
/// are coerced; a repeated name (or an array parameter) becomes an array; unknown names are
/// kept as strings, for the schema's `additionalProperties` to judge.
pub(crate) fn object<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    shapes: &[ParamShape],
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in pairs {
        let shape = shapes.iter().find(|s| *s.name == *k);
        let scalar = shape.map_or(Scalar::String, |s| s.scalar);
        let value = coerce(&v, scalar);
        let array = shape.is_some_and(|s| s.array);
        match out.get_mut(&*k) {
            Some(Value::Array(items)) if array || items.len() > 1 => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None if array => {
                out.insert(k.into_owned(), Value::Array(vec![value]));
            }
            None => {
                out.insert(k.into_owned(), value);
            }
        }
    }
    out
}

/// The query string's pairs, percent-decoded (`+` is a space).
pub(crate) fn query_pairs(
    query: &str,
) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    form_urlencoded::parse(query.as_bytes())
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
        let shapes = shapes(&schema());
        let o = object(
            query_pairs("limit=10&ratio=0.5&draft=true&tag=a&q=x%20y+z&id=1&id=2&other=3"),
            &shapes,
        );
        assert_eq!(
            Value::Object(o),
            json!({"limit": 10, "ratio": 0.5, "draft": true, "tag": ["a"], "q": "x y z",
                   "id": [1, 2], "other": "3"})
        );
    }

    #[test]
    fn values_that_do_not_read_stay_strings_for_the_schema_to_refuse() {
        let o = object(query_pairs("limit=abc&draft=yes"), &shapes(&schema()));
        assert_eq!(Value::Object(o), json!({"limit": "abc", "draft": "yes"}));
    }

    #[test]
    fn repeated_scalar_keys_become_arrays() {
        let o = object(query_pairs("q=a&q=b&q=c"), &shapes(&schema()));
        assert_eq!(Value::Object(o), json!({"q": ["a", "b", "c"]}));
    }

    proptest! {
        #[test]
        fn any_query_string_makes_an_object(q in "[ -~]{0,64}") {
            let _ = object(query_pairs(&q), &shapes(&schema()));
        }
    }
}

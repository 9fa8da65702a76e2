//! What an OpenAPI document means beyond JSON Schema, made into schema: the ranges of the
//! integer and number formats, and ECMA-262 patterns that the regex engine would refuse.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

/// The inclusive range of each OpenAPI format (OpenAPI 3.1 §4.2 Data Types; the JSON Schema
/// `format` alone only annotates).
fn format_range(format: &str) -> Option<(Value, Value)> {
    Some(match format {
        "int32" => (json!(i32::MIN), json!(i32::MAX)),
        "int64" => (json!(i64::MIN), json!(i64::MAX)),
        "float" => (json!(-f64::from(f32::MAX)), json!(f64::from(f32::MAX))),
        _ => return None,
    })
}

/// Walks `doc` and, in every schema, bounds numbers by their `format` and rewrites patterns
/// into the regex engine's syntax. Instance data (`example`, `examples`, `default`, `const`,
/// `enum`) is left alone.
pub(super) fn harden(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            bound_by_format(map);
            select_by_discriminator(map);
            if let Some(Value::String(p)) = map.get_mut("pattern")
                && let Cow::Owned(rewritten) = ecma_pattern(p)
            {
                *p = rewritten;
            }
            for (key, value) in map.iter_mut() {
                if !matches!(
                    key.as_str(),
                    "example" | "examples" | "default" | "const" | "enum"
                ) {
                    harden(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(harden),
        _ => {}
    }
}

/// A `oneOf` (or `anyOf`) of `$ref`s with a `discriminator` (OpenAPI 3.1 §4.8.25) becomes a
/// choice by the property's value: the value must name one of the schemas (through `mapping`,
/// or the last segment of a `$ref`), and the body is checked against that schema alone. A
/// plain `oneOf` would refuse a valid Cat that happens to be a valid Dog too, and report
/// every branch's errors for an invalid one.
fn select_by_discriminator(schema: &mut Map<String, Value>) {
    let Some(property) = schema
        .get("discriminator")
        .and_then(|d| d.get("propertyName"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let key = ["oneOf", "anyOf"]
        .into_iter()
        .find(|k| schema.get(*k).is_some_and(Value::is_array));
    let Some(key) = key else { return };
    let Some(Value::Array(branches)) = schema.get(key) else {
        return;
    };
    let refs: Vec<String> = branches
        .iter()
        .filter_map(|b| b.get("$ref").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if refs.len() != branches.len() {
        return; // inline branches: nothing names them, the plain choice stays
    }
    let mapping = schema
        .get("discriminator")
        .and_then(|d| d.get("mapping"))
        .and_then(Value::as_object);
    // (value, target): the mapping's entries, then each $ref by its schema's name.
    let mut choices: Vec<(String, String)> = mapping
        .map(|m| {
            m.iter()
                .filter_map(|(v, t)| {
                    // A mapping names a schema by `$ref`, or by its name in `components`.
                    let t = t.as_str()?;
                    let target = if t.contains('/') {
                        t.to_owned()
                    } else {
                        format!("#/components/schemas/{t}")
                    };
                    Some((v.clone(), target))
                })
                .collect()
        })
        .unwrap_or_default();
    // Each schema's own name too (implicit mapping), unless a mapping uses that value.
    for r in &refs {
        let name = r.rsplit('/').next().unwrap_or(r).to_owned();
        if !choices.iter().any(|(v, _)| *v == name) {
            choices.push((name, r.clone()));
        }
    }
    let names: Vec<Value> = choices.iter().map(|(v, _)| json!(v)).collect();
    let cases: Vec<Value> = choices
        .iter()
        .map(|(value, target)| {
            json!({
                "if": {"properties": {&property: {"const": value}}, "required": [&property]},
                "then": {"$ref": target}
            })
        })
        .collect();
    schema.remove(key);
    let mut all = match schema.remove("allOf") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    all.push(json!({
        "required": [&property],
        "properties": {&property: {"enum": names}}
    }));
    all.extend(cases);
    schema.insert("allOf".into(), Value::Array(all));
}

/// Adds the range of `format` to a schema of numbers, keeping a narrower one it has.
fn bound_by_format(schema: &mut Map<String, Value>) {
    let Some((low, high)) = schema
        .get("format")
        .and_then(Value::as_str)
        .and_then(format_range)
    else {
        return;
    };
    let numeric = |t: &Value| matches!(t.as_str(), Some("integer" | "number"));
    let is_numeric = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().any(numeric),
        Some(t) => numeric(t),
        None => false,
    };
    if !is_numeric {
        return;
    }
    let (lo, hi) = (
        low.as_f64().unwrap_or(f64::MIN),
        high.as_f64().unwrap_or(f64::MAX),
    );
    let keep_low = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .is_some_and(|m| m >= lo);
    if !keep_low {
        schema.insert("minimum".into(), low);
    }
    let keep_high = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .is_some_and(|m| m <= hi);
    if !keep_high {
        schema.insert("maximum".into(), high);
    }
    if schema.get("format").and_then(Value::as_str) == Some("int64") {
        schema.insert(
            crate::validate::schema::INT64_KEYWORD.into(),
            Value::Bool(true),
        );
    }
}

/// An ECMA-262 pattern in the syntax of the regex engine: a `{` or `}` that is not part of a
/// quantifier (`{2}`, `{2,}`, `{2,5}`) is a literal in ECMA-262 (Annex B.1.2) and an error in
/// the engine, so it is escaped. Escapes and character classes are copied as they are.
pub(super) fn ecma_pattern(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains(['{', '}']) {
        return Cow::Borrowed(pattern);
    }
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 4);
    let (mut i, mut in_class) = (0, false);
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\\' => {
                // An escape and the character it escapes (which may be multi-byte).
                let next = pattern[i + 1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&pattern[i..i + 1 + next]);
                i += 1 + next;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'{' if !in_class => {
                if let Some(len) = quantifier_len(&bytes[i..]) {
                    out.push_str(&pattern[i..i + len]);
                    i += len;
                    continue;
                }
                out.push_str("\\{");
                i += 1;
                continue;
            }
            b'}' if !in_class => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        let len = pattern[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&pattern[i..i + len]);
        i += len;
    }
    Cow::Owned(out)
}

/// The length of the quantifier `{n}`, `{n,}` or `{n,m}` at the start of `bytes`, if one is.
fn quantifier_len(bytes: &[u8]) -> Option<usize> {
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let n = digits(1);
    if n == 0 {
        return None;
    }
    let mut i = 1 + n;
    if bytes.get(i) == Some(&b',') {
        i += 1 + digits(i + 1);
    }
    (bytes.get(i) == Some(&b'}')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn integer_formats_become_ranges_and_narrower_bounds_stay() {
        let mut doc = json!({"components": {"schemas": {
            "a": {"type": "integer", "format": "int32"},
            "b": {"type": ["integer", "null"], "format": "int64", "minimum": 0},
            "c": {"type": "string", "format": "int32"},
            "d": {"type": "integer", "format": "int32", "maximum": 1e12},
            "e": {"type": "number", "format": "float"},
            "x": {"type": "integer", "format": "int32", "example": {"format": "int32", "type": "integer"}}
        }}});
        harden(&mut doc);
        let s = &doc["components"]["schemas"];
        assert_eq!(s["a"]["minimum"], json!(-2_147_483_648));
        assert_eq!(s["a"]["maximum"], json!(2_147_483_647));
        assert_eq!(s["b"]["minimum"], json!(0));
        assert_eq!(s["b"]["maximum"], json!(i64::MAX));
        assert!(s["c"].get("minimum").is_none(), "a string is not bounded");
        assert_eq!(s["d"]["maximum"], json!(2_147_483_647));
        assert_eq!(s["e"]["maximum"], json!(f64::from(f32::MAX)));
        assert!(
            s["x"]["example"].get("minimum").is_none(),
            "examples are data"
        );
    }

    #[test]
    fn a_discriminated_one_of_becomes_a_choice_by_the_property() {
        let mut doc = json!({"Pet": {
            "oneOf": [{"$ref": "#/c/Cat"}, {"$ref": "#/c/Dog"}],
            "discriminator": {"propertyName": "kind", "mapping": {"woof": "#/c/Dog"}}
        }, "Inline": {
            "oneOf": [{"type": "string"}, {"type": "integer"}],
            "discriminator": {"propertyName": "kind"}
        }});
        harden(&mut doc);
        let pet = &doc["Pet"];
        assert!(pet.get("oneOf").is_none());
        let all = pet["allOf"].as_array().unwrap();
        assert_eq!(
            all[0]["properties"]["kind"]["enum"],
            json!(["woof", "Cat", "Dog"])
        );
        assert_eq!(all.len(), 4, "the names, then one case per value");
        assert_eq!(all[1]["then"]["$ref"], "#/c/Dog");
        // Inline branches have no names: the plain oneOf stays.
        assert!(doc["Inline"].get("oneOf").is_some());
    }

    #[test]
    fn ecma_262_braces_that_are_not_quantifiers_are_escaped() {
        for (ecma, engine) in [
            ("^{[a-z]+}$", "^\\{[a-z]+\\}$"),
            ("^a{2}b{1,}c{1,3}$", "^a{2}b{1,}c{1,3}$"),
            ("x{", "x\\{"),
            ("{,5}", "\\{,5\\}"),
            ("[{}]", "[{}]"),
            ("\\{a\\}", "\\{a\\}"),
            ("plain", "plain"),
            ("é{é}", "é\\{é\\}"),
        ] {
            assert_eq!(ecma_pattern(ecma), engine, "{ecma}");
        }
    }

    proptest! {
        #[test]
        fn every_rewritten_pattern_compiles_when_the_braces_were_the_only_problem(
            s in "[a-z{}0-9,]{0,12}"
        ) {
            let rewritten = ecma_pattern(&s);
            // Quantifiers left as written may still be misplaced (`{2}` at the start); the
            // rest must compile.
            if !rewritten.contains(|c: char| c.is_ascii_digit()) {
                prop_assert!(regex::Regex::new(&rewritten).is_ok(), "{rewritten}");
            }
        }
    }
}

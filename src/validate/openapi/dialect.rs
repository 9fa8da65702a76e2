//! OpenAPI 3.0's schema dialect, translated to JSON Schema 2020-12.

use serde_json::{Value, json};

/// OpenAPI 3.0 schema dialect → JSON Schema 2020-12, everywhere in the document.
pub(super) fn translate_30(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable").and_then(Value::as_bool) == Some(true) {
                map.remove("nullable");
                match map.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = std::mem::take(t);
                        map.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(types)) => types.push(json!("null")),
                    _ => {}
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            } else if map.get("nullable").is_some_and(Value::is_boolean) {
                map.remove("nullable");
            }
            for (flag, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                match map.get(flag) {
                    Some(Value::Bool(true)) => {
                        if let Some(b) = map.remove(bound) {
                            map.insert(flag.into(), b);
                        } else {
                            map.remove(flag);
                        }
                    }
                    Some(Value::Bool(false)) => {
                        map.remove(flag);
                    }
                    _ => {}
                }
            }
            for v in map.values_mut() {
                translate_30(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(translate_30),
        _ => {}
    }
}

//! The checks of a scalar (string, number, boolean, null) at one subschema. `type`, a string
//! `enum`, the string lengths and the numeric bounds are applied here; whatever else the
//! subschema says (`pattern`, `format`, `multipleOf`, `const`...) is compiled alone by
//! `jsonschema` and run over a one-token tape. Validation keywords are independent assertions,
//! so the subschema holds exactly when both parts do. Where an exact answer here is not
//! certain (a whole number written `2.0` for `integer`, a bound or value beyond 2^53), the
//! answer is no, and the fused pass gives up.

use serde_json::{Map, Value};

use crate::validate::schema::{INT64_KEYWORD, SchemaSet, TapeValidator};
use crate::validate::tape::{Scalar, with_scalar};

const NULL: u8 = 1;
const BOOL: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;

/// Keywords that constrain only objects or arrays.
const CONTAINER_ONLY: &[&str] = &[
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "minItems",
    "maxItems",
    "uniqueItems",
];

/// 2^53: integers up to it are exact as `f64`.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// What a scalar must be at one subschema.
#[derive(Debug)]
pub(crate) struct ScalarRules {
    types: u8,
    /// A `enum` of strings only.
    strings: Option<Box<[Box<str>]>>,
    min_len: usize,
    max_len: usize,
    /// `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`.
    bounds: [Option<f64>; 4],
    int64: bool,
    /// The subschema's other keywords, compiled alone.
    rest: Option<TapeValidator>,
}

impl ScalarRules {
    /// The rules of `map`; `None` when the rest cannot be compiled alone (it refers elsewhere,
    /// or does not compile).
    pub(crate) fn compile(
        set: &SchemaSet,
        map: &Map<String, Value>,
        dialect: Option<&Value>,
    ) -> Option<Self> {
        if super::refers(&Value::Object(map.clone())) {
            return None;
        }
        let mut rest = map.clone();
        let mut rules = Self {
            types: NULL | BOOL | INTEGER | NUMBER | STRING,
            strings: None,
            min_len: 0,
            max_len: usize::MAX,
            bounds: [None; 4],
            int64: false,
            rest: None,
        };
        if let Some(types) = map.get("type").and_then(type_bits) {
            rules.types = types;
            rest.remove("type");
        }
        if let Some(Value::Array(values)) = map.get("enum")
            && let Some(strings) = values
                .iter()
                .map(|v| v.as_str().map(Box::from))
                .collect::<Option<Box<[Box<str>]>>>()
        {
            rules.strings = Some(strings);
            rest.remove("enum");
        }
        for (keyword, slot) in [
            ("minLength", &mut rules.min_len),
            ("maxLength", &mut rules.max_len),
        ] {
            if let Some(n) = map.get(keyword).and_then(Value::as_u64) {
                *slot = usize::try_from(n).unwrap_or(usize::MAX);
                rest.remove(keyword);
            }
        }
        // Draft 4's boolean `exclusiveMinimum` changes what `minimum` means: left to the rest.
        let boolean = ["exclusiveMinimum", "exclusiveMaximum"]
            .iter()
            .any(|k| map.get(*k).is_some_and(Value::is_boolean));
        if !boolean {
            let keywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
            for (i, keyword) in keywords.into_iter().enumerate() {
                if let Some(b) = map.get(keyword).and_then(exact_bound) {
                    rules.bounds[i] = Some(b);
                    rest.remove(keyword);
                }
            }
        }
        if map.get(INT64_KEYWORD).is_some() {
            rules.int64 = true;
            rest.remove(INT64_KEYWORD);
        }
        // Annotations, and keywords that constrain only objects and arrays, say nothing here.
        rest.retain(|k, _| {
            !super::ANNOTATIONS.contains(&k.as_str()) && !CONTAINER_ONLY.contains(&k.as_str())
        });
        if !rest.is_empty() {
            if let Some(d) = dialect {
                rest.insert("$schema".into(), d.clone());
            }
            rules.rest = Some(set.validator(&Value::Object(rest)).ok()?);
        }
        Some(rules)
    }

    /// Whether `value` holds here (false when not certain).
    #[inline]
    pub(crate) fn check(&self, value: Scalar<'_>) -> bool {
        let own = match value {
            Scalar::Null => self.types & NULL != 0 && self.strings.is_none(),
            Scalar::Bool(_) => self.types & BOOL != 0 && self.strings.is_none(),
            Scalar::Str(s) => self.types & STRING != 0 && self.string(s),
            Scalar::U64(_) | Scalar::I64(_) => {
                self.types & (INTEGER | NUMBER) != 0 && self.strings.is_none() && self.number(value)
            }
            Scalar::F64(_) => {
                self.types & NUMBER != 0 && self.strings.is_none() && self.number(value)
            }
        };
        own && self
            .rest
            .as_ref()
            .is_none_or(|v| with_scalar(value, |n| v.is_valid(n)) == Some(true))
    }

    #[inline]
    fn string(&self, s: &str) -> bool {
        if let Some(strings) = &self.strings
            && !strings.iter().any(|e| **e == *s)
        {
            return false;
        }
        if self.min_len == 0 && s.len() <= self.max_len {
            return true;
        }
        // Characters (code points), as JSON Schema counts them; never more than bytes.
        let n = s.chars().count();
        n >= self.min_len && n <= self.max_len
    }

    #[inline]
    fn number(&self, value: Scalar<'_>) -> bool {
        if self.int64 {
            const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
            let fits = match value {
                Scalar::U64(u) => i64::try_from(u).is_ok(),
                Scalar::F64(f) => f > -LIMIT && f < LIMIT,
                _ => true,
            };
            if !fits {
                return false;
            }
        }
        if self.bounds.iter().all(Option::is_none) {
            return true;
        }
        #[allow(clippy::cast_precision_loss)]
        let v = match value {
            Scalar::U64(u) if u <= EXACT as u64 => u as f64,
            Scalar::I64(i) if i.unsigned_abs() <= EXACT as u64 => i as f64,
            Scalar::F64(f) => f,
            _ => return false,
        };
        let [min, max, xmin, xmax] = self.bounds;
        min.is_none_or(|b| v >= b)
            && max.is_none_or(|b| v <= b)
            && xmin.is_none_or(|b| v > b)
            && xmax.is_none_or(|b| v < b)
    }
}

/// The bits of a `type` keyword; `None` when it is not one the rules know.
fn type_bits(t: &Value) -> Option<u8> {
    let one = |s: &str| match s {
        "null" => Some(NULL),
        "boolean" => Some(BOOL),
        "integer" => Some(INTEGER),
        "number" => Some(NUMBER),
        "string" => Some(STRING),
        // A scalar is never one of these.
        "object" | "array" => Some(0),
        _ => None,
    };
    match t {
        Value::String(s) => one(s),
        Value::Array(ts) => ts
            .iter()
            .try_fold(0, |acc, t| Some(acc | one(t.as_str()?)?)),
        _ => None,
    }
}

/// A bound as an exact `f64`, if it is one.
fn exact_bound(v: &Value) -> Option<f64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        #[allow(clippy::cast_precision_loss)]
        return (u <= EXACT as u64).then_some(u as f64);
    }
    if let Some(i) = n.as_i64() {
        #[allow(clippy::cast_precision_loss)]
        return (i.unsigned_abs() <= EXACT as u64).then_some(i as f64);
    }
    n.as_f64()
}

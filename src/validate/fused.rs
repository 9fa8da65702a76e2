//! The fused body path: a JSON body checked while `T` is deserialized from it, in one pass over
//! its bytes, with no tape and no tree.
//!
//! A schema is compiled once into a [`Plan`]: for each subschema, what it asks of an object
//! (`properties`, `required`, `additionalProperties`, member counts) and of an array (`items`,
//! item counts), and, for a scalar, the subschema itself compiled by `jsonschema` (so a string,
//! number, boolean or null is judged by the same validator as on the tape path). A subschema
//! with a keyword the plan does not know (`allOf`, `patternProperties`, `$ref` beside other
//! keywords...) has no plan for containers: an object or array there ends the fused pass.
//!
//! The fused pass ([`de`]) wraps serde_json's deserializer: every value `T` reads, and every
//! value it skips, passes through the plan, the input limits and the string guards. It is an
//! accelerator, never a judge: it either accepts (the body is valid, and `T` is built) or gives
//! up, and the layer then takes the tape path, which gives the verdict and its problem details.
//! So the fused pass needs only to be sound: it must never accept what the tape path refuses
//! (the tests hold it to that on the JSON Schema Test Suite and on generated bodies).
//!
//! Which `T`: the validation layer runs before the handler and does not know its type. The
//! [`Validated<T>`](super::Validated) extractor teaches it: after the first body of an operation
//! it deserializes from the tape, it records `T`'s fused function in the operation's [`Slot`],
//! and later bodies of that operation are checked and deserialized by the layer in one pass,
//! the extractor taking the `T` built there.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::schema::SchemaSet;

mod bind;
pub(crate) mod de;
mod scalar;

pub(crate) use bind::{Prebuilt, Slot};

/// Subschemas deeper than this (through `$ref`s and nesting) are not planned: a value there
/// ends the fused pass.
const MAX_PLAN_DEPTH: usize = 64;

/// Objects whose `properties` and `required` name more than this many members are not planned
/// (the seen members are a 64-bit set).
const MAX_NAMES: usize = 64;

/// A compiled schema for the fused pass: nodes by index (a `$ref` cycle is a cycle of indices).
#[derive(Debug)]
pub(crate) struct Plan {
    nodes: Vec<PlanNode>,
    root: usize,
}

/// One subschema.
#[derive(Debug)]
pub(crate) enum PlanNode {
    /// `true`, `{}` or no schema at all: any value (the input limits still apply).
    Any,
    /// `false`: no value.
    Never,
    /// A subschema with keywords.
    Rules {
        /// The subschema for a scalar; `None` when it could not be compiled alone.
        scalar: Option<Box<scalar::ScalarRules>>,
        /// What an object must be; `None` when objects are refused or not planned.
        object: Option<ObjectPlan>,
        /// What an array must be; `None` when arrays are refused or not planned.
        array: Option<ArrayPlan>,
    },
}

/// What a planned object must be.
#[derive(Debug)]
pub(crate) struct ObjectPlan {
    /// The members `properties` or `required` name, with the node of each (`properties`), or
    /// `None` for a name that is only required (then `additional` applies to its value).
    pub(crate) names: Vec<(Box<str>, Option<usize>)>,
    /// The bits of `names` that are required.
    pub(crate) required: u64,
    pub(crate) additional: Additional,
    pub(crate) min: usize,
    pub(crate) max: usize,
}

/// `additionalProperties`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Additional {
    Any,
    Never,
    Node(usize),
}

/// What a planned array must be.
#[derive(Debug)]
pub(crate) struct ArrayPlan {
    /// `items` (a single schema), or `None` for any item.
    pub(crate) items: Option<usize>,
    pub(crate) min: usize,
    pub(crate) max: usize,
}

impl ObjectPlan {
    /// The index in `names` of `key`.
    #[inline]
    pub(crate) fn find(&self, key: &str) -> Option<usize> {
        self.names.iter().position(|(n, _)| **n == *key)
    }
}

/// Keywords that say nothing about a value (annotations, and definitions reached by `$ref`).
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "example",
    "deprecated",
    "readOnly",
    "writeOnly",
    "discriminator",
    "xml",
    "externalDocs",
];

/// Keywords that constrain only strings, numbers or other scalars: the scalar validator
/// applies them, and they say nothing about an object or array.
const SCALAR_ONLY: &[&str] = &[
    "pattern",
    "minLength",
    "maxLength",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    super::schema::INT64_KEYWORD,
];

/// Keywords the object and array plans apply.
const STRUCTURAL: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
];

impl Plan {
    /// The plan of a body without a schema: any value.
    pub(crate) fn any() -> Arc<Self> {
        Arc::new(Self {
            nodes: vec![PlanNode::Any],
            root: 0,
        })
    }

    /// The plan of `schema`, compiled with `set`'s options.
    pub(crate) fn compile(set: &SchemaSet, schema: &Value) -> Arc<Self> {
        let mut c = Compiler {
            set,
            nodes: Vec::new(),
            seen: HashMap::new(),
        };
        let dialect = schema.get("$schema").cloned();
        let root = c.node(schema, dialect.as_ref(), schema, 0);
        Arc::new(Self {
            nodes: c.nodes,
            root,
        })
    }

    /// The root node's index.
    #[inline]
    pub(crate) fn root(&self) -> usize {
        self.root
    }

    #[inline]
    pub(crate) fn get(&self, at: usize) -> Option<&PlanNode> {
        self.nodes.get(at)
    }
}

struct Compiler<'a> {
    set: &'a SchemaSet,
    nodes: Vec<PlanNode>,
    /// Subschemas already planned, by address (so a `$ref` cycle is planned once).
    seen: HashMap<*const Value, usize>,
}

impl<'a> Compiler<'a> {
    /// The index of the node of `schema` (inside `doc`, whose dialect is `dialect`).
    fn node(
        &mut self,
        schema: &'a Value,
        dialect: Option<&Value>,
        doc: &'a Value,
        depth: usize,
    ) -> usize {
        let Some((schema, doc, dialect)) = self.follow(schema, doc, dialect) else {
            return self.push(never_planned());
        };
        if let Some(&at) = self.seen.get(&std::ptr::from_ref(schema)) {
            return at;
        }
        let at = self.push(PlanNode::Any);
        self.seen.insert(std::ptr::from_ref(schema), at);
        let node = if depth >= MAX_PLAN_DEPTH {
            never_planned()
        } else {
            self.rules(schema, dialect.as_ref(), doc, depth)
        };
        self.nodes[at] = node;
        at
    }

    fn push(&mut self, node: PlanNode) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// `schema`, or what its lone `$ref` names (with the document and dialect it is in).
    fn follow(
        &self,
        schema: &'a Value,
        doc: &'a Value,
        dialect: Option<&Value>,
    ) -> Option<(&'a Value, &'a Value, Option<Value>)> {
        let Some(map) = schema.as_object() else {
            return Some((schema, doc, dialect.cloned()));
        };
        let Some(r) = map.get("$ref").and_then(Value::as_str) else {
            return Some((schema, doc, dialect.cloned()));
        };
        // A `$ref` beside keywords that constrain is not planned.
        if map
            .keys()
            .any(|k| k != "$ref" && !ANNOTATIONS.contains(&k.as_str()))
        {
            return None;
        }
        let (base, fragment) = r.split_once('#').unwrap_or((r, ""));
        let doc = if base.is_empty() {
            doc
        } else {
            self.set.resource(base)?
        };
        let target = if fragment.is_empty() {
            doc
        } else {
            doc.pointer(fragment)?
        };
        let dialect = if base.is_empty() {
            dialect.cloned()
        } else {
            doc.get("$schema").cloned()
        };
        Some((target, doc, dialect))
    }

    fn rules(
        &mut self,
        schema: &'a Value,
        dialect: Option<&Value>,
        doc: &'a Value,
        depth: usize,
    ) -> PlanNode {
        let map = match schema {
            Value::Bool(true) => return PlanNode::Any,
            Value::Bool(false) => return PlanNode::Never,
            Value::Object(map) if map.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) => {
                return PlanNode::Any;
            }
            Value::Object(map) => map,
            _ => return never_planned(),
        };
        // A subschema of objects or arrays only refuses every scalar: not compiled twice.
        let scalar = match map.get("type") {
            Some(Value::String(t)) if t == "object" || t == "array" => None,
            _ => self.scalar(map, dialect),
        };
        let planned = map.keys().all(|k| {
            ANNOTATIONS.contains(&k.as_str())
                || SCALAR_ONLY.contains(&k.as_str())
                || STRUCTURAL.contains(&k.as_str())
        }) && map
            .get("uniqueItems")
            .is_none_or(|u| u == &Value::Bool(false));
        if !planned {
            return PlanNode::Rules {
                scalar,
                object: None,
                array: None,
            };
        }
        let allows = |t: &str| match map.get("type") {
            None => true,
            Some(Value::String(s)) => s == t,
            Some(Value::Array(ts)) => ts.iter().any(|x| x == t),
            Some(_) => false,
        };
        let object = if allows("object") {
            self.object(map, dialect, doc, depth)
        } else {
            None
        };
        let array = if allows("array") {
            self.array(map, dialect, doc, depth)
        } else {
            None
        };
        PlanNode::Rules {
            scalar,
            object,
            array,
        }
    }

    /// The subschema's rules for scalars.
    fn scalar(
        &self,
        map: &Map<String, Value>,
        dialect: Option<&Value>,
    ) -> Option<Box<scalar::ScalarRules>> {
        scalar::ScalarRules::compile(self.set, map, dialect).map(Box::new)
    }

    fn object(
        &mut self,
        map: &'a Map<String, Value>,
        dialect: Option<&Value>,
        doc: &'a Value,
        depth: usize,
    ) -> Option<ObjectPlan> {
        let mut names: Vec<(Box<str>, Option<usize>)> = Vec::new();
        if let Some(props) = map.get("properties") {
            for (name, sub) in props.as_object()? {
                let at = self.node(sub, dialect, doc, depth + 1);
                names.push((name.as_str().into(), Some(at)));
            }
        }
        let mut required = 0u64;
        if let Some(req) = map.get("required") {
            for name in req.as_array()? {
                let name = name.as_str()?;
                let i = match names.iter().position(|(n, _)| **n == *name) {
                    Some(i) => i,
                    None => {
                        names.push((name.into(), None));
                        names.len() - 1
                    }
                };
                if i >= MAX_NAMES {
                    return None;
                }
                required |= 1 << i;
            }
        }
        if names.len() > MAX_NAMES {
            return None;
        }
        let additional = match map.get("additionalProperties") {
            None | Some(Value::Bool(true)) => Additional::Any,
            Some(Value::Bool(false)) => Additional::Never,
            Some(sub) => Additional::Node(self.node(sub, dialect, doc, depth + 1)),
        };
        Some(ObjectPlan {
            names,
            required,
            additional,
            min: count(map, "minProperties", 0)?,
            max: count(map, "maxProperties", usize::MAX)?,
        })
    }

    fn array(
        &mut self,
        map: &'a Map<String, Value>,
        dialect: Option<&Value>,
        doc: &'a Value,
        depth: usize,
    ) -> Option<ArrayPlan> {
        let items = match map.get("items") {
            None => None,
            // The tuple form (`items: [...]`, before 2020-12) is not planned.
            Some(Value::Array(_)) => return None,
            Some(sub) => Some(self.node(sub, dialect, doc, depth + 1)),
        };
        Some(ArrayPlan {
            items,
            min: count(map, "minItems", 0)?,
            max: count(map, "maxItems", usize::MAX)?,
        })
    }
}

/// A subschema the plan cannot follow: every value there ends the fused pass.
fn never_planned() -> PlanNode {
    PlanNode::Rules {
        scalar: None,
        object: None,
        array: None,
    }
}

/// A count keyword's value (`default` when absent); `None` when it is not a whole number.
fn count(map: &Map<String, Value>, keyword: &str, default: usize) -> Option<usize> {
    match map.get(keyword) {
        None => Some(default),
        Some(v) => {
            if let Some(u) = v.as_u64() {
                return Some(usize::try_from(u).unwrap_or(usize::MAX));
            }
            // `2.0` is a whole number too; anything else is left to the tape path.
            let f = v
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(f as usize)
        }
    }
}

/// Whether `schema` refers to another place (`$ref`, `$dynamicRef`, `$recursiveRef`) or names
/// itself as one (`$id`, `$anchor`...), anywhere inside.
fn refers(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(k, v)| {
            matches!(
                k.as_str(),
                "$ref"
                    | "$dynamicRef"
                    | "$recursiveRef"
                    | "$id"
                    | "id"
                    | "$anchor"
                    | "$dynamicAnchor"
                    | "$recursiveAnchor"
            ) || refers(v)
        }),
        Value::Array(items) => items.iter().any(refers),
        _ => false,
    }
}

#[cfg(test)]
mod tests;

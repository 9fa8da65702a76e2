//! The tape as a `jsonschema` instance: validators built with
//! `jsonschema::options_for::<TapeJson>()` read a [`Tape`] in place.

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, JsonNumber, Node as JsonNode, NodeIdentity, Object};
use serde_json::Value;

use super::{Items, Members, Node, Tape, Tok};

/// The representation: [`Tape`] nodes.
#[derive(Debug)]
pub(crate) struct TapeJson;

impl Json for TapeJson {
    type Node<'a> = Node<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = Tape;

    // A lookup scans the object's names, so a pass over the members is never dearer.
    const KEYS_PER_LOOKUP: usize = 64;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>(buffer: &mut Tape, string: &str, f: impl FnOnce(Node<'_>) -> T) -> T {
        buffer.toks.clear();
        buffer.text.clear();
        let s = buffer.push_str(string);
        buffer.toks.push(Tok::Str(s));
        f(buffer.root())
    }
}

/// A number of the tape.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Num {
    fn number(self) -> serde_json::Number {
        match self {
            Self::U64(u) => u.into(),
            Self::I64(i) => i.into(),
            Self::F64(f) => serde_json::Number::from_f64(f).unwrap_or_else(|| 0.into()),
        }
    }
}

impl JsonNumber for Num {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U64(u) => Some(u),
            Self::I64(i) => u64::try_from(i).ok(),
            Self::F64(_) => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::U64(u) => i64::try_from(u).ok(),
            Self::I64(i) => Some(i),
            Self::F64(_) => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        Some(match *self {
            Self::U64(u) => u as f64,
            Self::I64(i) => i as f64,
            Self::F64(f) => f,
        })
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.number().to_string())
    }

    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        Cow::Owned(self.number())
    }

    fn is_integer(&self) -> bool {
        match *self {
            Self::U64(_) | Self::I64(_) => true,
            Self::F64(f) => f.fract() == 0.0,
        }
    }

    fn is_written_as_integer(&self) -> bool {
        !matches!(self, Self::F64(_))
    }
}

impl<'a> JsonNode<'a, TapeJson> for Node<'a> {
    type Object = Obj<'a>;
    type Array = Arr<'a>;
    type Number = Num;

    fn as_object(&self) -> Option<Obj<'a>> {
        matches!(self.tok(), Tok::Obj { .. }).then_some(Obj(*self))
    }

    fn as_array(&self) -> Option<Arr<'a>> {
        matches!(self.tok(), Tok::Arr { .. }).then_some(Arr(*self))
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        self.str().map(Cow::Borrowed)
    }

    fn as_number(&self) -> Option<Num> {
        match self.tok() {
            Tok::U64(u) => Some(Num::U64(u)),
            Tok::I64(i) => Some(Num::I64(i)),
            Tok::F64(f) => Some(Num::F64(f)),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.tok() {
            Tok::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.tok(), Tok::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.tok() {
            Tok::Null => JsonType::Null,
            Tok::Bool(_) => JsonType::Boolean,
            Tok::U64(_) | Tok::I64(_) | Tok::F64(_) => JsonType::Number,
            Tok::Str(_) => JsonType::String,
            Tok::Arr { .. } => JsonType::Array,
            Tok::Obj { .. } => JsonType::Object,
        }
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        let s = self.str()?;
        // A character takes one to four bytes: the byte length often settles it uncounted.
        let bytes = s.len() as u64;
        if bytes < min || bytes.div_ceil(4) > max {
            return Some(false);
        }
        if min <= bytes.div_ceil(4) && bytes <= max {
            return Some(true);
        }
        Some((min..=max).contains(&(s.chars().count() as u64)))
    }

    fn equals_value(&self, expected: &Value) -> bool {
        match (self.tok(), expected) {
            (Tok::Null, Value::Null) => true,
            (Tok::Bool(a), Value::Bool(b)) => a == *b,
            (Tok::Str(_), Value::String(b)) => self.str() == Some(b.as_str()),
            (Tok::U64(_) | Tok::I64(_) | Tok::F64(_), Value::Number(b)) => self
                .as_number()
                .is_some_and(|a| jsonschema::json::cmp::equal_numbers(&a, b)),
            (Tok::Arr { .. }, Value::Array(_)) | (Tok::Obj { .. }, Value::Object(_)) => {
                jsonschema::json::cmp::equal(&self.to_value(), expected)
            }
            _ => false,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(Node::to_value(*self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(
            std::ptr::from_ref::<Tape>(self.tape).addr(),
            self.at,
        ))
    }
}

/// An object node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obj<'a>(Node<'a>);

impl<'a> Object<'a, TapeJson> for Obj<'a> {
    type Node = Node<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, key: &Box<str>) -> Option<Node<'a>> {
        self.0.get(key)
    }

    fn members(&self) -> Members<'a> {
        self.0.members()
    }
}

/// An array node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arr<'a>(Node<'a>);

impl<'a> Array<'a, TapeJson> for Arr<'a> {
    type Node = Node<'a>;
    type ElementsIter = Items<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> Items<'a> {
        self.0.items()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::JsonLimits;

    /// The accessor contract `jsonschema` relies on (its own conformance check).
    #[test]
    fn the_tape_meets_the_jsonschema_instance_contract() {
        let doc = jsonschema::json::conformance::document();
        let parsed = Tape::parse(&doc.to_string(), &JsonLimits::DEFAULT).unwrap();
        jsonschema::json::conformance::assert_conformance::<TapeJson>(&parsed.root());
        let built = Tape::from_value(&doc);
        jsonschema::json::conformance::assert_conformance::<TapeJson>(&built.root());
    }
}

//! `T` deserialized from a tape, for [`Validated<T>`](crate::validate::Validated): the strings
//! and numbers were read once, by the parse; this only hands them to `T`.

use serde::de::{
    DeserializeSeed, EnumAccess, Error as _, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde_json::Error;

use super::{Items, Members, Node, Tok};

impl Node<'_> {
    fn unexpected(&self) -> Unexpected<'_> {
        match self.tok() {
            Tok::Null => Unexpected::Unit,
            Tok::Bool(b) => Unexpected::Bool(b),
            Tok::U64(u) => Unexpected::Unsigned(u),
            Tok::I64(i) => Unexpected::Signed(i),
            Tok::F64(f) => Unexpected::Float(f),
            Tok::Str(_) => Unexpected::Str(self.str().unwrap_or("")),
            Tok::Arr { .. } => Unexpected::Seq,
            Tok::Obj { .. } => Unexpected::Map,
        }
    }
}

impl<'de> serde::Deserializer<'de> for Node<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tok() {
            Tok::Null => visitor.visit_unit(),
            Tok::Bool(b) => visitor.visit_bool(b),
            Tok::U64(u) => visitor.visit_u64(u),
            Tok::I64(i) => visitor.visit_i64(i),
            Tok::F64(f) => visitor.visit_f64(f),
            Tok::Str(_) => visitor.visit_borrowed_str(self.str().unwrap_or("")),
            Tok::Arr { .. } => {
                let mut seq = Seq(self.items());
                let value = visitor.visit_seq(&mut seq)?;
                if seq.0.len() == 0 {
                    Ok(value)
                } else {
                    Err(Error::invalid_length(
                        self.len(),
                        &"fewer elements in array",
                    ))
                }
            }
            Tok::Obj { .. } => {
                let mut map = Map {
                    members: self.members(),
                    value: None,
                };
                let value = visitor.visit_map(&mut map)?;
                if map.members.len() == 0 {
                    Ok(value)
                } else {
                    Err(Error::invalid_length(self.len(), &"fewer members in map"))
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tok() {
            Tok::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.tok() {
            Tok::Str(_) => visitor.visit_enum(self.str().unwrap_or("").into_deserializer()),
            Tok::Obj { len: 1, .. } => {
                let (variant, value) = self
                    .members()
                    .next()
                    .ok_or_else(|| Error::custom("an empty object"))?;
                visitor.visit_enum(Enum { variant, value })
            }
            _ => Err(Error::invalid_type(
                self.unexpected(),
                &"a string or an object with one member",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// An array's items, one by one.
struct Seq<'de>(Items<'de>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|n| seed.deserialize(n)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// An object's members, name then value.
struct Map<'de> {
    members: Members<'de>,
    value: Option<Node<'de>>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((name, value)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(Error::custom("a value asked for before its name")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// An externally tagged enum: `{"Variant": value}`.
struct Enum<'de> {
    variant: &'de str,
    value: Node<'de>,
}

impl<'de> EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = Node<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Node<'de>), Error> {
        let variant = seed.deserialize(serde::de::value::BorrowedStrDeserializer::<Error>::new(
            self.variant,
        ))?;
        Ok((variant, self.value))
    }
}

impl<'de> VariantAccess<'de> for Node<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.tok() {
            Tok::Null => Ok(()),
            _ => Err(Error::invalid_type(self.unexpected(), &"unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        serde::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        serde::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::{Value, json};

    use crate::validate::JsonLimits;
    use crate::validate::tape::Tape;

    #[derive(Debug, PartialEq, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Doc {
        name: String,
        tags: Vec<String>,
        count: u16,
        delta: i64,
        ratio: f32,
        note: Option<String>,
        missing: Option<bool>,
        shapes: Vec<Shape>,
        extra: BTreeMap<String, Value>,
        #[serde(rename = "esc\"aped")]
        escaped: char,
        unit: (),
    }

    fn from<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, serde_json::Error> {
        let tape = Tape::parse(&v.to_string(), &JsonLimits::DEFAULT).unwrap();
        T::deserialize(tape.root())
    }

    #[test]
    fn a_type_reads_the_same_from_the_tape_as_from_serde_json() {
        let v = json!({
            "name": "caf\u{e9} \"au\" lait", "tags": ["a", "b\nc"], "count": 65535,
            "delta": -9_000_000_000i64, "ratio": 0.5, "note": null,
            "shapes": ["Dot", {"Circle": 1.5}, {"Rect": {"w": 2, "h": 3}}, {"Pair": [-1, 1]}],
            "extra": {"k": [1, {"x": null}]}, "esc\"aped": "\u{1F600}", "unit": null,
        });
        let from_tape: Doc = from(&v).unwrap();
        assert_eq!(from_tape, serde_json::from_value::<Doc>(v).unwrap());
        assert_eq!(from_tape.missing, None);
    }

    #[test]
    fn a_mismatch_is_an_error_not_a_panic() {
        for bad in [
            json!({"count": 65536}),
            json!({"count": -1}),
            json!({"count": 1.5}),
            json!({"name": 1}),
            json!({"shapes": [{"Nope": 1}]}),
            json!({"shapes": [{"Dot": 1, "Circle": 2}]}),
            json!({"unit": 1}),
            json!([1, 2]),
        ] {
            assert!(from::<Doc>(&bad).is_err(), "{bad}");
        }
        assert!(from::<(u8, u8)>(&json!([1, 2, 3])).is_err());
    }
}

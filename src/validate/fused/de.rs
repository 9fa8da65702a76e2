//! The fused pass: serde_json's deserializer, wrapped so that every value the target type reads
//! or skips is checked against the [`Plan`], the input limits and the string guards as it goes
//! by. Any doubt ends the pass with an error (the caller then takes the tape path): a string
//! whose bytes as sent are not known to fit, a number beyond 64 bits, an enum written as an
//! object, a key that is not read as a string, a container a visitor leaves unfinished.

use std::cell::Cell;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess};
use serde::de::{IntoDeserializer, Visitor};

use super::{Plan, PlanNode};
use crate::validate::JsonLimits;
use crate::validate::strings::{fused_signs, fused_string_ok};
use crate::validate::tape::Scalar;

/// The position of a value that any value may take.
pub(crate) const ANY: usize = usize::MAX;

/// The position of no value: what a member's value is checked at before its name was read.
pub(crate) const NOWHERE: usize = usize::MAX - 1;

static ANY_NODE: PlanNode = PlanNode::Any;
static NEVER_NODE: PlanNode = PlanNode::Never;

/// One fused pass over one body.
pub(crate) struct Pass<'a> {
    plan: &'a Plan,
    limits: &'a JsonLimits,
    signs: bool,
    depth: Cell<usize>,
}

impl<'a> Pass<'a> {
    pub(crate) fn new(plan: &'a Plan, limits: &'a JsonLimits, bytes: &[u8]) -> Self {
        Self {
            plan,
            limits,
            signs: fused_signs(bytes, limits),
            depth: Cell::new(0),
        }
    }

    /// `T` from `text`, if it passes every check; `None` when the pass gives up.
    pub(crate) fn run<T: DeserializeOwned>(&self, text: &str) -> Option<T> {
        // From `str`: UTF-8 was checked once over the whole body, not once per string.
        let mut de = serde_json::Deserializer::from_str(text);
        let t = T::deserialize(Checked {
            de: &mut de,
            at: self.plan.root(),
            pass: self,
        })
        .ok()?;
        de.end().ok()?;
        Some(t)
    }

    #[inline]
    fn node(&self, at: usize) -> &PlanNode {
        if at == ANY {
            &ANY_NODE
        } else {
            // `NOWHERE` (and any index the plan does not hold) takes no value.
            self.plan.get(at).unwrap_or(&NEVER_NODE)
        }
    }

    /// A scalar at `at`: judged by the subschema's own validator.
    #[inline]
    fn scalar<E: de::Error>(&self, at: usize, value: Scalar<'_>) -> Result<(), E> {
        let ok = match self.node(at) {
            PlanNode::Any => true,
            PlanNode::Never | PlanNode::Rules { scalar: None, .. } => false,
            PlanNode::Rules {
                scalar: Some(rules),
                ..
            } => rules.check(value),
        };
        if ok { Ok(()) } else { Err(refuse()) }
    }

    #[inline]
    fn string<E: de::Error>(&self, at: usize, s: &str, as_sent: bool) -> Result<(), E> {
        if !fused_string_ok(s, as_sent, self.signs, self.limits) {
            return Err(refuse());
        }
        self.scalar(at, Scalar::Str(s))
    }

    #[inline]
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let d = self.depth.get();
        if d >= self.limits.max_depth {
            return Err(refuse());
        }
        self.depth.set(d + 1);
        Ok(())
    }

    #[inline]
    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    fn seq<'de, A, V>(&self, at: usize, seq: A, v: V) -> Result<V::Value, A::Error>
    where
        A: SeqAccess<'de>,
        V: Visitor<'de>,
    {
        let (items, min, max) = match self.node(at) {
            PlanNode::Any => (ANY, 0, usize::MAX),
            PlanNode::Rules { array: Some(a), .. } => (a.items.unwrap_or(ANY), a.min, a.max),
            _ => return Err(refuse()),
        };
        self.enter()?;
        let state = Counted::default();
        let value = v.visit_seq(Items {
            seq,
            items,
            max: max.min(self.limits.max_members),
            pass: self,
            state: &state,
        })?;
        self.leave();
        let n = state.count.get();
        if !state.ended.get() || n < min {
            return Err(refuse());
        }
        Ok(value)
    }

    fn map<'de, A, V>(&self, at: usize, map: A, v: V) -> Result<V::Value, A::Error>
    where
        A: MapAccess<'de>,
        V: Visitor<'de>,
    {
        let object = match self.node(at) {
            PlanNode::Any => None,
            PlanNode::Rules {
                object: Some(o), ..
            } => Some(o),
            _ => return Err(refuse()),
        };
        self.enter()?;
        let state = Members::default();
        let value = v.visit_map(Entries {
            map,
            object,
            pass: self,
            state: &state,
        })?;
        self.leave();
        let n = state.counted.count.get();
        if !state.counted.ended.get() {
            return Err(refuse());
        }
        if let Some(o) = object
            && (state.seen.get() & o.required != o.required || n < o.min || n > o.max)
        {
            return Err(refuse());
        }
        Ok(value)
    }
}

fn refuse<E: de::Error>() -> E {
    E::custom("the fused body pass gave up")
}

/// A deserializer and the position of the value it is about to read.
struct Checked<'a, D> {
    de: D,
    at: usize,
    pass: &'a Pass<'a>,
}

impl<'a, D> Checked<'a, D> {
    fn parts<V>(self, v: V) -> (D, Wrap<'a, V>) {
        (
            self.de,
            Wrap {
                v,
                at: self.at,
                pass: self.pass,
            },
        )
    }
}

/// Forwards `deserialize_*` methods to the inner deserializer with the visitor wrapped.
macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*))*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V)
                -> Result<V::Value, Self::Error>
            {
                let (de, v) = self.parts(visitor);
                de.$method($($arg,)* v)
            }
        )*
    };
}

/// [`forward!`] for every `deserialize_*` method but `newtype_struct`, `enum` and
/// `ignored_any` (which each wrapper treats in its own way, or forwards itself).
macro_rules! forward_common {
    () => {
        forward! {
                deserialize_any() deserialize_bool() deserialize_i8() deserialize_i16()
                deserialize_i32() deserialize_i64() deserialize_i128() deserialize_u8()
                deserialize_u16() deserialize_u32() deserialize_u64() deserialize_u128()
                deserialize_f32() deserialize_f64() deserialize_char() deserialize_str()
                deserialize_string() deserialize_bytes() deserialize_byte_buf() deserialize_option()
                deserialize_unit() deserialize_unit_struct(name: &'static str) deserialize_seq()
                deserialize_tuple(len: usize) deserialize_tuple_struct(name: &'static str, len: usize)
                deserialize_map()
                deserialize_struct(name: &'static str, fields: &'static [&'static str])
                deserialize_identifier()
        }
    };
}

mod access;

use access::{Counted, Entries, Items, Members};

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Checked<'_, D> {
    type Error = D::Error;

    forward_common!();

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // serde_json's `RawValue` and number hooks read the text itself: not checked here.
        if name.starts_with("$serde_json") {
            return Err(refuse());
        }
        let (de, v) = self.parts(visitor);
        de.deserialize_newtype_struct(name, v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // Read as any value, so the string or object passes the checks, then handed to the
        // enum's visitor as serde's own adapters do.
        let (de, v) = self.parts(EnumAdapter(visitor));
        de.deserialize_any(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        // A value the type skips is checked like any other.
        let (de, v) = self.parts(visitor);
        de.deserialize_any(v)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor whose values are checked before it sees them.
struct Wrap<'a, V> {
    v: V,
    at: usize,
    pass: &'a Pass<'a>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.v.expecting(f)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<V::Value, E> {
        self.pass.scalar(self.at, Scalar::Bool(b))?;
        self.v.visit_bool(b)
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<V::Value, E> {
        let s = u64::try_from(i).map_or(Scalar::I64(i), Scalar::U64);
        self.pass.scalar(self.at, s)?;
        self.v.visit_i64(i)
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<V::Value, E> {
        self.pass.scalar(self.at, Scalar::U64(u))?;
        self.v.visit_u64(u)
    }

    fn visit_i128<E: de::Error>(self, i: i128) -> Result<V::Value, E> {
        let s = match (u64::try_from(i), i64::try_from(i)) {
            (Ok(u), _) => Scalar::U64(u),
            (_, Ok(i)) => Scalar::I64(i),
            _ => return Err(refuse()),
        };
        self.pass.scalar(self.at, s)?;
        self.v.visit_i128(i)
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<V::Value, E> {
        let s = Scalar::U64(u64::try_from(u).map_err(|_| refuse::<E>())?);
        self.pass.scalar(self.at, s)?;
        self.v.visit_u128(u)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<V::Value, E> {
        self.pass.scalar(self.at, Scalar::F64(f))?;
        self.v.visit_f64(f)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<V::Value, E> {
        // serde_json hands a string over as borrowed unless it had an escape sequence.
        self.pass.string(self.at, s, false)?;
        self.v.visit_str(s)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<V::Value, E> {
        self.pass.string(self.at, s, true)?;
        self.v.visit_borrowed_str(s)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<V::Value, E> {
        self.pass.string(self.at, &s, false)?;
        self.v.visit_string(s)
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<V::Value, E> {
        let s = std::str::from_utf8(b).map_err(|_| refuse::<E>())?;
        self.pass.string(self.at, s, false)?;
        self.v.visit_bytes(b)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, b: &'de [u8]) -> Result<V::Value, E> {
        let s = std::str::from_utf8(b).map_err(|_| refuse::<E>())?;
        self.pass.string(self.at, s, true)?;
        self.v.visit_borrowed_bytes(b)
    }

    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<V::Value, E> {
        let s = std::str::from_utf8(&b).map_err(|_| refuse::<E>())?;
        self.pass.string(self.at, s, false)?;
        self.v.visit_byte_buf(b)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.pass.scalar(self.at, Scalar::Null)?;
        self.v.visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.pass.scalar(self.at, Scalar::Null)?;
        self.v.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.v.visit_some(Checked {
            de: d,
            at: self.at,
            pass: self.pass,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.v.visit_newtype_struct(Checked {
            de: d,
            at: self.at,
            pass: self.pass,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.pass.seq(self.at, seq, self.v)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.pass.map(self.at, map, self.v)
    }
}

/// A seed whose value is read through [`Checked`].
struct Seed<'a, S> {
    seed: S,
    at: usize,
    pass: &'a Pass<'a>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Checked {
            de: d,
            at: self.at,
            pass: self.pass,
        })
    }
}

/// Hands a string or a one-member object to an enum's visitor, as serde's adapters do.
struct EnumAdapter<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for EnumAdapter<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<V::Value, E> {
        let d: StrDeserializer<'_, E> = s.into_deserializer();
        self.0.visit_enum(d)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<V::Value, E> {
        self.0.visit_enum(BorrowedStrDeserializer::new(s))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(MapAccessDeserializer::new(map))
    }
}

//! The containers of the fused pass: an array's items and an object's members, counted,
//! checked at their plan positions, and their names read, looked up and checked for
//! duplicates.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{ANY, NOWHERE, Pass, Seed, refuse};
use crate::validate::fused::{Additional, ObjectPlan};
use crate::validate::strings::fused_string_ok;

/// Keys of one object past which duplicates are looked up in a set, not a list.
const LINEAR_KEYS: usize = 16;

/// How many members a container had, and whether its visitor read to its end.
#[derive(Default)]
pub(super) struct Counted {
    pub(super) count: Cell<usize>,
    pub(super) ended: Cell<bool>,
}

impl Counted {
    fn one_more<E: de::Error>(&self, max: usize) -> Result<(), E> {
        let n = self.count.get() + 1;
        self.count.set(n);
        if n > max { Err(refuse()) } else { Ok(()) }
    }
}

/// The state of one object.
pub(super) struct Members {
    pub(super) counted: Counted,
    /// The planned names seen (bits of [`ObjectPlan::names`]).
    pub(super) seen: Cell<u64>,
    /// Fingerprints of the other names seen.
    others: RefCell<Others>,
    /// Where the value of the last key read goes.
    value_at: Cell<usize>,
}

impl Default for Members {
    fn default() -> Self {
        Self {
            counted: Counted::default(),
            seen: Cell::new(0),
            others: RefCell::default(),
            value_at: Cell::new(NOWHERE),
        }
    }
}

/// The fingerprints of an object's unplanned names: a list, then a set once wide.
#[derive(Default)]
struct Others {
    list: Vec<u64>,
    set: Option<HashSet<u64>>,
}

impl Others {
    /// Records `print`; false if it was seen (or a name with the same fingerprint was: the
    /// pass then gives up, which is always safe).
    fn insert(&mut self, print: u64) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(print);
        }
        if self.list.contains(&print) {
            return false;
        }
        self.list.push(print);
        if self.list.len() > LINEAR_KEYS {
            self.set = Some(self.list.drain(..).collect());
        }
        true
    }
}

/// FNV-1a over a name's bytes.
fn fingerprint(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a key turned out to be.
#[derive(Clone, Copy)]
enum Key {
    Planned(usize),
    Other(u64),
}

/// An array's items, each checked at `items`.
pub(super) struct Items<'a, A> {
    pub(super) seq: A,
    pub(super) items: usize,
    pub(super) max: usize,
    pub(super) pass: &'a Pass<'a>,
    pub(super) state: &'a Counted,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Items<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let item = self.seq.next_element_seed(Seed {
            seed,
            at: self.items,
            pass: self.pass,
        })?;
        match item {
            None => self.state.ended.set(true),
            Some(_) => self.state.one_more(self.max)?,
        }
        Ok(item)
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// An object's members: names checked and looked up, values checked where the plan says.
pub(super) struct Entries<'a, A> {
    pub(super) map: A,
    pub(super) object: Option<&'a ObjectPlan>,
    pub(super) pass: &'a Pass<'a>,
    pub(super) state: &'a Members,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let found = Cell::new(None);
        let key = self.map.next_key_seed(KeySeed {
            seed,
            object: self.object,
            pass: self.pass,
            found: &found,
        })?;
        if key.is_none() {
            self.state.counted.ended.set(true);
            return Ok(None);
        }
        let found = found.get().ok_or_else(refuse)?;
        self.state.counted.one_more(self.pass.limits.max_members)?;
        let unique = !self.pass.limits.allow_duplicate_keys;
        let value_at = match (found, self.object) {
            (Key::Planned(i), Some(o)) => {
                let bit = 1u64 << i;
                if unique && self.state.seen.get() & bit != 0 {
                    return Err(refuse());
                }
                self.state.seen.set(self.state.seen.get() | bit);
                match o.names[i].1 {
                    Some(at) => at,
                    None => additional(o.additional)?,
                }
            }
            (Key::Other(print), object) => {
                if unique && !self.state.others.borrow_mut().insert(print) {
                    return Err(refuse());
                }
                match object {
                    Some(o) => additional(o.additional)?,
                    None => ANY,
                }
            }
            (Key::Planned(_), None) => return Err(refuse()),
        };
        self.state.value_at.set(value_at);
        Ok(key)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(Seed {
            seed,
            at: self.state.value_at.get(),
            pass: self.pass,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Where an unplanned member's value goes.
fn additional<E: de::Error>(a: Additional) -> Result<usize, E> {
    match a {
        Additional::Any => Ok(ANY),
        Additional::Never => Err(refuse()),
        Additional::Node(at) => Ok(at),
    }
}

/// The seed of a member name: records what the name is as the key's visitor sees it.
struct KeySeed<'a, S> {
    seed: S,
    object: Option<&'a ObjectPlan>,
    pass: &'a Pass<'a>,
    found: &'a Cell<Option<Key>>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(KeyDe {
            de: d,
            object: self.object,
            pass: self.pass,
            found: self.found,
        })
    }
}

/// The deserializer of a member name.
struct KeyDe<'a, D> {
    de: D,
    object: Option<&'a ObjectPlan>,
    pass: &'a Pass<'a>,
    found: &'a Cell<Option<Key>>,
}

impl<'a, D> KeyDe<'a, D> {
    fn parts<V>(self, v: V) -> (D, KeyVisit<'a, V>) {
        (
            self.de,
            KeyVisit {
                v,
                object: self.object,
                pass: self.pass,
                found: self.found,
            },
        )
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyDe<'_, D> {
    type Error = D::Error;

    forward_common!();
    forward! {
        deserialize_newtype_struct(name: &'static str)
        deserialize_enum(name: &'static str, variants: &'static [&'static str])
        deserialize_ignored_any()
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// The visitor of a member name: only a name read as a string is recorded (any other reading
/// leaves it unrecorded, and the pass gives up).
struct KeyVisit<'a, V> {
    v: V,
    object: Option<&'a ObjectPlan>,
    pass: &'a Pass<'a>,
    found: &'a Cell<Option<Key>>,
}

impl<V> KeyVisit<'_, V> {
    #[inline]
    fn record<E: de::Error>(&self, name: &str, as_sent: bool) -> Result<(), E> {
        if !fused_string_ok(name, as_sent, self.pass.signs, self.pass.limits) {
            return Err(refuse());
        }
        let key = match self.object.and_then(|o| o.find(name)) {
            Some(i) => Key::Planned(i),
            None => Key::Other(fingerprint(name.as_bytes())),
        };
        self.found.set(Some(key));
        Ok(())
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisit<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.v.expecting(f)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<V::Value, E> {
        self.record(s, false)?;
        self.v.visit_str(s)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<V::Value, E> {
        self.record(s, true)?;
        self.v.visit_borrowed_str(s)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<V::Value, E> {
        self.record(&s, false)?;
        self.v.visit_string(s)
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<V::Value, E> {
        self.record(std::str::from_utf8(b).map_err(|_| refuse::<E>())?, false)?;
        self.v.visit_bytes(b)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, b: &'de [u8]) -> Result<V::Value, E> {
        self.record(std::str::from_utf8(b).map_err(|_| refuse::<E>())?, true)?;
        self.v.visit_borrowed_bytes(b)
    }
}

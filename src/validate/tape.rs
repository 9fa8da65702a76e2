//! A JSON body parsed once into a flat tape: strings are spans of the body's own text (an
//! escaped string is decoded once, after it), numbers are read, and a container knows its
//! length and where it ends. The input guards (depth, members, string length, duplicate
//! member names) are checked while it is built, the schema runs over it ([`schema`]), and
//! [`Validated<T>`](super::Validated) is deserialized from it ([`de`]): no `serde_json::Value`
//! tree, no allocation per key or string.

use std::fmt;

use serde_json::Value;

use super::JsonLimits;

mod build;
pub(crate) mod de;
pub(crate) mod schema;

/// Where a string's bytes are in [`Tape::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    at: u32,
    len: u32,
}

/// One token. A container's members follow it (an object's as name, value, name, value...);
/// `end` is the index after its last descendant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Span),
    Arr { len: u32, end: u32 },
    Obj { len: u32, end: u32 },
}

/// A parsed JSON document.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Tape {
    toks: Vec<Tok>,
    /// The body's text, then the decoded form of every escaped string.
    text: String,
    /// Where the decoded strings start: text before it is the body as sent.
    decoded: u32,
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tape")
            .field("tokens", &self.toks.len())
            .finish_non_exhaustive()
    }
}

/// Why a body could not become a tape.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// Not JSON: what, with the line and column.
    Syntax(String),
    /// Over a limit: the keyword and the detail of the violation.
    Limit(&'static str, String),
    /// An object names a member twice: which, with the line and column.
    Duplicate(String),
}

impl Tape {
    /// Parses `text` within `limits`.
    pub(crate) fn parse(text: &str, limits: &JsonLimits) -> Result<Self, BuildError> {
        // Spans are 32-bit, and decoded strings (never longer than as sent) follow the text.
        if text.len() > (u32::MAX / 2) as usize {
            return Err(BuildError::Limit(
                "maxBodyBytes",
                "the body is larger than 2 GiB".into(),
            ));
        }
        let (toks, escaped) = build::parse(text, limits)?;
        let mut owned = String::with_capacity(text.len() + escaped.len());
        owned.push_str(text);
        owned.push_str(&escaped);
        Ok(Self {
            toks,
            text: owned,
            decoded: to_u32(text.len()),
        })
    }

    /// The tape of a value built elsewhere (a form, a coerced parameter).
    pub(crate) fn from_value(value: &Value) -> Self {
        let mut tape = Self::default();
        tape.push_value(value);
        tape
    }

    fn push_str(&mut self, s: &str) -> Span {
        let at = self.text.len();
        self.text.push_str(s);
        span(at, s.len())
    }

    fn push_value(&mut self, value: &Value) {
        match value {
            Value::Null => self.toks.push(Tok::Null),
            Value::Bool(b) => self.toks.push(Tok::Bool(*b)),
            Value::Number(n) => self.toks.push(number_tok(n)),
            Value::String(s) => {
                let s = self.push_str(s);
                self.toks.push(Tok::Str(s));
            }
            Value::Array(items) => {
                let at = self.toks.len();
                self.toks.push(Tok::Null);
                for item in items {
                    self.push_value(item);
                }
                self.toks[at] = Tok::Arr {
                    len: to_u32(items.len()),
                    end: to_u32(self.toks.len()),
                };
            }
            Value::Object(map) => {
                let at = self.toks.len();
                self.toks.push(Tok::Null);
                for (k, v) in map {
                    let k = self.push_str(k);
                    self.toks.push(Tok::Str(k));
                    self.push_value(v);
                }
                self.toks[at] = Tok::Obj {
                    len: to_u32(map.len()),
                    end: to_u32(self.toks.len()),
                };
            }
        }
    }

    /// The root node.
    pub(crate) fn root(&self) -> Node<'_> {
        Node { tape: self, at: 0 }
    }

    fn str(&self, s: Span) -> &str {
        &self.text[s.at as usize..(s.at + s.len) as usize]
    }

    fn bytes(&self, s: Span) -> &[u8] {
        &self.text.as_bytes()[s.at as usize..(s.at + s.len) as usize]
    }

    /// Whether every string was sent as is (none had an escape sequence).
    pub(crate) fn as_sent(&self) -> bool {
        self.text.len() == self.decoded as usize
    }

    /// The index after the value at `at` and its descendants.
    fn after(&self, at: u32) -> u32 {
        match self.toks[at as usize] {
            Tok::Arr { end, .. } | Tok::Obj { end, .. } => end,
            _ => at + 1,
        }
    }

    /// The document as a `serde_json::Value` (error paths, and hosts that ask for one).
    pub(crate) fn to_value(&self) -> Value {
        self.root().to_value()
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn span(at: usize, len: usize) -> Span {
    Span {
        at: to_u32(at),
        len: to_u32(len),
    }
}

fn number_tok(n: &serde_json::Number) -> Tok {
    if let Some(u) = n.as_u64() {
        Tok::U64(u)
    } else if let Some(i) = n.as_i64() {
        Tok::I64(i)
    } else {
        Tok::F64(n.as_f64().unwrap_or(0.0))
    }
}

/// A scalar read elsewhere (the fused path of [`super::fused`]), to be checked as a one-token
/// tape.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

thread_local! {
    /// The one-token tape [`with_scalar`] reuses (no allocation per value once warm).
    static SCRATCH: std::cell::RefCell<Tape> = const {
        std::cell::RefCell::new(Tape {
            toks: Vec::new(),
            text: String::new(),
            decoded: 0,
        })
    };
}

/// Runs `f` over `scalar` as the root of a one-token tape; `None` if the thread's scratch tape
/// is in use or gone (the caller then takes the slow path).
pub(crate) fn with_scalar<R>(scalar: Scalar<'_>, f: impl FnOnce(Node<'_>) -> R) -> Option<R> {
    SCRATCH
        .try_with(|cell| {
            let mut tape = cell.try_borrow_mut().ok()?;
            tape.toks.clear();
            tape.text.clear();
            let tok = match scalar {
                Scalar::Null => Tok::Null,
                Scalar::Bool(b) => Tok::Bool(b),
                Scalar::U64(u) => Tok::U64(u),
                Scalar::I64(i) => Tok::I64(i),
                Scalar::F64(x) => Tok::F64(x),
                Scalar::Str(s) => Tok::Str(tape.push_str(s)),
            };
            tape.toks.push(tok);
            tape.decoded = to_u32(tape.text.len());
            Some(f(tape.root()))
        })
        .ok()
        .flatten()
}

/// A value of a tape: cheap to copy.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    tape: &'a Tape,
    at: u32,
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node").field("at", &self.at).finish()
    }
}

impl<'a> Node<'a> {
    pub(crate) fn tok(self) -> Tok {
        self.tape.toks[self.at as usize]
    }

    pub(crate) fn str(self) -> Option<&'a str> {
        match self.tok() {
            Tok::Str(s) => Some(self.tape.str(s)),
            _ => None,
        }
    }

    /// A string and whether it was sent as is (no escape sequence in it).
    pub(crate) fn str_as_sent(self) -> Option<(&'a str, bool)> {
        match self.tok() {
            Tok::Str(s) => Some((self.tape.str(s), s.at < self.tape.decoded)),
            _ => None,
        }
    }

    /// An object's members, in document order.
    pub(crate) fn members(self) -> Members<'a> {
        let (left, at) = match self.tok() {
            Tok::Obj { len, .. } => (len, self.at + 1),
            _ => (0, 0),
        };
        Members {
            tape: self.tape,
            at,
            left,
        }
    }

    /// An object's members as name and value nodes.
    pub(crate) fn entries(self) -> impl Iterator<Item = (Node<'a>, Node<'a>)> {
        let mut m = self.members();
        std::iter::from_fn(move || {
            let name = m.at;
            m.next().map(|(_, value)| {
                (
                    Node {
                        tape: m.tape,
                        at: name,
                    },
                    value,
                )
            })
        })
    }

    /// An array's items, in order.
    pub(crate) fn items(self) -> Items<'a> {
        let (left, at) = match self.tok() {
            Tok::Arr { len, .. } => (len, self.at + 1),
            _ => (0, 0),
        };
        Items {
            tape: self.tape,
            at,
            left,
        }
    }

    /// The member named `key` (the first, when duplicates were allowed). Names are compared
    /// by length first, then as bytes.
    pub(crate) fn get(self, key: &str) -> Option<Self> {
        let Tok::Obj { len, .. } = self.tok() else {
            return None;
        };
        let mut at = self.at + 1;
        for _ in 0..len {
            if let Tok::Str(s) = self.tape.toks[at as usize]
                && s.len as usize == key.len()
                && self.tape.bytes(s) == key.as_bytes()
            {
                return Some(Node {
                    tape: self.tape,
                    at: at + 1,
                });
            }
            at = self.tape.after(at + 1);
        }
        None
    }

    pub(crate) fn len(self) -> usize {
        match self.tok() {
            Tok::Arr { len, .. } | Tok::Obj { len, .. } => len as usize,
            _ => 0,
        }
    }

    pub(crate) fn to_value(self) -> Value {
        match self.tok() {
            Tok::Null => Value::Null,
            Tok::Bool(b) => Value::Bool(b),
            Tok::U64(u) => Value::from(u),
            Tok::I64(i) => Value::from(i),
            Tok::F64(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Tok::Str(s) => Value::String(self.tape.str(s).to_owned()),
            Tok::Arr { .. } => Value::Array(self.items().map(Node::to_value).collect()),
            Tok::Obj { .. } => Value::Object(
                self.members()
                    .map(|(k, v)| (k.to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// The members of an object node.
#[derive(Debug, Clone)]
pub(crate) struct Members<'a> {
    tape: &'a Tape,
    at: u32,
    left: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let Tok::Str(k) = self.tape.toks[self.at as usize] else {
            return None;
        };
        let value = self.at + 1;
        self.at = self.tape.after(value);
        Some((
            self.tape.str(k),
            Node {
                tape: self.tape,
                at: value,
            },
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Members<'_> {}

/// The items of an array node.
#[derive(Debug, Clone)]
pub(crate) struct Items<'a> {
    tape: &'a Tape,
    at: u32,
    left: u32,
}

impl<'a> Iterator for Items<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let node = Node {
            tape: self.tape,
            at: self.at,
        };
        self.at = self.tape.after(self.at);
        Some(node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Items<'_> {}

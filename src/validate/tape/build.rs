//! Parsing a body into a tape, in one pass over its bytes (RFC 8259), checking the limits as
//! it goes: depth on entering a container, members as they come, string bytes as sent, and
//! duplicate member names. A document over a limit stops the parse where it goes over, before
//! any more of it is read; nothing recurses (open containers are a stack bounded by the depth
//! limit).
//!
//! Why not serde_json's own parser: driven through a visitor, it costs about three times this
//! pass on a small body (it is built to hand values to `Deserialize`, not to record tokens),
//! and it cannot say how long an escaped string was as sent. The tests hold this parser to
//! serde_json's verdict and values on generated and arbitrary input.

use std::collections::HashSet;
use std::hash::BuildHasher;

use smallvec::SmallVec;

use super::{BuildError, Span, Tok, to_u32};
use crate::validate::JsonLimits;

mod scalar;

/// The tokens of `text` and its escaped strings, decoded (their spans start at `text.len()`).
pub(super) fn parse(text: &str, limits: &JsonLimits) -> Result<(Vec<Tok>, String), BuildError> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        i: 0,
        toks: Vec::with_capacity(text.len() / 6 + 4),
        escaped: String::new(),
        limits,
        open: SmallVec::new(),
        names: Vec::with_capacity(32),
        hasher: None,
    };
    p.run()?;
    Ok((p.toks, p.escaped))
}

/// Objects up to this many members are checked for duplicate names by comparing each name
/// with the ones before it (fingerprints first); wider ones through a set of keyed hashes.
const LINEAR_NAMES: u32 = 16;

/// One open container.
struct Open {
    /// Its token's index.
    at: usize,
    len: u32,
    object: bool,
    /// Where its member names start in `Parser::names`.
    names: usize,
    /// Its names as keyed hashes, once it is wide.
    wide: Option<HashSet<u64>>,
}

/// The state of one parse.
struct Parser<'t, 'l> {
    text: &'t str,
    b: &'t [u8],
    i: usize,
    toks: Vec<Tok>,
    /// Escaped strings, decoded; their spans start at `text.len()`.
    escaped: String,
    limits: &'l JsonLimits,
    open: SmallVec<[Open; 16]>,
    /// The member names of the open objects, with their fingerprints.
    names: Vec<(u64, Span)>,
    /// Keys the names of wide objects (made on first use).
    hasher: Option<std::collections::hash_map::RandomState>,
}

impl Parser<'_, '_> {
    /// A syntax error at the current byte, with its line and column (as serde_json words it).
    #[cold]
    #[inline(never)]
    fn syntax(&self, what: &str) -> BuildError {
        BuildError::Syntax(format!("{what} at {}", self.position(self.i)))
    }

    #[cold]
    fn position(&self, at: usize) -> String {
        let before = &self.b[..at.min(self.b.len())];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |p| p + 1);
        format!("line {line} column {}", column + 1)
    }

    #[cold]
    fn limit(keyword: &'static str, detail: String) -> BuildError {
        BuildError::Limit(keyword, detail)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The whole document: one value, then only whitespace.
    fn run(&mut self) -> Result<(), BuildError> {
        'value: loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    if self.enter(true)? {
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    if self.enter(false)? {
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    let s = self.string()?;
                    self.toks.push(Tok::Str(s));
                }
                Some(b'-' | b'0'..=b'9') => {
                    let n = self.number()?;
                    self.toks.push(n);
                }
                Some(b't') => self.literal(b"true", Tok::Bool(true))?,
                Some(b'f') => self.literal(b"false", Tok::Bool(false))?,
                Some(b'n') => self.literal(b"null", Tok::Null)?,
                Some(_) => return Err(self.syntax("expected value")),
                None => return Err(self.syntax("EOF while parsing a value")),
            }
            // After a value: the next member or item, or the end of containers.
            loop {
                self.ws();
                let Some(top) = self.open.last() else {
                    return match self.peek() {
                        None => Ok(()),
                        Some(_) => Err(self.syntax("trailing characters")),
                    };
                };
                let object = top.object;
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        self.member()?;
                        continue 'value;
                    }
                    Some(b'}') if object => self.close(),
                    Some(b']') if !object => self.close(),
                    Some(_) if object => return Err(self.syntax("expected `,` or `}`")),
                    Some(_) => return Err(self.syntax("expected `,` or `]`")),
                    None if object => return Err(self.syntax("EOF while parsing an object")),
                    None => return Err(self.syntax("EOF while parsing a list")),
                }
            }
        }
    }

    /// Opens a container at `{` or `[`; whether a first member follows (else it is closed).
    fn enter(&mut self, object: bool) -> Result<bool, BuildError> {
        if self.open.len() >= self.limits.max_depth {
            let max = self.limits.max_depth;
            return Err(Self::limit(
                "maxDepth",
                format!("nesting is deeper than {max}"),
            ));
        }
        self.i += 1;
        self.open.push(Open {
            at: self.toks.len(),
            len: 0,
            object,
            names: self.names.len(),
            wide: None,
        });
        self.toks.push(Tok::Null);
        self.ws();
        if self.peek() == Some(if object { b'}' } else { b']' }) {
            self.close();
            return Ok(false);
        }
        self.member()?;
        Ok(true)
    }

    /// Counts a new member of the innermost container; for an object, reads its name and `:`.
    #[inline]
    fn member(&mut self) -> Result<(), BuildError> {
        let max = self.limits.max_members;
        let Some(top) = self.open.last_mut() else {
            return Ok(());
        };
        if top.len as usize >= max {
            return Err(Self::limit(
                "maxMembers",
                format!("an object or array has more than {max} members"),
            ));
        }
        top.len += 1;
        if !top.object {
            return Ok(());
        }
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.syntax("key must be a string"));
        }
        let start = self.i;
        let key = self.string()?;
        if !self.limits.allow_duplicate_keys && self.duplicate(key) {
            let name = serde_json::Value::String(self.str(key).to_owned());
            return Err(BuildError::Duplicate(format!(
                "duplicate member {name} at {}",
                self.position(start)
            )));
        }
        self.toks.push(Tok::Str(key));
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.syntax("expected `:`"));
        }
        self.i += 1;
        Ok(())
    }

    /// Closes the innermost container at its `}` or `]`.
    fn close(&mut self) {
        self.i += 1;
        if let Some(top) = self.open.pop() {
            self.names.truncate(top.names);
            let (len, end) = (top.len, to_u32(self.toks.len()));
            self.toks[top.at] = if top.object {
                Tok::Obj { len, end }
            } else {
                Tok::Arr { len, end }
            };
        }
    }

    fn str(&self, s: Span) -> &str {
        let (at, end) = (s.at as usize, (s.at + s.len) as usize);
        match at.checked_sub(self.text.len()) {
            Some(from) => &self.escaped[from..end - self.text.len()],
            None => &self.text[at..end],
        }
    }

    /// A string's bytes (no character-boundary checks: names are compared as bytes).
    fn bytes(&self, s: Span) -> &[u8] {
        let (at, end) = (s.at as usize, (s.at + s.len) as usize);
        match at.checked_sub(self.b.len()) {
            Some(from) => &self.escaped.as_bytes()[from..end - self.b.len()],
            None => &self.b[at..end],
        }
    }

    /// Whether the innermost object already has a member named `key`; records it if not.
    #[inline]
    fn duplicate(&mut self, key: Span) -> bool {
        let Some(top) = self.open.last() else {
            return false;
        };
        let from = top.names;
        let name = self.bytes(key);
        let print = fingerprint(name);
        if top.wide.is_none() {
            let seen = self.names[from..]
                .iter()
                .any(|(p, s)| *p == print && self.bytes(*s) == name);
            self.names.push((print, key));
            if !seen && top.len > LINEAR_NAMES {
                // Wide: every name so far into a set of keyed hashes.
                let hasher = self.hasher.get_or_insert_with(Default::default).clone();
                let set = self.names[from..]
                    .iter()
                    .map(|(_, s)| hasher.hash_one(self.bytes(*s)))
                    .collect();
                if let Some(top) = self.open.last_mut() {
                    top.wide = Some(set);
                }
            }
            return seen;
        }
        let hasher = self.hasher.get_or_insert_with(Default::default).clone();
        let h = hasher.hash_one(self.bytes(key));
        let fresh = self
            .open
            .last_mut()
            .and_then(|top| top.wide.as_mut())
            .is_some_and(|set| set.insert(h));
        // A keyed hash seen before is the same name, but for a collision no client can aim
        // for (the key is random): then the names themselves decide.
        let name = self.bytes(key);
        let seen = !fresh
            && self.names[from..]
                .iter()
                .any(|(p, s)| *p == print && self.bytes(*s) == name);
        self.names.push((print, key));
        seen
    }
}

/// A name's length and some of its bytes (the first and last four, or the first, middle
/// and last one of a short name): equal names have equal fingerprints.
fn fingerprint(name: &[u8]) -> u64 {
    let n = name.len();
    let bytes = match name {
        [] => 0,
        [a, b, c, d, ..] => {
            let head = u32::from_le_bytes([*a, *b, *c, *d]);
            let tail = u32::from_le_bytes([name[n - 4], name[n - 3], name[n - 2], name[n - 1]]);
            u64::from(head) | u64::from(tail) << 32
        }
        [a, ..] => u64::from(*a) | u64::from(name[n / 2]) << 8 | u64::from(name[n - 1]) << 16,
    };
    bytes ^ (n as u64).rotate_left(48)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::Tape;
    use super::*;

    fn parse(text: &str, limits: &JsonLimits) -> Result<Value, BuildError> {
        Tape::parse(text, limits).map(|t| t.to_value())
    }

    #[allow(clippy::needless_pass_by_value)]
    fn keyword(r: Result<Value, BuildError>) -> &'static str {
        match r {
            Err(BuildError::Limit(k, _)) => k,
            Err(BuildError::Duplicate(_)) => "duplicate",
            Err(BuildError::Syntax(_)) => "syntax",
            Ok(_) => "ok",
        }
    }

    #[test]
    fn deep_nesting_is_refused_where_it_goes_over() {
        let l = JsonLimits::DEFAULT;
        // Far past serde_json's own recursion limit: stopped at the 33rd level.
        assert_eq!(keyword(parse(&"[".repeat(100_000), &l)), "maxDepth");
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(parse(&ok, &l).is_ok());
        let obj = format!("{}1{}", r#"{"a":"#.repeat(33), "}".repeat(33));
        assert_eq!(keyword(parse(&obj, &l)), "maxDepth");
    }

    #[test]
    fn wide_containers_and_long_strings_are_refused() {
        let l = JsonLimits {
            max_members: 3,
            max_string_bytes: 8,
            ..JsonLimits::DEFAULT
        };
        assert!(parse("[1,2,3]", &l).is_ok());
        assert_eq!(keyword(parse("[1,2,3,4]", &l)), "maxMembers");
        assert_eq!(
            keyword(parse(r#"{"a":1,"b":2,"c":3,"d":4}"#, &l)),
            "maxMembers"
        );
        assert!(parse(r#"{"k":"12345678"}"#, &l).is_ok());
        assert_eq!(keyword(parse(r#"{"k":"123456789"}"#, &l)), "maxStringBytes");
        assert_eq!(keyword(parse(r#"{"123456789":1}"#, &l)), "maxStringBytes");
        // Brackets inside strings are text.
        assert!(parse(r#"["[[[[[[[[", "]]]"]"#, &l).is_ok());
    }

    #[test]
    fn rfc8259_4_duplicate_member_names_are_refused_with_their_position() {
        let l = JsonLimits::DEFAULT;
        let Err(BuildError::Duplicate(message)) = parse(r#"{"qty": 1, "item": "a", "qty": 9}"#, &l)
        else {
            panic!("not refused as a duplicate");
        };
        assert!(message.contains(r#"duplicate member "qty""#), "{message}");
        assert!(message.contains("column"), "{message}");
        // Nested objects and objects inside arrays too; equal names in different objects are
        // fine.
        assert_eq!(
            keyword(parse(r#"{"a": [{"b": 1, "b": 2}]}"#, &l)),
            "duplicate"
        );
        assert!(parse(r#"{"a": {"b": 1}, "c": {"b": 2}}"#, &l).is_ok());
        // Names equal after unescaping are the same name.
        assert_eq!(keyword(parse(r#"{"a": 1, "\u0061": 2}"#, &l)), "duplicate");
        // Wide objects (past the linear comparison) too, at the start, middle and end.
        for dup in ["k0", "k17", "k39"] {
            let mut members: Vec<String> = (0..40).map(|i| format!(r#""k{i}": {i}"#)).collect();
            members.push(format!(r#""{dup}": 0"#));
            let text = format!("{{{}}}", members.join(","));
            assert_eq!(keyword(parse(&text, &l)), "duplicate", "{dup}");
            members.pop();
            assert!(parse(&format!("{{{}}}", members.join(",")), &l).is_ok());
        }
        // Allowed, the last one wins, as in serde_json.
        let allowed = JsonLimits {
            allow_duplicate_keys: true,
            ..l
        };
        assert!(parse(r#"{"a": 1, "a": 2}"#, &allowed).is_ok());
        // A syntax error stays a syntax error.
        assert_eq!(keyword(parse(r#"{"a": 1,}"#, &l)), "syntax");
    }

    /// Where RFC 8259 draws the line, beside serde_json's verdict and value.
    #[test]
    fn rfc8259_edge_cases_read_as_serde_json_reads_them() {
        let l = JsonLimits::DEFAULT;
        for text in [
            "0",
            "-0",
            "-0.0",
            "1e2",
            "1E+2",
            "1e-2",
            "0.5",
            "-1.5e-300",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "4.9e-324",
            "1.7976931348623157e308",
            r#""\u00e9\ud834\udd1e\n\"\\\/\b\f\r\t""#,
            r#""é𝄞""#,
            " \t\r\n[ 1 , { \"a\" : null } ]\n",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            r#"{"":""}"#,
        ] {
            let ours = parse(text, &l).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        for text in [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "0x10",
            "1e400",
            "-1e400",
            "NaN",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\" 1}",
            "{1:2}",
            "tru",
            "nul",
            "[",
            "{",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud834\"",
            "\"\\ud834\\u0041\"",
            "\"\\udd1e\"",
            "\"tab\tinside\"",
            "1 2",
            "[] x",
            "{\"a\":1}}",
        ] {
            assert_eq!(keyword(parse(text, &l)), "syntax", "{text:?}");
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn the_string_limit_counts_bytes_as_sent() {
        let l = JsonLimits {
            max_string_bytes: 8,
            ..JsonLimits::DEFAULT
        };
        // Eight bytes as sent, one character once decoded: within the limit; nine as sent,
        // even if fewer once decoded: over it.
        assert!(parse(r#""\u00e9\u00e9""#, &l).is_err());
        assert!(parse(r#""\u00e9ab""#, &l).is_ok());
        assert_eq!(keyword(parse(r#""\u00e9abc""#, &l)), "maxStringBytes");
    }

    /// JSON documents without duplicate member names (objects built from maps).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Bytes that look like JSON, so that nesting, counting and strings are exercised.
    fn jsonish() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(
                &[
                    "[", "]", "{", "}", ",", ":", "\"", "\\", "u", "a", " ", "0", "\u{7f}", "é",
                ][..],
            ),
            0..200,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn a_document_reads_as_serde_json_reads_it(v in json_value()) {
            let text = v.to_string();
            let ours = parse(&text, &JsonLimits::DEFAULT).unwrap();
            let theirs: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&ours, &theirs);
            // And back: the tape of a value reads as that value.
            prop_assert_eq!(Tape::from_value(&theirs).to_value(), theirs);
        }

        #[test]
        fn any_text_is_judged_without_panic(s in jsonish(), depth in 0usize..6, members in 1usize..4) {
            let l = JsonLimits { max_depth: depth, max_members: members, ..JsonLimits::DEFAULT };
            let ours = parse(&s, &l);
            // What serde_json refuses, the tape refuses; what it accepts within the limits,
            // the tape reads the same.
            match serde_json::from_str::<Value>(&s) {
                Err(_) => prop_assert!(ours.is_err()),
                Ok(v) => if let Ok(t) = ours { prop_assert_eq!(t, v) },
            }
        }

        #[test]
        fn nesting_is_refused_exactly_past_the_limit(depth in 1usize..64) {
            let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let l = JsonLimits::DEFAULT;
            prop_assert_eq!(parse(&doc, &l).is_ok(), depth <= l.max_depth);
        }
    }
}

//! Input guards that hold with or without a schema: nesting depth, members per object or
//! array, string length (checked on the bytes, before a `serde_json::Value` is built, so deep or
//! wide documents never reach the parser's recursion or the allocator), then control
//! characters in every key and string, and opt-in deny patterns per field.

use serde_json::Value;

use crate::rejection::{InputPart, Violation};

mod chars;
mod deny;
mod limits;

pub use deny::DenyPattern;
pub use limits::{JsonLimits, ParamLimits};

/// Parses `text` into a [`Value`] like `serde_json::from_str`, refusing an object that names a
/// member twice (the error says which, with the line and column). Recursion is bounded by the
/// prescan's depth limit and serde_json's own.
pub(crate) fn parse_unique(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Unique.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A `Value` seed whose objects refuse duplicate member names.
#[derive(Clone, Copy)]
struct Unique;

impl<'de> serde::de::DeserializeSeed<'de> for Unique {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            match members.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    // The name is the client's own, quoted (control characters escaped).
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate member {}",
                        Value::String(slot.key().clone())
                    )));
                }
            }
        }
        Ok(Value::Object(members))
    }
}

fn violation(keyword: &str, detail: String) -> Violation {
    Violation {
        part: InputPart::Body,
        pointer: "#".into(),
        keyword: keyword.into(),
        detail: detail.into(),
    }
}

/// What the prescan learned besides the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Whether a string may hold a hostile control character: a `\u` escape, or a raw DEL or
    /// C1 byte. Raw C0 bytes are not JSON at all (the parser refuses them). When false, the
    /// per-string control check can be skipped.
    pub(crate) maybe_control: bool,
}

/// What a byte means to the prescan outside strings.
const OTHER: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;
const COMMA: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    t[b'"' as usize] = QUOTE;
    t[b'[' as usize] = OPEN;
    t[b'{' as usize] = OPEN;
    t[b']' as usize] = CLOSE;
    t[b'}' as usize] = CLOSE;
    t[b',' as usize] = COMMA;
    t
};

/// Strings longer than this are skipped with `memchr` (SIMD); shorter ones, the usual keys and
/// values, byte by byte, which is cheaper than a call for a handful of bytes.
const SHORT_STRING: usize = 32;

/// Where the string whose contents start at `j` closes, or `None` when it does not; notes a
/// `\u` escape in `maybe_control`.
fn string_end(bytes: &[u8], mut j: usize, maybe_control: &mut bool) -> Option<usize> {
    let short_end = bytes.len().min(j + SHORT_STRING);
    while j < short_end {
        match bytes[j] {
            b'"' => return Some(j),
            b'\\' => {
                if bytes.get(j + 1) == Some(&b'u') {
                    *maybe_control = true;
                }
                j += 2;
            }
            _ => j += 1,
        }
    }
    loop {
        if j >= bytes.len() {
            return None;
        }
        let k = memchr::memchr2(b'"', b'\\', &bytes[j..])?;
        if bytes[j + k] == b'"' {
            return Some(j + k);
        }
        if bytes.get(j + k + 1) == Some(&b'u') {
            *maybe_control = true;
        }
        j += k + 2;
    }
}

/// One pass over the bytes, tracking strings and nesting only. Malformed JSON passes (the
/// parser names the error); a document within the limits passes. Short strings are skipped
/// byte by byte and long ones with `memchr`, and the members of open containers are counted in
/// a stack array when the depth limit allows (no allocation), so the pass costs little more
/// than reading the bytes.
pub(crate) fn prescan(bytes: &[u8], limits: &JsonLimits) -> Result<Scan, Violation> {
    let too_long = || {
        violation(
            "maxStringBytes",
            format!("a string is longer than {} bytes", limits.max_string_bytes),
        )
    };
    // DEL, and the lead bytes of the C1 controls and the bidirectional ones.
    let mut maybe_control = chars::any_sign(bytes, limits);
    // Members counted per open container, indexed by depth (bounded by max_depth).
    let mut inline = [0usize; 64];
    let mut heap;
    let counts: &mut [usize] = if limits.max_depth <= inline.len() {
        &mut inline[..limits.max_depth]
    } else {
        heap = vec![0usize; limits.max_depth];
        &mut heap
    };
    let mut depth = 0;
    let mut i = 0;
    while i < bytes.len() {
        match CLASS[usize::from(bytes[i])] {
            QUOTE => {
                let start = i + 1;
                let Some(end) = string_end(bytes, start, &mut maybe_control) else {
                    // Unterminated: the parser will say so.
                    if bytes.len() - start > limits.max_string_bytes {
                        return Err(too_long());
                    }
                    return Ok(Scan { maybe_control });
                };
                if end - start > limits.max_string_bytes {
                    return Err(too_long());
                }
                i = end;
            }
            OPEN => {
                let Some(n) = counts.get_mut(depth) else {
                    return Err(violation(
                        "maxDepth",
                        format!("nesting is deeper than {}", limits.max_depth),
                    ));
                };
                *n = 0;
                depth += 1;
            }
            CLOSE => depth = depth.saturating_sub(1),
            COMMA if depth > 0 => {
                let n = &mut counts[depth - 1];
                *n += 1;
                if *n >= limits.max_members {
                    return Err(violation(
                        "maxMembers",
                        format!(
                            "an object or array has more than {} members",
                            limits.max_members
                        ),
                    ));
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(Scan { maybe_control })
}

/// Checks one query or path parameter name or value, as sent (percent-encoded), against the
/// guards that hold without a schema: at most `max_string_bytes` once decoded, UTF-8 once
/// decoded, and no control character other than the usual whitespace (unless allowed). A path
/// parameter may not hold even tab, line feed or carriage return: no identifier in a path has
/// one, and `%0d%0a` there is only ever an injection attempt. `name` is the parameter's name
/// as sent, for the pointer. Allocates only to decode a value that has a `%` in it, and to
/// report.
pub(crate) fn check_param(
    part: InputPart,
    name: &str,
    raw: &str,
    limits: &JsonLimits,
) -> Result<(), Violation> {
    let decoded: std::borrow::Cow<'_, [u8]> = percent_encoding::percent_decode_str(raw).into();
    let report = |keyword: &str, detail: String| Violation {
        part,
        pointer: pointer(&[String::from_utf8_lossy(
            &percent_encoding::percent_decode_str(name).collect::<Vec<u8>>(),
        )
        .replace('+', " ")])
        .into(),
        keyword: keyword.into(),
        detail: detail.into(),
    };
    if decoded.len() > limits.max_string_bytes {
        return Err(report(
            "maxStringBytes",
            format!("the value is longer than {} bytes", limits.max_string_bytes),
        ));
    }
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return Err(report("utf8", "the value is not UTF-8 once decoded".into()));
    };
    if let Some(max) = limits
        .max_string_chars
        .filter(|m| text.chars().count() > *m)
    {
        return Err(report(
            "maxStringChars",
            format!("the value is longer than {max} characters"),
        ));
    }
    let whitespace_control = part == InputPart::Path && text.bytes().any(|b| b < 0x20);
    if !limits.allow_control_characters && whitespace_control {
        return Err(report(
            "controlCharacters",
            "the value holds a control character".into(),
        ));
    }
    match chars::hostile(text, limits) {
        Some(found) => Err(report(
            found.keyword(),
            format!("the value holds {}", found.what()),
        )),
        None => Ok(()),
    }
}

/// Checks every name and value of a query string (`a=1&b=2`) with [`check_param`]; at most
/// `max` violations.
pub(crate) fn check_query<'l>(
    query: &str,
    limits_for: impl Fn(&str) -> &'l JsonLimits,
    max: usize,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (name, value) in super::params::query_pairs(query) {
        let limits = limits_for(name);
        for raw in [name, value] {
            if let Err(v) = check_param(InputPart::Query, name, raw, limits) {
                out.push(v);
                break;
            }
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

/// One step of a path into a document.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Walks the parsed value for control characters in keys and strings and for deny patterns;
/// returns at most `max` violations. The recursion is bounded by the prescan's depth limit,
/// and the path is a stack of borrowed segments, formatted only when something is reported.
pub(crate) fn check_strings(
    value: &Value,
    limits: &JsonLimits,
    scan: Scan,
    deny: &[DenyPattern],
    max: usize,
) -> Vec<Violation> {
    let mut out = Vec::new();
    // No string can hold a character the prescan did not see a sign of.
    let limits = JsonLimits {
        allow_control_characters: limits.allow_control_characters || !scan.maybe_control,
        allow_bidi_controls: limits.allow_bidi_controls || !scan.maybe_control,
        allow_invisible_characters: limits.allow_invisible_characters || !scan.maybe_control,
        ..*limits
    };
    if limits.allow_control_characters
        && limits.allow_bidi_controls
        && limits.allow_invisible_characters
        && limits.max_string_chars.is_none()
        && deny.is_empty()
    {
        return out;
    }
    let mut path = Vec::new();
    walk(value, &limits, deny, max, &mut path, &mut out);
    out
}

fn walk<'a>(
    v: &'a Value,
    limits: &JsonLimits,
    deny: &[DenyPattern],
    max: usize,
    path: &mut Vec<Seg<'a>>,
    out: &mut Vec<Violation>,
) {
    if out.len() >= max {
        return;
    }
    match v {
        Value::String(s) => {
            if let Some(max) = too_many_chars(s, limits) {
                out.push(at(
                    path,
                    "maxStringChars",
                    &format!("the string is longer than {max} characters"),
                ));
            } else if let Some(found) = chars::hostile(s, limits) {
                out.push(at(
                    path,
                    found.keyword(),
                    &format!("the string holds {}", found.what()),
                ));
            } else if deny
                .iter()
                .any(|d| d.matches_path(path) && d.regex.is_match(s))
            {
                out.push(at(
                    path,
                    "denyPattern",
                    "the string matches a refused pattern",
                ));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(item, limits, deny, max, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                path.push(Seg::Key(k));
                if let Some(max) = too_many_chars(k, limits) {
                    out.push(at(
                        path,
                        "maxStringChars",
                        &format!("a key is longer than {max} characters"),
                    ));
                } else if let Some(found) = chars::hostile(k, limits) {
                    out.push(at(
                        path,
                        found.keyword(),
                        &format!("a key holds {}", found.what()),
                    ));
                } else {
                    walk(item, limits, deny, max, path, out);
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// The character limit `s` is over, if any.
fn too_many_chars(s: &str, limits: &JsonLimits) -> Option<usize> {
    // Never more characters than bytes: a short string needs no count.
    limits
        .max_string_chars
        .filter(|max| s.len() > *max && s.chars().count() > *max)
}

fn at(path: &[Seg<'_>], keyword: &str, detail: &str) -> Violation {
    let segments: Vec<String> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => (*k).to_owned(),
            Seg::Index(i) => i.to_string(),
        })
        .collect();
    Violation {
        part: InputPart::Body,
        pointer: pointer(&segments).into(),
        keyword: keyword.into(),
        detail: detail.into(),
    }
}

/// A JSON pointer (RFC 6901) as a URI fragment: `#/a/0/b~1c`.
pub(crate) fn pointer(path: &[String]) -> String {
    let mut s = String::from("#");
    for seg in path {
        s.push('/');
        s.push_str(&seg.replace('~', "~0").replace('/', "~1"));
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    static DEFAULT: JsonLimits = JsonLimits::DEFAULT;

    const ALL: Scan = Scan {
        maybe_control: true,
    };

    #[test]
    fn the_prescan_flags_every_way_a_control_character_can_arrive() {
        let l = JsonLimits::default();
        assert!(
            !prescan(br#"{"a": "plain \n text", "b": [1, 2]}"#, &l)
                .unwrap()
                .maybe_control
        );
        assert!(
            prescan(br#"{"a": "nul \u0000"}"#, &l)
                .unwrap()
                .maybe_control
        );
        assert!(
            prescan("{\"a\": \"del \u{7f}\"}".as_bytes(), &l)
                .unwrap()
                .maybe_control
        );
        assert!(
            prescan("{\"a\": \"c1 \u{85}\"}".as_bytes(), &l)
                .unwrap()
                .maybe_control
        );
        // And what the flag says holds for the parsed strings.
        let v: Value = serde_json::from_str(r#"{"a": "nul \u0000"}"#).unwrap();
        let scan = prescan(br#"{"a": "nul \u0000"}"#, &l).unwrap();
        assert_eq!(check_strings(&v, &l, scan, &[], 10).len(), 1);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = "[".repeat(100_000);
        let err = prescan(deep.as_bytes(), &JsonLimits::default()).unwrap_err();
        assert_eq!(&*err.keyword, "maxDepth");
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(prescan(ok.as_bytes(), &JsonLimits::default()).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = format!(r#"{{"a": "{}\"[", "b": [1, 2]}}"#, "[".repeat(100));
        assert!(prescan(s.as_bytes(), &JsonLimits::default()).is_ok());
    }

    #[test]
    fn wide_containers_and_long_strings_are_refused() {
        let limits = JsonLimits {
            max_members: 3,
            max_string_bytes: 8,
            ..JsonLimits::default()
        };
        assert!(prescan(b"[1,2,3]", &limits).is_ok());
        assert_eq!(
            &*prescan(b"[1,2,3,4]", &limits).unwrap_err().keyword,
            "maxMembers"
        );
        assert!(prescan(br#"{"k":"12345678"}"#, &limits).is_ok());
        assert_eq!(
            &*prescan(br#"{"k":"123456789"}"#, &limits)
                .unwrap_err()
                .keyword,
            "maxStringBytes"
        );
    }

    #[test]
    fn owasp_input_validation_control_characters_are_refused() {
        let v: Value =
            serde_json::from_str(r#"{"a": ["ok\ttab\nline", "nul\u0000"], "b\u0007": 1}"#).unwrap();
        let errs = check_strings(&v, &JsonLimits::default(), ALL, &[], 10);
        let mut pointers: Vec<&str> = errs.iter().map(|e| &*e.pointer).collect();
        pointers.sort_unstable();
        assert_eq!(pointers, ["#/a/1", "#/b\u{7}"]);
    }

    #[test]
    fn a_character_limit_counts_characters_not_bytes() {
        let limits = JsonLimits {
            max_string_chars: Some(3),
            ..JsonLimits::default()
        };
        // Three four-byte characters pass; four one-byte ones do not; keys count too.
        let v = serde_json::json!({"ok": "𝄞𝄞𝄞", "long": "abcd", "keyy": 1});
        let errs = check_strings(&v, &limits, ALL, &[], 10);
        let mut found: Vec<(&str, &str)> =
            errs.iter().map(|e| (&*e.pointer, &*e.keyword)).collect();
        found.sort_unstable();
        assert_eq!(
            found,
            [("#/keyy", "maxStringChars"), ("#/long", "maxStringChars")]
        );
        let err =
            check_param(InputPart::Query, "q", "%C3%A9%C3%A9%C3%A9%C3%A9", &limits).unwrap_err();
        assert_eq!(&*err.keyword, "maxStringChars");
        assert!(check_param(InputPart::Query, "q", "%C3%A9%C3%A9%C3%A9", &limits).is_ok());
        // Unset, only the byte limit applies.
        assert!(check_strings(&v, &JsonLimits::default(), ALL, &[], 10).is_empty());
    }

    #[test]
    fn deny_patterns_apply_to_their_field_only() {
        let deny = [DenyPattern::new("/items/*/note", "(?i)<script").unwrap()];
        let v: Value = serde_json::from_str(
            r#"{"note": "<script>", "items": [{"note": "fine"}, {"note": "<SCRIPT>x"}]}"#,
        )
        .unwrap();
        let errs = check_strings(&v, &JsonLimits::default(), ALL, &deny, 10);
        assert_eq!(errs.len(), 1);
        assert_eq!(&*errs[0].pointer, "#/items/1/note");
        assert_eq!(&*errs[0].keyword, "denyPattern");
    }

    #[test]
    fn rfc6901_pointers_escape_tilde_and_slash() {
        assert_eq!(pointer(&["a/b".into(), "c~d".into()]), "#/a~1b/c~0d");
    }

    /// The first prescan (a `Vec` stack, `memchr` for every string), kept as the model the
    /// current one must agree with.
    /// One pass over the bytes, tracking strings and nesting only. Malformed JSON passes (the
    /// parser names the error); a document within the limits passes. String contents are skipped
    /// with `memchr` (SIMD), so the pass costs little more than reading the bytes.
    fn prescan_reference(bytes: &[u8], limits: &JsonLimits) -> Result<Scan, Violation> {
        let too_long = || {
            violation(
                "maxStringBytes",
                format!("a string is longer than {} bytes", limits.max_string_bytes),
            )
        };
        // DEL, and the lead byte of the two-byte C1 controls (U+0080–U+009F are C2 80–9F).
        let mut maybe_control = memchr::memchr2(0x7f, 0xc2, bytes).is_some();
        // Members counted per open container; the stack is bounded by max_depth.
        let mut counts: Vec<usize> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    // Skip to the closing quote, hopping over escapes.
                    let start = i + 1;
                    let mut j = start;
                    loop {
                        match memchr::memchr2(b'"', b'\\', &bytes[j..]) {
                            None => {
                                // Unterminated: the parser will say so.
                                if bytes.len() - start > limits.max_string_bytes {
                                    return Err(too_long());
                                }
                                return Ok(Scan { maybe_control });
                            }
                            Some(k) if bytes[j + k] == b'\\' => {
                                if bytes.get(j + k + 1) == Some(&b'u') {
                                    maybe_control = true;
                                }
                                j += k + 2;
                                if j > bytes.len() {
                                    // Unterminated after an escape: measured like any
                                    // unterminated string (the first version skipped this).
                                    if bytes.len() - start > limits.max_string_bytes {
                                        return Err(too_long());
                                    }
                                    return Ok(Scan { maybe_control });
                                }
                            }
                            Some(k) => {
                                j += k;
                                break;
                            }
                        }
                    }
                    if j - start > limits.max_string_bytes {
                        return Err(too_long());
                    }
                    i = j + 1;
                    continue;
                }
                b'[' | b'{' => {
                    if counts.len() >= limits.max_depth {
                        return Err(violation(
                            "maxDepth",
                            format!("nesting is deeper than {}", limits.max_depth),
                        ));
                    }
                    counts.push(0);
                }
                b']' | b'}' => {
                    counts.pop();
                }
                b',' => {
                    if let Some(n) = counts.last_mut() {
                        *n += 1;
                        if *n >= limits.max_members {
                            return Err(violation(
                                "maxMembers",
                                format!(
                                    "an object or array has more than {} members",
                                    limits.max_members
                                ),
                            ));
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(Scan { maybe_control })
    }

    /// Bytes that look like JSON: brackets, commas, quotes, escapes and a few letters, so the
    /// generated documents exercise nesting, counting and string skipping.
    fn jsonish() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::sample::select(&b"[]{},:\"\\\\uab 0\x7f\xc2"[..]),
            0..400,
        )
    }

    #[test]
    fn rfc8259_4_duplicate_member_names_are_refused_with_their_position() {
        let err = parse_unique(r#"{"qty": 1, "item": "a", "qty": 9}"#).unwrap_err();
        assert!(err.is_data(), "{err}");
        let message = err.to_string();
        assert!(message.contains(r#"duplicate member "qty""#), "{message}");
        assert!(message.contains("column"), "{message}");
        // Nested objects and objects inside arrays too; equal names in different objects are
        // fine.
        assert!(parse_unique(r#"{"a": [{"b": 1, "b": 2}]}"#).is_err());
        assert!(parse_unique(r#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_ok());
        // Names equal after unescaping are the same name.
        assert!(parse_unique(r#"{"a": 1, "a": 2}"#).is_err());
        // A syntax error stays a syntax error.
        assert!(parse_unique(r#"{"a": 1,}"#).unwrap_err().is_syntax());
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

    proptest! {
        #[test]
        fn parse_unique_agrees_with_serde_json_without_duplicates(v in json_value()) {
            let text = v.to_string();
            let ours = parse_unique(&text).unwrap();
            let theirs: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn parse_unique_never_panics(s in ".{0,64}") {
            let _ = parse_unique(&s);
        }

        #[test]
        fn prescan_never_panics_and_admits_what_it_should(s in any::<Vec<u8>>()) {
            let _ = prescan(&s, &JsonLimits::default());
        }

        #[test]
        fn prescan_agrees_with_its_reference_model(
            s in jsonish(),
            max_depth in 0usize..80,
            max_members in 1usize..6,
            max_string_bytes in 0usize..48,
        ) {
            let limits = JsonLimits {
                max_depth,
                max_members,
                max_string_bytes,
                ..JsonLimits::default()
            };
            let got = prescan(&s, &limits).map_err(|v| v.keyword);
            let want = prescan_reference(&s, &limits).map_err(|v| v.keyword);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn prescan_agrees_with_depth_of_generated_json(depth in 0usize..64) {
            let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let limits = JsonLimits::default();
            prop_assert_eq!(prescan(doc.as_bytes(), &limits).is_ok(), depth <= limits.max_depth);
        }
    }

    #[test]
    fn owasp_input_validation_parameters_are_guarded_without_a_schema() {
        let limits = JsonLimits::default();
        let check = |q: &str| check_query(q, |_| &limits, 8);
        assert!(check("limit=10&tag=a&tag=b%20c&q=caf%C3%A9&empty=&flag").is_empty());
        // Encoded NUL, DEL, C1 (U+0085), in a value and in a name.
        for (q, pointer) in [
            ("q=a%00b", "#/q"),
            ("q=%7F", "#/q"),
            ("q=%C2%85", "#/q"),
            ("a%00b=1", "#/a\u{0}b"),
        ] {
            let v = check(q);
            assert_eq!(v.len(), 1, "{q}");
            assert_eq!(v[0].keyword.as_ref(), "controlCharacters", "{q}");
            assert_eq!(v[0].part, InputPart::Query);
            assert_eq!(v[0].pointer.as_ref(), pointer);
        }
        // Tab, CR and LF are the usual whitespace in a query value.
        assert!(check("text=a%09b%0D%0Ac").is_empty());
        // Invalid UTF-8 once decoded (an overlong `/`, a lone continuation byte).
        for q in ["p=%C0%AF", "p=%80", "p=%ff"] {
            assert_eq!(check(q)[0].keyword.as_ref(), "utf8", "{q}");
        }
        let long = format!("q={}", "a".repeat(limits.max_string_bytes + 1));
        assert_eq!(check(&long)[0].keyword.as_ref(), "maxStringBytes");
        let allowed = JsonLimits {
            allow_control_characters: true,
            ..limits
        };
        assert!(check_query("q=a%00b", |_| &allowed, 8).is_empty());
    }

    #[test]
    fn owasp_input_validation_a_path_parameter_holds_no_control_character_at_all() {
        let limits = JsonLimits::default();
        assert!(check_param(InputPart::Path, "id", "abc%20def", &limits).is_ok());
        for raw in ["a%0d%0ab", "a%09b", "a%00", "%ff"] {
            let v = check_param(InputPart::Path, "id", raw, &limits).unwrap_err();
            assert_eq!(v.pointer.as_ref(), "#/id", "{raw}");
            assert_eq!(v.part, InputPart::Path);
        }
    }

    proptest! {
        #[test]
        fn any_query_string_is_judged_without_panic(q in "[ -~]{0,64}") {
            let _ = check_query(&q, |_| &DEFAULT, 4);
        }

        #[test]
        fn a_query_is_refused_exactly_when_a_decoded_value_is_hostile(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..4)
        ) {
            let q: String = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("k{i}={}", percent_encoding::percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
                .collect::<Vec<_>>()
                .join("&");
            let hostile = values.iter().any(|v| match std::str::from_utf8(v) {
                Ok(s) => s.chars().any(|c| {
                    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
                        || chars::is_bidi_control(c)
                }),
                Err(_) => true,
            });
            prop_assert_eq!(!check_query(&q, |_| &DEFAULT, 4).is_empty(), hostile);
        }
    }
}

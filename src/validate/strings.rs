//! Input guards that hold with or without a schema, on what the parse leaves: control,
//! bidirectional and invisible characters in every key and string, the character limit, and
//! opt-in deny patterns per field (depth, width, string bytes and duplicate names are checked
//! while the body is parsed, in [`super::tape`]); and the same guards on query and path
//! parameters.

use super::tape::{Node, Tape, Tok};
use crate::rejection::{InputPart, Violation};

mod chars;
mod deny;
mod limits;

pub use deny::DenyPattern;
pub use limits::{JsonLimits, ParamLimits};

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

/// Walks the parsed body for control characters in keys and strings and for deny patterns;
/// returns at most `max` violations. A string sent without escapes is looked at only when the
/// body's bytes hold a sign of a refused character (`chars::any_sign`); an escaped one always
/// (`\b`, `\f` and `\u` can spell any character). The recursion is bounded by the depth
/// limit, and the path is a stack of borrowed segments, formatted only when something is
/// reported.
pub(crate) fn check_tape(
    tape: &Tape,
    bytes: &[u8],
    limits: &JsonLimits,
    deny: &[DenyPattern],
    max: usize,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let every = limits.allow_control_characters
        && limits.allow_bidi_controls
        && limits.allow_invisible_characters;
    if every && limits.max_string_chars.is_none() && deny.is_empty() {
        return out;
    }
    let signs = !every && chars::any_sign(bytes, limits);
    if !signs && tape.as_sent() && limits.max_string_chars.is_none() && deny.is_empty() {
        // No string can hold a refused character: none was escaped, and the bytes hold no
        // sign of one.
        return out;
    }
    let w = Walk {
        limits,
        deny,
        max,
        signs,
    };
    w.walk(tape.root(), &mut Vec::new(), &mut out);
    out
}

/// What one walk checks.
struct Walk<'l> {
    limits: &'l JsonLimits,
    deny: &'l [DenyPattern],
    max: usize,
    /// Whether strings sent as is need the character check (escaped ones always do).
    signs: bool,
}

impl Walk<'_> {
    /// The string guard's finding on `s`, if any: too many characters, or a refused one.
    fn string(&self, s: &str, as_sent: bool, what: &str) -> Option<(&'static str, String)> {
        if let Some(max) = too_many_chars(s, self.limits) {
            return Some((
                "maxStringChars",
                format!("{what} is longer than {max} characters"),
            ));
        }
        if (!as_sent || self.signs)
            && let Some(found) = chars::hostile(s, self.limits)
        {
            return Some((found.keyword(), format!("{what} holds {}", found.what())));
        }
        None
    }

    fn walk<'a>(&self, node: Node<'a>, path: &mut Vec<Seg<'a>>, out: &mut Vec<Violation>) {
        if out.len() >= self.max {
            return;
        }
        match node.tok() {
            Tok::Str(_) => {
                let (s, as_sent) = node.str_as_sent().unwrap_or_default();
                if let Some((keyword, detail)) = self.string(s, as_sent, "the string") {
                    out.push(at(path, keyword, &detail));
                } else if self
                    .deny
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
            Tok::Arr { .. } => {
                for (i, item) in node.items().enumerate() {
                    path.push(Seg::Index(i));
                    self.walk(item, path, out);
                    path.pop();
                }
            }
            Tok::Obj { .. } => {
                for (name, item) in node.entries() {
                    let (k, as_sent) = name.str_as_sent().unwrap_or_default();
                    path.push(Seg::Key(k));
                    if let Some((keyword, detail)) = self.string(k, as_sent, "a key") {
                        out.push(at(path, keyword, &detail));
                    } else {
                        self.walk(item, path, out);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// The string guards of the fused body path, for one body: whether its strings sent as is need
/// the character check (as [`check_tape`] decides).
pub(crate) fn fused_signs(bytes: &[u8], limits: &JsonLimits) -> bool {
    let every = limits.allow_control_characters
        && limits.allow_bidi_controls
        && limits.allow_invisible_characters;
    !every && chars::any_sign(bytes, limits)
}

/// Whether the string `s` (a key or a value) passes the guards [`Tape::parse`] and
/// [`check_tape`] apply: the byte limit as sent, the character limit, no refused character.
/// `as_sent` is whether it had no escape sequence; for one that had, the bytes as sent are not
/// known here, so it passes only if even six bytes per decoded byte (`\u0041`) would fit.
#[inline]
pub(crate) fn fused_string_ok(s: &str, as_sent: bool, signs: bool, limits: &JsonLimits) -> bool {
    let sent = if as_sent {
        s.len()
    } else {
        s.len().saturating_mul(6)
    };
    sent <= limits.max_string_bytes
        && too_many_chars(s, limits).is_none()
        && (as_sent && !signs || chars::hostile(s, limits).is_none())
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

    fn tape(text: &str) -> Tape {
        Tape::parse(text, &DEFAULT).unwrap()
    }

    fn check(text: &str, limits: &JsonLimits, deny: &[DenyPattern]) -> Vec<Violation> {
        check_tape(&tape(text), text.as_bytes(), limits, deny, 10)
    }

    #[test]
    fn owasp_input_validation_control_characters_are_refused() {
        let text = r#"{"a": ["ok\ttab\nline", "nul\u0000"], "b\u0007": 1}"#;
        let errs = check(text, &DEFAULT, &[]);
        let mut pointers: Vec<&str> = errs.iter().map(|e| &*e.pointer).collect();
        pointers.sort_unstable();
        assert_eq!(pointers, ["#/a/1", "#/b\u{7}"]);
    }

    #[test]
    fn owasp_input_validation_every_escape_that_spells_a_control_character_is_seen() {
        // `\b` and `\f` are C0 controls written without `\u`; raw DEL and C1 bytes and the
        // bidirectional controls arrive unescaped.
        for text in [
            r#"{"a": "back\bspace"}"#,
            r#"{"a": "form\ffeed"}"#,
            r#"{"a": "nul \u0000"}"#,
            r#"{"a": "bidi \u202e"}"#,
            "{\"a\": \"del \u{7f}\"}",
            "{\"a\": \"c1 \u{85}\"}",
            "{\"a\": \"bidi \u{202e}\"}",
            r#"{"k\b": 1}"#,
        ] {
            assert_eq!(check(text, &DEFAULT, &[]).len(), 1, "{text}");
        }
        for text in [
            r#"{"a": "plain \n text \"quoted\" \/"}"#,
            r#"{"caf\u00e9": "\u00e9"}"#,
        ] {
            assert!(check(text, &DEFAULT, &[]).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_character_limit_counts_characters_not_bytes() {
        let limits = JsonLimits {
            max_string_chars: Some(3),
            ..JsonLimits::default()
        };
        // Three four-byte characters pass; four one-byte ones do not; keys count too.
        let text = r#"{"ok": "𝄞𝄞𝄞", "long": "abcd", "keyy": 1}"#;
        let errs = check(text, &limits, &[]);
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
        assert!(check(text, &DEFAULT, &[]).is_empty());
    }

    #[test]
    fn deny_patterns_apply_to_their_field_only() {
        let deny = [DenyPattern::new("/items/*/note", "(?i)<script").unwrap()];
        let text = r#"{"note": "<script>", "items": [{"note": "fine"}, {"note": "<SCRIPT>x"}]}"#;
        let errs = check(text, &DEFAULT, &deny);
        assert_eq!(errs.len(), 1);
        assert_eq!(&*errs[0].pointer, "#/items/1/note");
        assert_eq!(&*errs[0].keyword, "denyPattern");
    }

    #[test]
    fn rfc6901_pointers_escape_tilde_and_slash() {
        assert_eq!(pointer(&["a/b".into(), "c~d".into()]), "#/a~1b/c~0d");
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

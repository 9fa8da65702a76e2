//! [`JsonLimits`]: the input guards that hold with or without a schema.

/// Limits on a JSON body, checked before it is parsed.
///
/// In a configuration file, `validation.limits` with any of these fields (the others keep their
/// defaults): `{max_depth: 16, allow_control_characters: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects (default 32).
    pub max_depth: usize,
    /// Most members of one object or items of one array (default 10,000).
    pub max_members: usize,
    /// Longest string or key, in bytes as sent (default 64 KiB); also the longest query name
    /// or value and path parameter, once percent-decoded.
    pub max_string_bytes: usize,
    /// Longest string or key in characters (Unicode scalar values), once parsed; also the
    /// longest query value and path parameter once decoded (default none: only the byte limit
    /// applies). A byte limit alone lets a value of short characters hold four times as many
    /// as one of long ones; this bounds what a display or a database column sees.
    pub max_string_chars: Option<usize>,
    /// Whether control characters other than tab, line feed and carriage return may appear in
    /// strings, query names and values and path parameters (default false: NUL and the C0/C1
    /// controls are refused, and a path parameter may not hold tab, LF or CR either).
    pub allow_control_characters: bool,
    /// Whether the bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E,
    /// U+2066–U+2069) may appear where control characters are checked (default false: refused,
    /// 422). They make text display in another order than it is stored (the "Trojan Source"
    /// trick, CVE-2021-42574), so a reviewer or an operator reading a log sees something else
    /// than the system behind the handler acts on.
    pub allow_bidi_controls: bool,
    /// Whether the zero-width and invisible formatting characters (U+200B–U+200D, U+2060,
    /// U+FEFF) may appear where control characters are checked (default true: emoji
    /// sequences and some scripts need the joiners). Set false to refuse them (422), for
    /// fields where a look-alike value (`pay\u{200b}pal`) must not pass for another.
    pub allow_invisible_characters: bool,
    /// Whether an object may name the same member twice (default false: refused, 422). JSON
    /// parsers disagree on which duplicate wins (RFC 8259 §4), so a document with duplicates
    /// can mean one thing to palisade and another to a system behind the handler.
    pub allow_duplicate_keys: bool,
}

impl JsonLimits {
    /// The defaults, as a constant.
    pub const DEFAULT: Self = Self {
        max_depth: 32,
        max_members: 10_000,
        max_string_bytes: 64 * 1024,
        max_string_chars: None,
        allow_control_characters: false,
        allow_bidi_controls: false,
        allow_invisible_characters: true,
        allow_duplicate_keys: false,
    };
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The hostile-input limits of one query or path parameter, in place of its operation's
/// ([`Operation::param_limits`](crate::validate::Operation::param_limits)). In a configuration
/// file, under an operation: `param_limits: [{in: query, name: note, limits:
/// {allow_control_characters: true}}]`; in an OpenAPI document, `x-palisade-limits` on the
/// Parameter Object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamLimits {
    /// `query` or `path`.
    #[serde(rename = "in")]
    pub part: crate::rejection::InputPart,
    /// The parameter's name, decoded.
    pub name: String,
    /// Its limits (fields left out keep their defaults).
    pub limits: JsonLimits,
}

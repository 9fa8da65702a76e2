//! The characters the hostile-input guard refuses in strings, keys and parameters: control
//! characters other than the usual whitespace, and the bidirectional controls.

use super::JsonLimits;

/// A character the limits refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// C0 (NUL included), DEL or C1.
    Control,
    /// U+061C, U+200E, U+200F, U+202A–U+202E or U+2066–U+2069.
    Bidi,
    /// U+200B–U+200D, U+2060 or U+FEFF (only when the limits refuse them).
    Invisible,
}

impl Found {
    /// The violation's keyword.
    pub(super) fn keyword(self) -> &'static str {
        match self {
            Self::Control => "controlCharacters",
            Self::Bidi => "bidiControls",
            Self::Invisible => "invisibleCharacters",
        }
    }

    /// What was found, for the violation's detail (never the character itself).
    pub(super) fn what(self) -> &'static str {
        match self {
            Self::Control => "a control character",
            Self::Bidi => "a bidirectional control character",
            Self::Invisible => "an invisible formatting character",
        }
    }
}

/// Whether `bytes` hold a sign of a refused character: DEL, or the first byte of the UTF-8
/// form of a C1 control (`C2`), of U+061C (`D8`), of the other bidirectional controls and the
/// zero-width ones (`E2`), or of U+FEFF (`EF`, looked for only when `limits` refuse invisible
/// characters). Without one, no string needs a closer look (JSON escapes aside).
pub(super) fn any_sign(bytes: &[u8], limits: &JsonLimits) -> bool {
    memchr::memchr3(0x7f, 0xc2, 0xe2, bytes).is_some()
        || memchr::memchr(0xd8, bytes).is_some()
        || (!limits.allow_invisible_characters && memchr::memchr(0xef, bytes).is_some())
}

/// The first refused character of `s`, under `limits`. ASCII text is checked a byte at a time
/// without decoding; other text is decoded only when it holds a sign of one.
pub(super) fn hostile(s: &str, limits: &JsonLimits) -> Option<Found> {
    let bytes = s.as_bytes();
    if !limits.allow_control_characters
        && bytes
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r') || b == 0x7f)
    {
        return Some(Found::Control);
    }
    let all_allowed = limits.allow_control_characters
        && limits.allow_bidi_controls
        && limits.allow_invisible_characters;
    if all_allowed || !any_sign(bytes, limits) {
        return None;
    }
    s.chars().find_map(|c| {
        if !limits.allow_control_characters && is_c1(c) {
            Some(Found::Control)
        } else if !limits.allow_bidi_controls && is_bidi_control(c) {
            Some(Found::Bidi)
        } else if !limits.allow_invisible_characters && is_invisible(c) {
            Some(Found::Invisible)
        } else {
            None
        }
    })
}

/// A C1 control (U+0080–U+009F).
fn is_c1(c: char) -> bool {
    matches!(c, '\u{80}'..='\u{9f}')
}

/// A bidirectional control: the Arabic letter mark, the left-to-right and right-to-left marks,
/// the embeddings, overrides and their pop, and the isolates (Unicode TR9 §2).
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// A zero-width or invisible formatting character: zero-width space, non-joiner and joiner,
/// word joiner, and the byte order mark inside text.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<Found> {
        hostile(s, &JsonLimits::default())
    }

    #[test]
    fn cve_2021_42574_every_bidirectional_control_is_refused_by_default() {
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}',
        ]
        .into_iter()
        .chain([
            '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ]) {
            assert_eq!(
                refused(&format!("ab{c}cd")),
                Some(Found::Bidi),
                "U+{:04X}",
                c as u32
            );
        }
        let allowed = JsonLimits {
            allow_bidi_controls: true,
            ..JsonLimits::default()
        };
        assert_eq!(hostile("admin\u{202e}txt", &allowed), None);
    }

    #[test]
    fn ordinary_text_in_any_script_passes() {
        for s in [
            "plain",
            "naïve café",
            "“quotes” – €5",
            "مرحبا",
            "שלום",
            "日本語",
            "👩‍💻",
            "tab\tnew\nline",
        ] {
            assert_eq!(refused(s), None, "{s}");
        }
    }

    #[test]
    fn controls_are_refused_unless_allowed() {
        assert_eq!(refused("a\u{0}b"), Some(Found::Control));
        assert_eq!(refused("a\u{85}b"), Some(Found::Control));
        assert_eq!(refused("a\u{7f}b"), Some(Found::Control));
        let allowed = JsonLimits {
            allow_control_characters: true,
            ..JsonLimits::default()
        };
        assert_eq!(hostile("a\u{0}b", &allowed), None);
        // Allowing controls does not allow the bidirectional ones.
        assert_eq!(hostile("a\u{202e}b", &allowed), Some(Found::Bidi));
    }

    #[test]
    fn invisible_characters_pass_by_default_and_are_refused_when_asked() {
        // Emoji sequences and some scripts need the joiners.
        assert_eq!(refused("👩\u{200d}💻"), None);
        assert_eq!(refused("a\u{feff}b"), None);
        let strict = JsonLimits {
            allow_invisible_characters: false,
            ..JsonLimits::default()
        };
        for c in ['\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}'] {
            assert_eq!(
                hostile(&format!("pay{c}pal"), &strict),
                Some(Found::Invisible),
                "U+{:04X}",
                c as u32
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_sign_bytes_never_miss_a_refused_character(s in "\\PC*") {
            let strict = JsonLimits {
                allow_invisible_characters: false,
                ..JsonLimits::default()
            };
            for limits in [JsonLimits::default(), strict] {
                if hostile(&s, &limits).is_some() {
                    proptest::prop_assert!(
                        any_sign(s.as_bytes(), &limits) || s.bytes().any(|b| b < 0x20)
                    );
                }
            }
        }
    }
}

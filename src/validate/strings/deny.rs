//! [`DenyPattern`]: string values refused at a path in a JSON body.

use regex::Regex;

use super::Seg;

/// A field pattern (`/comment`, `/items/*/name`: `*` is any one member) and the regex its
/// string values must not match. In a configuration file:
/// `{field: /note, pattern: "(?i)<script"}`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "RawDeny")]
pub struct DenyPattern {
    path: Box<[Box<str>]>,
    pub(super) regex: Regex,
}

/// The file form of a [`DenyPattern`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    field: String,
    pattern: String,
}

impl TryFrom<RawDeny> for DenyPattern {
    type Error = String;

    fn try_from(raw: RawDeny) -> Result<Self, String> {
        Self::new(&raw.field, &raw.pattern)
            .map_err(|e| format!("deny pattern for `{}`: {e}", raw.field))
    }
}

impl DenyPattern {
    /// Refuses string values at `path` (a JSON pointer, `*` matching any one member) that
    /// match `regex`. The `regex` crate runs in linear time: no pattern can backtrack
    /// catastrophically.
    ///
    /// # Errors
    ///
    /// The regex's own error when it does not compile.
    pub fn new(path: &str, regex: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            path: path
                .split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~").into())
                .collect(),
            regex: Regex::new(regex)?,
        })
    }

    pub(super) fn matches_path(&self, path: &[Seg<'_>]) -> bool {
        self.path.len() == path.len()
            && self.path.iter().zip(path).all(|(p, s)| {
                &**p == "*"
                    || match s {
                        Seg::Key(k) => **p == **k,
                        Seg::Index(i) => p.parse::<usize>().ok() == Some(*i),
                    }
            })
    }
}

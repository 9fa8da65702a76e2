//! Plain-text tables: columns aligned, numbers to the right, and nothing from a log that could
//! drive a terminal (control characters are shown escaped).

use std::fmt::Write as _;

/// A table: a header and rows of cells; columns whose header is in `numeric` align right.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    numeric: Vec<bool>,
}

impl Table {
    /// A table with these column headers; `numeric[i]` right-aligns column `i`.
    pub(crate) fn new(header: &[&str], numeric: &[bool]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            numeric: numeric.to_vec(),
        }
    }

    /// Appends a row (cells are made safe to print).
    pub(crate) fn row(&mut self, cells: &[&str]) {
        self.rows.push(cells.iter().map(|c| printable(c)).collect());
    }

    /// Whether the table has no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row after the header and a rule.
    pub(crate) fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(self.header[i].chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let mut out = String::new();
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        for cells in std::iter::once(&self.header)
            .chain(std::iter::once(&rule))
            .chain(&self.rows)
        {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let w = widths[i];
                if i > 0 {
                    line.push_str("  ");
                }
                if self.numeric.get(i).copied().unwrap_or(false) {
                    let _ = write!(line, "{cell:>w$}");
                } else {
                    let _ = write!(line, "{cell:<w$}");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `n` and the noun, singular or plural: `1 rule`, `2 rules`.
pub(crate) fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `s` with control characters (ANSI escapes, newlines, bidirectional overrides) escaped, so a
/// value an attacker chose (a path, a subject) cannot rewrite the operator's terminal.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let mut t = Table::new(&["hour", "reason", "count"], &[false, false, true]);
        t.row(&["10:00", "wrong_secret", "7"]);
        t.row(&["11:00", "missing_role", "120"]);
        assert_eq!(
            t.render(),
            "hour   reason        count\n\
             -----  ------------  -----\n\
             10:00  wrong_secret      7\n\
             11:00  missing_role    120\n"
        );
    }

    #[test]
    fn control_characters_from_a_log_are_shown_escaped() {
        assert_eq!(printable("/a\u{1b}[2J\nb"), "/a\\u{1b}[2J\\u{a}b");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("ünïcode"), "ünïcode");
        assert_eq!(count(1_u32, "rule", "rules"), "1 rule");
        assert_eq!(count(0_u32, "rule", "rules"), "0 rules");
    }
}

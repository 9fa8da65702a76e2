//! The scalars of the parse: strings (escapes decoded), numbers and literals.

use super::{BuildError, Parser};
use crate::json_text::plain_until;
use crate::validate::tape::{Span, Tok, span};

impl Parser<'_, '_> {
    pub(super) fn literal(&mut self, word: &[u8], tok: Tok) -> Result<(), BuildError> {
        if self.b.get(self.i..self.i + word.len()) != Some(word) {
            return Err(self.syntax("expected value"));
        }
        self.i += word.len();
        self.toks.push(tok);
        Ok(())
    }

    /// A string at its opening quote: a span of the text, or of `escaped` once decoded.
    #[inline]
    pub(super) fn string(&mut self) -> Result<Span, BuildError> {
        let start = self.i + 1;
        let j = plain_until(self.b, start);
        if self.b.get(j) == Some(&b'"') {
            self.too_long(j - start)?;
            self.i = j + 1;
            return Ok(span(start, j - start));
        }
        self.string_rest(start, j)
    }

    /// The rest of a string that is not plain text up to its closing quote: escapes decoded
    /// into `escaped`, or the error where it breaks.
    #[inline(never)]
    fn string_rest(&mut self, start: usize, j: usize) -> Result<Span, BuildError> {
        match self.b.get(j) {
            Some(b'\\') => {}
            Some(_) => {
                self.i = j;
                return Err(
                    self.syntax("control character (\\u0000-\\u001F) found while parsing a string")
                );
            }
            None => {
                self.i = j;
                return Err(self.syntax("EOF while parsing a string"));
            }
        }
        let at = self.text.len() + self.escaped.len();
        self.escaped.push_str(&self.text[start..j]);
        self.i = j;
        loop {
            match self.b.get(self.i) {
                Some(b'"') => break,
                Some(b'\\') => self.escape()?,
                Some(c) if *c < 0x20 => {
                    return Err(self.syntax(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
                Some(_) => {
                    let run = self.i;
                    self.i = plain_until(self.b, run);
                    self.escaped.push_str(&self.text[run..self.i]);
                }
                None => return Err(self.syntax("EOF while parsing a string")),
            }
        }
        self.too_long(self.i - start)?;
        self.i += 1;
        Ok(span(at, self.text.len() + self.escaped.len() - at))
    }

    /// The string limit, on the bytes as sent.
    #[inline]
    fn too_long(&self, sent: usize) -> Result<(), BuildError> {
        let max = self.limits.max_string_bytes;
        if sent > max {
            return Err(Self::limit(
                "maxStringBytes",
                format!("a string is longer than {max} bytes"),
            ));
        }
        Ok(())
    }

    /// One escape sequence at its backslash, decoded into `escaped`.
    fn escape(&mut self) -> Result<(), BuildError> {
        let c = match self.b.get(self.i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.i += 2;
                let hi = self.hex4()?;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by `\u` and a low one (RFC 8259 §7).
                    if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                        return Err(self.syntax("lone leading surrogate in hex escape"));
                    }
                    self.i += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(self.syntax("lone leading surrogate in hex escape"));
                    }
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                } else {
                    char::from_u32(hi)
                };
                let Some(c) = c else {
                    return Err(self.syntax("lone trailing surrogate in hex escape"));
                };
                self.escaped.push(c);
                return Ok(());
            }
            Some(_) => {
                self.i += 1;
                return Err(self.syntax("invalid escape"));
            }
            None => return Err(self.syntax("EOF while parsing a string")),
        };
        self.escaped.push(c);
        self.i += 2;
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u32, BuildError> {
        let mut n = 0;
        for _ in 0..4 {
            let d = match self.b.get(self.i) {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                Some(_) => return Err(self.syntax("invalid escape")),
                None => return Err(self.syntax("EOF while parsing a string")),
            };
            n = n * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(n)
    }

    /// A number (RFC 8259 §6): integers as `u64` or `i64` where they fit, others as the
    /// nearest `f64` (as serde_json reads them); out of `f64`'s range is an error.
    pub(super) fn number(&mut self) -> Result<Tok, BuildError> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.i;
            while let Some(b'0'..=b'9') = p.peek() {
                p.i += 1;
            }
            p.i - from
        };
        let int_start = self.i;
        match digits(self) {
            0 => return Err(self.syntax("invalid number")),
            n if n > 1 && self.b[int_start] == b'0' => {
                self.i = int_start + 1;
                return Err(self.syntax("invalid number"));
            }
            _ => {}
        }
        let int_end = self.i;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.syntax("invalid number"));
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.syntax("invalid number"));
            }
            float = true;
        }
        if !float {
            let mut n: u64 = 0;
            let fits = self.b[int_start..int_end].iter().all(|d| {
                match n
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(d - b'0')))
                {
                    Some(m) => {
                        n = m;
                        true
                    }
                    None => false,
                }
            });
            if fits {
                if !negative {
                    return Ok(Tok::U64(n));
                }
                if n == 0 {
                    return Ok(Tok::F64(-0.0));
                }
                if let Some(i) = i64::try_from(n)
                    .ok()
                    .map(|i| -i)
                    .or((n == 1 << 63).then_some(i64::MIN))
                {
                    return Ok(Tok::I64(i));
                }
            }
        }
        match self.text[start..self.i].parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Tok::F64(f)),
            _ => Err(BuildError::Syntax(format!(
                "number out of range at {}",
                self.position(start)
            ))),
        }
    }
}

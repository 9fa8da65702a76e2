//! [`Decoding`]: request bodies in a `Content-Encoding` that an operation decodes, within
//! bounds, before they are checked (feature `decompression`).
//!
//! Refusing is the default: a body labelled `gzip` gets 415 with `Accept-Encoding: identity`
//! (RFC 9110 §15.5.16). An operation that decodes does it on the whole body it has read (at
//! most its `max_body_bytes`), stops at `max_body_bytes` of output and at `max_ratio` times the
//! encoded size, whichever comes first (413), and hands the handler the decoded body without
//! its `Content-Encoding`. zstd frames that ask for a window over 8 MiB are refused (RFC 8878
//! §3.1.1.1.2 recommends decoders accept 8 MiB), so a few header bytes cannot reserve more.

use serde::Deserialize;

/// A content coding (RFC 9110 §8.4.1) palisade can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Coding {
    /// `gzip` (and its alias `x-gzip`), RFC 1952.
    Gzip,
    /// `deflate`: the zlib format (RFC 1950), as RFC 9110 §8.4.1.2 defines it.
    Deflate,
    /// `br`, Brotli (RFC 7932).
    Br,
    /// `zstd`, Zstandard (RFC 8878).
    Zstd,
}

impl Coding {
    /// Every coding, for [`Decoding::all`].
    pub const ALL: [Self; 4] = [Self::Gzip, Self::Deflate, Self::Br, Self::Zstd];

    /// Its `Content-Encoding` token.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Br => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The coding a `Content-Encoding` token names (case-insensitive), if palisade knows it.
    #[must_use]
    pub fn from_token(token: &str) -> Option<Self> {
        let t = token.trim_matches([' ', '\t']);
        [
            ("gzip", Self::Gzip),
            ("x-gzip", Self::Gzip),
            ("deflate", Self::Deflate),
            ("br", Self::Br),
            ("zstd", Self::Zstd),
        ]
        .into_iter()
        .find_map(|(name, c)| t.eq_ignore_ascii_case(name).then_some(c))
    }
}

/// Which codings an operation decodes, and how far a body may expand.
///
/// In a configuration file: `validation.decode: {codings: [gzip, br], max_ratio: 50}` (every
/// operation) or the same under one operation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    /// The codings decoded; a body in another is refused (415).
    pub codings: Vec<Coding>,
    /// The most a body may expand: decoded size over encoded size (default 100). The decoded
    /// body is also held to the operation's `max_body_bytes`.
    #[serde(default = "default_ratio")]
    pub max_ratio: u32,
}

fn default_ratio() -> u32 {
    DEFAULT_MAX_RATIO
}

/// [`Decoding::max_ratio`]'s default.
pub const DEFAULT_MAX_RATIO: u32 = 100;

impl Decoding {
    /// Decodes `codings`, with the default ratio limit.
    #[must_use]
    pub fn new(codings: impl IntoIterator<Item = Coding>) -> Self {
        Self {
            codings: codings.into_iter().collect(),
            max_ratio: DEFAULT_MAX_RATIO,
        }
    }

    /// Decodes gzip, deflate, br and zstd.
    #[must_use]
    pub fn all() -> Self {
        Self::new(Coding::ALL)
    }

    /// The most a body may expand (decoded over encoded size).
    #[must_use]
    pub fn max_ratio(mut self, ratio: u32) -> Self {
        self.max_ratio = ratio.max(1);
        self
    }

    pub(crate) fn accepts(&self, coding: Coding) -> bool {
        self.codings.contains(&coding)
    }

    /// The `Accept-Encoding` of a 415 from an operation that decodes these codings.
    pub(crate) fn accept_encoding(&self) -> http::HeaderValue {
        let mut names: Vec<&str> = self.codings.iter().map(|c| c.name()).collect();
        names.dedup();
        names.push("identity");
        http::HeaderValue::from_str(&names.join(", "))
            .unwrap_or(http::HeaderValue::from_static("identity"))
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "decompression"), allow(dead_code))]
pub(crate) enum DecodeError {
    /// Past the size limit (`by_ratio`: the ratio's bound was the smaller).
    TooLarge { limit: usize, by_ratio: bool },
    /// Not a valid stream of its coding.
    Corrupt,
}

/// `input` decoded from `coding`, at most `max` bytes and `max_ratio` times its size.
#[cfg(feature = "decompression")]
pub(crate) fn decode(
    coding: Coding,
    input: &[u8],
    max: usize,
    max_ratio: u32,
) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;

    /// 2^23 bytes: the window RFC 8878 §3.1.1.1.2 recommends decoders support.
    const ZSTD_WINDOW_LOG_MAX: u32 = 23;
    let by_ratio = input.len().saturating_mul(max_ratio as usize);
    let limit = max.min(by_ratio);
    let take = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(input)
            .take(take)
            .read_to_end(&mut out),
        Coding::Deflate => flate2::read::ZlibDecoder::new(input)
            .take(take)
            .read_to_end(&mut out),
        Coding::Br => brotli_decompressor::Decompressor::new(input, 4096)
            .take(take)
            .read_to_end(&mut out),
        Coding::Zstd => zstd::stream::read::Decoder::with_buffer(input).and_then(|mut d| {
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            d.take(take).read_to_end(&mut out)
        }),
    };
    if out.len() > limit {
        return Err(DecodeError::TooLarge {
            limit,
            by_ratio: limit < max,
        });
    }
    read.map_err(|_| DecodeError::Corrupt)?;
    Ok(out)
}

/// Without the `decompression` feature no operation can be built to decode (the builder
/// refuses it), so this is never reached.
#[cfg(not(feature = "decompression"))]
pub(crate) fn decode(
    _coding: Coding,
    _input: &[u8],
    _max: usize,
    _max_ratio: u32,
) -> Result<Vec<u8>, DecodeError> {
    Err(DecodeError::Corrupt)
}

/// The one coding of a request's `Content-Encoding` lines: `Ok(None)` for none (or only
/// `identity`), `Err(())` for a coding palisade does not know or for stacked codings
/// (`gzip, br`), which are refused rather than half-decoded.
pub(crate) fn content_coding(headers: &http::HeaderMap) -> Result<Option<Coding>, ()> {
    let mut found = None;
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| ())?;
        for token in text.split(',') {
            let token = token.trim_matches([' ', '\t']);
            if token.is_empty() || token.eq_ignore_ascii_case("identity") {
                continue;
            }
            let coding = Coding::from_token(token).ok_or(())?;
            if found.replace(coding).is_some() {
                return Err(());
            }
        }
    }
    Ok(found)
}

#[cfg(all(test, feature = "decompression"))]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_coding_round_trips() {
        let plain = br#"{"name": "a", "qty": 2}"#.repeat(10);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        let deflate = z.finish().unwrap();
        let zstd = zstd::encode_all(&plain[..], 3).unwrap();
        for (coding, encoded) in [
            (Coding::Gzip, gzip(&plain)),
            (Coding::Deflate, deflate),
            (Coding::Zstd, zstd),
        ] {
            assert_eq!(
                decode(coding, &encoded, 1 << 20, 100).unwrap(),
                plain,
                "{coding:?}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_at_the_ratio() {
        let bomb = gzip(&vec![b' '; 10 << 20]);
        assert!(
            bomb.len() < 20 << 10,
            "10 MB of spaces compress to {} bytes",
            bomb.len()
        );
        assert_eq!(
            decode(Coding::Gzip, &bomb, 1 << 20, u32::MAX),
            Err(DecodeError::TooLarge {
                limit: 1 << 20,
                by_ratio: false
            })
        );
        let limit = bomb.len() * 100;
        assert_eq!(
            decode(Coding::Gzip, &bomb, 1 << 30, 100),
            Err(DecodeError::TooLarge {
                limit,
                by_ratio: true
            })
        );
    }

    #[test]
    fn a_corrupt_stream_is_an_error() {
        assert_eq!(
            decode(Coding::Gzip, b"{\"plain\": true}", 1 << 20, 100),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(
            decode(Coding::Br, b"\xff\xff\xff", 1 << 20, 100),
            Err(DecodeError::Corrupt)
        );
    }

    #[test]
    fn rfc9110_8_4_stacked_and_unknown_codings_are_not_decoded() {
        let headers = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.append(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static(v),
            );
            h
        };
        assert_eq!(content_coding(&headers("GZIP")), Ok(Some(Coding::Gzip)));
        assert_eq!(content_coding(&headers("identity")), Ok(None));
        assert_eq!(content_coding(&headers("gzip, br")), Err(()));
        assert_eq!(content_coding(&headers("compress")), Err(()));
        let mut two = headers("gzip");
        two.append(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
        assert_eq!(content_coding(&two), Err(()));
    }
}

//! The benches' `Order` (`benches/support/order.rs`) built by each JSON parser of the field.

#[path = "../../support/order.rs"]
mod order;

/// The ~1 KB order of the benches.
pub fn order_body() -> bytes::Bytes {
    order::body()
}

/// `n` orders in one array.
pub fn batch_body(n: usize) -> bytes::Bytes {
    order::batch_body(n)
}

/// The order built from `body` by `parser`, dropped.
pub fn build_order(parser: Parser, body: &[u8], scratch: &mut Scratch) {
    std::hint::black_box(parse::<order::Order>(parser, body, scratch));
}

/// The orders of an array built from `body` by `parser`, dropped.
pub fn build_batch(parser: Parser, body: &[u8], scratch: &mut Scratch) {
    std::hint::black_box(parse::<Vec<order::Order>>(parser, body, scratch));
}

/// A parser that builds `T` with serde from a body's bytes.
#[derive(Debug, Clone, Copy)]
pub enum Parser {
    /// `serde_json::from_slice` (UTF-8 checked per string, as axum's `Json` reads a body).
    SerdeJsonSlice,
    /// `serde_json::from_str` over a body whose UTF-8 was checked once (palisade's fused pass).
    SerdeJsonStr,
    /// `simd_json::serde::from_slice_with_buffers` over a copy of the body, buffers reused.
    SimdJson,
    /// `sonic_rs::from_slice`.
    SonicRs,
}

impl Parser {
    /// Every parser, in the order the benches print them.
    pub const ALL: [Parser; 4] = [
        Parser::SerdeJsonSlice,
        Parser::SerdeJsonStr,
        Parser::SimdJson,
        Parser::SonicRs,
    ];

    /// The parser's name in the benches' output.
    pub fn name(self) -> &'static str {
        match self {
            Parser::SerdeJsonSlice => "serde_json-slice",
            Parser::SerdeJsonStr => "serde_json-str",
            Parser::SimdJson => "simd-json",
            Parser::SonicRs => "sonic-rs",
        }
    }

    /// The parser named `name`.
    pub fn named(name: &str) -> Option<Parser> {
        Parser::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What a parser needs besides the body: simd-json's buffers and a copy to parse in place.
#[derive(Default)]
pub struct Scratch {
    copy: Vec<u8>,
    buffers: simd_json::Buffers,
}

/// `T` built from `body` by `parser`.
fn parse<T: serde::de::DeserializeOwned>(parser: Parser, body: &[u8], scratch: &mut Scratch) -> T {
    match parser {
        Parser::SerdeJsonSlice => serde_json::from_slice(body).unwrap(),
        Parser::SerdeJsonStr => {
            let text = std::str::from_utf8(body).unwrap();
            serde_json::from_str(text).unwrap()
        }
        Parser::SimdJson => {
            scratch.copy.clear();
            scratch.copy.extend_from_slice(body);
            simd_json::serde::from_slice_with_buffers(&mut scratch.copy, &mut scratch.buffers)
                .unwrap()
        }
        Parser::SonicRs => sonic_rs::from_slice(body).unwrap(),
    }
}

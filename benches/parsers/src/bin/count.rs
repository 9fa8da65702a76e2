//! `count PARSER N`: builds the ~1 KB order N times with PARSER, for callgrind to count
//! (`run.sh` subtracts N = 0).

use palisade_parsers_bench::{Parser, Scratch, build_order, order_body};

fn main() {
    let mut args = std::env::args().skip(1);
    let parser = args
        .next()
        .and_then(|p| Parser::named(&p))
        .expect("a parser's name");
    let n: usize = args.next().and_then(|n| n.parse().ok()).expect("a count");
    let one = order_body();
    let mut scratch = Scratch::default();
    // Once outside the count: simd-json's buffers grow to fit on the first body.
    build_order(parser, &one, &mut scratch);
    for _ in 0..n {
        build_order(parser, std::hint::black_box(&one), &mut scratch);
    }
}

//! Time per body: the ~1 KB order and 1,050 of them in one array (1.06 MB), built by each
//! parser. `cargo bench --manifest-path benches/parsers/Cargo.toml`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade_parsers_bench::{Parser, Scratch, batch_body, build_batch, build_order, order_body};

fn parsers(c: &mut Criterion) {
    let one = order_body();
    let batch = batch_body(1050);
    let mut scratch = Scratch::default();
    for (group, bytes) in [("parse-1kb", &one), ("parse-1mb", &batch)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        for parser in Parser::ALL {
            g.bench_function(parser.name(), |b| {
                b.iter(|| {
                    if group == "parse-1kb" {
                        build_order(parser, bytes, &mut scratch);
                    } else {
                        build_batch(parser, bytes, &mut scratch);
                    }
                });
            });
        }
        g.finish();
    }
}

criterion_group!(benches, parsers);
criterion_main!(benches);

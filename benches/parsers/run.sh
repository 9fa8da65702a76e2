#!/usr/bin/env bash
# Instructions (callgrind) to build the ~1 KB order with each parser, then criterion's time
# for the order and for 1,050 of them (1.06 MB). Needs valgrind.
# Usage: bash benches/parsers/run.sh [N]
set -euo pipefail
n=${1:-2000}
cd "$(dirname "$0")"
cargo build --release --bin count --quiet
bin=${CARGO_TARGET_DIR:-target}/release/count
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
printf '%-20s %22s\n' parser instructions/order
for parser in serde_json-slice serde_json-str simd-json sonic-rs; do
  base=$(count "$parser" 0)
  total=$(count "$parser" "$n")
  printf '%-20s %22d\n' "$parser" $(( (total - base) / n ))
done
cargo bench --bench parsers --quiet -- --warm-up-time 1 --measurement-time 3

#!/usr/bin/env bash
# Instructions per request (callgrind, every thread) of the stacks `benches/stack.rs` compares:
# palisade's full stack, the peer assembled from public crates, and the bare handler, with an
# API key, a repeated ES256 token and first-sight ES256 tokens. Only the measured function is
# counted (`--toggle-collect`), so each figure is its instructions / N.
# Usage: bash benches/stack_callgrind.sh [N]   (needs valgrind: apt-get install valgrind)
# FEATURES=jwt,_peer-aws-lc puts both palisade's and the peer's signature checks on AWS-LC.
set -euo pipefail
n=${1:-1000}
first=200
cd "$(dirname "$0")/.."
cargo build --release --bench stack_instructions --features "${FEATURES:-jwt}" --quiet
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/stack_instructions-* | grep -v '\.d$' | head -n1)
count() {
  valgrind --tool=callgrind --toggle-collect='stack_instructions::measure' --callgrind-out-file=/dev/null \
    "$bin" "$1" "$2" 2>&1 | sed -n 's/.*refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
printf '%-24s %22s\n' case instructions/request
for case in bare bare-json palisade-key palisade-key-no-audit palisade-es256 palisade-es256-first \
  peer-key peer-key-keymatch2 peer-es256 peer-es256-first; do
  m=$n
  case "$case" in *-first) m=$first ;; esac
  total=$(count "$case" "$m")
  printf '%-24s %22d\n' "$case" $(( total / m ))
done

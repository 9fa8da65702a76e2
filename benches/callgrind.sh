#!/usr/bin/env bash
# Instructions (callgrind) and heap allocations (dhat) per request, per case: API-key
# authentication, authorization, quotas (beside tower_governor) and the whole stack.
# Usage: bash benches/callgrind.sh [N]   (needs valgrind: apt-get install valgrind)
set -euo pipefail
n=${1:-2000}
cd "$(dirname "$0")/.."
cargo build --release --bench instructions --features jwt --quiet
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/instructions-* | grep -v '\.d$' | head -n1)
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
printf '%-20s %22s %22s\n' case instructions/request allocations/request
for case in valid unknown_id wrong_secret bad_checksum missing cached:valid cached:unknown_id cached:wrong_secret \
  stack:bare stack:passthrough stack:valid stack:unknown_id stack:wrong_secret stack:bad_checksum stack:missing \
  stack:authz-allow stack:authz-deny \
  stack:quota-quiet stack:quota-fields stack:quota-clients stack:governor stack:governor-fields stack:full stack:jwt stack:audit order:bare order:serde order:validate order:full; do
  base=$(count "$case" 0)
  total=$(count "$case" "$n")
  allocs=$(PALISADE_COUNT_ALLOCATIONS=1 "$bin" "$case" "$n" | sed -n 's/allocations\/request //p')
  printf '%-20s %22d %22s\n' "$case" $(( (total - base) / n )) "$allocs"
done
# DPoP: a cached bound token with a fresh proof, beside one uncached ES256 token; both sign
# 500 proofs or tokens before counting (so N = 0 subtracts it), hence at most 500 requests.
m=$(( n < 500 ? n : 500 ))
for case in dpop:fresh-proof dpop:uncached-es256; do
  base=$(count "$case" 0)
  total=$(count "$case" "$m")
  printf '%-20s %22d %22s\n' "$case" $(( (total - base) / m )) "-"
done

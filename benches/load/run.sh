#!/usr/bin/env bash
# Loopback load test: requests/s and latency of the bare handler, the full palisade stack (API
# key, and a repeated ES256 token) and the peer stack (the same guard from public crates: casbin
# matching the route template, or with keyMatch2), against 127.0.0.1 only. The server is pinned
# to core 0 and wrk (-t1 -c32) to core 1, so neither takes the other's CPU; the stacks are
# interleaved over ROUNDS rounds of DURATION seconds each, and the medians are reported.
# Usage: bash benches/load/run.sh [DURATION] [ROUNDS]
# (needs wrk and taskset: apt-get install wrk util-linux)
set -euo pipefail
duration=${1:-10}
rounds=${2:-3}
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs two cores: one for the server, one for wrk"; exit 1; }
cargo build --release --features jwt --example load_server --quiet
bin=${CARGO_TARGET_DIR:-target}/release/examples/load_server
body=$(mktemp)
results=$(mktemp)
# The same ~1 KB order the benches send.
"$bin" body > "$body"
modes="bare bare-json palisade palisade-jwt peer peer-keymatch2 peer-jwt"
for round in $(seq "$rounds"); do
  for mode in $modes; do
    out=$(mktemp)
    taskset -c 0 "$bin" "$mode" 127.0.0.1:0 >"$out" &
    pid=$!
    for _ in $(seq 100); do grep -q '^header ' "$out" && break; sleep 0.1; done
    addr=$(sed -n 's/^listening on //p' "$out")
    header=$(sed -n 's/^header //p' "$out")
    # One request first: it must be accepted (201), or the numbers would measure refusals.
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
      -H "$header" --data-binary @"$body" "http://$addr/v1/orders")
    [ "$status" = 201 ] || { echo "$mode answered $status"; kill "$pid"; exit 1; }
    result=$(PALISADE_HEADER="$header" PALISADE_BODY="$body" taskset -c 1 \
      wrk -t1 -c32 -d"${duration}s" --latency -s benches/load/order.lua "http://$addr/v1/orders")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(echo "$result" | sed -n 's/^Requests\/sec: *//p')
    p50=$(echo "$result" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$result" | sed -n 's/.*Non-2xx or 3xx responses: *//p')
    [ -z "$non2xx" ] || { echo "$mode: $non2xx responses were not 2xx"; exit 1; }
    echo "$mode $rps $p50 $p99" >>"$results"
    printf 'round %s %-15s %12s %10s %10s\n' "$round" "$mode" "$rps" "$p50" "$p99"
    rm -f "$out"
  done
done
echo
printf '%-15s %16s %10s %10s\n' stack "median req/s" p50 p99
for mode in $modes; do
  awk -v m="$mode" '$1 == m' "$results" | sort -k2 -g | awk -v r="$rounds" -v m="$mode" \
    'NR == int((r + 1) / 2) {printf "%-15s %16s %10s %10s\n", m, $2, $3, $4}'
done
rm -f "$body" "$results"

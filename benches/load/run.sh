#!/usr/bin/env bash
# Loopback load test: requests/s and p99 latency of the bare handler, the full palisade stack
# (API key, and a repeated ES256 token) and the peer stack (the same guard from public crates),
# each for DURATION seconds with wrk (-t1 -c32), against 127.0.0.1 only. Client and server
# share the machine's cores, as in the figures of docs/PERFORMANCE.md.
# Usage: bash benches/load/run.sh [DURATION]   (needs wrk: apt-get install wrk)
set -euo pipefail
duration=${1:-10}
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --features jwt --example load_server --quiet
bin=target/release/examples/load_server
body=$(mktemp)
# The same ~1 KB order the benches send.
"$bin" body > "$body"
printf '%-14s %12s %10s %10s\n' stack requests/s p50 p99
for mode in bare palisade palisade-jwt peer peer-jwt; do
  out=$(mktemp)
  "$bin" "$mode" 127.0.0.1:0 >"$out" &
  pid=$!
  for _ in $(seq 100); do grep -q '^header ' "$out" && break; sleep 0.1; done
  addr=$(sed -n 's/^listening on //p' "$out")
  header=$(sed -n 's/^header //p' "$out")
  # One request first: it must be accepted (201), or the numbers would measure refusals.
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -H "$header" --data-binary @"$body" "http://$addr/v1/orders")
  [ "$status" = 201 ] || { echo "$mode answered $status"; kill "$pid"; exit 1; }
  result=$(PALISADE_HEADER="$header" PALISADE_BODY="$body" \
    wrk -t1 -c32 -d"${duration}s" --latency -s benches/load/order.lua "http://$addr/v1/orders")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rps=$(echo "$result" | sed -n 's/^Requests\/sec: *//p')
  p50=$(echo "$result" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
  non2xx=$(echo "$result" | sed -n 's/.*Non-2xx or 3xx responses: *//p')
  printf '%-14s %12s %10s %10s %s\n' "$mode" "$rps" "$p50" "$p99" "${non2xx:+(non-2xx: $non2xx)}"
  rm -f "$out"
done
rm -f "$body"

#!/usr/bin/env bash
# Record change → handler call latency (one process: in-process emulator +
# Service, see benches/floor/src/latency.rs). RUNS runs of N Contacts, one
# every INTERVAL_MS; prints each run's JSON line and the median of each figure.
#
# Usage: bash benches/latency.sh      (RUNS=3 N=2000 INTERVAL_MS=2 SKIP_BUILD=1)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
RUNS="${RUNS:-3}"
N="${N:-2000}"
INTERVAL_MS="${INTERVAL_MS:-2}"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -q -p sfstream-bench
fi
out=$(mktemp)
for run in $(seq 1 "$RUNS"); do
    timeout 300 target/release/sfstream-bench latency "$N" "$INTERVAL_MS" | tee -a "$out"
done
python3 - "$out" <<'PYEOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda k: statistics.median(r[k] for r in runs)
print(f"\nmedians of {len(runs)} runs of {runs[0]['created']} Contacts, one every {runs[0]['interval_ms']} ms\n")
print("| p50 µs | p90 µs | p99 µs | max µs | mean µs |")
print("| ---: | ---: | ---: | ---: | ---: |")
print(f"| {med('p50_us'):.0f} | {med('p90_us'):.0f} | {med('p99_us'):.0f} | {med('max_us'):.0f} | {med('mean_us'):.0f} |")
PYEOF
rm -f "$out"

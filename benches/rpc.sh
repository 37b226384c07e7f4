#!/usr/bin/env bash
# Nameko RPC throughput: echo(x) calls per second answered by
#   rust-10    `sfstream-bench rpc-server NAME 10` (sfstream-nameko RpcServer,
#              max_workers 10 = Nameko's default = the queue prefetch),
#   rust-100   the same with max_workers 100,
#   python     Python Nameko 2.14.1 (benches/clients/nameko_echo_service.py:
#              eventlet-patched ServiceRunner as `nameko run`, default
#              max_workers 10),
#   ceiling-10, ceiling-100  `sfstream-bench ceiling-server NAME PREFETCH`: the
#              broker's own ceiling, the same AMQP work as a Nameko call
#              (confirms, persistent, mandatory, acks) with no Nameko code on
#              either side, loaded by `sfstream-bench ceiling-client` only;
#              the servers above are reported as fractions of it,
# all on the same RabbitMQ, each Nameko server loaded by
#   py client    benches/clients/nameko_rpc_load.py: CONCURRENCY eventlet green
#                threads, each with its own nameko.standalone.rpc.ClusterRpcProxy,
#   rust client  `sfstream-bench rpc-client NAME CALLS CONCURRENCY`: CONCURRENCY
#                tasks, each with its own sfstream-nameko RpcProxy.
# Calls/s = CALLS / time of the calls (proxies started before the clock).
# Server CPU = user+sys ticks of the server process over the timed run
# (/proc/PID/stat), per call; likewise RabbitMQ's (beam.smp) when local. Runs are interleaved; figures are medians of RUNS.
#
# Usage: bash benches/rpc.sh
# Environment:
#   RUNS=3  CALLS=4000  CONCURRENCY=8
#   SFSTREAM_AMQP_URI   default amqp://guest:guest@127.0.0.1:5672/%2f (Rust)
#   PY_AMQP_URI         default amqp://guest:guest@127.0.0.1:5672/ (Python)
#   SFSTREAM_PYTHON     python with nameko 2.14.1 (default <repo>/.venv/bin/python)
#   SKIP_BUILD=1        use target/release/sfstream-bench as it is
#   OUT=DIR             where raw figures go (default: a temporary directory)
# Everything is on 127.0.0.1; every server exits after 900 s at the latest
# and each client run is bounded by `timeout`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
RUNS="${RUNS:-3}"
CALLS="${CALLS:-4000}"
CONCURRENCY="${CONCURRENCY:-8}"
PY_AMQP_URI="${PY_AMQP_URI:-amqp://guest:guest@127.0.0.1:5672/}"
RUN_TIMEOUT=300
LIFETIME=900

say() { printf 'rpc: %s\n' "$*" >&2; }
die() {
    printf 'rpc: ERROR: %s\n' "$*" >&2
    exit 1
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "cargo build --release -p sfstream-bench"
    cargo build --release -q -p sfstream-bench
fi
bench="$repo/target/release/sfstream-bench"
[[ -x "$bench" ]] || die "target/release/sfstream-bench missing"
python="${SFSTREAM_PYTHON:-$repo/.venv/bin/python}"
"$python" -W ignore -c 'import nameko' 2>/dev/null || die "no nameko in $python (set SFSTREAM_PYTHON)"

OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
say "raw figures in $OUT"
tag="b$$"
declare -A pid name
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Servers: stdin is a fifo held open by this script, so they also exit with it.
start_server() { # key cmd...
    local key="$1"
    shift
    mkfifo "$OUT/$key.ctl"
    "$@" < "$OUT/$key.ctl" > "$OUT/$key.server.log" 2>&1 &
    pid[$key]=$!
    pids+=("$!")
    exec {fd}> "$OUT/$key.ctl"
    local i
    for i in $(seq 1 100); do
        grep -q '"ready"' "$OUT/$key.server.log" 2>/dev/null && return 0
        kill -0 "${pid[$key]}" 2>/dev/null || break
        sleep 0.2
    done
    cat "$OUT/$key.server.log" >&2
    die "$key server not ready"
}
name[rust-10]="rs10-$tag"
name[rust-100]="rs100-$tag"
name[python]="py-$tag"
start_server rust-10 "$bench" rpc-server "${name[rust-10]}" 10 "$LIFETIME"
start_server rust-100 "$bench" rpc-server "${name[rust-100]}" 100 "$LIFETIME"
start_server python "$python" -W ignore benches/clients/nameko_echo_service.py "${name[python]}" "$PY_AMQP_URI" "$LIFETIME"
name[ceiling-10]="c10-$tag"
name[ceiling-100]="c100-$tag"
start_server ceiling-10 "$bench" ceiling-server "${name[ceiling-10]}" 10 "$LIFETIME"
start_server ceiling-100 "$bench" ceiling-server "${name[ceiling-100]}" 100 "$LIFETIME"

cpu_ticks() { if [[ -n "$1" && -r "/proc/$1/stat" ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
# The broker's CPU too, when it is a local process we can see (read only).
broker=$(pgrep -o -f beam.smp || true)
[[ -n "$broker" ]] && say "RabbitMQ: beam.smp pid $broker"
per_call() { awk -v t="$1" -v n="$CALLS" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f", t / hz * 1e6 / n}'; }

client() { # client-kind server-key calls
    local svc="${name[$2]}"
    if [[ "$1" == noop ]]; then
        timeout "$RUN_TIMEOUT" "$bench" ceiling-client "$svc" "$3" "$CONCURRENCY"
    elif [[ "$1" == py ]]; then
        timeout "$RUN_TIMEOUT" "$python" -W ignore benches/clients/nameko_rpc_load.py "$svc" "$3" "$CONCURRENCY" "$PY_AMQP_URI"
    else
        timeout "$RUN_TIMEOUT" "$bench" rpc-client "$svc" "$3" "$CONCURRENCY"
    fi
}

say "warm-up"
for s in rust-10 rust-100 python; do
    for c in py rust; do client "$c" "$s" 200 > /dev/null || die "warm-up $c → $s failed"; done
done
for s in ceiling-10 ceiling-100; do client noop "$s" 200 > /dev/null || die "warm-up → $s failed"; done

for run in $(seq 1 "$RUNS"); do
    for pair in noop:ceiling-10 noop:ceiling-100 \
        py:rust-10 py:rust-100 py:python rust:rust-10 rust:rust-100 rust:python; do
        c="${pair%%:*}" s="${pair#*:}"
        {
            before=$(cpu_ticks "${pid[$s]}")
            b_before=$(cpu_ticks "$broker")
            line=$(client "$c" "$s" "$CALLS") || die "$c client → $s failed"
            after=$(cpu_ticks "${pid[$s]}")
            b_after=$(cpu_ticks "$broker")
            rate=$(sed -E 's/.*"calls_per_s": ?([0-9.]+).*/\1/' <<< "$line")
            cpu_us=$(per_call $((after - before)))
            broker_us=$(per_call $((b_after - b_before)))
            printf '%s %s %s %s %s\n' "$c" "$s" "$rate" "$cpu_us" "$broker_us" >> "$OUT/runs.txt"
            say "run $run: $c client → $s: $rate calls/s, CPU µs/call: server $cpu_us, broker $broker_us"
        }
    done
done

# Medians and the table.
python3 - "$OUT/runs.txt" "$CALLS" "$CONCURRENCY" <<'PYEOF'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    c, s, rate, cpu, broker = line.split()
    rows[(c, s)].append((float(rate), float(cpu), float(broker)))
print(f"calls {sys.argv[2]} per run, {sys.argv[3]} concurrent callers, medians of {len(next(iter(rows.values())))} runs\n")
print("| client | server | calls/s | ÷ Python server | ÷ broker ceiling | server CPU µs/call | RabbitMQ CPU µs/call |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
label = {"py": "Python ClusterRpcProxy", "rust": "Rust RpcProxy", "noop": "no-op caller"}
server_label = {"rust-10": "Rust, max_workers 10", "rust-100": "Rust, max_workers 100",
                "python": "Python Nameko 2.14.1 (max_workers 10)",
                "ceiling-10": "no-op echo, prefetch 10 (broker ceiling)",
                "ceiling-100": "no-op echo, prefetch 100 (broker ceiling)"}
# Each server against the ceiling of the same prefetch (Python's is 10).
ceiling_of = {"rust-10": "ceiling-10", "rust-100": "ceiling-100", "python": "ceiling-10",
              "ceiling-10": "ceiling-10", "ceiling-100": "ceiling-100"}
def med(c, s, i=0):
    return statistics.median(r[i] for r in rows[(c, s)])
for c, servers in (("noop", ("ceiling-10", "ceiling-100")),
                   ("py", ("rust-10", "rust-100", "python")),
                   ("rust", ("rust-10", "rust-100", "python"))):
    for s in servers:
        rate = med(c, s)
        vs_python = f"{rate / med(c, 'python'):.2f}x" if c != "noop" else ""
        vs_ceiling = rate / med("noop", ceiling_of[s])
        print(f"| {label[c]} | {server_label[s]} | {rate:.0f} | {vs_python} | {vs_ceiling:.2f} | {med(c, s, 1):.0f} | {med(c, s, 2):.0f} |")
PYEOF

#!/usr/bin/env bash
# Scale-out with work queues (issue 15): throughput of 1, 2 and 3 replicas
# of a Rust service whose handler burns WORK_US of CPU per event, and the
# latency the RabbitMQ hop adds (record change → handler call, cluster mode
# with and without work queues). Uses a private redis-server on a free port
# and a RabbitMQ virtual host of its own (deleted at the end).
#
# Usage: bash benches/cluster.sh   (RUNS=3 EVENTS=6000 WORK_US=500
#                                   LAT_N=2000 LAT_INTERVAL_MS=5 SKIP_BUILD=1)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
RUNS="${RUNS:-3}"
EVENTS="${EVENTS:-6000}"
WORK_US="${WORK_US:-500}"
LAT_N="${LAT_N:-2000}"
LAT_INTERVAL_MS="${LAT_INTERVAL_MS:-5}"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -q -p sfstream-bench
fi
bench=target/release/sfstream-bench

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize no >/dev/null &
redis_pid=$!
vhost="sfstream-bench-$$"
rabbitmqctl add_vhost "$vhost" >/dev/null
rabbitmqctl set_permissions -p "$vhost" guest ".*" ".*" ".*" >/dev/null
cleanup() {
    kill "$redis_pid" 2>/dev/null || true
    rabbitmqctl delete_vhost "$vhost" >/dev/null 2>&1 || true
}
trap cleanup EXIT
sleep 0.5
redis_url="redis://127.0.0.1:$port/0"
amqp_uri="amqp://guest:guest@127.0.0.1:5672/$vhost"

out=$(mktemp)
for run in $(seq 1 "$RUNS"); do
    for replicas in 1 2 3; do
        redis-cli -p "$port" flushall >/dev/null
        # One runtime thread per replica: a replica is one core's worth.
        TOKIO_WORKER_THREADS=1 timeout 700 "$bench" cluster-drain "$replicas" "$EVENTS" "$WORK_US" \
            "$redis_url" "$amqp_uri" | tee -a "$out"
    done
done
lat=$(mktemp)
for run in $(seq 1 "$RUNS"); do
    for mode in leader queue; do
        redis-cli -p "$port" flushall >/dev/null
        timeout 300 "$bench" latency "$LAT_N" "$LAT_INTERVAL_MS" "$mode" "$redis_url" "$amqp_uri" | tee -a "$lat"
    done
done
python3 - "$out" "$lat" <<'PYEOF'
import json, statistics, sys
drains = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
lats = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
print(f"\nmedians of {len(drains)//3} runs; {drains[0]['events']} events, {drains[0]['work_us']} µs of CPU each\n")
print("| replicas | events/s | vs 1 replica | handled per replica |")
print("| ---: | ---: | ---: | :--- |")
base = None
for n in (1, 2, 3):
    rows = [d for d in drains if d["replicas"] == n]
    eps = statistics.median(r["events_per_second"] for r in rows)
    base = base or eps
    share = rows[-1]["handled_by_replica"]
    print(f"| {n} | {eps:,.0f} | {eps/base:.2f}x | {' / '.join(str(int(s)) for s in share)} |")
print(f"\nrecord change → handler call, {lats[0]['created']} Contacts, one every {lats[0]['interval_ms']:.0f} ms (medians)\n")
print("| cluster mode | p50 µs | p90 µs | p99 µs | max µs |")
print("| :--- | ---: | ---: | ---: | ---: |")
for mode in ("leader", "queue"):
    rows = [r for r in lats if r["mode"] == mode]
    med = lambda k: statistics.median(r[k] for r in rows)
    label = "handlers on the leader (WORK_QUEUES: false)" if mode == "leader" else "work queues (RabbitMQ hop)"
    print(f"| {label} | {med('p50_us'):.0f} | {med('p90_us'):.0f} | {med('p99_us'):.0f} | {med('max_us'):.0f} |")
PYEOF
rm -f "$out" "$lat"

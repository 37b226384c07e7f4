#!/usr/bin/env bash
# Pub/Sub backlog drain benchmark (issue #14): an emulated org preloaded with
# a Change Data Capture backlog (EVENTS Contact creations, so EVENTS events on
# /data/ContactChangeEvent), drained over the emulator's Pub/Sub API (gRPC,
# TLS with a self-signed certificate, the same server for every row) by
#   server    `sfstream-bench pubsub-floor ... count`: the same calls and flow
#             control as a client, payloads only counted (what the emulator's
#             Pub/Sub server alone delivers),
#   floor     `sfstream-bench pubsub-floor ... decode`: the Avro-decode-only
#             floor, each payload decoded into an Avro value, nothing written,
#   sfstream  `sfstream listen --pubsub --replay ALL --replay-store file:...
#             > /dev/null`,
#   salesforce-pubsub-api-client 5.5.2 (benches/clients/pubsub_drain.js),
#             writing one JSON line per event to /dev/null too.
# The emulator encodes each event once, on its first delivery (an untimed
# check run per backlog), so the timed runs measure clients, not the server.
# Every run is a fresh process timed by bash (wall) and /usr/bin/time
# (user+sys CPU, 10 ms steps, and peak RSS); runs are interleaved and each
# figure is the median of RUNS. Events/s is events / process wall time (login,
# TLS and start-up included).
#
# Usage: bash benches/pubsub_drain.sh
# Environment:
#   RUNS=3            runs per row
#   EVENTS=200000     backlog of the main table
#   BIG_EVENTS=600000 backlog of the RSS-flatness rows (0 skips them)
#   PEERS=1           0 skips the Node client
#   SFSTREAM_NODE_MODULES  node_modules with salesforce-pubsub-api-client
#                     (default <repo>/tests/peers/node_modules)
#   SKIP_BUILD=1      use the binaries in target/release as they are
#   OUT=DIR           where raw figures go (default: a temporary directory)
# Everything listens on 127.0.0.1; every wait is bounded.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
RUNS="${RUNS:-3}"
EVENTS="${EVENTS:-200000}"
BIG_EVENTS="${BIG_EVENTS:-600000}"
PEERS="${PEERS:-1}"
RUN_TIMEOUT=900
TOPIC=/data/ContactChangeEvent

say() { printf 'pubsub_drain: %s\n' "$*" >&2; }
die() {
    printf 'pubsub_drain: ERROR: %s\n' "$*" >&2
    exit 1
}

[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
command -v openssl >/dev/null || die "openssl is needed (the Pub/Sub server's certificate)"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "cargo build --release -p sfstream -p sfstream-bench"
    cargo build --release -q -p sfstream -p sfstream-bench
fi
sfstream="$repo/target/release/sfstream"
bench="$repo/target/release/sfstream-bench"
[[ -x "$sfstream" && -x "$bench" ]] || die "release binaries missing"

node_modules="${SFSTREAM_NODE_MODULES:-$repo/tests/peers/node_modules}"
if [[ "$PEERS" == 1 ]]; then
    if [[ ! -d "$node_modules/salesforce-pubsub-api-client" ]]; then
        say "Node client missing; running scripts/test-deps.sh"
        bash scripts/test-deps.sh >&2
        node_modules="${SFSTREAM_NODE_MODULES:-$repo/tests/peers/node_modules}"
    fi
    [[ -d "$node_modules/salesforce-pubsub-api-client" ]] \
        || die "no salesforce-pubsub-api-client in $node_modules"
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
work="${OUT:-$(mktemp -d -t sfstream-pubsub-drain.XXXXXX)}"
mkdir -p "$work"
say "raw figures in $work"

emulator="$sfstream"
# shellcheck source=benches/pubsub_emulator.sh
source "$repo/benches/pubsub_emulator.sh"

# measure KEY SINK CMD...: one timed run of CMD with stdout to SINK;
# appends "wall user sys maxrss_kb" to $work/KEY.runs.
measure() {
    local key="$1" sink="$2"
    shift 2
    local times="$work/$key.time.tmp" started ended
    started="$EPOCHREALTIME"
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$times" "$@" \
        >"$sink" 2>"$work/$key.stderr"; then
        cat "$work/$key.stderr" >&2
        die "$key failed (see $work/$key.stderr)"
    fi
    ended="$EPOCHREALTIME"
    # /usr/bin/time's wall clock has 10 ms steps; bash's is in microseconds.
    echo "$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.6f", b - a}') $(tail -n1 "$times")" \
        >>"$work/$key.runs"
    rm -f "$times"
}

listen_args() { # listen_args N STORE: `sfstream listen --pubsub` draining N events
    printf '%s\n' listen --login-url "$url" --username emulator@example.com \
        --password password --security-token token --consumer-key emulator-consumer-key \
        --consumer-secret emulator-consumer-secret --no-status \
        --pubsub --pubsub-url "$pubsub_url" --pubsub-ca "$cert" \
        --replay ALL --max-events "$1" --replay-store "file:$2" "$TOPIC"
}

run_listen() { # run_listen KEY N
    local store="$work/$1.redb" args
    rm -f "$store"
    mapfile -t args < <(listen_args "$2" "$store")
    measure "$1" /dev/null "$sfstream" "${args[@]}"
    rm -f "$store"
}

run_floor() { # run_floor KEY N decode|count
    measure "$1" "$work/$1.stdout" "$bench" pubsub-floor "$url" "$pubsub_url" "$TOPIC" "$2" "$3" "$cert"
}

run_node() { # run_node KEY N: the client only speaks TLS, endpoint host:port
    measure "$1" /dev/null env NODE_PATH="$node_modules" node benches/clients/pubsub_drain.js \
        "$url" "${pubsub_url#https://}" "$TOPIC" "$2"
}

# median of column $2 of file $1
median() {
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR]=$1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# setup N: preloads N CDC events.
setup() {
    local started="$EPOCHREALTIME"
    "$bench" setup-cdc "$url" "$1" >"$work/setup-$1.json"
    say "preloaded $1 CDC events in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}') s"
}

# ---------------------------------------------------------------------------
# The main table: EVENTS CDC events.
start_emulator main "$EVENTS"
setup "$EVENTS"

# One untimed check run per client: every line is there, caches are warm.
check="$work/check.jsonl"
mapfile -t check_args < <(listen_args "$EVENTS" "$work/check.redb")
timeout "$RUN_TIMEOUT" "$sfstream" "${check_args[@]}" >"$check" 2>"$work/check.stderr" \
    || die "sfstream listen --pubsub failed (see $work/check.stderr)"
[[ "$(wc -l <"$check")" -eq "$EVENTS" ]] || die "sfstream listen wrote $(wc -l <"$check") lines, not $EVENTS"
rm -f "$check" "$work/check.redb"
if [[ "$PEERS" == 1 ]]; then
    timeout "$RUN_TIMEOUT" env NODE_PATH="$node_modules" node benches/clients/pubsub_drain.js \
        "$url" "${pubsub_url#https://}" "$TOPIC" "$EVENTS" >"$check" 2>"$work/check-node.stderr" \
        || die "the Node client failed (see $work/check-node.stderr)"
    [[ "$(wc -l <"$check")" -eq "$EVENTS" ]] || die "the Node client wrote $(wc -l <"$check") lines, not $EVENTS"
    rm -f "$check"
fi

for run in $(seq "$RUNS"); do
    say "main table, run $run/$RUNS"
    run_floor server "$EVENTS" count
    run_floor floor "$EVENTS" decode
    run_listen sfstream "$EVENTS"
    if [[ "$PEERS" == 1 ]]; then run_node node "$EVENTS"; fi
done
payload_bytes="$(sed -n 's/.*"payload_bytes_per_event":\([0-9.]*\).*/\1/p' "$work/floor.stdout" | tail -n1)"

# ---------------------------------------------------------------------------
# The RSS-flatness rows: BIG_EVENTS CDC events.
if [[ "$BIG_EVENTS" -gt 0 ]]; then
    start_emulator big "$BIG_EVENTS"
    setup "$BIG_EVENTS"
    # Untimed: the server encodes each event on its first delivery.
    run_floor big-warm "$BIG_EVENTS" count
    rm -f "$work/big-warm.runs"
    for run in $(seq "$RUNS"); do
        say "backlog of $BIG_EVENTS, run $run/$RUNS"
        run_floor big-server "$BIG_EVENTS" count
        run_floor big-floor "$BIG_EVENTS" decode
        run_listen big-sfstream "$BIG_EVENTS"
    done
fi
stop_emulator

# ---------------------------------------------------------------------------
# The tables.
row() { # row LABEL KEY EVENTS FLOOR_KEY SERVER_KEY [NODE_KEY]
    local label="$1" key="$2" n="$3" floor="$4" server="$5" node="${6:-}"
    local wall cpu rss fwall fcpu swall nwall=""
    wall="$(median "$work/$key.runs" 1)"
    # CPU per run = user + sys, then the median.
    awk '{print $2 + $3}' "$work/$key.runs" >"$work/$key.cpu"
    cpu="$(median "$work/$key.cpu" 1)"
    rss="$(median "$work/$key.runs" 4)"
    awk '{print $2 + $3}' "$work/$floor.runs" >"$work/$floor.cpu"
    fwall="$(median "$work/$floor.runs" 1)"
    fcpu="$(median "$work/$floor.cpu" 1)"
    swall="$(median "$work/$server.runs" 1)"
    [[ -n "$node" ]] && nwall="$(median "$work/$node.runs" 1)"
    awk -v label="$label" -v n="$n" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" \
        -v fwall="$fwall" -v fcpu="$fcpu" -v swall="$swall" -v nwall="$nwall" 'BEGIN {
        printf "| %s | %d | %.0f | %.3f | %.2f | %.1f | %.2fx | %.2fx | %.2fx | %s |\n",
            label, n, n / wall, wall, cpu * 1e6 / n, rss / 1024, fwall / wall, cpu / fcpu,
            swall / wall, nwall == "" ? "" : sprintf("%.1fx", nwall / wall) }'
}

header='| client | events | events/s | wall s | CPU µs/event | peak RSS MiB | rate ÷ floor | CPU ÷ floor | rate ÷ server | × Node |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
node_key=""
if [[ "$PEERS" == 1 ]]; then node_key=node; fi
{
    echo "Medians of $RUNS runs; $(nproc) cores; $(uname -sr); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after (anything else running skews absolute figures; ratios are of interleaved runs)."
    echo
    echo "### $EVENTS Contact CDC events over Pub/Sub, TLS (~${payload_bytes} bytes of Avro payload per event)"
    echo
    echo "$header"
    row "server alone (counting client)" server "$EVENTS" floor server "$node_key"
    row "Avro-decode-only floor" floor "$EVENTS" floor server "$node_key"
    row "sfstream listen --pubsub" sfstream "$EVENTS" floor server "$node_key"
    if [[ "$PEERS" == 1 ]]; then
        row "salesforce-pubsub-api-client 5.5.2" node "$EVENTS" floor server "$node_key"
    fi
    echo
    if [[ "$BIG_EVENTS" -gt 0 ]]; then
        echo "### $BIG_EVENTS Contact CDC events over Pub/Sub, TLS (RSS flatness)"
        echo
        echo "$header"
        row "server alone (counting client)" big-server "$BIG_EVENTS" big-floor big-server
        row "Avro-decode-only floor" big-floor "$BIG_EVENTS" big-floor big-server
        row "sfstream listen --pubsub" big-sfstream "$BIG_EVENTS" big-floor big-server
        echo
    fi
} | tee "$work/RESULTS.md"

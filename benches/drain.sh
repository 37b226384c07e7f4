#!/usr/bin/env bash
# End-to-end backlog drain benchmark (issue #9): an emulated org preloaded
# with a backlog, drained side by side by
#   server    a client that only counts events in the response bytes (what
#             the emulator alone delivers),
#   floor     the parse-only floor: the same CometD requests as `sfstream
#             listen`, each response parsed into serde_json::Value, nothing
#             written (benches/floor),
#   sfstream  `sfstream listen --replay ALL --replay-store file:... > /dev/null`,
#   aiosfstream-ng 0.7.5 and jsforce 3.10.16 (benches/clients/), writing one
#             JSON line per event to /dev/null too.
# Every run is a fresh process timed by bash (wall) and /usr/bin/time
# (user+sys CPU, 10 ms steps, and peak RSS); runs are interleaved and each figure is the median of RUNS.
# Events/s is events / process wall time (login and start-up included).
#
# Usage: bash benches/drain.sh
# Environment:
#   RUNS=3            runs per row
#   EVENTS=200000     backlog of the main table and of the 1 KB variant
#   BIG_EVENTS=1000000  backlog of the RSS-flatness row (0 skips it)
#   PEERS=1           0 skips the Python and Node clients
#   SFSTREAM_PYTHON   python with aiosfstream-ng (default <repo>/.venv/bin/python)
#   SFSTREAM_NODE_MODULES  node_modules with jsforce (default <repo>/tests/peers/node_modules)
#   SKIP_BUILD=1      use the binaries in target/release as they are
#   OUT=DIR           where raw figures go (default: a temporary directory)
# Everything listens on 127.0.0.1; every wait is bounded.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
RUNS="${RUNS:-3}"
EVENTS="${EVENTS:-200000}"
BIG_EVENTS="${BIG_EVENTS:-1000000}"
PEERS="${PEERS:-1}"
RUN_TIMEOUT=900

say() { printf 'drain: %s\n' "$*" >&2; }
die() {
    printf 'drain: ERROR: %s\n' "$*" >&2
    exit 1
}

[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "cargo build --release -p sfstream -p sfstream-bench"
    cargo build --release -q -p sfstream -p sfstream-bench
fi
sfstream="$repo/target/release/sfstream"
bench="$repo/target/release/sfstream-bench"
[[ -x "$sfstream" && -x "$bench" ]] || die "release binaries missing"

python="${SFSTREAM_PYTHON:-$repo/.venv/bin/python}"
node_modules="${SFSTREAM_NODE_MODULES:-$repo/tests/peers/node_modules}"
if [[ "$PEERS" == 1 ]]; then
    if ! "$python" -c 'import aiosfstream_ng' 2>/dev/null \
        || [[ ! -d "$node_modules/jsforce" ]]; then
        say "peer clients missing; running scripts/test-deps.sh"
        bash scripts/test-deps.sh >&2
        python="${SFSTREAM_PYTHON:-$repo/.venv/bin/python}"
        node_modules="${SFSTREAM_NODE_MODULES:-$repo/tests/peers/node_modules}"
    fi
    "$python" -c 'import aiosfstream_ng' || die "no aiosfstream-ng for $python"
    [[ -d "$node_modules/jsforce" ]] || die "no jsforce in $node_modules"
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
work="${OUT:-$(mktemp -d -t sfstream-drain.XXXXXX)}"
mkdir -p "$work"
say "raw figures in $work"
emulators=()
cleanup() {
    for pid in "${emulators[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# start_emulator NAME HISTORY: starts an emulator, sets $url.
start_emulator() {
    local name="$1" history="$2" log="$work/emulator-$1.out"
    "$sfstream" emulator --bind 127.0.0.1:0 --faults --history-limit "$history" \
        --max-events-per-connect 1000 >"$log" 2>"$work/emulator-$1.err" &
    emulators+=("$!")
    url=""
    for _ in $(seq 100); do
        url="$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$log" | head -n1)"
        [[ -n "$url" ]] && break
        sleep 0.1
    done
    [[ -n "$url" ]] || die "emulator $name did not start (see $work/emulator-$name.err)"
    say "emulator $name at $url (history $history)"
}

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

listen() { # listen URL TOPIC N STORE
    "$sfstream" listen --login-url "$1" --username emulator@example.com --password password \
        --security-token token --consumer-key emulator-consumer-key \
        --consumer-secret emulator-consumer-secret --no-status \
        --replay ALL --max-events "$3" --replay-store "file:$4" "/topic/$2"
}

run_listen() { # run_listen KEY URL TOPIC N
    local store="$work/$1.redb"
    rm -f "$store"
    measure "$1" /dev/null "$sfstream" listen --login-url "$2" --username emulator@example.com \
        --password password --security-token token --consumer-key emulator-consumer-key \
        --consumer-secret emulator-consumer-secret --no-status \
        --replay ALL --max-events "$4" --replay-store "file:$store" "/topic/$3"
}

# median of column $2 of file $1
median() {
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR]=$1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------------------
# The main table: EVENTS small PushTopic events (and the idle RSS).
start_emulator small "$EVENTS"
small_url="$url"
"$bench" setup "$small_url" BenchSmall "$EVENTS" >"$work/setup-small.json"
"$bench" setup "$small_url" BenchIdle 0 >/dev/null

# One untimed check run: the lines are all there, and caches are warm.
check="$work/check.jsonl"
listen "$small_url" BenchSmall "$EVENTS" "$work/check.redb" >"$check" 2>"$work/check.stderr"
[[ "$(wc -l <"$check")" -eq "$EVENTS" ]] || die "sfstream listen wrote $(wc -l <"$check") lines, not $EVENTS"
rm -f "$check" "$work/check.redb"
"$bench" drain "$small_url" BenchSmall "$EVENTS" parse >/dev/null

rows=(server floor sfstream)
if [[ "$PEERS" == 1 ]]; then rows+=(aiosfstream jsforce); fi
for run in $(seq "$RUNS"); do
    say "main table, run $run/$RUNS"
    measure server "$work/server.stdout" "$bench" drain "$small_url" BenchSmall "$EVENTS" count
    measure floor "$work/floor.stdout" "$bench" drain "$small_url" BenchSmall "$EVENTS" parse
    run_listen sfstream "$small_url" BenchSmall "$EVENTS"
    if [[ "$PEERS" == 1 ]]; then
        measure aiosfstream /dev/null "$python" benches/clients/aiosfstream_drain.py "$small_url" /topic/BenchSmall "$EVENTS"
        measure jsforce /dev/null env NODE_PATH="$node_modules" node benches/clients/jsforce_drain.js "$small_url" /topic/BenchSmall "$EVENTS"
    fi
done

# Idle RSS: subscribed to a topic that gets no events, after 3 s.
say "idle RSS"
"$sfstream" listen --login-url "$small_url" --username emulator@example.com --password password \
    --security-token token --consumer-key emulator-consumer-key \
    --consumer-secret emulator-consumer-secret --no-status --replay-store "file:$work/idle.redb" \
    --max-events 1 /topic/BenchIdle >/dev/null 2>"$work/idle.stderr" &
idle_pid=$!
sleep 3
idle_rss="$(awk '/^VmRSS/ {print $2}' "/proc/$idle_pid/status")"
idle_hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$idle_pid/status")"
kill -TERM "$idle_pid"
wait "$idle_pid" || true

# ---------------------------------------------------------------------------
# The RSS-flatness row: BIG_EVENTS small events.
if [[ "$BIG_EVENTS" -gt 0 ]]; then
    start_emulator big "$BIG_EVENTS"
    big_url="$url"
    "$bench" setup "$big_url" BenchBig "$BIG_EVENTS" >/dev/null
    for run in $(seq "$RUNS"); do
        say "backlog of $BIG_EVENTS, run $run/$RUNS"
        measure big-floor "$work/big-floor.stdout" "$bench" drain "$big_url" BenchBig "$BIG_EVENTS" parse
        run_listen big-sfstream "$big_url" BenchBig "$BIG_EVENTS"
    done
fi

# ---------------------------------------------------------------------------
# The 1 KB variant: EVENTS PushTopic events with ~1 KB sobjects.
start_emulator wide "$EVENTS"
wide_url="$url"
"$bench" setup "$wide_url" BenchWide "$EVENTS" 900 >/dev/null
for run in $(seq "$RUNS"); do
    say "1 KB events, run $run/$RUNS"
    measure wide-server "$work/wide-server.stdout" "$bench" drain "$wide_url" BenchWide "$EVENTS" count
    measure wide-floor "$work/wide-floor.stdout" "$bench" drain "$wide_url" BenchWide "$EVENTS" parse
    run_listen wide-sfstream "$wide_url" BenchWide "$EVENTS"
done
wide_bytes="$(sed -n 's/.*"bytes_per_event":\([0-9.]*\).*/\1/p' "$work/wide-server.stdout")"
small_bytes="$(sed -n 's/.*"bytes_per_event":\([0-9.]*\).*/\1/p' "$work/server.stdout")"

# ---------------------------------------------------------------------------
# The tables.
row() { # row LABEL KEY EVENTS FLOOR_KEY [SERVER_KEY]
    local label="$1" key="$2" n="$3" floor="$4" server="${5:-}"
    local wall user sys rss
    wall="$(median "$work/$key.runs" 1)"
    # CPU per run = user + sys, then the median.
    awk '{print $2 + $3}' "$work/$key.runs" >"$work/$key.cpu"
    cpu="$(median "$work/$key.cpu" 1)"
    rss="$(median "$work/$key.runs" 4)"
    awk '{print $2 + $3}' "$work/$floor.runs" >"$work/$floor.cpu"
    local fwall fcpu
    fwall="$(median "$work/$floor.runs" 1)"
    fcpu="$(median "$work/$floor.cpu" 1)"
    local swall=""
    [[ -n "$server" ]] && swall="$(median "$work/$server.runs" 1)"
    awk -v label="$label" -v n="$n" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" \
        -v fwall="$fwall" -v fcpu="$fcpu" -v swall="$swall" 'BEGIN {
        printf "| %s | %d | %.0f | %.3f | %.2f | %.1f | %.2fx | %.2fx | %s |\n",
            label, n, n / wall, wall, cpu * 1e6 / n, rss / 1024, fwall / wall, cpu / fcpu,
            swall == "" ? "" : sprintf("%.1fx", wall / swall) }'
}

header='| client | events | events/s | wall s | CPU µs/event | peak RSS MiB | rate ÷ floor | CPU ÷ floor | server ÷ rate |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
{
    echo "Medians of $RUNS runs; $(nproc) cores; $(uname -sr); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after (anything else running skews absolute figures; ratios are of interleaved runs)."
    echo
    echo "### $EVENTS small PushTopic events (~${small_bytes} bytes per event on the wire)"
    echo
    echo "$header"
    row "server alone (counting client)" server "$EVENTS" floor
    row "parse-only floor" floor "$EVENTS" floor server
    row "sfstream listen" sfstream "$EVENTS" floor server
    if [[ "$PEERS" == 1 ]]; then
        row "aiosfstream-ng 0.7.5" aiosfstream "$EVENTS" floor server
        row "jsforce 3.10.16 (faye)" jsforce "$EVENTS" floor server
    fi
    echo
    if [[ "$BIG_EVENTS" -gt 0 ]]; then
        echo "### $BIG_EVENTS small PushTopic events (RSS flatness)"
        echo
        echo "$header"
        row "parse-only floor" big-floor "$BIG_EVENTS" big-floor
        row "sfstream listen" big-sfstream "$BIG_EVENTS" big-floor
        echo
    fi
    echo "### $EVENTS ~1 KB events (~${wide_bytes} bytes per event on the wire; PushTopic events with a large sobject standing in for CDC)"
    echo
    echo "$header"
    row "server alone (counting client)" wide-server "$EVENTS" wide-floor
    row "parse-only floor" wide-floor "$EVENTS" wide-floor wide-server
    row "sfstream listen" wide-sfstream "$EVENTS" wide-floor wide-server
    echo
    echo "Idle \`sfstream listen\` (subscribed, no events, after 3 s): RSS $((idle_rss / 1024)) MiB (peak $((idle_hwm / 1024)) MiB)."
} | tee "$work/RESULTS.md"

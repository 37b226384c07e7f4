#!/usr/bin/env bash
# Python consumers draining a PushTopic backlog side by side (issue #18):
#   sfstream-py     the sfstream Python package (crates/python, release
#                   build), benches/clients/sfstream_py_drain.py,
#   aiosfstream-ng  0.7.5, benches/clients/aiosfstream_drain.py (the same
#                   loop: ReplayOption.ALL_EVENTS, `async for`, one
#                   json.dumps line per message to /dev/null),
# plus `sfstream listen` (Rust alone) for scale. Every run is a fresh
# process timed by bash (wall) and /usr/bin/time (user+sys CPU, peak RSS);
# runs are interleaved and each figure is the median of RUNS.
#
# Usage: bash benches/python_drain.sh
# Environment:
#   RUNS=3            runs per row
#   EVENTS=20000      backlog (small PushTopic events)
#   SFSTREAM_PYTHON   python with aiosfstream-ng (default <repo>/.venv/bin/python)
#   SKIP_BUILD=1      use target/release and the wheel in OUT as they are
#   OUT=DIR           where raw figures go (default: a temporary directory)
# Everything listens on 127.0.0.1; every wait is bounded.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
RUNS="${RUNS:-3}"
EVENTS="${EVENTS:-20000}"
RUN_TIMEOUT=900

say() { printf 'python-drain: %s\n' "$*" >&2; }
die() {
    printf 'python-drain: ERROR: %s\n' "$*" >&2
    exit 1
}

[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
python="${SFSTREAM_PYTHON:-$repo/.venv/bin/python}"
if ! "$python" -c 'import aiosfstream_ng, maturin' 2>/dev/null; then
    say "peer clients missing; running scripts/test-deps.sh"
    bash scripts/test-deps.sh >&2
fi
"$python" -c 'import aiosfstream_ng' || die "no aiosfstream-ng for $python"

work="${OUT:-$(mktemp -d -t sfstream-python-drain.XXXXXX)}"
mkdir -p "$work"
say "raw figures in $work"
site="$work/site"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "cargo build --release -p sfstream -p sfstream-bench"
    cargo build --release -q -p sfstream -p sfstream-bench
    say "maturin build --release (crates/python)"
    rm -rf "$work/wheels" "$site"
    (cd crates/python && "$(dirname "$python")/maturin" build --release --quiet -o "$work/wheels")
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$site" "$work"/wheels/sfstream-*.whl
fi
sfstream="$repo/target/release/sfstream"
bench="$repo/target/release/sfstream-bench"
[[ -x "$sfstream" && -x "$bench" && -d "$site/sfstream" ]] || die "release builds missing"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
emulator=""
cleanup() {
    if [[ -n "$emulator" ]]; then
        kill "$emulator" 2>/dev/null || true
        wait "$emulator" 2>/dev/null || true
    fi
}
trap cleanup EXIT

log="$work/emulator.out"
"$sfstream" emulator --bind 127.0.0.1:0 --faults --history-limit "$EVENTS" \
    --max-events-per-connect 1000 >"$log" 2>"$work/emulator.err" &
emulator=$!
url=""
for _ in $(seq 100); do
    url="$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$log" | head -n1)"
    [[ -n "$url" ]] && break
    sleep 0.1
done
[[ -n "$url" ]] || die "the emulator did not start (see $work/emulator.err)"
"$bench" setup "$url" BenchPython "$EVENTS" >"$work/setup.json"

# measure KEY CMD...: one timed run, stdout to a file (its lines are counted).
measure() {
    local key="$1"
    shift
    local times="$work/$key.time.tmp" out="$work/$key.stdout" started ended
    started="$EPOCHREALTIME"
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$times" "$@" \
        >"$out" 2>"$work/$key.stderr"; then
        cat "$work/$key.stderr" >&2
        die "$key failed (see $work/$key.stderr)"
    fi
    ended="$EPOCHREALTIME"
    local lines
    lines="$(wc -l <"$out")"
    [[ "$lines" -eq "$EVENTS" ]] || die "$key wrote $lines lines, not $EVENTS"
    rm -f "$out"
    echo "$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.6f", b - a}') $(tail -n1 "$times")" \
        >>"$work/$key.runs"
    rm -f "$times"
}

for run in $(seq "$RUNS"); do
    say "run $run/$RUNS"
    measure sfstream-py env PYTHONPATH="$site" "$python" benches/clients/sfstream_py_drain.py \
        "$url" /topic/BenchPython "$EVENTS"
    measure aiosfstream "$python" benches/clients/aiosfstream_drain.py "$url" /topic/BenchPython "$EVENTS"
    rm -f "$work/listen.redb"
    measure listen "$sfstream" listen --login-url "$url" --username emulator@example.com \
        --password password --security-token token --consumer-key emulator-consumer-key \
        --consumer-secret emulator-consumer-secret --no-status --replay ALL \
        --max-events "$EVENTS" --replay-store "file:$work/listen.redb" /topic/BenchPython
done

median() {
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR]=$1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

row() { # row LABEL KEY
    local wall cpu rss
    wall="$(median "$work/$2.runs" 1)"
    awk '{print $2 + $3}' "$work/$2.runs" >"$work/$2.cpu"
    cpu="$(median "$work/$2.cpu" 1)"
    rss="$(median "$work/$2.runs" 4)"
    awk -v label="$1" -v n="$EVENTS" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" \
        -v awall="$(median "$work/aiosfstream.runs" 1)" 'BEGIN {
        printf "| %s | %d | %.0f | %.2f | %.1f | %.1f | %.1fx |\n",
            label, n, n / wall, wall, cpu * 1e6 / n, rss / 1024, awall / wall }'
}

{
    echo "Medians of $RUNS runs; $(nproc) cores; $(uname -sr); Python $("$python" -c 'import platform; print(platform.python_version())'); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
    echo
    echo "| client | events | events/s | wall s | CPU µs/event | peak RSS MiB | speed vs aiosfstream-ng |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    row "sfstream Python package (release)" sfstream-py
    row "aiosfstream-ng 0.7.5" aiosfstream
    row "sfstream listen (Rust, for scale)" listen
} | tee "$work/RESULTS.md"

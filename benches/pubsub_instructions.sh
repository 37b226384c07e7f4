#!/usr/bin/env bash
# Instructions per event of a Pub/Sub backlog drain (issue #14), counted by
# valgrind's callgrind, so the figures hold while other work loads the
# machine (wall-clock ratios do not). The same emulated org and CDC backlog
# as benches/pubsub_drain.sh (TLS, /data/ContactChangeEvent), drained by
#   floor     `sfstream-bench pubsub-floor ... decode` (the Avro-decode-only
#             floor),
#   sfstream  `sfstream listen --pubsub ... --replay-store file:... > /dev/null`,
# each run under callgrind twice, for SMALL and BIG events: instructions
# per event are (Ir(BIG) - Ir(SMALL)) / (BIG - SMALL), so login, TLS
# handshakes and start-up cancel out. Only the client process is counted
# (the emulator runs natively, in its own process).
#
# Usage: bash benches/pubsub_instructions.sh
# Environment:
#   SMALL=2000 BIG=12000   the two drains
#   SFSTREAM=PATH          the sfstream binary measured (default target/release/sfstream)
#   BENCH=PATH             sfstream-bench (default target/release/sfstream-bench)
#   EMULATOR=PATH          the sfstream binary running the emulator (default $SFSTREAM)
#   ONLY=sfstream|floor    measure one of the two
#   OUT=DIR                where callgrind files go (default: a temporary directory)
# Everything listens on 127.0.0.1; every wait is bounded.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
SMALL="${SMALL:-2000}"
BIG="${BIG:-12000}"
sfstream="${SFSTREAM:-$repo/target/release/sfstream}"
bench="${BENCH:-$repo/target/release/sfstream-bench}"
emulator="${EMULATOR:-$sfstream}"
ONLY="${ONLY:-}"
TOPIC=/data/ContactChangeEvent
RUN_TIMEOUT=900

say() { printf 'pubsub_instructions: %s\n' "$*" >&2; }
die() {
    printf 'pubsub_instructions: ERROR: %s\n' "$*" >&2
    exit 1
}
command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
command -v openssl >/dev/null || die "openssl is needed"
[[ -x "$sfstream" && -x "$bench" && -x "$emulator" ]] || die "binaries missing (cargo build --release -p sfstream -p sfstream-bench)"

work="${OUT:-$(mktemp -d -t sfstream-pubsub-ir.XXXXXX)}"
mkdir -p "$work"
say "callgrind files in $work"
# shellcheck source=benches/pubsub_emulator.sh
source "$repo/benches/pubsub_emulator.sh"
start_emulator main "$BIG"
"$bench" setup-cdc "$url" "$BIG" >"$work/setup.json"
# Untimed: the server encodes each event on its first delivery.
timeout "$RUN_TIMEOUT" "$bench" pubsub-floor "$url" "$pubsub_url" "$TOPIC" "$BIG" count "$cert" >/dev/null

# ir KEY N CMD...: the instructions of CMD (all threads), stdout to /dev/null.
ir() {
    local key="$1" n="$2"
    shift 2
    timeout "$RUN_TIMEOUT" valgrind --tool=callgrind --callgrind-out-file="$work/$key-$n.out" \
        "$@" >/dev/null 2>"$work/$key-$n.err" || die "$key $n failed (see $work/$key-$n.err)"
    sed -n 's/^totals: \([0-9]*\).*/\1/p; s/^summary: \([0-9]*\).*/\1/p' "$work/$key-$n.out" | head -n1
}

sfstream() { # sfstream N
    rm -f "$work/store.redb"
    ir sfstream "$1" "$sfstream" listen --login-url "$url" --username emulator@example.com \
        --password password --security-token token --consumer-key emulator-consumer-key \
        --consumer-secret emulator-consumer-secret --no-status \
        --pubsub --pubsub-url "$pubsub_url" --pubsub-ca "$cert" \
        --replay ALL --max-events "$1" --replay-store "file:$work/store.redb" "$TOPIC"
}

floor() { # floor N
    ir floor "$1" "$bench" pubsub-floor "$url" "$pubsub_url" "$TOPIC" "$1" decode "$cert"
}

per_event() { # per_event IR_SMALL IR_BIG
    awk -v a="$1" -v b="$2" -v s="$SMALL" -v l="$BIG" 'BEGIN {printf "%.0f", (b - a) / (l - s)}'
}

declare -A result
for who in floor sfstream; do
    [[ -n "$ONLY" && "$ONLY" != "$who" ]] && continue
    small="$("$who" "$SMALL")"
    big="$("$who" "$BIG")"
    result[$who]="$(per_event "$small" "$big")"
    say "$who: $small instructions for $SMALL events, $big for $BIG: ${result[$who]} per event"
done
stop_emulator
echo "| client | instructions per event |"
echo "| --- | ---: |"
[[ -n "${result[floor]:-}" ]] && echo "| Avro-decode-only floor | ${result[floor]} |"
[[ -n "${result[sfstream]:-}" ]] && echo "| sfstream listen --pubsub | ${result[sfstream]} |"
if [[ -n "${result[floor]:-}" && -n "${result[sfstream]:-}" ]]; then
    awk -v f="${result[floor]}" -v s="${result[sfstream]}" \
        'BEGIN {printf "\nfloor ÷ sfstream (instructions): %.2fx\n", f / s}'
fi

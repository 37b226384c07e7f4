# Sourced by benches/pubsub_drain.sh and benches/pubsub_instructions.sh:
# a self-signed leaf certificate for 127.0.0.1 (rustls refuses a CA
# certificate as the server's) and one emulator at a time serving Pub/Sub
# over TLS with it. Needs $work, $emulator (an `sfstream` binary), say, die.

cert="$work/cert.pem"
key="$work/key.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
    -keyout "$key" -out "$cert" 2>"$work/openssl.err" || die "openssl failed (see $work/openssl.err)"

emulator_pid=""
stop_emulator() {
    if [[ -n "$emulator_pid" ]]; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
        emulator_pid=""
    fi
}
trap stop_emulator EXIT
trap 'exit 143' INT TERM

# start_emulator NAME HISTORY: stops the previous emulator (one at a time, so
# its memory does not weigh on the next run), starts one serving Pub/Sub
# over TLS; sets $url and $pubsub_url.
start_emulator() {
    local name="$1" history="$2" log="$work/emulator-$1.out"
    stop_emulator
    "$emulator" emulator --bind 127.0.0.1:0 --pubsub-bind 127.0.0.1:0 \
        --history-limit "$history" --pubsub-tls-cert "$cert" --pubsub-tls-key "$key" \
        >"$log" 2>"$work/emulator-$1.err" &
    emulator_pid="$!"
    url=""
    pubsub_url=""
    for _ in $(seq 100); do
        url="$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$log" | head -n1)"
        pubsub_url="$(sed -n 's/^pubsub on \(https:[^ ]*\)$/\1/p' "$log" | head -n1)"
        [[ -n "$url" && -n "$pubsub_url" ]] && break
        sleep 0.1
    done
    [[ -n "$url" && -n "$pubsub_url" ]] \
        || die "emulator $name did not start (see $work/emulator-$name.err)"
    say "emulator $name at $url, Pub/Sub at $pubsub_url (history $history)"
}

#!/usr/bin/env bash
# Brings up what the test suite needs beyond cargo, and is quick when all of
# it is already there (safe to run before every test run):
#   - Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672, started when down;
#   - <repo>/.venv with tests/peers/requirements.txt installed;
#   - tests/peers/node_modules from its package-lock.json;
#   - Chromium and ChromeDriver (the page tests drive them over WebDriver).
# Each install is redone only when its stamp (a hash of the lock/requirements
# file and the interpreter version) no longer matches.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
clients="$repo/tests/peers"
venv="$repo/.venv"
venv_stamp="$venv/.sfstream-requirements.stamp"
node_modules="$clients/node_modules"
npm_stamp="$node_modules/.sfstream-package-lock.stamp"

# Seconds to wait for a service to come up after starting it.
SERVICE_WAIT="${SFSTREAM_SERVICE_WAIT:-90}"

say() { printf 'test-deps: %s\n' "$*"; }
die() {
    printf 'test-deps: ERROR: %s\n' "$*" >&2
    exit 1
}

# One run at a time (two test runs at once must not install into the same
# venv together). The lock is on this script itself, so no lock file is left.
exec 9<"${BASH_SOURCE[0]}"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || die "another scripts/test-deps.sh has held its lock for 15 minutes"
fi

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Waits up to SERVICE_WAIT seconds for `$2...` to succeed; $1 names the service.
wait_for() {
    local name="$1"
    shift
    local deadline=$((SECONDS + SERVICE_WAIT))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
    say "$name is up"
}

# Installs Debian packages when a service's binaries are missing (a bare
# machine); needs root and apt-get.
apt_install() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "$* not installed, and cannot install it (needs root and apt-get)"
    fi
    say "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq >/dev/null || die "apt-get update failed"
    timeout 900 apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

redis_ok() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]
    else
        port_open 6379
    fi
}

ensure_redis() {
    if redis_ok; then
        say "redis: up"
        return
    fi
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    say "redis: down, starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null \
        || die "redis-server would not start (is something else on port 6379?)"
    wait_for redis redis_ok || die "redis did not answer on 127.0.0.1:6379 within ${SERVICE_WAIT}s"
}

rabbitmq_ok() {
    port_open 5672
}

ensure_rabbitmq() {
    if rabbitmq_ok; then
        say "rabbitmq: up"
        return
    fi
    command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
    say "rabbitmq: down, starting it (takes a few seconds)"
    # A node that is still booting or half-stopped refuses a second start;
    # that is fine as long as the port comes up below.
    rabbitmq-server -detached >/dev/null 2>&1 || say "rabbitmq-server -detached returned an error; waiting anyway"
    if command -v rabbitmqctl >/dev/null 2>&1; then
        timeout "$SERVICE_WAIT" rabbitmqctl await_startup >/dev/null 2>&1 || true
    fi
    wait_for rabbitmq rabbitmq_ok \
        || die "rabbitmq did not listen on 127.0.0.1:5672 within ${SERVICE_WAIT}s (see /var/log/rabbitmq/)"
}

# sha256 of the given files' contents plus extra strings.
fingerprint() {
    local files=()
    local extra=()
    for arg in "$@"; do
        if [[ -f "$arg" ]]; then files+=("$arg"); else extra+=("$arg"); fi
    done
    { cat "${files[@]}"; printf '%s\n' "${extra[@]}"; } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local python="${SFSTREAM_BASE_PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "$python not found (Python 3.11 is needed)"
    local requirements="$clients/requirements.txt"
    local want
    want="$(fingerprint "$requirements" "$("$python" -c 'import sys; print(sys.version)')")"
    if [[ -x "$venv/bin/python" && -f "$venv_stamp" && "$(cat "$venv_stamp")" == "$want" ]]; then
        say "python venv: up to date ($venv)"
        return
    fi
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        say "python venv: creating $venv"
        rm -rf "$venv"
        "$python" -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    say "python venv: installing $(realpath --relative-to="$repo" "$requirements")"
    rm -f "$venv_stamp"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$requirements" || die "pip install failed"
    "$venv/bin/python" -c 'import simple_salesforce, aiosfstream_ng, nameko, redis' \
        || die "the installed Python clients do not import"
    printf '%s\n' "$want" >"$venv_stamp"
    say "python venv: ready"
}

ensure_node_modules() {
    command -v node >/dev/null 2>&1 || die "node not found (Node 20 is needed)"
    command -v npm >/dev/null 2>&1 || die "npm not found"
    local lock="$clients/package-lock.json"
    [[ -f "$lock" ]] || die "$lock is missing"
    local want
    want="$(fingerprint "$lock" "$clients/package.json" "$(node --version)")"
    if [[ -f "$npm_stamp" && "$(cat "$npm_stamp")" == "$want" ]]; then
        say "node modules: up to date ($node_modules)"
        return
    fi
    say "node modules: npm ci in $(realpath --relative-to="$repo" "$clients")"
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    (cd "$clients" && node -e 'require("jsforce"); require("faye"); require("cometd-nodejs-server"); require("salesforce-pubsub-api-client")') \
        || die "the installed Node clients do not load"
    printf '%s\n' "$want" >"$npm_stamp"
    say "node modules: ready"
}

browser_ok() {
    command -v chromedriver >/dev/null 2>&1 && [[ -x "${SFSTREAM_CHROMIUM:-/usr/bin/chromium}" ]]
}

# The page tests start ChromeDriver on a free port and a headless Chromium;
# check both start here, where the cause is plain.
ensure_browser() {
    browser_ok || apt_install chromium chromium-driver
    browser_ok || die "chromium or chromedriver missing after installing chromium and chromium-driver"
    timeout 30 chromedriver --version >/dev/null 2>&1 || die "chromedriver does not start"
    timeout 60 "${SFSTREAM_CHROMIUM:-/usr/bin/chromium}" --headless=new --no-sandbox --disable-gpu \
        --disable-dev-shm-usage --dump-dom about:blank >/dev/null 2>&1 \
        || die "headless chromium does not start"
    say "browser: $(chromedriver --version | cut -d' ' -f1-2)"
}

ensure_redis
ensure_rabbitmq
ensure_venv
ensure_node_modules
ensure_browser
say "done"

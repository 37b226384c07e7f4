#!/usr/bin/env bash
# The test suite: test dependencies (scripts/test-deps.sh), the Python
# package's tests (crates/python, pytest), the doc tests (nextest runs none),
# then every other test of the workspace with cargo-nextest.
# Arguments go to `cargo nextest run`, e.g. `bash scripts/test.sh -E 'test(jsforce)'`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/test-deps.sh

# Where tests find the third-party peers (Python clients, Nameko; jsforce, Faye).
export SFSTREAM_PYTHON="$repo/.venv/bin/python"
export SFSTREAM_NODE_MODULES="$repo/tests/peers/node_modules"

# The Python package (crates/python): built into .venv with maturin (a debug
# build), then its pytest suite against emulators started from the sfstream
# binary (built here by nextest's own build step, which its run reuses).
# SFSTREAM_PYTHON_TESTS=0 leaves it out (e.g. when selecting a few Rust tests).
if [[ "${SFSTREAM_PYTHON_TESTS:-1}" != 0 ]]; then
    echo "test: the Python package: maturin develop, pytest crates/python/tests"
    cargo nextest run --workspace --all-features --no-run
    export SFSTREAM_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/sfstream"
    (cd crates/python && VIRTUAL_ENV="$repo/.venv" PATH="$repo/.venv/bin:$PATH" maturin develop --quiet)
    (cd crates/python && "$SFSTREAM_PYTHON" -m pytest -q)
fi

# Doc tests first, so that the run closes on nextest's summary of the whole
# suite rather than on the doc-test result of whichever crate comes last.
echo "test: cargo test --workspace --doc"
cargo test --workspace --doc
echo "test: cargo nextest run --workspace --all-features"
cargo nextest run --workspace --all-features --no-fail-fast "$@"

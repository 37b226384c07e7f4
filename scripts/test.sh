#!/usr/bin/env bash
# The test suite: test dependencies (scripts/test-deps.sh), the doc tests
# (nextest runs none), then every other test of the workspace with cargo-nextest.
# Arguments go to `cargo nextest run`, e.g. `bash scripts/test.sh -E 'test(jsforce)'`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/test-deps.sh

# Where tests find the third-party peers (Python clients, Nameko; jsforce, Faye).
export SFSTREAM_PYTHON="$repo/.venv/bin/python"
export SFSTREAM_NODE_MODULES="$repo/tests/peers/node_modules"

# Doc tests first, so that the run closes on nextest's summary of the whole
# suite rather than on the doc-test result of whichever crate comes last.
echo "test: cargo test --workspace --doc"
cargo test --workspace --doc
echo "test: cargo nextest run --workspace --all-features"
cargo nextest run --workspace --all-features --no-fail-fast "$@"

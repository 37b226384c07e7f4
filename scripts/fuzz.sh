#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each):
#   bash scripts/fuzz.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain is
# enough with RUSTC_BOOTSTRAP=1. A crash leaves its input under
# fuzz/artifacts/<target>/: turn it into a regression test before fixing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
seconds="${1:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in bayeux_messages error_field soql replay_marker service_config; do
    echo "fuzz: $target for ${seconds}s"
    cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
done
echo "fuzz: no crash found"

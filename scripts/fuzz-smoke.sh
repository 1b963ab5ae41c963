#!/usr/bin/env bash
# Bounded fuzz smoke test: builds every cargo-fuzz target (AddressSanitizer, stable toolchain)
# and runs each for FUZZ_SECONDS (default 12) from the committed seeds plus the local corpus.
# Installs cargo-fuzz only when missing. Exits non-zero if any target finds a crash; the input
# is then under fuzz/artifacts/<target>/ (see fuzz/README.md to reproduce it).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
per_target=${FUZZ_SECONDS:-12}

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
# cargo-fuzz passes -Zsanitizer and other -Z flags: allowed on the stable compiler with
# RUSTC_BOOTSTRAP=1 (no nightly toolchain needed; stable rust-std ships the ASan runtime).
export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target dir (fuzz/target).
unset CARGO_TARGET_DIR

start=$(date +%s)
cargo fuzz build 2>&1 | grep -E '^(error|warning)|Finished' || true
build_s=$(( $(date +%s) - start ))
echo "build: ${build_s}s"

failed=()
for t in $(cargo fuzz list); do
    max_len=65536
    [ "$t" = amf ] && max_len=8192
    mkdir -p "corpus/$t"
    log=$(mktemp)
    if timeout $(( per_target + 120 )) cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$per_target" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1; then
        printf '%-16s ok    %s\n' "$t" "$(grep -E '^Done [0-9]+ runs' "$log" | head -1)"
    else
        printf '%-16s FAIL  (log below)\n' "$t"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' -A3 "$log" | head -30
        failed+=("$t")
    fi
    rm -f "$log"
done
echo "total: $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke failed: ${failed[*]}" >&2
    exit 1
fi

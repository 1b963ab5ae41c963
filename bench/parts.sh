#!/usr/bin/env bash
# Signed parts: every candidate encoding signed and verified for real, against the budgets of
# the signed-parts design (docs/design/parts.md). Rewrites the "parts" section of
# docs/BENCHMARKS.md. Takes about 3 minutes the first time (an optimised build), seconds after.
#   bench/parts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD=$(cut -d' ' -f1 /proc/loadavg)
{
    cargo bench -q -p manifest-signer --bench part_budget
    echo
    echo "Run $(date -u +%Y-%m-%d), load average $LOAD at the start. Sign + verify times are one core's."
} | python3 bench/section.py docs/BENCHMARKS.md parts
echo "wrote docs/BENCHMARKS.md (parts section)"

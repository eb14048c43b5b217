#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — every benchmark of bench/, one after the other.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/bench_tile.sh" "${1:-build}"
if [ -f "$here/bench_cox.sh" ]; then bash "$here/bench_cox.sh" "${1:-build}"; fi

#!/usr/bin/env bash
# bench/bench_sched.sh [BUILD_DIR] [N] — coordinator capacity: units dispatched per second with
# units that do nothing, 1 rank (rank 0's own worker thread only) and 2 ranks (rank 0 serving a
# second rank over MPI as well). Goal: >= 20,000 units/s. The in-run baseline is the 1-rank
# figure; see docs/architecture.md for what the capacity means for 100 and 1000 ranks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
n=${2:-200000}
. "$here/scripts/env.sh"
read -r _ _ _ t1 < <(mpirun -np 1 "$build/bench/bench_sched" "$n")
read -r _ _ _ t2 < <(mpirun -np 2 "$build/bench/bench_sched" "$n")
r1=$(echo "$n / $t1" | bc -l); r2=$(echo "$n / $t2" | bc -l)
printf 'bench_sched: %d no-op units\n  1 rank : %10.0f units/s\n  2 ranks: %10.0f units/s (goal >= 20000)\n' "$n" "$r1" "$r2"
printf 'BENCH name=sched_units_per_s_2_ranks value=%.0f unit=units/s baseline=20000 ratio=%.3f better=higher note=baseline_is_the_goal\n' "$r2" "$(echo "$r2 / 20000" | bc -l)"
printf 'BENCH name=sched_2_ranks_vs_1 value=%.0f unit=units/s baseline=%.0f ratio=%.3f better=higher\n' "$r2" "$r1" "$(echo "$r2 / $r1" | bc -l)"

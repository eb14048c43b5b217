#!/usr/bin/env bash
# labels: mpi sched
# The MPI scheduler alone: every unit reported once, bad input never retried, other failures
# retried up to the limit, units that wait for others run after them (or fail UPSTREAM_FAILED),
# bad items reach rank 0 intact, all ranks work (1 rank and 2 ranks).
. "$(dirname "$0")/lib.sh"
: "${SCHED_CHECK:?}"
expect_rc 0 "$SCHED_CHECK" "$WORK"
cat "$WORK/out"
expect_rc 0 mpirun -np 2 "$SCHED_CHECK" "$WORK"
cat "$WORK/out"
finish

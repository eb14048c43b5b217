#!/usr/bin/env bash
# labels: crash mpi
# SIGTERM (Slurm's time limit, pre-emption) to every rank mid-run: ranks stop cleanly (exit 3),
# the unit in flight is not recorded done, nothing is recorded failed; the next run resumes and
# finishes with every unit done once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 4 --size 8192 --seed 41 --quiet
# resnet18 at 224 px: slow enough on 2 cores that extraction is still going when we signal
sets=(--set extract.encoder=resnet18 --set run.dir="$WORK/run")
mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" >"$WORK/term.log" 2>&1 &
mp=$!
for i in $(seq 1 600); do   # wait until extraction has started (tile stage finished)
  n=$(ledger_q run "select count(*) from units where stage='tile' and state='done'" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 4 ] && break
  sleep 0.1
done
sleep 1
pkill -TERM -P "$mp" -f 'tessera run' || true
set +e; wait "$mp"; rc=$?; set -e
sed 's/^/    /' "$WORK/term.log" | tail -8
check "ranks stopped with exit 3 (got $rc)" test "$rc" = 3
check "the run said how to resume" grep -q 'run the same command again to resume' "$WORK/term.log"
pending=$(ledger_q run "select count(*) from units where stage='extract' and state='pending'")
check "extract units left pending ($pending), none failed" test "$pending" -ge 1 -a "$(ledger_q run "select count(*) from units where state='failed'")" = 0
check_ledger_consistent run "after SIGTERM"
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --quiet
check "resumed run: every unit done" test "$(ledger_q run "select count(*) from units where state<>'done'")" = 0
check_ledger_consistent run "after resume"
check_no_scratch run "after resume"
finish

#!/usr/bin/env bash
# labels: crash mpi
# kill -9 of one rank at a random moment, 10 trials (seeds printed), then a rerun: the outputs
# are byte-identical to an uninterrupted run, no unit is recorded done twice, no temporary file
# is ever taken for an output. Set CRASH_TRIALS / CRASH_SEED to replay.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
cd "$WORK"
trials=${CRASH_TRIALS:-10}
seed=${CRASH_SEED:-$(date +%s)}
echo "crash: $trials trials, seed $seed (CRASH_SEED=$seed to replay)"
RANDOM=$seed
expect_rc 0 "$TESSERA" synth cohort --slides 3 --size 6144 --seed 31 --quiet
# shards of 8 tiles: a slide is several units and a merge, so kills land between them too
sets=(--set extract.encoder=resnet_tiny --set extract.batch=8 --set extract.shard_tiles=8 --set run.dir="$WORK/run" --quiet)
t0=$(date +%s%N)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}"
ms=$((($(date +%s%N) - t0) / 1000000))
ref=$(out_sums run)
check "reference run produced outputs" test -n "$ref"
echo "crash: reference run ${ms} ms"
for t in $(seq 1 "$trials"); do
  rm -rf run
  delay=$((300 + RANDOM % (ms > 600 ? ms - 300 : 300)))
  victim=$((RANDOM % 2))
  mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" >"$WORK/crash.log" 2>&1 &
  mp=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  pids=($(rank_pids "$mp"))
  if [ ${#pids[@]} -gt 0 ]; then
    kill -9 "${pids[$((victim % ${#pids[@]}))]}" 2>/dev/null || true
    killed="killed rank pid ${pids[$((victim % ${#pids[@]}))]}"
  else
    killed="run had already finished"
  fi
  wait "$mp" || true
  echo "crash: trial $t: at ${delay} ms, $killed"
  before=$(ledger_q run "select count(*) from units where state='done'" 2>/dev/null || echo 0)
  expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}"
  check "trial $t (seed $seed, ${delay} ms, $before units done before): outputs identical to the uninterrupted run" test "$ref" = "$(out_sums run)"
  check_ledger_consistent run "trial $t"
  check_no_scratch run "trial $t"
done
finish

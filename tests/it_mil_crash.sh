#!/usr/bin/env bash
# labels: mil crash mpi
# kill -9 of one rank at a random moment of the mil stage (the earlier stages are run once with
# --until records; each trial runs `--stages mil` on a fresh copy of that run and kills), then a
# rerun: every file under mil/ and splits/ is byte-identical to an uninterrupted run, no unit is
# recorded done twice, no temporary is taken for an output or left behind.
# MIL_CRASH_TRIALS (default 4) / MIL_CRASH_SEED to replay.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
cd "$WORK"
trials=${MIL_CRASH_TRIALS:-4}
seed=${MIL_CRASH_SEED:-$(date +%s)}
echo "mil crash: $trials trials, seed $seed (MIL_CRASH_SEED=$seed to replay)"
RANDOM=$seed
expect_rc 0 "$TESSERA" synth cohort --slides 16 --size 3000 --seed 7 --quiet
sets=(--set extract.encoder=resnet_tiny --set tile.size=128 --set mil.models=abmil,clam_sb --set mil.folds=3
      --set mil.test_frac=0.2 --set mil.epochs=8 --set mil.min_epochs=8 --set mil.patience=8)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --until records --quiet
mv cohort/run base
mil_sums() { (cd "$1" && find mil splits -type f 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum); }

rm -rf cohort/run
cp -a base cohort/run
t0=$(date +%s%N)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --stages mil
ms=$((($(date +%s%N) - t0) / 1000000))
grep -E "^mil:" "$WORK/out" | sed 's/^/    /'
ref=$(mil_sums cohort/run)
check "reference run produced mil outputs ($(echo "$ref" | wc -l) files)" test "$(echo "$ref" | grep -c model.h5)" = 6
echo "mil crash: reference mil run ${ms} ms"
mv cohort/run ref

for t in $(seq 1 "$trials"); do
  rm -rf cohort/run
  cp -a base cohort/run
  # from just after start-up (plan, splits) to near the end of training
  delay=$((400 + RANDOM % (ms > 800 ? ms - 400 : 400)))
  victim=$((RANDOM % 2))
  mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --stages mil >"$WORK/crash.log" 2>&1 &
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
  before=$(ledger_q cohort/run "select count(*) from units where stage='mil' and state='done'" 2>/dev/null || echo 0)
  echo "mil crash: trial $t: at ${delay} ms, $killed, $before mil units done before the rerun"
  expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --stages mil
  got=$(mil_sums cohort/run)
  if [ "$ref" != "$got" ]; then diff <(echo "$ref") <(echo "$got") | sed 's/^/    /' | head -10; fi
  check "trial $t (seed $seed, ${delay} ms, $before units done before): mil/ and splits/ identical to the uninterrupted run" test "$ref" = "$got"
  check "trial $t: every mil unit done" test "$(ledger_q cohort/run "select count(*) from units where stage='mil' and state='done'")" = 6
  check_ledger_consistent cohort/run "trial $t"
  mv cohort/run "trial$t"
done
finish

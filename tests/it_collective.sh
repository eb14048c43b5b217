#!/usr/bin/env bash
# labels: collective crash mpi
# A collective stage (tests/toy_collective.c, in the real tessera as tessera_toy) on 2 ranks:
# every rank trains together, rank 0 checkpoints every TOY_EVERY steps into the ledger. Killed
# with -9 at random moments (and stopped with SIGTERM), then run again: it resumes from the
# last recorded checkpoint and ends with outputs byte-identical to an uninterrupted run; the
# unit is recorded done exactly once; a failure on one rank is reported by every rank and
# recorded. COLL_TRIALS / COLL_SEED replay.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
: "${TESSERA_TOY:?run through ctest}"
cd "$WORK"
trials=${COLL_TRIALS:-4}
seed=${COLL_SEED:-$(date +%s)}
RANDOM=$seed
echo "collective: $trials kill -9 trials, seed $seed (COLL_SEED=$seed to replay)"
printf 'slide_id,patient_id,path\n' >cohort.csv
printf 'run:\n  dir: run\n  seed: 7\ncohort:\n  csv: cohort.csv\n' >config.yaml
export TOY_STEPS=80 TOY_EVERY=5 TOY_STEP_MS=40
toy_pids() { pgrep -P "$1" -f "tessera_toy run" || true; }
# wait (up to 120 s, whatever the machine's load) until run/ has recorded at least $1 checkpoints
wait_ckpt() {
  local want=$1 i
  for i in $(seq 1 1200); do
    n=$(sqlite3 -readonly run/ledger.sqlite "select count(*) from checkpoints" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge "$want" ] && return 0
    sleep 0.1
  done
  return 1
}
outs() { (cd "$1" && sha256sum toy/result.txt toy/curve.csv 2>/dev/null); }
runs=(mpirun -np 2 "$TESSERA_TOY" run config.yaml)

expect_rc 0 "${runs[@]}"
check "uninterrupted: training on 2 ranks together" grep -q "toy: training on 2 rank(s) together" "$WORK/out"
ref=$(outs run)
check "uninterrupted: result and curve written" test "$(echo "$ref" | wc -l)" = 2
check "uninterrupted: every rank's contribution counted (80 steps x 2 ranks)" grep -q "contributions = 160" run/toy/result.txt
check "uninterrupted: 15 checkpoints recorded (steps 5..75)" test "$(ledger_q run "select count(*) from checkpoints where stage='toy'")" = 15
check "uninterrupted: the unit's two outputs recorded with checksums" test "$(ledger_q run "select count(*) from outputs where stage='toy' and unit='toy'")" = 2
check_ledger_consistent run "uninterrupted"
expect_rc 0 "${runs[@]}"
check "a second run has nothing to do" grep -q "toy: all 1 training run already done" "$WORK/out"

resumed=0
for t in $(seq 1 "$trials"); do
  rm -rf run
  # kill at a random moment after a random number (1-8) of checkpoints: under any load the kill
  # lands mid-training, with something to resume from
  want=$((1 + RANDOM % 8))
  delay=$((RANDOM % 200))
  "${runs[@]}" >"$WORK/kill.log" 2>&1 &
  mp=$!
  wait_ckpt "$want" || true
  sleep "$(printf '0.%03d' "$delay")"
  pids=($(toy_pids "$mp"))
  victim=$((RANDOM % 2))
  if [ ${#pids[@]} -gt 0 ]; then kill -9 "${pids[$((victim % ${#pids[@]}))]}" 2>/dev/null || true; fi
  wait "$mp" || true
  step=$(ledger_q run "select coalesce(max(step), -1) from checkpoints where stage='toy'" 2>/dev/null || echo -1)
  echo "collective: trial $t: kill -9 of a rank ${delay} ms after checkpoint $want, last checkpoint recorded: step $step"
  expect_rc 0 "${runs[@]}"
  if [ "${step:--1}" -gt 0 ] 2>/dev/null; then
    resumed=$((resumed + 1))
    check "trial $t: resumed from the checkpoint of step $step" grep -q "resuming from the checkpoint of step $step" "$WORK/out"
  fi
  check "trial $t (seed $seed, after checkpoint $want + ${delay} ms): outputs identical to the uninterrupted run" test "$ref" = "$(outs run)"
  check_ledger_consistent run "trial $t"
done
check "at least one trial resumed from a checkpoint (not just restarted)" test "$resumed" -gt 0

# SIGTERM (Slurm's warning before the time limit): every rank stops together, exit 3, resume
rm -rf run
"${runs[@]}" >"$WORK/term.log" 2>&1 &
mp=$!
wait_ckpt 2 || true
pkill -TERM -P "$mp" -f 'tessera_toy run' || true  # every rank, as Slurm signals them
set +e; wait "$mp"; rc=$?; set -e
check "SIGTERM: exit 3 (stopped; pending)" test "$rc" = 3
check "SIGTERM: the unit stays pending" test "$(ledger_q run "select state from units where stage='toy'")" = pending
expect_rc 0 "${runs[@]}"
check "SIGTERM: resumed" grep -q "resuming from the checkpoint" "$WORK/out"
check "SIGTERM: outputs identical to the uninterrupted run" test "$ref" = "$(outs run)"

# a checkpoint file damaged behind the ledger's back is not resumed from
ckpt=$(ls run/ckpt/toy/*.bin | tail -1)
rm -rf run2; cp -r run run2
sed -i 's/dir: run$/dir: run2/' config.yaml
sqlite3 run2/ledger.sqlite "update units set state='pending' where stage='toy'"
printf 'x' >>"run2/${ckpt#run/}"
expect_rc 0 "${runs[@]}" --reconfigure
check "damaged checkpoint: skipped for an earlier one" grep -q "is gone or changed: trying an earlier one" "$WORK/out"
check "damaged checkpoint: outputs still identical" test "$ref" = "$(outs run2)"
sed -i 's/dir: run2$/dir: run/' config.yaml

# one rank fails: every rank agrees, the unit is recorded failed with that rank's token
rm -rf run
TOY_FAIL_RANK=1 expect_rc 1 "${runs[@]}"
check "failure on rank 1: recorded failed with its token" test "$(ledger_q run "select state, error_token from units where stage='toy'")" = "failed|TOY_FAILED"
check "failure on rank 1: the message names the rank" grep -q "rank 1" "$WORK/out"
finish

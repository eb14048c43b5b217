#!/usr/bin/env bash
# labels: slurm mpi
# `tessera submit` against a real single-node Slurm (munge + slurmctld + slurmd started here,
# tests/slurm_env.sh): the job (srun --mpi=pmix, 2 ranks) runs a synthetic cohort to the end and
# `tessera status` shows every unit done. The cohort lives under a directory whose name holds
# spaces, quotes, $(...) and backticks, and a --set value holds them too: nothing may run.
. "$(dirname "$0")/lib.sh"
. "$TS_SOURCE_DIR/tests/slurm_env.sh"
t0=$SECONDS

evil="$WORK/it's a \$(touch PWNED1) \`touch PWNED2\` dir"
mkdir -p "$evil"
cd "$evil"
expect_rc 0 "$TESSERA" synth cohort --slides 2 --size 4096 --seed 5 --quiet
# run.dir through --set: a string value with every kind of shell syntax, and a '%' (a Slurm
# file-name pattern character) that the #SBATCH --output line must keep literal.
run="$WORK/run 100% \"q\" 'it''s' \$(touch PWNED3) \`touch PWNED4\` \$HOME"

# Usage and config errors: exit 2, nothing written.
expect_rc 2 "$TESSERA" submit
expect_rc 2 "$TESSERA" submit cohort/config.yaml --nodes zero
expect_rc 2 "$TESSERA" submit cohort/config.yaml --set tile.nosuchkey=1
check "a bad key is named" grep -q CONFIG_UNKNOWN_KEY "$WORK/out"
expect_rc 2 "$TESSERA" submit cohort/config.yaml --partition 'debug;rm -rf /'
check "a bad partition is refused" grep -q SLURM_BAD_VALUE "$WORK/out"
check "errors made no run directory" test ! -e "$run"
expect_rc 0 "$TESSERA" submit --help

# --dry-run: the script, single-quoted words, nothing written or submitted.
expect_rc 0 "$TESSERA" submit cohort/config.yaml --nodes 1 --ntasks-per-node 2 --time 10 \
  --set extract.encoder=resnet_tiny --set "run.dir=$run" --dry-run
cp "$WORK/out" "$WORK/dry.sbatch"
check "dry run wrote nothing" test ! -e "$run"
# The shell must hand srun exactly these words: run the srun line with printf instead.
grep '^srun ' "$WORK/dry.sbatch" | sed 's/^srun /printf "%s\\n" /; s/ &$//' >"$WORK/srun_line.sh"
bash "$WORK/srun_line.sh" >"$WORK/srun_args"
printf '%s\n' --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=none "$TESSERA" run "$evil/cohort/config.yaml" \
  --set extract.encoder=resnet_tiny --set "run.dir=$run" >"$WORK/srun_want"
check "the script's srun words are the arguments, verbatim" cmp -s "$WORK/srun_args" "$WORK/srun_want"
check "dry run doubles the % of the log path" grep -qF '100%% ' "$WORK/dry.sbatch"
check "dry run asks for a signal before the time limit" grep -q '^#SBATCH --signal=B:USR1@120$' "$WORK/dry.sbatch"
check "dry run asks for requeue" grep -q '^#SBATCH --requeue$' "$WORK/dry.sbatch"
check "dry run has the time limit" grep -q '^#SBATCH --time=10$' "$WORK/dry.sbatch"
check "bash parses the script" bash -n "$WORK/dry.sbatch"

# Without sbatch on PATH: SLURM_SBATCH, exit 2.
expect_rc 2 env PATH=/nonexistent "$TESSERA" submit cohort/config.yaml --set extract.encoder=resnet_tiny
check "no sbatch: SLURM_SBATCH" grep -q SLURM_SBATCH "$WORK/out"

ts_slurm_start || { fail "slurm did not start"; finish; }
pass "slurm up ($((SECONDS - t0)) s)"

set +e
id=$("$TESSERA" submit cohort/config.yaml --nodes 1 --ntasks-per-node 2 --time 10 \
  --set extract.encoder=resnet_tiny --set "run.dir=$run" 2>"$WORK/submit.err")
rc=$?
set -e
check "submit exits 0" test "$rc" = 0
check "submit prints a job id" grep -qE '^[0-9]+$' <<<"$id"
sed 's/^/    /' "$WORK/submit.err"
check "script kept in the run directory" test -s "$run/slurm/submit-1.sbatch"
st=$(ts_slurm_wait_job "$id" 150) || true
check "job completed (state $st)" test "$st" = COMPLETED
log="$run/slurm/$id.out"
check "job log in RUN_DIR/slurm/<id>.out" test -s "$log"
check "the job ran 2 ranks" grep -q ", 2 ranks," "$log"
if [ "$st" != COMPLETED ]; then tail -30 "$log" 2>/dev/null | sed 's/^/    /'; ts_slurm_logs | sed 's/^/    /'; fi

expect_rc 0 "$TESSERA" status "$run" --json
cp "$WORK/out" "$WORK/status.json"
$PY - "$WORK/status.json" <<'EOF' && pass "status: every unit of every stage done" || fail "status: not all done"
import json, sys
s = json.load(open(sys.argv[1]))
st = s["stages"]
ok = st and all((x["done"] > 0 or x.get("skipped")) and x["failed"] == 0 and x["pending"] == 0 for x in st)  # a stage with nothing to do (mil without models) is skipped, saying why
print("    " + ", ".join(f'{x["name"]} {x["done"]}/{x["done"] + x["failed"] + x["pending"]}' for x in st))
sys.exit(0 if ok else 1)
EOF
q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" "$run/ledger.sqlite" "$1"; }
check "both ranks did units" test "$(q "select count(distinct rank) from units where state='done'")" = 2
check "the ledger records 2 ranks" test "$(q "select ranks from runs order by id desc limit 1")" = 2

# Quoting: nothing in the paths or values was executed.
check "the run directory has its literal name" test -s "$run/ledger.sqlite"
check "no command ran from a path or value" test -z "$(find / -maxdepth 1 -name 'PWNED*'; find "$WORK" -name 'PWNED*')"
check "no temporary file left" test -z "$(find "$run" -name '*.tmp.*')"

# A second submit of a finished run: a new script, and a job that finds nothing to do.
set +e
id2=$("$TESSERA" submit cohort/config.yaml --nodes 1 --ntasks-per-node 2 --set extract.encoder=resnet_tiny \
  --set "run.dir=$run" 2>/dev/null)
set -e
check "second script is submit-2" test -s "$run/slurm/submit-2.sbatch"
st=$(ts_slurm_wait_job "$id2" 60) || true
check "second job completed (state $st)" test "$st" = COMPLETED
check "second job redid no unit" test "$(q "select count(*) from units where stage<>'report' and run_id=(select max(id) from runs)")" = 0
echo "    total $((SECONDS - t0)) s"
finish

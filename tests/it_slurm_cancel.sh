#!/usr/bin/env bash
# labels: slurm mpi
# A Slurm job of `tessera submit` is signalled mid-run (`scancel --signal=TERM`: SIGTERM to the
# ranks of the job step, as Slurm does at pre-emption), after some extract units are done and
# before all are; a second `tessera submit` resumes it. Checks: the second job completes, every
# unit is done, the units done before the signal were not redone (same run_id and checksum), each
# done unit's output matches its recorded checksum, and no temporary file is left.
# The extract stage uses the default encoder (resnet50_trunc, a few tiles per second on a
# laptop-class CPU) so that there is a window to signal in.
. "$(dirname "$0")/lib.sh"
. "$TS_SOURCE_DIR/tests/slurm_env.sh"
t0=$SECONDS
cd "$WORK"
N=8   # enough work per unit that a unit is always in flight when the signal lands
expect_rc 0 "$TESSERA" synth cohort --slides $N --size 6144 --seed 21 --quiet
run="$WORK/cohort/run"
q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1], timeout=10).execute(sys.argv[2])))" "$run/ledger.sqlite" "$1" 2>/dev/null; }

ts_slurm_start || { fail "slurm did not start"; finish; }
pass "slurm up ($((SECONDS - t0)) s)"

set +e
id=$("$TESSERA" submit cohort/config.yaml --nodes 1 --ntasks-per-node 2 2>"$WORK/submit.err")
set -e
check "first submit prints a job id" grep -qE '^[0-9]+$' <<<"$id"

# Wait for 1 <= slides extracted (merge units: no '#' in the name) < N, then signal the ranks.
caught=0
t1=$SECONDS
while [ $((SECONDS - t1)) -lt 150 ]; do
  d=$(q "select count(*) from units where stage='extract' and state='done' and unit not like '%#%'" || echo 0)
  if [ -n "$d" ] && [ "$d" -ge 1 ] && [ "$d" -lt $N ]; then
    scancel --signal=TERM "$id" && caught=1
    break
  fi
  case "$(ts_slurm_job_state "$id")" in PENDING | RUNNING | CONFIGURING | "") ;; *) break ;; esac
  sleep 0.2
done
check "signalled mid-run ($d of $N extract units done, $((SECONDS - t1)) s after submit)" test "$caught" = 1
st=$(ts_slurm_wait_job "$id" 90) || true
echo "    first job ended: $st"
sed 's/^/    | /' "$run/slurm/$id.out" | tail -8
before=$(q "select stage, unit, run_id, checksum from units where state='done' and stage in ('tissue','tile','extract') order by stage, unit")
n_before=$(grep -c . <<<"$before" || true)
check "the first job left work undone" test "$(q "select count(*) from units where stage='extract' and state='done' and unit not like '%#%'")" -lt $N

set +e
id2=$("$TESSERA" submit cohort/config.yaml --nodes 1 --ntasks-per-node 2 2>>"$WORK/submit.err")
set -e
check "second submit prints a job id" grep -qE '^[0-9]+$' <<<"$id2"
st=$(ts_slurm_wait_job "$id2" 150) || true
check "resumed job completed (state $st)" test "$st" = COMPLETED
[ "$st" = COMPLETED ] || { tail -30 "$run/slurm/$id2.out" | sed 's/^/    /'; ts_slurm_logs | sed 's/^/    /'; }

expect_rc 0 "$TESSERA" status "$run" --json
cp "$WORK/out" "$WORK/status.json"
$PY - "$WORK/status.json" "$N" <<'EOF' && pass "status: every unit done" || fail "status: not all done"
import json, sys
st = json.load(open(sys.argv[1]))["stages"]
n = int(sys.argv[2])
print("    " + ", ".join(f'{x["name"]} {x["done"]}/{x["done"] + x["failed"] + x["pending"]}' for x in st))
want = {"tissue": n, "tile": n}
ok = all(x["failed"] == 0 and x["pending"] == 0 for x in st)
ok = ok and all(any(x["name"] == k and x["done"] == v for x in st) for k, v in want.items())
ok = ok and any(x["name"] == "extract" and x["done"] >= n for x in st)  # shards and one merge per slide
sys.exit(0 if ok else 1)
EOF
check "one ledger row per slide in tissue, tile and extract's merges ($((3 * N)))" \
  test "$(q "select count(*) from units where stage in ('tissue','tile','extract') and unit not like '%#%'")" = $((3 * N))
total=$(q "select count(*) from units where stage in ('tissue','tile','extract')")
after=$(q "select stage, unit, run_id, checksum from units where state='done' and stage in ('tissue','tile','extract') order by stage, unit")
kept=$(LC_ALL=C comm -12 <(LC_ALL=C sort <<<"$before") <(LC_ALL=C sort <<<"$after") | grep -c . || true)
check "the $n_before units done before the signal were not redone" test "$kept" = "$n_before"
last=$(q "select max(id) from runs")
check "the resumed job did the rest ($((total - n_before)) of $total units)" \
  test "$(q "select count(*) from units where stage in ('tissue','tile','extract') and run_id=$last")" = $((total - n_before))
$PY - "$run" <<'EOF' && pass "every done unit's output matches its checksum" || fail "an output does not match its checksum"
import hashlib, os, sqlite3, sys
run = sys.argv[1]
bad = 0
for stage, unit, out, ck in sqlite3.connect(os.path.join(run, "ledger.sqlite")).execute(
        "select stage, unit, output, checksum from units where state='done' and output is not null and output<>''"):
    p = os.path.join(run, out)
    if not os.path.isfile(p) or hashlib.sha256(open(p, "rb").read()).hexdigest() != ck:
        print(f"    {stage} {unit}: {out}"); bad += 1
sys.exit(1 if bad else 0)
EOF
check "no temporary file left" test -z "$(find "$run" -name '*.tmp.*')"
echo "    total $((SECONDS - t0)) s"
finish

#!/usr/bin/env bash
# bench/bench_mil_scaling.sh [BUILD_DIR] — strong scaling of the mil stage: FOLDS=10 folds
# (mil.folds, mil.test_frac 0.1: CLAM's 10 disjoint test sets) of one model (MODELS=abmil) on the
# same cohort, run on 1 rank and on 2 ranks (mpirun -np 2), in fresh run directories, only the
# mil stage (`--stages mil`: mil.features points at the feature files, so no slide, tile or
# extract stage is needed); the stage's wall time is read from the ledger (table stages).
# speed-up = 1-rank time / 2-rank time (goal >= 1.8), efficiency = speed-up / 2. The 1-rank run
# is the baseline. Every unit (model, fold) does the same work: EPOCHS=3 epochs with
# mil.min_epochs = EPOCHS (no early stop), so 10 units over 2 ranks balance 5 / 5. ROUNDS=1
# rounds of both runs, the order alternating from round to round (1, 2 / 2, 1 / ...); the
# figures are the medians over the rounds (the VM's other load moves single runs by 20-40 %).
#
# Cohort: SLIDES=100 slides (one per patient, labels 0/1 alternating) of TILES=800 tiles on
# average (uniform 400..1200) x DIM=1024 float32 features, with signal (bench/mil_bench_bags.py:
# positive bags have 10 % of their tiles shifted along one direction), generated once with
# Debian's /usr/bin/python3 into BUILD_DIR/bench-cache/ (~330 MB for the defaults) and kept.
# ~3-5 min on 1 rank for the defaults on the shared 2-core VM (~7-9 min a round, with the ceiling).
#
# Also printed: the ranks' busy fraction (time inside units / (ranks x stage time): the rest is
# planning, the scheduler, the finish); the CPU the ranks got per core (ledger table rusage:
# under 1 when the VM's other work takes the cores, and then the speed-up says more about that
# load than about tessera) and per unit (the same on 1 and 2 ranks: no extra work on 2 ranks);
# the spread of the units' times; whether both runs wrote the same model bytes (the stage
# promises it whichever rank runs a unit); and the machine's own ceiling (CEILING=0 skips it):
# two independent 1-rank tessera processes (no MPI between them) each training CEIL_FOLDS=2
# folds of the same cohort, against one alone, in bags/s inside units. On a VM whose 2 cores
# share memory bandwidth that ceiling is under 2 (under other CPU-bound work it can exceed 2:
# two processes get a larger share than one); "of ceiling" = speed-up / ceiling is what the
# scheduler and the stage can be held to.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
slides=${SLIDES:-100} tiles=${TILES:-800} dim=${DIM:-1024} epochs=${EPOCHS:-3} folds=${FOLDS:-10}
models=${MODELS:-abmil} ceil_folds=${CEIL_FOLDS:-2} rounds=${ROUNDS:-1}
py=/usr/bin/python3
bin="$build/tessera"
[ -x "$bin" ] || { echo "bench_mil_scaling.sh: $bin not found: build first" >&2; exit 2; }
. "$here/scripts/env.sh"

cache="$build/bench-cache/mil-scaling-$slides-$tiles-$dim"
if [ ! -f "$cache/done" ]; then
  rm -rf "$cache"
  echo "bench_mil_scaling: generating $slides feature files of ~$tiles x $dim into $cache" >&2
  "$py" "$here/bench/mil_bench_bags.py" "$cache" "$slides" "$tiles" "$dim" --vary 0.5 --seed 11
fi
cat > "$cache/config.yaml" <<EOF
run:
  dir: run
cohort:
  csv: cohort.csv
mil:
  models: $models
  features: features
  folds: $folds
  test_frac: 0.1
  val_frac: 0.1
  epochs: $epochs
  min_epochs: $epochs
  threads: 1
EOF
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ts_mil_scaling.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

q() { "$py" -c "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone(); print(r[0] if r else '')" "$1/ledger.sqlite" "$2"; }
run_mil() { # run_mil DIR NP [--set k=v]...: the mil stage of the cohort into the fresh run directory
  # DIR, on NP ranks (mpirun), or NP=0: one process without mpirun
  local rd=$1 np=$2 launch=()
  shift 2
  [ "$np" -gt 0 ] && launch=(mpirun -np "$np")
  "${launch[@]}" "$bin" run "$cache/config.yaml" --stages mil --set run.dir="$rd" "$@" --quiet >"$rd.log" 2>&1 ||
    { echo "bench_mil_scaling.sh: run into $rd failed:" >&2; tail -20 "$rd.log" >&2; exit 1; }
  [ "$(q "$rd" "select count(*) from units where stage='mil' and state='done'")" -gt 0 ] ||
    { echo "bench_mil_scaling.sh: no mil unit done in $rd" >&2; tail -20 "$rd.log" >&2; exit 1; }
}
declare -A T B U S C CU
# ROUNDS rounds, the order alternating (1 then 2 ranks, then 2 then 1, ...) so that a drift in the
# machine's other load hits both alike; the figures are the medians over the rounds
for r in $(seq 1 "$rounds"); do
  order="1 2"
  [ $((r % 2)) = 0 ] && order="2 1"
  for np in $order; do
    rd="$tmp/r$np.$r"
    la=$(cut -d' ' -f1 /proc/loadavg)
    run_mil "$rd" "$np"
    T[$np.$r]=$(q "$rd" "select seconds from stages where name='mil'")
    echo "  round $r, $np rank(s): ${T[$np.$r]} s (load average before: $la)" >&2
    U[$np]=$(q "$rd" "select count(*) from units where stage='mil' and state='done'")
    B[$np.$r]=$(q "$rd" "select sum(seconds) / ($np * (select seconds from stages where name='mil')) from units where stage='mil'")
    # CPU the ranks got (process CPU seconds at the stage's end, start-up included) per core
    # and per wall second, and per unit: the same per unit on 1 and 2 ranks = the stage did no
    # extra work on 2 ranks, and a share under 1 = the machine's other load took the rest
    C[$np.$r]=$(q "$rd" "select sum(cpu_seconds) / ($np * (select seconds from stages where name='mil')) from rusage where stage='mil'")
    CU[$np.$r]=$(q "$rd" "select sum(cpu_seconds) / (select count(*) from units where stage='mil') from rusage where stage='mil'")
    # units per rank and each rank's time inside units; shortest / longest unit
    S[$np.$r]=$("$py" - "$rd/ledger.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ranks = db.execute("select rank, count(*), sum(seconds) from units where stage='mil' group by rank order by rank").fetchall()
lo, hi = db.execute("select min(seconds), max(seconds) from units where stage='mil'").fetchone()
print(", ".join(f"rank {r}: {n} units {s:.1f} s" for r, n, s in ranks) + f"; units {lo:.1f}..{hi:.1f} s")
PY
)
  done
done
median() { # median NP ARRAY: of ARRAY[NP.round] over the rounds
  local -n arr=$2
  local i
  for i in $(seq 1 "$rounds"); do echo "${arr[$1.$i]}"; done | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# same model bytes, whichever rank ran a fold
same=$("$py" - "$tmp/r1.1/ledger.sqlite" "$tmp/r2.1/ledger.sqlite" <<'PY'
import sqlite3, sys
a, b = ({r for r in sqlite3.connect(p).execute("select unit, path, checksum from outputs where stage='mil' and path like '%model.h5'")} for p in sys.argv[1:3])
print("yes" if a and a == b else f"NO ({len(a ^ b)} differ)")
PY
)
auc=$("$py" -c "import json,sys; m=json.load(open(sys.argv[1]))['models'][0]; print('%s test AUC %.3f +- %.3f over %d folds' % (m['model'], m['auc_mean'], m['auc_sd'], m['folds_done']))" "$tmp/r1.1/mil/summary.json")

ceiling=""
if [ "${CEILING:-1}" != 0 ]; then
  rate() { q "$1" "select sum(items) / sum(seconds) from units where stage='mil'"; }
  set_c=(--set mil.folds="$ceil_folds" --set mil.test_frac=0.2)
  run_mil "$tmp/c0" 0 "${set_c[@]}"
  run_mil "$tmp/ca" 0 "${set_c[@]}" &
  pa=$!
  run_mil "$tmp/cb" 0 "${set_c[@]}"
  wait "$pa"
  alone=$(rate "$tmp/c0") a=$(rate "$tmp/ca") b=$(rate "$tmp/cb")
  ceiling=$(echo "($a + $b) / $alone" | bc -l)
fi

t1=$(median 1 T) t2=$(median 2 T) b1=$(median 1 B) b2=$(median 2 B)
sp=$(echo "$t1 / $t2" | bc -l)
eff=$(echo "$sp / 2" | bc -l)
echo "bench_mil_scaling: $models, ${U[1]} units ($folds folds), $epochs epochs each, medians over $rounds round(s), $slides slides of ~$tiles x $dim (float32), 1 LibTorch thread per rank; $auc"
if [ -n "$ceiling" ]; then
  printf '  machine ceiling: one 1-rank process alone %.2f bags/s, two at once %.2f + %.2f: speed-up %.2f at best\n' "$alone" "$a" "$b" "$ceiling"
  printf 'BENCH name=mil_scaling_machine_ceiling_2_processes value=%s unit=bags/s baseline=%s ratio=%s better=higher note=two_independent_1_rank_processes\n' \
    "$(echo "$a + $b" | bc -l)" "$alone" "$ceiling"
  of=$(echo "$sp / $ceiling" | bc -l)
  ofs=$(printf ', %.2f of the machine ceiling' "$of")
  ofn=$(printf '_of_ceiling_%.3f' "$of")
else
  ofs="" ofn=""
fi
printf '  mil  1 rank %8.2f s   2 ranks %8.2f s   speed-up %.2f (goal >= 1.8)   efficiency %.2f%s\n' "$t1" "$t2" "$sp" "$eff" "$ofs"
printf '  ranks busy in units: %.0f %% of the stage on 1 rank, %.0f %% on 2 (the rest: planning, scheduling, finish)\n' \
  "$(echo "100 * $b1" | bc -l)" "$(echo "100 * $b2" | bc -l)"
c1=$(median 1 C) c2=$(median 2 C)
printf '  CPU the ranks got: %.2f of a core on 1 rank, %.2f of each of 2 cores on 2 ranks; CPU seconds per unit %.1f and %.1f\n' \
  "$c1" "$c2" "$(median 1 CU)" "$(median 2 CU)"
# what the speed-up would be had each rank got the core share the 1-rank run got (an estimate:
# it assumes the time is CPU-bound, which it is when the per-unit CPU seconds agree)
printf '  speed-up at the 1-rank run'"'"'s CPU share per core (speed-up x %.2f / %.2f): %.2f (estimate)\n' "$c1" "$c2" "$(echo "$sp * $c1 / $c2" | bc -l)"
for r in $(seq 1 "$rounds"); do
  echo "  round $r: 1 rank ${T[1.$r]} s: ${S[1.$r]}"
  echo "           2 ranks ${T[2.$r]} s: ${S[2.$r]}"
done
echo "  same model.h5 bytes on 1 and 2 ranks: $same"
printf 'BENCH name=scaling_mil_2_ranks value=%s unit=s baseline=%s ratio=%s better=lower note=efficiency_%.3f_goal_speedup_1.8%s\n' "$t2" "$t1" "$sp" "$eff" "$ofn"
printf 'BENCH name=scaling_mil_busy_fraction_2_ranks value=%s unit=fraction baseline=%s ratio=%s better=higher note=baseline_is_1_rank\n' \
  "$b2" "$b1" "$(echo "$b2 / $b1" | bc -l)"

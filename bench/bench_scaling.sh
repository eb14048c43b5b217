#!/usr/bin/env bash
# bench/bench_scaling.sh [BUILD_DIR] [SLIDES] [SHARD] [SIZE] — strong scaling of the tile and
# extract stages: the same synthetic cohort (SLIDES slides, default 4, of SIZE² px, default
# 16000: few slides, so that whole-slide units cannot be balanced; ResNet-50-trunc, 1 LibTorch
# thread per rank) run on 1 rank, on 2 ranks with one extract unit per slide
# (extract.shard_tiles=0) and on 2 ranks with shards of SHARD tiles (default 64), in fresh run
# directories; each stage's wall time is read from the ledger. efficiency = speed-up / ranks
# (goal >= 0.92). The 1-rank run (whole-slide units: nothing to balance) is the baseline.
# The machine's own ceiling is measured too: two independent 1-thread encoder processes
# (bench_encoder, no MPI, no tessera) against one alone. On a VM whose cores share memory
# bandwidth or a throttled FPU that ceiling is well under 2; "of ceiling" = speed-up / ceiling
# is then what the scheduler and the stage can be held to.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
slides=${2:-4}
shard=${3:-64}
size=${4:-16000}
. "$here/scripts/env.sh"
cache="$build/bench-cache/scaling-$slides-$size"
if [ ! -f "$cache/config.yaml" ]; then
  rm -rf "$cache"
  "$build/tessera" synth "$cache" --slides "$slides" --size "$size" --seed 9 --quiet
fi
secs() { /usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select seconds from stages where name=?', (sys.argv[2],)).fetchone()[0])" "$1/ledger.sqlite" "$2"; }
declare -A T B R
# name ranks shard_tiles (batch 32, so shards are multiples of it)
for cfg in "1:1:0" "2w:2:0" "2s:2:$shard"; do
  IFS=: read -r name np k <<<"$cfg"
  rd=$(mktemp -d /tmp/ts_scaling.XXXXXX); rmdir "$rd"
  mpirun -np "$np" "$build/tessera" run "$cache/config.yaml" --set run.dir="$rd" --set extract.threads=1 \
    --set extract.batch=32 --set extract.shard_tiles="$k" --quiet >/dev/null 2>&1
  for st in tile extract; do T[$st,$name]=$(secs "$rd" "$st"); done
  # busy fraction: time the ranks spent in extract units / (ranks x the stage's wall time)
  R[$name]=$(/usr/bin/python3 -c "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); print(db.execute(\"select sum(items) / sum(seconds) from units where stage='extract'\").fetchone()[0])" "$rd/ledger.sqlite")
  B[$name]=$(/usr/bin/python3 -c "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); w=db.execute(\"select seconds from stages where name='extract'\").fetchone()[0]; u=db.execute(\"select sum(seconds) from units where stage='extract'\").fetchone()[0]; print(u / (int(sys.argv[2]) * w))" "$rd/ledger.sqlite" "$np")
  tiles=$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select sum(items) from units where stage='extract'\").fetchone()[0])" "$rd/ledger.sqlite")
  rm -rf "$rd"
done
rate() { sed -n 's/^BENCH name=encoder_resnet50_trunc_threads value=\([0-9.]*\).*/\1/p' "$1"; }
enc="$build/bench/bench_encoder"
"$enc" 8 4 1 >"$cache/enc_alone.txt" 2>&1
"$enc" 8 4 1 >"$cache/enc_a.txt" 2>&1 &
"$enc" 8 4 1 >"$cache/enc_b.txt" 2>&1
wait
alone=$(rate "$cache/enc_alone.txt"); a=$(rate "$cache/enc_a.txt"); b=$(rate "$cache/enc_b.txt")
ceiling=$(echo "($a + $b) / $alone" | bc -l)
echo "bench_scaling: $slides slides of ${size}² px, $tiles tiles, ResNet-50-trunc, 1 thread per rank"
printf '  machine ceiling: one encoder process alone %.1f tiles/s, two at once %.1f + %.1f: speed-up %.2f at best\n' "$alone" "$a" "$b" "$ceiling"
printf 'BENCH name=scaling_machine_ceiling_2_processes value=%s unit=tiles/s baseline=%s ratio=%s better=higher note=two_independent_encoder_processes\n' "$(echo "$a + $b" | bc -l)" "$alone" "$ceiling"
line() { # stage name label
  local t1=${T[$1,1]} t2=${T[$1,$2]}
  local eff of; eff=$(echo "($t1 / $t2) / 2" | bc -l); of=$(echo "($t1 / $t2) / $ceiling" | bc -l)
  printf '  %-8s 1 rank %8.2f s   2 ranks, %-22s %8.2f s   speed-up %.2f   efficiency %.2f (goal >= 0.92), %.2f of the machine ceiling\n' \
    "$1" "$t1" "$3" "$t2" "$(echo "$t1 / $t2" | bc -l)" "$eff" "$of"
  printf 'BENCH name=scaling_%s_2_ranks%s value=%s unit=s baseline=%s ratio=%s better=lower note=efficiency_%.3f_of_ceiling_%.3f\n' "$1" "$4" "$t2" "$t1" "$(echo "$t1 / $t2" | bc -l)" "$eff" "$of"
}
line tile 2s "" ""
line extract 2w "one unit per slide:" "_whole_slides"
line extract 2s "shards of $shard tiles:" ""
printf '  extract: ranks busy in units %.0f %% of the stage (whole-slide units), %.0f %% (shards of %s): the rest is start-up and waiting\n' \
  "$(echo "100 * ${B[2w]}" | bc -l)" "$(echo "100 * ${B[2s]}" | bc -l)" "$shard"
# per-tile speed of a rank inside its units (start-up included), beside the bare encoder's
printf '  extract: tiles per second of a rank inside units: %.1f on 1 rank, %.1f on 2 ranks with shards (bare encoder: %.1f alone, %.1f + %.1f side by side)\n' \
  "${R[1]}" "${R[2s]}" "$alone" "$a" "$b"
printf 'BENCH name=scaling_extract_busy_fraction_shards value=%s unit=fraction baseline=%s ratio=%s better=higher note=baseline_is_whole_slide_units\n' \
  "${B[2s]}" "${B[2w]}" "$(echo "${B[2s]} / ${B[2w]}" | bc -l)"

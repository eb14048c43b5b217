#!/usr/bin/env bash
# bench/bench_scaling.sh [BUILD_DIR] [SLIDES] [SHARD] — strong scaling of the tile and extract
# stages: the same synthetic cohort (SLIDES slides of 12000² px, ResNet-50-trunc, 1 LibTorch
# thread per rank) run on 1 rank, on 2 ranks with one extract unit per slide
# (extract.shard_tiles=0) and on 2 ranks with shards of SHARD tiles (default 32), in fresh run
# directories; each stage's wall time is read from the ledger. efficiency = speed-up / ranks
# (goal >= 0.92). The 1-rank run (whole-slide units: nothing to balance) is the baseline.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
slides=${2:-4}
shard=${3:-32}
. "$here/scripts/env.sh"
cache="$build/bench-cache/scaling-$slides"
if [ ! -f "$cache/config.yaml" ]; then
  rm -rf "$cache"
  "$build/tessera" synth "$cache" --slides "$slides" --size 12000 --seed 9 --quiet
fi
secs() { /usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select seconds from stages where name=?', (sys.argv[2],)).fetchone()[0])" "$1/ledger.sqlite" "$2"; }
declare -A T
# name ranks shard_tiles (batch 32, so shards are multiples of it)
for cfg in "1:1:0" "2w:2:0" "2s:2:$shard"; do
  IFS=: read -r name np k <<<"$cfg"
  rd=$(mktemp -d /tmp/ts_scaling.XXXXXX); rmdir "$rd"
  mpirun -np "$np" "$build/tessera" run "$cache/config.yaml" --set run.dir="$rd" --set extract.threads=1 \
    --set extract.batch=32 --set extract.shard_tiles="$k" --quiet >/dev/null 2>&1
  for st in tile extract; do T[$st,$name]=$(secs "$rd" "$st"); done
  tiles=$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select sum(items) from units where stage='extract'\").fetchone()[0])" "$rd/ledger.sqlite")
  rm -rf "$rd"
done
echo "bench_scaling: $slides slides of 12000² px, $tiles tiles, ResNet-50-trunc, 1 thread per rank"
line() { # stage name label
  local t1=${T[$1,1]} t2=${T[$1,$2]}
  local eff; eff=$(echo "($t1 / $t2) / 2" | bc -l)
  printf '  %-8s 1 rank %8.2f s   2 ranks, %-22s %8.2f s   speed-up %.2f   efficiency %.2f (goal >= 0.92)\n' "$1" "$t1" "$3" "$t2" "$(echo "$t1 / $t2" | bc -l)" "$eff"
  printf 'BENCH name=scaling_%s_2_ranks%s value=%s unit=s baseline=%s ratio=%s better=lower note=efficiency_%.3f\n' "$1" "$4" "$t2" "$t1" "$(echo "$t1 / $t2" | bc -l)" "$eff"
}
line tile 2s "" ""
line extract 2w "one unit per slide:" "_whole_slides"
line extract 2s "shards of $shard tiles:" ""

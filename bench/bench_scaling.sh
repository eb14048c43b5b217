#!/usr/bin/env bash
# bench/bench_scaling.sh [BUILD_DIR] [SLIDES] — strong scaling of the tile and extract stages:
# the same synthetic cohort (SLIDES slides of 12000² px, ResNet-50-trunc, 1 LibTorch thread per
# rank) run on 1 rank and on 2 ranks, in fresh run directories; each stage's wall time is read
# from the ledger. efficiency = speed-up / ranks (goal >= 0.92). The 1-rank run is the baseline.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
slides=${2:-4}
. "$here/scripts/env.sh"
cache="$build/bench-cache/scaling-$slides"
if [ ! -f "$cache/config.yaml" ]; then
  rm -rf "$cache"
  "$build/tessera" synth "$cache" --slides "$slides" --size 12000 --seed 9 --quiet
fi
secs() { /usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select seconds from stages where name=?', (sys.argv[2],)).fetchone()[0])" "$1/ledger.sqlite" "$2"; }
declare -A T
for np in 1 2; do
  rd=$(mktemp -d /tmp/ts_scaling.XXXXXX); rmdir "$rd"
  mpirun -np "$np" "$build/tessera" run "$cache/config.yaml" --set run.dir="$rd" --set extract.threads=1 --quiet >/dev/null 2>&1
  for st in tile extract; do T[$st,$np]=$(secs "$rd" "$st"); done
  tiles=$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select sum(items) from units where stage='extract'\").fetchone()[0])" "$rd/ledger.sqlite")
  rm -rf "$rd"
done
echo "bench_scaling: $slides slides of 12000² px, $tiles tiles, ResNet-50-trunc, 1 thread per rank"
for st in tile extract; do
  t1=${T[$st,1]}; t2=${T[$st,2]}
  eff=$(echo "($t1 / $t2) / 2" | bc -l)
  printf '  %-8s 1 rank %8.2f s   2 ranks %8.2f s   speed-up %.2f   efficiency %.2f (goal >= 0.92)\n' "$st" "$t1" "$t2" "$(echo "$t1 / $t2" | bc -l)" "$eff"
  printf 'BENCH name=scaling_%s_2_ranks value=%s unit=s baseline=%s ratio=%s better=lower note=efficiency_%.3f\n' "$st" "$t2" "$t1" "$(echo "$t1 / $t2" | bc -l)" "$eff"
done

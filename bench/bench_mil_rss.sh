#!/usr/bin/env bash
# bench/bench_mil_rss.sh [BUILD_DIR] [SLIDES=1000] [TILES=10000] [DIM=1024] — peak resident memory
# of the mil stage on a cohort of SLIDES slides x TILES tiles x DIM features (the issue: "state
# the peak RSS for a cohort of 1,000 slides x 10,000 tiles x 1024"), and on the first SLIDES/10
# of them, to see whether it grows with the cohort. The stage streams the bags from their files
# one at a time (stages/mil.c), so it should hold one bag (TILES x DIM x 4 bytes as float32),
# the model, its activations and gradients, never the cohort: the peak at SLIDES should equal the
# peak at SLIDES/10.
#
# Each scale is one process, one rank, no mpirun (`tessera run CONFIG --stages mil`: mil.features
# points at the feature files, so no slide, tile or extract stage runs), MODEL=abmil, mil.folds=2
# (the fewest the splits allow), mil.epochs = mil.min_epochs = 1, mil.threads 1, default val/test
# fractions (0.1/0.2), under /usr/bin/time -v: its "Maximum resident set size" covers the whole
# process (the mil stage and the report the run always writes); the ledger's rusage row of the
# mil stage (getrusage at the stage's end) is shown beside it, and the largest test set of a fold
# (the test pass also writes attention.h5). Run directories under BUILD_DIR/bench-cache/.
#
# Feature files: DTYPE=float16 (`features` N x DIM; tessera reads it as float32; DTYPE=float32
# doubles the disk but reads ~2.5x faster: HDF5 1.10 converts float16 in software), one random
# block rolled per file plus signal (bench/mil_bench_bags.py --fast): real HDF5 files of the full
# size, ~19 GiB for the defaults, written into BUILD_DIR/bench-cache/mil-rss-*, removed at the end
# unless KEEP=1 (kept files are reused by the next run). The defaults train ~1,400 bags of 10,000
# tiles and read ~2,000: over an hour on the shared 2-core VM; SLIDES=200 takes ~15 min.
# SLIDES/10 must still split into 2 folds (SLIDES >= ~120).
#
# Prints the peak RSS in MiB at both scales beside the size of one bag and of the whole cohort,
# and BENCH lines: the peak at SLIDES against the peak at SLIDES/10 (ratio 1: flat), and against
# the cohort's float32 size (what holding the cohort in memory would take).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
slides=${2:-1000}
tiles=${3:-10000}
dim=${4:-1024}
model=${MODEL:-abmil} dtype=${DTYPE:-float16}
py=/usr/bin/python3
bin="$build/tessera"
[ -x "$bin" ] || { echo "bench_mil_rss.sh: $bin not found: build first" >&2; exit 2; }
small=$((slides / 10))
[ "$small" -ge 2 ] || { echo "bench_mil_rss.sh: SLIDES/10 must be >= 2" >&2; exit 2; }
case $dtype in float16) esize=2 ;; float32) esize=4 ;; *) echo "bench_mil_rss.sh: DTYPE is float16 or float32" >&2; exit 2 ;; esac
. "$here/scripts/env.sh"

cache="$build/bench-cache/mil-rss-$slides-$tiles-$dim-$dtype"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then rm -rf "$cache"/run-*; else rm -rf "$cache"; fi; }
trap cleanup EXIT
t0=$(date +%s)
if [ ! -f "$cache/done" ]; then
  rm -rf "$cache"
  mkdir -p "$(dirname "$cache")"
  mkdir "$cache"
  need=$((slides * tiles * dim * esize + slides * tiles * 16))
  free=$(df -B1 --output=avail "$cache" | tail -1)
  [ "$free" -gt $((need + (2 << 30))) ] ||
    { echo "bench_mil_rss.sh: $need bytes of feature files do not fit in the $free free on $(df --output=target "$cache" | tail -1)" >&2; exit 2; }
  echo "bench_mil_rss: writing $slides feature files of $tiles x $dim $dtype ($((need >> 20)) MiB) into $cache" >&2
  "$py" "$here/bench/mil_bench_bags.py" "$cache" "$slides" "$tiles" "$dim" --dtype "$dtype" --fast --seed 13
fi
gen_s=$(($(date +%s) - t0))
head -1 "$cache/cohort.csv" > "$cache/cohort-small.csv"
sed -n "2,$((small + 1))p" "$cache/cohort.csv" >> "$cache/cohort-small.csv"
for scale in small all; do
  csv=cohort.csv
  [ "$scale" = small ] && csv=cohort-small.csv
  cat > "$cache/config-$scale.yaml" <<EOF
run:
  dir: run-$scale
cohort:
  csv: $csv
mil:
  models: $model
  features: features
  folds: 2
  epochs: 1
  min_epochs: 1
  threads: 1
EOF
done

declare -A RSS LRSS SECS NTEST
for scale in small all; do
  rm -rf "$cache/run-$scale"
  echo "bench_mil_rss: $scale ($([ "$scale" = small ] && echo "$small" || echo "$slides") slides), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  /usr/bin/time -v -o "$cache/time-$scale.txt" "$bin" run "$cache/config-$scale.yaml" --stages mil --quiet > "$cache/log-$scale.txt" 2>&1 ||
    { echo "bench_mil_rss.sh: the $scale run failed:" >&2; tail -20 "$cache/log-$scale.txt" >&2; exit 1; }
  RSS[$scale]=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$cache/time-$scale.txt")
  LRSS[$scale]=$("$py" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select max(peak_rss_kb) from rusage where stage='mil'\").fetchone()[0])" "$cache/run-$scale/ledger.sqlite")
  NTEST[$scale]=$("$py" -c "import csv,sys,collections; c=collections.Counter(r['fold'] for r in csv.DictReader(open(sys.argv[1])) if r['set']=='test'); print(max(c.values()))" "$cache/run-$scale/splits/splits.csv")
  SECS[$scale]=$("$py" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select seconds from stages where name='mil'\").fetchone()[0])" "$cache/run-$scale/ledger.sqlite")
done

bag=$((tiles * dim * 4))
cohort=$((slides * bag))
mib() { echo "$1 / 1048576" | bc -l; }
echo "bench_mil_rss: mil stage, $model, 2 folds, 1 epoch, 1 rank, 1 thread; feature files $dtype on disk, float32 in memory (files written in ${gen_s} s)"
printf '  one bag: %d x %d x 4 B = %.0f MiB; whole cohort (float32): %d slides = %.0f MiB, %d slides = %.0f MiB\n' \
  "$tiles" "$dim" "$(mib $bag)" "$slides" "$(mib $cohort)" "$small" "$(mib $((small * bag)))"
for scale in small all; do
  n=$slides
  [ "$scale" = small ] && n=$small
  printf '  %5d slides (test sets of up to %d): peak RSS %.0f MiB (/usr/bin/time -v, whole process; mil stage per the ledger %.0f MiB) = %.2f bags, %.4f of the cohort; stage %.0f s\n' \
    "$n" "${NTEST[$scale]}" "$(echo "${RSS[$scale]} / 1024" | bc -l)" "$(echo "${LRSS[$scale]} / 1024" | bc -l)" \
    "$(echo "${RSS[$scale]} * 1024 / $bag" | bc -l)" "$(echo "${RSS[$scale]} * 1024 / ($n * $bag)" | bc -l)" "${SECS[$scale]}"
done
printf '  RSS at %d slides / RSS at %d slides: %.3f (cohort %dx larger)\n' "$slides" "$small" "$(echo "${RSS[all]} / ${RSS[small]}" | bc -l)" $((slides / small))
printf '  growth: %.1f MiB per extra slide = %.2f bags per extra test slide\n' \
  "$(echo "(${RSS[all]} - ${RSS[small]}) / 1024 / ($slides - $small)" | bc -l)" \
  "$(echo "(${RSS[all]} - ${RSS[small]}) * 1024 / $bag / (${NTEST[all]} - ${NTEST[small]})" | bc -l)"
printf 'BENCH name=mil_peak_rss_vs_tenth_cohort value=%s unit=MiB baseline=%s ratio=%s better=lower note=%d_vs_%d_slides_of_%dx%d\n' \
  "$(echo "${RSS[all]} / 1024" | bc -l)" "$(echo "${RSS[small]} / 1024" | bc -l)" "$(echo "${RSS[small]} / ${RSS[all]}" | bc -l)" "$slides" "$small" "$tiles" "$dim"
printf 'BENCH name=mil_peak_rss_vs_cohort_in_memory value=%s unit=MiB baseline=%s ratio=%s better=lower note=one_bag_%.0f_MiB\n' \
  "$(echo "${RSS[all]} / 1024" | bc -l)" "$(mib $cohort)" "$(echo "$cohort / (${RSS[all]} * 1024)" | bc -l)" "$(mib $bag)"

#!/usr/bin/env bash
# bench/bench_survnet.sh [BUILD_DIR] [ROUNDS=3] [THREADS=1] — training throughput (patients/s: one
# patient per step, forward + PORPOISE's NLL loss + backward + Adam step) of tessera's mmf_bilinear
# (BUILD_DIR/bench/bench_survnet, nn/ts_survnet.h) against the same model, loss and loop in PyTorch
# eager (bench/survnet_torch_bench.py, Debian's /usr/bin/python3), bags of ~2000 tiles x 1024
# features and G = 200 omic values held in memory on both sides, the same intra-op threads and the
# same BLAS threads (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, as bench_mil.sh: torch.set_num_threads
# does not size OpenBLAS).
#
# PyTorch runs with tessera's glibc malloc settings passed through GLIBC_TUNABLES (nn/malloc_tune.c,
# the baseline the goal is measured against, as bench_mil.sh) and with glibc's defaults. Each round
# runs tessera, torch (tuned), torch (default) one after the other, so that a noisy machine slows
# all three alike; the figures are medians over the rounds. ARCH (env, default mmf_bilinear) may be
# mmf_concat; STEPS (60), WARMUP (5), TILES (2000), OMIC (200) are passed to both sides.
# Both sides report wall time and their process's CPU time; at 1 thread on a machine shared with
# other jobs the CPU-time throughput is the steadier comparison. Prints
#   mmf_bilinear wall: tessera X patients/s, torch (tuned malloc) Y = R×, torch (default malloc) Z = R2×
#   mmf_bilinear cpu:  the same per CPU-second
# and BENCH lines for bench/report.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
rounds=${2:-3}
threads=${3:-1}
arch=${ARCH:-mmf_bilinear} steps=${STEPS:-60} warmup=${WARMUP:-5} tiles=${TILES:-2000} omic=${OMIC:-200}
py=/usr/bin/python3
bin="$build/bench/bench_survnet"
[ -x "$bin" ] || { echo "bench_survnet.sh: $bin not found: build the bench_survnet target" >&2; exit 2; }
tuned="glibc.malloc.mmap_threshold=$((32 << 20)):glibc.malloc.trim_threshold=$((1 << 30)):glibc.malloc.top_pad=$((64 << 20))"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_survnet.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
results="$tmp/results"
: > "$results"
echo "bench_survnet: $arch, $rounds rounds, $threads thread(s), $steps steps after $warmup warm-up, ~$tiles tiles x 1024, G $omic"
run() { # run LABEL CMD...: the RESULT line's patients_per_s, appended to results as "LABEL value"
  local label=$1 line
  shift
  line=$("$@" | grep '^RESULT ') || { echo "bench_survnet.sh: $label failed" >&2; exit 1; }
  echo "  $label: $line"
  echo "$label $(sed -n 's/.* patients_per_s=\([0-9.]*\).*/\1/p' <<< "$line")" >> "$results"
  echo "$label.cpu $(sed -n 's/.* patients_per_cpu_s=\([0-9.]*\).*/\1/p' <<< "$line")" >> "$results"
}
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  run tessera env -u GLIBC_TUNABLES "$bin" "$arch" "$threads" "$steps" "$warmup" "$tiles" "$omic" 1
  run torch_tuned env GLIBC_TUNABLES="$tuned" "$py" "$here/bench/survnet_torch_bench.py" "$arch" "$threads" "$steps" "$warmup" "$tiles" "$omic"
  run torch_default env -u GLIBC_TUNABLES "$py" "$here/bench/survnet_torch_bench.py" "$arch" "$threads" "$steps" "$warmup" "$tiles" "$omic"
done

median() { grep "^$1 " "$results" | cut -d' ' -f2 | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
t=$(median tessera) y=$(median torch_tuned) z=$(median torch_default)
tc=$(median tessera.cpu) yc=$(median torch_tuned.cpu) zc=$(median torch_default.cpu)
echo "medians over $rounds rounds ($threads thread(s)); wall clock, then per CPU-second of the process:"
awk -v m="$arch" -v t="$t" -v y="$y" -v z="$z" -v tc="$tc" -v yc="$yc" -v zc="$zc" -v th="$threads" 'BEGIN {
  printf "%s wall: tessera %.2f patients/s, torch (tuned malloc) %.2f = %.2f×, torch (default malloc) %.2f = %.2f×\n", m, t, y, t / y, z, t / z
  printf "%s cpu:  tessera %.2f patients/cpu-s, torch (tuned malloc) %.2f = %.2f×, torch (default malloc) %.2f = %.2f×\n", m, tc, yc, tc / yc, zc, tc / zc
  printf "BENCH name=survnet.%s.vs_torch_tuned_malloc value=%.3f unit=patients/s baseline=%.3f ratio=%.3f better=higher note=threads_%d_goal_1.5\n", m, t, y, t / y, th
  printf "BENCH name=survnet.%s.vs_torch_default_malloc value=%.3f unit=patients/s baseline=%.3f ratio=%.3f better=higher note=threads_%d\n", m, t, z, t / z, th
  printf "BENCH name=survnet.%s.cpu.vs_torch_tuned_malloc value=%.3f unit=patients/cpu_s baseline=%.3f ratio=%.3f better=higher note=threads_%d_goal_1.5\n", m, tc, yc, tc / yc, th
}'

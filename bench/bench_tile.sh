#!/usr/bin/env bash
# bench/bench_tile.sh [BUILD_DIR] [SIZE] — tissue + tiling of one synthetic SIZE² slide
# (default 20000², 0.25 um/px), tessera against a CLAM-like baseline run in the same session.
#
# Both lay a 256 px grid at level 0 (tessera: tile.size 256 at tile.mpp = the slide's 0.25 um/px,
# the same grid as CLAM's TCGA preset at patch_level 0). The baseline is
# bench/clam_like_patching.py (OpenCV + openslide-python re-implementation of CLAM's
# create_patches_fp algorithm). Each side runs 3 times in fresh directories; medians of the
# whole-process wall time are compared. Prints tiles/s, s/slide and the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
size=${2:-20000}
. "$here/scripts/env.sh"
tessera="$build/tessera"
cache="$build/bench-cache/tile-$size"
if [ ! -f "$cache/config.yaml" ]; then
  rm -rf "$cache"
  "$tessera" synth "$cache" --slides 1 --size "$size" --seed 5 --quiet
fi
slide=$(ls "$cache"/slides/*.tiff | head -1)
now() { date +%s.%N; }
med() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

t_ts=(); tiles=0
for i in 1 2 3; do
  rd=$(mktemp -d /tmp/ts_bench.XXXXXX); rmdir "$rd"
  t0=$(now)
  "$tessera" run "$cache/config.yaml" --quiet --set run.dir="$rd" --set tile.size=256 --set tile.mpp=0.25 >/dev/null 2>&1
  t1=$(now)
  t_ts+=("$(echo "$t1 - $t0" | bc -l)")
  tiles=$(/usr/bin/python3 -c "import h5py,glob; print(sum(h5py.File(p,'r')['coords'].shape[0] for p in glob.glob('$rd/tiles/*.h5')))")
  rm -rf "$rd"
done
t_cl=(); ctiles=0
for i in 1 2 3; do
  t0=$(now)
  out=$(/usr/bin/python3 "$here/bench/clam_like_patching.py" "$slide" 256)
  t1=$(now)
  t_cl+=("$(echo "$t1 - $t0" | bc -l)")
  ctiles=${out%% *}
done
ts=$(med "${t_ts[@]}"); cl=$(med "${t_cl[@]}")
printf 'bench_tile: slide %s (%sx%s px, 0.25 um/px), grid 256 px at level 0\n' "$(basename "$slide")" "$size" "$size"
printf '  tessera (tissue + tile, 1 rank, whole process): %6.3f s/slide  %8.0f tiles/s  (%d tiles)\n' "$ts" "$(echo "$tiles / $ts" | bc -l)" "$tiles"
printf '  CLAM-like baseline (OpenCV, 2 processes):       %6.3f s/slide  %8.0f tiles/s  (%d tiles)\n' "$cl" "$(echo "$ctiles / $cl" | bc -l)" "$ctiles"
printf '  speed-up tessera / CLAM-like: %.1fx   (runs: tessera %s; baseline %s)\n' "$(echo "$cl / $ts" | bc -l)" "${t_ts[*]}" "${t_cl[*]}"

#!/usr/bin/env bash
# bench/bench_tile.sh [BUILD_DIR] [SIZE] — tissue + tiling of one synthetic SIZE² slide
# (default 20000², 0.25 um/px), tessera against a CLAM-like baseline run in the same session.
#
# Both lay a 256 px grid at level 0 (tessera: tile.size 256 at tile.mpp = the slide's 0.25 um/px,
# the same grid as CLAM's TCGA preset at patch_level 0). The baseline is
# bench/clam_like_patching.py (OpenCV + openslide-python re-implementation of CLAM's
# create_patches_fp algorithm). Each side runs 3 times in fresh directories; medians of the
# per-slide times are compared. Prints tiles/s, s/slide and the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
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

# tessera: in-process per-slide work (bench_tile.c), median of 5; and the whole `tessera run`
# process (start-up, MPI, ledger, fsyncs included) once, for honesty.
read -r _ ts tiles < <("$build/bench/bench_tile" "$slide" 5)
rd=$(mktemp -d /tmp/ts_bench.XXXXXX); rmdir "$rd"
t0=$(now)
"$tessera" run "$cache/config.yaml" --quiet --set run.dir="$rd" --set tile.size=256 --set tile.mpp=0.25 >/dev/null 2>&1
whole=$(echo "$(now) - $t0" | bc -l)
rm -rf "$rd"
# baseline: its own timer from opening the slide to the last coordinate (interpreter start-up
# and imports excluded, as for tessera), median of 3
t_cl=(); ctiles=0
for i in 1 2 3; do
  out=$(/usr/bin/python3 "$here/bench/clam_like_patching.py" "$slide" 256)
  ctiles=${out%% *}
  t_cl+=("${out##* }")
done
cl=$(med "${t_cl[@]}")
printf 'bench_tile: slide %s (%sx%s px, 0.25 um/px), 256 px grid at level 0, 2-core machine\n' "$(basename "$slide")" "$size" "$size"
printf '  tessera tissue + tile (in-process, 1 thread):  %7.3f s/slide  %8.0f tiles/s  (%d tiles)\n' "$ts" "$(echo "$tiles / $ts" | bc -l)" "$tiles"
printf '  tessera run, whole process (start-up incl.):  %7.3f s\n' "$whole"
printf '  CLAM-like baseline (OpenCV, pool of 2):        %7.3f s/slide  %8.0f tiles/s  (%d tiles)\n' "$cl" "$(echo "$ctiles / $cl" | bc -l)" "$ctiles"
printf '  speed-up tessera / CLAM-like: %.1fx\n' "$(echo "$cl / $ts" | bc -l)"
# The real CLAM, when a checkout is given (CLAM_DIR=/path/to/CLAM; needs python3-pandas,
# python3-tqdm, python3-matplotlib): create_patches_fp.py --preset tcga.csv --seg --patch
# --stitch on the same slide; its own per-slide segmentation + patching + stitching times.
if [ -n "${CLAM_DIR:-}" ] && [ -f "$CLAM_DIR/create_patches_fp.py" ]; then
  src=$(mktemp -d /tmp/ts_clam_src.XXXXXX); dst=$(mktemp -d /tmp/ts_clam_out.XXXXXX)
  ln -s "$slide" "$src/"
  t_real=()
  for i in 1 2 3; do
    rm -rf "${dst:?}"/*
    log=$(cd "$CLAM_DIR" && /usr/bin/python3 create_patches_fp.py --source "$src" --save_dir "$dst" \
            --patch_size 256 --preset tcga.csv --seg --patch --stitch 2>&1)
    t_real+=("$(echo "$log" | awk '/average (segmentation|patching|stiching) time/ {s += $NF} END {print s}')")
    rtiles=$(echo "$log" | awk '/number of patches:/ {print $NF; exit}')
  done
  rm -rf "$src" "$dst"
  rc=$(med "${t_real[@]}")
  printf '  CLAM create_patches_fp (seg+patch+stitch):     %7.3f s/slide  %8.0f tiles/s  (%d tiles)\n' "$rc" "$(echo "$rtiles / $rc" | bc -l)" "$rtiles"
  printf '  speed-up tessera / CLAM: %.1fx\n' "$(echo "$rc / $ts" | bc -l)"
  printf 'BENCH name=tile_tissue_vs_clam value=%s unit=s baseline=%s ratio=%s better=lower\n' "$ts" "$rc" "$(echo "$rc / $ts" | bc -l)"
fi
printf 'BENCH name=tile_tissue_per_slide value=%s unit=s baseline=%s ratio=%s better=lower\n' "$ts" "$cl" "$(echo "$cl / $ts" | bc -l)"

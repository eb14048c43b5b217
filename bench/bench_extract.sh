#!/usr/bin/env bash
# bench/bench_extract.sh [BUILD_DIR] [N] — extraction end to end (tile reader + ResNet-50-trunc,
# 2 LibTorch threads) against the encoder alone on in-memory batches of the same tiles, on the
# synthetic 20000² slide of bench_tile.sh (generated once into BUILD_DIR/bench-cache).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TS_BUILD_DIR:-$here/build}}" && pwd)
cache="$build/bench-cache/tile-20000"
if [ ! -f "$cache/config.yaml" ]; then
  rm -rf "$cache"
  "$build/tessera" synth "$cache" --slides 1 --size 20000 --seed 5 --quiet
fi
"$build/bench/bench_extract" "$(ls "$cache"/slides/*.tiff | head -1)" "${2:-96}" resnet50_trunc 2 32

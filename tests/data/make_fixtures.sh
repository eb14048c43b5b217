#!/usr/bin/env bash
# make_fixtures.sh — regenerates the two derived files of tests/data/slides from the public ones
# beside them (see tests/data/README.md). The outputs are committed; run this only to remake
# them (needs libvips' `vips` command; byte-exact output depends on the libvips/libjpeg version).
#
#   he_levels.tiff   a 300 x 250 px crop of real H&E tissue from CMU-1-Small-Region.svs
#                    (level 0, at x=1000 y=1000), flattened to RGB, saved as a generic tiled TIFF
#                    pyramid (64 px JPEG tiles, Q 85, metadata stripped, resolution 72 dpi
#                    like openslide-python's boxes.tiff, so no Aperio mpp). Its levels are
#                    300x250, 150x125, 75x62, 37x31: downsamples 2, 4.016..., 8.086...
#                    (non-integer), the case of ts_slide_best_level's level choice.
#   not-a-slide.svs  plain ASCII text with a slide's name: OpenSlide finds no vendor in it.
set -euo pipefail
D="$(cd "$(dirname "$0")" && pwd)/slides"
T=$(mktemp -d /tmp/ts_fixtures.XXXXXX)
trap 'rm -rf "$T"' EXIT
vips crop "$D/CMU-1-Small-Region.svs" "$T/crop.v" 1000 1000 300 250
vips flatten "$T/crop.v" "$T/flat.v" --background "255 255 255"
vips cast "$T/flat.v" "$T/u8.v" uchar
vips copy "$T/u8.v" "$T/res.v" --xres 2.834646 --yres 2.834646
vips tiffsave "$T/res.v" "$D/he_levels.tiff" --tile --tile-width 64 --tile-height 64 --pyramid \
  --compression jpeg --Q 85 --strip
printf '%s\n' "tessera test fixture: plain ASCII text named .svs. It is not a slide; opening it" \
  "must fail with SLIDE_NOT_A_SLIDE (OpenSlide recognises no vendor format in it)." \
  > "$D/not-a-slide.svs"
echo "wrote $D/he_levels.tiff $D/not-a-slide.svs"

#!/usr/bin/env bash
# labels: mpi extract shard
# Sub-slide sharding and fault isolation of the extract stage.
#  - A copy of a synthetic slide gets some JPEG tiles of the pyramid level the tiles are read
#    from corrupted (Python: TIFF tags through PIL, levels through OpenSlide). Which extracted
#    tiles must be bad follows from that geometry alone (tiles overlapping a broken JPEG tile).
#  - Extraction on 1 and 2 ranks, with shards of 32 and 48 tiles and with whole-slide units:
#    every final feature file is byte-identical (cmp) to the others; bad_tiles is exactly the
#    expected set, recorded in the ledger too (bad_items, with x/y); bad rows are zero and every
#    other row is bitwise the feature of the same tile in a run on the unbroken slide.
#  - Shard files are gone after the merge, their units stay done with no output; status and the
#    report list the bad tiles; a shard size that is not a multiple of extract.batch is a config
#    error; changing only the shard size of a finished run redoes nothing; shards recorded done
#    whose files are gone before their merge are redone.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 2 --size 12288 --seed 5 --quiet
cp -r cohort bad

# run DIR RANKS SHARD [cohort]: one run in <cohort>/run (the same path every time, so that the
# attributes naming the run directory agree), then moved to <cohort>/DIR
run() {
  local dir=$1 np=$2 k=$3 c=${4:-bad}
  expect_rc 0 mpirun -np "$np" "$TESSERA" run "$c/config.yaml" --set extract.encoder=resnet_tiny \
    --set extract.batch=16 --set extract.shard_tiles="$k"
  mv "$c/run" "$c/$dir"
}
run clean 2 32 cohort
cat "$WORK/out" | grep -v '^$' | tail -3

# break 3 JPEG tiles of S0001 at the level its tiles are read from; write the expected bad set
expect_rc 0 $PY - cohort/clean/tiles/S0001.h5 bad/slides/S0001.tiff expected.txt <<'PY'
import sys, h5py, numpy as np, openslide
from PIL import Image
Image.MAX_IMAGE_PIXELS = None  # a whole-slide level is "big" by design
tiles, slide, out = sys.argv[1:4]
C = h5py.File(tiles, "r")["coords"]
coords, a = C[:], C.attrs
level, size = int(a["patch_level"]), int(a["patch_size"])
osr = openslide.OpenSlide(slide)
ds = osr.level_downsamples[level]
W, H = osr.level_dimensions[level]
osr.close()
im = Image.open(slide)
i = 0
while im.size != (W, H):
    i += 1
    im.seek(i)
tw, th = im.tag_v2[322], im.tag_v2[323]
offsets = im.tag_v2[324]
across = (W + tw - 1) // tw
# the JPEG tiles under three extraction tiles spread over the list
victims = set()
for k in (3, len(coords) // 2, len(coords) - 2):
    x, y = coords[k] / ds
    victims.add((int(y) // th) * across + int(x) // tw)
b = bytearray(open(slide, "rb").read())
for t in victims:
    o = offsets[t]
    assert b[o] == 0xFF and b[o + 1] == 0xD8 and b[o + 2] == 0xFF, "not a JPEG stream"
    b[o + 4], b[o + 5] = 0, 1  # length 1 of the second marker: "Bogus marker length"
open(slide, "wb").write(bytes(b))
bad = []
for k, (x0, y0) in enumerate(coords):
    x, y = x0 / ds, y0 / ds
    hit = any(not (x + size <= (t % across) * tw or x >= (t % across + 1) * tw or
                   y + size <= (t // across) * th or y >= (t // across + 1) * th) for t in victims)
    if hit:
        bad.append(k)
open(out, "w").write(" ".join(map(str, bad)) + "\n")
print("corrupted JPEG tiles", sorted(victims), "expected bad tiles", bad, "of", len(coords))
PY
cat "$WORK/out"

run np1_k32 1 32
cat "$WORK/out" | grep -E "bad item|extract:" | head -5
check "the run says which units had bad tiles" grep -q "bad item" "$WORK/out"
run np2_k32 2 32
run np2_k48 2 48
run np1_whole 1 0

for d in np2_k32 np2_k48 np1_whole; do
  for f in bad/np1_k32/features/resnet_tiny/*.h5; do
    check "$d: $(basename "$f") byte-identical to 1 rank, shards of 32" cmp "$f" "bad/$d/features/resnet_tiny/$(basename "$f")"
  done
done

for d in np1_k32 np2_k48 np1_whole; do
  expect_rc 0 $PY - "bad/$d" cohort/clean expected.txt <<'PY'
import sys, sqlite3, h5py, numpy as np
run, clean, exp = sys.argv[1:4]
want = [int(v) for v in open(exp).read().split()]
assert want, "the corruption broke no extracted tile"
f = h5py.File(run + "/features/resnet_tiny/S0001.h5", "r")
g = h5py.File(clean + "/features/resnet_tiny/S0001.h5", "r")
F, G, bad = f["features"][:], g["features"][:], f["bad_tiles"][:]
assert sorted(bad.tolist()) == want, (bad.tolist(), want)
assert f["features"].attrs["n_bad_tiles"] == len(want)
assert (F[want] == 0).all(), "bad rows are not zero"
good = np.setdiff1d(np.arange(len(F)), want)
assert F[good].tobytes() == G[good].tobytes(), "a good tile's features differ from the unbroken slide's"
assert np.abs(F[good]).sum(axis=1).min() > 0, "a good tile has no features"
db = sqlite3.connect(run + "/ledger.sqlite")
rows = db.execute("select item, x, y, token, unit from bad_items where stage='extract' order by item").fetchall()
assert [r[0] for r in rows] == want, rows
C = f["coords"][:]
for item, x, y, token, unit in rows:
    assert (x, y) == tuple(C[item]) and token == "TILE_DECODE" and unit.startswith("S0001#"), (item, x, y, token, unit)
assert db.execute("select count(*) from bad_items where message is not null").fetchone()[0] >= 1
# the other slide: untouched
f2, g2 = h5py.File(run + "/features/resnet_tiny/S0002.h5", "r"), h5py.File(clean + "/features/resnet_tiny/S0002.h5", "r")
assert f2["bad_tiles"].shape == (0,) and f2["features"][:].tobytes() == g2["features"][:].tobytes()
# shards: consumed and gone; merges name the final files
left = db.execute("select count(*) from units where stage='extract' and unit like '%#%' and (state != 'done' or output is not null)").fetchone()[0]
assert left == 0, "a shard unit is not done or still names a file"
n_shards = db.execute("select count(*) from units where stage='extract' and unit like '%#%'").fetchone()[0]
items = db.execute("select sum(items) from units where stage='extract' and state='done'").fetchone()[0]
assert items == len(F) + len(f2["features"]), ("stage items are the tiles encoded", items)
import json
rep = {x["slide_id"]: x for x in json.load(open(run + "/report/report.json"))["slides"]["slides"]}
assert rep["S0001"]["bad_tiles"] == len(want) and rep["S0002"]["bad_tiles"] == 0, rep["S0001"]
assert "bad-tiles" in open(run + "/report/index.html").read()
print(run, "bad tiles", bad.tolist(), "shard units", n_shards)
PY
  cat "$WORK/out"
  check "$d: no shard file left" test -z "$(find "bad/$d/scratch" -type f 2>/dev/null)"
done
check "shards of 32 make several units per slide" \
  test "$(sqlite3 bad/np1_k32/ledger.sqlite "select count(*) from units where stage='extract' and unit like 'S0001#%'")" -gt 2
check "whole-slide units: one shard per slide" \
  test "$(sqlite3 bad/np1_whole/ledger.sqlite "select count(*) from units where stage='extract' and unit like 'S0001#%'")" -eq 1

# status lists the bad tiles (and exits 0: nothing failed)
expect_rc 0 "$TESSERA" status bad/np1_k32
cat "$WORK/out"
check "status lists the units with bad tiles" grep -q "BAD ITEMS S0001#" "$WORK/out"
expect_rc 0 "$TESSERA" status bad/np1_k32 --json
check "status --json has bad_items" grep -q '"bad_items": \[{"unit": "S0001#' "$WORK/out"

# a shard size that is not a multiple of the batch: exit 2, says what to do
expect_rc 2 "$TESSERA" run bad/config.yaml --set extract.encoder=resnet_tiny --set extract.batch=16 --set extract.shard_tiles=40 --quiet
check "CONFIG_RANGE names extract.shard_tiles" grep -q "CONFIG_RANGE.*extract.shard_tiles (40) must be a multiple of extract.batch (16)" "$WORK/out"

# a slide whose merge is not recorded while its shard files are gone (scratch cleaned by hand):
# the next run redoes those shards instead of failing the merge; the file comes out the same
cp bad/np2_k48/features/resnet_tiny/S0001.h5 S0001_before.h5
sqlite3 bad/np2_k48/ledger.sqlite "update units set state='pending' where stage='extract' and unit='S0001'"
expect_rc 0 "$TESSERA" run bad/config.yaml --set run.dir=np2_k48 --set extract.encoder=resnet_tiny --set extract.batch=16 --set extract.shard_tiles=48 --reconfigure
n48=$(sqlite3 bad/np2_k48/ledger.sqlite "select count(*) from units where stage='extract' and unit like 'S0001#%'")
check "shards whose files are gone are redone ($n48 shards + the merge)" grep -q "extract: 1 of .* slides to do (as $n48 shards\{0,1\} and 1 merge)" "$WORK/out"
check "the redone slide's file is byte-identical" cmp S0001_before.h5 bad/np2_k48/features/resnet_tiny/S0001.h5

# changing only the shard size of a finished run redoes nothing (an exec: key)
expect_rc 0 "$TESSERA" run bad/config.yaml --set run.dir=np1_k32 --set extract.encoder=resnet_tiny --set extract.batch=16 --set extract.shard_tiles=48 --reconfigure
check "new shard size: extract has nothing to do" grep -q "extract: all .* slides already done" "$WORK/out"
finish

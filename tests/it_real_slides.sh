#!/usr/bin/env bash
# labels: mpi slides
# The real test slides of tests/data/slides under mpirun -np 2: the good ones tile, each broken
# one ends as a failed unit with its own token (ledger and `tessera status`), the rest of the
# run completes, exit code 1. Then the missing-mpp paths.
. "$(dirname "$0")/lib.sh"
D="$TESTDATA/slides"
[ -f "$D/CMU-1-Small-Region.svs" ] || { echo "FAIL - test slides missing at $D"; exit 1; }
cd "$WORK"
cat > cohort.csv <<CSV
slide_id,patient_id,path,mpp
cmu1,P1,$D/CMU-1-Small-Region.svs,
boxes_mpp,P2,$D/boxes.tiff,0.5
boxes,P3,$D/boxes.tiff,
unreadable,P4,$D/unreadable.svs,
unopenable,P5,$D/unopenable.tiff,
notaslide,P6,$D/not-a-slide.svs,
../escape,P7,$D/small.svs,
CSV
printf 'cohort:\n  csv: cohort.csv\ntile:\n  size: 224\n  mpp: 0.5\n' > config.yaml
expect_rc 1 mpirun -np 2 "$TESSERA" run config.yaml --quiet
expect_rc 1 "$TESSERA" status run --json
cp "$WORK/out" status.json
$PY - status.json <<'PY' && pass "status --json has the expected tokens" || fail "status --json tokens"
import json, sys
s = json.load(open(sys.argv[1]))
st = {x["name"]: x for x in s["stages"]}
tissue = {f["unit"]: f["token"] for f in st["tissue"]["failures"]}
want = {"boxes": "SLIDE_NO_MPP", "unreadable": "SLIDE_UNREADABLE", "unopenable": "SLIDE_UNOPENABLE",
        "notaslide": "SLIDE_NOT_A_SLIDE", "../escape": "SLIDE_BAD_ID"}
assert tissue == want, tissue
assert st["tissue"]["done"] == 2 and st["tissue"]["failed"] == 5 and st["tissue"]["pending"] == 0, st["tissue"]
assert st["tile"]["done"] == 2 and st["tile"]["pending"] == 0, st["tile"]
for f in st["tissue"]["failures"]:
    assert f["message"].startswith(f["token"] + ":"), f
PY
expect_rc 1 "$TESSERA" status run
check "plain status lists a failure with its token" grep -q 'FAILED unreadable: SLIDE_UNREADABLE' "$WORK/out"
check "no file escaped the run directory" test ! -e escape.h5 -a ! -e tiles -a ! -e "$WORK/escape.h5"

# The real H&E slide, read back with h5py and checked against OpenSlide's own numbers.
$PY - run/tiles/cmu1.h5 run/tiles/boxes_mpp.h5 "$D/CMU-1-Small-Region.svs" <<'PY' && pass "cmu1 tiles: geometry matches OpenSlide" || fail "cmu1 tiles geometry"
import sys, h5py, numpy as np, openslide
f = h5py.File(sys.argv[1], "r")
c = f["coords"]
a = dict(c.attrs)
s = openslide.OpenSlide(sys.argv[3])
mpp0 = float(s.properties["openslide.mpp-x"])
assert c.shape[1] == 2 and c.shape[0] > 10, c.shape
assert abs(a["mpp_level0"] - mpp0) < 1e-9, a["mpp_level0"]
assert a["mpp_source"] in (b"file", "file"), a["mpp_source"]
assert abs(a["target_mpp"] - 0.5) < 1e-12
assert (a["level0_width"], a["level0_height"]) == s.dimensions, (a["level0_width"], s.dimensions)
side = a["patch_size_level0"]
assert abs(side - round(224 * 0.5 / mpp0)) <= 1, side
xy = c[:]
assert (xy >= 0).all() and (xy[:, 0] + side <= s.dimensions[0]).all() and (xy[:, 1] + side <= s.dimensions[1]).all()
g = h5py.File(sys.argv[2], "r")["coords"].attrs
assert g["mpp_source"] in (b"cohort", "cohort"), g["mpp_source"]
PY

expect_rc 0 "$TESSERA" inspect run/tiles/cmu1.h5
check "inspect shows coords and provenance" grep -q 'coords  int64 \[' "$WORK/out"
check "inspect shows mpp_source" grep -q '@mpp_source = "file"' "$WORK/out"
expect_rc 1 "$TESSERA" inspect "$D/not-a-slide.svs"
check "inspect of a non-HDF5 file says so" grep -q 'H5_OPEN' "$WORK/out"

# mpp from the config default: the slide without one now runs, and says where its mpp came from
printf 'slide_id,patient_id,path\nboxes,P3,%s\n' "$D/boxes.tiff" > c2.csv
printf 'cohort:\n  csv: c2.csv\n  mpp: 0.25\nrun:\n  dir: run2\n' > c2.yaml
expect_rc 0 "$TESSERA" run c2.yaml --quiet
$PY -c "import h5py,sys; a=h5py.File('run2/tiles/boxes.h5','r')['coords'].attrs; s=a['mpp_source']; sys.exit(0 if s in (b'config','config') and abs(a['mpp_level0']-0.25)<1e-12 else 1)" \
  && pass "mpp from config recorded as such" || fail "mpp source config"
finish
